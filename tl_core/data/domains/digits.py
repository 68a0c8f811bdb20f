"""Built-in digit domains: MNIST, USPS, SVHN (torchvision), UCI digits (scikit-learn),
rendered synthetic digits, and an MNIST-M-style colour domain."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tl_core.base.errors import DataUnavailable
from tl_core.base.limits import setting
from tl_core.base.paths import data_dir
from tl_core.data.domains.base import register_domain, Domain, DomainData
from tl_core.data.domains.render import blend_on_textures, render_digits

DIGITS = [str(i) for i in range(10)]


def _offline() -> bool:
    return bool(setting("TL_OFFLINE"))


STARTER = Path(__file__).resolve().parents[3] / "assets" / "starter"


def _download_allowed() -> bool:
    return bool(setting("TL_DOWNLOAD")) and not _offline()


class TorchvisionDigits(Domain):
    """A torchvision dataset rooted at `TL_DATA_DIR`. Where its files are absent and a starter pack
    ships with the repo (`assets/starter/<name>.npz`: real images, a compact subset), the pack is
    used and says so; otherwise it is downloaded when online."""

    classes = DIGITS
    folder = ""  # sub-folder of the root that holds the files
    files: tuple[str, ...] = ()
    starter_note = ""  # what the starter pack holds, in words

    def starter(self) -> Path | None:
        """The starter pack, when it is what `load()` will read (the full files are absent, and no
        download was asked for with TL_DOWNLOAD=1)."""
        p = STARTER / f"{self.name}.npz"
        return p if p.exists() and self.missing() and not _download_allowed() else None

    def cache_key(self) -> str:
        return f"{self.name}-starter-v{self.version}" if self.starter() else super().cache_key()

    def variant(self) -> str:
        return "starter" if self.starter() else "full"

    def info(self) -> dict:
        out = super().info()
        if self.starter():
            base = self.root() / self.folder if self.folder else self.root()
            out["label"] = f"{self.label} (starter pack)"
            out["starter_pack"] = True
            out["description"] = (f"Starter pack: {self.starter_note}, shipped with TransferLab because the full "
                                  f"{self.label} is not on this machine (put {', '.join(self.files)} in {base}, "
                                  f"or run with TL_DOWNLOAD=1 online, for the full data). {self.description}")
        return out

    def root(self) -> Path:
        return data_dir()

    def missing(self) -> list[Path]:
        base = self.root() / self.folder if self.folder else self.root()
        return [base / f for f in self.files if not (base / f).exists()]

    def available(self) -> tuple[bool, str]:
        missing = self.missing()
        if not missing or self.starter():
            return True, ""
        if not _offline():
            return True, ""  # will try to download
        return False, self._missing_message(missing, "downloads are off (TL_OFFLINE=1)")

    def _missing_message(self, missing: list[Path], why: str) -> str:
        base = self.root() / self.folder if self.folder else self.root()
        return (
            f"The {self.label} data is not on this machine and could not be downloaded ({why}). "
            f"Put these files in {base}: {', '.join(p.name for p in missing)} "
            f"(set TL_DATA_DIR to the folder that holds them), or connect to the internet and try again."
        )

    def _dataset(self, train: bool):
        raise NotImplementedError

    def _decode(self) -> DomainData:
        pack = self.starter()
        if pack is not None:
            with np.load(pack, allow_pickle=False) as z:
                t = {k: torch.from_numpy(np.ascontiguousarray(z[k])) for k in ("x_train", "y_train", "x_test", "y_test")}
            return DomainData(self.name, list(self.classes), t["x_train"].unsqueeze(1), t["y_train"].long(),
                              t["x_test"].unsqueeze(1), t["y_test"].long())
        missing = self.missing()
        try:
            tr, te = self._dataset(True, download=bool(missing)), self._dataset(False, download=bool(missing))
        except Exception as e:  # network errors, partial downloads
            raise DataUnavailable(self._missing_message(self.missing() or missing, f"{type(e).__name__}: {e}")) from None
        return DomainData(self.name, list(self.classes), *self._arrays(tr), *self._arrays(te))

    @staticmethod
    def _arrays(ds) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class MNIST(TorchvisionDigits):
    name, label = "mnist", "MNIST"
    description = "Handwritten digits, 28x28 grey, 60,000 train / 10,000 test (LeCun et al., 1998)."
    channels, native_size = 1, 28
    folder = "MNIST/raw"
    starter_note = "10,000 of the 60,000 training images (1,000 per class) and all 10,000 test images"
    files = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

    def _dataset(self, train, download=False):
        from torchvision.datasets import MNIST as TV

        return TV(str(self.root()), train=train, download=download)

    @staticmethod
    def _arrays(ds):
        return ds.data.unsqueeze(1).contiguous(), ds.targets.long()


class USPS(TorchvisionDigits):
    name, label = "usps", "USPS"
    description = "Scanned US postal-code digits, 16x16 grey, 7,291 train / 2,007 test (Hull, 1994)."
    channels, native_size = 1, 16
    starter_note = "all 7,291 training and 2,007 test images"
    files = ("usps.bz2", "usps.t.bz2")

    def _dataset(self, train, download=False):
        from torchvision.datasets import USPS as TV

        return TV(str(self.root()), train=train, download=download)

    @staticmethod
    def _arrays(ds):
        return torch.from_numpy(np.asarray(ds.data, dtype=np.uint8)).unsqueeze(1).contiguous(), torch.tensor(ds.targets).long()


class SVHN(TorchvisionDigits):
    name, label = "svhn", "SVHN"
    description = "Street View house-number crops, 32x32 colour, 73,257 train / 26,032 test (Netzer et al., 2011)."
    channels, native_size = 3, 32
    files = ("train_32x32.mat", "test_32x32.mat")

    def _dataset(self, train, download=False):
        from torchvision.datasets import SVHN as TV

        return TV(str(self.root()), split="train" if train else "test", download=download)

    @staticmethod
    def _arrays(ds):
        return torch.from_numpy(np.ascontiguousarray(ds.data)), torch.from_numpy(ds.labels.astype(np.int64) % 10)


class UCIDigits(Domain):
    name, label = "uci_digits", "UCI digits"
    description = ("Handwritten digits bundled with scikit-learn, 8x8 grey with 17 levels, "
                   "1,797 images split 70/30 (Alpaydin & Kaynak, 1998). Works offline.")
    classes, channels, native_size = DIGITS, 1, 8

    def _decode(self) -> DomainData:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.from_numpy(np.round(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
        y = torch.from_numpy(d.target.astype(np.int64))
        test = _stratified_test_mask(y.numpy(), 0.3, seed=0)
        return DomainData(self.name, DIGITS, x[~test], y[~test], x[test], y[test])


def _stratified_test_mask(y: np.ndarray, frac: float, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        mask[idx[: int(round(frac * len(idx)))]] = True
    return torch.from_numpy(mask)


class SynDigits(Domain):
    """Digits rendered with the fonts that ship with matplotlib (DejaVu, STIX, Computer Modern)."""

    name, label = "syndigits", "Synthetic digits"
    description = ("Digits rendered from 20 offline fonts with random size, stroke, rotation, position, "
                   "colours, background and neighbouring digits, 32x32 colour, 10,000 train / 2,000 test. "
                   "Deterministic from a seed; works offline.")
    classes, channels, native_size = DIGITS, 3, 32
    version = "1"
    n_train, n_test, seed = 10_000, 2_000, 1234

    def _decode(self) -> DomainData:
        x, y = render_digits(self.n_train + self.n_test, size=32, seed=self.seed)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        n = self.n_train
        return DomainData(self.name, DIGITS, x[:n], y[:n], x[n:], y[n:])


class MNISTM(Domain):
    """MNIST digits blended over crops of colour photographs (after Ganin et al., 2016)."""

    name, label = "mnistm", "MNIST-M style"
    description = ("MNIST digits blended (|photo - digit|) over random crops of the colour photographs "
                   "bundled with scikit-image, 28x28 colour, 60,000 train / 10,000 test. Needs MNIST.")
    classes, channels, native_size = DIGITS, 3, 28
    seed = 4321

    def available(self) -> tuple[bool, str]:
        return DOMAIN_MNIST.available()

    def variant(self) -> str:
        return DOMAIN_MNIST.variant()

    def cache_key(self) -> str:  # built from the starter pack or from the full MNIST: two caches
        return f"{self.name}{'-starter' if DOMAIN_MNIST.starter() else ''}-v{self.version}"

    def info(self) -> dict:
        out = super().info()
        if DOMAIN_MNIST.starter():
            out["label"] = f"{self.label} (from the MNIST starter pack)"
            out["starter_pack"] = True
        return out

    def _decode(self) -> DomainData:
        m = DOMAIN_MNIST.load()
        rng = np.random.default_rng(self.seed)
        xtr = torch.from_numpy(blend_on_textures(m.x_train.numpy(), rng))
        xte = torch.from_numpy(blend_on_textures(m.x_test.numpy(), rng))
        return DomainData(self.name, DIGITS, xtr, m.y_train.clone(), xte, m.y_test.clone())


DOMAIN_MNIST = register_domain(MNIST())
register_domain(USPS())
register_domain(SVHN())
register_domain(UCIDigits())
register_domain(SynDigits())
register_domain(MNISTM())
