"""Seeded dataset splitters: random, by group (field of view) and stratified.

Every splitter is deterministic for a seed. :class:`GroupSplitter` never puts one group
(e.g. one BBBC005 simulated field, shared by every blur level and stain) into two parts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepscope.data.dataset import ImageDataset
from deepscope.errors import InputError

__all__ = ["Splitter", "RandomSplitter", "GroupSplitter", "StratifiedSplitter", "SPLITTERS", "get_splitter",
           "appearance_groups"]

Seed = int | np.random.Generator | None


def _check_fracs(fracs: Sequence[float]) -> np.ndarray:
    f = np.asarray(fracs, dtype=float)
    if np.any(f < 0) or not np.isclose(f.sum(), 1.0, atol=1e-6):
        raise InputError(f"split fractions must be >= 0 and sum to 1; got {tuple(float(x) for x in f)} "
                         f"(sum {f.sum():.4f})")
    return f


def _largest_remainder(n: int, fracs: np.ndarray) -> np.ndarray:
    raw = fracs * n
    counts = np.floor(raw).astype(int)
    rest = n - counts.sum()
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts


class Splitter:
    """Base class: subclasses implement :meth:`assign` (part index for every sample)."""

    def assign(self, dataset: ImageDataset, fracs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def split(self, dataset: ImageDataset, frac_train: float = 0.8, frac_valid: float = 0.1,
              frac_test: float = 0.1, seed: Seed = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return sorted index arrays ``(train, valid, test)``.

        Raises
        ------
        deepscope.errors.InputError
            If fractions are negative or do not sum to 1.
        """
        fracs = _check_fracs([frac_train, frac_valid, frac_test])
        part = self.assign(dataset, fracs, np.random.default_rng(seed))
        return tuple(np.flatnonzero(part == k) for k in range(3))  # type: ignore[return-value]

    def train_valid_test_split(self, dataset: ImageDataset, frac_train: float = 0.8, frac_valid: float = 0.1,
                               frac_test: float = 0.1, seed: Seed = None
                               ) -> tuple[ImageDataset, ImageDataset, ImageDataset]:
        """Split into train, validation and test datasets.

        Examples
        --------
        >>> import numpy as np
        >>> ds = ImageDataset(np.zeros((10, 2, 2)))
        >>> tr, va, te = RandomSplitter().train_valid_test_split(ds, seed=0)
        >>> len(tr), len(va), len(te)
        (8, 1, 1)
        """
        tr, va, te = self.split(dataset, frac_train, frac_valid, frac_test, seed)
        return dataset.select(tr), dataset.select(va), dataset.select(te)

    def train_test_split(self, dataset: ImageDataset, frac_train: float = 0.8, seed: Seed = None
                         ) -> tuple[ImageDataset, ImageDataset]:
        """Split into train and test datasets."""
        tr, _, te = self.split(dataset, frac_train, 0.0, 1.0 - frac_train, seed)
        return dataset.select(tr), dataset.select(te)

    def k_fold_indices(self, dataset: ImageDataset, k: int, seed: Seed = None) -> list[np.ndarray]:
        """Return ``k`` disjoint index arrays covering the dataset (one per fold)."""
        if k < 2:
            raise InputError(f"k must be >= 2 for k-fold splitting, got {k}")
        part = self.assign(dataset, np.full(k, 1.0 / k), np.random.default_rng(seed))
        return [np.flatnonzero(part == j) for j in range(k)]

    def k_fold_split(self, dataset: ImageDataset, k: int, seed: Seed = None
                     ) -> list[tuple[ImageDataset, ImageDataset]]:
        """Return ``k`` ``(train, validation)`` pairs; each sample is validated exactly once."""
        folds = self.k_fold_indices(dataset, k, seed)
        out = []
        for j in range(k):
            train = np.sort(np.concatenate([folds[i] for i in range(k) if i != j]))
            out.append((dataset.select(train), dataset.select(folds[j])))
        return out


class RandomSplitter(Splitter):
    """Split samples at random. Leaks when several images show the same field: prefer
    :class:`GroupSplitter` for BBBC005-like sets."""

    def assign(self, dataset: ImageDataset, fracs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(dataset)
        counts = _largest_remainder(n, fracs)
        part = np.repeat(np.arange(len(fracs)), counts)
        return part[np.argsort(rng.permutation(n))] if n else part


def _group_keys(dataset: ImageDataset, by: Any) -> np.ndarray:
    n = len(dataset)
    if callable(by):
        md = dataset.metadata
        return np.asarray([str(by(row)) for _, row in md.iterrows()], dtype=object)
    if isinstance(by, str) or (isinstance(by, tuple) and all(isinstance(b, str) for b in by)):
        cols = [by] if isinstance(by, str) else list(by)
        md = dataset.metadata
        missing = [c for c in cols if c not in md.columns]
        if missing:
            raise InputError(f"no metadata column {missing[0]!r} to group/stratify by; columns are "
                             f"{list(md.columns)}. Use a file-name pattern that parses it, or pass an array")
        if md[cols].isna().any().any():
            raise InputError(f"metadata column(s) {cols} have missing values; every image needs a group")
        if len(cols) == 1:
            return md[cols[0]].astype(str).to_numpy(dtype=object)
        return md[cols].astype(str).agg("|".join, axis=1).to_numpy(dtype=object)
    arr = np.asarray(by)
    if arr.shape[:1] != (n,):
        raise InputError(f"`by` array has {len(arr)} entries but the dataset has {n} images")
    return arr.astype(str).astype(object)


def _assign_groups(sizes: np.ndarray, fracs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Assign groups (with these sizes) to parts so part sizes approach the fractions."""
    g = len(sizes)
    total = sizes.sum()
    target = fracs * total
    filled = np.zeros(len(fracs))
    out = np.zeros(g, dtype=int)
    active = fracs > 0
    for gi in rng.permutation(g):
        deficit = np.where(active, target - filled, -np.inf)
        # relative deficit keeps small parts from being starved by large ones
        rel = np.where(active, deficit / np.maximum(target, 1e-12), -np.inf)
        k = int(np.argmax(rel))
        out[gi] = k
        filled[k] += sizes[gi]
    return out


class GroupSplitter(Splitter):
    """Split by group so that no group is in two parts, ever.

    Parameters
    ----------
    by : str, tuple of str, callable or array-like, default "field"
        Metadata column(s) naming the group (BBBC005's pattern derives ``field``), a function of
        a metadata row, or one group key per image.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> md = pd.DataFrame({"field": ["a", "a", "b", "b", "c", "c", "d", "d", "e", "e"]})
    >>> ds = ImageDataset(np.zeros((10, 2, 2)), metadata=md)
    >>> tr, va, te = GroupSplitter(by="field").split(ds, 0.6, 0.2, 0.2, seed=1)
    >>> set(md.field[tr]) & set(md.field[te])
    set()
    """

    def __init__(self, by: str | tuple[str, ...] | Callable[[Any], Any] | Any = "field") -> None:
        self.by = by

    def assign(self, dataset: ImageDataset, fracs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        keys = _group_keys(dataset, self.by)
        uniq, inv = np.unique(keys.astype(str), return_inverse=True)
        sizes = np.bincount(inv, minlength=len(uniq))
        gpart = _assign_groups(sizes, fracs, rng)
        return gpart[inv]


class StratifiedSplitter(Splitter):
    """Split so every part has the same distribution of a label or metadata column.

    Parameters
    ----------
    by : str or array-like, default "y"
        ``"y"`` for the dataset's value labels, a metadata column, or one value per image.
    bins : int or sequence of float, optional
        Numeric values are put into this many quantile bins (or these bin edges); by default
        every distinct value is its own stratum when there are at most 50, else 10 quantile bins.
    group_by : str, tuple of str or array-like, optional
        Also keep groups whole (e.g. ``"field"``): whole groups are stratified by their mean value.

    Examples
    --------
    >>> import numpy as np
    >>> ds = ImageDataset(np.zeros((20, 2, 2)), y=np.repeat([1, 50], 10))
    >>> tr, va, te = StratifiedSplitter().split(ds, 0.5, 0.0, 0.5, seed=0)
    >>> sorted(np.bincount(ds.y[tr] == 50))
    [5, 5]
    """

    def __init__(self, by: Any = "y", bins: int | Sequence[float] | None = None,
                 group_by: Any = None) -> None:
        self.by = by
        self.bins = bins
        self.group_by = group_by

    def _values(self, dataset: ImageDataset) -> np.ndarray:
        if isinstance(self.by, str) and self.by == "y":
            if dataset.label_kind != "value":
                raise InputError("StratifiedSplitter(by='y') needs value labels; name a metadata column instead")
            return np.asarray(dataset.y)
        if isinstance(self.by, str):
            md = dataset.metadata
            if self.by not in md.columns:
                raise InputError(f"no metadata column {self.by!r} to stratify by; columns are {list(md.columns)}")
            return md[self.by].to_numpy()
        arr = np.asarray(self.by)
        if len(arr) != len(dataset):
            raise InputError(f"`by` has {len(arr)} values for {len(dataset)} images")
        return arr

    def _strata(self, values: np.ndarray) -> np.ndarray:
        numeric = np.issubdtype(np.asarray(values).dtype, np.number)
        if not numeric:
            return np.unique(values.astype(str), return_inverse=True)[1]
        v = values.astype(float)
        if self.bins is None:
            if len(np.unique(v)) <= 50:
                return np.unique(v, return_inverse=True)[1]
            bins: Any = 10
        else:
            bins = self.bins
        if isinstance(bins, int):
            if bins < 1:
                raise InputError(f"bins must be >= 1, got {bins}")
            edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1)))
        else:
            edges = np.asarray(bins, dtype=float)
        return np.clip(np.searchsorted(edges, v, side="right") - 1, 0, max(len(edges) - 2, 0))

    def assign(self, dataset: ImageDataset, fracs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        values = self._values(dataset)
        n = len(dataset)
        if self.group_by is None:
            strata = self._strata(values)
            part = np.zeros(n, dtype=int)
            for s in np.unique(strata):
                members = np.flatnonzero(strata == s)
                counts = _largest_remainder(len(members), fracs)
                labels = np.repeat(np.arange(len(fracs)), counts)
                part[rng.permutation(members)] = labels
            return part
        keys = _group_keys(dataset, self.group_by)
        uniq, inv = np.unique(keys.astype(str), return_inverse=True)
        if np.issubdtype(np.asarray(values).dtype, np.number):
            gval = np.array([np.mean(values[inv == g].astype(float)) for g in range(len(uniq))])
        else:
            gval = np.array([values[inv == g][0] for g in range(len(uniq))], dtype=object)
        gstrata = self._strata(gval)
        sizes = np.bincount(inv, minlength=len(uniq))
        gpart = np.zeros(len(uniq), dtype=int)
        for s in np.unique(gstrata):
            members = np.flatnonzero(gstrata == s)
            gpart[members] = _assign_groups(sizes[members], fracs, rng)
        return gpart[inv]


#: Splitter names accepted by the CLI (``--split``).
SPLITTERS = ("random", "field", "group", "stratified")


def get_splitter(name: str, *, by: Any = None) -> Splitter:
    """Return a splitter by CLI name: ``random``, ``field`` (group by field), ``group`` or ``stratified``."""
    if name == "random":
        return RandomSplitter()
    if name == "field":
        return GroupSplitter(by=by or "field")
    if name == "group":
        if by is None:
            raise InputError("split 'group' needs the metadata column to group by")
        return GroupSplitter(by=by)
    if name == "stratified":
        return StratifiedSplitter(by=by or "y")
    raise InputError(f"unknown split {name!r}; choose one of {SPLITTERS}")


def appearance_groups(images: Sequence[np.ndarray], *, distance: float = 15.0) -> np.ndarray:
    """Group images that look as if they came from one slide or section (for :class:`GroupSplitter`).

    Tissue tiles cut from one section share its stain colours. Each image is described by the mean
    colour of its brightest 20% (background) and darkest 10% (stain) pixels, in the image's own
    intensity units, and images are grouped by average-linkage clustering cut at ``distance``. Use
    it when tiles carry no section id, so validation tiles never share a section with training tiles.

    Parameters
    ----------
    images : sequence of (H, W) or (H, W, C) arrays
        On one intensity scale (e.g. all uint8).
    distance : float
        Cut height of the clustering (Euclidean distance between descriptors).

    Returns
    -------
    numpy.ndarray of int, one group id (from 1) per image.

    Examples
    --------
    >>> a = np.full((8, 8, 3), 200, np.uint8); b = np.full((8, 8, 3), 30, np.uint8)
    >>> appearance_groups([a, a, b]).tolist()
    [1, 1, 2]
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    feats = []
    for im in images:
        x = np.asarray(im, dtype=np.float64)
        if x.ndim == 2:
            x = x[..., None]
        bright = x.mean(-1)
        hi = x[bright >= np.percentile(bright, 80)].mean(0)
        lo = x[bright <= np.percentile(bright, 10)].mean(0)
        feats.append(np.concatenate([hi, lo]))
    if len(feats) < 2:
        return np.ones(len(feats), dtype=int)
    return fcluster(linkage(np.array(feats), "average"), distance, "distance").astype(int)
