"""Training: the one training loop (:class:`Trainer`), its settings, the run folders and :func:`fit_model`,
the training run that ``model.fit``, ``deepscope train`` and the recipes share.

Each task's training task (targets, loss, validation) lives with its task: ``deepscope.tasks.count.CountTask``,
``deepscope.tasks.segment.SegmentTask`` (and the generalist ``FlowSegmentTask``),
``deepscope.tasks.restore.RestoreTask``;
the shared augmentations are in :mod:`deepscope.train.augment`.

Imports go one way: ``train`` imports ``models``, ``predict`` (padding, the predictor for
validation) and ``evaluate`` (validation scores); none of them imports ``train``; the task packages do.

The loop itself (:class:`Trainer`, :class:`TrainResult`) is imported on first use, and with it torch: the
command line reads the settings and split defaults of this package at start-up, and ``deepscope --help`` (or
``inspect``, ``report``, ``catalog`` ...) does not pay torch's second of import for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepscope.models.base import resolve_device
from deepscope.train.config import TrainConfig
from deepscope.train.runs import fit_model, resolve_train_config, split_parts

if TYPE_CHECKING:
    from deepscope.train.trainer import Trainer, TrainResult

__all__ = ["Trainer", "TrainConfig", "TrainResult", "resolve_device", "fit_model", "resolve_train_config",
           "split_parts"]


def __getattr__(name: str) -> Any:
    if name in ("Trainer", "TrainResult"):
        from deepscope.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'deepscope.train' has no attribute {name!r}")
