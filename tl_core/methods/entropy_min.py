"""Information maximisation on the target: confident and diverse predictions."""
from __future__ import annotations

import torch

from tl_core.methods.base import Method, Param, Step, entropy, register_method


def im_loss(logits_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean entropy of each prediction, entropy of the mean prediction)."""
    p = logits_t.softmax(1)
    return entropy(p).mean(), entropy(p.mean(0), dim=0)


@register_method("entropy_min")
class EntropyMin(Method):
    """Information maximisation (Shi & Sha, 2012; Liang et al., SHOT, 2020, arXiv:2002.08546).

    L = CE(C(f_s), y_s) + lambda * ( mean_i H(p_i) - eta * H(mean_i p_i) )
    Low entropy per image (confident), high entropy of the average (all classes used).
    """

    label = "Entropy minimisation + diversity (IM)"
    family = "self-training"
    summary = ("Makes the classifier confident on each target image (low entropy) while keeping its "
               "predictions spread over all classes on average (diversity), so it cannot cheat by calling "
               "everything one class.")
    formula = "L = CE(C(f_s), y_s) + λ · ( E H(pᵢ) − η · H(E pᵢ) )"
    helps = "Target clusters are already roughly in the right place; a cheap polish after alignment."
    hurts = "Poor initial predictions: confidence locks mistakes in."
    paper = "Liang et al., Do We Really Need to Access the Source Data? (SHOT), ICML 2020, arXiv:2002.08546"
    params = {
        "trade_off": Param(0.3, 0.0, 10.0, "λ, weight of the information-maximisation term"),
        "diversity": Param(1.0, 0.0, 10.0, "η, weight of the diversity (entropy of the mean) term"),
    }

    def losses(self, step: Step):
        ent, div = im_loss(step.logits_t)
        return {**self.supervised(step), "entropy": self.p["trade_off"] * ent,
                "diversity": -self.p["trade_off"] * self.p["diversity"] * div}
