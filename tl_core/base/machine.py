"""What this machine has: GPUs, CPU cores, free memory. No torch is imported (the web server asks too)."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess

from tl_core.base.limits import setting



@functools.lru_cache(maxsize=1)
def gpu_count() -> int:
    """GPUs visible, without importing torch in the web server (asked once per process)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def cpu_count() -> int:
    """The cores this process may run on (its affinity, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_places() -> int:
    """Runs that train at once on a machine without GPUs: TL_MAX_RUNS, else one, on all the cores. Measured
    on 2 cores (docs/BENCHMARKS.md): two identical runs side by side on one thread each finish 1.36x to
    1.44x as many runs a minute as one after the other on two threads (bench/threads.py: LeNet, frozen
    EfficientNet-Lite0), but each takes 1.3x to 2.5x as long, and the first-visit experiment (two short runs
    and two long ones) answers later, 117 s against 108 s (bench/run_wall.py): its evaluations and feature
    maps, bound by arithmetic, run 3x slower beside another run. A person waits for one run or one
    experiment, so the default answers those first; a server that works through long queues (a class
    each on its own seeds) sets TL_MAX_RUNS=2, and each run then gets one thread."""
    n = int(setting("TL_MAX_RUNS"))
    return n if n > 0 else 1


def run_threads() -> int:
    """Torch threads of one run: TL_THREADS, else the cores shared out over the places (`cpu_places`).
    Fixed per machine and settings, never by the load of the moment: a run's numbers depend on its thread
    count (float sums split differently), so the same command must get the same count to give the same
    numbers (the run key includes it)."""
    n = int(setting("TL_THREADS"))
    if n > 0:
        return n
    if gpu_count():
        return cpu_count()
    return max(1, cpu_count() // cpu_places())


def mem_available_gb() -> float:
    """Memory available to new allocations (MemAvailable), 8 GB when it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 8.0
