"""Both cores busy: whole runs a minute on this machine as one run on all threads at a time against
two runs side by side on one thread each (issue 30, item 4). Each case trains two identical runs
(evaluation and the feature map included, as a run of the app does) both ways and prints the runs per
minute, the wall of one run, and which way gives more. `machine.cpu_places` is chosen from these.

    TL_DATA_DIR=../shared/data python bench/threads.py [--quick]   # appends to bench/results/threads.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import _table  # noqa: E402

PACS = "PACS_subset50"

DRIVER = """
import json, sys, time
from tl_core import RunConfig
from tl_core.training.trainer import Trainer
cfg = RunConfig.from_dict(json.loads(sys.argv[1]))
t = Trainer(cfg)
t.setup()
t0 = time.perf_counter()
r = t.fit()
print(json.dumps({"fit_s": time.perf_counter() - t0, "phases": r.phases, "target_acc": r.target_acc}))
"""


def cases(quick: bool) -> dict[str, dict]:
    from tl_core import RunConfig

    data_dir = Path(os.environ.get("TL_DATA_DIR", ROOT.parent / "shared" / "data"))
    lenet = {"epochs": 2 if quick else 4, "steps_per_epoch": 200, "embed_points": 300}
    out = {f"LeNet {m}, U->M, {lenet['epochs']} x 200 steps": RunConfig().replace(
        data={"source": "usps", "target": "mnist"}, method={"name": m, "params": {}}, train=lenet)
        for m in ("source_only", "dann")}
    if (data_dir / PACS / "photo").is_dir():
        root = data_dir / PACS
        for freeze in (9, 5):
            out[f"EfficientNet-Lite0 frozen {freeze} of 9, cached features, PACS photo->sketch"] = RunConfig().replace(
                data={"source": f"folder:{root / 'photo'}", "target": f"folder:{root / 'sketch'}"},
                method={"name": "source_only", "params": {}},
                model={"backbone": "efficientnet_lite0", "input_size": 128, "freeze": freeze},
                train={"epochs": 4, "steps_per_epoch": 30, "batch_size": 32, "lr": 3e-4, "augment": False,
                       "embed_points": 200})
    return {k: v.to_dict() for k, v in out.items()}


def run_pair(cfg: dict, threads: int, together: bool) -> tuple[float, list[dict]]:
    """Two runs of `cfg` on `threads` threads each, side by side or one after the other: (wall, results)."""
    env = dict(os.environ, TL_THREADS=str(threads), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", DRIVER, json.dumps(cfg)]
    t0 = time.perf_counter()
    if together:
        ps = [subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=3600)[0] for p in ps]
    else:
        outs = [subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=3600,
                               check=True).stdout for _ in range(2)]
    wall = time.perf_counter() - t0
    return wall, [json.loads(o.strip().splitlines()[-1]) for o in outs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter LeNet runs")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    cores = os.cpu_count() or 1
    command = "TL_DATA_DIR=../shared/data python bench/threads.py " + " ".join(sys.argv[1:])
    for name, cfg in cases(args.quick).items():
        one_wall, one = run_pair(cfg, cores, together=False)
        two_wall, two = run_pair(cfg, 1, together=True)
        row = {"case": name, f"1x{cores}_runs_per_min": round(2 * 60 / one_wall, 2),
               "2x1_runs_per_min": round(2 * 60 / two_wall, 2),
               "2x1_over_1x2": round(one_wall / two_wall, 2),
               "one_run_s": {f"1x{cores}": round(one[0]["fit_s"], 1), "2x1": round(two[0]["fit_s"], 1)},
               "parts_s": {f"1x{cores}": {k: round(v, 1) for k, v in one[0]["phases"].items()},
                           "2x1": {k: round(v, 1) for k, v in two[0]["phases"].items()}}}
        _table.append("threads", {**_table.provenance("threads", command.strip()), **row})  # both thread counts: the columns
        print(f"{name}: 1 run x {cores} threads {row[f'1x{cores}_runs_per_min']} runs/min, 2 runs x 1 thread "
              f"{row['2x1_runs_per_min']} runs/min ({row['2x1_over_1x2']}x); one run {row['one_run_s']}", flush=True)


if __name__ == "__main__":
    main()
