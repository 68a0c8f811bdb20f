"""Deep CORAL: match the means and covariances of source and target features."""
from __future__ import annotations

import torch

from tl_core.methods.base import Method, Param, Step, register_method


def coral_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """mean((mu_s - mu_t)^2) + mean((C_s - C_t)^2), C the unbiased feature covariance."""
    f_s, f_t = f_s.float(), f_t.float()
    mu_s, mu_t = f_s.mean(0, keepdim=True), f_t.mean(0, keepdim=True)
    cs, ct = f_s - mu_s, f_t - mu_t
    cov_s = cs.t() @ cs / max(len(f_s) - 1, 1)
    cov_t = ct.t() @ ct / max(len(f_t) - 1, 1)
    return (mu_s - mu_t).pow(2).mean() + (cov_s - cov_t).pow(2).mean()


@register_method("coral")
class CORAL(Method):
    """Deep CORAL (Sun & Saenko, 2016, arXiv:1607.01719), with the mean term added as in TLlib.

    L = CE(C(f_s), y_s) + lambda * w(p) * ( ||mu_s - mu_t||^2 / d + ||C_s - C_t||_F^2 / d^2 )
    with the same ramp-up w(p) = 2 / (1 + exp(-gamma p)) - 1 as DANN's schedule.
    """

    label = "Covariance alignment (CORAL)"
    family = "statistics"
    summary = ("Makes the target features have the same average and the same covariance (which features "
               "vary together) as the source features. Cheap and simple: second-order statistics only.")
    formula = "L = CE(C(f_s), y_s) + λ·w(p) · ( ‖μ_s − μ_t‖²/d + ‖C_s − C_t‖²_F / d² )"
    helps = "Shifts in colour, contrast or texture that change feature statistics globally."
    hurts = "Shifts that need more than first and second moments to describe."
    paper = "Sun & Saenko, Deep CORAL: Correlation Alignment for Deep Domain Adaptation, ECCV-W 2016, arXiv:1607.01719"
    params = {"trade_off": Param(1.0, 0.0, 100.0, "λ, weight of the alignment term"),
              "gamma": Param(10.0, 0.0, 100.0, "speed of the ramp-up w(p) of the weight (0: full weight at once)")}

    def losses(self, step: Step):
        weight = self.p["trade_off"] * self.ramp(step.progress)
        return {**self.supervised(step), "coral": weight * coral_loss(step.f_s, step.f_t)}
