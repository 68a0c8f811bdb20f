"""The warm worker (issue 30, item 3): runs forked from a process that has torch imported and the domains
decoded give the same numbers as a freshly started worker, keep every property of a worker process of
their own, and stop with the server."""
import signal
import time

import torch

from test_reuse import finish_all, numbers, tensors, tiny
from tl_core import runs
from tl_core.runs import local, procs


def warm_up(st, timeout=120):
    """Start this home's warm worker and wait until it listens."""
    local.start_warm(st)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (st.home / local.WARM_SOCKET).exists():
            return next(p for p in procs.CHILDREN if getattr(p, "tl_warm", "") == str(st.home))
        time.sleep(0.2)
    raise AssertionError("the warm worker did not start: " + (st.home / "warm.log").read_text()[-2000:])


def forked(run_id) -> bool:
    return "forked from the warm worker" in (runs.store().run_dir(run_id) / "worker.log").read_text()


def training_forked(seed: int) -> str:
    """A long run, forked from the warm worker, once it trains."""
    rid = runs.submit(tiny("source_only", seed=seed, epochs=50, steps_per_epoch=400), fresh=True)
    deadline = time.time() + 120
    while runs.get_run(rid)["status"] != "running" and time.time() < deadline:
        runs.schedule()
        time.sleep(0.2)
    assert forked(rid)
    return rid


def test_a_run_forked_warm_gives_the_numbers_of_a_fresh_worker_bit_for_bit(home, monkeypatch):
    cfg = tiny("dann", seed=11)
    monkeypatch.setenv("TL_WARM", "0")
    cold = runs.submit(cfg, fresh=True)
    finish_all([cold])
    assert not forked(cold)
    monkeypatch.setenv("TL_WARM", "1")
    warm_up(runs.store())
    warm = runs.submit(cfg, fresh=True)
    rc, rw = finish_all([cold, warm])
    assert rc["status"] == rw["status"] == "finished", (rc["reason"], rw["reason"])
    assert forked(warm) and rw["pid"] != rc["pid"] and rw["run_key"] == rc["run_key"]
    assert numbers(cold) == numbers(warm)
    tc, tw = tensors(cold), tensors(warm)
    assert tc.keys() == tw.keys() and all(torch.equal(tc[k], tw[k]) for k in tc)
    phases = (runs.store().run_dir(warm) / "phases.json").read_text()
    assert '"training"' in phases and '"evaluation"' in phases  # where its wall went, for bench/run_wall.py


def test_stopping_the_warm_worker_interrupts_the_runs_it_forked_resumably(home):
    st = runs.store()
    w = warm_up(st)
    rid = training_forked(seed=12)
    w.send_signal(signal.SIGTERM)  # what the server's shutdown does (procs.stop_children)
    w.wait(30)
    r = runs.wait(rid, timeout_s=60)
    assert r["status"] == "interrupted" and "Resume" in r["reason"]
    assert not (st.home / local.WARM_SOCKET).exists()  # a later run starts cold, then a new warm worker


def test_the_warm_worker_is_not_idle_while_a_run_it_forked_trains(home, monkeypatch):
    monkeypatch.setenv("TL_WARM_IDLE_S", "1")  # a run outlasts the idle time many times over
    st = runs.store()
    w = warm_up(st)
    rid = training_forked(seed=14)
    time.sleep(4)  # idle as far as requests go, but its child trains
    assert w.poll() is None, (st.home / "warm.log").read_text()[-1000:]
    assert procs.stop_children() >= 1  # the server's shutdown still reaches the run through it
    r = runs.wait(rid, timeout_s=60)
    assert r["status"] == "interrupted" and "Resume" in r["reason"]


def test_a_run_is_taken_by_one_worker_only(home):
    st = runs.store()
    rid = runs.submit(tiny("source_only", seed=13), fresh=True)
    finish_all([rid])
    assert not st.begin_run(rid, pid=1)  # finished: no second worker may take it
    assert runs.get_run(rid)["status"] == "finished"


def test_a_warm_worker_started_under_other_settings_is_not_used(home, monkeypatch):
    st = runs.store()
    w = warm_up(st)
    monkeypatch.setenv("TL_DOMAIN_CACHE_MB", "512")  # this process's settings changed since the warm one began
    rid = runs.submit(tiny("source_only", seed=14), fresh=True)
    assert finish_all([rid])[0]["status"] == "finished"
    assert not forked(rid)  # started cold, under the settings of now
    w.wait(30)  # and the stale warm worker left
