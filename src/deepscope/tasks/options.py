"""What every task's options share: a frozen dataclass read from the model card's ``output`` and the caller's
arguments, with the defaults in one place (the dataclass).

A task's ``Options`` subclasses :class:`TaskOptions`. Its fields are either *card* fields (declared with
:func:`card_field`: a model card's ``output`` sets them, e.g. ``tile`` or the counting interval) or the
caller's (declared with :func:`dataclasses.field` or a plain default: ``channel``, ``checked`` ...).
:meth:`TaskOptions.parse` merges, from lowest to highest precedence, the dataclass defaults, a plugin's
own defaults (``TorchTaskPlugin.option_defaults``: e.g. a tile overlap of 64 for one representation and 96
for another), the card's ``output`` and the caller's arguments (``None`` means "not given").

Examples
--------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Opts(TaskOptions):
...     tile: int = card_field(1024)
...     channel: int | None = None
>>> Opts.parse({"tile": 512, "notes": "x"}, channel=1)
Opts(tile=512, channel=1)
>>> Opts.parse({"tile": 512}, tile=256).tile
256
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["TaskOptions", "card_field", "shrink_overlap"]

T = TypeVar("T", bound="TaskOptions")

_CARD = "deepscope.card"


def card_field(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
               repr: bool = True) -> Any:
    """A field a model card's ``output`` may set (see :class:`TaskOptions`)."""
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={_CARD: True}, repr=repr)
    return dataclasses.field(default=default, metadata={_CARD: True}, repr=repr)


def shrink_overlap(card_overlap: int, tile: int | None, overlap: int | None) -> int | None:
    """The tile overlap a run uses: ``overlap`` as given; else, with a ``tile``, the card's overlap, shrunk to a
    quarter of a ``tile`` too small to hold it (a tile must be over twice its overlap); else None.

    The one rule of every caller that takes ``tile`` and ``overlap`` (:func:`deepscope.predict.inputs.tile_overlap`
    applies it for the commands' records), so ``tile: 128`` works alike everywhere.

    >>> shrink_overlap(160, 128, None), shrink_overlap(160, 1024, None), shrink_overlap(160, 128, 8)
    (32, 160, 8)
    """
    if overlap is not None or tile is None:
        return overlap
    return card_overlap if tile > 2 * card_overlap else max(tile // 4, 0)


class TaskOptions:
    """Base of a task's frozen options dataclass (subclasses are ``@dataclass(frozen=True)``)."""

    @classmethod
    def card_keys(cls) -> tuple[str, ...]:
        """The fields a model card's ``output`` sets."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get(_CARD))  # type: ignore[arg-type]

    @classmethod
    def parse(cls: type[T], output: Mapping[str, Any] | None = None, *, defaults: Mapping[str, Any] | None = None,
              **given: Any) -> T:
        """The options of one call: dataclass defaults < ``defaults`` < the card's ``output`` < ``given``.

        Keys of ``output`` that are not card fields (notes such as ``postprocess_tuned_on``) are ignored;
        a ``given`` value of None counts as not given.

        Raises
        ------
        TypeError
            A ``given`` name that is not an option of the task (the message lists the valid ones).
        """
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise TypeError(f"{cls.__name__} has no option {', '.join(map(repr, unknown))}; valid options: "
                            f"{', '.join(names)}")
        card = set(cls.card_keys())
        values = {k: v for k, v in (defaults or {}).items() if k in names}
        values.update({k: v for k, v in (output or {}).items() if k in card})
        values.update({k: v for k, v in given.items() if v is not None})
        return cls(**values)

    def replace(self: T, **changes: Any) -> T:
        """A copy with some options changed (None: not changed)."""
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given)  # type: ignore[type-var]

    def card_output(self, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The card fields (or ``keys``) as a card's ``output`` holds them (JSON values)."""
        out = {}
        for k in keys if keys is not None else self.card_keys():
            v = getattr(self, k)
            out[k] = v.to_dict() if hasattr(v, "to_dict") else list(v) if isinstance(v, tuple) else v
        return out
