"""The exceptions deepscope raises for user-facing failures.

Every error says what was found, what was expected and, where there is one,
the fix. Value problems subclass :class:`ValueError` as well, so callers that
already catch ``ValueError`` keep working.
"""

from __future__ import annotations

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
