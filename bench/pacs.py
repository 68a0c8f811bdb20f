"""PACS benchmark: the pretrained EfficientNet-Lite0 on the 50-per-class PACS subset.

photo -> sketch and photo -> art_painting, for source only (pretrained, and from scratch),
feature extraction + logistic regression, fine-tuning with 5 target labels per class, DANN,
CDAN and MCC. Each run is the CLI command a user would type, in its own process; a short
recipe (small images, frozen lower stages, few steps) keeps a 2-core CPU run to minutes.
Every run appends a row to bench/results/pacs.jsonl (`_table`: its provenance with it; `--name` is the row's
batch); `bench/report.py` renders docs/BENCHMARKS.md from every row.

    TL_DATA_DIR=../shared/data python bench/pacs.py [--methods ...] [--seeds 0] [--name BATCH]
    python bench/pacs.py --render [BATCH ...]   # print the tables of saved rows (every batch by default)
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import _table  # noqa: E402
DATA = Path(os.environ.get("TL_DATA_DIR", ROOT.parent / "shared" / "data")) / "PACS_subset50"
PAIRS = [("photo", "sketch"), ("photo", "art_painting")]
# the recipe shared by every run (flags of `python -m tl_core train`)
RECIPE = ["--backbone", "efficientnet_lite0", "--input-size", "128", "--freeze", "4", "--epochs", "4",
          "--steps", "15", "--batch-size", "24", "--lr", "3e-4", "--embedding", "none", "--budget", "0"]
METHODS = {
    "source_only_scratch": ["--method", "source_only", "--no-pretrained", "--freeze", "0"],
    "source_only": ["--method", "source_only"],
    "feature_extract": ["--method", "feature_extract", "--param", "head=logreg"],
    "finetune_5": ["--method", "finetune", "--target-labels", "5"],
    "dann": ["--method", "dann"],
    "cdan": ["--method", "cdan"],
    "mcc": ["--method", "mcc"],
}


def run_one(source: str, target: str, method: str, seed: int, batch: str = "pacs") -> dict:
    args = ["train", "--fresh", "--source", f"folder:{DATA / source}", "--target", f"folder:{DATA / target}", *RECIPE,
            *METHODS[method], "--seed", str(seed), "--json", "--quiet"]
    out, wall, err = _table.run_cli(args)
    command = "-m tl_core " + " ".join(args).replace(" --quiet", "")
    row = {"source": source, "target": target, "method": method, "seed": seed, "process_wall_s": wall}
    if out is None:
        return {**_table.provenance(batch, command), **row, "status": "failed", "error": err[-500:]}
    return {**_table.provenance(batch, command, out.get("provenance")), **row, "status": out["status"],
            "target_acc": out["target_acc"], "source_acc": out["source_acc"], "wall_s": out["wall_s"],
            "trainable_params": out["trainable_params"]}


def summarise(rows: list[dict], methods: list[str]) -> str:
    import torch

    lines = ["# PACS benchmark: EfficientNet-Lite0 (ImageNet weights), 50 images per class", "",
             f"Made by `python bench/pacs.py`: {_table.made_when(rows)}; rendered on {platform.machine()}, CPU only, "
             f"torch {torch.__version__}. Recipe for every run: `{' '.join(RECIPE)}` (128 px, the first 4 of 7 "
             "stages frozen, 4 x 15 steps of 24 images per domain). Each cell: target test accuracy, mean ± std "
             "over the seeds (n); wall = seconds per run, process start to end.", ""]
    for s, t in PAIRS:
        lines += [f"## {s} → {t}", "", "| method | target acc (%) | n | trainable params | wall per run (s) | cores |",
                  "|---|---|---|---|---|---|"]
        for m in methods:
            rs = [r for r in rows if (r["source"], r["target"], r["method"]) == (s, t, m) and r["status"] == "finished"]
            if not rs:
                lines.append(f"| {m} | — | 0 | | | |")
                continue
            accs = [100 * r["target_acc"] for r in rs]
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            lines.append(f"| {m} | {statistics.mean(accs):.1f} ± {sd:.1f} | {len(rs)} | {rs[0]['trainable_params']:,} "
                         f"| {statistics.mean(r['process_wall_s'] for r in rs):.0f} | {rs[0]['cores']} |")
        lines.append("")
    failed = [r for r in rows if r["status"] != "finished"]
    if failed:
        lines += ["## Runs that did not finish", ""] + [f"- {r['method']} {r['source']}→{r['target']} seed {r['seed']}: "
                                                       f"{r.get('error', r['status'])}" for r in failed]
    lines += ["", "Reproduce a cell: the `command` field of the row in bench/results/pacs.jsonl.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--pairs", default=",".join(f"{s}-{t}" for s, t in PAIRS))
    ap.add_argument("--name", default="pacs", help="the batch these rows belong to (a column of pacs.jsonl)")
    ap.add_argument("--render", nargs="*", help="only print the tables of saved rows (these batches; default every one)")
    a = ap.parse_args()
    methods = a.methods.split(",")
    if a.render is not None:
        print(summarise(_table.read("pacs", a.render or None), methods))
        return 0
    for pair in a.pairs.split(","):
        s, t = pair.split("-")
        for m in methods:
            for seed in (int(x) for x in a.seeds.split(",")):
                r = _table.append("pacs", run_one(s, t, m, seed, a.name))
                acc = f"{r['target_acc']:.4f}" if "target_acc" in r else r["status"] + " " + r.get("error", "")[-200:]
                print(f"{s}->{t} {m} seed {seed}: target {acc} in {r['process_wall_s']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
