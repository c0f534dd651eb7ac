"""Z-stacks (optical sections): reading one as ZYX with its voxel size, and projecting it to one image.

:func:`as_stack` turns an :class:`~deepscope.io.Image` (or an array with its axis letters) into a ZYX array
and its voxel size, with the checks every volume command shares (a Z axis of more than one plane, one channel
chosen, a positive finite voxel size). :func:`project` combines the planes into one image: the maximum, the
mean, or the extended depth of field (``"edf"``): a per-pixel focus measure across planes (the local energy of
the Laplacian of each plane), a choice map of the sharpest plane that is smoothed into soft weights (so
neighbouring pixels draw on neighbouring planes and there are no seams), and the weighted sum of the planes.

Examples
--------
>>> import numpy as np
>>> from deepscope.data.stacks import project
>>> stack = np.random.default_rng(0).random((5, 32, 32)).astype(np.float32)
>>> project(stack, method="max").shape, project(stack, method="edf").dtype.name
((32, 32), 'float32')
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from deepscope.errors import InputError

__all__ = ["PROJECTIONS", "project", "project_labels", "focus_measure", "as_stack"]

#: Projection methods :func:`project` takes.
PROJECTIONS = ("max", "mean", "edf")


def focus_measure(stack: np.ndarray, *, noise_sigma: float = 1.0, window: float = 2.0) -> np.ndarray:
    """Per-pixel focus of every plane: the local energy of the Laplacian (a local variance of the Laplacian).

    Parameters
    ----------
    stack : (Z, Y, X) ndarray
    noise_sigma : float, default 1.0
        Gaussian smoothing (pixels) of each plane before the Laplacian, so that pixel noise does not count
        as detail.
    window : float, default 2.0
        Gaussian window (pixels) the squared Laplacian is averaged over.

    Returns
    -------
    (Z, Y, X) float32 ndarray
        Larger = sharper.
    """
    data = np.asarray(stack, np.float32)
    out = np.empty(data.shape, np.float32)
    for k, plane in enumerate(data):
        lap = ndi.gaussian_laplace(plane, noise_sigma, mode="reflect") if noise_sigma > 0 else ndi.laplace(plane)
        out[k] = ndi.gaussian_filter(lap * lap, window, mode="reflect")
    return out


def project(stack: Any, *, method: str = "max", smooth: float = 2.0, noise_sigma: float = 1.0,
            window: float = 2.0) -> np.ndarray:
    """Project the optical sections of a stack to one image.

    Parameters
    ----------
    stack : (Z, Y, X) ndarray
        Planes first (see :func:`as_stack` for files with other axes); any real dtype.
    method : {"max", "mean", "edf"}, default "max"
        ``max``: the brightest value along z (the input's dtype); ``mean``: the average (float32); ``edf``:
        extended depth of field (float32): each pixel takes the planes in focus there.
    smooth : float, default 2.0
        EDF: Gaussian sigma (pixels) that turns the sharpest-plane choice map into soft weights; larger = fewer
        seams and less noise, smaller = follows finer changes of depth.
    noise_sigma, window : float
        EDF: the focus measure's settings (:func:`focus_measure`).

    Returns
    -------
    (Y, X) ndarray

    Raises
    ------
    deepscope.errors.InputError
        ``method`` is not one of :data:`PROJECTIONS`, the stack is not 3-D, has one plane, or holds
        non-finite values (EDF).

    Examples
    --------
    >>> import numpy as np
    >>> s = np.zeros((3, 8, 8), np.uint16); s[1, 2:5, 2:5] = 100
    >>> int(project(s, method="max").max()), round(float(project(s, method="mean").max()), 2)
    (100, 33.33)
    """
    if method not in PROJECTIONS:
        raise InputError(f"method={method!r} is not a projection; use one of {', '.join(PROJECTIONS)}")
    data = np.asarray(stack)
    if data.ndim != 3:
        raise InputError(f"a stack to project must be (Z, Y, X); got shape {data.shape}")
    if data.shape[0] < 2:
        raise InputError(f"the stack has {data.shape[0]} plane(s) along Z; projecting needs at least 2")
    if not (np.issubdtype(data.dtype, np.number) and not np.issubdtype(data.dtype, np.complexfloating)):
        raise InputError(f"a stack to project must hold real numbers; got dtype {data.dtype}")
    if method == "max":
        return data.max(axis=0)
    if method == "mean":
        return data.mean(axis=0, dtype=np.float64).astype(np.float32)
    if not all(math.isfinite(v) and v >= 0 for v in (smooth, noise_sigma, window)):
        raise InputError(f"smooth, noise_sigma and window must be finite and >= 0; got {smooth}, {noise_sigma}, "
                         f"{window}")
    planes = data.astype(np.float32)
    if not np.isfinite(planes).all():
        raise InputError("the stack holds NaN or infinite values; EDF needs finite pixels")
    focus = focus_measure(planes, noise_sigma=noise_sigma, window=window)
    choice = focus.argmax(axis=0)
    out = np.zeros(planes.shape[1:], np.float64)
    total = np.zeros(planes.shape[1:], np.float64)
    for k in range(planes.shape[0]):  # one-hot choice map, smoothed per plane: soft weights without seams
        w = ndi.gaussian_filter((choice == k).astype(np.float32), smooth, mode="reflect") if smooth > 0 \
            else (choice == k).astype(np.float32)
        out += w * planes[k]
        total += w
    return (out / np.maximum(total, 1e-12)).astype(np.float32)


def project_labels(labels: Any) -> np.ndarray:
    """A (Z, Y, X) label volume seen from above: each pixel takes the object nearest the top (lowest z) there, so the
    outlines drawn on a maximum projection are the objects' silhouettes (int32, (Y, X))."""
    lab = np.asarray(labels)
    fg = lab > 0
    first = np.argmax(fg, axis=0)
    out = np.take_along_axis(lab, first[None], axis=0)[0]
    return np.where(fg.any(axis=0), out, 0).astype(np.int32)


def as_stack(image: Any, *, axes: str | None = None, channel: int | None = None,
             voxel_size: tuple[float, float, float] | None = None,
             path: str = "", frame: int | None = None) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """The ZYX pixels of a z-stack and its voxel size ``(z, y, x)`` in micrometres.

    Parameters
    ----------
    image : deepscope.io.Image or ndarray
        A file read by :func:`deepscope.io.read_image` (its axes and voxel size come from the file: ImageJ
        hyperstack, OME-TIFF, OME-Zarr), or an array with ``axes``.
    axes : str, optional
        Axis letters to use instead of the file's, e.g. ``"ZYX"`` for a plain multi-page TIFF (read as
        pages ``I``) or ``"ZCYX"``.
    channel : int, optional
        Channel of a multichannel stack (required when it has more than one).
    voxel_size : (float, float, float), optional
        ``(z, y, x)`` in micrometres, overriding the file's.
    path : str
        Named in errors (defaults to the image's file).
    frame : int, optional
        Time point of a time series of stacks (``TZYX``; required when it has more than one frame).

    Returns
    -------
    stack : (Z, Y, X) ndarray
        The input's dtype.
    voxel_size : (float, float, float) or None
        None when neither the file nor the caller states it (a partial size is filled where the file gives
        the pixel size but not the z step: None).

    Raises
    ------
    deepscope.errors.InputError
        No Z axis (or a Z of 1), several channels and no ``channel``, several frames and no ``frame``, axes
        that do not match the data, a voxel size that is not three positive finite numbers.
    """
    meta = getattr(image, "meta", None)
    data = np.asarray(getattr(image, "data", image))
    name = path or (meta.path if meta is not None else "stack")
    letters = (axes or getattr(image, "axes", "") or "").upper()
    if not letters:
        raise InputError(f"{name}: an array needs its axes, e.g. axes='ZYX'")
    if axes is not None and "Z" in letters and len(letters) == data.ndim + 1:
        # the file's planes are one fewer than the axes named: its Z is 1 (readers drop an axis of length 1)
        raise InputError(f"{name}: a single plane along Z (shape {data.shape} for axes {letters!r}: a Z of 1); a "
                         "volume needs at least 2 optical sections; segment or measure it as a 2-D image (without "
                         "--axes)")
    if len(letters) != data.ndim or len(set(letters)) != len(letters) or not set(letters) <= set("TZCIYXS"):
        raise InputError(f"{name}: axes {letters!r} do not match data of shape {data.shape} (one distinct letter "
                         "of T, Z, C, Y, X per dimension)")
    if "Z" not in letters and "I" in letters and axes is None:
        raise InputError(f"{name}: the file's {data.shape[letters.index('I')]} pages are not marked as z-planes "
                         f"(axes {letters!r}); pass axes='ZYX' (--axes ZYX) if they are optical sections")
    letters = letters.replace("I", "Z") if "Z" not in letters else letters
    letters = letters.replace("S", "C") if "C" not in letters else letters
    if "Z" not in letters and data.ndim == 2:
        raise InputError(f"{name}: a single 2-D plane of shape {data.shape} (no Z axis, or a Z of 1); a volume needs "
                         "at least 2 optical sections")
    if "Z" not in letters or "Y" not in letters or "X" not in letters:
        raise InputError(f"{name}: axes {letters!r} (shape {data.shape}) have no Z (optical sections) with Y and X; if "
                         "the planes are optical sections, pass axes='ZYX' (--axes ZYX, or e.g. ZCYX)")
    if "T" in letters:
        t = data.shape[letters.index("T")]
        if frame is None and t != 1:
            raise InputError(f"{name}: a time series of {t} frames (axes {letters!r}, shape {data.shape}); choose one "
                             f"frame: frame=<0..{t - 1}> (--frame)")
        fr = 0 if frame is None else int(frame)
        if not 0 <= fr < t:
            raise InputError(f"{name}: frame={frame} but the file has {t} frame(s) (0..{t - 1})")
        data, letters = np.take(data, fr, axis=letters.index("T")), letters.replace("T", "")
    elif frame not in (None, 0):
        raise InputError(f"{name}: frame={frame} but the file is not a time series (axes {letters!r})")
    if "C" in letters:
        c_ax = letters.index("C")
        n_c = data.shape[c_ax]
        if channel is None and n_c != 1:
            raise InputError(f"{name}: a {data.ndim}-D stack with {n_c} channels (axes {letters!r}, shape "
                             f"{data.shape}); pass channel=<0..{n_c - 1}> (--channel)")
        ch = 0 if channel is None else int(channel)
        if not 0 <= ch < n_c:
            raise InputError(f"{name}: channel={channel} but the stack has {n_c} channel(s) (0..{n_c - 1})")
        data, letters = np.take(data, ch, axis=c_ax), letters.replace("C", "")
    elif channel not in (None, 0):
        raise InputError(f"{name}: channel={channel} but the stack has one channel")
    extra = [a for a in letters if a not in "ZYX"]
    if extra:
        raise InputError(f"{name}: axes {letters!r} left after choosing channel/time; expected ZYX")
    data = np.transpose(data, [letters.index(a) for a in "ZYX"])
    if data.shape[0] < 2:
        raise InputError(f"{name}: the stack has {data.shape[0]} plane along Z (shape {data.shape}); a volume needs "
                         "at least 2 optical sections")
    vs: tuple[float, float, float] | None = None
    if voxel_size is not None:
        vs = check_voxel_size(voxel_size, name=name)
    elif meta is not None and meta.pixel_size and meta.z_step is not None:
        vs = check_voxel_size((meta.z_step, *meta.pixel_size), name=f"{name} (voxel size stated in the file)")
    return data, vs


def check_voxel_size(voxel_size: Any, *, name: str = "voxel_size") -> tuple[float, float, float]:
    """Three positive finite micrometre values ``(z, y, x)``, or an InputError naming the fix."""
    try:
        vs = tuple(float(v) for v in voxel_size)
    except (TypeError, ValueError):
        raise InputError(f"{name}: voxel size must be three numbers (z, y, x) in micrometres; got "
                         f"{voxel_size!r}") from None
    if len(vs) != 3 or not all(math.isfinite(v) and v > 0 for v in vs):
        raise InputError(f"{name}: voxel size must be three positive finite numbers (z, y, x) in micrometres; got "
                         f"{voxel_size!r} (--voxel-size Z Y X overrides the file's)")
    return vs[0], vs[1], vs[2]
