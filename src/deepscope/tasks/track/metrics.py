"""Cell Tracking Challenge measures of a tracking result, by py-ctcmetrics (``ctc_metrics``).

DET (detection), SEG (segmentation, Jaccard of matched objects), TRA (tracking: the normalised cost of the graph
edits that turn the result into the truth) and BC(i) (branching correctness: F1 of divisions found within i frames)
as the CTC defines them, computed by the challenge's own Python package; nothing here re-implements a measure.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any

from deepscope.errors import InputError

__all__ = ["evaluate_ctc", "CTC_MEASURES"]

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
