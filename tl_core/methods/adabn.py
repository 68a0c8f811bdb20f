"""AdaBN: BatchNorm statistics re-estimated on the target."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn as nn

from tl_core.models.backbones import backbone_info
from tl_core.base.errors import ConfigError, TLError
from tl_core.base.inputs import adapt
from tl_core.methods.base import register_method, Param, RunContext, Step, HookedMethod

_BN = nn.modules.batchnorm._BatchNorm


def bn_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]


@torch.no_grad()
def estimate_bn_stats(model: nn.Module, batches: Iterator[torch.Tensor]) -> None:
    """Replace every BatchNorm layer's running mean and variance by their average over `batches`
    (cumulative average, momentum None), leaving the weights and the train/eval modes unchanged."""
    layers = bn_layers(model)
    modes = {m: m.training for m in model.modules()}
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    for x in batches:
        model(x)
    for m, (mom, _) in zip(layers, saved):
        m.momentum = mom
    for m, was in modes.items():
        m.training = was


def image_batches(x: torch.Tensor, ctx: RunContext, size: int = 256) -> Iterator[torch.Tensor]:
    """Stored uint8 images as model input, in batches of at most `size` and never of one image (BatchNorm
    cannot measure statistics on a single value)."""
    for part in torch.arange(len(x)).tensor_split(max(1, -(-len(x) // size))):
        if len(part) > 1:
            yield adapt(x[part], ctx.spec, ctx.device, channels_last=ctx.channels_last)


def bn_state(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    return [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in bn_layers(model)]


def load_bn_state(model: nn.Module, state) -> None:
    for m, (mean, var, n) in zip(bn_layers(model), state):
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
        m.num_batches_tracked.copy_(n)


@register_method("adabn")
class AdaBN(HookedMethod):
    """Adaptive BatchNorm (Li et al., 2016, arXiv:1603.04779).

    Train on the source (or take a finished run's model, with no training at all); for the target,
    replace each BatchNorm layer's statistics by the target's:  BN_t(z) = γ (z − μ_t)/σ_t + β.
    Source images are evaluated with the source statistics; the saved model carries the target's.
    """

    label = "AdaBN (target BatchNorm statistics)"
    family = "statistics"
    summary = ("Keeps every learned weight and only swaps the BatchNorm layers' mean and variance for those "
               "measured on target images, so each layer sees target activations on the scale it was trained "
               "on. Needs no labels and no extra training: it can be applied to a finished run.")
    formula = "BN_t(z) = γ·(z − μ_t)/√(σ_t² + ε) + β,  μ_t, σ_t² measured on unlabelled target images"
    helps = "The shift is mostly in low-level statistics (colour, contrast, blur) and the backbone has BatchNorm."
    hurts = "Tiny target sets (noisy statistics), or shifts in shape and layout that statistics cannot fix."
    paper = "Li et al., Revisiting Batch Normalization For Practical Domain Adaptation, ICLR-W 2017, arXiv:1603.04779"
    needs_pixels = True  # target statistics are re-estimated through every BatchNorm layer, frozen ones too
    uses_target_data = False  # training (if any) is source-only: BatchNorm must not see a mix
    params = {
        "from_run": Param("", help="id of a finished run to adapt without training (empty: train on the source first)",
                          run_ref=True),
        "images": Param(2000, 32, 100000, "target images used to measure the statistics"),
    }

    @classmethod
    def check(cls, config) -> None:
        if not backbone_info(config.model.backbone).batchnorm:
            raise ConfigError(f"AdaBN re-estimates BatchNorm statistics, and {config.model.backbone} has no "
                              f"BatchNorm layers: choose resnet18, mobilenet_v3_small or efficientnet_lite0.")

    def bind(self, ctx: RunContext) -> None:
        if not bn_layers(ctx.model):
            raise ConfigError("AdaBN needs a backbone with BatchNorm layers; this one has none.")
        if self.p["from_run"]:
            self._load_run(ctx)

    def _load_run(self, ctx: RunContext) -> None:
        pred = self.refs["from_run"]  # resolved before training, outside the method
        if pred.classes != list(ctx.data.classes) or pred.meta["backbone"] != ctx.model.backbone.name:
            raise TLError(f"Run {self.p['from_run']} has a {pred.meta['backbone']} model over classes "
                          f"{pred.classes}; this run needs {ctx.model.backbone.name} over {ctx.data.classes}.")
        ctx.model.load_state_dict(pred.model.state_dict())

    def steps(self, configured: int) -> int:
        return 0 if self.p["from_run"] else configured

    def epochs(self, configured: int) -> int:
        return 1 if self.p["from_run"] else configured

    def _target_batches(self, ctx: RunContext) -> Iterator[torch.Tensor]:
        d = ctx.data
        yield from image_batches(d.target.x_train[d.tgt_train[: self.p["images"]]], ctx, 128)

    @contextlib.contextmanager
    def target_eval(self, ctx: RunContext):
        saved = bn_state(ctx.model)
        estimate_bn_stats(ctx.model, self._target_batches(ctx))
        try:
            yield
        finally:
            load_bn_state(ctx.model, saved)

    def finish(self, ctx: RunContext) -> None:
        estimate_bn_stats(ctx.model, self._target_batches(ctx))

    def losses(self, step: Step):
        return self.supervised(step)
