"""The advisor's probes against measured runs (issue 31, items 1 and 3): do a quarter of the training and the
label-free validators rank what the full runs measured?

For every cell of bench/results/advisor.json (pair × candidate backbone and freeze depth × method, each a
full run of seed 0 planned to that bench's budget and measured on every target image), the probe of that
cell trains (`tl_core.advice.probes`: a quarter of the planned steps at most) and is read by the validators; the
composite (fixed in `tl_core.scores.validators.COMPOSITE` before this script was first run: nothing here is fitted)
ranks each pair's cells. Reports, with 95 % bootstrap intervals over pairs (or cells):

- Kendall tau per pair between the probes' composite and the measured accuracies (median and mean), and the
  same for the probes' ATC estimate alone;
- AUROC of "beats source only by more than its interval" (the measured paired gain's 95 % interval above 0)
  scored by the probe's ATC gain over its source-only probe;
- mean absolute error of the probe's ATC against the full run's measured accuracy (what the advisor shows as
  the candidate's accuracy read without labels) and against the probe's own measured accuracy (ATC's error).

Writes bench/results/probes.json (every probe, the summary, provenance) and the record the advisor ships with
its answers, tl_core/advice/probe_record.json.

    TL_DATA_DIR=../shared/data python bench/probes.py [--pairs photo->sketch,usps->mnist] [--record-only]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
CELLS = ROOT / "bench" / "results" / "advisor.json"
OUT = ROOT / "bench" / "results" / "probes.json"


def _domains(pair: str, data: Path) -> tuple[str, str]:
    s, t = pair.split("->")
    if s in ("mnist", "usps"):
        return s, t
    return f"folder:{data / 'PACS_subset50' / s}", f"folder:{data / 'PACS_subset50' / t}"


def _boot(values: list[float], stat=np.median, n: int = 2000) -> list[float]:
    if len(values) < 2:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(0)
    v = np.asarray(values, np.float64)
    b = [stat(v[rng.integers(0, len(v), len(v))]) for _ in range(n)]
    return [round(float(x), 3) for x in np.percentile(b, [2.5, 97.5])]


def _auroc_ci(labels: list[bool], scores: list[float], n: int = 2000) -> list[float]:
    from advisor import auroc

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        i = rng.integers(0, len(labels), len(labels))
        a = auroc([labels[j] for j in i], [scores[j] for j in i])
        if a is not None:
            out.append(a)
    return [round(float(x), 3) for x in np.percentile(out, [2.5, 97.5])] if out else [float("nan")] * 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="", help="comma-separated pair names of advisor.json (default: all)")
    ap.add_argument("--record-only", action="store_true", help="write tl_core/advice/probe_record.json from probes.json")
    a = ap.parse_args()
    if a.record_only:
        write_record(json.loads(OUT.read_text()))
        return 0
    os.environ.setdefault("TL_HOME", tempfile.mkdtemp(prefix="tl-probes-bench-"))
    os.environ["TL_OFFLINE"] = "1"
    from advisor import auroc, kendall

    from tl_core.advice import probes

    data = Path(os.environ.get("TL_DATA_DIR", ROOT.parent / "shared" / "data"))
    src = json.loads(CELLS.read_text())
    cells, budget = src["cells"], float(src.get("budget_s") or 40.0)
    names = sorted({c["pair"] for c in cells})
    if a.pairs:
        names = [n for n in names if n in a.pairs.split(",")]
    t_all = time.perf_counter()
    rows, per_pair = [], {}
    for name in names:
        s, t = _domains(name, data)
        mine = [c for c in cells if c["pair"] == name]
        t0 = time.perf_counter()
        got = []
        for c in mine:
            cfg, planned, _ = probes.probe_config(s, t, c["backbone"], c["freeze"], c["method"], 0, 1e9, budget)
            got.append(probes.run_probe(cfg, planned))
        ranked = probes.rank(got)
        wall = round(time.perf_counter() - t0, 1)
        for c in mine:
            p = next(r for r in ranked if (r["backbone"], r["freeze"], r["method"]) == (c["backbone"], c["freeze"],
                                                                                       c["method"]))
            rows.append({"pair": name, "backbone": c["backbone"], "freeze": c["freeze"], "method": c["method"],
                         "measured_acc": c["target_acc"], "measured_gain": c["gain"], "measured_gain_ci": c["gain_ci"],
                         "probe_steps": p["steps"], "planned_steps": p["planned_steps"], "probe_wall_s": p["wall_s"],
                         "composite": p["composite"], "validators": p["validators"], "atc": p["atc"],
                         "atc_ci": p["atc_ci"], "atc_gain": p["atc_gain"], "probe_measured_acc": p["target_acc_measured"]})
        pr = [r for r in rows if r["pair"] == name]
        per_pair[name] = {"tau_composite": kendall([r["composite"] for r in pr], [r["measured_acc"] for r in pr]),
                          "tau_atc": kendall([r["atc"] for r in pr], [r["measured_acc"] for r in pr]),
                          "cells": len(pr), "probes_wall_s": wall}
        print(f"{name:28s} {len(pr)} cells, probes {wall:5.0f} s: tau composite {per_pair[name]['tau_composite']:+.2f}, "
              f"ATC {per_pair[name]['tau_atc']:+.2f}", flush=True)
    adapted = [r for r in rows if r["method"] != "source_only" and r["atc_gain"] is not None]
    labels = [r["measured_gain_ci"][0] > 0 for r in adapted]
    taus_c = [v["tau_composite"] for v in per_pair.values()]
    taus_a = [v["tau_atc"] for v in per_pair.values()]
    err_full = [abs(r["atc"] - r["measured_acc"]) for r in rows if r["atc"] is not None]
    err_own = [abs(r["atc"] - r["probe_measured_acc"]) for r in rows
               if r["atc"] is not None and r["probe_measured_acc"] is not None]
    summary = {
        "pairs": len(per_pair), "cells": len(rows), "positives": int(sum(labels)),
        "kendall_tau_median": round(float(np.median(taus_c)), 3), "kendall_tau_ci": _boot(taus_c),
        "kendall_tau_mean": round(float(np.mean(taus_c)), 3), "kendall_tau_mean_ci": _boot(taus_c, np.mean),
        "kendall_tau_atc_median": round(float(np.median(taus_a)), 3), "kendall_tau_atc_ci": _boot(taus_a),
        "auroc_beats_source_only": auroc(labels, [r["atc_gain"] for r in adapted]),
        "auroc_ci": _auroc_ci(labels, [r["atc_gain"] for r in adapted]),
        "acc_mae": round(float(np.mean(err_full)), 4), "acc_mae_ci": _boot(err_full, np.mean),
        "atc_mae": round(float(np.mean(err_own)), 4), "atc_mae_ci": _boot(err_own, np.mean),
    }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    out = {"command": "TL_DATA_DIR=../shared/data python bench/probes.py " + " ".join(sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d"), "commit": commit, "machine": f"{os.cpu_count()} cores",
           "cells_from": "bench/results/advisor.json (full runs, seed 0, budget %g s)" % budget,
           "wall_s": round(time.perf_counter() - t_all, 1), "summary": summary, "per_pair": per_pair, "rows": rows}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    write_record(out)
    print(json.dumps(summary, indent=1))
    return 0


def write_record(out: dict) -> None:
    """The record the advisor ships with every probed answer (`track_record` in `advise --json`)."""
    from tl_core.advice.advisor import PROBE_RECORD_FILE

    rec = {**out["summary"], "command": out["command"], "date": out["date"], "commit": out["commit"],
           "cells_from": out["cells_from"], "details": "docs/BENCHMARKS.md, bench/results/probes.json"}
    PROBE_RECORD_FILE.write_text(json.dumps(rec, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
