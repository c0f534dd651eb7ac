from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepscope.data import ImageDataset, ImageLoader, downscale_pairs, format_rule, pair_by_metadata, parse_rule
from deepscope.data.synth import generate_field, image_name
from deepscope.errors import InputError, PairingError
from deepscope.io import write_png, write_tiff


def _write_fields(folder: Path, fields=((3, 1), (4, 2)), blurs=(1, 48), stains=(1, 2), size=(128, 160)):
    """Real BBBC005-named synthetic files: every field at every blur level and stain."""
    rows = {1: 0, 23: 7, 48: 15}  # plate row (0-based) of each blur level: A, H, P
    for count, site in fields:
        f = generate_field(count, size=size, blurs=blurs, stains=stains, seed=count * 100 + site)
        for (stain, blur), img in f.images.items():
            write_tiff(folder / image_name(count, blur, site, stain, row=rows[blur], column=count), img)
    return folder


@pytest.fixture()
def bbbc(tmp_path):
    folder = _write_fields(tmp_path / "images")
    return ImageLoader(pattern="bbbc005", labels="count").load(folder)


@pytest.mark.parametrize("text, expected", [
    ("blur=48", {"blur": (48,)}),
    ("blur=1,23", {"blur": (1, 23)}),
    ("stain=1", {"stain": (1,)}),
    ("blur=23,48;stain=1", {"blur": (23, 48), "stain": (1,)}),
    ("blur=23,48,stain=w1", {"blur": (23, 48), "stain": ("w1",)}),
    (" blur = 1 ", {"blur": (1,)}),
    ("scale=0.5", {"scale": (0.5,)}),
])
def test_parse_rule(text, expected):
    assert parse_rule(text) == expected
    assert parse_rule(format_rule(expected)) == expected


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("48", "is not a rule"),
    ("=48", "no column name"),
    ("blur=", "no value"),
    ("blur=1;blur=48", "appears twice"),
])
def test_parse_rule_errors(text, match):
    with pytest.raises(InputError, match=match):
        parse_rule(text, name="--input")


def test_deblur_pairs_keep_field_and_stain(bbbc):
    pairs = pair_by_metadata(bbbc, input=parse_rule("blur=48"), target=parse_rule("blur=1"))
    assert len(pairs) == 4 and pairs.label_kind == "image"
    md, src = pairs.metadata, bbbc.metadata
    tgt = src.iloc[md["target_index"]].reset_index(drop=True)
    assert (md["blur"] == 48).all() and (tgt["blur"] == 1).all()
    assert (md["field"].to_numpy() == tgt["field"].to_numpy()).all()
    assert (md["stain"].to_numpy() == tgt["stain"].to_numpy()).all()
    assert [Path(p).name for p in pairs.label_paths] == [Path(p).name for p in md["target_path"]]
    # the pixels are the same field: the in-focus target is sharper, but correlated with the input
    x, y = pairs[0].X.astype(float), pairs[0].y.astype(float)
    assert x.shape == y.shape and np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.5
    # inputs stay in dataset order and the count labels go along as metadata
    assert md["count"].tolist() == sorted(md["count"].tolist())


def test_stain_pairs_keep_field_and_blur(bbbc):
    pairs = pair_by_metadata(bbbc, input={"stain": 1}, target={"stain": 2})
    md = pairs.metadata
    tgt = bbbc.metadata.iloc[md["target_index"]].reset_index(drop=True)
    assert len(pairs) == 4
    assert (tgt["stain"] == 2).all() and (md["blur"].to_numpy() == tgt["blur"].to_numpy()).all()
    assert (md["field"].to_numpy() == tgt["field"].to_numpy()).all()


def test_pairs_never_cross_fields(tmp_path):
    folder = _write_fields(tmp_path / "images", fields=((3, 1), (4, 2)))
    # field C4_s02 loses its in-focus images: its blurred inputs must not borrow C3_s01's
    for p in folder.glob("*_C4_F1_s02_*"):
        p.unlink()
    ds = ImageLoader(pattern="bbbc005", labels="count").load(folder)
    with pytest.raises(PairingError, match=r"2 of 4 input image\(s\) have no target matching 'blur=1' with the "
                                           r"same field and the same stain: 'SIMCEPImages_P05_C4_F48_s02_w1.TIF'"):
        pair_by_metadata(ds, input={"blur": 48}, target={"blur": 1})
    pairs = pair_by_metadata(ds, input={"blur": 48}, target={"blur": 1}, on_missing="skip")
    assert set(pairs.metadata["field"]) == {"C3_s01"}
    assert len(pairs.skipped) == 2 and all("_C4_" in path for path, _ in pairs.skipped)


def test_target_rule_matching_nothing_is_an_error(bbbc):
    with pytest.raises(PairingError, match=r"target rule 'blur=23' matches none of the 8 images \(blur has values "
                                           r"\['1', '48'\]\)"):
        pair_by_metadata(bbbc, input={"blur": 48}, target={"blur": 23})


def test_input_rule_and_columns_are_checked(bbbc):
    with pytest.raises(InputError, match="input rule 'blur=5' matches none"):
        pair_by_metadata(bbbc, input={"blur": 5}, target={"blur": 1})
    with pytest.raises(InputError, match="names column 'focus'"):
        pair_by_metadata(bbbc, input={"focus": 48}, target={"blur": 1})
    with pytest.raises(InputError, match="match both"):
        pair_by_metadata(bbbc, input={"blur": (1, 48)}, target={"blur": 1})
    with pytest.raises(InputError, match="at least one column"):
        pair_by_metadata(bbbc, input={"blur": 48}, target={"blur": 1}, same=())
    with pytest.raises(InputError, match="same= names column 'plate'"):
        pair_by_metadata(bbbc, input={"blur": 48}, target={"blur": 1}, same=("plate",))
    with pytest.raises(InputError, match="on_missing='ignore' is not one of"):
        pair_by_metadata(bbbc, input={"blur": 48}, target={"blur": 1}, on_missing="ignore")


def test_ambiguous_targets_are_named():
    # two targets per field that differ in nothing the metadata records
    md = pd.DataFrame({"field": ["a", "a", "a"], "blur": [48, 1, 1]})
    ds = ImageDataset(np.zeros((3, 4, 4), np.uint8), metadata=md)
    with pytest.raises(PairingError, match="several targets matching 'blur=1' with the same field"):
        pair_by_metadata(ds, input={"blur": 48}, target={"blur": 1})


def test_shape_mismatch_names_both_files(tmp_path):
    folder = _write_fields(tmp_path / "images", fields=((3, 1),), stains=(1,))
    target = next(folder.glob("*_F1_*"))
    write_tiff(target, np.zeros((120, 160), np.uint8))  # header says 120 rows, the input has 128
    ds = ImageLoader(pattern="bbbc005", labels="count").load(folder)
    with pytest.raises(PairingError, match=r"input '.*F48_s01_w1.TIF' has shape \(128, 160\) but its target "
                                           r"'.*F1_s01_w1.TIF' has shape \(120, 160\)"):
        pair_by_metadata(ds, input={"blur": 48}, target={"blur": 1})
    assert len(pair_by_metadata(ds, input={"blur": 48}, target={"blur": 1}, check_shapes=False)) == 1


def test_png_headers_are_checked_without_decoding(tmp_path):
    write_png(tmp_path / "f1_in.png", np.zeros((10, 12), np.uint8))
    write_png(tmp_path / "f1_out.png", np.zeros((10, 14), np.uint8))
    ds = ImageLoader(pattern=r"(?P<field>f\d)_(?P<kind>in|out)").load(tmp_path)
    with pytest.raises(PairingError, match=r"\(10, 12\) but its target '.*f1_out.png' has shape \(10, 14\)"):
        pair_by_metadata(ds, input={"kind": "in"}, target={"kind": "out"})


def test_in_memory_pairs_and_downscale():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (4, 10, 12), dtype=np.uint8)
    md = pd.DataFrame({"field": ["a", "a", "b", "b"], "stain": [1, 2, 1, 2]})
    pairs = pair_by_metadata(ImageDataset(imgs, metadata=md), input={"stain": 1}, target={"stain": 2})
    assert pairs.label_paths is None and np.array_equal(pairs.get_label(1), imgs[3])
    sr = downscale_pairs(pairs, 2)
    assert sr.get_image(0).shape == (5, 6) and sr.get_label(0).shape == (10, 12)
    block = imgs[0, :2, :2].astype(float).mean()
    assert sr.get_image(0)[0, 0] == np.rint(block) and sr.get_image(0).dtype == np.uint8
    with pytest.raises(InputError, match="factor must be an integer >= 2"):
        downscale_pairs(pairs, 1)
    with pytest.raises(InputError, match="smaller than the downscale factor"):
        downscale_pairs(ImageDataset(np.zeros((1, 1, 5), np.uint8)), 2)


def test_real_bbbc005_pairs(bbbc005_dir):
    ds = ImageLoader(pattern="bbbc005", labels="count").load(bbbc005_dir)
    pairs = pair_by_metadata(ds, input={"blur": 48}, target={"blur": 1}, on_missing="skip")
    md = pairs.metadata
    tgt = ds.metadata.iloc[md["target_index"]].reset_index(drop=True)
    assert len(pairs) > 100
    assert (md["field"].to_numpy() == tgt["field"].to_numpy()).all()
    assert (md["stain"].to_numpy() == tgt["stain"].to_numpy()).all()
    assert (md["count"].to_numpy() == tgt["count"].to_numpy()).all()
    assert len(pairs) + len(pairs.skipped) == int((ds.metadata["blur"] == 48).sum())
