"""The synthetic time-lapse generator: exact, deterministic CTC ground truth (issue 28)."""

from __future__ import annotations

import numpy as np
import pytest

from deepscope.data.synth import generate_movie
from deepscope.errors import InputError
from deepscope.io.ctc import check_tracks, read_ctc_labels, tracks_from_labels, write_ctc_result
from deepscope.tasks.track import evaluate_ctc


@pytest.fixture(scope="module")
def movie():
    return generate_movie(12, frames=24, size=(128, 128), max_cells=30, enter_rate=0.6, seed=7)


def test_same_seed_same_movie(movie):
    again = generate_movie(12, frames=24, size=(128, 128), max_cells=30, enter_rate=0.6, seed=7)
    np.testing.assert_array_equal(again.frames, movie.frames)
    np.testing.assert_array_equal(again.labels, movie.labels)
    np.testing.assert_array_equal(again.tracks, movie.tracks)
    assert not np.array_equal(generate_movie(20, frames=24, size=(128, 128), seed=8).labels, movie.labels)


def test_the_track_table_is_exactly_the_label_stack(movie):
    assert movie.frames.dtype == np.uint16 and movie.labels.dtype == np.int32
    np.testing.assert_array_equal(tracks_from_labels(movie.labels, movie.parents), movie.tracks)
    check_tracks(movie.tracks, movie.labels.shape[0])  # a valid CTC graph


def test_divisions_entering_and_leaving(movie):
    t = movie.tracks
    by_label = {int(r[0]): r for r in t}
    kids: dict[int, list[int]] = {}
    for lab, b, e, p in t.tolist():
        if p:
            kids.setdefault(p, []).append(lab)
    assert movie.n_divisions >= 5
    for mother, daughters in kids.items():
        assert len(daughters) == 2  # one mother -> two daughters, never a lone continuation
        for d in daughters:
            assert by_label[d][1] == by_label[mother][2] + 1  # born the frame after the mother's last
    entered = [r for r in t.tolist() if r[1] > 0 and r[3] == 0]
    left = [r for r in t.tolist() if r[2] < len(movie.frames) - 1 and r[0] not in kids]
    assert entered and left


def test_nuclei_blink_and_move(movie):
    lab, fr = movie.labels, movie.frames.astype(float)
    k = int(movie.tracks[np.argmax(movie.tracks[:, 2] - movie.tracks[:, 1]), 0])
    means = [fr[t][lab[t] == k].mean() for t in range(len(fr)) if (lab[t] == k).any()]
    assert np.std(means) / np.mean(means) > 0.05
    c = movie.centres[k]
    assert np.hypot(*(c[-1, 1:] - c[0, 1:])) > 1.0


def test_ctc_ground_truth_round_trip_scores_one(movie, tmp_path):
    gt = movie.write_ctc(tmp_path / "seq")
    assert (tmp_path / "seq" / "01" / "t000.tif").exists() and (gt / "TRA" / "man_track.txt").exists()
    write_ctc_result(tmp_path / "res", movie.labels, movie.tracks)
    labels, tracks = read_ctc_labels(tmp_path / "res")
    np.testing.assert_array_equal(labels, movie.labels)
    np.testing.assert_array_equal(tracks, movie.tracks)
    scores = evaluate_ctc(tmp_path / "res", gt)
    assert scores["valid"] and scores["gt_divisions"] == movie.n_divisions
    for k in ("DET", "SEG", "TRA", "BC(0)"):
        assert scores[k] == pytest.approx(1.0), k


@pytest.mark.parametrize("kw, match", [({"frames": 1}, "frames must be >= 2"),
                                       ({"persistence": 1.0}, "persistence"),
                                       ({"size": (8, 8)}, "too small"), ({"spacing": 0.5}, "spacing")])
def test_bad_parameters(kw, match):
    with pytest.raises(InputError, match=match):
        generate_movie(3, **kw)


def test_a_gap_in_a_track_is_refused_by_the_table_builder():
    lab = np.zeros((3, 8, 8), np.int32)
    lab[0, 1:3, 1:3] = 1
    lab[2, 1:3, 1:3] = 1
    with pytest.raises(InputError, match="missing from frame"):
        tracks_from_labels(lab)
