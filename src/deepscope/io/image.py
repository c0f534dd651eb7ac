"""The :class:`Image` returned by :func:`deepscope.io.read_image` and its file metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Image", "FileMeta", "AXES_LETTERS", "as_pixels"]

#: The axis letters deepscope uses, slowest to fastest in a typical file.
AXES_LETTERS = {
    "T": "time",
    "Z": "depth (z-planes of a volume)",
    "C": "channel (also colour samples such as RGB)",
    "I": "pages of a multi-page file whose meaning the file does not say",
    "Y": "rows",
    "X": "columns",
    "S": "samples per pixel, when the file also has a separate C axis",
}


@dataclass(frozen=True)
class FileMeta:
    """What a file says about itself, read without interpretation.

    Attributes
    ----------
    path : str
        Absolute path of the file that was read.
    format : str
        ``"tiff"``, ``"ome-tiff"``, ``"imagej-tiff"``, ``"png"``, ``"jpeg"`` or ``"ome-zarr"``.
    shape : tuple of int
        Shape of :attr:`Image.data`.
    dtype : str
        NumPy dtype name of the pixels (``"uint8"``, ``"uint16"``, ``"float32"`` ...).
    bit_depth : int
        Bits per sample stored in the file (e.g. 12 for a 12-bit camera where the file says so).
    pages : int
        Number of pages (TIFF IFDs) or planes in the file; 1 for PNG/JPEG.
    axes : str
        Axis letters of :attr:`Image.data` (see :data:`AXES_LETTERS`).
    pixel_size : tuple of float or None
        Physical pixel size in micrometres as ``(row, col)`` ``(y, x)``, or None when the
        file does not state it.
    z_step : float or None
        Distance between z-planes in micrometres, where the file says.
    channel_names : tuple of str
        Channel names where the file gives them (OME-XML, ImageJ labels).
    ome_xml : str or None
        The OME-XML document embedded in the file, if any.
    sha256 : str
        SHA-256 of the file's bytes (of all files for an OME-Zarr folder): the image's identity
        in the provenance catalog.
    compression : str or None
        Compression scheme of the pixel data (TIFF), e.g. ``"PACKBITS"``, ``"ADOBE_DEFLATE"``.
    extra : dict
        Further facts from the file (TIFF resolution tags, ImageJ metadata ...).
    """

    path: str
    format: str
    shape: tuple[int, ...]
    dtype: str
    bit_depth: int
    pages: int
    axes: str
    pixel_size: tuple[float, float] | None = None
    z_step: float | None = None
    channel_names: tuple[str, ...] = ()
    ome_xml: str | None = None
    sha256: str = ""
    compression: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the metadata as a plain, JSON-serialisable dict (OME-XML left out)."""
        return {
            "path": self.path,
            "format": self.format,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "bit_depth": self.bit_depth,
            "pages": self.pages,
            "axes": self.axes,
            "pixel_size": list(self.pixel_size) if self.pixel_size else None,
            "z_step": self.z_step,
            "channel_names": list(self.channel_names),
            "has_ome_xml": self.ome_xml is not None,
            "sha256": self.sha256,
            "compression": self.compression,
        }


@dataclass(frozen=True)
class Image:
    """Pixels of one file with their axes and the file's metadata.

    The pixels are exactly what the file holds: same dtype, every bit, every page.
    Nothing is rescaled; normalisation is an explicit step
    (:func:`deepscope.data.normalize_percentile`).

    Attributes
    ----------
    data : numpy.ndarray
        Pixel array, shape matching :attr:`axes`.
    axes : str
        One letter per dimension of ``data`` (``"YX"``, ``"YXC"``, ``"ZYX"``, ``"CYX"`` ...).
    meta : FileMeta
        What the file says about itself.

    Examples
    --------
    >>> import numpy as np
    >>> from deepscope.io import Image, FileMeta
    >>> img = Image(np.zeros((4, 5), np.uint8), "YX",
    ...             FileMeta("x.tif", "tiff", (4, 5), "uint8", 8, 1, "YX"))
    >>> img.to_yxc().shape
    (4, 5, 1)
    """

    data: np.ndarray
    axes: str
    meta: FileMeta

    def __post_init__(self) -> None:
        if len(self.axes) != self.data.ndim:
            raise ValueError(f"axes {self.axes!r} do not match data of shape {self.data.shape}")

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``numpy.asarray(image)`` is :attr:`data` (as stored), so an Image goes wherever an array does."""
        data = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return data.copy() if copy else data

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def to_yxc(self) -> np.ndarray:
        """Return a 2-D image as ``(H, W, C)``, channel last.

        Raises
        ------
        deepscope.errors.InputError
            If the image has axes other than Y, X and one channel-like axis (C, S or a
            single-page I/Z/T) — a volume or time series must be indexed first.
        """
        from deepscope.errors import InputError

        data, axes = self.data, self.axes
        # drop singleton non-spatial axes
        for i in reversed(range(len(axes))):
            if axes[i] not in "YX" and data.shape[i] == 1 and len(axes) > 2:
                data = np.take(data, 0, axis=i)
                axes = axes[:i] + axes[i + 1:]
        if axes == "YX":
            return data[..., None]
        if len(axes) == 3 and axes[1:] == "YX":
            return np.moveaxis(data, 0, -1)
        if len(axes) == 3 and axes[:2] == "YX":
            return data
        raise InputError(
            f"{self.meta.path}: image has axes {self.axes!r} and shape {self.shape}; expected a 2-D "
            "image (YX with at most one channel axis). Index the volume or time series first, "
            "e.g. Image.data[z]."
        )


def as_pixels(x: Any) -> Any:
    """The 2-D pixels of an :class:`Image` as deepscope's functions take them, anything else unchanged.

    An Image becomes ``(H, W)`` (one channel) or ``(H, W, C)`` channel-last, dtype kept
    (:meth:`Image.to_yxc`); arrays, lists and other values are returned as they are.

    Raises
    ------
    deepscope.errors.InputError
        For an Image that is a volume or time series (index it first).

    Examples
    --------
    >>> img = Image(np.zeros((2, 4, 5), np.uint8), "CYX", FileMeta("x.tif", "tiff", (2, 4, 5), "uint8", 8, 2, "CYX"))
    >>> as_pixels(img).shape, as_pixels(np.zeros((3, 3))).shape
    ((4, 5, 2), (3, 3))
    """
    if isinstance(x, Image):
        yxc = x.to_yxc()
        return yxc[..., 0] if yxc.shape[-1] == 1 else yxc
    return x
