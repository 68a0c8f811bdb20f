"""How uncertain a reading is: a 95 % interval on one accuracy (Wilson), and on a gain between two
strategies measured on the same seeds and the same target images (a paired bootstrap over seeds and
images), so that a verdict counts the evaluation set's own sampling error, not only seed spread."""
from __future__ import annotations

import base64
import math
import statistics
from typing import Sequence

import numpy as np

Z95 = 1.959963984540054


def wilson(correct: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of an accuracy `correct / n` (95 % by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_ci(acc: float | None, n: int | None) -> list[float] | None:
    """[low, high] of one run's accuracy on `n` evaluation images, or None when either is unknown."""
    if acc is None or not n:
        return None
    lo, hi = wilson(round(acc * n), int(n))
    return [round(lo, 4), round(hi, 4)]


def pack_bits(correct: np.ndarray) -> str:
    """Which evaluation images a run got right, as compact text (base64 of the bits)."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode()


def unpack_bits(text: str, n: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))
    return bits[:n].astype(bool)


# Student's t, 97.5 % quantile, by degrees of freedom: a mean over 2-5 seeds is uncertain
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation over seeds: (None, None) for none, a std of 0 for one value."""
    vals = [float(v) for v in values]
    if not vals:
        return None, None
    return statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def t975(df: int) -> float:
    return T975.get(df, Z95) if df >= 1 else float("inf")


def paired_gain(strategy: Sequence[np.ndarray], baseline: Sequence[np.ndarray], draws: int = 2000,
                seed: int = 0) -> tuple[float, float, float]:
    """(gain, low, high): the mean accuracy difference strategy - baseline over seeds, with a 95 %
    percentile interval from a bootstrap that resamples the seeds (when there are several) and the
    target images together; `strategy[i]` and `baseline[i]` are one seed's per-image correctness on the
    same images, so what both got right or wrong alike cancels (a paired difference). With one seed
    the interval covers the test images' luck only. (Student's t over 2 seeds would make a second seed
    widen the interval tenfold: a grid would be surer with one seed than with two.)"""
    if not strategy or len(strategy) != len(baseline):
        raise ValueError("one correctness vector per seed for both strategies")
    d = np.stack([np.asarray(s, np.float32) - np.asarray(b, np.float32) for s, b in zip(strategy, baseline)])
    n_seeds, n_img = d.shape
    gain = float(d.mean())
    rng = np.random.default_rng(seed)
    out = np.empty(draws, np.float64)
    chunk = max(1, min(draws, 20_000_000 // max(n_img, 1)))
    for i in range(0, draws, chunk):
        k = min(chunk, draws - i)
        w = rng.multinomial(n_img, np.full(n_img, 1.0 / n_img), size=k).astype(np.float32) / n_img  # (k, N)
        per_seed = w @ d.T  # (k, S): each seed's mean difference on the resampled images
        if n_seeds > 1:
            pick = rng.integers(0, n_seeds, size=(k, n_seeds))
            out[i:i + k] = np.take_along_axis(per_seed, pick, 1).mean(1)
        else:
            out[i:i + k] = per_seed[:, 0]
    lo, hi = np.percentile(out, [2.5, 97.5])
    return gain, float(lo), float(hi)


def normal_gain(a_mean: float, a_std: float, a_n: int, b_mean: float, b_std: float, b_n: int,
                a_eval_n: int | None, b_eval_n: int | None) -> tuple[float, float, float]:
    """The same interval when per-image results are not recorded (runs made before they were): each
    mean's seed error and binomial test-set error, unpaired (wider than the paired one), normal."""
    var = 0.0
    for m, s, n, e in ((a_mean, a_std, a_n, a_eval_n), (b_mean, b_std, b_n, b_eval_n)):
        if e:
            var += m * (1 - m) / e / max(n, 1)
        if n > 1:
            var += (s or 0.0) ** 2 / n
    gain = a_mean - b_mean
    half = Z95 * math.sqrt(var)
    return gain, gain - half, gain + half
