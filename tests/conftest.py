"""Test set-up: a private TL_HOME per session, TL_DATA_DIR pointing at the shared real data."""
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("TL_DATA_DIR"):
    os.environ["TL_DATA_DIR"] = str((ROOT.parent / "shared" / "data").resolve())
os.environ.setdefault("TL_OFFLINE", "1")  # tests never wait on the network
os.environ.setdefault("TL_WARM_IDLE_S", "20")  # a test home's warm worker does not outlive its tests for long
os.environ["TL_HOME"] = os.environ.get("TL_TEST_HOME") or str(Path(os.environ.get("TMPDIR", "/tmp")) / "tl-test-home")
Path(os.environ["TL_HOME"]).mkdir(parents=True, exist_ok=True)

DATA = Path(os.environ["TL_DATA_DIR"])
HAS_MNIST = (DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()
HAS_USPS = (DATA / "usps.bz2").exists() and (DATA / "usps.t.bz2").exists()
PACS = DATA / "PACS_subset50"

needs_mnist = pytest.mark.skipif(not HAS_MNIST, reason="MNIST not in TL_DATA_DIR")
needs_usps = pytest.mark.skipif(not HAS_USPS, reason="USPS not in TL_DATA_DIR")
needs_pacs = pytest.mark.skipif(not PACS.exists(), reason="PACS subset not in TL_DATA_DIR")


def pytest_collection_modifyitems(config, items):
    """Each test is marked with its tier, the folder it lives in: `-m unit`, `-m integration`, `-m e2e`."""
    for it in items:
        tier = Path(str(it.path)).relative_to(ROOT / "tests").parts[0]
        if tier in ("unit", "integration", "e2e"):
            it.add_marker(getattr(pytest.mark, tier))


def tiny_config(method: str = "dann", *, images: int = 300, backbone: str = "lenet", target_labels=None,
                params: dict | None = None, source: str = "syndigits", target: str = "uci_digits", **train):
    """The one tiny run every test starts from: Synthetic digits -> UCI digits (built in, offline), LeNet,
    2 epochs x 6 steps of 16 images, no feature map. A test names only what it needs to differ."""
    from tl_core import RunConfig

    data = {"source": source, "target": target, "max_per_domain": images}
    if target_labels is not None:
        data["target_labels"] = target_labels
    return RunConfig().replace(data=data, model={"backbone": backbone}, method={"name": method, "params": params or {}},
                               train={"epochs": 2, "steps_per_epoch": 6, "batch_size": 16, "embedding": "none",
                                      **train})


def isolated_home(path: Path) -> Path:
    """A fresh TL_HOME (own run store) that shares the session's decoded-domain cache."""
    shared = Path(os.environ.get("TL_HOME_SESSION") or os.environ["TL_HOME"]) / "cache"
    shared.mkdir(parents=True, exist_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    link = path / "cache"
    if not link.exists():
        link.symlink_to(shared)
    return path


os.environ.setdefault("TL_HOME_SESSION", os.environ["TL_HOME"])


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The one test home: a fresh TL_HOME (its own run store, the session's decoded domains shared), one run
    at a time, no folder roots. Whatever it left going is stopped at its end: the server's scheduler thread,
    runs still queued or training, its warm process."""
    h = isolated_home(tmp_path / "home")
    monkeypatch.setenv("TL_HOME", str(h))
    monkeypatch.setenv("TL_MAX_RUNS", "1")
    monkeypatch.delenv("TL_FOLDER_ROOTS", raising=False)
    yield h
    from tl_core import runs
    from tl_core.base.paths import tl_home
    from tl_core.runs import local

    runs.set_interactive(False)
    runs.stop_scheduler(tl_home())  # an app test started the server's scheduler thread for this home
    for r in runs.store().list():  # no run of this home may start or outlive its test
        if r["status"] in ("queued", "starting", "running"):
            runs.cancel(r["id"], wait_s=10)
    local.stop_warm(runs.store().home)


@contextmanager
def module_home(tmp_path_factory, name: str):
    """A fresh TL_HOME (see `isolated_home`) for a whole test module, the previous one put back after."""
    old = os.environ["TL_HOME"]
    home = isolated_home(tmp_path_factory.mktemp(name))
    os.environ["TL_HOME"] = str(home)
    try:
        yield home
    finally:
        os.environ["TL_HOME"] = old


def class_zip(name: str, per_class: int = 5) -> bytes:
    """A small zip of two class folders (`name/a/*.png`, `name/b/*.png`): what a student uploads."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, c in enumerate(("a", "b")):
            for i in range(per_class):
                img = io.BytesIO()
                Image.fromarray(np.full((8, 8, 3), 20 * i + 7 * k, np.uint8)).save(img, "PNG")
                z.writestr(f"{name}/{c}/{i}.png", img.getvalue())
    return buf.getvalue()


def png(v: int = 0, size: int = 10) -> bytes:
    """A small flat PNG of grey level `v`."""
    import io

    import numpy as np
    from PIL import Image

    b = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), v, np.uint8)).save(b, "PNG")
    return b.getvalue()


def zipped(entries: dict) -> bytes:
    """A zip of {member name: bytes}, stored as given."""
    import io
    import zipfile

    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for n, d in entries.items():
            z.writestr(n, d)
    return b.getvalue()


def good_zip(prefix: str = "set", n: int = 5) -> bytes:
    """A well-formed upload: two class folders of `n` images each under `prefix/`."""
    return zipped({f"{prefix}/{c}/{i}.png": png(10 * i + k) for k, c in enumerate("ab") for i in range(n)})


def flip_zip_header(data: bytes, offset_in_header: int, value: bytes) -> bytes:
    """Change a field in every local and central header of a zip (an encrypted flag, a method id)."""
    out = bytearray(data)
    for sig, off in ((b"PK\x03\x04", offset_in_header), (b"PK\x01\x02", offset_in_header + 2)):
        pos = 0
        while (pos := out.find(sig, pos)) >= 0:
            out[pos + off:pos + off + len(value)] = value
            pos += 4
    return bytes(out)


@pytest.fixture(scope="module")
def advisor_home(tmp_path_factory):
    """A TL_HOME for one module of advisor tests, probes at the smallest schedule that shows the behaviour
    (one adapted candidate, a few seconds)."""
    with module_home(tmp_path_factory, "advisor") as h, pytest.MonkeyPatch.context() as mp:
        mp.setenv("TL_ADVISOR_PROBES", "1")
        mp.setenv("TL_ADVISOR_PROBE_S", "16")
        yield h


def toy_advisor_model() -> dict:
    """A predictor in the shipped format (bench/advisor.py writes the real one): accuracy rises with k-NN,
    CORAL a little above the other methods."""
    from tl_core.advice import advisor

    feats = list(advisor.FEATURES)
    methods = ["source_only", "dann", "coral"]
    coef = [0.0] * (1 + len(feats) + 2 * len(methods))
    coef[1 + feats.index("knn")] = 1.0
    coef[1 + len(feats) + methods.index("coral")] = 0.5
    return {"features": feats, "methods": methods, "mean": [0.0] * len(feats), "sd": [1.0] * len(feats),
            "coef": coef, "resid_sd": 0.05, "gain_resid_sd": 0.04,
            "track_record": {"cells": 3, "pairs": 1, "kendall_tau_median": 0.5, "auroc_beats_source_only": None}}


def named_session(name: str, seated: bool = True):
    """A browser session whose token is derived from `name` (the same name, the same session); seated
    (a student who opened the teacher's join link) unless `seated` is False."""
    from tl_core.policy.access import Session, session_from_token

    s = session_from_token((name + "-token-" * 8)[:40])[0]
    return Session(s.owner, seated=True, who=name) if seated else s


TIERS = ROOT / "tests"


class TierBreach(AssertionError):
    """A unit test that trained, or started a worker, server or browser: it belongs in tests/integration."""


@pytest.fixture(autouse=True, scope="module")
def _unit_tier_trains_nothing(request):
    """The unit tier's rule, enforced for a whole module (its module-scoped fixtures too): no training and
    no process of the product (a worker, the warm process, a server, a browser). A unit test that needs
    one fails, naming the tier it belongs to."""
    if TIERS / "unit" not in Path(str(request.node.path)).parents:
        yield
        return
    import subprocess

    from tl_core.planning import speed
    from tl_core.runs import local
    from tl_core.training.trainer import Trainer

    breaches: list[str] = []  # kept, so that code that catches the error cannot hide the breach

    def breach(what: str):
        breaches.append(what)
        raise TierBreach(f"a unit test {what}: move it to tests/integration")

    def refuse(what):
        return lambda *a, **k: breach(what)

    popen = subprocess.Popen.__init__

    def guarded_popen(self, args, *a, **k):
        argv = [str(x) for x in args] if isinstance(args, (list, tuple)) else str(args).split()
        if "tl_core" in " ".join(argv) or any(Path(x).name in ("streamlit", "chromium", "ray") for x in argv):
            breach(f"started {' '.join(argv)[:80]!r}")
        popen(self, args, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "fit", refuse("trained"))
        mp.setattr(local, "spawn", refuse("started a worker"))
        mp.setattr(local, "start_warm_at", refuse("started the warm process"))
        mp.setattr(subprocess.Popen, "__init__", guarded_popen)
        # the host's speed probe trains a few steps in a process of its own (tests/integration/test_speed.py):
        # here every estimate reads as the reference machine's, whatever host runs the tests
        mp.setattr(speed, "probe_s", lambda: speed.REF_PROBE_S)
        yield
    assert not breaches, f"{request.node.path.name}: a unit test {breaches[0]}: move it to tests/integration"
