from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
import tifffile

from deepscope.data import GroupSplitter, ImageLoader, PairRule
from deepscope.errors import ImageReadError, InputError, PairingError

NAMES = [f"SIMCEPImages_A{c:02d}_C{n}_F1_s{s:02d}_w{w}.TIF" for c, n in [(1, 1), (2, 5)] for s in (1, 2)
         for w in (1, 2)]


@pytest.fixture
def bbbc_like(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in NAMES:
        tifffile.imwrite(d / name, rng.integers(0, 255, (16, 20), dtype=np.uint8))
    return d


def test_folder_with_pattern_labels(bbbc_like):
    ds = ImageLoader(pattern="bbbc005", labels="count").load(bbbc_like)
    assert len(ds) == 8 and ds.is_lazy
    md = ds.metadata
    for name, count in zip(md.filename, ds.y):
        assert f"_C{count}_" in name
    assert set(md.columns) >= {"well", "count", "blur", "site", "stain", "field"}


def test_explicit_list_keeps_order(bbbc_like):
    files = [bbbc_like / n for n in reversed(NAMES)]
    labels = np.arange(len(files))
    ds = ImageLoader(labels=labels).load(files)
    assert [p.split("/")[-1] for p in ds.paths] == list(reversed(NAMES))
    assert ds.y.tolist() == labels.tolist()


def test_create_dataset_book_api(bbbc_like):
    files = [str(bbbc_like / n) for n in NAMES]
    ds = ImageLoader().create_dataset((files, np.ones(8), np.full(8, 2.0)))
    assert ds.w.tolist() == [2.0] * 8


def test_labels_length_mismatch(bbbc_like):
    files = [bbbc_like / n for n in NAMES]
    with pytest.raises(InputError, match="7 labels for 8 files"):
        ImageLoader(labels=np.arange(7)).load(files)


def test_array_labels_refused_for_folder_scan(bbbc_like):
    with pytest.raises(InputError, match="explicit list"):
        ImageLoader(labels=np.arange(8)).load(bbbc_like)


def test_csv_labels(bbbc_like, tmp_path):
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"filename": NAMES, "cell_count": [3 * i for i in range(8)], "plate": "P1"}).to_csv(csv, index=False)
    ds = ImageLoader(labels=csv, label_column="cell_count").load(bbbc_like)
    by = dict(zip(ds.metadata.filename, ds.y))
    assert by[NAMES[3]] == 9
    assert (ds.metadata.plate == "P1").all()


def test_csv_missing_rows(bbbc_like, tmp_path):
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"filename": NAMES[:6], "n": range(6)}).to_csv(csv, index=False)
    with pytest.raises(InputError, match="2 of 8 images have no row"):
        ImageLoader(labels=csv).load(bbbc_like)
    ds = ImageLoader(labels=csv, on_error="skip").load(bbbc_like)
    assert len(ds) == 6 and len(ds.skipped) == 2


def test_regex_matches_nothing(bbbc_like):
    with pytest.raises(InputError, match=r"matched none of the 8 file names, e.g. 'SIMCEPImages_A01_C1_F1_s01_w1.TIF'"):
        ImageLoader(pattern=r"plate(?P<plate>\d+)").load(bbbc_like)


def test_regex_partial_match(bbbc_like):
    tifffile.imwrite(bbbc_like / "other.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="1 of 9 file names do not match the pattern, e.g. 'other.tif'"):
        ImageLoader(pattern="bbbc005").load(bbbc_like)
    ds = ImageLoader(pattern="bbbc005", on_error="skip").load(bbbc_like)
    assert len(ds) == 8 and ds.skipped[0][1].startswith("file name does not match")


def test_missing_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file or folder"):
        ImageLoader().load(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        ImageLoader().load(tmp_path / "empty")


def test_unreadable_file_reported_not_silently_skipped(bbbc_like):
    bad = bbbc_like / "SIMCEPImages_A03_C9_F1_s01_w1.TIF"
    bad.write_bytes(b"garbage that is not a tiff")
    with pytest.raises(ImageReadError, match="SIMCEPImages_A03_C9_F1_s01_w1.TIF"):
        ImageLoader(pattern="bbbc005").load(bbbc_like)
    ds = ImageLoader(pattern="bbbc005", on_error="skip").load(bbbc_like)
    assert len(ds) == 8
    assert ds.skipped == [(str(bad), ds.skipped[0][1])] and "TIFF" in ds.skipped[0][1]


def test_truncated_tiff_in_folder_scan(bbbc_like):
    src = bbbc_like / NAMES[0]
    raw = src.read_bytes()
    trunc = bbbc_like / "SIMCEPImages_A09_C9_F1_s01_w1.TIF"
    trunc.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(ImageReadError, match="truncated"):
        ImageLoader().load(bbbc_like)


def test_zip_extracted_and_cleaned(bbbc_like, tmp_path, monkeypatch):
    import tempfile

    zpath = tmp_path / "set.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for n in NAMES:
            zf.write(bbbc_like / n, arcname=f"sub/{n}")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    ds = ImageLoader(pattern="bbbc005", labels="count").load(zpath)
    assert len(ds) == 8 and not ds.is_lazy
    assert ds.get_image(0).shape == (16, 20)
    assert list(tmpdir.iterdir()) == []  # temporary folder removed


@pytest.mark.parametrize("member", ["../evil.tif", "/abs/evil.tif"])
def test_zip_escaping_member_refused(tmp_path, member):
    zpath = tmp_path / "bad.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr(member, b"x")
    with pytest.raises(InputError, match="outside the extraction folder"):
        ImageLoader().load(zpath)
    assert not (tmp_path / "evil.tif").exists()


def test_masks_same_stem(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    import imagecodecs

    for i in range(3):
        (tmp_path / "images" / f"img{i}.png").write_bytes(imagecodecs.png_encode(np.full((8, 8), i, np.uint8)))
        lab = np.zeros((8, 8), np.uint16)
        lab[:4, :4] = 7 + i
        (tmp_path / "labels" / f"img{i}.png").write_bytes(imagecodecs.png_encode(lab))
    ds = ImageLoader(masks=PairRule(tmp_path / "labels")).load(tmp_path / "images")
    assert ds.label_kind == "mask"
    m = ds.get_label(2)
    assert m.dtype == np.int32 and m.max() == 9


def test_masks_sub_rule_shares_one_mask_across_blur(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "masks").mkdir()
    for f in (1, 23, 48):
        tifffile.imwrite(tmp_path / "img" / f"SIMCEPImages_A05_C18_F{f}_s05_w1.TIF", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(tmp_path / "masks" / "SIMCEPImages_A05_C18_F1_s05_w1.TIF", np.ones((4, 4), np.uint16))
    ds = ImageLoader(pattern="bbbc005", masks=PairRule(tmp_path / "masks", sub=(r"_F\d+_", "_F1_"))).load(
        tmp_path / "img")
    assert len(set(ds.label_paths)) == 1 and len(ds) == 3


def test_masks_template_rule(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    tifffile.imwrite(tmp_path / "img" / "SIMCEPImages_H05_C18_F23_s05_w1.TIF", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(tmp_path / "gt" / "SIMCEPImages_A05_C18_F1_s05_w1.TIF", np.ones((4, 4), np.uint16))
    rule = PairRule(tmp_path / "gt", template="SIMCEPImages_A{column:02d}_C{count}_F1_s{site:02d}_w{stain}.TIF")
    ds = ImageLoader(pattern="bbbc005", masks=rule).load(tmp_path / "img")
    assert ds.label_paths[0].endswith("SIMCEPImages_A05_C18_F1_s05_w1.TIF")


def test_masks_that_do_not_pair(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    tifffile.imwrite(tmp_path / "images" / "a.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(tmp_path / "images" / "b.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(tmp_path / "labels" / "a.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(PairingError, match=r"1 of 2 images have no mask .* 'b.tif' -> expected 'b\.\*'"):
        ImageLoader(masks=PairRule(tmp_path / "labels")).load(tmp_path / "images")


def test_include_glob(bbbc_like):
    ds = ImageLoader(pattern="bbbc005", include="*_w1.TIF").load(bbbc_like)
    assert len(ds) == 4 and set(ds.metadata.stain) == {1}


# ---------------------------------------------------------------- real data

def test_bbbc005_all_lazy_split_by_field(bbbc005_dir, bbbc005_labels):
    ds = ImageLoader(pattern="bbbc005", labels="count").load(bbbc005_dir)
    assert len(ds) == 1191 and ds.is_lazy
    truth = pd.read_csv(bbbc005_labels).set_index("filename")
    md = ds.metadata
    assert (md.filename.map(truth.cell_count).to_numpy() == ds.y).all()
    assert (md.filename.map(truth.field) == md.field).all()
    tr, va, te = GroupSplitter(by="field").split(ds, 0.8, 0.1, 0.1, seed=42)
    fields = [set(md.field.iloc[i]) for i in (tr, va, te)]
    assert not (fields[0] & fields[1]) and not (fields[0] & fields[2]) and not (fields[1] & fields[2])
    assert len(tr) + len(va) + len(te) == 1191
    assert abs(len(tr) / 1191 - 0.8) < 0.02


def test_dsb2018_masks_pair(dsb_dir):
    ds = ImageLoader(masks=PairRule(dsb_dir / "labels")).load(dsb_dir / "images")
    assert len(ds) == 380
    counts = pd.read_csv(dsb_dir / "counts.csv").set_index("image")
    for i in (0, 100, 379):
        lab = ds.get_label(i)
        name = ds.metadata.filename[i]
        assert len(np.unique(lab)) - 1 == counts.n_nuclei[name]
        assert lab.shape == ds.get_image(i).shape[:2]
