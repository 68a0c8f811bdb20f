"""The training state: everything a run needs to continue exactly where it stopped.

One object holds the model, the method's own modules, the optimizer and its gradient scaler,
the samplers, the random generators, the embedding's state, the batch size in use and the
record of finished epochs. `state_dict()` gives it as one nested dict of tensors and plain
values; `load_state_dict()` puts it back. The checkpointer saves and restores that dict and
knows nothing else about training; the trainer's loop reads and moves this state.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from tl_core.data.loaders import CyclicSampler


@dataclass
class TrainState:
    """The resumable state of one run (see the module docstring)."""

    model: nn.Module
    method_modules: nn.Module
    optimizer: torch.optim.Optimizer
    samplers: dict[str, CyclicSampler]  # name -> sampler (source, target, labelled)
    aug_g: torch.Generator
    batch_size: int
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics dict per finished epoch
    best: tuple[float, int] | None = None  # (selection score, epoch)
    embed: Any = None  # the embedding's state between epochs (t-SNE positions), numpy
    halvings: int = 0  # times the batch was halved after running out of GPU memory

    @property
    def epoch(self) -> int:
        """Epochs finished (the next one to run, counted from 0)."""
        return int(self.history[-1]["epoch"]) if self.history else 0

    def state_dict(self) -> dict[str, Any]:
        """The whole state: tensors where the values are tensors, plain JSON values elsewhere."""
        opt = self.optimizer.state_dict()
        return {
            "model": self.model.state_dict(),
            "method": self.method_modules.state_dict(),
            "optimizer": {"state": {str(k): v for k, v in opt["state"].items()},
                          "param_groups": opt["param_groups"]},
            "samplers": {k: s.state() for k, s in self.samplers.items()},
            "rng": {"torch": torch.get_rng_state(), "aug": self.aug_g.get_state(), "numpy": _np_state()},
            "embed": None if self.embed is None else torch.from_numpy(np.asarray(self.embed, dtype=np.float32)),
            "history": self.history, "best": list(self.best) if self.best else None,
            "batch_size": self.batch_size, "halvings": self.halvings,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Put back a state made by `state_dict` (after a round trip through the checkpointer)."""
        self.model.load_state_dict(d["model"])
        self.method_modules.load_state_dict(d.get("method") or {})
        opt = d["optimizer"]
        self.optimizer.load_state_dict({"state": {int(k): v for k, v in (opt.get("state") or {}).items()},
                                        "param_groups": opt["param_groups"]})
        for k, s in self.samplers.items():
            s.load(d["samplers"][k])
        rng = d["rng"]
        torch.set_rng_state(rng["torch"])
        self.aug_g.set_state(rng["aug"])
        _set_np_state(rng["numpy"])
        emb = d.get("embed")
        self.embed = None if emb is None else emb.numpy().astype(np.float32)
        self.history[:] = d["history"]
        self.best = tuple(d["best"]) if d.get("best") else None
        self.batch_size = int(d.get("batch_size", self.batch_size))
        self.halvings = int(d.get("halvings", 0))


def _np_state() -> list:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_np_state(s: list) -> None:
    np.random.set_state((s[0], np.asarray(s[1], dtype=np.uint32), s[2], s[3], s[4]))
