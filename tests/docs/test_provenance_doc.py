"""Every command and Python block of docs/provenance.md runs as written (see _harness.py for the stand-in data),
and gives what the page says: queries that select by the YAML's and the names' metadata, an export of every
image, checks that name the missing field, metadata parsed with units, the optics figures the page states,
and a lineage record beside every output."""

from __future__ import annotations

import re

import pandas as pd
import pytest

pytest.importorskip("torch")

from ._harness import ROOT, run_document  # noqa: E402


def test_provenance_runs_as_written(tmp_path, monkeypatch):
    run = run_document("docs/provenance.md", tmp_path, monkeypatch)
    project, ns = run.project, run.namespace
    n_images = len(list((project.parent / "shared" / "data" / "bbbc005" / "images").glob("*.TIF")))

    # `catalog query --where blur=48` ("one path per line"); conditions are ANDed; stain=nuclei comes from the YAML
    blurred = [line for line in run.output("deepscope catalog query --where blur=48").splitlines() if line.startswith("/")]
    assert len(blurred) == n_images // 2 and all("_F48_" in p for p in blurred)
    both = [line for line in run.output("deepscope catalog query -w blur=48 -w stain=nuclei").splitlines()
            if line.startswith("/")]
    assert len(both) == n_images // 4 and all("_F48_" in p and p.endswith("_w1.TIF") for p in both)
    shown = run.output("deepscope catalog show")
    assert re.search(r"channels\.0\.stain = nuclei\s+\[yaml\]", shown) and re.search(r"extras\.blur = 48\s+\[pattern\]", shown)
    assert len(pd.read_parquet(project / "bbbc005.parquet")) == n_images
    assert f"checked {n_images} image(s): {n_images} with issues ({n_images} missing-field)" in run.output(
        "deepscope catalog check")  # the YAML states no objective NA

    # Python: adding the same images again catalogues nothing new; queries and the data frame
    assert re.match(rf"{n_images} file\(s\): 0 added", run.python_output())
    assert len(ns["blurred"]) == n_images // 4 and len(ns["df"]) == n_images // 2  # type: ignore[arg-type]
    # ImageMeta: friendly spellings and units ("pixel_size_um: 108 nm" is 0.108 um)
    flat = ns["meta"].flatten()  # type: ignore[attr-defined]
    assert flat["objective.magnification"] == 60.0 and flat["objective.na"] == 1.4 and flat["channels.0.stain"] == "DAPI"
    assert flat["physical_size_x_um"] == pytest.approx(0.108) and flat["physical_size_y_um"] == pytest.approx(0.108)

    # Optics: each figure the page states next to its call
    text = (ROOT / "docs" / "provenance.md").read_text(encoding="utf-8")
    stated = re.findall(r"^(optics\.\w+\([^#\n]*\))\s+#[^\n]*?(\d+\.\d+) (?:nm|um)", text, flags=re.M)
    assert len(stated) == 4, stated
    for call, figure in stated:
        value = eval(call, ns)  # noqa: S307 - the page's own call
        assert round(value, len(figure.split(".")[1])) == pytest.approx(float(figure)), (call, value, figure)

    # Lineage: every output gets its record beside it
    labels = sorted((project / "out").glob("*_labels.tif"))
    assert len(labels) == 2 and all(p.with_name(p.name + ".prov.json").is_file() for p in labels)
