"""The track task's pipeline step (issue 28, item 5): a movie image set reaches it with its time axis, it gives the
tracks ``deepscope track`` gives (same library code), its spec errors name the key, and 2-D images are refused."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.data.synth import generate_movie
from deepscope.errors import ConfigError
from deepscope.io import write_tiff
from deepscope.pipeline import Pipeline, run_pipeline
from deepscope.tasks.contracts import PipelineStep
from deepscope.tasks.track import TrackStep

runner = CliRunner()


@pytest.fixture(scope="module")
def movie():
    return generate_movie(6, frames=7, size=(64, 64), cycle=(4, 8), max_cells=12, seed=3)


def canonical(track_id, parent_id, frame, y, x) -> list[tuple]:
    """Rows (track, parent, frame, y, x) with track ids replaced by their rank in order of first appearance (frame,
    then position), so two labellings of the same tracks compare equal."""
    df = pd.DataFrame({"t": np.asarray(track_id), "p": np.asarray(parent_id), "f": np.asarray(frame),
                       "y": np.round(np.asarray(y, float), 3), "x": np.round(np.asarray(x, float), 3)})
    first = df.sort_values(["f", "y", "x"]).drop_duplicates("t")["t"].tolist()
    rank = {t: i + 1 for i, t in enumerate(first)} | {0: 0}
    df["t"], df["p"] = df["t"].map(rank), df["p"].map(rank)
    return sorted(df.itertuples(index=False, name=None))


def _step(**opts):
    return Pipeline.from_dict({"inputs": {"paths": ["x"]}, "steps": [{"track": opts}]}).steps[0]


def test_pipeline_masks_gives_the_tracks_of_deepscope_track(tmp_path, movie):
    """A movie and its label stack grouped into one image set: the track step links the masks channel and gives the
    tracks, CTC folder and tables of ``deepscope track --masks`` on the same files with the same options."""
    data = tmp_path / "data"
    data.mkdir()
    write_tiff(data / "m1_frames.tif", movie.frames, axes="TYX")
    write_tiff(data / "m1_objects.tif", movie.labels.astype(np.uint16), axes="TYX")
    r = runner.invoke(app, ["track", str(data / "m1_frames.tif"), "--masks", str(data / "m1_objects.tif"),
                            "--out", str(tmp_path / "cli"), "--max-gap", "1", "--pixel-size", "0.5"])
    assert r.exit_code == 0, r.output
    p = Pipeline.from_dict({
        "inputs": {"paths": [str(data)], "pattern": r"(?P<field>m\d+)_(?P<kind>frames|objects)\.tif",
                   "channels": {"by": "kind", "names": {"frames": "Movie", "objects": "Masks"}}},
        "steps": [{"track": {"objects": "Tracked", "channel": "Movie", "masks": "Masks", "max_gap": 1,
                             "pixel_size": 0.5}}]})
    assert p.time_lapse and p.objects == ("Tracked",) and p.model_refs == ()
    res = run_pipeline(p, tmp_path / "run", jobs=0)
    assert res.n_failed == 0, res
    run = tmp_path / "run"

    cli = pd.read_csv(tmp_path / "cli" / "m1_frames.tracks.csv")
    objs = pd.read_csv(run / "Tracked.csv")
    assert list(objs.columns[:2]) == ["ImageNumber", "ObjectNumber"] and len(objs) == len(cli)
    for col in ("TrackObjects_Frame", "TrackObjects_ParentTrackId", "Location_Center_X", "Location_Center_Y",
                "AreaShape_Area", "Intensity_MeanIntensity_Movie"):
        assert col in objs.columns, col
    assert canonical(objs["ObjectNumber"], objs["TrackObjects_ParentTrackId"], objs["TrackObjects_Frame"],
                     objs["Location_Center_Y"], objs["Location_Center_X"]) == canonical(
        cli["track_id"], cli["parent_id"], cli["frame"], cli["y_px"], cli["x_px"])
    assert sorted(objs["AreaShape_Area"]) == sorted(cli["area_px"])

    # the image row: counts of the tracks and divisions, the units
    img = pd.read_csv(run / "images.csv").iloc[0]
    summary = pd.read_csv(tmp_path / "cli" / "movies.csv").iloc[0]
    assert img["Tracks_Tracked"] == summary["tracks"] and img["Divisions_Tracked"] == summary["divisions"]
    assert img["Count_Tracked"] == len(objs) and img["Frames_Tracked"] == 7 and img["PixelSize_Tracked"] == 0.5
    assert (img["Height"], img["Width"]) == (64, 64) and img["SpeedUnit_Tracked"] == "um/frame"
    assert np.isfinite(img["MeanSpeed_Tracked"])

    # RUN_DIR/tracks/<stem>.<objects>/: the CTC result deepscope track writes, with its tables and lineage
    ctc = next((run / "tracks").glob("*.Tracked"))
    assert (ctc / "res_track.txt").read_text() == (tmp_path / "cli" / "m1_frames" / "res_track.txt").read_text()
    assert len(list(ctc.glob("mask*.tif"))) == 7 and (ctc / "res_track.txt.prov.json").is_file()
    pd.testing.assert_frame_equal(pd.read_csv(run / "tracks" / f"{ctc.name}.tracks.csv"), cli)
    labels = list((run / "labels").glob("*.Tracked.tif"))
    assert len(labels) == 1


def test_pipeline_otsu_watershed_tracks_every_frame(tmp_path, movie):
    """model: otsu-watershed segments each frame as a segment step would, then links them as the task does."""
    from deepscope.predict.classical import otsu_watershed
    from deepscope.tasks.track import TrackOptions, link

    write_tiff(tmp_path / "movie.tif", movie.frames, axes="TYX")
    p = Pipeline.from_dict({"inputs": {"paths": [str(tmp_path / "movie.tif")]}, "steps": [
        {"normalize": {}}, {"track": {"model": "otsu-watershed", "options": {"min_size": 10}, "divisions": False}}]})
    res = run_pipeline(p, tmp_path / "run", jobs=0)
    assert res.n_failed == 0
    objs = pd.read_csv(tmp_path / "run" / "Nuclei.csv")
    from deepscope.data.transforms import normalize_percentile

    frames = normalize_percentile(movie.frames, 1.0, 99.8)
    masks = np.stack([otsu_watershed(f, min_size=10) for f in frames])
    want = link(masks, frames=frames, options=TrackOptions(divisions=False))
    o = want.object_table()
    assert canonical(objs["ObjectNumber"], objs["TrackObjects_ParentTrackId"], objs["TrackObjects_Frame"],
                     objs["Location_Center_Y"], objs["Location_Center_X"]) == canonical(
        o["track_id"], o["parent_id"], o["frame"], o["y_px"], o["x_px"])
    img = pd.read_csv(tmp_path / "run" / "images.csv").iloc[0]
    assert img["Divisions_Nuclei"] == 0 and img["Model_Nuclei"] == "otsu-watershed"


def test_pipeline_nuclei_model_gives_the_tracks_of_deepscope_track(tmp_path, movie):
    """The one test that runs a network: the default model (nuclei) on a tiny movie, as ``deepscope track``."""
    pytest.importorskip("torch")
    write_tiff(tmp_path / "movie.tif", movie.frames, axes="TYX")
    r = runner.invoke(app, ["track", str(tmp_path / "movie.tif"), "--out", str(tmp_path / "cli"), "--max-gap", "1"])
    assert r.exit_code == 0, r.output
    p = Pipeline.from_dict({"inputs": {"paths": [str(tmp_path / "movie.tif")]},
                            "steps": [{"track": {"objects": "Cells", "max_gap": 1}}]})
    assert p.model_refs == ("nuclei",)
    with warnings.catch_warnings():  # the frames' domain check may warn, as deepscope track's does
        warnings.simplefilter("ignore")
        res = run_pipeline(p, tmp_path / "run", jobs=0)
    assert res.n_failed == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run" / "tracks" / "movie.Cells.tracks.csv"),
                                  pd.read_csv(tmp_path / "cli" / "movie.tracks.csv"))
    img = pd.read_csv(tmp_path / "run" / "images.csv").iloc[0]
    assert img["Model_Cells"] == "nuclei" and img["InDomain_Cells"] in (0, 1)


def test_a_2d_image_is_refused_by_the_track_step(tmp_path, movie):
    write_tiff(tmp_path / "frame.tif", movie.frames[0])
    p = Pipeline.from_dict({"inputs": {"paths": [str(tmp_path / "frame.tif")]},
                            "steps": [{"track": {"model": "otsu-watershed"}}]})
    res = run_pipeline(p, tmp_path / "run", jobs=0)
    assert res.n_failed == 1
    err = pd.read_csv(tmp_path / "run" / "images.csv")["error"][0]
    assert "channel 'Image' is a 2-D image (64 x 64); the track step needs a time-lapse" in err


def test_a_movie_is_refused_by_2d_steps(tmp_path, movie):
    """A TYX file keeps its time axis in a pipeline: a segment step refuses it, naming the channel and frames."""
    write_tiff(tmp_path / "movie.ome.tif", movie.frames, axes="TYX", ome=True)
    p = Pipeline.from_dict({"inputs": {"paths": [str(tmp_path / "movie.ome.tif")]},
                            "steps": [{"segment": {"model": "otsu-watershed"}}, {"measure": {}}]})
    res = run_pipeline(p, tmp_path / "run", jobs=0)
    assert res.n_failed == 1
    err = pd.read_csv(tmp_path / "run" / "images.csv")["error"][0]
    assert "channel 'Image' is a time-lapse of 7 frames (64 x 64); a segment step takes 2-D images" in err


def test_track_step_parses_and_round_trips():
    s = _step(objects="Cells", model="otsu-watershed", options={"min_size": 5}, max_distance=12, max_gap=0,
              divisions=False, pixel_size=0.65, frame_interval=10)
    assert isinstance(s, (TrackStep, PipelineStep)) and isinstance(s, PipelineStep)
    assert (s.max_distance, s.max_gap, s.divisions, s.pixel_size, s.frame_interval) == (12.0, 0, False, 0.65, 10.0)
    o = s.track_options()
    assert (o.max_distance, o.max_gap, o.divisions) == (12.0, 0, False)
    p = Pipeline.from_dict({"inputs": {"paths": ["x"]}, "steps": [{"track": s.to_dict()}]})
    assert p.steps[0] == s and Pipeline.from_dict(p.to_dict()) == p
    d = _step()
    assert (d.objects, d.channel, d.model, d.masks, d.max_gap, d.divisions) == ("Nuclei", "Image", "nuclei", None, 2,
                                                                                True)
    assert _step(pixel_size="files").pixel_size is None
    # the movie's scale check is on unless per_frame_diameter says otherwise (deepscope track --per-frame-diameter)
    assert d.per_frame_diameter is False and d.track_options().per_frame_diameter is False
    pf = _step(objects="Cells", per_frame_diameter=True)
    assert pf.track_options().per_frame_diameter is True and pf.to_dict()["per_frame_diameter"] is True
    p = Pipeline.from_dict({"inputs": {"paths": ["x"]}, "steps": [{"track": pf.to_dict()}]})
    assert p.steps[0] == pf and "per_frame_diameter" not in d.to_dict()


@pytest.mark.parametrize("opts, match", [
    ({"objectz": "A"}, r"steps\[0\]\.track\.objectz: unknown key; valid keys here are objects, channel, model, masks"),
    ({"max_gap": -1}, r"steps\[0\]\.track\.max_gap: expected an integer >= 0"),
    ({"max_gap": "two"}, r"steps\[0\]\.track\.max_gap: expected an integer >= 0; got text 'two'"),
    ({"max_distance": 0}, r"steps\[0\]\.track\.max_distance: expected a number > 0"),
    ({"split_distance": "far"}, r"steps\[0\]\.track\.split_distance: expected a number"),
    ({"divisions": "yes"}, r"steps\[0\]\.track\.divisions: expected true or false; got text 'yes'"),
    ({"frame_interval": -5}, r"steps\[0\]\.track\.frame_interval: expected a number > 0"),
    ({"pixel_size": "big"}, r"steps\[0\]\.track\.pixel_size: expected a number"),
    ({"channel": "DNA"}, r"steps\[0\]\.track\.channel: no channel 'DNA'"),
    ({"masks": "Image"}, r"steps\[0\]\.track\.masks: masks names the channel the step tracks"),
    ({"model": "no-such-model"}, r"steps\[0\]\.track\.model: unknown model 'no-such-model'"),
    ({"model": "count-bbbc005"}, r"steps\[0\]\.track\.model: model 'count-bbbc005' is a count model; this step "
                                 r"needs a segment model"),
    ({"model": "otsu-watershed", "diameter": 20}, r"steps\[0\]\.track\.diameter: diameter is for the generalist"),
    ({"model": "otsu-watershed", "per_frame_diameter": True},
     r"steps\[0\]\.track\.per_frame_diameter: per_frame_diameter is for the generalist models"),
    ({"per_frame_diameter": "yes"}, r"steps\[0\]\.track\.per_frame_diameter: expected true or false"),
    ({"model": "nuclei", "options": {"min_size": 3}}, r"steps\[0\]\.track\.options: options are for model: "
                                                      r"otsu-watershed"),
    ({"model": "otsu-watershed", "options": {"sigma": 3}}, r"steps\[0\]\.track\.options\.sigma: unknown option"),
    ({"objects": "bad name"}, r"steps\[0\]\.track\.objects"),
])
def test_track_step_errors_name_the_key(opts, match):
    with pytest.raises(ConfigError, match=match):
        _step(**opts)


def test_track_step_errors_of_masks_and_2d_steps(tmp_path):
    planes = {"paths": ["x"], "planes": ["Movie", "Masks"]}
    with pytest.raises(ConfigError, match=r"steps\[0\]\.track\.model: give model .* or masks .*, not both"):
        Pipeline.from_dict({"inputs": planes, "steps": [{"track": {"masks": "Masks", "model": "nuclei"}}]})
    with pytest.raises(ConfigError, match=r"steps\[0\]\.track\.diameter: diameter is for segmenting the frames"):
        Pipeline.from_dict({"inputs": planes, "steps": [{"track": {"masks": "Masks", "diameter": 12}}]})
    with pytest.raises(ConfigError, match=r"steps\[0\]\.track\.per_frame_diameter: per_frame_diameter is for "
                                          r"segmenting the frames"):
        Pipeline.from_dict({"inputs": planes, "steps": [{"track": {"masks": "Masks", "per_frame_diameter": True}}]})
    with pytest.raises(ConfigError, match=r"steps\[1\]\.track\.objects: object set 'Nuclei' is already made"):
        Pipeline.from_dict({"inputs": planes, "steps": [{"track": {"masks": "Masks"}},
                                                        {"track": {"masks": "Masks", "objects": "Nuclei"}}]})
    # a pipeline with a track step reads movies, which 2-D steps refuse: said at validation, naming the step
    with pytest.raises(ConfigError, match=r"steps\[1\]\.measure: a measure step takes 2-D images, but the track step "
                                          r"\(step 0\) reads the image sets as time-lapses"):
        Pipeline.from_dict({"inputs": planes, "steps": [{"track": {"masks": "Masks"}}, {"measure": {}}]})
    from deepscope.pipeline import load_pipeline

    f = tmp_path / "pipeline.yaml"
    f.write_text("inputs: {paths: [x]}\nsteps:\n  - track:\n      model: otsu-watershed\n      max_gap: lots\n")
    with pytest.raises(ConfigError, match=r"pipeline.yaml, line 5: steps\[0\]\.track\.max_gap: expected an integer"):
        load_pipeline(f)
