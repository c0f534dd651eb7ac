"""ImageDataset: images (lazy paths or in-memory arrays) with labels, weights, ids and metadata."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from deepscope.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ImageDataset", "Sample", "Batch", "BATCH_POLICIES", "LABEL_KINDS"]

#: How :meth:`ImageDataset.iterbatches` combines images of different sizes.
BATCH_POLICIES = ("stack", "list", "pad", "crop")
#: What ``y`` holds: nothing, one value (or vector) per image, a label image per image, or a
#: target image per image (image-to-image pairs).
LABEL_KINDS = (None, "value", "mask", "image")


class Sample(NamedTuple):
    """One sample: image, label, weight, id."""

    X: np.ndarray
    y: Any
    w: float
    id: str


class Batch(NamedTuple):
    """A batch: images, labels, weights, ids (arrays, or lists under the ``"list"`` policy)."""

    X: Any
    y: Any
    w: np.ndarray
    ids: np.ndarray


def _read_pixels(path: str) -> np.ndarray:
    from deepscope.io import read_image

    return read_image(path, checksum=False).data


class ImageDataset:
    """A set of images with optional labels, weights, ids and a metadata table.

    Images are either *lazy* (file paths, read when accessed) or *in memory* (arrays).
    Images of different sizes are allowed; nothing is padded or cropped unless a batch
    policy asks for it.

    Parameters
    ----------
    X : sequence of str/PathLike, numpy.ndarray (N, H, W[, C]) or sequence of numpy.ndarray
        File paths (lazy) or pixel arrays (in memory).
    y : array-like, sequence of paths or arrays, optional
        Labels: one value (or vector) per image, or one label/target image per image
        (paths are read lazily).
    w : array-like of float, optional
        Per-sample weights; ones by default.
    ids : array-like of str, optional
        Sample identifiers; file names for lazy datasets, ``"0", "1", ...`` otherwise.
    metadata : pandas.DataFrame, optional
        One row per image (parsed file-name fields, CSV columns ...).
    label_kind : {None, "value", "mask", "image"}, optional
        What ``y`` holds; inferred when omitted (values for numbers, masks for paths/arrays).

    Raises
    ------
    deepscope.errors.InputError
        If ``y``, ``w``, ``ids`` or ``metadata`` do not have one entry per image.

    Examples
    --------
    >>> import numpy as np
    >>> ds = ImageDataset(np.zeros((4, 8, 8), np.uint8), y=np.array([1, 2, 3, 4]))
    >>> len(ds), ds.y.tolist()
    (4, [1, 2, 3, 4])
    >>> [b.X.shape for b in ds.iterbatches(3)]
    [(3, 8, 8), (1, 8, 8)]
    """

    def __init__(self, X: Any, y: Any = None, w: Any = None, ids: Any = None,
                 metadata: pd.DataFrame | None = None, *, label_kind: str | None = None) -> None:
        import pandas as pd

        self._lazy = _is_path_list(X)
        if self._lazy:
            self._x: list[Any] = [os.fspath(p) for p in X]
        elif isinstance(X, np.ndarray):
            if X.ndim < 2:
                raise InputError(f"X must hold images (at least 2-D per image); got an array of shape {X.shape}")
            self._x = list(X)
        else:
            self._x = [np.asarray(a) for a in X]
        n = len(self._x)

        if label_kind not in LABEL_KINDS:
            raise InputError(f"label_kind={label_kind!r} is not one of {LABEL_KINDS}")
        if y is None:
            self._y: Any = None
            label_kind = None
        else:
            if label_kind is None:
                label_kind = "mask" if (_is_path_list(y) or _is_image_list(y)) else "value"
            if label_kind == "value":
                self._y = np.asarray(y)
                if self._y.ndim == 0 or len(self._y) != n:
                    raise InputError(f"labels have {np.size(self._y)} entries but there are {n} images; "
                                     "give one label per image, in the same order")
            else:
                self._y = [os.fspath(v) if isinstance(v, (str, os.PathLike)) else np.asarray(v) for v in y]
                if len(self._y) != n:
                    raise InputError(f"{len(self._y)} label images for {n} images; they must pair one to one")
        self._label_kind = label_kind

        self._w = np.ones(n, dtype=np.float32) if w is None else np.asarray(w, dtype=np.float32)
        if self._w.shape[:1] != (n,):
            raise InputError(f"weights have {len(self._w)} entries but there are {n} images")
        if ids is None:
            ids = [Path(p).name for p in self._x] if self._lazy else [str(i) for i in range(n)]
        self._ids = np.asarray([str(i) for i in ids], dtype=object)
        if len(self._ids) != n:
            raise InputError(f"ids have {len(self._ids)} entries but there are {n} images")
        if metadata is None:
            metadata = pd.DataFrame({"path": self._x} if self._lazy else {"id": self._ids})
        else:
            metadata = metadata.reset_index(drop=True)
            if len(metadata) != n:
                raise InputError(f"metadata has {len(metadata)} rows but there are {n} images")
        self._metadata = metadata
        self.skipped: list[tuple[str, str]] = []

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self._x)

    def __repr__(self) -> str:
        kind = "lazy" if self._lazy else "in-memory"
        return (f"ImageDataset({len(self)} images, {kind}, labels={self._label_kind}, "
                f"metadata columns={list(self._metadata.columns)})")

    @property
    def is_lazy(self) -> bool:
        """True when images are file paths read on access."""
        return self._lazy

    @property
    def label_kind(self) -> str | None:
        """``None``, ``"value"``, ``"mask"`` or ``"image"``."""
        return self._label_kind

    @property
    def paths(self) -> list[str] | None:
        """The image file paths of a lazy dataset (None for in-memory data)."""
        return list(self._x) if self._lazy else None

    @property
    def label_paths(self) -> list[str] | None:
        """Paths of the label/target images when they are lazy, else None."""
        if self._label_kind in ("mask", "image") and all(isinstance(v, str) for v in self._y):
            return list(self._y)
        return None

    @property
    def ids(self) -> np.ndarray:
        return self._ids.copy()

    @property
    def w(self) -> np.ndarray:
        return self._w.copy()

    @property
    def metadata(self) -> pd.DataFrame:
        """One row per image; a copy, so edits do not change the dataset."""
        return self._metadata.copy()

    @property
    def X(self) -> np.ndarray | list[np.ndarray]:
        """All images: an array ``(N, H, W[, C])`` when sizes agree, else a list of arrays."""
        return _stack_or_list([self.get_image(i) for i in range(len(self))])

    @property
    def y(self) -> Any:
        """Labels: an array of values, or label/target images (array when sizes agree, else list)."""
        if self._y is None:
            return None
        if self._label_kind == "value":
            return self._y.copy()
        return _stack_or_list([self.get_label(i) for i in range(len(self))])

    def get_image(self, i: int) -> np.ndarray:
        """Pixels of image ``i`` (read from disk for a lazy dataset)."""
        x = self._x[i]
        return _read_pixels(x) if isinstance(x, str) else x

    def get_label(self, i: int) -> Any:
        """Label of image ``i``: a value, or a label/target image (int32 for masks)."""
        if self._y is None:
            return None
        if self._label_kind == "value":
            return self._y[i]
        v = self._y[i]
        arr = _read_pixels(v) if isinstance(v, str) else v
        if self._label_kind == "mask":
            if arr.dtype == bool:
                return arr
            if not np.issubdtype(arr.dtype, np.integer):
                raise InputError(f"mask for image {self._ids[i]!r} has dtype {arr.dtype}; label images must "
                                 "be integer (0 = background) or bool")
            return arr.astype(np.int32, copy=False)
        return arr

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"index {i} out of range for a dataset of {len(self)} images")
            i %= len(self)
            return Sample(self.get_image(i), self.get_label(i), float(self._w[i]), str(self._ids[i]))
        return self.select(key)

    # ------------------------------------------------------------------ subsets
    def select(self, indices: Any) -> ImageDataset:
        """Return a new dataset with the given indices (ints, a slice, or a boolean mask), in that order."""
        idx = self._indices(indices)
        y = None
        if self._y is not None:
            y = self._y[idx] if self._label_kind == "value" else [self._y[i] for i in idx]
        out = ImageDataset([self._x[i] for i in idx] if self._lazy else [self._x[i] for i in idx],
                           y=y, w=self._w[idx], ids=self._ids[idx],
                           metadata=self._metadata.iloc[idx].reset_index(drop=True),
                           label_kind=self._label_kind)
        return out

    def where(self, **conditions: Any) -> ImageDataset:
        """Select images whose metadata columns equal the given values (or are in given lists).

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> ds = ImageDataset(np.zeros((3, 2, 2)), metadata=pd.DataFrame({"blur": [1, 48, 48]}))
        >>> len(ds.where(blur=48))
        2
        """
        md = self._metadata
        mask = np.ones(len(self), dtype=bool)
        for col, val in conditions.items():
            if col not in md.columns:
                raise InputError(f"no metadata column {col!r}; columns are {list(md.columns)}")
            vals = val if isinstance(val, (list, tuple, set)) else [val]
            mask &= md[col].isin(list(vals)).to_numpy()
        return self.select(mask)

    def _indices(self, key: Any) -> np.ndarray:
        n = len(self)
        if isinstance(key, slice):
            return np.arange(n)[key]
        arr = np.asarray(key)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise InputError(f"boolean selection has {arr.size} entries for {n} images")
            return np.flatnonzero(arr)
        if arr.size == 0:
            return np.zeros(0, dtype=int)
        if not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"select() takes integer indices, a slice or a boolean mask; got dtype {arr.dtype}")
        arr = arr.ravel()
        if arr.max() >= n or arr.min() < -n:
            raise IndexError(f"index out of range for a dataset of {n} images")
        return arr % n

    # ------------------------------------------------------------------ iteration
    def itersamples(self) -> Iterator[Sample]:
        """Yield every sample in order as ``Sample(X, y, w, id)``."""
        for i in range(len(self)):
            yield self[i]

    def iterbatches(self, batch_size: int = 32, *, shuffle: bool = False,
                    seed: int | np.random.Generator | None = None, policy: str = "stack",
                    epochs: int = 1, drop_last: bool = False) -> Iterator[Batch]:
        """Yield batches ``Batch(X, y, w, ids)``.

        Parameters
        ----------
        batch_size : int, default 32
        shuffle : bool, default False
            Shuffle the order each epoch (seeded by ``seed``).
        seed : int or numpy.random.Generator, optional
        policy : {"stack", "list", "pad", "crop"}, default "stack"
            How images of different sizes are combined: ``"stack"`` requires equal sizes (error
            otherwise), ``"list"`` returns lists, ``"pad"`` zero-pads to the largest size in the
            batch (bottom/right), ``"crop"`` centre-crops to the smallest. Label images follow the
            same policy.
        epochs : int, default 1
        drop_last : bool, default False

        Raises
        ------
        deepscope.errors.InputError
            For an unknown ``policy``, or sizes that differ under ``"stack"``.
        """
        if policy not in BATCH_POLICIES:
            raise InputError(f"policy={policy!r} is not one of {BATCH_POLICIES}")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        rng = np.random.default_rng(seed)
        n = len(self)
        for _ in range(epochs):
            order = rng.permutation(n) if shuffle else np.arange(n)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                if drop_last and len(idx) < batch_size:
                    break
                xs = [self.get_image(int(i)) for i in idx]
                X = _combine(xs, policy, what="images")
                if self._y is None:
                    y = None
                elif self._label_kind == "value":
                    y = self._y[idx]
                else:
                    y = _combine([self.get_label(int(i)) for i in idx], policy, what="label images")
                yield Batch(X, y, self._w[idx], self._ids[idx])

    # ------------------------------------------------------------------ conversions
    def to_memory(self) -> ImageDataset:
        """Return an in-memory copy (images and label images read now)."""
        y = None
        if self._y is not None:
            y = self._y.copy() if self._label_kind == "value" else [self.get_label(i) for i in range(len(self))]
        md = self._metadata.copy()
        return ImageDataset([self.get_image(i) for i in range(len(self))], y=y, w=self._w.copy(),
                            ids=self._ids.copy(), metadata=md, label_kind=self._label_kind)

    def to_dataframe(self) -> pd.DataFrame:
        """Metadata with ``id``, ``w`` and (for value labels) ``y`` columns."""
        df = self.metadata
        df.insert(0, "id", self._ids)
        df["w"] = self._w
        if self._label_kind == "value":
            y = self._y
            if y.ndim == 1:
                df["y"] = y
            else:
                for j in range(y.shape[1]):
                    df[f"y{j}"] = y[:, j]
        elif self.label_paths is not None:
            df["label_path"] = self.label_paths
        return df

    @classmethod
    def from_numpy(cls, X: Any, y: Any = None, w: Any = None, ids: Any = None) -> ImageDataset:
        """Build an in-memory dataset from arrays (DeepChem's ``NumpyDataset`` shape of API)."""
        return cls(X, y=y, w=w, ids=ids)


def _is_path_list(v: Any) -> bool:
    if isinstance(v, (str, os.PathLike)):
        raise InputError("pass a list of paths, not a single path; use ImageLoader to scan a folder")
    if isinstance(v, np.ndarray):
        return v.dtype.kind in "UO" and v.ndim == 1 and all(isinstance(e, (str, os.PathLike)) for e in v)
    try:
        items = list(v)
    except TypeError as exc:
        raise InputError(f"expected a sequence of images or paths, got {type(v).__name__}") from exc
    return len(items) > 0 and all(isinstance(e, (str, os.PathLike)) for e in items)


def _is_image_list(v: Any) -> bool:
    if isinstance(v, np.ndarray):
        return v.ndim >= 3
    return isinstance(v, Sequence) and len(v) > 0 and all(
        isinstance(e, np.ndarray) and e.ndim >= 2 for e in v)


def _stack_or_list(arrs: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    if arrs and all(a.shape == arrs[0].shape and a.dtype == arrs[0].dtype for a in arrs):
        return np.stack(arrs)
    return arrs


def _combine(arrs: list[np.ndarray], policy: str, *, what: str) -> Any:
    if policy == "list":
        return arrs
    shapes = {a.shape for a in arrs}
    if len(shapes) == 1:
        return np.stack(arrs)
    if policy == "stack":
        raise InputError(f"{what} in this batch have different shapes {sorted(shapes)}; choose "
                         "policy='list', 'pad' or 'crop' (or batch_size=1)")
    ndims = {a.ndim for a in arrs}
    if len(ndims) != 1:
        raise InputError(f"{what} in this batch differ in number of dimensions {sorted(ndims)}; cannot "
                         f"{policy} them")
    if policy == "pad":
        target = tuple(max(s[d] for s in shapes) for d in range(arrs[0].ndim))
        out = np.zeros((len(arrs),) + target, dtype=np.result_type(*arrs))
        for k, a in enumerate(arrs):
            out[(k,) + tuple(slice(0, s) for s in a.shape)] = a
        return out
    target = tuple(min(s[d] for s in shapes) for d in range(arrs[0].ndim))
    out_list = []
    for a in arrs:
        sl = tuple(slice((s - t) // 2, (s - t) // 2 + t) for s, t in zip(a.shape, target))
        out_list.append(a[sl])
    return np.stack(out_list)
