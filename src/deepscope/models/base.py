"""The model object: a network, its typed card (:class:`~deepscope.models.ModelCard`) and a device,
with save/load and the book's ``fit`` / ``predict`` / ``predict_on_batch`` / ``restore`` API.

What a model *does* (pre-processing, inference, post-processing, training) comes from its task
plugin (:mod:`deepscope.models.plugins`), found from the card's task and representation; the model
classes of the tasks (:class:`~deepscope.models.CountModel` ...) add the task's own methods, which
also call the plugin.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from deepscope.errors import ConfigError, ModelError
from deepscope.io.image import Image, as_pixels
from deepscope.models.card import ModelCard
from deepscope.models.config import ArchConfig
from deepscope.models.plugins import TaskPlugin, get_task
from deepscope.models.spec import InputSpec

__all__ = ["DeepscopeModel", "Runtime", "resolve_device", "BEST_WEIGHTS", "MODEL_WEIGHTS", "MODEL_CARD"]



def _path_of(image: Any) -> str:
    """The file an Image was read from (for messages), or ``""``."""
    return str(image.meta.path) if isinstance(image, Image) else ""

#: File names in a run folder: the best validation weights, and the final model (weights + card).
BEST_WEIGHTS = "best.safetensors"
MODEL_WEIGHTS = "model.safetensors"
MODEL_CARD = "model.json"


def resolve_device(device: str = "auto") -> Any:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(device)``.

    Raises
    ------
    deepscope.errors.ConfigError
        If CUDA is asked for and not available, or the name is invalid.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device={device!r} is not a valid torch device ({exc}); use auto, cpu or cuda") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but CUDA is not available on this machine; use --device cpu or auto")
    return dev


@dataclass(eq=False)
class Runtime:
    """What a model keeps between calls: its inference backends, its parsed domain check and the models it
    calls (a counter's segmenter). Dropped (:meth:`clear`) when the network or its weights change.

    Attributes
    ----------
    backends : dict of str to (key, backend)
        The backend of each kind (``torch``, ``onnx``) with the key (weights version, precision) it was made for.
    domain : object or None
        The card's domain check, parsed (:func:`deepscope.predict.domain.domain_from_dict`).
    helpers : dict of str to DeepscopeModel
        Models this one uses, by role (``segmenter``, ``general_segmenter``).
    """

    backends: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    domain: Any = None
    helpers: dict[str, Any] = field(default_factory=dict)

    def clear(self) -> None:
        """Forget everything (the weights changed)."""
        self.backends.clear()
        self.domain = None
        self.helpers.clear()

    def backend(self, kind: str, key: Any, make: Callable[[], Any]) -> Any:
        """The cached backend of ``kind`` made for ``key``, else ``make()`` (then cached)."""
        cached = self.backends.get(kind)
        if cached is None or cached[0] != key:
            cached = self.backends[kind] = (key, make())
        return cached[1]

    def helper(self, role: str, make: Callable[[], Any]) -> Any:
        """The model kept for ``role``, else ``make()`` (then kept)."""
        if role not in self.helpers:
            self.helpers[role] = make()
        return self.helpers[role]


class DeepscopeModel:
    """A trained (or trainable) deepscope model.

    Parameters
    ----------
    arch : ArchConfig, optional
        Network architecture (default: the plugin's).
    spec : InputSpec, optional
        Input channels and normalisation.
    representation : str, optional
        What the network outputs: selects the task plugin (default: the task's default for ``arch``).
    card : dict or ModelCard, optional
        Descriptive card fields (name, description, training, init_seed, output options ...).
    name : str, optional
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` ...
    model_dir : str, optional
        Folder where ``fit`` writes its run (the book's ``model_dir``).
    **options
        Output options of the plugin (e.g. ``n_classes`` for segmentation, ``upscale`` for restoration).
    """

    task: ClassVar[str] = "base"

    def __init__(self, arch: ArchConfig | None = None, spec: InputSpec | None = None, *,
                 representation: str | None = None, card: Mapping[str, Any] | ModelCard | None = None,
                 name: str | None = None, device: str = "auto", model_dir: str | os.PathLike[str] | None = None,
                 **options: Any) -> None:
        self.device_name = device
        #: What runs the network at inference: "auto" (int8 ONNX Runtime on a CPU where the card says its int8
        #: network keeps the accuracy, else PyTorch), "torch", "onnx" or "onnx-int8" (deepscope.predict.backends).
        self.backend = "auto"
        #: The card file it was loaded from (set by load_model; a fine-tune records its parent's).
        self.source: str | None = None
        self.model_dir = Path(model_dir) if model_dir else None
        self._net: Any = None
        self._device: Any = None
        #: Caches of the network (backends, the parsed domain check, helper models).
        self.runtime = Runtime()
        if isinstance(card, ModelCard):
            self._card = card
            return
        info = dict(card or {})
        representation = representation or info.pop("representation", None) or self.default_representation(arch)
        plugin = get_task(self.task, representation)
        arch = arch or plugin.default_architecture(**options)
        output = {**plugin.default_output(arch, **options), **dict(info.pop("output", None) or {})}
        for key in ("task", "architecture", "input", "card_version", "schema_version"):
            info.pop(key, None)
        name = name or info.pop("name", None) or f"{self.task}-model"
        self._card = ModelCard.from_dict({**info, "schema_version": 2, "name": name, "task": self.task,
                                          "representation": representation, "architecture": arch.to_dict(),
                                          "input": (spec or InputSpec()).to_dict(), "output": output})

    @classmethod
    def default_representation(cls, arch: ArchConfig | None) -> str:
        """The representation of a new model of this task built without one."""
        raise ModelError(f"{cls.__name__} needs representation= (the task plugin to use)")

    # ------------------------------------------------------------------ the card
    @property
    def model_card(self) -> ModelCard:
        """The model's card (typed and frozen; replaced, never changed in place)."""
        return self._card

    @model_card.setter
    def model_card(self, card: ModelCard) -> None:
        if not isinstance(card, ModelCard):
            raise ModelError(f"model_card must be a ModelCard, got {type(card).__name__}")
        if (card.task, card.representation, card.architecture) != (self._card.task, self._card.representation,
                                                                   self._card.architecture):
            raise ModelError("a model's task, representation and architecture are fixed; build another model")
        self._card = card

    def update_card(self, **changes: Any) -> ModelCard:
        """Replace card fields (``output=`` replaces the output options; see :meth:`update_output`)."""
        self.model_card = self._card.replace(**changes)
        return self._card

    def update_output(self, **changes: Any) -> ModelCard:
        """Change some output options (``None`` removes one)."""
        self.model_card = self._card.with_output(**changes)
        return self._card

    @property
    def card(self) -> Mapping[str, Any]:
        """The card as a read-only mapping of JSON values (a view of :attr:`model_card`, for reading).

        Change a card with :meth:`update_card` / :meth:`update_output`, or assign a whole new card
        (``model.card = {...}``, validated).
        """
        from deepscope.models.card import frozen_view

        return frozen_view(self._card.to_dict())

    @card.setter
    def card(self, value: Mapping[str, Any]) -> None:
        self.model_card = ModelCard.from_dict(dict(value))

    @contextlib.contextmanager
    def edit_card(self) -> Iterator[dict[str, Any]]:
        """A plain, editable copy of the card (JSON values) for a ``with`` block; on leaving the block it is
        validated and replaces the card (nothing changes if the block raises or the edit is invalid).

        >>> with model.edit_card() as card:                        # doctest: +SKIP
        ...     card["training"]["hardware"] = "A100"
        """
        d = self._card.to_dict()
        yield d
        self.card = d

    @property
    def name(self) -> str:
        return self._card.name

    @name.setter
    def name(self, value: str) -> None:
        self.update_card(name=value)

    @property
    def arch(self) -> ArchConfig:
        return self._card.architecture

    @property
    def spec(self) -> InputSpec:
        return self._card.input

    @property
    def representation(self) -> str:
        return self._card.representation

    @property
    def plugin(self) -> TaskPlugin:
        """The task plugin that gives this model its behaviour."""
        return get_task(self._card.task, self._card.representation)

    # ------------------------------------------------------------------ network and device
    @property
    def net(self) -> Any:
        """The torch network (built on first use, deterministically from the card's ``init_seed``)."""
        if self._net is None:
            import torch

            from deepscope.models.architectures import build_network

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(self._card.init_seed))
                net = build_network(self.arch)
            self.plugin.init_network(self, net)
            self._net = net
            self.runtime.clear()
        return self._net

    @net.setter
    def net(self, net: Any) -> None:
        """Use another network of this architecture (e.g. one trained outside ``fit``)."""
        self._net = net
        self.runtime.clear()

    def reset_network(self, *, seed: int | None = None) -> Any:
        """Rebuild the network from scratch (from ``seed``, recorded as the card's ``init_seed``)."""
        if seed is not None:
            self.update_card(init_seed=int(seed))
        self._net = None
        return self.net

    @property
    def device(self) -> Any:
        if self._device is None:
            self._device = resolve_device(self.device_name)
        return self._device

    def to(self, device: str) -> DeepscopeModel:
        """Move the model to ``device`` (``"cpu"``, ``"cuda"``, ``"auto"``)."""
        self._device = resolve_device(device)
        self.device_name = device
        self.net.to(self._device)
        return self

    def weights_version(self) -> tuple[Any, ...]:
        """Changes whenever the weights change (training steps, loading): keys caches of the network."""
        import itertools

        net = self.net  # parameters and buffers, not state_dict(): the same tensors at a tenth of the cost per call
        return (id(net), str(self.device), tuple(t._version for t in itertools.chain(net.parameters(), net.buffers())))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str], *, dtype: str = "float32") -> Path:
        """Save weights (safetensors) and the model card (JSON), each atomically.

        ``path`` is a folder (writes ``model.safetensors`` + ``model.json``) or a file stem / ``.json`` /
        ``.safetensors`` name (writes ``<stem>.safetensors`` + ``<stem>.json``).

        Returns
        -------
        pathlib.Path
            The card's path.
        """
        from deepscope import __version__
        from deepscope.io import write_text
        from deepscope.models.weights import save_weights

        p = Path(path)
        if p.suffix in (".json", ".safetensors"):
            stem = p.with_suffix("")
        elif p.is_dir() or not p.suffix:
            p.mkdir(parents=True, exist_ok=True)
            stem = p / "model"
        else:
            stem = p.with_suffix("")
        weights = save_weights(self.net, stem.with_suffix(".safetensors"), dtype=dtype,
                               metadata={"deepscope_model": self.name, "task": self.task})
        created = self._card.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.update_card(weights=weights, created=created,
                         deepscope_version=self._card.deepscope_version or __version__)
        card_path = stem.with_suffix(".json")
        write_text(card_path, json.dumps(self._card.to_dict(), indent=2) + "\n")
        return card_path

    def load_weights(self, weights: str | os.PathLike[str], *, expected_sha256: str | None = None) -> None:
        """Load safetensors weights into the network (never unpickles anything).

        Raises
        ------
        deepscope.errors.ModelError
            Not a safetensors file, checksum mismatch, or weights that do not fit the architecture.
        """
        from deepscope.models.weights import load_weights

        load_weights(self.net, weights, expected_sha256=expected_sha256, architecture=str(self.arch.to_dict()))
        self.runtime.clear()

    @classmethod
    def from_card(cls, card: ModelCard | Mapping[str, Any], weights: str | os.PathLike[str] | None, *,
                  device: str = "auto", verify: bool = True) -> DeepscopeModel:
        """Build a model of its plugin's class from a card (upgraded if older) and load its weights.

        Raises
        ------
        deepscope.errors.ModelError
            Invalid card, no plugin for its task and representation, or weights that do not load.
        """
        if not isinstance(card, ModelCard):
            card = ModelCard.from_dict(card)
        klass = get_task(card.task, card.representation).model_class
        model = klass(card=card, device=device)
        if weights is not None:
            sha = card.weights.sha256 if (verify and card.weights) else None
            model.load_weights(weights, expected_sha256=sha)
        return model

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str = "auto") -> DeepscopeModel:
        """Load a saved model (folder, card ``.json`` or ``.safetensors``); see :func:`deepscope.models.load_model`."""
        from deepscope.models.registry import load_model

        model = load_model(path, device=device)
        if cls is not DeepscopeModel and not isinstance(model, cls):
            raise ModelError(f"'{path}' holds a {model.task} model, not a {cls.task} model")
        return model

    # ------------------------------------------------------------------ book-style API
    def restore(self, checkpoint_dir: str | os.PathLike[str] | None = None) -> DeepscopeModel:
        """Load the weights of a training run folder (default: ``model_dir``), as the book's ``restore()``.

        The output options of the run's card (tuned post-processing, calibrated intervals) come too.

        Raises
        ------
        deepscope.errors.ModelError
            If the folder holds no ``model.safetensors`` / ``best.safetensors``.
        """
        from deepscope.models.card import read_card_json, upgrade_card

        d = Path(checkpoint_dir) if checkpoint_dir else self.model_dir
        if d is None:
            raise ModelError("restore() needs a checkpoint folder: pass it or create the model with model_dir=")
        for name in (MODEL_WEIGHTS, BEST_WEIGHTS):
            if (d / name).exists():
                self.load_weights(d / name)
                if (d / MODEL_CARD).exists():
                    saved = upgrade_card(read_card_json(d / MODEL_CARD))
                    self.update_output(**saved.get("output", {}))
                return self
        raise ModelError(f"no trained weights ({MODEL_WEIGHTS} or {BEST_WEIGHTS}) in '{d}'")

    def fit(self, dataset: Any, nb_epoch: int = 50, *, valid_dataset: Any = None,
            model_dir: str | os.PathLike[str] | None = None, resume: bool = True, progress: bool | None = None,
            **train_options: Any) -> Any:
        """Train on an :class:`~deepscope.data.ImageDataset` (the book's ``model.fit(dataset, nb_epoch=50)``).

        Writes the same run folder as ``deepscope train`` (:func:`deepscope.train.fit_model`).

        Parameters
        ----------
        dataset, valid_dataset : ImageDataset
            Training and validation data (labels as the task needs: counts, masks, target images).
        nb_epoch : int
        model_dir : str, optional
            Run folder (checkpoints, metrics log, ``train.yaml``, ``run.yaml``, ``split.csv``, final
            ``model.safetensors`` + ``model.json``).
        resume : bool
            Continue from ``model_dir/checkpoint.pt`` when present.
        fine_tune : bool, keyword
            Start from this model's trained weights (a shipped model or an earlier run, loaded with
            :func:`deepscope.models.load_model`) with the fine-tuning defaults
            (:data:`deepscope.train.runs.FINE_TUNE_DEFAULTS`); the new card records the parent.
        **train_options
            Any :class:`~deepscope.train.TrainConfig` field (lr, batch_size, schedule, device ...) and
            task options (e.g. ``crop``).

        Returns
        -------
        deepscope.train.TrainResult

        Examples
        --------
        >>> model = load_model("nuclei")                                              # doctest: +SKIP
        >>> model.fit(my_images, valid_dataset=my_valid, model_dir="runs/ft", fine_tune=True)  # doctest: +SKIP
        """
        run_dir = Path(model_dir) if model_dir else self.model_dir
        if run_dir is None:
            from deepscope.errors import InputError

            raise InputError("fit() needs model_dir= (where checkpoints and the trained model are written)")
        self.model_dir = run_dir
        return self.plugin.fit(self, dataset, epochs=nb_epoch, valid_dataset=valid_dataset, run_dir=run_dir,
                               resume=resume, progress=progress, **train_options)

    def default_monitor(self) -> tuple[str, str]:
        """Validation metric (and direction) that picks the best weights when training."""
        return self.plugin.default_monitor(self)

    def prepare(self, image: np.ndarray | Image, *, path: str = "", channel: int | None = None,
                checked: bool = False) -> np.ndarray:
        """Pre-process one raw image (array or :class:`deepscope.io.Image`) into the network's ``(H, W, C)``
        float32 input (``checked``: its pixels were checked already, :func:`deepscope.models.select_channels`)."""
        return self.plugin.prepare(self, as_pixels(image), path=path or _path_of(image), channel=channel,
                                   checked=checked)

    def options(self, **given: Any) -> Any:
        """The typed options of the model's task: the card's ``output`` overridden by ``given`` (e.g. ``tile``,
        ``tta``, ``channel``); see the task's ``Options`` (:mod:`deepscope.tasks`).

        Raises
        ------
        TypeError
            An option the task does not have.
        """
        return self.plugin.options(self, **given)

    def run(self, image: np.ndarray | Image, options: Any = None, **given: Any) -> Any:
        """The task's result for one raw image (an array or :class:`deepscope.io.Image`): ``options`` (from
        :meth:`options`) or the card's options with ``given``. A count's result has the count and its interval,
        a segmentation's the labels, classes and size and domain information, a restoration's the image."""
        opts = self.options(**given) if options is None else options.replace(**given)
        return self.plugin.run(self, as_pixels(image), opts)

    def predict_image(self, image: np.ndarray | Image, **options: Any) -> Any:
        """The prediction for one raw image, an array or a :class:`deepscope.io.Image` (a count, instance
        labels, a restored image ...; :meth:`run` gives the task's whole result)."""
        return self.plugin.predict_image(self, as_pixels(image), **options)

    def predict_on_batch(self, x: Any, **options: Any) -> Any:
        """Predict for a batch ``(N, H, W[, C])`` of raw images (or a list of arrays or Images)."""
        return self.plugin.predict_batch(self, [as_pixels(i) for i in x], **options)

    def predict(self, dataset: Any, **options: Any) -> Any:
        """Predict for every image of a dataset (in order)."""
        return self.predict_on_batch([dataset.get_image(i) for i in range(len(dataset))], **options)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, representation={self.representation!r}, "
                f"arch={self.arch.arch}, base={self.arch.base})")
