"""What an experiment trains: a grid of strategies (a method with its settings) x seeds on one source ->
target pair, always with the source-only baseline (and, when asked, the target-only upper bound).
Built from a preset, the CLI's --methods or a shared link's JSON (every field checked)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from tl_core.config import MAX_SEED, RunConfig
from tl_core.base.errors import ConfigError, TLError
from tl_core.methods import get_method
from tl_core.planning.resolve import resolve
from tl_core.planning.validation import validate

MAX_STRATEGIES = 8
MAX_SEEDS = 5

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
                    r.config = validate(r.config)
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


def from_methods(source: str, target: str, methods: list[str], seeds: tuple[int, ...] = (0,),
           base: dict[str, Any] | None = None, target_only: bool = False, budget_s: float = 0.0) -> ExperimentSpec:
    """A grid of plain methods (default hyperparameters) on one pair: the CLI's --methods."""
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
