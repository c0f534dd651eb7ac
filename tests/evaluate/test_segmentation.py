from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment

from deepscope.errors import InputError
from deepscope.evaluate import (DSB_THRESHOLDS, count_instances, dice, dsb_score, evaluate_instances, iou,
                                label_overlap, match_instances, match_labels, pixel_accuracy)


def _blobs(shape=(96, 128), n=25, radius=5, seed=0, id_offset=0, id_step=1):
    """Seeded label image of touching, irregular blobs (Voronoi cells cut by a disc mask)."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.int64)
    pts = rng.integers(0, shape, size=(n, 2))
    seeds[pts[:, 0], pts[:, 1]] = np.arange(1, n + 1)
    dist, (ii, jj) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    lab = seeds[ii, jj]
    lab[dist > radius + rng.random(shape) * 2] = 0
    out = np.where(lab > 0, lab * id_step + id_offset, 0)
    return out


def _reference_tp(true, pred, thr):
    """Brute force: dense IoU matrix, StarDist's cost, one global assignment."""
    tid = np.unique(true)[1:]
    pid = np.unique(pred)[1:]
    if len(tid) == 0 or len(pid) == 0:
        return 0, 0.0
    ious = np.zeros((len(tid), len(pid)))
    for a, t in enumerate(tid):
        tm = true == t
        for b, p in enumerate(pid):
            pm = pred == p
            inter = np.count_nonzero(tm & pm)
            if inter:
                ious[a, b] = inter / np.count_nonzero(tm | pm)
    n = min(len(tid), len(pid))
    cost = -(ious >= thr).astype(float) - ious / (2 * n)
    r, c = linear_sum_assignment(cost)
    ok = ious[r, c] >= thr
    return int(ok.sum()), float(ious[r, c][ok].sum())


def test_identical_labels_score_one_with_any_ids():
    t = _blobs(seed=1)
    p = _blobs(seed=1, id_offset=1000, id_step=7)  # same objects, other (non-consecutive) ids
    r = match_instances(t, p)
    n = count_instances(t)
    assert n > 15
    assert r.n_true == r.n_pred == n
    np.testing.assert_array_equal(r.tp, n)
    for arr in (r.precision, r.recall, r.f1, r.ap, r.sq, r.pq):
        np.testing.assert_allclose(arr, 1.0)
    assert dsb_score(t, p) == 1.0


@pytest.mark.parametrize("shift", [1, 2, 3, 5])
def test_shifted_squares_have_analytic_iou(shift):
    side = 10
    t = np.zeros((40, 120), np.int32)
    p = np.zeros_like(t)
    for k in range(5):
        t[5:5 + side, 5 + 22 * k:5 + 22 * k + side] = k + 1
        p[5:5 + side, 5 + 22 * k + shift:5 + 22 * k + side + shift] = 50 + k
    expected = (side - shift) / (side + shift)  # overlap side x (side - shift), union side x (side + shift)
    ov = label_overlap(t, p)
    np.testing.assert_allclose(ov.iou, expected)
    np.testing.assert_array_equal(ov.intersection, side * (side - shift))
    r = match_instances(t, p)
    matched = DSB_THRESHOLDS_ARR <= expected + 1e-12
    np.testing.assert_array_equal(r.tp, np.where(matched, 5, 0))
    np.testing.assert_allclose(r.sq, np.where(matched, expected, 0.0))
    np.testing.assert_allclose(r.pq, np.where(matched, expected, 0.0))
    assert r.mean_ap == pytest.approx(matched.mean())


DSB_THRESHOLDS_ARR = np.asarray(DSB_THRESHOLDS)


def test_empty_prediction_empty_truth_and_both_empty():
    t = _blobs(seed=2)
    n = count_instances(t)
    empty = np.zeros_like(t)
    r = match_instances(t, empty)
    assert r.n_pred == 0 and np.all(r.fn == n) and np.all(r.tp == 0)
    for arr in (r.precision, r.recall, r.f1, r.ap, r.pq):
        np.testing.assert_array_equal(arr, 0.0)
    r = match_instances(empty, t)
    assert r.n_true == 0 and np.all(r.fp == n)
    np.testing.assert_array_equal(r.f1, 0.0)
    r = match_instances(empty, empty)  # documented: nothing to find, nothing found = perfect
    for arr in (r.precision, r.recall, r.f1, r.ap, r.sq, r.pq):
        np.testing.assert_array_equal(arr, 1.0)
    assert dsb_score(empty, empty) == 1.0 and dsb_score(t, empty) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_matches_brute_force_optimal_assignment(seed):
    t = _blobs(seed=seed, n=30, radius=7)
    # an unrelated, denser prediction with split, merged, shifted and missing objects, so that many
    # objects have several candidates at low thresholds (the assignment path, not only 1:1 pairs)
    p = np.roll(_blobs(seed=seed + 100, n=45, radius=7), 2, axis=1)
    p[:, ::17] = 0  # cut some objects in two
    p, _ = ndi.label(p > 0) if seed % 2 else (p, None)
    thresholds = (0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9)
    r = match_instances(t, p, thresholds=thresholds)
    for k, thr in enumerate(thresholds):
        tp, iou_sum = _reference_tp(t, p, thr)
        assert r.tp[k] == tp, thr
        assert r.iou_sum[k] == pytest.approx(iou_sum), thr


def test_iou_exactly_half_tie_is_matched_once():
    t = np.array([[1, 1, 1, 1]])
    p = np.array([[2, 2, 3, 3]])  # both predictions have IoU exactly 0.5 with the one true object
    r = match_instances(t, p, thresholds=(0.5,))
    assert (int(r.tp[0]), int(r.fp[0]), int(r.fn[0])) == (1, 1, 0)
    m = match_labels(t, p, threshold=0.5)
    assert m.true_ids.tolist() == [1] and len(m.unmatched_pred) == 1


def test_label_overlap_matches_dense_computation_and_large_ids():
    t = _blobs(seed=3)
    p = _blobs(seed=4, radius=7)
    big = np.where(p > 0, p + (1 << 40), 0).astype(np.uint64)  # ids far beyond a lookup table
    for pred in (p, big, p.astype(np.uint16)):
        ov = label_overlap(t, pred)
        dense = ov.iou_matrix().toarray()
        for a, tid in enumerate(ov.true_ids):
            for b, pid in enumerate(ov.pred_ids):
                tm, pm = t == tid, pred == pid
                expected = np.count_nonzero(tm & pm) / np.count_nonzero(tm | pm)
                assert dense[a, b] == pytest.approx(expected)
        np.testing.assert_array_equal(ov.true_areas, np.bincount(t.ravel())[ov.true_ids])
    assert label_overlap(t, big).pred_ids.min() > (1 << 40)


def test_match_labels_pairs():
    t = np.zeros((10, 30), np.int32)
    t[2:6, 2:6] = 4
    t[2:6, 12:16] = 8
    t[2:6, 22:26] = 9
    p = np.zeros_like(t)
    p[2:6, 2:6] = 1
    p[2:6, 13:17] = 2  # IoU 12/20 = 0.6
    p[7:9, 22:26] = 3  # no overlap
    m = match_labels(t, p, threshold=0.5)
    assert m.true_ids.tolist() == [4, 8] and m.pred_ids.tolist() == [1, 2]
    np.testing.assert_allclose(m.iou, [1.0, 0.6])
    assert m.unmatched_true.tolist() == [9] and m.unmatched_pred.tolist() == [3]
    assert match_labels(t, p, threshold=0.7).unmatched_true.tolist() == [8, 9]


def test_pixel_scores():
    t = np.zeros((4, 4), bool)
    t[:2] = True
    p = np.zeros((4, 4), np.int32)
    p[1:3] = 5
    assert pixel_accuracy(t, p) == 0.5
    assert dice(t, p) == 0.5
    assert iou(t, p) == pytest.approx(1 / 3)
    z = np.zeros((3, 3))
    assert dice(z, z) == 1.0 and iou(z, z) == 1.0 and pixel_accuracy(z, z) == 1.0


def test_count_instances():
    assert count_instances(_blobs(seed=5, n=12, radius=50)) == 12
    assert count_instances(np.zeros((5, 5), np.uint8)) == 0
    assert count_instances(np.array([[0, 2**33, 7]], np.int64)) == 2


def test_matching_is_fast_path_for_many_objects():
    """Thousands of objects: scores are right (timing lives in benchmarks/bench_metrics.py)."""
    t = _blobs(shape=(600, 600), n=2500, radius=4, seed=9)
    p = np.roll(t, 1, axis=0)
    r = match_instances(t, p, thresholds=(0.5,))
    assert r.n_true == count_instances(t) > 2000
    assert r.f1[0] > 0.9


def test_evaluate_instances_per_image_and_pooled():
    t = _blobs(seed=6)
    p = np.roll(t, 1, axis=1)
    n = count_instances(t)
    rep = evaluate_instances([("same", t, t), ("shifted", t, p), ("empty", t, np.zeros_like(t))])
    pi = rep.per_image.set_index("image")
    assert list(pi.index) == ["same", "shifted", "empty"]
    assert pi.loc["same", "mean_ap"] == 1.0 and pi.loc["empty", "f1@0.5"] == 0.0
    assert pi.loc["empty", "count_error"] == -n
    # the DSB score is the mean over images of each image's AP averaged over thresholds
    assert rep.summary["dsb_score"] == pytest.approx(np.mean([1.0, dsb_score(t, p), 0.0]))
    # pooled F1 at 0.5 counts every object of every image
    tp = pi["tp@0.5"].sum()
    fp = pi["fp@0.5"].sum()
    fn = pi["fn@0.5"].sum()
    assert rep.summary["f1@0.5"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert rep.summary["count_mae"] == pytest.approx(n / 3)
    row = rep.per_threshold.iloc[0]
    assert row["threshold"] == 0.5 and row["tp"] == tp
    assert rep.summary["n_images"] == 3 and rep.summary["n_failed"] == 0 and rep.errors.empty


def test_evaluate_instances_mapping_skip_and_custom_thresholds():
    t = _blobs(seed=7)
    rep = evaluate_instances({"ok": (t, t), "bad": (t, t[:-1])}, thresholds=(0.5, 0.9), on_error="skip")
    assert rep.summary["n_images"] == 1 and rep.summary["n_failed"] == 1
    assert rep.errors.iloc[0]["image"] == "bad" and "shape" in rep.errors.iloc[0]["error"]
    assert np.isnan(rep.summary["dsb_score"]) and rep.summary["mean_ap"] == 1.0
    assert "f1@0.9" in rep.per_image.columns


def test_errors():
    t = np.zeros((4, 4), np.int32)
    with pytest.raises(InputError, match=r"true labels has shape \(4, 4\) but predicted labels has shape \(4, 5\)"):
        match_instances(t, np.zeros((4, 5), np.int32))
    with pytest.raises(InputError, match="non-integer values"):
        match_instances(t, np.full((4, 4), 0.5))
    with pytest.raises(InputError, match="negative values"):
        match_instances(t, np.full((4, 4), -1))
    with pytest.raises(InputError, match="dtype <U1"):
        count_instances(np.array([["a"]]))
    with pytest.raises(InputError, match=r"IoU thresholds must be in \(0, 1\]"):
        match_instances(t, t, thresholds=(0.0, 0.5))
    with pytest.raises(InputError, match="was not evaluated"):
        match_instances(t, t, thresholds=(0.5,)).at(0.75)
    with pytest.raises(InputError, match="shape"):
        dice(t, np.zeros((3, 3)))
    with pytest.raises(InputError, match="on_error='ignore' is not one of"):
        evaluate_instances([(t, t)], on_error="ignore")
    with pytest.raises(InputError, match="must be \\(true, pred\\) or \\(name, true, pred\\)"):
        evaluate_instances([t])
    with pytest.raises(InputError, match="image 'x': true labels has shape"):
        evaluate_instances({"x": (t, t[:2])})


def test_match_result_at_and_frame():
    t = _blobs(seed=8)
    r = match_instances(t, np.roll(t, 1, axis=0), thresholds=(0.5, 0.75))
    d = r.at(0.5)
    assert d["tp"] == r.tp[0] and d["f1"] == pytest.approx(r.f1[0])
    assert list(r.to_frame().columns) == ["threshold", "tp", "fp", "fn", "precision", "recall", "f1", "ap",
                                          "sq", "pq"]
    np.testing.assert_allclose(r.pq, r.sq * r.rq)


def test_real_nuclei_eroded_prediction(samples_dir):
    """Real DSB2018 labels (non-consecutive ids): an eroded copy has IoU = eroded area / area."""
    import tifffile

    t = tifffile.imread(samples_dir / "mask2d.tif")
    eroded = np.zeros_like(t)
    for sl, lab in zip(ndi.find_objects(t), range(1, t.max() + 1)):
        if sl is None:
            continue
        m = ndi.binary_erosion(t[sl] == lab)
        eroded[sl][m] = lab
    ov = label_overlap(t, eroded)
    assert ov.n_true == 125
    expected = ov.pred_areas[ov.pair_pred] / ov.true_areas[ov.pair_true]
    np.testing.assert_allclose(ov.iou, expected)
    m = match_labels(t, eroded, threshold=0.5)
    assert len(m.true_ids) == int(np.sum(expected >= 0.5))
