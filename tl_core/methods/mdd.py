"""MDD: margin disparity discrepancy."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tl_core.methods.base import Method, Param, Step, discriminator, grl, register_method, warm_start


def mdd_adversary_loss(adv_s: torch.Tensor, adv_t: torch.Tensor, pred_s: torch.Tensor, pred_t: torch.Tensor,
                       margin: float) -> torch.Tensor:
    """What the auxiliary classifier h' minimises: agree with the main classifier's labels on the
    source (γ·CE) and disagree on the target (−log(1 − p'_ŷ)) (Zhang et al., 2019)."""
    agree_s = F.cross_entropy(adv_s, pred_s)
    p_t = adv_t.softmax(1).gather(1, pred_t[:, None]).squeeze(1)
    disagree_t = -torch.log((1 - p_t).clamp_min(1e-6)).mean()
    return margin * agree_s + disagree_t


@register_method("mdd")
class MDD(Method):
    """Margin disparity discrepancy (Zhang et al., 2019, arXiv:1904.05801).

    An auxiliary classifier h' sees the features through a gradient-reversal layer R and
    minimises  γ·CE(h'(f_s), ŷ_s) − log(1 − h'(f_t)[ŷ_t])  (ŷ: the main head's predictions);
    the reversed gradient makes the features maximise it, shrinking the disparity between
    the domains as measured with a margin γ.  L = CE(C(f_s), y_s) + λ·that.
    """

    label = "Margin disparity discrepancy (MDD)"
    family = "adversarial"
    summary = ("An auxiliary classifier tries to agree with the main classifier on the source and to disagree "
               "with it on the target; the features are trained against it, so that whatever separates the "
               "domains cannot change the predictions. The margin γ makes the bound it minimises tighter.")
    formula = "L = CE(C(f_s), y_s) + λ·[γ·CE(h'(R f_s), ŷ_s) − log(1 − h'(R f_t)_ŷ_t)],  R: gradient reversal"
    helps = "Many classes and a moderate shift; theory-backed and usually stabler than DANN."
    hurts = "The margin γ is too large for the data: training becomes unstable (lower γ to 2)."
    paper = "Zhang et al., Bridging Theory and Algorithm for Domain Adaptation, ICML 2019, arXiv:1904.05801"
    params = {
        "trade_off": Param(1.0, 0.0, 10.0, "λ, weight of the disparity game"),
        "margin": Param(4.0, 1.0, 10.0, "γ, the margin"),
        "reversal": Param(0.1, 0.0, 1.0, "strength of the gradient reversal at the end of the ramp"),
        "gamma": Param(10.0, 0.0, 50.0, "ramp-up speed of the reversal's strength (0 = full strength at once)"),
        "hidden": Param(500, 16, 4096, "width of the auxiliary classifier"),
    }

    def build(self, feat_dim: int, num_classes: int) -> nn.ModuleDict:
        self.modules["adversary"] = discriminator(feat_dim, self.p["hidden"], num_classes)
        return self.modules

    def losses(self, step: Step):
        coeff = self.p["reversal"] * (warm_start(step.progress, self.p["gamma"]) if self.p["gamma"] > 0 else 1.0)
        n = len(step.f_s)
        adv = self.modules["adversary"](grl(torch.cat([step.f_s, step.f_t]), coeff))
        pred_s, pred_t = step.logits_s.detach().argmax(1), step.logits_t.detach().argmax(1)
        loss = mdd_adversary_loss(adv[:n], adv[n:], pred_s, pred_t, self.p["margin"])
        step.log["disparity"] = float(loss.detach())
        return {**self.supervised(step), "mdd": self.p["trade_off"] * loss}
