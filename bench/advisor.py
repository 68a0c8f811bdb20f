"""The advisor's predictor, fitted on measured runs and validated leave-one-pair-out (issue 21).

Runs the real grid: every (pair, candidate backbone and freeze depth, method) cell is one
`python -m tl_core train ... --json` (planned to `--budget` seconds, seed 0, as a user would run it),
on the PACS folders (every sketch/photo/... image evaluated, labels unused in training) and the digit
pairs. Scores each (pair, candidate) with `tl_core.advice.advisor` (frozen features, no target label read),
fits the predictor (ridge on the logit of the target accuracy: the scores, a one-hot of the method,
and the method's slope on the domain gap), and reports it held-out: for each pair, the predictor
fitted on the other pairs ranks that pair's cells (Kendall tau against the measured accuracies), and
over all held-out cells the AUROC of "beats source only by more than its 95 % interval" (the paired
bootstrap over target images). Writes bench/results/advisor.json (every cell) and the shipped
predictor tl_core/advice/advisor_model.json (fitted on all cells, with its held-out track record).

    TL_DATA_DIR=../shared/data python bench/advisor.py [--budget 40] [--resume] [--only-fit]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "advisor.json"
METHODS = ("source_only", "dann", "coral")
PACS = ("photo", "art_painting", "cartoon", "sketch")
PACS_PAIRS = tuple((s, t) for s in PACS for t in PACS if s != t)  # all 12 ordered pairs
# pairs on which the partly frozen candidate (all stages but the last two) is measured too: its runs
# train two stages at 128 px and take ~4x as long as the frozen ones
DEPTH_PAIRS = ("photo->sketch", "cartoon->photo")
DIGIT_PAIRS = (("mnist", "usps"), ("usps", "mnist"))
RIDGE = 1.0


def pairs(data: Path) -> list[tuple[str, str, str]]:
    """(pair name, source, target)."""
    pacs = data / "PACS_subset50"
    out = [(f"{s}->{t}", f"folder:{pacs / s}", f"folder:{pacs / t}") for s, t in PACS_PAIRS]
    return out + [(f"{s}->{t}", s, t) for s, t in DIGIT_PAIRS]


def run_cell(source: str, target: str, backbone: str, freeze: int, method: str, budget: float, home: str) -> dict:
    cmd = [sys.executable, "-m", "tl_core", "train", "--fresh", "--source", source, "--target", target, "--backbone", backbone,
           "--method", method, "--seed", "0", "--embedding", "none", "--budget", str(budget), "--json", "--quiet"]
    if backbone != "lenet":
        cmd += ["--freeze", str(freeze)]
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "TL_HOME": home, "TL_OFFLINE": "1"},
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    rows = [json.loads(line) for line in (Path(home) / "runs" / out["run_id"] / "metrics.jsonl").open()]
    last = [h for h in rows if h.get("epoch") == out["best_epoch"]][-1]  # which target images were right
    return {"target_acc": out["target_acc"], "target_n": out["target_n"], "target_eval": out["target_eval"],
            "correct": last["target_correct"], "wall_s": round(time.time() - t0, 1),
            "command": " ".join(cmd[1:]).replace(str(ROOT.parent / "shared" / "data"), "$TL_DATA_DIR")}


def gain_ci(cell: dict, base: dict) -> list[float]:
    from tl_core.scores.stats import paired_gain, unpack_bits

    a = unpack_bits(cell["correct"], cell["target_n"])
    b = unpack_bits(base["correct"], base["target_n"])
    return list(paired_gain([a], [b])[1:])


def logit(p: float) -> float:
    p = min(max(p, 0.005), 0.995)
    return math.log(p / (1 - p))


def fit(cells: list[dict], features: list[str], methods: list[str]) -> dict:
    """Ridge on the logit of the accuracy; the scores standardised on the fitting cells."""
    from tl_core.advice.advisor import design_row

    x = np.array([[c["scores"][k] for k in features] for c in cells], np.float64)
    mean, sd = x.mean(0), x.std(0)
    sd[sd < 1e-9] = 1.0
    model = {"features": list(features), "methods": list(methods), "mean": mean.tolist(), "sd": sd.tolist()}
    model["coef"] = [0.0] * (1 + len(features) + 2 * len(methods))
    a = np.stack([design_row(c["scores"], c["method"], model) for c in cells])
    y = np.array([logit(c["target_acc"]) for c in cells])
    reg = RIDGE * np.eye(a.shape[1])
    reg[0, 0] = 0.0  # the intercept is not shrunk
    model["coef"] = np.linalg.solve(a.T @ a + reg, a.T @ y).tolist()
    return model


def kendall(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    t = kendalltau(a, b).statistic
    return 0.0 if t is None or math.isnan(t) else float(t)


def auroc(labels: list[bool], scores: list[float]) -> float | None:
    pos = [s for s, l in zip(scores, labels) if l]
    neg = [s for s, l in zip(scores, labels) if not l]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=40.0, help="seconds per run, planned as `train --budget`")
    ap.add_argument("--only-fit", action="store_true", help="refit from bench/results/advisor.json")
    ap.add_argument("--resume", action="store_true", help="keep the cells bench/results/advisor.json already has")
    a = ap.parse_args()
    from tl_core.advice import advisor
    from tl_core.advice.advisor import FEATURES, predict
    from tl_core.models.backbones import backbone_info

    def key(name, cand, m):
        return (name, cand.backbone, cand.freeze, m)

    data = Path(os.environ.get("TL_DATA_DIR", ROOT.parent / "shared" / "data"))
    if a.only_fit:
        cells = json.loads(RESULTS.read_text())["cells"]
    else:
        home = tempfile.mkdtemp(prefix="tl-advisor-bench-")
        os.environ["TL_HOME"] = home
        cells = []
        done = {}  # with --resume: cells measured by an earlier, interrupted call
        if a.resume and RESULTS.exists():
            done = {(c["pair"], c["backbone"], c["freeze"], c["method"]): c
                    for c in json.loads(RESULTS.read_text())["cells"]}
        for name, src, tgt in pairs(data):
            for cand in advisor.candidates(src, tgt):
                info = backbone_info(cand.backbone)
                if info.has_pretrained and (cand.freeze < len(info.stages) and name not in DEPTH_PAIRS
                                            or not src.startswith("folder:")):
                    continue  # pretrained digit cells cache ~14,000 images' features: minutes each
                if all(key(name, cand, m) in done for m in METHODS):
                    cells += [done[key(name, cand, m)] for m in METHODS]
                    continue
                t0 = time.time()
                sc = advisor.candidate_scores(cand, src, tgt)
                score_s = round(time.time() - t0, 1)
                measured = {m: run_cell(src, tgt, cand.backbone, cand.freeze, m, a.budget, home) for m in METHODS}
                for m, r in measured.items():
                    cell = {"pair": name, "backbone": cand.backbone, "freeze": cand.freeze, "method": m,
                            "scores": sc, "score_s": score_s, **r}
                    cell["gain"] = r["target_acc"] - measured["source_only"]["target_acc"]
                    cell["gain_ci"] = gain_ci(r, measured["source_only"]) if m != "source_only" else [0.0, 0.0]
                    cells.append(cell)
                    RESULTS.write_text(json.dumps({"budget_s": a.budget, "cells": cells}, indent=1))  # resumable
                    print(f"{name:28s} {cand.label:40s} {m:12s} {r['target_acc']:.3f} "
                          f"gain {cell['gain']:+.3f} [{cell['gain_ci'][0]:+.3f}, {cell['gain_ci'][1]:+.3f}] "
                          f"{r['wall_s']:.0f} s", flush=True)
        RESULTS.write_text(json.dumps({"budget_s": a.budget, "cells": cells}, indent=1))

    methods = list(METHODS)
    names = sorted({c["pair"] for c in cells})
    taus, held = {}, []
    for held_out in names:
        train = [c for c in cells if c["pair"] != held_out]
        test = [c for c in cells if c["pair"] == held_out]
        m = fit(train, list(FEATURES), methods)
        pred = [predict(c["scores"], c["method"], m) for c in test]
        taus[held_out] = kendall(pred, [c["target_acc"] for c in test])
        for c, p in zip(test, pred):
            base = next(b for b in test if b["backbone"] == c["backbone"] and b["freeze"] == c["freeze"]
                        and b["method"] == "source_only")
            held.append({**c, "predicted_acc": p, "predicted_gain": p - predict(base["scores"], "source_only", m)})
    resid = [h["predicted_acc"] - h["target_acc"] for h in held]
    gres = [h["predicted_gain"] - h["gain"] for h in held if h["method"] != "source_only"]
    test_cells = [h for h in held if h["method"] != "source_only"]
    roc = auroc([h["gain_ci"][0] > 0 for h in test_cells], [h["predicted_gain"] for h in test_cells])
    track = {"cells": len(cells), "pairs": len(names), "kendall_tau_per_pair": taus,
             "kendall_tau_median": float(np.median(list(taus.values()))),
             "auroc_beats_source_only": roc, "positives": sum(h["gain_ci"][0] > 0 for h in test_cells),
             "held_out_abs_error_mean": float(np.mean(np.abs(resid))),
             "budget_s": json.loads(RESULTS.read_text()).get("budget_s"),
             "held_out": [{k: (round(h[k], 4) if isinstance(h[k], float) else h[k])
                           for k in ("pair", "backbone", "freeze", "method", "predicted_acc", "target_acc")}
                          for h in held]}
    final = fit(cells, list(FEATURES), methods)
    final["resid_sd"] = float(np.std(resid))
    final["gain_resid_sd"] = float(np.std(gres)) if gres else 0.0
    final["track_record"] = track
    advisor.MODEL_FILE.write_text(json.dumps(final, indent=1))
    data_json = json.loads(RESULTS.read_text())
    data_json.update({"held_out": [{k: h[k] for k in ("pair", "backbone", "freeze", "method", "target_acc",
                                                      "predicted_acc", "gain", "gain_ci", "predicted_gain")}
                                   for h in held], "track_record": {k: v for k, v in track.items() if k != "held_out"}})
    RESULTS.write_text(json.dumps(data_json, indent=1))
    print(json.dumps({k: v for k, v in track.items() if k != "held_out"}, indent=1))
    data_json["timing"] = timing(data)
    RESULTS.write_text(json.dumps(data_json, indent=1))
    print(json.dumps(data_json["timing"]))
    return 0


def timing(data: Path) -> dict:
    """`advise` on PACS photo -> sketch in a fresh TL_HOME: the first call (features computed) and the
    second (features cached), each in its own process as a user's command would run."""
    pacs = data / "PACS_subset50"
    home = tempfile.mkdtemp(prefix="tl-advisor-time-")
    out = {"command": "python -m tl_core advise --source folder:$TL_DATA_DIR/PACS_subset50/photo --target "
                      "folder:$TL_DATA_DIR/PACS_subset50/sketch --json", "threads": os.cpu_count()}
    for call in ("first_call_s", "second_call_s"):
        t0 = time.time()
        p = subprocess.run([sys.executable, "-m", "tl_core", "advise", "--source", f"folder:{pacs / 'photo'}",
                            "--target", f"folder:{pacs / 'sketch'}", "--json"], cwd=ROOT,
                           env={**os.environ, "TL_HOME": home, "TL_OFFLINE": "1"}, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(p.stderr[-2000:])
        out[call] = round(time.time() - t0, 1)  # the whole command, process start included
        out[call.replace("_s", "_advise_wall_s")] = json.loads(p.stdout.strip().splitlines()[-1])["wall_s"]
    return out


if __name__ == "__main__":
    sys.exit(main())
