"""A byte-capped, least-recently-used, thread-safe cache for big in-memory things (decoded domains,
loaded models): a server with many users must not grow without bound."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


class ByteLRU(Generic[V]):
    """Keeps values while their sizes add up to at most `cap` bytes, evicting the least recently used.
    A value larger than the whole cap is not kept at all."""

    def __init__(self, cap: int, size_of: Callable[[V], int]):
        self.cap, self.size_of = cap, size_of
        self._d: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            hit = self._d.get(key)
            if hit is None:
                return None
            self._d.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: V) -> None:
        n = int(self.size_of(value))
        with self._lock:
            self._pop(key)
            if n > self.cap:
                return
            self._d[key] = (value, n)
            self.bytes += n
            while self.bytes > self.cap:
                self._pop(next(iter(self._d)))

    def pop(self, key: Hashable) -> None:
        with self._lock:
            self._pop(key)

    def _pop(self, key: Hashable) -> None:
        old = self._d.pop(key, None)
        if old is not None:
            self.bytes -= old[1]

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self.bytes = 0

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._d

    def __len__(self) -> int:
        with self._lock:
            return len(self._d)
