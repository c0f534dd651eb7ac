"""The exceptions deepscope raises for user-facing failures.

Every error says what was found, what was expected and, where there is one,
the fix. Value problems subclass :class:`ValueError` as well, so callers that
already catch ``ValueError`` keep working. Warnings point at the user's code that
called deepscope (:func:`user_stacklevel`), wherever inside deepscope they are raised.
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "DeepscopeError",
    "InputError",
    "ImageReadError",
    "UnsupportedFormatError",
    "ConfigError",
    "ModelError",
    "PairingError",
    "LimitError",
    "OutputError",
    "user_stacklevel",
]


class DeepscopeError(Exception):
    """Base class of every error deepscope raises on purpose."""


class InputError(DeepscopeError, ValueError):
    """An argument or input value is not what the function needs."""


class ImageReadError(DeepscopeError, ValueError):
    """A file could not be read as an image (corrupt, truncated, not an image)."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnsupportedFormatError(ImageReadError):
    """The file's extension is not one deepscope reads."""


class ConfigError(DeepscopeError, ValueError):
    """A configuration (YAML, pipeline spec, model config) is invalid."""


class ModelError(DeepscopeError, ValueError):
    """A model name, folder or weights file is unknown or invalid."""


class PairingError(DeepscopeError, ValueError):
    """Images and their labels, masks or targets could not be paired."""


class LimitError(DeepscopeError, ValueError):
    """An input asks for more memory or disk than a resource limit allows (see :mod:`deepscope.io.limits`)."""


class OutputError(DeepscopeError, OSError):
    """An output folder or file cannot be written (not writable, no free space); found before the work starts."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` for :func:`warnings.warn` that points at the first caller outside deepscope.

    A fixed ``stacklevel`` is right for one call path only (a function called by the user, or by
    another deepscope function, or moved to another module); this one counts the deepscope frames
    above the warning, so the warning names the user's file and line however it was reached. A
    warning raised on a worker thread points at the thread's own first frame outside deepscope.

    Examples
    --------
    >>> import warnings
    >>> def library_function():  # imagine it inside deepscope
    ...     warnings.warn("look", stacklevel=user_stacklevel())
    """
    frame = sys._getframe(1)  # the function that warns
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level
