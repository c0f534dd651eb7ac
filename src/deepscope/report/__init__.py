"""Reports a scientist can act on: one self-contained HTML page per result folder.

>>> from deepscope.report import write_report

:func:`write_report` reads an analysis run folder (``deepscope analyze`` / ``run``), a
``deepscope segment`` folder, a ``deepscope count`` table or a ``deepscope track`` folder
(:mod:`deepscope.report.tracks`: tracks over a frame, lineage trees, speeds and cell-cycle times per
movie) and writes ``report.html``: the run
summary and lineage, a plate map when the image names carry wells, count and size
distributions per condition, measured against true counts when the names carry them, per-image
quality control (focus, blur, saturation, ``in_domain``, failures) with outliers flagged, a
gallery of overlays sorted by quality, and sortable tables. Figures are drawn with matplotlib
and embedded; the page loads nothing from the network.

Imports: ``report`` imports ``io``, ``measure``, ``provenance`` and ``pipeline`` (to read run
folders); only ``cli`` imports it. Importing it does not import matplotlib.
"""

from __future__ import annotations

from deepscope.report.build import REPORT_NAME, report_path, write_report
from deepscope.report.data import Results, load_results

__all__ = ["write_report", "report_path", "load_results", "Results", "REPORT_NAME"]
