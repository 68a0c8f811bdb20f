"""Experiment throughput on a Ray cluster of 1 and then 2 simulated nodes (ray.cluster_utils on this machine).

Each node has 1 CPU and each run declares 1 CPU (and trains on 1 thread), so the cluster runs one run per
node at a time. The same experiment (N small runs: UCI digits -> synthetic digits, DANN) is launched
through the job manager on each cluster size; throughput = runs finished per minute of wall time.

    python bench/ray_scaling.py [--runs 6] [--epochs 2] [--steps 150]
Appends a row a sitting to bench/results/ray_scaling.jsonl (`_table`).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import _table  # noqa: E402
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results"


def one(nodes: int, n_runs: int, epochs: int, steps: int) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from tl_core import RunConfig, runs
    from tl_core.runs import cluster

    os.environ["TL_HOME"] = tempfile.mkdtemp(prefix="tl-ray-bench-")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(nodes):
        c.add_node(num_cpus=1)
    c.wait_for_nodes()
    os.environ["TL_RAY_ADDRESS"] = c.address
    try:
        from tl_core.data.domains import get_domain

        get_domain("uci_digits").load()
        get_domain("syndigits").load()
        t0 = time.perf_counter()
        ids = [runs.submit(RunConfig().replace(
            data={"source": "uci_digits", "target": "syndigits", "max_per_domain": 600},
            method={"name": "dann", "params": {}},
            train={"epochs": epochs, "steps_per_epoch": steps, "batch_size": 32, "embedding": "pca", "seed": s}))
            for s in range(n_runs)]
        while True:
            runs.schedule()
            rs = [runs.get_run(i) for i in ids]
            if all(r["status"] in ("finished", "failed", "cancelled", "interrupted") for r in rs):
                break
            time.sleep(0.5)
        wall = time.perf_counter() - t0
        return {"nodes": nodes, "runs": n_runs, "finished": sum(r["status"] == "finished" for r in rs),
                "wall_s": round(wall, 1), "runs_per_min": round(60 * n_runs / wall, 2),
                "nodes_used": sorted({r["node"] for r in rs})}
    finally:
        cluster.shutdown()
        os.environ.pop("TL_RAY_ADDRESS", None)
        c.shutdown()
        ray.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=150)
    a = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    rows = [one(n, a.runs, a.epochs, a.steps) for n in (1, 2)]
    for r in rows:
        print(f"{r['nodes']} node(s): {r['finished']}/{r['runs']} runs in {r['wall_s']} s = {r['runs_per_min']} runs/min "
              f"(nodes used: {len(r['nodes_used'])})")
    speedup = rows[1]["runs_per_min"] / rows[0]["runs_per_min"]
    print(f"throughput 2 nodes / 1 node: {speedup:.2f}x")
    _table.append("ray_scaling", {**_table.provenance("ray_scaling", "python bench/ray_scaling.py " + " ".join(sys.argv[1:])),
                                  "rows": rows, "speedup": round(speedup, 2), "cpu_cores": len(os.sched_getaffinity(0))})
    return 0


if __name__ == "__main__":
    sys.exit(main())
