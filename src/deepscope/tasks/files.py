"""What the file driver (:func:`deepscope.predict.files.predict_files`) asks of a task: its table row and the files
it writes per image (:class:`FileOutputs`, the base of each task's ``<task>.files.Outputs``).

The driver does what every task shares (inputs, decoding, the batch runner, failures as rows, lineage, progress,
the table); a task's outputs say which columns a row has, how a result fills them and what is written beside
the table (label images, restored images ...), so every command, pipeline and the napari plugin read the same
``run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from deepscope.predict.runner import Decoded

__all__ = ["FileOutputs"]


class FileOutputs:
    """The table row and files of one task for a run of the file driver (subclass per task).

    Parameters
    ----------
    model : DeepscopeModel
        The loaded model.
    options : task Options
        The options every image runs with (:meth:`deepscope.models.DeepscopeModel.options`, ``checked=True``:
        the driver's decoder checks the pixels).
    out : path, optional
        Where outputs go: a folder, or the table's file (a task's :attr:`out_is_folder` says which).
    **settings
        What the task's command takes besides the options (e.g. ``overlay``, ``rois``).
    """

    #: The command the lineage records (``count``, ``segment`` ...).
    command: ClassVar[str] = ""
    #: Whether ``out`` is a folder (outputs per image and the table inside it) or the table's file.
    out_is_folder: ClassVar[bool] = True
    #: Table file name inside the output folder (None: no table file).
    table_name: ClassVar[str | None] = None
    #: Images per call of the task's ``run_batch``.
    batch_size: int = 1
    #: Whether files are written on the writer thread while the next image runs.
    deferred: ClassVar[bool] = True
    #: Whether each input gets a unique output stem (``Decoded.extra["stem"]``).
    stems: ClassVar[bool] = True
    #: Whether a colour image the model cannot reduce is passed on whole (a counter with a general segmenter).
    keep_colour: bool = False

    def __init__(self, model: Any, options: Any, out: str | Path | None = None, **settings: Any) -> None:
        self.model, self.options = model, options
        self.out = Path(out) if out is not None else None
        self.settings = settings

    # ------------------------------------------------------------------ the table
    def columns(self) -> list[str] | None:
        """The table's columns in order (None: those of the rows, in order)."""
        return None

    def int_columns(self) -> Sequence[str]:
        """Columns of whole numbers (written as integers, empty for failed images)."""
        return ()

    def table_path(self) -> Path | None:
        """Where the table is written (None: not written)."""
        if self.out is None:
            return None
        if not self.out_is_folder:
            return self.out
        return self.out / self.table_name if self.table_name else None

    def empty_row(self, path: Path) -> dict[str, Any]:
        """The row of an input before it is processed (its columns with empty values, ``error`` = ``""``)."""
        return {"path": str(path), "error": ""}

    def params(self) -> dict[str, Any]:
        """The run's parameters, recorded in the lineage."""
        return {}

    # ------------------------------------------------------------------ per image
    def decode_hook(self, path: Path) -> Decoded | None:
        """A decoded item for inputs the task reads its own way (an OME-Zarr image too large for memory), else
        None (the driver reads it)."""
        return None

    def infer(self, decoded: list[Decoded]) -> list[Any]:
        """The task's results of decoded images (``run_batch`` with the run's options)."""
        return list(self.model.plugin.run_batch(self.model, [d.data for d in decoded], self.options,
                                                paths=[d.extra["path"] for d in decoded]))

    def write(self, path: Path, decoded: Decoded, result: Any, row: dict[str, Any], run: Any) -> list[Any]:
        """Fill ``row`` from ``result`` and return the writes (``(fn, reset)`` pairs, see
        :class:`deepscope.predict.runner.BatchRunner`); ``run`` records each output's lineage."""
        return []
