"""How fast runs really are on this machine: the planner's figures were measured on one 2-core machine,
and hosts differ by 3x. Every run that finishes records how long it took against what the planner
estimated for it (without this correction); later estimates for the same backbone and method are
scaled by the median of their last ratios, so an estimate becomes true on the machine that runs it.
Kept in TL_HOME/speed.json (with the runs it learned from, not in the shared cache), per CPU model and
thread count (another machine starts afresh).

Before any run has finished on a machine, a probe measures it (`probe_s`: the CPU time of a LeNet-sized
training step on one thread, in a subprocess, about 3 s once per machine, kept in TL_HOME/cache/speed/):
the estimate is then scaled by the probe's time against REF_PROBE_S, the probe's time on the machine the
planner's figures describe, and by how much a run gains from its threads (`thread_gain`), so a host 3x
slower is estimated 3x slower from its first question. CPU time, not wall, and kept only when the machine
was quiet: on this 2-core host a step's CPU time reads 0.057 s alone and 0.10 s beside a training run (its
two cores share one physical core's caches), so a reading taken while the machine's other cores were busy
is kept marked busy and taken again 10 minutes later, until a quiet reading replaces it.
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
from tl_core.base.paths import atomic_write_text, cache_dir, tl_home
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
    return min(max(p / REF_PROBE_S * thread_gain(REF_THREADS) / thread_gain(run_threads()), BOUNDS[0]), BOUNDS[1])


def thread_gain(threads: int) -> float:
    """How much faster a small run trains on `threads` threads than on one: threads ** 0.63 (1.55x for two), from
    the default command-line runs on the 2-core development host in a first sitting of bench/estimates.py on
    2026-12-07, 1.46x (source only) and 1.61x (DANN) faster on two threads than on one. The committed
    bench/results/estimates*.json are a later sitting, which checks this (1.31x and 1.44x there)."""
    return max(1, threads) ** 0.63


# The probe's CPU seconds a step (one thread) on the machine the planner's figures describe, with that
# machine's thread count: set on the 2-core development host (AMD EPYC) on 2026-12-07, where the probe reads
# 0.058-0.060 s and the default command-line runs took 1.52x their uncorrected estimates (the geometric mean
# of four runs, DANN 1.57x and 1.41x, source only 1.66x and 1.44x, two earlier sittings of bench/estimates.py;
# the committed results are a third, read with this reference): 0.059 / 1.52. One core of the same host (`taskset -c 0`, a slower machine) checks it: same probe, the
# thread gain alone.
REF_PROBE_S, REF_THREADS = 0.039, 2
PROBE = """
import sys, time, torch
torch.set_num_threads(1)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                          torch.nn.Conv2d(32, 64, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                          torch.nn.Linear(1024, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
def steps(n):
    for _ in range(n):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
steps(5)
best = 1e9
for _ in range(3):
    t = time.process_time()
    steps(20)
    best = min(best, (time.process_time() - t) / 20)
print(best)
"""


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
    return cache_dir("speed") / "probe_cpu.json"


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
    """(a step's CPU seconds, whether others kept the machine busy meanwhile), or None if the probe failed."""
    before = _cpu_jiffies()
    try:
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
        value = float(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    after = _cpu_jiffies()
    busy = False
    if before and after and after[1] > before[1]:
        # the probe itself keeps one core busy: what is above that was others' work
        busy = (after[0] - before[0]) / (after[1] - before[1]) - 1 / max(os.cpu_count() or 1, 1) > BUSY_OTHERS
    return value, busy


def probe_s() -> float | None:
    """CPU seconds a LeNet-sized training step (two domains' batches) takes on one thread of this machine:
    measured once per machine (a subprocess, a few seconds) and kept, so that every process reads the same. A
    reading taken while other work kept the other cores busy is kept marked busy and taken again RETRY_S later,
    replaced by a quiet reading (or a lower busy one). None if it fails."""
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
