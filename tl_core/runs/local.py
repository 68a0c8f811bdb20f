"""Local worker processes (`python -m tl_core worker RUN_ID`), the default executor."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..machine import gpu_count
from ..store import Store
from .executor import Executor
from .procs import CHILDREN, alive, proc_start
from .slots import max_concurrent


class LocalExecutor(Executor):
    """Worker processes on this machine (`python -m tl_core worker RUN_ID`), the default."""

    name = "local"

    def capacity(self) -> int:
        return max_concurrent()

    def start(self, st, run_id: str, slot: int) -> None:
        spawn(st, run_id, slot)

    def cancel(self, st, r: dict[str, Any]) -> None:
        if r["pid"] and alive(r["pid"], r["pid_start"]):
            try:  # the worker stops at its next batch; `reap` kills it if it lingers
                os.kill(r["pid"], signal.SIGTERM)
            except OSError:
                pass


def _worker_env(st: Store) -> tuple[dict[str, str], str]:
    env = dict(os.environ)
    pkg_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["TL_HOME"] = str(st.home)
    env["PYTHONUNBUFFERED"] = "1"
    return env, pkg_parent


def spawn_advice(st: Store, job_id: str) -> None:
    """Start the process that answers one question to the advisor (`python -m tl_core advice-worker ID`),
    outside the web server: its memory and CPU are its own, and it ends when it has answered."""
    folder = st.home / "advice"
    folder.mkdir(parents=True, exist_ok=True)
    env, pkg_parent = _worker_env(st)
    env["TL_THREADS"] = "1"  # beside a training run on a small machine: one core at most
    with open(folder / f"{job_id}.log", "ab") as log:
        p = subprocess.Popen([sys.executable, "-m", "tl_core", "advice-worker", job_id], stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=pkg_parent,
                             start_new_session=True)
    CHILDREN.append(p)
    st.update_advice(job_id, pid=p.pid, pid_start=proc_start(p.pid))


def spawn(st: Store, run_id: str, slot: int) -> None:
    """Start the worker process of a claimed run, detached from this one (it outlives the page)."""
    rd = st.run_dir(run_id)
    rd.mkdir(parents=True, exist_ok=True)
    env, pkg_parent = _worker_env(st)
    gpus = gpu_count()
    if gpus > 1:
        env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)  # a GPU run's slot is its GPU
    with open(rd / "worker.log", "ab") as log:
        p = subprocess.Popen([sys.executable, "-m", "tl_core", "worker", run_id], stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=pkg_parent,
                             start_new_session=True)  # outlives the page and the terminal that started it
    CHILDREN.append(p)
    st.set_worker(run_id, p.pid, proc_start(p.pid))
