"""DANN: domain-adversarial training through a gradient reversal layer."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tl_core.methods.base import Method, Param, Step, discriminator, grl, register_method


@register_method("dann")
class DANN(Method):
    """Domain-adversarial neural network (Ganin et al., 2016, arXiv:1505.07818).

    L = CE(C(f_s), y_s) + lambda * BCE(D(GRL_c(f)), d),  d = 1 for source, 0 for target
    GRL_c is the identity forward and multiplies the gradient by -c backward, with
    c = 2 / (1 + exp(-10 p)) - 1 rising from 0 to 1 over training progress p.
    """

    label = "Adversarial alignment (DANN)"
    family = "adversarial"
    summary = ("A domain discriminator learns to tell source features from target features, while the "
               "feature extractor learns to fool it (the gradient from the discriminator is reversed). "
               "Features that fool it are domain-invariant, so the source classifier carries over.")
    formula = "L = CE(C(f_s), y_s) + λ · BCE(D(GRL(f)), d),  d = 1 source / 0 target"
    helps = "The target differs in style but has the same classes in similar proportions; no target labels."
    hurts = "Class proportions differ a lot between domains, or the domains share little: alignment can "\
            "mix up classes (negative transfer)."
    paper = "Ganin et al., Domain-Adversarial Training of Neural Networks, JMLR 2016, arXiv:1505.07818"
    params = {
        "trade_off": Param(1.0, 0.0, 10.0, "λ, weight of the domain loss"),
        "hidden": Param(500, 16, 4096, "width of the discriminator's hidden layers"),
        "batch_norm": Param(False, help="BatchNorm in the discriminator's hidden layers (steadier on ImageNet "
                            "features; the planner turns it on for a pretrained backbone)"),
        "gamma": Param(10.0, 0.0, 100.0, "speed of the gradient-reversal warm-up schedule (0: full strength at once)"),
    }

    def build(self, feat_dim, num_classes):
        self.modules["disc"] = discriminator(feat_dim, self.p["hidden"], batch_norm=self.p["batch_norm"])
        return self.modules

    def losses(self, step: Step):
        f = torch.cat([step.f_s, step.f_t])
        c = self.ramp(step.progress)
        d = self.modules["disc"](grl(f, c)).squeeze(1)
        labels = torch.cat([torch.ones(len(step.f_s)), torch.zeros(len(step.f_t))]).to(d)
        dom = F.binary_cross_entropy_with_logits(d.float(), labels.float())
        step.log["domain_acc"] = float(((d > 0).float() == labels).float().mean())
        step.log["grl_coeff"] = c
        return {**self.supervised(step), "domain": self.p["trade_off"] * dom}
