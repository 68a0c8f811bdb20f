"""Trainer overhead: our Trainer's training steps vs a bare torch loop doing the same work.

Same model (LeNet), same batches (the trainer's own samplers, augmentation and inputs), same
optimizer and schedule; the bare loop only does forward, loss, backward and step. Evaluation
is excluded from both (the trainer's `train_s`). Prints the medians and the overhead, and
writes bench/results/overhead.txt.

    TL_DATA_DIR=../shared/data python bench/overhead.py [--steps 300] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tl_core import RunConfig  # noqa: E402
from tl_core.training.trainer import Trainer  # noqa: E402


def config(method: str, steps: int) -> RunConfig:
    return RunConfig().replace(data={"source": "mnist", "target": "usps"}, method={"name": method, "params": {}},
                               train={"epochs": 1, "steps_per_epoch": steps, "embedding": "none"})


def trainer_time(method: str, steps: int) -> float:
    t = Trainer(config(method, steps))
    t.setup()
    return t.fit().train_s


def bare_time(method: str, steps: int) -> float:
    """The same batches through the same model with nothing but the optimisation step."""
    t = Trainer(config(method, steps))
    t.setup()
    model, opt, d, bs = t.model, t.state.optimizer, t.data, t.cfg.train.batch_size
    two = t.method.uses_target_data
    model.train()
    start = time.perf_counter()
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = t._lr(s / steps)
        si = t.state.samplers["source"].next(bs)
        parts = [t._batch("source/train", d.source, si, True)[0]]
        if two:
            parts.append(t._batch("target/train", d.target, t.state.samplers["target"].next(bs), True)[0])
        logits = model(torch.cat(parts))
        loss = F.cross_entropy(logits[:bs], d.source.y_train[si])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    lines = [f"# trainer overhead: {a.steps} steps of LeNet, MNIST->USPS, batch 64 per domain, "
             f"{len(os.sched_getaffinity(0))} CPU core(s), torch {torch.__version__}, medians of {a.repeats}"]
    worst = -1.0
    for method in ("source_only",):
        ours, bare = [], []
        for _ in range(a.repeats):  # interleaved, so that drifts in machine speed hit both alike
            bare.append(bare_time(method, a.steps))
            ours.append(trainer_time(method, a.steps))
        o, b = statistics.median(ours), statistics.median(bare)
        worst = max(worst, o / b - 1)
        lines.append(f"{method}: trainer {o:.2f} s, bare loop {b:.2f} s, overhead {100 * (o / b - 1):+.1f} % "
                     f"(runs: trainer {', '.join(f'{x:.2f}' for x in ours)}; bare {', '.join(f'{x:.2f}' for x in bare)})")
    lines.append(f"largest overhead: {100 * worst:+.1f} % (limit 5 %)")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    (ROOT / "bench" / "results" / "overhead.txt").write_text(text)
    return 0 if worst <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
