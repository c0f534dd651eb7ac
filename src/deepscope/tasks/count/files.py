"""What ``deepscope count`` writes: one row per image (the count, its interval, how it was counted), no files
beside the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepscope.predict.runner import Decoded
from deepscope.tasks.count.options import CountResult
from deepscope.tasks.files import FileOutputs

__all__ = ["CountOutputs", "COUNT_COLUMNS"]

#: Columns of the counts table.
COUNT_COLUMNS = ("path", "count", "count_low", "count_high", "count_estimate", "std", "method", "in_domain", "error")


class CountOutputs(FileOutputs):
    """The counts table (``out``: its CSV file, optional); images are counted ``options.batch_size`` at a time."""

    command = "count"
    out_is_folder = False
    deferred = False
    stems = False

    def __init__(self, model: Any, options: Any, out: str | Path | None = None, **settings: Any) -> None:
        super().__init__(model, options, out, **settings)
        self.batch_size = int(options.batch_size)
        # colour images (no channel given) go whole to the card's generalist segmenter
        self.keep_colour = options.general is not None

    def columns(self) -> list[str]:
        return list(COUNT_COLUMNS)

    def params(self) -> dict[str, Any]:
        return {"channel": self.options.channel, "batch_size": self.options.batch_size}

    def empty_row(self, path: Path) -> dict[str, Any]:
        return {"path": str(path), "count": np.nan, "count_low": np.nan, "count_high": np.nan,
                "count_estimate": np.nan, "std": np.nan,
                "method": "", "in_domain": None, "error": ""}

    def write(self, path: Path, decoded: Decoded, result: CountResult, row: dict[str, Any], run: Any) -> list[Any]:
        row.update(count=result.count, count_low=result.low, count_high=result.high, count_estimate=result.estimate,
                   std=result.std,
                   method=result.method, in_domain=result.in_domain)
        return []
