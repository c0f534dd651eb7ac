"""Linking with laptrack: tracks, divisions, gaps, entering and leaving, scored by py-ctcmetrics (issue 28)."""

from __future__ import annotations

import numpy as np
import pytest

from deepscope.data.synth import generate_movie
from deepscope.errors import InputError
from deepscope.io.ctc import write_ctc_result
from deepscope.tasks.track import TrackOptions, detect, evaluate_ctc, link


def scramble(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """The same objects with ids that mean nothing from one frame to the next."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(labels)
    for t in range(len(labels)):
        ids = np.unique(labels[t])
        ids = ids[ids > 0]
        lut = np.zeros(int(labels[t].max()) + 1, np.int32)
        lut[ids] = rng.permutation(len(ids)) + 5
        out[t] = lut[labels[t]]
    return out


def score(tmp_path, result, movie_or_gt):
    gt = movie_or_gt.write_ctc(tmp_path / "gt") if hasattr(movie_or_gt, "write_ctc") else movie_or_gt
    write_ctc_result(tmp_path / "res", result.labels, result.tracks)
    return evaluate_ctc(tmp_path / "res", gt)


@pytest.fixture(scope="module")
def movie():
    return generate_movie(12, frames=24, size=(128, 128), max_cells=30, enter_rate=0.6, seed=3)


def test_detect_finds_every_object(movie):
    objs = detect(movie.labels, movie.frames)
    assert len(objs) == sum(len(np.unique(lab)) - 1 for lab in movie.labels)
    row = objs.iloc[0]
    mask = movie.labels[int(row.frame)] == row.label
    assert row.area == mask.sum()
    assert row.y == pytest.approx(np.nonzero(mask)[0].mean())


def test_linking_true_masks_recovers_tracks_and_divisions(movie, tmp_path):
    r = link(scramble(movie.labels), frames=movie.frames)
    s = score(tmp_path, r, movie)
    assert s["TRA"] >= 0.99 and s["DET"] == pytest.approx(1.0)
    assert s["gt_divisions"] >= 5 and s["BC(0)"] >= 0.8
    assert r.n_divisions >= 0.8 * movie.n_divisions


def test_no_divisions_when_turned_off(movie):
    r = link(movie.labels, options=TrackOptions(divisions=False))
    assert r.n_divisions == 0


def test_entering_and_leaving_cells_start_and_end_tracks(movie):
    r = link(scramble(movie.labels))
    t = r.tracks
    assert ((t[:, 1] > 0) & (t[:, 3] == 0)).any()  # tracks that start inside the movie without a mother
    parents = set(t[:, 3].tolist())
    assert any(e < len(movie.frames) - 1 and lab not in parents for lab, _, e, _ in t.tolist())


def test_a_cell_missed_for_a_frame_continues_as_a_linked_track(tmp_path):
    m = generate_movie(6, frames=10, size=(96, 96), cycle=(60, 70), enter_rate=0, speed=0.8, seed=1)
    labels = m.labels.copy()
    k = int(m.tracks[m.tracks[:, 1] == 0][0, 0])
    labels[5][labels[5] == k] = 0  # lost in frame 5
    r = link(scramble(labels), options=TrackOptions(max_gap=2))
    parents = r.parents
    assert len(parents) == 1  # the gap: a new track whose parent is the track before it
    child, parent = next(iter(parents.items()))
    row = {int(a): (b, e) for a, b, e, _ in r.tracks.tolist()}
    assert row[parent][1] == 4 and row[child][0] == 6
    assert r.n_divisions == 0
    s = score(tmp_path, r, m)
    assert s["valid"] and s["TRA"] > 0.95
    no_gap = link(scramble(labels), options=TrackOptions(max_gap=0))
    assert not no_gap.parents


def test_tables_carry_units(movie):
    r = link(movie.labels, frames=movie.frames, pixel_size=0.5, frame_interval=10.0)
    obj = r.object_table()
    assert list(obj.columns)[:4] == ["track_id", "parent_id", "frame", "time"]
    np.testing.assert_allclose(obj["x_um"], obj["x_px"] * 0.5)
    np.testing.assert_allclose(obj["time"], obj["frame"] * 10.0)
    tr = r.track_table()
    assert len(tr) == r.n_tracks and tr["divides"].sum() == r.n_divisions
    assert (tr.loc[tr["straightness"].notna(), "straightness"] <= 1 + 1e-9).all()
    assert tr["cycle_time"].notna().any() and tr["generation"].max() >= 1
    assert set(tr["speed_unit"]) == {"um/time"}


@pytest.mark.parametrize("labels, match", [
    (np.zeros((1, 8, 8), np.int32), "at least 2 frames"),
    (np.zeros((8, 8), np.int32), r"\(T, Y, X\)"),
    (np.zeros((2, 8, 8), np.float32), "integer"),
])
def test_bad_label_stacks(labels, match):
    with pytest.raises(InputError, match=match):
        link(labels)


@pytest.mark.parametrize("kw, match", [({"frame_interval": float("nan")}, "frame interval"),
                                       ({"pixel_size": -1.0}, "pixel size")])
def test_bad_units(movie, kw, match):
    with pytest.raises(InputError, match=match):
        link(movie.labels[:3], **kw)


def test_napari_tracks_data_and_lineage_graph(movie):
    r = link(movie.labels)
    data, graph = r.napari_tracks()
    assert data.shape == (len(r.objects), 4)
    assert set(np.unique(data[:, 0]).astype(int)) == set(r.tracks[:, 0].tolist())
    assert graph == {int(c): [int(p)] for c, p in r.parents.items()} and graph
    first = data[data[:, 0] == data[0, 0]]
    assert (np.diff(first[:, 1]) == 1).all()  # a track's rows in frame order, one per frame
