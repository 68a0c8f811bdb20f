"""The web server's side of the job manager: one server per TL_HOME (a lock file), and a scheduler
thread that keeps the queue moving so that pages only ever read. Only a live server (or a command that
follows its own work) starts queued runs; when the server stops, so does the queue, and its workers are
interrupted (resumable), not cancelled.

One web server per TL_HOME: `claim_server()` takes a lock file; a second server on the same
home is refused (it would otherwise judge the first one's workers by its own process table).
"""
from __future__ import annotations

import atexit
import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from tl_core.base.paths import tl_home
from tl_core.store import HOST, Store
from tl_core.runs.jobs import schedule
from tl_core.runs.local import stop_warm
from tl_core.runs.procs import stop_children


_SCHEDULERS: dict[str, threading.Thread] = {}
_SCHEDULER_STOPS: dict[str, threading.Event] = {}
# Streamlit runs every session's script in a thread of its own: sessions arriving together on a fresh
# server would each try the lock file (flock refuses a second open file even in the same process) and
# be told that "another server" holds the store, or each start a scheduler
_CLAIM = threading.Lock()


def stop_scheduler(home: str | Path) -> None:
    """End the scheduler thread of a TL_HOME (a test's home that is about to go; a server never needs it)."""
    key = str(home)
    if key in _SCHEDULER_STOPS:
        _SCHEDULER_STOPS.pop(key).set()
        t = _SCHEDULERS.pop(key, None)
        if t is not None:
            t.join(10)
    stop_warm(key)


def start_scheduler(interval_s: float = 0.5) -> None:
    """A daemon thread in the web server that keeps the queue moving for this TL_HOME (reaps dead
    workers, starts queued runs), so that pages only ever read. Idempotent, and safe from any thread.
    A tick that finds nothing queued reads the store and takes no lock (milliseconds); at 2 s a queued
    run waited a second on average after its slot freed, 4 s of a 4-run experiment."""
    with _CLAIM:
        _start_scheduler(interval_s)


def _start_scheduler(interval_s: float) -> None:
    home = str(tl_home())
    if home in _SCHEDULERS and _SCHEDULERS[home].is_alive():
        return
    stop = _SCHEDULER_STOPS[home] = threading.Event()

    def loop() -> None:
        st = None
        while not stop.is_set():
            try:
                st = st or Store(Path(home), interactive=True)
                schedule(st)
            except Exception:  # noqa: BLE001 - a busy or damaged store: try again next tick
                pass
            stop.wait(interval_s)

    t = threading.Thread(target=loop, name=f"tl-scheduler:{home}", daemon=True)
    t.start()
    _SCHEDULERS[home] = t


_SERVER_LOCKS: dict[str, Any] = {}


def claim_server(info: dict[str, Any] | None = None) -> tuple[bool, dict[str, Any]]:
    """Take the web server's lock on this TL_HOME. (True, {}) when this process holds it;
    (False, what the holder wrote) when another server process does. Safe from any thread."""
    with _CLAIM:
        return _claim_server(info)


def _claim_server(info: dict[str, Any] | None) -> tuple[bool, dict[str, Any]]:
    home = tl_home()
    key = str(home)
    if key in _SERVER_LOCKS:
        return True, {}
    path = home / "server.lock"
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        try:
            holder = json.loads(f.read() or "{}")
        except ValueError:
            holder = {}
        f.close()
        return False, holder
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "host": HOST, "started": time.time(), **(info or {})}))
    f.flush()
    _SERVER_LOCKS[key] = f  # held (open) for the life of the process
    if len(_SERVER_LOCKS) == 1:  # the server's shutdown stops its scheduling and interrupts its workers
        atexit.register(shutdown)
    return True, {}


def server_running() -> bool:
    """Whether a web server holds this TL_HOME (and so keeps its queue moving)."""
    key = str(tl_home())
    if key in _SERVER_LOCKS:
        return True
    path = tl_home() / "server.lock"
    if not path.exists():
        return False
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def shutdown() -> None:
    """What the web server does as it stops: no more scheduling, and each worker it started is told to
    stop (it checkpoints and leaves its run interrupted, resumable). Queued runs stay queued and start
    when a server runs again."""
    for home in list(_SCHEDULER_STOPS):
        stop_scheduler(home)
    stop_children()
