"""A tiny name -> factory registry; registries drive both the UI's choices and the tests."""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from tl_core.base.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, obj: T, replace: bool = False) -> None:
        if name in self._items and not replace:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise ConfigError(f"Unknown {self.kind} {name!r}. Known {self.kind}s: {known}.") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def names(self) -> list[str]:
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
