"""OME-Zarr plates and labels: a plate made with ome-zarr's own writer goes through segment and analyze,
and the labels come back in each field's labels/ group where ome-zarr's reader finds them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("ome_zarr")

from deepscope.cli.app import app  # noqa: E402
from deepscope.data.synth import generate_field  # noqa: E402
from deepscope.errors import ImageReadError  # noqa: E402
from deepscope.io import read_image  # noqa: E402
from deepscope.io.ngff import is_plate, plate_fields, write_ngff_labels  # noqa: E402
from deepscope.models import list_models  # noqa: E402


def make_plate(path, wells=(("A", "1"), ("A", "2")), fields=2, size=(128, 160)):
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata

    root = zarr.group(store=parse_url(str(path), mode="w").store)
    write_plate_metadata(root, sorted({r for r, _ in wells}), sorted({c for _, c in wells}),
                         [f"{r}/{c}" for r, c in wells])
    truth = {}
    for k, (r, c) in enumerate(wells):
        well = root.require_group(r).require_group(c)
        write_well_metadata(well, [{"path": str(i)} for i in range(fields)])
        for i in range(fields):
            f = generate_field(6 + k + i, size=size, seed=10 * k + i, stains=(1,))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                write_image(f.images[(1, 1)], well.require_group(str(i)), axes="yx")
            truth[f"{r}/{c}/{i}"] = f
    return truth


def test_plate_fields_levels_and_errors(tmp_path):
    plate = tmp_path / "plate.zarr"
    truth = make_plate(plate)
    assert is_plate(plate) and not is_plate(plate / "A" / "1" / "0")
    fields = plate_fields(plate)
    assert [f.relative_to(plate).as_posix() for f in fields] == list(truth)
    img = read_image(fields[0])
    assert img.data.shape == (128, 160) and np.array_equal(img.data, truth["A/1/0"].images[(1, 1)])
    half = read_image(fields[0], level=1)
    assert half.data.shape == (64, 80) and half.meta.pixel_size == pytest.approx((2.0, 2.0))
    with pytest.raises(ImageReadError, match="level=9 but the image has"):
        read_image(fields[0], level=9)
    with pytest.raises(ImageReadError, match="is an OME-Zarr plate, not one image"):
        read_image(plate)


@pytest.mark.skipif("cells-bbbc005" not in {m.name for m in list_models()}, reason="needs cells-bbbc005")
def test_segment_a_plate_writes_labels_that_ome_zarr_reads(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    plate = tmp_path / "plate.zarr"
    make_plate(plate)
    r = CliRunner().invoke(app, ["segment", str(plate), "--model", "cells-bbbc005", "--out", str(tmp_path / "out"),
                                 "--no-overlay", "--no-report"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.labels.tif")) == [
        f"plate_A_{c}_{i}.labels.tif" for c in (1, 2) for i in (0, 1)]
    for field in plate_fields(plate):
        tif = read_image(tmp_path / "out" / f"plate_{'_'.join(field.relative_to(plate).parts)}.labels.tif").data
        nodes = list(Reader(parse_url(str(field / "labels" / "cells-bbbc005")))())
        label = next(n for n in nodes if n.load(Label))
        assert np.array_equal(np.asarray(label.data[0]), tif) and tif.max() >= 3


def test_labels_are_added_beside_others_and_refused_when_they_do_not_fit(tmp_path):
    import zarr

    plate = tmp_path / "plate.zarr"
    make_plate(plate, wells=(("B", "3"),), fields=1)
    field = plate / "B" / "3" / "0"
    lab = np.zeros((128, 160), np.int32)
    lab[10:20, 10:20] = 1
    write_ngff_labels(field, "a", lab)
    write_ngff_labels(field, "b", lab * 2)
    attrs = dict(zarr.open_group(str(field / "labels"), mode="r").attrs)
    assert attrs.get("ome", attrs)["labels"] == ["a", "b"]
    with pytest.raises(Exception, match="do not fit"):
        write_ngff_labels(field, "c", np.zeros((10, 10), np.int32))


def test_analyze_takes_a_plate_as_its_image_sets(tmp_path):
    plate = tmp_path / "plate.zarr"
    make_plate(plate)
    r = CliRunner().invoke(app, ["analyze", str(plate), "--model", "otsu-watershed", "--out", str(tmp_path / "run"),
                                 "-j", "0", "--no-report"])
    assert r.exit_code == 0, r.output
    import pandas as pd

    images = pd.read_csv(tmp_path / "run" / "images.csv")
    assert len(images) == 4 and not images["error"].notna().any()
    for field in plate_fields(plate):  # each field's Nuclei also in its own labels/ group
        stem = "plate_" + "_".join(field.relative_to(plate).parts)
        tif = read_image(tmp_path / "run" / "labels" / f"{stem}.Nuclei.tif").data
        zarr_labels = read_image(field / "labels" / "Nuclei").data
        assert np.array_equal(zarr_labels, tif) and tif.max() > 0
