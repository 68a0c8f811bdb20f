"""Turning a `DataSpec` into the tensors a run trains and evaluates on."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tl_core.config import DataSpec
from tl_core.data.domains import get_domain, DomainData
from tl_core.data.domains.names import parse


@dataclass
class RunData:
    """uint8 images and labels for every split a run touches (target labels in the target
    *train* split are never shown to the method unless the label regime allows it)."""

    classes: list[str]
    source: DomainData
    target: DomainData
    src_train: torch.Tensor  # indices into source.x_train used for training
    src_val: torch.Tensor  # held-out source images for label-free model selection
    tgt_train: torch.Tensor  # indices into target.x_train (unlabelled pool)
    tgt_labelled: torch.Tensor  # indices of target train images whose labels may be used
    y_target_train: torch.Tensor  # target train labels remapped to the source class order
    y_target_test: torch.Tensor
    target_eval: str = ""  # which target images the reported accuracy is measured on, in words

    @property
    def channels(self) -> int:
        return max(self.source.channels, self.target.channels)


def _subsample(y: torch.Tensor, n: int | None, g: torch.Generator) -> torch.Tensor:
    idx = torch.randperm(len(y), generator=g)
    return idx if n is None or n >= len(y) else idx[:n]


def stratified_pick(y: torch.Tensor, per_class: int, num_classes: int, g: torch.Generator) -> torch.Tensor:
    """Up to `per_class` indices of each class, chosen at random but repeatably."""
    out = []
    for c in range(num_classes):
        idx = torch.nonzero(y == c).flatten()
        out.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


# Epochs before the last read each evaluation split on at most this many images (a fixed sample that holds the
# map's points; an accuracy near 90 % read within about 1.5 points), when the run reports its last epoch: their
# readings draw the live curves and decide nothing, and the full test sets (MNIST's 10,000) were 13 % of a short
# LeNet run's wall (bench/run_wall.py). The last epoch reads every image.
INTERIM_EVAL_IMAGES = 1500


def interim_sample(n: int, keep: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(rows, where `keep` lies in them) for an interim evaluation of a split of `n` images: the `keep` rows
    first, then others at random, INTERIM_EVAL_IMAGES in all; rows None (the whole split) when it holds no more."""
    cap = INTERIM_EVAL_IMAGES
    if n <= cap:
        return None, keep
    rest = torch.ones(n, dtype=torch.bool)
    rest[keep] = False
    others = torch.nonzero(rest).flatten()
    others = others[torch.randperm(len(others), generator=g)[:max(0, cap - len(keep))]]
    return torch.cat([keep, others]), torch.arange(len(keep))


def evaluated_images(test_images: int, epochs: int, selection: str) -> int:
    """Images of one evaluation split a run reads over all its epochs (the planner's count of the rule above)."""
    interim = selection == "last"
    return test_images + max(0, epochs - 1) * (min(test_images, INTERIM_EVAL_IMAGES) if interim else test_images)


def transductive(spec: DataSpec) -> bool:
    """Whether a run is evaluated on every target image it may not learn labels from: a folder or
    upload target (no official test split; the standard protocol of Office-31/PACS-style sets, whose
    70-image test fifths could not tell methods apart), unless all its labels are used in training."""
    try:
        kind = parse(spec.target).kind
    except Exception:  # noqa: BLE001 - an unparsable name fails later, with its own message
        return False
    return kind in ("folder", "upload") and str(spec.target_labels) != "all"


def prepare(spec: DataSpec, seed: int) -> RunData:
    src_dom, tgt_dom = get_domain(spec.source), get_domain(spec.target)
    src, tgt = src_dom.load(), tgt_dom.load()
    classes = list(src.classes)
    remap = torch.tensor([classes.index(c) for c in tgt.classes], dtype=torch.long)
    every = transductive(spec)
    if every:  # one pool: adaptation reads these images without labels, evaluation reads their labels
        x_all, y_all = torch.cat([tgt.x_train, tgt.x_test]), torch.cat([tgt.y_train, tgt.y_test])
        tgt = DomainData(tgt.name, list(tgt.classes), x_all, y_all, x_all, y_all)
    y_tt, y_te = remap[tgt.y_train], remap[tgt.y_test]
    g = torch.Generator().manual_seed(10_000 + seed)

    src_idx = _subsample(src.y_train, spec.max_per_domain, g)
    n_val = min(1000, max(len(classes), len(src_idx) // 10))
    val_pick = stratified_pick(src.y_train[src_idx], max(1, n_val // len(classes)), len(classes), g)
    val_mask = torch.zeros(len(src_idx), dtype=torch.bool)
    val_mask[val_pick] = True
    src_val, src_train = src_idx[val_mask], src_idx[~val_mask]

    tgt_idx = _subsample(y_tt, spec.max_per_domain, g)
    k = spec.labels_per_class()
    if k is None:
        labelled = torch.zeros(0, dtype=torch.long)
    elif k == -1:
        labelled = tgt_idx
    else:
        labelled = tgt_idx[stratified_pick(y_tt[tgt_idx], k, len(classes), g)]
    if every and len(labelled):  # evaluated on the images whose labels training never sees
        keep = torch.ones(len(y_te), dtype=torch.bool)
        keep[labelled] = False
        tgt = DomainData(tgt.name, list(tgt.classes), tgt.x_train, tgt.y_train, tgt.x_test[keep], tgt.y_test[keep])
        y_te = y_te[keep]
        what = f"the {len(y_te):,} target images not labelled for training"
    elif every:
        what = f"all {len(y_te):,} target images, labels unused in training"
    else:
        what = f"the target's test split ({len(y_te):,} images)"
    return RunData(classes, src, tgt, src_train, src_val, tgt_idx, labelled, y_tt, y_te, what)


class CyclicSampler:
    """Endless shuffled passes over a set of indices; its state can be saved and restored."""

    def __init__(self, indices: torch.Tensor, seed: int):
        self.indices = indices
        self.g = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(len(indices), generator=self.g)
        self.pos = 0

    def next(self, n: int) -> torch.Tensor:
        out = []
        while n > 0:
            if self.pos >= len(self.perm):
                self.perm = torch.randperm(len(self.indices), generator=self.g)
                self.pos = 0
            take = self.perm[self.pos:self.pos + n]
            self.pos += len(take)
            n -= len(take)
            out.append(self.indices[take])
        return torch.cat(out)

    def state(self) -> dict[str, torch.Tensor]:
        return {"g": self.g.get_state(), "perm": self.perm.clone(), "pos": torch.tensor([self.pos])}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        self.g.set_state(state["g"])
        self.perm = state["perm"].clone()
        self.pos = int(state["pos"][0])


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Light random affine jitter (±11°, ±10% scale, ±12% shift) of normalised images.

    Fills with each image's own corner value so that the background stays the background.
    """
    n = len(x)
    rnd = lambda *s: torch.rand(*s, generator=g) * 2 - 1  # noqa: E731
    ang, sc, t = rnd(n) * 0.2, 1 + rnd(n) * 0.1, rnd(n, 2) * 0.12
    cos, sin = ang.cos() / sc, ang.sin() / sc
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    bg = x[:, :, :1, :1]
    return F.grid_sample(x - bg, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + bg


def strong_augment(x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    """A harder view for consistency training (FixMatch-style): a wider affine jitter (±30°,
    ±20% scale, ±20% shift), a contrast change, Gaussian noise and one cut-out square."""
    n, _, h, w = x.shape
    rnd = lambda *s: (torch.rand(*s, generator=g) * 2 - 1).to(x)  # noqa: E731
    ang, sc, t = rnd(n) * 0.52, 1 + rnd(n) * 0.2, rnd(n, 2) * 0.2
    cos, sin = ang.cos() / sc, ang.sin() / sc
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    bg = x[:, :, :1, :1]
    y = F.grid_sample(x - bg, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = y * (1 + rnd(n, 1, 1, 1) * 0.4) + bg
    y = y + 0.1 * torch.randn(y.shape, generator=g).to(x)
    side = max(1, int(0.3 * min(h, w)))
    cy = (torch.rand(n, generator=g) * (h - side + 1)).long().tolist()
    cx = (torch.rand(n, generator=g) * (w - side + 1)).long().tolist()
    for i in range(n):  # cut-out filled with the background value
        y[i, :, cy[i]:cy[i] + side, cx[i]:cx[i] + side] = bg[i]
    return y
