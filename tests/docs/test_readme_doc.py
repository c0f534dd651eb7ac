"""Every command and Python block of README.md runs as written (see _harness.py for the stand-in data), and
gives what the page says: the files it names, a split without field leaks, counts with intervals, and
the shipped models' scores in its table equal to those recorded in their model cards."""

from __future__ import annotations

import re

import pandas as pd
import pytest

pytest.importorskip("torch")

from ._harness import ROOT, page, run_document, true_count  # noqa: E402


def test_readme_runs_as_written(tmp_path, monkeypatch):
    run = run_document("README.md", tmp_path, monkeypatch)
    project, ns = run.project, run.namespace

    # "A taste": read_image gives data and axes; the split by field of view leaks no field
    assert ns["img"].axes == "ZYX" and ns["img"].data.shape == (3, 64, 96)  # type: ignore[attr-defined]
    fields = [set(part.metadata["field"]) for part in (ns["train"], ns["valid"], ns["test"])]  # type: ignore[attr-defined]
    assert fields[0] and fields[1] and fields[2]
    assert not (fields[0] & fields[1] or fields[0] & fields[2] or fields[1] & fields[2]), "a field leaks"
    assert sum(len(ns[k]) for k in ("train", "valid", "test")) == 48  # type: ignore[arg-type]

    # `deepscope count ... --out counts.csv`: cells per image, with 95% intervals
    counts = pd.read_csv(project / "counts.csv")
    assert len(counts) == len(list((project / "bbbc005" / "images").glob("*.TIF")))
    inside = counts[counts["in_domain"]]
    assert len(inside) and (inside["count_low"] <= inside["count"]).all() and (inside["count"] <= inside["count_high"]).all()

    # `deepscope segment nuclei/ --out out/`: out/<stem>.labels.tif, overlays, counts.csv; the counts are the
    # true counts of the sample fields (the table: F1@0.5 0.90 on fluorescence)
    seg = pd.read_csv(project / "out" / "counts.csv")
    for src in sorted((project / "nuclei").iterdir()):
        assert (project / "out" / f"{src.stem}.labels.tif").is_file() and (project / "out" / f"{src.stem}.overlay.png").is_file()
    assert len(seg) == 2 and all(abs(c - true_count(p)) <= 2 for p, c in zip(seg["path"], seg["count"]))
    assert len(list((project / "sharp").glob("*.restored.tif"))) == len(list((project / "blurred").iterdir()))
    assert (project / "runs" / "count" / "model.safetensors").is_file()

    # `deepscope analyze`: tables + report.html, per-image quality control, CellProfiler's object columns,
    # wells.csv when the names carry wells; its nucleus counts are the fields' true counts
    images = pd.read_csv(project / "run1" / "images.csv")
    for col in ("ImageQuality_FocusScore_", "ImageQuality_PowerLogLogSlope_", "ImageQuality_PercentMaximal_",
                "Mean_Nuclei_", "Median_Nuclei_", "StDev_Nuclei_"):
        assert any(c.startswith(col) for c in images.columns), col
    assert all(abs(n - true_count(p)) <= 2 for p, n in zip(images["path"], images["Count_Nuclei"]))
    nuclei_cols = pd.read_csv(project / "run1" / "Nuclei.csv", nrows=1).columns
    for col in ("AreaShape_Area", "AreaShape_Zernike_0_0", "AreaShape_MaxFeretDiameter", "Intensity_MeanIntensity_",
                "Location_Center_X"):
        assert any(c.startswith(col) for c in nuclei_cols), col
    assert sorted(pd.read_csv(project / "run1" / "wells.csv")["Metadata_well"]) == ["A05"]
    for f in ("run1/report.html", "run2/images.parquet", "deepscope.db"):
        assert (project / f).is_file(), f
    assert "made by" in run.output("deepscope lineage run1/images.parquet")
    assert not (project / "synth").exists()  # --dry-run writes nothing

    # the shipped models' table: each score it states is the one recorded in the model's card
    from deepscope.models import model_card

    text = page("README.md")
    def metric(name: str, *keys: str) -> float:
        value = model_card(name).metrics
        for k in keys:
            value = value[k]
        return float(value)
    stated = [
        ("BBBC005 test fields: MAE 0.89 cells", metric("count-bbbc005", "bbbc005_test_fields", "overall", "mae"), 0.89),
        ("| MAE 1.33 |", metric("count-bbbc005-fast", "bbbc005_test_fields", "overall", "mae"), 1.33),
        ("fluorescence 0.90 / 0.62", metric("nuclei", "test", "fluorescence", "f1@0.5_mean"), 0.90),
        ("fluorescence 0.90 / 0.62", metric("nuclei", "test", "fluorescence", "dsb_score"), 0.62),
        ("H&E 0.77 / 0.37", metric("nuclei", "test", "he", "f1@0.5_mean"), 0.77),
        ("fluorescence 0.90 / 0.60, H&E 0.74 / 0.34", metric("nuclei-fast", "test", "fluorescence", "dsb_score"), 0.60),
        ("fluorescence 0.90 / 0.60, H&E 0.74 / 0.34", metric("nuclei-fast", "test", "he", "f1@0.5_mean"), 0.74),
        ("brightfield 0.74 / 0.40 |", metric("nuclei-fast", "test", "brightfield", "dsb_score"), 0.40),
        ("F1@0.5 0.92, DSB score 0.66", metric("nuclei-fluo", "dsb2018_test", "f1@0.5_mean"), 0.92),
        ("F1@0.5 0.92, DSB score 0.66", metric("nuclei-fluo", "dsb2018_test", "dsb_score"), 0.66),
        ("real w1 count MAE 0.37", metric("cells-bbbc005", "bbbc005_test_fields_object_count", "mae_stain=1"), 0.37),
        ("26.5 dB PSNR", metric("deblur-bbbc005", "bbbc005_test_fields", "psnr_blur=48"), 26.5),
        ("Pearson 0.97", metric("label-bbbc005-w2", "bbbc005_test_fields", "pearson"), 0.97),
    ]
    for words, recorded, figure in stated:
        assert words in text, f"README.md no longer says {words!r}"
        assert round(recorded, 2 if figure < 10 else 1) == pytest.approx(figure), (words, recorded)
    listed = run.output("deepscope models")
    table = re.findall(r"^\| `([\w-]+)` \| ", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.M)
    assert len(table) == 9 and all(name in listed for name in table), (table, listed)
