"""`deepscope project`: stacks to max / mean / EDF images with the pixel size and a lineage sidecar."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.data.synth import generate_volume
from deepscope.io import read_image
from deepscope.provenance import lineage

runner = CliRunner()


def _out(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    d = tmp_path_factory.mktemp("stacks")
    v = generate_volume(6, shape=(8, 48, 48), z_step=1.0, seed=1, haze=0.5)
    tifffile.imwrite(d / "hyper.tif", v.stack, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "ZYX", "spacing": 1.0, "unit": "um"})
    tifffile.imwrite(d / "plain.tif", v.stack)
    tifffile.imwrite(d / "two.tif", np.stack([v.stack, v.stack], 1), imagej=True, metadata={"axes": "ZCYX"})
    return d, v


@pytest.mark.parametrize("method, dtype", [("max", np.uint16), ("mean", np.float32), ("edf", np.float32)])
def test_project_writes_image_pixel_size_and_lineage(stacks, tmp_path, method, dtype):
    d, v = stacks
    res = runner.invoke(app, ["project", str(d / "hyper.tif"), "--method", method, "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    out = tmp_path / f"hyper.{method}.tif"
    img = read_image(out)
    assert img.shape == (48, 48) and img.dtype == dtype
    assert img.meta.pixel_size == pytest.approx((0.5, 0.5))
    rec = lineage.read(out)
    assert rec.command == "project" and rec.params["method"] == method
    assert rec.extra["voxel_size"] == [1.0, 0.5, 0.5] and rec.extra["planes"] == 8
    assert rec.inputs[0].sha256 == read_image(d / "hyper.tif").meta.sha256


def test_plain_tiff_with_axes_and_voxel_size(stacks, tmp_path):
    d, v = stacks
    res = runner.invoke(app, ["project", str(d / "plain.tif"), "--axes", "ZYX", "--voxel-size", "2", "0.25", "0.25",
                              "--method", "max", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    img = read_image(tmp_path / "plain.max.tif")
    assert np.array_equal(img.data, v.stack.max(0))
    assert img.meta.pixel_size == pytest.approx((0.25, 0.25))


def test_bad_stacks_get_error_lines_and_the_rest_goes_on(stacks, tmp_path):
    d, _ = stacks
    res = runner.invoke(app, ["project", str(d), "--method", "edf", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    text = _out(res)
    assert "1 of 3 stack(s) done, 2 failed" in text
    assert "--axes ZYX" in text and "--channel" in text
    res = runner.invoke(app, ["project", str(d / "two.tif"), "--channel", "1", "-o", str(tmp_path)])
    assert res.exit_code == 0 and (tmp_path / "two.max.tif").exists()


@pytest.mark.parametrize("args, match", [
    (["--method", "median"], "max, mean, edf"),
    (["--voxel-size", "0", "0.5", "0.5"], "positive finite"),
    (["--voxel-size", "nan", "0.5", "0.5"], "positive finite"),
])
def test_bad_options_exit_2(stacks, tmp_path, args, match):
    d, _ = stacks
    res = runner.invoke(app, ["project", str(d / "hyper.tif"), "-o", str(tmp_path), *args])
    assert res.exit_code == 2
    assert match in _out(res)


def test_every_stack_failing_exits_1(stacks, tmp_path):
    d, _ = stacks
    res = runner.invoke(app, ["project", str(d / "plain.tif"), "-o", str(tmp_path)])
    assert res.exit_code == 1
