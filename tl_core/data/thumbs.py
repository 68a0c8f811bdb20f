"""The per-image predictions a run records, and thumbnails of the images it evaluated as the model saw them
(resized, grey or colour, de-normalised), so that a confusion cell, a class row or a map point can open the
images it counts.

Off the training path: a run writes only its predictions (9 bytes an image); the thumbnails are made where
they are looked at, at the first view of a cell or point (`run_thumbnails`), once per dataset content, split
and input, and shared by every run that reads the same images. Bounded and private: a thumbnail is at most
THUMB_PX on a side; the cache folder is held under TL_THUMB_DISK_CACHE_MB (least recently read first out); a
file's name is a hash of what it shows and is never shown to anyone: the app reads thumbnails only through a
run the session may see (`app/images.py`), at most MAX_PER_VIEW at a time.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tl_core.config import RunConfig
from tl_core.data.loaders import prepare
from tl_core.base.errors import TLError
from tl_core.base.inputs import InputSpec, adapt, to_display
from tl_core.base.paths import atomic_write_bytes, cache_dir, prune_cache

THUMB_PX = 48  # a side at most: 6.9 KB for a colour image, 0.8 KB for a 28-pixel digit
MAX_PER_VIEW = 60  # images one request may read
SPLITS = ("source", "target")


def seen(x_uint8: torch.Tensor, spec: InputSpec, px: int = THUMB_PX, batch: int = 256) -> np.ndarray:
    """uint8 (N, C, H, W) domain images -> uint8 (N, h, w, C) as the model saw them, at most `px` on a side
    (the Predict page's "what the model saw" and every thumbnail)."""
    out = []
    for i in range(0, len(x_uint8), batch):
        x = adapt(x_uint8[i:i + batch], spec)
        if x.shape[-1] > px:
            x = F.interpolate(x, size=(px, px), mode="bilinear", align_corners=False, antialias=True)
        out.append(to_display(x, spec).numpy())
    c = spec.channels
    side = min(spec.size, px)
    return np.concatenate(out) if out else np.zeros((0, side, side, c), np.uint8)


def content_hash(x: torch.Tensor) -> str:
    """A hash of a tensor's shape and bytes (a split's images: what its thumbnails show)."""
    h = hashlib.sha256(str(tuple(x.shape)).encode())
    h.update(x.contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def key(fingerprint: str, split: str, spec: InputSpec) -> str:
    """The cache name of a split's thumbnails: what they show, hashed (never a path a person gives)."""
    text = json.dumps({"data": fingerprint, "split": split, "spec": spec.to_dict(), "px": THUMB_PX}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _path(k: str) -> Path:
    if len(k) != 32 or any(ch not in "0123456789abcdef" for ch in k):
        raise ValueError("not a thumbnail key")
    return cache_dir("thumbs") / f"{k}.npy"


def ensure(k: str, x_uint8: torch.Tensor, spec: InputSpec) -> None:
    """Make the thumbnails of `x_uint8` under key `k` unless they exist (once per content, split and input)."""
    path = _path(k)
    if path.exists():
        os.utime(path)  # recently used: the cache is pruned oldest first
        return
    buf = io.BytesIO()
    np.save(buf, seen(x_uint8, spec), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
    prune_cache(path.parent, "*.npy", "TL_THUMB_DISK_CACHE_MB", keep=path)


def read(k: str, rows: Sequence[int]) -> list[np.ndarray] | None:
    """The thumbnails at `rows` (at most MAX_PER_VIEW), or None when they are not on this machine (pruned, or
    the run trained elsewhere)."""
    try:
        path = _path(k)
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    n = len(arr)
    return [np.array(arr[int(r)]) for r in list(rows)[:MAX_PER_VIEW] if 0 <= int(r) < n]


# -- per-image predictions ----------------------------------------------------------------------------------

def predictions_table(rows: torch.Tensor | None, true: torch.Tensor, logits: torch.Tensor) -> dict[str, Any]:
    """What one evaluation said of each image it read: its row in the split, true and predicted class, and
    the predicted class's probability (9 bytes an image before compression: 43 KB for MNIST's 10,000 and
    USPS's 2,007 test images, compressed)."""
    p = torch.softmax(logits.float(), 1)
    conf, pred = p.max(1)
    n = len(true)
    return {"rows": (np.arange(n) if rows is None else rows.numpy()).astype(np.int32),
            "true": true.numpy().astype(np.int16), "pred": pred.numpy().astype(np.int16),
            "conf": np.round(conf.numpy() * 255).astype(np.uint8)}


def save_predictions(path: Path, epoch: int, tables: dict[str, dict[str, Any]], spec: dict[str, Any]) -> None:
    """One evaluation's predictions (per split) and the input the model read the images as, in one npz file."""
    arrays = {f"{s}_{f}": np.asarray(v) for s, t in tables.items() for f, v in t.items()}
    arrays["meta"] = np.frombuffer(json.dumps({"epoch": epoch, "spec": spec}).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_predictions(path: Path) -> dict[str, Any] | None:
    """{"epoch", "spec", "source": table, "target": table} of a predictions file; None if absent or damaged."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            out: dict[str, Any] = {"epoch": int(meta["epoch"]), "spec": dict(meta.get("spec") or {})}
            for s in SPLITS:
                if f"{s}_rows" in z:
                    out[s] = {f: z[f"{s}_{f}"] for f in ("rows", "true", "pred", "conf")}
            return out
    except (OSError, ValueError, KeyError, EOFError):
        return None


# (config id, seed, split, input) -> thumbnail key, for the runs viewed lately: a second view reads the cache
# without preparing the run's data again
_KEYS: OrderedDict[str, str | None] = OrderedDict()
_KEYS_LOCK = threading.Lock()


def run_thumbnails(config: dict[str, Any], spec: dict[str, Any], split: str) -> str | None:
    """The key of the thumbnails of a run's evaluation images of `split` (the very images it evaluated: its
    data prepared as the run prepared it), made now where this machine has none; None where the images can no
    longer be read (a folder or upload removed since) or the disk is full."""
    if split not in SPLITS or not spec:
        return None
    try:
        cfg, input_spec = RunConfig.from_dict(config), InputSpec.from_dict(spec)
    except (TLError, KeyError, TypeError, ValueError):
        return None
    memo = json.dumps([cfg.config_id(), cfg.train.seed, split, spec], sort_keys=True)
    with _KEYS_LOCK:
        if memo in _KEYS and (_KEYS[memo] is None or _path(_KEYS[memo]).exists()):
            _KEYS.move_to_end(memo)
            return _KEYS[memo]
    try:
        data = prepare(cfg.data, cfg.train.seed)
        x = data.source.x_test if split == "source" else data.target.x_test
        k = key(content_hash(x), split, input_spec)
        ensure(k, x, input_spec)
    except (TLError, OSError):
        k = None
    with _KEYS_LOCK:
        _KEYS[memo] = k
        while len(_KEYS) > 256:
            _KEYS.popitem(last=False)
    return k
