"""Training: the one training loop (:class:`Trainer`), its settings, the run folders and :func:`fit_model`,
the training run that ``model.fit``, ``deepscope train`` and the recipes share.

Each task's training task (targets, loss, validation) lives with its task: ``deepscope.tasks.count.CountTask``,
``deepscope.tasks.segment.SegmentTask`` (and the generalist ``FlowSegmentTask``),
``deepscope.tasks.restore.RestoreTask``;
the shared augmentations are in :mod:`deepscope.train.augment`.

Imports go one way: ``train`` imports ``models``, ``predict`` (padding, the predictor for
validation) and ``evaluate`` (validation scores); none of them imports ``train``; the task packages do.

Importing this package imports torch.
"""

from deepscope.models.base import resolve_device
from deepscope.train.config import TrainConfig
from deepscope.train.runs import fit_model, resolve_train_config, split_parts
from deepscope.train.trainer import Trainer, TrainResult

__all__ = ["Trainer", "TrainConfig", "TrainResult", "resolve_device", "fit_model", "resolve_train_config",
           "split_parts"]
