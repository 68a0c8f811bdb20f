"""The run store and job manager with real worker processes: kill, resume, queue limit, cancel,
concurrent readers."""
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
import types

import pytest

from conftest import ROOT, tiny_config
from tl_core import runs


@pytest.fixture(autouse=True, scope="module")
def _decoded_once():
    from tl_core.data.domains import get_domain

    get_domain("syndigits").load()  # decode once, outside the timed parts
    get_domain("uci_digits").load()


def cfg(epochs=2, steps=30, seed=0, embedding="pca"):
    return tiny_config(epochs=epochs, steps_per_epoch=steps, embedding=embedding, embed_points=50, seed=seed)


def wait_for(pred, timeout=90, poll=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(poll)
    raise AssertionError("condition not met in time")


def test_sigkill_marks_interrupted_and_resume_matches_uninterrupted(home):
    killed = runs.submit(cfg(epochs=3, steps=120))
    twin = runs.submit(cfg(epochs=3, steps=120))  # same config: runs after, never interrupted
    assert twin != killed and runs.get_run(twin)["status"] == "queued"
    # let it finish one epoch, then kill it in the middle of the second
    wait_for(lambda: (p := runs.read_progress(killed)) and p["epoch"] == 2 and p["step"] > 130, timeout=120, poll=0.05)
    pid = runs.get_run(killed)["pid"]
    os.kill(pid, signal.SIGKILL)
    r = wait_for(lambda: (runs.schedule(), r := runs.get_run(killed))[1]["status"] == "interrupted" and r, timeout=60)
    assert r, "the killed run was never marked interrupted"
    assert "interrupted" in r["reason"] and "Resume" in r["reason"]
    assert runs.get_run(twin)["status"] in ("queued", "starting", "running")  # untouched, and now scheduled
    # the CLI shows it
    out = subprocess.run([sys.executable, "-m", "tl_core", "runs", "show", killed, "--json"], cwd=ROOT,
                         capture_output=True, text=True, env=dict(os.environ), timeout=60)
    shown = json.loads(out.stdout)
    assert shown["status"] == "interrupted" and shown["epoch"] == 1 and shown["reason"]
    assert {"source_acc", "target_acc"} <= set(shown)
    assert runs.wait(twin, timeout_s=180)["status"] == "finished"
    runs.resume(killed)
    done = runs.wait(killed, timeout_s=180)
    assert done["status"] == "finished" and done["epoch"] == 3
    assert done["target_acc"] == pytest.approx(runs.get_run(twin)["target_acc"], abs=1e-3)
    history, _ = runs.read_metrics(killed)
    assert [h["epoch"] for h in history] == [1, 2, 3]


def _submit_many(home: str, n: int, seed0: int, q) -> None:
    os.environ["TL_HOME"] = home
    q.put([runs.submit(cfg(epochs=1, steps=3, seed=seed0 + i, embedding="none")) for i in range(n)])


def test_ten_runs_from_several_processes_respect_the_limit_and_all_finish(home, monkeypatch):
    # Streamlit's AppTest leaves the last app script as __main__, and a spawned child re-runs
    # __main__'s file; a blank __main__ keeps this test independent of which tests ran before.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_submit_many, args=(str(home), n, 100 * i, q)) for i, n in enumerate((4, 3, 3))]
    for p in procs:
        p.start()
    active_max = 0
    ids: list[str] = []
    deadline = time.time() + 300
    while time.time() < deadline:
        runs.schedule()  # this process plays the server: workers never start the next run themselves
        st = runs.store()
        active = st.read("SELECT COUNT(*) AS n FROM runs WHERE status IN ('starting','running')")[0]["n"]
        active_max = max(active_max, active)
        while not q.empty():
            ids += q.get()
        rows = runs.list_runs()
        if len(ids) == 10 and len(rows) == 10 and all(r["status"] in ("finished", "failed") for r in rows):
            break
        time.sleep(0.1)
    for p in procs:
        p.join(10)
    rows = runs.list_runs()
    assert len(rows) == 10 and len(set(ids)) == 10
    assert all(r["status"] == "finished" for r in rows), [(r["id"], r["status"], r["reason"]) for r in rows]
    assert active_max <= 1


def test_cancel_takes_effect_while_a_reader_polls_at_10_hz(home):
    run_id = runs.submit(cfg(epochs=5, steps=400))
    errors: list[BaseException] = []
    reads = {"n": 0}
    stop = threading.Event()

    def reader():
        cursor = 0
        while not stop.is_set():
            try:
                runs.get_run(run_id)
                runs.read_progress(run_id)
                _, cursor = runs.read_metrics(run_id, cursor)
                runs.read_embedding(run_id)
                reads["n"] += 1
            except BaseException as e:  # noqa: BLE001 - any error fails the test
                errors.append(e)
            time.sleep(0.1)

    th = threading.Thread(target=reader)
    th.start()
    try:
        wait_for(lambda: (r := runs.get_run(run_id))["status"] == "running" and (runs.read_metrics(run_id)[0]),
                 timeout=120)
        runs.cancel(run_id)
        # a generous deadline that turns a hang into a failure; how fast a cancel lands is bench/ material
        done = wait_for(lambda: (runs.schedule(), runs.get_run(run_id)["status"] == "cancelled")[1], timeout=60)
    finally:
        stop.set()
        th.join()
    assert done, f"the cancel never took effect: {runs.get_run(run_id)['status']}"
    assert not errors, errors[:3]
    assert reads["n"] >= 10
    # the partial run keeps its checkpoint and can be resumed later
    assert runs.checkpoint_path(run_id, "last") is not None


def test_queued_run_cancels_at_once_and_delete_removes_everything(home, monkeypatch):
    monkeypatch.setenv("TL_MAX_RUNS", "1")
    first = runs.submit(cfg(epochs=1, steps=200))
    second = runs.submit(cfg(epochs=1, steps=3, seed=5))
    assert runs.get_run(second)["queue_position"] == 1
    assert runs.cancel(second)["status"] == "cancelled"
    runs.delete(first)
    assert all(r["id"] != first for r in runs.list_runs())
    assert not (home / "runs" / first).exists()
    with pytest.raises(Exception, match="There is no run"):
        runs.get_run(first)


def test_load_model_of_a_finished_run(home):
    run_id = runs.submit(cfg(epochs=1, steps=10))
    assert runs.wait(run_id, timeout_s=120)["status"] == "finished"
    pred = runs.load_model(run_id)
    assert pred.classes == [str(i) for i in range(10)]
    emb = runs.read_embedding(run_id)
    assert emb["epoch"] == 1 and len(emb["x"]) == 100


def test_sigterm_interrupts_a_run_resumably_and_no_worker_starts_the_next(home):
    """A SIGTERM with no cancel asked for (the server shutting down, a kill from a terminal) leaves the
    run interrupted with its checkpoint, and the worker hands nothing on: with no server, what is queued
    stays queued."""
    first = runs.submit(cfg(epochs=3, steps=60))
    second = runs.submit(cfg(epochs=1, steps=3, seed=1))
    wait_for(lambda: runs.get_run(first)["epoch"] >= 1, timeout=180, poll=0.2)
    os.kill(runs.get_run(first)["pid"], signal.SIGTERM)
    r = wait_for(lambda: (lambda x: x if x["status"] not in ("starting", "running") else None)(runs.get_run(first)),
                 timeout=60)
    assert r["status"] == "interrupted" and "Resume it" in r["reason"], r["reason"]
    assert runs.checkpoint_path(first, "last") is not None
    time.sleep(3)  # a worker that handed on would have started the second by now
    assert runs.get_run(second)["status"] == "queued"
    runs.resume(first)  # resumable: from the page or `runs resume`
    assert runs.wait(first, timeout_s=240)["status"] == "finished"


def test_the_servers_shutdown_interrupts_its_workers(home):
    from tl_core.runs import procs

    run_id = runs.submit(cfg(epochs=3, steps=200))
    wait_for(lambda: runs.get_run(run_id)["status"] == "running" and runs.get_run(run_id)["epoch"] >= 1,
             timeout=180, poll=0.2)
    assert procs.stop_children() >= 1
    r = runs.get_run(run_id)
    assert r["status"] == "interrupted", (r["status"], r["reason"])
