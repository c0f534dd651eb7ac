"""Training settings (separate from the architecture config stored beside the weights)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from deepscope.errors import ConfigError
from deepscope.models.config import from_fields

__all__ = ["TrainConfig", "OPTIMIZERS", "SCHEDULES", "AMP_MODES"]

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "exponential", "onecycle")
AMP_MODES = ("auto", "bf16", "fp16", "off")


@dataclass(frozen=True)
class TrainConfig:
    """How to train (optimiser, schedule, length, checkpoints); read from YAML by the CLI.

    Parameters
    ----------
    epochs : int
        Number of epochs.
    steps_per_epoch : int, optional
        Optimiser steps per epoch; by default one pass over the training images.
    batch_size : int
    optimizer : {"adamw", "adam", "sgd"}
    lr, weight_decay : float
    schedule : {"constant", "cosine", "exponential", "onecycle"}
        ``"exponential"`` is the book's: ``lr * decay_rate ** (step / decay_steps)`` (staircase).
    decay_rate, decay_steps : float, int
        For the exponential schedule (book: 0.9 every 250 steps).
    warmup_steps : int
        Linear warm-up at the start (cosine/constant).
    grad_clip : float or None
        Clip the global gradient norm.
    amp : {"auto", "bf16", "fp16", "off"}
        Mixed precision: ``"auto"`` uses bf16 on CUDA and full precision on CPU.
    channels_last : bool
        Channels-last memory format on CUDA (faster convolutions).
    early_stopping : int or None
        Stop after this many epochs without improvement of ``monitor``.
    monitor, mode : str
        Validation metric to select the best checkpoint and its direction (``"min"``/``"max"``).
    checkpoint_every : int
        Also save a resumable checkpoint every this many steps (0 = only at epoch ends).
    seed : int
        Seeds weight initialisation and every random draw of the data pipeline.
    device : str
        ``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
    time_budget : float or None
        Stop training (cleanly, with a final validation and checkpoint) after this many seconds.
    clock : {"steps", "time"}
        What the cosine / one-cycle schedules count: optimiser steps, or (with ``time_budget``) the
        fraction of the time budget used, for runs sized by time rather than steps.
    ema : float
        Decay of an exponential moving average of the weights (and BatchNorm statistics), e.g.
        0.999; 0 turns it off. With it, validation, the best checkpoint and the trained model use the
        averaged weights, which removes most of the epoch-to-epoch noise of the validation score.
    """

    epochs: int = 50
    steps_per_epoch: int | None = None
    batch_size: int = 8
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    decay_rate: float = 0.9
    decay_steps: int = 250
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    amp: str = "auto"
    channels_last: bool = True
    early_stopping: int | None = None
    monitor: str = "val_loss"
    mode: str = "min"
    checkpoint_every: int = 0
    seed: int = 0
    device: str = "auto"
    time_budget: float | None = None
    clock: str = "steps"
    ema: float = 0.0

    def __post_init__(self) -> None:
        if self.clock not in ("steps", "time"):
            raise ConfigError(f"clock={self.clock!r} is not one of ('steps', 'time')")
        if self.clock == "time" and not self.time_budget:
            raise ConfigError("clock='time' needs time_budget (seconds)")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer={self.optimizer!r} is not one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule={self.schedule!r} is not one of {SCHEDULES}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"amp={self.amp!r} is not one of {AMP_MODES}")
        if self.mode not in ("min", "max"):
            raise ConfigError(f"mode={self.mode!r} must be 'min' or 'max'")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return from_fields(cls, dict(d), what="training settings")
