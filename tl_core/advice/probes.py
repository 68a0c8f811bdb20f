"""Probes: a short piece of real training for each candidate (backbone, freeze depth, method) the advisor
considers, read by the label-free validators (`validators`) and by ATC, so that the advice rests on what
the method did on this pair rather than on scores of the source alone.

A probe is the candidate's planned run (the plan the Train page would offer for the default budget) cut to
at most a quarter of its steps and, further, to its share of the advisor's time (`TL_ADVISOR_PROBE_S`);
no feature map, no checkpoint. It trains in the advisor's own process, which is a queued job like a run
(`advisor.job_main`), never the web server. A probe is kept by its run key (same inputs, same numbers), so
asking again about a pair reads its probes back.
"""
from __future__ import annotations

import io
import json
import math
import time
from typing import Any, Callable

import numpy as np

from tl_core.config import RunConfig
from tl_core.data.loaders import RunData, prepare
from tl_core.base.errors import TLError
from tl_core.base.limits import setting
from tl_core.base.paths import atomic_write_bytes, cache_dir
from tl_core.planning.planner import COMMAND_S, DEFAULT_BUDGET_S, cost_parts, plan_to_budget
from tl_core.planning.runkey import run_key
from tl_core.training.trainer import Trainer
from tl_core.scores.validators import COMPOSITE, Reading, composite_ranks, read_all, softmax

PROBE_SHARE = 0.25  # at most this share of the planned run's steps
MAX_EPOCHS = 2  # evaluations a probe pays for (the validators read the last)
MAX_TARGET = 2000  # target images the validators read (evenly strided over the test split)


def probe_config(source: str, target: str, backbone: str, freeze: int, method: str, seed: int,
                 step_budget_s: float, planned_budget_s: float = DEFAULT_BUDGET_S) -> tuple[RunConfig, int, float]:
    """(the probe's config, the planned run's steps, the probe's estimated seconds on this machine): the run
    `planned_budget_s` plans for the candidate (the Train page's default), cut to a quarter of its steps in at
    most MAX_EPOCHS epochs, and to the steps that `step_budget_s` seconds of training buy if fewer (set-up,
    frozen features and evaluation come on top: they do not shrink with the steps)."""
    base = RunConfig().replace(data={"source": source, "target": target},
                               model={"backbone": backbone, "freeze": freeze},
                               method={"name": method, "params": {}}, train={"seed": seed, "embedding": "none"})
    full, _ = plan_to_budget(base, {"model.backbone", "model.freeze", "train.embedding", "train.seed"},
                             planned_budget_s)
    planned = full.train.epochs * full.train.steps_per_epoch
    epochs = min(full.train.epochs, MAX_EPOCHS)
    steps = max(epochs, math.floor(PROBE_SHARE * planned))
    cfg = full.replace(train={"epochs": epochs, "steps_per_epoch": steps // epochs})
    # the domains are decoded by the time a probe trains, and it trains in the asking process (no start)
    fixed, step_s = cost_parts(cfg, decoded={source, target})
    fixed = max(fixed - COMMAND_S, 0.0)
    steps = max(epochs, min(steps, math.floor(step_budget_s / max(step_s, 1e-9))))
    cfg = cfg.replace(train={"steps_per_epoch": max(1, steps // epochs)})
    return cfg, planned, fixed + cfg.train.epochs * cfg.train.steps_per_epoch * step_s


def _paths(key: str):
    d = cache_dir("probes")
    return d / f"{key}.json", d / f"{key}.npz"


def _stride(n: int) -> np.ndarray:
    return np.linspace(0, n - 1, min(n, MAX_TARGET)).astype(int) if n else np.zeros(0, int)


def run_probe(cfg: RunConfig, planned_steps: int, data: RunData | None = None,
              prefix_memo: dict | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Train one probe (or read it back by its run key): (its figures, the arrays the validators read:
    source hold-out logits and labels, target features and logits on the strided target sample). `data` and
    `prefix_memo`: the pair's splits and frozen activations, shared by the probes of one question."""
    key = run_key(cfg)
    if key:
        meta_p, arr_p = _paths(key)
        if meta_p.exists() and arr_p.exists():
            try:
                with np.load(arr_p) as z:
                    arrays = {k: z[k] for k in z.files}
                return {**json.loads(meta_p.read_text()), "cached": True}, arrays
            except (OSError, ValueError):
                pass  # a damaged entry: trained again below
    t0 = time.perf_counter()
    tr = Trainer(cfg, data=data, prefix_memo=prefix_memo)
    res = tr.fit()
    if res.status != "finished":
        raise TLError(f"the probe of {cfg.method.name} on {cfg.model.backbone} did not finish: {res.reason}")
    lv, yv, ft, lt = tr.evaluator.readout()
    idx = _stride(len(lt))
    y_t = tr.data.y_target_test.numpy()
    last = res.history[-1]
    meta = {"backbone": cfg.model.backbone, "freeze": cfg.model.freeze, "method": cfg.method.name,
            "steps": cfg.train.epochs * cfg.train.steps_per_epoch, "planned_steps": planned_steps,
            "wall_s": round(time.perf_counter() - t0, 2), "target_n": int(len(lt)),
            "atc": last.get("target_acc_estimate"), "atc_ci": last.get("target_acc_estimate_ci"),
            # measured where the target has labels; never read by the ranking (the check beside it)
            "target_acc_measured": float(np.mean(lt.argmax(1) == y_t)) if len(y_t) == len(lt) and len(lt) else None}
    arrays = {"val_logits": lv.astype(np.float32), "val_labels": yv.astype(np.int64),
              "target_features": ft[idx].astype(np.float32), "target_logits": lt[idx].astype(np.float32)}
    if key:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(arr_p, buf.getvalue())
        atomic_write_bytes(meta_p, json.dumps(meta).encode())
    return {**meta, "cached": False}, arrays


def rank(probes: list[tuple[dict[str, Any], dict[str, np.ndarray]]]) -> list[dict[str, Any]]:
    """Every probe's validators (with its agreement with the ensemble of all probes whose target sample is
    the same), its composite rank (`validators.COMPOSITE`), and its gain over the source-only probe of the
    same backbone and depth as ATC reads it, best composite first."""
    n_t = {len(a["target_logits"]) for _, a in probes}
    ensemble = (np.mean([softmax(a["target_logits"]) for _, a in probes], axis=0)
                if len(probes) > 1 and len(n_t) == 1 else None)
    rows = []
    for meta, a in probes:
        r = Reading(a["val_logits"], a["val_labels"], a["target_logits"], a["target_features"], ensemble)
        scores = read_all(r)
        rows.append({**meta, "validators": {k: round(float(v), 4) for k, v in scores.items()}})
    for row, c in zip(rows, composite_ranks([r["validators"] for r in rows], COMPOSITE)):
        row["composite"] = c
    base = {(r["backbone"], r["freeze"]): r for r in rows if r["method"] == "source_only"}
    for r in rows:
        b = base.get((r["backbone"], r["freeze"]))
        if b is None or r["atc"] is None or b["atc"] is None or r["method"] == "source_only":
            r["atc_gain"], r["atc_gain_ci"] = None, None
            continue
        gain = r["atc"] - b["atc"]
        # the two estimates' sampling intervals combined as if independent (they share the source hold-out,
        # so this is wide rather than narrow)
        half = math.hypot(*[(x["atc_ci"][1] - x["atc_ci"][0]) / 2 for x in (r, b)])
        r["atc_gain"], r["atc_gain_ci"] = round(gain, 4), [round(gain - half, 4), round(gain + half, 4)]
    rows.sort(key=lambda r: -r["composite"])
    return rows


def _cached(cfg: RunConfig) -> bool:
    key = run_key(cfg)
    return bool(key) and all(p.exists() for p in _paths(key))


def probe_all(source: str, target: str, groups: list[list[tuple[str, int, str]]], want: int, seed: int = 0,
              on_progress: Callable[[str, float], None] | None = None) -> tuple[list[dict[str, Any]], float, list[str]]:
    """Probe the first `want` groups (an adapted (backbone, freeze, method) with its source-only baseline) whose
    first probe fits what is left of `TL_ADVISOR_PROBE_S` on this machine's estimate, best first; the probes of one
    backbone and depth share its frozen features. The plan is made from the estimates alone, never from the clock
    or from what is kept, so the same question on the same machine plans the same probes, and a second asking
    reads them all back (by run key). (The ranked probes, seconds spent, what was passed over and why.)"""
    t0 = time.perf_counter()
    total = float(setting("TL_ADVISOR_PROBE_S"))
    left = total
    done: dict[tuple[str, int, str], tuple[dict[str, Any], dict[str, np.ndarray]]] = {}
    skipped: dict[tuple[str, int, str], str] = {}
    memo: dict = {}
    shared: dict[tuple, RunData] = {}
    n = 0
    for group in groups:
        if n >= want:
            break
        plans: list | None = []
        for k in group:
            if k in done:
                continue
            if k in skipped:
                plans = None
                break
            backbone, freeze, method = k
            try:
                # each probe's training gets an even share of what is left
                cfg, planned, est = probe_config(source, target, backbone, freeze, method, seed,
                                                 left / max(2 * (want - n), 1))
            except TLError as e:
                skipped[k] = f"{method} on {backbone} (depth {freeze}): {e}"
                plans = None
                break
            # judged as on a machine that has kept nothing, so that a kept probe never changes the plan
            if not plans and est > left:
                skipped[k] = (f"{method} on {backbone} (depth {freeze}): its probe would take about {est:.0f} s, more "
                              f"than the {left:.0f} s left of the probes' {total:.0f} s (TL_ADVISOR_PROBE_S)")
                plans = None
                break
            plans.append((k, cfg, planned, est))
        if plans is None:
            continue
        left = max(left - sum(p[3] for p in plans), 0.0)
        n += 1
        for k, cfg, planned, _ in plans:
            if on_progress is not None:
                on_progress(f"probing {k[2]} on {k[0]} ({len(done) + 1} of at most {2 * want})",
                            min(len(done) / max(2 * want, 1), 1.0))
            dkey = (repr(cfg.data), cfg.train.seed)
            if dkey not in shared and not _cached(cfg):
                shared[dkey] = prepare(cfg.data, cfg.train.seed)
            try:
                done[k] = run_probe(cfg, planned, shared.get(dkey), memo)
            except TLError as e:  # a probe that diverged: the others are ranked without it
                skipped[k] = f"{k[2]} on {k[0]} (depth {k[1]}): {e}"
    return rank(list(done.values())), round(time.perf_counter() - t0, 2), list(skipped.values())
