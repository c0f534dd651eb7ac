"""What deepscope's task plugins share: typed options, a PyTorch predictor per model and training through
fit_model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from deepscope.errors import InputError
from deepscope.models.plugins import TaskPlugin
from deepscope.predict.backends import inference_backend
from deepscope.predict.files import TaskOutputs
from deepscope.predict.predictor import Activation, Predictor
from deepscope.tasks.files import FileOutputs
from deepscope.train.config import TrainConfig
from deepscope.train.runs import fit_model, resolve_train_config, task_options

__all__ = ["TorchTaskPlugin"]


class TorchTaskPlugin(TaskPlugin):
    """A task plugin whose network runs in PyTorch and trains with deepscope's Trainer.

    Subclasses set ``training_task_class`` (its keyword options are the task options a training
    config may set) and implement the inference and :meth:`training_task`.
    """

    training_task_class: ClassVar[type] = object
    #: Precision of inference (``"float32"``; ``"bf16"``/``"fp16"`` autocast on CUDA).
    precision: ClassVar[str] = "float32"
    #: The task's options (a :class:`deepscope.tasks.options.TaskOptions` dataclass).
    options_class: ClassVar[type[Any]]
    #: This representation's defaults of some options, below the card's values (e.g. its tile overlap).
    option_defaults: Mapping[str, Any] = MappingProxyType({})
    #: What the file driver writes for the task (:class:`deepscope.tasks.files.FileOutputs`).
    file_outputs_class: ClassVar[type[FileOutputs]] = FileOutputs

    def file_outputs(self, model: Any, options: Any, out: str | Path | None = None, **settings: Any) -> TaskOutputs:
        """The task's table row and files for a run of :func:`deepscope.predict.files.predict_files`."""
        return self.file_outputs_class(model, options, out, **settings)

    def options(self, model: Any, **given: Any) -> Any:
        """The typed options of one call: this plugin's defaults < the card's ``output`` < ``given``
        (None: not given).

        Raises
        ------
        TypeError
            An option the task does not have.
        deepscope.errors.InputError
            A value the option does not take (the message names the valid ones).
        """
        return self.options_class.parse(model.model_card.output, defaults=self.option_defaults, **given)

    def run_batch(self, model: Any, images: Sequence[Any], options: Any, *,
                  paths: Sequence[str] | None = None) -> list[Any]:
        """:meth:`run` of each image (plugins that batch the network override it)."""
        return [self.run(model, im, options) for im in images]

    def predict_image(self, model: Any, image: Any, **given: Any) -> Any:
        """``run`` with the card's options and ``given`` (what ``model.predict_image`` returns)."""
        return self.run(model, image, self.options(model, **given))

    def predict_batch(self, model: Any, images: Sequence[Any], **given: Any) -> list[Any]:
        """:meth:`predict_image` of several images."""
        return [self.predict_image(model, im, **given) for im in images]

    def predictor(self, model: Any, *, stride: int | None = None, batch_size: int = 4, tta: str = "none",
                  activation: Activation | None = None) -> Predictor:
        """A predictor over the model's (cached) inference backend (torch, or ONNX Runtime: ``model.backend``)."""
        return Predictor(inference_backend(model, precision=self.precision),
                         stride=model.arch.stride if stride is None else stride, batch_size=batch_size, tta=tta,
                         activation=activation)

    def prepare_dataset(self, model: Any, dataset: Any) -> list[Any]:
        """Every image of a dataset pre-processed (none for a missing or empty dataset)."""
        if dataset is None:
            return []
        return [self.prepare(model, dataset.get_image(i), path=str(dataset.ids[i])) for i in range(len(dataset))]

    def mask_labels(self, dataset: Any, images: list[np.ndarray] | None = None, *,
                    binary: bool = True) -> list[np.ndarray]:
        """The instance label images of a segmentation dataset, checked against its images (``images``: the
        dataset's images already read or prepared, :meth:`prepare_dataset`, so they are not read again).

        Any integer (or boolean) type is accepted; with ``binary``, a binary mask (one value besides
        0, e.g. 0/255) becomes its connected components, one instance each (touching objects merge:
        give instance labels where they touch).

        Raises
        ------
        deepscope.errors.InputError
            A label image of another height/width than its image, or of a non-integer type (both named).
        """
        from scipy import ndimage as ndi

        if dataset is None:
            return []
        paths = dataset.paths or [str(i) for i in dataset.ids]
        lpaths = dataset.label_paths or [f"label of {p}" for p in paths]
        out = []
        for i in range(len(dataset)):
            lab = np.asarray(dataset.get_label(i))
            shape = np.shape(images[i] if images is not None else dataset.get_image(i))[:2]
            if lab.shape[:2] != shape or lab.ndim != 2:
                raise InputError(f"label image '{lpaths[i]}' is {lab.shape} but its image '{paths[i]}' is {shape}: "
                                 "a mask must be one 2-D plane of its image's height and width (check the pairing)")
            if lab.dtype.kind not in "biu":
                raise InputError(f"label image '{lpaths[i]}' has {lab.dtype} pixels; instance labels must be integers "
                                 "(0 = background, one id per object)")
            values = np.unique(lab)
            if binary and len(values) == 2 and values[0] == 0:
                lab = ndi.label(lab > 0)[0]
            out.append(lab.astype(np.int32, copy=False))
        return out

    def training_options(self) -> set[str]:
        return task_options(self.training_task_class)

    def fit(self, model: Any, dataset: Any, *, epochs: int = 50, valid_dataset: Any = None,
            run_dir: str | Path | None = None, resume: bool = True, progress: bool | None = None,
            **train_options: Any) -> Any:
        fine_tune = bool(train_options.pop("fine_tune", False))
        known = set(TrainConfig.__dataclass_fields__)
        settings = {k: v for k, v in train_options.items() if k in known}
        opts = {k: v for k, v in train_options.items() if k not in known}
        has_valid = valid_dataset is not None and len(valid_dataset) > 0
        config = resolve_train_config(model, {**settings, "epochs": epochs}, has_valid=has_valid, fine_tune=fine_tune)
        return fit_model(model, dataset, valid_dataset, run_dir=run_dir or model.model_dir, config=config,
                         task_opts=opts, run_info={"command": "model.fit"}, resume=resume, progress=progress,
                         fine_tune=fine_tune)
