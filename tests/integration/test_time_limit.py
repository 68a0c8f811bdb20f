"""A run past its time limit is stopped, and its reason names the limit."""

import pytest

from conftest import isolated_home, named_session as sess, tiny_config
from tl_core.planning.validation import validate


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = isolated_home(tmp_path / "home")
    monkeypatch.setenv("TL_HOME", str(h))
    monkeypatch.delenv("TL_FOLDER_ROOTS", raising=False)
    return h


# -- 2. memory and disk bounded by decoded pixels --------------------------------------------------


def test_a_run_past_its_time_limit_is_stopped_with_the_limit_named(home, monkeypatch):
    from tl_core import runs

    monkeypatch.setenv("TL_MAX_RUNS", "1")
    cfg = tiny_config("source_only", images=200, epochs=50, steps_per_epoch=200)  # far past its 3 s limit
    rid = runs.submit(validate(cfg), owner=sess("a").owner, published=False, wall_limit_s=3)
    r = runs.wait(rid, timeout_s=300)
    assert r["status"] == "cancelled" and "time limit of 3 s" in r["reason"], (r["status"], r["reason"])
