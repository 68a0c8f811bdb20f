"""Step 3, strategy: method cards, validation of a draft, its plan and time, the equivalent command."""
from __future__ import annotations

import shlex
from typing import Any


from tl_core.policy import access
from tl_core.policy.access import Session
from tl_core.models.backbones import backbone_info
from tl_core.config import cli_fields, loads_bounded, set_fields, RunConfig, SELECTIONS
from tl_core.base.errors import TLError
from tl_core.methods import get_method, list_methods
from tl_core.planning.planner import estimate_seconds as f
from tl_core.planning.resolve import resolve
from tl_core.planning.validation import validate as validate_config
from tl_core.app.text import domain_label, escape_markdown

# what the pages may call (tl_core.app.api exports exactly these)
__all__ = ["FAMILY_ORDER", "method_cards", "validate", "allowed", "estimate_seconds", "plan_for_budget",
           "fit_default_plan", "describe_plan", "cli_command", "selection_choices", "run_limit_s", "draft_to_query",
           "draft_from_query"]


FAMILY_ORDER = ("baseline", "parameter transfer", "feature transfer", "statistics", "adversarial",
                "self-training", "source-free", "instance transfer", "distillation")


def method_cards() -> list[dict[str, Any]]:
    """Every registered method, baseline first, then grouped by family (the guide's reading order)."""
    cards = [get_method(n).describe() for n in list_methods()]
    rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    return sorted(cards, key=lambda c: (rank.get(c["family"], len(rank)), c["name"]))


def validate(cfg: dict[str, Any], session: Session | None = None) -> tuple[RunConfig | None, str]:
    """(validated config, "") or (None, the reason in words). With a session, its domains pass the
    access gate first, so a name it may not use is refused before anything reads the disk for it."""
    try:
        if session is not None:
            access.gate_config(session, cfg)
        # resolved as every door resolves a run: what the page shows is what trains
        c = validate_config(resolve(RunConfig.from_dict(cfg)).config)
    except TLError as e:
        return None, str(e)
    info = backbone_info(c.model.backbone)
    if info.has_pretrained and c.model.pretrained is not False:
        ok, msg = info.weights_status()
        if not ok:
            return None, msg + " Switch off pretrained weights on the Model page to train from random weights."
    return c, ""


def allowed(session: Session, cfg: RunConfig) -> str:
    """"" when this session may launch the (validated) config; else why not, in words (a quota, a
    dataset or run that is not its own)."""
    try:
        access.check_config(session, cfg)
    except TLError as e:
        return str(e)
    return ""


def run_limit_s(session: Session) -> float | None:
    """The longest a run of this session may train (TL_QUOTA_RUN_WALL_S; None: no limit)."""
    return access.wall_limit(session)


def draft_to_query(cfg: dict[str, Any]) -> str:
    """The fields a draft sets (those not at their default) as compact URL text: a reload, or the
    address copied to another tab, reopens the same draft."""
    import base64
    import json

    d = {k: v for k, v in _flat_dict(cfg).items() if k in set_fields(cfg)}
    d["method"] = cfg.get("method", {})
    return base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).decode()


def draft_from_query(text: str, base: dict[str, Any]) -> dict[str, Any]:
    """A draft from its URL text over `base`; `base` itself when the text is not one (mistyped,
    hostile, nested, too long, or a field of the wrong type or out of range: a link is never trusted
    further than a draft is)."""
    import base64
    import binascii
    import copy

    try:
        if not isinstance(text, str) or len(text) > 4000:
            raise ValueError
        d = loads_bounded(base64.urlsafe_b64decode(text.encode()).decode(), "The draft", max_depth=4)
        if not isinstance(d, dict) or len(d) > 64:
            raise ValueError
        out = copy.deepcopy(base)
        for key, value in d.items():
            if key == "method" and isinstance(value, dict):
                out["method"] = {"name": value.get("name", ""), "params": value.get("params") or {}}
                continue
            section, _, name = str(key).partition(".")
            if section in ("data", "model", "train") and name in out[section]:
                out[section][name] = value
        RunConfig.from_dict(out).check_fields()  # types and ranges; the catalogues are checked where used
        get_method(out["method"]["name"]).resolve_params(out["method"]["params"])
        return out
    except (ValueError, TypeError, TLError, AttributeError, binascii.Error, UnicodeDecodeError, RecursionError):
        return base


def _flat_dict(cfg: dict[str, Any]) -> dict[str, Any]:
    return {f"{s}.{k}": v for s in ("data", "model", "train") for k, v in (cfg.get(s) or {}).items()}


def estimate_seconds(cfg: RunConfig) -> float:
    return f(cfg)


def fit_default_plan(cfg: dict[str, Any], valid: RunConfig, budget_s: float) -> tuple[dict[str, Any], list[str]] | None:
    """The default is a plan the server will run: a draft whose schedule nobody chose, estimated over 1.25x the
    time budget, fitted to it before it is offered, never offered and then refused; None when it fits as it is."""
    if estimate_seconds(valid) <= 1.25 * budget_s:
        return None
    planned, notes = plan_for_budget(cfg, budget_s)
    return (planned, [f"fitted to the {budget_s / 60:g}-min budget by itself", *notes]) if planned != cfg else None


def plan_for_budget(cfg: dict[str, Any], budget_s: float) -> tuple[dict[str, Any], list[str]]:
    """The draft config with its schedule (and, for a pretrained backbone, its frozen stages, input size
    and batch) planned to fit `budget_s` on this machine; the domains, backbone and method stay."""
    c = RunConfig.from_dict(cfg)
    keep = {"data.source", "data.target", "data.target_labels", "data.max_per_domain", "model.backbone",
            "model.pretrained", "train.seed", "train.seeds", "train.embedding", "train.selection", "train.device"}
    base = c.replace(train={"steps_per_epoch": RunConfig().train.steps_per_epoch, "epochs": RunConfig().train.epochs})
    res = resolve(base, keep, budget_s=max(10.0, float(budget_s)))
    return res.config.to_dict(), res.notes or ["the default plan already fits"]


def describe_plan(cfg: RunConfig) -> str:
    """A short plain-words summary of what the run will do."""
    m = get_method(cfg.method.name)
    d, t, mo = cfg.data, cfg.train, cfg.model
    regime = {"none": "no target labels", "all": "all target labels"}.get(str(d.target_labels),
                                                                          f"{d.target_labels} labelled target images per class")
    freeze = "all stages train" if mo.freeze == 0 else f"the first {mo.freeze} stage(s) stay frozen"
    if mo.bottleneck:
        freeze += f", then a trainable {mo.bottleneck}-feature bottleneck"
    weights = "pretrained weights" if mo.pretrained is not False and mo.backbone != "lenet" else "random weights"
    return (f"Train **{mo.backbone}** ({weights}; {freeze}) on **{escape_markdown(domain_label(d.source))}** with its labels, and "
            f"adapt it to **{escape_markdown(domain_label(d.target))}** ({regime}) with **{m.label}**: {t.epochs} epochs × {t.steps_per_epoch} steps of "
            f"{t.batch_size} images per domain, {t.optimizer} at learning rate {t.lr:g}, seed {t.seed}. "
            f"After each epoch: source and target test accuracy, the domain gap and a {t.embedding.upper()} map "
            f"of the features. The run reports {_selection_words(t.selection)} (chosen without "
            f"target labels)"
            + (f"; it is repeated for seeds {', '.join(map(str, t.seeds))} and reported as mean ± std."
               if t.seeds else "."))


def _selection_words(selection: str) -> str:
    return "its last epoch" if selection == "last" else f"the epoch with the {SELECTIONS[selection]}"


def cli_command(cfg: dict[str, Any] | RunConfig) -> str:
    """The equivalent command line for a config."""
    c = cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
    args = ["python", "-m", "tl_core", "train", "--method", c.method.name]
    always = {"source", "target", "backbone"}
    method = get_method(c.method.name)
    always |= {k.split(".", 1)[1] for k in method.recipe}  # a recipe would fill these in if left out
    if method.needs_batchnorm:
        always.add("bottleneck")
    for section, name, flag, meta in cli_fields():
        value, default = getattr(getattr(c, section), name), meta["default"]
        if value is None or (value == default and name not in always):
            continue
        if meta["kind"] is bool:
            args.append(flag if value else "--no-" + flag[2:])
        elif meta["kind"] is tuple:
            args += [flag, ",".join(map(str, value))]
        else:
            args += [flag, str(value)]  # str of a float round-trips exactly
    args += ["--budget", "0"]  # exactly this config: nothing left to plan
    me = c.method
    for k, v in sorted(me.params.items()):
        args += ["--param", f"{k}={v}"]
    return " ".join(shlex.quote(a) for a in args)


def selection_choices() -> dict[str, str]:
    return dict(SELECTIONS)
