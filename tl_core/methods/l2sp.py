"""L2-SP: fine-tune while staying close to the starting point."""
from __future__ import annotations

import torch
import torch.nn as nn

from tl_core.methods.base import Method, Param, Step, register_method


@register_method("l2sp")
class L2SP(Method):
    """L2 penalty towards the starting weights (Li, Grandvalet & Davoine, 2018, arXiv:1802.01483).

    L = CE(...) + alpha/2 * ||w_backbone - w0||^2 + beta/2 * ||w_head||^2
    w0 are the backbone's weights when training starts (pretrained, or the seeded initialisation).
    """

    label = "L2-SP (stay near the start)"
    owns_weight_decay = True  # α pulls the backbone to w⁰ and β decays the head: no other decay
    family = "parameter transfer"
    summary = ("Fine-tunes on the labelled data while a penalty pulls the backbone's weights back towards "
               "where they started, so what the pretrained network knew is not forgotten. The new head gets a "
               "plain L2 penalty (β). The optimizer adds no weight decay of its own, so what is optimised is "
               "exactly the formula.")
    formula = "L = CE + α/2 · ‖w − w⁰‖² (backbone) + β/2 · ‖w_head‖²"
    helps = "Few target labels and a good pretrained backbone."
    hurts = "The target needs features far from the starting ones: the penalty holds them back."
    paper = "Li, Grandvalet & Davoine, Explicit Inductive Bias for Transfer Learning with CNNs, ICML 2018, arXiv:1802.01483"
    params = {
        "alpha": Param(0.01, 0.0, 10.0, "α, pull of the backbone towards its starting weights", log=True),
        "beta": Param(0.01, 0.0, 10.0, "β, weight decay of the new head", log=True),
    }

    def attach(self, model: nn.Module) -> None:
        self.backbone_params = [p for p in model.backbone.parameters() if p.requires_grad]
        self.start = [p.detach().clone() for p in self.backbone_params]
        self.head_params = list(model.head.parameters())

    def penalty(self) -> tuple[torch.Tensor, torch.Tensor]:
        sp = sum(((p - p0) ** 2).sum() for p, p0 in zip(self.backbone_params, self.start))
        head = sum((p ** 2).sum() for p in self.head_params)
        return torch.as_tensor(sp, dtype=torch.float32), torch.as_tensor(head, dtype=torch.float32)

    def losses(self, step: Step):
        sp, head = self.penalty()
        return {**self.supervised(step), "l2sp": self.p["alpha"] / 2 * sp, "head_l2": self.p["beta"] / 2 * head}
