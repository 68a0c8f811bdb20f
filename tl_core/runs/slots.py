"""How many runs train at once, and where: CPU places, or shares of the GPUs."""
from __future__ import annotations

from typing import Any

from tl_core.base.limits import setting
from tl_core.base.machine import cpu_places, gpu_count

SMALL_SHARE = 0.25  # the share of one GPU a small model's run declares (LeNet-sized: 4 train at once)


def max_concurrent() -> int:
    """Runs that may train at once: TL_MAX_RUNS, else on a CPU machine its places (one run per core up
    to a few, each on its share of the cores: `machine.cpu_places`), else as many as the GPUs' capacity
    holds at the smallest share."""
    n = int(setting("TL_MAX_RUNS"))
    if n > 0:
        return n
    gpus = gpu_count()
    return max(1, int(gpus / SMALL_SHARE)) if gpus else cpu_places()


def device_share(config: dict[str, Any]) -> float:
    """The share of one GPU a run declares: small from-scratch models a quarter, anything else a whole one."""
    return SMALL_SHARE if config["model"]["backbone"] == "lenet" else 1.0


def assign_slots(active: list[tuple[int | None, float]], queued: list[tuple[str, float]], gpus: int,
         limit: int) -> list[tuple[str, int]]:
    """Which queued runs start now and on which slot, oldest first. Without GPUs a slot is a CPU
    place (up to `limit`); with GPUs a slot is a GPU index and each run takes its declared share of
    it, so that several small runs of one experiment train on one device at once. Stops at the first
    run that does not fit: the queue keeps its order."""
    out: list[tuple[str, int]] = []
    if not gpus:
        used = {s for s, _ in active if s is not None}
        free = (s for s in range(limit) if s not in used)
        for rid, _ in queued[:max(0, limit - len(active))]:
            out.append((rid, next(free)))
        return out
    load = [0.0] * gpus
    for s, share in active:
        load[(s or 0) % gpus] += share
    n = len(active)
    for rid, share in queued:
        if n >= limit:
            break
        gpu = min(range(gpus), key=lambda g: load[g])
        if load[gpu] + share > 1.0 + 1e-9:
            break
        load[gpu] += share
        out.append((rid, gpu))
        n += 1
    return out
