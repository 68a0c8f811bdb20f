"""The store's plumbing: connections (WAL, a busy timeout), short transactions with the caller's patience
for a locked store, and recovery: a damaged or deleted `runs.db` is kept aside and rebuilt from the run
folders' own files, so nothing that was on disk is lost."""
from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from tl_core.base.errors import StoreBusy
from tl_core.base.limits import setting
from tl_core.base.paths import atomic_write_text, tl_home
from tl_core.store.schema import (
    MIRROR_SKIP, RUN_ID, SCHEMA, add_columns, check_run_id, read_jsonl, row_from_config
)

T = TypeVar("T")


def is_locked(e: BaseException) -> bool:
    return isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e))


def is_damaged(e: BaseException) -> bool:
    msg = str(e).lower()
    return isinstance(e, sqlite3.DatabaseError) and not is_locked(e) and any(
        s in msg for s in ("not a database", "malformed", "no such table", "disk image", "file is encrypted"))


class Database:
    """One TL_HOME's `runs.db` and run folders: connections, transactions, recovery; the jobs of the store
    (runs, the queue, experiments, the advisor's questions, telemetry) are the mixins `Store` joins to it."""

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

    def _ensure_schema(self, fresh_ok: bool) -> None:
        c = None
        try:
            c = self._raw_connect()
            c.executescript(SCHEMA)
            add_columns(c)
        except sqlite3.DatabaseError as e:
            if is_locked(e):
                raise self._busy() from None
            if not is_damaged(e):
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
            if is_locked(e):
                raise self._busy() from None
            if not is_damaged(e):
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
                if is_locked(e):
                    if time.monotonic() >= deadline:
                        raise self._busy() from None
                elif is_damaged(e) and not recovered:
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
                if is_locked(e):
                    raise self._busy() from None
                raise
            yield c
            c.execute("COMMIT")
        except BaseException as e:
            try:
                c.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if is_locked(e):
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
                if is_locked(e):
                    raise self._busy() from None
                raise
            finally:
                c.close()
        # reads wait only as long as the busy timeout: a page must not hang on them
        return self._with_patience(once, patience_s=0.0)

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
            if is_locked(e):
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
                    add_columns(c)
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
                row = row_from_config(d.name, config, owner=rec.get("owner", ""))
                if not rec:
                    row.update(status="interrupted", reason="re-indexed after the run store was rebuilt; this run's "
                                                            "status was not recorded in its folder",
                               created=(d / "config.json").stat().st_mtime)
                cols = {r[1] for r in c.execute("PRAGMA table_info(runs)")}
                row.update({k: v for k, v in rec.items() if k in cols and k not in MIRROR_SKIP})
                row["config"] = json.dumps(config, sort_keys=True)
                c.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                          tuple(row.values()))
                for m in read_jsonl(d / "metrics.jsonl"):
                    c.execute("INSERT INTO metrics (run_id, epoch, data) VALUES (?,?,?)",
                              (d.name, int(m["epoch"]), json.dumps(m)))
                c.execute("INSERT INTO events (run_id, ts, kind, data) VALUES (?,?,?,?)",
                          (d.name, time.time(), "reindexed", "{}"))
                n += 1
        finally:
            c.close()
        return n

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / check_run_id(run_id)

    def mirror(self, run_id: str) -> None:
        """Write the run's row to `runs/<id>/record.json` (what a rebuilt index is made from)."""
        rows = self.read("SELECT * FROM runs WHERE id=?", (run_id,))
        d = self.run_dir(run_id)
        if rows and d.exists():
            atomic_write_text(d / "record.json", json.dumps({k: rows[0][k] for k in rows[0].keys()
                                                             if k not in MIRROR_SKIP}, sort_keys=True))
