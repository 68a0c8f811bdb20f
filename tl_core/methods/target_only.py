"""Target only: train on the labelled target images alone (the oracle-style baseline)."""
from __future__ import annotations

import torch.nn.functional as F

from tl_core.methods.base import Method, Step, register_method


@register_method("target_only")
class TargetOnly(Method):
    """Ignore the source; learn from the labelled target images.

    L = CE(C(f(x_tl)), y_tl)
    With all target labels this is the supervised upper bound; with a few per class it shows
    what the source is worth: a transfer method should beat it.
    """

    label = "Target only (no source)"
    family = "baseline"
    summary = ("Trains only on the labelled target images and never looks at the source. With all target "
               "labels it is the upper bound to aim for; with a few per class it shows what the source adds.")
    formula = "L = CE(C(f(x_tl)), y_tl)"
    helps = "As a yardstick: the gap between it and source only is the room transfer has."
    hurts = "Few target labels: it over-fits them."
    paper = "—"
    needs_target_labels = True
    uses_target_data = False

    def losses(self, step: Step):
        return {"target_ce": F.cross_entropy(step.logits_tl, step.y_tl)}
