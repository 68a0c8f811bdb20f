"""Does the planned PACS recipe for a method (DANN by default) beat source only, with its interval?

One experiment on the PACS folders (photo -> sketch), pretrained EfficientNet-Lite0, the method against
source only over 5 seeds, every run planned to the CLI's default budget (as `train` plans it), evaluated
on every sketch image. The gain's 95 % interval (paired bootstrap over images + Student's t over seeds)
decides whether the app may present the method as a gain there.

    TL_DATA_DIR=../shared/data python bench/pacs_dann.py [--methods dann] [--seeds 0,1,2,3,4] [--budget 120]

Writes bench/results/pacs_<methods>_<source>_<target>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import _table  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--budget", default="120")
    ap.add_argument("--pair", default="photo,sketch")
    ap.add_argument("--methods", default="dann", help="comma-separated methods compared with source only")
    a = ap.parse_args()
    pacs = Path(os.environ.get("TL_DATA_DIR", ROOT.parent / "shared" / "data")) / "PACS_subset50"
    src, tgt = a.pair.split(",")
    env = {**os.environ, "TL_HOME": tempfile.mkdtemp(prefix="tl-pacs-dann-"), "TL_OFFLINE": "1"}
    args = ["experiment", "--fresh", "--source", f"folder:{pacs / src}", "--target", f"folder:{pacs / tgt}",
            "--backbone", "efficientnet_lite0", "--methods", a.methods, "--seeds", a.seeds, "--budget", a.budget,
            "--json", "--quiet"]
    out, _, err = _table.run_cli(args, env)
    if out is None:
        print(err)
        return 1
    out["command"] = ("-m tl_core " + " ".join(args)).replace(str(pacs), "$TL_DATA_DIR/PACS_subset50").replace(" --quiet", "")
    dest = ROOT / "bench" / "results" / f"pacs_{a.methods.replace(',', '_')}_{src}_{tgt}.json"
    dest.write_text(json.dumps(out, indent=1))
    for r in out["results"]:
        ci = r.get("gain_ci")
        print(f"{r['strategy']:12s} {100 * r['target_acc_mean']:.1f} ± {100 * r['target_acc_std']:.1f} % "
              f"(n={r['n_seeds']})  gain {100 * (r['gain'] or 0):+.1f}"
              + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else ""))
    print(out["verdict"])
    print(f"written to {dest.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
