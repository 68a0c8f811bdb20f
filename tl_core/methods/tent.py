"""TENT: test-time adaptation by entropy minimisation of BatchNorm's affine parameters."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..backbones import backbone_info
from ..errors import ConfigError
from .base import entropy, register_method, Param, RunContext, SourceFree, Step

_BN = nn.modules.batchnorm._BatchNorm


def bn_affine_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The scale γ and shift β of every BatchNorm layer: all that TENT lets move."""
    return [p for m in model.modules() if isinstance(m, _BN) and m.affine for p in (m.weight, m.bias)]


@register_method("tent")
class TENT(SourceFree):
    """TENT (Wang et al., 2021, arXiv:2006.10726).

    Phase 1: train on the source, L = CE(C(f(x_s)), y_s). Phase 2 (test time, source-free): every weight
    stays fixed except the BatchNorm layers' γ and β; BatchNorm normalises with the target batch's own
    statistics, and γ, β minimise the entropy of the predictions on unlabelled target batches:
        min_{γ,β} E_x[H(softmax(C(f(x; γ, β))))]
    """

    label = "TENT (test-time entropy minimisation)"
    family = "source-free"
    summary = ("Trains on the source, then adapts at test time without source data or labels: BatchNorm "
               "layers normalise target images with target statistics, and only their scale and shift "
               "are tuned to make the target predictions confident. Touches a tiny fraction of the "
               "weights, so it is cheap and hard to break.")
    formula = "phase 2: min over BatchNorm γ, β of E[H(p(x_t))],  BN with target-batch statistics"
    helps = "Shifts in low-level statistics (contrast, colour, noise), on a network with BatchNorm."
    hurts = ("Shifts that need new features (only γ and β move), small batches (noisy statistics), or a "
             "source model that is confidently wrong: entropy minimisation then makes it more so.")
    paper = "Wang et al., Tent: Fully Test-Time Adaptation by Entropy Minimization, ICLR 2021, arXiv:2006.10726"
    needs_batchnorm = True  # the planner adds a bottleneck (it has BatchNorm) to a backbone without
    params = {
        "source_phase": Param(0.5, 0.1, 0.9, "fraction of the epochs spent training on the source"),
    }

    @classmethod
    def check(cls, config) -> None:
        if not backbone_info(config.model.backbone).batchnorm and not config.model.bottleneck:
            raise ConfigError(f"TENT tunes BatchNorm layers, and {config.model.backbone} has none: add a "
                              f"bottleneck (it has BatchNorm; e.g. bottleneck 256) or choose a backbone with "
                              f"BatchNorm (resnet18, mobilenet_v3_small, efficientnet_lite0).")
        super().check(config)

    def bind(self, ctx: RunContext) -> None:
        super().bind(ctx)
        self.affine = {id(p) for p in bn_affine_parameters(ctx.model)}
        if not self.affine:
            raise ConfigError("TENT needs BatchNorm layers with a scale and shift; this model has none.")

    def begin_epoch(self, ctx: RunContext, epoch: int) -> None:
        if self.adapting(epoch):
            # only γ and β get gradients; the optimizer skips parameters without one
            for p in ctx.model.parameters():
                if id(p) not in self.affine:
                    p.requires_grad_(False)

    def losses(self, step: Step) -> dict[str, torch.Tensor]:
        if not self.adapting(step.epoch):
            return {"source_ce": F.cross_entropy(step.logits_s, step.y_s)}
        return {"entropy": entropy(step.logits_t.softmax(1)).mean()}
