"""The classifier: a backbone and a head. One builder serves training, checkpoints and prediction."""
from __future__ import annotations

import torch
import torch.nn as nn

from tl_core.models.backbones import Backbone, build_backbone


class Classifier(nn.Module):
    """Backbone + head; the unit that is checkpointed and used for prediction."""

    def __init__(self, backbone: Backbone, num_classes: int, head: str = "linear"):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feat_dim, num_classes)
        if head == "weight_norm":  # w = g · v/‖v‖ per class (SHOT's source classifier)
            self.head = nn.utils.parametrizations.weight_norm(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.features(x))


def build_classifier(backbone: str, num_classes: int, *, in_channels: int, input_size: int,
                     pretrained: bool | None = False, freeze: int = 0, bottleneck: int = 0,
                     head: str = "linear") -> Classifier:
    """The one way a classifier is built: from a run's config (`from_config`), a checkpoint's
    metadata or an uploaded model's (those load their own weights, so `pretrained=False`)."""
    bb = build_backbone(backbone, pretrained=pretrained, input_size=input_size, in_channels=in_channels,
                        freeze=freeze, bottleneck=bottleneck)
    return Classifier(bb, num_classes, head=head)


def from_config(model, in_channels: int, num_classes: int) -> Classifier:
    """The classifier a run's `ModelSpec` describes. LeNet reads grey unless a domain is in colour;
    pretrained nets always read RGB."""
    ch = in_channels if model.backbone == "lenet" else 3
    return build_classifier(model.backbone, num_classes, in_channels=ch, input_size=model.input_size,
                            pretrained=model.pretrained, freeze=model.freeze, bottleneck=model.bottleneck,
                            head=model.head)
