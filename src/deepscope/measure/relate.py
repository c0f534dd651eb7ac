"""Relating objects to each other (CellProfiler's RelateObjects) and filtering them by measurement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.errors import InputError
from deepscope.evaluate._labels import as_labels, check_same_shape, ids_areas, joint_histogram
from deepscope.measure.objects import _check_name

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Relation", "relate_objects", "filter_objects"]


@dataclass(frozen=True, eq=False)
class Relation:
    """Children linked to parents.

    Attributes
    ----------
    children : pandas.DataFrame
        ``ObjectNumber`` (child id) and ``Parent_<parent_name>`` (parent id, 0 when the child
        touches no parent), one row per child, sorted by id.
    parents : pandas.DataFrame
        ``ObjectNumber`` (parent id) and ``Children_<child_name>_Count``, one row per parent.
    """

    children: pd.DataFrame
    parents: pd.DataFrame


def relate_objects(parents: Any, children: Any, *, parent_name: str = "Cells",
                   child_name: str = "Nuclei") -> Relation:
    """Assign every child object to the parent it overlaps most (CellProfiler's RelateObjects).

    Parameters
    ----------
    parents, children : ndarray of int, (H, W), same shape
        Label images (0 = background), e.g. cells and the nuclei inside them.
    parent_name, child_name : str
        Object names used in the column names.

    Returns
    -------
    Relation
        ``children`` with ``Parent_<parent_name>`` and ``parents`` with
        ``Children_<child_name>_Count``. A child overlapping several parents goes to the one
        sharing the most pixels (the smallest id on a tie); a child on background only gets 0.
        Join them to measurement tables on ``ObjectNumber``.

    Raises
    ------
    deepscope.errors.InputError
        If the shapes differ, an array is not a label image, or a name is not a valid column name.

    Examples
    --------
    >>> import numpy as np
    >>> cells = np.zeros((6, 12), np.int32); cells[:, :6] = 1; cells[:, 6:] = 2
    >>> nuclei = np.zeros_like(cells); nuclei[1:3, 1:3] = 5; nuclei[3:5, 1:3] = 6; nuclei[2:4, 5:9] = 7
    >>> rel = relate_objects(cells, nuclei)
    >>> rel.children.to_dict("list")
    {'ObjectNumber': [5, 6, 7], 'Parent_Cells': [1, 1, 2]}
    >>> rel.parents["Children_Nuclei_Count"].tolist()
    [2, 1]
    """
    import pandas as pd

    _check_name(parent_name, what="parent_name")
    _check_name(child_name, what="child_name")
    par = as_labels(parents, name="parents")
    chi = as_labels(children, name="children")
    check_same_shape(par, chi, names=("parents", "children"))
    pf, cf = par.reshape(-1), chi.reshape(-1)
    pid, _ = ids_areas(pf)
    cid, _ = ids_areas(cf)
    ic, ip, count = joint_histogram(cf, pf, cid, pid)
    parent_of = np.zeros(len(cid), np.int64)
    if ic.size:
        order = np.lexsort((ip, -count, ic))  # per child: most shared pixels first, then smallest id
        first = order[np.r_[True, ic[order][1:] != ic[order][:-1]]]
        parent_of[ic[first]] = pid[ip[first]]
    children_df = pd.DataFrame({"ObjectNumber": cid.astype(np.int64), f"Parent_{parent_name}": parent_of})
    n_children = np.bincount(np.searchsorted(pid, parent_of[parent_of > 0]), minlength=len(pid))
    parents_df = pd.DataFrame({"ObjectNumber": pid.astype(np.int64),
                               f"Children_{child_name}_Count": n_children.astype(np.int64)})
    return Relation(children_df, parents_df)


def _select(table: pd.DataFrame, criteria: str | Mapping[str, Any]) -> np.ndarray:
    if isinstance(criteria, str):
        from deepscope.measure.expr import parse_filter

        return parse_filter(criteria).evaluate(table)
    if not isinstance(criteria, Mapping):
        raise InputError(f"criteria must be a filter string or a dict column -> (min, max), "
                         f"got {type(criteria).__name__}")
    keep = np.ones(len(table), bool)
    for col, bounds in criteria.items():
        if col not in table.columns:
            raise InputError(f"no column {col!r} to filter on; columns are {list(table.columns)}")
        if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
            raise InputError(f"criteria[{col!r}] must be a (min, max) pair (None for an open end), got {bounds!r}")
        lo, hi = bounds
        values = table[col].to_numpy(dtype=float)
        if lo is not None:
            keep &= values >= float(lo)
        if hi is not None:
            keep &= values <= float(hi)
    return keep


def filter_objects(labels: Any, table: pd.DataFrame, criteria: str | Mapping[str, Any], *,
                   relabel: bool = True, object_name: str | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Keep the objects whose measurements meet the criteria (CellProfiler's FilterObjects).

    Parameters
    ----------
    labels : ndarray of int, (H, W)
        The label image the table was measured on.
    table : pandas.DataFrame
        Per-object table with an ``ObjectNumber`` column holding exactly the ids of ``labels``
        (e.g. from :func:`deepscope.measure.measure_objects`).
    criteria : str or dict
        A filter in deepscope's filter language (``"AreaShape_Area > 50 and AreaShape_Solidity >= 0.9"``;
        see :mod:`deepscope.measure.expr`: columns, numbers, comparisons, and/or/not and a few
        functions, never evaluated by Python) or a dict
        column -> ``(min, max)``, bounds inclusive, ``None`` for an open end
        (``{"AreaShape_Area": (50, 2000)}``).
    relabel : bool, default True
        Renumber the kept objects 1..k (in order of their old ids) in the labels and the table;
        the old id is kept in a ``Parent_<object_name>`` column, as CellProfiler does.
        With ``False`` the ids are kept.
    object_name : str, optional
        Name for the ``Parent_`` column; default ``table.attrs["object_name"]`` or ``"Nuclei"``.

    Returns
    -------
    labels : ndarray of int32, (H, W)
        Removed objects set to 0.
    table : pandas.DataFrame
        The kept rows (index reset).

    Raises
    ------
    deepscope.errors.InputError
        If ``table`` has no ``ObjectNumber`` column or its ids differ from those of ``labels``,
        a criteria column is missing, a bound is malformed, or the filter is not in the filter language.

    Examples
    --------
    >>> import numpy as np
    >>> from deepscope.measure import measure_objects
    >>> labels = np.zeros((8, 8), np.int32); labels[0, 0] = 2; labels[3:7, 3:7] = 5
    >>> table = measure_objects(labels)
    >>> kept, t = filter_objects(labels, table, {"AreaShape_Area": (4, None)})
    >>> t[["ObjectNumber", "Parent_Nuclei", "AreaShape_Area"]].to_numpy().tolist()
    [[1, 5, 16]]
    >>> int(kept.max()), int((kept > 0).sum())
    (1, 16)
    """
    lab = as_labels(labels, name="labels")
    if "ObjectNumber" not in table.columns:
        raise InputError(f"table has no 'ObjectNumber' column (columns: {list(table.columns)[:8]}...); "
                         "give the table measure_objects returned for these labels")
    ids, _ = ids_areas(lab.reshape(-1))
    numbers = np.sort(table["ObjectNumber"].to_numpy())
    if len(numbers) != len(ids) or not np.array_equal(numbers.astype(np.int64), ids):
        extra = np.setdiff1d(numbers, ids)
        missing = np.setdiff1d(ids, numbers)
        raise InputError(f"table ObjectNumber values do not match the label ids: {len(missing)} label id(s) "
                         f"missing from the table (e.g. {missing[:5].tolist()}), {len(extra)} table id(s) not "
                         f"in the labels (e.g. {extra[:5].tolist()}); measure these labels again")
    name = object_name or table.attrs.get("object_name", "Nuclei")
    _check_name(name, what="object_name")
    keep = _select(table.reset_index(drop=True), criteria)
    out = table.reset_index(drop=True).loc[keep].copy()
    out = out.sort_values("ObjectNumber", kind="stable").reset_index(drop=True)
    kept_ids = out["ObjectNumber"].to_numpy().astype(np.int64)
    flat = lab.reshape(-1)
    pos = np.searchsorted(kept_ids, flat)
    pos_c = np.minimum(pos, max(len(kept_ids) - 1, 0))
    hit = (flat > 0) & (len(kept_ids) > 0) & (kept_ids[pos_c] == flat if len(kept_ids) else False)
    new = np.zeros(flat.shape, np.int32)
    if relabel:
        new[hit] = pos_c[hit] + 1
        out.insert(1, f"Parent_{name}", kept_ids)
        out["ObjectNumber"] = np.arange(1, len(kept_ids) + 1, dtype=np.int64)
    else:
        new[hit] = flat[hit]
    out.attrs.update(table.attrs)
    return new.reshape(lab.shape), out
