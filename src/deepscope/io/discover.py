"""Finding image files: folders (recursive, with include globs), explicit lists and zip archives."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from deepscope.errors import InputError
from deepscope.io.readers import image_format

__all__ = ["find_images", "natural_key", "extract_zip", "open_source"]


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
    for dirpath, dirnames, filenames in os.walk(root):
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
    out = []
    for p in found:
        name = p.name.lower()
        if inc and not any(fnmatch.fnmatch(name, g.lower()) for g in inc):
            continue
        if exc and any(fnmatch.fnmatch(name, g.lower()) for g in exc):
            continue
        out.append(p)
    return sorted(out, key=lambda p: natural_key(p.relative_to(root).as_posix()))


def extract_zip(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a zip archive into ``dest`` after checking every member's path.

    Raises
    ------
    deepscope.errors.InputError
        If a member has an absolute path or ``..`` (it would escape ``dest``), or the file is not
        a zip archive.
    """
    archive = Path(archive)
    dest = Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise InputError(f"'{archive}' is not a valid zip archive ({exc})") from exc
    with zf:
        root = dest.resolve()
        for info in zf.infolist():
            name = info.filename
            pp = PurePosixPath(name.replace("\\", "/"))
            if pp.is_absolute() or ".." in pp.parts or re.match(r"^[A-Za-z]:", name):
                raise InputError(f"'{archive}': member '{name}' has an absolute path or '..' and would be "
                                 "written outside the extraction folder; refusing to extract this archive")
            target = (root / pp).resolve()
            if root not in target.parents and target != root:
                raise InputError(f"'{archive}': member '{name}' escapes the extraction folder")
        zf.extractall(root)
    return dest


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


