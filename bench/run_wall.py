"""Where a short run's wall goes: the first-visit experiment (USPS -> MNIST, source only and DANN, seeds 0
and 1: four LeNet runs of 4 x 200 steps) launched fresh from the command line with the default settings
(one run at a time on all cores; `--max-runs 2`: two at once, one thread each; `--cold`: every run in a
fresh interpreter, no warm worker), and each run's worker wall broken into its parts (the worker's phases.json: process start and imports,
domain load and decode, set-up, training, evaluation, t-SNE, checkpoints, store writes).

Prints the table and the two ratios the issue asks for (a run's whole process wall over its training
time; the experiment's wall over the sum of its runs' training), and appends one row a sitting to
bench/results/run_wall.jsonl (`_table`; its batch says the layout: run_wall, run_wall_cold, run_wall_2x1), which
docs/BENCHMARKS.md renders through bench/report.py (each layout's latest sitting).

    TL_DATA_DIR=../shared/data python bench/run_wall.py [--max-runs N] [--cold]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import _table  # noqa: E402
# the parts in the order a run meets them; the rest of the process wall is "other"
PARTS = ("process start and imports", "data", "set-up", "training", "evaluation", "embedding", "checkpoint",
         "events")
WORDS = {"process start and imports": "process start, imports (torch, tl_core)",
         "data": "domain load and decode", "set-up": "model, method, optimiser set-up",
         "training": "training steps (progress writes included)", "evaluation": "evaluation after each epoch",
         "embedding": "feature map (t-SNE) after each epoch", "checkpoint": "checkpoints",
         "events": "store writes (epoch metrics, events)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-runs", type=int, default=0, help="TL_MAX_RUNS: runs at once (0: the default)")
    ap.add_argument("--cold", action="store_true", help="TL_WARM=0: every run starts a fresh interpreter")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="tl-runwall-"))
    env = dict(os.environ, TL_HOME=str(home))
    if args.max_runs:
        env["TL_MAX_RUNS"] = str(args.max_runs)
    if args.cold:
        env["TL_WARM"] = "0"
    # the domains decoded from their raw files once and the machine's speed probed once, as a server does
    # once in its life (timed apart)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from tl_core.data.domains import get_domain\nfrom tl_core.planning import speed\n"
                    "for n in ('usps', 'mnist'): get_domain(n).load()\nspeed.probe_s()"], cwd=ROOT, env=env,
                   check=True, timeout=600)
    decode_once = time.perf_counter() - t0
    cmd = [sys.executable, "-m", "tl_core", "experiment", "--preset", "quickstart", "--seeds", "0,1", "--fresh",
           "--json", "--quiet"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"the experiment failed:\n{out.stderr[-3000:]}")
    runs = []
    for rd in sorted((home / "runs").iterdir()):
        ph = json.loads((rd / "phases.json").read_text())
        rec = json.loads((rd / "record.json").read_text()) if (rd / "record.json").exists() else {}
        runs.append({"run": rd.name, "method": rec.get("method", "?"), **ph})
    process = [r["process so far"] for r in runs]
    rows = []
    for part in PARTS:
        vals = [r.get(part, 0.0) for r in runs]
        rows.append({"part": WORDS[part], "mean_s": round(statistics.mean(vals), 2),
                     "share": round(sum(vals) / sum(process), 3)})
    other = [p - sum(r.get(k, 0.0) for k in PARTS) for p, r in zip(process, runs)]
    rows.append({"part": "other (method hooks, the worker's own store writes)", "mean_s": round(statistics.mean(other), 2),
                 "share": round(sum(other) / sum(process), 3)})
    train = [r["training"] for r in runs]
    result = {
        "command": "TL_DATA_DIR=../shared/data python bench/run_wall.py " + " ".join(sys.argv[1:]),
        "settings": {k: env[k] for k in ("TL_MAX_RUNS", "TL_THREADS", "TL_WARM") if k in env},
        "machine": f"{os.cpu_count()} cores", "runs": len(runs),
        "parts": rows, "process_wall_mean_s": round(statistics.mean(process), 2),
        "training_mean_s": round(statistics.mean(train), 2),
        "process_over_training": round(sum(process) / sum(train), 2),
        "experiment_wall_s": round(wall, 1), "first_decode_s": round(decode_once, 1), "probe_before": True,
        "experiment_over_training": round(wall / sum(train), 2), "per_run": runs,
    }
    print(f"{'part':58s} {'s per run':>10s} {'share':>7s}")
    for r in rows:
        print(f"{r['part']:58s} {r['mean_s']:10.2f} {100 * r['share']:6.1f}%")
    print(f"process wall per run {result['process_wall_mean_s']:.1f} s, training {result['training_mean_s']:.1f} s: "
          f"{result['process_over_training']:.2f}x")
    print(f"(before the experiment, once per machine: the domains decoded from their raw files and the speed "
          f"probe, {decode_once:.1f} s)")
    print(f"experiment wall {wall:.1f} s over {sum(train):.1f} s of training: {result['experiment_over_training']:.2f}x")
    batch = "run_wall" + ("_cold" if args.cold else "") + (f"_{args.max_runs}x1" if args.max_runs > 1 else "")
    _table.append("run_wall", {**_table.provenance(batch, result["command"].strip()), **result})


if __name__ == "__main__":
    main()
