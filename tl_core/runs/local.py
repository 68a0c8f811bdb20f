"""Local worker processes (`python -m tl_core worker RUN_ID`), the default executor."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tl_core.base.limits import setting
from tl_core.base.machine import gpu_count
from tl_core.base.paths import PACKAGE_PARENT, child_env
from tl_core.store import Store
from tl_core.runs.executor import Executor
from tl_core.runs.procs import CHILDREN, alive, proc_start
from tl_core.runs.slots import max_concurrent


class LocalExecutor(Executor):
    """Worker processes on this machine (`python -m tl_core worker RUN_ID`), the default."""

    name = "local"

    def capacity(self) -> int:
        return max_concurrent()

    def start(self, st, run_id: str, slot: int) -> None:
        if st.interactive or st.has_queued():  # more runs to come: this one and the next ones start warm
            start_warm(st)
        await_warm(st)  # one this process started (here, or first thing on its command line)
        spawn(st, run_id, slot)

    def cancel(self, st, r: dict[str, Any]) -> None:
        if r["pid"] and alive(r["pid"], r["pid_start"]):
            try:  # the worker stops at its next batch; `reap` kills it if it lingers
                os.kill(r["pid"], signal.SIGTERM)
            except OSError:
                pass


def _worker_env(home: Path) -> tuple[dict[str, str], str]:
    return child_env(TL_HOME=str(home), PYTHONUNBUFFERED="1"), PACKAGE_PARENT


def spawn_advice(st: Store, job_id: str) -> None:
    """Start the process that answers one question to the advisor (`python -m tl_core advice-worker ID`),
    outside the web server: its memory and CPU are its own, and it ends when it has answered."""
    folder = st.home / "advice"
    folder.mkdir(parents=True, exist_ok=True)
    env, pkg_parent = _worker_env(st.home)
    env["TL_THREADS"] = "1"  # beside a training run on a small machine: one core at most
    with open(folder / f"{job_id}.log", "ab") as log:
        p = subprocess.Popen([sys.executable, "-m", "tl_core", "advice-worker", job_id], stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=pkg_parent,
                             start_new_session=True)
    CHILDREN.append(p)
    st.update_advice(job_id, pid=p.pid, pid_start=proc_start(p.pid))


WARM_SOCKET = "warm.sock"  # runs/warm.py listens there


def settings_print() -> str:
    """A digest of this process's TL_* settings: a warm process started under other settings (another data
    folder, other threads) must not fork this one's runs (runs/warm.py compares its own)."""
    import hashlib

    # TL_HOME: the socket is the home's own (and the warm process gets the home's resolved path)
    tl = sorted((k, v) for k, v in os.environ.items() if k.startswith("TL_") and k not in ("TL_HOME", "TL_WARM_IDLE_S"))
    return hashlib.sha256(json.dumps(tl).encode()).hexdigest()[:16]


def _warm_usable(home: Path) -> bool:
    # a forked child of a process that touched CUDA cannot use it: GPU runs start cold (their start is
    # small against their training); a socket path is limited to about 100 bytes
    return (bool(setting("TL_WARM")) and not gpu_count() and not setting("TL_RAY_ADDRESS")
            and len(str(home / WARM_SOCKET)) < 100)


def _warm_spawn(st: Store, run_id: str) -> int | None:
    """Ask this home's warm process for a worker (a forked child that has torch and the domains already);
    None when there is none or it does not answer (the caller starts a cold worker: the worker's own
    check that its run is still waiting keeps a late answer from training a run twice)."""
    r = st.get(run_id)
    domains = [r["config"]["data"]["source"], r["config"]["data"]["target"]] if r else []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10.0)
            s.connect(str(st.home / WARM_SOCKET))
            s.sendall((json.dumps({"run_id": run_id, "domains": domains, "settings": settings_print()})
                       + "\n").encode())
            reply = s.makefile("r").readline(256)
        return int(json.loads(reply)["pid"])  # {"pid": null}: started under other settings, it leaves
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_warm(st: Store) -> None:
    """Start this home's warm process (`python -m tl_core warm`) when none serves it; it exits by itself
    when this process is gone or it has been idle (TL_WARM_IDLE_S)."""
    start_warm_at(st.home)


def start_warm_at(home_path: Path) -> None:
    """`start_warm` before the run store is open: `python -m tl_core train|experiment` calls it first thing, so
    that the warm process imports torch and the library while the command line does the same (about 4 s
    each here, side by side instead of one after the other) and the first run is forked warm."""
    home = str(home_path)
    if not _warm_usable(home_path) or any(getattr(p, "tl_warm", "") == home and p.poll() is None for p in CHILDREN):
        return
    home_path.mkdir(parents=True, exist_ok=True)
    env, pkg_parent = _worker_env(home_path)
    with open(home_path / "warm.log", "ab") as log:
        p = subprocess.Popen([sys.executable, "-m", "tl_core", "warm"], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env, cwd=pkg_parent, start_new_session=True)
    p.tl_warm = home  # type: ignore[attr-defined]
    CHILDREN.append(p)  # the server's shutdown signals it, and it passes that on to the runs it forked


# A warm process listens about 2 s after its start; a cold worker pays the same imports and then about 4 s of
# first-use set-up that a forked child finds done (bench/run_wall.py: the first run of an experiment 7.3 s
# before training against 0.4 s forked), so the first run waits for it, up to this long.
WARM_WAIT_S = 20.0


def await_warm(st: Store, timeout_s: float = WARM_WAIT_S) -> None:
    """Wait until the warm process this process started for the home listens, or is gone, or `timeout_s`."""
    path = st.home / WARM_SOCKET
    mine = [p for p in CHILDREN if getattr(p, "tl_warm", "") == str(st.home)]
    deadline = time.monotonic() + timeout_s
    while not path.exists() and time.monotonic() < deadline and any(p.poll() is None for p in mine):
        time.sleep(0.05)


def stop_warm(home: str | Path) -> None:
    """Stop the warm process this process started for `home` (the runs it forked are told to stop too)."""
    for p in CHILDREN:
        if getattr(p, "tl_warm", "") == str(home) and p.poll() is None:
            p.send_signal(signal.SIGTERM)


def spawn(st: Store, run_id: str, slot: int) -> None:
    """Start the worker process of a claimed run, detached from this one (it outlives the page): forked
    from the warm process when there is one, else a fresh interpreter."""
    rd = st.run_dir(run_id)
    rd.mkdir(parents=True, exist_ok=True)
    if _warm_usable(st.home):
        pid = _warm_spawn(st, run_id)
        if pid is not None:
            st.set_worker(run_id, pid, proc_start(pid))
            return
    env, pkg_parent = _worker_env(st.home)
    gpus = gpu_count()
    if gpus > 1:
        env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)  # a GPU run's slot is its GPU
    with open(rd / "worker.log", "ab") as log:
        p = subprocess.Popen([sys.executable, "-m", "tl_core", "worker", run_id], stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=pkg_parent,
                             start_new_session=True)  # outlives the page and the terminal that started it
    CHILDREN.append(p)
    st.set_worker(run_id, p.pid, proc_start(p.pid))
