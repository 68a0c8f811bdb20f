"""Where a run trains: a local worker process (the default) or a task on a Ray cluster.

`TL_RAY_ADDRESS` chooses. Unset or empty: local worker processes fed from the run store
(`runs.local`). `local`: a private Ray instance started on this machine. `auto`: the Ray
cluster this machine belongs to. `ray://host:port`: a remote cluster through Ray Client.

With Ray, the process that schedules (the web server, or the CLI that follows its run) is the
Ray driver. Each run is a Ray task that declares its resources (`TL_RAY_CPUS_PER_RUN`, default
1 CPU, and its share of a GPU when the cluster has GPUs), so the cluster packs them. No shared
filesystem is assumed: the task sends its events, metrics, embeddings and checkpoints to a
`RunRecorder` actor pinned to the driver's node, which writes them into the run store, and fetches its
last checkpoint from it on a retry. Datasets are read on each node from `TL_DATA_DIR` (a path
every node can read; the actor tells the task the driver's value unless `TL_RAY_DATA_DIR` names
another). A node that dies mid-run: Ray retries the task once on another node, from the last
checkpoint. A cancel sets the store's flag, which the task polls through the actor every half
second; past the grace period the driver cancels the task through Ray.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from tl_core.models.checkpoint import Checkpointer, Predictor
from tl_core.config import RunConfig
from tl_core.base.errors import ConfigError, TLError
from tl_core.base.limits import setting
from tl_core.store import RUN_ID, Store
from tl_core.training.trainer import Trainer
from tl_core.runs.executor import ClusterUnreachable, Executor
from tl_core.runs.procs import CANCEL_GRACE_S, proc_start
from tl_core.runs.sink import StoreSink, wall_limit_reason
from tl_core.runs.slots import device_share

STOP_POLL_S = 0.5  # how often a task asks the store whether to stop


def ray_address() -> str:
    return str(setting("TL_RAY_ADDRESS"))


def executor_name() -> str:
    """`ray` when TL_RAY_ADDRESS is set, else `local`."""
    return "ray" if ray_address() else "local"


def cpus_per_run() -> float:
    return max(0.1, float(setting("TL_RAY_CPUS_PER_RUN")))


# -- the side of the run store (on the driver's node) ----------------------------------------

class RunRecorder:
    """Receives what remote runs send and writes it into the run store of `home` (a Ray actor)."""

    def __init__(self, home: str, data_dir: str):
        self.st = Store(Path(home))
        self.data_dir = data_dir
        self.sinks: dict[str, Any] = {}
        self.attempts: dict[str, int] = {}

    def _sink(self, run_id: str):
        if run_id not in self.sinks:
            self.sinks[run_id] = StoreSink(self.st, run_id)
        return self.sinks[run_id]

    def started(self, run_id: str, node: str) -> dict[str, Any]:
        """A task began on `node`; returns what it needs (the data path, whether this is a retry)."""
        n = self.attempts[run_id] = self.attempts.get(run_id, 0) + 1
        r = self.st.get(run_id)
        if n > 1:  # Ray re-ran the task: its first node (or process) died mid-run
            self.st.add_event(run_id, "interrupted", {"reason": f"the node running it ({r and r['node']}) stopped; "
                                                                f"retried on {node} from its last checkpoint"})
        self.st.update(run_id, status="running", node=node, reason="", heartbeat=time.time())
        return {"attempt": n, "data_dir": self.data_dir}

    def event(self, run_id: str, e: Any) -> None:
        self._sink(run_id)(e)

    def peak(self, run_id: str, mb: float) -> None:
        """The task's peak resident memory, as the local worker records its own."""
        self.st.update(run_id, peak_mb=round(float(mb), 1))

    def fail(self, run_id: str, reason: str) -> None:
        self.st.finish_if_active(run_id, "failed", reason)

    def should_stop(self, run_id: str) -> bool:
        r = self.st.get(run_id)
        if r is None or r["cancel_requested"]:
            return True
        limit = r.get("wall_limit_s")
        if limit and r.get("started") and time.time() - r["started"] > limit:
            self._sink(run_id).cancel_reason = wall_limit_reason(limit, own_time=False)
            return True
        return False

    def install_checkpoint(self, run_id: str, epoch: int, files: dict[str, bytes], best: bool) -> list[Any]:
        return Checkpointer(self.st.run_dir(run_id)).install_files(epoch, files, best)

    def checkpoint_files(self, run_id: str, which: str = "last") -> dict[str, bytes] | None:
        if not RUN_ID.match(str(run_id)):
            return None
        return Checkpointer(self.st.run_dir(run_id)).files(which)

    def flush(self) -> bool:
        """Answers after every call sent before it (a task's calls arrive in order)."""
        return True


# -- the side of the task (on any node) --------------------------------------------------------

def _remote_checkpointer(actor, run_id: str):
    """A checkpointer that writes on this node, then hands each checkpoint to the run store's machine."""
    import ray

    class RemoteCheckpointer(Checkpointer):
        def __init__(self):
            super().__init__(Path(tempfile.mkdtemp(prefix="tl-ckpt-")))
            files = ray.get(actor.checkpoint_files.remote(run_id, "last"))
            if files:  # a retry: continue from the last checkpoint the store has
                self.install_files(int(json.loads(files["model.json"])["epoch"]), files, best=False)

        def save(self, state, meta, epoch, best):
            super().save(state, meta, epoch, best)
            return ray.get(actor.install_checkpoint.remote(run_id, epoch, self.files("last"), best))

    return RemoteCheckpointer()


def _remote_resolver(actor):
    """Loads a run another run refers to (a teacher) from the store's machine, not from this disk."""
    import ray

    def load_run(rid: str, device):
        files = ray.get(actor.checkpoint_files.remote(rid, "best"))
        if not files:
            raise ConfigError(f"Run {rid} does not exist or has no checkpoint yet: pick a finished run.")
        folder = Path(tempfile.mkdtemp(prefix="tl-ref-"))
        try:
            for name, data in files.items():
                (folder / name).write_bytes(data)
            return Predictor(folder, device=str(device))  # loaded into memory: the copy can go
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return load_run


def train_task(run_id: str, config: dict[str, Any], actor) -> str:
    """The body of a run's Ray task: train with everything going through `actor`; returns the node."""
    import ray

    node = ray.util.get_node_ip_address() + ":" + ray.get_runtime_context().get_node_id()[:8]
    info = ray.get(actor.started.remote(run_id, node))
    os.environ["TL_THREADS"] = str(max(1, round(cpus_per_run())))  # torch uses the CPUs the task declared
    data_dir = setting("TL_RAY_DATA_DIR") or info["data_dir"]
    if data_dir:
        os.environ["TL_DATA_DIR"] = data_dir
    last = [0.0, False]

    def should_stop() -> bool:
        now = time.time()
        if now - last[0] >= STOP_POLL_S:
            last[0] = now
            try:
                last[1] = bool(ray.get(actor.should_stop.remote(run_id), timeout=10))
            except Exception:  # noqa: BLE001 - an unreachable store must not stop training by itself
                pass
        return last[1]

    ck = _remote_checkpointer(actor, run_id)
    peak = _PeakRSS()  # a Ray worker process outlives its tasks: its own maximum would count earlier ones
    try:
        Trainer(RunConfig.from_dict(config), on_event=lambda e: actor.event.remote(run_id, e),
                should_stop=should_stop, checkpointer=ck, resolve_run=_remote_resolver(actor)).fit()
    except TLError as e:
        actor.fail.remote(run_id, str(e))
    except Exception as e:  # noqa: BLE001 - a bug of ours: the traceback goes to the task's log
        traceback.print_exc()
        actor.fail.remote(run_id, f"internal error on {node}: {type(e).__name__}: {e}")
    finally:
        shutil.rmtree(ck.dir, ignore_errors=True)  # the store's machine has every checkpoint
        actor.peak.remote(run_id, peak.stop())
    ray.get(actor.flush.remote())
    return node


class _PeakRSS:
    """The largest resident memory of this process while a task runs, sampled every 0.2 s."""

    def __init__(self):
        import psutil  # installed with Ray

        self.proc, self.mb = psutil.Process(), 0.0
        self.done = threading.Event()
        self.sample()
        threading.Thread(target=self._loop, daemon=True).start()

    def sample(self) -> None:
        self.mb = max(self.mb, self.proc.memory_info().rss / 2**20)

    def _loop(self) -> None:
        while not self.done.wait(0.2):
            self.sample()

    def stop(self) -> float:
        self.done.set()
        self.sample()
        return self.mb


# -- the driver's side -------------------------------------------------------------------------

def _init_in_a_lasting_thread(init, done: threading.Event, errors: list) -> None:
    """Run `init` (ray.init) in a thread that never ends, and set `done` when it returns or fails.

    Two reasons. A private Ray instance's processes are told to die with the thread that started them
    (Linux's parent-death signal is per thread): started from a web page's script thread, which ends
    after each rerun, they were killed seconds later. And ray.init retries an address that does not
    answer for minutes: the caller waits on `done` for a bounded time instead."""

    def hold() -> None:
        try:
            init()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            errors.append(e)
        done.set()
        threading.Event().wait()  # stays alive for the life of the process

    threading.Thread(target=hold, daemon=True, name="tl-ray-init").start()


class RayExecutor(Executor):
    """Starts runs as Ray tasks and watches them (one per scheduling process and TL_HOME)."""

    name = "ray"

    def __init__(self, address: str, home: Path):
        self.address, self.home = address, Path(home)
        # the job manager's `schedule`, called when a task ends so the next queued run takes its place
        self.reschedule: Callable[[Store], Any] | None = None
        self.refs: dict[str, Any] = {}  # run id -> the task's object ref
        self.lock = threading.Lock()
        self.actor = None
        self.watcher: threading.Thread | None = None
        self.down_until, self.down_reason = 0.0, ""
        self.connecting: threading.Event | None = None
        self.connect_errors: list[BaseException] = []
        self.closed = threading.Event()
        # Ray's client calls are made from one thread at a time (page scripts, the scheduler thread and the
        # watcher share this executor; concurrent calls into Ray's global state stalled a page)
        self.api_lock = threading.RLock()
        self._status: dict[str, Any] = {}
        self._status_at = 0.0

    RETRY_S = 30.0  # an unreachable cluster is asked again after this long, not on every scheduling pass
    CONNECT_TIMEOUT_S = float(setting("TL_RAY_CONNECT_TIMEOUT_S"))

    def connect(self) -> None:
        import ray

        if time.time() < self.down_until:
            raise ClusterUnreachable(self.down_reason)
        if not ray.is_initialized():
            if self.connecting is None:  # one attempt at a time; a slow one goes on in the background
                kw: dict[str, Any] = {"namespace": "transferlab", "include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
                pkg = str(Path(__file__).resolve().parents[2])
                # the workers import tl_core from this checkout's parent (a cluster gets it from its own image)
                kw["runtime_env"] = {"env_vars": {"PYTHONPATH": pkg + os.pathsep + os.environ.get("PYTHONPATH", "")}}
                self.connecting, self.connect_errors = threading.Event(), []
                _init_in_a_lasting_thread(
                    lambda: ray.init(address=None if self.address == "local" else self.address, **kw),
                    self.connecting, self.connect_errors)
            answered = self.connecting.wait(self.CONNECT_TIMEOUT_S)
            why = ""
            if not answered:
                why = f"no answer within {self.CONNECT_TIMEOUT_S:.0f} s"
            elif self.connect_errors:
                e = self.connect_errors[0]
                why = f"{type(e).__name__}: {str(e)[:200]}"
                self.connecting = None  # the next attempt starts afresh
            if why:
                self.down_until = time.time() + self.RETRY_S
                self.down_reason = (f"The Ray cluster at TL_RAY_ADDRESS={self.address} cannot be reached ({why}). "
                                    f"Runs stay queued until it can; unset TL_RAY_ADDRESS to train on this "
                                    f"machine.")
                raise ClusterUnreachable(self.down_reason)
        if self.actor is None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = ray.get_runtime_context().get_node_id()
            cls = ray.remote(num_cpus=0)(RunRecorder)
            self.actor = cls.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote(
                str(self.home), str(setting("TL_DATA_DIR") or ""))

    STATUS_TTL_S = 5.0

    def status(self) -> dict[str, Any]:
        """What the sidebar shows: reachable or not, nodes, CPUs and GPUs (asked of the cluster at most every
        few seconds: every page and every scheduling pass reads it)."""
        with self.api_lock:
            if time.time() - self._status_at < self.STATUS_TTL_S:
                return self._status
            try:
                self.connect()
                import ray

                nodes = [n for n in ray.nodes() if n.get("Alive")]
                res = ray.cluster_resources()
                out = {"ok": True, "address": self.address, "nodes": len(nodes), "cpus": res.get("CPU", 0),
                       "gpus": res.get("GPU", 0), "message": ""}
            except TLError as e:
                out = {"ok": False, "address": self.address, "nodes": 0, "cpus": 0, "gpus": 0, "message": str(e)}
            self._status, self._status_at = out, time.time()
            return out

    def capacity(self) -> int:
        """Runs the cluster can hold at once."""
        s = self.status()
        return max(1, int(s["cpus"] // cpus_per_run())) if s["ok"] else 0

    def start(self, st, run_id: str, slot: int = 0) -> None:
        import ray

        r = st.get(run_id)
        gpu = device_share(r["config"]) if self.status().get("gpus") else 0.0
        with self.api_lock:
            self.connect()
            task = ray.remote(train_task).options(num_cpus=cpus_per_run(), num_gpus=gpu, max_retries=1,
                                                  retry_exceptions=False)
            ref = task.remote(run_id, r["config"], self.actor)
        with self.lock:
            self.refs[run_id] = ref
        st.update(run_id, executor="ray", driver_pid=os.getpid(), pid_start=proc_start(os.getpid()),
                  heartbeat=time.time())
        if self.watcher is None or not self.watcher.is_alive():
            self.watcher = threading.Thread(target=self._watch, args=(st,), daemon=True, name="tl-ray-watch")
            self.watcher.start()

    def cancel(self, st, r: dict[str, Any]) -> None:
        """Nothing to send: the task polls the store's flag through the actor; `_watch` cancels it through
        Ray when it has not stopped after the grace period."""

    def _watch(self, st) -> None:
        """Ends the record of each task that returns or dies, escalates overdue cancels, frees the slot."""
        import ray

        while not self.closed.is_set():
            with self.lock:
                refs = dict(self.refs)
            if not refs:
                time.sleep(0.5)
                continue
            with self.api_lock:
                done, _ = ray.wait(list(refs.values()), num_returns=1, timeout=0.2)
            time.sleep(0.3)
            for run_id, ref in refs.items():
                r = st.get(run_id)
                if ref not in done:
                    if r and r["cancel_requested"] and time.time() - r["cancel_requested"] > CANCEL_GRACE_S:
                        with self.api_lock:
                            ray.cancel(ref, force=True)
                    continue
                with self.lock:
                    self.refs.pop(run_id, None)
                try:
                    with self.api_lock:
                        ray.get(ref, timeout=10)
                    reason = "the task ended without a result (see the cluster's logs)"
                except Exception as e:  # noqa: BLE001 - a dead node, a cancel or a crash: one record each
                    reason = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
                if r and r["cancel_requested"]:
                    st.finish_if_active(run_id, "cancelled", "cancelled")
                else:
                    st.finish_if_active(run_id, "interrupted",
                                        f"interrupted on the Ray cluster ({reason}). Resume it to continue from its "
                                        f"last checkpoint.")
                if self.closed.is_set():
                    return
                try:
                    if self.reschedule is not None:
                        self.reschedule(st)
                except Exception:  # noqa: BLE001
                    traceback.print_exc(file=sys.stderr)

    def close(self) -> None:
        """Stop watching (the tasks end with this driver's connection)."""
        self.closed.set()
        if self.watcher is not None:
            self.watcher.join(timeout=10)


_EXECUTORS: dict[tuple[str, str], RayExecutor] = {}
_LOCK = threading.Lock()


def ray_executor(home: Path) -> RayExecutor:
    """The Ray executor of this process for a TL_HOME (the address comes from TL_RAY_ADDRESS)."""
    key = (ray_address(), str(home))
    with _LOCK:
        if key not in _EXECUTORS:
            _EXECUTORS[key] = RayExecutor(key[0], Path(home))
        return _EXECUTORS[key]


def shutdown() -> None:
    """Close every Ray executor of this process and disconnect from the cluster."""
    with _LOCK:
        execs = list(_EXECUTORS.values())
        _EXECUTORS.clear()
    for e in execs:
        e.close()
    if execs:
        import ray

        ray.shutdown()
