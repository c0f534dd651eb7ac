"""Networks, model wrappers and the model zoo (shipped weights + model cards).

>>> from deepscope.models import list_models, load_model
>>> model = load_model("count-bbbc005")   # doctest: +SKIP

Importing this package imports torch.
"""

from deepscope.models.base import MODEL_CLASSES, DeepscopeModel
from deepscope.models.config import ArchConfig
from deepscope.models.count import CountModel, CountResult
from deepscope.models.registry import ZOO, ModelInfo, list_models, load_model, model_card
from deepscope.models.restore import RestoreModel
from deepscope.models.segment import SegmentModel
from deepscope.models.spec import InputSpec, prepare_image

__all__ = ["ArchConfig", "InputSpec", "prepare_image", "DeepscopeModel", "CountModel", "CountResult",
           "SegmentModel", "RestoreModel", "MODEL_CLASSES", "ZOO", "ModelInfo", "list_models", "load_model",
           "model_card"]
