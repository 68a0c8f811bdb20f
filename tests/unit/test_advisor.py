"""The advisor without training: transferability scores that rank what they should, the gate, the page's call
and one list of scores (what needs LeNet's brief training is in tests/integration/test_advisor_jobs.py)."""
import json

import numpy as np
import pytest

from conftest import named_session
from tl_core.advice import advisor
from tl_core.app import api
from tl_core.scores import transferability as T
from tl_core.base.errors import TLError

PAIR = ("uci_digits", "syndigits")  # small built-in digit domains


def _clusters(separated: float, n: int = 400, d: int = 32, k: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.normal(size=(k, d)) * separated
    return centres[y] + rng.normal(size=(n, d)), y, centres


def test_source_scores_rank_separable_features_above_noise():
    good, y, _ = _clusters(3.0)
    poor, _, _ = _clusters(0.3)
    for score in (T.logme, T.h_score, T.knn_loo_accuracy):
        assert score(good, y) > score(poor, y), score.__name__
    assert T.knn_loo_accuracy(good, y) > 0.95 and T.knn_loo_accuracy(np.random.default_rng(1).normal(size=(400, 32)), y) < 0.4


def test_label_free_scores_tell_a_target_near_the_source_classes_from_one_that_is_not():
    fs, ys, centres = _clusters(3.0)
    rng = np.random.default_rng(5)
    yt = rng.integers(0, 5, 300)
    near = centres[yt] + rng.normal(size=(300, 32))
    far = rng.normal(size=(300, 32)) * 3
    assert T.centroid_margin(fs, ys, near) > T.centroid_margin(fs, ys, far)
    head_near, head_far = T.source_head_on_target(fs, ys, near), T.source_head_on_target(fs, ys, far)
    assert head_near["target_entropy"] < head_far["target_entropy"]
    assert 0.0 <= head_near["target_balance"] <= 1.0


def test_logme_matches_its_definition_on_a_small_case():
    """LogME's evidence at its fixed point equals the Gaussian marginal likelihood computed directly."""
    rng = np.random.default_rng(0)
    f, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    got = T.logme(f, y, iterations=200)
    # the direct marginal likelihood of t ~ N(0, I/beta + F F^T/alpha) at the (alpha, beta) LogME settles on
    # cannot be read back, so check the maximum instead: the evidence at LogME's point beats a grid of others
    def evidence(t, alpha, beta):
        cov = np.eye(len(f)) / beta + f @ f.T / alpha
        sign, logdet = np.linalg.slogdet(cov)
        return -0.5 * (t @ np.linalg.solve(cov, t) + logdet + len(t) * np.log(2 * np.pi)) / len(t)
    best = np.mean([max(evidence((y == k).astype(float), a, b) for a in np.logspace(-3, 3, 25)
                        for b in np.logspace(-2, 2, 25)) for k in (0, 1)])
    assert got == pytest.approx(best, abs=0.02)


@pytest.fixture(scope="module")
def home(advisor_home):
    return advisor_home


def test_the_page_door_gates_the_names_first(home):
    me = named_session("advice")
    with pytest.raises(TLError, match="cannot be used here"):
        api.ask_advisor(me, "folder:/etc", "mnist")
    with pytest.raises(TLError, match="cannot be used here"):
        api.ask_advisor(me, "upload:" + "f" * 32 + "/theirs", "mnist")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def _big_folder(root, n_per_class: int):
    """Two class folders of tiny PNGs (the same bytes in every file: writing 10,000 takes a second)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(buf, "PNG")
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            (root / c / f"{i:05d}.png").write_bytes(buf.getvalue())
    return root


def test_the_pages_call_on_two_10000_image_folders_returns_at_once_and_the_job_samples_them(home, tmp_path,
                                                                                              monkeypatch):
    """Issue 29, item 2: the advisor runs outside the web server. The page's call only queues the question
    (the server grows by at most a few MB); the job decodes a few hundred images per domain, never the
    whole folder."""
    import time

    from tl_core.app import experiments as page_door
    from tl_core.data.domains import folder

    a, b = _big_folder(tmp_path / "a", 5000), _big_folder(tmp_path / "b", 5000)
    monkeypatch.setenv("TL_FOLDER_ROOTS", str(tmp_path))
    started = []
    monkeypatch.setattr(page_door.runs, "schedule", lambda st=None: started.append(1))  # the server's thread would
    me = named_session("folders")
    before, t0 = _rss_mb(), time.perf_counter()
    job = api.ask_advisor(me, f"folder:{a}", f"folder:{b}")
    took, grew = time.perf_counter() - t0, _rss_mb() - before
    assert job["status"] == "queued" and started and job["result"] is None
    assert grew <= 100, grew
    assert took < 60  # a generous bound that turns a hang into a failure (the figure is seconds)
    assert api.advice_job(me, job["id"])["status"] == "queued"
    assert api.ask_advisor(me, f"folder:{a}", f"folder:{b}")["id"] == job["id"]  # one question, not two
    with pytest.raises(TLError, match="one question at a time"):
        api.ask_advisor(me, f"folder:{b}", f"folder:{a}")
    with pytest.raises(TLError, match="no question"):  # another session cannot read it
        api.advice_job(named_session("someone-else"), job["id"])
    decoded = []
    real = folder.load_image
    monkeypatch.setattr(folder, "load_image", lambda f, size=224: decoded.append(f) or real(f, size))
    x, y, total = folder.FolderDomain(a).sample(advisor.PER_DOMAIN // 2, seed=0, size=advisor.SCORE_SIZE,
                                                splits=("train", "test"))
    assert total == 10_000 and len(decoded) == len(x) == advisor.PER_DOMAIN and sorted(set(y.tolist())) == [0, 1]


def test_one_list_of_scores_drives_the_scores_the_predictor_and_the_words():
    SCORES, score_all = T.SCORES, T.score_all
    rng = np.random.default_rng(0)
    fs, ys, ft = rng.normal(size=(60, 8)), np.arange(60) % 3, rng.normal(size=(40, 8))
    got = score_all(fs, ys, ft, n_target=40)
    assert list(got) == [s.key for s in SCORES]  # every score computed, in the registry's order
    assert list(advisor.FEATURES) == [s.key for s in SCORES]
    assert json.loads(advisor.MODEL_FILE.read_text())["features"] == list(advisor.FEATURES)  # the fit read them
    assert SCORES[0].show(0.912) == "k-NN 91%"
