"""MCD: maximum classifier discrepancy."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tl_core.methods.base import Method, Param, Step, grl, register_method


def discrepancy(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of two classifiers' probabilities (Saito et al., 2018)."""
    return (logits_a.softmax(1) - logits_b.softmax(1)).abs().mean()


@register_method("mcd")
class MCD(Method):
    """Maximum classifier discrepancy (Saito et al., 2018, arXiv:1712.02560), one-step form.

    Two classifiers C1 (the model's head) and C2 learn the source. On the target, the classifiers
    maximise their disagreement d(C1, C2) = mean |p1 - p2| while the feature extractor minimises it.
    The original alternates three optimiser steps; here a gradient-reversal layer in front of the
    classifiers' target pass plays the same min-max in one step:
    L = CE(C1(f_s), y_s) + CE(C2(f_s), y_s) - λ d(C1(R(f_t)), C2(R(f_t))),  R reverses gradients.
    """

    label = "Maximum classifier discrepancy (MCD)"
    family = "adversarial"
    summary = ("Trains two classifiers on the source. On target images they are pushed to disagree as much as "
               "they can, which finds target images lying outside the source's support; the feature extractor "
               "is pushed the other way, moving those images to where both classifiers agree.")
    formula = "L = CE(C₁(f_s), y_s) + CE(C₂(f_s), y_s) − λ·mean|p₁(R(f_t)) − p₂(R(f_t))|,  R: gradient reversal"
    helps = "Class boundaries matter more than the domains' overall shapes; strong on digits and VisDA."
    hurts = "Very few classes or tiny target sets: the disagreement signal is noisy and training can oscillate."
    paper = "Saito et al., Maximum Classifier Discrepancy for Unsupervised Domain Adaptation, CVPR 2018, arXiv:1712.02560"
    params = {
        "trade_off": Param(1.0, 0.0, 10.0, "λ, weight of the discrepancy game"),
        "gamma": Param(10.0, 0.0, 50.0, "ramp-up speed of the reversal's strength (0 = full strength at once)"),
    }

    def build(self, feat_dim: int, num_classes: int) -> nn.ModuleDict:
        self.modules["head2"] = nn.Linear(feat_dim, num_classes)
        return self.modules

    def attach(self, model) -> None:
        self._heads = [model.head]  # a list: C1 is the model's own head, not a module of the method

    def losses(self, step: Step):
        c1, c2 = self._heads[0], self.modules["head2"]
        out = self.supervised(step)
        out["source_ce2"] = F.cross_entropy(c2(step.f_s), step.y_s)
        r = grl(step.f_t, self.ramp(step.progress))
        d = discrepancy(c1(r), c2(r))
        step.log["discrepancy"] = float(d.detach())
        out["discrepancy"] = -self.p["trade_off"] * d
        return out
