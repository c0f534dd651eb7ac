from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.filters import threshold_otsu
from skimage.measure import regionprops

from deepscope.data import ImageLoader, PairRule
from deepscope.data.synth import (BBBC005_BLURS, BBBC005_COUNTS, CLASS_NAMES, LABEL_COLUMNS, MASK_TEMPLATE, CellParams,
                                  field_seed, generate_field, generate_two_class, plan_dataset, well_positions,
                                  write_dataset)
from deepscope.errors import InputError
from deepscope.io import read_image

SMALL = (160, 200)


def _otsu_objects(img: np.ndarray) -> tuple[float, float]:
    """Mean area of Otsu components not touching the border, and mean foreground intensity."""
    a = img.astype(float)
    fg = a > threshold_otsu(a)
    lab, _ = ndi.label(fg)
    border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))) - {0}
    areas = [r.area for r in regionprops(lab) if r.label not in border]
    return float(np.mean(areas)), float(a[fg].mean())


# ------------------------------------------------------------------------------------------- fields
def test_field_labels_ids_and_containment():
    f = generate_field(12, size=(200, 260), blurs=(1, 4), seed=0)
    assert sorted(f.images) == [(1, 1), (1, 4), (2, 1), (2, 4)]
    for img in f.images.values():
        assert img.dtype == np.uint8 and img.shape == (200, 260)
    assert f.nuclei.dtype == np.int32 and f.cells.dtype == np.int32
    assert f.count == 12
    ids = list(range(1, 13))
    assert np.unique(f.nuclei)[1:].tolist() == ids and np.unique(f.cells)[1:].tolist() == ids
    nuc = f.nuclei > 0
    assert (f.cells[nuc] == f.nuclei[nuc]).all()  # every nucleus lies in its own cell
    assert (f.cells > 0).sum() > 2 * nuc.sum()  # cell bodies are much larger than nuclei
    assert f.centroids.shape == (12, 2)
    rows, cols = f.centroids.astype(int).T
    assert (f.nuclei[rows, cols] == np.arange(1, 13)).all()  # a centre lies in its own nucleus
    assert f.labels(1) is f.nuclei and f.labels(2) is f.cells


def test_field_deterministic_and_seed_sensitive():
    a = generate_field(8, size=SMALL, blurs=(1, 23), seed=3)
    b = generate_field(8, size=SMALL, blurs=(1, 23), seed=np.random.default_rng(3))
    c = generate_field(8, size=SMALL, blurs=(1, 23), seed=4)
    for k in a.images:
        np.testing.assert_array_equal(a.images[k], b.images[k])
    np.testing.assert_array_equal(a.nuclei, b.nuclei)
    np.testing.assert_array_equal(a.cells, b.cells)
    assert not np.array_equal(a.nuclei, c.nuclei)
    assert not np.array_equal(a.images[(1, 1)], c.images[(1, 1)])


def test_field_does_not_depend_on_requested_stains_and_blurs():
    full = generate_field(6, size=SMALL, blurs=(1, 23, 48), stains=(1, 2), seed=7)
    only = generate_field(6, size=SMALL, blurs=(48,), stains=(2,), seed=7)
    np.testing.assert_array_equal(full.images[(2, 48)], only.images[(2, 48)])
    np.testing.assert_array_equal(full.in_focus[2], only.in_focus[2])
    np.testing.assert_array_equal(full.nuclei, only.nuclei)
    assert full.in_focus[1] is full.images[(1, 1)]
    assert sorted(only.images) == [(2, 48)] and sorted(only.in_focus) == [2]


def test_focus_blur_is_gaussian_with_sigma_quarter_f():
    f = generate_field(10, size=(200, 260), blurs=(1, 23, 48), stains=(1,), seed=1)
    sharp = f.in_focus[1].astype(float)
    for blur in (23, 48):
        img = f.images[(1, blur)].astype(float)
        errs = {scale: np.abs(ndi.gaussian_filter(sharp, scale * blur, truncate=2.0) - img).mean()
                for scale in (0.15, 0.25, 0.35)}
        assert errs[0.25] < 1.0 and errs[0.25] < errs[0.15] and errs[0.25] < errs[0.35]
        assert abs(img.mean() - sharp.mean()) < 0.05 * sharp.mean()
    steep = [np.percentile(np.hypot(*np.gradient(f.images[(1, b)].astype(float))), 99) for b in (1, 23, 48)]
    assert steep[0] > 2 * steep[1] > 4 * steep[2]


def test_bit_depth_16_is_8_bit_image_times_257():
    a = generate_field(5, size=SMALL, stains=(1,), seed=2, bit_depth=8).images[(1, 1)]
    b = generate_field(5, size=SMALL, stains=(1,), seed=2, bit_depth=16).images[(1, 1)]
    assert b.dtype == np.uint16 and int(b.max()) > 255
    assert np.abs(b / 257.0 - a).max() <= 1.0


def test_empty_field_is_dark_background():
    f = generate_field(0, size=SMALL, seed=0)
    assert f.count == 0 and f.nuclei.max() == 0 and f.cells.max() == 0 and f.centroids.shape == (0, 2)
    img = f.images[(1, 1)]
    assert img.max() < 20 and np.median(img) <= 2


def test_clustering_brings_cells_together():
    def mean_nn(clustering: float) -> float:
        d = []
        for s in range(4):
            c = generate_field(15, stains=(1,), clustering=clustering, seed=s).centroids
            d.append(cKDTree(c).query(c, k=2)[0][:, 1].mean())
        return float(np.mean(d))

    assert mean_nn(1.0) < 0.8 * mean_nn(0.0)


def test_illumination_dims_the_corners():
    flat = generate_field(40, stains=(1,), seed=5)
    vign = generate_field(40, stains=(1,), seed=5, illumination=0.4)
    ratio = []
    dist = []
    for r in regionprops(flat.nuclei, intensity_image=flat.images[(1, 1)].astype(float)):
        v = vign.images[(1, 1)][flat.nuclei == r.label].mean()
        ratio.append(v / r.intensity_mean)
        dist.append(np.hypot((r.centroid[0] - 259.5) / 259.5, (r.centroid[1] - 347.5) / 347.5))
    assert np.corrcoef(dist, ratio)[0, 1] < -0.8
    assert min(ratio) < 0.8 < 0.95 < max(ratio)


def test_default_appearance_is_bbbc005_like():
    f = generate_field(10, seed=11)
    area1, mean1 = _otsu_objects(f.images[(1, 1)])
    area2, mean2 = _otsu_objects(f.images[(2, 1)])
    assert 650 < area1 < 1000 and 2600 < area2 < 5000  # BBBC005: ~800 and ~3,400 px (Otsu)
    assert 120 < mean1 < 160 and 130 < mean2 < 165
    assert np.median(f.images[(1, 1)]) <= 2  # dark background, values 0-4


def test_close_to_real_bbbc005(bbbc005_dir: Path):
    real = sorted(bbbc005_dir.glob("*_C14_F1_*_w1.TIF"))[:4]
    assert real
    r = np.array([_otsu_objects(read_image(p).data) for p in real]).mean(0)
    s = np.array([_otsu_objects(generate_field(14, stains=(1,), seed=np.random.default_rng(field_seed(0, 14, k)))
                                .images[(1, 1)]) for k in range(1, 5)]).mean(0)
    assert abs(s[0] - r[0]) / r[0] < 0.15  # mean object area
    assert abs(s[1] - r[1]) / r[1] < 0.15  # mean foreground intensity


# ------------------------------------------------------------------------------------- field errors
@pytest.mark.parametrize("kwargs, match", [
    ({"count": -1}, "count must be >= 0"),
    ({"count": 2.5}, "count must be an integer"),
    ({"blurs": (1, 0)}, "blur index must be >= 1"),
    ({"blurs": (1.5,)}, "blur indices must be integers"),
    ({"stains": (1, 3)}, "unknown stain 3"),
    ({"bit_depth": 12}, "bit_depth must be one of"),
    ({"clustering": 1.5}, "clustering must be a probability"),
    ({"size": (8, 8)}, "too small: rows and cols must be >= 16"),
    ({"size": "big"}, "size must be \\(rows, cols\\)"),
    ({"count": 400, "size": (100, 100)}, "too small to hold 400 cells"),
    ({"colour": "red"}, "unknown option\\(s\\) \\['colour'\\]"),
    ({"nucleus_area": -5}, "nucleus_area must be > 0"),
    ({"cell_elongation": 1.0}, "cell_elongation must be in \\[0, 1\\)"),
    ({"edge_sigma": (3.0, 1.0)}, "sharp <= soft"),
    ({"seed": "abc"}, "seed must be an int"),
])
def test_generate_field_errors(kwargs, match):
    args = {"count": 3, "size": SMALL, **kwargs}
    with pytest.raises(InputError, match=match):
        generate_field(args.pop("count"), **args)


def test_placement_failure_names_the_fix():
    with pytest.raises(InputError, match="only \\d+ nuclei could be placed"):
        generate_field(45, size=(100, 100), nucleus_area=200.0, max_fill=0.95, min_distance=1.0, seed=0)


def test_missing_image_and_stain_errors():
    f = generate_field(2, size=SMALL, blurs=(1,), stains=(1,), seed=0)
    with pytest.raises(InputError, match="no image for stain=2, blur=1"):
        f.image(2, 1)
    with pytest.raises(InputError, match="stain must be one of"):
        f.labels(3)


def test_cell_params_names_and_validation():
    assert "nucleus_area" in CellParams.names() and "noise_sd" in CellParams.names()
    with pytest.raises(InputError, match="noise_sd must be two values"):
        CellParams(noise_sd=(1.0,))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- two-class
def test_two_class_scene_classes_and_shapes():
    s = generate_two_class(40, size=(256, 256), seed=1)
    assert s.image.dtype == np.uint8 and s.labels.dtype == np.int32 and s.class_map.dtype == np.int32
    assert s.n_objects == 40 and np.unique(s.labels)[1:].tolist() == list(range(1, 41))
    assert s.classes[0] == 0 and set(s.classes[1:].tolist()) == {1, 2}
    assert (s.class_map == s.classes[s.labels]).all()
    assert sum(s.counts().values()) == 40 and CLASS_NAMES[1:] == ("rod", "coccus")
    props = regionprops(s.labels)
    ecc = {k: np.mean([r.eccentricity for r in props if s.classes[r.label] == k]) for k in (1, 2)}
    area = {k: np.mean([r.area for r in props if s.classes[r.label] == k]) for k in (1, 2)}
    assert ecc[1] > 0.85 and ecc[2] < 0.6 and area[1] > area[2]
    fg = s.image[s.labels > 0].mean()
    assert fg > 10 * max(float(np.median(s.image[s.labels == 0])), 1.0)
    again = generate_two_class(40, size=(256, 256), seed=1)
    np.testing.assert_array_equal(s.image, again.image)
    np.testing.assert_array_equal(s.labels, again.labels)


def test_two_class_options():
    rods = generate_two_class(10, size=(128, 128), rod_fraction=1.0, blur=8, bit_depth=16, seed=0)
    assert rods.counts() == {"rod": 10, "coccus": 0} and rods.image.dtype == np.uint16
    cocci = generate_two_class(10, size=(128, 128), rod_fraction=0.0, pair_fraction=1.0, seed=0)
    assert cocci.counts() == {"rod": 0, "coccus": 10}


@pytest.mark.parametrize("kwargs, match", [
    ({"n_objects": -1}, "n_objects must be an integer >= 0"),
    ({"rod_fraction": 1.5}, "rod_fraction must be in \\[0, 1\\]"),
    ({"rod_length": (30, 10)}, "rod_length must be \\(low, high\\)"),
    ({"blur": 0}, "blur must be an integer >= 1"),
    ({"bit_depth": 32}, "bit_depth must be one of"),
    ({"n_objects": 500, "size": (64, 64)}, "too small for 500 objects"),
    ({"n_objects": 60, "size": (64, 64), "rod_fraction": 0.0, "coccus_radius": (2.0, 2.5), "gap": 6},
     "only \\d+ of 60 objects could be placed"),
])
def test_two_class_errors(kwargs, match):
    args = {"n_objects": 5, "size": (64, 64), "seed": 0, **kwargs}
    with pytest.raises(InputError, match=match):
        generate_two_class(args.pop("n_objects"), **args)


# ------------------------------------------------------------------------------------------ writing
def test_well_positions_rules():
    assert well_positions([1, 53, 100], BBBC005_COUNTS, axis="column") == {1: 0, 53: 12, 100: 23}
    assert well_positions([1, 23, 48], BBBC005_BLURS, axis="row") == {1: 0, 23: 7, 48: 15}
    assert well_positions([2, 5], BBBC005_COUNTS, axis="column") == {2: 0, 5: 1}  # 2 is not BBBC005's
    with pytest.raises(InputError, match="17 distinct blur levels do not fit a plate"):
        well_positions(range(1, 18), BBBC005_BLURS, axis="row")


def test_plan_full_bbbc005_design():
    t = plan_dataset(counts=BBBC005_COUNTS, blurs=BBBC005_BLURS, sites=25, stains=(1, 2))
    assert len(t) == 19200 and t.filename.is_unique and t["mask"].nunique() == 1200
    assert t.well.nunique() == 16 * 24 and {"A01", "H13", "P24"} <= set(t.well)
    row = t[t.filename == "SIMCEPImages_P24_C100_F48_s25_w2.TIF"].iloc[0]
    assert row["mask"] == "SIMCEPImages_A24_C100_F1_s25_w2.TIF" and row.field == "C100_s25"


def test_write_dataset_loads_with_counts_and_masks(tmp_path):
    out = tmp_path / "synth"
    table = write_dataset(out, counts=[2, 5], blurs=[1, 23], sites=2, stains=[1, 2], size=SMALL, seed=0)
    assert tuple(table.columns) == LABEL_COLUMNS and len(table) == 16
    csv = pd.read_csv(out / "labels.csv")
    assert tuple(csv.columns) == LABEL_COLUMNS
    assert csv.iloc[0].tolist() == ["SIMCEPImages_A01_C2_F1_s01_w1.TIF", 2, 1, "w1", "s01", "A01", "C2_s01"]
    assert (out / "masks" / "SIMCEPImages_A02_C5_F1_s02_w2.TIF").exists()
    assert (out / "SIMCEPImages_H02_C5_F23_s02_w2.TIF").exists()
    ds = ImageLoader(pattern="bbbc005", labels="count",
                     masks=PairRule(out / "masks", template=MASK_TEMPLATE)).load(out)
    assert len(ds) == 16
    for rec in ds.metadata.itertuples():
        mask = read_image(rec.mask_path).data
        img = read_image(rec.path).data
        assert mask.dtype == np.int32 and img.dtype == np.uint8
        assert len(np.unique(mask)) - 1 == rec.count == int(rec.filename.split("_C")[1].split("_")[0])
    plain = ImageLoader(pattern="bbbc005", labels="count", recursive=False).load(out)
    assert sorted(plain.y.tolist()) == sorted(csv.cell_count.tolist())


def test_written_field_matches_generate_field(tmp_path):
    write_dataset(tmp_path, counts=[4], blurs=[1, 48], sites=1, stains=[1], size=SMALL, seed=9, bit_depth=16)
    f = generate_field(4, size=SMALL, blurs=(1, 48), stains=(1,), bit_depth=16,
                       seed=np.random.default_rng(field_seed(9, 4, 1)))
    np.testing.assert_array_equal(read_image(tmp_path / "SIMCEPImages_P01_C4_F48_s01_w1.TIF").data, f.images[(1, 48)])
    np.testing.assert_array_equal(read_image(tmp_path / "masks" / "SIMCEPImages_A01_C4_F1_s01_w1.TIF").data, f.nuclei)
    assert json.loads((tmp_path / "synth.json").read_text())["seed"] == 9


def test_parallel_files_are_byte_identical_to_serial(tmp_path):
    args = {"counts": [1, 3, 6], "blurs": [1, 48], "sites": 2, "stains": [1, 2], "size": SMALL, "seed": 5}
    write_dataset(tmp_path / "serial", **args)
    write_dataset(tmp_path / "parallel", workers=2, **args)
    serial = sorted(p.relative_to(tmp_path / "serial") for p in (tmp_path / "serial").rglob("*") if p.is_file())
    parallel = sorted(p.relative_to(tmp_path / "parallel") for p in (tmp_path / "parallel").rglob("*") if p.is_file())
    assert serial == parallel and len(serial) == 24 + 12 + 2  # images, masks, labels.csv, synth.json
    for rel in serial:
        assert (tmp_path / "serial" / rel).read_bytes() == (tmp_path / "parallel" / rel).read_bytes(), rel


def test_rerun_resumes_other_arguments_refused_overwrite_replaces(tmp_path):
    calls: list[tuple[int, int]] = []
    write_dataset(tmp_path, counts=[1, 2], sites=1, stains=[1], size=SMALL)
    first = tmp_path / "SIMCEPImages_A01_C1_F1_s01_w1.TIF"
    stamp = first.stat().st_mtime_ns
    first_bytes = first.read_bytes()
    (tmp_path / "SIMCEPImages_A02_C2_F1_s01_w1.TIF").unlink()  # an interrupted run
    write_dataset(tmp_path, counts=[1, 2], sites=1, stains=[1], size=SMALL, progress=lambda d, t: calls.append((d, t)))
    assert first.stat().st_mtime_ns == stamp and calls[0] == (1, 2) and calls[-1] == (2, 2)
    assert (tmp_path / "SIMCEPImages_A02_C2_F1_s01_w1.TIF").exists()
    with pytest.raises(FileExistsError, match="already holds files of a run with other arguments"):
        write_dataset(tmp_path, counts=[1], sites=1, stains=[1], size=SMALL, seed=1)
    (tmp_path / "notes.txt").write_text("keep me")
    write_dataset(tmp_path, counts=[1], sites=1, stains=[1], size=SMALL, seed=1, overwrite=True)
    assert not (tmp_path / "SIMCEPImages_A02_C2_F1_s01_w1.TIF").exists()  # stale file of the old run removed
    assert first.read_bytes() != first_bytes and (tmp_path / "notes.txt").read_text() == "keep me"
    assert pd.read_csv(tmp_path / "labels.csv").filename.tolist() == [first.name]


def test_folder_with_other_files_is_refused(tmp_path):
    (tmp_path / "README.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="files not written by this generator"):
        write_dataset(tmp_path, counts=[1], size=SMALL)


@pytest.mark.parametrize("kwargs, match", [
    ({"counts": [-1]}, "cell count must be >= 0"),
    ({"counts": []}, "counts is empty"),
    ({"blurs": [0]}, "blur index must be >= 1"),
    ({"stains": [5]}, "unknown stain 5"),
    ({"sites": 0}, "sites must be >= 1"),
    ({"workers": 0}, "workers must be an integer >= 1"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"counts": [200]}, "too small to hold 200 cells"),
    ({"blurs": list(range(2, 19))}, "do not fit a plate"),
])
def test_write_dataset_errors(tmp_path, kwargs, match):
    args = {"counts": [1], "size": SMALL, **kwargs}
    with pytest.raises(InputError, match=match):
        write_dataset(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()  # nothing written


def test_bundled_samples_are_consistent():
    from deepscope.demo import sample_dir

    folder = sample_dir()
    table = pd.read_csv(folder / "labels.csv")
    assert tuple(table.columns) == LABEL_COLUMNS and 8 <= len(table) <= 12
    assert table.groupby("field").size().max() >= 2  # fields shared across blur levels or stains
    ds = ImageLoader(pattern="bbbc005", labels="count", masks=PairRule(folder / "masks", template=MASK_TEMPLATE)
                     ).load(folder)
    assert sorted(ds.metadata.filename) == sorted(table.filename)
    for rec in ds.metadata.itertuples():
        assert read_image(rec.path).data.shape == (520, 696)
        assert len(np.unique(read_image(rec.mask_path).data)) - 1 == rec.count
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 1.6e6
