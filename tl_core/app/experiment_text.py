"""What the Experiments page shows, as words and table rows: built here from the records the page
already has (`view_experiment`, `plan_experiment`, `advise`), so the page is widgets only."""
from __future__ import annotations

from typing import Any

from tl_core.app.text import clock, domain_label

# what the pages may call (tl_core.app.api exports exactly these)
__all__ = ["ADVISOR_HELP", "PROBE_HELP", "MAP_CAPTION", "plan_words", "experiment_links", "progress_words", "header",
           "verdict_tone", "flag_lines", "result_rows", "run_links", "map_runs", "advice_rows", "score_rows",
           "record_words", "probe_record_words"]

ADVISOR_HELP = ("It scores each candidate's frozen features (LogME, H-score, k-NN on the source labels; a centroid "
                "margin, the domain gap and the source head's certainty on the unlabelled target) and reads each "
                "method's target accuracy off a predictor fitted on measured runs; then the leading candidates train "
                "briefly (probes) and are ranked by label-free validators of what they learnt. About a minute the "
                "first time for a pair, seconds after.")
PROBE_HELP = ("Each probe trained at most a quarter of its planned steps ({seconds:.0f} s this time: a probe asked "
              "before is read back). The composite "
              "averages each probe's rank on four label-free validators: agreement with the ensemble of all probes, "
              "batch nuclear norm, ClassAMI and source hold-out accuracy. ATC estimates target accuracy from the "
              "model's confidence, without target labels; a short probe reads lower than the full run will.")
MAP_CAPTION = ("Feature maps at the last epoch (seed {seed}): blue source, orange target. Aligned domains overlap; "
               "red rings are misclassified target images.")


def plan_words(plan: dict[str, Any]) -> tuple[str, str]:
    """(what will run, how long and how to share it) for a launchable plan."""
    pair = f"{domain_label(plan['source'])} → {domain_label(plan['target'])}"
    return (f"{pair}: {', '.join(plan['strategies'])} × seeds "
            f"{', '.join(map(str, plan['seeds']))} = {plan['runs']} runs, one after another"
            + (f", each planned to about {clock(plan['budget_s'])}." if plan.get("budget_s") else "."),
            f"About {clock(plan['estimate_s'])} on this machine. Share this setup: copy the page's address, it opens "
            f"the same experiment ready to launch.")


def experiment_links(listed: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, experiment id) for the experiments a session can open, newest first."""
    return [(f"{e['name']} · {e['status']} · {e['runs']} runs · {e['created']} · "
             f"{'yours' if e['mine'] else 'shared with you'}", e["id"]) for e in listed[:12]]


def progress_words(p: dict[str, Any]) -> str:
    """The grid's progress in words: only finished runs count as done; stopped ones are said apart."""
    stopped = p.get("runs_stopped", 0)
    limited = p.get("time_limited", 0)
    return (f"{p['runs_done']} of {p['runs']} runs done"
            + (f" · {stopped} stopped" + (f" ({limited} by the server's time limit)" if limited else "")
               if stopped else "")
            + f" · {100 * p['fraction']:.0f}% of the grid · ETA {clock(p['eta_s'])}")


def header(v: dict[str, Any], title: str, source_label: str, target_label: str) -> tuple[str, str]:
    """(heading, caption) of an opened experiment."""
    spec, p = v["spec"], v["progress"]
    return (f"{title} · {source_label} → {target_label}",
            f"{len(spec['strategies'])} strategies × seeds "
            f"{', '.join(map(str, spec['seeds']))} · status {p['status']}"
            + ("" if v["mine"] else " · shared with you (read-only)"))


def verdict_tone(v: dict[str, Any]) -> str:
    """success / warning / info: green only for a finished verdict its interval supports (one seed of 70
    images reads as "cannot tell"), and only when something beat the baseline."""
    if v["progress"]["status"] != "finished" or not v["verdict_certain"]:
        return "info"
    helped = any(r["role"] == "" and (r["gain_ci"] or [0])[0] > 0 for r in v["results"])
    return "success" if helped else "warning"


def flag_lines(v: dict[str, Any]) -> list[tuple[str, str]]:
    """(error | warning, text) for each strategy's flags."""
    return [("error" if "negative transfer" in f else "warning", f"{r['strategy']}: {f}")
            for r in v["results"] for f in r["flags"]]


def result_rows(v: dict[str, Any]) -> list[dict[str, str]]:
    """The results table: one row per strategy, every number with its unit and interval."""
    base = next((r["strategy"] for r in v["results"] if r["role"] == "baseline"), "source only")
    gain_col = f"gain over {base} (95% interval)"

    def pct(x: float | None, spread: float | None = None) -> str:
        return "—" if x is None else f"{100 * x:.1f}" + ("" if spread is None else f" ± {100 * spread:.1f}") + " %"

    return [{"strategy": r["strategy"],
             "target accuracy": pct(r["target_acc_mean"], r["target_acc_std"] if r["target_acc_mean"] is not None
                                    else None),
             gain_col: "baseline" if r["role"] == "baseline" else "—" if r["gain"] is None
             else f"{100 * r['gain']:+.1f} points" + ("" if not r["gain_ci"] else
                                                       f" ({100 * r['gain_ci'][0]:+.1f} to {100 * r['gain_ci'][1]:+.1f})"),
             "seeds done": f"{r['n_seeds']} of {r['runs_total']}",
             "published": pct(r["reference"]),
             "estimated without target labels (ATC)": pct(r.get("target_acc_estimate_mean")),
             "source accuracy": pct(r["source_acc_mean"]),
             "time per run": "—" if r["wall_s_mean"] is None else f"{r['wall_s_mean']:.0f} s"} for r in v["results"]]


def run_links(v: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, run id) for each member run, with its accuracy or why it stopped."""
    out = []
    for r in v["runs"]:
        acc = "" if r["target_acc"] is None else f" · target {100 * r['target_acc']:.1f}%"
        why = f" · {r['reason']}" if r["reason"] and r["status"] != "finished" else ""
        out.append((f"{r['strategy']} · seed {r['seed']} · {r['status']}{acc}{why}", r["id"]))
    return out


def map_runs(v: dict[str, Any]) -> list[tuple[str, str]]:
    """(strategy, run id) of the first seed's finished runs, whose feature maps are shown side by side."""
    first = v["spec"]["seeds"][0]
    return [(r["strategy"], r["id"]) for r in v["runs"] if r["id"] in v["histories"] and r["seed"] == first]


def advice_rows(advice: dict[str, Any], top: int = 8) -> list[dict[str, str]]:
    """The advisor's ranking as a table: predicted accuracy and gain, each with its interval."""
    def span(lo: float, hi: float, sign: str = "") -> str:
        return f"[{100 * lo:{sign}.0f}, {100 * hi:{sign}.0f}]"

    def row(r: dict[str, Any]) -> dict[str, str]:
        p = r.get("probe") or {}
        out = {"candidate": r["candidate"], "method": r["method"],
               "predicted target accuracy": "" if r.get("predicted_acc") is None else
               f"{100 * r['predicted_acc']:.1f} % {span(*r['predicted_acc_ci'])}",
               "gain over source only": "" if r["method"] == "source_only" or r.get("predicted_gain") is None else
               f"{100 * r['predicted_gain']:+.1f} {span(*r['predicted_gain_ci'], sign='+')}"}
        if any(x.get("probe") for x in advice["recommendations"]):
            out["probe: composite of the validators"] = "" if not p else f"{p['composite']:.2f}"
            out["probe: target accuracy without labels (ATC)"] = "" if p.get("atc") is None else \
                f"{100 * p['atc']:.0f} % {span(*p['atc_ci'])}"
            out["probe: gain over its source only"] = "" if p.get("atc_gain") is None else \
                f"{100 * p['atc_gain']:+.1f} {span(*p['atc_gain_ci'], sign='+')}"
        return out

    return [row(r) for r in advice["recommendations"][:top]]


def score_rows(advice: dict[str, Any]) -> list[dict[str, Any]]:
    """The scores behind the advice, one row per candidate."""
    return [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if k not in ("backbone", "freeze")}
            for row in advice["scores"]]


def probe_record_words(track: dict[str, Any]) -> str:
    """The probes' record against full runs in one sentence ('' before bench/probes.py has run)."""
    if not track.get("pairs"):
        return ""
    lo, hi = track.get("auroc_ci") or [float("nan")] * 2
    return (f"This ranking comes from the probes. Their record against full runs ({track['cells']} runs over "
            f"{track['pairs']} pairs, nothing fitted): median Kendall τ {track['kendall_tau_median']:.2f}, AUROC of "
            f"'beats source only' {track['auroc_beats_source_only']:.2f} [{lo:.2f}, {hi:.2f}], the probe's accuracy "
            f"read without labels off the full run's by {100 * track['acc_mae']:.1f} points on average. "
            f"docs/BENCHMARKS.md has every pair.")


def record_words(track: dict[str, Any]) -> str:
    """The predictor's held-out record in one sentence ('' when no bench has fitted one)."""
    if not track:
        return ""
    roc = track.get("auroc_beats_source_only")
    return (f"The predictor's own record, each pair held out of its fitting ({track['cells']} measured runs over "
            f"{track['pairs']} pairs): median Kendall τ {track['kendall_tau_median']:.2f}, AUROC of 'beats source "
            f"only' {'n/a' if roc is None else f'{roc:.2f}'}. docs/BENCHMARKS.md has every cell.")
