"""OME-Zarr (NGFF 0.4 / 0.5) plates and label images.

- :func:`is_plate` / :func:`plate_fields`: an HCS plate (``plate.zarr`` with ``plate`` metadata) is
  a set of fields of view, ``plate.zarr/<row>/<column>/<field>``, each an OME-Zarr image that
  :func:`deepscope.io.read_image` reads (commands and pipelines expand a plate into its fields);
- :func:`write_ngff_labels`: a label image into an OME-Zarr image's ``labels/<name>`` group, with
  ``multiscales`` and ``image-label`` metadata, in the image's own Zarr format (v2 for NGFF 0.4,
  v3 for 0.5), so napari's and ome-zarr's readers find it beside the image; :func:`create_ngff_labels`
  makes an empty one to fill tile by tile;
- :func:`open_ngff_level`: one resolution level of an OME-Zarr image as its (lazy) Zarr array and the
  file's metadata, for images larger than memory (nothing is decoded until sliced).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.errors import InputError, user_stacklevel

__all__ = ["ngff_attrs", "is_plate", "plate_fields", "open_ngff_level", "write_ngff_labels", "create_ngff_labels",
           "add_ngff_labels", "check_label_name"]


def ngff_attrs(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The OME metadata of a Zarr group (under ``ome`` in NGFF 0.5, at the top in 0.4), or None."""
    import zarr

    p = Path(path)
    if not p.is_dir():
        return None
    try:
        attrs = dict(zarr.open_group(str(p), mode="r").attrs)
    except Exception:  # noqa: BLE001  (not a Zarr group, or a damaged one: not an NGFF group here)
        return None
    return dict(attrs.get("ome", attrs))


def is_plate(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an OME-Zarr HCS plate."""
    attrs = ngff_attrs(path)
    return bool(attrs and "plate" in attrs)


def _inside(plate: Path, root: Path, base: Path, entry: Any, what: str) -> Path:
    """``base / entry["path"]``, a well or field path from a plate's metadata, refused unless it stays inside the
    plate: a relative path without ``..`` whose real location (symbolic links followed) is under ``root``."""
    rel = entry.get("path") if isinstance(entry, dict) else None
    why = ""
    if not isinstance(rel, str) or not rel.strip():
        why = "is not a path (NGFF gives each one a 'path' inside the plate)"
    elif os.path.isabs(rel) or rel.startswith(("/", "\\")):
        why = "is an absolute path"
    elif ".." in rel.replace("\\", "/").split("/"):
        why = "climbs out of its folder with '..'"
    else:
        target = base / rel
        try:
            real = target.resolve()
        except (OSError, RuntimeError) as exc:  # a loop of links
            raise InputError(f"{plate}: the plate's {what} path {rel!r} cannot be followed ({exc}); the plate was "
                             "not read") from None
        if real == root or root in real.parents:
            return target
        why = f"leads outside the plate (to '{real}') through a symbolic link"
    raise InputError(f"{plate}: the plate's {what} path {rel!r} {why}; wells and fields must be folders inside the "
                     "plate, so the plate was refused (none of its fields is read or written). Fix its metadata, or "
                     "copy the images into the plate")


def plate_fields(path: str | os.PathLike[str]) -> list[Path]:
    """The fields of view of a plate, well by well in the plate's order, then field by field.

    Every well and field path comes from the plate's metadata: it must be a relative path that stays inside
    the plate folder, symbolic links followed (labels are written into each field, so a field elsewhere
    would be written to).

    Raises
    ------
    deepscope.errors.InputError
        Not a plate, a well the plate lists that has no ``well`` metadata, or a well or field path that is
        absolute, climbs out with ``..`` or leads outside the plate through a link (each named).
    """
    p = Path(path)
    attrs = ngff_attrs(p)
    if not attrs or "plate" not in attrs:
        raise InputError(f"'{p}' is not an OME-Zarr plate (no 'plate' metadata)")
    try:
        root = p.resolve()
    except (OSError, RuntimeError) as exc:
        raise InputError(f"{p}: the plate's folder cannot be followed ({exc})") from None
    plate = attrs["plate"] if isinstance(attrs["plate"], dict) else {}
    out: list[Path] = []
    for well in plate.get("wells") or []:
        wp = _inside(p, root, p, well, "well")
        wattrs = ngff_attrs(wp)
        if not wattrs or not isinstance(wattrs.get("well"), dict):
            raise InputError(f"'{wp}': the plate lists this well but it has no OME 'well' metadata")
        name = os.path.relpath(wp, p)
        out.extend(_inside(p, root, wp, img, f"field (of well '{name}')")
                   for img in wattrs["well"].get("images") or [])
    return out


def open_ngff_level(path: str | os.PathLike[str], *, level: int = 0, checksum: bool = False) -> tuple[Any, Any]:
    """One resolution level of an OME-Zarr image, lazily: ``(zarr array, Image without pixels)``.

    The :class:`~deepscope.io.Image` holds the file's metadata (axes, shape of that level, pixel size,
    SHA-256 when ``checksum``) and no pixels; slicing the array reads only the chunks it touches, so an
    image larger than memory (or than the pixel limit, which applies to whole decodes) can be processed
    region by region.

    Raises
    ------
    deepscope.errors.ImageReadError
        Not an OME-Zarr image, or no such ``level``.
    deepscope.errors.LimitError
        Chunks that decode to more than the ``chunk_bytes`` limit each (:mod:`deepscope.io.limits`).

    Examples
    --------
    >>> arr, img = open_ngff_level("slide.ome.zarr", level=0)   # doctest: +SKIP
    >>> img.meta.axes, arr.shape, arr[:256, :256].mean()       # doctest: +SKIP
    """
    import zarr

    from deepscope.io.readers import _check_chunks, _read_zarr

    p = Path(path)
    img = _read_zarr(p, checksum=checksum, pixels=False, level=level)
    ds = img.meta.extra["multiscales"]["datasets"][level]
    arr = zarr.open_group(str(p), mode="r")[ds["path"]]
    _check_chunks(p, arr)  # a slice decodes every chunk it touches, whole
    return arr, img


def write_ngff_labels(image_path: str | os.PathLike[str], name: str, labels: np.ndarray, *,
                      chunks: int = 1024) -> Path:
    """Write a 2-D label image into ``<image>/labels/<name>`` of an OME-Zarr image (one resolution level).

    The labels take the image's axes and level-0 scale (a 2-D ``yx`` image, or the ``y``/``x`` plane of
    one with more axes, written with singleton leading axes). An existing label image of that name is
    replaced; other label images are kept in the ``labels`` list.

    Raises
    ------
    deepscope.errors.InputError
        Not an OME-Zarr image, labels of another height/width than its level 0, or a ``name`` or ``labels``
        folder refused by :func:`create_ngff_labels`.
    """
    labels = np.asarray(labels)
    arr = create_ngff_labels(image_path, name, labels.shape, chunks=chunks)
    arr[...] = labels.astype(np.int32, copy=False).reshape(arr.shape)
    return Path(image_path) / "labels" / name


def check_label_name(image_path: str | os.PathLike[str], name: object) -> str:
    """Refuse a label image name that is not one plain folder name inside ``<image>/labels/``.

    The name comes from data (a model card's ``name``, a pipeline's object set): it must be a non-empty
    string without ``/``, ``\\``, control characters or a leading ``.`` (so neither ``..`` nor a hidden
    folder), which is also what NGFF readers list. It is refused, never rewritten, so labels are found
    under the name the user gave.

    Raises
    ------
    deepscope.errors.InputError
        Naming the image, the name and the fix.

    Examples
    --------
    >>> check_label_name("img.zarr", "nuclei")
    'nuclei'
    >>> check_label_name("img.zarr", "../x")
    Traceback (most recent call last):
    ...
    deepscope.errors.InputError: img.zarr: the label image name '../x' is not one folder name ...
    """
    if not isinstance(name, str) or not name:
        why = "is empty" if name == "" else f"is not text ({type(name).__name__})"
    elif "/" in name or "\\" in name:
        why = "holds a path separator"
    elif name.startswith("."):
        why = "starts with '.'"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        why = "holds control characters"
    else:
        return name
    raise InputError(f"{image_path}: the label image name {name!r} is not one folder name ({why}); labels are "
                     f"written only as '<image>/labels/<name>'. Rename the model (its card's 'name') or the object "
                     f"set to letters, digits, '-' and '_'")


def _check_labels_inside(img: Path, name: str) -> None:
    """Refuse ``<image>/labels/<name>`` when ``labels`` or ``<name>`` is a symbolic link: the group is replaced,
    so it must be the image's own, never a store the link leads to."""
    target = img / "labels" / name
    try:
        real, want = target.resolve(), img.resolve() / "labels" / name
    except (OSError, RuntimeError) as exc:  # a loop of links
        raise InputError(f"'{target}' cannot be followed ({exc}); labels not written") from None
    if real != want:
        raise InputError(f"'{target}' leads to '{real}' through a symbolic link; labels are written only into the "
                         "image's own labels/ folder (nothing was replaced). Remove the link")


def create_ngff_labels(image_path: str | os.PathLike[str], name: str, plane: tuple[int, ...], *,
                       chunks: int = 1024) -> Any:
    """Create an empty (all 0) int32 label image ``<image>/labels/<name>`` with its NGFF metadata and return
    its Zarr array, to be filled tile by tile (shape: the image's axes, singleton but for ``y``/``x``).

    An existing label image of that name is replaced; nothing outside ``<image>/labels/`` is touched.

    Raises
    ------
    deepscope.errors.InputError
        Not an OME-Zarr image, a ``plane`` of another height/width than its level 0, a ``name`` that is not
        one folder name (:func:`check_label_name`), or a ``labels`` or ``labels/<name>`` folder that is a
        symbolic link.
    """
    import zarr

    img = Path(image_path)
    check_label_name(img, name)
    attrs = ngff_attrs(img)
    if not attrs or not attrs.get("multiscales"):
        raise InputError(f"'{img}' is not an OME-Zarr image: cannot add labels to it")
    _check_labels_inside(img, name)
    group = zarr.open_group(str(img), mode="r+")
    ms = attrs["multiscales"][0]
    level0 = group[ms["datasets"][0]["path"]]
    shape = tuple(int(s) for s in level0.shape)
    if len(plane) != 2 or tuple(int(s) for s in plane) != shape[-2:]:
        raise InputError(f"labels of shape {tuple(plane)} do not fit the {shape[-2:]} plane of '{img}'")
    full = (1,) * (len(shape) - 2) + shape[-2:]
    version = str(attrs.get("version") or ms.get("version") or "0.4")
    v3 = version.startswith("0.5")
    lab_root = group.require_group("labels")
    names = list((ngff_attrs(img / "labels") or {}).get("labels", []))
    if name in lab_root:
        del lab_root[name]
    lab = lab_root.create_group(name)
    tile = (min(chunks, full[-2]), min(chunks, full[-1]))
    arr = lab.create_array("0", shape=full, dtype="int32", chunks=(1,) * (len(full) - 2) + tile, fill_value=0)
    transforms = ms["datasets"][0].get("coordinateTransformations") or [{"type": "scale",
                                                                          "scale": [1.0] * len(shape)}]
    level = {"name": name, "axes": ms.get("axes"), "datasets": [{"path": "0", "coordinateTransformations": transforms}]}
    meta: dict[str, Any] = {"multiscales": [level if v3 else {"version": version, **level}],
                            "image-label": {"source": {"image": "../../"}} if v3 else
                            {"version": version, "source": {"image": "../../"}}}
    listing = {"labels": sorted(set(names) | {name})}
    if v3:
        lab.attrs["ome"] = {"version": version, **meta}
        lab_root.attrs["ome"] = {"version": version, **listing}
    else:
        lab.attrs.update(meta)
        lab_root.attrs.update(listing)
    return arr


def add_ngff_labels(image_path: str | os.PathLike[str], name: str, labels: np.ndarray) -> Path | None:
    """:func:`write_ngff_labels` for batch outputs: a store that cannot be written, a plane the labels do
    not fit, or a ``name`` that is not one folder name (a model card's) gets a warning naming the image and None
    (the batch's own label file is written anyway)."""
    import warnings

    try:
        return write_ngff_labels(image_path, name, labels)
    except (OSError, InputError) as exc:
        warnings.warn(f"{image_path}: labels not written into the OME-Zarr image ({exc})", stacklevel=user_stacklevel())
        return None
