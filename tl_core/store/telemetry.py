"""What a training run reports as it goes: progress (best effort, overwritten each second), per-epoch
metrics (in the index and in the run's own `metrics.jsonl`) and events."""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from tl_core.base.errors import StoreBusy
from tl_core.base.paths import atomic_write_text
from tl_core.store.schema import read_jsonl


class TelemetryMixin:
    """The telemetry side of `Store`."""

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
            kept = [m for m in read_jsonl(path) if m.get("epoch", 0) < epoch] + [data]
            atomic_write_text(path, "".join(json.dumps(m) + "\n" for m in kept))
        self.mirror(run_id)

    def metrics(self, run_id: str, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
        rows = self.read("SELECT seq, data FROM metrics WHERE run_id=? AND seq>? ORDER BY seq", (run_id, cursor))
        out = [json.loads(r["data"]) for r in rows]
        return out, (rows[-1]["seq"] if rows else cursor)

    def add_event(self, run_id: str, kind: str, data: dict[str, Any]) -> None:
        self.write(lambda c: c.execute("INSERT INTO events (run_id, ts, kind, data) VALUES (?,?,?,?)",
                                       (run_id, time.time(), kind, json.dumps(data))))
