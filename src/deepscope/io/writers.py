"""Atomic writers: a file is written under a temporary name, then renamed into place.

A crash mid-write never leaves a half-written file under the final name, and an
existing file is replaced only once the new one is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.errors import InputError, OutputError

__all__ = ["atomic_path", "write_tiff", "write_png", "write_labels", "write_text", "check_output", "MIN_FREE_BYTES"]

#: Free space an output folder needs before a batch starts writing into it (bytes).
MIN_FREE_BYTES = 64 << 20


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with atomic_path(os.path.join(d, "a.txt")) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> open(os.path.join(d, "a.txt")).read()
    'hello'
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # keep the real suffix so libraries that look at it (tifffile, pyarrow) behave
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part" + "".join(final.suffixes[-1:]),
                               dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes owner-only files (and some writers recreate the file): give the result the
        # permissions a plain open() would have under the umask
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def write_tiff(path: str | os.PathLike[str], data: np.ndarray, *, axes: str | None = None,
               compression: str | None = "zlib", pixel_size: tuple[float, float] | None = None,
               description: dict[str, Any] | None = None, ome: bool = False,
               compression_level: int | None = None, z_step: float | None = None) -> Path:
    """Write an array to a TIFF (or OME-TIFF) atomically, keeping its dtype.

    Parameters
    ----------
    path : str or PathLike
        Destination (parents are created).
    data : numpy.ndarray
        Pixels of any shape and dtype tifffile supports.
    axes : str, optional
        Axis letters; stored in OME/ImageJ metadata so readers can recover them.
    compression : str or None, default "zlib"
        Lossless compression (``"zlib"``, ``"lzw"``, ``"packbits"``, ``"zstd"`` or None).
    compression_level : int, optional
        Level for zlib/zstd (e.g. 1 = fastest); the codec's default when omitted.
    pixel_size : (float, float), optional
        Pixel size in micrometres as (row, col); stored as TIFF resolution in centimetres
        (and as OME PhysicalSize when ``ome=True``).
    description : dict, optional
        JSON-serialisable record (e.g. provenance) stored in the ImageDescription tag for plain TIFFs.
    ome : bool, default False
        Write OME-TIFF metadata.
    z_step : float, optional
        Distance between z-planes in micrometres, stored as OME ``PhysicalSizeZ`` (with ``ome=True`` and a Z
        axis in ``axes``).

    Returns
    -------
    pathlib.Path
        The written path.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> p = write_tiff(os.path.join(tempfile.mkdtemp(), "a.tif"), np.ones((3, 4), np.uint16))
    >>> p.suffix
    '.tif'
    """
    import tifffile

    data = np.asarray(data)
    if axes is not None and len(axes) != data.ndim:
        raise InputError(f"axes={axes!r} has {len(axes)} letters but data has {data.ndim} dimensions")
    kwargs: dict[str, Any] = {"compression": compression}
    if compression_level is not None and compression is not None:
        kwargs["compressionargs"] = {"level": int(compression_level)}
    if pixel_size is not None:
        kwargs["resolution"] = (1e4 / pixel_size[1], 1e4 / pixel_size[0])
        kwargs["resolutionunit"] = "CENTIMETER"
    if ome:
        md: dict[str, Any] = {}
        if axes:
            md["axes"] = axes.replace("I", "Q")
        if pixel_size is not None:
            md.update(PhysicalSizeY=pixel_size[0], PhysicalSizeX=pixel_size[1],
                      PhysicalSizeYUnit="µm", PhysicalSizeXUnit="µm")
        if z_step is not None:
            md.update(PhysicalSizeZ=float(z_step), PhysicalSizeZUnit="µm")
        kwargs["metadata"] = md
    else:
        kwargs["metadata"] = None
        if description is not None:
            kwargs["description"] = json.dumps(description, default=str)
    if data.nbytes > 2**32 - 2**25:
        kwargs["bigtiff"] = True
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, ome=ome, **kwargs)
    return Path(path)


def write_labels(path: str | os.PathLike[str], labels: np.ndarray, *,
                 description: dict[str, Any] | None = None, pixel_size: tuple[float, float] | None = None,
                 voxel_size: tuple[float, float, float] | None = None) -> Path:
    """Write an instance label image as an int32 zlib-compressed TIFF (0 = background), with the pixel
    size in micrometres ``(row, col)`` as TIFF resolution where given (napari and Fiji read it).

    A 3-D ``(Z, Y, X)`` label volume with ``voxel_size`` ``(z, y, x)`` in micrometres is written as an OME-TIFF
    (axes ZYX, ``PhysicalSizeZ/Y/X``, and the TIFF resolution): ImageJ hyperstacks cannot hold int32, and
    :func:`deepscope.io.read_image` reads the voxel size back (``meta.z_step``, ``meta.pixel_size``). The
    OME-XML takes the ImageDescription, so ``description`` cannot be given with ``voxel_size``: keep the
    lineage in a sidecar (:func:`deepscope.provenance.lineage.attach`).

    Raises
    ------
    deepscope.errors.InputError
        If ``labels`` is not an integer array.
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool:
        raise InputError(f"labels for {path} must be an integer array, got dtype {labels.dtype}")
    if voxel_size is not None:
        if labels.ndim != 3 or description is not None:
            raise InputError(f"labels for {path}: voxel_size is for (Z, Y, X) label volumes without a description; "
                             f"got shape {labels.shape}")
        vz, vy, vx = (float(v) for v in voxel_size)
        return write_tiff(path, labels.astype(np.int32, copy=False), axes="ZYX", compression="zlib",
                          compression_level=1, pixel_size=(vy, vx), z_step=vz, ome=True)
    return write_tiff(path, labels.astype(np.int32, copy=False), compression="zlib", compression_level=1,
                      description=description, pixel_size=tuple(pixel_size) if pixel_size else None)


def write_png(path: str | os.PathLike[str], data: np.ndarray, *, level: int = 1) -> Path:
    """Write a uint8 or uint16 grey / RGB / RGBA array as PNG, atomically (lossless at any ``level``).

    ``level`` is the zlib compression level (1 = fast, the default: overlays are written per image;
    9 = smallest). Encoded by imagecodecs, or by Pillow where imagecodecs is not installed (grey
    uint8/uint16 and RGB/RGBA uint8).
    """
    data = np.asarray(data)
    if data.dtype not in (np.uint8, np.uint16):
        raise InputError(f"PNG holds uint8 or uint16 pixels; got {data.dtype} for {path}. "
                         "Convert explicitly (e.g. deepscope.data.to_uint8).")
    try:
        import imagecodecs
    except ImportError:
        encoded = _png_pillow(data, level, path)
    else:
        encoded = imagecodecs.png_encode(data, level=level)
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded)
    return Path(path)


def _png_pillow(data: np.ndarray, level: int, path: Any) -> bytes:
    """PNG bytes by Pillow (the fallback of :func:`write_png`)."""
    import io

    from PIL import Image as PILImage

    if data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.dtype == np.uint16 and data.ndim == 2:
        im = PILImage.fromarray(data.astype("<u2"))  # mode I;16
    elif data.dtype == np.uint8 and (data.ndim == 2 or data.shape[-1] in (3, 4)):
        im = PILImage.fromarray(data)
    else:
        raise InputError(f"writing a {data.dtype} array of shape {data.shape} as PNG ('{path}') needs imagecodecs: "
                         "pip install imagecodecs")
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=int(level))
    return buf.getvalue()


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write text atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def check_output(path: str | os.PathLike[str], *, folder: bool = True, min_free: int = MIN_FREE_BYTES) -> Path:
    """Check, before any work, that outputs can be written to ``path``: created, writable, with free space.

    Parameters
    ----------
    path : str or PathLike
        An output folder (``folder=True``, created if missing) or an output file (its folder is
        checked, and the file itself when it exists).
    min_free : int
        Bytes that must be free on the folder's file system.

    Returns
    -------
    pathlib.Path
        The folder outputs go to.

    Raises
    ------
    deepscope.errors.OutputError
        One line: the path, what is wrong (read-only, permission denied, a file where a folder
        should be, disk full) and what to do. A folder the check created is removed again.

    Examples
    --------
    >>> import tempfile
    >>> check_output(tempfile.mkdtemp()).is_dir()
    True
    """
    import shutil

    p = Path(path)
    d = p if folder else (p.parent if str(p.parent) else Path("."))
    what = "output folder" if folder else "output file"
    created = []  # the folders this check makes, deepest first: removed again when it fails
    q = d
    while not q.exists() and not q.is_symlink() and q != q.parent:
        created.append(q)
        q = q.parent
    try:
        if d.exists() and not d.is_dir():
            raise OutputError(f"{what} '{p}': '{d}' is a file, not a folder; choose another path")
        d.mkdir(parents=True, exist_ok=True)
        if not folder and p.is_dir():
            raise OutputError(f"{what} '{p}' is a folder; give a file name")
        if not folder and p.exists() and not os.access(p, os.W_OK):
            raise OutputError(f"{what} '{p}' exists and is not writable; choose another path or change its permissions")
        fd, probe = tempfile.mkstemp(prefix=".deepscope-write-test-", dir=d)
        os.close(fd)
        os.unlink(probe)
        free = shutil.disk_usage(d).free
    except OutputError:
        _remove_empty(created)
        raise
    except OSError as exc:
        _remove_empty(created)
        raise OutputError(f"cannot write to {what} '{p}': {exc.strerror or exc}; choose another path or fix the "
                          "folder's permissions") from None
    if free < min_free:
        _remove_empty(created)
        raise OutputError(f"{what} '{p}': only {free / 2**20:,.1f} MiB free on its disk (at least "
                          f"{min_free / 2**20:,.0f} MiB needed); free some space or choose another path"
                          + ("; nothing was created" if created else ""))
    return d


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed check made (deepest first), as long as they are empty."""
    for f in folders:
        try:
            f.rmdir()
        except OSError:  # not empty (someone else wrote there), or not made after all
            return
