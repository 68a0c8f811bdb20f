"""One resolution path for every door (the CLI, the Train page, experiments, presets): a draft config
and the fields the user set become the config a run trains with, each field saying where its value
came from: "user", "recipe" (a method's published recipe), "planner" (the time-budget plan) or
"default". The same (source, target, method, seed, budget) gives the same config through any door."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tl_core.models.backbones import backbone_info
from tl_core.config import flat, plain_value, set_fields, RunConfig
from tl_core.methods import get_method
from tl_core.planning.planner import estimate_seconds, plan_to_budget

@dataclass
class Resolved:
    config: RunConfig
    sources: dict[str, str] = field(default_factory=dict)  # "section.field" -> user | recipe | planner | default
    notes: list[str] = field(default_factory=list)


def resolve(cfg: RunConfig, given: set[str] | None = None, budget_s: float = 0.0) -> Resolved:
    """`cfg` with what the user left out completed: the method's recipe (always), then a plan that
    fits `budget_s` seconds on this machine (when > 0). `given`: the fields the user set (default:
    those that differ from the defaults)."""
    given = set_fields(cfg.to_dict()) if given is None else set(given)
    method = get_method(cfg.method.name)
    notes: list[str] = []
    recipe: dict[str, Any] = {}
    info = backbone_info(cfg.model.backbone)
    scratch = not (info.has_pretrained and cfg.model.pretrained is not False)
    published = {**method.recipe, **(method.scratch_schedule if scratch else {})}
    for key, value in published.items():
        if key not in given:
            recipe[key] = value
    bottleneck = recipe.get("model.bottleneck", cfg.model.bottleneck)
    if method.needs_batchnorm and not info.batchnorm and not bottleneck and "model.bottleneck" not in given:
        recipe["model.bottleneck"] = 256
        notes.append(f"a 256-feature bottleneck with BatchNorm after {info.label} ({method.label} works on "
                     f"BatchNorm layers, and {info.label} has none)")
    if recipe:
        model = {k.split(".", 1)[1]: v for k, v in recipe.items() if k.startswith("model.")}
        train = {k.split(".", 1)[1]: v for k, v in recipe.items() if k.startswith("train.")}
        cfg = cfg.replace(model=model, train=train)
        shown = [f"{k.split('.', 1)[1]} {v}" for k, v in published.items() if k in recipe]
        if shown:
            notes.insert(0, f"{method.label}'s recipe: {', '.join(shown)}")
    before, params_before = flat(cfg), dict(cfg.method.params)
    if budget_s and budget_s > 0:
        cfg, plan_notes = plan_to_budget(cfg, given | set(recipe), budget_s=budget_s)
        notes += plan_notes
        fixed = [k for k in recipe if k.startswith("train.")]
        if fixed and (est := estimate_seconds(cfg)) > budget_s:  # the published schedule is not cut to fit
            notes.append(f"{method.label}'s schedule takes about {est / 60:.1f} min, over the budget of "
                         f"{budget_s / 60:.1f} min (give fewer epochs or steps to shorten it)")
    after, defaults = flat(cfg), flat(RunConfig())
    sources = {}
    for key, value in after.items():
        if key in given:
            sources[key] = "user"
        elif key in recipe:
            sources[key] = "recipe"
        elif plain_value(value) != plain_value(before[key]):
            sources[key] = "planner"
        else:
            sources[key] = "default" if plain_value(value) == plain_value(defaults[key]) else "user"
    if cfg.method.params:
        sources["method.params"] = "planner" if cfg.method.params != params_before else "user"
    return Resolved(cfg, sources, notes)
