"""Step 2, model: the backbones and what a freeze depth leaves trainable."""
from __future__ import annotations

from typing import Any
from tl_core.models.backbones import backbone_info, build_backbone, list_backbones

# what the pages may call (tl_core.app.api exports exactly these)
__all__ = ["backbone_choices", "model_summary"]




def backbone_choices() -> list[dict[str, Any]]:
    out = []
    for n in list_backbones():
        b = backbone_info(n)
        ok, msg = b.weights_status()
        out.append({"name": n, "label": b.label, "description": b.description, "stages": list(b.stages),
                    "has_pretrained": b.has_pretrained, "weights_available": ok, "weights_note": msg,
                    "default_size": b.default_size, "min_size": b.min_size})
    return out


def model_summary(backbone: str, freeze: int, input_size: int | None = None, in_channels: int = 1,
                  bottleneck: int = 0) -> dict[str, Any]:
    """Parameters per stage and trainable/total for a freeze depth (built with random weights: same counts)."""
    bb = build_backbone(backbone, pretrained=False, input_size=input_size, in_channels=in_channels, freeze=freeze,
                        bottleneck=bottleneck)
    trainable, total = bb.param_counts()
    return {"stages": bb.stage_param_counts(), "trainable": trainable, "total": total,
            "input": bb.input_spec.to_dict()}
