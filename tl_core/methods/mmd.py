"""DAN: align source and target features with a multi-kernel MMD."""
from __future__ import annotations

import torch

from tl_core.methods.base import Method, Param, Step, register_method


def mk_mmd(f_s: torch.Tensor, f_t: torch.Tensor, alphas=(0.125, 0.25, 0.5, 1.0, 2.0)) -> torch.Tensor:
    """Biased multi-kernel MMD^2 with Gaussian kernels.

    k(a, b) = sum_i exp(-||a - b||^2 / (2 * alpha_i * s)), s = mean squared distance of the joint batch
    MMD^2 = mean k(s, s') + mean k(t, t') - 2 mean k(s, t)
    """
    z = torch.cat([f_s, f_t]).float()
    d2 = torch.cdist(z, z).pow(2)
    s = d2.detach().mean().clamp_min(1e-12)
    k = sum(torch.exp(-d2 / (2 * a * s)) for a in alphas)
    n = len(f_s)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


@register_method("mmd")
class MMD(Method):
    """Deep adaptation network (Long et al., 2015, arXiv:1502.02791): MK-MMD on the features.

    L = CE(C(f_s), y_s) + lambda * w(p) * MK-MMD^2(f_s, f_t),  w(p) = 2 / (1 + exp(-gamma p)) - 1
    The weight ramps up with training progress p (as DANN's schedule does): early features are
    noise, and aligning noise collapses them instead of letting the classifier learn first.
    """

    label = "Statistics matching (MMD / DAN)"
    family = "statistics"
    summary = ("Measures how far apart the source and target feature clouds are with the maximum mean "
               "discrepancy under several Gaussian kernels (all moments at once), and trains the features "
               "to shrink that distance while still classifying the source.")
    formula = "L = CE(C(f_s), y_s) + λ·w(p) · MMD²(f_s, f_t),  MMD² = E k(s,s') + E k(t,t') − 2 E k(s,t)"
    helps = "Moderate shifts; stable and free of adversarial games."
    hurts = "Small batches give noisy estimates; matching whole distributions can mix classes when "\
            "class proportions differ."
    paper = "Long et al., Learning Transferable Features with Deep Adaptation Networks, ICML 2015, arXiv:1502.02791"
    params = {"trade_off": Param(1.0, 0.0, 10.0, "λ, weight of the MMD term"),
              "gamma": Param(10.0, 0.0, 100.0, "speed of the ramp-up w(p) of the weight (0: full weight at once)")}

    def losses(self, step: Step):
        weight = self.p["trade_off"] * self.ramp(step.progress)
        return {**self.supervised(step), "mmd": weight * mk_mmd(step.f_s, step.f_t)}
