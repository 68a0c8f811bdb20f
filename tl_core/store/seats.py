"""Seats: the join links a teacher hands out, so that compute on a shared server belongs to people, not
to cookies (a browser can drop its cookie and come back as a stranger as often as it likes; it cannot
mint a seat).

`python -m tl_core class seats 30` makes 30 seats, each a random token printed once inside a join link;
`TL_HOME/seats.json` keeps each seat's public id, its label and the token's SHA-256 (never the token),
so the file alone opens no seat. A revoked seat stops counting at once: its browser may still watch,
but queues like any browser without a seat. The seat's identity (the owner its runs are recorded
under) is derived from the token, so it is the same on every device the student opens the link on.
"""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import re
import secrets
import time
from contextlib import contextmanager
from typing import Any, Iterator

from tl_core.base.errors import ConfigError
from tl_core.base.paths import atomic_write_text, tl_home

TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
SEAT_ID = re.compile(r"^s[0-9a-f]{6}$")
MAX_SEATS = 1000  # seats one server keeps (revoked ones included)


def _path():
    return tl_home() / "seats.json"


def _digest(token: str) -> str:
    return hashlib.sha256(b"transferlab-seat-token:" + token.encode()).hexdigest()


def owner_of(token: str) -> str:
    """The store's owner id for a seat: a hash of its token (so a seat's runs are its own on any device)."""
    return hashlib.sha256(b"transferlab-seat:" + token.encode()).hexdigest()[:32]


def _read() -> list[dict[str, Any]]:
    try:
        d = json.loads(_path().read_text())
    except (OSError, ValueError):
        return []
    rows = d.get("seats") if isinstance(d, dict) else None
    return [r for r in rows if isinstance(r, dict) and SEAT_ID.match(str(r.get("id", "")))] if isinstance(rows, list) else []


@contextmanager
def _locked() -> Iterator[list[dict[str, Any]]]:
    """The seats, read and written under a lock (two teachers' terminals at once lose nothing)."""
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = _read()
        yield rows
        atomic_write_text(path, json.dumps({"seats": rows}, indent=1, sort_keys=True))


def make(n: int, label: str = "seat") -> list[dict[str, Any]]:
    """Make `n` seats; returns each with its token (shown once: only its hash is kept)."""
    if not isinstance(n, int) or not 1 <= n <= 500:
        raise ConfigError("Make 1 to 500 seats at a time.")
    label = re.sub(r"[^A-Za-z0-9 _.-]+", "", str(label))[:40].strip() or "seat"
    out = []
    with _locked() as rows:
        if len(rows) + n > MAX_SEATS:
            raise ConfigError(f"This server keeps at most {MAX_SEATS} seats ({len(rows)} now, revoked ones "
                              f"included): remove revoked ones first (class revoke --purge).")
        taken = {r["id"] for r in rows}
        first = sum(1 for r in rows if r.get("label", "").startswith(label)) + 1
        for i in range(n):
            token = secrets.token_urlsafe(32)
            sid = "s" + secrets.token_hex(3)
            while sid in taken:
                sid = "s" + secrets.token_hex(3)
            taken.add(sid)
            row = {"id": sid, "label": f"{label} {first + i}", "digest": _digest(token), "created": time.time(),
                   "revoked": None}
            rows.append(row)
            out.append({**{k: row[k] for k in ("id", "label", "created")}, "token": token})
    return out


def list_seats() -> list[dict[str, Any]]:
    """Every seat (id, label, created, revoked), never a token or its hash."""
    return [{k: r.get(k) for k in ("id", "label", "created", "revoked")} for r in _read()]


def revoke(ids: list[str] | None = None, purge: bool = False) -> int:
    """Revoke the seats with these ids (None: every seat); `purge` also forgets revoked seats. Returns
    how many seats were revoked or forgotten."""
    bad = [i for i in ids or [] if not SEAT_ID.match(str(i))]
    if bad:
        raise ConfigError(f"{bad[0][:20]!r} is not a seat id (they look like s1a2b3c; `class list` shows them).")
    changed: set[str] = set()
    with _locked() as rows:
        known = {r["id"] for r in rows}
        missing = [i for i in ids or [] if i not in known]
        if missing:
            raise ConfigError(f"There is no seat {missing[0]}; `python -m tl_core class list` shows the seats.")
        for r in rows:
            if (ids is None or r["id"] in ids) and not r.get("revoked"):
                r["revoked"] = time.time()
                changed.add(r["id"])
        if purge:
            changed |= {r["id"] for r in rows if r.get("revoked")}
            rows[:] = [r for r in rows if not r.get("revoked")]
    return len(changed)


def find(token: object) -> dict[str, Any] | None:
    """The live seat a token opens (id, label), or None: unknown, malformed or revoked."""
    if not isinstance(token, str) or not TOKEN.match(token):
        return None
    d = _digest(token)
    for r in _read():
        if hmac.compare_digest(str(r.get("digest", "")), d) and not r.get("revoked"):
            return {"id": r["id"], "label": r.get("label", "")}
    return None


def is_live(seat_id: str) -> bool:
    """Whether a seat still counts (not revoked, not forgotten)."""
    return any(r["id"] == seat_id and not r.get("revoked") for r in _read())
