"""The images behind a run's numbers: a confusion cell's images, per-class rows with their intervals and
collapses, and the image behind a point of the feature map; read from the per-image predictions the run
recorded and the shared thumbnails (`thumbs`), only for a run this session may see, at most
`thumbs.MAX_PER_VIEW` images a request."""
from __future__ import annotations

from typing import Any

import numpy as np

from tl_core import runs
from tl_core.data import thumbs
from tl_core.policy.access import Session
from tl_core.base.errors import ConfigError
from tl_core.scores.stats import accuracy_ci
from tl_core.app.run_views import visible_run

# what the pages may call (tl_core.app.api exports exactly these)
__all__ = ["COLLAPSE_AT", "class_report", "class_row_words", "cell_images", "point_image"]

# a class with at most this share of its images right has collapsed (the model all but stopped predicting it)
COLLAPSE_AT = 0.20


def _reported(session: Session, run_id: str) -> tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]:
    """(the run, the predictions of the epoch it reports, or of its last evaluated epoch while it trains, its
    metrics rows)."""
    r = visible_run(session, run_id)
    history, _ = runs.read_metrics(run_id)
    last = runs.read_predictions(run_id, "last")
    best_epoch = r.get("best_epoch")
    if r["status"] == "finished" and best_epoch and last is not None and last["epoch"] != best_epoch:
        best = runs.read_predictions(run_id, "best")
        if best is not None and best["epoch"] == best_epoch:
            return r, best, history
    return r, last, history


def _split(split: str) -> str:
    if split not in thumbs.SPLITS:
        raise ConfigError(f"A split is 'source' or 'target' (got {str(split)[:20]!r}).")
    return split


def class_report(session: Session, run_id: str, split: str = "target") -> dict[str, Any] | None:
    """The confusion of a run's reported epoch (its last evaluated one while it trains) counted from its
    per-image predictions, and a row per class: right of how many, accuracy with its 95 % interval, where
    most of the rest went, and whether the class collapsed (at most COLLAPSE_AT right). None for a run that
    recorded no per-image predictions."""
    r, p, history = _reported(session, run_id)
    return _report(r, p, history, _split(split))


def _report(r: dict[str, Any], p: dict[str, Any] | None, history: list[dict[str, Any]],
            split: str) -> dict[str, Any] | None:
    if p is None or split not in p:
        return None
    row = next((h for h in history if h.get("epoch") == p["epoch"]), history[-1] if history else {})
    classes = [str(c) for c in row.get("classes") or []]
    t = p[split]
    k = max(len(classes), int(max(t["true"].max(initial=-1), t["pred"].max(initial=-1))) + 1)
    classes += [str(i) for i in range(len(classes), k)]
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (t["true"].astype(np.int64), t["pred"].astype(np.int64)), 1)
    rows = []
    for c in range(k):
        n, right = int(matrix[c].sum()), int(matrix[c, c])
        wrong = matrix[c].copy()
        wrong[c] = 0
        top = int(wrong.argmax()) if wrong.sum() else None
        acc = right / n if n else None
        rows.append({"class": classes[c], "index": c, "right": right, "n": n, "acc": acc,
                     "ci": accuracy_ci(acc, n) if n else None,
                     "most_went_to": classes[top] if top is not None else None,
                     "most_went_n": int(wrong[top]) if top is not None else 0,
                     "collapsed": bool(n and acc <= COLLAPSE_AT)})
    return {"epoch": p["epoch"], "split": split, "classes": classes, "matrix": matrix.tolist(), "rows": rows,
            "n": int(len(t["true"])), "sampled": bool(row.get("sampled")),
            "images": bool(p.get("spec")), "status": r["status"]}


def class_row_words(row: dict[str, Any]) -> str:
    """One class in words: "elephant: 2 of 50 (4 %) — most went to dog"."""
    if not row["n"]:
        return f"{row['class']}: no images"
    words = f"{row['class']}: {row['right']} of {row['n']} ({100 * row['acc']:.0f} %)"
    if row["most_went_to"] is not None and row["most_went_n"]:
        words += f" — most went to {row['most_went_to']}" if row["acc"] < 0.5 else \
                 f"; {row['most_went_n']} went to {row['most_went_to']}"
    return words


def cell_images(session: Session, run_id: str, split: str, true_class: int, predicted: int,
                limit: int = thumbs.MAX_PER_VIEW) -> dict[str, Any]:
    """The images one confusion cell counts (true class, predicted class) in the run's reported epoch, most
    confident first: `count` in the cell, and up to `limit` thumbnails (`thumbs.MAX_PER_VIEW` at most) with the
    predicted class's probability (thumbnails made at the first view of the run's images, `thumbs.run_thumbnails`).
    `available` False: the images can no longer be read (a folder or upload removed since the run)."""
    r, p, history = _reported(session, run_id)
    rep = _report(r, p, history, _split(split))
    if rep is None:
        raise ConfigError("This run recorded no per-image predictions (it was trained before they were kept).")
    k = len(rep["classes"])
    try:
        t_i, p_i = int(true_class), int(predicted)
    except (TypeError, ValueError):
        raise ConfigError("A confusion cell is two class numbers.") from None
    if not (0 <= t_i < k and 0 <= p_i < k):
        raise ConfigError(f"There is no such cell: classes are numbered 0 to {k - 1}.")
    t = p[split]
    idx = np.nonzero((t["true"] == t_i) & (t["pred"] == p_i))[0]
    idx = idx[np.argsort(-t["conf"][idx].astype(np.int64), kind="stable")]
    shown = idx[:max(0, min(int(limit), thumbs.MAX_PER_VIEW))]
    key = thumbs.run_thumbnails(r["config"], p["spec"], split) if len(shown) else None
    images = thumbs.read(key, t["rows"][shown]) if key else ([] if not len(shown) else None)
    return {"epoch": rep["epoch"], "split": split, "true": rep["classes"][t_i], "predicted": rep["classes"][p_i],
            "count": int(len(idx)), "available": images is not None,
            "images": [_plain(im) for im in images or []],
            "confidence": [round(float(c) / 255, 2) for c in t["conf"][shown]]}


def point_image(session: Session, run_id: str, epoch: int | None, index: int) -> dict[str, Any] | None:
    """The image behind point `index` of an epoch's feature map: its thumbnail, domain, true and predicted class;
    None when the map or the point does not exist or the run recorded no thumbnails."""
    r = visible_run(session, run_id)
    emb = runs.read_embedding(run_id, epoch)
    try:
        i = int(index)
    except (TypeError, ValueError):
        return None
    if not emb or "row" not in emb or not 0 <= i < len(emb["row"]):
        return None
    domain = emb["domain"][i]
    p = runs.read_predictions(run_id, "last")
    key = thumbs.run_thumbnails(r["config"], p["spec"], domain) if p else None
    images = thumbs.read(key, [emb["row"][i]]) if key else None
    history, _ = runs.read_metrics(run_id)
    classes = [str(c) for c in (history[-1].get("classes") if history else None) or []]

    def name(c: int) -> str:
        return classes[c] if 0 <= c < len(classes) else str(c)

    return {"image": _plain(images[0]) if images else None, "domain": domain, "label": name(int(emb["label"][i])),
            "predicted": name(int(emb["pred"][i])), "epoch": emb.get("epoch")}


def _plain(im: np.ndarray) -> np.ndarray:
    """A thumbnail as st.image takes it: (h, w) for grey, (h, w, 3) for colour."""
    return im[..., 0] if im.ndim == 3 and im.shape[-1] == 1 else im
