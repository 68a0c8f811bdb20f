"""What the store records, as data: the tables and their later columns, the run statuses, the one
visibility rule (in Python and in SQL), run ids, and how a row is made from a config and read back."""
from __future__ import annotations

import json
import re
import secrets
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

from tl_core.base.errors import TLError

ACTIVE = ("starting", "running")
TERMINAL = ("finished", "failed", "cancelled", "interrupted")
UNFINISHED = ("queued",) + ACTIVE  # waiting for a slot or training
HOST = socket.gethostname()
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PUBLIC_OWNERS = ("", "cli")  # the command line's runs (and runs from before owners existed): everyone's
VISIBLE_SQL = "(owner=? OR published=1 OR owner IN ('', 'cli'))"  # `visible_to` as SQL, for one owner
WAITING = f"status IN {UNFINISHED}"

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


def check_run_id(run_id: str) -> str:
    """Run ids name folders: anything but the id alphabet is refused (no '..', no '/')."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise TLError(f"There is no run {str(run_id)[:70]!r}.")
    return run_id


def visible_to(row: dict[str, Any], owner: str) -> bool:
    """The one visibility rule: a run or experiment is visible to its owner, to everyone once published,
    and to everyone when it is the command line's (VISIBLE_SQL says the same to SQLite)."""
    who = row.get("owner") or ""
    return who == owner or bool(row.get("published")) or who in PUBLIC_OWNERS


def new_run_id(config_id: str) -> str:
    """A run's id: its config's content id (readable, groups seeds in listings) and a random part, so
    an id says nothing about whether someone else ran the same config (a content id alone would come
    back as `<id>-2` to the second session that launched it)."""
    return f"{config_id}-{secrets.token_hex(3)}"


def add_columns(c: sqlite3.Connection) -> None:
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


def row_from_config(run_id: str, config: dict[str, Any], owner: str = "") -> dict[str, Any]:
    d, m, me, t = config["data"], config["model"], config["method"], config["train"]
    return {"id": run_id, "config": json.dumps(config, sort_keys=True), "status": "queued", "created": time.time(),
            "epochs": t["epochs"], "source": d["source"], "target": d["target"], "backbone": m["backbone"],
            "method": me["name"], "seed": t["seed"], "target_labels": str(d["target_labels"]), "owner": owner}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a torn last line: the rest is still good
    return out


def decode_row(r: sqlite3.Row) -> dict[str, Any]:
    d = dict(r)
    d["config"] = json.loads(d["config"])
    return d
