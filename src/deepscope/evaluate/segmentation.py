"""Segmentation metrics: pixel scores for masks, IoU-matched object scores for label images.

Object matching follows StarDist's ``matching`` and Cellpose's ``average_precision``: a true
and a predicted object may be matched when their intersection over union (IoU) is at least the
threshold, each object is matched at most once, and the matching is *optimal*: it has the largest
possible number of pairs, ties broken by the largest total IoU.

How it is computed
------------------
* The IoU of every overlapping pair comes from a sparse joint histogram of the two label images
  (one pass over the pixels), so the cost grows with the number of pixels, not with the product
  of the object counts: images with thousands of objects take milliseconds.
* For a threshold of 0.5 or more an object can have at most one partner with IoU > 0.5, so almost
  every candidate pair is a 1:1 match and is taken directly, without any assignment problem. The
  few remaining candidates (IoU exactly 0.5 ties, or any threshold below 0.5) are split into
  connected components of the candidate graph and each component is solved exactly with
  :func:`scipy.optimize.linear_sum_assignment` using StarDist's cost
  ``-(1 + IoU / (2 n))``. The result equals StarDist's and Cellpose's.
* A pair counts as a match when ``IoU >= threshold`` (as StarDist and Cellpose; the 2018 Data
  Science Bowl wrote "above the threshold", which differs only for exact ties).

Scores at a threshold (``tp`` matches, ``fp`` unmatched predictions, ``fn`` unmatched true objects):
precision ``tp / (tp + fp)``, recall ``tp / (tp + fn)``, F1 ``2 tp / (2 tp + fp + fn)``,
AP ``tp / (tp + fp + fn)`` (the Data Science Bowl's per-image "average precision"), segmentation
quality SQ = mean IoU of the matches, recognition quality RQ = F1, panoptic quality
PQ = SQ x RQ = sum of matched IoU / (tp + fp / 2 + fn / 2).

Empty images: when both images have no objects every score is 1.0 (nothing to find and nothing
falsely found is a perfect result). When only one side is empty, every score is 0.0 (a ratio with
a zero denominator, such as the precision of an empty prediction, is reported as 0.0, as
StarDist does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.errors import InputError
from deepscope.evaluate._labels import as_labels, check_same_shape, ids_areas, joint_histogram

if TYPE_CHECKING:
    import pandas as pd
    from scipy import sparse

__all__ = [
    "DSB_THRESHOLDS", "ON_ERROR", "LabelOverlap", "Matching", "MatchResult", "InstanceReport",
    "pixel_accuracy", "dice", "iou", "count_instances", "label_overlap", "match_labels",
    "match_instances", "dsb_score", "evaluate_instances",
]

#: IoU thresholds of the 2018 Data Science Bowl score: 0.50, 0.55, ..., 0.95.
DSB_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))

#: What :func:`evaluate_instances` does with a pair it cannot score.
ON_ERROR = ("raise", "skip")


# --------------------------------------------------------------------------- pixel scores

def _masks(true: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(true)
    p = np.asarray(pred)
    check_same_shape(t, p, names=("true mask", "predicted mask"))
    return t != 0, p != 0


def pixel_accuracy(true: Any, pred: Any) -> float:
    """Fraction of pixels where the two masks agree (foreground = non-zero).

    Mostly measures background on sparse images: prefer object scores (:func:`match_instances`).

    Parameters
    ----------
    true, pred : ndarray of bool or int, same shape
        Masks or label images; every non-zero pixel is foreground.

    Returns
    -------
    float
        In [0, 1]; 1.0 for two empty arrays of size 0.

    Raises
    ------
    deepscope.errors.InputError
        If the shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> pixel_accuracy(np.array([[1, 0], [0, 0]]), np.array([[1, 1], [0, 0]]))
    0.75
    """
    t, p = _masks(true, pred)
    return float(np.mean(t == p)) if t.size else 1.0


def dice(true: Any, pred: Any) -> float:
    """Dice coefficient ``2 |T & P| / (|T| + |P|)`` of two masks (foreground = non-zero).

    Parameters
    ----------
    true, pred : ndarray of bool or int, same shape
        Masks or label images; every non-zero pixel is foreground.

    Returns
    -------
    float
        In [0, 1]; 1.0 when both masks are empty.

    Raises
    ------
    deepscope.errors.InputError
        If the shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    0.6666666666666666
    """
    t, p = _masks(true, pred)
    denom = int(t.sum()) + int(p.sum())
    return 1.0 if denom == 0 else 2.0 * int(np.count_nonzero(t & p)) / denom


def iou(true: Any, pred: Any) -> float:
    """Intersection over union (Jaccard index) of two masks (foreground = non-zero).

    Parameters
    ----------
    true, pred : ndarray of bool or int, same shape
        Masks or label images; every non-zero pixel is foreground.

    Returns
    -------
    float
        In [0, 1]; 1.0 when both masks are empty.

    Raises
    ------
    deepscope.errors.InputError
        If the shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> iou(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    0.5
    """
    t, p = _masks(true, pred)
    union = int(np.count_nonzero(t | p))
    return 1.0 if union == 0 else int(np.count_nonzero(t & p)) / union


def count_instances(labels: Any) -> int:
    """Number of objects (distinct non-zero ids) in a label image.

    Raises
    ------
    deepscope.errors.InputError
        If ``labels`` is not a label image (non-integer or negative values).

    Examples
    --------
    >>> import numpy as np
    >>> count_instances(np.array([[0, 3, 3], [7, 0, 12]]))
    3
    """
    a = as_labels(labels, name="labels").reshape(-1)
    if a.size == 0:
        return 0
    return len(ids_areas(a)[0])


# --------------------------------------------------------------------------- overlaps

@dataclass(frozen=True, eq=False)
class LabelOverlap:
    """Sparse overlap of two label images: every object and every overlapping pair.

    Attributes
    ----------
    true_ids, pred_ids : ndarray of int64
        Object ids of each image, sorted (ids need not be consecutive).
    true_areas, pred_areas : ndarray of int64
        Pixel count of each object, aligned with the ids.
    pair_true, pair_pred : ndarray of intp
        For every pair of objects that share at least one pixel: the index (into ``true_ids``
        and ``pred_ids``) of the true and of the predicted object.
    intersection : ndarray of int64
        Shared pixels of each pair.
    iou : ndarray of float64
        Intersection over union of each pair.
    """

    true_ids: np.ndarray
    pred_ids: np.ndarray
    true_areas: np.ndarray
    pred_areas: np.ndarray
    pair_true: np.ndarray
    pair_pred: np.ndarray
    intersection: np.ndarray
    iou: np.ndarray

    @property
    def n_true(self) -> int:
        return len(self.true_ids)

    @property
    def n_pred(self) -> int:
        return len(self.pred_ids)

    def iou_matrix(self) -> sparse.csr_matrix:
        """The IoU matrix as a sparse ``(n_true, n_pred)`` CSR matrix (rows follow ``true_ids``)."""
        from scipy import sparse

        return sparse.csr_matrix((self.iou, (self.pair_true, self.pair_pred)), shape=(self.n_true, self.n_pred))


def label_overlap(true: Any, pred: Any) -> LabelOverlap:
    """Compute the sparse overlap (intersections and IoU) of two label images.

    Parameters
    ----------
    true, pred : ndarray of int, same shape (any number of dimensions)
        Instance label images, 0 = background; ids need not be consecutive.

    Returns
    -------
    LabelOverlap

    Raises
    ------
    deepscope.errors.InputError
        If the shapes differ or an array is not a label image.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array([[1, 1, 0, 0], [1, 1, 0, 0]])
    >>> p = np.array([[0, 5, 5, 0], [0, 5, 5, 0]])
    >>> ov = label_overlap(t, p)
    >>> ov.true_ids.tolist(), ov.pred_ids.tolist(), ov.iou.round(3).tolist()
    ([1], [5], [0.333])
    """
    t = as_labels(true, name="true labels")
    p = as_labels(pred, name="predicted labels")
    check_same_shape(t, p, names=("true labels", "predicted labels"))
    tf, pf = t.reshape(-1), p.reshape(-1)
    tid, tarea = ids_areas(tf)
    pid, parea = ids_areas(pf)
    it, ip, inter = joint_histogram(tf, pf, tid, pid)
    union = tarea[it] + parea[ip] - inter
    ious = inter / np.maximum(union, 1)
    return LabelOverlap(tid, pid, tarea, parea, it, ip, inter, ious.astype(np.float64))


def _check_thresholds(thresholds: Any) -> np.ndarray:
    th = np.atleast_1d(np.asarray(thresholds, dtype=float))
    if th.ndim != 1 or th.size == 0:
        raise InputError(f"thresholds must be one number or a sequence of numbers, got {thresholds!r}")
    if np.any(~np.isfinite(th)) or np.any(th <= 0) or np.any(th > 1):
        raise InputError(f"IoU thresholds must be in (0, 1], got {th.tolist()}")
    return th


def _match(ov: LabelOverlap, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal one-to-one matching at ``threshold``: indices of matched true/pred and their IoU."""
    sel = ov.iou >= threshold
    i, j, s = ov.pair_true[sel], ov.pair_pred[sel], ov.iou[sel]
    if i.size == 0:
        return i, j, s
    deg_t = np.bincount(i, minlength=ov.n_true)
    deg_p = np.bincount(j, minlength=ov.n_pred)
    simple = (deg_t[i] == 1) & (deg_p[j] == 1)
    if simple.all():
        return i, j, s
    out_i, out_j, out_s = [i[simple]], [j[simple]], [s[simple]]
    i2, j2, s2 = i[~simple], j[~simple], s[~simple]
    from scipy import sparse
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse.csgraph import connected_components

    ut, it = np.unique(i2, return_inverse=True)
    up, ip = np.unique(j2, return_inverse=True)
    nt, n_nodes = len(ut), len(ut) + len(up)
    graph = sparse.coo_matrix((np.ones(len(it)), (it, nt + ip)), shape=(n_nodes, n_nodes))
    _, comp = connected_components(graph, directed=False)
    edge_comp = comp[it]
    order = np.argsort(edge_comp, kind="stable")
    bounds = np.flatnonzero(np.diff(edge_comp[order])) + 1
    for edges in np.split(order, bounds):
        rows, r_idx = np.unique(it[edges], return_inverse=True)
        cols, c_idx = np.unique(ip[edges], return_inverse=True)
        n = min(len(rows), len(cols))
        cost = np.zeros((len(rows), len(cols)))
        cost[r_idx, c_idx] = -(1.0 + s2[edges] / (2.0 * n))
        ri, ci = linear_sum_assignment(cost)
        ok = cost[ri, ci] < 0
        score = np.zeros((len(rows), len(cols)))
        score[r_idx, c_idx] = s2[edges]
        out_i.append(ut[rows[ri[ok]]])
        out_j.append(up[cols[ci[ok]]])
        out_s.append(score[ri[ok], ci[ok]])
    mi, mj, ms = np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s)
    order = np.argsort(mi, kind="stable")
    return mi[order], mj[order], ms[order]


@dataclass(frozen=True, eq=False)
class Matching:
    """The one-to-one matching of true and predicted objects at one IoU threshold.

    Attributes
    ----------
    threshold : float
        The IoU threshold.
    true_ids, pred_ids : ndarray of int64
        Ids of the matched objects, pair by pair (sorted by true id).
    iou : ndarray of float64
        IoU of each matched pair.
    unmatched_true, unmatched_pred : ndarray of int64
        Ids of the objects without a partner (false negatives, false positives).
    """

    threshold: float
    true_ids: np.ndarray
    pred_ids: np.ndarray
    iou: np.ndarray
    unmatched_true: np.ndarray
    unmatched_pred: np.ndarray


def match_labels(true: Any, pred: Any, *, threshold: float = 0.5) -> Matching:
    """Match true and predicted objects one-to-one at an IoU threshold and return the pairs.

    Parameters
    ----------
    true, pred : ndarray of int, same shape
        Instance label images, 0 = background; ids need not be consecutive.
    threshold : float, default 0.5
        Minimum IoU of a match, in (0, 1].

    Returns
    -------
    Matching

    Raises
    ------
    deepscope.errors.InputError
        If the shapes differ, an array is not a label image or the threshold is not in (0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array([[1, 1, 0, 2, 2]])
    >>> p = np.array([[4, 4, 9, 0, 0]])
    >>> m = match_labels(t, p, threshold=0.5)
    >>> m.true_ids.tolist(), m.pred_ids.tolist(), m.iou.tolist()
    ([1], [4], [1.0])
    >>> m.unmatched_true.tolist(), m.unmatched_pred.tolist()
    ([2], [9])
    """
    th = float(_check_thresholds(threshold)[0])
    ov = label_overlap(true, pred)
    i, j, s = _match(ov, th)
    mt = np.zeros(ov.n_true, bool)
    mt[i] = True
    mp = np.zeros(ov.n_pred, bool)
    mp[j] = True
    return Matching(th, ov.true_ids[i], ov.pred_ids[j], s, ov.true_ids[~mt], ov.pred_ids[~mp])


# --------------------------------------------------------------------------- per-threshold scores

def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


@dataclass(frozen=True, eq=False)
class MatchResult:
    """Object-level scores of one image at several IoU thresholds.

    Every array attribute has one value per threshold (see the module docstring for the
    definitions and the empty-image convention).

    Attributes
    ----------
    thresholds : ndarray of float64
    n_true, n_pred : int
        Number of true and predicted objects.
    tp, fp, fn : ndarray of int64
        Matches, unmatched predictions, unmatched true objects.
    precision, recall, f1, ap : ndarray of float64
        ``ap = tp / (tp + fp + fn)``.
    mean_matched_iou : ndarray of float64
        Mean IoU of the matched pairs (panoptic segmentation quality, SQ); 0 without matches.
    iou_sum : ndarray of float64
        Sum of the IoU of the matched pairs (for pooling over images).
    pq : ndarray of float64
        Panoptic quality ``SQ x RQ``.
    """

    thresholds: np.ndarray
    n_true: int
    n_pred: int
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    ap: np.ndarray
    mean_matched_iou: np.ndarray
    iou_sum: np.ndarray
    pq: np.ndarray

    @classmethod
    def from_counts(cls, thresholds: Any, n_true: int, n_pred: int, tp: Any, iou_sum: Any) -> MatchResult:
        """Build the scores from match counts (also used to pool counts over images)."""
        th = np.asarray(thresholds, dtype=float)
        tp = np.asarray(tp, dtype=np.int64)
        iou_sum = np.asarray(iou_sum, dtype=float)
        fp = n_pred - tp
        fn = n_true - tp
        if n_true == 0 and n_pred == 0:
            ones = np.ones(len(th))
            return cls(th, 0, 0, tp, fp, fn, ones, ones.copy(), ones.copy(), ones.copy(), ones.copy(),
                       iou_sum, ones.copy())
        precision = _ratio(tp, tp + fp)
        recall = _ratio(tp, tp + fn)
        f1 = _ratio(2 * tp, 2 * tp + fp + fn)
        ap = _ratio(tp, tp + fp + fn)
        sq = _ratio(iou_sum, tp)
        pq = _ratio(iou_sum, tp + fp / 2 + fn / 2)
        return cls(th, int(n_true), int(n_pred), tp, fp, fn, precision, recall, f1, ap, sq, iou_sum, pq)

    @property
    def sq(self) -> np.ndarray:
        """Segmentation quality (mean matched IoU)."""
        return self.mean_matched_iou

    @property
    def rq(self) -> np.ndarray:
        """Recognition quality (= F1)."""
        return self.f1

    @property
    def mean_ap(self) -> float:
        """AP averaged over the thresholds (the DSB score with :data:`DSB_THRESHOLDS`)."""
        return float(np.mean(self.ap))

    def at(self, threshold: float) -> dict[str, float]:
        """Scores at one of the thresholds, as a dict.

        Raises
        ------
        deepscope.errors.InputError
            If ``threshold`` is not one of :attr:`thresholds`.
        """
        k = np.flatnonzero(np.isclose(self.thresholds, threshold))
        if k.size == 0:
            raise InputError(f"threshold {threshold} was not evaluated; thresholds are "
                             f"{[float(t) for t in self.thresholds]}")
        return {key: float(val) for key, val in self.to_frame().iloc[int(k[0])].items()}

    def to_frame(self) -> pd.DataFrame:
        """One row per threshold: threshold, tp, fp, fn, precision, recall, f1, ap, sq, pq."""
        import pandas as pd

        return pd.DataFrame({"threshold": self.thresholds, "tp": self.tp, "fp": self.fp, "fn": self.fn,
                             "precision": self.precision, "recall": self.recall, "f1": self.f1,
                             "ap": self.ap, "sq": self.mean_matched_iou, "pq": self.pq})


def _match_overlap(ov: LabelOverlap, th: np.ndarray) -> MatchResult:
    tp = np.zeros(len(th), np.int64)
    iou_sum = np.zeros(len(th))
    for k, t in enumerate(th):
        _, _, s = _match(ov, float(t))
        tp[k] = len(s)
        iou_sum[k] = float(s.sum())
    return MatchResult.from_counts(th, ov.n_true, ov.n_pred, tp, iou_sum)


def match_instances(true: Any, pred: Any, *, thresholds: float | Sequence[float] = DSB_THRESHOLDS
                    ) -> MatchResult:
    """Match objects one-to-one by IoU and score the prediction at each threshold.

    Parameters
    ----------
    true, pred : ndarray of int, same shape
        Instance label images (int, 0 = background; ids need not be consecutive). Any number of
        dimensions; both must have the same shape.
    thresholds : float or sequence of float, default :data:`DSB_THRESHOLDS`
        IoU thresholds in (0, 1]; a pair is a match when ``IoU >= threshold``.

    Returns
    -------
    MatchResult
        TP, FP, FN, precision, recall, F1, AP, mean matched IoU and panoptic quality per
        threshold.

    Raises
    ------
    deepscope.errors.InputError
        If the shapes differ, an array is not a label image, or a threshold is not in (0, 1].

    Examples
    --------
    Two 4x4 squares; the prediction of the second is shifted by one column (IoU 12/20 = 0.6):

    >>> import numpy as np
    >>> t = np.zeros((10, 20), np.int32); p = np.zeros_like(t)
    >>> t[1:5, 1:5] = 1; t[1:5, 10:14] = 2
    >>> p[1:5, 1:5] = 7; p[1:5, 11:15] = 9
    >>> r = match_instances(t, p, thresholds=(0.5, 0.75))
    >>> r.tp.tolist(), r.f1.tolist(), r.ap.tolist()
    ([2, 1], [1.0, 0.5], [1.0, 0.3333333333333333])
    >>> round(float(r.pq[0]), 3)
    0.8
    """
    th = _check_thresholds(thresholds)
    return _match_overlap(label_overlap(true, pred), th)


def dsb_score(true: Any, pred: Any) -> float:
    """The 2018 Data Science Bowl score of one image: AP averaged over IoU 0.50, 0.55, ..., 0.95.

    Parameters
    ----------
    true, pred : ndarray of int, same shape
        Instance label images, 0 = background.

    Returns
    -------
    float
        In [0, 1]; 1.0 when both images are empty.

    Raises
    ------
    deepscope.errors.InputError
        If the shapes differ or an array is not a label image.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((8, 8), np.int32); t[2:6, 2:6] = 3
    >>> dsb_score(t, t), dsb_score(t, np.zeros_like(t))
    (1.0, 0.0)
    """
    return match_instances(true, pred, thresholds=DSB_THRESHOLDS).mean_ap


# --------------------------------------------------------------------------- many images

@dataclass(frozen=True, eq=False)
class InstanceReport:
    """Object-level evaluation of a set of images.

    Attributes
    ----------
    per_image : pandas.DataFrame
        One row per image: ``image``, ``n_true``, ``n_pred``, ``count_error`` (pred - true),
        ``mean_ap`` (the image's DSB score with the default thresholds), then for every
        threshold ``t``: ``tp@t``, ``fp@t``, ``fn@t``, ``precision@t``, ``recall@t``, ``f1@t``,
        ``ap@t``, ``sq@t``, ``pq@t`` (``t`` written as ``0.5``, ``0.55``, ...).
    per_threshold : pandas.DataFrame
        One row per threshold: ``mean_ap`` (mean over images of the image's AP), and the scores
        of all objects pooled: ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1``, ``ap``,
        ``sq``, ``pq``.
    summary : dict
        ``n_images``, ``n_failed``, ``n_true``, ``n_pred``, ``mean_ap`` (mean over images and
        thresholds), ``dsb_score`` (the same, when every DSB threshold was evaluated, else NaN),
        pooled ``precision@t`` / ``recall@t`` / ``f1@t`` / ``pq@t`` and ``mean_ap@t`` for every
        threshold, ``count_mae`` and ``count_bias`` (predicted minus true objects per image).
    errors : pandas.DataFrame
        ``image``, ``error`` for every pair that could not be scored (``on_error="skip"``).
    """

    per_image: pd.DataFrame
    per_threshold: pd.DataFrame
    summary: dict[str, Any]
    errors: pd.DataFrame


def _tkey(t: float) -> str:
    return f"{float(t):g}"


def _iter_pairs(pairs: Any) -> Iterable[tuple[str, Any, Any]]:
    if isinstance(pairs, Mapping):
        for name, pair in pairs.items():
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise InputError(f"pairs[{name!r}] must be a (true, pred) tuple, got {type(pair).__name__}")
            yield str(name), pair[0], pair[1]
        return
    for k, item in enumerate(pairs):
        if isinstance(item, (tuple, list)) and len(item) == 2:
            yield str(k), item[0], item[1]
        elif isinstance(item, (tuple, list)) and len(item) == 3:
            yield str(item[0]), item[1], item[2]
        else:
            raise InputError(f"pairs item {k} must be (true, pred) or (name, true, pred), "
                             f"got {type(item).__name__}")


def evaluate_instances(pairs: Mapping[str, tuple[Any, Any]] | Iterable[tuple[Any, ...]], *,
                       thresholds: Sequence[float] = DSB_THRESHOLDS, on_error: str = "raise") -> InstanceReport:
    """Score predicted label images against their ground truth, per image and overall.

    Parameters
    ----------
    pairs : mapping name -> (true, pred), or iterable of (true, pred) or (name, true, pred)
        Label images (int, 0 = background). Arrays may be produced lazily (a generator), so a
        large set never has to be in memory at once.
    thresholds : sequence of float, default :data:`DSB_THRESHOLDS`
        IoU thresholds in (0, 1].
    on_error : {"raise", "skip"}, default "raise"
        ``"skip"`` records a pair that cannot be scored (different shapes, not a label image)
        in :attr:`InstanceReport.errors` and goes on.

    Returns
    -------
    InstanceReport
        ``per_image`` and ``per_threshold`` tables and a ``summary`` dict. The DSB score is the
        mean over images of the AP averaged over thresholds; F1 etc. in ``per_threshold`` pool
        the objects of all images.

    Raises
    ------
    deepscope.errors.InputError
        If ``on_error`` or a threshold is invalid, a pair is malformed, or (with
        ``on_error="raise"``) a pair cannot be scored.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((8, 8), np.int32); t[1:4, 1:4] = 1; t[5:8, 5:8] = 2
    >>> rep = evaluate_instances({"a": (t, t), "b": (t, np.zeros_like(t))}, thresholds=(0.5,))
    >>> rep.per_image[["image", "n_true", "n_pred", "f1@0.5"]].to_dict("records")
    [{'image': 'a', 'n_true': 2, 'n_pred': 2, 'f1@0.5': 1.0}, {'image': 'b', 'n_true': 2, 'n_pred': 0, 'f1@0.5': 0.0}]
    >>> rep.summary["mean_ap"], round(rep.summary["f1@0.5"], 3)
    (0.5, 0.667)
    """
    import pandas as pd

    if on_error not in ON_ERROR:
        raise InputError(f"on_error={on_error!r} is not one of {ON_ERROR}")
    th = np.unique(_check_thresholds(thresholds))
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    results: list[MatchResult] = []
    for name, true, pred in _iter_pairs(pairs):
        try:
            res = match_instances(true, pred, thresholds=th)
        except InputError as exc:
            if on_error == "raise":
                raise InputError(f"image {name!r}: {exc}") from exc
            errors.append({"image": name, "error": str(exc)})
            continue
        results.append(res)
        row: dict[str, Any] = {"image": name, "n_true": res.n_true, "n_pred": res.n_pred,
                               "count_error": res.n_pred - res.n_true, "mean_ap": res.mean_ap}
        for k, t in enumerate(th):
            tk = _tkey(t)
            row.update({f"tp@{tk}": int(res.tp[k]), f"fp@{tk}": int(res.fp[k]), f"fn@{tk}": int(res.fn[k]),
                        f"precision@{tk}": float(res.precision[k]), f"recall@{tk}": float(res.recall[k]),
                        f"f1@{tk}": float(res.f1[k]), f"ap@{tk}": float(res.ap[k]),
                        f"sq@{tk}": float(res.sq[k]), f"pq@{tk}": float(res.pq[k])})
        rows.append(row)

    per_image = pd.DataFrame(rows, columns=["image", "n_true", "n_pred", "count_error", "mean_ap"] + [
        f"{m}@{_tkey(t)}" for t in th for m in ("tp", "fp", "fn", "precision", "recall", "f1", "ap", "sq", "pq")])
    n_true = int(sum(r.n_true for r in results))
    n_pred = int(sum(r.n_pred for r in results))
    pooled = MatchResult.from_counts(th, n_true, n_pred,
                                     np.sum([r.tp for r in results], axis=0) if results else np.zeros(len(th)),
                                     np.sum([r.iou_sum for r in results], axis=0) if results else np.zeros(len(th)))
    mean_ap_t = (np.mean([r.ap for r in results], axis=0) if results else np.full(len(th), np.nan))
    per_threshold = pooled.to_frame()
    per_threshold.insert(1, "mean_ap", mean_ap_t)
    has_dsb = all(np.any(np.isclose(th, t)) for t in DSB_THRESHOLDS)
    mean_ap = float(np.mean([r.mean_ap for r in results])) if results else float("nan")
    if has_dsb and results:
        dsb_idx = [int(np.flatnonzero(np.isclose(th, t))[0]) for t in DSB_THRESHOLDS]
        dsb = float(np.mean([np.mean(r.ap[dsb_idx]) for r in results]))
    else:
        dsb = float("nan")
    count_err = np.array([r.n_pred - r.n_true for r in results], dtype=float)
    summary: dict[str, Any] = {
        "n_images": len(results), "n_failed": len(errors), "n_true": n_true, "n_pred": n_pred,
        "mean_ap": mean_ap, "dsb_score": dsb,
        "count_mae": float(np.mean(np.abs(count_err))) if results else float("nan"),
        "count_bias": float(np.mean(count_err)) if results else float("nan"),
    }
    for k, t in enumerate(th):
        tk = _tkey(t)
        summary.update({f"precision@{tk}": float(pooled.precision[k]), f"recall@{tk}": float(pooled.recall[k]),
                        f"f1@{tk}": float(pooled.f1[k]), f"pq@{tk}": float(pooled.pq[k]),
                        f"mean_ap@{tk}": float(mean_ap_t[k])})
    return InstanceReport(per_image, per_threshold, summary, pd.DataFrame(errors, columns=["image", "error"]))
