"""Who may see and touch what on a shared server: sessions, ownership, quotas, allowed folders.

A browser session is identified by a random token kept in a cookie (never in a URL). The store
records only the token's hash (`Session.owner`), so nothing saved on the server, and nothing
shown to other users, can be turned back into someone's identity. The server's own command line
acts as the owner "cli": its runs and ingested datasets are the teacher's, visible to every
session, read-only.

Quotas and folder roots are set by the server's owner through environment variables (see
`limits.SETTINGS` and `folder_roots`); every refusal names the limit, its value and what to do.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tl_core.base.errors import ConfigError, NotVisible, QuotaExceeded
from tl_core.data.domains import DOMAINS
from tl_core.data.domains.names import DATASET as NAME, OWNER, parse
from tl_core.base.limits import limits, setting
from tl_core.methods import get_method
from tl_core.base.paths import data_dir, tl_home, uploads_root
from tl_core.store import Admission, store, visible_to
from tl_core.store import seats

CLI = "cli"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{40,128}$")  # secrets.token_urlsafe(32): 43 characters


@dataclass(frozen=True)
class Session:
    """One browser session (or the CLI). `owner` is what the store records; `local` says the server
    listens on the loopback interface only (a single user on their own machine). `seated`: the browser
    came through a teacher's join link (`seat` is that seat's id, checked again at every launch, so a
    revoked seat stops counting at once) or signed in (`seat` is "")."""

    owner: str
    local: bool = False
    seated: bool = False
    seat: str = ""
    who: str = ""  # how the sidebar names the seat to its own holder ("seat 7", a signed-in name)

    @property
    def is_cli(self) -> bool:
        return self.owner == CLI


CLI_SESSION = Session(CLI, local=True, seated=True)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def session_from_token(token: str | None, local: bool = False) -> tuple[Session, str, bool]:
    """(session, token, is_new): a well-formed token from the browser's cookie keeps its identity;
    anything else (absent, malformed, forged to look like an owner hash) starts a new one."""
    fresh = not (isinstance(token, str) and TOKEN.match(token))
    if fresh:
        token = new_token()
    owner = hashlib.sha256(b"transferlab-session:" + token.encode()).hexdigest()[:32]
    return Session(owner, local=local), token, fresh


def session_from_seat(token: object, local: bool = False) -> Session | None:
    """The session a join link's token opens (its seat's identity), or None: unknown, malformed or revoked."""
    seat = seats.find(token)
    if seat is None:
        return None
    return Session(seats.owner_of(str(token)), local=local, seated=True, seat=seat["id"], who=seat["label"])


def session_from_user(subject: object, name: object = "", local: bool = False) -> Session | None:
    """The session of a signed-in user (`st.login`): identity from the provider's subject, a seat of its own."""
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 512:
        return None
    owner = hashlib.sha256(b"transferlab-user:" + subject.encode()).hexdigest()[:32]
    return Session(owner, local=local, seated=True, who=str(name or "signed in")[:60])


def has_seat(session: Session) -> bool:
    """Whether this session holds compute as a seat now: the command line; a signed-in user; a join
    link whose seat has not been revoked since."""
    if session.is_cli:
        return True
    if not session.seated:
        return False
    return not session.seat or seats.is_live(session.seat)


# -- visibility ------------------------------------------------------------------------------

def can_see(session: Session, run: dict[str, Any]) -> bool:
    """Own runs, published runs and the command line's runs (legacy runs with no owner count as those)."""
    return session.is_cli or visible_to(run, session.owner)


def can_change(session: Session, run: dict[str, Any]) -> bool:
    """Stop, delete, publish: the owner only (and the server's command line)."""
    return session.is_cli or (run.get("owner") or CLI) == session.owner


def not_visible(ident: object, what: str = "run") -> NotVisible:
    """The one answer for an id a session may not see, whether it exists or not."""
    return NotVisible(f"There is no {what} {str(ident)[:70]!r} that you can see. It may have been deleted, or it "
                      f"belongs to another session that has not shared it with the class.")


# -- limits ----------------------------------------------------------------------------------

def _or_none(v: int) -> int | None:
    return v or None


def queue_limits(session: Session) -> Admission:
    """The queue limits of a submission (`store.Admission`); the command line is not limited. A seated
    session's first item is admitted whatever the server's run count (see `store.queue.check_queue`), so a
    class of 30 all get their first experiment in; a browser without a seat never gets past the server's
    total, and on a server reachable from the network all of them together share TL_QUOTA_ANON_RUNS."""
    if session.is_cli:
        return Admission(None, None, None, None, True)
    lim = limits()
    seated = has_seat(session)
    anon = None if seated or session.local else max(0, int(setting("TL_QUOTA_ANON_RUNS")))
    return Admission(_or_none(lim.queued_runs), _or_none(lim.queued_total), _or_none(lim.queued_sessions), anon,
                     seated)


def check_run_size(session: Session, epochs: int, steps: int, batch: int) -> None:
    lim = limits()
    if session.is_cli or not lim.run_images:
        return
    n = epochs * steps * batch
    if n > lim.run_images:
        raise QuotaExceeded(f"This run would train on {n:,} images (epochs × steps × batch = {epochs} × {steps} × "
                            f"{batch}); one run may use at most {lim.run_images:,} on this server "
                            f"(TL_QUOTA_RUN_IMAGES). Lower the epochs, the steps per epoch or the batch size.")


def wall_limit(session: Session) -> float | None:
    lim = limits()
    return None if session.is_cli or not lim.run_wall_s else float(lim.run_wall_s)


# -- uploads -----------------------------------------------------------------------------------

def session_dir(session: Session) -> Path:
    """This session's upload area: `uploads/<owner>/` with `domains/`, `models/` and `.tmp/` inside,
    so no name a user picks can land on one of the app's own folders."""
    if not OWNER.match(session.owner):
        raise ConfigError("This session has no valid identity; reload the page.")
    p = uploads_root() / session.owner
    for sub in ("domains", "models", ".tmp"):
        (p / sub).mkdir(parents=True, exist_ok=True)
    return p


def clean_name(name: str, what: str = "dataset") -> str:
    """A user's name for a dataset or a model, made safe as a folder name (letters, digits, - and _)."""
    import unicodedata

    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_name).strip("_-")[:40]
    if not clean or not NAME.match(clean):
        raise ConfigError(f"Give the {what} a name made of letters, digits, '-' or '_' (e.g. my_photos).")
    return clean


def usage_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def upload_allowance(session: Session) -> int | None:
    """Bytes this session may still add to its uploads (None: unlimited); raises when nothing is left."""
    if session.is_cli:
        return None
    lim = limits()
    left = []
    if lim.upload_mb:
        used = usage_bytes(session_dir(session))
        left.append(("session", lim.upload_mb * 2**20 - used, lim.upload_mb, "TL_QUOTA_UPLOAD_MB"))
    if lim.upload_total_mb:
        used = usage_bytes(uploads_root())
        left.append(("server", lim.upload_total_mb * 2**20 - used, lim.upload_total_mb, "TL_QUOTA_UPLOAD_TOTAL_MB"))
    for who, n, mb, env in left:
        if n <= 0:
            raise quota_upload(who, mb, env)
    return min((n for _, n, _, _ in left), default=None)


def quota_upload(who: str, mb: int, env: str) -> QuotaExceeded:
    if who == "session":
        return QuotaExceeded(f"Your uploads would exceed {mb} MB, the space one session may use on this server "
                             f"({env}). Delete an upload you no longer need, or upload fewer or smaller images.")
    return QuotaExceeded(f"The server's upload space ({mb} MB for everyone, {env}) is full. Ask the server's "
                         f"owner to make room, or upload a smaller archive.")


# -- folders on the server -----------------------------------------------------------------------

DOMAIN_REFUSED = ("That dataset cannot be used here. Pick a built-in domain (or a shift of one), one of your "
                  "own uploads, the teacher's datasets, or a folder inside the ones the server's owner "
                  "allowed{roots}.")


def domain_refusal(session: Session) -> ConfigError:
    """The one refusal for every domain name a session may not use: the same words whether the name is
    unknown, malformed, another session's upload, or a path that exists or not, inside the roots or not."""
    roots = folder_roots(session)
    shown = (": " + ", ".join(str(r) for r in roots)) if roots else " (none on this server: set TL_FOLDER_ROOTS)"
    return ConfigError(DOMAIN_REFUSED.format(roots=shown))


def folder_roots(session: Session) -> list[Path]:
    """Where "a folder on the server" may be: `TL_FOLDER_ROOTS` (paths separated by ':'). Unset, a
    server that listens on localhost only (one person on their own machine) allows their home folder
    and the data folder; a server reachable from the network allows none."""
    env = setting("TL_FOLDER_ROOTS")
    if session.is_cli:
        raw = [os.sep]  # the server's owner, at its own terminal: any folder it can read
    elif env is not None:
        raw = [p for p in env.split(os.pathsep) if p.strip()]
    elif session.local:
        raw = [str(Path.home()), str(data_dir())]
    else:
        raw = []
    out = []
    for p in raw:
        try:
            out.append(Path(p).expanduser().resolve(strict=True))
        except (OSError, RuntimeError):
            continue
    return out


def resolve_folder(path: str, session: Session) -> Path:
    """The real folder behind a path typed by a user, if it lies inside an allowed root and outside
    the app's own store; otherwise one message for every refusal (it never tells whether a path exists)."""
    roots = folder_roots(session)
    refused = domain_refusal(session)
    if not isinstance(path, str) or not path.strip() or len(path) > 4096 or "\x00" in path:
        raise refused
    try:
        real = Path(path.strip()).expanduser().resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        raise refused from None
    home = tl_home().resolve()
    inside = any(real == r or real.is_relative_to(r) for r in roots)
    if not inside or real == home or real.is_relative_to(home) or home.is_relative_to(real) or not real.is_dir():
        raise refused
    return real


# -- configs submitted by a session ---------------------------------------------------------------

def gate_domain(session: Session, name: object) -> str:
    """The one gate every door passes a session's domain name through (Data page, Experiments link and
    form, Strategy and Train pages, run configs), before anything reads the disk for it: the name is
    parsed as a string, an upload's owner compared, a folder resolved against the allowed roots (no
    listing). Returns the name; refuses with `domain_refusal`, the same text for every refused name."""
    try:
        n = parse(name)
    except ConfigError:
        raise domain_refusal(session) from None
    if n.kind == "builtin":
        if n.base not in DOMAINS or n.base.startswith(("folder:", "upload:")):
            raise domain_refusal(session)
    elif n.kind == "upload":
        if not (session.is_cli or n.owner in (session.owner, CLI)):
            raise domain_refusal(session)
    else:
        resolve_folder(n.path, session)
    return str(name)


def gate_config(session: Session, cfg: Any) -> None:
    """`gate_domain` for the source and target of a config (a RunConfig or its dict), before validation."""
    data = cfg.get("data", {}) if isinstance(cfg, dict) else getattr(cfg, "data", None)
    for side in ("source", "target"):
        value = data.get(side) if isinstance(data, dict) else getattr(data, side, None)
        gate_domain(session, value)


def check_config(session: Session, cfg: Any) -> None:
    """Everything in a validated RunConfig that points at data or at other runs must be this
    session's to use; and the run's size must be within the quota."""
    gate_config(session, cfg)
    method = get_method(cfg.method.name)
    for pname, p in method.params.items():
        ref = cfg.method.params.get(pname)
        if getattr(p, "run_ref", False) and ref:
            r = store().get(str(ref))
            if r is None or not can_see(session, r):
                raise not_visible(ref)
    t = cfg.train
    check_run_size(session, t.epochs, t.steps_per_epoch, t.batch_size)
