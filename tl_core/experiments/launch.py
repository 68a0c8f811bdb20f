"""Launching an experiment (all its runs queued in one transaction) and reading it back: its record,
one status for the grid, its progress and ETA, the CLI's JSON. The app and the CLI launch through
`launch` and read through `get` and `verdict.summary`: one path."""
from __future__ import annotations

import json
import secrets
import time
from typing import Any

from tl_core import runs
from tl_core.config import RunConfig
from tl_core.base.errors import TLError
from tl_core.planning.planner import estimate_seconds
from tl_core.planning.runkey import run_key
from tl_core.store import ACTIVE, TERMINAL
from tl_core.experiments.spec import ExperimentSpec
from tl_core.experiments.verdict import summary

def launch(spec: ExperimentSpec, owner: str = "cli", name: str = "", published: bool | None = None,
           limits: tuple[int | None, ...] = (None, None), wall_limit_s: float | None = None,
           fresh: bool = False) -> str:
    """Record the experiment and queue all its runs in one transaction; returns its id at once. A run
    identical to one already trained (or training) takes its numbers instead of training (`runkey`),
    unless `fresh`: every preset on USPS -> MNIST shares its source-only runs."""
    spec = spec.normalised()
    resolved = spec.resolved()
    members = [(i, seed, r.config) for i, seed, r in resolved]
    st = runs.store()
    exp_id = "x" + secrets.token_hex(5)
    estimates, decoded = [], set()
    for _, _, cfg in members:  # the first run to use a domain decodes it for the others
        estimates.append(estimate_seconds(cfg, decoded))
        decoded |= {cfg.data.source, cfg.data.target}
    st.insert_experiment(exp_id, {"name": name or spec.title or spec.preset or "experiment", "owner": owner,
                                  "published": int(owner == "cli" if published is None else published),
                                  "spec": spec.to_json(), "preset": spec.preset},
                         [(cfg.config_id(), cfg.to_dict(), spec.strategies[i].label, est, r.sources, run_key(cfg))
                          for (i, _, cfg), est, (_, _, r) in zip(members, estimates, resolved)],
                         limits=limits, wall_limit_s=wall_limit_s, fresh=fresh)
    runs.schedule(st)
    return exp_id


def get(exp_id: str) -> dict[str, Any]:
    """The experiment's record, its spec and its member runs (each with progress); raises TLError."""
    st = runs.store()
    e = st.get_experiment(exp_id)
    if e is None:
        raise TLError(f"There is no experiment {str(exp_id)[:40]!r}. `python -m tl_core experiments` lists them.")
    members = st.list(experiment=exp_id, limit=1000)
    for r in members:
        waits = r["status"] == "queued" and bool(r.get("attached_to"))  # on an identical run: its progress
        r["progress"] = st.progress(r["attached_to"] if waits else r["id"]) if r["status"] in ACTIVE or waits else None
    e["runs"] = sorted(members, key=lambda r: r["created"])
    e["spec"] = ExperimentSpec.from_dict(json.loads(e["spec"]))
    return e


def status_of(members: list[dict[str, Any]]) -> str:
    """One status for the grid, from its runs."""
    statuses = [r["status"] for r in members]
    if not statuses:
        return "failed"
    if any(s in ACTIVE for s in statuses):
        return "running"
    if any(s == "queued" for s in statuses):
        return "running" if any(s != "queued" for s in statuses) else "queued"
    if all(s == "finished" for s in statuses):
        return "finished"
    return "cancelled" if any(s == "cancelled" for s in statuses) else "failed"


def _launch_estimate(r: dict[str, Any], cfg: RunConfig) -> float:
    """A member run's time as estimated at launch (that estimate knows which run decodes each domain);
    a fresh estimate only for runs recorded without one."""
    return r.get("estimate_s") or estimate_seconds(cfg)


def progress(e: dict[str, Any]) -> dict[str, Any]:
    """How far the whole grid is: fraction of its steps done, runs done, and an ETA in seconds that
    uses this experiment's own finished runs to correct the planner's estimate."""
    members = e["runs"]
    done_w = total_w = 0.0
    measured, estimated = [], []
    for r in members:
        cfg = RunConfig.from_dict(r["config"])
        steps = cfg.train.epochs * cfg.train.steps_per_epoch
        total_w += steps
        if r["status"] == "finished" and r["wall_s"]:
            measured.append(r["wall_s"])
            estimated.append(_launch_estimate(r, cfg))
    scale = (sum(measured) / sum(estimated)) if measured and sum(estimated) > 0 else 1.0
    eta = 0.0
    for r in members:
        cfg = RunConfig.from_dict(r["config"])
        steps = cfg.train.epochs * cfg.train.steps_per_epoch
        if r["status"] in TERMINAL:
            done_w += steps
        elif (r["status"] == "running" or r.get("attached_to")) and r.get("progress"):
            p = r["progress"]
            done_w += steps * min(1.0, p["step"] / max(p["total_steps"], 1))
            eta += p["eta_s"] + 3.0  # + the last evaluation and the map
        else:
            eta += _launch_estimate(r, cfg) * scale
    finished = sum(r["status"] == "finished" for r in members)
    stopped = [r for r in members if r["status"] in TERMINAL and r["status"] != "finished"]
    return {"fraction": done_w / total_w if total_w else 1.0, "runs_done": finished, "runs": len(members),
            "runs_stopped": len(stopped), "runs_ended": finished + len(stopped),
            "time_limited": sum("TL_QUOTA_RUN_WALL_S" in (r.get("reason") or "") for r in stopped),
            "eta_s": eta, "status": status_of(members)}


def cli_result(e: dict[str, Any], wall_s: float | None = None) -> dict[str, Any]:
    """What `experiment --json` prints: the fields the acceptance reads, and the per-run detail."""
    hist = {r["id"]: runs.read_metrics(r["id"])[0] for r in e["runs"] if r["status"] == "finished"}
    s = summary(e, hist)
    return {"experiment_id": e["id"], "name": e["name"], "preset": e["preset"], "status": status_of(e["runs"]),
            "wall_s": wall_s if wall_s is not None else _span(e["runs"]), "verdict": s["verdict"],
            "source": e["spec"].source, "target": e["spec"].target, "seeds": list(e["spec"].seeds),
            "verdict_certain": s["verdict_certain"],
            "results": [{k: r[k] for k in ("strategy", "method", "role", "target_acc_mean", "target_acc_std",
                                           "target_acc_ci",
                                           "n_seeds", "gain", "gain_ci", "reference", "negative_transfer", "flags",
                                           "wall_s_mean", "runs")} for r in s["results"]]}


def _span(members: list[dict[str, Any]]) -> float | None:
    ends = [r["ended"] for r in members if r.get("ended")]
    return (max(ends) - min(r["created"] for r in members)) if ends and members else None


def cancel(e: dict[str, Any], wait_s: float = 0.0) -> None:
    """Cancel every member run of experiment `e` (as `get` returns it) that has not ended; `wait_s` as
    for `runs.cancel` (how long to wait for a training run to stop)."""
    for r in e["runs"]:
        if r["status"] not in TERMINAL:
            runs.cancel(r["id"], wait_s=wait_s)


def wait(exp_id: str, on_tick=None, poll_s: float = 0.2) -> dict[str, Any]:
    """Keep the queue moving (a terminal may be the only actor) until every member run has ended; the next
    run starts within `poll_s` of a slot freeing."""
    while True:
        runs.schedule()
        e = get(exp_id)
        if on_tick:
            on_tick(e)
        if status_of(e["runs"]) not in ("queued", "running"):
            return e
        time.sleep(poll_s)
