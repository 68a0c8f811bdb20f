"""The job API: submit, schedule, cancel, resume, delete and read runs in the run store.

`schedule()` marks runs whose worker died as `interrupted`, escalates overdue cancels, and
starts queued runs up to the limit (`TL_MAX_RUNS`, default 1 per GPU, or 1 on a CPU machine:
two torch jobs on 2 cores are 6-8x slower each). It is called by those who act: a submit, a
cancel, a worker that ends, the CLI following its run, and the web server's scheduler thread
(`runs.scheduler`). Reads (`get_run`, `list_runs`, ...) never schedule: a page that only looks
starts no worker and takes no write lock.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from tl_core.models.checkpoint import Checkpointer, Predictor
from tl_core.config import RunConfig, flat, set_fields
from tl_core.base.errors import ConfigError, TLError
from tl_core.base.machine import gpu_count
from tl_core.base.paths import atomic_write_text
from tl_core.planning.planner import estimate_seconds
from tl_core.planning.runkey import run_key
from tl_core.store import ACTIVE, HOST, TERMINAL, UNFINISHED, Store, store
from tl_core.data.thumbs import load_predictions
from tl_core.planning.validation import validate
from tl_core.runs import executors
from tl_core.runs.local import spawn_advice
from tl_core.runs.procs import CANCEL_GRACE_S, START_TIMEOUT_S, alive, reap_children
from tl_core.runs.slots import assign_slots, device_share


def reap(st: Store | None = None) -> None:
    """Mark runs whose worker is gone as interrupted; escalate cancels past their grace period."""
    st = st or store()
    reap_children()
    now = time.time()
    for r in st.active_runs():
        if r["attached_to"]:
            continue  # it took over a training its session left: that training's worker is judged in settle_attached
        if r["host"] and r["host"] != HOST:
            continue  # another machine's worker: its process table is not ours to judge
        if r["executor"] == "ray":
            # a Ray task: the process that dispatched it (its driver) watches it and escalates its cancel;
            # when that process is gone, so is the task (Ray ends a driver's tasks with it)
            if alive(r["driver_pid"], r["pid_start"]) or (r["status"] == "starting" and not r["driver_pid"]
                                                           and now - (r["started"] or now) < START_TIMEOUT_S):
                continue
            st.finish_if_active(r["id"], "cancelled" if r["cancel_requested"] else "interrupted",
                                "cancelled" if r["cancel_requested"] else
                                "interrupted: the process that sent it to the Ray cluster ended. Resume it to continue "
                                "from its last checkpoint.")
            continue
        is_alive = alive(r["pid"], r["pid_start"])
        if r["cancel_requested"] and is_alive and now - r["cancel_requested"] > CANCEL_GRACE_S:
            try:
                os.kill(r["pid"], signal.SIGKILL)
            except OSError:
                pass
            st.finish_if_active(r["id"], "cancelled", "cancelled (the worker did not stop in time and was killed)")
            continue
        if is_alive:
            continue
        if r["status"] == "starting" and not r["pid"] and now - (r["started"] or now) < START_TIMEOUT_S:
            continue  # being spawned right now
        if r["cancel_requested"]:
            st.finish_if_active(r["id"], "cancelled", "cancelled")
        else:
            st.finish_if_active(r["id"], "interrupted",
                                "interrupted: the worker process stopped without finishing (killed, crashed or the "
                                "machine restarted). Resume it to continue from its last checkpoint.")


def reap_advice(st: Store) -> None:
    """Questions to the advisor whose process is gone without an answer: failed, with what to do."""
    now = time.time()
    for r in st.active_advice():
        if (r["host"] and r["host"] != HOST) or alive(r["pid"], r["pid_start"]):
            continue
        if r["status"] == "starting" and not r["pid"] and now - (r["started"] or now) < START_TIMEOUT_S:
            continue  # being spawned right now
        st.update_advice(r["id"], status="failed", ended=now,
                         reason="The advisor's process stopped before it answered (the server restarted, or it ran "
                                "out of memory). Ask again.")


def schedule_advice(st: Store) -> str | None:
    """Start the next question to the advisor when none is being answered (one at a time on the server)."""
    reap_advice(st)
    job_id = st.claim_advice()
    if job_id is not None:
        try:
            spawn_advice(st, job_id)
        except OSError as e:
            st.update_advice(job_id, status="failed", ended=time.time(), reason=f"The advisor could not start ({e}).")
    return job_id


def schedule(st: Store | None = None) -> list[str]:
    """Reap, then start queued runs (oldest first) while there are free slots, and the next question to
    the advisor. Returns the started run ids."""
    st = st or store()
    reap(st)
    st.settle_attached(alive)  # runs that waited on an identical run that has ended
    schedule_advice(st)
    if not st.has_queued():
        return []  # the common case for a polling page: no write lock taken
    executor = executors.current(st.home, reschedule=schedule)
    limit = executor.capacity()  # for Ray, 0 while the cluster is unreachable: the runs wait in the queue
    if limit == 0:
        return []

    gpus = gpu_count()

    def share(config: dict[str, Any]) -> float:
        return device_share(config) if gpus else 1.0

    claimed = st.claim_queued(lambda active, queued: assign_slots(active, queued, gpus, limit), share)
    for run_id, slot in claimed:
        try:
            executor.start(st, run_id, slot)
        except TLError as e:  # e.g. the cluster went away between the claim and the start
            st.finish_if_active(run_id, "interrupted", f"interrupted: {e}")
    return [r for r, _ in claimed]


def field_sources(cfg: RunConfig) -> dict[str, str]:
    """Where each field of an already resolved config came from, when its door did not say: a value
    other than the default is the user's."""
    chosen = set_fields(cfg.to_dict())
    return {k: "user" if k in chosen else "default" for k in flat(cfg)}


def submit(config: RunConfig, name: str = "", owner: str = "cli", published: bool | None = None,
           limits: tuple[int | None, ...] = (None, None), wall_limit_s: float | None = None,
           sources: dict[str, str] | None = None, fresh: bool = False) -> str:
    """Validate, record as queued and return the run id at once; a worker starts when a slot is free.
    A run with the key of one already trained takes its numbers at once, and one with the key of a run
    queued or training waits on it (`runkey`); `fresh` trains anyway.

    `owner` is the session that may stop and delete it ("cli": the server's own command line, whose runs
    every session sees). `limits` are queue quotas checked atomically with the insert."""
    cfg = validate(config)
    estimate = estimate_seconds(cfg)
    st = store()
    run_id = st.insert_run(None, cfg.to_dict(), config_id=cfg.config_id(), name=name or cfg.name, owner=owner,
                           published=owner == "cli" if published is None else published, limits=limits,
                           wall_limit_s=wall_limit_s, estimate_s=estimate, sources=sources or field_sources(cfg),
                           run_key=run_key(cfg), fresh=fresh)
    st.add_event(run_id, "queued", {})
    schedule(st)
    return run_id


def get_run(run_id: str) -> dict[str, Any]:
    """A run's record with its latest progress; raises TLError for an unknown id. Only reads."""
    st = store()
    r = st.get(run_id)
    if r is None:
        raise TLError(f"There is no run {run_id!r}. `python -m tl_core runs list` shows the runs.")
    r["attached"] = bool(r.get("attached_to")) and r["status"] in UNFINISHED
    # a run waiting on an identical one shows that one's progress (its numbers only, never whose it is)
    r["progress"] = st.progress(r["attached_to"] if r["attached"] else run_id)
    r["queue_position"] = None if r["attached"] else _queue_position(st, r)
    r["reused_words"] = reused_words(st, r)
    r["reuse_note"] = reuse_note(r)
    return r


def reuse_note(r: dict[str, Any]) -> str:
    """Why a run has no key (it is never reused, and reuses nothing), in words; "" when it has one."""
    if r.get("run_key"):
        return ""
    device = str(r.get("device") or "")
    if r.get("executor") == "ray":
        return "trained on a Ray cluster, whose machines may differ: never reused"
    if device and not device.startswith("CPU"):
        return "trained on a GPU, where identical inputs need not give identical numbers: never reused"
    return "trained without a key (resumed, or its inputs could not be fingerprinted): never reused"


def reused_words(st: Store, r: dict[str, Any]) -> str:
    """How a reusing run says where its numbers come from ("" for a run that trained itself)."""
    if r.get("attached"):
        return ("identical inputs to a run that is training now: this run will carry its numbers when it "
                "finishes (one training for both)")
    if not r.get("reused_from"):
        return ""
    twin = st.get(r["reused_from"])
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(twin["ended"])) if twin and twin.get("ended") else "earlier"
    return f"identical inputs to a run trained at {when}: same numbers"


def _queue_position(st: Store, r: dict[str, Any]) -> int | None:
    if r["status"] != "queued":
        return None
    order = st.queue_order()
    return order.index(r["id"]) + 1 if r["id"] in order else None


def list_runs(**filters: Any) -> list[dict[str, Any]]:
    """All runs, newest first; filters: status, method, source, target, backbone, visible_to. Only reads."""
    return store().list(**filters)


def read_metrics(run_id: str, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Per-epoch metrics written since `cursor`; returns (new rows, new cursor)."""
    return store().metrics(run_id, cursor)


def read_progress(run_id: str) -> dict[str, Any] | None:
    return store().progress(run_id)


def embedding_epochs(run_id: str) -> list[int]:
    d = store().run_dir(run_id) / "embed"
    return sorted(int(p.stem.split("_")[1]) for p in d.glob("epoch_*.json")) if d.exists() else []


def read_embedding(run_id: str, epoch: int | None = None) -> dict[str, Any] | None:
    """The 2-D feature map of an epoch (default: the latest): x, y, domain, label, pred."""
    epochs = embedding_epochs(run_id)
    if not epochs:
        return None
    e = epochs[-1] if epoch is None else epoch
    p = store().run_dir(run_id) / "embed" / f"epoch_{e:04d}.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def read_predictions(run_id: str, which: str = "last") -> dict[str, Any] | None:
    """What an evaluation of the run said of each image (`thumbs.load_predictions`): `last` (the last evaluated
    epoch) or `best` (the best epoch so far); None for a run that recorded none (made before they were)."""
    if which not in ("last", "best"):
        raise ValueError(which)
    return load_predictions(store().run_dir(run_id) / "predictions" / f"{which}.npz")


def cancel(run_id: str, wait_s: float = 0.0) -> dict[str, Any]:
    """Stop a run: a queued one at once; a running one at its next batch (SIGTERM), killed if it lingers.
    A training that other sessions wait on goes on for them: the caller's run alone is cancelled."""
    st = store()
    r = st.get(run_id)
    if r is None:
        raise TLError(f"There is no run {run_id!r}.")
    if r["status"] == "queued":
        st.cancel_queued(run_id)
        schedule(st)
        return get_run(run_id)
    left = st.leave_training(run_id) if r["status"] in ACTIVE else None
    if left is not None:  # others wait on this training: only the caller leaves it
        kind, other = left
        if kind == "stop":  # the caller was the last one: the training stops
            st.update(other, cancel_requested=time.time())
            t = st.get(other)
            executors.for_run(t, st.home).cancel(st, t)
        return get_run(run_id)
    if r["status"] in ACTIVE:
        st.update(run_id, cancel_requested=time.time())
        executors.for_run(r, st.home).cancel(st, r)
        deadline = time.time() + wait_s
        while time.time() < deadline:
            reap(st)
            if st.get(run_id)["status"] in TERMINAL:
                break
            time.sleep(0.1)
    return get_run(run_id)


def resume(run_id: str, extra_epochs: int = 0) -> dict[str, Any]:
    """Queue an interrupted, cancelled or failed run again (from its last checkpoint), or a
    finished one with `extra_epochs` more epochs."""
    st = store()
    r = st.get(run_id)
    if r is None:
        raise TLError(f"There is no run {run_id!r}.")
    if r["status"] in UNFINISHED:
        raise TLError(f"Run {run_id} is {r['status']}; only a stopped run can be resumed.")
    cfg = r["config"]
    if r["status"] == "finished" and extra_epochs <= 0:
        raise TLError(f"Run {run_id} has finished all {cfg['train']['epochs']} epochs; resume it with more "
                      f"epochs (--epochs N) to train on.")
    if extra_epochs > 0:
        cfg["train"]["epochs"] += extra_epochs
        validate(RunConfig.from_dict(cfg))
        atomic_write_text(st.run_dir(run_id) / "config.json", json.dumps(cfg, indent=2, sort_keys=True))
    # a resumed run is no longer a pure function of its key (it continues from a checkpoint, to the digit
    # of a fresh run only approximately): nothing is reused from it, and it reuses nothing
    st.update(run_id, status="queued", reason="", ended=None, cancel_requested=None, pid=None,
              config=json.dumps(cfg, sort_keys=True), epochs=cfg["train"]["epochs"], run_key="", attached_to="")
    st.add_event(run_id, "resumed", {"extra_epochs": extra_epochs})
    schedule(st)
    return get_run(run_id)


def delete(run_id: str) -> None:
    """Remove a run's record and folder; a running run is cancelled first."""
    st = store()
    r = st.get(run_id)
    if r is None:
        raise TLError(f"There is no run {run_id!r}.")
    if r["status"] in UNFINISHED:
        cancel(run_id, wait_s=CANCEL_GRACE_S + 2)
    st.delete(run_id)
    shutil.rmtree(st.run_dir(run_id), ignore_errors=True)


def checkpoint_path(run_id: str, which: str = "best") -> Path | None:
    return Checkpointer(store().run_dir(run_id)).path(which)


def load_model(run_id: str, which: str = "best", device: str = "cpu"):
    """A `Predictor` for a run's best (or last) checkpoint; loads no pickle."""
    folder = checkpoint_path(run_id, which)
    if folder is None:
        raise TLError(f"Run {run_id} has no checkpoint yet: one is saved at the end of each epoch.")
    return Predictor(folder, device=device)


def resolve_reference(run_id: str, device: Any = "cpu"):
    """The best model of a finished run that another run refers to (a teacher, a source model), or a
    ConfigError that says what to pick instead."""
    try:
        run = get_run(run_id)
    except TLError:
        run = None
    if run is None or run["status"] != "finished":
        state = "does not exist" if run is None else f"is {run['status']}"
        raise ConfigError(f"The run {run_id!r} this run refers to {state}; pick a finished run from the Compare page.")
    return load_model(run_id, "best", device=str(device))


def wait(run_id: str, timeout_s: float = 600.0, poll_s: float = 0.25) -> dict[str, Any]:
    """Follow a run until it ends (scheduling as it goes: whoever waits keeps the queue moving)."""
    deadline = time.time() + timeout_s
    while True:
        schedule()
        r = get_run(run_id)
        if r["status"] in TERMINAL or time.time() > deadline:
            return r
        time.sleep(poll_s)
