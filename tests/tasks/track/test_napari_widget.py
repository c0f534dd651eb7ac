"""The napari *Track* widget (issue 28) as the plain functions napari calls: a movie layer tracked (a Labels layer of
masks linked, or each frame segmented by a model) into a Labels layer (label = track id) and a Tracks layer whose ids
and lineage graph are those of ``deepscope track``'s res_track.txt."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.data.synth import generate_movie
from deepscope.errors import InputError
from deepscope.io import write_tiff
from deepscope.io.ctc import read_ctc_labels
from deepscope.napari import _track_steps, track_layers

pytest.importorskip("laptrack")


@pytest.fixture(scope="module")
def movie():
    return generate_movie(6, frames=7, size=(64, 64), cycle=(3, 6), max_cells=12, seed=3)


@pytest.fixture(scope="module")
def ctc(movie, tmp_path_factory):
    """What ``deepscope track --masks`` writes for the same movie."""
    d = tmp_path_factory.mktemp("cli")
    write_tiff(d / "movie.tif", movie.frames, axes="TYX")
    write_tiff(d / "masks.tif", movie.labels, axes="TYX")
    r = CliRunner().invoke(app, ["track", str(d / "movie.tif"), "--masks", str(d / "masks.tif"), "--out",
                                 str(d / "out")])
    assert r.exit_code == 0, r.output
    return read_ctc_labels(d / "out" / "movie")


def _check_layers(layers, labels, tracks):
    (lab, lk, lkind), (data, tk, tkind) = layers
    assert (lkind, tkind) == ("labels", "tracks")
    np.testing.assert_array_equal(lab, labels)  # label = track id, as in the CTC masks
    ids = np.unique(data[:, 0]).astype(int)
    assert ids.tolist() == sorted(tracks[:, 0].tolist())
    for lab_id, b, e, _ in tracks.tolist():  # each track's points: one per frame from B to E
        assert data[data[:, 0] == lab_id, 1].astype(int).tolist() == list(range(b, e + 1))
    assert tk["graph"] == {int(k): [int(p)] for k, _, _, p in tracks.tolist() if p} and tk["graph"]
    meta = tk["metadata"]["deepscope"]
    assert meta["ctc_tracks"] == tracks.tolist() and meta["tracks"] == len(tracks)
    return meta, tk["name"]


def test_track_widget_links_a_labels_layer_as_deepscope_track_does(movie, ctc):
    labels, tracks = ctc
    layers = track_layers(movie.frames, masks=movie.labels)
    meta, name = _check_layers(layers, labels, tracks)
    n_div = int((np.unique(tracks[tracks[:, 3] > 0, 3], return_counts=True)[1] == 2).sum())
    assert n_div > 0 and meta["divisions"] == n_div and meta["source"] == "masks"
    assert name == f"tracks: {len(tracks)} tracks, {n_div} divisions"
    steps = _track_steps(movie.frames, masks=movie.labels)
    assert next(steps) == (0, 1, "linking")  # masks: one step, linking


def test_track_widget_segments_each_frame_in_steps_with_the_model(movie, ctc, monkeypatch):
    """The model path runs the track task's segment_frames per frame (one cancellable step each); a stand-in model
    that returns the true masks gives the same tracks as linking them."""
    import deepscope.models

    frames = list(movie.frames)

    class Model:
        task = "segment"
        name = "stand-in"
        model_card = SimpleNamespace(weights=SimpleNamespace(sha256="0" * 64))

        def run(self, image, **kw):
            t = next(i for i, f in enumerate(frames) if f is image or np.array_equal(f, image))
            return SimpleNamespace(labels=movie.labels[t], in_domain=t != 2)

    monkeypatch.setattr(deepscope.models, "load_model", lambda name, **kw: Model())
    steps = _track_steps(movie.frames, model="stand-in")
    seen = []
    while True:
        try:
            seen.append(next(steps))
        except StopIteration as stop:
            layers = stop.value
            break
    n = movie.frames.shape[0]
    assert [s[:2] for s in seen] == [(t, n + 3) for t in range(n + 3)]
    assert [s[2] for s in seen[:3]] == ["loading stand-in", "checking the object scale", f"segmenting frame 1 of {n}"]
    assert seen[-1][2] == "linking"
    meta, name = _check_layers(layers, *ctc)
    assert meta["source"] == "model" and meta["in_domain"] is False and meta["frames_out_of_domain"] == 1
    # the stand-in gives no size estimate: every frame at the model's own settings
    assert meta["diameter"] is None and meta["scale"]["reason"] == "no estimate"
    assert name.startswith("stand-in: ") and name.endswith("OUT OF DOMAIN")
    cancelled = _track_steps(movie.frames, model="stand-in")
    next(cancelled)
    cancelled.close()  # napari's cancel between steps: nothing more runs
    with pytest.raises(StopIteration):
        next(cancelled)


def test_track_widget_refuses_what_is_not_a_movie(movie):
    with pytest.raises(InputError, match="T x Y x X movie"):
        track_layers(movie.frames[0], masks=movie.labels[0])
    with pytest.raises(InputError, match="do not match the movie"):
        track_layers(movie.frames, masks=movie.labels[:3])
