"""napari plugin (npe2): open images and calibrated label images, segment and count the active layer.

The manifest is ``deepscope/napari/napari.yaml`` (entry point ``napari.manifest``). Every contribution
is a plain function, so it works, and is tested, without napari installed (the widgets need napari's Qt):

- :func:`get_reader` / :func:`read_layers`: a ``*.labels.tif`` opens as a Labels layer, any other image
  deepscope reads as an Image layer (one per channel for multi-channel images), both at the file's
  pixel size (``scale`` in micrometres, where the file states one; a z-stack, and the 3D labels ``deepscope segment``
  and ``deepscope analyze`` write for one, at its voxel size ``(z, y, x)``, so they overlay); a Cell Tracking
  Challenge folder (the
  ``OUT/<stem>`` of ``deepscope track``, or a ``*_GT`` folder) opens as a Labels layer (label = track id) and a
  Tracks layer with the lineage graph;
- :func:`segment_image`: a Labels layer of the objects a model finds, with the per-object measurements
  (CellProfiler names) as the layer's ``features``, and the count, model and (for ``nuclei``) the
  diameter and ``in_domain`` verdict in its metadata; an image out of the model's domain says so in
  the layer's name; a 3-D image layer (Z x Y x X) is segmented in 3D as ``deepscope segment STACK`` does (the
  classical 3D method, the layer's ``scale`` as voxel size) and measured in 3D (volume, sphericity, ...);
- :func:`count_image`: a Points layer at the objects' centres when the counter counted instances, or an
  empty one, named with the count and its 95% interval (the counter's ``method`` and ``in_domain`` in
  its metadata);
- :func:`track_layers`: a T x Y x X movie tracked (each frame segmented with a model, or a Labels layer of masks
  linked as it is) by the track task's :func:`~deepscope.tasks.track.segment_frames` and
  :func:`~deepscope.tasks.track.link`: a Labels layer (label = track id) and a Tracks layer with the lineage graph
  (daughters and tracks after a gap point to their parent), the CTC ``L B E P`` table in their metadata;
- :func:`segment_widget` / :func:`count_widget` / :func:`track_widget`: the *Segment*, *Count* and *Track* widgets,
  which run those on a napari worker thread in steps (:func:`_segment_steps`, :func:`_count_steps`,
  :func:`_track_steps`): a progress bar per step in the activity dock, the viewer responsive, and napari's cancel
  honoured at the next step (for tracking, the next frame).

napari is an optional extra (``pip install "deepscope[napari]"``); the core install does not need it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, List

import numpy as np

if TYPE_CHECKING:  # annotations only: magicgui reads them to build the widgets inside napari
    import napari  # type: ignore[import-not-found]

__all__ = ["get_reader", "read_layers", "segment_image", "count_image", "track_layers", "segment_widget",
           "count_widget", "track_widget"]

_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".zarr")
#: Steps of the segment and count widgets (model, inference, measurement): their progress bar's length.
_STEPS = 3


def _is_ctc(path: Any) -> bool:
    """A Cell Tracking Challenge result (``res_track.txt``) or ground-truth (``TRA/man_track.txt``) folder."""
    p = Path(str(path))
    return p.is_dir() and ((p / "res_track.txt").is_file() or (p / "man_track.txt").is_file()
                           or (p / "TRA" / "man_track.txt").is_file())


def get_reader(path: str | list[str]) -> Any:
    """The reader for ``path`` (napari's ``get_reader`` contract): :func:`read_layers`, or None when
    deepscope does not read that kind of file (napari then asks another plugin)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths or not all(str(p).lower().rstrip("/").endswith(_SUFFIXES) or _is_ctc(p) for p in paths):
        return None
    return read_layers


def _read_ctc(path: Any) -> list[tuple[Any, dict[str, Any], str]]:
    """A CTC folder as a Labels layer (label = track id, T x Y x X) and a Tracks layer with the lineage graph."""
    from deepscope.io.ctc import read_ctc_labels
    from deepscope.tasks.track import detect

    labels, tracks = read_ctc_labels(path)
    name = Path(str(path)).name
    objects = detect(labels)
    data = objects[["label", "frame", "y", "x"]].sort_values(["label", "frame"]).to_numpy(np.float64)
    graph = {int(lab): [int(par)] for lab, _, _, par in tracks.tolist() if par}
    meta = {"deepscope": {"path": str(path), "tracks": int(len(tracks)), "format": "ctc"}}
    return [(labels, {"name": f"{name} labels", "metadata": meta}, "labels"),
            (data, {"name": f"{name} tracks", "graph": graph, "metadata": meta}, "tracks")]


def _scale(pixel_size: Any) -> tuple[float, float]:
    return (float(pixel_size[0]), float(pixel_size[1])) if pixel_size else (1.0, 1.0)


def _axis_scale(img: Any) -> tuple[float, ...]:
    """The layer ``scale`` of a read file, one value per axis other than channels (C, S): Y and X the pixel size, Z
    the z step (um; 1 where the file states none), other axes (T, pages) 1."""
    axes = (img.axes or "").upper()
    if len(axes) != np.ndim(img.data):
        return _scale(img.meta.pixel_size)
    py, px = _scale(img.meta.pixel_size)
    z = float(img.meta.z_step) if getattr(img.meta, "z_step", None) else 1.0
    return tuple({"Y": py, "X": px, "Z": z}.get(a, 1.0) for a in axes if a not in "CS")


def read_layers(path: str | list[str]) -> list[tuple[Any, dict[str, Any], str]]:
    """napari layer data of image files and CTC folders: ``[(data, kwargs, "labels" | "image" | "tracks"), ...]``."""
    from deepscope.io import read_image

    out: list[tuple[Any, dict[str, Any], str]] = []
    for p in [path] if isinstance(path, (str, os.PathLike)) else list(path):
        if _is_ctc(p):
            out += _read_ctc(p)
            continue
        img = read_image(p)
        name = Path(str(p)).name
        meta = {"deepscope": {"path": img.meta.path, "sha256": img.meta.sha256, "axes": img.meta.axes,
                              "pixel_size_um": img.meta.pixel_size}}
        kwargs: dict[str, Any] = {"name": name.split(".labels.")[0] if ".labels." in name else Path(name).stem,
                                  "metadata": meta, "scale": _scale(img.meta.pixel_size)}
        data = img.data
        axes = (img.axes or "").upper()
        if "Z" in axes and len(axes) == data.ndim:  # a z-stack (or its 3D labels): scale = the voxel size
            meta["deepscope"]["z_step_um"] = img.meta.z_step
            kwargs["scale"] = _axis_scale(img)
            c = next((i for i, a in enumerate(axes) if a in "CS"), None)
            if ".labels." in name.lower() and np.issubdtype(data.dtype, np.integer):
                out.append((data, kwargs, "labels"))
            elif c is not None and data.shape[c] > 1:
                out.append((data, {**kwargs, "channel_axis": c}, "image"))
            else:
                out.append((data if c is None else np.take(data, 0, axis=c), kwargs, "image"))
        elif ".labels." in name.lower() and np.issubdtype(data.dtype, np.integer):
            out.append((data, kwargs, "labels"))
        elif data.ndim == 3 and img.meta.axes.endswith("C") and data.shape[-1] not in (3, 4):
            out.append((np.moveaxis(data, -1, 0), {**kwargs, "channel_axis": 0}, "image"))
        else:
            out.append((data, {**kwargs, "rgb": data.ndim == 3 and data.shape[-1] in (3, 4)}, "image"))
    return out


def _is_volume(data: Any) -> bool:
    """A 3-D image layer that is not RGB(A): a z-stack (Z x Y x X)."""
    return np.ndim(data) == 3 and np.shape(data)[-1] not in (3, 4)


def _segment_volume_steps(image: Any, diameter: float = 0.0, voxel_size: Any = None) -> Any:
    """A z-stack layer segmented in 3D: the classical method of ``deepscope segment STACK``
    (:func:`deepscope.tasks.segment.volume_files.segment_stack`), measured with the voxel size."""
    from deepscope.data.stacks import check_voxel_size
    from deepscope.measure import measure_volume
    from deepscope.tasks.segment.volume_files import segment_stack

    data = np.asarray(image)
    vs = check_voxel_size(voxel_size, name="the layer's scale") if voxel_size is not None else (1.0, 1.0, 1.0)
    yield 0, _STEPS, "3D: the classical method (no model)"
    yield 1, _STEPS, f"segmenting {data.shape[0]} planes in 3D"
    labels = np.asarray(segment_stack(data, voxel_size=vs, diameter=float(diameter) if diameter else None), np.int32)
    yield 2, _STEPS, "measuring in 3D"
    table = measure_volume(labels, data, voxel_size=vs, object_name="Nuclei")
    n = int(len(table))
    meta = {"method": "classical", "voxel_size": list(vs), "count": n, "in_domain": None}
    return (labels, {"name": f"3D classical: {n} objects", "features": table, "scale": vs,
                     "metadata": {"deepscope": meta}}, "labels")


def _thresholds(prob_threshold: float, flow_threshold: float, min_size: int) -> dict[str, Any]:
    """The widget's threshold fields as options: the card's value where a field holds its "use the card's"
    value (``prob_threshold`` 0, ``flow_threshold`` and ``min_size`` below 0; 0 is a real value for those two)."""
    out: dict[str, Any] = {}
    if prob_threshold:
        out["prob_threshold"] = float(prob_threshold)
    if flow_threshold >= 0:
        out["flow_threshold"] = float(flow_threshold)
    if min_size >= 0:
        out["min_size"] = int(min_size)
    return out


def _given(thresholds: dict[str, Any] | None, tta: str) -> dict[str, Any]:
    """The options a widget's fields set (thresholds, and ``tta`` unless empty): what the model is run with."""
    return {**(thresholds or {}), **({"tta": tta} if tta else {})}


def _segment_steps(image: Any, model: str = "nuclei", diameter: float = 0.0, voxel_size: Any = None,
                   thresholds: dict[str, Any] | None = None, tta: str = "") -> Any:
    """:func:`segment_image` in steps: yields ``(done, total, what)`` before each, returns the layer data tuple.

    A worker (the napari widget) can stop between steps: after loading the model, or before measuring. A 3-D
    layer (Z x Y x X) takes the 3D path (:func:`_segment_volume_steps`; ``voxel_size`` = the layer's scale).
    """
    from deepscope.measure import measure_objects
    from deepscope.models import load_model

    opts = _given(thresholds, tta)
    if _is_volume(image):
        if opts:
            from deepscope.errors import InputError

            raise InputError(f"{', '.join(opts)}: options of the trained 2-D models; a z-stack layer is segmented "
                             "by the classical 3D method, which has none (leave the fields at the card's)")
        return (yield from _segment_volume_steps(image, diameter, voxel_size))
    yield 0, _STEPS, f"loading {model}"
    net = load_model(model, task="segment")
    data = np.asarray(image)
    meta: dict[str, Any] = {"model": model, "weights_sha256": getattr(net.model_card.weights, "sha256", ""),
                            "in_domain": None}
    yield 1, _STEPS, "segmenting"
    result = net.run(data, diameter=float(diameter) if diameter else None, **opts)
    if thresholds:
        meta["thresholds"] = dict(thresholds)
    if tta:
        meta["tta"] = tta
    if result.info is not None:  # a generalist: its size estimate
        meta["diameter"] = result.info.diameter
    meta["in_domain"] = result.in_domain
    labels = np.asarray(result.labels, dtype=np.int32)
    yield 2, _STEPS, "measuring"
    grey = data if data.ndim == 2 else data.mean(axis=-1)
    table = measure_objects(labels, grey, object_name="Nuclei")
    meta["count"] = n = int(len(table))
    flag = ", OUT OF DOMAIN" if meta["in_domain"] is False else ""
    return labels, {"name": f"{model}: {n} objects{flag}", "features": table, "metadata": {"deepscope": meta}}, "labels"


def _count_steps(image: Any, model: str = "count-bbbc005", tta: str = "") -> Any:
    """:func:`count_image` in steps (as :func:`_segment_steps`)."""
    from deepscope.models import load_model

    yield 0, _STEPS, f"loading {model}"
    net = load_model(model, task="count")
    yield 1, _STEPS, "counting"
    opts = _given(None, tta)
    r = net.predict_image(np.asarray(image), **opts)
    interval = "no interval" if not np.isfinite(r.low) else f"95% {r.low:.0f}-{r.high:.0f}"
    points = np.zeros((0, 2))
    yield 2, _STEPS, "marking the objects"
    if r.method == "instances":  # the objects behind the count, at their centres
        from scipy import ndimage as ndi

        seg = net.plugin.general_segmenter(net)
        labels = seg.run(np.asarray(image)).labels
        ids = np.unique(labels[labels > 0])
        points = np.array(ndi.center_of_mass(labels > 0, labels, ids)).reshape(-1, 2)
    meta = {"deepscope": {"model": model, "count": r.count, "low": r.low, "high": r.high, "estimate": r.estimate,
                          "method": r.method,
                          "in_domain": r.in_domain, **opts}}
    flag = "" if r.in_domain is not False else ", OUT OF DOMAIN"
    return (points, {"name": f"{model}: {r.count:.0f} cells ({interval}, {r.method}{flag})", "metadata": meta,
                     "size": 6}, "points")


def _track_total(image: Any, masks: Any) -> int:
    """Steps of :func:`_track_steps`: linking alone with masks; else loading, the scale check, one per frame,
    linking."""
    return 1 if masks is not None else int(np.shape(image)[0]) + 3


def _track_steps(image: Any, model: str = "nuclei", masks: Any = None, max_gap: int = 2,
                 divisions: bool = True) -> Any:
    """:func:`track_layers` in steps (as :func:`_segment_steps`): the model loaded, the movie's object scale checked
    (:func:`deepscope.tasks.track.movie_diameter`, as ``deepscope track`` does), then one step per frame
    segmented, then linking; with ``masks``, linking only."""
    from deepscope.errors import InputError
    from deepscope.tasks.track import TrackOptions, link, movie_diameter, segment_frames

    frames = np.asarray(image)
    if frames.ndim != 3:
        raise InputError(f"tracking needs a T x Y x X movie (a 2-D image layer with a time slider); the layer's data "
                         f"has shape {frames.shape}")
    options = TrackOptions(max_gap=int(max_gap), divisions=bool(divisions))
    total = _track_total(frames, masks)
    meta: dict[str, Any] = {"in_domain": None}
    if masks is not None:
        labels = np.asarray(masks)
        if labels.shape != frames.shape:
            raise InputError(f"the masks (shape {labels.shape}) do not match the movie (shape {frames.shape}); give "
                             "the Labels layer of this movie's frames")
        meta["source"] = "masks"
        name = "tracks"
    else:
        from deepscope.models import load_model

        yield 0, total, f"loading {model}"
        net = load_model(model, task="segment")
        yield 1, total, "checking the object scale"
        diameter, scale = movie_diameter(frames, net, options)
        labels = np.zeros(frames.shape, np.int32)
        checks: list[bool | None] = []
        for t in range(frames.shape[0]):
            yield t + 2, total, f"segmenting frame {t + 1} of {frames.shape[0]}"
            lab, check = segment_frames(frames[t:t + 1], net, diameter=diameter)
            labels[t] = lab[0]
            checks += check
        known = [c for c in checks if c is not None]
        meta.update(source="model", model=model, weights_sha256=getattr(net.model_card.weights, "sha256", ""),
                    in_domain=all(known) if known else None, frames_out_of_domain=sum(1 for c in known if not c),
                    diameter=diameter, scale=scale)
        name = model
    yield total - 1, total, "linking"
    result = link(labels, frames=frames, options=options)
    data, graph = result.napari_tracks()
    meta.update(tracks=result.n_tracks, divisions=result.n_divisions, ctc_tracks=result.tracks.tolist())
    flag = ", OUT OF DOMAIN" if meta["in_domain"] is False else ""
    what = f"{name}: {result.n_tracks} tracks, {result.n_divisions} divisions{flag}"
    return [(result.labels, {"name": f"{what} (labels)", "metadata": {"deepscope": meta}}, "labels"),
            (data, {"name": what, "graph": graph, "metadata": {"deepscope": meta}}, "tracks")]


def _drain(steps: Any) -> Any:
    """Run a step generator to its end and return its value."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def segment_image(image: napari.types.ImageData, model: str = "nuclei", diameter: float = 0.0,
                  voxel_size: Any = None, prob_threshold: float = 0.0, flow_threshold: float = -1.0,
                  min_size: int = -1, tta: str = "") -> napari.types.LayerDataTuple:
    """Segment an image layer's data with a deepscope model (name or run folder; ``diameter`` 0 = estimate).

    ``prob_threshold`` (0 = the card's), ``flow_threshold`` and ``min_size`` (below 0 = the card's) are the
    thresholds of ``deepscope segment --prob-threshold ...`` (docs/segmentation.md, "Trading precision for
    recall"); the values given are in the layer's metadata. ``tta`` (``none``, ``transpose``, ``flips``, ``d8``;
    empty = the card's) is ``deepscope segment --tta``.

    A 3-D layer (Z x Y x X, not RGB) is a z-stack: segmented in 3D by the classical method of ``deepscope segment
    STACK`` with ``voxel_size`` ``(z, y, x)`` in um (the layer's ``scale``; default cubic voxels of 1), and
    measured in 3D (:func:`deepscope.measure.measure_volume`); the Labels layer has that ``scale``.
    """
    return _drain(_segment_steps(image, model, diameter, voxel_size,
                                 _thresholds(prob_threshold, flow_threshold, min_size), tta))


def count_image(image: napari.types.ImageData, model: str = "count-bbbc005", tta: str = ""
                ) -> napari.types.LayerDataTuple:
    """Count the cells of an image layer's data with a deepscope counting model; ``tta`` (``none``, ``transpose``,
    ``flips``, ``d8``; empty = the card's) is ``deepscope count --tta``."""
    return _drain(_count_steps(image, model, tta))


def track_layers(image: napari.types.ImageData, model: str = "nuclei", masks: napari.types.LabelsData | None = None,
                 max_gap: int = 2, divisions: bool = True) -> List[napari.types.LayerDataTuple]:
    """Track a T x Y x X image layer: segment each frame with ``model`` (or take the ``masks`` Labels layer, and only
    link), link into tracks and lineages; a Labels layer (label = track id) and a Tracks layer (with ``graph``)."""
    return _drain(_track_steps(image, model, masks, max_gap, divisions))


def _in_background(steps: Any, args: tuple[Any, ...], what: str, total: int = _STEPS) -> Any:
    """A started napari worker running ``steps(*args)``: a progress bar per step in napari's activity dock, the
    viewer responsive meanwhile, and napari's cancel (``worker.quit()``) honoured at the next step."""
    from napari.qt.threading import thread_worker

    return thread_worker(steps, start_thread=True, progress={"total": total, "desc": f"deepscope: {what}"})(*args)


def segment_widget(image: napari.layers.Image, model: str = "nuclei", diameter: float = 0.0,
                   prob_threshold: float = 0.0, flow_threshold: float = -1.0, min_size: int = -1, tta: str = ""
                   ) -> napari.qt.threading.FunctionWorker[napari.types.LayerDataTuple]:
    """The *Segment (deepscope)* widget: :func:`segment_image` on a worker thread, with progress and cancel.

    A 3-D image layer (a z-stack) is segmented in 3D with the layer's ``scale`` as voxel size. The threshold
    fields: 0 (probability) or below 0 (flow check, minimum size) keep the model card's values, an empty ``tta``
    the card's test-time augmentation.
    """
    data = np.asarray(image.data)
    if _is_volume(data):
        scale = tuple(float(v) for v in image.scale)
        # thresholds or tta set on a z-stack get the same clear error as segment_image gives
        return _in_background(_segment_steps, (data, model, diameter, scale,
                                               _thresholds(prob_threshold, flow_threshold, min_size), tta),
                              "segmenting in 3D (classical)")
    return _in_background(_segment_steps, (data, model, diameter, None,
                                           _thresholds(prob_threshold, flow_threshold, min_size), tta),
                          f"segmenting with {model}")


def count_widget(image: napari.types.ImageData, model: str = "count-bbbc005", tta: str = ""
                 ) -> napari.qt.threading.FunctionWorker[napari.types.LayerDataTuple]:
    """The *Count (deepscope)* widget: :func:`count_image` on a worker thread, with progress and cancel (``tta``
    empty: the card's)."""
    return _in_background(_count_steps, (image, model, tta), f"counting with {model}")


def track_widget(image: napari.types.ImageData, model: str = "nuclei", masks: napari.types.LabelsData | None = None,
                 max_gap: int = 2, divisions: bool = True
                 ) -> napari.qt.threading.FunctionWorker[List[napari.types.LayerDataTuple]]:
    """The *Track (deepscope)* widget: :func:`track_layers` on a worker thread, with progress per frame and cancel.

    napari's type registration knows ``FunctionWorker[typing.List[LayerDataTuple]]`` (not the builtin ``list``):
    both layers are added when the worker returns.
    """
    what = "linking the masks" if masks is not None else f"tracking with {model}"
    return _in_background(_track_steps, (image, model, masks, max_gap, divisions), what,
                          total=_track_total(image, masks))
