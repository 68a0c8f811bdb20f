"""A run's optimiser and learning-rate schedule: one parameter group per backbone stage (so a method
can give stages their own rates), the bottleneck, the head and the method's own modules."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from tl_core.config import TrainSpec


def param_groups(model: nn.Module, method_modules: nn.Module) -> list[dict[str, Any]]:
    """Named groups of trainable parameters: `backbone.<stage>` each, `backbone` (what follows the
    stages: pooling, a bottleneck), `head`, `method`. Empty groups are left out."""
    bb = model.backbone
    staged = {id(p) for st in bb.stages.values() for p in st.parameters()}
    groups = [{"name": f"backbone.{n}", "params": [p for p in st.parameters() if p.requires_grad]}
              for n, st in bb.stages.items()]
    groups += [
        {"name": "backbone", "params": [p for p in bb.parameters() if p.requires_grad and id(p) not in staged]},
        {"name": "head", "params": list(model.head.parameters())},
        {"name": "method", "params": list(method_modules.parameters())},
    ]
    return [g for g in groups if g["params"]]


def make_optimizer(groups: list[dict[str, Any]], train: TrainSpec, owns_weight_decay: bool) -> torch.optim.Optimizer:
    """Adam, or SGD with Nesterov momentum 0.9. A method that carries its own regulariser in its loss
    (`Method.owns_weight_decay`) gets no weight decay on top, so the objective optimised is the one shown."""
    decay = 0.0 if owns_weight_decay else train.weight_decay
    if train.optimizer == "adam":
        return torch.optim.Adam(groups, lr=train.lr, weight_decay=decay)
    return torch.optim.SGD(groups, lr=train.lr, momentum=0.9, weight_decay=decay, nesterov=True)


def lr_at(train: TrainSpec, progress: float) -> float:
    """The schedule at `progress` in [0, 1]: cosine decay from lr to lr/20 for Adam; the DANN inverse
    decay lr·(1 + 10p)^-0.75 for SGD."""
    if train.optimizer == "sgd":
        return train.lr * (1 + 10 * progress) ** -0.75
    return train.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def apply_lrs(optimizer: torch.optim.Optimizer, lr: float, multipliers: dict[str, float]) -> None:
    """Each group's rate: `lr` times the method's multiplier for it (`backbone.<stage>` falls back to
    `backbone`, anything unnamed to 1)."""
    for g in optimizer.param_groups:
        g["lr"] = lr * multipliers.get(g["name"], multipliers.get(g["name"].split(".")[0], 1.0))
