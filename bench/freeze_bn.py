"""Why the "How much to freeze?" preset's trainable depths collapse onto a few target classes.

The preset trains EfficientNet-Lite0 on 280 PACS photographs with 0, 5, 7 or 9 of its 9 stages frozen
(source only, 4 x 30 steps of 32 images at 128 px) and tests on the sketches. Its trainable depths reach
high source accuracy while their sketch predictions pile onto 2-3 classes. One suspect: the BatchNorm
layers of the trainable stages re-estimate their statistics from 32-photograph batches, and sketches
normalised with photographs' statistics land far from where the head expects them. This runs each of
the preset's runs as it is, and again with every BatchNorm layer kept on its ImageNet statistics
(eval mode; its scale and shift still train), over 3 seeds, in this process (the same configs the
preset resolves), and reports target accuracy, source accuracy and how many classes the target
predictions use.

    TL_DATA_DIR=../shared/data python bench/freeze_bn.py [--seeds 0,1,2] [--depths 0,5,7,9]

Appends a row a run to bench/results/freeze_bn.jsonl (`_table`, with its provenance); a run measured again (same
depth, seed and BatchNorm variant) is read from its latest row.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import _table  # noqa: E402

KEY = ("freeze", "seed", "variant")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--depths", default="0,5,7,9")
    a = ap.parse_args()
    os.environ.setdefault("TL_HOME", tempfile.mkdtemp(prefix="tl-freeze-bn-"))
    import torch

    from tl_core.models.backbones import Backbone
    from tl_core.experiments import get_preset
    from tl_core.training.trainer import train

    spec = get_preset("freeze").spec(tuple(int(s) for s in a.seeds.split(",")))
    if not spec.source.startswith("folder:"):
        raise SystemExit("the PACS folders are not under TL_DATA_DIR: this question is about them")
    depths = {int(d) for d in a.depths.split(",")}
    plain_train = Backbone.train

    def bn_on_imagenet_statistics(self, mode=True):
        plain_train(self, mode)
        for m in self.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    command = "TL_DATA_DIR=../shared/data python bench/freeze_bn.py " + " ".join(sys.argv[1:])
    pair = {"source": spec.source.split("/")[-1], "target": spec.target.split("/")[-1]}
    for _, seed, cfg in spec.configs():
        if cfg.model.freeze not in depths:
            continue
        for variant in ("preset", "batchnorm_imagenet_stats"):
            Backbone.train = bn_on_imagenet_statistics if variant != "preset" else plain_train
            t0 = time.time()
            res = train(cfg)
            Backbone.train = plain_train
            last = res.history[-1]
            cm = last["target_confusion"]  # rows: true class, columns: predicted
            predicted = sum(1 for j in range(len(cm)) if sum(row[j] for row in cm) > 0)
            row = _table.append("freeze_bn", {**_table.provenance("freeze_bn", command.strip()),
                                              "preset": "freeze", **pair, "freeze": cfg.model.freeze, "seed": seed,
                                              "variant": variant, "status": res.status, "target_acc": res.target_acc,
                                              "source_acc": res.source_acc, "classes_predicted": predicted,
                                              "wall_s": round(time.time() - t0, 1)})
            print(json.dumps({k: row[k] for k in ("freeze", "seed", "variant", "target_acc")}), flush=True)
    # every depth measured so far, each run's latest row (a depth can be measured on its own)
    rows = _table.latest(_table.read("freeze_bn"), KEY)
    for d in sorted({r["freeze"] for r in rows}):
        for variant in ("preset", "batchnorm_imagenet_stats"):
            rs = [r for r in rows if r["freeze"] == d and r["variant"] == variant]
            if rs:
                t = [100 * r["target_acc"] for r in rs]
                s = [100 * r["source_acc"] for r in rs]
                print(f"freeze {d} {variant:26s} target {statistics.mean(t):5.1f} (min {min(t):.1f}) source "
                      f"{statistics.mean(s):5.1f} classes {[r['classes_predicted'] for r in rs]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
