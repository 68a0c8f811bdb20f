"""A run's key: everything that decides its numbers, so that identical work is trained once.

Same key, same numbers, bit for bit (tests/integration/test_reuse.py trains one key twice in two processes and
compares every epoch's metrics and the checkpoint's tensors): the resolved config (its name aside),
each domain's content (a built-in's files and variant, a folder's listing of names, sizes and times, an
upload's owner and name), a hash of the library's source files (a dirty tree counts), the torch
version, the device, the CPU model and the threads a run uses, and where it trains. On a GPU,
without deterministic algorithms, equality does not hold: such a run has no key and is never reused.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from tl_core.config import RunConfig
from tl_core.data.domains import get_domain
from tl_core.base.errors import TLError
from tl_core.base.limits import setting
from tl_core.base.machine import gpu_count, run_threads
from tl_core.planning.provenance import cpu_model

PACKAGE = Path(__file__).resolve().parents[1]  # tl_core/


@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    """A hash of every Python file of the library, as it is on disk now (not the commit: a dirty tree
    counts)."""
    h = hashlib.sha256()
    for p in sorted(PACKAGE.rglob("*.py")):
        h.update(str(p.relative_to(PACKAGE)).encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _torch_version() -> str:
    import torch

    return torch.__version__


def device_kind(cfg: RunConfig) -> str:
    if cfg.train.device in ("cuda", "mps"):
        return cfg.train.device
    return "cuda" if cfg.train.device == "auto" and gpu_count() else "cpu"


def key_parts(cfg: RunConfig) -> dict[str, Any] | None:
    """What decides a run's numbers, as a dict (None where identical inputs do not give identical
    numbers: a GPU run, a run on a cluster whose machines differ)."""
    device = device_kind(cfg)
    if device != "cpu" or setting("TL_RAY_ADDRESS"):
        return None
    config = cfg.to_dict()
    config.pop("name", None)
    try:
        data = {side: f"{d.cache_key()}|{d.variant()}" for side, d in
                (("source", get_domain(cfg.data.source)), ("target", get_domain(cfg.data.target)))}
    except TLError:
        return None
    return {"config": config, "data": data, "code": source_hash(), "torch": _torch_version(), "device": device,
            "cpu": cpu_model(), "threads": run_threads()}


def run_key(cfg: RunConfig) -> str:
    """The key of a run ("" when it has none: it is always trained)."""
    parts = key_parts(cfg)
    if parts is None:
        return ""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]
