"""Batch inference over files: count, segment and restore many images, one error row per bad image.

The ``deepscope count``, ``segment`` and ``restore`` commands are thin layers over these
functions, and all three run on the one batch runner (:class:`deepscope.predict.runner.BatchRunner`).
Each one

* takes files and folders (folders are scanned for images),
* never stops on one bad image: an unreadable file or an image the model cannot take gets a
  row with its ``error`` and the run goes on,
* writes every output atomically (temporary name, then rename) with its provenance record
  (:mod:`deepscope.provenance.lineage`), and
* reports progress through a callback ``progress(done, total)``.

The evaluation helpers :func:`evaluate_counts` and :func:`evaluate_restoration` run a model over
a labelled :class:`~deepscope.data.ImageDataset` and score it with :mod:`deepscope.evaluate`.

Importing this module does not import torch; loading a model does.

Examples
--------
>>> from deepscope.predict.batch import count_paths
>>> result = count_paths(["a.tif", "b.tif"], model="count-bbbc005", output="counts.csv")  # doctest: +SKIP
>>> result.table[["path", "count", "count_low", "count_high"]]                           # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.errors import InputError, ModelError, OutputError
from deepscope.predict.runner import PER_IMAGE_ERRORS, BatchRunner, Decoded, Outcome, Progress, error_text

if TYPE_CHECKING:
    import pandas as pd

    from deepscope.data import ImageDataset
    from deepscope.io import Image

__all__ = ["BatchResult", "CountEvaluation", "RestoreEvaluation", "Progress", "COUNT_COLUMNS", "expand_paths",
           "resolve_model", "image_array", "model_input", "overlay_outlines", "count_paths", "segment_paths",
           "restore_paths", "evaluate_counts", "evaluate_restoration", "PER_IMAGE_ERRORS"]

logger = logging.getLogger(__name__)

#: Columns of the counts table written by :func:`count_paths`.
COUNT_COLUMNS = ("path", "count", "count_low", "count_high", "std", "method", "in_domain", "error")


@dataclass(frozen=True)
class BatchResult:
    """What a batch run did.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per input file, in input order, with an ``error`` column (empty when it worked).
    outputs : tuple of str
        Files written (label images, overlays, restored images, the counts CSV).
    n_images : int
        Input files.
    n_failed : int
        Inputs with an error row.
    run_id : str
        Provenance run id recorded with every output.
    stages : dict
        Seconds per stage summed over worker threads (``read``, ``infer`` and the ``network`` within it,
        ``write``, ``write_deferred``, ``wait``) and the ``wall`` time (:attr:`Outcome.stages`).
    jobs : int
        Worker threads the batch ran with.
    """

    table: pd.DataFrame
    outputs: tuple[str, ...]
    n_images: int
    n_failed: int
    run_id: str
    stages: dict[str, float] = field(default_factory=dict)
    jobs: int = 1

    @property
    def all_failed(self) -> bool:
        """True when every input failed (the CLI then exits non-zero)."""
        return self.n_images > 0 and self.n_failed == self.n_images

    def summary(self) -> str:
        """One line: images done and failed."""
        return f"{self.n_images - self.n_failed} of {self.n_images} image(s) done, {self.n_failed} failed"


# --------------------------------------------------------------------------- inputs

def expand_paths(paths: Iterable[str | os.PathLike[str]], *, include: str | Sequence[str] | None = None,
                 recursive: bool = False, exclude_dirs: Sequence[str | os.PathLike[str]] = ()) -> list[Path]:
    """Files and folders -> image files (folders scanned in natural order; files kept as given).

    Paths that do not exist are kept, so that they get an error row.

    Parameters
    ----------
    paths : iterable of str or PathLike
    include : str or sequence of str, optional
        File-name globs for folder scans, e.g. ``"*_w1.TIF"``.
    recursive : bool, default False
        Scan sub-folders too.
    exclude_dirs : sequence of paths
        Folders whose files are left out (an output folder inside an input folder).

    Raises
    ------
    deepscope.errors.InputError
        If no path was given, or a folder holds no image files.

    Examples
    --------
    >>> expand_paths(["missing.tif"])
    [PosixPath('missing.tif')]
    """
    from deepscope.io import find_images, image_format

    excluded = [Path(os.path.realpath(d)) for d in exclude_dirs]
    out: list[Path] = []
    given = [Path(p) for p in paths]
    if not given:
        raise InputError("no input paths given; pass image files or folders")
    from deepscope.io.ngff import is_plate, plate_fields

    for p in given:
        if image_format(p) == "zarr" and is_plate(p):  # an OME-Zarr plate: its fields of view
            out.extend(plate_fields(p))
            continue
        if p.is_dir() and image_format(p) != "zarr":
            files = find_images(p, include=include, recursive=recursive)
            # realpath never raises: a link loop stays an input and gets its error row when it is read
            files = [f for f in files if not any(d in Path(os.path.realpath(f)).parents for d in excluded)]
            if not files:
                what = f" matching {include!r}" if include else ""
                raise InputError(f"no image files{what} found in folder '{p}' (.tif/.tiff/.png/.jpg/.jpeg/.zarr)")
            out.extend(files)
        else:
            out.append(p)
    return out


def resolve_model(model: Any, *, task: str, device: str = "auto", backend: str | None = None) -> Any:
    """A loaded model: ``model`` itself, or :func:`deepscope.models.load_model` of a name or path, set to
    run on ``backend`` (``"torch"`` or ``"onnx"``; None keeps the model's).

    Raises
    ------
    deepscope.errors.ModelError
        Unknown name, not a deepscope model (nothing unpickled or executed), or a model of another task.
    deepscope.errors.InputError
        An unknown ``backend``.
    """
    from deepscope.errors import ModelError
    from deepscope.models import load_model
    from deepscope.models.base import DeepscopeModel
    from deepscope.predict.backends import BACKENDS

    if backend is not None and backend not in BACKENDS:
        raise InputError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if isinstance(model, DeepscopeModel):
        if model.task != task:
            raise ModelError(f"model {model.name!r} is a {model.task} model; this needs a {task} model")
        if device != "auto" and model.device_name != device:
            model.to(device)
    else:
        model = load_model(model, device=device, task=task)
    if backend is not None:
        model.backend = backend
    return model


def image_array(image: Image) -> np.ndarray:
    """The 2-D pixels of an :class:`~deepscope.io.Image`: ``(H, W)`` or ``(H, W, C)``, dtype kept.

    Raises
    ------
    deepscope.errors.InputError
        For a volume or time series (index it first).
    """
    x = image.to_yxc()
    return x[..., 0] if x.shape[-1] == 1 else x


def model_input(x: np.ndarray, model: Any, *, channel: int | None = None, path: str = "") -> np.ndarray:
    """Choose the channel(s) a model takes from a raw image, with a clear error
    (:func:`deepscope.models.select_channels` with the model's input spec).

    Raises
    ------
    deepscope.errors.InputError
        ``channel`` out of range, or several distinct channels and no ``channel``: the message
        names the file and the ``--channel`` fix.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> from deepscope.models import InputSpec
    >>> m = SimpleNamespace(spec=InputSpec(), name="m")
    >>> model_input(np.dstack([np.eye(3), np.zeros((3, 3))]), m, channel=0).shape
    (3, 3)
    """
    from deepscope.models import select_channels

    return select_channels(x, model.spec, channel=channel, path=path, model=model.name)


def _read(path: Path) -> Image:
    from deepscope.io import read_image

    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(f"No such file: '{path}'")
    return read_image(path)


def _model_ref(model: Any, ref: Any) -> Any:
    from deepscope.provenance import lineage

    sha = model.model_card.weights.sha256 if model.model_card.weights else ""
    card = {"ref": str(ref), "task": model.task, "name": model.name}
    parent = model.model_card.training.get("parent")
    if parent:  # a fine-tune: the model it started from, so lineage reaches the shipped weights
        card["parent"] = {"name": parent.get("name"), "weights_sha256": parent.get("weights_sha256"),
                          "n_images": len((model.model_card.training.get("data") or {}).get("train", []))}
    return lineage.ModelRef(str(model.name), sha, card=card)


def _start_run(command: str, net: Any, model: Any, files: list[Path], **params: Any) -> Any:
    """Start the lineage record of a batch command: the model as named, its weights, the parameters."""
    from deepscope.provenance import lineage

    name = str(model if isinstance(model, (str, os.PathLike)) else net.name)
    return lineage.Run.start(command=command, params={"model": name, **params, "n_inputs": len(files)},
                             models=[_model_ref(net, model)])


def _stems(paths: list[Path]) -> list[str]:
    """Output stems per input, unique: a stem an earlier input already uses (``y.tif`` and ``y.png``, or
    ``a/x.tif`` and ``b/x.tif``) gets a suffix (``y_2``) and a warning, so no output replaces another."""
    from deepscope.data import image_stem
    from deepscope.io import unique_names

    stems, renamed = unique_names([image_stem(p) for p in paths])
    for i, old in renamed:
        msg = (f"'{paths[i]}' would write its outputs under the name '{old}', which an earlier input uses; "
               f"its outputs are named '{stems[i]}' instead")
        logger.warning("%s", msg)
        warnings.warn(msg, stacklevel=4)  # at the caller of segment_paths / restore_paths
    return stems


def _overlap(model: Any, tile: int | None, overlap: int | None) -> int | None:
    """The tile overlap: as given, else the card's, shrunk to a quarter of a small ``tile`` that cannot hold it."""
    if overlap is not None or tile is None:
        return overlap
    card = int(model.card.get("output", {}).get("overlap", 0))
    return card if tile > 2 * card else max(tile // 4, 0)


def _decoder(net: Any, channel: int | None, files: list[Path] | None = None, *, keep_colour: bool = False) -> Any:
    """Read a file and select the channel(s) the model takes: the decode stage of every command.

    With ``files`` (commands that write one output per input), each file's output stem, unique among
    them (:func:`_stems`), is in ``Decoded.extra["stem"]``. ``keep_colour``: an image whose channels
    the model cannot reduce (and no ``channel``) is passed on whole, for models that route such images
    elsewhere (a counter with a general segmenter).
    """
    stems = _stems(files) if files is not None else []
    index = {p: i for i, p in enumerate(files or [])}

    def decode(p: Path) -> Decoded:
        extra: dict[str, Any] = {"path": str(p)}
        if files is not None:
            extra["stem"] = stems[index[p]]
        img = _read(p)
        try:
            x = model_input(image_array(img), net, channel=channel, path=str(p))
        except InputError:
            if not keep_colour or channel is not None:
                raise
            from deepscope.data.transforms import check_image

            x = check_image(image_array(img), path=str(p))  # only the channels are passed on: a bad image fails here
        return Decoded(x, inputs=[img], extra=extra)

    return decode


def _jobs(jobs: int | None) -> int:
    """Worker threads of a batch command: as given, else every core this process may use."""
    from deepscope.predict.runner import default_jobs

    if jobs is None:
        return default_jobs()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"jobs={jobs!r}: give a number of workers >= 1 (default: the CPU cores, here "
                         f"{default_jobs()})")
    return jobs


def _finish(run: Any, command_outputs: list[str], files: list[Path], outcome: Outcome, columns: Sequence[str] | None,
            table_path: Any, *, int_columns: Sequence[str] = (), jobs: int = 1) -> BatchResult:
    """The table of a batch, written (with its lineage) where asked, and the run finished."""
    import pandas as pd

    from deepscope.io import safe_text
    from deepscope.provenance import lineage

    # file names that are not UTF-8 are kept, their odd bytes escaped: a table holds only valid text
    rows = [{k: safe_text(v) if isinstance(v, str) else v for k, v in r.items()} for r in outcome.rows]
    table = pd.DataFrame(rows, columns=list(columns) if columns else None)
    for col in int_columns:
        table[col] = table[col].astype("Int64")  # whole numbers, empty for failed images
    n_failed = outcome.n_failed
    outputs = list(command_outputs) + outcome.outputs
    if table_path is not None:
        from deepscope.io import csv_text, write_text

        # text cells that a spreadsheet would run as a formula (a file named =1+2.tif) get a leading '
        try:
            out = write_text(table_path, csv_text(table.drop(columns=[c for c in ("labels",) if c in table])))
        except OSError as exc:  # a full disk: say exactly what is and is not on disk
            run.finish("failed", {"images": len(files), "failed": n_failed, "error": f"{type(exc).__name__}: {exc}"})
            raise _table_not_written(table_path, exc, outcome.outputs) from exc
        lineage.attach(out, run.record(out, inputs=[lineage.InputRef(i.path, i.sha256) for i in outcome.inputs],
                                       extra={"n_images": len(files), "n_failed": n_failed}))
        outputs.append(str(out))
    run.finish("ok" if n_failed < len(files) else "failed", {"images": len(files), "failed": n_failed, "jobs": jobs,
                                                              "stage_seconds": outcome.stages})
    return BatchResult(table, tuple(outputs), len(files), n_failed, run.run_id, dict(outcome.stages), jobs)


def _table_not_written(table_path: Any, exc: OSError, written: Sequence[str]) -> OutputError:
    """The error of a batch whose table could not be written: what was and was not written, and what to do."""
    why = exc.strerror or str(exc)
    if written:
        kept = f"the {len(written)} other output(s) written before it (label images, overlays ...) are kept"
    else:
        kept = "nothing else was written, so the results of this run are lost"
    return OutputError(f"could not write the table '{table_path}' ({why}): it was not written (no partial file is "
                       f"left); {kept}. Fix the cause (free some space) and run the same command again; it "
                       "processes every image again")


# --------------------------------------------------------------------------- display

#: Outline colours of instance classes (1..K) in overlays.
CLASS_COLORS = ((255, 220, 0), (0, 200, 255), (255, 64, 160), (120, 255, 80), (255, 128, 0))
#: Outline colours of several object sets in one overlay (pipelines), in the order of the sets; the first is
#: that of a single label image, so ``segment`` and ``analyze`` overlays look alike.
SET_COLORS = ((255, 220, 0), (255, 0, 255), (0, 200, 255), (0, 255, 0), (255, 64, 64), (160, 120, 255))


def overlay_outlines(image: np.ndarray, labels: np.ndarray | Mapping[str, np.ndarray] | Sequence[np.ndarray], *,
                     color: tuple[int, int, int] = (255, 220, 0), classes: dict[int, int] | None = None) -> np.ndarray:
    """Outlines of instances drawn over the percentile-scaled image, as an RGB uint8 array.

    Parameters
    ----------
    image : numpy.ndarray, (H, W) or (H, W, C)
        Raw image (any dtype); shown percentile-scaled (0.5-99.8) in grey, or the first three
        channels as colour.
    labels : numpy.ndarray of int (H, W), or several (a mapping or sequence of them)
        Instance labels, 0 = background. Several object sets are drawn in :data:`SET_COLORS`, in order.
    color : (int, int, int)
        Outline colour of a single label image.
    classes : dict of int to int, optional
        Class (1..K) of each instance of a single label image: outlines in :data:`CLASS_COLORS`.

    Returns
    -------
    numpy.ndarray of uint8, (H, W, 3)

    Raises
    ------
    deepscope.errors.InputError
        If image and labels differ in height/width.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((8, 8), np.int32); lab[2:6, 2:6] = 1
    >>> ov = overlay_outlines(np.zeros((8, 8), np.uint8), lab)
    >>> ov.shape, ov[2, 2].tolist(), ov[3, 3].tolist()
    ((8, 8, 3), [255, 220, 0], [0, 0, 0])
    """
    from skimage.segmentation import find_boundaries

    from deepscope.data.transforms import to_uint8

    from deepscope.io import Image, as_pixels

    img = np.asarray(as_pixels(image))
    labels = as_pixels(labels) if isinstance(labels, Image) else labels
    sets = list(labels.values()) if isinstance(labels, Mapping) else (
        [labels] if isinstance(labels, np.ndarray) else list(labels))
    for lab in sets:
        if img.shape[:2] != np.shape(lab)[:2]:
            raise InputError(f"image {img.shape[:2]} and labels {np.shape(lab)[:2]} differ in height/width")
    if img.ndim == 3 and img.shape[-1] >= 3:
        rgb = np.stack([to_uint8(img[..., k]) for k in range(3)], axis=-1)
    else:
        grey = to_uint8(img if img.ndim == 2 else img[..., 0])
        rgb = np.repeat(grey[..., None], 3, axis=-1)
    single = len(sets) == 1 and isinstance(labels, np.ndarray)
    for i, lab in enumerate(sets):
        lab = np.asarray(lab)
        edges = find_boundaries(lab, mode="inner")
        if single and classes:
            palette = np.array(CLASS_COLORS, np.uint8)
            lut = np.zeros(int(lab.max()) + 1, np.int64)
            for k, c in classes.items():
                if 0 < int(k) < len(lut):
                    lut[int(k)] = int(c)
            cls = lut[lab[edges]]
            rgb[edges] = palette[(np.maximum(cls, 1) - 1) % len(palette)]
        else:
            rgb[edges] = np.asarray(color if single else SET_COLORS[i % len(SET_COLORS)], np.uint8)
    return rgb


# --------------------------------------------------------------------------- count

def count_paths(paths: Iterable[str | os.PathLike[str]], *, model: Any = "count-bbbc005",
                output: str | os.PathLike[str] | None = None, device: str = "auto", channel: int | None = None,
                batch_size: int = 8, include: str | Sequence[str] | None = None, recursive: bool = False,
                progress: Progress | None = None, backend: str | None = None, jobs: int | None = None) -> BatchResult:
    """Count objects in image files; one row per file (an error row for a file that fails).

    Counting looks at the pixels only, never at the file name.

    Parameters
    ----------
    paths : iterable of str or PathLike
        Image files and folders.
    model : str, PathLike or CountModel, default "count-bbbc005"
        Shipped model name, run folder, model card / weights file, or a loaded model.
    output : str or PathLike, optional
        Write the table here as CSV (atomically), with its provenance record beside it
        (``<output>.prov.json``).
    device : str, default "auto"
    channel : int, optional
        Channel of multi-channel images to count in.
    batch_size : int, default 8
    include : str or sequence of str, optional
        File-name globs for folder scans.
    recursive : bool, default False
        Scan sub-folders of folders too.
    progress : callable, optional
        ``progress(done, total)`` after each image.
    backend : {"torch", "onnx"}, optional
        What runs the network: PyTorch (default) or ONNX Runtime (the network exported on the fly;
        ``pip install "deepscope[onnx]"``); None keeps the model's ``backend``.
    jobs : int, optional
        Worker threads reading and inferring batches at once (default: every CPU core); the results
        are those of ``jobs=1``, written in input order (:class:`deepscope.predict.runner.BatchRunner`).

    Returns
    -------
    BatchResult
        ``table`` has the columns :data:`COUNT_COLUMNS`: the count is a float estimate with its
        95% interval ``[count_low, count_high]`` and the standard deviation behind it; ``method`` says
        how it was counted (``density``: the counting network; ``instances``: the objects of the
        card's generalist segmenter, for images unlike the counter's training images) and
        ``in_domain`` whether that method's domain check accepts the image. Out of every method's
        domain the interval is empty (NaN) and a warning names the file.

    Raises
    ------
    deepscope.errors.ModelError
        The model cannot be loaded or is not a counting model.
    deepscope.errors.InputError
        No inputs, or a folder without images.
    deepscope.errors.OutputError
        ``output`` cannot be written (checked before any image is counted).

    Examples
    --------
    >>> res = count_paths(["../shared/data/bbbc005/images"], output="counts.csv")  # doctest: +SKIP
    >>> res.summary()                                                             # doctest: +SKIP
    '1191 of 1191 image(s) done, 0 failed'
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    jobs = _jobs(jobs)
    files = expand_paths(paths, include=include, recursive=recursive)
    if output is not None:
        from deepscope.io import check_output

        check_output(output, folder=False)  # before any image is counted, not after
    net = resolve_model(model, task="count", device=device, backend=backend)
    run = _start_run("count", net, model, files, channel=channel, batch_size=batch_size, device=device,
                     backend=net.backend, jobs=jobs)

    def row(p: Path) -> dict[str, Any]:
        return {"path": str(p), "count": np.nan, "count_low": np.nan, "count_high": np.nan, "std": np.nan,
                "method": "", "in_domain": None, "error": ""}

    def write(p: Path, d: Decoded, r: Any, rw: dict[str, Any]) -> list[Any]:
        rw.update(count=r.count, count_low=r.low, count_high=r.high, std=r.std, method=r.method,
                  in_domain=r.in_domain)
        return []

    runner: BatchRunner[Path] = BatchRunner(
        row=row, decode=_decoder(net, channel, keep_colour=bool(net.model_card.output.get("general"))), write=write,
        batch_size=batch_size, progress=progress, jobs=jobs,
        infer=lambda ds: net.count_images([d.data for d in ds], batch_size=batch_size,
                                          paths=[d.extra["path"] for d in ds]))
    return _finish(run, [], files, runner.run(files), COUNT_COLUMNS, output, jobs=jobs)


# --------------------------------------------------------------------------- segment

def segment_paths(paths: Iterable[str | os.PathLike[str]], output_dir: str | os.PathLike[str], *,
                  model: Any = "nuclei", device: str = "auto", tile: int | None = None, overlap: int | None = None,
                  tta: str = "none",
                  channel: int | None = None, overlay: bool = True, include: str | Sequence[str] | None = None,
                  recursive: bool = False, progress: Progress | None = None,
                  diameter: float | None = None, rois: bool = False, backend: str | None = None,
                  zarr_labels: bool = True, jobs: int | None = None) -> BatchResult:
    """Segment image files into instance label images, overlays and a counts table.

    Writes, per input, ``<output_dir>/<stem>.labels.tif`` (int32, 0 = background, the input's
    height and width, provenance record embedded in the TIFF) and ``<stem>.overlay.png``
    (outlines over the percentile-scaled image), and ``<output_dir>/counts.csv`` (``path``,
    ``count``, per-class counts for multi-class models, ``error``) with its provenance sidecar.

    Parameters
    ----------
    paths : iterable of str or PathLike
        Image files and folders (files inside ``output_dir`` are left out).
    output_dir : str or PathLike
        Created if missing; existing files of the same names are replaced atomically.
    model : str, PathLike or SegmentModel, default "nuclei"
    device : str, default "auto"
    tile : int, optional
        Tile size for large images (default from the model card); tiles overlap and objects are
        never cut or duplicated at tile borders.
    overlap : int, optional
        Context added around each tile (default from the card, or a quarter of a small ``tile``).
    tta : {"none", "flips", "d8"}, default "none"
        Test-time augmentation.
    channel : int, optional
        Channel of multi-channel images to segment.
    overlay : bool, default True
        Write the overlay PNGs.
    include : str or sequence of str, optional
    recursive : bool, default False
    progress : callable, optional
    diameter : float, optional
        Object diameter in pixels for generalist models (default: estimated per image). Generalist
        models also add the columns ``diameter`` (the diameter used), ``diameter_source``
        (``given``/``estimated``/``default``), ``in_domain`` and ``domain_score``, and warn, naming
        the file, for every image that looks unlike their training images.
    rois : bool, default False
        Also write ``<stem>.rois.zip``, the objects as an ImageJ/Fiji ROI set (:mod:`deepscope.io.rois`).
    backend : {"torch", "onnx"}, optional
        What runs the network: PyTorch (default) or ONNX Runtime (the network exported on the fly;
        ``pip install "deepscope[onnx]"``); None keeps the model's ``backend``.
    zarr_labels : bool, default True
        For OME-Zarr inputs (images, or the fields of a plate), also write the labels into the image's
        own ``labels/<model name>`` group (:func:`deepscope.io.ngff.write_ngff_labels`), where napari
        and ome-zarr find them; a store that cannot be written gets a warning, the TIFF is written.
    jobs : int, optional
        Worker threads reading and inferring batches at once (default: every CPU core); the results
        are those of ``jobs=1``, written in input order (:class:`deepscope.predict.runner.BatchRunner`).

    The label TIFFs carry the input's pixel size (TIFF resolution in micrometres) where the input
    states one, so napari and Fiji show them calibrated. An OME-Zarr image over :data:`OUT_OF_CORE_PIXELS`
    (with ``zarr_labels``) is segmented tile by tile from its store, its labels written only into its
    ``labels/<model>`` group (:func:`deepscope.predict.large.segment_ngff`; the row's ``labels``).

    Returns
    -------
    BatchResult

    Raises
    ------
    deepscope.errors.ModelError
        The model cannot be loaded or is not a segmentation model, or ``diameter`` is given for a
        model that works at its input's scale.
    deepscope.errors.InputError
        No inputs, a folder without images, or an unknown ``tta``.

    Examples
    --------
    >>> res = segment_paths(["../shared/data/dsb2018/images"], "out")  # doctest: +SKIP
    >>> res.table[["path", "count"]].head()                           # doctest: +SKIP
    """
    from deepscope.evaluate import count_instances
    from deepscope.io import check_output
    from deepscope.provenance import lineage

    if tta not in ("none", "flips", "d8"):
        raise InputError(f"tta={tta!r} is not one of ('none', 'flips', 'd8')")
    out_dir = Path(output_dir)
    jobs = _jobs(jobs)
    files = expand_paths(paths, include=include, recursive=recursive, exclude_dirs=[out_dir])
    net = resolve_model(model, task="segment", device=device, backend=backend)
    ov = _overlap(net, tile, overlap)
    class_names = list(net.model_card.output.get("class_names") or [])
    n_classes = int(getattr(net, "n_classes", 1))
    if n_classes > 1 and len(class_names) != n_classes:
        class_names = [f"class{k}" for k in range(1, n_classes + 1)]
    run = _start_run("segment", net, model, files, tile=tile, overlap=ov, tta=tta, channel=channel, device=device,
                     diameter=diameter, backend=net.backend, jobs=jobs)
    check_output(out_dir)  # writable, with free space: before any image is processed
    count_cols = ["count"] + [f"count_{c}" for c in class_names]
    sized = bool(getattr(net.plugin, "reports_info", False))
    if diameter is not None and not sized:
        raise ModelError(f"model {net.name!r} segments images at their own scale and takes no diameter; the "
                         "generalist model (nuclei) rescales images to their object size")
    info_cols: dict[str, Any] = ({"diameter": np.nan, "diameter_source": "", "in_domain": None,
                                  "domain_score": np.nan} if sized else {})

    def row(p: Path) -> dict[str, Any]:
        return {"path": str(p), **{c: np.nan for c in count_cols}, **info_cols, "labels": "", "error": ""}

    def infer(ds: list[Decoded]) -> list[Any]:
        x = ds[0].data
        if ds[0].extra.get("out_of_core"):
            from deepscope.predict.large import segment_ngff

            return [segment_ngff(ds[0].extra["path"], model=net, channel=channel, name=net.name, tile=tile,
                                 overlap=ov, tta=tta, diameter=diameter)]
        if sized:
            labels, classes, info, dom = net.predict_image(x, tile=tile, overlap=ov, tta=tta, return_classes=True,
                                                           return_info=True, diameter=diameter)
            return [(labels, classes, info, dom)]
        if n_classes > 1:
            return [(*net.predict_image(x, tile=tile, overlap=ov, tta=tta, return_classes=True), None, None)]
        return [(net.predict_image(x, tile=tile, overlap=ov, tta=tta), {}, None, None)]

    def write(p: Path, d: Decoded, result: Any, rw: dict[str, Any]) -> list[Any]:
        if d.extra.get("out_of_core"):  # labels already in the store (deepscope.predict.large)
            rw.update(count=result.count, labels=str(result.labels))
            if sized:
                rw.update(diameter=result.diameter, diameter_source=result.diameter_source, in_domain=result.in_domain)
            run.record(result.labels, inputs=d.inputs, extra={"count": result.count})
            return [(functools.partial(lambda path: [str(path)], result.labels), {})]
        labels, classes, info, dom = result
        labels = np.asarray(labels, dtype=np.int32)
        n = count_instances(labels)
        if info is not None:
            from deepscope.predict.domain import warn_out_of_domain

            rw.update(diameter=info.diameter, diameter_source=info.diameter_source, in_domain=dom.in_domain,
                      domain_score=np.nan if dom.score is None else dom.score)
            warn_out_of_domain(str(p), net.name, dom)
        stem = d.extra["stem"]
        lab_path = out_dir / f"{stem}.labels.tif"
        rec = run.record(lab_path, inputs=d.inputs, extra={"count": n})
        ov_path = out_dir / f"{stem}.overlay.png" if overlay else None
        rw.update(count=n, labels=str(lab_path))
        for k, name in enumerate(class_names, start=1):
            rw[f"count_{name}"] = sum(1 for c in classes.values() if int(c) == k)
        # written on the writer thread (zlib releases the GIL) while the next image runs
        meta = getattr(d.inputs[0], "meta", None) if d.inputs else None
        ngff = p if zarr_labels and getattr(meta, "format", "") == "ome-zarr" else None
        fn = functools.partial(_write_segment_outputs, lab_path, labels, lineage.embed_metadata(rec), ov_path,
                               d.data, classes, pixel_size=getattr(meta, "pixel_size", None),
                               rois_path=out_dir / f"{stem}.rois.zip" if rois else None,
                               ngff=(ngff, net.name) if ngff is not None else None)
        return [(fn, {c: np.nan for c in count_cols} | {"labels": ""})]

    decode_whole = _decoder(net, channel, files)

    def decode(p: Path) -> Decoded:
        big = _out_of_core(p) if zarr_labels else None
        if big is None:
            return decode_whole(p)
        logger.info("%s: %d x %d pixels, segmented tile by tile into its labels/%s group", p, *big.meta.shape[-2:],
                    net.name)
        return Decoded(None, inputs=[big], extra={"path": str(p), "out_of_core": True})

    runner: BatchRunner[Path] = BatchRunner(row=row, decode=decode, infer=infer, write=write,
                                            progress=progress, deferred=True, jobs=jobs)
    return _finish(run, [], files, runner.run(files), None, out_dir / "counts.csv", int_columns=count_cols, jobs=jobs)


#: OME-Zarr images whose plane has more pixels than this are segmented tile by tile from their store
#: (:mod:`deepscope.predict.large`): about 7,000 x 7,000, a few GB of working memory as whole images.
#: The environment variable ``DEEPSCOPE_OUT_OF_CORE_PIXELS`` sets another threshold.
OUT_OF_CORE_PIXELS = 50_000_000


def _out_of_core(p: Path) -> Any:
    """The metadata of an OME-Zarr image too large to segment whole (over :data:`OUT_OF_CORE_PIXELS`), else None."""
    from deepscope.io import image_format

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


def _write_segment_outputs(lab_path: Path, labels: np.ndarray, description: Any, ov_path: Path | None,
                           x: np.ndarray, classes: dict[int, int], *, pixel_size: Any = None,
                           rois_path: Path | None = None, ngff: tuple[Path, str] | None = None) -> list[str]:
    from deepscope.io import write_labels, write_png

    out = [str(write_labels(lab_path, labels, description=description, pixel_size=pixel_size))]
    if ov_path is not None:
        out.append(str(write_png(ov_path, overlay_outlines(x, labels, classes=classes))))
    if rois_path is not None:
        from deepscope.io.rois import write_rois

        out.append(str(write_rois(rois_path, labels)))
    if ngff is not None:
        from deepscope.io.ngff import add_ngff_labels

        written = add_ngff_labels(ngff[0], ngff[1], labels)
        if written is not None:
            out.append(str(written))
    return out


# --------------------------------------------------------------------------- restore

def restore_paths(paths: Iterable[str | os.PathLike[str]], output_dir: str | os.PathLike[str], *, model: Any,
                  device: str = "auto", dtype: str = "input", tile: int | None = None, overlap: int | None = None,
                  channel: int | None = None,
                  include: str | Sequence[str] | None = None, recursive: bool = False,
                  progress: Progress | None = None, backend: str | None = None, jobs: int | None = None) -> BatchResult:
    """Restore image files (deblur, predict a stain, 2x super-resolution) into ``<stem>.restored.tif``.

    Each output keeps the input's dtype (``dtype="input"``, values rounded and clipped to its
    range) or is float32 (``dtype="float32"``), with the provenance record embedded in the TIFF.
    A model that finds an image unlike its training data warns; the warning is kept in the
    table's ``warning`` column.

    Parameters
    ----------
    paths : iterable of str or PathLike
        Image files and folders (files inside ``output_dir`` are left out).
    output_dir : str or PathLike
    model : str, PathLike or RestoreModel
        E.g. ``"deblur-bbbc005"`` or a run folder of ``deepscope train restore``.
    device : str, default "auto"
    dtype : {"input", "float32"}, default "input"
    tile : int, optional
        Tile size for large images (default from the model card).
    overlap : int, optional
        Context added around each tile (default from the card, or a quarter of a small ``tile``).
    channel : int, optional
    include : str or sequence of str, optional
    recursive : bool, default False
    progress : callable, optional
    backend : {"torch", "onnx"}, optional
        What runs the network: PyTorch (default) or ONNX Runtime (the network exported on the fly;
        ``pip install "deepscope[onnx]"``); None keeps the model's ``backend``.
    jobs : int, optional
        Worker threads reading and restoring images at once (default: every CPU core); the results
        are those of ``jobs=1``, written in input order (:class:`deepscope.predict.runner.BatchRunner`).

    Returns
    -------
    BatchResult
        ``table`` columns: ``path``, ``output``, ``dtype``, ``warning``, ``error``.

    Raises
    ------
    deepscope.errors.ModelError
        The model cannot be loaded or is not a restoration model.
    deepscope.errors.InputError
        No inputs, a folder without images, or an unknown ``dtype``.

    Examples
    --------
    >>> res = restore_paths(["blurred/"], "restored", model="deblur-bbbc005")  # doctest: +SKIP
    """
    from deepscope.io import check_output
    from deepscope.provenance import lineage

    if dtype not in ("input", "float32"):
        raise InputError(f"dtype={dtype!r} is not one of ('input', 'float32')")
    jobs = _jobs(jobs)
    out_dir = Path(output_dir)
    files = expand_paths(paths, include=include, recursive=recursive, exclude_dirs=[out_dir])
    net = resolve_model(model, task="restore", device=device, backend=backend)
    ov = _overlap(net, tile, overlap)
    run = _start_run("restore", net, model, files, dtype=dtype, tile=tile, overlap=ov, channel=channel,
                     device=device, backend=net.backend, jobs=jobs)
    check_output(out_dir)  # writable, with free space: before any image is processed

    def infer(ds: list[Decoded]) -> list[Any]:
        caught: list[str] = []  # collected per image, not with warnings.catch_warnings (not thread-safe)
        restored = net.predict_image(ds[0].data, dtype=dtype, tile=tile, overlap=ov, on_warning=caught.append)
        for msg in caught:
            logger.warning("%s: %s", ds[0].extra["path"], msg)
        return [(restored, "; ".join(caught))]

    def write(p: Path, d: Decoded, result: Any, rw: dict[str, Any]) -> list[Any]:
        restored, warned = result
        out_path = out_dir / f"{d.extra['stem']}.restored.tif"
        rec = run.record(out_path, inputs=d.inputs, extra={"dtype": str(restored.dtype)})
        rw.update(output=str(out_path), dtype=str(restored.dtype), warning=warned)
        # written on the writer thread while the next image runs
        fn = functools.partial(_write_restored, out_path, restored, lineage.embed_metadata(rec))
        return [(fn, {"output": "", "dtype": ""})]

    runner: BatchRunner[Path] = BatchRunner(
        row=lambda p: {"path": str(p), "output": "", "dtype": "", "warning": "", "error": ""},
        decode=_decoder(net, channel, files), infer=infer, write=write, progress=progress, deferred=True, jobs=jobs)
    return _finish(run, [], files, runner.run(files), ["path", "output", "dtype", "warning", "error"], None, jobs=jobs)


def _write_restored(path: Path, restored: np.ndarray, description: Any) -> list[str]:
    from deepscope.io import write_tiff

    return [str(write_tiff(path, restored, description=description))]


# --------------------------------------------------------------------------- evaluation

@dataclass(frozen=True)
class CountEvaluation:
    """Counting scores of a model on labelled images.

    Attributes
    ----------
    per_image : pandas.DataFrame
        ``path``, ``true``, ``count``, ``count_low``, ``count_high``, ``std``, ``error`` and the
        stratum columns.
    metrics : pandas.DataFrame
        :func:`deepscope.evaluate.count_metrics` over the images that worked: overall, then per
        stratum (``stratum``, ``value``, ``n``, ``mae``, ``rmse``, ``bias``, ``exact``,
        ``coverage``, ``mean_width``).
    n_failed : int
        Images that could not be counted (left out of the scores).
    """

    per_image: pd.DataFrame
    metrics: pd.DataFrame
    n_failed: int


def evaluate_counts(dataset: ImageDataset, *, model: Any = "count-bbbc005", by: Sequence[str] = ("blur", "stain"),
                    device: str = "auto", channel: int | None = None, batch_size: int = 8,
                    progress: Progress | None = None) -> CountEvaluation:
    """Count every image of a dataset with value labels and score the counts, overall and per stratum.

    Parameters
    ----------
    dataset : ImageDataset
        Lazy dataset with one true count per image (e.g. ``ImageLoader(pattern="bbbc005",
        labels="count")``).
    model : str, PathLike or CountModel, default "count-bbbc005"
    by : sequence of str, default ("blur", "stain")
        Metadata columns to break the scores down by (those missing from the metadata are skipped).
    device, channel, batch_size, progress
        As for :func:`count_paths`.

    Returns
    -------
    CountEvaluation

    Raises
    ------
    deepscope.errors.InputError
        A dataset without value labels or without file paths, or every image failed.

    Examples
    --------
    >>> from deepscope.data import ImageLoader
    >>> ds = ImageLoader(pattern="bbbc005", labels="count").load("../shared/data/bbbc005/images")  # doctest: +SKIP
    >>> evaluate_counts(ds).metrics.head(1)                                                        # doctest: +SKIP
    """
    from deepscope.evaluate import count_metrics

    if dataset.label_kind != "value":
        raise InputError("evaluate_counts needs one true count per image (load with labels='count' or a CSV)")
    if dataset.paths is None:
        raise InputError("evaluate_counts needs a dataset of image files (a lazy ImageLoader dataset)")
    res = count_paths(dataset.paths, model=model, device=device, channel=channel, batch_size=batch_size,
                      progress=progress)
    table = res.table.copy()
    table.insert(1, "true", np.asarray(dataset.y, dtype=float))
    md = dataset.metadata
    cols = [c for c in by if c in md.columns]
    for c in cols:
        table[c] = md[c].to_numpy()
    ok = (table["error"] == "").to_numpy()
    if not ok.any():
        raise InputError(f"none of the {len(table)} images could be counted; first error: {table['error'].iloc[0]}")
    good = table[ok]
    metrics = count_metrics(good["true"], good["count"], low=good["count_low"], high=good["count_high"],
                            strata=good[cols] if cols else None)
    return CountEvaluation(table, metrics, res.n_failed)


@dataclass(frozen=True)
class RestoreEvaluation:
    """Restoration scores: image similarity to the target and the downstream effect on counting/segmenting.

    Attributes
    ----------
    per_image : pandas.DataFrame
        Per pair: ``input``, ``target``, ``psnr_raw``/``psnr_restored``, ``ssim_raw``/``ssim_restored``
        (raw = the input itself, or its bicubic upsampling for a super-resolution model), ``true``
        (count from the metadata, if any), ``count_raw``/``count_restored``/``count_target`` (count
        model), ``objects_raw``/``objects_restored``/``objects_target`` (segmentation model),
        ``error``.
    summary : dict
        Means over the pairs that worked (and ``false_objects``, the total of invented objects),
        counting MAE against the true count (or against the target image's count when there is
        none) and segmentation object-count MAE, for raw, restored and target images.
    """

    per_image: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def _data_range(truth: np.ndarray) -> float:
    if np.issubdtype(truth.dtype, np.integer):
        info = np.iinfo(truth.dtype)
        return float(info.max - info.min)
    rng = float(np.max(truth) - np.min(truth))
    return rng if rng > 0 else 1.0


def _upsample(x: np.ndarray, factor: int) -> np.ndarray:
    from skimage.transform import resize

    out = resize(np.asarray(x, np.float64), (x.shape[0] * factor, x.shape[1] * factor), order=3,
                 preserve_range=True, anti_aliasing=False)
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(x.dtype)
    return out.astype(x.dtype)


def evaluate_restoration(pairs: ImageDataset, *, model: Any, count_model: Any = None, segment_model: Any = None,
                         device: str = "auto", true_column: str = "count",
                         progress: Progress | None = None) -> RestoreEvaluation:
    """Score a restoration model on (input, target) pairs, and its effect on counting and segmentation.

    PSNR and SSIM use the data range of the target's dtype (255 for uint8, 65535 for uint16; the
    target's value range for float images) and are given for the restored image and, as the
    baseline, for the raw input (bicubic-upsampled for a super-resolution model). With a
    ``count_model`` the raw, restored and target images are counted; with a ``segment_model``
    they are segmented and their objects counted.

    Parameters
    ----------
    pairs : ImageDataset
        ``label_kind="image"`` pairs, e.g. from :func:`deepscope.data.pair_by_metadata` (or
        :func:`deepscope.data.downscale_pairs` for a super-resolution model).
    model : str, PathLike or RestoreModel
    count_model : str, PathLike or CountModel, optional
    segment_model : str, PathLike or SegmentModel, optional
    device : str, default "auto"
    true_column : str, default "count"
        Metadata column with the true object count (used when present).
    progress : callable, optional

    Returns
    -------
    RestoreEvaluation

    Raises
    ------
    deepscope.errors.InputError
        Not an image-pair dataset, or every pair failed.
    deepscope.errors.ModelError
        A model cannot be loaded or is of the wrong task.

    Examples
    --------
    >>> ev = evaluate_restoration(pairs, model="deblur-bbbc005", count_model="count-bbbc005")  # doctest: +SKIP
    >>> ev.summary["psnr_restored"] > ev.summary["psnr_raw"]                                  # doctest: +SKIP
    True
    """
    import pandas as pd

    from deepscope.evaluate import count_instances, false_structure, psnr, ssim

    if pairs.label_kind != "image":
        raise InputError("evaluate_restoration needs (input, target) image pairs (label_kind='image'); build them "
                         "with deepscope.data.pair_by_metadata")
    net = resolve_model(model, task="restore", device=device)
    counter = resolve_model(count_model, task="count", device=device) if count_model is not None else None
    segmenter = resolve_model(segment_model, task="segment", device=device) if segment_model is not None else None
    md = pairs.metadata
    truth_counts = md[true_column].to_numpy() if true_column in md.columns else None
    in_paths = pairs.paths or [str(i) for i in pairs.ids]
    tg_paths = pairs.label_paths or [f"target of {i}" for i in pairs.ids]
    rows: list[dict[str, Any]] = []
    for i in range(len(pairs)):
        row: dict[str, Any] = {"input": in_paths[i], "target": tg_paths[i]}
        try:
            raw = model_input(pairs.get_image(i), net, path=in_paths[i])
            target = model_input(pairs.get_label(i), net, path=tg_paths[i])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                restored = net.predict_image(raw)
            base = raw if net.upscale == 1 else _upsample(raw, net.upscale)
            if restored.shape != target.shape:
                raise InputError(f"restored '{in_paths[i]}' has shape {restored.shape} but its target "
                                 f"'{tg_paths[i]}' has {target.shape}")
            dr = _data_range(target)
            row.update(psnr_raw=psnr(target, base, data_range=dr), psnr_restored=psnr(target, restored, data_range=dr),
                       ssim_raw=ssim(target, base, data_range=dr), ssim_restored=ssim(target, restored, data_range=dr))
            fs = false_structure(target, restored)
            row.update(false_objects=fs.n_false, false_fraction=fs.false_fraction, missed_fraction=fs.missed_fraction)
            if truth_counts is not None:
                row["true"] = float(truth_counts[i])
            images = {"raw": base, "restored": restored, "target": target}
            if counter is not None:
                res = counter.count_images(list(images.values()))
                for k, r in zip(images, res):
                    row[f"count_{k}"] = r.count
            if segmenter is not None:
                for k, im in images.items():
                    row[f"objects_{k}"] = count_instances(segmenter.predict_image(im))
            row["error"] = ""
        except PER_IMAGE_ERRORS as exc:
            row["error"] = error_text(exc)
            logger.warning("%s: %s", in_paths[i], row["error"])
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(pairs))
    table = pd.DataFrame(rows)
    ok = table[table["error"] == ""]
    if ok.empty:
        raise InputError(f"none of the {len(table)} pairs could be evaluated; first error: {table['error'].iloc[0]}")
    summary: dict[str, Any] = {"n_pairs": int(len(table)), "n_failed": int(len(table) - len(ok)),
                               "model": str(net.name), "upscale": int(net.upscale)}
    for key in ("psnr_raw", "psnr_restored", "ssim_raw", "ssim_restored", "false_fraction", "missed_fraction"):
        summary[key] = float(ok[key].mean())
    summary["false_objects"] = int(ok["false_objects"].sum())
    for prefix, what in (("count", "count_mae"), ("objects", "objects_mae")):
        if f"{prefix}_raw" not in ok.columns:
            continue
        ref = ok["true"] if "true" in ok.columns else ok[f"{prefix}_target"]
        summary[f"{what}_reference"] = "true count" if "true" in ok.columns else "target image"
        for k in ("raw", "restored", "target"):
            summary[f"{what}_{k}"] = float(np.mean(np.abs(ok[f"{prefix}_{k}"].astype(float) - ref.astype(float))))
    return RestoreEvaluation(table, summary)
