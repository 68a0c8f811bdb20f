"""What a domain is: fixed train/test splits of uint8 images with class names, cached on disk."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from tl_core.base.errors import ConfigError, DataUnavailable, TLError
from tl_core.base.limits import megabytes
from tl_core.base.lru import ByteLRU
from tl_core.base.paths import cache_dir, prune_cache
from tl_core.base.registry import Registry


@dataclass
class DomainData:
    """A decoded domain: images as uint8 (N, C, H, W) and int64 labels, per split."""

    name: str
    classes: list[str]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])

    def class_counts(self, split: str = "train") -> dict[str, int]:
        y = self.y_train if split == "train" else self.y_test
        counts = torch.bincount(y, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts))


class Domain:
    """A named source of images. Subclasses implement `_decode()`; `load()` caches it.

    Class attributes describe the domain without loading it, so the UI and config
    validation stay cheap.
    """

    name: str = ""
    label: str = ""
    description: str = ""
    classes: list[str] = []
    channels: int = 1
    native_size: int = 28
    version: str = "1"  # bump to invalidate caches when decoding changes

    def cache_key(self) -> str:
        return f"{self.name}-v{self.version}"

    def available(self) -> tuple[bool, str]:
        """(True, "") when `load()` can work here; else (False, what is missing and what to do)."""
        return True, ""

    def variant(self) -> str:
        """Which data `load()` gives here: "full", "starter" (the offline pack), "folder", "upload",
        or "shifted <base's variant>" (a run's provenance says it wherever its number is shown)."""
        return "full"

    def _decode(self) -> DomainData:
        raise NotImplementedError

    def cache_path(self) -> Path:
        return cache_dir("domains") / (_safe(self.cache_key()) + ".safetensors")

    def load(self) -> DomainData:
        """Decode once, then read the uint8 cache under `TL_HOME/cache/domains` (fast)."""
        key = self.cache_key()
        hit = _MEMO.get(key)
        if hit is not None:
            return hit
        path = self.cache_path()
        data = _read_cache(path, self.name)
        if data is None:
            ok, why = self.available()
            if not ok:
                raise DataUnavailable(why)
            data = self._decode()
            _validate(data)
            _write_cache(path, data)
        _MEMO.put(key, data)
        return data

    def info(self) -> dict:
        ok, why = self.available()
        return {
            "name": self.name,
            "label": self.label or self.name,
            "description": self.description,
            "classes": list(self.classes),
            "channels": self.channels,
            "native_size": self.native_size,
            "available": ok,
            "unavailable_reason": why,
        }


def _nbytes(d: DomainData) -> int:
    return sum(t.numel() * t.element_size() for t in (d.x_train, d.y_train, d.x_test, d.y_test))


# decoded domains kept in memory, up to TL_DOMAIN_CACHE_MB (default 1 GB): MNIST is 55 MB, a
# 20,000-image folder at 224 px 3 GB, so a server with many users evicts rather than grows
_MEMO: ByteLRU[DomainData] = ByteLRU(megabytes("TL_DOMAIN_CACHE_MB") or 0, _nbytes)


def clear_memory_cache() -> None:
    _MEMO.clear()


def _safe(key: str) -> str:
    import hashlib
    import re

    clean = re.sub(r"[^A-Za-z0-9_.+:-]", "_", key).replace(":", "_")
    if len(clean) > 80 or clean != key.replace(":", "_"):
        clean = clean[:60] + "-" + hashlib.sha1(key.encode()).hexdigest()[:10]
    return clean


def _validate(d: DomainData) -> None:
    for split in ("train", "test"):
        x, y = getattr(d, f"x_{split}"), getattr(d, f"y_{split}")
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise TLError(f"domain {d.name}: {split} images must be uint8 (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
        if len(x) != len(y):
            raise TLError(f"domain {d.name}: {split} has {len(x)} images but {len(y)} labels")
        if len(x) == 0:
            raise TLError(f"domain {d.name}: the {split} split is empty")


def _write_cache(path: Path, d: DomainData) -> None:
    """Streamed to a temporary name, then renamed: no second copy of the decoded images in memory
    (a 1 GB dataset would need 2 GB at the peak), and a crash never leaves half a file."""
    import threading

    from safetensors.torch import save_file

    tensors = {k: getattr(d, k).contiguous() for k in ("x_train", "y_train", "x_test", "y_test")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}-{os.urandom(4).hex()}")
    try:
        save_file(tensors, str(tmp), metadata={"name": d.name, "classes": json.dumps(d.classes)})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    prune_disk_cache(path.parent, keep=path)


def prune_disk_cache(folder: Path, keep: Path | None = None) -> int:
    """Hold the decoded-domain cache on disk under TL_DOMAIN_DISK_CACHE_MB (default 4096; 0: no cap):
    the least recently used files go first (a read touches its file), never `keep`. Returns bytes freed."""
    return prune_cache(folder, "*.safetensors", "TL_DOMAIN_DISK_CACHE_MB", keep)


def _read_cache(path: Path, name: str) -> DomainData | None:
    if not path.exists():
        return None
    from safetensors import safe_open

    try:
        os.utime(path)  # recently used: the disk cache is pruned oldest first
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            t = {k: f.get_tensor(k) for k in ("x_train", "y_train", "x_test", "y_test")}
        return DomainData(name=name, classes=json.loads(meta["classes"]), **t)
    except Exception:  # a damaged cache is rebuilt, never trusted
        path.unlink(missing_ok=True)
        return None


# -- the registry --------------------------------------------------------------------

DOMAINS: Registry[Domain] = Registry("domain")


def register_domain(domain: Domain, replace: bool = False) -> Domain:
    DOMAINS.add(domain.name, domain, replace=replace)
    return domain


def list_domains() -> list[str]:
    return DOMAINS.names()


def check_label_spaces(source: Domain, target: Domain) -> None:
    """Source and target must name the same classes; say which are missing on each side."""
    s, t = set(source.classes), set(target.classes)
    if s == t:
        return
    only_s, only_t = sorted(s - t), sorted(t - s)
    hint = ""
    norm = lambda c: " ".join(c.lower().split())  # noqa: E731
    if {norm(c) for c in s} == {norm(c) for c in t}:
        hint = " The names differ only by case or spacing: rename the folders so they match exactly."
    raise ConfigError(
        f"Source {source.name!r} and target {target.name!r} do not share a label space. "
        f"Missing in the target: {', '.join(only_s) or 'none'}. "
        f"Missing in the source: {', '.join(only_t) or 'none'}. "
        f"Pick domains with the same classes, or give your image folders the same class folder names.{hint}"
    )
