"""Cell Tracking Challenge measures of a tracking result, by py-ctcmetrics (``ctc_metrics``).

DET (detection), SEG (segmentation, Jaccard of matched objects), TRA (tracking: the normalised cost of the graph
edits that turn the result into the truth) and BC(i) (branching correctness: F1 of divisions found within i frames)
as the CTC defines them, computed by the challenge's own Python package; nothing here re-implements a measure.

:func:`evaluate_points` scores against *point* tracks (a marker per cell per frame, no masks), with detection,
linking and a TRA-like figure built on the CTC's graph-edit weights; it is deepscope's own, not a CTC measure.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.errors import InputError

__all__ = ["evaluate_ctc", "evaluate_points", "CTC_MEASURES"]

#: The measures :func:`evaluate_ctc` reports (plus the counts behind BC).
CTC_MEASURES = ("DET", "SEG", "TRA", "BC(0)")


def _gt_folder(gt: Path) -> Path:
    if (gt / "TRA").is_dir():
        return gt
    cands = sorted(p for p in gt.glob("*_GT") if (p / "TRA").is_dir()) if gt.is_dir() else []
    if len(cands) == 1:
        return cands[0]
    raise InputError(f"{gt} is not a CTC ground-truth folder: expected TRA/man_track000.tif ... and "
                     "TRA/man_track.txt (and optionally SEG/man_seg*.tif) inside it, e.g. 01_GT")


def evaluate_ctc(result: str | os.PathLike[str], gt: str | os.PathLike[str], *, bc: int = 0) -> dict[str, Any]:
    """Score a CTC result folder against CTC ground truth.

    Parameters
    ----------
    result : path
        Folder with ``mask000.tif`` ... and ``res_track.txt`` (``deepscope track`` writes ``OUT/<stem>/``).
    gt : path
        The ``*_GT`` folder (``TRA/`` with ``man_track*.tif`` and ``man_track.txt``; ``SEG/`` with ``man_seg*.tif``
        for SEG), or a folder holding exactly one such.
    bc : int, default 0
        BC(i) is reported for i = 0 .. ``bc``.

    Returns
    -------
    dict
        ``DET``, ``SEG`` (NaN without a SEG folder), ``TRA``, ``BC(0)`` ..., the divisions in the truth
        (``gt_divisions``) and ``tp_div(0)``/``fp_div(0)``/``fn_div(0)``, the AOGM counts, ``valid`` (the result is a
        valid CTC graph) and the frame count.

    Raises
    ------
    FileNotFoundError
        If a folder or track table is missing.
    deepscope.errors.InputError
        If the folders are not CTC folders or hold different numbers of frames.
    """
    from ctc_metrics.scripts.evaluate import calculate_metrics, load_data
    from ctc_metrics.utils.filesystem import parse_masks

    res, truth = Path(result), Path(gt)
    for p in (res, truth):
        if not p.is_dir():
            raise FileNotFoundError(f"No such folder: '{p}'")
    truth = _gt_folder(truth)
    if not (res / "res_track.txt").is_file():
        raise InputError(f"{res} is not a CTC result folder: res_track.txt is missing (deepscope track writes "
                         "OUT/<stem>/ with mask000.tif ... and res_track.txt)")
    if not (truth / "TRA" / "man_track.txt").is_file():
        raise FileNotFoundError(f"No such track table: '{truth / 'TRA' / 'man_track.txt'}'")
    n_res, n_gt = len(parse_masks(str(res))), len(parse_masks(str(truth / "TRA")))
    if n_res != n_gt or n_gt == 0:
        raise InputError(f"{res} holds {n_res} mask file(s) but the truth {truth / 'TRA'} holds {n_gt}; a result "
                         "must have one mask per frame of the movie")
    with_seg = (truth / "SEG").is_dir() and any((truth / "SEG").glob("man_seg*.tif"))
    metrics = ["Valid", "DET", "TRA", "BC"] + (["SEG"] if with_seg else [])
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comp, ref, traj, segm, _, valid = load_data(str(res), str(truth), True, with_seg, threads=1)
        out = calculate_metrics(comp, ref, traj, segm, metrics + [f"BC({i})" for i in range(bc + 1)], valid)
    if not valid:
        raise InputError(f"{res} is not a valid CTC result (a label missing from a frame of its track, a parent "
                         "that ends after its child starts, or an empty frame): " + quiet.getvalue().strip()[-300:])
    doc: dict[str, Any] = {"DET": float(out["DET"]), "SEG": float(out["SEG"]) if with_seg else float("nan"),
                           "TRA": float(out["TRA"])}
    for i in range(bc + 1):
        v = out.get(f"BC({i})")
        doc[f"BC({i})"] = float("nan") if v is None else float(v)
    for k in ("gt_divisions", "tp_div(0)", "fp_div(0)", "fn_div(0)", "AOGM", "AOGM_0", "AOGM_NS", "AOGM_FN",
              "AOGM_FP", "AOGM_ED", "AOGM_EA", "AOGM_EC"):
        if k in out and out[k] is not None:
            doc[k] = float(out[k])
    doc["valid"] = bool(valid)
    doc["frames"] = n_gt
    return doc


def _parent_map(parents: Any) -> dict[int, int]:
    """{child: parent} from a mapping (values an id or napari's [id]) or an ``L B E P`` table."""
    if parents is None:
        return {}
    if isinstance(parents, np.ndarray):
        return {int(r[0]): int(r[3]) for r in np.asarray(parents).reshape(-1, 4) if r[3]}
    out = {}
    for c, p in dict(parents).items():
        p = p[0] if isinstance(p, (list, tuple, np.ndarray)) and len(p) else p
        if p is not None and not isinstance(p, (list, tuple, np.ndarray)) and int(p):
            out[int(c)] = int(p)
    return out


def evaluate_points(labels: np.ndarray, parents: Any, tracks: np.ndarray, *, gt_parents: Any = None,
                    detections: np.ndarray | None = None, ignore: np.ndarray | None = None,
                    tolerance: float = 0.0) -> dict[str, Any]:
    """Score a tracking result against point tracks (one marker per cell per frame, as napari's Tracks data).

    For ground truth given as points, not masks (e.g. hand-clicked tracks). A point is *detected* when it falls
    inside a result object. Measures:

    * ``det_recall``: detected points / points (``detections``, default the track points);
      ``det_precision``: objects holding >= 1 point / objects; ``merged``: objects holding >= 2 points;
    * ``link_accuracy``: of the truth's links (consecutive points of a track, across frames it skips, and mother ->
      daughter), the fraction whose two points lie in result objects of the same track or of a track and its
      descendant (a track continued after a gap, or a daughter); ``link_accuracy_detected`` counts only links with
      both points detected (linking alone);
    * ``divisions``, ``divisions_found`` (daughters in two different result tracks descending from the mother's),
      ``result_divisions`` and ``false_divisions`` (result divisions matched to none in the truth);
    * ``point_TRA``: the CTC TRA formula, ``1 - min(AOGM, AOGM_0) / AOGM_0``, with the truth's points standing in for
      its marker masks (a point is matched by the object that contains it): missed points (FN, weight 10), objects
      holding k > 1 track points (NS, 5 (k - 1)), objects holding no point at all (FP, 1), truth links the result
      does not join (EA, 1.5), result links between matched objects that join no truth link (ED, 1), joined links
      of the wrong kind, division vs continuation (EC, 1); ``AOGM_0 = 10 points + 1.5 links``. A truth link across
      frames the annotator skipped counts as joined when the result's tracks connect the two objects. Objects
      holding only ``detections`` points (cells the tracks do not follow) are neither matched nor FP.

    This is **not** the CTC's TRA: that needs the truth's marker masks (matching by > 50 % overlap) and is
    computed by :func:`evaluate_ctc`; a point is easier to hit than a marker mask, so the point figure is the
    more lenient on segmentation.

    Parameters
    ----------
    labels : (T, Y, X) int ndarray
        The result, label = track id (CTC convention, ``deepscope track``'s ``OUT/<stem>/mask*.tif``).
    parents : mapping or (N, 4) ndarray
        The result's lineage: {track: parent} or its ``L B E P`` table (``res_track.txt``).
    tracks : (M, 4) ndarray
        The truth, rows ``track_id, t, y, x`` (napari Tracks data; pixel coordinates, rounded to the nearest pixel).
    gt_parents : mapping, optional
        The truth's lineage {track: parent or [parent]} (napari's ``graph``); a parent with two or more children is
        a division, with one a continuation.
    detections : (K, 3) ndarray, optional
        Rows ``t, y, x``: every cell of every frame, where the tracks follow only some or skip frames.
    ignore : (J, 3) ndarray, optional
        Rows ``t, y, x``: cells left out of the scoring (e.g. cut by the frame's edge); an object holding one and no
        scored point is not counted at all (neither matched nor a false positive).
    tolerance : float, default 0
        A point inside no object is taken as in the nearest object within this many pixels (0: it must be inside;
        hand-clicked points of cells cut by the border often sit on the frame's edge, outside the object).

    Returns
    -------
    dict
        The measures above and the counts behind them (``points``, ``links``, ``objects``, ``FN``, ``NS``, ``FP``,
        ``EA``, ``ED``, ``EC``, ``AOGM``, ``AOGM_0``).
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise InputError(f"labels must be a (T, Y, X) stack; got shape {labels.shape}")
    tracks = np.asarray(tracks, dtype=np.float64).reshape(-1, 4)
    n_t, h, w = labels.shape
    if len(tracks) and (tracks[:, 1].min() < 0 or tracks[:, 1].max() >= n_t):
        raise InputError(f"track points lie outside the result's {n_t} frames")
    res_par = _parent_map(parents)
    gt_par = _parent_map(gt_parents)
    children: dict[int, list[int]] = {}
    for c, p in res_par.items():
        children.setdefault(p, []).append(c)

    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise InputError(f"tolerance must be a number of pixels >= 0; got {tolerance}")
    nearest: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def lab_at(t: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        t = t.astype(int)
        yi = np.clip(np.rint(y).astype(int), 0, h - 1)
        xi = np.clip(np.rint(x).astype(int), 0, w - 1)
        out = labels[t, yi, xi].astype(np.int64)
        if tolerance > 0:
            from scipy import ndimage as ndi

            for j in np.flatnonzero(out == 0):
                f = int(t[j])
                if f not in nearest:
                    if not labels[f].any():
                        continue
                    dist, idx = ndi.distance_transform_edt(labels[f] == 0, return_indices=True)
                    nearest[f] = (dist, idx)
                if f in nearest:
                    dist, idx = nearest[f]
                    if dist[yi[j], xi[j]] <= tolerance:
                        out[j] = int(labels[f, idx[0, yi[j], xi[j]], idx[1, yi[j], xi[j]]])
        return out

    t_tr = tracks[:, 1].astype(int)
    r_tr = lab_at(t_tr, tracks[:, 2], tracks[:, 3])
    det = (np.asarray(detections, dtype=np.float64).reshape(-1, 3) if detections is not None
           else tracks[:, 1:])
    t_d = det[:, 0].astype(int)
    r_d = lab_at(t_d, det[:, 1], det[:, 2])

    objects: set[tuple[int, int]] = set()
    for t in range(n_t):
        ids = np.unique(labels[t])
        objects.update((t, int(i)) for i in ids[ids > 0])
    hit_d: dict[tuple[int, int], int] = {}
    for t, r in zip(t_d, r_d):
        if r > 0:
            hit_d[(int(t), int(r))] = hit_d.get((int(t), int(r)), 0) + 1
    hit_tr: dict[tuple[int, int], int] = {}
    for t, r in zip(t_tr, r_tr):
        if r > 0:
            hit_tr[(int(t), int(r))] = hit_tr.get((int(t), int(r)), 0) + 1
    occupied = set(hit_d) | set(hit_tr)
    all_objects = set(objects)
    if ignore is not None and len(ignore):
        ign = np.asarray(ignore, dtype=np.float64).reshape(-1, 3)
        r_i = lab_at(ign[:, 0].astype(int), ign[:, 1], ign[:, 2])
        left_out = {(int(t), int(r)) for t, r in zip(ign[:, 0].astype(int), r_i) if r > 0} - occupied
        objects = objects - left_out

    def ancestry(a: int, b: int) -> str | None:
        """'same', 'continuation' (b after a gap of a's track) or 'division' when b is a or descends from it."""
        kind, node, seen = "same", b, set()
        while node and node not in seen:
            if node == a:
                return kind
            seen.add(node)
            p = res_par.get(node, 0)
            if p:
                kind = "division" if len(children.get(p, [])) >= 2 or kind == "division" else "continuation"
            node = p
        return None

    # the truth's links: consecutive points of a track, and mother's last -> daughter's first
    gt_children: dict[int, list[int]] = {}
    for c, p in gt_par.items():
        gt_children.setdefault(p, []).append(c)
    order = np.lexsort((t_tr, tracks[:, 0]))
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    links: list[tuple[int, int, str]] = []
    prev = None
    for i in order:
        k = int(tracks[i, 0])
        if prev is not None and int(tracks[prev, 0]) == k:
            links.append((prev, i, "continuation"))
        first.setdefault(k, i)
        last[k] = i
        prev = i
    for c, p in gt_par.items():
        if c in first and p in last:
            links.append((last[p], first[c], "division" if len(gt_children[p]) >= 2 else "continuation"))

    correct = both = ea = ec = 0
    gt_edges: set[tuple[tuple[int, int], tuple[int, int]]] = set()
    for a, b, kind in links:
        ra, rb = int(r_tr[a]), int(r_tr[b])
        if ra <= 0 or rb <= 0:
            ea += 1
            continue
        both += 1
        oa, ob = (int(t_tr[a]), ra), (int(t_tr[b]), rb)
        gt_edges.add((oa, ob))
        rel = ancestry(ra, rb)
        if rel is None:
            ea += 1
            continue
        correct += 1
        if (rel == "division") != (kind == "division"):
            ec += 1

    # the result's links between matched objects (holding >= 1 track point)
    first_frame: dict[int, int] = {}
    last_frame: dict[int, int] = {}
    for t, r in sorted(all_objects):
        first_frame.setdefault(r, t)
        last_frame[r] = t
    ed = 0
    for (t, r) in hit_tr:
        if (t + 1, r) in hit_tr and ((t, r), (t + 1, r)) not in gt_edges:
            ed += 1
    for c, p in res_par.items():
        if c in first_frame and p in last_frame:
            oa, ob = (last_frame[p], p), (first_frame[c], c)
            if oa in hit_tr and ob in hit_tr and (oa, ob) not in gt_edges:
                ed += 1

    fn = int((r_tr <= 0).sum())
    ns = int(sum(k - 1 for k in hit_tr.values()))
    fp = int(sum(1 for o in objects if o not in occupied))
    aogm = 10.0 * fn + 5.0 * ns + 1.0 * fp + 1.5 * ea + 1.0 * ed + 1.0 * ec
    aogm0 = 10.0 * len(tracks) + 1.5 * len(links)

    # divisions
    gt_div = {p: cs for p, cs in gt_children.items() if len(cs) >= 2}
    res_div = {p for p, cs in children.items() if len(cs) >= 2}
    matched_div: set[int] = set()
    found = 0
    for p, cs in gt_div.items():
        if p not in last or not all(c in first for c in cs[:2]):
            continue
        rm = int(r_tr[last[p]])
        r1, r2 = (int(r_tr[first[c]]) for c in cs[:2])
        if rm > 0 and r1 > 0 and r2 > 0 and r1 != r2 and ancestry(rm, r1) and ancestry(rm, r2):
            found += 1
            anc1 = [r1]
            while res_par.get(anc1[-1], 0):
                anc1.append(res_par[anc1[-1]])
            node = r2
            while node and node not in anc1:
                node = res_par.get(node, 0)
            lca = node
            if lca in res_div:
                matched_div.add(lca)
    n_obj = len(objects)
    return {
        "points": int(len(tracks)), "detection_points": int(len(det)), "links": len(links), "objects": n_obj,
        "det_recall": float((r_d > 0).mean()) if len(det) else float("nan"),
        "det_precision": (sum(1 for o in objects if o in hit_d) / n_obj) if n_obj else float("nan"),
        "merged": int(sum(1 for v in hit_d.values() if v >= 2)),
        "link_accuracy": correct / len(links) if links else float("nan"),
        "link_accuracy_detected": correct / both if both else float("nan"),
        "divisions": len(gt_div), "divisions_found": found, "result_divisions": len(res_div),
        "false_divisions": len(res_div - matched_div),
        "FN": fn, "NS": ns, "FP": fp, "EA": ea, "ED": ed, "EC": ec, "AOGM": aogm, "AOGM_0": aogm0,
        "point_TRA": 1.0 - min(aogm, aogm0) / aogm0 if aogm0 else float("nan"),
    }
