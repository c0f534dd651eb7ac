"""JSON encoding of deepscope's records: one conversion of NumPy values, paths, dataclasses and dates.

Every JSON (and YAML) document deepscope writes (model cards, lineage records, result parts, run
files, evaluation reports) goes through :func:`to_jsonable`, so a NumPy number or a path is written
the same way everywhere.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
from typing import Any

import numpy as np

__all__ = ["to_jsonable"]


def to_jsonable(value: Any, *, finite: bool = False, strict: bool = True) -> Any:
    """``value`` as plain JSON types (dict with str keys, list, str, int, float, bool, None), recursively.

    Parameters
    ----------
    value : object
        Dicts, lists/tuples/sets, NumPy scalars and arrays, paths, dataclasses, dates and JSON types.
    finite : bool, default False
        Write NaN and infinities as None (strict JSON has no NaN).
    strict : bool, default True
        Raise on a value of another type; ``strict=False`` writes ``str(value)`` instead.

    Raises
    ------
    TypeError
        A value that is not one of the types above, with ``strict=True``.

    Examples
    --------
    >>> import numpy as np
    >>> to_jsonable({"n": np.int64(3), "x": (np.float32(0.5), float("nan"))}, finite=True)
    {'n': 3, 'x': [0.5, None]}
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, finite=finite, strict=strict) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, finite=finite, strict=strict) for v in value]
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(v, finite=finite, strict=strict) for v in sorted(value, key=str)]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), finite=finite, strict=strict)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if finite and not math.isfinite(value) else value
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value), finite=finite, strict=strict)
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    if hasattr(value, "items") and callable(value.items):  # other mappings (e.g. MappingProxyType)
        return {str(k): to_jsonable(v, finite=finite, strict=strict) for k, v in value.items()}
    if not strict:
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
