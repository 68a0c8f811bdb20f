"""Label-free validators (issue 31, item 1) against numpy references written from their papers."""
import math

import numpy as np
import pytest

from tl_core.scores.validators import (
    COMPOSITE, VALIDATORS, Reading, bnm, class_ami, composite_ranks, ensemble_agreement, read_all, softmax
)


def reference_bnm(logits):
    """Cui et al. (2020): ||A||_* / n for the n x k matrix A of softmax outputs; singular values are the square
    roots of the eigenvalues of A^T A."""
    a = np.exp(logits - logits.max(1, keepdims=True))
    a = a / a.sum(1, keepdims=True)
    eig = np.linalg.eigvalsh(a.T @ a)
    return float(np.sqrt(np.clip(eig, 0, None)).sum() / len(a))


def reference_ami(u, v):
    """Adjusted mutual information (Vinh, Epps & Bailey, 2010) with the arithmetic mean of the entropies,
    from the contingency table and the hypergeometric expectation of the mutual information."""
    n = len(u)
    cu, cv = np.unique(u), np.unique(v)
    table = np.array([[np.sum((u == a) & (v == b)) for b in cv] for a in cu], np.float64)
    a, b = table.sum(1), table.sum(0)
    nz = table > 0
    mi = np.sum(table[nz] / n * np.log(n * table[nz] / np.outer(a, b)[nz]))
    h = lambda c: -np.sum(c / n * np.log(c / n))  # noqa: E731
    emi = 0.0
    for ai in a:
        for bj in b:
            for nij in range(int(max(1, ai + bj - n)), int(min(ai, bj)) + 1):
                logp = (math.lgamma(ai + 1) + math.lgamma(bj + 1) + math.lgamma(n - ai + 1) + math.lgamma(n - bj + 1)
                        - math.lgamma(n + 1) - math.lgamma(nij + 1) - math.lgamma(ai - nij + 1)
                        - math.lgamma(bj - nij + 1) - math.lgamma(n - ai - bj + nij + 1))
                emi += nij / n * math.log(n * nij / (ai * bj)) * math.exp(logp)
    return (mi - emi) / (0.5 * (h(a) + h(b)) - emi)


def test_bnm_matches_the_reference_and_rewards_confident_diverse_predictions():
    rng = np.random.default_rng(0)
    for scale in (0.1, 1.0, 5.0):
        z = rng.normal(size=(300, 7)) * scale
        assert bnm(z) == pytest.approx(reference_bnm(z), rel=1e-9)
    k = 5
    confident_diverse = np.eye(k)[np.arange(200) % k] * 20
    confident_one_class = np.eye(k)[np.zeros(200, int)] * 20
    unsure = np.zeros((200, k))
    assert bnm(confident_diverse) == pytest.approx(math.sqrt(200 / k) * k / 200, rel=1e-6)
    assert bnm(confident_diverse) > bnm(unsure) and bnm(confident_diverse) > bnm(confident_one_class)


def test_class_ami_is_the_ami_of_the_feature_clusters_and_the_predictions():
    rng = np.random.default_rng(1)
    k, per = 4, 60
    truth = np.repeat(np.arange(k), per)
    centres = np.eye(16)[:k] * 10
    feats = centres[truth] + rng.normal(size=(k * per, 16)) * 0.1  # clusters k-means cannot miss
    preds = np.where(rng.random(k * per) < 0.7, truth, rng.integers(0, k, k * per))
    logits = np.eye(k)[preds] * 5
    assert class_ami(feats, logits) == pytest.approx(reference_ami(truth, preds), abs=1e-9)
    assert class_ami(feats, np.eye(k)[truth] * 5) == pytest.approx(1.0)
    shuffled = rng.permutation(truth)
    assert abs(class_ami(feats, np.eye(k)[shuffled] * 5)) < 0.05  # chance: near 0, not near 1


def test_ensemble_agreement_counts_images_where_the_model_says_what_the_mean_prediction_says():
    rng = np.random.default_rng(2)
    models = [rng.normal(size=(100, 3)) for _ in range(4)]
    mean = np.mean([softmax(m) for m in models], axis=0)
    for m in models:
        ref = sum(int(np.argmax(m[i]) == np.argmax(mean[i])) for i in range(100)) / 100
        assert ensemble_agreement(m, mean) == pytest.approx(ref)


def test_read_all_gives_every_validator_and_the_ensemble_only_with_one():
    rng = np.random.default_rng(3)
    r = Reading(rng.normal(size=(50, 3)), rng.integers(0, 3, 50), rng.normal(size=(80, 3)), rng.normal(size=(80, 8)))
    alone = read_all(r)
    assert set(alone) == {v.key for v in VALIDATORS if not v.needs_ensemble}
    both = read_all(Reading(r.val_logits, r.val_labels, r.target_logits, r.target_features,
                            ensemble_probs=softmax(r.target_logits)))
    assert both["ensemble"] == 1.0 and set(COMPOSITE) <= set(both)


def test_composite_ranks_average_the_ranks_and_share_ties():
    table = [{"a": 1.0, "b": 3.0}, {"a": 2.0, "b": 2.0}, {"a": 3.0, "b": 1.0}, {"a": 3.0, "b": 4.0}]
    # a: ranks 0, 1, 2.5, 2.5 (a tie); b: 1, 0, ... ; over n - 1 = 3, averaged
    ranks = composite_ranks(table, ("a", "b"))
    assert ranks == pytest.approx([(0 / 3 + 2 / 3) / 2, (1 / 3 + 1 / 3) / 2, (2.5 / 3 + 0) / 2, (2.5 / 3 + 1) / 2],
                                  abs=1e-4)
    assert composite_ranks([{"a": 1.0}], ("a",)) == [1.0]
    assert composite_ranks(table, ("missing",)) == [0.0] * 4


@pytest.mark.parametrize("shape", [(200, 30), (40, 300)])
def test_principal_components_are_an_svds_projections_with_a_fixed_sign(shape):
    """The one PCA of the map, the domain gap and ClassAMI: the SVD's projections (up to each axis's sign,
    which is fixed: the largest projection on each axis is positive), whichever side of the data is wider."""
    from tl_core.scores.embed import pca

    rng = np.random.default_rng(1)
    x = rng.normal(size=shape) @ np.diag(np.linspace(3, 0.1, shape[1])) + 5.0
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    ref = xc @ vt[:5].T
    p = pca(x, 5)
    assert p.shape == (shape[0], 5)
    np.testing.assert_allclose(np.abs(p), np.abs(ref), atol=1e-8)
    assert (p[np.abs(p).argmax(0), np.arange(5)] > 0).all()
    np.testing.assert_allclose(pca(x[::-1], 5), pca(x, 5)[::-1], atol=1e-8)  # the same axes whatever the row order
