"""The Cell Tracking Challenge (CTC) format: label stacks + a track table ``L B E P``.

A CTC sequence stores, per frame, a uint16 label image whose label is the *track id* (``mask000.tif`` ... in a
result folder, ``TRA/man_track000.tif`` in ground truth), and one text file (``res_track.txt`` /
``man_track.txt``) with one line per track: ``L B E P`` = label, first frame, last frame, parent label (0 = no
parent). A track is present in every frame from B to E; a cell that divides ends its track and each daughter
starts one with the mother as parent; a cell lost for a few frames continues as a new track whose parent is
the one before the gap.

Examples
--------
>>> import numpy as np
>>> lab = np.zeros((3, 8, 8), np.int32)
>>> lab[0, 1:3, 1:3] = 1; lab[1, 1:3, 1:3] = 1; lab[2, 1:3, 1:3] = 2; lab[2, 5:7, 5:7] = 3
>>> tracks_from_labels(lab, {2: 1, 3: 1}).tolist()
[[1, 0, 1, 0], [2, 2, 2, 1], [3, 2, 2, 1]]
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from deepscope.errors import InputError

__all__ = ["mask_names", "tracks_from_labels", "check_tracks", "count_divisions", "write_ctc_result",
           "write_ctc_ground_truth", "read_ctc_tracks", "read_ctc_labels", "write_track_table"]


def mask_names(n_frames: int, prefix: str = "mask") -> list[str]:
    """CTC file names of ``n_frames`` frames: ``mask000.tif`` ... (4 digits from 1000 frames on)."""
    digits = max(3, len(str(max(n_frames - 1, 0))))
    return [f"{prefix}{t:0{digits}d}.tif" for t in range(n_frames)]


def tracks_from_labels(labels: np.ndarray, parents: Mapping[int, int] | None = None) -> np.ndarray:
    """The CTC track table ``L B E P`` of a (T, Y, X) stack whose labels are track ids.

    Parameters
    ----------
    labels : (T, Y, X) integer ndarray
        Label = track id, 0 = background; each track must be present in every frame from its first to its last.
    parents : mapping of int to int, optional
        Track id -> parent track id (tracks not listed have no parent).

    Returns
    -------
    (N, 4) int64 ndarray
        ``L B E P`` sorted by label.

    Raises
    ------
    deepscope.errors.InputError
        If the stack is not 3-D or a track is missing from a frame between its first and last.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise InputError(f"labels must be a (T, Y, X) stack; got shape {labels.shape}")
    present: dict[int, list[int]] = {}
    for t in range(labels.shape[0]):
        for lab in np.unique(labels[t]):
            if lab:
                present.setdefault(int(lab), []).append(t)
    parents = dict(parents or {})
    rows = []
    for lab in sorted(present):
        frames = present[lab]
        if frames[-1] - frames[0] + 1 != len(frames):
            missing = sorted(set(range(frames[0], frames[-1] + 1)) - set(frames))
            raise InputError(f"track {lab} is missing from frame(s) {missing[:5]} between its first ({frames[0]}) "
                             f"and last ({frames[-1]}) frame; in the CTC format a gap starts a new track")
        rows.append([lab, frames[0], frames[-1], int(parents.get(lab, 0))])
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def check_tracks(tracks: np.ndarray, n_frames: int | None = None) -> np.ndarray:
    """Validate a CTC track table (unique labels in 1..65535, B <= E, parents exist and end before the child starts).

    Raises
    ------
    deepscope.errors.InputError
        Naming the first bad line.
    """
    t = np.asarray(tracks, dtype=np.int64).reshape(-1, 4)
    ends = {int(r[0]): int(r[2]) for r in t}
    if len(ends) != len(t):
        raise InputError("the track table has repeated labels (L must be unique)")
    for lab, b, e, p in t.tolist():
        if not 0 < lab < 65536:
            raise InputError(f"track label {lab} is outside 1..65535 (CTC masks are uint16)")
        if e < b or b < 0 or (n_frames is not None and e >= n_frames):
            raise InputError(f"track {lab}: frames {b}..{e} are not a valid range"
                             + (f" in a movie of {n_frames} frames" if n_frames is not None else ""))
        if p and (p not in ends or ends[p] >= b):
            raise InputError(f"track {lab}: parent {p} is missing or does not end before frame {b}")
    return t


def count_divisions(tracks: np.ndarray) -> int:
    """Divisions in a CTC ``L B E P`` table: the mothers (``P`` of some track) with two daughters."""
    t = np.asarray(tracks).reshape(-1, 4)
    p = t[:, 3][t[:, 3] > 0]
    _, counts = np.unique(p, return_counts=True)
    return int((counts == 2).sum())


def write_track_table(path: str | os.PathLike[str], tracks: np.ndarray) -> Path:
    """Write an ``L B E P`` table (one track a line, space-separated), atomically."""
    from deepscope.io.writers import write_text

    t = np.asarray(tracks, dtype=np.int64).reshape(-1, 4)
    return write_text(path, "".join(f"{a} {b} {c} {d}\n" for a, b, c, d in t.tolist()))


def _write_stack(folder: Path, labels: np.ndarray, names: list[str]) -> None:
    from deepscope.io.writers import write_tiff

    for t, name in enumerate(names):
        write_tiff(folder / name, labels[t].astype(np.uint16), compression="zlib")


def _check_stack(labels: np.ndarray, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels must be an integer (T, Y, X) stack; got {labels.dtype} of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise InputError("CTC labels must be in 0..65535 (uint16 masks)")
    return labels, check_tracks(tracks, labels.shape[0])


def write_ctc_result(folder: str | os.PathLike[str], labels: np.ndarray, tracks: np.ndarray) -> Path:
    """Write a CTC *result* folder: ``mask000.tif`` ... (uint16, label = track id) and ``res_track.txt``.

    Raises
    ------
    deepscope.errors.InputError
        If the stack or the table is not valid CTC.
    """
    labels, tracks = _check_stack(labels, tracks)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _write_stack(folder, labels, mask_names(labels.shape[0]))
    write_track_table(folder / "res_track.txt", tracks)
    return folder


def write_ctc_ground_truth(folder: str | os.PathLike[str], labels: np.ndarray, tracks: np.ndarray, *,
                           frames: np.ndarray | None = None, name: str = "01") -> Path:
    """Write a CTC *ground-truth* sequence: ``<name>_GT/TRA`` (``man_track000.tif`` ..., ``man_track.txt``) and
    ``<name>_GT/SEG`` (``man_seg000.tif`` ..., every frame); with ``frames``, the images as ``<name>/t000.tif``.

    Returns
    -------
    pathlib.Path
        The ``<name>_GT`` folder (what ``evaluate track`` takes as GT).
    """
    from deepscope.io.writers import write_tiff

    labels, tracks = _check_stack(labels, tracks)
    folder = Path(folder)
    gt = folder / f"{name}_GT"
    (gt / "TRA").mkdir(parents=True, exist_ok=True)
    (gt / "SEG").mkdir(parents=True, exist_ok=True)
    n = labels.shape[0]
    _write_stack(gt / "TRA", labels, mask_names(n, "man_track"))
    _write_stack(gt / "SEG", labels, mask_names(n, "man_seg"))
    write_track_table(gt / "TRA" / "man_track.txt", tracks)
    if frames is not None:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for t, fname in enumerate(mask_names(n, "t")):
            write_tiff(folder / name / fname, np.asarray(frames[t]), compression="zlib")
    return gt


def read_ctc_tracks(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an ``L B E P`` table (``res_track.txt`` / ``man_track.txt``) as an (N, 4) int64 array.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    deepscope.errors.InputError
        If a line does not hold four integers.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"No such track table: '{p}'")
    rows = []
    for i, line in enumerate(p.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            vals = [int(v) for v in parts]
        except ValueError:
            vals = []
        if len(vals) != 4:
            raise InputError(f"{p}, line {i}: expected four integers 'L B E P', found {line.strip()!r}")
        rows.append(vals)
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def read_ctc_labels(folder: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a CTC result folder (``mask*.tif`` + ``res_track.txt``) or a ground-truth ``TRA`` folder
    (``man_track*.tif`` + ``man_track.txt``; a ``*_GT`` folder is looked into): ``(labels (T, Y, X) int32, tracks)``.

    Raises
    ------
    FileNotFoundError
        If the folder or its track table does not exist.
    deepscope.errors.InputError
        If it holds no mask files.
    """
    import tifffile

    folder = Path(folder)
    if (folder / "TRA").is_dir():
        folder = folder / "TRA"
    if not folder.is_dir():
        raise FileNotFoundError(f"No such CTC folder: '{folder}'")
    for prefix, table in (("mask", "res_track.txt"), ("man_track", "man_track.txt")):
        files = sorted(f for f in folder.glob(f"{prefix}*.tif") if f.stem[len(prefix):].isdigit())
        if files:
            labels = np.stack([tifffile.imread(f) for f in files]).astype(np.int32)
            return labels, read_ctc_tracks(folder / table)
    raise InputError(f"{folder} holds no CTC masks (mask000.tif ... or man_track000.tif ...)")
