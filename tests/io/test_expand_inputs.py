"""One expansion of inputs (deepscope.io.expand_inputs): the batch commands, pipelines, the catalog and
``inspect`` see the same images in a folder holding images, a sub-folder and an OME-Zarr plate (before,
``catalog add`` recorded a plate as one failed image where ``segment`` saw its fields)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("ome_zarr")

from deepscope.cli.app import app  # noqa: E402
from deepscope.errors import InputError  # noqa: E402
from deepscope.io import expand_inputs, write_png, write_tiff  # noqa: E402
from deepscope.io.ngff import plate_fields  # noqa: E402


def make_plate(path, wells, size, rng):
    """An OME-Zarr plate written by ome-zarr itself: one field of random pixels per well."""
    import warnings

    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata

    root = zarr.group(store=parse_url(str(path), mode="w").store)
    write_plate_metadata(root, sorted({r for r, _ in wells}), sorted({c for _, c in wells}),
                         [f"{r}/{c}" for r, c in wells])
    for r, c in wells:
        well = root.require_group(r).require_group(c)
        write_well_metadata(well, [{"path": "0"}])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_image(rng.integers(0, 255, size, dtype=np.uint8), well.require_group("0"), axes="yx")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """images/: a.tif, b10.png, b2.tif, plate.zarr (2 wells x 1 field), sub/c.tif, notes.csv."""
    root = tmp_path_factory.mktemp("inputs") / "images"
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    write_tiff(root / "a.tif", rng.integers(0, 255, (32, 40), dtype=np.uint8))
    write_tiff(root / "b2.tif", rng.integers(0, 255, (32, 40), dtype=np.uint8))
    write_png(root / "b10.png", rng.integers(0, 255, (32, 40), dtype=np.uint8))
    write_tiff(root / "sub" / "c.tif", rng.integers(0, 255, (32, 40), dtype=np.uint8))
    (root / "notes.csv").write_text("filename,x\na.tif,1\n")
    make_plate(root / "plate.zarr", (("A", "1"), ("B", "2")), (32, 40), rng)
    return root


def _real(paths):
    return sorted(os.path.realpath(p) for p in paths)


def _expected(folder, recursive):
    names = ["a.tif", "b2.tif", "b10.png"] + (["sub/c.tif"] if recursive else [])
    return _real([folder / n for n in names] + plate_fields(folder / "plate.zarr"))


def test_expand_inputs_files_folders_plates(folder, tmp_path):
    got = expand_inputs([folder])
    assert [p.relative_to(folder).as_posix() for p in got] == ["a.tif", "b2.tif", "b10.png", "plate.zarr/A/1/0",
                                                                "plate.zarr/B/2/0"]  # the plate in its place
    assert _real(expand_inputs(folder, recursive=True)) == _expected(folder, True)
    assert expand_inputs([folder / "plate.zarr"]) == plate_fields(folder / "plate.zarr")
    with pytest.raises(FileNotFoundError, match="No such file or folder"):  # a mistyped path: before any work
        expand_inputs([folder / "missing.tif"])
    (tmp_path / "dangling.tif").symlink_to(tmp_path / "nowhere.tif")
    assert expand_inputs([tmp_path / "dangling.tif"]) == [tmp_path / "dangling.tif"]  # kept: a row when read
    assert [p.name for p in expand_inputs([folder], include="b*")] == ["b2.tif", "b10.png"]
    assert [p.name for p in expand_inputs([folder], exclude=["*.zarr", "b*"])] == ["a.tif"]
    (tmp_path / "empty").mkdir()
    assert expand_inputs([tmp_path / "empty"], empty="skip") == []
    with pytest.raises(InputError, match="no image files found in folder"):
        expand_inputs([tmp_path / "empty"])
    with pytest.raises(InputError, match="empty='never' is not one of"):
        expand_inputs([folder], empty="never")


@pytest.mark.parametrize("recursive", [False, True])
def test_the_four_callers_see_the_same_images(folder, tmp_path, recursive):
    from deepscope.models import ArchConfig, SegmentModel
    from deepscope.pipeline import Pipeline, discover_image_sets
    from deepscope.predict.files import segment_paths
    from deepscope.provenance.catalog import Catalog

    want = _expected(folder, recursive)
    # the batch commands (segment, count, restore): one row per image
    net = SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2))
    res = segment_paths([folder], tmp_path / "seg", model=net, recursive=recursive, overlay=False,
                        zarr_labels=False, jobs=1)
    assert (res.table["error"] == "").all(), res.table["error"].tolist()
    assert _real(res.table["path"]) == want
    # pipelines: one image set per image
    p = Pipeline.from_dict({"inputs": {"paths": [str(folder)], "recursive": recursive},
                            "steps": [{"segment": {"model": "otsu-watershed"}}]})
    sets, _ = discover_image_sets(p.inputs)
    assert _real(s.paths[0] for s in sets) == want
    # the catalog, from Python and from the command line: one record per image, a plate's fields included
    with Catalog(tmp_path / "lib.db") as cat:
        report = cat.add([folder], recursive=recursive)
    assert [r.status for r in report.results] == ["added"] * len(want), report.results
    assert _real(r.path for r in report.results) == want
    db = tmp_path / "cli.db"
    r = CliRunner().invoke(app, ["catalog", "add", str(folder), "--db", str(db)] + (["-r"] if recursive else []))
    assert r.exit_code == 0, r.output
    with Catalog(db) as cat:
        assert _real(im.path for im in cat.list()) == want
    # inspect: one record per image
    r = CliRunner().invoke(app, ["inspect", str(folder), "--json"] + (["-r"] if recursive else []))
    assert r.exit_code == 0, r.output
    records = json.loads(r.output)
    assert not [rec for rec in records if rec.get("error")]
    assert _real(rec["path"] for rec in records) == want


def test_label_images_and_outputs_in_a_folder_are_left_out_with_a_note(tmp_path):
    """Masks beside their images (`*_mask.png`, a `masks/` folder, deepscope's own `.labels.tif` / overlays) are
    not images to count or segment (issue 31): a scan leaves them out and says so; named files and
    label_images='include' read them."""
    img = (np.arange(64 * 80) % 251).reshape(64, 80).astype(np.uint8)
    lab = np.zeros((64, 80), np.int32)
    lab[10:20, 10:20] = 1
    write_tiff(tmp_path / "cells_01.tif", img)
    write_tiff(tmp_path / "segment_02.tif", img)  # "segment" is a word of its own, not "seg"
    write_png(tmp_path / "cells_01_mask.png", lab.astype(np.uint8))
    write_tiff(tmp_path / "cells_01.labels.tif", lab)
    write_png(tmp_path / "cells_01.overlay.png", np.dstack([img] * 3))
    write_png(tmp_path / "masks" / "cells_01.png", lab.astype(np.uint8))
    with pytest.warns(UserWarning, match=r"left out 3 file\(s\) that look like label images") as rec:
        got = expand_inputs([tmp_path], recursive=False)
    assert [p.name for p in got] == ["cells_01.tif", "segment_02.tif"]
    assert rec[0].filename == __file__  # the note points at the caller
    with pytest.warns(UserWarning, match=r"left out 4 file\(s\)"):
        assert [p.name for p in expand_inputs([tmp_path], recursive=True)] == ["cells_01.tif", "segment_02.tif"]
    assert len(expand_inputs([tmp_path], recursive=True, label_images="include")) == 6
    assert expand_inputs([tmp_path / "cells_01_mask.png"]) == [tmp_path / "cells_01_mask.png"]  # named: read
    with pytest.raises(InputError, match="label_images='keep' is not one of"):
        expand_inputs([tmp_path], label_images="keep")
    r = CliRunner().invoke(app, ["count", str(tmp_path), "-o", str(tmp_path / "c.csv"), "--no-report"])
    assert r.exit_code == 0, r.output
    assert "left out 3 file(s)" in " ".join(r.output.split())
    assert pd.read_csv(tmp_path / "c.csv")["path"].map(lambda s: s.rsplit("/", 1)[-1]).tolist() == [
        "cells_01.tif", "segment_02.tif"]
