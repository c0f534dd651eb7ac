"""Per-object measurements with CellProfiler-compatible column names.

Shape features come from :func:`skimage.measure.regionprops_table` with exactly the conventions of
CellProfiler 4's MeasureObjectSizeShape (which uses the same function): ``AreaShape_Orientation``
in degrees (``regionprops`` orientation x 180 / pi), ``AreaShape_FormFactor = 4 pi area /
perimeter^2``, ``AreaShape_Compactness = perimeter^2 / (4 pi area)``, bounding-box maxima
exclusive (``bbox-2``, ``bbox-3``), ``Location_Center_X`` = column and ``Location_Center_Y`` = row
of the centroid, 0-based. Area, centroid, bounding box and every intensity feature are computed
for all objects at once with NumPy/SciPy (one pass over the pixels), not object by object.

Intensities are the raw pixel values (CellProfiler divides integer images by their dtype's
maximum when it loads them; deepscope never rescales silently: normalise first if you want that).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.errors import InputError
from deepscope.evaluate._labels import as_labels, ids_areas
from deepscope.io.image import as_pixels
from deepscope.measure._geometry import border_pixels, outline_geometry, zernike_columns, zernike_moments
from deepscope.measure._shape import convex_areas, perimeters, second_moments, sorted_by_object

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SHAPE_COLUMNS", "INTENSITY_FEATURES", "AGGREGATES", "measure_objects", "summarize_image",
           "aggregate_objects", "intensity_columns"]

#: Per-image aggregates of every object measurement, as CellProfiler's ExportToSpreadsheet names them.
AGGREGATES = ("Mean", "Median", "StDev")

#: Shape and location columns of :func:`measure_objects`, in order, with their dtypes.
SHAPE_COLUMNS: dict[str, str] = {
    "ObjectNumber": "int64",
    "AreaShape_Area": "int64",
    "AreaShape_Perimeter": "float64",
    "AreaShape_FormFactor": "float64",
    "AreaShape_Compactness": "float64",
    "AreaShape_Eccentricity": "float64",
    "AreaShape_Solidity": "float64",
    "AreaShape_Extent": "float64",
    "AreaShape_MajorAxisLength": "float64",
    "AreaShape_MinorAxisLength": "float64",
    "AreaShape_Orientation": "float64",
    "AreaShape_EquivalentDiameter": "float64",
    "AreaShape_BoundingBoxArea": "int64",
    "AreaShape_BoundingBoxMinimum_X": "int64",
    "AreaShape_BoundingBoxMinimum_Y": "int64",
    "AreaShape_BoundingBoxMaximum_X": "int64",
    "AreaShape_BoundingBoxMaximum_Y": "int64",
    "AreaShape_Center_X": "float64",
    "AreaShape_Center_Y": "float64",
    "Location_Center_X": "float64",
    "Location_Center_Y": "float64",
    "AreaShape_ConvexArea": "int64",
    "AreaShape_EulerNumber": "int64",
    "AreaShape_MaxFeretDiameter": "float64",
    "AreaShape_MinFeretDiameter": "float64",
    "AreaShape_MaximumRadius": "float64",
    "AreaShape_MeanRadius": "float64",
    "AreaShape_MedianRadius": "float64",
    **{c: "float64" for c in zernike_columns()},
}

#: Per-channel intensity columns, as ``(prefix, feature)``: the column is ``f"{prefix}_{feature}_{channel}"``.
INTENSITY_FEATURES: tuple[tuple[str, str], ...] = (
    ("Intensity", "IntegratedIntensity"),
    ("Intensity", "MeanIntensity"),
    ("Intensity", "StdIntensity"),
    ("Intensity", "MinIntensity"),
    ("Intensity", "MaxIntensity"),
    ("Intensity", "MedianIntensity"),
    ("Intensity", "LowerQuartileIntensity"),
    ("Intensity", "UpperQuartileIntensity"),
    ("Intensity", "MADIntensity"),
    ("Intensity", "IntegratedIntensityEdge"),
    ("Intensity", "MeanIntensityEdge"),
    ("Intensity", "StdIntensityEdge"),
    ("Intensity", "MinIntensityEdge"),
    ("Intensity", "MaxIntensityEdge"),
    ("Intensity", "MassDisplacement"),
    ("Location", "CenterMassIntensity_X"),
    ("Location", "CenterMassIntensity_Y"),
    ("Location", "MaxIntensity_X"),
    ("Location", "MaxIntensity_Y"),
)

_PHYSICAL = {  # column -> (new column, power of the pixel size)
    "AreaShape_Area": ("AreaShape_Area_um2", 2),
    "AreaShape_Perimeter": ("AreaShape_Perimeter_um", 1),
    "AreaShape_MajorAxisLength": ("AreaShape_MajorAxisLength_um", 1),
    "AreaShape_MinorAxisLength": ("AreaShape_MinorAxisLength_um", 1),
    "AreaShape_EquivalentDiameter": ("AreaShape_EquivalentDiameter_um", 1),
    "AreaShape_MaxFeretDiameter": ("AreaShape_MaxFeretDiameter_um", 1),
    "AreaShape_MinFeretDiameter": ("AreaShape_MinFeretDiameter_um", 1),
    "Location_Center_X": ("Location_Center_X_um", 1),
    "Location_Center_Y": ("Location_Center_Y_um", 1),
}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")


def intensity_columns(channel: str) -> list[str]:
    """The intensity column names of one channel.

    Examples
    --------
    >>> intensity_columns("DNA")[:2]
    ['Intensity_IntegratedIntensity_DNA', 'Intensity_MeanIntensity_DNA']
    """
    return [f"{prefix}_{feat}_{channel}" for prefix, feat in INTENSITY_FEATURES]


def _check_labels(labels: Any) -> np.ndarray:
    lab = as_labels(as_pixels(labels), name="labels")
    if lab.ndim != 2:
        raise InputError(f"labels has shape {lab.shape}; measure_objects handles 2-D label images (H, W). "
                         "Measure a volume plane by plane, or index the channel/page first")
    return lab


def _check_name(name: str, *, what: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InputError(f"{what} {name!r} is not a valid name: use letters, digits and underscores "
                         "(CellProfiler column names), starting with a letter or digit")
    return name


def _channels(intensities: Any, shape: tuple[int, ...], *, what: str = "image",
              layout: str = "they must have the same height and width (one 2-D image per channel)"
              ) -> dict[str, np.ndarray]:
    """The intensity channels beside a label image of ``shape`` (2-D images, or 3-D volumes with ``what`` and
    ``layout`` naming them in errors): a mapping of name -> array, one array (``Image``), or one array with
    the channels last (``C0``, ``C1`` ...)."""
    if intensities is None:
        return {}
    if isinstance(intensities, Mapping):
        items = [(k, as_pixels(v)) for k, v in intensities.items()]
    else:
        arr = np.asarray(as_pixels(intensities))
        if arr.ndim == len(shape) + 1 and arr.shape[:-1] == shape:
            items = [(f"C{k}", arr[..., k]) for k in range(arr.shape[-1])]
        else:
            items = [("Image", arr)]
    out: dict[str, np.ndarray] = {}
    for name, img in items:
        _check_name(name, what="channel name")
        a = np.asarray(img)
        if a.shape != shape:
            raise InputError(f"intensity {what} {name!r} has shape {a.shape} but labels has shape {shape}; {layout}")
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.issubdtype(a.dtype, np.complexfloating):
            raise InputError(f"intensity {what} {name!r} has dtype {a.dtype}; expected a real numeric {what}")
        out[name] = a
    return out


def _pixel_size(pixel_size: Any) -> float | None:
    if pixel_size is None:
        return None
    try:
        ps = np.atleast_1d(np.asarray(pixel_size, dtype=float))
    except (TypeError, ValueError):
        raise InputError(f"pixel_size must be a number or a (row, col) pair in micrometres, "
                         f"got {pixel_size!r}") from None
    if ps.ndim != 1 or len(ps) not in (1, 2) or np.any(~np.isfinite(ps)) or np.any(ps <= 0):
        raise InputError(f"pixel_size must be a positive number or a (row, col) pair in micrometres, "
                         f"got {pixel_size!r}")
    if len(ps) == 2 and not np.isclose(ps[0], ps[1], rtol=1e-3):
        raise InputError(f"pixel_size {tuple(float(x) for x in ps)} is anisotropic; shape features need square "
                         "pixels. Resample the image to square pixels first")
    return float(ps[0])


def _empty_table(channels: list[str], physical: bool, object_name: str) -> pd.DataFrame:
    import pandas as pd

    cols: dict[str, Any] = {c: pd.Series([], dtype=d) for c, d in SHAPE_COLUMNS.items()}
    if physical:
        for new, _ in _PHYSICAL.values():
            cols[new] = pd.Series([], dtype="float64")
    for ch in channels:
        for c in intensity_columns(ch):
            cols[c] = pd.Series([], dtype="float64")
    df = pd.DataFrame(cols)
    df.attrs["object_name"] = object_name
    return df


def _quantile(sv: np.ndarray, starts: np.ndarray, area: np.ndarray, fraction: float) -> np.ndarray:
    """CellProfiler's per-object quantile of sorted values: position ``start + area * fraction``, interpolated."""
    q = starts + area * fraction
    lo = np.floor(q).astype(np.int64)
    frac = q - lo
    hi = np.minimum(lo + 1, starts + area - 1)
    lo = np.minimum(lo, starts + area - 1)
    return sv[lo] * (1.0 - frac) + sv[hi] * frac


def _group_stats(values: np.ndarray, idx: np.ndarray, n: int, area: np.ndarray, rr: np.ndarray, cc: np.ndarray,
                 starts: np.ndarray, edge: np.ndarray, centroid: tuple[np.ndarray, np.ndarray]
                 ) -> dict[str, np.ndarray]:
    """Intensity features of ``values`` (flat, foreground pixels) grouped by ``idx`` (0..n-1).

    ``edge``: which of those pixels are on their object's edge; ``centroid``: (row, col) of each object.
    """
    v = values.astype(np.float64, copy=False)
    total = np.bincount(idx, weights=v, minlength=n)
    mean = total / area
    dev = v - mean[idx]
    std = np.sqrt(np.bincount(idx, weights=dev * dev, minlength=n) / area)
    # values sorted by (object, value): min, max and median are picked at each object's offsets
    sv = sorted_by_object(values, idx)
    lo = starts + (area - 1) // 2
    hi = starts + area // 2
    median = (sv[lo] + sv[hi]) / 2.0
    mad = sorted_by_object(np.abs(v - median[idx]), idx)
    with np.errstate(invalid="ignore", divide="ignore"):
        cm_r = np.bincount(idx, weights=v * rr, minlength=n) / total
        cm_c = np.bincount(idx, weights=v * cc, minlength=n) / total
    # edge pixels: the object's pixels with a 4-neighbour outside it
    e_idx, e_v = idx[edge], v[edge]
    e_n = np.bincount(e_idx, minlength=n).astype(np.float64)
    e_total = np.bincount(e_idx, weights=e_v, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        e_mean = e_total / e_n
        e_std = np.sqrt(np.bincount(e_idx, weights=(e_v - e_mean[e_idx]) ** 2, minlength=n) / e_n)
    e_min = np.full(n, np.inf)
    e_max = np.full(n, -np.inf)
    np.minimum.at(e_min, e_idx, e_v)
    np.maximum.at(e_max, e_idx, e_v)
    # position of each object's brightest pixel (the first in raster order among equals)
    order = np.lexsort((-np.arange(len(v)), v, idx))
    last = order[starts + area - 1]
    return {"IntegratedIntensity": total, "MeanIntensity": mean, "StdIntensity": std,
            "MinIntensity": sv[starts], "MaxIntensity": sv[starts + area - 1], "MedianIntensity": median,
            "LowerQuartileIntensity": _quantile(sv, starts, area, 0.25),
            "UpperQuartileIntensity": _quantile(sv, starts, area, 0.75),
            "MADIntensity": (mad[lo] + mad[hi]) / 2.0,
            "IntegratedIntensityEdge": e_total, "MeanIntensityEdge": e_mean, "StdIntensityEdge": e_std,
            "MinIntensityEdge": e_min, "MaxIntensityEdge": e_max,
            "MassDisplacement": np.hypot(cm_r - centroid[0], cm_c - centroid[1]),
            "CenterMassIntensity_X": cm_c, "CenterMassIntensity_Y": cm_r,
            "MaxIntensity_X": cc[last].astype(np.float64), "MaxIntensity_Y": rr[last].astype(np.float64)}


def measure_objects(labels: Any, intensities: Any = None, *, object_name: str = "Nuclei",
                    pixel_size: float | tuple[float, float] | None = None) -> pd.DataFrame:
    """Measure size, shape, position and intensity of every object of a 2-D label image.

    Parameters
    ----------
    labels : ndarray of int, (H, W)
        Instance label image, 0 = background; ids need not be consecutive.
    intensities : ndarray (H, W) or (H, W, C), or dict of name -> ndarray (H, W), optional
        Intensity images to measure in each object (a :class:`deepscope.io.Image` is taken
        wherever an array is). A 2-D array is the channel ``"Image"``, a
        3-D array gives channels ``"C0"``, ``"C1"``, ...; a dict names them (``{"DNA": dapi}``).
        Raw values are used (any real dtype, computed in float64).
    object_name : str, default "Nuclei"
        Name of the objects (stored in ``table.attrs["object_name"]``; used by
        :func:`summarize_image` and the relate/filter helpers for column names).
    pixel_size : float or (float, float), optional
        Micrometres per pixel (square pixels). When given, physical columns are added:
        ``AreaShape_Area_um2``, ``AreaShape_Perimeter_um``, ``AreaShape_MajorAxisLength_um``,
        ``AreaShape_MinorAxisLength_um``, ``AreaShape_EquivalentDiameter_um``,
        ``Location_Center_X_um``, ``Location_Center_Y_um``; the CellProfiler columns stay in pixels.

    Returns
    -------
    pandas.DataFrame
        One row per object, sorted by ``ObjectNumber`` (the label id), with the columns of
        :data:`SHAPE_COLUMNS`, then the physical columns, then per channel
        ``Intensity_{IntegratedIntensity,MeanIntensity,StdIntensity,MinIntensity,MaxIntensity,
        MedianIntensity}_<channel>`` and ``Location_CenterMassIntensity_{X,Y}_<channel>``.
        An image without objects gives an empty table with the same columns and dtypes.
        ``AreaShape_FormFactor`` is NaN for objects with zero perimeter (single pixels).

    Raises
    ------
    deepscope.errors.InputError
        If ``labels`` is not a 2-D label image, an intensity image has another shape (both shapes
        are named) or a non-numeric dtype, a channel or object name is not a valid column name,
        or ``pixel_size`` is invalid or anisotropic.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((10, 12), np.int32)
    >>> labels[1:4, 1:5] = 3; labels[6:9, 6:11] = 8
    >>> dna = np.arange(120.0).reshape(10, 12)
    >>> df = measure_objects(labels, {"DNA": dna})
    >>> df[["ObjectNumber", "AreaShape_Area", "Location_Center_X", "Location_Center_Y"]].to_numpy().tolist()
    [[3.0, 12.0, 2.5, 2.0], [8.0, 15.0, 8.0, 7.0]]
    >>> df["Intensity_MeanIntensity_DNA"].tolist()
    [26.5, 92.0]
    """
    import pandas as pd

    _check_name(object_name, what="object_name")
    lab = _check_labels(labels)
    chans = _channels(intensities, lab.shape)
    ps = _pixel_size(pixel_size)
    flat = lab.reshape(-1)
    ids, area = ids_areas(flat)
    n = len(ids)
    if n == 0:
        return _empty_table(list(chans), ps is not None, object_name)

    # consecutive labels 1..n (regionprops and find_objects then cost O(n), whatever the ids)
    fg = np.flatnonzero(flat)
    idx = np.searchsorted(ids, flat[fg])  # 0..n-1 per foreground pixel
    consec = np.zeros(lab.shape, np.int32)
    consec.reshape(-1)[fg] = idx + 1
    rr, cc = np.divmod(fg, lab.shape[1])

    from scipy import ndimage as ndi

    slices = ndi.find_objects(consec)
    bbox = np.array([(sl[0].start, sl[1].start, sl[0].stop, sl[1].stop) for sl in slices], dtype=np.int64)
    bbox_area = (bbox[:, 2] - bbox[:, 0]) * (bbox[:, 3] - bbox[:, 1])
    cy = np.bincount(idx, weights=rr, minlength=n) / area
    cx = np.bincount(idx, weights=cc, minlength=n) / area
    perim = perimeters(consec, n)
    major, minor, ecc, orient = second_moments(idx, rr - cy[idx], cc - cx[idx], area, n)
    convex = convex_areas(idx, rr, cc, n, bbox)
    solidity = area / convex
    geo = outline_geometry(consec, slices)
    zernike = zernike_moments(idx, rr, cc, n, geo["circle_row"], geo["circle_col"], geo["circle_radius"])
    with np.errstate(divide="ignore", invalid="ignore"):
        form = np.where(perim > 0, 4.0 * np.pi * area / np.where(perim > 0, perim, 1.0) ** 2, np.nan)
    compact = perim ** 2 / np.maximum(4.0 * np.pi * area, 1.0)
    data: dict[str, Any] = {
        "ObjectNumber": ids.astype(np.int64),
        "AreaShape_Area": area.astype(np.int64),
        "AreaShape_Perimeter": perim,
        "AreaShape_FormFactor": form,
        "AreaShape_Compactness": compact,
        "AreaShape_Eccentricity": ecc,
        "AreaShape_Solidity": solidity,
        "AreaShape_Extent": area / bbox_area,
        "AreaShape_MajorAxisLength": major,
        "AreaShape_MinorAxisLength": minor,
        "AreaShape_Orientation": orient * (180.0 / np.pi),
        "AreaShape_EquivalentDiameter": np.sqrt(4.0 * area / np.pi),
        "AreaShape_BoundingBoxArea": bbox_area,
        "AreaShape_BoundingBoxMinimum_X": bbox[:, 1],
        "AreaShape_BoundingBoxMinimum_Y": bbox[:, 0],
        "AreaShape_BoundingBoxMaximum_X": bbox[:, 3],
        "AreaShape_BoundingBoxMaximum_Y": bbox[:, 2],
        "AreaShape_Center_X": cx,
        "AreaShape_Center_Y": cy,
        "Location_Center_X": cx.copy(),
        "Location_Center_Y": cy.copy(),
        "AreaShape_ConvexArea": np.rint(convex).astype(np.int64),
        "AreaShape_EulerNumber": geo["EulerNumber"],
        **{f"AreaShape_{k}": geo[k] for k in ("MaxFeretDiameter", "MinFeretDiameter", "MaximumRadius",
                                              "MeanRadius", "MedianRadius")},
        **dict(zip(zernike_columns(), zernike.T)),
    }
    if ps is not None:
        for col, (new, power) in _PHYSICAL.items():
            data[new] = np.asarray(data[col], dtype=np.float64) * ps ** power
    if chans:
        starts = np.concatenate([[0], np.cumsum(area)[:-1]])
        edge = border_pixels(consec).reshape(-1)[fg] > 0
        for name, img in chans.items():
            stats = _group_stats(img.reshape(-1)[fg], idx, n, area, rr, cc, starts, edge, (cy, cx))
            for prefix, feat in INTENSITY_FEATURES:
                data[f"{prefix}_{feat}_{name}"] = stats[feat]
    df = pd.DataFrame(data)
    df.attrs["object_name"] = object_name
    return df


def summarize_image(labels: Any, *, object_name: str = "Nuclei") -> dict[str, float | int]:
    """Per-image summary of a label image: count, mean and median area, confluence.

    Parameters
    ----------
    labels : ndarray of int, (H, W)
        Instance label image, 0 = background.
    object_name : str, default "Nuclei"
        Name used in the keys.

    Returns
    -------
    dict
        ``Count_<name>``; ``Mean_<name>_AreaShape_Area`` and ``Median_<name>_AreaShape_Area``
        (NaN without objects; CellProfiler's ExportToSpreadsheet names for per-image aggregates);
        ``AreaOccupied_AreaOccupied_<name>`` (pixels covered), ``AreaOccupied_TotalArea_<name>``
        (pixels in the image) and ``Confluence_<name>`` (covered fraction, in [0, 1]).

    Raises
    ------
    deepscope.errors.InputError
        If ``labels`` is not a 2-D label image or ``object_name`` is not a valid name.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((10, 10), np.int32); labels[:2, :5] = 4; labels[5:9, 5:9] = 9
    >>> s = summarize_image(labels, object_name="Cells")
    >>> s["Count_Cells"], s["Mean_Cells_AreaShape_Area"], s["Confluence_Cells"]
    (2, 13.0, 0.26)
    """
    _check_name(object_name, what="object_name")
    lab = _check_labels(labels)
    _, area = ids_areas(lab.reshape(-1))
    covered = int(area.sum())
    total = int(lab.size)
    return {
        f"Count_{object_name}": int(len(area)),
        f"Mean_{object_name}_AreaShape_Area": float(area.mean()) if len(area) else float("nan"),
        f"Median_{object_name}_AreaShape_Area": float(np.median(area)) if len(area) else float("nan"),
        f"AreaOccupied_AreaOccupied_{object_name}": covered,
        f"AreaOccupied_TotalArea_{object_name}": total,
        f"Confluence_{object_name}": covered / total if total else 0.0,
    }


def aggregate_objects(table: pd.DataFrame, *, object_name: str | None = None) -> dict[str, float]:
    """Per-image ``Mean_``, ``Median_`` and ``StDev_`` of every measurement of an object table.

    The names are CellProfiler's (ExportToSpreadsheet): ``Mean_<objects>_<measurement>`` and so
    on, over the objects of one image; ``StDev`` is the population standard deviation (NumPy's
    ``std``, as CellProfiler). ``ObjectNumber`` and relation ids (``Parent_*``) are not
    aggregated; missing values are left out; an image without objects gives NaN.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`measure_objects` of one image.
    object_name : str, optional
        Default ``table.attrs["object_name"]``, else ``"Nuclei"``.

    Returns
    -------
    dict of str to float

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((10, 10), np.int32); labels[:2, :5] = 1; labels[5:9, 5:9] = 2
    >>> agg = aggregate_objects(measure_objects(labels))
    >>> agg["Mean_Nuclei_AreaShape_Area"], agg["Median_Nuclei_AreaShape_Area"], agg["StDev_Nuclei_AreaShape_Area"]
    (13.0, 13.0, 3.0)
    """
    name = object_name or table.attrs.get("object_name") or "Nuclei"
    _check_name(name, what="object_name")
    out: dict[str, float] = {}
    for col in table.columns:
        if col == "ObjectNumber" or str(col).startswith("Parent_") or not np.issubdtype(table[col].dtype, np.number):
            continue
        v = table[col].to_numpy(dtype=np.float64, na_value=np.nan)
        v = v[np.isfinite(v)]
        empty = v.size == 0
        out[f"Mean_{name}_{col}"] = float("nan") if empty else float(v.mean())
        out[f"Median_{name}_{col}"] = float("nan") if empty else float(np.median(v))
        out[f"StDev_{name}_{col}"] = float("nan") if empty else float(v.std())
    return out
