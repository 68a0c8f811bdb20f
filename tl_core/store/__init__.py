"""The run store: SQLite (WAL) at TL_HOME/runs.db for the index, status, progress, metrics and
events; one folder per run at TL_HOME/runs/<id>/ for the config, checkpoints and embeddings.

Every connection uses WAL and a busy timeout, and every write is one short transaction, so
readers polling while a worker writes never see "database is locked".

The database is an index, not the only copy: each run's folder also holds `record.json` (its
row) and `metrics.jsonl` (its per-epoch metrics). When `runs.db` is found damaged or deleted,
the damaged file is kept aside, a new one is built and every run folder is indexed again from
its own files, so nothing that was on disk is lost.

Two kinds of callers wait differently on a store that another process holds locked: the web
server (`interactive=True`) gives up after a few seconds with `StoreBusy`, so a page can say
"busy, retrying" instead of hanging; workers and the CLI keep retrying their writes for minutes,
so a run survives a long lock.
"""
from __future__ import annotations

import threading
from pathlib import Path

from tl_core.base.paths import tl_home
from tl_core.store.advice import AdviceMixin
from tl_core.store.connection import Database
from tl_core.store.experiments import ExperimentsMixin
from tl_core.store.queue import Admission, QueueMixin, admission
from tl_core.store.runs import RunsMixin
from tl_core.store.schema import (
    ACTIVE, HOST, RUN_ID, TERMINAL, UNFINISHED, VISIBLE_SQL, check_run_id, new_run_id, visible_to
)
from tl_core.store.telemetry import TelemetryMixin

__all__ = ["ACTIVE", "HOST", "RUN_ID", "TERMINAL", "UNFINISHED", "VISIBLE_SQL", "Admission", "Store", "admission",
           "check_run_id", "new_run_id", "set_interactive", "store", "visible_to"]


class Store(RunsMixin, QueueMixin, ExperimentsMixin, AdviceMixin, TelemetryMixin, Database):
    """One TL_HOME's run store: the plumbing of `Database` and one mixin per job (modules beside this one)."""


_STORES: dict[tuple[str, bool], Store] = {}
_STORES_LOCK = threading.Lock()
_web_server = False  # set once by the web server: its store calls give up quickly (StoreBusy)


def set_interactive(on: bool = True) -> None:
    """In the web server: store calls give up after a few seconds (StoreBusy) instead of waiting."""
    global _web_server
    _web_server = on


def store() -> Store:
    """The store of the current TL_HOME, one per process and mode (the web server's threads share it)."""
    key = (str(tl_home()), _web_server)
    with _STORES_LOCK:
        if key not in _STORES:
            _STORES[key] = Store(Path(key[0]), interactive=key[1])
        return _STORES[key]
