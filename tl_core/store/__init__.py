"""The run store: SQLite (WAL) at TL_HOME/runs.db for the index, status, progress, metrics and
events; one folder per run at TL_HOME/runs/<id>/ for the config, checkpoints and embeddings.

Every connection uses WAL and a busy timeout, and every write is one short transaction, so
readers polling while a worker writes never see "database is locked".

The database is an index, not the only copy: each run's folder also holds `record.json` (its
row) and `metrics.jsonl` (its per-epoch metrics). When `runs.db` is found damaged or deleted,
the damaged file is kept aside, a new one is built and every run folder is indexed again from
its own files, so nothing that was on disk is lost.

Two kinds of callers wait differently on a store that another process holds locked: the web
server (`interactive=True`) gives up after a few seconds with `StoreBusy`, so a page can say
"busy, retrying" instead of hanging; workers and the CLI keep retrying their writes for minutes,
so a run survives a long lock.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import re
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, TypeVar

from tl_core.base.errors import QuotaExceeded, StoreBusy, TLError
from tl_core.base.limits import setting
from tl_core.base.paths import atomic_write_text, tl_home

ACTIVE = ("starting", "running")
TERMINAL = ("finished", "failed", "cancelled", "interrupted")
UNFINISHED = ("queued",) + ACTIVE  # waiting for a slot or training
HOST = socket.gethostname()
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PUBLIC_OWNERS = ("", "cli")  # the command line's runs (and runs from before owners existed): everyone's
VISIBLE_SQL = "(owner=? OR published=1 OR owner IN ('', 'cli'))"  # `visible` as SQL, for one owner
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT, config TEXT NOT NULL, status TEXT NOT NULL, reason TEXT DEFAULT '',
    created REAL NOT NULL, started REAL, ended REAL, pid INTEGER, pid_start TEXT, heartbeat REAL,
    cancel_requested REAL, device TEXT DEFAULT '', slot INTEGER, epoch INTEGER DEFAULT 0, epochs INTEGER,
    source TEXT, target TEXT, backbone TEXT, method TEXT, seed INTEGER, target_labels TEXT,
    source_acc REAL, target_acc REAL, best_epoch INTEGER, best_target_acc REAL, wall_s REAL,
    trainable_params INTEGER, total_params INTEGER, owner TEXT DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status, created);
CREATE TABLE IF NOT EXISTS progress (
    run_id TEXT PRIMARY KEY, epoch INTEGER, step INTEGER, total_steps INTEGER, images_per_s REAL,
    eta_s REAL, losses TEXT, updated REAL
);
CREATE TABLE IF NOT EXISTS metrics (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, epoch INTEGER NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, seq);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, ts REAL NOT NULL, kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, seq);
CREATE TABLE IF NOT EXISTS advice (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, seated INTEGER DEFAULT 1, source TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, created REAL NOT NULL, started REAL, ended REAL, pid INTEGER, pid_start TEXT,
    host TEXT DEFAULT '', progress TEXT DEFAULT '', fraction REAL DEFAULT 0, result TEXT DEFAULT '',
    reason TEXT DEFAULT ''
);
CREATE INDEX IF NOT EXISTS advice_owner ON advice(owner, created);
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, name TEXT, owner TEXT DEFAULT '', published INTEGER DEFAULT 0, created REAL NOT NULL,
    spec TEXT NOT NULL, preset TEXT DEFAULT ''
);
"""
# Columns added after the first release: (name, declaration). Older stores get them on open.
ADDED_COLUMNS = (("published", "INTEGER DEFAULT 0"), ("host", "TEXT DEFAULT ''"), ("wall_limit_s", "REAL"),
                 ("experiment_id", "TEXT DEFAULT ''"), ("strategy", "TEXT DEFAULT ''"), ("peak_mb", "REAL"),
                 ("target_n", "INTEGER"), ("target_eval", "TEXT DEFAULT ''"), ("provenance", "TEXT DEFAULT ''"),
                 ("config_sources", "TEXT DEFAULT ''"),
                 ("estimate_s", "REAL"), ("executor", "TEXT DEFAULT 'local'"), ("node", "TEXT DEFAULT ''"),
                 ("driver_pid", "INTEGER"), ("seated", "INTEGER DEFAULT 1"), ("run_key", "TEXT DEFAULT ''"),
                 ("reused_from", "TEXT DEFAULT ''"), ("attached_to", "TEXT DEFAULT ''"),
                 ("target_acc_estimate", "REAL"), ("target_acc_estimate_ci", "TEXT DEFAULT ''"))
# why a run whose training others shared reads cancelled: its session left, the training went on for them
HANDED_OVER = ("cancelled by you; its training went on for the other sessions that asked for the same run "
               "(one training for all)")
# What a run that reuses an identical finished run takes from it (its own id, owner, name, config and
# sharing stay its own)
RESULT_COLUMNS = ("epoch", "epochs", "source_acc", "target_acc", "best_epoch", "best_target_acc", "wall_s",
                  "trainable_params", "total_params", "device", "target_n", "target_eval", "provenance", "peak_mb",
                  "executor", "node", "target_acc_estimate", "target_acc_estimate_ci")
# A run's own files, never taken by a run that reuses it (the rest, checkpoints and feature maps, are
# written once and replaced by rename, so they are linked; the metrics log is appended, so it is copied)
OWN_FILES = ("config.json", "record.json", "worker.log")
MIRROR_SKIP = {"config", "heartbeat"}  # the config has its own file; a heartbeat is not worth a write


class Admission(NamedTuple):
    """The queue limits one submission is held to (None: no limit), checked inside the inserting
    transaction: items of work per owner, runs on the server, seated sessions whose first item is let
    past the server's total, runs of all browsers without a seat together, and whether the submitter
    holds a seat (seated work is served first, and only it gets the first-item pass)."""

    per_owner: int | None = None
    total: int | None = None
    sessions: int | None = None
    anon: int | None = None
    seated: bool = True


def admission(limits: tuple) -> Admission:
    """An `Admission` from one, or from the older (per owner, total[, sessions]) tuple."""
    return limits if isinstance(limits, Admission) else Admission(*limits)


def check_run_id(run_id: str) -> str:
    """Run ids name folders: anything but the id alphabet is refused (no '..', no '/')."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise TLError(f"There is no run {str(run_id)[:70]!r}.")
    return run_id


def _is_locked(e: BaseException) -> bool:
    return isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e))


def _is_damaged(e: BaseException) -> bool:
    msg = str(e).lower()
    return isinstance(e, sqlite3.DatabaseError) and not _is_locked(e) and any(
        s in msg for s in ("not a database", "malformed", "no such table", "disk image", "file is encrypted"))


class Store:
    def __init__(self, home: Path | None = None, interactive: bool = False):
        self.home = Path(home) if home else tl_home()
        self.db_path = self.home / "runs.db"
        self.runs_dir = self.home / "runs"
        self.experiments_dir = self.home / "experiments"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.interactive = interactive
        # interactive callers (the web server) wait briefly, then raise StoreBusy; others are patient
        self.busy_timeout_s = 2.0 if interactive else 30.0
        self.write_patience_s = 0.0 if interactive else float(setting("TL_STORE_PATIENCE_S"))
        self._ensure_schema(fresh_ok=not self.db_path.exists())

    # -- connections, busy and damage ---------------------------------------------------
    def _ensure_schema(self, fresh_ok: bool) -> None:
        c = None
        try:
            c = self._raw_connect()
            c.executescript(SCHEMA)
            _add_columns(c)
        except sqlite3.DatabaseError as e:
            if _is_locked(e):
                raise self._busy() from None
            if not _is_damaged(e):
                raise
            if c is not None:
                c.close()
                c = None
            self.recover(f"damaged when opened ({e})")
            return
        finally:
            if c is not None:
                c.close()
        if fresh_ok and any(self._run_folders()):  # an index that was deleted while we were away
            self.reindex()

    def _raw_connect(self) -> sqlite3.Connection:
        c = sqlite3.connect(self.db_path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False)
        c.row_factory = sqlite3.Row
        c.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        return c

    def connect(self) -> sqlite3.Connection:
        """A checked connection: a missing or damaged `runs.db` is recovered first."""
        if not self.db_path.exists():
            self.recover("runs.db was deleted")
        try:
            c = self._raw_connect()
            c.execute("SELECT 1 FROM runs LIMIT 0")
            return c
        except sqlite3.DatabaseError as e:
            if _is_locked(e):
                raise self._busy() from None
            if not _is_damaged(e):
                raise
        self.recover("runs.db is damaged")
        return self._raw_connect()

    def _busy(self) -> StoreBusy:
        return StoreBusy("The run store is busy: another program holds it locked. Retrying; your runs are safe.")

    def _with_patience(self, fn: Callable[[], T], patience_s: float | None = None) -> T:
        """Run `fn`, retrying while the store is locked (up to `write_patience_s`), recovering once from damage."""
        deadline = time.monotonic() + (self.write_patience_s if patience_s is None else patience_s)
        recovered = False
        while True:
            try:
                return fn()
            except StoreBusy:
                if time.monotonic() >= deadline:
                    raise
            except sqlite3.DatabaseError as e:
                if _is_locked(e):
                    if time.monotonic() >= deadline:
                        raise self._busy() from None
                elif _is_damaged(e) and not recovered:
                    recovered = True
                    self.recover(f"runs.db is damaged ({e})")
                    continue
                else:
                    raise
            time.sleep(0.5)

    @contextmanager
    def tx(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        """One short transaction; `immediate` takes the write lock up front (for claim-style updates)."""
        c = self.connect()
        try:
            try:
                c.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            except sqlite3.OperationalError as e:
                if _is_locked(e):
                    raise self._busy() from None
                raise
            yield c
            c.execute("COMMIT")
        except BaseException as e:
            try:
                c.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if _is_locked(e):
                raise self._busy() from None
            raise
        finally:
            c.close()

    def write(self, fn: Callable[[sqlite3.Connection], T], immediate: bool = False) -> T:
        """Run `fn(conn)` in one transaction, with the caller's patience for a locked store."""
        def once() -> T:
            with self.tx(immediate=immediate) as c:
                return fn(c)
        return self._with_patience(once)

    def read(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        return self._reading(lambda c: c.execute(sql, args).fetchall())

    def _reading(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(conn)` outside a write transaction; a locked store raises StoreBusy."""
        def once() -> T:
            c = self.connect()
            try:
                return fn(c)
            except sqlite3.OperationalError as e:
                if _is_locked(e):
                    raise self._busy() from None
                raise
            finally:
                c.close()
        # reads wait only as long as the busy timeout: a page must not hang on them
        return self._with_patience(once, patience_s=0.0)

    # -- recovery ------------------------------------------------------------------------
    def _healthy(self) -> bool:
        if not self.db_path.exists():
            return False
        try:
            c = self._raw_connect()
            try:
                c.execute("SELECT 1 FROM runs LIMIT 0")
                return c.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            finally:
                c.close()
        except sqlite3.DatabaseError as e:
            if _is_locked(e):
                return True  # someone else is using it: not ours to judge as damaged
            return False

    def recover(self, why: str) -> None:
        """Keep a damaged or missing index aside, build a new one, index every run folder again.
        Several processes may notice at once: a file lock makes one of them do it."""
        import fcntl

        with open(self.home / ".runs.db.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self._healthy():
                    return  # another process recovered it while we waited
                stamp = time.strftime("%Y%m%d-%H%M%S")
                kept = None
                for suffix in ("", "-wal", "-shm"):
                    p = Path(str(self.db_path) + suffix)
                    if p.exists():
                        dest = self.home / f"runs.db.damaged-{stamp}-{os.getpid()}{suffix}"
                        os.replace(p, dest)
                        kept = kept or (dest if suffix == "" else None)
                c = self._raw_connect()
                try:
                    c.executescript(SCHEMA)
                    _add_columns(c)
                finally:
                    c.close()
                n = self.reindex()
                print(f"[transferlab] run store {self.db_path}: {why}; damaged copy kept as {kept}; "
                      f"{n} run folder(s) indexed again", flush=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _run_folders(self) -> Iterator[Path]:
        if self.runs_dir.exists():
            for d in sorted(self.runs_dir.iterdir()):
                if d.is_dir() and RUN_ID.match(d.name) and (d / "config.json").exists():
                    yield d

    def reindex(self) -> int:
        """Index every run folder that the database does not know, from its own files."""
        c = self._raw_connect()
        n = 0
        try:
            known_x = {r[0] for r in c.execute("SELECT id FROM experiments")}
            for f in sorted(self.experiments_dir.glob("*.json")) if self.experiments_dir.exists() else []:
                if f.stem in known_x or not RUN_ID.match(f.stem):
                    continue
                try:
                    x = json.loads(f.read_text())
                    c.execute("INSERT INTO experiments (id, name, owner, published, created, spec, preset) "
                              "VALUES (?,?,?,?,?,?,?)", (f.stem, x["name"], x["owner"], int(x["published"]),
                                                         float(x["created"]), x["spec"], x.get("preset", "")))
                except (OSError, ValueError, KeyError, TypeError):
                    continue
            known = {r[0] for r in c.execute("SELECT id FROM runs")}
            for d in self._run_folders():
                if d.name in known:
                    continue
                try:
                    config = json.loads((d / "config.json").read_text())
                    rec = json.loads((d / "record.json").read_text()) if (d / "record.json").exists() else {}
                except (OSError, ValueError):
                    continue
                row = _row_from_config(d.name, config, owner=rec.get("owner", ""))
                if not rec:
                    row.update(status="interrupted", reason="re-indexed after the run store was rebuilt; this run's "
                                                            "status was not recorded in its folder",
                               created=(d / "config.json").stat().st_mtime)
                cols = {r[1] for r in c.execute("PRAGMA table_info(runs)")}
                row.update({k: v for k, v in rec.items() if k in cols and k not in MIRROR_SKIP})
                row["config"] = json.dumps(config, sort_keys=True)
                c.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                          tuple(row.values()))
                for m in _read_jsonl(d / "metrics.jsonl"):
                    c.execute("INSERT INTO metrics (run_id, epoch, data) VALUES (?,?,?)",
                              (d.name, int(m["epoch"]), json.dumps(m)))
                c.execute("INSERT INTO events (run_id, ts, kind, data) VALUES (?,?,?,?)",
                          (d.name, time.time(), "reindexed", "{}"))
                n += 1
        finally:
            c.close()
        return n

    # -- runs ------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / check_run_id(run_id)

    def mirror(self, run_id: str) -> None:
        """Write the run's row to `runs/<id>/record.json` (what a rebuilt index is made from)."""
        rows = self.read("SELECT * FROM runs WHERE id=?", (run_id,))
        d = self.run_dir(run_id)
        if rows and d.exists():
            atomic_write_text(d / "record.json", json.dumps({k: rows[0][k] for k in rows[0].keys()
                                                             if k not in MIRROR_SKIP}, sort_keys=True))

    def insert_run(self, run_id: str | None, config: dict[str, Any], name: str = "", owner: str = "",
                   published: bool = False, limits: tuple[int | None, ...] = (None, None),
                   wall_limit_s: float | None = None, estimate_s: float | None = None,
                   sources: dict[str, str] | None = None, config_id: str = "", run_key: str = "",
                   fresh: bool = False) -> str:
        """Record a queued run and return its id: `run_id`, or (None) a fresh `new_run_id(config_id)`
        drawn inside the transaction. `limits` (an `Admission`) are checked in the same transaction so
        that concurrent submissions cannot overshoot. Unless `fresh`, a run whose `run_key` matches a
        finished run is recorded finished at once with its results (`reused_from`), and one that matches
        a queued or training run waits on it (`attached_to`): identical work is trained once."""
        if run_id is not None:
            check_run_id(run_id)
        ids: list[str] = []
        reused: list[str] = []

        def insert(c: sqlite3.Connection) -> None:
            ids.clear()
            reused.clear()
            twin = None if fresh else _twin(c, run_key)
            if not _finished(twin):  # a reuse waits for nothing and costs nothing
                _check_queue(c, owner, limits, adding=1)
            rid = run_id if run_id is not None else _draw_run_id(c, config_id or "run", set())
            row = _row_from_config(rid, config, owner=owner)
            row.update(name=name, published=int(published), wall_limit_s=wall_limit_s, host=HOST,
                       estimate_s=estimate_s, config_sources=json.dumps(sources or {}, sort_keys=True),
                       seated=int(admission(limits).seated), run_key=run_key)
            reused.extend(_place(c, row, twin))
            ids.append(rid)

        self.write(insert, immediate=True)  # the row first: a refused or duplicate id leaves no folder
        rid = ids[0]
        rd = self.run_dir(rid)
        rd.mkdir(parents=True, exist_ok=True)
        atomic_write_text(rd / "config.json", json.dumps(config, indent=2, sort_keys=True))
        for twin_id in reused:
            self._link_files(twin_id, rid)
        self.mirror(rid)
        return rid

    # -- identical work, trained once ---------------------------------------------------------
    def _link_files(self, src: str, dst: str) -> None:
        """A reusing run's folder: the checkpoints and feature maps of the run it reuses, hard-linked (never
        copied: they are written once and replaced by rename, so neither run can change the other's);
        the metrics log copied (a resumed run appends to its own)."""
        a, b = self.run_dir(src), self.run_dir(dst)
        for f in sorted(a.rglob("*")) if a.is_dir() else []:
            rel = f.relative_to(a)
            if not f.is_file() or rel.name in OWN_FILES or any(p.startswith(".") for p in rel.parts):
                continue  # its own record, and a save in progress
            t = b / rel
            t.parent.mkdir(parents=True, exist_ok=True)
            if rel.name != "metrics.jsonl":  # appended to by a resumed run: that one is a copy of its own
                try:
                    os.link(f, t)
                    continue
                except OSError:  # another file system: copy it
                    pass
            shutil.copy2(f, t)

    def settle_attached(self, alive: Callable[[int | None, str | None], bool] | None = None) -> int:
        """Runs attached to an identical run that has ended: they take its results when it finished, else
        they are let go to train on their own (a run that had taken the training over goes back to the
        queue). A training its session left goes on while its worker lives (`alive(pid, pid_start)`).
        Returns how many were settled."""
        done: list[tuple[str, str]] = []

        def settle(c: sqlite3.Connection) -> None:
            done.clear()
            rows = c.execute("SELECT a.id AS id, a.attached_to AS twin FROM runs a LEFT JOIN runs t ON "
                             f"t.id = a.attached_to WHERE a.status IN {UNFINISHED} AND a.attached_to != '' AND "
                             f"(t.id IS NULL OR t.status IN {TERMINAL})").fetchall()
            for r in rows:
                twin = c.execute("SELECT * FROM runs WHERE id=?", (r["twin"],)).fetchone()
                if _finished(twin):
                    _take_results(c, r["id"], twin)
                    done.append((twin["id"], r["id"]))
                elif twin is not None and twin["reason"] == HANDED_OVER and (alive is None or alive(
                        twin["pid"], twin["pid_start"])):
                    continue  # still training for the runs that wait on it
                else:
                    c.execute("UPDATE runs SET attached_to='', status='queued', pid=NULL, started=NULL "
                              "WHERE id=?", (r["id"],))

        if not self.read(f"SELECT 1 FROM runs WHERE status IN {UNFINISHED} AND attached_to != '' LIMIT 1"):
            return 0  # the common case: no write lock taken
        self.write(settle, immediate=True)
        for twin_id, rid in done:
            self._link_files(twin_id, rid)
            self.mirror(rid)
        return len(done)

    def insert_experiment(self, exp_id: str, record: dict[str, Any],
                          members: list[tuple[str, dict[str, Any], str, float | None]],
                          limits: tuple = (None, None),
                          wall_limit_s: float | None = None, fresh: bool = False) -> list[str]:
        """Record an experiment and queue its member runs `(config id, config, strategy label, estimate,
        field sources, run key)` in one transaction: all of them or none. A member whose key matches a
        finished run takes its results at once; one matching a queued or training run waits on it (see
        `insert_run`), unless `fresh`. For the per-session quota an experiment counts as one item of
        work; for the server's queue every run it trains counts. Returns the run ids, in order."""
        check_run_id(exp_id)
        now = time.time()
        rec = {**record, "created": now}
        rows: list[dict[str, Any]] = []
        reused: list[tuple[str, str]] = []

        def insert(c: sqlite3.Connection) -> None:
            rows.clear()
            reused.clear()
            keys = [(m[5] if len(m) > 5 else "") for m in members]
            twins = [None if fresh else _twin(c, k) for k in keys]
            trains = sum(not _finished(t) for t in twins)
            if trains:
                _check_queue(c, record["owner"], limits, adding=trains, unit=True)
            c.execute("INSERT INTO experiments (id, name, owner, published, created, spec, preset) VALUES (?,?,?,?,?,?,?)",
                      (exp_id, rec["name"], rec["owner"], int(rec["published"]), now, rec["spec"], rec.get("preset", "")))
            taken: set[str] = set()
            for i, (cid, config, label, estimate, *more) in enumerate(members):
                rid = _draw_run_id(c, cid, taken)
                taken.add(rid)
                row = _row_from_config(rid, config, owner=record["owner"])
                # created strictly increasing: the scheduler runs the grid in the order given
                row.update(config_sources=json.dumps(more[0] if more else {}, sort_keys=True))
                row.update(name=label, published=int(rec["published"]), wall_limit_s=wall_limit_s, host=HOST,
                           experiment_id=exp_id, strategy=label, created=now + i * 1e-4, estimate_s=estimate,
                           seated=int(admission(limits).seated), run_key=keys[i])
                if twins[i] is None and not fresh:  # an identical earlier member of this grid, inserted above
                    twins[i] = _twin(c, keys[i])
                reused.extend((twin_id, rid) for twin_id in _place(c, row, twins[i]))
                rows.append(row)

        self.write(insert, immediate=True)
        for twin_id, rid in reused:
            self._link_files(twin_id, rid)
        self.experiments_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.experiments_dir / f"{exp_id}.json", json.dumps(rec, sort_keys=True))
        for (cid, config, label, *_), row in zip(members, rows):
            rd = self.run_dir(row["id"])
            rd.mkdir(parents=True, exist_ok=True)
            atomic_write_text(rd / "config.json", json.dumps(config, indent=2, sort_keys=True))
            self.mirror(row["id"])
        return [r["id"] for r in rows]

    def get_experiment(self, exp_id: str) -> dict[str, Any] | None:
        if not RUN_ID.match(str(exp_id)):
            return None
        rows = self.read("SELECT * FROM experiments WHERE id=?", (exp_id,))
        return dict(rows[0]) if rows else None

    def list_experiments(self, visible_to: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Experiments, newest first; `visible_to` as for `list`."""
        where, args = "", ()
        if visible_to is not None:
            where, args = f" WHERE {VISIBLE_SQL}", (visible_to,)
        return [dict(r) for r in self.read(f"SELECT * FROM experiments{where} ORDER BY created DESC LIMIT ?",
                                           (*args, limit))]

    def update_experiment(self, exp_id: str, **fields: Any) -> None:
        cols = ", ".join(f"{k}=?" for k in fields)
        self.write(lambda c: c.execute(f"UPDATE experiments SET {cols} WHERE id=?", (*fields.values(), exp_id)))
        rows = self.read("SELECT * FROM experiments WHERE id=?", (exp_id,))
        if rows:
            atomic_write_text(self.experiments_dir / f"{exp_id}.json", json.dumps(dict(rows[0]), sort_keys=True))

    def delete_experiment(self, exp_id: str) -> None:
        """The experiment's record (its runs are deleted one by one by the caller, folders included)."""
        self.write(lambda c: c.execute("DELETE FROM experiments WHERE id=?", (exp_id,)))
        (self.experiments_dir / f"{check_run_id(exp_id)}.json").unlink(missing_ok=True)

    def queue_order(self) -> list[str]:
        """Queued run ids in the order they will start (see `fair_queue`)."""
        return self._reading(fair_queue)

    def exists(self, run_id: str) -> bool:
        return bool(self.read("SELECT 1 FROM runs WHERE id=?", (run_id,)))

    def update(self, run_id: str, **fields: Any) -> None:
        if not fields:
            return
        cols = ", ".join(f"{k}=?" for k in fields)
        self.write(lambda c: c.execute(f"UPDATE runs SET {cols} WHERE id=?", (*fields.values(), run_id)))
        if set(fields) - MIRROR_SKIP:
            self.mirror(run_id)

    def get(self, run_id: str) -> dict[str, Any] | None:
        if not RUN_ID.match(str(run_id)):
            return None
        rows = self.read("SELECT * FROM runs WHERE id=?", (run_id,))
        return _row(rows[0]) if rows else None

    def list(self, status: str | None = None, method: str | None = None, source: str | None = None,
             target: str | None = None, backbone: str | None = None, limit: int = 500,
             visible_to: str | None = None, experiment: str | None = None) -> list[dict[str, Any]]:
        """Runs, newest first. `visible_to=OWNER`: only that owner's runs, published ones and the command
        line's (owner 'cli', or '' for runs recorded before owners existed): the rule of `visible`."""
        where, args = [], []
        for col, val in (("status", status), ("method", method), ("source", source), ("target", target),
                         ("backbone", backbone), ("experiment_id", experiment)):
            if val:
                where.append(f"{col}=?")
                args.append(val)
        if visible_to is not None:
            where.append(VISIBLE_SQL)
            args.append(visible_to)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + \
              " ORDER BY created DESC LIMIT ?"
        return [_row(r) for r in self.read(sql, (*args, limit))]

    # -- the job manager's questions and claims ---------------------------------------
    # -- the advisor's questions: queued jobs like runs, one at a time per session and on the server --
    def insert_advice(self, owner: str, source: str, target: str, limits: tuple = (None, None)) -> str:
        """Queue a question to the advisor for `owner` and return its id; one question at a time per
        owner, and the same queue limits as a run (an `Admission`), checked in one transaction."""
        job_id = "adv-" + secrets.token_hex(6)
        adm = admission(limits)

        def insert(c: sqlite3.Connection) -> None:
            if c.execute(f"SELECT 1 FROM advice WHERE owner=? AND {WAITING} LIMIT 1", (owner,)).fetchone():
                raise QuotaExceeded("Your last question to the advisor is still being answered: one question at a "
                                    "time per session. Its answer appears here when it is ready.")
            _check_queue(c, owner, adm, adding=1, unit=True)
            c.execute("INSERT INTO advice (id, owner, seated, source, target, status, created, host) "
                      "VALUES (?,?,?,?,?,?,?,?)", (job_id, owner, int(adm.seated), source, target, "queued",
                                                  time.time(), HOST))
            # keep each owner's last few answers only: the table stays small
            c.execute("DELETE FROM advice WHERE owner=? AND status NOT IN ('queued','starting','running') AND id NOT "
                      "IN (SELECT id FROM advice WHERE owner=? ORDER BY created DESC LIMIT 10)", (owner, owner))

        self.write(insert, immediate=True)
        return job_id

    def check_admission(self, owner: str, limits: tuple, adding: int = 1) -> None:
        """Raise QuotaExceeded when `owner` may not queue `adding` more runs now (a resume: no insert)."""
        self.write(lambda c: _check_queue(c, owner, limits, adding=adding))

    def get_advice(self, job_id: str) -> dict[str, Any] | None:
        rows = self.read("SELECT * FROM advice WHERE id=?", (str(job_id)[:40],))
        return dict(rows[0]) if rows else None

    def latest_advice(self, owner: str, source: str, target: str) -> dict[str, Any] | None:
        """An owner's newest question about a pair (a page left and reopened finds its answer)."""
        rows = self.read("SELECT * FROM advice WHERE owner=? AND source=? AND target=? ORDER BY created DESC LIMIT 1",
                         (owner, source, target))
        return dict(rows[0]) if rows else None

    def update_advice(self, job_id: str, **fields: Any) -> None:
        cols = ", ".join(f"{k}=?" for k in fields)
        self.write(lambda c: c.execute(f"UPDATE advice SET {cols} WHERE id=?", (*fields.values(), job_id)))

    def active_advice(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.read("SELECT id, status, pid, pid_start, started, host FROM advice "
                                           f"WHERE status IN {ACTIVE}")]

    def claim_advice(self) -> str | None:
        """The next question to answer (seated owners' first, then the oldest), marked starting; None when
        one is already being answered (one at a time on the server) or none waits."""
        got: list[str] = []

        def claim(c: sqlite3.Connection) -> None:
            got.clear()
            if c.execute(f"SELECT 1 FROM advice WHERE status IN {ACTIVE} LIMIT 1").fetchone():
                return
            row = c.execute("SELECT id FROM advice WHERE status='queued' ORDER BY seated DESC, created LIMIT 1").fetchone()
            if row:
                c.execute("UPDATE advice SET status='starting', started=? WHERE id=?", (time.time(), row[0]))
                got.append(row[0])

        if not self.read("SELECT 1 FROM advice WHERE status='queued' LIMIT 1"):
            return None  # the common case: no write lock taken
        self.write(claim, immediate=True)
        return got[0] if got else None

    def has_queued(self) -> bool:
        return bool(self.read("SELECT 1 FROM runs WHERE status='queued' AND attached_to='' LIMIT 1"))

    def active_runs(self) -> list[sqlite3.Row]:
        """Starting and running runs, with what judging their process needs."""
        return self.read("SELECT id, status, pid, pid_start, started, cancel_requested, host, executor, driver_pid, "
                         f"attached_to FROM runs WHERE status IN {ACTIVE}")

    def waiting_runs(self) -> list[dict[str, Any]]:
        """Queued, starting and running runs, oldest first (the server's queue)."""
        return [dict(r) for r in self.read("SELECT id, status, owner, method, source, target, created FROM runs "
                                           f"WHERE {WAITING} ORDER BY created")]

    def claim_queued(self, assign_slots: Callable[[list[tuple[int | None, float]], list[tuple[str, float]]],
                                                  list[tuple[str, int]]],
                     share: Callable[[dict[str, Any]], float]) -> list[tuple[str, int]]:
        """Mark the queued runs that `assign_slots(active, queued)` picks as starting on their slots, atomically
        across processes: `active` is (slot, share) of each started run, `queued` (id, share) in the
        fair order; `share(config)` is what a run declares of a device."""
        def claim(c: sqlite3.Connection) -> list[tuple[str, int]]:
            active = [(r["slot"], share(json.loads(r["config"])))
                      for r in c.execute(f"SELECT slot, config FROM runs WHERE status IN {ACTIVE}")]
            order = fair_queue(c)[:64]  # round-robin across sessions
            configs = {r["id"]: r["config"] for r in c.execute(
                f"SELECT id, config FROM runs WHERE id IN ({','.join('?' * len(order))})", order)}
            claimed = assign_slots(active, [(rid, share(json.loads(configs[rid]))) for rid in order])
            for run_id, slot in claimed:
                c.execute("UPDATE runs SET status='starting', started=?, pid=NULL, slot=?, cancel_requested=NULL, "
                          "host=? WHERE id=?", (time.time(), slot, HOST, run_id))
            return claimed

        claimed = self.write(claim, immediate=True)
        for run_id, _ in claimed:
            self.mirror(run_id)
        return claimed

    def begin_run(self, run_id: str, **fields: Any) -> bool:
        """A worker takes its run: status 'running' and `fields`, only if the run is still waiting to
        start (False: another worker has it, or it was cancelled meanwhile)."""
        cols = ", ".join(f"{k}=?" for k in fields)
        ok = bool(self.write(lambda c: c.execute(f"UPDATE runs SET status='running', {cols} WHERE id=? AND "
                                                 f"status IN ('starting', 'queued')",
                                                 (*fields.values(), run_id)).rowcount))
        if ok:
            self.mirror(run_id)
        return ok

    def set_worker(self, run_id: str, pid: int, pid_start: str | None) -> None:
        """The process a starting run was given."""
        self.write(lambda c: c.execute("UPDATE runs SET pid=?, pid_start=?, heartbeat=? WHERE id=? AND "
                                       "status='starting'", (pid, pid_start, time.time(), run_id)))

    def cancel_requested(self, run_id: str) -> bool:
        rows = self.read("SELECT cancel_requested FROM runs WHERE id=?", (run_id,))
        return bool(rows and rows[0]["cancel_requested"])

    def leave_training(self, run_id: str) -> tuple[str, str] | None:
        """A session cancels a run whose training others wait on: only that session leaves. Returns
        ("handed", heir) when the oldest run still waiting on the same training takes it over (the worker
        goes on; the heir is running on its process), ("stop", training run) when the caller was the last
        one and the training must stop, None when no one else shares it (an ordinary cancel)."""
        def leave(c: sqlite3.Connection) -> tuple[str, str] | None:
            r = c.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
            if r is None or r["status"] not in ACTIVE:
                return None
            training = r["attached_to"] or r["id"]
            if training == r["id"] and r["cancel_requested"]:
                return None
            heir = c.execute("SELECT id FROM runs WHERE attached_to=? AND status='queued' AND id != ? "
                             "ORDER BY created LIMIT 1", (training, run_id)).fetchone()
            if heir is None and training == r["id"]:
                return None
            now = time.time()
            c.execute("UPDATE runs SET status='cancelled', reason=?, ended=? WHERE id=?",
                      (HANDED_OVER if training == r["id"] else "cancelled", now, run_id))
            c.execute("INSERT INTO events (run_id, ts, kind, data) VALUES (?,?,?,?)",
                      (run_id, now, "cancelled", json.dumps({"left_to": "heir" if heir else ""})))
            if heir is None:
                return "stop", training
            c.execute("UPDATE runs SET status='running', started=?, pid=?, pid_start=?, slot=?, host=?, executor=?, "
                      "node=?, heartbeat=? WHERE id=?", (now, r["pid"], r["pid_start"], r["slot"], r["host"],
                                                         r["executor"], r["node"], now, heir["id"]))
            return "handed", heir["id"]

        out = self.write(leave, immediate=True)
        if out is not None:
            self.mirror(run_id)
            self.mirror(out[1])
        return out

    def cancel_queued(self, run_id: str) -> None:
        """Cancel a run that has not started (nothing when it has)."""
        self.write(lambda c: c.execute("UPDATE runs SET status='cancelled', reason='cancelled before it started', "
                                       "ended=? WHERE id=? AND status='queued'", (time.time(), run_id)))
        self.mirror(run_id)

    def finish_if_active(self, run_id: str, status: str, reason: str) -> bool:
        """End a starting or running run with `status` and its reason (and an event); False when it had
        already ended (whoever ends a run first says why)."""
        def finish(c: sqlite3.Connection) -> bool:
            cur = c.execute(f"UPDATE runs SET status=?, reason=?, ended=? WHERE id=? AND status IN {ACTIVE}",
                            (status, reason, time.time(), run_id))
            if cur.rowcount > 0:
                c.execute("INSERT INTO events (run_id, ts, kind, data) VALUES (?,?,?,?)",
                          (run_id, time.time(), status, json.dumps({"reason": reason})))
            return cur.rowcount > 0

        changed = self.write(finish)
        if changed:
            self.mirror(run_id)
        return changed

    def ping(self) -> None:
        """One read: raises StoreBusy while another process holds the store locked."""
        self.read("SELECT 1 FROM runs LIMIT 1")

    def delete(self, run_id: str) -> None:
        def rm(c: sqlite3.Connection) -> None:
            for table, col in (("runs", "id"), ("progress", "run_id"), ("metrics", "run_id"), ("events", "run_id")):
                c.execute(f"DELETE FROM {table} WHERE {col}=?", (run_id,))
        self.write(rm)

    # -- telemetry -------------------------------------------------------------------
    def write_progress(self, run_id: str, epoch: int, step: int, total: int, ips: float, eta: float,
                       losses: dict[str, float]) -> None:
        """Best effort: progress is overwritten a second later, so a locked store just skips it."""
        now = time.time()
        try:
            with self.tx() as c:
                c.execute("INSERT OR REPLACE INTO progress VALUES (?,?,?,?,?,?,?,?)",
                          (run_id, epoch, step, total, ips, eta, json.dumps(losses), now))
                c.execute("UPDATE runs SET heartbeat=? WHERE id=?", (now, run_id))
        except StoreBusy:
            pass

    def progress(self, run_id: str) -> dict[str, Any] | None:
        rows = self.read("SELECT * FROM progress WHERE run_id=?", (run_id,))
        if not rows:
            return None
        d = dict(rows[0])
        d["losses"] = json.loads(d["losses"] or "{}")
        return d

    def add_metrics(self, run_id: str, epoch: int, data: dict[str, Any], run_fields: dict[str, Any]) -> None:
        def add(c: sqlite3.Connection) -> None:
            # a resumed run may write an epoch again: the newest copy wins (and gets a new cursor)
            c.execute("DELETE FROM metrics WHERE run_id=? AND epoch>=?", (run_id, epoch))
            c.execute("INSERT INTO metrics (run_id, epoch, data) VALUES (?,?,?)", (run_id, epoch, json.dumps(data)))
            if run_fields:
                cols = ", ".join(f"{k}=?" for k in run_fields)
                c.execute(f"UPDATE runs SET {cols} WHERE id=?", (*run_fields.values(), run_id))
        self.write(add)
        path = self.run_dir(run_id) / "metrics.jsonl"
        if path.parent.exists():
            kept = [m for m in _read_jsonl(path) if m.get("epoch", 0) < epoch] + [data]
            atomic_write_text(path, "".join(json.dumps(m) + "\n" for m in kept))
        self.mirror(run_id)

    def metrics(self, run_id: str, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
        rows = self.read("SELECT seq, data FROM metrics WHERE run_id=? AND seq>? ORDER BY seq", (run_id, cursor))
        out = [json.loads(r["data"]) for r in rows]
        return out, (rows[-1]["seq"] if rows else cursor)

    def add_event(self, run_id: str, kind: str, data: dict[str, Any]) -> None:
        self.write(lambda c: c.execute("INSERT INTO events (run_id, ts, kind, data) VALUES (?,?,?,?)",
                                       (run_id, time.time(), kind, json.dumps(data))))


def visible(row: dict[str, Any], owner: str) -> bool:
    """The one visibility rule: a run or experiment is visible to its owner, to everyone once published,
    and to everyone when it is the command line's (VISIBLE_SQL says the same to SQLite)."""
    who = row.get("owner") or ""
    return who == owner or bool(row.get("published")) or who in PUBLIC_OWNERS


def new_run_id(config_id: str) -> str:
    """A run's id: its config's content id (readable, groups seeds in listings) and a random part, so
    an id says nothing about whether someone else ran the same config (a content id alone would come
    back as `<id>-2` to the second session that launched it)."""
    return f"{config_id}-{secrets.token_hex(3)}"


def _draw_run_id(c: sqlite3.Connection, config_id: str, taken: set[str]) -> str:
    while True:
        rid = new_run_id(config_id)
        if rid not in taken and not c.execute("SELECT 1 FROM runs WHERE id=?", (rid,)).fetchone():
            return rid


def _twin(c: sqlite3.Connection, run_key: str) -> sqlite3.Row | None:
    """The run with the same key that a new one may take its numbers from: a finished one first, else one
    queued or training (not itself waiting on another), or a training its session left for others."""
    if not run_key:
        return None
    return c.execute("SELECT * FROM runs WHERE run_key=? AND (status='finished' OR (status IN "
                     f"{UNFINISHED} AND attached_to='') OR (status='cancelled' AND reason=?)) "
                     "ORDER BY status='finished' DESC, best_epoch IS NOT NULL DESC, created LIMIT 1",
                     (run_key, HANDED_OVER)).fetchone()


def _finished(twin: sqlite3.Row | None) -> bool:
    """Whether a run has the numbers of a whole training: finished, or left by its session while others
    waited on it and then trained to its end (`leave_training`; the sink recorded its best epoch)."""
    return twin is not None and (twin["status"] == "finished" or (
        twin["status"] == "cancelled" and twin["reason"] == HANDED_OVER and twin["best_epoch"] is not None))


def _place(c: sqlite3.Connection, row: dict[str, Any], twin: sqlite3.Row | None) -> list[str]:
    """Insert a new run's row: waiting on its identical `twin` while that one is queued or training, or
    finished at once with a finished twin's results. Returns the twin whose files it takes ([] if none)."""
    if twin is not None and not _finished(twin):
        row["attached_to"] = twin["id"]
    _insert_row(c, row)
    if not _finished(twin):
        return []
    _take_results(c, row["id"], twin)
    return [twin["id"]]


def _take_results(c: sqlite3.Connection, rid: str, twin: sqlite3.Row) -> None:
    """Finish run `rid` with the results of its finished twin: its record's numbers and its per-epoch
    metrics (the files are linked after the transaction)."""
    now = time.time()
    values = {k: twin[k] for k in RESULT_COLUMNS}
    cols = ", ".join(f"{k}=?" for k in values)
    c.execute(f"UPDATE runs SET {cols}, status='finished', reason='', started=?, ended=?, reused_from=?, "
              f"attached_to='' WHERE id=?", (*values.values(), now, now, twin["id"], rid))
    c.execute("INSERT INTO metrics (run_id, epoch, data) SELECT ?, epoch, data FROM metrics WHERE run_id=? "
              "ORDER BY seq", (rid, twin["id"]))
    c.execute("INSERT INTO events (run_id, ts, kind, data) VALUES (?,?,?,?)",
              (rid, now, "reused", json.dumps({"from": twin["id"], "trained": twin["ended"]})))


def _insert_row(c: sqlite3.Connection, row: dict[str, Any]) -> None:
    c.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


def _check_queue(c: sqlite3.Connection, owner: str, limits: tuple, adding: int, unit: bool = False) -> None:
    """Refuse work beyond the quotas (an `Admission`): per owner, items of work queued or running (a run,
    or a whole experiment); for the server, runs queued or running. A seated session with nothing
    waiting is admitted whatever the server's run count (up to `sessions` seated sessions waiting at
    once), so every seat's first item is taken before any seat's second; a browser without a seat never
    gets past the total, and all of them together share `anon` runs. Called inside the inserting
    transaction."""
    per_owner, total, sessions, anon, seated = admission(limits)
    if not seated and anon is not None:
        n_anon = c.execute(f"SELECT COUNT(*) FROM runs WHERE {WAITING} AND seated=0").fetchone()[0] + \
            c.execute(f"SELECT COUNT(*) FROM advice WHERE {WAITING} AND seated=0").fetchone()[0]
        if n_anon + adding > anon:
            raise QuotaExceeded(
                "This browser has no seat on this class server, and the runs allowed to all browsers without one "
                f"are taken ({n_anon} of {anon} queued or running, TL_QUOTA_ANON_RUNS). Open the join link your "
                "teacher gave you (or sign in) to train; meanwhile you can open and watch the class's shared runs "
                "and experiments.")
    n_mine = c.execute(f"SELECT COUNT(DISTINCT CASE WHEN experiment_id != '' THEN experiment_id ELSE id END) "
                       f"FROM runs WHERE owner=? AND {WAITING}", (owner,)).fetchone()[0]
    n_asking = c.execute(f"SELECT COUNT(*) FROM advice WHERE owner=? AND {WAITING}", (owner,)).fetchone()[0]
    if per_owner is not None and n_mine + n_asking + (1 if unit else adding) > per_owner:
        raise QuotaExceeded(f"You already have {n_mine} runs or experiments queued or running, the most one "
                            f"session may have (limit {per_owner}, TL_QUOTA_QUEUED_RUNS). Wait for one to finish, "
                            f"or stop one.")
    if total is None:
        return
    if n_mine == 0 and seated:  # a seat's first item: admitted unless too many seats already wait
        waiting = c.execute(f"SELECT COUNT(DISTINCT owner) FROM runs WHERE {WAITING} AND seated=1").fetchone()[0]
        if sessions is None or waiting < sessions:
            return
        raise QuotaExceeded(f"The server's queue is full: {waiting} sessions have runs waiting (limit {sessions}, "
                            f"TL_QUOTA_QUEUED_SESSIONS). Try again in a few minutes.")
    n = c.execute(f"SELECT COUNT(*) FROM runs WHERE {WAITING}").fetchone()[0]
    if n + adding > total:
        raise QuotaExceeded(f"The server's queue is full: {n} runs are queued or running and this needs "
                            f"{adding} more (limit {total}, TL_QUOTA_QUEUED_TOTAL). " +
                            ("Your first experiment or run is always taken; this one can wait until it has finished."
                             if seated else "Try again when some have finished, or open your teacher's join link: "
                             "a seat's first experiment or run is always taken."))


WAITING = f"status IN {UNFINISHED}"


def fair_queue(c: sqlite3.Connection) -> list[str]:
    """The queued runs in the order they start: round-robin across owners. A run's rank is how many of
    its owner's runs started since that owner's oldest queued run was submitted, plus how many of the
    owner's queued runs are ahead of it; ties go to the older run. So a session's second run waits
    behind every other session's first, and a session that has waited longest is served first. Seated
    work comes before the work of browsers without a seat, so no flood of fresh cookies moves a
    student's run back."""
    queued = c.execute("SELECT id, owner, created, seated FROM runs WHERE status='queued' AND attached_to='' "
                       "ORDER BY created, rowid").fetchall()
    if not queued:
        return []
    served = dict(c.execute(
        "SELECT r.owner, COUNT(*) FROM runs r JOIN (SELECT owner, MIN(created) AS since FROM runs "
        "WHERE status='queued' GROUP BY owner) q ON r.owner = q.owner WHERE r.status != 'queued' "
        "AND r.started IS NOT NULL AND r.started >= q.since GROUP BY r.owner").fetchall())
    ahead: dict[str, int] = {}
    ranked = []
    for i, r in enumerate(queued):
        k = ahead.get(r["owner"], 0)
        ahead[r["owner"]] = k + 1
        ranked.append((0 if r["seated"] or r["seated"] is None else 1, served.get(r["owner"], 0) + k, i, r["id"]))
    return [rid for *_, rid in sorted(ranked)]


def _add_columns(c: sqlite3.Connection) -> None:
    """Bring an older store's `runs` table up to date; another process may be doing the same."""
    have = {r[1] for r in c.execute("PRAGMA table_info(runs)")}
    for name, decl in ADDED_COLUMNS:
        if name not in have:
            try:
                c.execute(f"ALTER TABLE runs ADD COLUMN {name} {decl}")
            except sqlite3.OperationalError as e:
                if "duplicate column" not in str(e):
                    raise
    c.execute("CREATE INDEX IF NOT EXISTS runs_key ON runs(run_key)")


def _row_from_config(run_id: str, config: dict[str, Any], owner: str = "") -> dict[str, Any]:
    d, m, me, t = config["data"], config["model"], config["method"], config["train"]
    return {"id": run_id, "config": json.dumps(config, sort_keys=True), "status": "queued", "created": time.time(),
            "epochs": t["epochs"], "source": d["source"], "target": d["target"], "backbone": m["backbone"],
            "method": me["name"], "seed": t["seed"], "target_labels": str(d["target_labels"]), "owner": owner}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a torn last line: the rest is still good
    return out


def _row(r: sqlite3.Row) -> dict[str, Any]:
    d = dict(r)
    d["config"] = json.loads(d["config"])
    return d


# -- the store of this process ----------------------------------------------------------------------

_STORES: dict[tuple[str, bool], Store] = {}
_STORES_LOCK = threading.Lock()
_web_server = False  # set once by the web server: its store calls give up quickly (StoreBusy)


def set_interactive(on: bool = True) -> None:
    """In the web server: store calls give up after a few seconds (StoreBusy) instead of waiting."""
    global _web_server
    _web_server = on


def store() -> Store:
    """The store of the current TL_HOME, one per process and mode (the web server's threads share it)."""
    key = (str(tl_home()), _web_server)
    with _STORES_LOCK:
        if key not in _STORES:
            _STORES[key] = Store(Path(key[0]), interactive=key[1])
        return _STORES[key]
