"""Source only: the no-adaptation baseline."""
from __future__ import annotations

import torch.nn.functional as F

from tl_core.methods.base import Method, Step, register_method


@register_method("source_only")
class SourceOnly(Method):
    """Train on labelled source images only; the target is used for evaluation alone.

    L = CE(C(f(x_s)), y_s)
    """

    label = "Source only (no adaptation)"
    family = "baseline"
    summary = ("Trains the network on the labelled source images and applies it to the target as it is. "
               "Every other method is measured against this baseline: the gain over it is the transfer.")
    formula = "L = CE(C(f(x_s)), y_s)"
    helps = "Always the reference; enough when source and target look alike."
    hurts = "Falls short as soon as the target looks different (new style, colour, resolution)."
    paper = "—"
    uses_target_data = False

    def losses(self, step: Step):
        return {"source_ce": F.cross_entropy(step.logits_s, step.y_s)}
