"""How fast runs really are on this machine: the planner's figures were measured on one 2-core machine,
and hosts differ by 3x. Every run that finishes records how long it took against what the planner
estimated for it (without this correction); later estimates for the same backbone and method are
scaled by the median of their last ratios, so an estimate becomes true on the machine that runs it.
Kept in TL_HOME/speed.json (with the runs it learned from, not in the shared cache), per CPU model and
thread count (another machine starts afresh).

Before any run has finished on a machine, a probe measures it (`probe_s`: the wall time of a few steps of
the default run through the real trainer, on synthetic images and this run's thread count,
`tl_core/training/probe.py`, in a subprocess, about 5 s once per machine, kept in TL_HOME/cache/speed/):
the estimate is then scaled by the probe's time against REF_PROBE_S, the probe's time on the machine the
planner's figures describe, so a host 3x slower is estimated 3x slower from its first question. A run's own
steps, not a bare convolution on one thread, whose time did not follow the runs from host to host
(docs/BENCHMARKS.md, "Estimates before the first run"). Wall time, so kept only when the machine was quiet: a reading taken while
others kept the machine busy is kept marked busy and taken again 10 minutes later, until a quiet reading
replaces it.
"""
from __future__ import annotations

import fcntl
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tl_core.base.machine import run_threads
from tl_core.base.paths import PACKAGE_PARENT, atomic_write_text, cache_dir, child_env, tl_home
from tl_core.planning.provenance import cpu_model

KEEP = 9  # ratios kept per backbone and method (the median of the last ones)
BOUNDS = (0.2, 5.0)  # a ratio outside this is a run that waited or crashed, not a speed


def _host() -> str:
    return f"{cpu_model()}|{run_threads()}"


def _path():
    return tl_home() / "speed.json"


def _read() -> dict[str, Any]:
    try:
        d = json.loads(_path().read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def record(backbone: str, method: str, measured_s: float, estimated_s: float) -> None:
    """A finished run's process wall against the planner's uncorrected estimate for it."""
    if not (estimated_s and measured_s) or estimated_s <= 0:
        return
    ratio = measured_s / estimated_s
    if not BOUNDS[0] <= ratio <= BOUNDS[1]:
        return
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        d = _read()
        host = d.setdefault(_host(), {})
        ratios = host.setdefault(f"{backbone}|{method}", [])
        ratios.append(round(ratio, 4))
        del ratios[:-KEEP]
        atomic_write_text(path, json.dumps(d, sort_keys=True))


def factor(backbone: str, method: str) -> float:
    """What to multiply the planner's estimate by on this machine: the median ratio of this backbone and
    method's finished runs, else of the backbone's, else of every run here, else the host probe's."""
    host = _read().get(_host(), {})
    for keys in ([f"{backbone}|{method}"], [k for k in host if k.startswith(f"{backbone}|")], list(host)):
        ratios = [r for k in keys for r in host.get(k, [])]
        if ratios:
            return float(statistics.median(ratios))
    p = probe_s()
    if not p:
        return 1.0
    return min(max(p / REF_PROBE_S, BOUNDS[0]), BOUNDS[1])


# The probe's seconds a step on the machine the planner's figures describe, fitted on the 2-core development
# host: its probe reading times the planner's uncorrected estimates of the default command-line runs (DANN and
# source only, MNIST -> USPS) over their walls, the geometric mean (bench/estimates.py; one core of the host is
# the check). Figures in docs/BENCHMARKS.md.
REF_PROBE_S = 0.0179


BUSY_OTHERS = 0.25  # the share of the machine's CPU time others may take during a probe read as quiet
RETRY_S = 600.0  # a probe read on a busy machine is taken again after this long (from any process)


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine since boot, in jiffies (/proc/stat); None off Linux."""
    try:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return sum(f) - f[3] - f[4], sum(f)


def _probe_path() -> Path:
    return cache_dir("speed") / "probe_step.json"


def _kept() -> dict[str, Any]:
    try:
        d = json.loads(_probe_path().read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def probe_known() -> bool:
    """Whether this machine's probe was read on a quiet machine (then nothing started now can disturb it)."""
    d = _kept()
    v = d.get(_host())
    return isinstance(v, (int, float)) and v > 0 and f"{_host()}|busy_at" not in d


def _measure() -> tuple[float, bool] | None:
    """(seconds a step, whether others kept the machine busy meanwhile), or None if the probe failed."""
    before = _cpu_jiffies()
    env = child_env(TL_THREADS=str(run_threads()))  # the thread count this reading is kept under
    try:
        # a process of its own: the trainer's floor is above this one, and the steps must not share this
        # process's threads or memory
        out = subprocess.run([sys.executable, "-m", "tl_core.training.probe"], capture_output=True, text=True,
                             timeout=300, env=env, cwd=PACKAGE_PARENT)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        wall, cpu, own_cpu = float(got["step_s"]), float(got["step_cpu_s"]), float(got["cpu_s"])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError, KeyError, TypeError):
        return None
    after = _cpu_jiffies()
    busy = False
    if before and after and after[1] > before[1]:
        # the machine's busy time less the probe's own: what others took meanwhile
        own = own_cpu * os.sysconf("SC_CLK_TCK")
        busy = (after[0] - before[0] - own) / (after[1] - before[1]) > BUSY_OTHERS
    # busy: the wall counts the time others held the cores (a test run read 12x slow), the CPU time a step far
    # less (1.8x beside a training run here, through shared caches); the reading is taken again later anyway
    return (min(wall, cpu) if busy else wall), busy


def probe_s() -> float | None:
    """Wall seconds a step of the default run takes on this machine with a run's threads (quiet): measured
    once per machine (a subprocess, a few seconds) and kept, so that every process reads the same. A reading
    taken while other work kept the machine busy is kept marked busy and taken again RETRY_S later, replaced
    by a quiet reading (or a lower busy one). None if it fails."""
    path, host = _probe_path(), _host()
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several pages asking at once: one probe
        d = _kept()
        old, busy_at = d.get(host), d.get(f"{host}|busy_at")
        due = old is None or (busy_at is not None and time.time() - float(busy_at) >= RETRY_S)
        got = _measure() if due else None
        if got is not None:
            value, busy = got
            if not busy:
                d[host] = value
                d.pop(f"{host}|busy_at", None)
            else:
                d[host] = min(value, old) if isinstance(old, (int, float)) else value
                d[f"{host}|busy_at"] = time.time()
            atomic_write_text(path, json.dumps(d, sort_keys=True))
    v = d.get(host)
    return float(v) if isinstance(v, (int, float)) and v > 0 else None


def known() -> dict[str, list[float]]:
    """This machine's recorded ratios (the bench and the docs read them)."""
    return dict(_read().get(_host(), {}))
