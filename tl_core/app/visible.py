"""The one visibility helper of the faces: a record a session asked for by id, if it may see it (or
change it); the same message whether the id is unknown or another session's."""
from __future__ import annotations

from typing import Any, Callable

from tl_core.policy import access
from tl_core.policy.access import Session
from tl_core.base.errors import ConfigError, StoreBusy, TLError


def fetch_visible(session: Session, what: str, ident: object, fetch: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """`fetch(id)` (a run, an experiment) when this session may see it, with `mine` set when it may
    change it. A locked store is busy, never "no such thing"."""
    try:
        rec = fetch(str(ident)[:64])
    except StoreBusy:
        raise
    except TLError:
        raise access.not_visible(ident, what) from None
    if not access.can_see(session, rec):
        raise access.not_visible(ident, what)
    rec["mine"] = access.can_change(session, rec)
    return rec


def owned(session: Session, what: str, ident: object, fetch: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """As `fetch_visible`, and refused with a clear message when it is another session's."""
    rec = fetch_visible(session, what, ident, fetch)
    if not rec["mine"]:
        raise ConfigError(f"{what.capitalize()} {str(ident)[:64]} belongs to another session: you can watch it, "
                          f"not change it.")
    return rec
