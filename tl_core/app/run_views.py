"""Step 4, runs as one session sees them: visibility, control, metrics and feature maps, submission."""
from __future__ import annotations

import json
from typing import Any


from tl_core.policy import access
from tl_core import runs
from tl_core.policy.access import Session
from tl_core.config import RunConfig
from tl_core.base.errors import ConfigError
from tl_core.planning.provenance import run_reading
from tl_core.planning.resolve import resolve
from tl_core.planning.validation import validate as validate_config
from tl_core.app.strategy import validate
from tl_core.app.text import run_label
from tl_core.app.visible import fetch_visible, owned

# what the pages may call (tl_core.app.api exports exactly these)
__all__ = ["get_run", "list_runs", "cancel_run", "resume_run", "train_again", "delete_run", "publish_run",
           "read_metrics", "embedding_epochs", "read_embedding", "all_embeddings", "finished_runs", "submit",
           "reading_words"]


def visible_run(session: Session, run_id: str) -> dict[str, Any]:
    """A run's record (with progress) if this session may see it; one message for unknown and hidden."""
    return fetch_visible(session, "run", run_id, runs.get_run)


def _own(session: Session, run_id: str) -> dict[str, Any]:
    return owned(session, "run", run_id, runs.get_run)


def get_run(session: Session, run_id: str) -> dict[str, Any]:
    """A run this session may see, with its reading: `target_acc_ci`, `target_eval`, `provenance`."""
    r = visible_run(session, run_id)
    r.update(run_reading(r))
    return r


def reading_words(r: dict[str, Any]) -> str:
    """What a run's number reads on, in one line: the data variants, the evaluation set, code and machine."""
    prov = r.get("provenance") or {}
    data = prov.get("data") or {}
    parts = [", ".join(f"{n.split('/')[-1]}: {d.get('variant')} ({d.get('train_images', 0):,} train / "
                       f"{d.get('test_images', 0):,} test)" for n, d in data.items())] if data else []
    if r.get("target_eval"):
        parts.append(f"evaluated on {r['target_eval']}")
    code, mach = prov.get("code") or {}, prov.get("machine") or {}
    if code.get("commit"):
        parts.append(f"code {code['commit'][:8]}{' (modified)' if code.get('dirty') else ''}")
    if mach:
        parts.append(f"torch {mach.get('torch')}, {mach.get('device')}, {mach.get('threads')} threads")
    return " · ".join(p for p in parts if p) or "provenance not recorded (a run made before it was)"


def list_runs(session: Session, **filters: Any) -> list[dict[str, Any]]:
    """This session's runs and the published ones (the teacher's command-line runs included), newest first."""
    rows = runs.list_runs(visible_to=session.owner, **filters) if not session.is_cli else runs.list_runs(**filters)
    for r in rows:
        r["mine"] = access.can_change(session, r)
    return rows


def cancel_run(session: Session, run_id: str) -> None:
    _own(session, run_id)
    runs.cancel(run_id)


def train_again(session: Session, run_id: str) -> str:
    """Train a run's exact config anew for this session, although an identical run already has its numbers
    (the "Train again" of a reused run); quotas hold as for any launch. Returns the new run's id."""
    r = visible_run(session, run_id)
    cfg = RunConfig.from_dict(r["config"])
    access.check_config(session, cfg)
    try:
        sources = json.loads(r.get("config_sources") or "{}")
    except ValueError:
        sources = {}
    return runs.submit(cfg, name=r.get("name") or "", owner=session.owner,
                       published=False if not session.is_cli else None, limits=access.queue_limits(session),
                       wall_limit_s=access.wall_limit(session), sources=sources or None, fresh=True)


def resume_run(session: Session, run_id: str) -> None:
    """Queue one of this session's interrupted, cancelled or failed runs again, from its last checkpoint
    (within the session's queue quota, as a new launch would be)."""
    r = _own(session, run_id)
    if r["status"] not in ("interrupted", "cancelled", "failed"):
        raise ConfigError(f"Only a stopped run can be resumed (this one is {r['status']}).")
    runs.store().check_admission(session.owner, access.queue_limits(session))
    runs.resume(run_id)


def delete_run(session: Session, run_id: str) -> None:
    _own(session, run_id)
    runs.delete(run_id)


def publish_run(session: Session, run_id: str, on: bool = True) -> None:
    """Share a run with the class (read-only for everyone else), or stop sharing it."""
    _own(session, run_id)
    runs.store().update(run_id, published=int(bool(on)))


def read_metrics(session: Session, run_id: str, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
    visible_run(session, run_id)
    return runs.read_metrics(run_id, cursor)


def embedding_epochs(session: Session, run_id: str) -> list[int]:
    visible_run(session, run_id)
    return runs.embedding_epochs(run_id)


def read_embedding(session: Session, run_id: str, epoch: int | None = None) -> dict[str, Any] | None:
    visible_run(session, run_id)
    return runs.read_embedding(run_id, epoch)


def all_embeddings(session: Session, run_id: str) -> list[dict[str, Any]]:
    visible_run(session, run_id)
    return [runs.read_embedding(run_id, e) for e in runs.embedding_epochs(run_id)]


def finished_runs(session: Session) -> dict[str, str]:
    """Finished runs this session can see as {id: label}, newest first: the choices for a method
    parameter that names a run (a teacher model, a source model)."""
    return {r["id"]: run_label(r) for r in list_runs(session, status="finished", limit=200)}


def submit(cfg: dict[str, Any], session: Session) -> str:
    """Validate and queue a run for this session (one per seed when it asks for several); returns the
    first id. Everything it points at must be the session's to use; quotas hold."""
    c, why = validate(cfg, session)
    if c is None:
        raise ConfigError(why)
    res = resolve(c)  # the method's recipe for what the draft left at its defaults, as every door does
    c = validate_config(res.config)
    access.check_config(session, c)
    ids = []
    for one in c.per_seed():
        ids.append(runs.submit(one, owner=session.owner, published=False if not session.is_cli else None,
                               limits=access.queue_limits(session), wall_limit_s=access.wall_limit(session),
                               sources=res.sources))
    return ids[0]
