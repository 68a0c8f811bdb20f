"""Experiment records: an experiment and all its member runs queued in one transaction, read, updated,
deleted (its runs are deleted one by one by the caller)."""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from tl_core.base.paths import atomic_write_text
from tl_core.store.queue import admission, check_queue
from tl_core.store.runs import draw_run_id, place, trained_through, twin_of
from tl_core.store.schema import HOST, RUN_ID, VISIBLE_SQL, check_run_id, row_from_config


class ExperimentsMixin:
    """The experiments' side of `Store`."""

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
            twins = [None if fresh else twin_of(c, k) for k in keys]
            trains = sum(not trained_through(t) for t in twins)
            if trains:
                check_queue(c, record["owner"], limits, adding=trains, unit=True)
            c.execute("INSERT INTO experiments (id, name, owner, published, created, spec, preset) VALUES (?,?,?,?,?,?,?)",
                      (exp_id, rec["name"], rec["owner"], int(rec["published"]), now, rec["spec"], rec.get("preset", "")))
            taken: set[str] = set()
            for i, (cid, config, label, estimate, *more) in enumerate(members):
                rid = draw_run_id(c, cid, taken)
                taken.add(rid)
                row = row_from_config(rid, config, owner=record["owner"])
                # created strictly increasing: the scheduler runs the grid in the order given
                row.update(config_sources=json.dumps(more[0] if more else {}, sort_keys=True))
                row.update(name=label, published=int(rec["published"]), wall_limit_s=wall_limit_s, host=HOST,
                           experiment_id=exp_id, strategy=label, created=now + i * 1e-4, estimate_s=estimate,
                           seated=int(admission(limits).seated), run_key=keys[i])
                if twins[i] is None and not fresh:  # an identical earlier member of this grid, inserted above
                    twins[i] = twin_of(c, keys[i])
                reused.extend((twin_id, rid) for twin_id in place(c, row, twins[i]))
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
