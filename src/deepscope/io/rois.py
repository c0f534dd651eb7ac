"""ImageJ / Fiji ROI sets: instance label images to ``.rois.zip`` and back.

Each object becomes one polygon ROI named by its label id, traced around its pixels at the
midpoints between object and background pixel centres, in ImageJ's coordinates (pixel ``(r, c)``
covers ``[c, c + 1) x [r, r + 1)``). Rasterising those polygons by pixel centres gives back exactly
the objects' pixels, for objects without holes (a hole is filled: ImageJ polygons have none).
Fiji opens the zip with *File > Open* (or the ROI Manager), QuPath with its ImageJ ROI import.

Examples
--------
>>> import tempfile, os, numpy as np
>>> lab = np.zeros((8, 8), np.int32); lab[1:4, 1:3] = 1; lab[5:7, 4:8] = 2
>>> p = write_rois(os.path.join(tempfile.mkdtemp(), "a.rois.zip"), lab)
>>> bool((read_rois(p, lab.shape) == lab).all())
True
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from deepscope.errors import InputError
from deepscope.io.writers import atomic_path

__all__ = ["label_polygons", "write_rois", "read_rois"]


def label_polygons(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(label id, (N, 2) polygon as (x, y) in ImageJ coordinates)`` for every object of a label image."""
    from scipy import ndimage as ndi
    from skimage.measure import find_contours

    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "biu":
        raise InputError(f"labels must be a 2-D integer array, got {labels.dtype} {labels.shape}")
    out = []
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        r0, c0 = sl[0].start - 1, sl[1].start - 1
        mask = np.pad(labels[sl] == i, 1).astype(np.float32)
        # 'high': pixels touching at a corner stay one object, as in the label image
        contours = find_contours(mask, 0.5, fully_connected="high")
        outer = max(contours, key=lambda c: _area(c))
        out.append((i, np.column_stack([outer[:, 1] + c0 + 0.5, outer[:, 0] + r0 + 0.5])))
    return out


def _area(poly: np.ndarray) -> float:
    y, x = poly[:, 0], poly[:, 1]
    return abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))) / 2


def write_rois(path: str | os.PathLike[str], labels: np.ndarray) -> Path:
    """Write the objects of a label image as an ImageJ ROI set (a zip of ``.roi`` files, one polygon per
    object, named by its id), atomically. An image without objects gives an empty zip."""
    import zipfile

    import roifile

    polys = label_polygons(labels)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, xy in polys:
            roi = roifile.ImagejRoi.frompoints(xy.astype(np.float32), name=f"{i:06d}")
            zf.writestr(f"{i:06d}.roi", roi.tobytes())
    return Path(path)


def read_rois(path: str | os.PathLike[str], shape: tuple[int, int]) -> np.ndarray:
    """An ImageJ ROI set (``.zip`` or one ``.roi``) as an int32 label image of ``shape``.

    Polygon, freehand, traced and rectangle ROIs are filled by pixel centres; each ROI gets the id
    in its name where that is a number (as :func:`write_rois` names them), else its position
    (1, 2, ...). Later ROIs are drawn over earlier ones.

    Raises
    ------
    FileNotFoundError
        No such file.
    deepscope.errors.InputError
        Not an ImageJ ROI file, or a ROI type without an outline (a line or a point).
    """
    import roifile
    from skimage.draw import polygon as fill_polygon

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"No such file: '{p}'")
    try:
        rois = roifile.roiread(p)
    except Exception as exc:  # noqa: BLE001  (roifile raises several kinds on foreign files)
        raise InputError(f"'{p}' is not an ImageJ ROI file or set ({exc})") from None
    if not isinstance(rois, list):
        rois = [rois]
    out = np.zeros(shape, np.int32)
    for k, roi in enumerate(rois, start=1):
        xy = np.asarray(roi.coordinates(), np.float64)
        if xy.ndim != 2 or len(xy) < 3:
            raise InputError(f"'{p}': ROI {roi.name or k!r} has no outline (a line or a point); only area ROIs "
                             "become objects")
        name = (roi.name or "").strip()
        i = int(name) if name.isdigit() else k
        rr, cc = fill_polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape)
        out[rr, cc] = i
    return out
