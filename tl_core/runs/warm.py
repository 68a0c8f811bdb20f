"""The warm worker (`python -m tl_core warm`): a process that has already imported torch and the library
and keeps recently used domains decoded in memory, and forks one child per run. A child starts
training within a few hundred milliseconds instead of paying for a fresh interpreter, the imports and
the domain load again (about 4 s of a 30 s LeNet run here: bench/run_wall.py).

Each run still has a process of its own (its pid, its log, its signals, its peak memory, its CPU time
for the per-run limit), so everything that watches workers works unchanged. The warm process never
trains, never opens the run store, and never runs a parallel torch operation: it keeps one intra-op
thread, so the children start from a clean OpenMP state and set their own thread count.

One per TL_HOME (a lock file); it listens on TL_HOME/warm.sock, answers a request (a JSON line
{"run_id", "domains"}) with the child's pid, and exits when the process that started it is gone, after
TL_WARM_IDLE_S without a request and without a run it forked still training, when it has grown past its
memory bound, or on SIGTERM (which it passes on to its live children first: the server's shutdown leaves
their runs interrupted).
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

from tl_core.base.errors import TLError
from tl_core.base.limits import setting
from tl_core.store import check_run_id
from tl_core.runs.local import settings_print
from tl_core.runs.procs import CANCEL_GRACE_S, alive, proc_start

SOCKET = "warm.sock"


def socket_path(home: Path) -> Path:
    return home / SOCKET


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _preload(domains: list[str]) -> None:
    """Keep the named domains decoded in this process (children inherit them), where their decoded cache
    is already on disk: a domain never decoded is left to the child, so that a request is never held up."""
    from tl_core.data.domains import get_domain
    from tl_core.base.errors import TLError

    for name in domains:
        try:
            d = get_domain(name)
            if d.cache_path().exists():
                d.load()
        except (TLError, OSError, ValueError):
            pass  # the child meets the same problem and reports it in the run's record


def _prime() -> None:
    """One tiny optimisation step on one thread: torch's lazily imported parts (the optimisers' compiler
    hooks alone take about a second) are loaded here once instead of in every child."""
    import torch

    from tl_core.models.backbones import build_backbone

    bb = build_backbone("lenet", pretrained=False, in_channels=1)
    opt = torch.optim.Adam(bb.parameters(), lr=1e-3)
    x = torch.zeros(2, 1, bb.input_spec.size, bb.input_spec.size)
    bb.features(x).sum().backward()
    opt.step()


def _child(conn: socket.socket, listener: socket.socket, lock, run_id: str, log: str) -> None:
    """In the forked child: become a worker process of its own, train the run, exit."""
    code = 1
    try:
        listener.close()
        conn.close()
        lock.close()  # the warm lock is the warm process's alone: a child must not keep a successor out
        os.setsid()  # outlives the warm process and the page, as a freshly started worker does
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.close(null)
        print(f"[{time.strftime('%H:%M:%S')}] process {os.getpid()} forked from the warm worker {os.getppid()}",
              flush=True)
        from tl_core.runs.worker import worker_main

        code = worker_main(run_id)
    except BaseException:  # noqa: BLE001 - a child must never return into the warm process's loop
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def warm_main() -> int:
    """Entry of `python -m tl_core warm`: serve fork requests for this TL_HOME until told or left to stop."""
    from tl_core.base.paths import tl_home

    home = tl_home()
    home.mkdir(parents=True, exist_ok=True)
    lock = open(home / "warm.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another warm process serves this home
    import torch

    torch.set_num_threads(1)  # no OpenMP pool in this process: a forked child must not inherit one
    from tl_core.runs import worker  # noqa: F401  (the library, the methods, the trainer: what every child needs)

    try:
        import openTSNE  # noqa: F401  (the feature map's import: a second in every cold worker)
    except ImportError:
        pass
    try:
        _prime()
    except Exception:  # noqa: BLE001 - priming only saves time; a child does the same work if it fails
        traceback.print_exc()
    parent = os.getppid()
    mine_settings = settings_print()
    idle_s = float(setting("TL_WARM_IDLE_S"))
    bound_mb = _rss_mb() + float(setting("TL_DOMAIN_CACHE_MB")) + 512
    path = socket_path(home)
    tmp = home / f"{SOCKET}.{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp))
    listener.listen(16)
    os.replace(tmp, path)  # ready only now: a client that came earlier started a cold worker instead
    mine = os.stat(path).st_ino
    listener.settimeout(1.0)
    children: dict[int, str | None] = {}
    stopping = []

    def on_term(*_) -> None:
        stopping.append(True)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    last = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] warm worker {os.getpid()} ready", flush=True)
    try:
        while not stopping:
            if os.getppid() != parent or _rss_mb() > bound_mb:
                break
            if time.time() - last > idle_s:
                children = {p: s for p, s in children.items() if alive(p, s)}
                if not children:
                    break
                # not idle while a run it forked trains: the server's shutdown reaches that run through here
                last = time.time()
            try:
                conn, _ = listener.accept()
            except (socket.timeout, InterruptedError):
                continue
            except OSError:
                break
            last = time.time()
            try:
                conn.settimeout(5.0)
                req = json.loads(conn.makefile("r").readline(4096))
                run_id, domains = str(req["run_id"]), [str(d) for d in req.get("domains", [])][:2]
                log = str(home / "runs" / check_run_id(run_id) / "worker.log")  # a run id, never a path
                same = req.get("settings") == mine_settings
            except (OSError, ValueError, KeyError, TypeError, TLError):
                conn.close()
                continue
            if not same:  # the caller's settings changed since this process started: it starts cold, and a
                # warm process with its settings replaces this one
                try:
                    conn.sendall(b'{"pid": null}\n')
                finally:
                    conn.close()
                break
            pid = os.fork()
            if pid == 0:
                _child(conn, listener, lock, run_id, log)
            children[pid] = proc_start(pid)
            try:
                conn.sendall((json.dumps({"pid": pid}) + "\n").encode())
            except OSError:
                pass
            conn.close()
            _preload(domains)  # after the answer: the next run on these domains finds them decoded
            children = {p: s for p, s in children.items() if alive(p, s)}
    finally:
        try:
            if os.stat(path).st_ino == mine:  # not a successor's socket
                path.unlink()
        except OSError:
            pass
        listener.close()
        if stopping:  # the server shuts down: its runs are interrupted, resumable
            live = {p: s for p, s in children.items() if alive(p, s)}
            for p in live:
                try:
                    os.kill(p, signal.SIGTERM)
                except OSError:
                    pass
            deadline = time.time() + CANCEL_GRACE_S + 1
            while time.time() < deadline and any(alive(p, s) for p, s in live.items()):
                time.sleep(0.1)
    return 0
