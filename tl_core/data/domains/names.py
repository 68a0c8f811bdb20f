"""The grammar of a domain name, parsed in one place, from the string alone (no disk, no torch).

    name    := base ("+" shift)*
    base    := BUILTIN | "folder:" PATH | "upload:" OWNER "/" DATASET
    shift   := KIND [":" SEVERITY]          e.g. mnist+rotate:3, folder:/srv/photos+blur:2

A path may itself contain '+', so only a suffix whose kind is a known shift is read as a shift
after a folder or an upload; after a built-in name every '+' starts a shift.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tl_core.base.errors import ConfigError

# the kinds of `shift.SHIFTS`, here as plain names so that parsing needs no torch (a test keeps both equal)
SHIFT_KINDS = ("rotate", "noise", "blur", "contrast", "colour", "invert")
OWNER = re.compile(r"^(cli|[0-9a-f]{32})$")
DATASET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
MAX_NAME = 4096


@dataclass(frozen=True)
class DomainName:
    """A parsed domain name: its kind ("builtin", "folder" or "upload"), the base without shifts and
    the shifts in order; `path` for a folder, `owner`/`dataset` for an upload."""

    text: str
    kind: str
    base: str
    shifts: tuple[tuple[str, int], ...] = ()
    path: str = ""
    owner: str = ""
    dataset: str = ""


def parse_shift(text: str) -> tuple[str, int]:
    kind, _, sev = text.partition(":")
    if kind not in SHIFT_KINDS:
        raise ConfigError(f"Unknown shift {kind[:40]!r}. Known shifts: {', '.join(SHIFT_KINDS)} "
                          f"(write e.g. mnist+rotate:3).")
    if len(sev) > 3:
        raise ConfigError("Shift severity must be a whole number from 1 to 5.")
    try:
        s = int(sev or 3)
    except ValueError:
        raise ConfigError(f"Shift severity must be a whole number from 1 to 5 (got {sev!r}).") from None
    if not 1 <= s <= 5:
        raise ConfigError(f"Shift severity must be from 1 to 5 (got {s}).")
    return kind, s


def parse(name: object) -> DomainName:
    """The parts of a domain name; ConfigError when it cannot be one (empty, too long, a NUL, a
    malformed upload, an unknown shift after a built-in name). Says nothing about existence."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("A domain name is required.")
    if len(name) > MAX_NAME or "\x00" in name:
        raise ConfigError("That domain name is not valid.")
    base, shifts = name, []
    is_path = name.startswith(("folder:", "upload:"))
    while True:
        head, plus, tail = base.rpartition("+")
        if not (plus and head):
            break
        if is_path and tail.partition(":")[0] not in SHIFT_KINDS:
            break  # a '+' inside the path
        shifts.append(parse_shift(tail))
        base = head
    shifts.reverse()
    if base.startswith("folder:"):
        path = base[len("folder:"):]
        if not path.strip():
            raise ConfigError("A folder domain needs a path: folder:/path/to/images.")
        return DomainName(name, "folder", base, tuple(shifts), path=path)
    if base.startswith("upload:"):
        owner, _, ds = base[len("upload:"):].partition("/")
        if not OWNER.match(owner) or not DATASET.match(ds):
            raise ConfigError(f"Unknown dataset {base[:80]!r}.")
        return DomainName(name, "upload", base, tuple(shifts), owner=owner, dataset=ds)
    return DomainName(name, "builtin", base, tuple(shifts))


def shifted(base: str, shifts: tuple[tuple[str, int], ...]) -> str:
    """The canonical name of a base with shifts (what `parse` reads back)."""
    return base + "".join(f"+{k}:{s}" for k, s in shifts)
