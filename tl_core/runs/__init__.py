"""Runs that outlive the page: the job API (submit, a fair queue, cancel, resume, read), where runs
train (local worker processes or a Ray cluster) and the web server's scheduler thread.

    procs, slots          process liveness; how many runs fit and where (CPU places, GPU shares)
    sink                  a run's events written into the run store
    executor              the executor contract; local (worker processes), cluster (Ray); executors picks one
    jobs                  the job API, `schedule()` and `reap()`
    worker                `python -m tl_core worker RUN_ID`: one run's process
    scheduler             the web server's lock on TL_HOME and its scheduler thread

Workers are separate processes, so a crash cannot take the web server down and a cancel can escalate
to a kill. With TL_RAY_ADDRESS set, `schedule()` hands claimed runs to the Ray executor instead
(`runs.cluster`): the limit is what the cluster holds, and the process that dispatched a run watches it.
"""
from ..store import set_interactive, store
from . import jobs
from .jobs import (cancel, checkpoint_path, delete, embedding_epochs, field_sources, get_run, list_runs, load_model,
                   read_embedding, read_metrics, read_progress, reap, resolve_reference, resume, submit, wait)
from .procs import CANCEL_GRACE_S
from .scheduler import claim_server, server_running, start_scheduler, stop_scheduler
from .sink import StoreSink, duration_words, wall_limit_reason
from .slots import SMALL_SHARE, assign_slots, device_share

__all__ = ["CANCEL_GRACE_S", "SMALL_SHARE", "StoreSink", "cancel", "checkpoint_path", "claim_server", "delete",
           "device_share", "duration_words", "embedding_epochs", "field_sources", "get_run", "list_runs",
           "load_model", "assign_slots", "read_embedding", "read_metrics", "read_progress", "reap", "resolve_reference",
           "resume", "schedule", "server_running", "set_interactive", "start_scheduler", "stop_scheduler", "store", "submit", "wait",
           "wall_limit_reason"]


def __getattr__(name: str):
    # `schedule` is looked up in `jobs` at each use, not copied here: the job API calls it from inside
    # `jobs`, so there is one name to replace (a test that queues without starting replaces jobs.schedule)
    if name == "schedule":
        return jobs.schedule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
