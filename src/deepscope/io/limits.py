"""Resource limits: how large an input deepscope accepts before it allocates anything for it.

Every limit is checked from what a file *says* (an image header, a zip directory, a model card)
before the memory or disk it asks for is taken, and a refused input gets a :class:`LimitError`
that names the file, what it asks for, the limit and how to raise it. In a batch, that is one
error row; the run goes on.

Each limit is read from an environment variable at the moment it is checked, so a value set in
the shell, by ``deepscope --max-pixels N ...`` or by :func:`set_limits` also reaches the worker
processes a run starts. ``0`` switches a limit off. docs/limits.md states them all.

========================  ==============================  =====================================================
limit                     environment variable            default
========================  ==============================  =====================================================
``max_pixels``            ``DEEPSCOPE_MAX_PIXELS``        250,000,000 values per image (all planes, channels):
                                                          a whole-image command needs ~56-66 bytes per pixel
                                                          (benchmarks/bench_limits.py), so ~17 GB: within
                                                          24 GB with a margin
``zip_member_bytes``      ``DEEPSCOPE_MAX_ZIP_MEMBER``    2 GiB uncompressed per zip member
``zip_total_bytes``       ``DEEPSCOPE_MAX_ZIP_TOTAL``     16 GiB uncompressed per zip archive
``zip_ratio``             ``DEEPSCOPE_MAX_ZIP_RATIO``     200 (uncompressed / compressed, of a member over 1 MiB
                                                          and of the whole archive once it unpacks to over 64 MiB)
``chunk_bytes``           ``DEEPSCOPE_MAX_CHUNK_BYTES``   256 MiB decoded per Zarr chunk (zarr decodes whole chunks)
``yaml_bytes``            ``DEEPSCOPE_MAX_YAML_BYTES``    1 MiB per pipeline YAML file
``yaml_nodes``            ``DEEPSCOPE_MAX_YAML_NODES``    100,000 YAML nodes, counted with every alias expanded
``regex_seconds``         ``DEEPSCOPE_REGEX_TIMEOUT``     1 second per file-name pattern match
``card_bytes``            ``DEEPSCOPE_MAX_CARD_BYTES``    4 MiB per model card (JSON)
``card_depth``            ``DEEPSCOPE_MAX_CARD_DEPTH``    32 levels of JSON nesting in a model card
``max_parameters``        ``DEEPSCOPE_MAX_PARAMETERS``    250,000,000 network parameters (1 GB in float32)
========================  ==============================  =====================================================
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from deepscope.errors import LimitError

__all__ = ["Limits", "LimitError", "limits", "set_limits", "override_limits", "check_pixels", "check_regular_file", "ENV",
           "DEFAULTS"]


#: Environment variable of each limit.
ENV = {
    "max_pixels": "DEEPSCOPE_MAX_PIXELS",
    "zip_member_bytes": "DEEPSCOPE_MAX_ZIP_MEMBER",
    "zip_total_bytes": "DEEPSCOPE_MAX_ZIP_TOTAL",
    "zip_ratio": "DEEPSCOPE_MAX_ZIP_RATIO",
    "card_bytes": "DEEPSCOPE_MAX_CARD_BYTES",
    "card_depth": "DEEPSCOPE_MAX_CARD_DEPTH",
    "max_parameters": "DEEPSCOPE_MAX_PARAMETERS",
    "chunk_bytes": "DEEPSCOPE_MAX_CHUNK_BYTES",
    "yaml_bytes": "DEEPSCOPE_MAX_YAML_BYTES",
    "yaml_nodes": "DEEPSCOPE_MAX_YAML_NODES",
    "regex_seconds": "DEEPSCOPE_REGEX_TIMEOUT",
}
#: Default of each limit.
DEFAULTS = {
    "max_pixels": 250_000_000,
    "zip_member_bytes": 2 << 30,
    "zip_total_bytes": 16 << 30,
    "zip_ratio": 200,
    "card_bytes": 4 << 20,
    "card_depth": 32,
    "max_parameters": 250_000_000,
    "chunk_bytes": 256 << 20,
    "yaml_bytes": 1 << 20,
    "yaml_nodes": 100_000,
    "regex_seconds": 1.0,
}


@dataclass(frozen=True)
class Limits:
    """The limits in force (``0`` = no limit); see the module docstring for their meaning."""

    max_pixels: int
    zip_member_bytes: int
    zip_total_bytes: int
    zip_ratio: float
    card_bytes: int
    card_depth: int
    max_parameters: int
    chunk_bytes: int
    yaml_bytes: int
    yaml_nodes: int
    regex_seconds: float

    def exceeded(self, name: str, value: float) -> bool:
        """Whether ``value`` is over the limit ``name`` (never, when that limit is 0)."""
        limit = getattr(self, name)
        return bool(limit) and value > limit

    def how_to_raise(self, name: str) -> str:
        """The sentence an error ends with: how to raise limit ``name``."""
        extra = " or `deepscope --max-pixels N ...`" if name == "max_pixels" else ""
        return f"raise the limit with the environment variable {ENV[name]}=N{extra} (0 = no limit; see docs/limits.md)"


#: Limits that keep a fraction (the others are whole numbers).
_FLOAT = frozenset({"zip_ratio", "regex_seconds"})


def _parse(name: str, text: str) -> float:
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise LimitError(f"{ENV[name]}={text!r} is not a number; give e.g. {DEFAULTS[name]} (0 = no limit)") from None
    if value < 0 or math.isnan(value):
        raise LimitError(f"{ENV[name]}={text!r} must be >= 0 (0 = no limit)")
    return value


def limits() -> Limits:
    """The limits in force now: each environment variable of :data:`ENV`, else its default.

    Raises
    ------
    LimitError
        An environment variable that is not a number >= 0.

    Examples
    --------
    >>> with override_limits(max_pixels=1000):
    ...     limits().max_pixels
    1000
    """
    values: dict[str, Any] = {}
    for f in fields(Limits):
        text = os.environ.get(ENV[f.name], "").strip()
        v = _parse(f.name, text) if text else DEFAULTS[f.name]
        values[f.name] = v if f.name in _FLOAT else int(v)
    return Limits(**values)


def set_limits(**values: float | None) -> None:
    """Set limits for this process and the worker processes it starts (``None`` restores the default).

    Raises
    ------
    LimitError
        An unknown limit name or a negative value.
    """
    for name, v in values.items():
        if name not in ENV:
            raise LimitError(f"unknown limit {name!r}; limits are {', '.join(ENV)}")
        if v is None:
            os.environ.pop(ENV[name], None)
        else:
            _parse(name, str(v))
            os.environ[ENV[name]] = str(int(v)) if float(v).is_integer() else str(v)


@contextlib.contextmanager
def override_limits(**values: float | None) -> Iterator[None]:
    """Set limits for the duration of a ``with`` block (tests, one-off reads of a large file)."""
    old = {n: os.environ.get(ENV[n]) for n in values}
    set_limits(**values)
    try:
        yield
    finally:
        for n, v in old.items():
            if v is None:
                os.environ.pop(ENV[n], None)
            else:
                os.environ[ENV[n]] = v


def check_pixels(path: object, shape: tuple[int, ...], *, what: str = "image") -> None:
    """Refuse an image whose header declares more values than ``max_pixels``, before it is decoded.

    Raises
    ------
    LimitError
        With the file, its declared shape and how to raise the limit.

    Examples
    --------
    >>> with override_limits(max_pixels=100):
    ...     check_pixels("big.tif", (20, 20))
    Traceback (most recent call last):
    ...
    deepscope.errors.LimitError: big.tif: the image is 20 x 20 = 400 values, over the limit of 100 ...
    """
    lim = limits()
    n = math.prod(int(s) for s in shape)
    if lim.exceeded("max_pixels", n):
        dims = " x ".join(str(int(s)) for s in shape)
        raise LimitError(f"{path}: the {what} is {dims} = {n:,} values, over the limit of {lim.max_pixels:,} "
                         f"(the default keeps a command within about 24 GB of memory); it was not decoded. Crop or "
                         f"tile it, or {lim.how_to_raise('max_pixels')}")


def check_regular_file(path: str | os.PathLike[str], *, what: str = "file") -> os.stat_result:
    """Refuse a path that is not a regular file (a device such as ``/dev/zero``, a FIFO, a socket), links followed.

    Size checks read ``st_size``, which is 0 for a device and a FIFO: reading one would never end (or never
    start, for a FIFO nobody writes to). Every reader and discovery step calls this before opening a path.

    Returns
    -------
    os.stat_result
        The file's status (links followed), for callers that need its size.

    Raises
    ------
    FileNotFoundError
        No such path (or a link to nothing).
    deepscope.errors.InputError
        The path is a folder, a device, a FIFO or a socket.

    Examples
    --------
    >>> check_regular_file("/dev/zero")
    Traceback (most recent call last):
    ...
    deepscope.errors.InputError: /dev/zero: this file is a character device, not a regular file; only ...
    """
    import stat as _stat

    from deepscope.errors import InputError

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"No such {what}: '{path}'") from None
    except OSError as exc:  # a link loop, a name too long, no permission
        raise InputError(f"{path}: cannot read this {what} ({exc.strerror or exc})") from None
    if not _stat.S_ISREG(st.st_mode):
        kind = ("a folder" if _stat.S_ISDIR(st.st_mode) else "a character device" if _stat.S_ISCHR(st.st_mode)
                else "a block device" if _stat.S_ISBLK(st.st_mode) else "a FIFO (named pipe)"
                if _stat.S_ISFIFO(st.st_mode) else "a socket" if _stat.S_ISSOCK(st.st_mode) else "not a file")
        raise InputError(f"{path}: this {what} is {kind}, not a regular file; only regular files are read "
                         "(a device or pipe would be read forever). Point at the file itself")
    return st
