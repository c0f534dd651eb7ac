"""Finding image files: folders (recursive, with include globs), OME-Zarr plates, explicit lists and zip archives.

:func:`expand_inputs` is the one expansion of what a user names as inputs (files, folders, plates) into the
images to read: the batch commands (``count``, ``segment``, ``restore``), pipelines, the catalog and
``inspect`` all use it, so they see the same images.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath

from deepscope.errors import InputError
from deepscope.io.readers import image_format

__all__ = ["find_images", "expand_inputs", "natural_key", "extract_zip", "open_source", "EMPTY_FOLDER", "LABEL_IMAGES",
           "looks_like_labels"]

#: What :func:`expand_inputs` does with a folder that holds no image: raise an error, or skip it.
EMPTY_FOLDER = ("error", "skip")
#: What a folder scan does with files that look like label images or deepscope's own outputs.
LABEL_IMAGES = ("skip", "include")
#: A file-name stem that names a label image, a mask, ground truth, or an output of deepscope (overlays):
#: the word on its own between separators (``img_mask``, ``a.labels``, ``gt_01``; not ``segment``, ``labelled``).
LABEL_NAME = re.compile(r"(?:^|[_.\-\s])(?:masks?|labels?|gt|ground[_-]?truth|seg|segmentation|overlay)(?:[_.\-\s]|$)",
                        re.IGNORECASE)
#: Folders whose files are label images (a data set's ``masks/`` or ``labels/`` beside its ``images/``).
LABEL_FOLDERS = frozenset({"mask", "masks", "label", "labels", "gt", "ground_truth", "groundtruth"})


def looks_like_labels(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> bool:
    """Whether a file found in a folder scan looks like a label image or an output rather than an image.

    By its name (:data:`LABEL_NAME`: ``cell_mask.png``, ``a.labels.tif``, ``x.overlay.png``) or by a folder
    between ``root`` and it named like :data:`LABEL_FOLDERS` (``masks/``, ``labels/``).

    Examples
    --------
    >>> [looks_like_labels(n) for n in ("img_mask.png", "a.labels.tif", "segment_01.tif", "cells_labelled.tif")]
    [True, True, False, False]
    >>> looks_like_labels("data/masks/img1.png", "data")
    True
    """
    p = Path(path)
    stem = p.name[:-len(p.suffix)] if p.suffix else p.name
    if LABEL_NAME.search(stem):
        return True
    if root is not None:
        try:
            parts = p.parent.relative_to(root).parts
        except ValueError:
            parts = ()
        return any(part.lower() in LABEL_FOLDERS for part in parts)
    return False


def natural_key(s: str) -> list[object]:
    """Sort key that orders ``img2`` before ``img10``.

    Examples
    --------
    >>> sorted(["a10.tif", "a2.tif", "a1.tif"], key=natural_key)
    ['a1.tif', 'a2.tif', 'a10.tif']
    """
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def find_images(folder: str | os.PathLike[str], *, include: str | Sequence[str] | None = None,
                exclude: str | Sequence[str] | None = None, recursive: bool = True) -> list[Path]:
    """List the image files under a folder, in natural order of their relative paths.

    Parameters
    ----------
    folder : str or PathLike
        Folder to scan.
    include : str or sequence of str, optional
        Glob(s) matched against the file name (e.g. ``"*w1*.TIF"``); case-insensitive.
    exclude : str or sequence of str, optional
        Glob(s) of names to leave out.
    recursive : bool, default True
        Descend into sub-folders (hidden folders and ``.zarr`` internals are skipped;
        a ``.zarr`` folder is itself one image).

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist.
    deepscope.errors.InputError
        If ``folder`` is not a folder.
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"No such folder: '{root}'")
    if not root.is_dir():
        raise InputError(f"'{root}' is a file, not a folder; pass folders to scan or files to load")
    inc = [include] if isinstance(include, str) else list(include or [])
    exc = [exclude] if isinstance(exclude, str) else list(exclude or [])
    found: list[Path] = []
    unreadable: list[OSError] = []  # sub-folders that cannot be listed: said (below), not silently skipped

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable.append):
        keep_dirs = []
        for d in dirnames:
            if d.startswith("."):
                continue
            if d.lower().endswith(".zarr"):
                found.append(Path(dirpath) / d)
            elif recursive:
                keep_dirs.append(d)
        dirnames[:] = keep_dirs
        for f in filenames:
            if f.startswith(".") or image_format(f) is None:
                continue
            found.append(Path(dirpath) / f)
    if unreadable:
        import warnings

        from deepscope.errors import user_stacklevel

        for err in unreadable:  # warned here, not from os.walk's callback, so the warning names the caller
            warnings.warn(f"folder '{err.filename}' cannot be read ({err.strerror or err}); its images are left out",
                          stacklevel=user_stacklevel())
    out = []
    for p in found:
        name = p.name.lower()
        if inc and not any(fnmatch.fnmatch(name, g.lower()) for g in inc):
            continue
        if exc and any(fnmatch.fnmatch(name, g.lower()) for g in exc):
            continue
        out.append(p)
    return sorted(out, key=lambda p: natural_key(p.relative_to(root).as_posix()))


def expand_inputs(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
                  include: str | Sequence[str] | None = None, exclude: str | Sequence[str] | None = None,
                  recursive: bool = False, exclude_dirs: Sequence[str | os.PathLike[str]] = (),
                  empty: str = "error", label_images: str = "skip") -> list[Path]:
    """The images that files, folders and OME-Zarr plates name, in order.

    * a folder (not a ``.zarr`` store): its image files (:func:`find_images`: natural order, ``include`` /
      ``exclude`` globs on the names, sub-folders with ``recursive``), a plate among them replaced by its fields;
    * an OME-Zarr HCS plate: its fields of view, well by well (:func:`deepscope.io.ngff.plate_fields`, which
      refuses a well or field path that leads outside the plate);
    * anything else is kept as given: an image file, an OME-Zarr image, a link to nothing, a device, FIFO or
      socket. Whatever cannot be read gets its error when it is read (a row of the batch, not a crash of the
      whole run).

    A path given that does not exist at all is a mistake in the command, not a bad image: it is refused
    before any work starts (``FileNotFoundError``, exit code 2 in the CLI), in every command alike.

    A zip archive is opened first with :func:`open_source` (``deepscope inspect``), then expanded.

    Parameters
    ----------
    paths : path or iterable of paths
    include, exclude : str or sequence of str, optional
        File-name globs (case-insensitive) for folder scans, e.g. ``"*_w1.TIF"``.
    recursive : bool, default False
        Scan sub-folders of folders too.
    exclude_dirs : sequence of paths
        Folders whose files a folder scan leaves out (an output folder inside an input folder).
    empty : {"error", "skip"}, default "error"
        A folder without images: an error, or nothing.
    label_images : {"skip", "include"}, default "skip"
        Files a folder scan finds that look like label images or deepscope's outputs
        (:func:`looks_like_labels`: ``*_mask*``, ``*.labels.*``, ``*.overlay.*``, files under ``masks/``):
        left out with one warning that names them (a mask is not an image to count or segment), or read
        as images. Files named explicitly are always inputs.

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    FileNotFoundError
        A path given that does not exist (named).
    deepscope.errors.InputError
        No path given, a folder without images (``empty="error"``), an unknown ``empty``, or a plate whose
        metadata names a well or field outside it.

    Examples
    --------
    >>> expand_inputs(["missing.tif"])
    Traceback (most recent call last):
    ...
    FileNotFoundError: No such file or folder: 'missing.tif'; check the path (nothing was processed)
    """
    if empty not in EMPTY_FOLDER:
        raise InputError(f"empty={empty!r} is not one of {EMPTY_FOLDER}")
    if label_images not in LABEL_IMAGES:
        raise InputError(f"label_images={label_images!r} is not one of {LABEL_IMAGES}")
    given = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not given:
        raise InputError("no input paths given; pass image files or folders")
    for p in given:
        if not os.path.lexists(p):  # a link to nothing exists as a name: it gets its row when read
            raise FileNotFoundError(f"No such file or folder: '{p}'; check the path (nothing was processed)")
    excluded = [Path(os.path.realpath(d)) for d in exclude_dirs]
    out: list[Path] = []
    for p in given:
        if _is_plate(p):
            out.extend(_plate_fields(p))
        elif p.is_dir() and image_format(p) != "zarr":
            files = find_images(p, include=include, exclude=exclude, recursive=recursive)
            # realpath never raises: a link loop stays an input and gets its error row when it is read
            files = [f for f in files if not any(d in Path(os.path.realpath(f)).parents for d in excluded)]
            if label_images == "skip":
                left = [f for f in files if looks_like_labels(f, p)]
                if left:
                    _warn_labels_left_out(p, left)
                    files = [f for f in files if f not in set(left)]
            files = [g for f in files for g in (_plate_fields(f) if _is_plate(f) else [f])]
            if not files and empty == "error":
                what = f" matching {include!r}" if include else ""
                raise InputError(f"no image files{what} found in folder '{p}' (.tif/.tiff/.png/.jpg/.jpeg/.zarr)")
            out.extend(files)
        else:
            out.append(p)
    return out


def _warn_labels_left_out(folder: Path, left: list[Path]) -> None:
    import warnings

    from deepscope.errors import user_stacklevel

    shown = ", ".join(f.name for f in left[:3]) + (f" and {len(left) - 3} more" if len(left) > 3 else "")
    warnings.warn(f"{folder}: left out {len(left)} file(s) that look like label images or outputs, not images "
                  f"({shown}); name them explicitly, or use --include-labels (label_images='include') to read them "
                  "as images", stacklevel=user_stacklevel())


def _is_plate(p: Path) -> bool:
    if image_format(p) != "zarr":
        return False
    from deepscope.io.ngff import is_plate

    return is_plate(p)


def _plate_fields(p: Path) -> list[Path]:
    from deepscope.io.ngff import plate_fields

    return plate_fields(p)


def extract_zip(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a zip archive into ``dest`` after checking every member's path and size.

    Every member is checked before anything is written: its path must stay inside ``dest``, its
    declared size must be within the zip limits (:mod:`deepscope.io.limits`: per member, per
    archive, and the ratio of uncompressed to compressed size, of each member over 1 MiB and of the
    whole archive once it unpacks to over 64 MiB, so that many small members are no way around it)
    and the archive must fit in the free space of ``dest``. Members are then copied in blocks,
    counting the bytes really produced, per member and across the archive, so a member whose header
    understates its size is stopped at its limit.

    Raises
    ------
    deepscope.errors.InputError
        If a member has an absolute path or ``..`` (it would escape ``dest``), or the file is not
        a zip archive (or not a regular file: a device or FIFO is never opened).
    deepscope.errors.LimitError
        If a member or the archive is over a zip limit (a zip bomb), or does not fit on the disk.
    """
    from deepscope.errors import LimitError
    from deepscope.io.limits import check_regular_file, limits

    archive = Path(archive)
    dest = Path(dest)
    lim = limits()
    # the packed sizes a header claims are capped by the archive's real size, so a lie cannot lower a ratio
    archive_bytes = max(check_regular_file(archive, what="zip archive").st_size, 1)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise InputError(f"'{archive}' is not a valid zip archive ({exc})") from exc
    with zf:
        root = dest.resolve()
        root.mkdir(parents=True, exist_ok=True)
        total = packed_total = 0
        members = zf.infolist()
        for info in members:
            name = info.filename
            pp = PurePosixPath(name.replace("\\", "/"))
            if pp.is_absolute() or ".." in pp.parts or re.match(r"^[A-Za-z]:", name):
                raise InputError(f"'{archive}': member '{name}' has an absolute path or '..' and would be "
                                 "written outside the extraction folder; refusing to extract this archive")
            target = (root / pp).resolve()
            if root not in target.parents and target != root:
                raise InputError(f"'{archive}': member '{name}' escapes the extraction folder")
            size, packed = int(info.file_size), min(max(int(info.compress_size), 1), archive_bytes)
            total += size
            packed_total += packed
            if lim.exceeded("zip_member_bytes", size):
                raise LimitError(f"'{archive}': member '{name}' unpacks to {size:,} bytes, over the limit of "
                                 f"{lim.zip_member_bytes:,} per member; nothing was extracted. If the archive is "
                                 f"genuine, {lim.how_to_raise('zip_member_bytes')}")
            if size > (1 << 20) and lim.exceeded("zip_ratio", size / packed):
                raise LimitError(f"'{archive}': member '{name}' unpacks {size / packed:,.0f} times its packed "
                                 f"size ({packed:,} -> {size:,} bytes), over the limit of {lim.zip_ratio:g}: a zip "
                                 f"bomb? Nothing was extracted. If the archive is genuine, "
                                 f"{lim.how_to_raise('zip_ratio')}")
        packed_total = min(max(packed_total, 1), archive_bytes)
        if total > _WHOLE_RATIO_FROM and lim.exceeded("zip_ratio", total / packed_total):
            raise LimitError(f"'{archive}' unpacks {total / packed_total:,.0f} times its packed size "
                             f"({packed_total:,} -> {total:,} bytes in {len(members):,} members), over the limit of "
                             f"{lim.zip_ratio:g} for a whole archive that unpacks to over "
                             f"{_WHOLE_RATIO_FROM >> 20} MiB: a zip bomb? Nothing was extracted. If the archive is "
                             f"genuine, {lim.how_to_raise('zip_ratio')}")
        if lim.exceeded("zip_total_bytes", total):
            raise LimitError(f"'{archive}' unpacks to {total:,} bytes, over the limit of {lim.zip_total_bytes:,} per "
                             f"archive; nothing was extracted. Unpack it yourself, or "
                             f"{lim.how_to_raise('zip_total_bytes')}")
        free = shutil.disk_usage(root).free
        if total > free:
            raise LimitError(f"'{archive}' unpacks to {total:,} bytes but {root} has {free:,} bytes free; nothing "
                             "was extracted. Free some space or set TMPDIR to a larger disk")
        written = [0]  # bytes really written by all members, against the archive's declared total
        for info in members:
            _extract_member(zf, info, root, archive, written=written, total=total)
    return dest


#: An archive that unpacks to more than this (bytes) has its whole ratio checked (the ``zip_ratio`` limit).
_WHOLE_RATIO_FROM = 64 << 20


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path, archive: Path, *,
                    written: list[int], total: int) -> None:
    """Copy one member in blocks, stopping when it produces more bytes than it declared, or when the archive
    (``written[0]``, shared by every member) produces more than its declared ``total``."""
    from deepscope.errors import LimitError

    target = root / PurePosixPath(info.filename.replace("\\", "/"))
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    allowed = int(info.file_size)
    done = 0
    try:
        with zf.open(info) as src, open(target, "wb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                done += len(block)
                written[0] += len(block)
                if done > allowed:
                    raise LimitError(f"'{archive}': member '{info.filename}' unpacks to more than the {allowed:,} "
                                     "bytes its header declares (a zip bomb?); extraction stopped")
                if written[0] > total:
                    raise LimitError(f"'{archive}' unpacks to more than the {total:,} bytes its members declare "
                                     f"(a zip bomb?); extraction stopped at member '{info.filename}'")
                out.write(block)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        target.unlink(missing_ok=True)
        raise InputError(f"'{archive}': member '{info.filename}' cannot be extracted ({exc}); the archive is damaged, "
                         "encrypted or uses an unsupported compression") from exc
    except BaseException:
        target.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def open_source(source: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a folder for ``source``: the folder itself, or a zip extracted to a temporary folder.

    The temporary folder is removed when the block ends, even on error.
    """
    p = Path(source)
    if p.is_file() and p.suffix.lower() == ".zip":
        tmp = Path(tempfile.mkdtemp(prefix="deepscope-zip-"))
        try:
            extract_zip(p, tmp)
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        yield p


