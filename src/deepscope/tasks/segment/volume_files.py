"""Segment z-stack files into 3D instance labels: what ``deepscope segment STACK`` does.

A file whose axes have a Z (ImageJ hyperstack, OME-TIFF, OME-Zarr; a plain multi-page TIFF with
``axes="ZYX"``) is read as ZYX with its voxel size (:func:`deepscope.data.stacks.as_stack`: one channel and one
time point chosen, the voxel size checked), segmented in 3D (:data:`VOLUME_METHODS`; or plane by plane in 2D with
``slices=True``), and written as ``<out>/<stem>.labels.tif``: ZYX int32 of the stack's shape, an OME-TIFF with the
voxel size in it (``PhysicalSizeZ/Y/X``; :func:`deepscope.io.read_image` reads it back), and its lineage sidecar
``<stem>.labels.tif.prov.json``. ``counts.csv`` gets one row per stack (:data:`STACK_COLUMNS`: objects, method,
planes, voxel size and where it came from, and for the methods that run a 2D model its domain check on the stack's
brightest plane) with its lineage sidecar. A stack that cannot be read or segmented
gets an error row and the others go on.

:func:`segment_files` is the entry point of ``deepscope segment``: it sends z-stacks here and 2D images to
:func:`deepscope.predict.files.segment_paths`.

Examples
--------
>>> res = segment_stack_paths(["stack.tif"], "out")                    # doctest: +SKIP
>>> res.table[["path", "count", "method", "voxel_size"]]             # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.errors import DeepscopeError, InputError

__all__ = ["VOLUME_METHODS", "DEFAULT_VOLUME_METHOD", "STACK_COLUMNS", "is_stack", "read_stack", "segment_stack",
           "segment_stack_paths", "segment_files"]

logger = logging.getLogger(__name__)

#: 3D methods :func:`segment_stack` takes: ``classical`` (no model), ``flows25d`` (the 2D flow model on the XY, XZ
#: and YZ planes, followed in 3D), ``slices`` (the 2D model per plane, the planes stitched by overlap).
VOLUME_METHODS = ("classical", "flows25d", "slices")
#: Options of the 2D model each model-based method takes.
_MODEL_OPTIONS = {"flows25d": ("prob_threshold",), "slices": ("prob_threshold", "flow_threshold", "min_size", "tta",
                                                               "tile")}
#: The default 3D method, chosen by measurement (BENCHMARKS.md, "Volumes: 3D nuclei").
DEFAULT_VOLUME_METHOD = "classical"
#: Columns of ``counts.csv`` for z-stacks: one row per stack.
STACK_COLUMNS = ("path", "count", "method", "planes", "shape", "voxel_size", "voxel_size_source", "in_domain",
                 "labels", "error")


def _header(path: str | os.PathLike[str]) -> tuple[str, tuple[int, ...]]:
    """The axes and shape the file's header states (empty for a file that cannot be read)."""
    from deepscope.io import read_meta

    try:
        meta = read_meta(path, checksum=False)
    except (DeepscopeError, OSError):
        return "", ()
    return (meta.axes or "").upper(), tuple(meta.shape)


def is_stack(path: str | os.PathLike[str], *, axes: str | None = None) -> bool:
    """Whether ``path`` is a z-stack: ``axes`` (as given) has a Z, or the file's header states a Z axis of more
    than one plane (an OME-Zarr image of one plane keeps a Z of 1: it is a 2-D image).

    Only the header is read. A file that cannot be read is not a stack (the 2D path gives it its error row).
    """
    if axes is not None:
        return "Z" in axes.upper()
    letters, shape = _header(path)
    return "Z" in letters and len(shape) == len(letters) and shape[letters.index("Z")] > 1


def read_stack(img: Any, *, axes: str | None = None, channel: int | None = None, frame: int | None = None,
               voxel_size: Sequence[float] | None = None, path: str = "",
               ) -> tuple[np.ndarray, tuple[float, float, float], str]:
    """The ZYX pixels of a read file, its voxel size ``(z, y, x)`` (um) and where that came from.

    :func:`deepscope.data.stacks.as_stack` with the rule every stack command shares for a file that states no
    voxel size: voxels are taken as cubic (the file's pixel size, else 1 um), with a warning.

    Returns
    -------
    stack : (Z, Y, X) ndarray
    voxel_size : (float, float, float)
    source : {"given", "file", "assumed"}

    Raises
    ------
    deepscope.errors.InputError
        As :func:`~deepscope.data.stacks.as_stack`.
    """
    from deepscope.data.stacks import as_stack, check_voxel_size

    given = check_voxel_size(voxel_size, name=path or "voxel_size") if voxel_size is not None else None
    stack, vs = as_stack(img, axes=axes, channel=channel, frame=frame, voxel_size=given, path=path)
    source = "given" if voxel_size is not None else "file"
    if vs is None:
        px = img.meta.pixel_size[1] if getattr(img, "meta", None) is not None and img.meta.pixel_size else 1.0
        vs, source = (px, px, px), "assumed"
        warnings.warn(f"{path or img.meta.path}: the file states no voxel size; voxels taken as cubic ({px:g} um); "
                      "pass --voxel-size Z Y X (micrometres) if the z step differs", stacklevel=3)
    return stack, vs, source


def segment_stack(stack: Any, *, voxel_size: Any = None, method: str = DEFAULT_VOLUME_METHOD,
                  model: Any = None, diameter: float | None = None, **model_options: Any) -> np.ndarray:
    """3D instance labels of one ZYX stack.

    Parameters
    ----------
    stack : (Z, Y, X) ndarray
    voxel_size : (z, y, x), optional
        Micrometres (default: cubic voxels of 1).
    method : {"classical", "flows25d", "slices"}, default :data:`DEFAULT_VOLUME_METHOD`
        ``classical``: :func:`~deepscope.tasks.segment.volume.segment_volume_classical`; ``flows25d``:
        :func:`~deepscope.tasks.segment.volume.segment_volume_flows25d`; ``slices``: each plane segmented in 2D by
        ``model`` and the planes stitched into 3D objects by overlap
        (:func:`~deepscope.tasks.segment.volume.segment_volume_slices`).
    model : loaded segment model, optional
        For ``flows25d`` and ``slices`` (required there).
    diameter : float, optional
        Object diameter in pixels (lateral): ``classical`` converts it to micrometres; the others pass it to
        the model. Default: estimated.
    **model_options
        Options of the 2D model: ``flows25d`` takes ``prob_threshold``; ``slices`` also ``flow_threshold``,
        ``min_size``, ``tta``, ``tile``.

    Returns
    -------
    (Z, Y, X) int32 ndarray

    Raises
    ------
    deepscope.errors.InputError
        An unknown method, no model for ``slices``, a stack that is not 3-D or has one plane, a bad voxel size.
    """
    from deepscope.tasks.segment.volume import (segment_volume_classical, segment_volume_flows25d,
                                                segment_volume_slices)

    if method not in VOLUME_METHODS:
        raise InputError(f"method={method!r} (--volume-method) is not a 3D segmentation method; use one of "
                         f"{', '.join(VOLUME_METHODS)}")
    if method == "classical":
        if model_options:
            raise InputError(f"{', '.join(sorted(model_options))}: options of a 2D model, which the classical 3D "
                             "method does not use; pass slices=True (--slices) to segment each plane with the model")
        vs = voxel_size if voxel_size is not None else (1.0, 1.0, 1.0)
        d_um = None if diameter is None else float(diameter) * float(vs[2])
        return segment_volume_classical(stack, voxel_size=voxel_size, diameter=d_um)
    if model is None:
        raise InputError(f"method={method!r} needs a 2D segment model (e.g. load_model('nuclei'))")
    opts = {k: v for k, v in model_options.items() if v is not None}
    extra = sorted(set(opts) - set(_MODEL_OPTIONS[method]))
    if extra:
        raise InputError(f"{', '.join(extra)}: not options of method={method!r} (it takes "
                         f"{', '.join(_MODEL_OPTIONS[method])})")
    if method == "flows25d":
        return segment_volume_flows25d(stack, model, voxel_size=voxel_size, diameter=diameter, **opts)

    def plane_labels(plane: np.ndarray) -> np.ndarray:
        return model.predict_image(plane, diameter=diameter, **opts)

    return segment_volume_slices(stack, plane_labels)


def _voxel_text(vs: Sequence[float] | None) -> str:
    return " ".join(f"{v:g}" for v in vs) if vs else ""


def segment_stack_paths(paths: Iterable[str | os.PathLike[str]], output_dir: str | os.PathLike[str], *,
                        method: str | None = None, slices: bool = False, model: Any = None,
                        axes: str | None = None, channel: int | None = None, frame: int | None = None,
                        voxel_size: Sequence[float] | None = None, diameter: float | None = None,
                        device: str = "auto", backend: str | None = None, include: str | Sequence[str] | None = None,
                        recursive: bool = False, label_images: str = "skip", progress: Any = None,
                        overlay: bool = True, **model_options: Any) -> Any:
    """Segment every z-stack of ``paths`` into ``output_dir/<stem>.labels.tif`` (3D), ``<stem>.overlay.png`` and
    ``counts.csv``.

    Parameters
    ----------
    paths : iterable of path
        Stack files or folders (:func:`deepscope.io.expand_inputs`; files inside ``output_dir`` are left out).
    output_dir : path
        Created if missing.
    method : {"classical", "flows25d", "slices"}, optional
        Default :data:`DEFAULT_VOLUME_METHOD` (``"slices"`` with ``slices=True``).
    slices : bool, default False
        Segment each plane in 2D with ``model`` and stitch the planes into 3D objects by overlap.
    model : str, path or loaded model, optional
        The 2D model of ``flows25d`` and ``slices`` (default ``"nuclei"``); the classical method takes none.
    axes : str, optional
        Axis letters overriding the file's (``"ZYX"`` for a plain multi-page TIFF, ``"ZCYX"`` ...).
    channel, frame : int, optional
        Channel of multichannel stacks, time point of a time series of stacks.
    voxel_size : (z, y, x), optional
        Micrometres, overriding the file's. Without it and without one in the file, voxels are taken as cubic
        (the file's pixel size, else 1 um) with a warning; the row's ``voxel_size_source`` says ``assumed``.
    diameter : float, optional
        Object diameter in pixels (lateral); default: estimated per stack.
    device, backend : str
        Where the 2D model runs (``flows25d``, ``slices``).
    include, recursive, label_images
        Folder scans, as :func:`deepscope.predict.files.segment_paths`.
    progress : callable, optional
        ``progress(done, total)`` after each stack.
    overlay : bool, default True
        Also write ``<stem>.overlay.png``: the stack's maximum projection with the outlines of the objects as seen
        from above (each pixel shows the object nearest the top).
    **model_options
        Options of the 2D model (:func:`segment_stack`).

    Returns
    -------
    deepscope.predict.files.BatchResult
        ``table`` has :data:`STACK_COLUMNS`.

    Raises
    ------
    deepscope.errors.InputError
        An unknown method, a bad ``voxel_size`` (before anything runs), 2D-model options without ``slices``.
    FileNotFoundError
        A path that does not exist.
    """
    import pandas as pd

    from deepscope.data.loader import image_stem
    from deepscope.data.stacks import check_voxel_size
    from deepscope.io import (check_output, csv_text, expand_inputs, read_image, unique_names, write_labels, write_png,
                              write_text)
    from deepscope.predict.files import BatchResult
    from deepscope.provenance import lineage

    method = method or ("slices" if slices else DEFAULT_VOLUME_METHOD)
    if method not in VOLUME_METHODS:
        raise InputError(f"method={method!r} (--volume-method) is not a 3D segmentation method; use one of "
                         f"{', '.join(VOLUME_METHODS)}")
    if slices and method != "slices":
        raise InputError(f"slices=True segments each plane in 2D; it cannot be combined with method={method!r}")
    vs_given = check_voxel_size(voxel_size, name="--voxel-size") if voxel_size is not None else None
    if diameter is not None and not (math.isfinite(float(diameter)) and float(diameter) > 0):
        raise InputError(f"--diameter {diameter}: give the object diameter in pixels, a positive number")
    opts = {k: v for k, v in model_options.items() if v is not None and not (k == "tta" and v == "none")}
    if method == "classical" and (opts or model is not None):
        named = sorted(opts) + (["model"] if model is not None else [])
        raise InputError(f"{', '.join('--' + n.replace('_', '-') for n in named)}: options of the 2D model, which the "
                         "classical 3D method does not use; add --slices to segment each plane with the model")
    out = Path(output_dir)
    files = expand_inputs(paths, include=include, recursive=recursive, label_images=label_images, exclude_dirs=[out])
    check_output(out, folder=True)
    net = None
    models: list[Any] = []
    if method != "classical":
        extra = sorted(set(opts) - set(_MODEL_OPTIONS[method]))
        if extra:
            takes = ", ".join("--" + n.replace("_", "-") for n in _MODEL_OPTIONS[method])
            raise InputError(f"{', '.join('--' + n.replace('_', '-') for n in extra)}: not an option of the {method} "
                             f"method (it takes {takes})")
        from deepscope.predict.files import _model_ref
        from deepscope.predict.inputs import resolve_model

        net = resolve_model(model if model is not None else "nuclei", task="segment", device=device, backend=backend)
        models.append(_model_ref(net, model if model is not None else "nuclei"))
    stems, _ = unique_names([image_stem(p) for p in files])
    params: dict[str, Any] = {"method": method, "axes": axes, "channel": channel, "frame": frame,
                              "voxel_size": list(vs_given) if vs_given else None, "diameter": diameter,
                              **opts, "n_inputs": len(files)}
    label = f"{method}:{net.name}" if net is not None else method
    rows: list[dict[str, Any]] = []
    inputs: list[Any] = []
    overlays: list[str] = []
    run = lineage.Run.start(command="segment", params=params, models=models)
    for i, (p, stem) in enumerate(zip(files, stems)):
        row: dict[str, Any] = {c: "" for c in STACK_COLUMNS} | {"path": str(p), "count": None, "method": label,
                                                              "planes": None, "in_domain": None}
        try:
            img = read_image(p)
            stack, vs, source = read_stack(img, axes=axes, channel=channel, frame=frame, voxel_size=vs_given,
                                           path=str(p))
            labels = segment_stack(stack, voxel_size=vs, method=method, model=net, diameter=diameter, **opts)
            labels = np.asarray(labels, np.int32)
            if net is not None:  # the model's domain check, on the stack's brightest plane
                from deepscope.predict.domain import warn_out_of_domain

                bright = stack[int(np.argmax([np.percentile(plane, 99) for plane in stack]))]
                domain = net.predict_image(bright, diameter=diameter, return_info=True)[-1]
                row["in_domain"] = domain.in_domain
                warn_out_of_domain(str(p), net.name, domain)
            n = int(np.count_nonzero(np.bincount(labels.ravel())[1:])) if labels.any() else 0
            target = out / f"{stem}.labels.tif"
            write_labels(target, labels, voxel_size=vs)
            rec = run.record(target, inputs=[img.meta], extra={
                "count": n, "method": label, "planes": int(stack.shape[0]), "voxel_size": list(vs),
                "voxel_size_source": source, "axes": axes or img.axes, "channel": channel, "frame": frame})
            lineage.attach(target, rec)
            if overlay:
                from deepscope.data.stacks import project, project_labels
                from deepscope.predict.overlay import overlay_outlines

                png = out / f"{stem}.overlay.png"
                write_png(png, overlay_outlines(np.asarray(project(stack, method="max"), np.float32),
                                                project_labels(labels)))
                lineage.attach(png, run.record(png, inputs=[img.meta], extra={"projection": "max", "count": n}))
                overlays.append(str(png))
            inputs.append(img.meta)
            row.update(count=n, planes=int(stack.shape[0]), shape=" x ".join(str(s) for s in stack.shape),
                       voxel_size=_voxel_text(vs), voxel_size_source=source, labels=str(target))
        except (DeepscopeError, OSError) as exc:
            logger.info("%s: %s", p, exc)
            row["error"] = " ".join(str(exc).split())
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(files))
    table = pd.DataFrame(rows, columns=list(STACK_COLUMNS))
    table["count"] = table["count"].astype("Int64")
    table["planes"] = table["planes"].astype("Int64")
    n_failed = int((table["error"] != "").sum())
    table_path = write_text(out / "counts.csv", csv_text(table))
    lineage.attach(table_path, run.record(table_path, inputs=inputs,
                                          extra={"n_images": len(files), "n_failed": n_failed}))
    run.finish("ok" if n_failed < len(files) else "failed", {"images": len(files), "failed": n_failed})
    outputs = tuple(str(r) for r in table["labels"] if r) + tuple(overlays) + (str(table_path),)
    return BatchResult(table, outputs, len(files), n_failed, run.run_id)


def segment_files(paths: Iterable[str | os.PathLike[str]], output_dir: str | os.PathLike[str], *,
                  axes: str | None = None, voxel_size: Sequence[float] | None = None, slices: bool = False,
                  frame: int | None = None, volume_method: str | None = None, model: Any = None,
                  include: str | Sequence[str] | None = None, recursive: bool = False, label_images: str = "skip",
                  rois: bool = False, **options: Any) -> Any:
    """Segment image files: 2D images into 2D labels (:func:`deepscope.predict.files.segment_paths`), z-stacks
    into 3D labels (:func:`segment_stack_paths`); what ``deepscope segment`` runs.

    A file is a z-stack when ``axes`` has a Z, or when its header's axes do. Stacks and 2D images are not mixed
    in one run (each writes ``counts.csv`` with its own columns).

    Parameters
    ----------
    paths, output_dir
        As :func:`~deepscope.predict.files.segment_paths`.
    axes, voxel_size, slices, frame, volume_method
        Stacks only (:func:`segment_stack_paths`; ``volume_method`` is its ``method``).
    model : optional
        The 2D model (default ``"nuclei"``); for stacks, used with ``slices`` only.
    include, recursive, label_images
        Folder scans.
    rois : bool
        2D images only.
    **options
        The other options of :func:`~deepscope.predict.files.segment_paths` (``device``, ``tile``, ``tta``,
        ``channel``, ``diameter``, thresholds, ``overlay``, ``progress`` ...).

    Returns
    -------
    deepscope.predict.files.BatchResult

    Raises
    ------
    deepscope.errors.InputError
        Stacks and 2D images in one run; a stack-only option (``axes`` without Z, ``voxel_size``, ``slices``,
        ``frame``, ``volume_method``) with no stack among the inputs; ``rois`` with stacks.
    """
    from deepscope.io import expand_inputs
    from deepscope.predict.files import segment_paths

    if axes is not None:
        from deepscope.io import AXES_LETTERS

        axes = axes.upper()
        if not axes or not set(axes) <= set(AXES_LETTERS):
            raise InputError(f"--axes {axes!r}: use the axis letters {''.join(AXES_LETTERS)}, e.g. ZYX or ZCYX")
    out = Path(output_dir)
    with warnings.catch_warnings():  # what the scan warns about (label images left out) is said by the run below
        warnings.simplefilter("ignore")
        files = expand_inputs(paths, include=include, recursive=recursive, label_images=label_images,
                              exclude_dirs=[out])
    stacks = [p for p in files if is_stack(p, axes=axes)]
    flat = [p for p in files if p not in set(stacks)]
    if stacks and flat:
        raise InputError(f"{len(stacks)} of the inputs are z-stacks (e.g. {stacks[0]}) and {len(flat)} are 2D images "
                         f"(e.g. {flat[0]}); segment them in two runs with different --out folders (each writes "
                         "its own counts.csv)")
    if stacks:
        if rois:
            raise InputError(f"--rois writes 2D ImageJ ROI sets; {stacks[0]} is a z-stack, whose objects are written "
                             "as 3D labels only: leave out --rois")
        options.pop("zarr_labels", None)
        options.pop("jobs", None)
        return segment_stack_paths(stacks, out, method=volume_method, slices=slices, model=model, axes=axes,
                                   frame=frame, voxel_size=voxel_size, label_images=label_images, **options)
    stack_only = {"--axes": axes, "--voxel-size": voxel_size, "--slices": slices or None, "--frame": frame,
                  "--volume-method": volume_method}
    given = [k for k, v in stack_only.items() if v is not None]
    if given:
        raise InputError(f"{', '.join(given)}: options for z-stacks, but no input has a Z axis (a file with one "
                         "z-plane is read as a 2-D image: segment it without them); a plain multi-page TIFF of "
                         "optical sections needs --axes ZYX")
    res = segment_paths(paths, out, model=model if model is not None else "nuclei", include=include,
                        recursive=recursive, label_images=label_images, rois=rois, **options)
    pages = {str(p) for p in flat if "I" in _header(p)[0]}
    if pages and len(res.table):  # a plain multi-page TIFF read as channels: say how to read it as a z-stack
        bad = res.table["path"].isin(pages) & (res.table["error"] != "")
        res.table.loc[bad, "error"] = res.table.loc[bad, "error"] + ("; if its pages are optical sections (a "
                                                                      "z-stack), pass --axes ZYX")
    return res
