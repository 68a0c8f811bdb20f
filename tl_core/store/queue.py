"""The queue: what one submission is admitted to (quotas per session, the server's total, seats first),
the fair order runs start in (round-robin across sessions), and the claims of workers on queued runs."""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Callable, NamedTuple

from tl_core.base.errors import QuotaExceeded
from tl_core.store.schema import ACTIVE, HANDED_OVER, HOST, WAITING


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


def check_queue(c: sqlite3.Connection, owner: str, limits: tuple, adding: int, unit: bool = False) -> None:
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


class QueueMixin:
    """The queue's side of `Store`: admission, order, claims and the ends of runs."""

    def queue_order(self) -> list[str]:
        """Queued run ids in the order they will start (see `fair_queue`)."""
        return self._reading(fair_queue)

    def check_admission(self, owner: str, limits: tuple, adding: int = 1) -> None:
        """Raise QuotaExceeded when `owner` may not queue `adding` more runs now (a resume: no insert)."""
        self.write(lambda c: check_queue(c, owner, limits, adding=adding))

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
