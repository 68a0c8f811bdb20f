"""The executor contract: where a run trains (this machine's processes, a Ray cluster)."""
from __future__ import annotations

from typing import Any

from tl_core.base.errors import TLError


class ClusterUnreachable(TLError):
    """TL_RAY_ADDRESS names a cluster that cannot be reached."""


class Executor:
    """What the job manager asks of the place runs train: how many fit at once, start one (claimed in the
    store with a slot), ask one to stop. Observing is the store's: a run's events and status arrive there
    from wherever it trains, and `runs.reap` judges a vanished worker (local) or driver (Ray)."""

    name = ""

    def capacity(self) -> int:
        raise NotImplementedError

    def start(self, st, run_id: str, slot: int) -> None:
        raise NotImplementedError

    def cancel(self, st, r: dict[str, Any]) -> None:
        """Ask a running run to stop; the store's `cancel_requested` flag is already set."""
