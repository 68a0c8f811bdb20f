"""The run store under faults: locked by another program, damaged or deleted while the server runs,
shared by two servers by mistake. Pages must answer, nothing on disk may be lost."""
import logging
import os
import subprocess
import sys
import time

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, tiny_config
from tl_core import NotVisible, StoreBusy
from tl_core.app import api
from tl_core import runs
from tl_core.policy.access import session_from_token
from tl_core.planning.validation import validate

APP = str(ROOT / "app.py")
LOCKER = ("import sqlite3, sys, time\n"
          "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
          "c.execute('PRAGMA locking_mode=EXCLUSIVE'); c.execute('BEGIN EXCLUSIVE')\n"
          "c.execute(\"UPDATE runs SET name=name\")\n"
          "print('locked', flush=True); time.sleep(float(sys.argv[2]))\n")


def cfg(**train):
    return validate(tiny_config(images=200, **{"epochs": 1, "steps_per_epoch": 5, "batch_size": 8, **train}))


def lock_store(home, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", LOCKER, str(home / "runs.db"), str(seconds)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def finished_run(rid: str, owner: str = "cli", published: bool = True) -> None:
    st = runs.store()
    st.insert_run(rid, cfg().to_dict(), owner=owner, published=published)
    st.update(rid, status="finished", target_acc=0.75, source_acc=0.9, epoch=1, best_epoch=1, wall_s=3.0)
    st.add_metrics(rid, 1, {"epoch": 1, "source_acc": 0.9, "target_acc": 0.75, "wall_s": 3.0}, {"epoch": 1})


def test_reads_never_start_workers(home):
    rid = runs.store().insert_run("queued-one", cfg().to_dict(), owner="cli") or "queued-one"
    me = session_from_token(None)[0]
    for _ in range(5):
        api.list_runs(me)
        api.get_run(me, rid)
        api.queue_summary(me)
        runs.get_run(rid)
        runs.list_runs()
    r = runs.get_run(rid)
    assert r["status"] == "queued" and r["pid"] is None  # looking started nothing
    runs.cancel(rid)


def test_a_store_locked_for_a_minute_gives_busy_not_a_hang(home):
    finished_run("before-lock")
    locker = lock_store(home, 60)
    try:
        runs.set_interactive(True)
        with pytest.raises(StoreBusy, match="busy"):
            runs.list_runs()
        at = AppTest.from_file(APP, default_timeout=60)  # a hang would fail here, after 60 s
        at.run()
        at.switch_page("pages/5_compare.py").run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("busy" in w.value and "Retrying" in w.value for w in at.warning), [w.value for w in at.warning]
        with pytest.raises(StoreBusy):  # a submit is refused with the same notice, nothing half-written
            api.submit(cfg().to_dict(), session_from_token(None)[0])
    finally:
        locker.kill()
        locker.wait()
    assert [r["id"] for r in runs.list_runs()] == ["before-lock"]
    assert not [p for p in (home / "runs").iterdir() if p.name != "before-lock"]


def test_a_worker_survives_a_lock_in_the_middle_of_its_run(home, monkeypatch):
    rid = runs.submit(cfg(epochs=2, steps_per_epoch=60))
    deadline = time.time() + 120
    while time.time() < deadline and runs.get_run(rid)["status"] != "running":
        runs.schedule()
        time.sleep(0.2)
    locker = lock_store(home, 8)  # progress writes are skipped, metric and status writes wait
    locker.wait(30)
    r = runs.wait(rid, timeout_s=240)
    assert r["status"] == "finished", (r["status"], r["reason"])
    assert len(runs.read_metrics(rid)[0]) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "deleted"])
def test_a_damaged_or_deleted_index_is_rebuilt_from_the_run_folders(home, damage):
    alice = session_from_token(None)[0]
    finished_run("run-a", owner=alice.owner, published=False)
    finished_run("run-b")
    runs.store().insert_run("run-q", cfg().to_dict(), owner=alice.owner)  # queued
    db = home / "runs.db"
    for suffix in ("-wal", "-shm"):
        if damage == "deleted":
            (home / f"runs.db{suffix}").unlink(missing_ok=True)
    if damage == "garbage":
        db.write_bytes(os.urandom(8192))
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[:100])
    else:
        db.unlink()
    # the server keeps running: its next read notices, keeps the damaged file, rebuilds, re-indexes
    rows = {r["id"]: r for r in runs.list_runs()}
    assert set(rows) == {"run-a", "run-b", "run-q"}
    assert rows["run-a"]["status"] == "finished" and rows["run-a"]["target_acc"] == 0.75
    assert rows["run-a"]["owner"] == alice.owner and not rows["run-a"]["published"]
    assert rows["run-b"]["published"] and rows["run-q"]["status"] == "queued"
    assert runs.read_metrics("run-a")[0][0]["target_acc"] == 0.75
    kept = list(home.glob("runs.db.damaged-*"))
    assert (len(kept) >= 1) == (damage != "deleted")
    # sessions still own what they owned
    assert {r["id"] for r in api.list_runs(alice)} == {"run-a", "run-b", "run-q"}
    assert {r["id"] for r in api.list_runs(session_from_token(None)[0])} == {"run-b"}


def test_a_second_server_on_the_same_home_is_refused(home):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]);"
                               "from tl_core.app import api; print(api.start_server(8599)[0], flush=True);"
                               "time.sleep(60)", str(ROOT)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "TL_HOME": str(home)})
    try:
        assert holder.stdout.readline().strip() == "True"
        ok, why = api.start_server(8600)
        assert not ok and f"process {holder.pid}" in why and "TL_HOME=" in why and "port 8599" in why
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        assert any("Another TransferLab server" in e.value for e in at.error)
        assert not at.title  # the guide does not open on a store it does not own
    finally:
        holder.kill()
        holder.wait()


def test_sessions_of_one_server_arriving_at_once_all_get_the_guide(home, monkeypatch):
    """30 browsers on a freshly started server run their first page at the same moment: every one of
    them is this server's session; none may be told that "another server" holds the store (it was its
    own process, one thread a moment ahead), and one scheduler thread serves them all."""
    import threading

    from tl_core.runs import scheduler

    real = scheduler.fcntl.flock

    class SlowLock:  # the moment between taking the lock and recording it, made long enough to be met
        LOCK_EX, LOCK_NB = scheduler.fcntl.LOCK_EX, scheduler.fcntl.LOCK_NB

        @staticmethod
        def flock(f, op):
            real(f, op)
            time.sleep(0.3)

    monkeypatch.setattr(scheduler, "fcntl", SlowLock)
    gate = threading.Barrier(8)
    answers, scheds = [], []

    def first_page(port):
        gate.wait()
        answers.append(api.start_server(port))
        scheds.append(scheduler._SCHEDULERS.get(str(home)))

    threads = [threading.Thread(target=first_page, args=(8600,)) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert answers == [(True, "")] * 8
        assert len({id(t) for t in scheds}) == 1 and scheds[0].is_alive()
        assert sum(t.name == f"tl-scheduler:{home}" for t in threading.enumerate()) == 1
    finally:
        scheduler.stop_scheduler(home)
        f = scheduler._SERVER_LOCKS.pop(str(home), None)
        if f is not None:
            f.close()


def test_runs_of_another_machine_are_not_judged_by_this_ones_process_table(home):
    st = runs.store()
    st.insert_run("elsewhere", cfg().to_dict())
    st.update("elsewhere", status="running", pid=999_999, host="another-machine")
    st.insert_run("here", cfg().to_dict())
    st.update("here", status="running", pid=999_999)  # this machine, a dead pid
    runs.reap()
    assert runs.get_run("elsewhere")["status"] == "running"
    assert runs.get_run("here")["status"] == "interrupted"


def test_users_see_no_tracebacks_but_the_server_log_keeps_them(caplog, monkeypatch):
    import tomllib

    conf = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert conf["client"]["showErrorDetails"] == "none"
    assert conf["client"]["toolbarMode"] == "viewer"
    sys.path.insert(0, str(ROOT))
    from streamlit.testing.v1 import AppTest as T

    script = ("import streamlit as st\nfrom pages._ui import error_box\n"
              "try:\n    {}['missing']\nexcept Exception as e:\n    error_box(e)\n")
    at = T.from_string(script, default_timeout=30)
    with caplog.at_level(logging.ERROR, logger="transferlab.app"):
        at.run()
    assert any("Something went wrong on our side (KeyError)" in e.value for e in at.error)
    assert not any("Traceback" in e.value or "missing" in e.value for e in at.error)
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_a_locked_store_reads_as_busy_never_as_a_deleted_run(home, monkeypatch):
    """Under another program's exclusive lock, every call on a run or an experiment that exists says
    "busy" (and the page retries); "no such run" is only for a row that is absent."""
    from tl_core import experiments

    me = session_from_token(None)[0]
    finished_run("mine-1", owner=me.owner, published=False)
    monkeypatch.setattr(runs.jobs, "schedule", lambda st=None: [])  # queued only: nothing trains here
    spec = experiments.from_methods("syndigits", "uci_digits", ["dann"], (0,),
                                    base={"train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8,
                                                    "embedding": "none"}, "data": {"max_per_domain": 200}})
    exp_id = api.launch_experiment(spec.to_dict(), me)
    calls = {
        "get run": lambda: api.get_run(me, "mine-1"),
        "publish run": lambda: api.publish_run(me, "mine-1", True),
        "cancel run": lambda: api.cancel_run(me, "mine-1"),
        "delete run": lambda: api.delete_run(me, "mine-1"),
        "experiment progress": lambda: api.experiment_progress(me, exp_id),
        "experiment view": lambda: api.view_experiment(me, exp_id),
        "cancel experiment": lambda: api.cancel_experiment(me, exp_id),
        "delete experiment": lambda: api.delete_experiment(me, exp_id),
        "publish experiment": lambda: api.publish_experiment(me, exp_id, True),
    }
    locker = lock_store(home, 120)
    try:
        runs.set_interactive(True)
        for what, call in calls.items():
            with pytest.raises(StoreBusy, match="busy"):
                call()
    finally:
        locker.kill()
        locker.wait()
        runs.set_interactive(False)
    assert api.get_run(me, "mine-1")["status"] == "finished"  # nothing was lost or changed
    assert api.experiment_progress(me, exp_id)["runs"] == 2
    with pytest.raises(NotVisible):
        api.get_run(me, "no-such-run")
