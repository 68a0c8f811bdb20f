"""The words and rows of one run's view on the Train page: its status and progress line, its outcome, the
captions of its charts, and the rows, cell choices and titles of "the images behind the numbers". Plain
strings and dicts in and out: the page only places them."""
from __future__ import annotations

from typing import Any

from tl_core.app.images import COLLAPSE_AT, class_row_words
from tl_core.app.text import clock, domain_label, escape_markdown

# what the pages may call (tl_core.app.api exports exactly these)
__all__ = ["status_line", "queue_words", "reused_sentence", "progress_line", "too_long_words", "outcome_words",
           "sampled_words", "point_words", "confusion_title", "class_table", "collapse_words", "cell_choices",
           "cell_words"]


def reused_sentence(r: dict[str, Any]) -> str:
    """Where a run's numbers come from when identical work was trained once, as a sentence (escaped)."""
    words = r["reused_words"]
    return escape_markdown(words[:1].upper() + words[1:] + ".")


def status_line(r: dict[str, Any]) -> str:
    """Method, pair, backbone and status (escaped), and whether the run is someone else's."""
    who = "" if r["mine"] else " · shared with you (read-only)"
    return escape_markdown(f"{r['method']} · {domain_label(r['source'])} → {domain_label(r['target'])} · "
                           f"{r['backbone']} · status {r['status']}{who}")


def queue_words(r: dict[str, Any]) -> str | None:
    """What a queued run waits for (an identical run it is attached to, or its place in the queue)."""
    if r["status"] != "queued":
        return None
    if r["attached"]:
        return reused_sentence(r)
    return f"Waiting in the queue (position {r['queue_position']}): one run trains at a time on this machine."


def progress_line(r: dict[str, Any]) -> tuple[float, str, str] | None:
    """(fraction done, the bar's text, the current losses) of a run with progress; None before any."""
    p = r["progress"]
    if not p:
        return None
    eta = int(p["eta_s"]) if r["status"] == "running" else 0
    text = (f"epoch {p['epoch']}/{r['epochs']} · step {p['step']}/{p['total_steps']} · "
            f"{p['images_per_s']:,.0f} images/s · ETA {clock(eta)}")
    losses = ("now: " + " · ".join(f"{k} {v:.3f}" for k, v in p["losses"].items())
              if r["status"] == "running" and p["losses"] else "")
    return min(p["step"] / max(p["total_steps"], 1), 1.0), text, losses


def too_long_words(estimate_s: float, limit_s: float | None) -> str | None:
    """Why a plan is not offered for launch: longer than the server's limit per run (None: it fits)."""
    if not limit_s or estimate_s <= limit_s:
        return None
    return (f"about {estimate_s / 60:.0f} min, longer than the {limit_s / 60:.0f}-min limit per run on this server "
            f"(TL_QUOTA_RUN_WALL_S): fit the plan to a budget below it.")


def outcome_words(r: dict[str, Any]) -> tuple[str, str | None]:
    """A finished run's result in one sentence (accuracy with its interval, source accuracy, wall, the reported
    epoch), and its accuracy estimated without target labels in another (None when it has none)."""
    sel = r["config"]["train"].get("selection", "last")
    ci = r.get("target_acc_ci")
    done = (f"Finished: target accuracy {r['target_acc']:.1%}"
            + (f" (95% interval {ci[0]:.1%}–{ci[1]:.1%})" if ci else "")
            + (f", source {r['source_acc']:.1%}" if r["source_acc"] is not None else "")
            + (f", in {r['wall_s']:.0f} s" if r["wall_s"] is not None else "")
            + f"; reported from epoch {r['best_epoch']} (selection: {sel}, which reads no target label).")
    est, eci = r.get("target_acc_estimate"), r.get("target_acc_estimate_ci")
    if est is None:
        return done, None
    return done, (f"Estimated without target labels: about {est:.0%}" + (f" [{eci[0]:.0%}, {eci[1]:.0%}]" if eci else "")
                  + " (average thresholded confidence, fitted on the source's hold-out images; beside the measured "
                    "accuracy it is its own check, and on images without labels it is the only reading).")


def sampled_words(history: list[dict[str, Any]]) -> str | None:
    """The accuracy chart's caption when epochs before the last read a sample (None when none did)."""
    sampled = next((x for x in history if x.get("sampled")), None)
    if sampled is None:
        return None
    return (f"Epochs before the last read a fixed sample of each test split ({sampled['target_n']:,} target "
            "images), which is quicker and decides nothing; the last epoch reads every image.")


def point_words(shown: dict[str, Any]) -> str:
    """The caption of the image behind a map point (escaped)."""
    return escape_markdown(f"{shown['domain']} image · class {shown['label']} · predicted {shown['predicted']}"
                           + ("" if shown["image"] is not None else " (its picture is not kept on this server)"))


def confusion_title(rep: dict[str, Any]) -> str:
    """A confusion chart's title: which split, which epoch, how many images (a sample while the run trains)."""
    return (f"{rep['split'].capitalize()} confusion, epoch {rep['epoch']} ({rep['n']:,} "
            + ("sampled " if rep["sampled"] else "") + "images)")


def class_table(rep: dict[str, Any]) -> list[dict[str, str]]:
    """One row a class: right of how many, accuracy, its 95 % interval, where most of the rest went."""
    return [{"class": ("⚠ " if r["collapsed"] else "") + r["class"], "right": f"{r['right']}/{r['n']}",
             "accuracy": f"{100 * r['acc']:.0f} %" if r["n"] else "–",
             "95% interval": f"{100 * r['ci'][0]:.0f}–{100 * r['ci'][1]:.0f} %" if r["ci"] else "–",
             "most others →": r["most_went_to"] or "–"} for r in rep["rows"]]


def collapse_words(rep: dict[str, Any]) -> str | None:
    """The classes that collapsed, in one warning (escaped); None when none did."""
    collapsed = [class_row_words(r) for r in rep["rows"] if r["collapsed"]]
    if not collapsed:
        return None
    return (f"{'This class' if len(collapsed) == 1 else f'{len(collapsed)} classes'} collapsed (at most "
            f"{COLLAPSE_AT:.0%} right), whatever the overall accuracy says: " + escape_markdown("; ".join(collapsed)) + ".")


def cell_choices(rep: dict[str, Any]) -> dict[tuple[int, int], str]:
    """The non-empty cells, the confusions first and the largest first, each with its label."""
    m, names = rep["matrix"], rep["classes"]
    cells = sorted(((i, j) for i in range(len(m)) for j in range(len(m)) if m[i][j]),
                   key=lambda c: (c[0] == c[1], -m[c[0]][c[1]]))
    return {c: f"true {names[c[0]]} → predicted {names[c[1]]} ({m[c[0]][c[1]]:,})" for c in cells}


def cell_words(res: dict[str, Any]) -> str:
    """What an opened cell shows (markdown, the class names escaped)."""
    name = escape_markdown(f"true {res['true']}, predicted {res['predicted']}")
    return (f"**{name}**: {res['count']:,} image{'s' if res['count'] != 1 else ''} in this cell (epoch {res['epoch']})"
            + (f", the {len(res['images'])} most confident shown" if res["count"] > len(res["images"]) else "")
            + "; each with the model's probability for the predicted class.")
