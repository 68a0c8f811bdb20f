"""Run rows: recording a queued run, reading and updating it, and identical work trained once (a run
whose key matches a finished run takes its results and files, one matching a training run waits on it)."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from typing import Any, Callable

from tl_core.base.paths import atomic_write_text
from tl_core.store.queue import admission, check_queue
from tl_core.store.schema import (
    HANDED_OVER, HOST, OWN_FILES, MIRROR_SKIP, RESULT_COLUMNS, RUN_ID, TERMINAL, UNFINISHED, VISIBLE_SQL,
    check_run_id, decode_row, new_run_id, row_from_config
)


def draw_run_id(c: sqlite3.Connection, config_id: str, taken: set[str]) -> str:
    while True:
        rid = new_run_id(config_id)
        if rid not in taken and not c.execute("SELECT 1 FROM runs WHERE id=?", (rid,)).fetchone():
            return rid


def twin_of(c: sqlite3.Connection, run_key: str) -> sqlite3.Row | None:
    """The run with the same key that a new one may take its numbers from: a finished one first, else one
    queued or training (not itself waiting on another), or a training its session left for others."""
    if not run_key:
        return None
    return c.execute("SELECT * FROM runs WHERE run_key=? AND (status='finished' OR (status IN "
                     f"{UNFINISHED} AND attached_to='') OR (status='cancelled' AND reason=?)) "
                     "ORDER BY status='finished' DESC, best_epoch IS NOT NULL DESC, created LIMIT 1",
                     (run_key, HANDED_OVER)).fetchone()


def trained_through(twin: sqlite3.Row | None) -> bool:
    """Whether a run has the numbers of a whole training: finished, or left by its session while others
    waited on it and then trained to its end (`leave_training`; the sink recorded its best epoch)."""
    return twin is not None and (twin["status"] == "finished" or (
        twin["status"] == "cancelled" and twin["reason"] == HANDED_OVER and twin["best_epoch"] is not None))


def place(c: sqlite3.Connection, row: dict[str, Any], twin: sqlite3.Row | None) -> list[str]:
    """Insert a new run's row: waiting on its identical `twin` while that one is queued or training, or
    finished at once with a finished twin's results. Returns the twin whose files it takes ([] if none)."""
    if twin is not None and not trained_through(twin):
        row["attached_to"] = twin["id"]
    insert_row(c, row)
    if not trained_through(twin):
        return []
    take_results(c, row["id"], twin)
    return [twin["id"]]


def take_results(c: sqlite3.Connection, rid: str, twin: sqlite3.Row) -> None:
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


def insert_row(c: sqlite3.Connection, row: dict[str, Any]) -> None:
    c.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


class RunsMixin:
    """The runs' side of `Store`."""

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
            twin = None if fresh else twin_of(c, run_key)
            if not trained_through(twin):  # a reuse waits for nothing and costs nothing
                check_queue(c, owner, limits, adding=1)
            rid = run_id if run_id is not None else draw_run_id(c, config_id or "run", set())
            row = row_from_config(rid, config, owner=owner)
            row.update(name=name, published=int(published), wall_limit_s=wall_limit_s, host=HOST,
                       estimate_s=estimate_s, config_sources=json.dumps(sources or {}, sort_keys=True),
                       seated=int(admission(limits).seated), run_key=run_key)
            reused.extend(place(c, row, twin))
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
                if trained_through(twin):
                    take_results(c, r["id"], twin)
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
        return decode_row(rows[0]) if rows else None

    def list(self, status: str | None = None, method: str | None = None, source: str | None = None,
             target: str | None = None, backbone: str | None = None, limit: int = 500,
             visible_to: str | None = None, experiment: str | None = None) -> list[dict[str, Any]]:
        """Runs, newest first. `visible_to=OWNER`: only that owner's runs, published ones and the command
        line's (owner 'cli', or '' for runs recorded before owners existed): the rule of `visible_to`."""
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
        return [decode_row(r) for r in self.read(sql, (*args, limit))]

    def delete(self, run_id: str) -> None:
        def rm(c: sqlite3.Connection) -> None:
            for table, col in (("runs", "id"), ("progress", "run_id"), ("metrics", "run_id"), ("events", "run_id")):
                c.execute(f"DELETE FROM {table} WHERE {col}=?", (run_id,))
        self.write(rm)

    def ping(self) -> None:
        """One read: raises StoreBusy while another process holds the store locked."""
        self.read("SELECT 1 FROM runs LIMIT 1")
