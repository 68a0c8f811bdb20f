"""Which executor a run uses: the one TL_RAY_ADDRESS chooses for new runs, the one a run's record names."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from tl_core.store import Store
from tl_core.runs.cluster import executor_name, ray_executor
from tl_core.runs.executor import Executor
from tl_core.runs.local import LocalExecutor


def current(home: Path, reschedule: Callable[[Store], Any] | None = None) -> Executor:
    """The executor that TL_RAY_ADDRESS chooses, for the run store at `home`; `reschedule` is called
    when a run it watches ends (the Ray executor's own thread notices that; local workers call it)."""
    if executor_name() != "ray":
        return LocalExecutor()
    ex = ray_executor(home)
    if reschedule is not None:
        ex.reschedule = reschedule
    return ex


def for_run(r: dict[str, Any], home: Path) -> Executor:
    """The executor a run was started by (its record says)."""
    return ray_executor(home) if r.get("executor") == "ray" else LocalExecutor()
