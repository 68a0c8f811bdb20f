"""Estimates against walls on this machine (issue 30, item 5): the host probe, then the default command-line
runs (DANN and source only, MNIST -> USPS, every default) trained fresh on a store that has learned
nothing, each estimate as a user would see it before the run (probe-scaled) against the run's wall.
Prints the error of each and the probe's reading, and appends a row a method to bench/results/estimates.jsonl
(`_table`, with its provenance; `--tag` is the row's batch).
`speed.REF_PROBE_S` was set from the probe and these runs on the development host (a fit there; the one-core
run is the check).

    TL_DATA_DIR=../shared/data python bench/estimates.py [--methods dann,source_only] [--tag NAME]
    TL_DATA_DIR=../shared/data taskset -c 0 python bench/estimates.py --tag one_core   # a slower machine
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import _table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="dann,source_only")
    ap.add_argument("--tag", default="", help="the batch of these rows (say what differs: one_core)")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="tl-estimates-"))
    os.environ["TL_HOME"] = str(home)
    sys.path.insert(0, str(ROOT))
    from tl_core import RunConfig
    from tl_core.planning import planner, speed

    probe = speed.probe_s()
    rows = []
    for m in args.methods.split(","):
        cfg = RunConfig().replace(data={"source": "mnist", "target": "usps"}, method={"name": m, "params": {}})
        est, raw = planner.estimate_seconds(cfg), planner.raw_estimate(cfg)
        rec, wall, err = _table.run_cli(["train", "--source", "mnist", "--target", "usps", "--method", m, "--fresh",
                                         "--json", "--quiet"], dict(os.environ), timeout=3600)
        if rec is None:
            sys.exit(err)
        rows.append({"method": m, "estimate_s": round(est, 1), "raw_estimate_s": round(raw, 1),
                     "run_wall_s": round(rec["wall_s"], 1), "command_wall_s": round(wall, 1),
                     "error": round(est / rec["wall_s"] - 1, 3), "raw_over_wall": round(rec["wall_s"] / raw, 3),
                     "run": rec.get("provenance")})
        print(f"{m}: estimate {est:.0f} s (uncorrected {raw:.0f} s), the run's wall {rec['wall_s']:.0f} s "
              f"(command {wall:.0f} s): {100 * (est / rec['wall_s'] - 1):+.0f} %", flush=True)
    cores = sorted(os.sched_getaffinity(0))
    pin = f"taskset -c {','.join(map(str, cores))} " if len(cores) < (os.cpu_count() or 1) else ""
    command = f"TL_DATA_DIR=../shared/data {pin}python bench/estimates.py " + " ".join(sys.argv[1:])
    for r in rows:
        run = r.pop("run")
        _table.append("estimates", {**_table.provenance(args.tag or "default", command.strip(), run), **r,
                                    "probe_s": probe, "ref_probe_s": speed.REF_PROBE_S})
    print(f"probe {probe:.4f} s a step (reference {speed.REF_PROBE_S} s)")


if __name__ == "__main__":
    main()
