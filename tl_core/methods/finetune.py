"""Fine-tuning: learn on the source, then adapt to the labelled target images."""
from __future__ import annotations

import torch.nn.functional as F

from .base import Method, Param, Step, register_method


@register_method("finetune")
class FineTune(Method):
    """Two phases in one run: source training, then fine-tuning on the labelled target.

    progress < s:  L = CE(C(f(x_s)), y_s)
    progress >= s: L = CE(C(f(x_tl)), y_tl) + w * CE(C(f(x_s)), y_s), backbone lr x m
    The frozen stages (freeze depth) never train; the unfrozen backbone learns m times slower
    than the head in the second phase (Yosinski et al., 2014; Howard & Ruder, 2018).
    """

    label = "Fine-tuning"
    family = "parameter transfer"
    summary = ("First trains on the labelled source (or starts from the pretrained weights), then switches to "
               "the few labelled target images and fine-tunes: the frozen stages stay as they are, the rest "
               "learn with a smaller learning rate than the new head so that the source knowledge is not "
               "wiped out.")
    formula = "phase 1: L = CE(C(f(x_s)), y_s);  phase 2: L = CE(C(f(x_tl)), y_tl) + w·CE(C(f(x_s)), y_s)"
    helps = "A few labelled target images exist and the backbone's features are broadly useful."
    hurts = "Very few target labels and many trainable layers: the model over-fits those few images."
    paper = "Yosinski et al., How transferable are features in deep neural networks? NeurIPS 2014, arXiv:1411.1792"
    needs_target_labels = True
    uses_target_data = False
    params = {
        "source_phase": Param(0.5, 0.0, 0.95, "fraction of the training spent on the source before fine-tuning"),
        "backbone_lr": Param(0.1, 0.0, 1.0, "backbone learning rate as a fraction of the head's, in phase 2"),
        "source_weight": Param(0.0, 0.0, 1.0, "weight of the source loss kept during phase 2"),
    }

    def _phase2(self, progress: float) -> bool:
        return progress >= self.p["source_phase"]

    def lr_multipliers(self, progress: float):
        bb = self.p["backbone_lr"] if self._phase2(progress) else 1.0
        return {"backbone": bb, "head": 1.0, "method": 1.0}

    def losses(self, step: Step):
        src = F.cross_entropy(step.logits_s, step.y_s)
        if not self._phase2(step.progress):
            return {"source_ce": src}
        out = {"target_ce": F.cross_entropy(step.logits_tl, step.y_tl)}
        if self.p["source_weight"] > 0:
            out["source_ce"] = self.p["source_weight"] * src
        return out
