"""Memory and disk a classroom server pays for what one session uploads (issue 18): peak resident memory
of the process that does the work, above what it held before, and the decoded cache on disk.

Each case runs in a fresh Python process (the server's own imports already loaded, as in the app), so
one case's high-water mark never hides another's:

- 20,000 1x1 PNGs (the image quota) in a ~1 MB zip: upload, preview (the web server), training set-up
  (decoding the dataset, as a worker does) and its decoded cache on disk;
- one 6,300 x 6,300 image (39.7 MP, under the 40 MP cap) as a float (mode F) TIFF, an RGBA PNG, an RGB
  JPEG and a 16-bit PNG: decoded to the working size;
- 20,000 real-sized images (256 x 256 PNGs) as a folder: preview and training set-up, at the size the
  decoded-bytes quota (TL_QUOTA_DOMAIN_DECODED_MB, default 1024) allows.

    python bench/memory.py [--quick]       # a row in bench/results/memory.jsonl; prints a table

Targets (issue 18): tiny images <= +500 MB during preview and set-up and <= 100 MB on disk; any single
image under the pixel cap <= +300 MB; a dataset's decoded bytes never above its quota.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import _table  # noqa: E402

PRELUDE = """
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
import torch, numpy as np, PIL.Image  # what the server process has loaded anyway
from tl_core.app import api
from tl_core.policy.access import session_from_token
from tl_core.data.domains import get_domain
from tl_core.data.domains.folder import load_image
def rss_mb():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
base = rss_mb()
t0 = time.perf_counter()
"""
REPORT = """
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out.update(peak_above_start_mb=round(peak - base, 1), wall_s=round(time.perf_counter() - t0, 2))
print(json.dumps(out))
"""


def run_case(code: str, env: dict[str, str]) -> dict:
    script = PRELUDE.format(root=str(ROOT)) + textwrap.dedent(code) + REPORT
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, **env})
    if p.returncode != 0:
        raise SystemExit(f"case failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def make_tiny_zip(path: Path, n: int) -> None:
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(n):
            b = io.BytesIO()
            Image.fromarray(np.full((1, 1, 3), i % 251, np.uint8)).save(b, "PNG")
            z.writestr(f"tiny/c{i % 10}/{i}.png", b.getvalue())


def make_big_images(folder: Path, side: int) -> dict[str, Path]:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    small = rng.random((side // 50, side // 50), dtype=np.float32)
    grad = np.asarray(Image.fromarray(small, mode="F").resize((side, side), Image.BILINEAR))
    out = {}
    Image.fromarray(grad * 1000.0, mode="F").save(out.setdefault("float TIFF", folder / "big_f.tif"))
    rgba = np.stack([(grad * 255).astype(np.uint8)] * 3 + [np.full((side, side), 128, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(out.setdefault("RGBA PNG", folder / "big_rgba.png"), compress_level=1)
    Image.fromarray(rgba[..., :3], "RGB").save(out.setdefault("RGB JPEG", folder / "big.jpg"), quality=90)
    Image.fromarray((grad * 65535).astype(np.uint16)).save(out.setdefault("16-bit PNG", folder / "big16.png"),
                                                            compress_level=1)
    return out


def make_folder(root: Path, n: int, side: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    tiles = [np.asarray(Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize((side, side)))
             for _ in range(50)]
    for i in range(n):
        d = root / f"c{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(tiles[i % 50]).save(d / f"{i}.png", compress_level=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2,000 images instead of 20,000 (a smoke run)")
    args = ap.parse_args()
    n = 2_000 if args.quick else 20_000
    work = Path(tempfile.mkdtemp(prefix="tl-membench-"))
    home = work / "home"
    env = {"TL_HOME": str(home), "TL_FOLDER_ROOTS": str(work), "TL_QUOTA_DOMAIN_IMAGES": str(n)}
    results: dict[str, dict] = {}
    try:
        zpath = work / "tiny.zip"
        make_tiny_zip(zpath, n)
        print(f"{n:,} 1x1 PNGs: zip of {zpath.stat().st_size / 1e6:.2f} MB")
        results["tiny: upload"] = run_case(f"""
            s = session_from_token('b' * 43)[0]
            up = api.ingest_zip(open({str(zpath)!r}, 'rb').read(), 'tiny', s)
            out = {{'images': {n}, 'domain': up['domain']}}
        """, env)
        dom = results["tiny: upload"]["domain"]
        results["tiny: preview"] = run_case(f"""
            s = session_from_token('b' * 43)[0]
            p = api.preview_mosaic({dom!r}, s)
            out = {{'images': p['n_train'] + p['n_test']}}
        """, env)
        results["tiny: training set-up"] = run_case(f"""
            d = get_domain({dom!r}).load()
            out = {{'images': len(d.x_train) + len(d.x_test), 'stored_side': d.size[0],
                   'decoded_mb': round((d.x_train.nbytes + d.x_test.nbytes) / 2**20, 2),
                   'disk_cache_mb': round(get_domain({dom!r}).cache_path().stat().st_size / 2**20, 2)}}
        """, env)
        for kind, path in make_big_images(work / "big", 6300).items():
            results[f"one 6300x6300 {kind}"] = run_case(f"""
                x = load_image({str(path)!r}, 224)
                out = {{'file_mb': round(os.path.getsize({str(path)!r}) / 2**20, 1), 'out': list(x.shape)}}
            """, env)
        folder = work / "photos"
        make_folder(folder, n, 256)
        results["224 px: preview"] = run_case(f"""
            s = session_from_token('c' * 43)[0]
            p = api.preview_mosaic('folder:{folder}', s)
            out = {{'images': p['n_train'] + p['n_test']}}
        """, env)
        results["224 px: training set-up"] = run_case(f"""
            from tl_core.data.domains.folder import decoded_cap_bytes
            dom = get_domain('folder:{folder}')
            d = dom.load()
            out = {{'images': len(d.x_train) + len(d.x_test), 'stored_side': d.size[0],
                   'decoded_mb': round((d.x_train.nbytes + d.x_test.nbytes) / 2**20, 1),
                   'quota_mb': decoded_cap_bytes() / 2**20,
                   'disk_cache_mb': round(dom.cache_path().stat().st_size / 2**20, 1)}}
        """, env)
    finally:
        subprocess.run(["rm", "-rf", str(work)])
    print(f"\n{'case':34s} {'peak above start':>17s} {'wall':>7s}  facts")
    for k, v in results.items():
        facts = {a: b for a, b in v.items() if a not in ("peak_above_start_mb", "wall_s", "domain")}
        print(f"{k:34s} {v['peak_above_start_mb']:>14.1f} MB {v['wall_s']:>6.1f}s  {facts}")
    _table.append("memory", {**_table.provenance("memory_quick" if args.quick else "memory",
                                                 "python bench/memory.py " + " ".join(sys.argv[1:])),
                             "images": n, "results": results})
    print("\nappended to bench/results/memory.jsonl")


if __name__ == "__main__":
    main()
