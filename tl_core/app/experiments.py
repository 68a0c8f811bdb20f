"""What the app's Experiments page calls: presets, experiments from a shareable URL, launching,
watching and the summary; every call carries the browser session, and a session sees only its
own experiments, shared ones and the teacher's (command line)."""
from __future__ import annotations

import json
import time
from typing import Any, Mapping

from tl_core.policy import access
from tl_core.advice import advisor
from tl_core import experiments, runs
from tl_core.policy.access import Session
from tl_core.config import parse_seeds
from tl_core.data.domains import get_domain
from tl_core.base.errors import ConfigError, TLError
from tl_core.experiments import ExperimentSpec
from tl_core.experiments.presets import FIRST_VISIT, PRESETS, get_preset
from tl_core.planning.planner import estimate_seconds
from tl_core.app.text import clock, domain_label
from tl_core.app.visible import fetch_visible, owned

# what the pages may call (tl_core.app.api exports exactly these)
__all__ = ["experiment_presets", "first_visit_preset", "experiment_from_query", "experiment_query", "link_budget",
           "plan_experiment", "launch_experiment", "train_experiment_again", "view_experiment",
           "experiment_progress", "list_experiments", "cancel_experiment", "delete_experiment", "publish_experiment",
           "export_experiment", "ask_advisor", "advice_job", "latest_advice", "launch_advised",
           "advisor_track_record"]
MAX_QUERY = 2000  # characters of a shared link's experiment description that are read at all


def experiment_presets() -> list[dict[str, Any]]:
    return [p.info() for p in PRESETS.values()]


def first_visit_preset() -> str:
    return FIRST_VISIT


def experiment_from_query(q: Mapping[str, str], session: Session) -> tuple[dict[str, Any] | None, str]:
    """The experiment a link describes: `?preset=NAME[&seeds=0,1]`, or a custom grid
    `?source=S&target=T&methods=a,b[&seeds=..]`. (spec dict, "") or (None, why), never an exception:
    a link may be mistyped or hostile. Its source and target pass the access gate before anything
    reads the disk for them."""
    try:
        seeds = parse_seeds(q.get("seeds"), "seeds in a link") or None if q.get("seeds") else None
        if q.get("source") or q.get("target") or q.get("methods"):
            methods = [m for m in str(q.get("methods", ""))[:MAX_QUERY].split(",") if m][:experiments.MAX_STRATEGIES]
            if not (q.get("source") and q.get("target") and methods):
                return None, "A custom experiment link needs source, target and methods."
            source = access.gate_domain(session, str(q["source"])[:MAX_QUERY])
            target = access.gate_domain(session, str(q["target"])[:MAX_QUERY])
            spec = experiments.from_methods(source, target, methods, seeds or (0,), budget_s=link_budget(q.get("budget")))
        else:
            spec = get_preset(str(q.get("preset") or FIRST_VISIT)[:40]).spec(seeds)
        return spec.to_dict(), ""
    except TLError as e:
        return None, str(e)


def link_budget(text: object) -> float:
    """A link's time budget per run (`budget=`, seconds; absent: 0, each method's default schedule).
    Raises ConfigError in words for anything else."""
    if text in (None, ""):
        return 0.0
    try:
        value = float(str(text)[:12])
    except ValueError:
        raise ConfigError(f"budget in a link is a number of seconds per run (got {str(text)[:12]!r}).") from None
    if not 0 <= value <= 24 * 3600:
        raise ConfigError("budget in a link is 0 (no plan) to 86,400 seconds per run.")
    return value


def experiment_query(spec: dict[str, Any]) -> dict[str, str]:
    """The URL query that reopens this experiment, ready to launch."""
    seeds = ",".join(map(str, spec["seeds"]))
    if spec.get("preset"):
        return {"preset": spec["preset"], "seeds": seeds}
    methods = ",".join(s["method"] for s in spec["strategies"] if s["role"] != "baseline")
    q = {"source": spec["source"], "target": spec["target"], "methods": methods, "seeds": seeds}
    if spec.get("budget_s"):
        q["budget"] = f"{float(spec['budget_s']):g}"
    return q


def plan_experiment(spec: dict[str, Any], session: Session) -> dict[str, Any]:
    """Before launch: the member runs, an estimate of the whole grid's time, and why it cannot launch ('' if it can)."""
    try:
        s, members, estimates = _checked(session, spec)
    except TLError as e:
        return {"runs": 0, "estimate_s": 0.0, "why": str(e), "strategies": []}
    return {"runs": len(members), "estimate_s": sum(estimates), "why": "", "budget_s": s.budget_s,
            "strategies": [st.label for st in s.strategies], "seeds": list(s.seeds),
            "source": _long_label(s.source), "target": _long_label(s.target)}


def _checked(session: Session, spec: Any) -> tuple[ExperimentSpec, list, list[float]]:
    """The spec as this session may launch it: gated names, its runs within the quotas, none of them
    longer than the server's limit per run (it would be stopped half-way). Raises TLError in words."""
    _gate(session, spec)
    s = ExperimentSpec.from_dict(spec)
    members = s.configs()
    for _, _, cfg in members:
        access.check_config(session, cfg)
    _check_size(session, len(members))
    estimates = [estimate_seconds(c) for _, _, c in members]
    limit = access.wall_limit(session)
    longest = max(range(len(members)), key=estimates.__getitem__, default=None)
    if limit and longest is not None and estimates[longest] > limit:
        label = s.strategies[members[longest][0]].label
        raise ConfigError(f"A run of {label} takes about {clock(estimates[longest])}, longer than the limit of "
                          f"{clock(limit)} per run on this server (TL_QUOTA_RUN_WALL_S): give each run a time "
                          f"budget below it.")
    return s, members, estimates


def _gate(session: Session, spec: Any) -> None:
    """Every domain name an experiment carries (its source and target, the common settings' and each
    strategy's own data override) through the access gate, before the spec is validated or any of
    them is read from disk."""
    if not isinstance(spec, dict):
        raise ConfigError("An experiment must be a JSON object.")
    access.gate_domain(session, spec.get("source"))
    access.gate_domain(session, spec.get("target"))
    base = spec.get("base")
    overrides = [base.get("data")] if isinstance(base, dict) else []
    strategies = spec.get("strategies")
    overrides += [a.get("data") for a in strategies if isinstance(a, dict)] if isinstance(strategies, list) else []
    for data in overrides:
        if isinstance(data, dict):
            for side in ("source", "target"):
                if side in data:
                    access.gate_domain(session, data[side])


def _long_label(name: str) -> str:
    """A domain's name as the catalogue gives it (says "starter pack" when it is the offline subset)."""
    try:
        return get_domain(name).info()["label"] if "+" not in name and ":" not in name else domain_label(name)
    except TLError:
        return domain_label(name)


def _check_size(session: Session, n: int) -> None:
    lim = access.limits().experiment_runs
    if not session.is_cli and lim and n > lim:
        raise ConfigError(f"This experiment has {n} runs; one experiment may have at most {lim} on this server "
                          f"(TL_QUOTA_EXPERIMENT_RUNS). Use fewer seeds or strategies.")


def launch_experiment(spec: dict[str, Any], session: Session, fresh: bool = False) -> str:
    """Queue the whole grid for this session (quotas hold); returns the experiment id. A member run
    identical to one already trained takes its numbers (marked reused), unless `fresh`."""
    s, _, _ = _checked(session, spec)
    return experiments.launch(s, owner=session.owner, published=False if not session.is_cli else None,
                              limits=access.queue_limits(session), wall_limit_s=access.wall_limit(session),
                              fresh=fresh)


def train_experiment_again(session: Session, exp_id: str) -> str:
    """The same grid launched anew for this session with every run trained, none reused ("Train again")."""
    e = _visible(session, exp_id)
    return launch_experiment(e["spec"].to_dict(), session, fresh=True)


def _visible(session: Session, exp_id: str) -> dict[str, Any]:
    return fetch_visible(session, "experiment", exp_id, experiments.get)


def view_experiment(session: Session, exp_id: str) -> dict[str, Any]:
    """Everything the page shows about an experiment: record, progress with ETA, summary and verdict."""
    e = _visible(session, exp_id)
    hist = {r["id"]: runs.read_metrics(r["id"])[0] for r in e["runs"] if r["status"] == "finished"}
    s = experiments.summary(e, hist)
    spec = e["spec"]
    return {"id": e["id"], "name": e["name"], "preset": e["preset"], "mine": e["mine"],
            "published": bool(e["published"]), "created": e["created"], "spec": spec.to_dict(),
            "progress": experiments.progress(e), "results": s["results"], "verdict": s["verdict"],
            "verdict_certain": s["verdict_certain"],
            "reference_source": s["reference_source"], "histories": hist,
            "reused": sum(bool(r.get("reused_from")) for r in e["runs"]),
            "waiting_on_identical": sum(r["status"] == "queued" and bool(r.get("attached_to")) for r in e["runs"]),
            "runs": [{k: r.get(k) for k in ("id", "strategy", "seed", "status", "reason", "target_acc", "epoch",
                                            "epochs", "queue_position", "reused_from")} for r in e["runs"]]}


def experiment_progress(session: Session, exp_id: str) -> dict[str, Any]:
    """Only the grid's progress (what the live panel polls: a few numbers)."""
    return experiments.progress(_visible(session, exp_id))


def list_experiments(session: Session) -> list[dict[str, Any]]:
    """This session's experiments, shared ones and the teacher's, newest first, with their status."""
    st = runs.store()
    rows = st.list_experiments(visible_to=None if session.is_cli else session.owner)
    out = []
    for r in rows:
        members = st.list(experiment=r["id"], limit=1000)
        out.append({"id": r["id"], "name": r["name"], "preset": r["preset"], "status": experiments.status_of(members),
                    "runs": len(members), "mine": access.can_change(session, r),
                    "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"]))})
    return out


def cancel_experiment(session: Session, exp_id: str) -> None:
    experiments.cancel(_own(session, exp_id))


def delete_experiment(session: Session, exp_id: str) -> None:
    """The experiment and all its runs (stopped first)."""
    e = _own(session, exp_id)
    experiments.cancel(e, wait_s=runs.CANCEL_GRACE_S + 2)
    for r in e["runs"]:
        runs.delete(r["id"])
    runs.store().delete_experiment(e["id"])


def publish_experiment(session: Session, exp_id: str, on: bool = True) -> None:
    """Share an experiment and its runs with the class (read-only for others), or stop sharing."""
    e = _own(session, exp_id)
    st = runs.store()
    st.update_experiment(e["id"], published=int(bool(on)))
    for r in e["runs"]:
        st.update(r["id"], published=int(bool(on)))


def _own(session: Session, exp_id: str) -> dict[str, Any]:
    return owned(session, "experiment", exp_id, experiments.get)


def export_experiment(session: Session, exp_id: str) -> str:
    """The experiment's spec and results as JSON (what a user downloads)."""
    e = _visible(session, exp_id)
    return json.dumps(experiments.cli_result(e), indent=2)


def ask_advisor(session: Session, source: str, target: str, fresh: bool = False) -> dict[str, Any]:
    """Queue a question to the advisor about a pair this session may use (both names pass the access gate
    first) and return its state at once: the advisor runs as a job outside the web server, one question at
    a time per session, counted against the session's queue like a run. An earlier answer about the same
    pair is returned instead of asking again, unless `fresh`."""
    src, tgt = access.gate_domain(session, source), access.gate_domain(session, target)
    st = runs.store()
    last = st.latest_advice(session.owner, src, tgt)
    if last is not None and (last["status"] in ("queued", "starting", "running") or
                             last["status"] == "finished" and not fresh):
        return _advice_view(last)
    job_id = st.insert_advice(session.owner, src, tgt, access.queue_limits(session))
    runs.schedule(st)
    return _advice_view(st.get_advice(job_id))


def advice_job(session: Session, job_id: str) -> dict[str, Any]:
    """A question's state for its own session: status, progress words and fraction, and the answer once
    there (the advisor's `advise` output under "result")."""
    r = runs.store().get_advice(str(job_id))
    if r is None or r["owner"] != session.owner:
        raise access.not_visible(job_id, "question")
    return _advice_view(r)


def latest_advice(session: Session, source: str, target: str) -> dict[str, Any] | None:
    """This session's newest question about a pair (a page left and reopened shows its answer)."""
    r = runs.store().latest_advice(session.owner, str(source)[:4096], str(target)[:4096])
    return _advice_view(r) if r is not None else None


def _advice_view(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: r[k] for k in ("id", "status", "source", "target", "progress", "fraction", "reason", "created")}
    out["result"] = json.loads(r["result"]) if r["status"] == "finished" and r["result"] else None
    out["words"] = {"queued": "waiting for the advisor (one question is answered at a time)",
                    "starting": "the advisor is starting", "running": r["progress"] or "the advisor is scoring",
                    "finished": "answered", "failed": r["reason"]}.get(r["status"], r["status"])
    return out


def launch_advised(session: Session, advice: dict[str, Any], seeds: tuple[int, ...] = (0, 1, 2)) -> str:
    """Launch the grid that checks an advice (recommended, runner-up, source only) as an ordinary
    experiment of this session; everything is gated and counted as for any experiment."""
    return launch_experiment(advisor.grid(advice, seeds).to_dict(), session)


def advisor_track_record() -> dict[str, Any]:
    """The fitted predictor's held-out record (bench/advisor.py), for the advisor's help panel."""
    model = advisor.load_model() or {}
    return model.get("track_record", {})  # with the held-out points the page plots
