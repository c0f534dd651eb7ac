"""Models: network architectures, model cards, weights, task-plugin registry and the zoo of shipped models.

``deepscope.models`` is a leaf of deepscope's package graph: it imports ``errors``, ``io`` and
``data`` and nothing from ``train``, ``predict``, ``evaluate``, ``pipeline`` or ``cli``, not even
inside functions (``tests/test_layering.py`` checks it). Those packages import it. What a
model *does* comes from its task plugin (:mod:`deepscope.models.plugins`), registered from above:
deepscope's own plugins are in :mod:`deepscope.tasks`.

>>> from deepscope.models import list_models, load_model
>>> model = load_model("count-bbbc005")   # doctest: +SKIP

Importing this package does not import torch; building a network does.
"""

from deepscope.models.architectures import (Architecture, build_network, get_architecture, list_architectures,
                                            register_architecture)
from deepscope.models.base import DeepscopeModel, Runtime, resolve_device
from deepscope.models.card import CARD_SCHEMA, ModelCard, WeightsInfo, load_card, upgrade_card
from deepscope.models.config import ArchConfig
from deepscope.models.count import CountModel
from deepscope.models.plugins import TaskPlugin, get_task, list_tasks, register_task
from deepscope.models.registry import ZOO, ModelInfo, list_models, load_model, model_card
from deepscope.models.restore import RestoreModel
from deepscope.models.segment import SegmentModel
from deepscope.models.spec import InputSpec, input_stats, prepare_image, select_channels

__all__ = ["ArchConfig", "InputSpec", "prepare_image", "select_channels", "input_stats", "DeepscopeModel",
           "CountModel", "SegmentModel", "RestoreModel", "ModelCard", "WeightsInfo", "CARD_SCHEMA",
           "load_card", "upgrade_card", "Architecture", "register_architecture", "get_architecture",
           "list_architectures", "build_network", "TaskPlugin", "register_task", "get_task", "list_tasks",
           "resolve_device", "Runtime", "ZOO", "ModelInfo", "list_models", "load_model", "model_card"]
