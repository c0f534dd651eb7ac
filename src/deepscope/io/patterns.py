"""File-name metadata patterns: named-group regular expressions and presets.

Every named group of the pattern becomes a metadata column. Numeric groups are
converted to integers. A preset may also derive columns (BBBC005's ``field``,
the simulated field of view shared by every blur level and stain).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deepscope.errors import InputError

__all__ = ["FilenamePattern", "PRESETS", "get_pattern"]


@dataclass(frozen=True)
class FilenamePattern:
    """A named-group regex applied to file names, with optional derived columns.

    Parameters
    ----------
    regex : str
        Regular expression with named groups; searched (not anchored) in the file name.
    derive : dict of str to callable, optional
        Extra columns computed from the parsed groups, e.g. the BBBC005 ``field``.
    name : str, optional
        Preset name, for messages.

    Examples
    --------
    >>> pat = get_pattern("bbbc005")
    >>> md = pat.parse("SIMCEPImages_A05_C18_F1_s05_w1.TIF")
    >>> md["count"], md["blur"], md["stain"], md["field"]
    (18, 1, 1, 'C18_s05')
    """

    regex: str
    derive: dict[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)
    name: str = "custom"

    def __post_init__(self) -> None:
        try:
            compiled = re.compile(self.regex)
        except re.error as exc:
            raise InputError(f"pattern {self.regex!r} is not a valid regular expression: {exc}") from exc
        if not compiled.groupindex:
            raise InputError(f"pattern {self.regex!r} has no named groups; use (?P<name>...) so each "
                             "group becomes a metadata column")
        object.__setattr__(self, "_compiled", compiled)

    @property
    def compiled(self) -> re.Pattern[str]:
        return self._compiled  # type: ignore[attr-defined,no-any-return]

    @property
    def columns(self) -> list[str]:
        return list(self.compiled.groupindex) + [c for c in self.derive if c not in self.compiled.groupindex]

    def parse(self, name: str) -> dict[str, Any] | None:
        """Parse one file name; return None if the pattern does not match."""
        m = self.compiled.search(name)
        if m is None:
            return None
        out: dict[str, Any] = {k: _convert(v) for k, v in m.groupdict().items()}
        for col, fn in self.derive.items():
            out[col] = fn(out)
        return out


def _convert(v: str | None) -> Any:
    if v is None:
        return None
    if v.isdigit() or (v[:1] in "+-" and v[1:].isdigit()):
        return int(v)
    return v


#: BBBC005 regex as documented: well, count, blur, site, stain (+ nested row/column of the well).
BBBC005_REGEX = (r"SIMCEPImages_(?P<well>(?P<row>[A-P])(?P<column>\d\d))_C(?P<count>\d+)_F(?P<blur>\d+)"
                 r"_s(?P<site>\d+)_w(?P<stain>\d)")

PRESETS: dict[str, FilenamePattern] = {
    "bbbc005": FilenamePattern(
        BBBC005_REGEX,
        derive={"field": lambda g: f"C{g['count']}_s{g['site']:02d}"},
        name="bbbc005",
    ),
    # CellProfiler-style high-content names: <plate>_<well>_s<site>_w<channel>
    "plate-well-site-channel": FilenamePattern(
        r"(?P<plate>[^_]+)_(?P<well>[A-P]\d{2})_s(?P<site>\d+)_w(?P<channel>\d+)",
        name="plate-well-site-channel",
    ),
}


def get_pattern(pattern: str | FilenamePattern | None) -> FilenamePattern | None:
    """Return a :class:`FilenamePattern` for a preset name, a regex string or a pattern.

    Raises
    ------
    deepscope.errors.InputError
        If a string is neither a preset nor a regex with named groups.
    """
    if pattern is None or isinstance(pattern, FilenamePattern):
        return pattern
    if pattern.lower() in PRESETS:
        return PRESETS[pattern.lower()]
    if "(?P<" not in pattern:
        raise InputError(f"pattern {pattern!r} is neither a preset ({', '.join(PRESETS)}) nor a regular "
                         "expression with named groups such as (?P<well>[A-P]\\d\\d)")
    return FilenamePattern(pattern)
