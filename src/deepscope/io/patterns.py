"""File-name metadata patterns: named-group regular expressions and presets.

Every named group of the pattern becomes a metadata column. Numeric groups are
converted to integers. A preset may also derive columns (BBBC005's ``field``,
the simulated field of view shared by every blur level and stain).

A pattern is a user's text applied to names that come from data, so its cost is bounded (issue 30):
it is checked with :mod:`re` (so the accepted syntax is Python's), then matched with the ``regex``
package, whose matches stop after ``limits().regex_seconds`` (``DEEPSCOPE_REGEX_TIMEOUT``) of CPU
time. A nested repetition such as ``(a|aa)+$`` would otherwise take exponentially long on a long
name. ``regex`` unrolls counted repeats when it compiles, so a pattern whose nested counts multiply
past :data:`MAX_PATTERN_UNITS` (``((a{100}){100}){100}``) is refused before it is compiled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deepscope.errors import InputError, LimitError

__all__ = ["FilenamePattern", "PRESETS", "get_pattern", "pattern_sub", "MAX_PATTERN_UNITS"]

#: Most units (characters, classes, groups) a pattern may hold with its counted repeats unrolled:
#: ``regex`` unrolls them when compiling (``((a{100}){100}){100}`` takes 0.7 s and 280 MB; one more
#: ``{100}``, over 8 GB), while a file-name pattern needs a few hundred.
MAX_PATTERN_UNITS = 100_000

_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})


def _units(items: Any, parser: Any) -> int:
    """Size of a parsed pattern with its counted repeats unrolled (an open repeat counts its minimum)."""
    n = 0
    for op, av in items:
        if getattr(op, "name", str(op)) in _REPEATS:
            lo, hi, sub = av
            n += max(lo if hi == parser.MAXREPEAT else hi, 1) * _units(sub, parser)
        else:
            subs = [av] if isinstance(av, parser.SubPattern) else [
                y for x in (av if isinstance(av, (list, tuple)) else ())
                for y in (x if isinstance(x, list) else [x]) if isinstance(y, parser.SubPattern)]
            n += 1 + sum(_units(sp, parser) for sp in subs)
    return n


def _compile(pattern: str, what: str = "pattern") -> Any:
    """``pattern`` checked with :mod:`re` and compiled with ``regex`` (whose matches take a timeout).

    Raises
    ------
    deepscope.errors.InputError
        Not a valid regular expression for :mod:`re`, or over :data:`MAX_PATTERN_UNITS` unrolled.
    """
    try:
        from re import _parser as parser  # type: ignore[attr-defined]
    except ImportError:  # Python 3.10
        import sre_parse as parser  # type: ignore[no-redef]
    import regex

    try:
        re.compile(pattern)
        units = _units(parser.parse(pattern), parser)
    except re.error as exc:
        raise InputError(f"{what} {pattern!r} is not a valid regular expression: {exc}") from exc
    except RecursionError:
        raise InputError(f"{what} {pattern!r} nests its groups too deeply; write a flatter pattern") from None
    if units > MAX_PATTERN_UNITS:
        raise InputError(f"{what} {pattern!r} holds {units:,} units once its counted repeats are unrolled, over "
                         f"{MAX_PATTERN_UNITS:,} (nested counts multiply, as in (a{{100}}){{100}}); write a "
                         "shorter pattern, e.g. with + or * instead of large counts")
    try:
        return regex.compile(pattern)
    except regex.error as exc:  # a pattern re accepts but regex does not: none is known
        raise InputError(f"{what} {pattern!r} is not supported by the pattern matcher: {exc}") from exc


def _too_slow(pattern: str, name: str, seconds: float) -> LimitError:
    from deepscope.io.limits import limits

    return LimitError(f"{name!r}: the file-name pattern {pattern!r} took over {seconds:g} s (CPU time) to match this "
                      "name and was stopped; nested repetitions such as (a|aa)+ take exponentially long. "
                      f"Simplify the pattern, or {limits().how_to_raise('regex_seconds')}")


def pattern_sub(pattern: str, repl: str, name: str) -> str:
    """:func:`re.sub` of ``pattern`` by ``repl`` in a file name, stopped after ``limits().regex_seconds``.

    Raises
    ------
    deepscope.errors.InputError
        ``pattern`` is not a valid regular expression or ``repl`` not a valid replacement.
    deepscope.errors.LimitError
        The substitution took longer than ``limits().regex_seconds`` (``DEEPSCOPE_REGEX_TIMEOUT``).

    Examples
    --------
    >>> pattern_sub(r"_F\\d+_", "_F1_", "SIMCEPImages_A05_C18_F16_s05_w1.TIF")
    'SIMCEPImages_A05_C18_F1_s05_w1.TIF'
    """
    import regex

    from deepscope.io.limits import limits

    seconds = limits().regex_seconds
    compiled = _compile(pattern)
    try:
        return str(compiled.sub(repl, name, timeout=seconds or None))
    except TimeoutError:
        raise _too_slow(pattern, name, seconds) from None
    except (regex.error, IndexError) as exc:
        raise InputError(f"replacement {repl!r} of pattern {pattern!r} is not valid: {exc}") from exc


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
        object.__setattr__(self, "_bounded", _compile(self.regex))  # what parse() matches with

    @property
    def compiled(self) -> re.Pattern[str]:
        return self._compiled  # type: ignore[attr-defined,no-any-return]

    @property
    def columns(self) -> list[str]:
        return list(self.compiled.groupindex) + [c for c in self.derive if c not in self.compiled.groupindex]

    def parse(self, name: str) -> dict[str, Any] | None:
        """Parse one file name; return None if the pattern does not match.

        Raises
        ------
        deepscope.errors.LimitError
            The match took longer than ``limits().regex_seconds`` (``DEEPSCOPE_REGEX_TIMEOUT``): the
            pattern backtracks catastrophically on this name. It names the pattern, the name and the limit.
        """
        from deepscope.io.limits import limits

        seconds = limits().regex_seconds
        try:
            m = self._bounded.search(name, timeout=seconds or None)  # type: ignore[attr-defined]
        except TimeoutError:
            raise _too_slow(self.regex, name, seconds) from None
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
