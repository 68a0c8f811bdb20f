"""The summary people read: per strategy the mean accuracy over seeds with its interval, the gain over
source only as a paired interval (seeds and target images resampled together), published reference
numbers, flags (negative transfer, collapse, a run that never learned) and a verdict in plain words,
all from the same intervals."""
from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np

from tl_core.scores.stats import Z95, accuracy_ci, mean_std, normal_gain, paired_gain, unpack_bits
from tl_core.experiments.spec import ExperimentSpec

# TLlib's published LeNet digits numbers (Transfer-Learning-Library, DANN/DAN/CDAN/MCD/MDD/MCC tables),
# target accuracy in %. The reference people hold ours against.
REFERENCES: dict[tuple[str, str], dict[str, float]] = {
    ("mnist", "usps"): {"source_only": 82.1, "dann": 91.7, "mmd": 86.0, "cdan": 96.0, "mcd": 94.1, "mdd": 94.8,
                        "mcc": 95.1},
    ("usps", "mnist"): {"source_only": 74.6, "dann": 95.2, "mmd": 89.5, "cdan": 97.7, "mcd": 97.6, "mdd": 97.8,
                        "mcc": 94.6},
}
REFERENCE_SOURCE = "TLlib, LeNet"


NOT_ALIGNING = ("source_only", "target_only", "finetune", "feature_extract", "l2sp")  # no loss pulls the domains


def _collapse(history: list[dict[str, Any]]) -> str:
    """'' or why the predictions look collapsed: the last epoch's predicted classes on the target
    concentrate on few of them (effective number of classes below half the classes)."""
    if not history or "target_confusion" not in history[-1]:
        return ""
    cm = history[-1]["target_confusion"]
    k = len(cm)
    cols = [sum(row[j] for row in cm) for j in range(k)]
    n = sum(cols)
    if n == 0 or k < 3:
        return ""
    ent = -sum(c / n * math.log(c / n) for c in cols if c)
    eff = math.exp(ent)
    if eff >= k / 2:
        return ""
    top = sorted(range(k), key=lambda j: -cols[j])[:3]
    share = sum(cols[j] for j in top) / n
    names = history[-1].get("classes") or [str(j) for j in range(k)]
    return (f"predictions collapsed onto few classes: {100 * share:.0f}% of target images are predicted as "
            f"{', '.join(str(names[j]) for j in top)} (about {eff:.1f} of {k} classes in use)")


def _falling(history: list[dict[str, Any]]) -> str:
    """'' or how target accuracy fell during training (alignment that matched the wrong classes)."""
    if len(history) < 2:
        return ""
    peak = max(history, key=lambda h: h["target_acc"])
    last = history[-1]
    if peak["target_acc"] - last["target_acc"] < 0.05:
        return ""
    return (f"target accuracy fell from {100 * peak['target_acc']:.1f}% (epoch {peak['epoch']}) to "
            f"{100 * last['target_acc']:.1f}% at the end while the adaptation loss kept pulling the domains together")


def mean_ci(accs: list[float], n_eval: list[int | None]) -> list[float] | None:
    """A 95 % interval of a mean accuracy over seeds: one seed, Wilson on its evaluation set; several,
    the seed spread and the evaluation sets' binomial error together (normal approximation)."""
    if not accs:
        return None
    if len(accs) == 1:
        return accuracy_ci(accs[0], n_eval[0])
    m = statistics.mean(accs)
    n = [x for x in n_eval if x]
    var = statistics.variance(accs) / len(accs) + (m * (1 - m) / n[0] / len(accs) if n else 0.0)
    half = Z95 * math.sqrt(var)
    return [round(max(0.0, m - half), 4), round(min(1.0, m + half), 4)]


def _n_classes(history: list[dict[str, Any]]) -> int:
    return len(history[-1].get("classes") or []) if history else 0


POOR_SOURCE = 0.15  # a seed this far below the baseline's source accuracy, at its best epoch, trained badly


def best_source_acc(r: dict[str, Any], history: list[dict[str, Any]]) -> float | None:
    """The run's source accuracy at its best epoch (a test-time method may leave its source on purpose)."""
    seen = [h["source_acc"] for h in history if h.get("source_acc") is not None]
    return max(seen) if seen else r.get("source_acc")


def never_learned(r: dict[str, Any], history: list[dict[str, Any]]) -> bool:
    """A finished run whose source accuracy stayed near chance at every epoch: it failed to train (a
    learning rate or an alignment too strong from the start), which is a failed run, not a lesson about
    transfer. Its best epoch counts, not its last: a test-time method (TENT) adapts a model that learned
    its source to the target, and its source accuracy may then fall."""
    k = _n_classes(history)
    acc = best_source_acc(r, history)
    return r.get("status") == "finished" and acc is not None and k >= 2 and acc < min(0.5, 2.0 / k)


def summary(e: dict[str, Any], histories: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Per strategy: mean ± std over finished seeds, gain over source only, reference, flags; and the verdict."""
    spec: ExperimentSpec = e["spec"]
    histories = histories or {}
    ref = REFERENCES.get((spec.source, spec.target), {})
    backbone = (spec.base.get("model") or {}).get("backbone", "lenet")
    results = []
    for s in spec.strategies:
        rs = [r for r in e["runs"] if r.get("strategy") == s.label]
        done = [r for r in rs if r["status"] == "finished" and r["target_acc"] is not None]
        accs = [r["target_acc"] for r in done]
        flags = []
        for r in done:
            h = histories.get(r["id"], [])
            aligning = s.role == "" and s.method not in NOT_ALIGNING
            for why in (_collapse(h), _falling(h) if aligning else ""):
                if why:
                    flags.append(f"seed {r['seed']}: {why}")
        results.append({
            "strategy": s.label, "method": s.method, "role": s.role,
            **dict(zip(("target_acc_mean", "target_acc_std"), mean_std(accs))),
            "target_acc_ci": mean_ci(accs, [r.get("target_n") for r in done]),
            "source_acc_mean": statistics.mean(r["source_acc"] for r in done) if done else None,
            # the same runs' target accuracy read without target labels (ATC), beside the measured one as its check
            "target_acc_estimate_mean": statistics.mean(ests) if (ests := [
                r["target_acc_estimate"] for r in done if r.get("target_acc_estimate") is not None]) else None,
            "n_seeds": len(done), "runs_total": len(rs),
            "wall_s_mean": statistics.mean(r["wall_s"] for r in done) if done else None,
            "reference": ref.get(s.method) / 100 if backbone == "lenet" and s.method in ref and not s.params
            and not s.data else None,
            "flags": flags,
            "runs": [{"run_id": r["id"], "seed": r["seed"], "status": r["status"], "target_acc": r["target_acc"],
                      "source_acc": r.get("source_acc"),
                      "best_source_acc": best_source_acc(r, histories.get(r["id"], [])),
                      "target_acc_ci": accuracy_ci(r["target_acc"], r.get("target_n")),
                      "classes": _n_classes(histories.get(r["id"], [])),
                      "never_learned": never_learned(r, histories.get(r["id"], [])),
                      "reason": r.get("reason") or ""} for r in rs],
        })
    base = next((r for r in results if r["role"] == "baseline"), None)
    base_method = next((s.method for s in spec.strategies if s.role == "baseline"), "source_only")
    for r in results:
        r["gain_ci"] = None
        if r["role"] == "baseline":
            r["gain"] = 0.0 if r["target_acc_mean"] is not None else None
        elif base and base["target_acc_mean"] is not None and r["target_acc_mean"] is not None:
            r["gain"], r["gain_ci"] = gain_interval(r, base, e["runs"], histories)
        else:
            r["gain"] = None
        failed = [x for x in r["runs"] if x.get("never_learned")]
        if base and r["role"] != "baseline" and base["source_acc_mean"] is not None:
            _flag_poor_source(r, base)
        for x in failed:
            r["flags"].insert(0, f"seed {x['seed']}: a failed run, not a lesson: it never learned its source "
                                 f"(source accuracy {100 * x['best_source_acc']:.0f}% at best, chance is "
                                 f"{100 / max(2, x['classes']):.0f}%)")
        below = r["role"] == "" and r["gain"] is not None and r["gain"] < 0
        sure = below and r["gain_ci"] is not None and r["gain_ci"][1] < 0
        r["negative_transfer"] = bool(sure and not failed and r["method"] != base_method)
        what = "negative transfer" if r["method"] != base_method else "worse than the baseline"
        if sure and not failed:
            luck = ("more than seed and test-set luck" if min(r["n_seeds"], base["n_seeds"]) > 1
                    else "more than test-set luck; one seed, so not the seed's")
            r["flags"].insert(0, f"{what}: {100 * -r['gain']:.1f} points below {base['strategy']} "
                                 f"(95% interval {ci_words(r['gain_ci'])}: {luck})")
        elif below and r["gain"] < -0.005 and not failed:
            r["flags"].insert(0, f"below {base['strategy']} by {100 * -r['gain']:.1f} points, but its 95% interval "
                                 f"{ci_words(r['gain_ci'])} includes no difference: cannot tell; more seeds or "
                                 f"more target images would")
    text, certain = verdict(spec, results, e["runs"], histories)
    return {"results": results, "verdict": text, "verdict_certain": certain,
            "reference_source": REFERENCE_SOURCE if ref else ""}


def _flag_poor_source(r: dict[str, Any], base: dict[str, Any]) -> None:
    """A seed that trained, but learned its own source far worse than the baseline did (an alignment
    too strong before the features formed): its target accuracy says as much about training as
    about transfer."""
    for x in r["runs"]:
        acc = x["best_source_acc"]
        if x["status"] == "finished" and not x["never_learned"] and acc is not None \
                and acc < base["source_acc_mean"] - POOR_SOURCE:
            r["flags"].append(f"seed {x['seed']}: learned its source poorly ({100 * acc:.0f}% on the source at "
                              f"best, against {100 * base['source_acc_mean']:.0f}% for {base['strategy']}): its "
                              f"target accuracy says as much about training as about transfer")


def ci_words(ci: list[float] | None) -> str:
    return "unknown" if ci is None else f"{100 * ci[0]:+.1f} to {100 * ci[1]:+.1f} points"


def _selected(r: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((m for m in history if m.get("epoch") == r.get("best_epoch")), history[-1] if history else None)


def gain_interval(r: dict[str, Any], base: dict[str, Any], members: list[dict[str, Any]],
                  histories: dict[str, list[dict[str, Any]]]) -> tuple[float, list[float] | None]:
    """A strategy's gain over the baseline and its 95 % interval: a paired bootstrap over the seeds both
    finished and the target images both were evaluated on (`stats.paired_gain`); from seed spread and
    each run's binomial error when per-image results were not recorded."""
    def correct(run_id: str) -> np.ndarray | None:
        m = _selected(next(x for x in members if x["id"] == run_id), histories.get(run_id, []))
        if not m or "target_correct" not in m:
            return None
        return unpack_bits(m["target_correct"], m["target_n"])

    by_seed = {x["seed"]: x["run_id"] for x in base["runs"] if x["status"] == "finished"}
    pairs = [(correct(x["run_id"]), correct(by_seed[x["seed"]])) for x in r["runs"]
             if x["status"] == "finished" and x["seed"] in by_seed]
    gain_means = r["target_acc_mean"] - base["target_acc_mean"]
    if pairs and all(a is not None and b is not None and len(a) == len(b) for a, b in pairs):
        _, lo, hi = paired_gain([a for a, _ in pairs], [b for _, b in pairs])
        return gain_means, [round(lo, 4), round(hi, 4)]
    n_eval = [x.get("target_n") for x in members if x.get("target_n")]
    _, lo, hi = normal_gain(r["target_acc_mean"], r["target_acc_std"] or 0.0, r["n_seeds"], base["target_acc_mean"],
                            base["target_acc_std"] or 0.0, base["n_seeds"], n_eval[0] if n_eval else None,
                            n_eval[0] if n_eval else None)
    if r["n_seeds"] < 2 and base["n_seeds"] < 2 and not n_eval:
        return gain_means, None
    return gain_means, [round(lo, 4), round(hi, 4)]


def class_losses(r: dict[str, Any], base: dict[str, Any], members: list[dict[str, Any]],
                 histories: dict[str, list[dict[str, Any]]], most: int = 3) -> list[tuple[str, float, float]]:
    """Classes on which a strategy does worse than the baseline by more than the difference's 95 % interval
    (the finished seeds' reported epochs pooled per class, a normal interval on two proportions), worst first,
    at most `most`: [(class, its accuracy, the baseline's)]. A gain overall can hide a class that collapsed."""
    def pooled(res: dict[str, Any]) -> tuple[np.ndarray | None, list[str]]:
        total, classes = None, []
        for x in res["runs"]:
            member = next((m for m in members if m["id"] == x["run_id"]), None)
            m = _selected(member, histories.get(x["run_id"], [])) if x["status"] == "finished" and member else None
            if not m or "target_confusion" not in m:
                continue
            cm = np.asarray(m["target_confusion"], dtype=np.int64)
            classes = [str(c) for c in m.get("classes") or []]
            total = cm if total is None else (total + cm if total.shape == cm.shape else total)
        return total, classes

    (a, classes), (b, _) = pooled(r), pooled(base)
    if a is None or b is None or a.shape != b.shape:
        return []
    out = []
    for c in range(len(a)):
        na, nb = int(a[c].sum()), int(b[c].sum())
        if not na or not nb:
            continue
        pa, pb = a[c, c] / na, b[c, c] / nb
        se = math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
        if pa - pb + Z95 * se < 0:
            out.append((classes[c] if c < len(classes) else str(c), float(pa), float(pb)))
    return sorted(out, key=lambda x: x[1] - x[2])[:most]


def verdict(spec: ExperimentSpec, results: list[dict[str, Any]], members: list[dict[str, Any]] | None = None,
            histories: dict[str, list[dict[str, Any]]] | None = None) -> tuple[str, bool]:
    """A short paragraph from the numbers, and whether it is sure: who won, by how much, and whether the
    gain's 95 % interval (seeds and target images together) excludes no difference."""
    base = next((r for r in results if r["role"] == "baseline"), None)
    tested = [r for r in results if r["role"] == "" and r["target_acc_mean"] is not None]
    if members is not None:  # runs still queued or training; a stopped run will not finish by itself
        pending = sum(m["status"] not in ("finished", "failed", "cancelled", "interrupted") for m in members)
    else:
        pending = sum(r["runs_total"] - r["n_seeds"] for r in results)
    limited = [m for m in members or [] if m["status"] != "finished" and "TL_QUOTA_RUN_WALL_S" in (m.get("reason") or "")]
    stopped = [m for m in members or [] if m["status"] in ("failed", "cancelled", "interrupted")]
    note = ""
    if limited:
        note = (f"{len(limited)} of {len(members or [])} runs stopped by the server's time limit (TL_QUOTA_RUN_WALL_S): "
                f"the verdict needs {'it' if len(limited) == 1 else 'them'}; give each run a time budget below the "
                f"limit and launch again. ")
    elif stopped:
        note = (f"{len(stopped)} of {len(members or [])} runs stopped before finishing "
                f"({', '.join(sorted({m['status'] for m in stopped}))}): resume them or launch again. ")
    if base is None or base["target_acc_mean"] is None or not tested:
        return (note + ("No verdict yet: the source-only baseline and at least one strategy must finish first."
                        if pending else "No verdict: the baseline or every strategy did not finish; see each run's "
                        "reason."), False)

    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    best = max(tested, key=lambda r: r["target_acc_mean"])
    n = min(r["n_seeds"] for r in [best, base])
    gain, ci = best["gain"], best.get("gain_ci")
    certain = ci is not None and (ci[0] > 0 or ci[1] < 0)
    parts = []
    if gain > 0:
        parts.append(f"**{best['strategy']}** {'won' if certain else 'came out ahead'}: "
                     f"{pct(best['target_acc_mean'])} target accuracy against {pct(base['target_acc_mean'])} for "
                     f"{base['strategy']}, a gain of {100 * gain:+.1f} points.")
    else:
        parts.append(f"No strategy beat {base['strategy']} ({pct(base['target_acc_mean'])}); the best, "
                     f"**{best['strategy']}**, reached {pct(best['target_acc_mean'])} ({100 * gain:+.1f} points).")
    if gain > 0 and members is not None:
        lost = class_losses(best, base, members, histories or {})
        if lost:
            parts.append(f"But it loses {'; '.join(f'{c} ({pct(pa)} right against {pct(pb)})' for c, pa, pb in lost)} "
                         f"to {base['strategy']}, each by more than its 95% interval: open those classes' images "
                         f"(the run's confusion cells) before trusting the gain.")
    over = f"{n} seed{'s' if n != 1 else ''} and the target's evaluation images"
    if ci is None:
        parts.append("Cannot tell whether the difference is real: neither the seed spread nor the evaluation "
                     "set's error is known. Add seeds.")
    elif certain and n < 2:  # the interval knows the test images' luck, not the seed's
        parts.append(f"Its 95% interval over the target's evaluation images is {ci_words(ci)}: it excludes no "
                     f"difference on these images, but with one seed how far another seed would move it is not "
                     f"measured. Add seeds before drawing the lesson.")
    elif certain:
        parts.append(f"Its 95% interval over {over} is {ci_words(ci)}: it excludes no difference, so it is more "
                     f"than the luck of the seed and of the test images.")
    else:
        parts.append(f"Cannot tell: its 95% interval over {over} is {ci_words(ci)}, which includes no difference. "
                     + ("Run more seeds" if n < 3 else "More seeds or more target images would tell")
                     + " before drawing a conclusion.")
    others = sorted((r for r in tested if r is not best), key=lambda r: -r["target_acc_mean"])
    if others:
        second = others[0]
        diff = best["target_acc_mean"] - second["target_acc_mean"]
        tie = True
        if members is not None:
            _, ci2 = gain_interval(best, second, members, histories or {})
            tie = ci2 is None or ci2[0] <= 0
        parts.append(f"Runner-up: {second['strategy']} at {pct(second['target_acc_mean'])}, "
                     f"{100 * diff:.1f} points behind" + (" — within the noise, a tie." if tie else "."))
    hurt = [r["strategy"] for r in tested if r["negative_transfer"]]
    if hurt:
        parts.append(f"Negative transfer: {', '.join(hurt)} did worse than {base['strategy']}.")
    failed = [r["strategy"] for r in results if any("failed run" in f for f in r["flags"])]
    if failed:
        parts.append(f"Failed runs: {', '.join(failed)} had a seed that never learned its source; read it as a "
                     f"run that failed to train, not as a lesson about transfer.")
    collapsed = [r["strategy"] for r in results if any("collapsed" in f for f in r["flags"])]
    if collapsed:
        parts.append(f"Collapse: {', '.join(collapsed)} predicted only a few classes on the target.")
    upper = next((r for r in results if r["role"] == "upper" and r["target_acc_mean"] is not None), None)
    if upper and upper["target_acc_mean"] > base["target_acc_mean"]:
        closed = gain / (upper["target_acc_mean"] - base["target_acc_mean"])
        parts.append(f"Training on labelled target images gives {pct(upper['target_acc_mean'])}: "
                     f"{best['strategy']} closed {100 * max(closed, 0):.0f}% of the gap without target labels"
                     if best["method"] not in ("finetune", "target_only") else
                     f"Training on all labelled target images gives {pct(upper['target_acc_mean'])}.")
    if best.get("reference") is not None:
        parts.append(f"Published ({REFERENCE_SOURCE}, with much longer training): {best['strategy']} "
                     f"{pct(best['reference'])}.")
    if pending:
        parts.append(f"({pending} run(s) still to finish: this verdict will update.)")
        certain = False
    if note:
        parts.insert(0, note.strip())
    return " ".join(parts), certain
