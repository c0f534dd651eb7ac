"""Label-image checks and the sparse overlap (joint histogram) of two label images.

Private helpers shared by :mod:`deepscope.evaluate` and :mod:`deepscope.measure`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepscope.errors import InputError

__all__ = ["as_labels", "check_same_shape", "ids_areas", "joint_histogram"]

# Above this id, relabelling through a lookup table would waste memory: fall back to np.unique.
_LUT_MAX_ID = 1 << 20


def as_labels(arr: Any, *, name: str) -> np.ndarray:
    """Return ``arr`` as a non-negative integer array (bool -> 0/1), with clear errors.

    Integer-valued float arrays are accepted (some readers return floats); fractional values,
    negative ids and non-numeric arrays are not.
    """
    a = np.asarray(arr)
    if a.dtype == bool:
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        if a.size and np.issubdtype(a.dtype, np.signedinteger) and a.min() < 0:
            raise InputError(f"{name} has negative values (min {a.min()}); a label image holds 0 for "
                             "background and positive object ids")
        return a
    if np.issubdtype(a.dtype, np.floating):
        if a.size and (not np.all(np.isfinite(a)) or np.any(a != np.round(a))):
            raise InputError(f"{name} has dtype {a.dtype} with non-integer values; expected a label image "
                             "(integers, 0 = background). Label a mask first, e.g. scipy.ndimage.label(mask)")
        if a.size and a.min() < 0:
            raise InputError(f"{name} has negative values (min {a.min()}); a label image holds 0 for "
                             "background and positive object ids")
        return a.astype(np.int64)
    raise InputError(f"{name} has dtype {a.dtype}; expected an integer label image (0 = background)")


def check_same_shape(a: np.ndarray, b: np.ndarray, *, names: tuple[str, str]) -> None:
    """Raise :class:`InputError` naming both arrays when their shapes differ."""
    if a.shape != b.shape:
        raise InputError(f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; "
                         "they must have the same shape (same image, same size)")


def ids_areas(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted non-zero ids of a flat non-negative label array and their pixel counts."""
    if flat.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    top = int(flat.max())
    if top <= max(_LUT_MAX_ID, 2 * flat.size):
        counts = np.bincount(flat.astype(np.intp, copy=False), minlength=top + 1)
        ids = np.flatnonzero(counts)
        ids = ids[ids > 0]
        return ids.astype(np.int64), counts[ids].astype(np.int64)
    ids, counts = np.unique(flat, return_counts=True)
    keep = ids > 0
    return ids[keep].astype(np.int64), counts[keep].astype(np.int64)


def joint_histogram(a: np.ndarray, b: np.ndarray, a_ids: np.ndarray, b_ids: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel counts of every (a-object, b-object) pair that overlaps, computed sparsely.

    ``a`` and ``b`` are flat label arrays of the same length; ``a_ids`` and ``b_ids`` their sorted
    non-zero ids (from :func:`ids_areas`). Returns ``(ia, ib, count)``: indices into ``a_ids``
    and ``b_ids`` of every overlapping pair, sorted by ``(ia, ib)``, and the shared pixel count.

    The cost is linear in the number of pixels whatever the number of objects: the pixels where
    both images have an object are run-length encoded in raster order (objects are compact, so
    runs are long), and only the runs are histogrammed.
    """
    both = (a > 0) & (b > 0)
    ka = a[both]
    kb = b[both]
    n = ka.size
    if n == 0:
        empty = np.zeros(0, np.intp)
        return empty, empty, np.zeros(0, np.int64)
    change = np.empty(n, bool)
    change[0] = True
    np.not_equal(ka[1:], ka[:-1], out=change[1:])
    change[1:] |= kb[1:] != kb[:-1]
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, n))
    ia = np.searchsorted(a_ids, ka[starts])
    ib = np.searchsorted(b_ids, kb[starts])
    n_b = len(b_ids)
    keys = ia.astype(np.int64) * n_b + ib
    n_pairs = len(a_ids) * n_b
    if n_pairs <= max(1 << 20, 4 * keys.size):
        hist = np.bincount(keys, weights=lengths, minlength=n_pairs)
        nz = np.flatnonzero(hist)
        counts = hist[nz]
    else:
        nz, inv = np.unique(keys, return_inverse=True)
        counts = np.bincount(inv.reshape(-1), weights=lengths, minlength=len(nz))
    return (nz // n_b).astype(np.intp), (nz % n_b).astype(np.intp), np.rint(counts).astype(np.int64)
