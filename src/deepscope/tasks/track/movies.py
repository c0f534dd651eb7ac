"""Reading a time-lapse (and its per-frame masks) as a (T, Y, X) stack with its pixel size and frame interval.

A movie is one file with a time axis (TYX, TCYX with a channel chosen; the pages of a plain multi-page TIFF, which
states no axes, count as frames) or a folder of frame images sorted by name (as a CTC sequence folder ``01/t000.tif`` ... is). Masks are a
TYX label stack or a folder of per-frame label images, ids arbitrary per frame.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.errors import InputError

__all__ = ["Movie", "read_movie", "read_masks", "movie_stem", "file_frame_interval"]


@dataclass(frozen=True, eq=False)
class Movie:
    """A time-lapse: ``frames`` (T, Y, X), physical units where the file states them, and the files read."""

    frames: np.ndarray
    path: Path
    pixel_size: float | None = None
    frame_interval: float | None = None
    inputs: tuple[Any, ...] = field(default=(), repr=False)

    @property
    def stem(self) -> str:
        return movie_stem(self.path)


def movie_stem(path: str | os.PathLike[str]) -> str:
    """The name of a movie's outputs: the file name without its image extension(s), or the folder's name."""
    p = Path(path)
    name = p.name
    for ext in (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".zarr", ".png", ".jpg", ".jpeg"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _frame_files(folder: Path) -> list[Path]:
    from deepscope.io import SUPPORTED_EXTENSIONS, natural_key

    files = [f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
             and any(f.name.lower().endswith(e) for e in SUPPORTED_EXTENSIONS)]
    return sorted(files, key=lambda f: natural_key(f.name))


def _ngff_time_scale(multiscales: Any) -> Any:
    """The scale of the ``t`` axis of level 0 of an OME-Zarr ``multiscales`` entry (None when absent)."""
    try:
        axes = [a.get("name") for a in multiscales["axes"]]
        for tr in multiscales["datasets"][0].get("coordinateTransformations", []):
            if tr.get("type") == "scale" and "t" in axes:
                return tr["scale"][axes.index("t")]
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return None


def file_frame_interval(meta: Any) -> float | None:
    """The time between frames a file states (ImageJ ``finterval``, OME ``TimeIncrement``, OME-Zarr t scale) from its
    :class:`~deepscope.io.ImageMeta`, or None."""
    return _frame_interval(meta)


def _frame_interval(meta: Any) -> float | None:
    """Time between frames as the file states it: ImageJ ``finterval``, OME ``TimeIncrement``, OME-Zarr t scale."""
    ij = (meta.extra or {}).get("imagej") or {}
    v = ij.get("finterval")
    if v is None and (meta.extra or {}).get("multiscales"):
        v = _ngff_time_scale(meta.extra["multiscales"])
    if v is None and meta.ome_xml:
        m = re.search(r'TimeIncrement="([0-9.eE+-]+)"', meta.ome_xml)
        v = m.group(1) if m else None
    try:
        f = float(v) if v is not None else None
    except (TypeError, ValueError):
        return None
    return f if f is not None and math.isfinite(f) and f > 0 else None


def _to_tyx(image: Any, channel: int | None, what: str) -> np.ndarray:
    """A read image as (T, Y, X): drops singleton axes, picks ``channel``, refuses Z with T."""
    data, axes = np.asarray(image.data), image.axes
    path = image.meta.path
    if image.meta.format == "tiff" and axes in ("CYX", "SYX") and channel is None:
        # a plain TIFF states no axes; its reader guesses a few pages to be channels: for a movie they are frames
        axes = "TYX"
    if "Z" in axes and "T" in axes and data.shape[axes.index("Z")] > 1 and data.shape[axes.index("T")] > 1:
        raise InputError(f"{path}: {what} has {data.shape[axes.index('T')]} time points of "
                         f"{data.shape[axes.index('Z')]} z-planes (axes {axes}); 3D+t tracking is not supported yet "
                         "(linking in 3-D needs 3-D objects): project each time point first (e.g. a maximum "
                         "projection over Z) and track the 2-D movie")
    for i in reversed(range(len(axes))):  # singleton axes other than Y/X go
        if axes[i] not in "YX" and data.shape[i] == 1 and data.ndim > 2:
            data, axes = np.take(data, 0, axis=i), axes[:i] + axes[i + 1:]
    for ch in ("C", "S"):
        if ch in axes:
            k = axes.index(ch)
            if channel is None:
                raise InputError(f"{path}: {what} has {data.shape[k]} channels (axes {axes}); choose one with "
                                 "--channel (0-based)")
            if not 0 <= channel < data.shape[k]:
                raise InputError(f"{path}: --channel {channel} is out of range; it has {data.shape[k]} channels")
            data, axes = np.take(data, channel, axis=k), axes[:k] + axes[k + 1:]
    if axes == "YX":
        return data[None]
    if len(axes) == 3 and axes[1:] == "YX":
        if axes[0] == "Z":
            raise InputError(f"{path}: {what} is a z-stack (axes ZYX), not a time-lapse; if its planes are time "
                             "points, save it with a T axis (ImageJ hyperstack frames or OME-TIFF)")
        return data  # T, or I (pages of a plain TIFF) as time
    raise InputError(f"{path}: {what} has axes {image.axes} and shape {image.shape}; expected a time-lapse "
                     "TYX (or TCYX with --channel)")


def read_movie(path: str | os.PathLike[str], *, channel: int | None = None) -> Movie:
    """Read a time-lapse file or a folder of frames.

    Parameters
    ----------
    path : path
        A TYX / TCYX TIFF, OME-TIFF or OME-Zarr, or a folder of 2-D frame images (sorted by name).
    channel : int, optional
        Channel of a multi-channel movie.

    Returns
    -------
    Movie

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    deepscope.errors.InputError
        One frame only, frames of different shapes, a 3D+t movie, several channels without ``channel``, a folder
        with no images.
    """
    from deepscope.io import read_image

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"No such movie: '{p}'")
    if p.is_dir() and not p.name.lower().endswith(".zarr"):
        files = _frame_files(p)
        if not files:
            raise InputError(f"{p}: the folder holds no frame images (TIFF, PNG, JPEG)")
        images = [read_image(f) for f in files]
        stack: list[np.ndarray] = []
        for f, im in zip(files, images):
            fr = _to_tyx(im, channel, "a frame")
            if fr.shape[0] != 1:
                raise InputError(f"{f}: a frame of the sequence folder {p} holds {fr.shape[0]} planes; each file of a "
                                 "frame folder must be one 2-D frame")
            if stack and fr.shape[1:] != stack[0].shape:
                raise InputError(f"{f}: frame {len(stack)} is {fr.shape[1]} x {fr.shape[2]} but frame 0 "
                                 f"({files[0].name}) is {stack[0].shape[0]} x {stack[0].shape[1]}; every frame of a "
                                 "movie must have the same shape")
            stack.append(fr[0])
        frames = np.stack(stack)
        meta = images[0].meta
    else:
        img = read_image(p)
        frames = _to_tyx(img, channel, "the movie")
        images, meta = [img], img.meta
    if frames.shape[0] < 2:
        raise InputError(f"{p}: the movie has one frame; tracking needs a time-lapse of at least 2 frames "
                         "(segment a single image with `deepscope segment`)")
    px = meta.pixel_size
    pixel = float(px[0]) if px and px[0] and px[0] == px[1] and math.isfinite(px[0]) and px[0] > 0 else None
    return Movie(frames, p, pixel, _frame_interval(meta), tuple(images))


def read_masks(path: str | os.PathLike[str], *, n_frames: int, shape: tuple[int, int]) -> tuple[np.ndarray, tuple]:
    """Read per-frame label images (a TYX label stack or a folder of label files) for a movie.

    Returns
    -------
    ((T, Y, X) int32 ndarray, inputs)

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    deepscope.errors.InputError
        A different number of frames or frame shape than the movie, or labels that are not integers.
    """
    from deepscope.io import read_image

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"No such masks: '{p}'")
    if p.is_dir() and not p.name.lower().endswith(".zarr"):
        files = _frame_files(p)
        images = [read_image(f) for f in files]
        stack = [_to_tyx(im, None, "a mask")[0] for im in images]
        labels = np.stack(stack) if stack and all(s.shape == stack[0].shape for s in stack) else None
        if labels is None and stack:
            raise InputError(f"{p}: the mask files have different shapes; each must be {shape[0]} x {shape[1]}")
        n = len(files)
    else:
        img = read_image(p)
        images = [img]
        labels = _to_tyx(img, None, "the masks")
        n = labels.shape[0]
    if n != n_frames:
        raise InputError(f"{p}: the masks have {n} frame(s) but the movie has {n_frames}; give one label image "
                         "per frame")
    assert labels is not None
    if labels.shape[1:] != tuple(shape):
        raise InputError(f"{p}: the masks are {labels.shape[1]} x {labels.shape[2]} but the movie's frames are "
                         f"{shape[0]} x {shape[1]}")
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0):
            labels = labels.astype(np.int64)
        else:
            raise InputError(f"{p}: masks must be integer label images (0 = background); got {labels.dtype}")
    if labels.min() < 0:
        raise InputError(f"{p}: masks hold negative labels; labels must be >= 0 (0 = background)")
    return labels.astype(np.int32), tuple(images)
