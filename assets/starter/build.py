"""Build the offline starter pack: compact subsets of real MNIST and USPS, shipped in the repo so
that a machine with no datasets (and no internet) still runs real digit experiments.

Reads the full datasets from TL_DATA_DIR (torchvision's layouts), keeps every test image and a
class-stratified subset of the training images (seed 0), and writes `mnist.npz` and `usps.npz`
(uint8 images N x H x W, int64 labels; numpy's compressed format, read without pickle) and
`README.md` with provenance, licence and SHA-256. The same inputs give byte-identical files.

    TL_DATA_DIR=../shared/data python assets/starter/build.py
"""
from __future__ import annotations

import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

TRAIN_PER_CLASS = {"mnist": 1000, "usps": None}  # None: the whole split (USPS is small)
SOURCES = {"mnist": ("MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-labels-idx1-ubyte",
                     "MNIST/raw/t10k-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"),
           "usps": ("usps.bz2", "usps.t.bz2")}


def subset(y: np.ndarray, per_class: int | None, seed: int = 0) -> np.ndarray:
    if per_class is None:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    keep = [np.sort(rng.permutation(np.flatnonzero(y == c))[:per_class]) for c in np.unique(y)]
    return np.sort(np.concatenate(keep))


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """np.savez_compressed with fixed member timestamps, so that the file is reproducible."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, a in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(a), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, member.getvalue())
    path.write_bytes(buf.getvalue())


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def main() -> int:
    from tl_core.data.domains.digits import MNIST, USPS
    from tl_core.base.paths import data_dir

    rows = []
    for dom in (MNIST(), USPS()):
        if dom.missing():
            print(f"{dom.label}: the full dataset is not in {data_dir()}", file=sys.stderr)
            return 2
        d = dom._decode()  # the full data, decoded by the same code as always
        ytr = d.y_train.numpy()
        keep = subset(ytr, TRAIN_PER_CLASS[dom.name])
        out = HERE / f"{dom.name}.npz"
        write_npz(out, x_train=d.x_train.numpy()[keep, 0], y_train=ytr[keep],
                  x_test=d.x_test.numpy()[:, 0], y_test=d.y_test.numpy())
        src = [(f, sha256(data_dir() / f)) for f in SOURCES[dom.name]]
        rows.append((dom, out, len(keep), len(ytr), len(d.y_test), src))
        print(f"{out.name}: {len(keep):,} of {len(ytr):,} train, {len(d.y_test):,} test, "
              f"{out.stat().st_size / 1e6:.2f} MB")
    (HERE / "README.md").write_text(readme(rows))
    return 0


def readme(rows) -> str:
    lines = ["# Starter pack: real MNIST and USPS, offline", "",
             "Compact subsets of two real digit datasets, shipped with TransferLab so that a machine with",
             "no datasets and no internet still runs real transfer experiments (MNIST ↔ USPS, and MNIST-M",
             "and the shifted variants built from MNIST). When the full datasets are in `TL_DATA_DIR`,",
             "they are used instead and this pack is ignored. Built by `python assets/starter/build.py`",
             "(deterministic: the same inputs give byte-identical files).", "",
             "| file | train images | test images | SHA-256 |", "|---|---|---|---|"]
    for dom, out, n, n_all, n_test, _ in rows:
        lines.append(f"| `{out.name}` | {n:,} of {n_all:,} ({'class-stratified, seed 0' if n < n_all else 'all'}) "
                     f"| {n_test:,} (all) | `{sha256(out)}` |")
    lines += ["", "Each file holds `x_train`, `y_train`, `x_test`, `y_test`: uint8 images (N × H × W) and",
              "int64 labels 0-9, in numpy's `.npz` format (read with `allow_pickle=False`).", "",
              "## Provenance", ""]
    for dom, out, *_, src in rows:
        lines.append(f"- `{out.name}` was made from these files (torchvision's layout), decoded by TransferLab's own loader:")
        lines += [f"  - `{f}` — SHA-256 `{h}`" for f, h in src]
    lines += ["", "## Licences and credit", "",
              "- **MNIST**: Yann LeCun, Corinna Cortes and Christopher J. C. Burges, "
              "<http://yann.lecun.com/exdb/mnist/>; distributed under the Creative Commons "
              "Attribution-Share Alike 3.0 licence (CC BY-SA 3.0). LeCun et al., *Gradient-based learning "
              "applied to document recognition*, Proc. IEEE 86(11), 1998. This subset is shared under the same licence.",
              "- **USPS**: J. J. Hull, *A database for handwritten text recognition research*, IEEE TPAMI "
              "16(5), 1994; the copy torchvision reads is the one on the LIBSVM data sets page "
              "(<https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass.html#usps>). No licence "
              "is stated by the source; it is redistributed for research and teaching, as torchvision and "
              "the transfer-learning libraries do. Cite Hull (1994) when you use it.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
