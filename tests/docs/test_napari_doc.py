"""Every command of docs/napari.md runs as written (see _harness.py for the stand-in data), and gives what the
page says: the reader's Labels layer at the pixel size (1, 1 when none is stated), the segment layer named
"nuclei: <n> objects" with its measurements, and the count layer named with the count, its 95% interval
and the method; on the sample field of 18 nuclei both find 18."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("torch")

from deepscope.models import list_models  # noqa: E402

from ._harness import run_document  # noqa: E402


@pytest.mark.skipif(not {"count-bbbc005", "nuclei"} <= {m.name for m in list_models()}, reason="the page uses the shipped models")
def test_napari_runs_as_written(tmp_path, monkeypatch):
    run = run_document("docs/napari.md", tmp_path, monkeypatch)
    printed = run.python_output().splitlines()
    assert printed[0] == "labels (1.0, 1.0) 18", printed  # kind, the pixel size in um, labels.max()
    assert printed[1] == "nuclei: 18 objects", printed
    assert "ObjectNumber" in printed[2] and "AreaShape_Area" in printed[2]
    m = re.fullmatch(r"count-bbbc005: ([\d.]+) cells \(95% ([\d.]+)-([\d.]+), (density\+objects|density|instances)\)",
                     printed[-1])
    assert m, printed[-1]
    count, low, high = (float(x) for x in m.groups()[:3])
    assert low <= 18 <= high and abs(count - 18) <= 2
