"""``deepscope track`` and ``deepscope evaluate track`` (issue 28): outputs, --masks, the model path, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.data.synth import generate_movie
from deepscope.io import write_tiff
from deepscope.io.ctc import read_ctc_labels
from deepscope.provenance import lineage

runner = CliRunner()


@pytest.fixture(scope="module")
def movie():
    return generate_movie(8, frames=8, size=(96, 96), cycle=(6, 12), max_cells=20, seed=2)


@pytest.fixture
def files(tmp_path, movie):
    write_tiff(tmp_path / "movie.tif", movie.frames, axes="TYX")
    write_tiff(tmp_path / "masks.tif", movie.labels, axes="TYX")
    gt = movie.write_ctc(tmp_path / "ctc")
    return tmp_path, gt


def test_track_masks_writes_ctc_tables_and_lineage_and_scores_one(files, movie):
    tmp, gt = files
    r = runner.invoke(app, ["track", str(tmp / "movie.tif"), "--masks", str(tmp / "masks.tif"), "--out",
                            str(tmp / "out"), "--pixel-size", "0.5", "--frame-interval", "5"])
    assert r.exit_code == 0, r.output
    assert "1 of 1 movie(s) done, 0 failed" in r.output
    labels, tracks = read_ctc_labels(tmp / "out" / "movie")
    assert labels.shape == movie.labels.shape and (tmp / "out" / "movie" / "mask007.tif").exists()
    assert tifffile.imread(tmp / "out" / "movie" / "mask000.tif").dtype == np.uint16
    assert abs(len(tracks) - len(movie.tracks)) <= 2
    obj = pd.read_csv(tmp / "out" / "movie.tracks.csv")
    assert {"track_id", "parent_id", "frame", "time", "y_um", "x_px", "area_px", "mean_intensity"} <= set(obj.columns)
    np.testing.assert_allclose(obj["time"], obj["frame"] * 5.0)
    summary = pd.read_csv(tmp / "out" / "movie.track_summary.csv")
    assert len(summary) == len(tracks) and {"generation", "mean_speed", "straightness"} <= set(summary.columns)
    rec = lineage.read(tmp / "out" / "movie.tracks.csv")
    assert rec.command == "track" and rec.extra["source"] == "masks" and len(rec.inputs) == 2
    movies = pd.read_csv(tmp / "out" / "movies.csv")
    assert movies["diameter_source"].tolist() == ["masks"] and movies["diameter"].isna().all()
    assert lineage.read(tmp / "out" / "movie" / "res_track.txt") is not None
    # the report is written at the end: its table counts the tracks of res_track.txt
    html = (tmp / "out" / "report.html").read_text()
    assert "report:" in r.output and f'data-v="{len(tracks)}"' in html
    assert "<th>diameter from</th>" in html and ">masks<" in html

    r = runner.invoke(app, ["evaluate", "track", str(tmp / "out" / "movie"), str(gt), "--json", str(tmp / "m.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp / "m.json").read_text())
    assert doc["DET"] == pytest.approx(1.0) and doc["SEG"] == pytest.approx(1.0) and doc["TRA"] > 0.99
    assert doc["gt_divisions"] == movie.n_divisions > 0 and doc["BC(0)"] >= 0.75


def test_track_segments_raw_frames_from_a_frame_folder(files, movie):
    tmp, gt = files
    r = runner.invoke(app, ["track", str(tmp / "ctc" / "01"), "--out", str(tmp / "out")])
    assert r.exit_code == 0, r.output
    assert "01: 8 frames" in r.output
    rec = lineage.read(tmp / "out" / "01.tracks.csv")
    assert rec.extra["source"] == "model" and rec.models[0].name == "nuclei"
    movies = pd.read_csv(tmp / "out" / "movies.csv")
    assert movies["frames"].tolist() == [8] and "in_domain" in movies.columns and movies["error"].isna().all()
    r = runner.invoke(app, ["evaluate", "track", str(tmp / "out" / "01"), str(gt)])
    assert r.exit_code == 0, r.output
    tra = float(next(line.split()[1] for line in r.output.splitlines() if line.startswith("TRA")))
    assert tra > 0.9
    # these nuclei (11-20 px) persist at their size estimates: each frame is segmented at its own
    scale = rec.extra["scale"]
    assert scale["reason"] == "estimate" and rec.extra["diameter"] is None and scale["diameter"] is None
    assert movies["diameter_source"].tolist() == ["per frame"] and movies["diameter"].isna().all()
    assert 9 < scale["estimate"] < 22 and len(scale["estimates"]) == 5 and len(scale["coherence"]) >= 3
    r = runner.invoke(app, ["track", str(tmp / "ctc" / "01"), "--out", str(tmp / "per-frame"), "--per-frame-diameter"])
    assert r.exit_code == 0, r.output
    rec = lineage.read(tmp / "per-frame" / "01.tracks.csv")
    assert rec.extra["diameter"] is None and "scale" not in rec.extra and rec.params["per_frame_diameter"] is True
    assert pd.read_csv(tmp / "per-frame" / "movies.csv")["diameter_source"].tolist() == ["per frame"]


def test_a_given_diameter_is_the_movies_and_skips_the_scale_check(files):
    tmp, _ = files
    r = runner.invoke(app, ["track", str(tmp / "ctc" / "01"), "--out", str(tmp / "given"), "--diameter", "15",
                            "--no-report"])
    assert r.exit_code == 0, r.output
    movies = pd.read_csv(tmp / "given" / "movies.csv")
    assert movies["diameter_source"].tolist() == ["given"] and movies["diameter"].tolist() == [15.0]
    assert "objects segmented at 15 px (given)" in r.output
    assert "scale" not in lineage.read(tmp / "given" / "01.tracks.csv").extra


def test_masks_folder_of_per_frame_label_files(files, movie):
    tmp, _ = files
    (tmp / "mf").mkdir()
    for t in range(len(movie.labels)):
        write_tiff(tmp / "mf" / f"lab{t}.tif", movie.labels[t])
    r = runner.invoke(app, ["track", str(tmp / "movie.tif"), "--masks", str(tmp / "mf"), "--out", str(tmp / "o"),
                            "--no-report"])
    assert r.exit_code == 0, r.output
    assert not (tmp / "o" / "report.html").exists()
    np.testing.assert_array_equal(read_ctc_labels(tmp / "o" / "movie")[0] > 0, movie.labels > 0)


def _invoke(*args):
    return runner.invoke(app, ["track", *map(str, args)])


def test_one_frame_is_refused(tmp_path, movie):
    write_tiff(tmp_path / "one.tif", movie.frames[0])
    r = _invoke(tmp_path / "one.tif", "--out", tmp_path / "o")
    assert r.exit_code == 1 and "the movie has one frame" in r.output
    assert "one frame" in pd.read_csv(tmp_path / "o" / "movies.csv")["error"][0]


def test_frames_of_different_shapes_are_refused(tmp_path, movie):
    (tmp_path / "seq").mkdir()
    write_tiff(tmp_path / "seq" / "t000.tif", movie.frames[0])
    write_tiff(tmp_path / "seq" / "t001.tif", movie.frames[1][:90])
    r = _invoke(tmp_path / "seq", "--out", tmp_path / "o")
    assert r.exit_code == 1 and "frame 1 is 90 x 96 but frame 0" in " ".join(r.output.split())


def test_masks_with_a_different_number_of_frames_are_refused(files, movie):
    tmp, _ = files
    write_tiff(tmp / "short.tif", movie.labels[:5], axes="TYX")
    r = _invoke(tmp / "movie.tif", "--masks", tmp / "short.tif", "--out", tmp / "o")
    assert r.exit_code == 1 and "the masks have 5 frame(s) but the movie has 8" in " ".join(r.output.split())


def test_3d_time_lapse_is_refused_with_the_reason(tmp_path):
    write_tiff(tmp_path / "tz.ome.tif", np.zeros((3, 4, 32, 32), np.uint16), axes="TZYX", ome=True)
    r = _invoke(tmp_path / "tz.ome.tif", "--out", tmp_path / "o")
    assert r.exit_code == 1 and "3D+t tracking is not supported yet" in " ".join(r.output.split())


def test_several_channels_need_channel(tmp_path, movie):
    stack = np.stack([movie.frames, movie.frames // 2], axis=1)
    write_tiff(tmp_path / "tc.ome.tif", stack, axes="TCYX", ome=True)
    r = _invoke(tmp_path / "tc.ome.tif", "--out", tmp_path / "o", "--masks", tmp_path / "tc.ome.tif")
    assert r.exit_code == 1 and "--channel" in r.output


@pytest.mark.parametrize("opt", [["--frame-interval", "nan"], ["--pixel-size", "0"]])
def test_bad_units_stop_before_anything_runs(files, opt):
    tmp, _ = files
    r = _invoke(tmp / "movie.tif", "--masks", tmp / "masks.tif", "--out", tmp / "o", *opt)
    assert r.exit_code == 2 and "must be a positive number" in r.output
    assert not (tmp / "o").exists()


def test_evaluate_track_refuses_mismatched_frames(files, movie, tmp_path):
    tmp, gt = files
    from deepscope.io.ctc import tracks_from_labels, write_ctc_result

    short = movie.labels[:4]
    present = set(np.unique(short).tolist())
    write_ctc_result(tmp_path / "res", short,
                     tracks_from_labels(short, {c: p for c, p in movie.parents.items() if c in present}))
    r = runner.invoke(app, ["evaluate", "track", str(tmp_path / "res"), str(gt)])
    assert r.exit_code == 2 and "holds 4 mask file(s) but the truth" in " ".join(r.output.split())


@pytest.mark.parametrize("command", [["track"], ["evaluate", "track"]])
def test_help_fits_80_columns(command):
    r = runner.invoke(app, [*command, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert r.exit_code == 0 and max(len(line) for line in r.output.splitlines()) <= 80
    assert "<bool>" not in r.output
    if command == ["track"]:
        assert "-o, --out" in r.output


def test_a_movie_that_does_not_exist_stops_with_exit_2(tmp_path):
    r = _invoke(tmp_path / "nope.tif", "-o", tmp_path / "out")
    assert r.exit_code == 2 and "nope.tif" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_segmentation_thresholds_reach_the_frames_and_lineage_and_bad_ones_stop_before_work(files):
    """Issue 31: the thresholds of `deepscope segment` on `track`: a high minimum size leaves fewer objects per
    frame than the card's default, the values are in the lineage, and a probability outside (0, 1) stops the
    command (exit 2) before anything is written."""
    tmp, _ = files
    r = runner.invoke(app, ["track", str(tmp / "ctc" / "01"), "--out", str(tmp / "strict"), "--min-size", "400"])
    assert r.exit_code == 0, r.output
    assert lineage.read(tmp / "strict" / "01.tracks.csv").params["min_size"] == 400
    strict = pd.read_csv(tmp / "strict" / "01.tracks.csv")
    default = runner.invoke(app, ["track", str(tmp / "ctc" / "01"), "--out", str(tmp / "default")])
    assert default.exit_code == 0, default.output
    assert len(strict) < len(pd.read_csv(tmp / "default" / "01.tracks.csv"))
    r = runner.invoke(app, ["track", str(tmp / "ctc" / "01"), "--out", str(tmp / "bad"), "--prob-threshold", "2"])
    assert r.exit_code == 2 and "prob_threshold must be a probability" in r.output
    assert not (tmp / "bad").exists()
