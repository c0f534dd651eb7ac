"""The one training loop (:class:`Trainer`), its configuration and the training tasks.

Importing this package imports torch.
"""

from deepscope.train.config import TrainConfig
from deepscope.train.tasks import CountTask, RestoreTask, SegmentTask
from deepscope.train.trainer import Trainer, TrainResult, resolve_device

__all__ = ["Trainer", "TrainConfig", "TrainResult", "resolve_device", "CountTask", "SegmentTask", "RestoreTask"]
