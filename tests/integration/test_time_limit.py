"""A run past its time limit is stopped, and its reason names the limit."""

from conftest import named_session as sess, tiny_config
from tl_core.planning.validation import validate


def test_a_run_past_its_time_limit_is_stopped_with_the_limit_named(home, monkeypatch):
    from tl_core import runs

    monkeypatch.setenv("TL_MAX_RUNS", "1")
    cfg = tiny_config("source_only", images=200, epochs=50, steps_per_epoch=200)  # far past its 3 s limit
    rid = runs.submit(validate(cfg), owner=sess("a").owner, published=False, wall_limit_s=3)
    r = runs.wait(rid, timeout_s=300)
    assert r["status"] == "cancelled" and "time limit of 3 s" in r["reason"], (r["status"], r["reason"])
