"""Evaluation metrics: accuracy, per-class accuracy, confusion, and domain-gap measures."""
from __future__ import annotations

import numpy as np
import torch

from tl_core.scores.embed import pca


def confusion(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    idx = y_true.long() * num_classes + y_pred.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes).numpy()


def classification_report(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> dict:
    cm = confusion(y_true, y_pred, num_classes)
    support = cm.sum(1)
    per_class = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    return {"acc": float(np.trace(cm) / max(cm.sum(), 1)),
            "per_class": [None if np.isnan(v) else float(v) for v in per_class],
            "confusion": cm.tolist()}


def _cap(x: np.ndarray, n: int) -> np.ndarray:
    """At most n rows, evenly strided (deterministic; keeps a class-stratified sample stratified)."""
    return x if len(x) <= n else x[np.linspace(0, len(x) - 1, n).astype(int)]


def proxy_a_distance(f_s: np.ndarray, f_t: np.ndarray, seed: int = 0, max_points: int = 500) -> float:
    """Proxy A-distance 2 (1 - 2 err) of a linear domain classifier (Ben-David et al., 2007),
    on at most `max_points` per domain projected to 50 principal components (fast enough for
    every epoch). 0 means the domains cannot be told apart; 2 means perfectly separable.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    f_s, f_t = _cap(f_s, max_points), _cap(f_t, max_points)
    x = np.concatenate([f_s, f_t]).astype(np.float64)
    if x.shape[1] > 50:
        x = pca(x, 50)
    d = np.r_[np.ones(len(f_s)), np.zeros(len(f_t))]
    xtr, xte, dtr, dte = train_test_split(x, d, test_size=0.5, random_state=seed, stratify=d)
    sc = StandardScaler().fit(xtr)
    clf = LogisticRegression(C=1.0, max_iter=300).fit(sc.transform(xtr), dtr)
    err = 1.0 - clf.score(sc.transform(xte), dte)
    return float(2.0 * (1.0 - 2.0 * min(err, 0.5)))


def gaussian_mmd(f_s: np.ndarray, f_t: np.ndarray, max_points: int = 500) -> float:
    """Biased MMD^2 with one Gaussian kernel at the median-heuristic bandwidth, on at most
    `max_points` per domain (numpy, for reports)."""
    f_s, f_t = _cap(f_s, max_points), _cap(f_t, max_points)
    x = np.concatenate([f_s, f_t]).astype(np.float64)
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)
    pairs = d2[np.triu_indices(len(x), 1)]  # distinct pairs: self-distances are 0 up to rounding noise
    bw = float(np.median(pairs)) if len(pairs) else 1.0
    bw = bw if bw > 0 else 1.0
    k = np.exp(-d2 / bw)
    n = len(f_s)
    return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())


# -- label-free model selection on the target -------------------------------------------

def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of logits (rows), in float64, computed stably."""
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _entropy_rows(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(1)


def mean_entropy(logits: np.ndarray) -> float:
    """Mean prediction entropy (nats) on unlabelled images: low = confident."""
    return float(_entropy_rows(softmax(np.asarray(logits, np.float64))).mean())


def im_score(logits: np.ndarray) -> float:
    """Information maximisation: H(mean prediction) - mean H(prediction). High when predictions
    are confident and spread over the classes (Li et al., 2020, as a selection score)."""
    p = softmax(np.asarray(logits, np.float64))
    return float(_entropy_rows(p.mean(0, keepdims=True))[0] - _entropy_rows(p).mean())


def snd_score(logits: np.ndarray, temperature: float = 0.05, max_points: int = 1000) -> float:
    """Soft neighbourhood density (Saito et al., 2021): the mean entropy of each image's softmax
    similarity to the other images, on L2-normalised class-probability vectors. High when the
    target forms dense clusters."""
    p = _cap(softmax(np.asarray(logits, np.float64)), max_points)
    f = p / np.linalg.norm(p, axis=1, keepdims=True)
    s = f @ f.T / temperature
    np.fill_diagonal(s, -np.inf)  # an image is not its own neighbour
    return float(_entropy_rows(softmax(s)).mean())


def _max_softmax(logits: np.ndarray) -> np.ndarray:
    return softmax(logits).max(1)


def _atc(conf_val: np.ndarray, right_val: np.ndarray, conf_tgt: np.ndarray) -> float:
    # the threshold under which as many validation images score as the model gets wrong there
    t = np.quantile(conf_val, 1.0 - right_val.mean())
    return float((conf_tgt > t).mean())


def atc_estimate(val_logits: np.ndarray, val_labels: np.ndarray, target_logits: np.ndarray,
                 n_boot: int = 200, seed: int = 0) -> tuple[float, list[float]]:
    """Target accuracy estimated without target labels by average thresholded confidence (ATC, Garg et al.,
    ICLR 2022, with the maximum softmax score): the threshold is fitted on the source-validation split so that
    the share of its images scoring above it equals the model's accuracy there; the estimate is the share of
    target images scoring above it. Returns (estimate, [low, high]): a 95 % bootstrap interval over both
    splits, which covers sampling only, not ATC's own error under a large shift."""
    cv, ct = _max_softmax(val_logits), _max_softmax(target_logits)
    rv = np.asarray(val_labels) == np.asarray(val_logits).argmax(1)
    if not len(cv) or not len(ct):
        return float("nan"), [float("nan"), float("nan")]
    est = _atc(cv, rv, ct)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        iv, it = rng.integers(0, len(cv), len(cv)), rng.integers(0, len(ct), len(ct))
        boots.append(_atc(cv[iv], rv[iv], ct[it]))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return est, [round(float(lo), 4), round(float(hi), 4)]


def selection_scores(target_logits: np.ndarray, source_val_acc: float) -> dict[str, float]:
    """Every score the trainer may select a checkpoint by; none of them reads a target label."""
    return {"source_val_acc": float(source_val_acc), "im": im_score(target_logits),
            "snd": snd_score(target_logits), "neg_entropy": -mean_entropy(target_logits)}
