"""Shifted variants of any domain: `base+shift:severity`, e.g. `mnist+rotate:3`.

Severity runs from 1 (mild) to 5 (strong), as in ImageNet-C. The shift is drawn per image
from a seed derived from the name, so a variant is the same images every time.
"""
from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F

from tl_core.data.domains import names
from tl_core.data.domains.base import Domain, DomainData


def _rotate(x: torch.Tensor, sev: int, g: torch.Generator) -> torch.Tensor:
    n = len(x)
    ang = (torch.rand(n, generator=g) * 2 - 1) * math.radians(12 * sev)
    cos, sin = ang.cos(), ang.sin()
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # fill the uncovered corners with the image's own border colour, not black
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _noise(x, sev, g):
    return x + torch.randn(x.shape, generator=g) * (0.06 * sev)


def _blur(x, sev, g):
    from torchvision.transforms.functional import gaussian_blur

    sigma = 0.35 * sev * x.shape[-1] / 28
    k = max(3, int(2 * math.ceil(3 * sigma) + 1))
    return gaussian_blur(x, [k, k], [sigma, sigma])


def _contrast(x, sev, g):
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return m + (x - m) * (1 - 0.18 * sev)


def _colour(x, sev, g):
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    n = len(x)
    s = sev / 5
    tint = 1 - s * torch.rand(n, 3, 1, 1, generator=g)  # scale each channel down by up to s
    shift = s * 0.5 * torch.rand(n, 3, 1, 1, generator=g)
    return x * tint + shift


def _invert(x, sev, g):
    flip = (torch.rand(len(x), 1, 1, 1, generator=g) < sev / 5).float()
    return flip * (1 - x) + (1 - flip) * x


SHIFTS = {
    "rotate": (_rotate, "random rotation up to ±12° x severity"),
    "noise": (_noise, "Gaussian pixel noise, sigma 0.06 x severity"),
    "blur": (_blur, "Gaussian blur, sigma 0.35 x severity (at 28 px)"),
    "contrast": (_contrast, "contrast reduced by 18% x severity"),
    "colour": (_colour, "random per-image colour tint and offset (grey becomes colour)"),
    "invert": (_invert, "inverts a fraction severity/5 of the images"),
}


def parse_shift(text: str) -> tuple[str, int]:
    return names.parse_shift(text)


def apply_shift(x: torch.Tensor, kind: str, severity: int, seed: int, chunk: int = 2048) -> torch.Tensor:
    """Apply a shift to uint8 images (N, C, H, W); returns uint8 (channels may grow to 3 for colour)."""
    fn = SHIFTS[kind][0]
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk].float() / 255
        out.append((fn(xb, severity, g).clamp(0, 1) * 255).round().to(torch.uint8))
    return torch.cat(out)


class ShiftedDomain(Domain):
    def __init__(self, base: Domain, shift: str):
        self.base = base
        self.kind, self.severity = parse_shift(shift)
        self.name = f"{base.name}+{self.kind}:{self.severity}"
        self.label = f"{base.label or base.name}, {self.kind} (severity {self.severity})"
        self.description = f"{base.label or base.name} with {SHIFTS[self.kind][1]}; severity {self.severity} of 5."
        self.channels = 3 if self.kind == "colour" else base.channels
        self.native_size = base.native_size

    @property
    def classes(self) -> list[str]:  # type: ignore[override]
        return self.base.classes

    def available(self):
        return self.base.available()

    def variant(self) -> str:
        return f"shifted {self.base.variant()}"

    def cache_key(self) -> str:
        return f"{self.base.cache_key()}+{self.kind}:{self.severity}-v{self.version}"

    def _seed(self) -> int:
        return int(hashlib.sha1(self.name.encode()).hexdigest()[:8], 16)

    def sample(self, per_class: int, seed: int = 0, size: int = 128,
               splits: tuple[str, ...] = ("train",)) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The base's `sample` with this shift applied (only where the base decodes a sample: a folder)."""
        x, y, total = self.base.sample(per_class, seed, size, splits)  # type: ignore[attr-defined]
        return apply_shift(x, self.kind, self.severity, self._seed()), y, total

    def _decode(self) -> DomainData:
        b = self.base.load()
        s = self._seed()
        return DomainData(self.name, list(b.classes),
                          apply_shift(b.x_train, self.kind, self.severity, s), b.y_train.clone(),
                          apply_shift(b.x_test, self.kind, self.severity, s + 1), b.y_test.clone())
