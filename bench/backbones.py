"""Throughput of the pretrained backbones whose weights are on this machine: images per second for a
forward pass (eval, no gradients: what frozen features and evaluation cost) and for a training step
(forward, backward, optimiser) with every stage trainable and with the last two, at the native size
and at 128 px. The planner's TRAIN_IPS / EVAL_IPS and the backbones' descriptions quote these figures.

    python bench/backbones.py [--names efficientnet_lite0,efficientnet_lite1] [--reps 4]

Appends a row a backbone and size to bench/results/backbones.jsonl (`_table`). Run it alone: another job
on the cores slows every figure.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import _table  # noqa: E402
from tl_core.models.backbones import backbone_info, build_backbone, list_backbones  # noqa: E402


def _rate(fn, images: int, reps: int) -> float:
    fn()  # warm-up: allocations, kernels chosen
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return images * reps / (time.perf_counter() - t)


def measure(name: str, size: int, reps: int, batch: int = 32) -> dict:
    info = backbone_info(name)
    n = len(info.stages)
    x = torch.randn(batch, 3, size, size)
    out = {"backbone": name, "size": size, "batch_size": batch}
    bb = build_backbone(name, pretrained=True, input_size=size, in_channels=3).eval()
    with torch.no_grad():
        out["forward_ips"] = round(_rate(lambda: bb.features(x), batch, reps), 1)
    for label, freeze in (("train_all_ips", 0), ("train_last2_ips", n - 2)):
        bb = build_backbone(name, pretrained=True, input_size=size, in_channels=3, freeze=freeze).train()
        head = torch.nn.Linear(bb.feat_dim, 7)
        opt = torch.optim.Adam([p for p in bb.parameters() if p.requires_grad] + list(head.parameters()), lr=1e-4)
        y = torch.randint(0, 7, (batch,))

        def step():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(head(bb.features(x)), y).backward()
            opt.step()

        out[label] = round(_rate(step, batch, reps), 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--names", default="", help="comma-separated backbones (default: every pretrained one with weights)")
    ap.add_argument("--reps", type=int, default=4)
    a = ap.parse_args()
    names = [n for n in (a.names.split(",") if a.names else list_backbones())
             if backbone_info(n).has_pretrained and backbone_info(n).weights_status()[0]]
    command = "python bench/backbones.py " + " ".join(sys.argv[1:])
    measure(names[0], 128, 1)  # the process's first model pays one-off costs (threads, allocator): not timed
    for name in names:
        for size in sorted({backbone_info(name).default_size, 128}, reverse=True):
            r = measure(name, size, a.reps)
            _table.append("backbones", {**_table.provenance("backbones", command.strip()),
                                        "threads": torch.get_num_threads(), **r})
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
