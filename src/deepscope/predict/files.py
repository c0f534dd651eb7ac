"""The file driver: count, segment and restore many image files, one row per file and an error row per bad one.

The ``deepscope count``, ``segment`` and ``restore`` commands are thin layers over these
functions, and all three run on the one batch runner (:class:`deepscope.predict.runner.BatchRunner`).
Each one

* takes files, folders and OME-Zarr plates (:func:`deepscope.io.expand_inputs`, as pipelines, the
  catalog and ``inspect`` do),
* never stops on one bad image: an unreadable file or an image the model cannot take gets a
  row with its ``error`` and the run goes on,
* writes every output atomically (temporary name, then rename) with its provenance record
  (:mod:`deepscope.provenance.lineage`), and
* reports progress through a callback ``progress(done, total)``.

The model, its pixels and the tile overlap are resolved by :mod:`deepscope.predict.inputs`, the rule
pipelines use too; an OME-Zarr image too large for memory goes tile by tile through
:mod:`deepscope.predict.large`; overlays are drawn by :mod:`deepscope.predict.overlay`.

Importing this module does not import torch; loading a model does.

Examples
--------
>>> from deepscope.predict.files import count_paths
>>> result = count_paths(["a.tif", "b.tif"], model="count-bbbc005", output="counts.csv")  # doctest: +SKIP
>>> result.table[["path", "count", "count_low", "count_high"]]                           # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from deepscope.errors import InputError, OutputError, user_stacklevel
from deepscope.predict.engine import TTA_MODES
from deepscope.predict.inputs import image_array, model_input, read_input, resolve_model, tile_overlap
from deepscope.predict.runner import BatchRunner, Decoded, Outcome, Progress

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BatchResult", "TaskOutputs", "predict_files", "count_paths", "segment_paths", "restore_paths", "Progress"]

logger = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------- the driver

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
        warnings.warn(msg, stacklevel=user_stacklevel())  # at the caller of segment_paths / restore_paths
    return stems


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
        img = read_input(p)
        try:  # channels chosen and pixels checked here, once: the model is then called with checked=True
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


# --------------------------------------------------------------------------- the one driver

@runtime_checkable
class TaskOutputs(Protocol):
    """What :func:`predict_files` asks of a task (``model.plugin.file_outputs(model, options, out, **settings)``;
    deepscope's tasks subclass :class:`deepscope.tasks.files.FileOutputs`): the table row, the files written per
    image, and how images are read and batched."""

    @property
    def command(self) -> str:
        """The command the lineage records."""
        ...

    @property
    def out_is_folder(self) -> bool:
        """Whether ``out`` is a folder (else the table's file)."""
        ...

    @property
    def batch_size(self) -> int:
        """Images per call of :meth:`infer`."""
        ...

    @property
    def deferred(self) -> bool:
        """Whether files are written on the writer thread."""
        ...

    @property
    def stems(self) -> bool:
        """Whether each input gets a unique output stem."""
        ...

    @property
    def keep_colour(self) -> bool:
        """Whether a colour image the model cannot reduce is passed on whole."""
        ...


    def columns(self) -> list[str] | None: ...

    def int_columns(self) -> Sequence[str]: ...

    def table_path(self) -> Path | None: ...

    def params(self) -> dict[str, Any]: ...

    def empty_row(self, path: Path) -> dict[str, Any]: ...

    def decode_hook(self, path: Path) -> Decoded | None: ...

    def infer(self, decoded: list[Decoded]) -> list[Any]: ...

    def write(self, path: Path, decoded: Decoded, result: Any, row: dict[str, Any], run: Any) -> list[Any]: ...


def predict_files(paths: Iterable[str | os.PathLike[str]], model: Any, out: str | os.PathLike[str] | None = None,
                  options: Any = None, *, task: str | None = None, device: str = "auto", backend: str | None = None,
                  include: str | Sequence[str] | None = None, recursive: bool = False,
                  label_images: str = "skip", progress: Progress | None = None, jobs: int | None = None,
                  record: Mapping[str, Any] | None = None, ref: Any = None, **settings: Any) -> BatchResult:
    """Run a model of any task over image files: one row per file (an error row for a file that fails) and the
    task's outputs per image; the one driver of ``deepscope count`` / ``segment`` / ``restore`` and of any task a
    plugin adds.

    Each file is read, its channels chosen and its pixels checked once, given to the task's ``run`` (in batches
    where the task batches), and its row and outputs written by the task's file outputs
    (``model.plugin.file_outputs``, :class:`deepscope.tasks.files.FileOutputs`), with their lineage; a table is
    written where the task keeps one.

    Parameters
    ----------
    paths : iterable of str or PathLike
        Image files, folders and OME-Zarr plates (:func:`deepscope.io.expand_inputs`; files inside ``out`` are
        left out).
    model : str, PathLike or DeepscopeModel
        Shipped model name, run folder, model card / weights file, or a loaded model.
    out : str or PathLike, optional
        The task's output folder, or its table's file (counting).
    options : task Options or mapping, optional
        The task's options (:meth:`deepscope.models.DeepscopeModel.options`), or a mapping of them (tile, tta,
        channel, diameter ...); default: the card's.
    task : str, optional
        The task the model must be of (default: the model's).
    device, backend : str
        Where and on what the network runs (``backend`` None: the model's).
    include, recursive, label_images
        Folder scans: file-name globs, sub-folders, and whether files that look like label images or
        outputs (``*_mask*``, ``masks/``, ``*.labels.*``) are left out (``"skip"``, with a warning) or read.
    progress : callable, optional
        ``progress(done, total)`` after each image.
    jobs : int, optional
        Worker threads (default: every CPU core); the results are those of ``jobs=1``, in input order.
    record : mapping, optional
        Parameters to record in the lineage as the caller named them (default: the task's).
    ref : str or PathLike, optional
        The model as the caller named it, for the lineage (default: ``model``).
    **settings
        What the task's outputs take besides the options (``overlay``, ``rois``, ``zarr_labels`` ...).

    Returns
    -------
    BatchResult

    Raises
    ------
    deepscope.errors.ModelError
        The model cannot be loaded, or is not of ``task``.
    deepscope.errors.InputError
        No inputs, a folder without images, or an option the task does not take.
    deepscope.errors.OutputError
        ``out`` cannot be written (checked before any image is processed).
    """
    from deepscope.io import check_output, expand_inputs
    from deepscope.predict.backends import backend_of

    jobs = _jobs(jobs)
    files = expand_inputs(paths, include=include, recursive=recursive, label_images=label_images,
                          exclude_dirs=[out] if out is not None else [])
    net = resolve_model(model, task=task or _task_of(model), device=device, backend=backend)
    if options is None or isinstance(options, Mapping):
        # the driver's decoder chooses the channels and checks the pixels, once
        options = net.options(**{**dict(options or {}), "checked": True})
    outputs: TaskOutputs = net.plugin.file_outputs(net, options, out, **settings)
    if out is not None:
        check_output(out, folder=outputs.out_is_folder)  # writable, with free space: before any image
    run = _start_run(outputs.command or net.task, net, model if ref is None else ref, files,
                     **(dict(record) if record is not None else outputs.params()), device=device,
                     backend=backend_of(net), jobs=jobs)
    decode_file = _decoder(net, getattr(options, "channel", None), files if outputs.stems else None,
                           keep_colour=outputs.keep_colour)

    def decode(p: Path) -> Decoded:
        return outputs.decode_hook(p) or decode_file(p)

    runner: BatchRunner[Path] = BatchRunner(
        row=outputs.empty_row, decode=decode, infer=outputs.infer,
        write=lambda p, d, r, row: outputs.write(p, d, r, row, run), batch_size=outputs.batch_size,
        progress=progress, deferred=outputs.deferred, jobs=jobs)
    return _finish(run, [], files, runner.run(files), outputs.columns(), outputs.table_path(),
                   int_columns=outputs.int_columns(), jobs=jobs)


def _task_of(model: Any) -> str:
    """The task of a loaded model, or of a name or path (read from its card)."""
    from deepscope.models import model_card
    from deepscope.models.base import DeepscopeModel

    return model.task if isinstance(model, DeepscopeModel) else model_card(model).task


# --------------------------------------------------------------------------- count

def count_paths(paths: Iterable[str | os.PathLike[str]], *, model: Any = "count-bbbc005",
                output: str | os.PathLike[str] | None = None, device: str = "auto", channel: int | None = None,
                batch_size: int = 8, include: str | Sequence[str] | None = None, recursive: bool = False,
                label_images: str = "skip", progress: Progress | None = None, backend: str | None = None,
                jobs: int | None = None, tta: str | None = None) -> BatchResult:
    """Count objects in image files; one row per file (an error row for a file that fails).

    Counting looks at the pixels only, never at the file name.

    Parameters
    ----------
    paths : iterable of str or PathLike
        Image files, folders and OME-Zarr plates (:func:`deepscope.io.expand_inputs`).
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
    backend : {"auto", "torch", "onnx", "onnx-int8"}, optional
        What runs the network: None keeps the model's ``backend`` (``auto`` unless set: int8 ONNX Runtime on a CPU
        where the model's card allows it, else PyTorch; :func:`deepscope.predict.backends.auto_backend`).
    jobs : int, optional
        Worker threads reading and inferring batches at once (default: every CPU core); the results
        are those of ``jobs=1``, written in input order (:class:`deepscope.predict.runner.BatchRunner`).
    tta : {"none", "transpose", "diagonal", "flips", "d8"}, optional
        Test-time augmentation of the density network (passes: 1, 2, 4, 8); default the card's
        (``count-bbbc005``: ``diagonal``), with which its intervals were calibrated.

    Returns
    -------
    BatchResult
        ``table`` has the columns of :data:`deepscope.tasks.count.files.COUNT_COLUMNS`: the count (a whole
        number: ``count_estimate``, the network's own figure, rounded) with its 95% interval
        ``[count_low, count_high]`` (whole numbers) and the standard deviation behind it; ``method`` says
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
    opts: dict[str, Any] = {"channel": channel, "batch_size": batch_size}
    if tta is not None:
        opts["tta"] = tta
    return predict_files(paths, model, output, opts, task="count",
                         device=device, backend=backend, include=include, recursive=recursive,
                         label_images=label_images, progress=progress, jobs=jobs,
                         record={"channel": channel, "batch_size": batch_size, "tta": tta})


# --------------------------------------------------------------------------- segment

def segment_paths(paths: Iterable[str | os.PathLike[str]], output_dir: str | os.PathLike[str], *,
                  model: Any = "nuclei", device: str = "auto", tile: int | None = None, overlap: int | None = None,
                  tta: str = "none",
                  channel: int | None = None, overlay: bool = True, include: str | Sequence[str] | None = None,
                  recursive: bool = False, label_images: str = "skip", progress: Progress | None = None,
                  diameter: float | None = None, rois: bool = False, backend: str | None = None,
                  zarr_labels: bool = True, jobs: int | None = None, prob_threshold: float | None = None,
                  flow_threshold: float | None = None, min_size: int | None = None) -> BatchResult:
    """Segment image files into instance label images, overlays and a counts table.

    Writes, per input, ``<output_dir>/<stem>.labels.tif`` (int32, 0 = background, the input's
    height and width, provenance record embedded in the TIFF) and ``<stem>.overlay.png``
    (outlines over the percentile-scaled image), and ``<output_dir>/counts.csv`` (``path``,
    ``count``, per-class counts for multi-class models, ``error``) with its provenance sidecar.

    Parameters
    ----------
    paths : iterable of str or PathLike
        Image files, folders and OME-Zarr plates (:func:`deepscope.io.expand_inputs`; files inside
        ``output_dir`` are left out).
    output_dir : str or PathLike
        Created if missing; existing files of the same names are replaced atomically.
    model : str, PathLike or SegmentModel, default "nuclei"
    device : str, default "auto"
    tile : int, optional
        Tile size for large images (default from the model card); tiles overlap and objects are
        never cut or duplicated at tile borders.
    overlap : int, optional
        Context added around each tile (default from the card, or a quarter of a small ``tile``).
    tta : {"none", "transpose", "diagonal", "flips", "d8"}, default "none"
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
    backend : {"auto", "torch", "onnx", "onnx-int8"}, optional
        What runs the network: None keeps the model's ``backend`` (``auto`` unless set: int8 ONNX Runtime on a CPU
        where the model's card allows it, else PyTorch; :func:`deepscope.predict.backends.auto_backend`).
    zarr_labels : bool, default True
        For OME-Zarr inputs (images, or the fields of a plate), also write the labels into the image's
        own ``labels/<model name>`` group (:func:`deepscope.io.ngff.write_ngff_labels`), where napari
        and ome-zarr find them; a store that cannot be written gets a warning, the TIFF is written.
    jobs : int, optional
        Worker threads reading and inferring batches at once (default: every CPU core); the results
        are those of ``jobs=1``, written in input order (:class:`deepscope.predict.runner.BatchRunner`).
    prob_threshold : float, optional
        (Cell) probability above which a pixel belongs to an object, in (0, 1); higher: fewer, smaller objects
        (default: the model card's tuned value).
    flow_threshold : float, optional
        Flow models (``nuclei``) only: drop objects whose predicted flows disagree with their shape by more than
        this mean squared error (0 = no check; default: the card's).
    min_size : int, optional
        Remove objects under this many pixels (at the scale the model segments; default: the card's). The
        thresholds used are recorded in the lineage (:class:`deepscope.tasks.segment.SegmentOptions`).

    The label TIFFs carry the input's pixel size (TIFF resolution in micrometres) where the input
    states one, so napari and Fiji show them calibrated. An OME-Zarr image over
    :data:`deepscope.predict.large.OUT_OF_CORE_PIXELS`
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
        No inputs, a folder without images, an unknown ``tta``, a threshold out of range, or
        ``flow_threshold`` for a model that does not follow flows.

    Examples
    --------
    >>> res = segment_paths(["../shared/data/dsb2018/images"], "out")  # doctest: +SKIP
    >>> res.table[["path", "count"]].head()                           # doctest: +SKIP
    """
    if tta not in TTA_MODES:
        raise InputError(f"tta={tta!r} is not one of {TTA_MODES}")
    net = resolve_model(model, task="segment", device=device, backend=backend)
    # the task's options: the tile-overlap rule, and a diameter only for models that estimate it
    opts = net.options(tile=tile, overlap=overlap, tta=tta, channel=channel, diameter=diameter, checked=True,
                       prob_threshold=prob_threshold, flow_threshold=flow_threshold, min_size=min_size)
    return predict_files(paths, net, output_dir, opts, task="segment", device=device, backend=backend,
                         include=include, recursive=recursive, label_images=label_images,
                         progress=progress, jobs=jobs, overlay=overlay,
                         rois=rois, zarr_labels=zarr_labels,
                         record={"tile": tile, "overlap": tile_overlap(net, tile, overlap), "tta": tta,
                                 "channel": channel, "diameter": diameter, **opts.thresholds()}, ref=model)


# --------------------------------------------------------------------------- restore

def restore_paths(paths: Iterable[str | os.PathLike[str]], output_dir: str | os.PathLike[str], *, model: Any,
                  device: str = "auto", dtype: str = "input", tile: int | None = None, overlap: int | None = None,
                  channel: int | None = None,
                  include: str | Sequence[str] | None = None, recursive: bool = False,
                  label_images: str = "skip",
                  progress: Progress | None = None, backend: str | None = None, jobs: int | None = None) -> BatchResult:
    """Restore image files (deblur, predict a stain, 2x super-resolution) into ``<stem>.restored.tif``.

    Each output keeps the input's dtype (``dtype="input"``, values rounded and clipped to its
    range) or is float32 (``dtype="float32"``), with the provenance record embedded in the TIFF.
    A model that finds an image unlike its training data warns; the warning is kept in the
    table's ``warning`` column.

    Parameters
    ----------
    paths : iterable of str or PathLike
        Image files, folders and OME-Zarr plates (:func:`deepscope.io.expand_inputs`; files inside
        ``output_dir`` are left out).
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
    backend : {"auto", "torch", "onnx", "onnx-int8"}, optional
        What runs the network: None keeps the model's ``backend`` (``auto`` unless set: int8 ONNX Runtime on a CPU
        where the model's card allows it, else PyTorch; :func:`deepscope.predict.backends.auto_backend`).
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
    if dtype not in ("input", "float32"):
        raise InputError(f"dtype={dtype!r} is not one of ('input', 'float32')")
    net = resolve_model(model, task="restore", device=device, backend=backend)
    opts = net.options(dtype=dtype, tile=tile, overlap=overlap, channel=channel, checked=True)
    return predict_files(paths, net, output_dir, opts, task="restore", device=device, backend=backend,
                         include=include, recursive=recursive, label_images=label_images,
                         progress=progress, jobs=jobs,
                         record={"dtype": dtype, "tile": tile, "overlap": tile_overlap(net, tile, overlap),
                                 "channel": channel}, ref=model)
