"""The worker process of one run (`python -m tl_core worker RUN_ID`): trains it, writing everything to
the run store, and hands its slot on when it ends."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
import time
import traceback

from tl_core.models.checkpoint import Checkpointer
from tl_core.config import RunConfig
from tl_core.base.errors import TLError
from tl_core.base.limits import setting
from tl_core.base.machine import run_threads
from tl_core.base.paths import atomic_write_text
from tl_core.planning.planner import raw_estimate
from tl_core.planning import speed
from tl_core.store import HOST, store
from tl_core.training.trainer import Trainer
from tl_core.runs.jobs import resolve_reference
from tl_core.runs.procs import process_age_s, proc_start
from tl_core.runs.sink import StoreSink, wall_limit_reason


def worker_main(run_id: str) -> int:
    """Entry of `python -m tl_core worker RUN_ID`: train one run, writing everything to the store."""
    started = process_age_s()  # interpreter start and imports (torch, tl_core) before this line
    st = store()
    r = st.get(run_id)
    if r is None or r["status"] not in ("starting", "queued"):
        print(f"run {run_id} is not waiting to start ({r and r['status']})", file=sys.stderr)
        return 1
    if not st.begin_run(run_id, pid=os.getpid(), pid_start=proc_start(os.getpid()), heartbeat=time.time(),
                        reason="", host=HOST, executor="local", node=HOST):
        print(f"run {run_id} was taken by another worker or cancelled before this one began", file=sys.stderr)
        return 1
    try:  # training yields the CPU to the web server: pages stay responsive while a run trains
        os.nice(int(setting("TL_WORKER_NICE")))
    except (OSError, ValueError, AttributeError):
        pass
    stop, signalled = threading.Event(), threading.Event()

    def on_signal(*_) -> None:
        signalled.set()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    last_check = [0.0]
    limit = r.get("wall_limit_s")
    threads = run_threads()
    sink = StoreSink(st, run_id)

    def own_seconds() -> float:
        # the run's own CPU time over its threads: what it would have taken alone, so a run merely slowed
        # down by other jobs on the machine is not stopped by the per-run limit
        return time.process_time() / threads

    def cancel_asked() -> bool:
        try:
            return st.cancel_requested(run_id)
        except (TLError, sqlite3.Error):
            return False  # a locked store must not stall training: ask again next time

    judged = threading.Event()  # a signal's meaning (a cancel or an interruption) is read once

    def should_stop() -> bool:
        if signalled.is_set() and not judged.is_set():
            # a signal with no cancel asked for (the server shutting down, a kill from a terminal) leaves
            # the run interrupted, resumable from its last checkpoint; a user's cancel sets the store's
            # flag before it signals
            judged.set()
            if not cancel_asked():
                sink.stop_status, sink.cancel_reason = "interrupted", INTERRUPTED
        if stop.is_set():
            return True
        now = time.time()
        if limit and own_seconds() > limit:
            sink.cancel_reason = wall_limit_reason(limit)
            stop.set()
        elif now - last_check[0] > 0.5:  # the store's flag, for when a signal could not be sent
            last_check[0] = now
            if cancel_asked():
                stop.set()
        return stop.is_set()

    def heartbeat() -> None:
        while not stop.wait(2.0):
            try:
                st.update(run_id, heartbeat=time.time())
            except (TLError, sqlite3.Error):
                pass

    threading.Thread(target=heartbeat, daemon=True).start()
    print(f"[{time.strftime('%H:%M:%S')}] worker {os.getpid()} starts run {run_id}", flush=True)
    try:
        cfg = RunConfig.from_dict(r["config"])
        res = Trainer(cfg, on_event=sink, should_stop=should_stop, checkpointer=Checkpointer(st.run_dir(run_id)),
                      resolve_run=resolve_reference).fit()
        age = process_age_s()
        if res.status == "finished" and age:  # how fast runs really are here: later estimates learn from it
            speed.record(cfg.model.backbone, cfg.method.name, age, raw_estimate(cfg))
        _write_phases(st.run_dir(run_id), started, res.phases, res.wall_s, age)
    except TLError as e:
        st.finish_if_active(run_id, "failed", str(e))
    except Exception as e:  # a bug of ours: keep the traceback in the log, say where it is
        traceback.print_exc()
        st.finish_if_active(run_id, "failed", f"internal error: {type(e).__name__}: {e} "
                                              f"(details in the run's worker.log on the server)")
    finally:
        stop.set()
        try:  # the worker's peak resident memory: what the classroom quotas and the planner need to know
            import resource

            st.update(run_id, peak_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
        except (TLError, sqlite3.Error, ImportError):
            pass
        # no `schedule()` here: only a live server (or a command following its work) starts queued runs,
        # so stopping the server stops the queue instead of leaving workers that hand it on
        print(f"[{time.strftime('%H:%M:%S')}] worker {os.getpid()} ends run {run_id}", flush=True)
    return 0


def _write_phases(run_dir, started: float | None, phases: dict[str, float], fit_s: float,
                  age: float | None) -> None:
    """phases.json: where this worker's wall went (`bench/run_wall.py` reads it)."""
    out = {"process start and imports": started, **phases, "fit": fit_s, "process so far": age}
    try:
        atomic_write_text(run_dir / "phases.json", json.dumps({k: v for k, v in out.items() if v is not None}))
    except OSError:
        pass


INTERRUPTED = ("interrupted: the worker was told to stop (the server shut down, or a signal from the machine) "
               "before it finished. Resume it to continue from its last checkpoint (the end of its last "
               "finished epoch).")
