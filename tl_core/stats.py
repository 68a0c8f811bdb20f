"""How uncertain a reading is: a 95 % interval on one accuracy (Wilson), and on a gain between two
strategies measured on the same seeds and the same target images (a paired bootstrap over seeds and
images), so that a verdict counts the evaluation set's own sampling error, not only seed spread."""
from __future__ import annotations

import base64
import math
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


def t975(df: int) -> float:
    return T975.get(df, Z95) if df >= 1 else float("inf")


def paired_gain(strategy: Sequence[np.ndarray], baseline: Sequence[np.ndarray], draws: int = 2000,
                seed: int = 0) -> tuple[float, float, float]:
    """(gain, low, high): the mean accuracy difference strategy - baseline over seeds with a 95 %
    interval that adds two independent errors: the test images' (a bootstrap over images of the
    seed-averaged difference, paired: `strategy[i]` and `baseline[i]` are one seed's per-image
    correctness on the same images, so what both got right or wrong alike cancels) and the seeds'
    (Student's t on the per-seed differences; none with one seed, where the seed error is unknown
    and the interval covers the test images only)."""
    if not strategy or len(strategy) != len(baseline):
        raise ValueError("one correctness vector per seed for both strategies")
    d = np.stack([np.asarray(s, np.float32) - np.asarray(b, np.float32) for s, b in zip(strategy, baseline)])
    n_seeds, n_img = d.shape
    gain = float(d.mean())
    mean_d = d.mean(0)  # per image, averaged over seeds
    rng = np.random.default_rng(seed)
    boots = np.empty(draws, np.float64)
    chunk = max(1, min(draws, 20_000_000 // max(n_img, 1)))
    for i in range(0, draws, chunk):
        k = min(chunk, draws - i)
        w = rng.multinomial(n_img, np.full(n_img, 1.0 / n_img), size=k).astype(np.float32) / n_img
        boots[i:i + k] = w @ mean_d
    half_img = Z95 * float(boots.std())
    half_seed = 0.0
    if n_seeds > 1:
        per_seed = d.mean(1)
        half_seed = t975(n_seeds - 1) * float(per_seed.std(ddof=1)) / math.sqrt(n_seeds)
    half = math.hypot(half_img, half_seed)
    return gain, gain - half, gain + half


def normal_gain(a_mean: float, a_std: float, a_n: int, b_mean: float, b_std: float, b_n: int,
                a_eval_n: int | None, b_eval_n: int | None) -> tuple[float, float, float]:
    """The same interval when per-image results are not recorded (runs made before they were): each
    mean's seed error (Student's t) and binomial test-set error, unpaired (wider than the paired one)."""
    img, seed_half = 0.0, 0.0
    for m, s, n, e in ((a_mean, a_std, a_n, a_eval_n), (b_mean, b_std, b_n, b_eval_n)):
        if e:
            img += m * (1 - m) / e / max(n, 1)
        if n > 1:
            seed_half = math.hypot(seed_half, t975(n - 1) * (s or 0.0) / math.sqrt(n))
    gain = a_mean - b_mean
    half = math.hypot(Z95 * math.sqrt(img), seed_half)
    return gain, gain - half, gain + half
