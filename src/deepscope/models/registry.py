"""The model zoo and loading: shipped models in ``models/zoo`` (safetensors + JSON card), loaded by name
or path through one path: card (upgraded if older) -> task plugin -> network -> SHA-256-checked weights."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepscope.errors import ModelError

if TYPE_CHECKING:
    from deepscope.models.card import ModelCard

__all__ = ["ZOO", "list_models", "load_model", "model_card", "ModelInfo", "resolve_model_path", "card_weights_path"]

#: Folder of the shipped models (inside the package: works offline).
ZOO = Path(__file__).parent / "zoo"


@dataclass(frozen=True)
class ModelInfo:
    """One line of :func:`list_models`."""

    name: str
    task: str
    description: str
    path: str


def list_models(task: str | None = None) -> list[ModelInfo]:
    """Shipped models, optionally only those of one task (``count``, ``segment``, ``restore``).

    Examples
    --------
    >>> [m.name for m in list_models("count")]  # doctest: +SKIP
    ['count-bbbc005']
    """
    out = []
    for card_path in sorted(ZOO.glob("*.json")):
        try:
            card = json.loads(card_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if task is not None and card.get("task") != task:
            continue
        out.append(ModelInfo(card.get("name", card_path.stem), card.get("task", "?"),
                             card.get("description", ""), str(card_path)))
    return out


def model_card(ref: str | os.PathLike[str]) -> ModelCard:
    """The :class:`~deepscope.models.ModelCard` of a shipped model name or a saved model path (an older card is
    upgraded in memory; ``.to_dict()`` gives its JSON values).

    Raises
    ------
    deepscope.errors.ModelError
        Unknown name or not a valid card.

    Examples
    --------
    >>> model_card("nuclei").task
    'segment'
    """
    from deepscope.models.card import load_card

    card_path, _ = resolve_model_path(ref)
    return load_card(card_path)


def resolve_model_path(ref: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """Find the card and weights of a model name, run folder, ``.json`` card or ``.safetensors`` file.

    Raises
    ------
    FileNotFoundError
        A path that does not exist.
    deepscope.errors.ModelError
        An unknown name, a folder without a model, or a file that is not a deepscope model.
    """
    s = os.fspath(ref)
    zoo_card = ZOO / f"{s}.json"
    if "/" not in s and os.sep not in s and zoo_card.exists():
        return zoo_card, ZOO / f"{s}.safetensors"
    p = Path(s)
    if not p.exists():
        names = [m.name for m in list_models()]
        if "/" not in s and not p.suffix:
            raise ModelError(f"unknown model {s!r}; shipped models are {names}, or give a run folder or a "
                             "model .json/.safetensors file")
        raise FileNotFoundError(f"No such model file or folder: '{p}'")
    if p.is_dir():
        card = p / "model.json"
        if not card.exists():
            raise ModelError(f"'{p}' holds no deepscope model (model.json + model.safetensors); is training "
                             "finished? (checkpoint.pt alone is resumable, not loadable)")
        return card, None
    if p.suffix == ".json":
        return p, None
    if p.suffix == ".safetensors":
        for cand in (p.with_suffix(".json"), p.parent / "model.json"):
            if cand.exists():
                return cand, p
        raise ModelError(f"'{p}' has no model card beside it ({p.with_suffix('.json').name}); deepscope needs the "
                         "card to know the architecture")
    raise ModelError(f"'{p}' is not a deepscope model: expected a model name, a run folder, a .json model card or a "
                     ".safetensors weights file (deepscope never loads pickled files such as .pt/.pth/.pkl; nothing "
                     "was loaded or executed)")


def card_weights_path(card_path: str | os.PathLike[str], file: str) -> Path:
    """The weights file a model card names (its ``weights.file``), which must lie in the card's own folder.

    ``file`` is a file name (``model.safetensors``) or a relative path without ``..``; with every link
    resolved it must stay inside the card's folder, and be a regular file (not a device or a FIFO). A card
    is data: without this rule it could have deepscope hash ``/dev/zero`` forever or read any file.

    A missing file is returned as it is: reading the weights reports it.

    Raises
    ------
    deepscope.errors.ModelError
        An absolute path, a path with ``..``, one that leads outside the card's folder through a link, or
        not a regular file; the message names the card, the value and the rule.

    Examples
    --------
    >>> card_weights_path("/models/run1/model.json", "/etc/passwd")
    Traceback (most recent call last):
    ...
    deepscope.errors.ModelError: model card '/models/run1/model.json': weights.file '/etc/passwd' is an ...
    """
    import re
    from pathlib import PurePosixPath

    from deepscope.errors import InputError
    from deepscope.io.limits import check_regular_file

    card_path = Path(card_path)
    rule = ("weights.file must name a file in the card's own folder: a file name such as 'model.safetensors' or a "
            "relative path without '..'. Put the weights beside the card and give their name; nothing was loaded")
    parts = PurePosixPath(str(file).replace("\\", "/"))
    if (not str(file).strip() or "\0" in str(file) or parts.is_absolute() or ".." in parts.parts
            or re.match(r"^[A-Za-z]:", str(file))):
        raise ModelError(f"model card '{card_path}': weights.file {str(file)!r} is an absolute path, empty or "
                         f"contains '..'; {rule}")
    folder = card_path.parent
    target = folder.joinpath(*parts.parts)
    real, root = Path(os.path.realpath(target)), Path(os.path.realpath(folder))
    if root not in real.parents:
        raise ModelError(f"model card '{card_path}': weights.file {str(file)!r} leads outside the card's folder "
                         f"(to '{real}', through a link); {rule}")
    if not os.path.exists(target):
        return target  # reported as missing when the weights are read (after the card's other checks)
    try:
        check_regular_file(target, what="weights file")
    except InputError as exc:
        raise ModelError(f"model card '{card_path}': weights.file {str(file)!r}: {exc}; {rule}") from None
    return target


def load_model(ref: str | os.PathLike[str], *, device: str = "auto", task: str | None = None) -> Any:
    """Load a model by shipped name (``"count-bbbc005"``, ``"nuclei"`` ...), run folder, card or weights file.

    Weights are read with safetensors only and checked against the card's sha256.

    Parameters
    ----------
    ref : str or PathLike
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``.
    task : str, optional
        Refuse a model of another task (e.g. ``"segment"``).

    Returns
    -------
    DeepscopeModel
        Of the class its task plugin names (CountModel, SegmentModel, RestoreModel ...).

    Raises
    ------
    deepscope.errors.ModelError
        Unknown name, not a deepscope model, invalid card, no plugin for its task, checksum mismatch, or
        wrong task.
    """
    from deepscope.models.base import DeepscopeModel
    from deepscope.models.card import load_card

    card_path, weights = resolve_model_path(ref)
    card = load_card(card_path)
    if task is not None and card.task != task:
        raise ModelError(f"model '{ref}' is a {card.task} model; this command needs a {task} model")
    if weights is None:
        weights = card_weights_path(card_path, card.weights.file if card.weights else "model.safetensors")
    model = DeepscopeModel.from_card(card, weights, device=device)
    model.source = str(card_path)
    return model
