"""Transferability scores from frozen features, computed before any training (numpy only).

Source-label scores say how well a linear read-out of the features separates the source classes:
LogME (You et al., 2021), H-score with a shrunk covariance (Bao et al., 2019; Ibrahim et al., 2022)
and leave-one-out k-nearest-neighbour accuracy. Label-free target scores say how the target sits
against the source on those features: a centroid-margin score in the spirit of PAS (how decisively
target images fall near one source class centroid), and, from a linear head fitted on the source,
the entropy and the class balance of its target predictions. The domain gap (proxy A-distance,
MMD) is in `metrics`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tl_core.scores.metrics import gaussian_mmd, proxy_a_distance


@dataclass(frozen=True)
class Score:
    """One score the advisor reads: its key (a feature of the advisor's predictor), how a person reads its
    name, and how its value is shown."""

    key: str
    words: str
    fmt: str = "{:.2f}"

    def show(self, value: float) -> str:
        return f"{self.words} {self.fmt.format(value)}"


# The one list of scores: the advisor's features in this order, the command line's and the app's words.
SCORES = (Score("knn", "k-NN", "{:.0%}"), Score("logme", "LogME"), Score("h_score", "H-score", "{:.1f}"),
          Score("centroid_margin", "centroid margin"), Score("a_distance", "A-distance"), Score("mmd", "MMD", "{:.3f}"),
          Score("target_entropy", "target entropy"), Score("target_balance", "balance"),
          Score("log_target_images", "log10 target images"))


def _one_hot(y: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(y), k))
    out[np.arange(len(y)), y] = 1.0
    return out


def logme(f: np.ndarray, y: np.ndarray, iterations: int = 20) -> float:
    """LogME: the log marginal evidence per image of a Bayesian linear model from features `f` (n x d)
    to each class's indicator, maximised over its prior and noise precisions (alpha, beta), averaged
    over classes. Higher is better; comparable between feature sets of one dataset."""
    f = np.asarray(f, np.float64)
    y = np.asarray(y).astype(int)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    s2 = s ** 2  # the non-zero eigenvalues of F^T F (d - len(s) more are 0)
    out = []
    for k in range(int(y.max()) + 1):
        t = (y == k).astype(np.float64)
        z2 = (u.T @ t) ** 2
        outside = max(float(t @ t - z2.sum()), 0.0)  # the part of t no linear read-out reaches
        alpha, beta = 1.0, 1.0
        for _ in range(iterations):
            den = alpha + beta * s2
            gamma = float((beta * s2 / den).sum())
            m2 = float((beta ** 2 * s2 * z2 / den ** 2).sum())
            res2 = float((alpha ** 2 * z2 / den ** 2).sum()) + outside
            new_alpha, new_beta = gamma / (m2 + 1e-10), max(n - gamma, 1e-10) / (res2 + 1e-10)
            done = abs(new_alpha - alpha) / alpha < 1e-5 and abs(new_beta - beta) / beta < 1e-5
            alpha, beta = new_alpha, new_beta
            if done:
                break
        den = alpha + beta * s2
        m2 = float((beta ** 2 * s2 * z2 / den ** 2).sum())
        res2 = float((alpha ** 2 * z2 / den ** 2).sum()) + outside
        log_det = float(np.log(den).sum()) + (d - len(s2)) * math.log(alpha)
        evidence = (n / 2 * math.log(beta) + d / 2 * math.log(alpha) - n / 2 * math.log(2 * math.pi)
                    - beta / 2 * res2 - alpha / 2 * m2 - log_det / 2)
        out.append(evidence / n)
    return float(np.mean(out))


def h_score(f: np.ndarray, y: np.ndarray) -> float:
    """H-score tr(Σ_f⁻¹ Σ_g), Σ_g the covariance of the class-conditional means, with Σ_f shrunk
    towards a scaled identity (Ledoit-Wolf), which keeps it stable when images are few for the
    dimensions. Higher: the classes are further apart relative to the spread of the features."""
    from sklearn.covariance import LedoitWolf

    f = np.asarray(f, np.float64)
    y = np.asarray(y).astype(int)
    f = f - f.mean(0)
    cov = LedoitWolf().fit(f).covariance_
    g = np.zeros_like(f)
    for k in np.unique(y):
        g[y == k] = f[y == k].mean(0)
    cov_g = g.T @ g / len(f)
    return float(np.trace(np.linalg.solve(cov, cov_g)))


def _normalise(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, np.float64)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def knn_loo_accuracy(f: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    """Leave-one-out accuracy of a k-nearest-neighbour vote (cosine similarity) on the features: each
    image classified by its k nearest other images."""
    f = _normalise(f)
    y = np.asarray(y).astype(int)
    sim = f @ f.T
    np.fill_diagonal(sim, -np.inf)
    k = min(k, len(f) - 1)
    nn = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    votes = np.zeros((len(f), int(y.max()) + 1))
    np.add.at(votes, (np.repeat(np.arange(len(f)), k), y[nn].ravel()), 1.0)
    return float((votes.argmax(1) == y).mean())


def centroid_margin(f_s: np.ndarray, y_s: np.ndarray, f_t: np.ndarray) -> float:
    """A label-free target score in the spirit of PAS: with the source class centroids (cosine), each
    target image's margin between its nearest and second-nearest centroid, (s₁ − s₂) / (|s₁| + |s₂|),
    averaged. High: target images sit clearly by one source class each."""
    fs, ft = _normalise(f_s), _normalise(f_t)
    y_s = np.asarray(y_s).astype(int)
    cent = _normalise(np.stack([fs[y_s == k].mean(0) for k in range(int(y_s.max()) + 1)]))
    sim = np.sort(ft @ cent.T, axis=1)
    s1, s2 = sim[:, -1], sim[:, -2]
    return float(np.mean((s1 - s2) / np.maximum(np.abs(s1) + np.abs(s2), 1e-12)))


def source_head_on_target(f_s: np.ndarray, y_s: np.ndarray, f_t: np.ndarray) -> dict[str, float]:
    """A linear head (logistic regression) fitted on the source features, read on the target: the mean
    entropy of its predictions over log K (0: certain, 1: uniform) and the balance of the classes it
    predicts (entropy of the mean prediction over log K; 1: all classes equally often)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(f_s)
    clf = LogisticRegression(C=1.0, max_iter=500).fit(sc.transform(f_s), y_s)
    p = clf.predict_proba(sc.transform(f_t))
    k = p.shape[1]
    ent = -(p * np.log(np.clip(p, 1e-12, None))).sum(1).mean() / math.log(k)
    mean = p.mean(0)
    bal = -(mean * np.log(np.clip(mean, 1e-12, None))).sum() / math.log(k)
    return {"target_entropy": float(ent), "target_balance": float(bal)}


def score_all(f_s: np.ndarray, y_s: np.ndarray, f_t: np.ndarray, n_target: int) -> dict[str, float]:
    """Every score of `SCORES` for one candidate's frozen features (no target label is read)."""
    return {"knn": knn_loo_accuracy(f_s, y_s), "logme": logme(f_s, y_s), "h_score": h_score(f_s, y_s),
            "centroid_margin": centroid_margin(f_s, y_s, f_t), "a_distance": proxy_a_distance(f_s, f_t),
            "mmd": gaussian_mmd(f_s, f_t), **source_head_on_target(f_s, y_s, f_t),
            "log_target_images": math.log10(max(int(n_target), 1))}
