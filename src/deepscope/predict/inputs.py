"""What a prediction is given, resolved once for every caller: the model, the pixels it takes, the tile overlap.

The batch commands (:mod:`deepscope.predict.files`), pipelines (:mod:`deepscope.pipeline.steps`), the
out-of-core path (:mod:`deepscope.predict.large`) and the evaluation helpers use these, so a model name,
``backend``, ``channel``, ``tile`` and ``overlap`` mean the same thing everywhere.

Importing this module does not import torch; loading a model does.

Examples
--------
>>> from deepscope.predict.inputs import resolve_model, tile_overlap
>>> net = resolve_model("cells-bbbc005", task="segment")   # doctest: +SKIP
>>> tile_overlap(net, 128, None)                           # doctest: +SKIP
32
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.errors import InputError

if TYPE_CHECKING:
    from deepscope.io import Image

__all__ = ["resolve_model", "tile_overlap", "image_array", "model_input", "read_input"]


def resolve_model(model: Any, *, task: str, device: str = "auto", backend: str | None = None) -> Any:
    """A loaded model: ``model`` itself, or :func:`deepscope.models.load_model` of a name or path, set to
    run on ``device`` and ``backend`` (``"auto"``, ``"torch"``, ``"onnx"`` or ``"onnx-int8"``; None keeps the
    model's).

    A loaded model passed in is never changed: when it must run elsewhere (another ``device`` or
    ``backend``) the result is a copy of it (sharing its network and caches where the device is the same),
    so the caller's model keeps its own device and backend.

    Raises
    ------
    deepscope.errors.ModelError
        Unknown name, not a deepscope model (nothing unpickled or executed), or a model of another task.
    deepscope.errors.InputError
        An unknown ``backend``.
    """
    from deepscope.errors import ModelError
    from deepscope.models import load_model
    from deepscope.models.base import DeepscopeModel, Runtime
    from deepscope.predict.backends import BACKENDS

    if backend is not None and backend not in BACKENDS:
        raise InputError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if not isinstance(model, DeepscopeModel):
        net = load_model(model, device=device, task=task)
        if backend is not None:
            net.backend = backend  # a model of our own: set, not copied
        return net
    if model.task != task:
        raise ModelError(f"model {model.name!r} is a {model.task} model; this needs a {task} model")
    move = device != "auto" and model.device_name != device
    if not move and (backend is None or backend == model.backend):
        return model
    # the caller's model keeps its device and backend; on the same device the copy shares its network and
    # caches (keyed by the weights' version, so an ONNX export is made once for both)
    _ = model.net  # built (deterministically from the card) before the copy, so both hold the same one
    net = copy.copy(model)
    if move:
        net._net = copy.deepcopy(model.net)
        net.runtime = Runtime()  # caches (and helper models) of the network on its old device
        net.to(device)
    if backend is not None:
        net.backend = backend
    return net


def tile_overlap(model: Any, tile: int | None, overlap: int | None) -> int | None:
    """The tile overlap a run records: ``overlap`` as given; else, with a ``tile``, the overlap the model's task
    uses (the card's, shrunk to a quarter of a ``tile`` too small to hold it: a tile must be over twice its
    overlap); else None (the model's own default).

    The task's options apply the same rule (:func:`deepscope.tasks.options.shrink_overlap`), so ``tile: 128``
    means the same in ``deepscope segment`` / ``restore``, pipelines and the out-of-core path; this is the
    value the commands write into their provenance record.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> m = SimpleNamespace(options=lambda tile=None, overlap=None: SimpleNamespace(overlap=32 if tile == 128 else 160))
    >>> tile_overlap(m, 128, None), tile_overlap(m, 1024, None), tile_overlap(m, 128, 8), tile_overlap(m, None, None)
    (32, 160, 8, None)
    """
    if overlap is not None or tile is None:
        return overlap
    return int(model.options(tile=tile, overlap=overlap).overlap)


def image_array(image: Image) -> np.ndarray:
    """The 2-D pixels of an :class:`~deepscope.io.Image`: ``(H, W)`` or ``(H, W, C)``, dtype kept.

    Raises
    ------
    deepscope.errors.InputError
        For a volume or time series (index it first).
    """
    x = image.to_yxc()
    return x[..., 0] if x.shape[-1] == 1 else x


def model_input(x: np.ndarray, model: Any, *, channel: int | None = None, path: str = "") -> np.ndarray:
    """Choose the channel(s) a model takes from a raw image, with a clear error
    (:func:`deepscope.models.select_channels` with the model's input spec, which also checks the pixels:
    pass the result to the model with ``checked=True`` so they are not checked twice).

    Raises
    ------
    deepscope.errors.InputError
        ``channel`` out of range, or several distinct channels and no ``channel``: the message
        names the file and the ``--channel`` fix.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> from deepscope.models import InputSpec
    >>> m = SimpleNamespace(spec=InputSpec(), name="m")
    >>> model_input(np.dstack([np.eye(3), np.zeros((3, 3))]), m, channel=0).shape
    (3, 3)
    """
    from deepscope.models import select_channels

    return select_channels(x, model.spec, channel=channel, path=path, model=model.name)


def read_input(path: Path) -> Image:
    """:func:`deepscope.io.read_image` of one input, with a ``FileNotFoundError`` that names a missing file.

    Raises
    ------
    FileNotFoundError
        No such file (a dangling link is read, and fails with its own error).
    """
    from deepscope.io import read_image

    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(f"No such file: '{path}'")
    return read_image(path)
