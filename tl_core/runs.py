"""Runs that outlive the page: submit, a FIFO queue, worker processes, cancel, resume.

`schedule()` marks runs whose worker died as `interrupted`, escalates overdue cancels, and
starts queued runs up to the limit (`TL_MAX_RUNS`, default 1 per GPU, or 1 on a CPU machine:
two torch jobs on 2 cores are 6-8x slower each). It is called by those who act: a submit, a
cancel, a worker that ends, the CLI following its run, and the web server's scheduler thread
(`start_scheduler`). Reads (`get_run`, `list_runs`, ...) never schedule: a page that only looks
starts no worker and takes no write lock. Workers are separate processes (`python -m tl_core
worker RUN_ID`), so a crash cannot take the web server down and a cancel can escalate to a kill.

With TL_RAY_ADDRESS set, `schedule()` hands claimed runs to the Ray executor instead
(executors.py): the limit is what the cluster holds, and the process that dispatched a run
watches it.

One web server per TL_HOME: `claim_server()` takes a lock file; a second server on the same
home is refused (it would otherwise judge the first one's workers by its own process table).
"""
from __future__ import annotations

import functools
import json
import secrets
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import TLError
from .paths import atomic_write_text
from .store import ACTIVE, HOST, TERMINAL, Store, fair_queue

CANCEL_GRACE_S = 3.0  # SIGTERM first; a worker still alive after this is killed
START_TIMEOUT_S = 60.0
_CHILDREN: list[subprocess.Popen] = []
_STORES: dict[tuple[str, bool], Store] = {}
_INTERACTIVE = [False]


def set_interactive(on: bool = True) -> None:
    """In the web server: store calls give up after a few seconds (StoreBusy) instead of waiting."""
    _INTERACTIVE[0] = on


_STORES_LOCK = threading.Lock()


def store() -> Store:
    """The store of the current TL_HOME, one per process (the web server's threads share it)."""
    from .paths import tl_home

    key = (str(tl_home()), _INTERACTIVE[0])
    with _STORES_LOCK:
        if key not in _STORES:
            _STORES[key] = Store(Path(key[0]), interactive=key[1])
        return _STORES[key]


@functools.lru_cache(maxsize=1)
def gpu_count() -> int:
    """GPUs visible, without importing torch in the web server (asked once per process)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def max_concurrent() -> int:
    """Runs that may train at once: TL_MAX_RUNS, else one on a CPU machine (two torch jobs on a few
    cores each run 6-8x slower), else as many as the GPUs' capacity holds at the smallest share."""
    env = os.environ.get("TL_MAX_RUNS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    gpus = gpu_count()
    return max(1, int(gpus / SMALL_SHARE)) if gpus else 1


SMALL_SHARE = 0.25  # the share of one GPU a small model's run declares (LeNet-sized: 4 train at once)


def device_share(config: dict[str, Any]) -> float:
    """The share of one GPU a run declares: small from-scratch models a quarter, anything else a whole one."""
    return SMALL_SHARE if config["model"]["backbone"] == "lenet" else 1.0


def pack(active: list[tuple[int | None, float]], queued: list[tuple[str, float]], gpus: int,
         limit: int) -> list[tuple[str, int]]:
    """Which queued runs start now and on which slot, oldest first. Without GPUs a slot is a CPU
    place (up to `limit`); with GPUs a slot is a GPU index and each run takes its declared share of
    it, so that several small runs of one experiment train on one device at once. Stops at the first
    run that does not fit: the queue keeps its order."""
    out: list[tuple[str, int]] = []
    if not gpus:
        used = {s for s, _ in active if s is not None}
        free = (s for s in range(limit) if s not in used)
        for rid, _ in queued[:max(0, limit - len(active))]:
            out.append((rid, next(free)))
        return out
    load = [0.0] * gpus
    for s, share in active:
        load[(s or 0) % gpus] += share
    n = len(active)
    for rid, share in queued:
        if n >= limit:
            break
        gpu = min(range(gpus), key=lambda g: load[g])
        if load[gpu] + share > 1.0 + 1e-9:
            break
        load[gpu] += share
        out.append((rid, gpu))
        n += 1
    return out


# -- process liveness ----------------------------------------------------------------

def _proc_start(pid: int) -> str | None:
    """The kernel's start time of a process (guards against PID reuse); None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int | None, start: str | None) -> bool:
    if not pid:
        return False
    proc = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            fields = proc.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return False
        if fields[0] in ("Z", "X"):  # zombie or dead: exited, not yet reaped
            return False
        return start is None or fields[19] == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_children() -> None:
    for p in list(_CHILDREN):
        if p.poll() is not None:
            _CHILDREN.remove(p)


# -- scheduling ------------------------------------------------------------------------

def reap(st: Store | None = None) -> None:
    """Mark runs whose worker is gone as interrupted; escalate cancels past their grace period."""
    st = st or store()
    _reap_children()
    now = time.time()
    for r in st.read("SELECT id, status, pid, pid_start, started, cancel_requested, host, executor, driver_pid "
                     "FROM runs WHERE status IN (?,?)", ACTIVE):
        if r["host"] and r["host"] != HOST:
            continue  # another machine's worker: its process table is not ours to judge
        if r["executor"] == "ray":
            # a Ray task: the process that dispatched it (its driver) watches it and escalates its cancel;
            # when that process is gone, so is the task (Ray ends a driver's tasks with it)
            if _alive(r["driver_pid"], r["pid_start"]) or (r["status"] == "starting" and not r["driver_pid"]
                                                           and now - (r["started"] or now) < START_TIMEOUT_S):
                continue
            _finish_if_active(st, r["id"], "cancelled" if r["cancel_requested"] else "interrupted",
                              "cancelled" if r["cancel_requested"] else
                              "interrupted: the process that sent it to the Ray cluster ended. Resume it to continue "
                              "from its last checkpoint.")
            continue
        alive = _alive(r["pid"], r["pid_start"])
        if r["cancel_requested"] and alive and now - r["cancel_requested"] > CANCEL_GRACE_S:
            try:
                os.kill(r["pid"], signal.SIGKILL)
            except OSError:
                pass
            _finish_if_active(st, r["id"], "cancelled", "cancelled (the worker did not stop in time and was killed)")
            continue
        if alive:
            continue
        if r["status"] == "starting" and not r["pid"] and now - (r["started"] or now) < START_TIMEOUT_S:
            continue  # being spawned right now
        if r["cancel_requested"]:
            _finish_if_active(st, r["id"], "cancelled", "cancelled")
        else:
            _finish_if_active(st, r["id"], "interrupted",
                              "interrupted: the worker process stopped without finishing (killed, crashed or the "
                              "machine restarted). Resume it to continue from its last checkpoint.")


def _finish_if_active(st: Store, run_id: str, status: str, reason: str) -> bool:
    def finish(c: sqlite3.Connection) -> bool:
        cur = c.execute("UPDATE runs SET status=?, reason=?, ended=? WHERE id=? AND status IN (?,?)",
                        (status, reason, time.time(), run_id, *ACTIVE))
        if cur.rowcount > 0:
            c.execute("INSERT INTO events (run_id, ts, kind, data) VALUES (?,?,?,?)",
                      (run_id, time.time(), status, json.dumps({"reason": reason})))
        return cur.rowcount > 0

    changed = st.write(finish)
    if changed:
        st.mirror(run_id)
    return changed


def schedule(st: Store | None = None) -> list[str]:
    """Reap, then start queued runs (oldest first) while there are free slots. Returns started ids."""
    st = st or store()
    reap(st)
    if not st.read("SELECT 1 FROM runs WHERE status='queued' LIMIT 1"):
        return []  # the common case for a polling page: no write lock taken
    from .executors import current

    executor = current(st.home)
    limit = executor.capacity()  # for Ray, 0 while the cluster is unreachable: the runs wait in the queue
    if limit == 0:
        return []

    gpus = gpu_count()

    def claim(c: sqlite3.Connection) -> list[tuple[str, int]]:  # atomic across processes
        active = [(r["slot"], device_share(json.loads(r["config"])) if gpus else 1.0)
                  for r in c.execute("SELECT slot, config FROM runs WHERE status IN (?,?)", ACTIVE)]
        order = fair_queue(c)[:64]  # round-robin across sessions
        configs = {r["id"]: r["config"] for r in c.execute(
            f"SELECT id, config FROM runs WHERE id IN ({','.join('?' * len(order))})", order)} if gpus else {}
        queued = [(rid, device_share(json.loads(configs[rid])) if gpus else 1.0) for rid in order]
        claimed = pack(active, queued, gpus, limit)
        for run_id, slot in claimed:
            c.execute("UPDATE runs SET status='starting', started=?, pid=NULL, slot=?, cancel_requested=NULL, "
                      "host=? WHERE id=?", (time.time(), slot, HOST, run_id))
        return claimed

    claimed = st.write(claim, immediate=True)
    for run_id, slot in claimed:
        st.mirror(run_id)
        try:
            executor.start(st, run_id, slot)
        except TLError as e:  # e.g. the cluster went away between the claim and the start
            _finish_if_active(st, run_id, "interrupted", f"interrupted: {e}")
    return [r for r, _ in claimed]


def _spawn(st: Store, run_id: str, slot: int) -> None:
    rd = st.run_dir(run_id)
    rd.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    pkg_parent = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["TL_HOME"] = str(st.home)
    env["PYTHONUNBUFFERED"] = "1"
    gpus = gpu_count()
    if gpus > 1:
        env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)  # a GPU run's slot is its GPU
    with open(rd / "worker.log", "ab") as log:
        p = subprocess.Popen([sys.executable, "-m", "tl_core", "worker", run_id], stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=pkg_parent,
                             start_new_session=True)  # outlives the page and the terminal that started it
    _CHILDREN.append(p)
    st.write(lambda c: c.execute("UPDATE runs SET pid=?, pid_start=?, heartbeat=? WHERE id=? AND status='starting'",
                                 (p.pid, _proc_start(p.pid), time.time(), run_id)))


# -- the public API ----------------------------------------------------------------------

def field_sources(cfg: RunConfig) -> dict[str, str]:
    """Where each field of an already resolved config came from, when its door did not say: a value
    other than the default is the user's."""
    from .config import flat, set_fields

    chosen = set_fields(cfg.to_dict())
    return {k: "user" if k in chosen else "default" for k in flat(cfg)}


def new_run_id(config_id: str) -> str:
    """A run's id: its config's content id (readable, groups seeds in listings) and a random part, so
    an id says nothing about whether someone else ran the same config (a content id alone would come
    back as `<id>-2` to the second session that launched it)."""
    return f"{config_id}-{secrets.token_hex(3)}"


def submit(config: RunConfig, name: str = "", owner: str = "cli", published: bool | None = None,
           limits: tuple[int | None, ...] = (None, None), wall_limit_s: float | None = None,
           sources: dict[str, str] | None = None) -> str:
    """Validate, record as queued and return the run id at once; a worker starts when a slot is free.

    `owner` is the session that may stop and delete it ("cli": the server's own command line, whose runs
    every session sees). `limits` are queue quotas checked atomically with the insert."""
    from .planner import estimate_seconds

    cfg = config.validate()
    estimate = estimate_seconds(cfg)
    st = store()
    for _ in range(100):
        run_id = new_run_id(cfg.config_id())
        try:
            st.insert_run(run_id, cfg.to_dict(), name=name or cfg.name, owner=owner,
                          published=owner == "cli" if published is None else published, limits=limits,
                          wall_limit_s=wall_limit_s, estimate_s=estimate, sources=sources or field_sources(cfg))
            break
        except sqlite3.IntegrityError:  # the random part collided: draw again
            continue
    else:  # pragma: no cover
        raise TLError("could not allocate a run id")
    st.add_event(run_id, "queued", {})
    schedule(st)
    return run_id


def get_run(run_id: str) -> dict[str, Any]:
    """A run's record with its latest progress; raises TLError for an unknown id. Only reads."""
    st = store()
    r = st.get(run_id)
    if r is None:
        raise TLError(f"There is no run {run_id!r}. `python -m tl_core runs list` shows the runs.")
    r["progress"] = st.progress(run_id)
    r["queue_position"] = _queue_position(st, r)
    return r


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


def cancel(run_id: str, wait_s: float = 0.0) -> dict[str, Any]:
    """Stop a run: a queued one at once; a running one at its next batch (SIGTERM), killed if it lingers."""
    st = store()
    r = st.get(run_id)
    if r is None:
        raise TLError(f"There is no run {run_id!r}.")
    if r["status"] == "queued":
        st.write(lambda c: c.execute("UPDATE runs SET status='cancelled', reason='cancelled before it started', "
                                     "ended=? WHERE id=? AND status='queued'", (time.time(), run_id)))
        st.mirror(run_id)
        schedule(st)
        return get_run(run_id)
    if r["status"] in ACTIVE:
        st.update(run_id, cancel_requested=time.time())
        from .executors import for_run

        for_run(r, st.home).cancel(st, r)
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
    if r["status"] in ("queued",) + ACTIVE:
        raise TLError(f"Run {run_id} is {r['status']}; only a stopped run can be resumed.")
    cfg = r["config"]
    if r["status"] == "finished" and extra_epochs <= 0:
        raise TLError(f"Run {run_id} has finished all {cfg['train']['epochs']} epochs; resume it with more "
                      f"epochs (--epochs N) to train on.")
    if extra_epochs > 0:
        cfg["train"]["epochs"] += extra_epochs
        RunConfig.from_dict(cfg).validate()
        atomic_write_text(st.run_dir(run_id) / "config.json", json.dumps(cfg, indent=2, sort_keys=True))
    st.update(run_id, status="queued", reason="", ended=None, cancel_requested=None, pid=None,
              config=json.dumps(cfg, sort_keys=True), epochs=cfg["train"]["epochs"])
    st.add_event(run_id, "resumed", {"extra_epochs": extra_epochs})
    schedule(st)
    return get_run(run_id)


def delete(run_id: str) -> None:
    """Remove a run's record and folder; a running run is cancelled first."""
    st = store()
    r = st.get(run_id)
    if r is None:
        raise TLError(f"There is no run {run_id!r}.")
    if r["status"] in ("queued",) + ACTIVE:
        cancel(run_id, wait_s=CANCEL_GRACE_S + 2)
    st.delete(run_id)
    shutil.rmtree(st.run_dir(run_id), ignore_errors=True)


def checkpoint_path(run_id: str, which: str = "best") -> Path | None:
    from .checkpoint import Checkpointer

    return Checkpointer(store().run_dir(run_id)).path(which)


def load_model(run_id: str, which: str = "best", device: str = "cpu"):
    """A `Predictor` for a run's best (or last) checkpoint; loads no pickle."""
    from .checkpoint import Predictor

    folder = checkpoint_path(run_id, which)
    if folder is None:
        raise TLError(f"Run {run_id} has no checkpoint yet: one is saved at the end of each epoch.")
    return Predictor(folder, device=device)


def resolve_reference(run_id: str, device: Any = "cpu"):
    """The best model of a finished run that another run refers to (a teacher, a source model), or a
    ConfigError that says what to pick instead."""
    from .errors import ConfigError

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


# -- the worker ------------------------------------------------------------------------

class StoreSink:
    """Writes the trainer's events into the store (and embeddings into the run folder)."""

    def __init__(self, st: Store, run_id: str):
        self.st, self.run_id = st, run_id
        self.dir = st.run_dir(run_id)
        self.cancel_reason = "cancelled"  # the worker says why when it stops a run itself (a time limit)

    def __call__(self, e) -> None:
        from . import events as ev

        st, rid = self.st, self.run_id
        if isinstance(e, ev.Progress):
            st.write_progress(rid, e.epoch, e.step, e.total_steps, e.images_per_s, e.eta_s, e.losses)
        elif isinstance(e, ev.RunStarted):
            st.update(rid, device=e.device, trainable_params=e.trainable_params, total_params=e.total_params,
                      **({"epochs": e.epochs} if e.epochs else {}),
                      **({"provenance": json.dumps(e.provenance, sort_keys=True)} if e.provenance else {}))
            st.add_event(rid, e.kind, e.to_dict())
        elif isinstance(e, ev.EpochEnd):
            m = e.metrics
            st.add_metrics(rid, e.epoch, m, {"epoch": e.epoch, "source_acc": m["source_acc"],
                                             "target_acc": m["target_acc"], "wall_s": m["wall_s"]})
        elif isinstance(e, ev.EmbeddingReady):
            path = self.dir / "embed" / f"epoch_{e.epoch:04d}.json"
            atomic_write_text(path, json.dumps({"epoch": e.epoch, "method": e.method, **e.points}))
            st.add_event(rid, e.kind, {"epoch": e.epoch, "method": e.method})
        elif isinstance(e, (ev.CheckpointSaved, ev.BatchHalved)):
            st.add_event(rid, e.kind, e.to_dict())
        elif isinstance(e, ev.RunFinished):
            res = e.result
            # the reported accuracies are the selected epoch's, not the last one's
            st.update(rid, best_epoch=res["best_epoch"], best_target_acc=res["best_target_acc"],
                      source_acc=res["source_acc"], target_acc=res["target_acc"],
                      target_n=res.get("target_n") or None, target_eval=res.get("target_eval") or "")
            _finish_if_active(st, rid, "finished", "")
        elif isinstance(e, ev.RunFailed):
            _finish_if_active(st, rid, "failed", e.reason)
        elif isinstance(e, ev.RunCancelled):
            _finish_if_active(st, rid, "cancelled", self.cancel_reason)


def duration_words(seconds: float) -> str:
    """A duration as people say it: '10 s', '2 min', '1 min 30 s', '1 h 5 min'."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{m} min" + (f" {r} s" if r else "")
    h, r = divmod(s, 3600)
    return f"{h} h" + (f" {r // 60} min" if r // 60 else "")


def wall_limit_reason(limit_s: float) -> str:
    return (f"stopped at the time limit of {duration_words(limit_s)} per run set by the server's owner "
            f"(TL_QUOTA_RUN_WALL_S); the last checkpoint is kept. Plan fewer epochs or steps.")


def worker_main(run_id: str) -> int:
    """Entry of `python -m tl_core worker RUN_ID`: train one run, writing everything to the store."""
    from .checkpoint import Checkpointer
    from .trainer import Trainer

    st = store()
    r = st.get(run_id)
    if r is None or r["status"] not in ("starting", "queued"):
        print(f"run {run_id} is not waiting to start ({r and r['status']})", file=sys.stderr)
        return 1
    st.update(run_id, status="running", pid=os.getpid(), pid_start=_proc_start(os.getpid()), heartbeat=time.time(),
              reason="", host=HOST, executor="local", node=HOST)
    try:  # training yields the CPU to the web server: pages stay responsive while a run trains
        os.nice(int(os.environ.get("TL_WORKER_NICE", "10")))
    except (OSError, ValueError, AttributeError):
        pass
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    last_check = [0.0]
    began, limit = time.time(), r.get("wall_limit_s")
    sink = StoreSink(st, run_id)

    def should_stop() -> bool:
        if stop.is_set():
            return True
        now = time.time()
        if limit and now - began > limit:
            sink.cancel_reason = wall_limit_reason(limit)
            stop.set()
        elif now - last_check[0] > 0.5:  # the store's flag, for when a signal could not be sent
            last_check[0] = now
            try:
                row = st.read("SELECT cancel_requested FROM runs WHERE id=?", (run_id,))
            except (TLError, sqlite3.Error):
                row = None  # a locked store must not stall training: ask again next time
            if row and row[0]["cancel_requested"]:
                stop.set()
        return stop.is_set()

    def heartbeat() -> None:
        while not stop.wait(2.0):
            try:
                st.update(run_id, heartbeat=time.time())
            except (TLError, sqlite3.Error):
                pass

    threading.Thread(target=heartbeat, daemon=True).start()
    print(f"[{time.strftime('%H:%M:%S')}] worker {os.getpid()} starts run {run_id}", flush=True)
    try:
        cfg = RunConfig.from_dict(r["config"])
        Trainer(cfg, on_event=sink, should_stop=should_stop,
                checkpointer=Checkpointer(st.run_dir(run_id))).fit()
    except TLError as e:
        _finish_if_active(st, run_id, "failed", str(e))
    except Exception as e:  # a bug of ours: keep the traceback in the log, say where it is
        traceback.print_exc()
        _finish_if_active(st, run_id, "failed", f"internal error: {type(e).__name__}: {e} "
                                                f"(details in the run's worker.log on the server)")
    finally:
        stop.set()
        try:  # the worker's peak resident memory: what the classroom quotas and the planner need to know
            import resource

            st.update(run_id, peak_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
        except (TLError, sqlite3.Error, ImportError):
            pass
        print(f"[{time.strftime('%H:%M:%S')}] worker {os.getpid()} ends run {run_id}", flush=True)
        try:
            schedule(st)  # hand the slot to the next queued run
        except Exception:
            traceback.print_exc()
    return 0


# -- the web server's side ------------------------------------------------------------------

_SCHEDULERS: dict[str, threading.Thread] = {}
_SCHEDULER_STOPS: dict[str, threading.Event] = {}


def stop_scheduler(home: str | Path) -> None:
    """End the scheduler thread of a TL_HOME (a test's home that is about to go; a server never needs it)."""
    key = str(home)
    if key in _SCHEDULER_STOPS:
        _SCHEDULER_STOPS.pop(key).set()
        t = _SCHEDULERS.pop(key, None)
        if t is not None:
            t.join(10)


def start_scheduler(interval_s: float = 2.0) -> None:
    """A daemon thread in the web server that keeps the queue moving for this TL_HOME (reaps dead
    workers, starts queued runs), so that pages only ever read. Idempotent."""
    from .paths import tl_home

    home = str(tl_home())
    if home in _SCHEDULERS and _SCHEDULERS[home].is_alive():
        return
    stop = _SCHEDULER_STOPS[home] = threading.Event()

    def loop() -> None:
        st = None
        while not stop.is_set():
            try:
                st = st or Store(Path(home), interactive=True)
                schedule(st)
            except Exception:  # noqa: BLE001 - a busy or damaged store: try again next tick
                pass
            stop.wait(interval_s)

    t = threading.Thread(target=loop, name=f"tl-scheduler:{home}", daemon=True)
    t.start()
    _SCHEDULERS[home] = t


_SERVER_LOCKS: dict[str, Any] = {}


def claim_server(info: dict[str, Any] | None = None) -> tuple[bool, dict[str, Any]]:
    """Take the web server's lock on this TL_HOME. (True, {}) when this process holds it;
    (False, what the holder wrote) when another server process does."""
    import fcntl

    from .paths import tl_home

    home = tl_home()
    key = str(home)
    if key in _SERVER_LOCKS:
        return True, {}
    path = home / "server.lock"
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        try:
            holder = json.loads(f.read() or "{}")
        except ValueError:
            holder = {}
        f.close()
        return False, holder
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "host": HOST, "started": time.time(), **(info or {})}))
    f.flush()
    _SERVER_LOCKS[key] = f  # held (open) for the life of the process
    return True, {}
