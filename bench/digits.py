"""Digits benchmark: LeNet on MNIST->USPS and USPS->MNIST, several methods x 3 seeds.

Each run is the CLI command a user would type (default settings), in its own process. Every run appends a
row to bench/results/digits.jsonl (`_table`: its provenance with it; `--name` is the row's batch), and the
batch's table is printed as it grows; `bench/report.py` renders docs/BENCHMARKS.md from every row.

    TL_DATA_DIR=../shared/data python bench/digits.py [--methods source_only,dann] [--seeds 0,1,2] [--name BATCH]
    python bench/digits.py --render [BATCH ...]   # print the table of saved rows (every batch by default)
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import _table  # noqa: E402
from tl_core.experiments import REFERENCES as PUBLISHED  # noqa: E402  (TLlib's LeNet table: one copy, in tl_core)

PAIRS = [("mnist", "usps"), ("usps", "mnist")]
# rows that are a method with flags of their own: the baseline that source-free methods are measured against
VARIANTS = {"finetune_1shot": ("finetune", ["--target-labels", "1"]),  # one labelled target image per class
            "tent": ("tent", ["--bottleneck", "256"]),  # LeNet has no BatchNorm: the bottleneck brings it
            "shot": ("shot", [])}  # its recipe and schedule come with it through every door
SHORT = {"mnist": "M", "usps": "U"}


def run_one(source: str, target: str, method: str, seed: int, extra: list[str], threads: int = 0,
            batch: str = "digits") -> dict:
    name, own = VARIANTS.get(method, (method, []))
    args = ["train", "--fresh", "--source", source, "--target", target, "--backbone", "lenet", "--method", name,
            "--seed", str(seed), "--json", "--quiet", "--budget", "0", *own, *extra]
    env = {**os.environ, **({"TL_THREADS": str(threads)} if threads else {})}  # another reduction order
    out, wall, err = _table.run_cli(args, env)
    command = "-m tl_core " + " ".join(args).replace(" --quiet", "")
    if out is None:
        return {**_table.provenance(batch, command), "source": source, "target": target, "method": method,
                "seed": seed, "status": "failed", "error": err[-500:], "process_wall_s": wall}
    # each epoch's (seconds since the run started, target accuracy): the time-to-accuracy columns
    curve = [[round(h["wall_s"], 1), round(h["target_acc"], 4)] for h in out.get("history", [])]
    return {**_table.provenance(batch, command, out.get("provenance")), "source": source, "target": target,
            "method": method, "seed": seed, "status": out["status"], "target_acc": out["target_acc"],
            "source_acc": out["source_acc"], "wall_s": out["wall_s"], "curve": curve, "process_wall_s": wall,
            "target_acc_ci": out.get("target_acc_ci"), "target_n": out.get("target_n")}


def time_to(rs: list[dict], level: float) -> str:
    """Mean seconds (within the run) to the first epoch whose target accuracy reaches `level`, over the
    seeds that reached it (k/n when some did not); '—' for rows recorded before curves were kept."""
    curves = [r["curve"] for r in rs if r.get("curve")]
    if not curves:
        return "—"
    hits = [next((w for w, acc in c if acc >= level), None) for c in curves]
    got = [h for h in hits if h is not None]
    if not got:
        return "never"
    return f"{statistics.mean(got):.0f}" + ("" if len(got) == len(curves) else f" ({len(got)}/{len(curves)})")


def variant(rs: list[dict]) -> str:
    """Which data the rows read ('full', 'starter'); rows made before runs recorded it: 'unrecorded'."""
    kinds = sorted({"/".join(sorted(set(r["data"].values()))) for r in rs if r.get("data")})
    return ", ".join(kinds) + (" (+ unrecorded)" if any(not r.get("data") for r in rs) and kinds else "") \
        if kinds else "unrecorded"


def seeds_threads(rs: list[dict]) -> str:
    seeds = sorted({r["seed"] for r in rs})
    threads = sorted({r.get("threads") or 0 for r in rs})
    return f"{len(seeds)} × {'/'.join(str(t) if t else '?' for t in threads)}"


def interval(accs: list[float]) -> str:
    """The mean's 95 % interval from the spread over every row (seeds and thread counts), Student's t."""
    from tl_core.scores.stats import t975

    if len(accs) < 2:
        return "—"
    m, sd = statistics.mean(accs), statistics.stdev(accs)
    half = t975(len(accs) - 1) * sd / len(accs) ** 0.5
    return f"{m - half:.1f} – {m + half:.1f}"


def summarise(rows: list[dict], methods: list[str]) -> str:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = ["# Digits benchmark: LeNet, default settings", "",
             f"Made by `python bench/digits.py`: {_table.made_when(rows)}; rendered on {platform.processor() or platform.machine()}, "
             f"{cores} CPU cores, no GPU, torch {torch.__version__}. Runs were made either alone on both cores or "
             "pinned one per core with two running side by side (`taskset -c N`; column 'cores per run'). Each cell: target test accuracy, mean ± std over "
             "the seeds (n = seeds finished); the published number is TLlib's LeNet table. Wall = seconds per run "
             "(process start to end, evaluation and t-SNE included). To 90 % / 95 %: seconds from the run's "
             "start to the end of the first epoch whose target accuracy reached it, mean over the seeds that did "
             "(k/n: only k of n did; 'never': none did; '—': rows made before per-epoch curves were kept).", "",
             "Our default recipe (Adam with cosine decay, light affine augmentation of ±11°, ±10% scale and ±12% "
             "shift) differs from TLlib's (SGD, no augmentation); the augmentation is why our source-only "
             "baselines are well above the published ones, and the gains over source only are smaller.", ""]
    for s, t in PAIRS:
        if not any((r["source"], r["target"]) == (s, t) for r in rows):
            continue  # a batch made on one pair only: no empty table for the other
        lines += [f"## {SHORT[s]}→{SHORT[t]} ({s} → {t})", "",
                  "| method | data | seeds × threads | ours (%) | 95 % interval of the mean | min | n | published (%) "
                  "| ours − published | wall per run, mean (max) (s) | cores per run | to 90 % (s) | to 95 % (s) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for m in methods:
            rs = [r for r in rows if (r["source"], r["target"], r["method"]) == (s, t, m) and r["status"] == "finished"]
            pub = PUBLISHED[(s, t)].get(m)
            if not rs:  # a variant measured on the other pair only
                continue
            accs = [100 * r["target_acc"] for r in rs]
            walls = [r["process_wall_s"] for r in rs]
            mean = statistics.mean(accs)
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            diff = f"{mean - pub:+.1f}" if pub else ""
            cores = sorted({r.get("cores", 2) for r in rs})  # rows from before the field was kept: 2 cores
            lines.append(f"| {m} | {variant(rs)} | {seeds_threads(rs)} | {mean:.1f} ± {sd:.1f} | {interval(accs)} | "
                         f"{min(accs):.1f} | {len(rs)} | {pub if pub else '—'} | {diff} | "
                         f"{statistics.mean(walls):.0f} ({max(walls):.0f}) | {'/'.join(map(str, cores))} | "
                         f"{time_to(rs, 0.90)} | {time_to(rs, 0.95)} |")
        lines.append("")
    failed = [r for r in rows if r["status"] != "finished"]
    if failed:
        lines += ["## Runs that did not finish", ""] + [f"- {r['method']} {r['source']}→{r['target']} seed "
                                                       f"{r['seed']}: {r.get('error', r['status'])}" for r in failed]
    lines += ["", "Reproduce one cell: `python -m tl_core train --source mnist --target usps --backbone lenet "
              "--method dann --seed 0 --budget 0` (`--budget 0`: the plain 10 x 400-step recipe, not fitted to a time budget).", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--methods", default="source_only,dann,mmd,coral")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--pairs", default="mnist-usps,usps-mnist")
    ap.add_argument("--name", default="digits", help="the batch these rows belong to (a column of digits.jsonl)")
    ap.add_argument("--threads", default="0", help="torch threads per run, e.g. 2,1: each seed once per count "
                                                    "(0: all cores); another count is another reduction order")
    ap.add_argument("--render", nargs="*", help="only print the table of saved rows (these batches; default every one)")
    ap.add_argument("extra", nargs="*", help="extra CLI flags passed to every run (after --)")
    a = ap.parse_args()
    methods = a.methods.split(",")
    if a.render is not None:
        print(summarise(_table.read("digits", a.render or None), methods))
        return 0
    seeds = [int(s) for s in a.seeds.split(",")]
    pairs = [tuple(p.split("-")) for p in a.pairs.split(",")]
    rows: list[dict] = []
    threads = [int(x) for x in a.threads.split(",")]
    for s, t in pairs:
        for m in methods:
            for seed, th in [(sd, th) for th in threads for sd in seeds]:
                r = _table.append("digits", run_one(s, t, m, seed, a.extra, th, a.name))
                rows.append(r)
                acc = f"{r['target_acc']:.4f}" if "target_acc" in r else r["status"]
                print(f"{s}->{t} {m} seed {seed}: target {acc} in {r['process_wall_s']:.0f} s", flush=True)
    print(summarise(rows, methods))
    return 0


if __name__ == "__main__":
    sys.exit(main())
