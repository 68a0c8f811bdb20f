"""Processes on this machine: is a worker alive (guarding against PID reuse), the children this process
spawned, and the grace a stopping worker gets."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

CANCEL_GRACE_S = 3.0  # SIGTERM (or the store's flag) first; a run still going after this is killed
START_TIMEOUT_S = 60.0  # a run claimed but not yet given a process counts as starting for this long
CHILDREN: list[subprocess.Popen] = []


def proc_start(pid: int) -> str | None:
    """The kernel's start time of a process (guards against PID reuse); None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def process_age_s() -> float | None:
    """Seconds since this process started (interpreter and imports included); None off Linux. Both ends are
    read on the clock since boot (/proc/uptime, 10 ms): the boot time in /proc/stat is whole seconds, which
    added up to a second to every age (a forked worker read 0.34 s of "start" that took a few ms)."""
    try:
        start_ticks = int(proc_start(os.getpid()) or "")
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (ValueError, IndexError, OSError):
        return None
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def alive(pid: int | None, start: str | None) -> bool:
    if not pid:
        return False
    proc = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            fields = proc.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return False
        if fields[0] in ("Z", "X"):  # zombie or dead: exited, not yet reaped
            return False
        return start is None or fields[19] == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_children(grace_s: float = CANCEL_GRACE_S + 2) -> int:
    """SIGTERM every worker this process started that still runs, then wait up to `grace_s` for them:
    each checkpoints at its next batch and leaves its run *interrupted* (resumable). What the web
    server does as it shuts down. Returns how many were signalled."""
    import signal
    import time

    live = [p for p in CHILDREN if p.poll() is None]
    for p in live:
        try:
            p.send_signal(signal.SIGTERM)
        except OSError:
            pass
    deadline = time.time() + grace_s
    for p in live:
        try:
            p.wait(max(0.0, deadline - time.time()))
        except Exception:  # noqa: BLE001 - still going: it records its own state when it stops
            pass
    return len(live)


def reap_children() -> None:
    for p in list(CHILDREN):
        if p.poll() is not None:
            CHILDREN.remove(p)
