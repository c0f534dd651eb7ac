"""Finding inputs and grouping channels into image sets (fields of view)."""

from __future__ import annotations

import pytest

import deepscope.demo
from deepscope.errors import InputError
from deepscope.pipeline import Pipeline, discover_image_sets

from ._data import write_nuclei, write_plate

PLATE_PATTERN = "plate-well-site-channel"


def _inputs(**kw):
    steps = [{"segment": {"model": "otsu-watershed", "channel": kw.pop("_channel", None) or "DNA"}}] \
        if "channels" in kw else [{"segment": {"model": "otsu-watershed"}}]
    return Pipeline.from_dict({"inputs": kw, "steps": steps}).inputs


def test_channels_group_into_fields_with_shared_metadata(plate_dir):
    inp = _inputs(paths=[str(plate_dir)], pattern=PLATE_PATTERN,
                  channels={"by": "channel", "names": {1: "DNA", 2: "Cells"}})
    sets, skipped = discover_image_sets(inp)
    assert skipped == []
    assert [s.set_id for s in sets] == ["plate=plate1,well=A01,site=1", "plate=plate1,well=A02,site=1",
                                        "plate=plate1,well=B01,site=1"]
    s = sets[1]
    assert [c for c, _ in s.files] == ["DNA", "Cells"]
    assert s.files[0][1].endswith("plate1_A02_s1_w1.tif") and s.files[1][1].endswith("plate1_A02_s1_w2.tif")
    assert s.metadata == {"plate": "plate1", "well": "A02", "site": 1}  # the channel column is not a field fact
    assert len({x.key for x in sets}) == 3


def test_incomplete_fields_are_listed(plate_dir):
    (plate_dir / "plate1_A02_s1_w2.tif").unlink()
    (plate_dir / "plate1_B01_s1_w1.tif").unlink()
    inp = _inputs(paths=[str(plate_dir)], pattern=PLATE_PATTERN,
                  channels={"by": "channel", "names": {1: "DNA", 2: "Cells"}})
    with pytest.raises(InputError, match=r"2 of 3 fields do not have every channel \(DNA, Cells\): "
                                         r"plate=plate1,well=A02,site=1: missing Cells "
                                         r"\(has DNA: plate1_A02_s1_w1\.tif\); "
                                         r"plate=plate1,well=B01,site=1: missing DNA .*incomplete: skip"):
        discover_image_sets(inp)
    inp = _inputs(paths=[str(plate_dir)], pattern=PLATE_PATTERN,
                  channels={"by": "channel", "names": {1: "DNA", 2: "Cells"}, "incomplete": "skip"})
    sets, skipped = discover_image_sets(inp)
    assert [s.set_id for s in sets] == ["plate=plate1,well=A01,site=1"]
    assert [sid for sid, _ in skipped] == ["plate=plate1,well=A02,site=1", "plate=plate1,well=B01,site=1"]


def test_two_files_for_one_channel_of_a_field(tmp_path):
    write_plate(tmp_path / "p", ["A01"], sites=2)
    inp = _inputs(paths=[str(tmp_path / "p")], pattern=PLATE_PATTERN,
                  channels={"by": "channel", "names": {1: "DNA", 2: "Cells"}, "group_by": ["plate", "well"]})
    with pytest.raises(InputError, match=r"field plate=plate1,well=A01 has 2 files for channel 'DNA'.*group_by"):
        discover_image_sets(inp)


def test_channel_column_missing_from_metadata(plate_dir):
    inp = _inputs(paths=[str(plate_dir)], pattern=PLATE_PATTERN, channels={"by": "stain", "names": {1: "DNA"}})
    with pytest.raises(InputError, match=r"'stain' is not a metadata column of 6 files"):
        discover_image_sets(inp)


def test_bundled_samples_skip_the_masks_folder_unless_recursive():
    sample_dir = deepscope.demo.sample_dir()
    sets, _ = discover_image_sets(_inputs(paths=[str(sample_dir)]))
    assert len(sets) == 10 and not any("masks" in s.set_id for s in sets)
    assert sets[0].set_id == "SIMCEPImages_A02_C5_F1_s01_w1.TIF"
    with pytest.warns(UserWarning, match=r"left out 8 file\(s\) that look like label images"):
        deep, _ = discover_image_sets(_inputs(paths=[str(sample_dir)], recursive=True))
    assert len(deep) == 10  # masks/ holds label images: left out unless asked for
    deep, _ = discover_image_sets(_inputs(paths=[str(sample_dir)], recursive=True, label_images="include"))
    assert len(deep) == 18 and sum(s.set_id.startswith("masks/") for s in deep) == 8


def test_run_folder_inside_the_inputs_is_never_read(nuclei_dir):
    run_dir = nuclei_dir / "run"
    write_nuclei(run_dir / "labels", 2, prefix="lab")
    sets, _ = discover_image_sets(_inputs(paths=[str(nuclei_dir)], recursive=True), exclude_dirs=[run_dir])
    assert len(sets) == 6 and all("/" not in s.set_id for s in sets)


def test_sidecar_metadata_and_globs(nuclei_dir, tmp_path):
    csv = tmp_path / "meta.csv"
    csv.write_text("filename,treatment,dose\n" + "".join(f"img_{i:02d}.tif,drug,{i * 0.5}\n" for i in range(6)))
    sets, _ = discover_image_sets(_inputs(paths=[str(nuclei_dir / "img_0[1-3].tif")], metadata=str(csv)))
    assert [s.set_id for s in sets] == ["img_01.tif", "img_02.tif", "img_03.tif"]
    assert sets[1].metadata == {"treatment": "drug", "dose": 1.0}
    csv.write_text("filename,treatment\nimg_00.tif,none\n")
    with pytest.raises(InputError, match=r"has no row for 5 of 6 files, e\.g\. img_01\.tif"):
        discover_image_sets(_inputs(paths=[str(nuclei_dir)], metadata=str(csv)))


def test_pattern_must_match_every_file(nuclei_dir):
    with pytest.raises(InputError, match=r"does not match 6 of 6 file names, e\.g\. img_00\.tif"):
        discover_image_sets(_inputs(paths=[str(nuclei_dir)], pattern=PLATE_PATTERN))


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        discover_image_sets(_inputs(paths=[str(tmp_path / "nope")]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files found"):
        discover_image_sets(_inputs(paths=[str(tmp_path / "empty")]))
