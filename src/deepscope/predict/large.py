"""Segment an OME-Zarr image larger than memory, tile by tile from its store into its ``labels/`` group.

A whole-slide or stitched image of 20,000 x 20,000 pixels is 400 MB as uint8, 4.8 GB as the float32
RGB input of the generalist model and 1.6 GB as int32 labels: more than the batch commands should
hold at once (and over the pixel limit, docs/limits.md). Here nothing of the image is held but the
tile being segmented:

- the image is one level of the OME-Zarr store (:func:`deepscope.io.ngff.open_ngff_level`), read
  chunk by chunk as tiles need it (:class:`LazyInput`: the model's float32 input of any region, made
  from the raw pixels of that region with normalisation parameters taken once from the whole image, by
  a strided sample read block by block);
- the labels are written into an int32 label image ``<image>/labels/<name>`` of the same store
  (:func:`deepscope.io.ngff.create_ngff_labels`), tile by tile, with the usual rule that each object
  belongs to the one tile whose core holds its centre (nothing cut or counted twice at tile borders);
- the generalist models (``nuclei``) estimate the object diameter on the central window once and
  segment every tile at that scale; other segmentation models run at the image's own scale.

Peak memory is bounded by the tile (the model card's ``tile``, 1024 px at the model's scale by default)
and its working arrays, whatever the image's size (``benchmarks/bench_large.py``). Time is not: the pixel
limit of whole images (``max_pixels``, docs/limits.md) applies here too, so a store of a few KB cannot ask
for days of work; the default 250 million values takes about 15,000 x 15,000 pixels, and a 20,000 x 20,000
image needs ``DEEPSCOPE_MAX_PIXELS=400e6`` (or ``deepscope --max-pixels 400000000 segment ...``).

The batch command ``deepscope segment`` routes an OME-Zarr image here when its plane is over
:data:`OUT_OF_CORE_PIXELS` (:func:`out_of_core`).

>>> from deepscope.predict.large import segment_ngff
>>> res = segment_ngff("slide.ome.zarr", model="nuclei")          # doctest: +SKIP
>>> res.count, res.labels                                          # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.errors import InputError
from deepscope.predict.engine import TTA_MODES

#: OME-Zarr images whose plane has more pixels than this are segmented tile by tile from their store
#: (:func:`segment_ngff`): about 7,000 x 7,000, a few GB of working memory as whole images.
#: The environment variable ``DEEPSCOPE_OUT_OF_CORE_PIXELS`` sets another threshold.
OUT_OF_CORE_PIXELS = 50_000_000


def out_of_core(path: str | os.PathLike[str]) -> Any:
    """The image (metadata, no pixels) of an OME-Zarr image too large to segment whole (a plane over
    :data:`OUT_OF_CORE_PIXELS`, or ``DEEPSCOPE_OUT_OF_CORE_PIXELS``), else None.

    Raises
    ------
    deepscope.errors.InputError
        ``DEEPSCOPE_OUT_OF_CORE_PIXELS`` is not a number.
    """
    from deepscope.io import image_format

    p = Path(path)
    if image_format(p) != "zarr" or not p.is_dir():
        return None
    from deepscope.io.ngff import open_ngff_level

    try:
        _, img = open_ngff_level(p, checksum=False)
    except Exception:  # not an image (a plate is expanded before; errors are read_image's to report)
        return None
    env = os.environ.get("DEEPSCOPE_OUT_OF_CORE_PIXELS", "").strip()
    try:
        threshold = int(float(env)) if env else OUT_OF_CORE_PIXELS
    except ValueError:
        raise InputError(f"DEEPSCOPE_OUT_OF_CORE_PIXELS={env!r} is not a number of pixels (e.g. 50e6)") from None
    if int(np.prod(img.meta.shape[-2:])) <= threshold:
        return None
    return open_ngff_level(p, checksum=True)[1]

#: Pixels read per block while sampling the normalisation parameters (bounded memory).
_BLOCK_PIXELS = 16_000_000
#: Pixels of the strided sample the percentiles are taken from (as in tiled whole-image prediction).
NORM_SAMPLE = 4_000_000


class LazyInput:
    """The model's float32 ``(H, W, C)`` input of one ``y``/``x`` plane of a store array, made per region read.

    ``x[rows, cols]`` (slices) reads just that region of the store, selects the channel(s) the model
    takes (as :func:`deepscope.models.spec.select_channels`) and normalises it with the whole image's
    parameters ``(x - offset) / scale``. Only 2-D planes: leading ``T``/``Z``/other axes must have one
    element; a ``C`` axis becomes the channels.
    """

    def __init__(self, array: Any, axes: str, spec: Any, *, channel: int | None = None, path: str = "",
                 model: str = "") -> None:
        axes = axes.upper()
        if len(axes) != array.ndim or not axes.endswith("YX"):
            raise InputError(f"{path}: axes {axes!r} do not describe an array of shape {tuple(array.shape)} "
                             "ending in y, x")
        extra = [(a, int(n)) for a, n in zip(axes[:-2], array.shape[:-2]) if a != "C" and int(n) != 1]
        if extra:
            raise InputError(f"{path}: {', '.join(f'{a}={n}' for a, n in extra)}: segment one 2-D plane at a time "
                             "(write the plane you want as its own OME-Zarr image)")
        self.array, self.axes, self.spec = array, axes, spec
        self.channel, self.path, self.model = channel, path, model
        self.c_axis = axes.index("C") if "C" in axes else None
        h, w = (int(s) for s in array.shape[-2:])
        self.offset, self.scale = 0.0, 1.0
        c = self._select(self._raw(slice(0, 2), slice(0, 2))).shape  # 2 x 2: the smallest image a model takes
        self.shape = (h, w, 1 if len(c) == 2 else int(c[-1]))
        self.ndim, self.dtype = 3, np.dtype(np.float32)
        self.offset, self.scale = self._norm_params()

    def _raw(self, rows: slice, cols: slice) -> np.ndarray:
        """The raw pixels of a region, ``(h, w)`` or ``(h, w, C)``."""
        index = tuple(slice(None) if i == self.c_axis else 0 for i in range(self.array.ndim - 2)) + (rows, cols)
        a = np.asarray(self.array[index])
        return np.moveaxis(a, 0, -1) if self.c_axis is not None and a.ndim == 3 else a

    def _select(self, raw: np.ndarray) -> np.ndarray:
        from deepscope.models.spec import select_channels

        return select_channels(raw, self.spec, channel=self.channel, path=self.path, model=self.model)

    def _norm_params(self) -> tuple[float, float]:
        """The whole image's ``(offset, scale)``: from a strided sample of about NORM_SAMPLE pixels, read in blocks.

        Each block's sample is copied out of it, so only one block and the sample (under 4 x NORM_SAMPLE pixels,
        whatever the image's size) are held at once: a strided view would keep its whole block alive.
        """
        if self.spec.normalize == "fixed":
            return self.spec.norm_params(np.zeros((1, 1), np.float32))
        h, w = self.shape[:2]
        step = max(1, int(math.sqrt(h * w / NORM_SAMPLE)))
        rows = max(step, (_BLOCK_PIXELS // max(w, 1)) // step * step)
        starts = list(range(0, h, rows))
        if len(starts) > 1 and h - starts[-1] < 2:  # no block of one row (a model takes 2 x 2 pixels at least)
            starts.pop()
        parts = []
        for k, r in enumerate(starts):
            block = self._select(self._raw(slice(r, h if k == len(starts) - 1 else r + rows), slice(None)))
            parts.append(np.array(block[::step, ::step], copy=True))
            del block
        return self.spec.norm_params(np.concatenate(parts, axis=0))

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) < 2 or not all(isinstance(k, slice) for k in key[:2]) or any(
                k != slice(None) for k in key[2:]):
            raise TypeError("LazyInput takes [rows, cols] slices")
        rows, cols = key[0], key[1]
        (r0, r1, rs), (c0, c1, cs) = rows.indices(self.shape[0]), cols.indices(self.shape[1])
        if rs == cs == 1 and 0 < min(r1 - r0, c1 - c0) < 2 <= min(self.shape[:2]):
            # a strip of one pixel (a tile's edge without overlap) is read 2 pixels wide and cut back:
            # select_channels refuses images under 2 x 2, a size that is the whole image's property
            a0, b0 = min(r0, self.shape[0] - 2), min(c0, self.shape[1] - 2)
            x = self._select(self._raw(slice(a0, max(r1, a0 + 2)), slice(b0, max(c1, b0 + 2))))
            x = x[r0 - a0:r1 - a0, c0 - b0:c1 - b0]
        else:
            x = self._select(self._raw(rows, cols))
        if x.ndim == 2:
            x = x[..., None]
        return ((np.asarray(x, dtype=np.float32) - self.offset) / self.scale).astype(np.float32, copy=False)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(f"{self.path}: refusing to load the whole {self.shape[0]} x {self.shape[1]} image into memory; "
                        "read it region by region")


@dataclass(frozen=True)
class LargeResult:
    """What :func:`segment_ngff` did: where the labels are, how many objects, and how it segmented."""

    labels: Path
    count: int
    shape: tuple[int, int]
    tiles: int
    diameter: float | None = None
    diameter_source: str = ""
    in_domain: bool | None = None


def _count_labels(arr: Any, block: int = 4096) -> int:
    """The largest label of a store label image (its objects: ids are 1..n), read block by block."""
    h, w = arr.shape[-2:]
    lead = (0,) * (arr.ndim - 2)
    best = 0
    for r in range(0, h, block):
        best = max(best, int(np.asarray(arr[lead + (slice(r, min(h, r + block)), slice(None))]).max(initial=0)))
    return best


class _Plane:
    """The 2-D ``y``/``x`` view of a label array with singleton leading axes (what the tiling writes into)."""

    def __init__(self, arr: Any) -> None:
        self.arr, self.lead = arr, (0,) * (arr.ndim - 2)
        self.shape = tuple(int(s) for s in arr.shape[-2:])

    def __getitem__(self, key: Any) -> np.ndarray:
        if key is Ellipsis:
            key = (slice(None), slice(None))
        return np.asarray(self.arr[self.lead + tuple(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        if key is Ellipsis:
            if np.isscalar(value) and value == 0:
                return  # a new label image is all 0 already (its fill value)
            key = (slice(None), slice(None))
        self.arr[self.lead + tuple(key)] = value


def _check_work(path: Path, shape: tuple[int, ...]) -> None:
    """Refuse an image over the pixel limit: tile by tile, its memory is that of one tile, but its time grows with
    its pixels (about 0.5 Mpx/s on 2 CPU cores, BENCHMARKS.md), and a store of a few KB can declare any size."""
    from deepscope.errors import LimitError
    from deepscope.io.limits import limits

    lim = limits()
    n = math.prod(int(s) for s in shape)
    if lim.exceeded("max_pixels", n):
        dims = " x ".join(str(int(s)) for s in shape)
        raise LimitError(f"{path}: the OME-Zarr image is {dims} = {n:,} values, over the limit of {lim.max_pixels:,}; "
                         "tile by tile its memory stays that of one tile, but its time grows with its pixels (about "
                         "half a megapixel per second on 2 CPU cores), so it was not segmented. Segment a crop or a "
                         f"lower level written as its own image, or {lim.how_to_raise('max_pixels')}")


def segment_ngff(path: str | os.PathLike[str], *, model: Any = "nuclei", level: int = 0, channel: int | None = None,
                 name: str | None = None, tile: int | None = None, overlap: int | None = None, tta: str = "none",
                 diameter: float | None = None, device: str = "auto",
                 progress: Callable[[int, int], None] | None = None, prob_threshold: float | None = None,
                 flow_threshold: float | None = None, min_size: int | None = None) -> LargeResult:
    """Segment one OME-Zarr image of any size tile by tile into its ``labels/<name>`` group.

    Parameters
    ----------
    path : path
        An OME-Zarr image (a ``.zarr`` folder, or a field of a plate).
    model : str or model, default "nuclei"
        A segmentation model (shipped name, run folder, or loaded model).
    level : int, default 0
        Resolution level of the multiscale image to segment (labels are written for level 0, so only
        0 is accepted for now).
    channel : int, optional
        Channel of a multi-channel image.
    name : str, optional
        Name of the label image (default: the model's name).
    tile, overlap : int, optional
        Tile side and context at the model's scale (default from the model card; the card's context shrinks to
        a quarter of a tile too small to hold it, as in ``deepscope segment``).
    tta : {"none", "transpose", "flips", "d8"}
    diameter : float, optional
        Object diameter in pixels (generalist models; default: estimated on the central window).
    progress : callable, optional
        ``progress(done, total)`` after each tile.
    prob_threshold, flow_threshold, min_size : optional
        Post-processing thresholds (default: the model card's; :class:`deepscope.tasks.segment.SegmentOptions`).

    Returns
    -------
    LargeResult

    Raises
    ------
    deepscope.errors.InputError
        Not an OME-Zarr image, more than one plane, a store that cannot be written, a level other than 0, or a
        label image name that is not one folder name (:func:`deepscope.io.ngff.check_label_name`).
    deepscope.errors.LimitError
        More values than the pixel limit (its ``max_pixels``, as whole images: the work grows with the pixels)
        or chunks over the ``chunk_bytes`` limit (docs/limits.md); nothing is read or written.
    """
    from deepscope.io.ngff import check_label_name, create_ngff_labels, open_ngff_level
    from deepscope.predict.inputs import resolve_model

    if level != 0:
        raise InputError(f"level={level}: labels are written at level 0; segment level 0 (or write the level you "
                         "want as its own OME-Zarr image)")
    if tta not in TTA_MODES:
        raise InputError(f"tta={tta!r} is not one of {TTA_MODES}")
    p = Path(path)
    arr, img = open_ngff_level(p, level=level)
    _check_work(p, img.meta.shape)
    net = resolve_model(model, task="segment", device=device)
    check_label_name(p, name or net.name)  # before the image is read, and before any label image is replaced
    x = LazyInput(arr, img.meta.axes, net.spec, channel=channel, path=str(p), model=net.name)
    h, w = x.shape[:2]
    try:
        out_arr = create_ngff_labels(p, name or net.name, (h, w))
    except OSError as exc:
        raise InputError(f"'{p}': cannot write labels into the store ({exc}); copy the image somewhere writable") from exc
    out = _Plane(out_arr)
    opts = net.options(tile=tile, overlap=overlap, tta=tta, diameter=diameter, channel=channel,
                       prob_threshold=prob_threshold, flow_threshold=flow_threshold, min_size=min_size)
    done = [0]

    def counted(k: int, total: int) -> None:
        done[0] += 1
        if progress is not None:
            progress(k, total)

    # the task runs the tiles (an object belongs to the tile whose core holds its centre); a generalist model
    # estimates the object size once, on the central window, and segments every tile at that scale
    result = net.plugin.run_large(net, x, opts, out=out, progress=counted)
    info = result.info
    return LargeResult(labels=p / "labels" / (name or net.name), count=_count_labels(out_arr), shape=(h, w),
                       tiles=done[0], diameter=None if info is None else info.diameter,
                       diameter_source="" if info is None else info.diameter_source, in_domain=result.in_domain)
