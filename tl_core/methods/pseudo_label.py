"""Pseudo-labelling with weak/strong augmentation (FixMatch-style self-training)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tl_core.data.loaders import strong_augment
from tl_core.methods.base import Method, Param, Step, register_method


def masked_pseudo_ce(logits_weak: torch.Tensor, logits_strong: torch.Tensor,
                     threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """CE of the strong view against the weak view's confident predictions, averaged over the
    whole batch (unconfident images count as zero); returns (loss, mask)."""
    p = logits_weak.detach().softmax(1)
    conf, y_hat = p.max(1)
    mask = (conf >= threshold).float()
    return (F.cross_entropy(logits_strong, y_hat, reduction="none") * mask).mean(), mask


@register_method("pseudo_label")
class PseudoLabel(Method):
    """Confidence-thresholded pseudo-labels (Lee, 2013) with FixMatch's weak/strong views (Sohn et al., 2020).

    ŷ = argmax p(weak view of x_t); L = CE(C(f_s), y_s) + λ·mean_t 1[max p ≥ τ]·CE(C(f(strong view)), ŷ)
    """

    label = "Pseudo-labels (weak → strong)"
    family = "self-training"
    summary = ("The model labels the target images it is confident about (probability ≥ τ on a lightly "
               "jittered view) and then learns to give the same answer on a heavily distorted view of the same "
               "image. Confident target images become extra training data; uncertain ones are ignored.")
    formula = "L = CE(C(f_s), y_s) + λ · mean_t 1[max p_weak ≥ τ] · CE(C(f(A_strong(x_t))), argmax p_weak)"
    helps = "The source model is already right on most target images (small to moderate shift)."
    hurts = "A large shift: confident mistakes become training labels and reinforce themselves."
    paper = "Sohn et al., FixMatch: Simplifying Semi-Supervised Learning with Consistency and Confidence, NeurIPS 2020, arXiv:2001.07685"
    needs_pixels = True  # the strong view is made from the target images
    params = {
        "threshold": Param(0.95, 0.5, 0.999, "τ, confidence needed before a prediction is used as a label"),
        "trade_off": Param(1.0, 0.0, 10.0, "λ, weight of the pseudo-label loss"),
        "strong": Param(True, help="learn on a strongly augmented view (off: the same weak view, plain pseudo-labels)"),
    }

    def attach(self, model) -> None:
        self._model = [model]  # a list: the model is not a module of the method

    def losses(self, step: Step):
        out = self.supervised(step)
        if self.p["strong"]:
            logits_strong = self._model[0](strong_augment(step.x_t))
        else:
            logits_strong = step.logits_t
        loss, mask = masked_pseudo_ce(step.logits_t, logits_strong, self.p["threshold"])
        step.log["pseudo_label_rate"] = float(mask.mean())
        out["pseudo_label"] = self.p["trade_off"] * loss
        return out
