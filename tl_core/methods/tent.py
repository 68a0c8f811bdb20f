"""TENT: test-time adaptation by entropy minimisation of BatchNorm's affine parameters."""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from tl_core.models.backbones import backbone_info
from tl_core.base.errors import ConfigError
from tl_core.methods.adabn import bn_state, estimate_bn_stats, image_batches, load_bn_state
from tl_core.methods.base import entropy, register_method, Param, RunContext, SourceFree, Step

_BN = nn.modules.batchnorm._BatchNorm


def bn_affine_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The scale γ and shift β of every BatchNorm layer: all that TENT lets move."""
    return [p for m in model.modules() if isinstance(m, _BN) and m.affine for p in (m.weight, m.bias)]


@register_method("tent")
class TENT(SourceFree):
    """TENT (Wang et al., 2021, arXiv:2006.10726).

    Phase 1: train on the source, L = CE(C(f(x_s)), y_s). Phase 2 (test time, source-free): every weight
    stays fixed except the BatchNorm layers' γ and β, those of frozen stages included; BatchNorm normalises
    with the target batch's own statistics, and γ, β minimise the entropy of the predictions on unlabelled
    target batches:
        min_{γ,β} E_x[H(softmax(C(f(x; γ, β))))]
    As the authors run it: a fresh Adam at a constant rate of 1e-3 without weight decay, and the target
    evaluated with each batch's own statistics too.
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
    # phase 2 moves the BatchNorm layers of frozen stages too: their output is not fixed, so never cached
    needs_pixels = True
    adapts_frozen_batchnorm = True
    epoch = 0  # the epoch under way
    params = {
        "source_phase": Param(0.5, 0.1, 0.9, "fraction of the epochs spent training on the source"),
        "test_time_lr": Param(1e-3, 1e-6, 1.0, "the constant learning rate of phase 2 (the authors' Adam rate)"),
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
        self.affine = bn_affine_parameters(ctx.model)
        if not self.affine:
            raise ConfigError("TENT needs BatchNorm layers with a scale and shift; this model has none.")
        for p in self.affine:  # frozen stages' γ, β join the optimiser now; they get gradients in phase 2 only
            p.requires_grad_(True)
        self.frozen_affine = {id(p) for st in ctx.model.backbone.frozen_stages() for p in st.parameters()} & {
            id(p) for p in self.affine}
        self.epoch = 0
        self.lr_at = ctx.lr_at

    def begin_epoch(self, ctx: RunContext, epoch: int) -> None:
        self.epoch = epoch
        self.lr_at = ctx.lr_at
        if not self.adapting(epoch):
            for p in ctx.model.parameters():  # the source phase trains what the freeze depth leaves trainable
                if id(p) in self.frozen_affine:
                    p.requires_grad_(False)
            return
        # only γ and β get gradients (the optimiser skips parameters without one), in every stage
        ids = {id(p) for p in self.affine}
        for p in ctx.model.parameters():
            p.requires_grad_(id(p) in ids)
        ctx.model.backbone.frozen_bn_adapts = True  # frozen stages' BatchNorm uses batch statistics too
        ctx.model.train()
        opt = ctx.optimizer
        if opt is not None:
            if epoch == self.first_target_epoch:
                opt.state.clear()  # a fresh optimiser for test time, as the authors start one
            for g in opt.param_groups:
                g["weight_decay"] = 0.0

    def lr_multipliers(self, progress: float) -> dict[str, float]:
        if not self.adapting(self.epoch) or self.lr_at is None:
            return super().lr_multipliers(progress)
        k = self.p["test_time_lr"] / max(self.lr_at(progress), 1e-12)  # constant, whatever the run's schedule
        return {"backbone": k, "head": k, "method": k}

    @contextlib.contextmanager
    def target_eval(self, ctx: RunContext):
        """While adapting, target images are normalised with target statistics, as the authors' test batches
        are with their own (here measured over the evaluated images, in batches of up to 256)."""
        if not self.adapting(self.epoch):
            yield
            return
        saved = bn_state(ctx.model)
        estimate_bn_stats(ctx.model, image_batches(ctx.data.target.x_test, ctx))
        try:
            yield
        finally:
            load_bn_state(ctx.model, saved)

    def losses(self, step: Step) -> dict[str, torch.Tensor]:
        if not self.adapting(step.epoch):
            return {"source_ce": F.cross_entropy(step.logits_s, step.y_s)}
        return {"entropy": entropy(step.logits_t.softmax(1)).mean()}
