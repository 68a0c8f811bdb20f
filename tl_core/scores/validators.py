"""Label-free validators: scores of a trained model read on the unlabelled target (and the source hold-out)
that stand in for the target accuracy when choosing among candidate models (Musgrave, Belongie & Lim,
"Benchmarking validation methods for unsupervised domain adaptation", 2022). Each is written from its paper,
higher is better, and each has a numpy reference test (tests/unit/test_validators.py). Every probe is read by each
validator of the registry `VALIDATORS` (`probes.rank`, the `validators` of a probe in the advisor's answer);
`COMPOSITE` names the ones its rank averages.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tl_core.scores.embed import pca as principal_components
from tl_core.scores.metrics import im_score, mean_entropy, softmax


@dataclass(frozen=True)
class Reading:
    """What a validator reads of one probed model: source hold-out logits and labels, target logits and
    features, and the mean target prediction of every model probed beside it (None when it is alone)."""

    val_logits: np.ndarray
    val_labels: np.ndarray
    target_logits: np.ndarray
    target_features: np.ndarray
    ensemble_probs: np.ndarray | None = None


@dataclass(frozen=True)
class Validator:
    """A label-free score: its key, words for people, the paper, and how it is computed (higher is better)."""

    key: str
    label: str
    words: str
    paper: str
    fn: Callable[[Reading], float]
    needs_ensemble: bool = False


def bnm(logits: np.ndarray) -> float:
    """Batch nuclear norm (Cui et al., CVPR 2020): the sum of the singular values of the n x k matrix of target
    class probabilities, over n. Large when predictions are confident (discriminable) and spread over many
    classes (diverse)."""
    p = softmax(logits)
    return float(np.linalg.svd(p, compute_uv=False).sum() / max(len(p), 1))


def class_ami(features: np.ndarray, logits: np.ndarray, seed: int = 0, pca: int = 64) -> float:
    """ClassAMI (Musgrave et al., 2022, pytorch-adapt's ClassClusterValidator): k-means with one cluster per
    class on the L2-normalised target features (projected to `pca` principal components when wider), and
    the adjusted mutual information between the clusters and the predicted classes. High when the classifier's
    decision follows the structure of the target features."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_mutual_info_score

    f = np.asarray(features, np.float64)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    if f.shape[1] > pca and len(f) > pca:
        f = principal_components(f, pca)
    k = np.asarray(logits).shape[1]
    if len(f) <= k:
        return float("nan")
    clusters = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(f)
    return float(adjusted_mutual_info_score(clusters, np.asarray(logits).argmax(1)))


def ensemble_agreement(logits: np.ndarray, ensemble_probs: np.ndarray) -> float:
    """Agreement with the ensemble of candidates (EnsV, Yang et al., NeurIPS 2024): the share of target images on
    which this model's class equals the class of the mean prediction of all probed models. The ensemble is a
    steadier guess of the target labels than any one candidate."""
    return float(np.mean(np.asarray(logits).argmax(1) == np.asarray(ensemble_probs).argmax(1)))


def source_val_acc(logits: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy on the source hold-out (images the model never trained on)."""
    return float(np.mean(np.asarray(logits).argmax(1) == np.asarray(labels))) if len(labels) else float("nan")


VALIDATORS: tuple[Validator, ...] = (
    Validator("source_val_acc", "source hold-out accuracy",
              "How well it learnt the labelled task: the one validator that reads labels (the source's).",
              "Ganin et al., 2016 (reverse validation's simplest form)",
              lambda r: source_val_acc(r.val_logits, r.val_labels)),
    Validator("bnm", "batch nuclear norm",
              "Confident and diverse target predictions: the sum of the singular values of the target's class "
              "probabilities, per image.", "Cui et al., CVPR 2020", lambda r: bnm(r.target_logits)),
    Validator("im", "information maximisation",
              "Entropy of the mean target prediction minus the mean entropy of each: high when each image is "
              "confident and the classes are all used.", "Liang et al., ICML 2020 (SHOT)",
              lambda r: im_score(r.target_logits)),
    Validator("class_ami", "ClassAMI",
              "Whether the predicted classes follow the clusters of the target features (k-means, adjusted "
              "mutual information).", "Musgrave et al., 2022", lambda r: class_ami(r.target_features, r.target_logits)),
    Validator("neg_entropy", "target confidence",
              "Minus the mean entropy of the target predictions: low entropy means confident predictions, "
              "right or wrong.", "Morerio et al., ICLR 2018", lambda r: -mean_entropy(r.target_logits)),
    Validator("ensemble", "agreement with the ensemble",
              "Share of target images on which it predicts the class of the mean prediction of every probed model.",
              "Yang et al., NeurIPS 2024 (EnsV)", lambda r: ensemble_agreement(r.target_logits, r.ensemble_probs),
              needs_ensemble=True),
)
# the validators the composite rank averages, fixed before any held-out pair was looked at: the ensemble's
# agreement (the steadiest in the EnsV study), the two prediction-structure scores, and the source hold-out
COMPOSITE = ("ensemble", "bnm", "class_ami", "source_val_acc")


def read_all(r: Reading) -> dict[str, float]:
    """Every validator's score of one model (the ensemble's only when there is one)."""
    return {v.key: v.fn(r) for v in VALIDATORS if r.ensemble_probs is not None or not v.needs_ensemble}


def composite_ranks(table: list[dict[str, float]], keys: tuple[str, ...] = COMPOSITE) -> list[float]:
    """The composite of each model in `table` (rows of validator scores): the mean over `keys` of its rank
    among the models (0 = worst, 1 = best; ties share their mean rank; a missing score counts as the middle)."""
    n = len(table)
    if n == 0:
        return []
    if n == 1:
        return [1.0]
    out = np.zeros(n)
    used = 0
    for k in keys:
        vals = np.array([row.get(k, np.nan) for row in table], np.float64)
        if not np.isfinite(vals).any():
            continue
        used += 1
        vals = np.where(np.isfinite(vals), vals, np.nanmedian(vals))
        order = vals.argsort(kind="stable")
        ranks = np.empty(n)
        ranks[order] = np.arange(n, dtype=np.float64)
        for v in np.unique(vals):  # ties share their mean rank
            ranks[vals == v] = ranks[vals == v].mean()
        out += ranks / (n - 1)
    return (out / max(used, 1)).round(4).tolist()
