"""Fine-tuning: learn on the source, then adapt to the labelled target images."""
from __future__ import annotations

import torch.nn.functional as F

from tl_core.methods.base import Method, Param, Step, register_method


@register_method("finetune")
class FineTune(Method):
    """Two phases in one run: source training, then fine-tuning on the labelled target.

    progress < s:  L = CE(C(f(x_s)), y_s)
    progress >= s: L = CE(C(f(x_tl)), y_tl) + w * CE(C(f(x_s)), y_s), backbone lr x m
    The frozen stages (freeze depth) never train; the unfrozen backbone learns m times slower
    than the head in the second phase (Yosinski et al., 2014). Options from ULMFiT (Howard &
    Ruder, 2018): discriminative learning rates (each stage d^i slower than the one above it)
    and gradual unfreezing (in phase 2 the stages thaw one by one from the head down).
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
        "layer_decay": Param(1.0, 0.1, 1.0, "discriminative learning rates: each backbone stage learns this "
                             "factor times as fast as the stage above it in phase 2 (1 = all the same)"),
        "gradual_unfreeze": Param(False, help="in phase 2, thaw the backbone stages one at a time, from the "
                                  "top down, at even intervals (ULMFiT); a stage learns nothing before its turn"),
    }

    def attach(self, model) -> None:
        self.stages = list(getattr(model.backbone, "stage_names", []))

    def _phase2(self, progress: float) -> bool:
        return progress >= self.p["source_phase"]

    def lr_multipliers(self, progress: float):
        if not self._phase2(progress):
            return {"backbone": 1.0, "head": 1.0, "method": 1.0}
        out = {"backbone": self.p["backbone_lr"], "head": 1.0, "method": 1.0}
        stages = getattr(self, "stages", [])
        s = self.p["source_phase"]
        q = (progress - s) / max(1.0 - s, 1e-9)  # progress within phase 2, in [0, 1)
        for depth, name in enumerate(reversed(stages)):  # depth 0 = the stage just under the head
            m = self.p["backbone_lr"] * self.p["layer_decay"] ** depth
            if self.p["gradual_unfreeze"] and q < (depth + 1) / (len(stages) + 1):
                m = 0.0  # not thawed yet: with a zero learning rate Adam leaves the weights as they are
            out[f"backbone.{name}"] = m
        return out

    def losses(self, step: Step):
        src = F.cross_entropy(step.logits_s, step.y_s)
        if not self._phase2(step.progress):
            return {"source_ce": src}
        out = {"target_ce": F.cross_entropy(step.logits_tl, step.y_tl)}
        if self.p["source_weight"] > 0:
            out["source_ce"] = self.p["source_weight"] * src
        return out
