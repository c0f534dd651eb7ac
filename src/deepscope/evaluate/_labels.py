"""Label-image checks and the sparse overlap (joint histogram) of two label images.

Private helpers shared by :mod:`deepscope.evaluate` and :mod:`deepscope.measure`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepscope.errors import InputError

__all__ = ["as_labels", "check_same_shape", "consecutive", "joint_histogram"]

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


def consecutive(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relabel a flat non-negative label array to ``0..n`` (0 stays background).

    Returns
    -------
    relabelled : ndarray of intp, same length as ``flat``
    ids : ndarray, (n,)
        The original ids, sorted; ``ids[k - 1]`` is the original id of new label ``k``.
    areas : ndarray of int64, (n,)
        Pixel count of each object.
    """
    if flat.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.int64), np.zeros(0, np.int64)
    top = int(flat.max())
    if top <= max(_LUT_MAX_ID, 2 * flat.size):
        counts = np.bincount(flat.astype(np.intp, copy=False), minlength=top + 1)
        ids = np.flatnonzero(counts)
        ids = ids[ids > 0]
        lut = np.zeros(top + 1, np.intp)
        lut[ids] = np.arange(1, len(ids) + 1)
        return lut[flat], ids.astype(np.int64), counts[ids].astype(np.int64)
    ids, inv, counts = np.unique(flat, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1).astype(np.intp)
    if ids[0] == 0:
        return inv, ids[1:].astype(np.int64), counts[1:].astype(np.int64)
    return inv + 1, ids.astype(np.int64), counts.astype(np.int64)


def joint_histogram(a: np.ndarray, b: np.ndarray, n_a: int, n_b: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel counts of every (a-label, b-label) pair with both labels > 0, computed sparsely.

    ``a`` and ``b`` are flat consecutive label arrays (from :func:`consecutive`) with ``n_a`` and
    ``n_b`` objects. Returns ``(ia, ib, count)`` with 0-based object indices, sorted by
    ``(ia, ib)``. The cost is linear in the number of pixels, whatever the number of objects.
    """
    both = (a > 0) & (b > 0)
    ka = a[both]
    kb = b[both]
    if ka.size == 0:
        empty = np.zeros(0, np.intp)
        return empty, empty, np.zeros(0, np.int64)
    n_pairs = n_a * n_b
    if n_pairs <= max(1 << 22, 4 * ka.size):
        # dense histogram over pair keys is cheap
        keys = (ka - 1) * n_b + (kb - 1)
        hist = np.bincount(keys, minlength=n_pairs)
        nz = np.flatnonzero(hist)
        return (nz // n_b).astype(np.intp), (nz % n_b).astype(np.intp), hist[nz].astype(np.int64)
    from scipy import sparse

    m = sparse.coo_matrix((np.ones(ka.size, np.int64), (ka - 1, kb - 1)), shape=(n_a, n_b)).tocsr()
    m.sum_duplicates()
    m.sort_indices()
    rows = np.repeat(np.arange(n_a, dtype=np.intp), np.diff(m.indptr))
    return rows, m.indices.astype(np.intp), m.data.astype(np.int64)
