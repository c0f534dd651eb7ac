"""Image-to-image pairs by a rule on metadata: (blurred, in focus), (stain 1, stain 2), never across fields.

BBBC005 shows every simulated field at three blur levels and in two stains, so real training
pairs for deblurring (``blur=48 -> blur=1``) and in-silico labelling (``stain=1 -> stain=2``)
come from the file names alone. :func:`pair_by_metadata` builds them from an
:class:`~deepscope.data.ImageDataset` whose metadata holds those columns (e.g. loaded with
``ImageLoader(pattern="bbbc005")``); :func:`parse_rule` reads the rules the command line takes
(``"blur=48"``, ``"blur=23,48"``, ``"stain=1"``, ``"blur=48;stain=1"``).

Examples
--------
>>> import numpy as np, pandas as pd
>>> from deepscope.data import ImageDataset
>>> md = pd.DataFrame({"field": ["f1", "f1", "f2", "f2"], "blur": [48, 1, 48, 1]})
>>> ds = ImageDataset(np.arange(4 * 6).reshape(4, 2, 3), metadata=md)
>>> pairs = pair_by_metadata(ds, input=parse_rule("blur=48"), target=parse_rule("blur=1"))
>>> len(pairs), pairs.label_kind, pairs.metadata["target_index"].tolist()
(2, 'image', [1, 3])
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.data.dataset import ImageDataset
from deepscope.errors import InputError, PairingError

__all__ = ["pair_by_metadata", "parse_rule", "format_rule", "downscale_pairs", "ON_MISSING", "IGNORED_COLUMNS"]

logger = logging.getLogger(__name__)

#: What :func:`pair_by_metadata` does with an input that has no target: raise, or leave it out (listed).
ON_MISSING = ("raise", "skip")
#: Metadata columns that name a file rather than describe an image; never used to tell images apart.
IGNORED_COLUMNS = ("path", "filename", "id")

Rule = Mapping[str, Any]


# --------------------------------------------------------------------------- rules

def _convert(v: str) -> Any:
    v = v.strip()
    if v.isdigit() or (v[:1] in "+-" and v[1:].isdigit()):
        return int(v)
    try:
        return float(v)
    except ValueError:
        return v


def parse_rule(text: str, *, name: str = "rule") -> dict[str, tuple[Any, ...]]:
    """Parse a command-line metadata rule into ``{column: (allowed values, ...)}``.

    Conditions are ``column=value`` or ``column=v1,v2`` (any of the values); several conditions
    are separated by ``;`` or by a comma that starts a new ``column=`` (all must hold).
    Numbers become ints (or floats), anything else stays a string.

    Parameters
    ----------
    text : str
        E.g. ``"blur=48"``, ``"blur=1,23"``, ``"stain=1"``, ``"blur=23,48;stain=1"``.
    name : str
        What the rule is (``"--input"``), for error messages.

    Returns
    -------
    dict of str to tuple
        Column -> accepted values.

    Raises
    ------
    deepscope.errors.InputError
        If the text is empty, a condition has no ``=``, a column or value is empty, or a column
        appears twice.

    Examples
    --------
    >>> parse_rule("blur=48")
    {'blur': (48,)}
    >>> parse_rule("blur=1,23,stain=w1")
    {'blur': (1, 23), 'stain': ('w1',)}
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{name}: the rule is empty; write column=value, e.g. 'blur=48' or 'stain=1'")
    out: dict[str, list[Any]] = {}
    current: str | None = None
    for chunk in text.replace(";", ",").split(","):
        chunk = chunk.strip()
        if not chunk:
            continue
        if "=" in chunk:
            col, _, val = chunk.partition("=")
            col = col.strip()
            if not col:
                raise InputError(f"{name}: {chunk!r} in {text!r} has no column name before '='")
            if col in out:
                raise InputError(f"{name}: column {col!r} appears twice in {text!r}; list its values once, "
                                 f"e.g. '{col}=1,23'")
            current = col
            out[col] = []
            chunk = val.strip()
            if not chunk:
                raise InputError(f"{name}: column {col!r} in {text!r} has no value after '='")
        elif current is None:
            raise InputError(f"{name}: {text!r} is not a rule; write column=value, e.g. 'blur=48' or 'blur=1,23'")
        out[current].append(_convert(chunk))
    return {k: tuple(v) for k, v in out.items()}


def format_rule(rule: Rule) -> str:
    """The command-line form of a rule (inverse of :func:`parse_rule`).

    Examples
    --------
    >>> format_rule({"blur": (1, 23), "stain": 1})
    'blur=1,23;stain=1'
    """
    parts = []
    for col, vals in rule.items():
        vs = vals if isinstance(vals, (list, tuple, set, frozenset)) else (vals,)
        parts.append(f"{col}=" + ",".join(str(v) for v in vs))
    return ";".join(parts)


def _values(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple, set, frozenset)) else [v]


def _same(a: Any, b: Any) -> bool:
    """Equality that also accepts the string form (a rule's ``"w1"`` against a column's ``"w1"``, 1 vs "1")."""
    try:
        if a == b:
            return True
    except (TypeError, ValueError):
        pass
    return str(a) == str(b)


def _rule_mask(md: Any, rule: Rule, *, name: str) -> np.ndarray:
    if not isinstance(rule, Mapping) or not rule:
        raise InputError(f"{name} must be a non-empty mapping of column -> value(s), e.g. {{'blur': 48}}; "
                         f"got {rule!r}")
    mask = np.ones(len(md), dtype=bool)
    for col, vals in rule.items():
        if col not in md.columns:
            raise InputError(f"{name} names column {col!r}, but the metadata has {list(md.columns)}; load the "
                             "images with a file-name pattern that parses it (e.g. pattern='bbbc005')")
        allowed = _values(vals)
        col_vals = md[col].tolist()
        mask &= np.array([any(_same(v, a) for a in allowed) for v in col_vals], dtype=bool)
    return mask


def _describe(md: Any, rule: Rule) -> str:
    parts = []
    for col in rule:
        seen = sorted({str(v) for v in md[col].tolist()}, key=lambda s: (len(s), s))
        parts.append(f"{col} has values {seen[:12]}" + (" ..." if len(seen) > 12 else ""))
    return "; ".join(parts)


def _distinguishing(md: Any, same: tuple[str, ...], rule_cols: set[str]) -> list[str]:
    """Columns an input and its target must also share: those that vary among images of one field
    which the rules' columns do not tell apart (BBBC005: the stain, for a rule on blur).

    A column fixed by the field and the rule columns (BBBC005's well and plate row follow the blur
    level) is not one of them, and neither are file names and paths."""
    ignored = set(IGNORED_COLUMNS) | {c for c in md.columns if str(c).endswith("_path")} | set(same) | rule_cols
    group_cols = list(same) + [c for c in md.columns if c in rule_cols]
    groups = md[group_cols].astype(str).agg("|".join, axis=1) if len(group_cols) > 1 else md[group_cols[0]].astype(str)
    out = []
    for c in md.columns:
        if c in ignored:
            continue
        per_group = md[c].astype(str).groupby(groups.to_numpy()).nunique()
        if (per_group > 1).any():
            out.append(str(c))
    # leave out columns that follow from the others within a field (BBBC005's well follows the blur)
    for c in list(out):
        rest = list(same) + [d for d in out if d != c]
        if len(rest) > len(same):
            key = md[rest].astype(str).agg("|".join, axis=1)
            if (md[c].astype(str).groupby(key.to_numpy()).nunique() <= 1).all():
                out.remove(c)
    return out


def _label(ds: ImageDataset, i: int) -> str:
    paths = ds.paths
    return paths[i] if paths is not None else str(ds.ids[i])


# --------------------------------------------------------------------------- shapes

def _header_shape(path: str) -> tuple[int, ...] | None:
    """(rows, cols) of an image file from its header, without decoding pixels (None if unknown)."""
    low = path.lower()
    if not Path(path).is_file():  # a device or FIFO is never opened here (a FIFO blocks); the reader refuses it
        return None
    try:
        if low.endswith((".tif", ".tiff", ".btf", ".tf8")):
            import tifffile

            with tifffile.TiffFile(path) as tf:
                page = tf.pages.first if hasattr(tf.pages, "first") else tf.pages[0]
                return (int(page.imagelength), int(page.imagewidth))
        if low.endswith(".png"):
            with open(path, "rb") as fh:
                head = fh.read(24)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                width, height = struct.unpack(">II", head[16:24])
                return (int(height), int(width))
    except Exception:  # an unreadable header is reported later, when the pixels are read
        return None
    return None


def _spatial_shape(ds: ImageDataset, i: int, *, header: bool) -> tuple[int, ...]:
    paths = ds.paths
    if paths is not None and header:
        hs = _header_shape(paths[i])
        if hs is not None:
            return hs
    from deepscope.io import read_image

    if paths is not None:
        img = read_image(paths[i], checksum=False)
        return _yx_shape(img.data.shape, img.axes)
    return tuple(np.asarray(ds.get_image(i)).shape[:2])


def _yx_shape(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    if "Y" in axes and "X" in axes:
        return (shape[axes.index("Y")], shape[axes.index("X")])
    return tuple(shape[:2])


# --------------------------------------------------------------------------- pairing

def pair_by_metadata(dataset: ImageDataset, *, input: Rule, target: Rule,  # noqa: A002 (the task's word)
                     same: Sequence[str] = ("field",), on_missing: str = "raise",
                     check_shapes: bool = True) -> ImageDataset:
    """Pair images with target images of the same field by a rule on their metadata.

    Every image matching ``input`` is paired with the image matching ``target`` that shares
    its ``same`` columns (the field of view: pairs never cross fields). When several images
    of the field match ``target`` (e.g. both stains at blur 1), the partner is the one that
    agrees with the input on every column in which those candidates differ (its stain, for
    ``blur=48 -> blur=1``; its blur level, for ``stain=1 -> stain=2``); name more ``same``
    columns to make this explicit.

    Parameters
    ----------
    dataset : ImageDataset
        Images with metadata (lazy or in memory), e.g. from ``ImageLoader(pattern="bbbc005")``.
    input, target : mapping of str to value or sequence of values
        Which images are inputs and which are targets, e.g. ``{"blur": 48}`` and ``{"blur": 1}``,
        or ``{"blur": (23, 48)}``; :func:`parse_rule` makes them from ``"blur=23,48"``.
    same : sequence of str, default ("field",)
        Columns an input and its target must share (at least one; BBBC005's pattern derives
        ``field``).
    on_missing : {"raise", "skip"}, default "raise"
        Inputs without a target: an error naming them, or left out and listed (path, reason)
        in the result's ``skipped``.
    check_shapes : bool, default True
        Check that every input and its target have the same height and width (from the file
        headers of lazy datasets, without decoding pixels).

    Returns
    -------
    ImageDataset
        One sample per input (in dataset order) with ``label_kind="image"``: ``X`` the inputs,
        ``y`` their targets (paths for a lazy dataset). Metadata: the inputs' rows plus
        ``target_path`` (lazy datasets) and ``target_index`` (row of the target in ``dataset``).

    Raises
    ------
    deepscope.errors.InputError
        A rule is empty or names a column the metadata lacks, ``same`` is empty or names a
        missing column, the input rule matches no image, or an image matches both rules.
    deepscope.errors.PairingError
        The target rule matches no image; inputs have no target (``on_missing="raise"``; the
        message names them); several candidates are equally good; or an input and its target
        differ in shape (the message names both files).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> md = pd.DataFrame({"field": ["a"] * 4, "blur": [1, 48, 1, 48], "stain": [1, 1, 2, 2]})
    >>> ds = ImageDataset(np.zeros((4, 2, 2), np.uint8), metadata=md)
    >>> pairs = pair_by_metadata(ds, input={"blur": 48}, target={"blur": 1})
    >>> pairs.metadata[["stain", "target_index"]].values.tolist()
    [[1, 0], [2, 2]]
    """
    if on_missing not in ON_MISSING:
        raise InputError(f"on_missing={on_missing!r} is not one of {ON_MISSING}")
    if isinstance(same, str):
        same = (same,)
    same = tuple(same)
    md = dataset.metadata
    if not same:
        raise InputError("same= must name at least one column shared by an input and its target (e.g. 'field'); "
                         "pairs are never made across fields of view")
    missing_cols = [c for c in same if c not in md.columns]
    if missing_cols:
        raise InputError(f"same= names column {missing_cols[0]!r}, but the metadata has {list(md.columns)}; load the "
                         "images with a file-name pattern that derives it (pattern='bbbc005' gives 'field')")
    if md[list(same)].isna().any().any():
        raise InputError(f"metadata column(s) {list(same)} have missing values; every image needs a field to be paired")
    in_mask = _rule_mask(md, input, name="input rule")
    tg_mask = _rule_mask(md, target, name="target rule")
    if not in_mask.any():
        raise InputError(f"the input rule {format_rule(input)!r} matches none of the {len(md)} images "
                         f"({_describe(md, input)})")
    if not tg_mask.any():
        raise PairingError(f"the target rule {format_rule(target)!r} matches none of the {len(md)} images "
                           f"({_describe(md, target)}); no input can be paired")
    both = np.flatnonzero(in_mask & tg_mask)
    if both.size:
        raise InputError(f"{both.size} image(s) match both the input rule {format_rule(input)!r} and the target rule "
                         f"{format_rule(target)!r}, e.g. '{_label(dataset, int(both[0]))}'; the rules must "
                         "select different images")

    match_cols = list(same) + _distinguishing(md, same, set(input) | set(target))
    full = [tuple(str(v) for v in row) for row in md[match_cols].itertuples(index=False, name=None)]
    by_key: dict[tuple[str, ...], list[int]] = {}
    for j in np.flatnonzero(tg_mask):
        by_key.setdefault(full[j], []).append(int(j))

    inputs: list[int] = []
    partners: list[int] = []
    no_target: list[int] = []
    ambiguous: list[tuple[int, list[int]]] = []
    for i in np.flatnonzero(in_mask):
        cands = by_key.get(full[i], [])
        if not cands:
            no_target.append(int(i))
        elif len(cands) > 1:
            ambiguous.append((int(i), cands))
        else:
            inputs.append(int(i))
            partners.append(cands[0])

    agree = " and ".join(f"the same {c}" for c in match_cols)
    if ambiguous:
        i, cands = ambiguous[0]
        names = ", ".join(f"'{Path(_label(dataset, j)).name}'" for j in cands[:4])
        raise PairingError(f"{len(ambiguous)} input(s) have several targets matching {format_rule(target)!r} with "
                           f"{agree}, e.g. '{Path(_label(dataset, i)).name}' -> {names}; narrow the target rule or "
                           "name the column that tells them apart in same=")
    skipped: list[tuple[str, str]] = []
    if no_target:
        shown = ", ".join(f"'{Path(_label(dataset, i)).name}'" for i in no_target[:5])
        more = f" and {len(no_target) - 5} more" if len(no_target) > 5 else ""
        msg = (f"{len(no_target)} of {int(in_mask.sum())} input image(s) have no target matching "
               f"{format_rule(target)!r} with {agree}: {shown}{more}")
        if on_missing == "raise" or not inputs:
            raise PairingError(msg + ("; pass on_missing='skip' to leave them out" if inputs else ""))
        logger.warning(msg + "; left out")
        skipped = [(_label(dataset, i), f"no target matching {format_rule(target)!r} with {agree}")
                   for i in no_target]
    if check_shapes:
        for i, j in zip(inputs, partners):
            si = _spatial_shape(dataset, i, header=True)
            sj = _spatial_shape(dataset, j, header=True)
            if si != sj:
                raise PairingError(f"input '{_label(dataset, i)}' has shape {si} but its target "
                                   f"'{_label(dataset, j)}' has shape {sj}; pairs must have the same height and "
                                   "width (resize or crop one of them, or pass check_shapes=False)")

    out_md = md.iloc[inputs].reset_index(drop=True)
    out_md["target_index"] = partners
    paths = dataset.paths
    if paths is not None:
        y: list[Any] = [paths[j] for j in partners]
        out_md["target_path"] = y
        X: Any = [paths[i] for i in inputs]
    else:
        y = [dataset.get_image(j) for j in partners]
        X = [dataset.get_image(i) for i in inputs]
    w = dataset.w[inputs]
    out = ImageDataset(X, y=y, w=w, ids=dataset.ids[inputs], metadata=out_md, label_kind="image")
    out.skipped = list(dataset.skipped) + skipped
    return out


def _reduce(image: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks (cropping a remainder), keeping the dtype (rounded for ints)."""
    x = np.asarray(image)
    h, w = (x.shape[0] // factor) * factor, (x.shape[1] // factor) * factor
    if h == 0 or w == 0:
        raise InputError(f"an image of shape {x.shape} is smaller than the downscale factor {factor}")
    blocks = x[:h, :w].astype(np.float64).reshape(h // factor, factor, w // factor, factor, *x.shape[2:])
    mean = blocks.mean(axis=(1, 3))
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(x.dtype)
    return mean.astype(x.dtype)


def downscale_pairs(dataset: ImageDataset, factor: int = 2) -> ImageDataset:
    """Make super-resolution pairs: each target is paired with a ``factor``-times smaller input.

    For a dataset without labels the images themselves are the targets (the input is the
    image averaged over ``factor`` x ``factor`` blocks); for an image-pair dataset (from
    :func:`pair_by_metadata`) the inputs are reduced and the targets kept. Targets are cropped
    to a multiple of ``factor``. The result is in memory.

    Parameters
    ----------
    dataset : ImageDataset
    factor : int, default 2

    Returns
    -------
    ImageDataset
        ``label_kind="image"``, inputs ``factor`` times smaller than targets, same metadata.

    Raises
    ------
    deepscope.errors.InputError
        If ``factor`` < 2, the dataset has labels other than images, or an image is smaller than ``factor``.

    Examples
    --------
    >>> import numpy as np
    >>> ds = ImageDataset(np.arange(2 * 5 * 6, dtype=np.uint8).reshape(2, 5, 6))
    >>> sr = downscale_pairs(ds, 2)
    >>> sr.get_image(0).shape, sr.get_label(0).shape, sr.get_image(0).dtype
    ((2, 3), (4, 6), dtype('uint8'))
    """
    if not isinstance(factor, (int, np.integer)) or factor < 2:
        raise InputError(f"factor must be an integer >= 2, got {factor!r}")
    if dataset.label_kind not in (None, "image"):
        raise InputError(f"downscale_pairs needs images or image pairs, not a dataset with {dataset.label_kind} labels")
    xs, ys = [], []
    for i in range(len(dataset)):
        src = dataset.get_image(i)
        tgt = np.asarray(src if dataset.label_kind is None else dataset.get_label(i))
        h, w = (tgt.shape[0] // factor) * factor, (tgt.shape[1] // factor) * factor
        xs.append(_reduce(src, factor))
        ys.append(tgt[:h, :w])
    return ImageDataset(xs, y=ys, w=dataset.w, ids=dataset.ids, metadata=dataset.metadata, label_kind="image")
