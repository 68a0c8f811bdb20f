"""The run store: SQLite (WAL) at TL_HOME/runs.db for the index, status, progress, metrics and
events; one folder per run at TL_HOME/runs/<id>/ for the config, checkpoints and embeddings.

Every connection uses WAL and a busy timeout, and every write is one short transaction, so
readers polling while a worker writes never see "database is locked".
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .paths import atomic_write_text, tl_home

ACTIVE = ("starting", "running")
TERMINAL = ("finished", "failed", "cancelled", "interrupted")

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
"""


class Store:
    def __init__(self, home: Path | None = None):
        self.home = Path(home) if home else tl_home()
        self.db_path = self.home / "runs.db"
        self.runs_dir = self.home / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        c = self.connect()
        try:
            c.executescript(SCHEMA)
        finally:
            c.close()

    def connect(self) -> sqlite3.Connection:
        c = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None, check_same_thread=False)
        c.row_factory = sqlite3.Row
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute("PRAGMA busy_timeout=30000")
        return c

    @contextmanager
    def tx(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        """One short transaction; `immediate` takes the write lock up front (for claim-style updates)."""
        c = self.connect()
        try:
            c.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            yield c
            c.execute("COMMIT")
        except BaseException:
            try:
                c.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        finally:
            c.close()

    def read(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        c = self.connect()
        try:
            return c.execute(sql, args).fetchall()
        finally:
            c.close()

    # -- runs ------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def insert_run(self, run_id: str, config: dict[str, Any], name: str = "", owner: str = "") -> None:
        d, m, me, t = config["data"], config["model"], config["method"], config["train"]
        rd = self.run_dir(run_id)
        rd.mkdir(parents=True, exist_ok=True)
        atomic_write_text(rd / "config.json", json.dumps(config, indent=2, sort_keys=True))
        with self.tx() as c:
            c.execute(
                "INSERT INTO runs (id, name, config, status, created, epochs, source, target, backbone, method, seed,"
                " target_labels, owner) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, name, json.dumps(config, sort_keys=True), "queued", time.time(), t["epochs"], d["source"],
                 d["target"], m["backbone"], me["name"], t["seed"], str(d["target_labels"]), owner))

    def exists(self, run_id: str) -> bool:
        return bool(self.read("SELECT 1 FROM runs WHERE id=?", (run_id,)))

    def update(self, run_id: str, **fields: Any) -> None:
        if not fields:
            return
        cols = ", ".join(f"{k}=?" for k in fields)
        with self.tx() as c:
            c.execute(f"UPDATE runs SET {cols} WHERE id=?", (*fields.values(), run_id))

    def get(self, run_id: str) -> dict[str, Any] | None:
        rows = self.read("SELECT * FROM runs WHERE id=?", (run_id,))
        return _row(rows[0]) if rows else None

    def list(self, status: str | None = None, method: str | None = None, source: str | None = None,
             target: str | None = None, backbone: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        where, args = [], []
        for col, val in (("status", status), ("method", method), ("source", source), ("target", target),
                         ("backbone", backbone)):
            if val:
                where.append(f"{col}=?")
                args.append(val)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + \
              " ORDER BY created DESC LIMIT ?"
        return [_row(r) for r in self.read(sql, (*args, limit))]

    def delete(self, run_id: str) -> None:
        with self.tx() as c:
            for table, col in (("runs", "id"), ("progress", "run_id"), ("metrics", "run_id"), ("events", "run_id")):
                c.execute(f"DELETE FROM {table} WHERE {col}=?", (run_id,))

    # -- telemetry -------------------------------------------------------------------
    def write_progress(self, run_id: str, epoch: int, step: int, total: int, ips: float, eta: float,
                       losses: dict[str, float]) -> None:
        now = time.time()
        with self.tx() as c:
            c.execute("INSERT OR REPLACE INTO progress VALUES (?,?,?,?,?,?,?,?)",
                      (run_id, epoch, step, total, ips, eta, json.dumps(losses), now))
            c.execute("UPDATE runs SET heartbeat=? WHERE id=?", (now, run_id))

    def progress(self, run_id: str) -> dict[str, Any] | None:
        rows = self.read("SELECT * FROM progress WHERE run_id=?", (run_id,))
        if not rows:
            return None
        d = dict(rows[0])
        d["losses"] = json.loads(d["losses"] or "{}")
        return d

    def add_metrics(self, run_id: str, epoch: int, data: dict[str, Any], run_fields: dict[str, Any]) -> None:
        with self.tx() as c:
            # a resumed run may write an epoch again: the newest copy wins (and gets a new cursor)
            c.execute("DELETE FROM metrics WHERE run_id=? AND epoch>=?", (run_id, epoch))
            c.execute("INSERT INTO metrics (run_id, epoch, data) VALUES (?,?,?)", (run_id, epoch, json.dumps(data)))
            if run_fields:
                cols = ", ".join(f"{k}=?" for k in run_fields)
                c.execute(f"UPDATE runs SET {cols} WHERE id=?", (*run_fields.values(), run_id))

    def metrics(self, run_id: str, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
        rows = self.read("SELECT seq, data FROM metrics WHERE run_id=? AND seq>? ORDER BY seq", (run_id, cursor))
        out = [json.loads(r["data"]) for r in rows]
        return out, (rows[-1]["seq"] if rows else cursor)

    def add_event(self, run_id: str, kind: str, data: dict[str, Any]) -> None:
        with self.tx() as c:
            c.execute("INSERT INTO events (run_id, ts, kind, data) VALUES (?,?,?,?)",
                      (run_id, time.time(), kind, json.dumps(data)))


def _row(r: sqlite3.Row) -> dict[str, Any]:
    d = dict(r)
    d["config"] = json.loads(d["config"])
    return d
