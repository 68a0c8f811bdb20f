"""The advisor's questions: queued jobs like runs, one at a time per session and on the server."""
from __future__ import annotations

import secrets
import sqlite3
import time
from typing import Any

from tl_core.base.errors import QuotaExceeded
from tl_core.store.queue import admission, check_queue
from tl_core.store.schema import ACTIVE, HOST, WAITING


class AdviceMixin:
    """The advisor's side of `Store`."""

    def insert_advice(self, owner: str, source: str, target: str, limits: tuple = (None, None)) -> str:
        """Queue a question to the advisor for `owner` and return its id; one question at a time per
        owner, and the same queue limits as a run (an `Admission`), checked in one transaction."""
        job_id = "adv-" + secrets.token_hex(6)
        adm = admission(limits)

        def insert(c: sqlite3.Connection) -> None:
            if c.execute(f"SELECT 1 FROM advice WHERE owner=? AND {WAITING} LIMIT 1", (owner,)).fetchone():
                raise QuotaExceeded("Your last question to the advisor is still being answered: one question at a "
                                    "time per session. Its answer appears here when it is ready.")
            check_queue(c, owner, adm, adding=1, unit=True)
            c.execute("INSERT INTO advice (id, owner, seated, source, target, status, created, host) "
                      "VALUES (?,?,?,?,?,?,?,?)", (job_id, owner, int(adm.seated), source, target, "queued",
                                                  time.time(), HOST))
            # keep each owner's last few answers only: the table stays small
            c.execute("DELETE FROM advice WHERE owner=? AND status NOT IN ('queued','starting','running') AND id NOT "
                      "IN (SELECT id FROM advice WHERE owner=? ORDER BY created DESC LIMIT 10)", (owner, owner))

        self.write(insert, immediate=True)
        return job_id

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
