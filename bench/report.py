"""docs/BENCHMARKS.md from the committed results in bench/results (no training here).

    python bench/report.py

Digits rows come from every bench/results/digits*.json, PACS rows from pacs*.json, the trainer
overhead from overhead.txt; the plot docs/benchmarks.png shows target accuracy against wall time
per run, one point per method (mean over seeds, bars = std).
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "bench"))

from digits import PUBLISHED, summarise as digits_table  # noqa: E402
from pacs import summarise as pacs_table  # noqa: E402

DIGIT_METHODS = ["source_only", "dann", "cdan", "mcc", "mmd", "coral", "entropy_min", "mcd", "mdd", "pseudo_label",
                 "importance_weighting", "mcc_noramp"]
PACS_METHODS = ["source_only_scratch", "source_only", "feature_extract", "finetune_5", "dann", "cdan", "mcc"]


# What the per-epoch diagnostics of the seed-0 runs show (`python -m tl_core runs show ID --json`, "diagnostics")
REASONS = {
    "mcc_noramp": "the first MCC runs, with the confusion loss at full weight from the first step; on U→M seed 2 "
                  "MNIST's 7s were locked into another class (85.5%), so MCC now ramps its weight up like DANN "
                  "(the `mcc` rows). Kept here because the change was made after seeing these numbers.",
    "mcd": "runs here in a one-step form (a gradient-reversal layer plays the classifiers' min-max) instead of the "
           "original's three alternating optimiser steps; the classifiers' disagreement on the target stays near "
           "0.02 all run, so the adversarial signal is weak and the gain over source only is small.",
    "pseudo_label": "below source only on M→U (above it on U→M, with a large spread): by the last epoch 83% of target images pass the 0.95 confidence threshold "
                    "while target accuracy is 80%, so confident mistakes are learned as labels (confirmation bias); "
                    "the strong view (±30°, 30% cut-out) may also be too strong for 28-pixel digits.",
    "importance_weighting": "below source only on both pairs: MNIST and USPS features are almost separable, so the density ratio "
                            "puts its weight on few source images (largest normalised weight 34 by the last "
                            "epoch), which shrinks the effective training set.",
}


def rows(pattern: str) -> list[dict]:
    return [r for f in sorted(RES.glob(pattern)) for r in json.loads(f.read_text())]


def cells(rs: list[dict]) -> dict[tuple[str, str, str], tuple[float, float, float, int]]:
    """(source, target, method) -> (mean acc %, std, mean wall s, n) over finished runs."""
    out: dict = {}
    for key in sorted({(r["source"], r["target"], r["method"]) for r in rs}):
        ok = [r for r in rs if (r["source"], r["target"], r["method"]) == key and r["status"] == "finished"]
        if ok:
            acc = [100 * r["target_acc"] for r in ok]
            out[key] = (statistics.mean(acc), statistics.stdev(acc) if len(acc) > 1 else 0.0,
                        statistics.mean(r["process_wall_s"] for r in ok), len(ok))
    return out


def plot(digit_cells: dict, pacs_cells: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("mnist", "usps", digit_cells, "MNIST → USPS (LeNet)"), ("usps", "mnist", digit_cells, "USPS → MNIST (LeNet)"),
              ("photo", "sketch", pacs_cells, "PACS photo → sketch"), ("photo", "art_painting", pacs_cells,
                                                                       "PACS photo → art painting")]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    for ax, (s, t, c, title) in zip(axes, panels):
        pts = {m: v for (cs, ct, m), v in c.items() if (cs, ct) == (s, t)}
        for i, (m, (acc, sd, wall, n)) in enumerate(sorted(pts.items())):
            ax.errorbar(wall, acc, yerr=sd, fmt="o", color=f"C{i % 10}", capsize=3)
            ax.annotate(m, (wall, acc), textcoords="offset points", xytext=(4, 3), fontsize=8)
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("wall time per run (s)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("target accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    d_rows, p_rows = rows("digits*.json"), rows("pacs*.json")
    dc, pc = cells(d_rows), cells(p_rows)
    plot(dc, pc, ROOT / "docs" / "benchmarks.png")
    short = []
    for (s, t), pub in PUBLISHED.items():
        for m, ref in pub.items():
            if (s, t, m) in dc and dc[(s, t, m)][0] < ref - 3:
                short.append(f"{m} {s}→{t}: {dc[(s, t, m)][0]:.1f} vs {ref}")
    overhead = (RES / "overhead.txt").read_text().strip() if (RES / "overhead.txt").exists() else "not measured yet"
    parts = [
        "# Benchmarks", "",
        "Every number here is reproduced by a script in `bench/` (the command is given with each table) and "
        "regenerated into this page by `python bench/report.py` from the JSON results committed in "
        "`bench/results/`. All runs: CPU only, 2 cores (x86_64), torch 2.14.1. Every reported accuracy is the "
        "target test accuracy of the epoch chosen without target labels (default: the last epoch), never the "
        "best epoch by target accuracy.", "",
        "![target accuracy against wall time per run](benchmarks.png)", "",
        "## Digits: LeNet, MNIST ↔ USPS, 3 seeds", "",
        "Command: `TL_DATA_DIR=../shared/data python bench/digits.py --methods METHODS --name NAME` (one result file "
        "per batch of methods; `python bench/digits.py --from-json digits*.json` merges them).", "",
        digits_table(d_rows, DIGIT_METHODS).split("\n", 2)[2], "",
        "### Below the published number by more than 3 points, or below source only", "",
        *(f"- {x}" for x in short), *([] if short else ["- none below a published number"]),
        *(f"- {m}: {why}" for m, why in REASONS.items()), "",
        "Wall time: runs marked 1 core were pinned one per core with another run on the other core. That way "
        "CDAN, the slowest method (its discriminator reads the 5,000-wide feature x prediction product), took "
        "262-305 s on U→M, one run 5 s over five minutes; the other methods stayed under 230 s.", "",
        "All methods share one recipe (Adam, cosine decay, light augmentation, 10 x 400 steps), tuned on DANN; "
        "TLlib tunes each method (SGD with its own rates, a bottleneck layer, more iterations).", "",
        "## PACS subset: EfficientNet-Lite0 (ImageNet weights)", "",
        "Command: `TL_DATA_DIR=../shared/data python bench/pacs.py`.", "",
        pacs_table(p_rows, PACS_METHODS).split("\n", 2)[2], "",
        "## Trainer overhead", "", "Command: `TL_DATA_DIR=../shared/data python bench/overhead.py`.", "",
        "```", overhead, "```", "",
    ]
    (ROOT / "docs" / "BENCHMARKS.md").write_text("\n".join(parts))
    print((ROOT / "docs" / "BENCHMARKS.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
