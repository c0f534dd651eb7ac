"""The label images of an analysis carry the pixel size their input files state."""

from __future__ import annotations

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
