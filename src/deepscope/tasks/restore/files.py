"""What ``deepscope restore`` writes: per image ``<stem>.restored.tif`` (the input's dtype or float32, with the
provenance record), one row per image (the output, its dtype and any warning about the input)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.predict.runner import Decoded
from deepscope.tasks.files import FileOutputs
from deepscope.tasks.restore.options import RestoreResult

__all__ = ["RestoreOutputs"]

logger = logging.getLogger(__name__)


class RestoreOutputs(FileOutputs):
    """Restored images in the folder ``out``; the table (``path``, ``output``, ``dtype``, ``warning``, ``error``) is
    returned, not written."""

    command = "restore"

    def columns(self) -> list[str]:
        return ["path", "output", "dtype", "warning", "error"]

    def params(self) -> dict[str, Any]:
        o = self.options
        return {"dtype": o.dtype, "tile": o.tile, "overlap": o.overlap, "channel": o.channel}

    def empty_row(self, path: Path) -> dict[str, Any]:
        return {"path": str(path), "output": "", "dtype": "", "warning": "", "error": ""}

    def infer(self, decoded: list[Decoded]) -> list[Any]:
        out = []
        for d in decoded:
            r = self.model.plugin.run(self.model, d.data, self.options)  # its warnings are kept per image
            for msg in r.warnings:
                logger.warning("%s: %s", d.extra["path"], msg)
            out.append(r)
        return out

    def write(self, path: Path, decoded: Decoded, result: RestoreResult, row: dict[str, Any], run: Any) -> list[Any]:
        from deepscope.provenance import lineage

        assert self.out is not None
        out_path = self.out / f"{decoded.extra['stem']}.restored.tif"
        rec = run.record(out_path, inputs=decoded.inputs, extra={"dtype": str(result.image.dtype)})
        row.update(output=str(out_path), dtype=str(result.image.dtype), warning="; ".join(result.warnings))
        # written on the writer thread while the next image runs
        fn = functools.partial(_write_restored, out_path, result.image, lineage.embed_metadata(rec))
        return [(fn, {"output": "", "dtype": ""})]


def _write_restored(path: Path, restored: np.ndarray, description: Any) -> list[str]:
    from deepscope.io import write_tiff

    return [str(write_tiff(path, restored, description=description))]
