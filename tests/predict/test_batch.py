"""Batch inference over files with tiny untrained models (accuracy is measured in benchmarks, not here)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from deepscope.data import ImageLoader, pair_by_metadata  # noqa: E402
from deepscope.data.synth import generate_field, image_name  # noqa: E402
from deepscope.errors import InputError, ModelError  # noqa: E402
from deepscope.evaluate import psnr  # noqa: E402
from deepscope.io import read_image, write_png, write_tiff  # noqa: E402
from deepscope.models import ArchConfig, CountModel, RestoreModel, SegmentModel  # noqa: E402
from deepscope.io import expand_inputs  # noqa: E402
from deepscope.predict.evaluation import evaluate_counts, evaluate_restoration  # noqa: E402
from deepscope.predict.files import count_paths, restore_paths, segment_paths  # noqa: E402
from deepscope.tasks.count.files import COUNT_COLUMNS  # noqa: E402
from deepscope.predict.inputs import model_input  # noqa: E402
from deepscope.predict.overlay import overlay_outlines  # noqa: E402
from deepscope.provenance import lineage  # noqa: E402

SIZE = (128, 160)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2)).save(d / "count")
    SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2)).save(d / "segment")
    RestoreModel(ArchConfig("unet", 1, 1, base=4, depth=2)).save(d / "restore")
    RestoreModel(ArchConfig("unet", 1, 1, base=4, depth=2), upscale=2).save(d / "sr2x")
    # a segmenter whose foreground head is strongly negative: it finds nothing, anywhere
    bg = SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2))
    with torch.no_grad():
        bg.net.head.bias[0] = -30.0
    bg.save(d / "background")
    return d


@pytest.fixture(scope="module")
def field():
    return generate_field(4, size=SIZE, blurs=(1, 48), stains=(1, 2), seed=3)


@pytest.fixture()
def images(tmp_path, field):
    folder = tmp_path / "in"
    write_tiff(folder / "a.tif", field.images[(1, 1)])
    write_tiff(folder / "b.tif", field.images[(2, 48)])
    (folder / "broken.tif").write_bytes(b"II*\x00 truncated")
    return folder


def test_count_paths_rows_errors_csv_and_lineage(tmp_path, images, models):
    out = tmp_path / "counts.csv"
    seen = []
    with pytest.raises(FileNotFoundError, match="No such file or folder: '.*missing.tif'"):
        count_paths([images, tmp_path / "missing.tif"], model=models / "count", output=out, device="cpu")
    assert not out.exists()  # a mistyped path stops the command before any work
    (tmp_path / "gone.tif").symlink_to(tmp_path / "nowhere.tif")  # a name that exists but cannot be read: a row
    res = count_paths([images, tmp_path / "gone.tif"], model=models / "count", output=out, device="cpu",
                      progress=lambda done, total: seen.append((done, total)))
    t = res.table
    assert list(t.columns) == list(COUNT_COLUMNS)
    assert [Path(p).name for p in t["path"]] == ["a.tif", "b.tif", "broken.tif", "gone.tif"]
    assert res.n_images == 4 and res.n_failed == 2 and not res.all_failed
    ok = t[t["error"] == ""]
    assert np.isfinite(ok["count"]).all() and (ok["count"] >= 0).all()
    assert (ok["count_low"] <= ok["count"]).all() and (ok["count"] <= ok["count_high"]).all()
    assert (ok["count_low"] >= 0).all() and (ok["std"] > 0).all()
    assert "broken.tif" in t.loc[2, "error"] and "leads nowhere" in t.loc[3, "error"]
    assert seen[-1] == (4, 4) and [d for d, _ in seen] == [1, 2, 3, 4]
    on_disk = pd.read_csv(out, keep_default_na=False)
    assert on_disk["path"].tolist() == t["path"].tolist()
    np.testing.assert_allclose(on_disk.loc[:1, "count"].astype(float), ok["count"], rtol=1e-6)
    rec = lineage.read(out)
    assert rec is not None and rec.command == "count" and rec.run_id == res.run_id
    assert sorted(Path(i.path).name for i in rec.inputs) == ["a.tif", "b.tif"]
    assert all(len(i.sha256) == 64 for i in rec.inputs)
    assert rec.models[0].sha256 == CountModel.load(models / "count").card["weights"]["sha256"]


def test_count_never_looks_at_the_file_name(tmp_path, field, models):
    img = field.images[(1, 1)]
    a = write_tiff(tmp_path / "SIMCEPImages_A05_C4_F1_s01_w1.TIF", img)
    b = write_tiff(tmp_path / "SIMCEPImages_A24_C100_F1_s01_w1.TIF", img)
    t = count_paths([a, b], model=models / "count", device="cpu").table
    assert t.loc[0, "count"] == t.loc[1, "count"]


def test_other_sizes_odd_sizes_and_smaller_than_stride(tmp_path, field, models):
    img = field.images[(1, 1)]
    files = [write_tiff(tmp_path / "full.tif", img), write_tiff(tmp_path / "odd.tif", img[:97, :131]),
             write_tiff(tmp_path / "tiny.tif", img[:5, :7]), write_tiff(tmp_path / "one_px.tif", img[:1, :1])]
    t = count_paths(files, model=models / "count", device="cpu").table
    assert (t.loc[:1, "error"] == "").all() and np.isfinite(t.loc[:1, "count"]).all()  # full and odd sizes
    # images smaller than the counter's input binning: a count or an error row, never a failed run
    assert all(np.isfinite(t.loc[i, "count"]) or t.loc[i, "error"] for i in (2, 3))
    seg = segment_paths(files, tmp_path / "seg", model=models / "segment", device="cpu")
    # a 1 x 1 image is refused with a clear error row (issue 30); 5 x 7 is segmented
    assert seg.n_failed == 1 and "the image is 1 x 1 pixels (shape (1, 1)); at least 2 x 2" in seg.table.loc[3, "error"]
    for f in files[:3]:
        lab = read_image(tmp_path / "seg" / f"{f.stem}.labels.tif").data
        assert lab.dtype == np.int32 and lab.shape == read_image(f).data.shape
    rest = restore_paths(files, tmp_path / "rest", model=models / "restore", device="cpu")
    assert rest.n_failed == 1 and "at least 2 x 2" in rest.table.loc[3, "error"]
    assert read_image(tmp_path / "rest" / "odd.restored.tif").data.shape == (97, 131)


def test_rgb_needs_a_channel_unless_channels_are_identical(tmp_path, field, models):
    grey = field.images[(1, 1)]
    rgb = np.dstack([grey, field.images[(2, 1)], grey])
    files = [write_png(tmp_path / "rgb.png", rgb), write_png(tmp_path / "same.png", np.dstack([grey] * 3)),
             write_tiff(tmp_path / "grey.tif", grey), write_tiff(tmp_path / "w2.tif", field.images[(2, 1)])]
    t = count_paths(files, model=models / "count", device="cpu").table
    assert "rgb.png has 3 distinct channels" in t.loc[0, "error"] and "--channel N" in t.loc[0, "error"]
    assert t.loc[1, "error"] == "" and t.loc[1, "count"] == pytest.approx(t.loc[2, "count"])
    t1 = count_paths(files, model=models / "count", device="cpu", channel=1).table
    assert t1.loc[0, "count"] == pytest.approx(t1.loc[3, "count"])  # channel 1 of the RGB is the w2 image
    assert t1.loc[2, "count"] == pytest.approx(t.loc[2, "count"])  # grey images ignore --channel
    t5 = count_paths(files[:1], model=models / "count", device="cpu", channel=5).table
    assert "--channel 5 but the image has 3 channel(s)" in t5.loc[0, "error"]


def test_16_bit_and_float_images_count_like_8_bit(tmp_path, field, models):
    img = field.images[(1, 1)]
    files = [write_tiff(tmp_path / "u8.tif", img), write_tiff(tmp_path / "u16.tif", img.astype(np.uint16) * 257),
             write_tiff(tmp_path / "f32.tif", img.astype(np.float32) / 255)]
    t = count_paths(files, model=models / "count", device="cpu").table
    assert (t["error"] == "").all()
    np.testing.assert_allclose(t["count"], t.loc[0, "count"], rtol=1e-3)  # percentile normalisation


def test_all_zero_image_gives_no_objects_and_no_crash(tmp_path, models):
    f = write_tiff(tmp_path / "zero.tif", np.zeros(SIZE, np.uint8))
    t = count_paths([f], model=models / "count", device="cpu").table
    assert t.loc[0, "error"] == "" and np.isfinite(t.loc[0, "count"]) and t.loc[0, "count_low"] >= 0
    res = segment_paths([f], tmp_path / "seg", model=models / "background", device="cpu")
    assert res.n_failed == 0 and res.table.loc[0, "count"] == 0
    assert read_image(tmp_path / "seg" / "zero.labels.tif").data.max() == 0
    assert read_image(tmp_path / "seg" / "zero.overlay.png").data.shape == SIZE + (3,)
    out = restore_paths([f], tmp_path / "rest", model=models / "restore", device="cpu")
    assert out.n_failed == 0


def test_segment_paths_writes_labels_overlays_counts_and_lineage(tmp_path, images, models):
    out = tmp_path / "seg"
    res = segment_paths([images], out, model=models / "segment", device="cpu", tile=64, tta="flips")
    assert res.n_failed == 1 and "broken.tif" in res.table.loc[2, "error"]
    lab = read_image(out / "a.labels.tif").data
    assert lab.dtype == np.int32 and lab.shape == SIZE
    assert res.table.loc[0, "count"] == len(np.setdiff1d(np.unique(lab), [0]))
    ov = read_image(out / "a.overlay.png").data
    assert ov.dtype == np.uint8 and ov.shape == SIZE + (3,)
    counts = pd.read_csv(out / "counts.csv", keep_default_na=False)
    assert list(counts.columns) == ["path", "count", "error"] and len(counts) == 3
    rec = lineage.read(out / "a.labels.tif")
    assert rec.command == "segment" and rec.params["tta"] == "flips"
    assert rec.extra["count"] == int(counts.loc[0, "count"]) and counts.loc[2, "count"] == ""
    assert Path(rec.inputs[0].path).name == "a.tif"
    assert lineage.read(out / "counts.csv").run_id == res.run_id
    # a rerun with the output folder inside the input folder does not segment its own outputs
    again = segment_paths([images], images / "seg", model=models / "segment", device="cpu")
    again2 = segment_paths([images], images / "seg", model=models / "segment", device="cpu")
    assert again.n_images == again2.n_images == 3
    with pytest.raises(InputError, match="tta='all' is not one of"):
        segment_paths([images], out, model=models / "segment", tta="all")


def test_same_stems_never_overwrite_each_other(tmp_path, field, models):
    """Issue 14: ``y.tif`` + ``y.png`` and two ``img.tif`` in two folders give distinct outputs, with a warning."""
    from deepscope.io import write_png

    a = write_tiff(tmp_path / "x" / "img.tif", field.images[(1, 1)])
    b = write_tiff(tmp_path / "y" / "img.tif", field.images[(2, 1)])
    c = write_tiff(tmp_path / "y.tif", field.images[(1, 1)])
    d = write_png(tmp_path / "y.png", field.images[(2, 1)])
    with pytest.warns(UserWarning, match=r"would write its outputs under the name") as caught:
        res = segment_paths([a, b, c, d], tmp_path / "out", model=models / "segment", device="cpu")
    assert sorted(str(w.message).rsplit("; ", 1)[1] for w in caught) == ["its outputs are named 'img_2' instead",
                                                                         "its outputs are named 'y_2' instead"]
    assert res.n_failed == 0
    labels = res.table["labels"].tolist()
    assert [Path(x).name for x in labels] == ["img.labels.tif", "img_2.labels.tif", "y.labels.tif",
                                              "y_2.labels.tif"]
    assert len(set(labels)) == 4 and all(Path(x).is_file() for x in labels)


def test_restore_paths_keeps_dtype_or_float32_with_lineage(tmp_path, field, models):
    img = field.images[(1, 48)]
    files = [write_tiff(tmp_path / "u8.tif", img), write_tiff(tmp_path / "u16.tif", img.astype(np.uint16) * 257)]
    res = restore_paths(files, tmp_path / "out", model=models / "restore", device="cpu")
    assert res.n_failed == 0
    assert read_image(tmp_path / "out" / "u8.restored.tif").data.dtype == np.uint8
    assert read_image(tmp_path / "out" / "u16.restored.tif").data.dtype == np.uint16
    res = restore_paths(files, tmp_path / "f", model=models / "restore", device="cpu", dtype="float32")
    out = read_image(tmp_path / "f" / "u8.restored.tif").data
    assert out.dtype == np.float32 and out.shape == SIZE
    rec = lineage.read(tmp_path / "f" / "u8.restored.tif")
    assert rec.command == "restore" and rec.params["dtype"] == "float32" and rec.extra["dtype"] == "float32"
    sr = restore_paths(files[:1], tmp_path / "sr", model=models / "sr2x", device="cpu")
    assert read_image(sr.outputs[0]).data.shape == (2 * SIZE[0], 2 * SIZE[1])
    with pytest.raises(InputError, match="dtype='uint8' is not one of"):
        restore_paths(files, tmp_path / "x", model=models / "restore", dtype="uint8")


def test_a_pickle_is_never_loaded_as_a_model(tmp_path, images):
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "weights.pt"
    evil.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelError, match="is not a deepscope model.*nothing was loaded or executed"):
        count_paths([images], model=evil)
    assert not marker.exists()
    with pytest.raises(ModelError, match="is a count model; this command needs a segment model"):
        segment_paths([images], tmp_path / "o", model=CountModel().save(tmp_path / "c").parent)


def test_expand_paths_and_model_input_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files found in folder"):
        expand_inputs([tmp_path / "empty"])
    with pytest.raises(InputError, match="no input paths given"):
        expand_inputs([])
    m = SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2))
    with pytest.raises(InputError, match=r"vol.tif: expected a 2-D image"):
        model_input(np.zeros((2, 3, 4, 5)), m, path="vol.tif")


def test_overlay_outlines_colours_classes():
    lab = np.zeros((12, 12), np.int32)
    lab[1:5, 1:5], lab[6:11, 6:11] = 3, 7
    ov = overlay_outlines(np.zeros((12, 12), np.uint16), lab, classes={3: 1, 7: 2})
    assert ov[1, 1].tolist() == [255, 220, 0] and ov[6, 6].tolist() == [0, 200, 255]
    assert ov[3, 3].tolist() == [0, 0, 0]  # inside an object: the image, not an outline
    with pytest.raises(InputError, match="differ in height/width"):
        overlay_outlines(np.zeros((5, 5)), lab)


def _bbbc_folder(folder: Path) -> Path:
    for count, site in ((2, 1), (3, 2), (4, 3)):
        f = generate_field(count, size=SIZE, blurs=(1, 48), stains=(1, 2), seed=count)
        for (stain, blur), img in f.images.items():
            write_tiff(folder / image_name(count, blur, site, stain, row={1: 0, 48: 15}[blur], column=count), img)
    return folder


def test_evaluate_counts_per_stratum(tmp_path, models):
    ds = ImageLoader(pattern="bbbc005", labels="count").load(_bbbc_folder(tmp_path / "d"))
    ev = evaluate_counts(ds, model=models / "count", device="cpu")
    assert ev.n_failed == 0 and len(ev.per_image) == 12
    assert ev.per_image["true"].tolist() == [float(c) for c in ds.y]
    m = ev.metrics.set_index(["stratum", "value"])
    assert m.loc[("all", "all"), "n"] == 12 and m.loc[("blur", "48"), "n"] == 6 and m.loc[("stain", "2"), "n"] == 6
    err = (ev.per_image["count"] - ev.per_image["true"]).abs()
    assert m.loc[("all", "all"), "mae"] == pytest.approx(err.mean())
    with pytest.raises(InputError, match="needs one true count per image"):
        evaluate_counts(ImageLoader(pattern="bbbc005").load(tmp_path / "d"), model=models / "count")


def test_evaluate_restoration_scores_and_downstream(tmp_path, models):
    ds = ImageLoader(pattern="bbbc005", labels="count").load(_bbbc_folder(tmp_path / "d"))
    pairs = pair_by_metadata(ds, input={"blur": 48}, target={"blur": 1})
    ev = evaluate_restoration(pairs, model=models / "restore", count_model=models / "count",
                              segment_model=models / "segment", device="cpu")
    t = ev.per_image
    assert len(t) == 6 and (t["error"] == "").all()
    raw, tgt = read_image(pairs.paths[0]).data, read_image(pairs.label_paths[0]).data
    assert t.loc[0, "psnr_raw"] == pytest.approx(psnr(tgt, raw, data_range=255))
    assert t["true"].tolist() == pairs.metadata["count"].astype(float).tolist()
    s = ev.summary
    assert s["count_mae_reference"] == "true count"
    assert s["count_mae_raw"] == pytest.approx((t["count_raw"] - t["true"]).abs().mean())
    assert {"objects_mae_raw", "objects_mae_restored", "objects_mae_target", "ssim_restored"} <= set(s)
    assert s["false_objects"] == t["false_objects"].sum() and t["false_fraction"].between(0, 1).all()
    with pytest.raises(InputError, match="needs \\(input, target\\) image pairs"):
        evaluate_restoration(ds, model=models / "restore")
