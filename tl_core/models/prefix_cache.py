"""The frozen stages' output, computed once per run for every image the run touches.

A pretrained backbone with most stages frozen spends nearly all of a step's time recomputing
the same frozen activations (EfficientNet-Lite0 with 8 of 9 stages frozen: 93 % of its FLOPs; all 9
frozen, as the planner runs it: all of them).
Frozen stages run in eval mode (their BatchNorm keeps ImageNet statistics) and have no dropout,
so their output for an image never changes as long as the image does not: the run computes it once
and trains the rest on it. Runs that jitter their images (`augment`), methods that read the pixels
themselves (`Method.needs_pixels`) and runs whose cache would not pay for itself or fit in memory
keep the image path (`skip_reason`, `plan_cache`: the planner's estimate asks these same functions).
"""
from __future__ import annotations

import hashlib
from typing import Callable

import torch

from tl_core.models.backbones import Backbone
from tl_core.base.inputs import InputSpec, adapt

# At most this share of the memory available, and never more than this many bytes.
MAX_SHARE = 0.25
MAX_BYTES = 2 * 1024**3
# Filling the cache costs about two ordinary forward passes per image (batching, the copy into the store;
# EfficientNet-Lite0 at 224 px: 43 images/s against 85 for evaluation), so it pays from there on.
PASS_COST = 2.0


class PrefixCache:
    """Frozen-prefix activations of named splits; `rows(split, idx)` picks images by their index
    in the domain's own arrays, as the samplers do."""

    def __init__(self, backbone: Backbone, spec: InputSpec, device: torch.device, channels_last: bool,
                 batch: int = 128, memo: dict | None = None):
        """`memo`: activations already computed in this process by another run of the same pretrained backbone,
        frozen to the same depth, on the same image tensors (the advisor's probes share one); exact, since the
        same rows go through the same frozen weights in the same batches."""
        self.bb, self.spec, self.device = backbone, spec, device
        self.channels_last, self.batch = channels_last, batch
        self.memo = memo
        self.store: dict[str, torch.Tensor] = {}
        self.pos: dict[str, torch.Tensor] = {}  # split -> row of each domain index (-1: not cached)

    @torch.no_grad()
    def _prefix(self, x_uint8: torch.Tensor) -> torch.Tensor:
        out = []
        was = self.bb.training
        self.bb.eval()
        try:
            for i in range(0, len(x_uint8), self.batch):
                x = adapt(x_uint8[i:i + self.batch], self.spec, self.device, channels_last=self.channels_last)
                out.append(self.bb.prefix(x).float())
        finally:
            self.bb.train(was)
        return torch.cat(out)

    def bytes_per_image(self, sample: torch.Tensor) -> int:
        """Size of one image's cached activation (from one image through the prefix)."""
        return self._prefix(sample[:1]).numel() * 4

    def add(self, split: str, images: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """Cache `images[rows]` (all of them when `rows` is None) under `split`."""
        if rows is None:
            rows = torch.arange(len(images))
        rows = torch.unique(rows)
        pos = torch.full((len(images),), -1, dtype=torch.long)
        pos[rows] = torch.arange(len(rows))
        key = None
        if self.memo is not None:
            key = (self.bb.name, self.bb.frozen_depth, repr(self.spec), self.channels_last, str(self.device),
                   id(images), images.data_ptr(), len(images), hashlib.sha1(rows.numpy().tobytes()).hexdigest())
        if key is not None and key in self.memo:
            self.store[split] = self.memo[key]
        else:
            self.store[split] = self._prefix(images[rows])
            if key is not None:
                self.memo[key] = self.store[split]
        self.pos[split] = pos

    def alias(self, split: str, same_as: str) -> None:
        """`split` holds the very images of `same_as`, every one cached: share its activations."""
        self.store[split], self.pos[split] = self.store[same_as], self.pos[same_as]

    def rows(self, split: str, idx: torch.Tensor) -> torch.Tensor:
        p = self.pos[split][idx]
        if bool((p < 0).any()):
            raise KeyError(f"{split}: image {int(idx[p < 0][0])} is not in the frozen-feature cache")
        return self.store[split][p.to(self.store[split].device)]


def skip_reason(pretrained: bool, frozen_depth: int, needs_pixels: bool, augment: bool, steps: int) -> str | None:
    """Why a run cannot use the cache whatever its size (None: it can, if it pays and fits)."""
    if not (pretrained and frozen_depth > 0) or needs_pixels or steps == 0:
        return "frozen features not cached: no pretrained frozen stages, or the method reads pixels"
    if augment:  # jittered images have no fixed frozen output: the config asked for them
        return "frozen features not cached: training images are augmented (augment = true)"
    return None


def plan_cache(n_images: int, bytes_per_image: int, images_without_cache: int,
               mem_available: Callable[[], float]) -> tuple[bool, str]:
    """Whether caching `n_images` pays (fewer prefix passes than the run would make without it)
    and fits (`MAX_SHARE` of the memory available, at most `MAX_BYTES`); the reason in words."""
    need = n_images * bytes_per_image
    cap = min(MAX_BYTES, MAX_SHARE * mem_available() * 1024**3)
    if need > cap:
        return False, (f"frozen features not cached: {need / 1024**2:.0f} MB for {n_images} images is over "
                       f"the {cap / 1024**2:.0f} MB allowed")
    if n_images * PASS_COST >= images_without_cache:
        return False, (f"frozen features not cached: caching {n_images} images costs more than the "
                       f"{images_without_cache} prefix passes the run makes without it")
    return True, f"frozen features cached: {n_images} images, {need / 1024**2:.0f} MB"
