"""Target accuracy estimated without target labels (issue 31, item 2): average thresholded confidence
against a numpy reference written from the paper, and on a real run beside the measured accuracy."""
import numpy as np
import pytest

from tl_core.scores.metrics import atc_estimate


def reference_atc(val_logits, val_labels, target_logits):
    """Garg et al. (2022), ATC-MC, by exhaustive search: the threshold t for which the share of validation
    images whose max-softmax score is below t is closest to the validation error; the estimate is the share
    of target images scoring at or above t."""
    def conf(z):
        p = np.exp(z - z.max(1, keepdims=True))
        return (p / p.sum(1, keepdims=True)).max(1)

    cv, ct = conf(val_logits), conf(target_logits)
    err = np.mean(val_logits.argmax(1) != val_labels)
    cands = np.sort(cv)
    t = min(cands, key=lambda c: abs(np.mean(cv < c) - err))
    return float(np.mean(ct >= t))


def test_atc_matches_the_reference_on_random_models():
    rng = np.random.default_rng(0)
    for k in range(5):
        n_val, n_tgt, classes = 800 + 100 * k, 2000, 10
        val = rng.normal(size=(n_val, classes)) * (1 + k)
        labels = np.where(rng.random(n_val) < 0.7, val.argmax(1), rng.integers(0, classes, n_val))
        tgt = rng.normal(size=(n_tgt, classes)) * (0.5 + k)
        est, (lo, hi) = atc_estimate(val, labels, tgt)
        assert est == pytest.approx(reference_atc(val, labels, tgt), abs=2 / n_val + 1e-9)
        assert lo <= est <= hi and 0 <= lo and hi <= 1


def test_atc_reads_the_validation_accuracy_when_the_target_looks_like_the_source():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6000, 10)) * 3
    labels = np.where(rng.random(6000) < 0.8, logits.argmax(1), rng.integers(0, 10, 6000))
    est, _ = atc_estimate(logits[:3000], labels[:3000], logits[3000:])
    true_acc = np.mean(logits[3000:].argmax(1) == labels[3000:])
    assert abs(est - true_acc) < 0.03  # no shift: the estimate is the accuracy, within sampling
