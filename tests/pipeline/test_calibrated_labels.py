"""The label images of an analysis carry the pixel size their input files state."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.data.synth import generate_field
from deepscope.io import read_image, write_tiff


def test_analyze_label_images_keep_the_input_pixel_size(tmp_path):
    for i, ps in enumerate(((0.5, 0.5), None)):
        f = generate_field(6, size=(128, 160), seed=i, stains=(1,))
        write_tiff(tmp_path / "in" / f"im{i}.tif", f.images[(1, 1)], pixel_size=ps)
    r = CliRunner().invoke(app, ["analyze", str(tmp_path / "in"), "--model", "otsu-watershed", "--out",
                                 str(tmp_path / "run"), "-j", "0", "--no-report"])
    assert r.exit_code == 0, r.output
    assert read_image(tmp_path / "run" / "labels" / "im0.Nuclei.tif").meta.pixel_size == pytest.approx((0.5, 0.5))
    assert read_image(tmp_path / "run" / "labels" / "im1.Nuclei.tif").meta.pixel_size is None


def test_analyze_measures_in_micrometres_where_the_files_say(tmp_path):
    import pandas as pd

    for i, ps in enumerate(((0.5, 0.5), None, (0.5, 0.8))):
        f = generate_field(6, size=(128, 160), seed=i, stains=(1,))
        write_tiff(tmp_path / "in" / f"im{i}.tif", f.images[(1, 1)], pixel_size=ps)
    r = CliRunner().invoke(app, ["analyze", str(tmp_path / "in"), "--model", "otsu-watershed", "--out",
                                 str(tmp_path / "run"), "-j", "0", "--no-report"])
    assert r.exit_code == 0, r.output
    nuclei = pd.read_csv(tmp_path / "run" / "Nuclei.csv")
    images = pd.read_csv(tmp_path / "run" / "images.csv")
    name = dict(zip(images["ImageNumber"], images["FileName_Image"] if "FileName_Image" in images else images["path"]))
    by = {str(name[k]).rsplit("/", 1)[-1]: g for k, g in nuclei.groupby("ImageNumber")}
    a = by["im0.tif"]
    assert np.allclose(a["AreaShape_Area_um2"], a["AreaShape_Area"] * 0.25)
    assert by["im1.tif"]["AreaShape_Area_um2"].isna().all()  # the file states no pixel size
    assert by["im2.tif"]["AreaShape_Area_um2"].isna().all()  # anisotropic: no shape in micrometres
