"""Experiments: a named grid of strategies x seeds on one source -> target pair, always with the
source-only baseline (and, when asked, the target-only upper bound), recorded as one object in
the run store with its member runs. Also the summary people read: per strategy mean ± std over
seeds, the gain over source only, published reference numbers, flags for negative transfer and
collapse, and a verdict paragraph generated from those numbers.

The app and the CLI launch through `launch` and read through `get` / `summary`: one path.
"""
from __future__ import annotations

import json
import math
import secrets
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import RunConfig
from .errors import ConfigError, TLError
from .stats import accuracy_ci

MAX_STRATEGIES = 8
MAX_SEEDS = 5

# TLlib's published LeNet digits numbers (Transfer-Learning-Library, DANN/DAN/CDAN/MCD/MDD/MCC tables),
# target accuracy in %. The reference people hold ours against.
REFERENCES: dict[tuple[str, str], dict[str, float]] = {
    ("mnist", "usps"): {"source_only": 82.1, "dann": 91.7, "mmd": 86.0, "cdan": 96.0, "mcd": 94.1, "mdd": 94.8,
                        "mcc": 95.1},
    ("usps", "mnist"): {"source_only": 74.6, "dann": 95.2, "mmd": 89.5, "cdan": 97.7, "mcd": 97.6, "mdd": 97.8,
                        "mcc": 94.6},
}
REFERENCE_SOURCE = "TLlib, LeNet"


@dataclass(frozen=True)
class Strategy:
    """One column of the grid: a method with its hyperparameters and any setting that differs
    from the experiment's common settings (a freeze depth, a label regime)."""

    label: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # ModelSpec fields, e.g. {"freeze": 4}
    data: dict[str, Any] = field(default_factory=dict)  # DataSpec fields, e.g. {"target_labels": 5}
    role: str = ""  # "baseline" (source only), "upper" (target only) or "" (a strategy under test)


@dataclass(frozen=True)
class ExperimentSpec:
    """What an experiment trains: common settings (`base`, a RunConfig dict without method) on one
    pair, each strategy once per seed."""

    source: str
    target: str
    strategies: tuple[Strategy, ...]
    seeds: tuple[int, ...] = (0,)
    base: dict[str, Any] = field(default_factory=dict)  # {"model": {...}, "train": {...}, "data": {...}}
    title: str = ""
    preset: str = ""
    budget_s: float = 0.0  # > 0: what each run leaves out is planned to this many seconds, as `train --budget`

    # -- building -----------------------------------------------------------------------
    def normalised(self) -> "ExperimentSpec":
        """The baseline first (added when missing), labels unique, sizes bounded."""
        strategies = list(self.strategies)
        if not any(s.role == "baseline" for s in strategies):
            strategies.insert(0, Strategy("source only", "source_only", role="baseline"))
        strategies.sort(key=lambda s: {"baseline": 0, "": 1, "upper": 2}[s.role])
        labels = [s.label for s in strategies]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"Two strategies share a name ({', '.join(sorted({x for x in labels if labels.count(x) > 1}))}): "
                              f"give each strategy its own label.")
        if len(strategies) > MAX_STRATEGIES:
            raise ConfigError(f"An experiment compares at most {MAX_STRATEGIES} strategies, baseline included "
                              f"(got {len(strategies)}).")
        from .config import MAX_SEED

        seeds = tuple(dict.fromkeys(int(s) for s in self.seeds))
        if not seeds or len(seeds) > MAX_SEEDS or min(seeds) < 0 or max(seeds) > MAX_SEED:
            raise ConfigError(f"An experiment runs 1 to {MAX_SEEDS} different seeds from 0 to {MAX_SEED:,} "
                              f"(got {str(list(self.seeds))[:80]}).")
        if not 0 <= float(self.budget_s) <= 24 * 3600:
            raise ConfigError(f"An experiment's time budget per run is 0 (no plan) to 86,400 s (got {self.budget_s}).")
        return ExperimentSpec(self.source, self.target, tuple(strategies), seeds, self.base, self.title, self.preset,
                              float(self.budget_s))

    def configs(self) -> list[tuple[int, int, RunConfig]]:
        """(strategy index, seed, validated config) for every member run, seed-major: every strategy's
        seed 0 before any seed 1, so a comparison is readable while the grid is still running."""
        return [(i, seed, r.config) for i, seed, r in self.resolved()]

    def resolved(self) -> list[tuple[int, int, Any]]:
        """(strategy index, seed, `Resolved`) for every member run, resolved as every door resolves a
        run (`resolve.resolve`, no time plan: the experiment's settings are its plan), so a method's
        recipe holds here as on the command line, and with a budget the same plan as `train --budget`."""
        from .resolve import resolve

        common = {k: v for k, v in self.base.items() if k in ("model", "train", "data")}
        base = RunConfig.from_dict(common).replace(data={"source": self.source, "target": self.target})
        given = {f"{sec}.{k}" for sec, vals in common.items() if isinstance(vals, dict) for k in vals}
        given |= {"data.source", "data.target", "train.seed", "train.seeds"}
        out = []
        for seed in self.seeds:
            for i, s in enumerate(self.strategies):
                cfg = base.replace(method={"name": s.method, "params": dict(s.params)},
                                   train={"seed": seed, "seeds": ()}, name=s.label)
                if s.model:
                    cfg = cfg.replace(model=dict(s.model))
                if s.data:
                    cfg = cfg.replace(data=dict(s.data))
                mine = given | {f"model.{k}" for k in s.model} | {f"data.{k}" for k in s.data}
                try:
                    r = resolve(cfg, mine, budget_s=self.budget_s)
                    r.config = r.config.validate()
                    out.append((i, seed, r))
                except TLError as e:
                    raise ConfigError(f"Strategy '{s.label}': {e}") from None
        return out

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["strategies"] = [asdict(s) for s in self.strategies]
        d["seeds"] = list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ExperimentSpec":
        """From JSON that may come from a URL or a file: every field checked, unknown ones refused."""
        if not isinstance(d, dict):
            raise ConfigError("An experiment must be a JSON object.")
        known = {"source", "target", "strategies", "seeds", "base", "title", "preset", "budget_s"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"Unknown experiment field(s): {', '.join(unknown)}.")
        strategies = d.get("strategies") or []
        if not isinstance(strategies, list) or not all(isinstance(s, dict) for s in strategies):
            raise ConfigError("strategies must be a list of objects with at least label and method.")
        built = []
        for s in strategies[:MAX_STRATEGIES + 1]:
            extra = sorted(set(s) - {"label", "method", "params", "model", "data", "role"})
            if extra or not isinstance(s.get("method"), str):
                raise ConfigError(f"A strategy needs a method and may set label, params, model, data, role "
                                  f"(got {sorted(s)}).")
            if s.get("role", "") not in ("", "baseline", "upper"):
                raise ConfigError("A strategy's role is '', 'baseline' or 'upper'.")
            sub = {k: s.get(k) or {} for k in ("params", "model", "data")}
            if not all(isinstance(v, dict) for v in sub.values()):
                raise ConfigError("A strategy's params, model and data are objects.")
            label = str(s.get("label") or s["method"])[:60]
            built.append(Strategy(label, s["method"], role=s.get("role", ""), **sub))
        seeds = d.get("seeds", [0])
        if not isinstance(seeds, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds):
            raise ConfigError("seeds must be a list of whole numbers, e.g. [0, 1].")
        base = d.get("base") or {}
        if not isinstance(base, dict) or set(base) - {"model", "train", "data"}:
            raise ConfigError("base holds the common settings: model, train and data.")
        for v in (d.get("source"), d.get("target")):
            if not isinstance(v, str) or not v:
                raise ConfigError("An experiment needs a source and a target domain.")
        budget = d.get("budget_s", 0.0)
        if not isinstance(budget, (int, float)) or isinstance(budget, bool):
            raise ConfigError("budget_s is a number of seconds per run (0: no plan).")
        return cls(d["source"], d["target"], tuple(built), tuple(seeds), base, str(d.get("title", ""))[:120],
                   str(d.get("preset", ""))[:40], float(budget)).normalised()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def custom(source: str, target: str, methods: list[str], seeds: tuple[int, ...] = (0,),
           base: dict[str, Any] | None = None, target_only: bool = False, budget_s: float = 0.0) -> ExperimentSpec:
    """A grid of plain methods (default hyperparameters) on one pair: the CLI's --methods."""
    from .methods import get_method

    strategies = []
    for m in methods:
        if m == "source_only":
            continue  # the baseline is always there
        role = "upper" if m == "target_only" else ""
        strategies.append(Strategy(get_method(m).label if m != "target_only" else "target only (upper bound)", m,
                                   data={"target_labels": "all"} if get_method(m).needs_target_labels else {},
                                   role=role))
    if target_only and not any(s.role == "upper" for s in strategies):
        strategies.append(Strategy("target only (upper bound)", "target_only", data={"target_labels": "all"},
                                   role="upper"))
    return ExperimentSpec(source, target, tuple(strategies), tuple(seeds), base or {},
                          title=f"{source} → {target}: {', '.join(methods)}", budget_s=budget_s).normalised()


# -- launching and reading ----------------------------------------------------------------------

def launch(spec: ExperimentSpec, owner: str = "cli", name: str = "", published: bool | None = None,
           limits: tuple[int | None, int | None] = (None, None), wall_limit_s: float | None = None,
           max_runs: int | None = None) -> str:
    """Record the experiment and queue all its runs in one transaction; returns its id at once."""
    from . import runs
    from .planner import estimate_seconds

    spec = spec.normalised()
    resolved = spec.resolved()
    members = [(i, seed, r.config) for i, seed, r in resolved]
    if max_runs is not None and len(members) > max_runs:
        raise ConfigError(f"This experiment has {len(members)} runs ({len(spec.strategies)} strategies × "
                          f"{len(spec.seeds)} seeds); one experiment may have at most {max_runs} "
                          f"(TL_QUOTA_EXPERIMENT_RUNS). Use fewer seeds or strategies.")
    st = runs.store()
    exp_id = "x" + secrets.token_hex(5)
    estimates, decoded = [], set()
    for _, _, cfg in members:  # the first run to use a domain decodes it for the others
        estimates.append(estimate_seconds(cfg, decoded))
        decoded |= {cfg.data.source, cfg.data.target}
    st.insert_experiment(exp_id, {"name": name or spec.title or spec.preset or "experiment", "owner": owner,
                                  "published": int(owner == "cli" if published is None else published),
                                  "spec": spec.to_json(), "preset": spec.preset},
                         [(cfg.config_id(), cfg.to_dict(), spec.strategies[i].label, est, r.sources)
                          for (i, _, cfg), est, (_, _, r) in zip(members, estimates, resolved)],
                         limits=limits, wall_limit_s=wall_limit_s)
    runs.schedule(st)
    return exp_id


def get(exp_id: str) -> dict[str, Any]:
    """The experiment's record, its spec and its member runs (each with progress); raises TLError."""
    from . import runs

    st = runs.store()
    e = st.get_experiment(exp_id)
    if e is None:
        raise TLError(f"There is no experiment {str(exp_id)[:40]!r}. `python -m tl_core experiments` lists them.")
    members = st.list(experiment=exp_id, limit=1000)
    for r in members:
        r["progress"] = st.progress(r["id"]) if r["status"] in ("starting", "running") else None
    e["runs"] = sorted(members, key=lambda r: r["created"])
    e["spec"] = ExperimentSpec.from_dict(json.loads(e["spec"]))
    return e


def status_of(members: list[dict[str, Any]]) -> str:
    """One status for the grid, from its runs."""
    st = [r["status"] for r in members]
    if not st:
        return "failed"
    if any(s in ("starting", "running") for s in st):
        return "running"
    if any(s == "queued" for s in st):
        return "running" if any(s != "queued" for s in st) else "queued"
    if all(s == "finished" for s in st):
        return "finished"
    return "cancelled" if any(s == "cancelled" for s in st) else "failed"


def progress(e: dict[str, Any]) -> dict[str, Any]:
    """How far the whole grid is: fraction of its steps done, runs done, and an ETA in seconds that
    uses this experiment's own finished runs to correct the planner's estimate."""
    from .planner import estimate_seconds

    members = e["runs"]
    done_w = total_w = 0.0
    measured, estimated = [], []
    for r in members:
        cfg = RunConfig.from_dict(r["config"])
        steps = cfg.train.epochs * cfg.train.steps_per_epoch
        total_w += steps
        if r["status"] == "finished" and r["wall_s"]:
            measured.append(r["wall_s"])
            estimated.append(r.get("estimate_s") or estimate_seconds(cfg))  # the estimate made at launch
    scale = (sum(measured) / sum(estimated)) if measured and sum(estimated) > 0 else 1.0
    eta = 0.0
    for r in members:
        cfg = RunConfig.from_dict(r["config"])
        steps = cfg.train.epochs * cfg.train.steps_per_epoch
        if r["status"] in ("finished", "failed", "cancelled", "interrupted"):
            done_w += steps
        elif r["status"] == "running" and r.get("progress"):
            p = r["progress"]
            done_w += steps * min(1.0, p["step"] / max(p["total_steps"], 1))
            eta += p["eta_s"] + 3.0  # + the last evaluation and the map
        else:
            eta += estimate_seconds(cfg) * scale
    finished = sum(r["status"] in ("finished", "failed", "cancelled", "interrupted") for r in members)
    return {"fraction": done_w / total_w if total_w else 1.0, "runs_done": finished, "runs": len(members),
            "eta_s": eta, "status": status_of(members)}


# -- the summary people read ---------------------------------------------------------------------

NOT_ALIGNING = ("source_only", "target_only", "finetune", "feature_extract", "l2sp")  # no loss pulls the domains


def _collapse(history: list[dict[str, Any]]) -> str:
    """'' or why the predictions look collapsed: the last epoch's predicted classes on the target
    concentrate on few of them (effective number of classes below half the classes)."""
    if not history or "target_confusion" not in history[-1]:
        return ""
    cm = history[-1]["target_confusion"]
    k = len(cm)
    cols = [sum(row[j] for row in cm) for j in range(k)]
    n = sum(cols)
    if n == 0 or k < 3:
        return ""
    ent = -sum(c / n * math.log(c / n) for c in cols if c)
    eff = math.exp(ent)
    if eff >= k / 2:
        return ""
    top = sorted(range(k), key=lambda j: -cols[j])[:3]
    share = sum(cols[j] for j in top) / n
    names = history[-1].get("classes") or [str(j) for j in range(k)]
    return (f"predictions collapsed onto few classes: {100 * share:.0f}% of target images are predicted as "
            f"{', '.join(str(names[j]) for j in top)} (about {eff:.1f} of {k} classes in use)")


def _falling(history: list[dict[str, Any]]) -> str:
    """'' or how target accuracy fell during training (alignment that matched the wrong classes)."""
    if len(history) < 2:
        return ""
    peak = max(history, key=lambda h: h["target_acc"])
    last = history[-1]
    if peak["target_acc"] - last["target_acc"] < 0.05:
        return ""
    return (f"target accuracy fell from {100 * peak['target_acc']:.1f}% (epoch {peak['epoch']}) to "
            f"{100 * last['target_acc']:.1f}% at the end while the adaptation loss kept pulling the domains together")


def mean_ci(accs: list[float], n_eval: list[int | None]) -> list[float] | None:
    """A 95 % interval of a mean accuracy over seeds: one seed, Wilson on its evaluation set; several,
    the seed spread and the evaluation sets' binomial error together (normal approximation)."""
    from .stats import Z95, accuracy_ci

    if not accs:
        return None
    if len(accs) == 1:
        return accuracy_ci(accs[0], n_eval[0])
    m = statistics.mean(accs)
    n = [x for x in n_eval if x]
    var = statistics.variance(accs) / len(accs) + (m * (1 - m) / n[0] / len(accs) if n else 0.0)
    half = Z95 * math.sqrt(var)
    return [round(max(0.0, m - half), 4), round(min(1.0, m + half), 4)]


def _n_classes(history: list[dict[str, Any]]) -> int:
    return len(history[-1].get("classes") or []) if history else 0


def never_learned(r: dict[str, Any], history: list[dict[str, Any]]) -> bool:
    """A finished run whose source accuracy stayed near chance: it failed to train (a learning rate or
    an alignment too strong from the start), which is a failed run, not a lesson about transfer."""
    k = _n_classes(history)
    acc = r.get("source_acc")
    return r.get("status") == "finished" and acc is not None and k >= 2 and acc < min(0.5, 2.0 / k)


def summary(e: dict[str, Any], histories: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Per strategy: mean ± std over finished seeds, gain over source only, reference, flags; and the verdict."""
    spec: ExperimentSpec = e["spec"]
    histories = histories or {}
    ref = REFERENCES.get((spec.source, spec.target), {})
    backbone = (spec.base.get("model") or {}).get("backbone", "lenet")
    results = []
    for s in spec.strategies:
        rs = [r for r in e["runs"] if r.get("strategy") == s.label]
        done = [r for r in rs if r["status"] == "finished" and r["target_acc"] is not None]
        accs = [r["target_acc"] for r in done]
        flags = []
        for r in done:
            h = histories.get(r["id"], [])
            aligning = s.role == "" and s.method not in NOT_ALIGNING
            for why in (_collapse(h), _falling(h) if aligning else ""):
                if why:
                    flags.append(f"seed {r['seed']}: {why}")
        results.append({
            "strategy": s.label, "method": s.method, "role": s.role,
            "target_acc_mean": statistics.mean(accs) if accs else None,
            "target_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0 if accs else None,
            "target_acc_ci": mean_ci(accs, [r.get("target_n") for r in done]),
            "source_acc_mean": statistics.mean(r["source_acc"] for r in done) if done else None,
            "n_seeds": len(done), "runs_total": len(rs),
            "wall_s_mean": statistics.mean(r["wall_s"] for r in done) if done else None,
            "reference": ref.get(s.method) / 100 if backbone == "lenet" and s.method in ref and not s.params
            and not s.data else None,
            "flags": flags,
            "runs": [{"run_id": r["id"], "seed": r["seed"], "status": r["status"], "target_acc": r["target_acc"],
                      "source_acc": r.get("source_acc"), "target_acc_ci": accuracy_ci(r["target_acc"], r.get("target_n")),
                      "classes": _n_classes(histories.get(r["id"], [])),
                      "never_learned": never_learned(r, histories.get(r["id"], [])),
                      "reason": r.get("reason") or ""} for r in rs],
        })
    base = next((r for r in results if r["role"] == "baseline"), None)
    base_method = next((s.method for s in spec.strategies if s.role == "baseline"), "source_only")
    for r in results:
        r["gain_ci"] = None
        if r["role"] == "baseline":
            r["gain"] = 0.0 if r["target_acc_mean"] is not None else None
        elif base and base["target_acc_mean"] is not None and r["target_acc_mean"] is not None:
            r["gain"], r["gain_ci"] = gain_interval(r, base, e["runs"], histories)
        else:
            r["gain"] = None
        failed = [x for x in r["runs"] if x.get("never_learned")]
        for x in failed:
            r["flags"].insert(0, f"seed {x['seed']}: a failed run, not a lesson: it never learned its source "
                                 f"(source accuracy {100 * x['source_acc']:.0f}%, chance is "
                                 f"{100 / max(2, x['classes']):.0f}%)")
        below = r["role"] == "" and r["gain"] is not None and r["gain"] < 0
        sure = below and r["gain_ci"] is not None and r["gain_ci"][1] < 0
        r["negative_transfer"] = bool(sure and not failed and r["method"] != base_method)
        what = "negative transfer" if r["method"] != base_method else "worse than the baseline"
        if sure and not failed:
            r["flags"].insert(0, f"{what}: {100 * -r['gain']:.1f} points below {base['strategy']} "
                                 f"(95% interval {ci_words(r['gain_ci'])}: more than seed and test-set luck)")
        elif below and r["gain"] < -0.005 and not failed:
            r["flags"].insert(0, f"below {base['strategy']} by {100 * -r['gain']:.1f} points, but its 95% interval "
                                 f"{ci_words(r['gain_ci'])} includes no difference: cannot tell; more seeds or "
                                 f"more target images would")
    text, certain = verdict(spec, results, e["runs"], histories)
    return {"results": results, "verdict": text, "verdict_certain": certain,
            "reference_source": REFERENCE_SOURCE if ref else ""}


def ci_words(ci: list[float] | None) -> str:
    return "unknown" if ci is None else f"{100 * ci[0]:+.1f} to {100 * ci[1]:+.1f} points"


def _selected(r: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((m for m in history if m.get("epoch") == r.get("best_epoch")), history[-1] if history else None)


def gain_interval(r: dict[str, Any], base: dict[str, Any], members: list[dict[str, Any]],
                  histories: dict[str, list[dict[str, Any]]]) -> tuple[float, list[float] | None]:
    """A strategy's gain over the baseline and its 95 % interval: a paired bootstrap over the seeds both
    finished and the target images both were evaluated on (`stats.paired_gain`); from seed spread and
    each run's binomial error when per-image results were not recorded."""
    import numpy as np

    from .stats import normal_gain, paired_gain, unpack_bits

    def correct(run_id: str) -> np.ndarray | None:
        m = _selected(next(x for x in members if x["id"] == run_id), histories.get(run_id, []))
        if not m or "target_correct" not in m:
            return None
        return unpack_bits(m["target_correct"], m["target_n"])

    by_seed = {x["seed"]: x["run_id"] for x in base["runs"] if x["status"] == "finished"}
    pairs = [(correct(x["run_id"]), correct(by_seed[x["seed"]])) for x in r["runs"]
             if x["status"] == "finished" and x["seed"] in by_seed]
    gain_means = r["target_acc_mean"] - base["target_acc_mean"]
    if pairs and all(a is not None and b is not None and len(a) == len(b) for a, b in pairs):
        _, lo, hi = paired_gain([a for a, _ in pairs], [b for _, b in pairs])
        return gain_means, [round(lo, 4), round(hi, 4)]
    n_eval = [x.get("target_n") for x in members if x.get("target_n")]
    _, lo, hi = normal_gain(r["target_acc_mean"], r["target_acc_std"] or 0.0, r["n_seeds"], base["target_acc_mean"],
                            base["target_acc_std"] or 0.0, base["n_seeds"], n_eval[0] if n_eval else None,
                            n_eval[0] if n_eval else None)
    if r["n_seeds"] < 2 and base["n_seeds"] < 2 and not n_eval:
        return gain_means, None
    return gain_means, [round(lo, 4), round(hi, 4)]


def verdict(spec: ExperimentSpec, results: list[dict[str, Any]], members: list[dict[str, Any]] | None = None,
            histories: dict[str, list[dict[str, Any]]] | None = None) -> tuple[str, bool]:
    """A short paragraph from the numbers, and whether it is sure: who won, by how much, and whether the
    gain's 95 % interval (seeds and target images together) excludes no difference."""
    base = next((r for r in results if r["role"] == "baseline"), None)
    tested = [r for r in results if r["role"] == "" and r["target_acc_mean"] is not None]
    pending = sum(r["runs_total"] - r["n_seeds"] for r in results)
    if base is None or base["target_acc_mean"] is None or not tested:
        return (("No verdict yet: the source-only baseline and at least one strategy must finish first."
                 if pending else "No verdict: the baseline or every strategy failed; see each run's reason."), False)

    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    best = max(tested, key=lambda r: r["target_acc_mean"])
    n = min(r["n_seeds"] for r in [best, base])
    gain, ci = best["gain"], best.get("gain_ci")
    certain = ci is not None and (ci[0] > 0 or ci[1] < 0)
    parts = []
    if gain > 0:
        parts.append(f"**{best['strategy']}** {'won' if certain else 'came out ahead'}: "
                     f"{pct(best['target_acc_mean'])} target accuracy against {pct(base['target_acc_mean'])} for "
                     f"{base['strategy']}, a gain of {100 * gain:+.1f} points.")
    else:
        parts.append(f"No strategy beat {base['strategy']} ({pct(base['target_acc_mean'])}); the best, "
                     f"**{best['strategy']}**, reached {pct(best['target_acc_mean'])} ({100 * gain:+.1f} points).")
    over = f"{n} seed{'s' if n != 1 else ''} and the target's evaluation images"
    if ci is None:
        parts.append("Cannot tell whether the difference is real: neither the seed spread nor the evaluation "
                     "set's error is known. Add seeds.")
    elif certain:
        parts.append(f"Its 95% interval over {over} is {ci_words(ci)}: it excludes no difference, so it is more "
                     f"than the luck of the seed and of the test images.")
    else:
        parts.append(f"Cannot tell: its 95% interval over {over} is {ci_words(ci)}, which includes no difference. "
                     + ("Run more seeds" if n < 3 else "More seeds or more target images would tell")
                     + " before drawing a conclusion.")
    others = sorted((r for r in tested if r is not best), key=lambda r: -r["target_acc_mean"])
    if others:
        second = others[0]
        diff = best["target_acc_mean"] - second["target_acc_mean"]
        tie = True
        if members is not None:
            _, ci2 = gain_interval(best, second, members, histories or {})
            tie = ci2 is None or ci2[0] <= 0
        parts.append(f"Runner-up: {second['strategy']} at {pct(second['target_acc_mean'])}, "
                     f"{100 * diff:.1f} points behind" + (" — within the noise, a tie." if tie else "."))
    hurt = [r["strategy"] for r in tested if r["negative_transfer"]]
    if hurt:
        parts.append(f"Negative transfer: {', '.join(hurt)} did worse than {base['strategy']}.")
    failed = [r["strategy"] for r in results if any("failed run" in f for f in r["flags"])]
    if failed:
        parts.append(f"Failed runs: {', '.join(failed)} had a seed that never learned its source; read it as a "
                     f"run that failed to train, not as a lesson about transfer.")
    collapsed = [r["strategy"] for r in results if any("collapsed" in f for f in r["flags"])]
    if collapsed:
        parts.append(f"Collapse: {', '.join(collapsed)} predicted only a few classes on the target.")
    upper = next((r for r in results if r["role"] == "upper" and r["target_acc_mean"] is not None), None)
    if upper and upper["target_acc_mean"] > base["target_acc_mean"]:
        closed = gain / (upper["target_acc_mean"] - base["target_acc_mean"])
        parts.append(f"Training on labelled target images gives {pct(upper['target_acc_mean'])}: "
                     f"{best['strategy']} closed {100 * max(closed, 0):.0f}% of the gap without target labels"
                     if best["method"] not in ("finetune", "target_only") else
                     f"Training on all labelled target images gives {pct(upper['target_acc_mean'])}.")
    if best.get("reference") is not None:
        parts.append(f"Published ({REFERENCE_SOURCE}, with much longer training): {best['strategy']} "
                     f"{pct(best['reference'])}.")
    if pending:
        parts.append(f"({pending} run(s) still to finish: this verdict will update.)")
        certain = False
    return " ".join(parts), certain


def cli_result(e: dict[str, Any], wall_s: float | None = None) -> dict[str, Any]:
    """What `experiment --json` prints: the fields the acceptance reads, and the per-run detail."""
    from . import runs

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


def wait(exp_id: str, on_tick=None, poll_s: float = 0.5) -> dict[str, Any]:
    """Keep the queue moving (a terminal may be the only actor) until every member run has ended."""
    from . import runs

    while True:
        runs.schedule()
        e = get(exp_id)
        if on_tick:
            on_tick(e)
        if status_of(e["runs"]) not in ("queued", "running"):
            return e
        time.sleep(poll_s)
