"""What a backbone expects as input, and the adaptation of uint8 domain images to it."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class InputSpec:
    """Size, channels and normalisation bound to a backbone and its weights."""

    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"size": self.size, "channels": self.channels, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        return cls(int(d["size"]), int(d["channels"]), tuple(d["mean"]), tuple(d["std"]))


def adapt(x: torch.Tensor, spec: InputSpec, device: torch.device | str | None = None,
          channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, spec.channels, spec.size, spec.size), normalised.

    Grey images are repeated to RGB; RGB images become grey by luminance (ITU-R 601).
    """
    if device is not None:
        x = x.to(device, non_blocking=True)
    x = x.float().div_(255)
    c = x.shape[1]
    if c == 1 and spec.channels == 3:
        x = x.expand(-1, 3, -1, -1)
    elif c == 3 and spec.channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
        x = (x * w).sum(1, keepdim=True)
    if x.shape[-2:] != (spec.size, spec.size):
        down = x.shape[-1] > spec.size
        x = F.interpolate(x, size=(spec.size, spec.size), mode="bilinear", align_corners=False, antialias=down)
    mean = torch.tensor(spec.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=x.device).view(1, -1, 1, 1)
    x = (x - mean) / std
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def to_display(x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Undo the normalisation: float model input -> uint8 (N, H, W, C) as the model saw it."""
    mean = torch.tensor(spec.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=x.device).view(1, -1, 1, 1)
    y = (x * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return y.permute(0, 2, 3, 1).cpu()
