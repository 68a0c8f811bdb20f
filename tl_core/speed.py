"""How fast runs really are on this machine: the planner's figures were measured on one 2-core machine,
and hosts differ by 3x. Every run that finishes records how long it took against what the planner
estimated for it (without this correction); later estimates for the same backbone and method are
scaled by the median of their last ratios, so an estimate becomes true on the machine that runs it.
Kept in TL_HOME/speed.json (with the runs it learned from, not in the shared cache), per CPU model and
thread count (another machine starts afresh).
"""
from __future__ import annotations

import fcntl
import json
import statistics
from typing import Any

from .limits import setting
from .machine import cpu_count
from .paths import atomic_write_text, tl_home
from .provenance import cpu_model

KEEP = 9  # ratios kept per backbone and method (the median of the last ones)
BOUNDS = (0.2, 5.0)  # a ratio outside this is a run that waited or crashed, not a speed


def _host() -> str:
    return f"{cpu_model()}|{int(setting('TL_THREADS')) or cpu_count()}"


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
    method's finished runs, else of the backbone's, else of every run here, else 1."""
    host = _read().get(_host(), {})
    for keys in ([f"{backbone}|{method}"], [k for k in host if k.startswith(f"{backbone}|")], list(host)):
        ratios = [r for k in keys for r in host.get(k, [])]
        if ratios:
            return float(statistics.median(ratios))
    return 1.0


def known() -> dict[str, list[float]]:
    """This machine's recorded ratios (the bench and the docs read them)."""
    return dict(_read().get(_host(), {}))
