"""Time-to-accuracy curves: target accuracy against seconds, per method, on the offline starter pack.

The quickstart preset's schedule is chosen from these curves. For each pair and method, runs of
several lengths (total steps) are made, each in its own process as the CLI would make them;
each run contributes its per-epoch points (seconds since process start, target accuracy) and
its end point. Runs use the starter pack (TL_DATA_DIR points at an empty folder, TL_OFFLINE=1),
which is what a fresh machine has.

    python bench/curves.py [--pairs usps:mnist,mnist:usps] [--methods source_only,dann]
        [--steps 200,400,800,1600] [--epochs 4] [--seed 0]

Every run appends a row to bench/results/curves.jsonl (`_table`, with its provenance); a cell measured again
(same pair, method, steps, epochs and seed) is read from its latest row.
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

KEY = ("source", "target", "method", "total_steps", "epochs", "seed")


def run_one(source: str, target: str, method: str, total_steps: int, epochs: int, seed: int, env: dict) -> dict:
    args = ["train", "--fresh", "--source", source, "--target", target, "--backbone", "lenet", "--method", method,
            "--epochs", str(epochs), "--steps", str(max(1, total_steps // epochs)), "--seed", str(seed),
            "--embedding", "none", "--json", "--quiet"]
    out, wall, err = _table.run_cli(args, env)
    command = "TL_DATA_DIR=<empty> TL_OFFLINE=1 python -m tl_core " + " ".join(args).replace(" --quiet", "")
    row = {"source": source, "target": target, "method": method, "total_steps": total_steps, "epochs": epochs,
           "seed": seed, "process_wall_s": wall}
    if out is None:
        return {**_table.provenance("curves", command), **row, "status": "failed", "error": err[-500:]}
    row = {**_table.provenance("curves", command, out.get("provenance")), **row}
    # the run's own clock starts after process start-up and data loading: shift it to process time
    lag = wall - out["wall_s"]
    return {**row, "status": out["status"], "target_acc": out["target_acc"], "wall_s": out["wall_s"],
            "startup_s": lag,
            "points": [[round(lag + h["wall_s"], 2), h["target_acc"]] for h in out["history"]]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", default="usps:mnist,mnist:usps")
    ap.add_argument("--methods", default="source_only,dann")
    ap.add_argument("--steps", default="200,400,800,1600")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    empty = tempfile.mkdtemp(prefix="tl-nodata-")
    env = {**os.environ, "TL_DATA_DIR": empty, "TL_OFFLINE": "1", "TL_HOME": tempfile.mkdtemp(prefix="tl-home-")}
    for pair in a.pairs.split(","):
        s, t = pair.split(":")
        for steps in (int(x) for x in a.steps.split(",")):
            for m in a.methods.split(","):
                r = _table.append("curves", run_one(s, t, m, steps, a.epochs, a.seed, env))
                acc = f"{100 * r['target_acc']:.1f}%" if r["status"] == "finished" else r["status"]
                print(f"{s}->{t} {m:<12} {steps:>5} steps: {acc} in {r['process_wall_s']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
