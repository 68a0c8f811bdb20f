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
import importlib

from tl_core.store import set_interactive, store

# Names are read from their modules at first use, not imported here: `python -m tl_core train` starts the warm
# process before it imports torch (runs.local is light), and every name stays where it is defined.
_FROM = {**{n: "jobs" for n in ("cancel", "checkpoint_path", "delete", "embedding_epochs", "field_sources", "get_run",
                                "list_runs", "load_model", "read_embedding", "read_metrics", "read_predictions", "read_progress", "reap",
                                "resolve_reference", "resume", "submit", "wait", "schedule")},
         "CANCEL_GRACE_S": "procs",
         **{n: "scheduler" for n in ("claim_server", "server_running", "start_scheduler", "stop_scheduler")},
         **{n: "sink" for n in ("StoreSink", "duration_words", "wall_limit_reason")},
         **{n: "slots" for n in ("SMALL_SHARE", "assign_slots", "device_share")}}

__all__ = sorted([*_FROM, "set_interactive", "store"])


def __getattr__(name: str):
    # `schedule` in particular is looked up in `jobs` at each use, not copied here: the job API calls it from
    # inside `jobs`, so there is one name to replace (a test that queues without starting replaces jobs.schedule)
    if name in _FROM:
        return getattr(importlib.import_module(f".{_FROM[name]}", __name__), name)
    try:
        return importlib.import_module(f".{name}", __name__)  # a submodule: runs.jobs, runs.local, ...
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
