"""Training: the one training loop (:class:`Trainer`), its settings, the training tasks and
:func:`fit_model`, the training run that ``model.fit``, ``deepscope train`` and the recipes share.

Imports go one way: ``train`` imports ``models``, ``predict`` (padding, the predictor for
validation, instance targets) and ``evaluate`` (validation scores); none of them imports ``train``.

Importing this package imports torch.
"""

from deepscope.models.base import resolve_device
from deepscope.train.config import TrainConfig
from deepscope.train.runs import fit_model, resolve_train_config, split_parts
from deepscope.train.tasks import CountTask, RestoreTask, SegmentTask
from deepscope.train.trainer import Trainer, TrainResult

__all__ = ["Trainer", "TrainConfig", "TrainResult", "resolve_device", "CountTask", "SegmentTask", "RestoreTask",
           "fit_model", "resolve_train_config", "split_parts"]
