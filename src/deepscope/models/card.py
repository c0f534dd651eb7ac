"""The model card: a typed, frozen record of what a model is (schema version 2), and the loader that
upgrades older cards.

A card is read from JSON with :func:`load_card` / :meth:`ModelCard.from_dict`, which upgrade a
version-1 card (deepscope 0.1's untyped dict) in memory: the file is never rewritten. A card is never
changed in place either: :meth:`ModelCard.replace` and :meth:`ModelCard.with_output` return a new one.

The task plugin named by ``task`` and ``representation`` owns ``output`` (its post-processing and
prediction options, e.g. watershed thresholds or the counting interval); everything else is typed here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from deepscope.errors import ConfigError, ModelError
from deepscope.models.config import ArchConfig
from deepscope.models.spec import InputSpec

__all__ = ["ModelCard", "WeightsInfo", "CARD_SCHEMA", "load_card", "upgrade_card", "read_card_json", "json_depth",
           "frozen_view"]

#: Schema version of the cards this deepscope writes.
CARD_SCHEMA = 2

#: Representation of a version-1 card, from its task and output options.
_V1_REPRESENTATION = {
    "count": lambda out, arch: out.pop("head", None) or ("regress" if arch == "book-countnet" else "density"),
    "segment": lambda out, arch: out.pop("mode", None) or ("foreground" if arch == "book-unet" else "instances"),
    "restore": lambda out, arch: "image",
}


@dataclass(frozen=True)
class WeightsInfo:
    """The weights file a card describes: name (beside the card), SHA-256, dtype, size, parameters."""

    file: str
    sha256: str
    dtype: str = "float32"
    bytes: int | None = None
    parameters: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _plain(value: Any) -> Any:
    from deepscope.io.jsonable import to_jsonable

    return to_jsonable(value)


def _frozen(value: Any) -> Any:
    """A read-only deep copy: mappings as MappingProxyType, lists as tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def frozen_view(d: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only deep copy of JSON values (mappings cannot be changed, lists are tuples)."""
    out: Mapping[str, Any] = _frozen(d)
    return out


@dataclass(frozen=True)
class ModelCard:
    """Everything deepscope knows about a model besides its weights.

    Attributes
    ----------
    name : str
    task : str
        ``"count"``, ``"segment"``, ``"restore"`` or a task a plugin adds.
    representation : str
        What the network outputs (``"density"``/``"regress"`` counts, ``"instances"`` (foreground +
        distance) or ``"foreground"`` segmentation, ``"image"`` restoration, or a plugin's own): with
        ``task`` it selects the task plugin (:func:`deepscope.models.get_task`).
    architecture : ArchConfig
    input : InputSpec
    output : mapping
        The plugin's options (JSON values); read through the plugin's typed options.
    weights : WeightsInfo, optional
        None until the model is saved.
    description, variant, caution, created, deepscope_version : str
    init_seed : int
        Seed of the weight initialisation.
    training, metrics, evaluation : mapping
        How it was trained; figures on named evaluation sets; how they were measured.
    headline : tuple of str
        A few figures shown by ``deepscope models``.
    notes : mapping
        Any other key of the card file (kept and shown, never read).
    schema_version : int
    """

    name: str
    task: str
    representation: str
    architecture: ArchConfig
    input: InputSpec = field(default_factory=InputSpec)
    output: Mapping[str, Any] = field(default_factory=dict)
    weights: WeightsInfo | None = None
    description: str = ""
    init_seed: int = 0
    training: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    headline: tuple[str, ...] = ()
    caution: str = ""
    variant: str = ""
    created: str = ""
    deepscope_version: str = ""
    notes: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = CARD_SCHEMA

    def __post_init__(self) -> None:
        for name in ("name", "task", "representation"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ModelError(f"model card field {name!r} must be a non-empty string, got {getattr(self, name)!r}")
        if not isinstance(self.architecture, ArchConfig) or not isinstance(self.input, InputSpec):
            raise ModelError("model card needs an ArchConfig 'architecture' and an InputSpec 'input'")
        object.__setattr__(self, "headline", tuple(str(h) for h in self.headline))
        for name in ("output", "training", "metrics", "evaluation", "notes"):
            object.__setattr__(self, name, _frozen(getattr(self, name) or {}))

    # ------------------------------------------------------------------ conversions
    def to_dict(self) -> dict[str, Any]:
        """The card as JSON values, in the order it is written."""
        d: dict[str, Any] = {"schema_version": self.schema_version, "name": self.name, "task": self.task,
                             "representation": self.representation, "description": self.description}
        for key in ("variant", "caution"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        d.update(architecture=self.architecture.to_dict(), input=self.input.to_dict(), output=_plain(self.output),
                 init_seed=self.init_seed, training=_plain(self.training),
                 weights=self.weights.to_dict() if self.weights else None, metrics=_plain(self.metrics))
        if self.evaluation:
            d["evaluation"] = _plain(self.evaluation)
        if self.headline:
            d["headline"] = list(self.headline)
        d.update(created=self.created, deepscope_version=self.deepscope_version)
        d.update(_plain(self.notes))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelCard:
        """A card from its JSON values, upgrading an older schema.

        Raises
        ------
        deepscope.errors.ModelError
            Not a deepscope model card, a newer schema, or invalid fields.
        """
        d = upgrade_card(d)
        try:
            arch = ArchConfig.from_dict(d.pop("architecture"))
            spec = InputSpec.from_dict(d.pop("input", None) or {})
            weights = d.pop("weights", None)
            known = {f.name for f in dataclasses.fields(cls)} - {"architecture", "input", "weights", "notes"}
            typed = {k: d.pop(k) for k in list(d) if k in known}
            notes = {**dict(typed.pop("notes", {}) or {}), **d}
            for key in ("output", "training", "metrics", "evaluation"):
                if typed.get(key) is None:
                    typed.pop(key, None)
                elif not isinstance(typed[key], Mapping):
                    raise ModelError(f"model card field {key!r} must be a mapping, got {type(typed[key]).__name__}")
            return cls(architecture=arch, input=spec, weights=WeightsInfo(**weights) if weights else None,
                       notes=notes, **typed)
        except (ConfigError, TypeError) as exc:
            raise ModelError(f"invalid model card ({exc})") from exc

    # ------------------------------------------------------------------ new cards from this one
    def replace(self, **changes: Any) -> ModelCard:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def with_output(self, **changes: Any) -> ModelCard:
        """A copy whose ``output`` has these options changed (``None`` removes one)."""
        out = {k: v for k, v in {**dict(self.output), **changes}.items() if v is not None}
        return dataclasses.replace(self, output=out)


def upgrade_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """A card's JSON values in the current schema (version-1 cards upgraded; a copy, never in place).

    Version 1 (deepscope 0.1) had ``card_version: 1``, the representation implied by ``output.head``
    (count) or ``output.mode`` (segment) and the restoration models' training-input statistics in a
    top-level ``input_stats``; ``architecture.extra`` was always empty. Both versions accept
    ``input_stats`` at the top level (recipes written for version 1 set it there).

    Raises
    ------
    deepscope.errors.ModelError
        Not a card, or a schema newer than this deepscope reads.
    """
    if not isinstance(card, Mapping) or "architecture" not in card or "task" not in card:
        raise ModelError("not a deepscope model card (no 'task'/'architecture')")
    d = json.loads(json.dumps(_plain(dict(card))))  # a deep copy in JSON values
    version = d.pop("schema_version", None) or d.pop("card_version", None) or 1
    if not isinstance(version, int) or version > CARD_SCHEMA:
        raise ModelError(f"model card schema {version!r} is newer than this deepscope reads ({CARD_SCHEMA}); "
                         "upgrade deepscope")
    d.pop("card_version", None)
    arch = d.get("architecture")
    if isinstance(arch, dict) and "extra" in arch:
        if arch["extra"]:
            raise ModelError(f"model card architecture has 'extra' settings {arch['extra']}, which no deepscope "
                             "network reads")
        arch = {k: v for k, v in arch.items() if k != "extra"}
        d["architecture"] = arch
    if version == 1:
        out = dict(d.get("output") or {})
        rule = _V1_REPRESENTATION.get(d["task"])
        if rule is None:
            raise ModelError(f"version-1 model card has task {d['task']!r}; version 1 knew {sorted(_V1_REPRESENTATION)}")
        d["representation"] = rule(out, (arch or {}).get("arch"))
        d["output"] = out
    if "input_stats" in d:
        stats = d.pop("input_stats")
        d["input"] = {**(d.get("input") or {}), "stats": stats or {}}
    d["schema_version"] = CARD_SCHEMA
    return d


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """The deepest nesting of ``[]``/``{}`` in a JSON text, found without parsing it (strings skipped).

    Examples
    --------
    >>> json_depth('{"a": [1, {"b": "]]]"}]}')
    3
    """
    depth = deepest = 0
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub('""', text)):
        depth += 1 if m.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def read_card_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON values of a card file (not upgraded).

    Raises
    ------
    deepscope.errors.ModelError
        Unreadable, not JSON, or over the card limits (size, nesting depth; :mod:`deepscope.io.limits`),
        which are checked before the text is parsed.
    """
    from deepscope.errors import InputError
    from deepscope.io.limits import check_regular_file, limits

    p = Path(path)
    lim = limits()
    try:
        # a device (/dev/zero) has st_size 0 and would be read forever, opening a FIFO blocks: stat, never open
        size = check_regular_file(p, what="model card").st_size
    except InputError as exc:
        raise ModelError(f"{exc}; nothing was loaded") from None
    except FileNotFoundError as exc:
        raise ModelError(f"'{p}' is not a valid model card (JSON): {exc}") from exc
    try:
        if lim.exceeded("card_bytes", size):
            raise ModelError(f"'{p}' is {size:,} bytes, over the limit of {lim.card_bytes:,} for a model card (cards "
                             f"are a few KB); nothing was loaded. If it is genuine, {lim.how_to_raise('card_bytes')}")
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"'{p}' is not a valid model card (JSON): {exc}") from exc
    depth = json_depth(text)
    if lim.exceeded("card_depth", depth):
        raise ModelError(f"'{p}' nests {depth} levels deep, over the limit of {lim.card_depth} for a model card; "
                         f"nothing was loaded. If it is genuine, {lim.how_to_raise('card_depth')}")
    try:
        card = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"'{p}' is not a valid model card (JSON): {exc}") from exc
    if not isinstance(card, dict):
        raise ModelError(f"'{p}' is not a deepscope model card (not a JSON object)")
    return card


def load_card(path: str | os.PathLike[str]) -> ModelCard:
    """Read a card file into a :class:`ModelCard` (upgrading older schemas in memory).

    Raises
    ------
    deepscope.errors.ModelError
        Not a valid card.

    Examples
    --------
    >>> from deepscope.models import ZOO
    >>> card = load_card(ZOO / "nuclei.json")
    >>> card.task, card.representation, card.schema_version
    ('segment', 'instances', 2)
    """
    d = read_card_json(path)
    if "architecture" not in d or "task" not in d:
        raise ModelError(f"'{path}' is not a deepscope model card (no 'task'/'architecture')")
    try:
        return ModelCard.from_dict(d)
    except ModelError as exc:
        raise ModelError(f"'{path}': {exc}") from None
