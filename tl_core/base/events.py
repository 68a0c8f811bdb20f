"""The typed events a training run emits, in order: started, progress*, (epoch_end, predictions, embedding?,
checkpoint?)*, then exactly one of finished / failed / cancelled."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Event:
    kind = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass
class RunStarted(Event):
    kind = "started"
    device: str = ""
    total_steps: int = 0
    trainable_params: int = 0
    total_params: int = 0
    start_epoch: int = 0
    batch_size: int = 0
    epochs: int = 0  # what the method makes of the configured epochs (a closed-form head fit needs 1)
    provenance: dict = field(default_factory=dict)  # the data, code and machine this run reads on


@dataclass
class Progress(Event):
    kind = "progress"
    epoch: int = 0
    step: int = 0  # global step, 1-based
    total_steps: int = 0
    images_per_s: float = 0.0
    eta_s: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)


@dataclass
class EpochEnd(Event):
    kind = "epoch"
    epoch: int = 0  # 1-based
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class EmbeddingReady(Event):
    kind = "embedding"
    epoch: int = 0
    method: str = ""
    points: dict[str, list] = field(default_factory=dict)  # x, y, domain, label, pred


@dataclass
class PredictionsReady(Event):
    """What an evaluation said of each image it read (`thumbs.predictions_table` per split: numpy arrays), and
    the input the model read them as (`InputSpec.to_dict`, for their thumbnails); `best`: the run's best epoch
    so far."""

    kind = "predictions"
    epoch: int = 0
    best: bool = False
    tables: dict = field(default_factory=dict)
    spec: dict = field(default_factory=dict)


@dataclass
class BatchHalved(Event):
    """Out of GPU memory: the run goes on with half the batch."""

    kind = "batch_halved"
    batch_size: int = 0
    epoch: int = 0
    step: int = 0


@dataclass
class CheckpointSaved(Event):
    kind = "checkpoint"
    epoch: int = 0
    path: str = ""
    best: bool = False


@dataclass
class RunFinished(Event):
    kind = "finished"
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunFailed(Event):
    kind = "failed"
    reason: str = ""
    epoch: int = 0


@dataclass
class RunCancelled(Event):
    kind = "cancelled"
    epoch: int = 0
