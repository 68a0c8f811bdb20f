"""Embedding budget: per-epoch t-SNE (openTSNE, warm-started) and PCA on 2,000 points, 2 cores.

Features are LeNet-sized (500-d): 10 class clusters per domain, the target offset from the
source, drifting a little each epoch as training aligns them. Prints seconds per epoch.

    python bench/embed.py [--points 2000] [--epochs 6]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tl_core.scores.embed import embed_epoch  # noqa: E402


def features(n: int, epoch: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    half = n // 2
    y = np.arange(n) % 10
    shift = np.zeros((n, centres.shape[1]), np.float32)
    shift[half:] = 3.0 / (1 + epoch)  # the target moves towards the source over the epochs
    return (centres[y] + shift + rng.normal(0, 1.0, (n, centres.shape[1]))).astype(np.float32)


def run(points: int = 2000, epochs: int = 6) -> dict:
    t = time.perf_counter()
    import openTSNE  # noqa: F401  (imported once per worker process, before its first epoch)

    print(f"openTSNE import (once per worker): {time.perf_counter() - t:.2f} s")
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (10, 500)).astype(np.float32)
    out = {}
    for kind in ("tsne", "pca"):
        state, times = None, []
        for e in range(epochs):
            x = features(points, e, rng, centres)
            t = time.perf_counter()
            _, state = embed_epoch(x, kind, state, seed=0)
            times.append(time.perf_counter() - t)
        out[kind] = times
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=6)
    a = ap.parse_args()
    res = run(a.points, a.epochs)
    for kind, times in res.items():
        print(f"{kind}: first epoch {times[0]:.2f} s, later epochs (warm start) mean {np.mean(times[1:]):.2f} s, "
              f"max {max(times):.2f} s for {a.points} points")
    worst = max(max(t) for t in res.values())
    print(json.dumps({"points": a.points, "seconds": res, "max_s": worst, "budget_s": 1.5, "within": worst <= 1.5}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
