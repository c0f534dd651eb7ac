"""One object scale for a whole movie, checked by how well objects persist from frame to frame.

A generalist segmenter estimates the object diameter of each image from its size map (a probe pass). On a movie
that gives a diameter per frame, and on some images the estimate reads a part of the object for the object: nuclei
with bright chromocentres (mouse stem cells, Fluo-N2DH-GOWT1-like movies) are read at the size of their bright
core, and each cell comes out as its core plus pieces of its dim surround. Pieces like these do not persist: the
next frame cuts the cell differently. A movie holds what a single image does not, the same cells again a moment
later, so the scale can be checked:

1. the diameter is estimated on a few frames spread through the movie and the median taken (``estimate``);
2. consecutive frame pairs are segmented at the estimate and at larger diameters (steps of ``2 ** 0.25`` up to 4x)
   and each scale gets its *coherence*: the fraction of objects of one frame matched one-to-one (IoU >= 0.5) by an
   object of the next;
3. while the estimate's coherence is not clearly below the best (at least ``keep`` x the best, 0.85), nothing
   changes: each frame is segmented at its own estimate, as ``deepscope segment`` would; otherwise every frame is
   segmented at one diameter, the smallest whose coherence comes within ``reach`` (0.95) of the best.

Cells that move far between frames lower the coherence of every scale alike, so the check compares scales and
only overrides the estimate when the estimate is clearly the incoherent one; on deepscope's synthetic movies (the
per-frame estimate right, nuclei moving up to 3 px a frame, crowded colonies) it keeps the estimate
(BENCHMARKS.md, "Tracking"). The choice and every scale's coherence are recorded with the results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["coherence", "choose_diameter", "pick_diameter", "KEEP", "REACH", "STEPS"]

#: the estimate is kept while its coherence is at least this fraction of the best scale's
KEEP = 0.85
#: otherwise the smallest diameter whose coherence is at least this fraction of the best is taken
REACH = 0.95
#: candidate diameters: the estimate times ``2 ** (k / 4)`` for k = 0 .. STEPS (up to 4x)
STEPS = 8


def coherence(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of the objects of two label images matched one-to-one at IoU >= 0.5 (0 when either is empty)."""
    from deepscope.evaluate.segmentation import match_labels

    na, nb = len(np.unique(a[a > 0])), len(np.unique(b[b > 0]))
    if na == 0 or nb == 0:
        return 0.0
    m = match_labels(a, b, threshold=0.5)
    return 2.0 * len(m.true_ids) / (na + nb)


def pick_diameter(curve: Mapping[float, float], estimate: float, *, keep: float = KEEP,
                  reach: float = REACH) -> tuple[float, str]:
    """The diameter to segment a movie at, from each candidate diameter's coherence (``curve``, the estimate one of
    them); returns (diameter, reason)."""
    best = max(curve.values(), default=0.0)
    at_estimate = curve.get(estimate, 0.0)
    if best <= 0.0 or at_estimate >= keep * best:
        return estimate, "estimate"
    d = min(k for k, v in curve.items() if k >= estimate and v >= reach * best)
    return d, "coherence"


def choose_diameter(frames: np.ndarray, run: Callable[..., Any], *, probes: int = 5, pairs: int = 3,
                    max_diameter: float | None = None,
                    progress: Callable[[int, int], None] | None = None) -> tuple[float | None, dict[str, Any]]:
    """One object diameter (pixels) for every frame of a (T, Y, X) movie, or None to keep each frame's own estimate.

    Parameters
    ----------
    frames : (T, Y, X) ndarray
    run : callable
        ``run(frame, diameter=None)`` segments one frame and returns a result with ``labels`` and ``info`` (a
        :class:`~deepscope.tasks.segment.sizing.SegmentInfo`: ``diameter``, ``diameter_source``), as a
        segmentation model's ``run`` does.
    probes : int
        Frames (spread through the movie) whose size estimates give the movie's estimate.
    pairs : int
        Consecutive frame pairs (spread through the movie) the coherence is measured on.
    max_diameter : float, optional
        Largest candidate (default: half the frame's shorter side).
    progress : callable, optional
        ``progress(done, total)`` per segmented frame.

    Returns
    -------
    (float or None, dict)
        The diameter (None: the estimates are coherent, or the model gives none; segment each frame at its own), and
        the record: ``estimate`` (the median), ``estimates`` (per probe frame), ``coherence`` (candidate ->
        coherence), ``diameter``, ``reason`` (``"estimate"``, ``"coherence"`` or ``"no estimate"``) and
        ``frames_segmented`` (the frame segmentations the choice took).
    """
    t_all = int(frames.shape[0])
    cap = float(max_diameter if max_diameter is not None else min(frames.shape[1:3]) / 2.0)
    probe_t = sorted({int(t) for t in np.linspace(0, t_all - 1, min(probes, t_all))})
    pair_t = sorted({int(t) for t in np.linspace(0, t_all - 2, min(pairs, t_all - 1))})
    total = len(probe_t) + 2 * len(pair_t) * (STEPS + 1)
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    estimates = []
    for t in probe_t:
        info = getattr(run(frames[t], diameter=None), "info", None)
        step()
        if info is not None and getattr(info, "diameter_source", None) == "estimated":
            estimates.append(float(info.diameter))
    if not estimates:
        return None, {"reason": "no estimate", "estimates": [], "frames_segmented": done}
    estimate = round(float(np.median(estimates)), 2)
    curve: dict[float, float] = {}
    for k in range(STEPS + 1):
        d = round(estimate * 2 ** (k / 4), 2)
        if d > cap and k > 0:
            break
        scores, found = [], 0
        for t in pair_t:
            a = np.asarray(run(frames[t], diameter=d).labels)
            b = np.asarray(run(frames[t + 1], diameter=d).labels)
            step()
            step()
            found += int(a.max() > 0) + int(b.max() > 0)
            scores.append(coherence(a, b))
        curve[d] = round(float(np.mean(scores)), 4)
        if found == 0:  # larger still finds nothing either
            break
    picked, reason = pick_diameter(curve, estimate)
    chosen = picked if reason == "coherence" else None
    return chosen, {"estimate": estimate, "estimates": [round(e, 2) for e in estimates],
                    "coherence": {str(k): v for k, v in curve.items()}, "diameter": chosen, "reason": reason,
                    "frames_segmented": done}
