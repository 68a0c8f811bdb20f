"""The two method contracts, with their metadata and typed hyperparameters.

A `Method` is a loss: it holds no optimizer and no loop. The trainer computes features and
logits for a source batch, a target batch and (when the label regime gives some) a labelled
target batch, hands them over as a `Step`, and sums the named loss terms the method returns.

A `HookedMethod` is a method that is more than a loss: a closed-form head on cached features, a
statistics swap, a teacher, two phases, test-time adaptation. Its hooks receive a
`RunContext` (the model, the data, the device, a feature function and the run's budget),
never the trainer; runs it refers to (a teacher, a source model) are loaded before training
and handed over in `refs`. No method imports the trainer or the run store.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from tl_core.base.errors import ConfigError
from tl_core.base.registry import Registry

if TYPE_CHECKING:
    from tl_core.config import RunConfig
    from tl_core.data.loaders import RunData
    from tl_core.base.inputs import InputSpec


@dataclass(frozen=True)
class Param:
    """A hyperparameter: its default decides its type (float, int, bool or str)."""

    default: Any
    low: float | None = None
    high: float | None = None
    help: str = ""
    choices: tuple[str, ...] | None = None
    log: bool = False  # a log-scale widget suits it
    run_ref: bool = False  # the value is the id of a finished run (the app offers a list of them)

    @property
    def kind(self) -> str:
        return type(self.default).__name__

    def coerce(self, name: str, value: Any) -> Any:
        """Convert (e.g. from CLI text) and range-check a value; raise ConfigError in words."""
        kind = type(self.default)
        try:
            if kind is bool:
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError
                    value = value.lower() in ("true", "1", "yes")
                value = bool(value)
            elif kind is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                value = int(value)
            elif kind is float:
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError
            else:
                value = str(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{name} must be a {kind.__name__} (got {value!r}).") from None
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{name} must be one of {', '.join(self.choices)} (got {value!r}).")
        if kind in (int, float):
            if self.low is not None and value < self.low or self.high is not None and value > self.high:
                raise ConfigError(f"{name} must be between {self.low} and {self.high} (got {value}).")
        return value

    def to_dict(self) -> dict[str, Any]:
        return {"default": self.default, "low": self.low, "high": self.high, "help": self.help,
                "choices": list(self.choices) if self.choices else None, "log": self.log, "type": self.kind,
                "run_ref": self.run_ref}


@dataclass
class Step:
    """What a method sees at one training step (all tensors on the training device)."""

    f_s: torch.Tensor | None  # source features (B, D); None when a hooked method reads no source at this step
    logits_s: torch.Tensor | None
    y_s: torch.Tensor | None
    f_t: torch.Tensor | None = None  # unlabelled target features
    logits_t: torch.Tensor | None = None
    f_tl: torch.Tensor | None = None  # labelled target features (label regime k or all)
    logits_tl: torch.Tensor | None = None
    y_tl: torch.Tensor | None = None
    x_t: torch.Tensor | None = None  # the unlabelled target batch as the model saw it (normalised)
    raw_t: torch.Tensor | None = None  # the unlabelled target batch as stored (uint8, before augmentation)
    idx_t: torch.Tensor | None = None  # the unlabelled target batch's rows in the target's train images
    progress: float = 0.0  # fraction of training done, in [0, 1]
    epoch: int = 0
    log: dict[str, float] = field(default_factory=dict)  # diagnostics a method wants charted


class Method:
    """Base class. Subclasses set the metadata and implement `losses` (and `build` if they
    own modules, such as a domain discriminator)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # what it does, in plain words
    formula: ClassVar[str] = ""
    helps: ClassVar[str] = ""  # when it helps
    hurts: ClassVar[str] = ""  # when it can hurt
    paper: ClassVar[str] = ""
    family: ClassVar[str] = ""
    needs_target_labels: ClassVar[bool] = False
    uses_target_data: ClassVar[bool] = True  # False: the trainer skips the unlabelled target batch
    # True: the loss carries the method's whole regulariser, so the optimizer adds no weight decay
    # (otherwise the objective optimised would not be the one shown)
    owns_weight_decay: ClassVar[bool] = False
    # True: the method reads the images themselves (a teacher's or a second view's input, BatchNorm
    # re-estimation through the whole network), so the trainer cannot feed it cached frozen features
    needs_pixels: ClassVar[bool] = False

    @classmethod
    def domains_per_step(cls) -> int:
        """Batches a step puts through the network: source and target, or one (source only, or a
        source-free method, whose epochs read the source or the target but never both)."""
        return 2 if cls.uses_target_data and not issubclass(cls, SourceFree) else 1
    # False: unlabelled target batches are not jittered even when the run augments (a method whose
    # pseudo-labels belong to the stored images, as SHOT's authors train it)
    jitters_target: ClassVar[bool] = True
    # True: it works on BatchNorm layers; the planner gives a backbone without them a bottleneck (which has one)
    needs_batchnorm: ClassVar[bool] = False
    # True: a phase of it trains the BatchNorm layers of frozen stages (the planner prices their backward pass)
    adapts_frozen_batchnorm: ClassVar[bool] = False
    # model settings the method's published recipe uses ("model.<field>": value); every door applies them
    # where the user left the field out
    recipe: ClassVar[dict[str, Any]] = {}
    # the published schedule for a network trained from scratch ("train.<field>": value), applied like the
    # recipe there; a pretrained backbone's schedule is the plan's (its few trainable layers over-fit a
    # small source with more steps)
    scratch_schedule: ClassVar[dict[str, Any]] = {}
    params: ClassVar[dict[str, Param]] = {}

    def __init__(self, params: dict[str, Any] | None = None):
        self.p = self.resolve_params(params or {})
        self.modules = nn.ModuleDict()
        self.refs: dict[str, Any] = {}  # run-reference parameter -> that run's loaded model (set before bind)

    @classmethod
    def resolve_params(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(overrides) - set(cls.params))
        if unknown:
            known = ", ".join(sorted(cls.params)) or "none"
            raise ConfigError(f"{cls.label or cls.name} has no parameter {', '.join(unknown)}. Its parameters: {known}.")
        return {k: spec.coerce(k, overrides.get(k, spec.default)) for k, spec in cls.params.items()}

    def build(self, feat_dim: int, num_classes: int) -> nn.ModuleDict:
        """Create the method's own trainable modules (kept in `self.modules`)."""
        return self.modules

    def attach(self, model: nn.Module) -> None:
        """Called once with the classifier (backbone + head) before training; most methods need nothing."""

    @classmethod
    def check(cls, config: "RunConfig") -> None:
        """Refuse a configuration this method cannot run, with a ConfigError in words."""

    def losses(self, step: Step) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def lr_multipliers(self, progress: float) -> dict[str, float]:
        """Learning-rate multipliers by parameter group: `head`, `method`, `backbone`, or one
        backbone stage as `backbone.<stage>` (which falls back to `backbone`)."""
        return {"backbone": 1.0, "head": 1.0, "method": 1.0}

    # shared pieces ------------------------------------------------------------------
    def ramp(self, progress: float) -> float:
        """The alignment weight's ramp-up w(p) (DANN's schedule); 1 when the method's `gamma` is 0."""
        gamma = self.p.get("gamma", 0.0)
        return warm_start(progress, gamma) if gamma > 0 else 1.0

    @staticmethod
    def supervised(step: Step) -> dict[str, torch.Tensor]:
        """Cross-entropy on source labels, plus on labelled target images when there are any."""
        return {"source_ce": F.cross_entropy(step.logits_s, step.y_s), **Method.target_supervised(step)}

    @staticmethod
    def target_supervised(step: Step) -> dict[str, torch.Tensor]:
        """Cross-entropy on the labelled target images of the step, if the label regime gives any."""
        if step.logits_tl is not None and step.y_tl is not None and len(step.y_tl):
            return {"target_ce": F.cross_entropy(step.logits_tl, step.y_tl)}
        return {}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "label": cls.label, "family": cls.family, "summary": cls.summary,
                "formula": cls.formula, "helps": cls.helps, "hurts": cls.hurts, "paper": cls.paper,
                "needs_target_labels": cls.needs_target_labels, "uses_target_data": cls.uses_target_data,
                "params": {k: v.to_dict() for k, v in cls.params.items()}}


@dataclass
class RunContext:
    """What a hooked method is given to work with: never the trainer. `features` maps uint8 images to the
    backbone's features (eval mode, on the CPU); the budget fields are final before `bind`, the
    optimizer and `set_lrs` (the schedule for a progress in [0, 1]) are set once the optimizer exists."""

    model: nn.Module  # the classifier: `backbone` + `head`
    data: "RunData"
    config: "RunConfig"
    spec: "InputSpec"
    device: torch.device
    channels_last: bool
    features: Callable[[torch.Tensor], torch.Tensor]
    epochs: int
    steps_per_epoch: int
    optimizer: torch.optim.Optimizer | None = None
    set_lrs: Callable[[float], None] | None = None
    lr_at: Callable[[float], float] | None = None  # the run's learning rate at a progress in [0, 1]

    @property
    def total_steps(self) -> int:
        return max(1, self.epochs * self.steps_per_epoch)


class HookedMethod(Method):
    """A method that is more than a loss (see the module docstring). Every hook has a default that
    does nothing, so a hooked method overrides only what it changes."""

    def epochs(self, configured: int) -> int:
        """How many epochs the run has (a closed-form fit needs one)."""
        return configured

    def steps(self, configured: int) -> int:
        """Gradient steps per epoch (0: evaluation only, e.g. AdaBN on a finished run)."""
        return configured

    def bind(self, ctx: RunContext) -> None:
        """Called once before the optimizer is made (a hooked method may freeze parameters here)."""

    def begin_epoch(self, ctx: RunContext, epoch: int) -> None:
        """Called before each epoch's steps, also the first epoch after a resume (e.g. pseudo-labels)."""

    def reads_source(self, epoch: int) -> bool:
        """Whether this epoch's steps get a source batch (False: source-free adaptation)."""
        return True

    def reads_target(self, epoch: int) -> bool:
        """Whether this epoch's steps get an unlabelled target batch (when `uses_target_data`)."""
        return True

    def run_epoch(self, ctx: RunContext, epoch: int) -> dict[str, float] | None:
        """Replace the epoch's step loop; return the mean loss terms. None: use the step loop."""
        return None

    def cached_features(self, ctx: RunContext, key: str, x: torch.Tensor) -> torch.Tensor | None:
        """Features for evaluation from the method's own cache (frozen backbones); None: compute them."""
        return None

    @contextlib.contextmanager
    def target_eval(self, ctx: RunContext) -> Iterator[None]:
        """The model's state while the target is evaluated (AdaBN swaps in target statistics)."""
        yield

    def finish(self, ctx: RunContext) -> None:
        """After the last evaluation, before the final checkpoint: leave the deployable model."""


class SourceFree(HookedMethod):
    """Two phases in one run: the source model is trained first (its epochs read source batches only),
    then adapted without the source (the later epochs read target batches only). Subclasses have a
    `source_phase` parameter (the fraction of epochs for the source) and call `super().bind(ctx)`."""

    first_target_epoch = 1  # set by `bind` from the run's epochs; before it, epoch 0 is the source phase

    @classmethod
    def check(cls, config: "RunConfig") -> None:
        if config.train.epochs < 2:
            raise ConfigError(f"{cls.label} trains a source model, then adapts it: give it at least 2 epochs.")

    def bind(self, ctx: RunContext) -> None:
        self.first_target_epoch = min(ctx.epochs - 1, max(1, round(self.p["source_phase"] * ctx.epochs)))

    def adapting(self, epoch: int) -> bool:
        return epoch >= self.first_target_epoch

    def reads_source(self, epoch: int) -> bool:
        return not self.adapting(epoch)

    def reads_target(self, epoch: int) -> bool:
        return self.adapting(epoch)


METHODS: Registry[type[Method]] = Registry("method")


def register_method(name: str):
    def deco(cls: type[Method]) -> type[Method]:
        cls.name = name
        METHODS.add(name, cls)
        return cls

    return deco


def list_methods() -> list[str]:
    return METHODS.names()


def get_method(name: str) -> type[Method]:
    return METHODS.get(name)


class GradientReverse(torch.autograd.Function):
    """Identity forward; multiplies the gradient by -coeff backward (Ganin & Lempitsky, 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coeff * grad, None


def grl(x: torch.Tensor, coeff: float) -> torch.Tensor:
    return GradientReverse.apply(x, coeff)


def warm_start(progress: float, gamma: float = 10.0) -> float:
    """The DANN schedule 2 / (1 + exp(-gamma p)) - 1: 0 at the start, near 1 by the end."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def entropy(p: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Shannon entropy (nats) of probability rows."""
    return -(p * torch.log(p.clamp_min(1e-8))).sum(dim)


def discriminator(in_dim: int, hidden: int, out_dim: int = 1, batch_norm: bool = False) -> nn.Sequential:
    """A small MLP domain classifier: in -> hidden -> hidden -> out (logits), with BatchNorm after
    each hidden layer when asked (TLlib's domain discriminator)."""
    norm = (lambda: nn.BatchNorm1d(hidden)) if batch_norm else nn.Identity
    return nn.Sequential(nn.Linear(in_dim, hidden), norm(), nn.ReLU(), nn.Linear(hidden, hidden), norm(), nn.ReLU(),
                         nn.Linear(hidden, out_dim))
