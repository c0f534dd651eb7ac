"""Per-object measurements of 3D label images (z-stacks), with CellProfiler's 3D column names.

CellProfiler's MeasureObjectSizeShape names its volume features ``AreaShape_Volume``, ``AreaShape_SurfaceArea``,
``AreaShape_EquivalentDiameter``, ``AreaShape_MajorAxisLength``, ``AreaShape_MinorAxisLength``,
``AreaShape_Extent``, ``AreaShape_BoundingBoxVolume``, ``AreaShape_BoundingBox{Minimum,Maximum}_{X,Y,Z}``,
``AreaShape_Center_{X,Y,Z}`` and ``Location_Center_{X,Y,Z}``; those columns are in voxels (as CellProfiler,
which treats voxels as cubes). Because z-stacks rarely have cubic voxels, the physical columns (``_um``,
``_um2``, ``_um3``) use the voxel size ``(z, y, x)`` and are the ones to compare between stacks; the shape
features with no CellProfiler name (``AreaShape_IntermediateAxisLength_um``, ``AreaShape_Sphericity``) are
physical only. Volume, centroid, bounding box, principal axes and intensities are computed for all objects at
once (one pass over the voxels); the surface area needs a mesh per object (marching cubes on the object's
padded box, :func:`skimage.measure.marching_cubes` with the voxel spacing, then
:func:`skimage.measure.mesh_surface_area`).

Examples
--------
>>> import numpy as np
>>> from deepscope.measure import measure_volume
>>> lab = np.zeros((8, 16, 16), np.int32); lab[2:6, 4:12, 4:12] = 7
>>> df = measure_volume(lab, voxel_size=(2.0, 0.5, 0.5))
>>> int(df["AreaShape_Volume"][0]), float(df["AreaShape_Volume_um3"][0]), float(df["Location_Center_Z_um"][0])
(256, 128.0, 7.0)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.errors import InputError
from deepscope.evaluate._labels import as_labels

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["VOLUME_COLUMNS", "VOLUME_INTENSITY_FEATURES", "measure_volume", "summarize_volume"]

#: Shape and location columns of :func:`measure_volume`, in order, with their dtypes.
VOLUME_COLUMNS: dict[str, str] = {
    "ObjectNumber": "int64",
    "AreaShape_Volume": "int64",
    "AreaShape_Volume_um3": "float64",
    "AreaShape_SurfaceArea": "float64",
    "AreaShape_SurfaceArea_um2": "float64",
    "AreaShape_Sphericity": "float64",
    "AreaShape_EquivalentDiameter": "float64",
    "AreaShape_EquivalentDiameter_um": "float64",
    "AreaShape_MajorAxisLength": "float64",
    "AreaShape_MinorAxisLength": "float64",
    "AreaShape_MajorAxisLength_um": "float64",
    "AreaShape_IntermediateAxisLength_um": "float64",
    "AreaShape_MinorAxisLength_um": "float64",
    "AreaShape_Extent": "float64",
    "AreaShape_BoundingBoxVolume": "int64",
    "AreaShape_BoundingBoxMinimum_X": "int64",
    "AreaShape_BoundingBoxMinimum_Y": "int64",
    "AreaShape_BoundingBoxMinimum_Z": "int64",
    "AreaShape_BoundingBoxMaximum_X": "int64",
    "AreaShape_BoundingBoxMaximum_Y": "int64",
    "AreaShape_BoundingBoxMaximum_Z": "int64",
    "AreaShape_Center_X": "float64",
    "AreaShape_Center_Y": "float64",
    "AreaShape_Center_Z": "float64",
    "Location_Center_X": "float64",
    "Location_Center_Y": "float64",
    "Location_Center_Z": "float64",
    "Location_Center_X_um": "float64",
    "Location_Center_Y_um": "float64",
    "Location_Center_Z_um": "float64",
}

#: Per-channel intensity columns, as ``(prefix, feature)``: the column is ``f"{prefix}_{feature}_{channel}"``.
VOLUME_INTENSITY_FEATURES: tuple[tuple[str, str], ...] = (
    ("Intensity", "IntegratedIntensity"),
    ("Intensity", "MeanIntensity"),
    ("Intensity", "StdIntensity"),
    ("Intensity", "MinIntensity"),
    ("Intensity", "MaxIntensity"),
    ("Intensity", "MedianIntensity"),
    ("Location", "CenterMassIntensity_X"),
    ("Location", "CenterMassIntensity_Y"),
    ("Location", "CenterMassIntensity_Z"),
)


def _voxel_size(voxel_size: Any) -> tuple[float, float, float]:
    if voxel_size is None:
        return 1.0, 1.0, 1.0
    try:
        vs = tuple(float(v) for v in np.atleast_1d(np.asarray(voxel_size, dtype=float)))
    except (TypeError, ValueError):
        raise InputError(f"voxel_size must be (z, y, x) in micrometres; got {voxel_size!r}") from None
    if len(vs) != 3 or not all(math.isfinite(v) and v > 0 for v in vs):
        raise InputError(f"voxel_size must be three positive finite numbers (z, y, x) in micrometres; got "
                         f"{voxel_size!r}")
    return vs[0], vs[1], vs[2]


def _channels(intensities: Any, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    from deepscope.measure.objects import _channels as channels

    return channels(intensities, shape, what="volume",
                    layout="one (Z, Y, X) volume per channel (or (Z, Y, X, C)) is needed")


def measure_volume(labels: Any, intensities: Any = None, *, voxel_size: Any = None,
                   object_name: str = "Nuclei") -> pd.DataFrame:
    """Measure volume, surface, shape, position and intensity of every object of a 3D label image.

    Parameters
    ----------
    labels : ndarray of int, (Z, Y, X)
        Instance labels, 0 = background; ids need not be consecutive.
    intensities : ndarray (Z, Y, X) or (Z, Y, X, C), or dict of name -> ndarray (Z, Y, X), optional
        Volumes to measure in each object: one array is the channel ``"Image"``, a 4-D one gives ``"C0"``,
        ``"C1"``, ...; a dict names them. Raw values (computed in float64).
    voxel_size : (float, float, float), optional
        ``(z, y, x)`` in micrometres; without it the physical columns are in voxels (a unit cube).
    object_name : str, default "Nuclei"
        Stored in ``table.attrs["object_name"]``.

    Returns
    -------
    pandas.DataFrame
        One row per object sorted by ``ObjectNumber``: :data:`VOLUME_COLUMNS`, then per channel the columns of
        :data:`VOLUME_INTENSITY_FEATURES` (``Intensity_MeanIntensity_<channel>`` ...; centres of mass in
        voxels). An empty volume gives an empty table with the same columns. ``AreaShape_Sphericity`` is
        ``pi^(1/3) (6 V)^(2/3) / A`` with the physical volume and surface area (about 1 for a sphere).
        ``AreaShape_SurfaceArea`` (voxel units) and ``_um2`` are marching-cubes meshes of each object at level
        0.5 (as CellProfiler meshes the binary mask: a voxelised sphere comes out ~7% over the smooth sphere, so
        its sphericity is ~0.93), and a one-voxel object has a small area, not 6 faces.

    Raises
    ------
    deepscope.errors.InputError
        Labels that are not a 3-D integer image, an intensity volume of another shape or dtype, a channel name
        that is not a valid column name, a voxel size that is not three positive finite numbers.
    """
    import pandas as pd

    lab = as_labels(np.asarray(getattr(labels, "data", labels)), name="labels")
    if lab.ndim != 3:
        raise InputError(f"labels has shape {lab.shape}; measure_volume needs a 3-D label image (Z, Y, X) (2-D "
                         "labels: deepscope.measure.measure_objects)")
    vz, vy, vx = _voxel_size(voxel_size)
    channels = _channels(intensities, lab.shape)
    flat = lab.ravel()
    fg = np.flatnonzero(flat)
    ids, inv = np.unique(flat[fg], return_inverse=True)
    n = len(ids)
    cols: dict[str, Any] = {}
    if n == 0:
        table = pd.DataFrame({c: pd.Series([], dtype=d) for c, d in VOLUME_COLUMNS.items()})
        for ch in channels:
            for prefix, feat in VOLUME_INTENSITY_FEATURES:
                table[f"{prefix}_{feat}_{ch}"] = pd.Series([], dtype="float64")
        table.attrs["object_name"] = object_name
        return table
    z, y, x = np.unravel_index(fg, lab.shape)
    count = np.bincount(inv, minlength=n).astype(np.float64)
    coords = (z.astype(np.float64), y.astype(np.float64), x.astype(np.float64))
    mean = [np.bincount(inv, c, minlength=n) / count for c in coords]
    # central second moments in micrometres -> inertia tensor eigenvalues -> principal axis lengths
    phys = [(coords[i] - mean[i][inv]) * s for i, s in enumerate((vz, vy, vx))]
    cov = np.empty((n, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            cov[:, i, j] = cov[:, j, i] = np.bincount(inv, phys[i] * phys[j], minlength=n) / count
    inertia = np.trace(cov, axis1=1, axis2=2)[:, None, None] * np.eye(3) - cov
    ev = np.sort(np.linalg.eigvalsh(inertia), axis=1)[:, ::-1]  # descending, as skimage
    ev = np.clip(ev, 0, None)
    major = np.sqrt(np.clip(10 * (ev[:, 0] + ev[:, 1] - ev[:, 2]), 0, None))
    inter = np.sqrt(np.clip(10 * (ev[:, 0] - ev[:, 1] + ev[:, 2]), 0, None))
    minor = np.sqrt(np.clip(10 * (-ev[:, 0] + ev[:, 1] + ev[:, 2]), 0, None))
    # the same in voxel units (CellProfiler's columns)
    vox = [coords[i] - mean[i][inv] for i in range(3)]
    cov_v = np.empty((n, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            cov_v[:, i, j] = cov_v[:, j, i] = np.bincount(inv, vox[i] * vox[j], minlength=n) / count
    inertia_v = np.trace(cov_v, axis1=1, axis2=2)[:, None, None] * np.eye(3) - cov_v
    ev_v = np.clip(np.sort(np.linalg.eigvalsh(inertia_v), axis=1)[:, ::-1], 0, None)
    lo = [np.full(n, np.inf) for _ in coords]
    hi = [np.full(n, -np.inf) for _ in coords]
    for i, c in enumerate(coords):
        np.minimum.at(lo[i], inv, c)
        np.maximum.at(hi[i], inv, c)
    lo_i = [a.astype(np.int64) for a in lo]
    hi_i = [a.astype(np.int64) + 1 for a in hi]  # exclusive, as regionprops' bbox
    bbox_vol = (hi_i[0] - lo_i[0]) * (hi_i[1] - lo_i[1]) * (hi_i[2] - lo_i[2])
    voxel_um3 = vz * vy * vx
    surface_um2 = np.array([_surface(lab, int(ids[k]), (lo_i[0][k], lo_i[1][k], lo_i[2][k]),
                                     (hi_i[0][k], hi_i[1][k], hi_i[2][k]), (vz, vy, vx)) for k in range(n)])
    surface_vox = np.array([_surface(lab, int(ids[k]), (lo_i[0][k], lo_i[1][k], lo_i[2][k]),
                                     (hi_i[0][k], hi_i[1][k], hi_i[2][k]), (1.0, 1.0, 1.0)) for k in range(n)])
    vol_um3 = count * voxel_um3
    with np.errstate(divide="ignore", invalid="ignore"):
        sphericity = np.where(surface_um2 > 0, np.pi ** (1 / 3) * (6 * vol_um3) ** (2 / 3) / surface_um2, np.nan)
    cols.update({
        "ObjectNumber": ids.astype(np.int64),
        "AreaShape_Volume": count.astype(np.int64),
        "AreaShape_Volume_um3": vol_um3,
        "AreaShape_SurfaceArea": surface_vox,
        "AreaShape_SurfaceArea_um2": surface_um2,
        "AreaShape_Sphericity": sphericity,
        "AreaShape_EquivalentDiameter": (6 * count / np.pi) ** (1 / 3),
        "AreaShape_EquivalentDiameter_um": (6 * vol_um3 / np.pi) ** (1 / 3),
        "AreaShape_MajorAxisLength": np.sqrt(np.clip(10 * (ev_v[:, 0] + ev_v[:, 1] - ev_v[:, 2]), 0, None)),
        "AreaShape_MinorAxisLength": np.sqrt(np.clip(10 * (-ev_v[:, 0] + ev_v[:, 1] + ev_v[:, 2]), 0, None)),
        "AreaShape_MajorAxisLength_um": major,
        "AreaShape_IntermediateAxisLength_um": inter,
        "AreaShape_MinorAxisLength_um": minor,
        "AreaShape_Extent": count / bbox_vol,
        "AreaShape_BoundingBoxVolume": bbox_vol.astype(np.int64),
        "AreaShape_BoundingBoxMinimum_X": lo_i[2], "AreaShape_BoundingBoxMinimum_Y": lo_i[1],
        "AreaShape_BoundingBoxMinimum_Z": lo_i[0],
        "AreaShape_BoundingBoxMaximum_X": hi_i[2], "AreaShape_BoundingBoxMaximum_Y": hi_i[1],
        "AreaShape_BoundingBoxMaximum_Z": hi_i[0],
        "AreaShape_Center_X": mean[2], "AreaShape_Center_Y": mean[1], "AreaShape_Center_Z": mean[0],
        "Location_Center_X": mean[2], "Location_Center_Y": mean[1], "Location_Center_Z": mean[0],
        "Location_Center_X_um": mean[2] * vx, "Location_Center_Y_um": mean[1] * vy,
        "Location_Center_Z_um": mean[0] * vz,
    })
    for ch, img in channels.items():
        v = img.ravel()[fg].astype(np.float64)
        total = np.bincount(inv, v, minlength=n)
        mu = total / count
        var = np.clip(np.bincount(inv, v * v, minlength=n) / count - mu * mu, 0, None)
        mn = np.full(n, np.inf)
        mx = np.full(n, -np.inf)
        np.minimum.at(mn, inv, v)
        np.maximum.at(mx, inv, v)
        order = np.lexsort((v, inv))
        starts = np.concatenate([[0], np.cumsum(count.astype(np.int64))[:-1]])
        sv = v[order]
        c_i = count.astype(np.int64)
        med = 0.5 * (sv[starts + (c_i - 1) // 2] + sv[starts + c_i // 2])
        with np.errstate(divide="ignore", invalid="ignore"):
            cm = [np.bincount(inv, v * c, minlength=n) / total for c in coords]
        cols.update({
            f"Intensity_IntegratedIntensity_{ch}": total, f"Intensity_MeanIntensity_{ch}": mu,
            f"Intensity_StdIntensity_{ch}": np.sqrt(var), f"Intensity_MinIntensity_{ch}": mn,
            f"Intensity_MaxIntensity_{ch}": mx, f"Intensity_MedianIntensity_{ch}": med,
            f"Location_CenterMassIntensity_X_{ch}": cm[2], f"Location_CenterMassIntensity_Y_{ch}": cm[1],
            f"Location_CenterMassIntensity_Z_{ch}": cm[0],
        })
    table = pd.DataFrame(cols)
    table.attrs["object_name"] = object_name
    table.attrs["voxel_size"] = (vz, vy, vx)
    return table


def _surface(lab: np.ndarray, ident: int, lo: tuple[int, ...], hi: tuple[int, ...],
             spacing: tuple[float, float, float]) -> float:
    """Marching-cubes surface area of one object (its box padded by one voxel so the mesh is closed)."""
    from skimage.measure import marching_cubes, mesh_surface_area

    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    mask = np.pad((lab[box] == ident).astype(np.float32), 1)
    verts, faces, _, _ = marching_cubes(mask, level=0.5, spacing=spacing)
    return float(mesh_surface_area(verts, faces))


def summarize_volume(table: pd.DataFrame, *, object_name: str | None = None) -> dict[str, float | int]:
    """Per-stack summary of a :func:`measure_volume` table: the count and the mean / median / total volume (um^3),
    mean equivalent diameter (um) and mean sphericity.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((6, 12, 12), np.int32); lab[1:4, 1:5, 1:5] = 1; lab[2:5, 6:11, 6:11] = 2
    >>> summarize_volume(measure_volume(lab))["Count_Nuclei"]
    2
    """
    name = object_name or table.attrs.get("object_name", "Nuclei")
    n = int(len(table))
    vol = table["AreaShape_Volume_um3"].to_numpy(float) if n else np.zeros(0)

    def stat(f: Any, a: np.ndarray) -> float:
        return float(f(a)) if len(a) else float("nan")

    return {
        f"Count_{name}": n,
        f"Mean_{name}_AreaShape_Volume_um3": stat(np.mean, vol),
        f"Median_{name}_AreaShape_Volume_um3": stat(np.median, vol),
        f"Total_{name}_AreaShape_Volume_um3": float(vol.sum()),
        f"Mean_{name}_AreaShape_EquivalentDiameter_um": stat(np.mean, table["AreaShape_EquivalentDiameter_um"]
                                                             .to_numpy(float) if n else np.zeros(0)),
        f"Mean_{name}_AreaShape_Sphericity": stat(np.nanmean, table["AreaShape_Sphericity"].to_numpy(float)
                                                  if n else np.zeros(0)),
    }
