"""The configuration of a run: frozen dataclasses, validated with messages for people.

A `RunConfig` is everything needed to reproduce a run. It round-trips through JSON
(`to_json` / `from_json`) and has a stable short id derived from its content.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Union

from tl_core.base.errors import ConfigError

LabelRegime = Union[str, int]  # "none", "all", or k labelled target images per class

OPTIMIZERS = ("adam", "sgd")
DEVICES = ("auto", "cpu", "cuda", "mps")
EMBEDDINGS = ("tsne", "pca", "none")
# How the checkpoint a run reports is chosen; none of them reads a target label.
SELECTIONS = {
    "last": "the last epoch",
    "source_val_acc": "highest accuracy on held-out source images",
    "im": "highest information-maximisation score on the target (confident, diverse predictions)",
    "snd": "highest soft neighbourhood density on the target (dense target clusters)",
    "neg_entropy": "lowest mean prediction entropy on the target",
}


HEADS = ("linear", "weight_norm")  # the classifier layer's kinds (model.Classifier)


def flag(default: Any, help: str, *, kind: type | None = None, choices: tuple[str, ...] | None = None,
         name: str | None = None) -> Any:
    """A config field with what the command line needs to offer it: the flag is `--field-name` (or
    `name`), its type that of the default (or `kind`), and `help` its text. One source of truth for
    the CLI's train flags (cli.common.add_train_args) and the command shown for a run (app.strategy.cli_command)."""
    return field(default=default, metadata={"help": help, "kind": kind or type(default), "choices": choices,
                                            "flag": name, "default": default})


def cli_fields() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(section, field, flag, metadata) of every config field the command line offers, in order."""
    out = []
    for section, spec in (("data", DataSpec), ("model", ModelSpec), ("train", TrainSpec)):
        for f in dataclasses.fields(spec):
            if "help" in f.metadata:
                out.append((section, f.name, f.metadata["flag"] or "--" + f.name.replace("_", "-"), f.metadata))
    return out


@dataclass(frozen=True)
class DataSpec:
    """Which domains to transfer between. Names come from `list_domains()`;
    a shifted variant is written `base+shift:severity`, e.g. `mnist+rotate:3`."""

    source: str = flag("mnist", "the source domain (labelled): a name from `list`, base+shift:severity, or "
                       "folder:PATH")
    target: str = flag("usps", "the target domain (its labels are only used to score)")
    target_labels: LabelRegime = flag("none", "labelled target images: none, K per class, or all", kind=str)
    max_per_domain: int | None = flag(None, "use at most N training images per domain (quick tries, tests)",
                                      kind=int)

    def labels_per_class(self) -> int | None:
        """None = unsupervised target, -1 = all target labels, k = k per class."""
        if self.target_labels == "none":
            return None
        if self.target_labels == "all":
            return -1
        return int(self.target_labels)


@dataclass(frozen=True)
class ModelSpec:
    """The backbone, how many of its stages stay frozen, and its weights."""

    backbone: str = flag("lenet", "the feature extractor (`list` shows each one's stages)")
    freeze: int = flag(0, "number of leading backbone stages frozen, BatchNorm statistics included (0: train all)")
    pretrained: bool | None = flag(None, "start from the backbone's ImageNet weights (default: when it has them)",
                                   kind=bool)
    input_size: int | None = flag(None, "input size in pixels (default: the backbone's own)", kind=int)
    bottleneck: int = flag(0, "features of a trainable Linear-BN-ReLU layer after the backbone (0: none; planned: "
                              "256 for a pretrained backbone)")
    head: str = flag("linear", "the classifier: linear, or weight_norm (a linear layer whose weight is a learned "
                               "length times a direction; SHOT's source model)", choices=HEADS)


@dataclass(frozen=True)
class MethodSpec:
    """The adaptation method and its hyperparameters (unset ones take the declared defaults)."""

    name: str = "dann"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainSpec:
    """How to optimise. The defaults are tuned so that LeNet MNIST->USPS with DANN
    reaches >= 90% target accuracy in under three minutes on a 2-core CPU."""

    epochs: int = flag(10, "training epochs (the run evaluates, charts and checkpoints after each)")
    steps_per_epoch: int = flag(400, "optimisation steps per epoch", name="--steps")
    batch_size: int = flag(64, "images per domain in a step")
    lr: float = flag(1e-3, "learning rate (cosine decay to lr/20 for adam; the DANN schedule for sgd)")
    optimizer: str = flag("adam", "the optimizer", choices=OPTIMIZERS)
    weight_decay: float = flag(5e-4, "L2 weight decay of the optimizer (methods with their own penalty take none)")
    augment: bool = flag(True, "light random affine jitter of training images (planned off for a frozen "
                               "pretrained backbone, whose features are then computed once)")
    seed: int = flag(0, "random seed (data order, initialisation, augmentation)")
    device: str = flag("auto", "where to train", choices=DEVICES)
    amp: bool = flag(True, "mixed precision (used on CUDA only)")
    embedding: str = flag("tsne", "per-epoch 2-D map of the features", choices=EMBEDDINGS)
    embed_points: int = flag(500, "points per domain in the map, class-stratified (up to 1,000)")
    selection: str = flag("last", "which epoch the run reports, chosen without target labels",
                          choices=tuple(SELECTIONS))
    seeds: tuple[int, ...] = flag((), "several seeds, e.g. 0,1,2: one run each, reported as mean ± std",
                                  kind=tuple)


@dataclass(frozen=True)
class RunConfig:
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    method: MethodSpec = field(default_factory=MethodSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    name: str = ""

    # -- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        def build(kind, sub: dict[str, Any] | None):
            if sub is not None and not isinstance(sub, dict):
                raise ConfigError(f"The config's {kind.__name__} section must be an object of fields (got "
                                  f"{type(sub).__name__}).")
            sub = dict(sub or {})
            names = {f.name for f in dataclasses.fields(kind)}
            unknown = sorted(set(sub) - names)
            if unknown:
                raise ConfigError(
                    f"Unknown {kind.__name__} field(s): {', '.join(unknown)}. "
                    f"Known: {', '.join(sorted(names))}."
                )
            if kind is TrainSpec and "seeds" in sub:
                if not isinstance(sub["seeds"], (list, tuple)):
                    raise ConfigError(f"seeds must be a list of whole numbers, e.g. [0, 1, 2] (got {sub['seeds']!r}).")
                sub["seeds"] = tuple(sub["seeds"])
            for f in dataclasses.fields(kind):
                if f.name in sub and "kind" in f.metadata:
                    check_type(f"{f.name}", sub[f.name], f.metadata)
            if kind is MethodSpec:
                check_method_spec(sub)
            return kind(**sub)

        if not isinstance(d, dict):
            raise ConfigError("The config must be a JSON object with data/model/method/train.")
        d = dict(d)
        unknown = sorted(set(d) - {"data", "model", "method", "train", "name"})
        if unknown:
            raise ConfigError(f"Unknown config section(s): {', '.join(unknown)}.")
        return cls(
            data=build(DataSpec, d.get("data")),
            model=build(ModelSpec, d.get("model")),
            method=build(MethodSpec, d.get("method")),
            train=build(TrainSpec, d.get("train")),
            name=str(d.get("name", "")),
        )

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        d = loads_bounded(text, "The config")
        if not isinstance(d, dict):
            raise ConfigError("The config must be a JSON object with data/model/method/train.")
        return cls.from_dict(d)

    def config_id(self) -> str:
        """Stable 8-hex id of the content (the name is not part of it)."""
        d = self.to_dict()
        d.pop("name", None)
        if not d["model"].get("bottleneck"):  # fields added later keep the ids of configs without them
            d["model"].pop("bottleneck", None)
        if d["model"].get("head", "linear") == "linear":
            d["model"].pop("head", None)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:8]

    def replace(self, **sections: Any) -> "RunConfig":
        """Copy with some fields changed: `cfg.replace(train={"epochs": 2})`."""
        out = {}
        for key, val in sections.items():
            cur = getattr(self, key)
            out[key] = dataclasses.replace(cur, **val) if isinstance(val, dict) and key != "name" else val
        return dataclasses.replace(self, **out)

    # -- checks that need no catalogue ----------------------------------------------
    def check_fields(self) -> "RunConfig":
        """Check every field that can be judged on its own (ranges, choices from fixed lists); return
        the config with the target-label regime read as a number or a word. The checks against the
        catalogues (domain, backbone, method names) are `validation.validate`.

        Raises `ConfigError` with a message that names the bad choice and the fix.
        """
        t, m, d = self.train, self.model, self.data
        _check(t.epochs >= 1, f"epochs must be at least 1 (got {t.epochs}).")
        _check(t.steps_per_epoch >= 1, f"steps per epoch must be at least 1 (got {t.steps_per_epoch}).")
        _check(t.batch_size >= 2, f"batch size must be at least 2 (got {t.batch_size}).")
        _check(t.epochs <= 10_000, f"epochs must be at most 10,000 (got {t.epochs}).")
        _check(t.steps_per_epoch <= 1_000_000, f"steps per epoch must be at most 1,000,000 (got {t.steps_per_epoch}).")
        _check(t.batch_size <= 4096, f"batch size must be at most 4,096 (got {t.batch_size}).")
        _check(0 < t.lr <= 10, f"learning rate must be in (0, 10] (got {t.lr}).")
        _check(t.weight_decay >= 0, f"weight decay cannot be negative (got {t.weight_decay}).")
        _check(t.optimizer in OPTIMIZERS, f"Unknown optimizer {t.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        _check(t.device in DEVICES, f"Unknown device {t.device!r}; choose one of {', '.join(DEVICES)}.")
        _check(t.embedding in EMBEDDINGS, f"Unknown embedding {t.embedding!r}; choose one of {', '.join(EMBEDDINGS)}.")
        _check(t.selection in SELECTIONS,
               f"Unknown selection {t.selection!r}; choose one of {', '.join(SELECTIONS)}.")
        _check(all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_SEED for x in t.seeds)
               and len(set(t.seeds)) == len(t.seeds) and len(t.seeds) <= 20,
               f"seeds must be up to 20 different whole numbers from 0 to {MAX_SEED:,} (got {str(list(t.seeds))[:80]}).")
        _check(isinstance(t.seed, int) and not isinstance(t.seed, bool) and 0 <= t.seed <= MAX_SEED,
               f"the seed must be a whole number from 0 to {MAX_SEED:,} (got {str(t.seed)[:40]}).")
        _check(10 <= t.embed_points <= 5000, f"embed_points must be between 10 and 5,000 per domain (got "
                                             f"{t.embed_points}).")
        if d.max_per_domain is not None:
            _check(d.max_per_domain >= 20, f"max_per_domain must be at least 20 images (got {d.max_per_domain}).")

        regime = d.target_labels
        if isinstance(regime, str) and regime.isdigit():
            regime = int(regime)
        if not (regime in ("none", "all") or (isinstance(regime, int) and not isinstance(regime, bool) and regime >= 1)):
            raise ConfigError(
                f"target labels must be 'none', 'all' or a number of labelled images per class >= 1 (got {regime!r})."
            )
        _check(m.head in HEADS, f"head must be one of {', '.join(HEADS)} (got {m.head!r}).")
        _check(isinstance(m.bottleneck, int) and not isinstance(m.bottleneck, bool)
               and (m.bottleneck == 0 or 16 <= m.bottleneck <= 4096),
               f"bottleneck must be 0 (none) or between 16 and 4096 features (got {m.bottleneck!r}).")
        return dataclasses.replace(self, data=dataclasses.replace(d, target_labels=regime),
                                   train=dataclasses.replace(t, seeds=tuple(t.seeds)))

    def per_seed(self) -> list["RunConfig"]:
        """One config per seed of a multi-seed config (itself when it names no seeds)."""
        if not self.train.seeds:
            return [self]
        return [self.replace(train={"seed": s, "seeds": ()}) for s in self.train.seeds]


MAX_SEED = 2**31 - 1  # what torch, numpy and Python's random all take


def parse_seeds(text: object, what: str = "seeds") -> tuple[int, ...]:
    """Seeds written as whole numbers separated by commas ("0,1,2"); the one reading of seeds for the
    CLI, a shared link and a page. ConfigError in words for anything else, or a seed outside 0..MAX_SEED."""
    raw = str(text or "")[:200]
    try:
        seeds = tuple(int(x) for x in raw.replace(" ", "").split(",") if x)
    except ValueError:
        raise ConfigError(f"{what} are whole numbers separated by commas, e.g. 0,1,2 (got {raw[:40]!r}).") from None
    if any(not 0 <= s <= MAX_SEED for s in seeds):
        raise ConfigError(f"{what} must be whole numbers from 0 to {MAX_SEED:,}.")
    return seeds


MAX_TEXT = 4096  # longest text a config field holds (a folder path)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def finite_number(v: Any) -> bool:
    """A real number (not a bool) that is finite."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def check_type(name: str, value: Any, meta: dict[str, Any]) -> None:
    """A field's value has the type of its default (a whole number is no float, a number is finite, a
    text is short): what a link, a file or a form may carry is refused in words before it is used."""
    kind, default = meta.get("kind"), meta.get("default")
    if value is None and default is None:
        return
    shown = str(value)[:40]
    if name == "target_labels":
        ok = (isinstance(value, str) and len(value) <= 16) or _is_int(value)
    elif kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = _is_int(value) and abs(int(value)) <= 10**12
    elif kind is float:
        ok = finite_number(value)
    elif kind is tuple:
        ok = isinstance(value, (list, tuple)) and len(value) <= 100 and all(_is_int(x) for x in value)
    else:
        ok = isinstance(value, str) and len(value) <= MAX_TEXT
    if not ok:
        what = {bool: "true or false", int: "a whole number", float: "a finite number",
                tuple: "a list of whole numbers"}.get(kind, "a short text")
        raise ConfigError(f"{name} must be {what} (got {shown!r}).")


def check_method_spec(sub: dict[str, Any]) -> None:
    """A method's name is a short text and its params a flat object of plain values (each is checked
    against the method's own declaration by `validation.validate`)."""
    name, params = sub.get("name", ""), sub.get("params", {})
    if not isinstance(name, str) or len(name) > 64:
        raise ConfigError(f"the method's name must be a short text (got {str(name)[:40]!r}).")
    if not isinstance(params, dict) or len(params) > 64 or not all(
            isinstance(k, str) and len(k) <= 64 and (v is None or isinstance(v, (bool, str, numbers.Real)))
            and not (isinstance(v, str) and len(v) > MAX_TEXT) for k, v in params.items()):
        raise ConfigError("the method's params must be an object of named numbers, words or true/false values.")


def loads_bounded(text: str, what: str, max_depth: int = 12, max_chars: int = 10_000_000) -> Any:
    """JSON from a link, a form or a file, refused in words when it is too long, malformed or nested
    deeper than `max_depth` (a config is 3 levels deep; a benchmark list 5)."""
    if not isinstance(text, str) or len(text) > max_chars:
        raise ConfigError(f"{what} is too long to be a config (at most {max_chars:,} characters).")
    depth = 0
    in_str = esc = False
    for ch in text:  # count the nesting before the parser recurses into it
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise ConfigError(f"{what} is nested deeper than a config can be ({max_depth} levels).")
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ConfigError(f"{what} is not valid JSON ({type(e).__name__}).") from None


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


SECTIONS = ("data", "model", "train")


def flat(cfg: RunConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    return {f"{s}.{k}": v for s in SECTIONS for k, v in d[s].items()}


def set_fields(cfg_dict: dict[str, Any]) -> set[str]:
    """The fields a draft sets to something other than the default: what a user chose (a config file or
    the app's draft holds every field; one left at its default counts as not chosen)."""
    defaults = flat(RunConfig())
    out = set()
    for s in SECTIONS:
        for k, v in (cfg_dict.get(s) or {}).items():
            key = f"{s}.{k}"
            if key in defaults and plain_value(v) != plain_value(defaults[key]):
                out.add(key)
    return out


def plain_value(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v
