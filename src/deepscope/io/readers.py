"""Faithful image readers: every page, every bit, no silent rescaling.

TIFF, BigTIFF, OME-TIFF and ImageJ TIFF are read with :mod:`tifffile` (with
:mod:`imagecodecs` for fast PackBits/zlib/LZW/JPEG decoding), PNG with
imagecodecs' libpng (8- and 16-bit, grey and colour; palettes expanded), JPEG with
imagecodecs or Pillow, and OME-Zarr folders with :mod:`zarr`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.errors import DeepscopeError, ImageReadError, UnsupportedFormatError
from deepscope.io.image import FileMeta, Image
from deepscope.io.limits import check_pixels, check_regular_file

__all__ = ["read_image", "read_meta", "SUPPORTED_EXTENSIONS", "image_format", "sha256_file"]

logger = logging.getLogger(__name__)

#: File name endings deepscope reads, lower-cased. OME-Zarr is a folder ending in ``.zarr``.
SUPPORTED_EXTENSIONS = (".ome.tif", ".ome.tiff", ".tif", ".tiff", ".btf", ".tf8", ".png", ".jpg",
                        ".jpeg", ".zarr", ".ome.zarr")

_TIFF_EXT = (".tif", ".tiff", ".btf", ".tf8")
_JPEG_EXT = (".jpg", ".jpeg")

_UM_PER_UNIT = {
    "nm": 1e-3, "nanometer": 1e-3, "µm": 1.0, "um": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0,
    "micrometer": 1.0, "\\u00B5m": 1.0, "mm": 1e3, "millimeter": 1e3, "cm": 1e4, "centimeter": 1e4,
    "m": 1e6, "meter": 1e6, "Å": 1e-4, "angstrom": 1e-4, "pm": 1e-6,
}


def image_format(path: str | os.PathLike[str]) -> str | None:
    """Return the reader deepscope uses for ``path`` from its name, or None if unsupported.

    Parameters
    ----------
    path : str or PathLike
        File (or OME-Zarr folder) name. Case does not matter (``.TIF`` works).

    Returns
    -------
    str or None
        ``"tiff"``, ``"png"``, ``"jpeg"``, ``"zarr"`` or None.

    Examples
    --------
    >>> image_format("SIMCEPImages_A01_C1_F1_s01_w1.TIF")
    'tiff'
    >>> image_format("notes.txt") is None
    True
    """
    name = os.fspath(path).lower().rstrip("/\\")
    if name.endswith(_TIFF_EXT):
        return "tiff"
    if name.endswith(".png"):
        return "png"
    if name.endswith(_JPEG_EXT):
        return "jpeg"
    if name.endswith(".zarr"):
        return "zarr"
    parts = name.replace("\\", "/").split("/")
    if any(part.endswith(".zarr") for part in parts[:-1]) and Path(path).is_dir():
        return "zarr"  # a group inside a Zarr store: a field of an OME-Zarr plate (plate.zarr/A/1/0)
    return None


def sha256_file(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """Return the SHA-256 hex digest of a file's bytes (or of a folder's files, sorted by name).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.bin"); _ = open(p, "wb").write(b"abc")
    >>> sha256_file(p)[:12]
    'ba7816bf8f01'
    """
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(f.relative_to(p).as_posix().encode())
            h.update(b"\0")
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(chunk), b""):
                    h.update(block)
        return h.hexdigest()
    check_regular_file(p)  # a device would be hashed forever, a FIFO would block the open
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_image(path: str | os.PathLike[str], *, series: int | None = None,
               checksum: bool = True, level: int = 0) -> Image:
    """Read one image file with every page and every bit.

    Parameters
    ----------
    path : str or PathLike
        A TIFF / BigTIFF / OME-TIFF (``.tif``, ``.tiff``, ``.TIF``, ``.ome.tif``), PNG, JPEG
        file or an OME-Zarr folder (``.zarr``).
    series : int, optional
        For TIFF files holding several image series of different shapes, which one to read.
        By default a file with one series is read whole, and a file with several series of
        the same shape and dtype is read as a stack along a new ``I`` axis.
    checksum : bool, default True
        Compute the SHA-256 of the file's bytes into ``meta.sha256`` (the image's identity in
        the provenance catalog). The file is read into memory once and decoded from there, so
        this costs one hash of the (compressed) bytes, not a second read.
    level : int, default 0
        For OME-Zarr images, the resolution level of ``multiscales`` to read (0 = full resolution;
        ``meta.pixel_size`` is that level's, ``meta.extra["levels"]`` how many there are). A field
        of an OME-Zarr plate (``plate.zarr/A/1/0``) is read like any OME-Zarr image.

    Returns
    -------
    Image
        ``data`` (same dtype as stored), ``axes`` (e.g. ``"YX"``, ``"YXC"``, ``"ZYX"``,
        ``"CYX"``) and ``meta`` (:class:`~deepscope.io.FileMeta`).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    deepscope.errors.UnsupportedFormatError
        If the extension is not one of :data:`SUPPORTED_EXTENSIONS`.
    deepscope.errors.ImageReadError
        If the path is a device, FIFO or socket (or a link to one; refused from its status, never opened),
        or the file is not a valid image, is truncated, holds no pixels (a 0 x 0 image) or complex
        values, or holds several series of different shapes and ``series`` was not given.
    deepscope.errors.LimitError
        If its header declares more values than the pixel limit (:mod:`deepscope.io.limits`):
        checked before anything is decoded.

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "stack.tif")
    >>> tifffile.imwrite(p, np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5))
    >>> img = read_image(p)
    >>> img.data.shape, img.data.dtype.name, img.meta.pages
    ((3, 4, 5), 'uint16', 3)
    """
    p = Path(path)
    _check_exists(p)
    fmt = image_format(p)
    if fmt is None:
        raise UnsupportedFormatError(
            p, f"unsupported file type {''.join(p.suffixes) or '(no extension)'!r}; deepscope reads "
               f"{', '.join(SUPPORTED_EXTENSIONS)} (case-insensitive)")
    if fmt == "zarr":
        if not p.is_dir():  # an OME-Zarr image is a folder; a file, device or FIFO named .zarr is refused
            _check_regular(p)
        return _read_zarr(p, checksum=checksum, level=level)
    if level:
        raise ImageReadError(p, f"level={level}: only OME-Zarr images have resolution levels")
    if p.is_dir():
        raise ImageReadError(p, "is a folder, not an image file")
    _check_regular(p)  # stat, never open: a device (/dev/zero) is read forever, opening a FIFO blocks
    if fmt == "tiff" and _file_size(p) > _HEADER_FIRST:
        _read_tiff_header(p, series, checksum=False)  # a large file: its header is checked before it is read
    raw, digest = _read_bytes(p, checksum)
    if fmt == "tiff":
        return _read_tiff(p, raw, digest, series)
    if fmt == "png":
        return _read_png(p, raw, digest)
    return _read_jpeg(p, raw, digest)


# --------------------------------------------------------------------------- TIFF

def _read_bytes(p: Path, checksum: bool) -> tuple[bytes, str]:
    """The whole file and its SHA-256 (``""`` without ``checksum``); unreadable or empty files raise."""
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ImageReadError(p, f"cannot be read ({exc.strerror or exc})") from exc
    if not raw:
        raise ImageReadError(p, "is empty (0 bytes)")
    return raw, hashlib.sha256(raw).hexdigest() if checksum else ""


def _check_exists(p: Path) -> None:
    if p.exists():
        return
    if p.is_symlink():
        raise ImageReadError(p, "is a symbolic link that leads nowhere (a loop of links, or a missing target)")
    raise FileNotFoundError(f"No such image file or folder: '{p}'. Check the path and try again.")


def _check_regular(p: Path) -> None:
    """:func:`~deepscope.io.limits.check_regular_file` as a reader's error (an :class:`ImageReadError`, so a
    batch or a data loader skips the file with its reason): a device, FIFO or socket is stat'ed, never opened."""
    from deepscope.errors import InputError

    try:
        check_regular_file(p)
    except InputError as exc:
        raise ImageReadError(p, str(exc).removeprefix(f"{p}: ")) from None


#: Files larger than this (bytes) have their header checked against the limits before they are read.
_HEADER_FIRST = 64 << 20


def _file_size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError as exc:
        raise ImageReadError(p, f"cannot be read ({exc.strerror or exc})") from exc


def _check_header(p: Path, shape: tuple[int, ...], dtype: Any, *, limit: bool = True) -> None:
    """What every reader checks from the header before decoding: some pixels, real values, the pixel limit
    (``limit``: left out by :func:`read_meta`, which decodes nothing)."""
    if any(int(s) == 0 for s in shape) or not shape:
        raise ImageReadError(p, f"holds no pixels (shape {tuple(int(s) for s in shape)}); is the file empty or "
                                "was it written without image data?")
    dt = np.dtype(dtype)
    if dt.kind == "c":
        raise ImageReadError(p, f"holds complex values ({dt.name}); deepscope reads real-valued images: save "
                                "the magnitude or the real part (numpy.abs / .real) explicitly")
    if dt.kind not in "biuf":
        raise ImageReadError(p, f"holds {dt.name} values, not pixels deepscope can read")
    if limit:
        check_pixels(p, tuple(int(s) for s in shape))


def _normalise_axes(axes: str) -> str:
    axes = axes.upper().replace("Q", "I")
    if "S" in axes and "C" not in axes:
        axes = axes.replace("S", "C")
    # other tifffile letters (E lambda, R tile, H, A ...) are mapped to I (unknown pages)
    return "".join(a if a in "TZCIYXS" else "I" for a in axes)


def _select_series(p: Path, tf: Any, series: int | None) -> list[Any]:
    all_series = list(tf.series)
    if not all_series:
        raise ImageReadError(p, "TIFF holds no image data")
    if series is not None:
        if not 0 <= series < len(all_series):
            raise ImageReadError(
                p, f"series={series} requested but the file has {len(all_series)} "
                   f"series (0..{len(all_series) - 1})")
        return [all_series[series]]
    if len(all_series) > 1:
        shapes = {(s.shape, s.dtype.str) for s in all_series}
        if len(shapes) > 1:
            desc = "; ".join(f"{i}: {s.shape} {s.dtype}" for i, s in enumerate(all_series))
            raise ImageReadError(
                p, f"holds {len(all_series)} image series of different shapes ({desc}); "
                   "pass series=<index> to choose one")
    return all_series


def _tiff_meta(p: Path, tf: Any, chosen: list[Any], shape: tuple[int, ...], dtype: np.dtype,
               digest: str) -> FileMeta:
    """FileMeta from an open TiffFile (shared by the full read and the header-only read)."""
    axes = _normalise_axes(chosen[0].axes)
    if len(chosen) > 1:
        axes = "I" + axes
    page0 = tf.pages.first if hasattr(tf.pages, "first") else tf.pages[0]
    ome_xml = tf.ome_metadata if tf.is_ome else None
    ij = tf.imagej_metadata if tf.is_imagej else None
    extra: dict[str, Any] = {"bigtiff": tf.is_bigtiff, "series": len(tf.series)}
    res = _tiff_resolution(page0)
    if res:
        extra["resolution"] = res
    if ij:
        extra["imagej"] = {k: v for k, v in ij.items() if isinstance(v, (int, float, str))}
    desc = page0.description
    if desc and not tf.is_ome and not tf.is_imagej:
        extra["description"] = desc[:2000]
    pixel_size, z_step, names = None, None, ()
    if ome_xml:
        pixel_size, z_step, names = _parse_ome_pixels(ome_xml)
    elif ij:
        pixel_size, z_step, names = _imagej_pixels(ij, res)
    elif res and res.get("unit") == "CENTIMETER":
        pixel_size = res["pixel_size_um"]
    return FileMeta(
        path=os.path.abspath(p), format="ome-tiff" if tf.is_ome else ("imagej-tiff" if tf.is_imagej else "tiff"),
        shape=tuple(shape), dtype=np.dtype(dtype).name, bit_depth=int(page0.bitspersample), pages=len(tf.pages),
        axes=axes, pixel_size=pixel_size, z_step=z_step, channel_names=tuple(names), ome_xml=ome_xml,
        sha256=digest, compression=getattr(page0.compression, "name", str(page0.compression)), extra=extra)


def _tiff_error(p: Path, exc: Exception) -> ImageReadError:
    return ImageReadError(p, f"not a readable TIFF ({type(exc).__name__}: {exc}). Is the file "
                             "truncated or of another format?")


def _read_tiff(p: Path, raw: bytes, digest: str, series: int | None) -> Image:
    import io as _io

    import tifffile

    try:
        with tifffile.TiffFile(_io.BytesIO(raw), name=p.name) as tf:
            chosen = _select_series(p, tf, series)
            _check_header(p, _series_shape(chosen), chosen[0].dtype)
            arrays = [s.asarray(maxworkers=1) for s in chosen]
            data = arrays[0] if len(arrays) == 1 else np.stack(arrays)
            meta = _tiff_meta(p, tf, chosen, data.shape, data.dtype, digest)
    except DeepscopeError:  # LimitError and the others deepscope raises on purpose
        raise
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise _tiff_error(p, exc) from exc
    if data.dtype.byteorder == ">" or (data.dtype.byteorder == "=" and not np.little_endian):
        data = data.astype(data.dtype.newbyteorder("<"))
    return Image(data=data, axes=meta.axes, meta=meta)


def _series_shape(chosen: list[Any]) -> tuple[int, ...]:
    shape = tuple(int(x) for x in chosen[0].shape)
    return (len(chosen), *shape) if len(chosen) > 1 else shape


def _read_tiff_header(p: Path, series: int | None, *, checksum: bool, limit: bool = True) -> FileMeta:
    """A TIFF's FileMeta from its header alone (the file is opened, not read); the pixel limit checked with
    ``limit``."""
    import tifffile

    size = _file_size(p)
    try:
        with tifffile.TiffFile(str(p)) as tf:
            chosen = _select_series(p, tf, series)
            shape = _series_shape(chosen)
            _check_header(p, shape, chosen[0].dtype, limit=limit)
            for page in tf.pages:
                offsets, counts = page.dataoffsets, page.databytecounts
                if offsets and counts and max(o + c for o, c in zip(offsets, counts)) > size:
                    raise ImageReadError(p, f"TIFF is truncated: pixel data runs past the end of the file "
                                            f"({size} bytes)")
            return _tiff_meta(p, tf, chosen, shape, chosen[0].dtype, sha256_file(p) if checksum else "")
    except DeepscopeError:  # LimitError and the others deepscope raises on purpose
        raise
    except OSError as exc:
        raise ImageReadError(p, f"cannot be read ({exc.strerror or exc})") from exc
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise _tiff_error(p, exc) from exc


def read_meta(path: str | os.PathLike[str], *, checksum: bool = True) -> FileMeta:
    """What :func:`read_image` would report as ``meta``, from the file's header: no pixel is decoded.

    TIFF, PNG and JPEG headers and OME-Zarr metadata are parsed without reading the pixel data
    (memory stays small for any file size, and the pixel limit does not apply: nothing is decoded);
    the SHA-256 is computed by streaming the file. For
    TIFF the pixel data offsets are checked against the file size, so a truncated file is still
    caught. The shape of a PNG is that of the decoded array (palettes expanded to RGB, or RGBA
    when the palette has transparency).

    Raises
    ------
    FileNotFoundError, deepscope.errors.UnsupportedFormatError, deepscope.errors.ImageReadError
        As :func:`read_image`.

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.tif")
    >>> tifffile.imwrite(p, np.zeros((3, 4, 5), np.uint16), photometric="minisblack")
    >>> m = read_meta(p)
    >>> m.shape, m.dtype, len(m.sha256)
    ((3, 4, 5), 'uint16', 64)
    """
    p = Path(path)
    _check_exists(p)
    fmt = image_format(p)
    if fmt is None or (fmt == "zarr") != p.is_dir():
        return read_image(p, checksum=checksum).meta  # raises the reader's error
    if fmt == "zarr":
        return _read_zarr(p, checksum=checksum, pixels=False).meta
    _check_regular(p)  # before its size: a device or FIFO reports 0 bytes but would be read forever
    if _file_size(p) == 0:
        raise ImageReadError(p, "is empty (0 bytes)")
    if fmt == "tiff":
        return _read_tiff_header(p, None, checksum=checksum, limit=False)
    digest = sha256_file(p) if checksum else ""
    try:
        with open(p, "rb") as fh:
            if fmt == "png":
                return _png_meta(p, _png_header(p, fh), digest, limit=False)
            h, w, ncomp, bits = _jpeg_header(p, fh)
    except OSError as exc:
        raise ImageReadError(p, f"cannot be read ({exc.strerror or exc})") from exc
    shape = (h, w) if ncomp == 1 else (h, w, ncomp)
    _check_header(p, shape, np.uint8, limit=False)
    return _jpeg_meta(p, shape, np.dtype(np.uint8 if bits <= 8 else np.uint16), digest)


def _tiff_resolution(page: Any) -> dict[str, Any] | None:
    tags = page.tags
    xr_tag = tags.get(282)  # XResolution
    yr_tag = tags.get(283)  # YResolution
    if xr_tag is None or yr_tag is None:
        return None
    try:
        xr, yr = xr_tag.value, yr_tag.value
        xres = xr[0] / xr[1] if isinstance(xr, tuple) else float(xr)
        yres = yr[0] / yr[1] if isinstance(yr, tuple) else float(yr)
        unit_tag = tags.get(296)  # ResolutionUnit
        unit = getattr(unit_tag.value, "name", str(unit_tag.value)) if unit_tag else "INCH"
    except (ZeroDivisionError, TypeError, ValueError, IndexError):
        return None
    out: dict[str, Any] = {"x": xres, "y": yres, "unit": unit}
    if xres > 0 and yres > 0:
        per_unit = {"CENTIMETER": 1e4, "INCH": 25400.0, "MILLIMETER": 1e3, "MICROMETER": 1.0}.get(unit)
        if per_unit:
            out["pixel_size_um"] = (per_unit / yres, per_unit / xres)
    return out


def _imagej_pixels(ij: dict[str, Any], res: dict[str, Any] | None) -> tuple[Any, Any, tuple[str, ...]]:
    unit = str(ij.get("unit", "")).strip()
    scale = _UM_PER_UNIT.get(unit.replace("\\u00B5", "µ"))
    pixel_size = None
    if scale and res and res["x"] > 0 and res["y"] > 0:
        pixel_size = (scale / res["y"], scale / res["x"])
    z = ij.get("spacing")
    z_step = float(z) * scale if (z is not None and scale) else None
    labels = ij.get("Labels") or ij.get("labels") or ()
    if isinstance(labels, str):
        labels = (labels,)
    return pixel_size, z_step, tuple(str(x) for x in labels)


def _parse_ome_pixels(xml: str) -> tuple[Any, Any, tuple[str, ...]]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        logger.warning("OME-XML could not be parsed; pixel size left unknown")
        return None, None, ()
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None, None, ()

    def size(axis: str) -> float | None:
        v = pixels.get(f"PhysicalSize{axis}")
        if v is None:
            return None
        unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")
        return float(v) * _UM_PER_UNIT.get(unit, 1.0)

    sx, sy, sz = size("X"), size("Y"), size("Z")
    names = tuple(ch.get("Name", ch.get("ID", "")) for ch in pixels
                  if ch.tag.rsplit("}", 1)[-1] == "Channel")
    pixel_size = (sy if sy is not None else sx, sx) if sx is not None else None
    return pixel_size, sz, names


# --------------------------------------------------------------------------- PNG / JPEG

#: PNG colour types: name and samples per pixel of the decoded array (palettes expand to RGB).
_PNG_COLOR = {0: ("grey", 1), 2: ("rgb", 3), 3: ("palette", 3), 4: ("grey+alpha", 2), 6: ("rgba", 4)}


@dataclass(frozen=True)
class _PngHeader:
    height: int
    width: int
    bit_depth: int
    color_type: int
    transparency: bool

    @property
    def shape(self) -> tuple[int, ...]:
        n = _PNG_COLOR.get(self.color_type, ("", 1))[1] + (self.color_type == 3 and self.transparency)
        return (self.height, self.width) if n == 1 else (self.height, self.width, n)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16 if self.bit_depth == 16 else np.uint8)


def _png_header(p: Path, fh: Any) -> _PngHeader:
    """IHDR and whether a palette has transparency (tRNS), read chunk by chunk up to the pixel data."""
    if fh.read(8) != b"\x89PNG\r\n\x1a\n":
        raise ImageReadError(p, "is not a PNG file (bad signature); was it renamed from another format?")
    head = fh.read(25)
    if len(head) < 25 or head[4:8] != b"IHDR":
        raise ImageReadError(p, "PNG has no IHDR header; the file is truncated or damaged")
    width, height = int.from_bytes(head[8:12], "big"), int.from_bytes(head[12:16], "big")
    trns = False
    for _ in range(10_000):  # the chunks before the pixel data are few and small
        chunk = fh.read(8)
        if len(chunk) < 8 or chunk[4:8] in (b"IDAT", b"IEND"):
            break
        trns = trns or chunk[4:8] == b"tRNS"
        fh.seek(int.from_bytes(chunk[:4], "big") + 4, 1)
    return _PngHeader(height, width, head[16], head[17], trns)


def _png_meta(p: Path, hdr: _PngHeader, digest: str, shape: tuple[int, ...] | None = None,
              dtype: np.dtype | None = None, *, limit: bool = True) -> FileMeta:
    shape = hdr.shape if shape is None else shape
    _check_header(p, shape, hdr.dtype if dtype is None else dtype, limit=limit)
    return FileMeta(path=os.path.abspath(p), format="png", shape=tuple(shape),
                    dtype=(hdr.dtype if dtype is None else dtype).name, bit_depth=hdr.bit_depth, pages=1,
                    axes="YX" if len(shape) == 2 else "YXC", sha256=digest,
                    extra={"png_color_type": _PNG_COLOR.get(hdr.color_type, ("unknown", 0))[0]})


def _read_png(p: Path, raw: bytes, digest: str) -> Image:
    import io as _io

    import imagecodecs

    hdr = _png_header(p, _io.BytesIO(raw))
    _png_meta(p, hdr, digest)  # the limits, before decoding
    try:
        data = imagecodecs.png_decode(raw)
    except Exception as exc:
        raise ImageReadError(p, f"PNG could not be decoded ({exc}); the file may be truncated") from exc
    meta = _png_meta(p, hdr, digest, tuple(data.shape), data.dtype)
    return Image(data=data, axes=meta.axes, meta=meta)


#: JPEG start-of-frame markers (baseline, progressive, lossless ...; not DHT C4, JPG C8, DAC CC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(p: Path, fh: Any) -> tuple[int, int, int, int]:
    """(height, width, components, bits) from a JPEG's start-of-frame segment, skipping the others."""
    if fh.read(2) != b"\xff\xd8":
        raise ImageReadError(p, "is not a JPEG file (bad signature); was it renamed from another format?")
    for _ in range(100_000):
        b = fh.read(1)
        while b == b"\xff":
            b = fh.read(1)
        if not b:
            break
        marker = b[0]
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            continue
        seg = fh.read(2)
        if len(seg) < 2:
            break
        length = int.from_bytes(seg, "big")
        if marker in _SOF:
            sof = fh.read(6)
            if len(sof) < 6:
                break
            return int.from_bytes(sof[1:3], "big"), int.from_bytes(sof[3:5], "big"), sof[5], sof[0]
        if marker == 0xDA:  # start of scan before any frame header
            break
        fh.seek(length - 2, 1)
    raise ImageReadError(p, "JPEG has no frame header (SOF); the file is truncated or damaged")


def _jpeg_meta(p: Path, shape: tuple[int, ...], dtype: np.dtype, digest: str) -> FileMeta:
    return FileMeta(path=os.path.abspath(p), format="jpeg", shape=tuple(shape), dtype=dtype.name,
                    bit_depth=dtype.itemsize * 8, pages=1, axes="YX" if len(shape) == 2 else "YXC", sha256=digest,
                    extra={"lossy": True})


def _read_jpeg(p: Path, raw: bytes, digest: str) -> Image:
    import io as _io

    h, w, ncomp, _ = _jpeg_header(p, _io.BytesIO(raw))
    _check_header(p, (h, w) if ncomp == 1 else (h, w, ncomp), np.uint8)  # the limits, before decoding
    try:
        import imagecodecs

        data = imagecodecs.jpeg8_decode(raw)
    except Exception:
        try:
            import io as _io

            from PIL import Image as PILImage

            with PILImage.open(_io.BytesIO(raw)) as im:
                im.load()
                data = np.asarray(im)
        except Exception as exc:
            raise ImageReadError(p, f"JPEG could not be decoded ({exc}); the file may be truncated") from exc
    meta = _jpeg_meta(p, tuple(data.shape), data.dtype, digest)
    return Image(data=data, axes=meta.axes, meta=meta)


# --------------------------------------------------------------------------- OME-Zarr

def _check_chunks(p: Path, arr: Any) -> None:
    """Refuse a Zarr array whose chunks decode to more than the ``chunk_bytes`` limit each, before any is read.

    Zarr decodes a whole chunk to read any pixel of it, so a tiny image can declare one huge chunk (a 10 x 10
    image in one 40,000 x 40,000 chunk: 1.6 GB to read 100 pixels). A sharded array is read chunk by chunk
    inside its shards, after each shard's index (16 bytes per chunk), which is checked too.
    """
    import math

    from deepscope.errors import LimitError
    from deepscope.io.limits import limits

    lim = limits()
    try:
        chunks = tuple(int(c) for c in arr.chunks)
        shards = getattr(arr, "shards", None)
        itemsize = np.dtype(arr.dtype).itemsize
    except Exception as exc:  # zarr raises several types for damaged metadata
        raise ImageReadError(p, f"Zarr chunk layout cannot be read ({type(exc).__name__}: {exc})") from exc
    dims = " x ".join(str(c) for c in chunks)
    n = math.prod(chunks) * itemsize
    if lim.exceeded("chunk_bytes", n):
        raise LimitError(f"{p}: its Zarr chunks are {dims} {np.dtype(arr.dtype).name} = {n:,} bytes each decoded, "
                         f"over the limit of {lim.chunk_bytes:,} bytes per chunk (zarr decodes a whole chunk to read "
                         f"any pixel of it); nothing was decoded. Rechunk the store (e.g. 1024 x 1024 chunks), or "
                         f"{lim.how_to_raise('chunk_bytes')}")
    if shards:
        index = math.prod(-(-int(s) // max(1, c)) for s, c in zip(shards, chunks)) * 16
        if lim.exceeded("chunk_bytes", index):
            raise LimitError(f"{p}: its Zarr shards of {' x '.join(str(int(s)) for s in shards)} hold {dims} chunks, "
                             f"an index of {index:,} bytes per shard, over the limit of {lim.chunk_bytes:,} bytes; "
                             f"nothing was decoded. Rechunk the store with larger chunks or smaller shards, or "
                             f"{lim.how_to_raise('chunk_bytes')}")


def _read_zarr(p: Path, *, checksum: bool, pixels: bool = True, level: int = 0) -> Image:
    import zarr

    if not p.is_dir():
        raise ImageReadError(p, "an OME-Zarr image must be a folder ending in .zarr")
    try:
        group = zarr.open_group(str(p), mode="r")
        attrs = dict(group.attrs)
    except Exception as exc:
        raise ImageReadError(p, f"not a readable Zarr group ({type(exc).__name__}: {exc})") from exc
    ome = attrs.get("ome", attrs)  # OME-Zarr 0.5 nests under "ome"
    ms = ome.get("multiscales")
    if not ms:
        if "plate" in ome:
            raise ImageReadError(p, "is an OME-Zarr plate, not one image: read its fields "
                                    "(deepscope.io.ngff.plate_fields; commands and pipelines expand a plate)")
        raise ImageReadError(p, "Zarr group has no OME 'multiscales' metadata; not an OME-Zarr image")
    m0 = ms[0]
    axes_meta = m0.get("axes") or [{"name": a} for a in "tczyx"[-len(group[m0["datasets"][0]["path"]].shape):]]
    names = [a["name"] if isinstance(a, dict) else str(a) for a in axes_meta]
    if not 0 <= level < len(m0["datasets"]):
        raise ImageReadError(p, f"level={level} but the image has {len(m0['datasets'])} resolution level(s) "
                                f"(0..{len(m0['datasets']) - 1})")
    ds0 = m0["datasets"][level]
    try:
        arr = group[ds0["path"]]
        shape, dtype = tuple(int(x) for x in arr.shape), np.dtype(arr.dtype)
    except Exception as exc:  # zarr raises several types for damaged stores
        raise ImageReadError(p, f"OME-Zarr level 0 cannot be opened ({type(exc).__name__}: {exc})") from exc
    _check_header(p, shape, dtype, limit=pixels)
    if pixels:
        _check_chunks(p, arr)  # zarr decodes whole chunks: their size is checked as the image's is
    data = np.asarray(arr[...]) if pixels else np.zeros((1,) * len(shape), dtype)
    axes = "".join({"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}.get(n.lower(), "I") for n in names)
    pixel_size, z_step = None, None
    for tr in ds0.get("coordinateTransformations", []):
        if tr.get("type") == "scale":
            sc = dict(zip(names, tr["scale"]))
            units = {a["name"]: a.get("unit") for a in axes_meta if isinstance(a, dict)}
            f = {n: _UM_PER_UNIT.get(str(units.get(n) or "micrometer"), 1.0) for n in names}
            if "y" in sc and "x" in sc:
                pixel_size = (float(sc["y"]) * f["y"], float(sc["x"]) * f["x"])
            if "z" in sc:
                z_step = float(sc["z"]) * f["z"]
    ch = tuple(c.get("label", "") for c in ome.get("omero", {}).get("channels", []))
    n_planes = int(np.prod([s for s, a in zip(shape, axes) if a not in "YX"] or [1]))
    meta = FileMeta(
        path=os.path.abspath(p), format="ome-zarr", shape=shape, dtype=dtype.name,
        bit_depth=dtype.itemsize * 8, pages=n_planes, axes=axes, pixel_size=pixel_size,
        z_step=z_step, channel_names=ch, sha256=sha256_file(p) if checksum else "",
        extra={"levels": len(m0["datasets"]), "multiscales": json.loads(json.dumps(m0, default=str))})
    return Image(data=data, axes=axes, meta=meta)


