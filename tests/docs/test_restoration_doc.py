"""Every command and Python block of docs/restoration.md runs as written (see _harness.py for the stand-in data),
and gives what the page says: IMG.restored.tif per input in the input's dtype (float32 with --float32, 2x
larger for sr2x), pairs that never cross fields, and the evaluation's figures: on F48 -> F1 pairs the raw
input scores ~20 dB PSNR / 0.58 SSIM, deblur-bbbc005 several dB more, and no invented objects."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import tifffile

pytest.importorskip("torch")

from ._harness import page, run_document  # noqa: E402


def _field(path: str) -> tuple[str, str, str]:
    """(count, site, stain) of a BBBC005 name: what an input and its target share."""
    m = re.search(r"_C(\d+)_F\d+_s(\d+)_w(\d)", path)
    assert m, path
    return m.group(1), m.group(2), m.group(3)


def test_restoration_runs_as_written(tmp_path, monkeypatch):
    run = run_document("docs/restoration.md", tmp_path, monkeypatch)
    project, ns = run.project, run.namespace

    # "Every input IMG.tif gives OUTPUT/IMG.restored.tif, in the input's dtype ... or float32 with --float32"
    for folder, out, dtype, scale in (("blurred", "restored", None, 1), ("w1_images", "predicted_w2", np.float32, 1),
                                      ("small", "sr", None, 2)):
        for src in sorted((project / folder).iterdir()):
            pixels = tifffile.imread(src)
            restored = tifffile.imread(project / out / f"{src.stem}.restored.tif")
            assert restored.dtype == (dtype or pixels.dtype), (out, src.name)
            assert restored.shape == (pixels.shape[0] * scale, pixels.shape[1] * scale), (out, src.name)  # sr: 2x larger
    # From Python: "same dtype and size as `blurred`"
    assert ns["sharp"].dtype == ns["blurred"].data.dtype and ns["sharp"].shape == ns["blurred"].data.shape  # type: ignore[attr-defined]

    # pairs from metadata never cross fields; blur 48 -> 1 keeps the stain, stain 1 -> 2 keeps the blur
    deblur, label = ns["deblur"], ns["label"]
    assert len(deblur.paths) == 24 and len(label.paths) == 24  # type: ignore[attr-defined]
    for x, t in zip(deblur.paths, deblur.label_paths):  # type: ignore[attr-defined]
        assert _field(x) == _field(t) and "_F48_" in x and "_F1_" in t
    for x, t in zip(label.paths, label.label_paths):  # type: ignore[attr-defined]
        assert _field(x)[:2] == _field(t)[:2] and x.endswith("_w1.TIF") and t.endswith("_w2.TIF")
        assert re.search(r"_F\d+_", x).group(0) == re.search(r"_F\d+_", t).group(0)  # type: ignore[union-attr]

    # training: three run folders (deblurring, in-silico labelling, 2x super-resolution)
    for name in ("deblur", "w2", "sr2x"):
        assert (project / "runs" / name / "model.safetensors").is_file(), name

    # evaluate restore on held-out F48 -> F1 pairs: the page's table has identity 20.0 / 0.58 and
    # deblur-bbbc005 26.5 / 0.84 on real pairs, and "no invented foreground objects at all"
    assert "| F48 -> F1, PSNR / SSIM (25 pairs) | 20.0 / 0.58 |" in page("docs/restoration.md")
    summary = json.loads((project / "deblur.json").read_text())["summary"]
    assert summary["n_pairs"] > 0 and summary["n_failed"] == 0
    assert summary["psnr_raw"] == pytest.approx(20.0, abs=1.5) and summary["ssim_raw"] == pytest.approx(0.58, abs=0.1)
    assert summary["psnr_restored"] > summary["psnr_raw"] + 3 and summary["ssim_restored"] > summary["ssim_raw"] + 0.1
    assert summary["false_objects"] == 0
    for key in ("count_mae_raw", "count_mae_restored", "count_mae_target", "objects_mae_raw", "objects_mae_restored"):
        assert key in summary, key
