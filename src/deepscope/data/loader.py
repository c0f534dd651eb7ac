"""ImageLoader: build an :class:`ImageDataset` from folders, file lists or zip archives.

Labels come from named regex groups on the file name, a CSV keyed by file name, an array
aligned with an explicit file list, or mask images paired to images by a rule.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.data.dataset import ImageDataset
from deepscope.errors import ImageReadError, InputError, PairingError
from deepscope.io import FilenamePattern, find_images, get_pattern, image_format, open_source, read_image

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ImageLoader", "MaskPairing", "PairRule", "ON_ERROR", "VALIDATE", "image_stem", "check_image"]

logger = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")
VALIDATE = ("header", "full", "none")
_KEY_CANDIDATES = ("filename", "file_name", "file", "image", "image_name", "name", "path")


def image_stem(path: str | os.PathLike[str]) -> str:
    """File name without its image extension (``a.ome.tif`` -> ``a``).

    Examples
    --------
    >>> image_stem("dir/cell_01.ome.tiff"), image_stem("x.TIF"), image_stem("m.labels.tif")
    ('cell_01', 'x', 'm.labels')
    >>> image_stem("data/plate.zarr/B/3/0")
    'plate_B_3_0'
    """
    parts = Path(path).parts
    inside = [i for i, part in enumerate(parts[:-1]) if part.lower().endswith(".zarr")]
    if inside:  # a group inside a Zarr store (a plate's field plate.zarr/A/1/0): plate_A_1_0
        i = inside[-1]
        return "_".join([image_stem(parts[i]), *parts[i + 1:]])
    name = Path(path).name
    low = name.lower()
    for ext in (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".png", ".jpeg", ".jpg", ".zarr",
                ".btf", ".tf8"):
        if low.endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


def check_image(path: str | os.PathLike[str], *, level: str = "header") -> None:
    """Check that ``path`` is a readable image without (``"header"``) or with (``"full"``) decoding.

    Raises
    ------
    FileNotFoundError, deepscope.errors.ImageReadError
    """
    p = Path(path)
    if level == "none":
        return
    if level == "full":
        read_image(p, checksum=False)
        return
    fmt = image_format(p)
    if fmt is None:
        read_image(p)  # raises UnsupportedFormatError
    if fmt == "zarr":
        if not p.is_dir():
            raise ImageReadError(p, "an OME-Zarr image must be a folder")
        return
    from deepscope.io.limits import check_regular_file

    try:
        check_regular_file(p)  # a device is read forever and opening a FIFO blocks: stat it, never open it
    except InputError as exc:
        raise ImageReadError(p, str(exc).removeprefix(f"{p}: ")) from None
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            head = fh.read(32)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ImageReadError(p, f"cannot be read ({exc})") from exc
    if size == 0:
        raise ImageReadError(p, "is empty (0 bytes)")
    if fmt == "png" and not head.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ImageReadError(p, "is not a PNG file (bad signature)")
    if fmt == "jpeg" and not head.startswith(b"\xff\xd8"):
        raise ImageReadError(p, "is not a JPEG file (bad signature)")
    if fmt == "tiff":
        if head[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            raise ImageReadError(p, "is not a TIFF file (bad header); was it renamed from another format?")
        import tifffile

        try:
            with tifffile.TiffFile(p) as tf:
                page = tf.pages.first if hasattr(tf.pages, "first") else tf.pages[0]
                offsets, counts = page.dataoffsets, page.databytecounts
                if offsets and counts and max(o + c for o, c in zip(offsets, counts)) > size:
                    raise ImageReadError(p, f"TIFF is truncated: pixel data runs past the end of the file "
                                            f"({size} bytes)")
        except ImageReadError:
            raise
        except Exception as exc:
            raise ImageReadError(p, f"not a readable TIFF ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True)
class PairRule:
    """How to find the partner file (mask or target image) of an image.

    Exactly one of the rules applies, in this order: ``template`` if given, else ``sub`` if given,
    else the same stem in ``folder``.

    Parameters
    ----------
    folder : str or PathLike
        Folder holding the partner files.
    template : str, optional
        A :meth:`str.format` template over the image's metadata plus ``stem``, ``name`` and
        ``suffix``, e.g. ``"{stem}_mask.png"`` or BBBC005's shared in-focus mask
        ``"SIMCEPImages_A{column:02d}_C{count}_F1_s{site:02d}_w{stain}.TIF"``.
    sub : (str, str), optional
        A regex substitution applied to the image's file name, e.g. the book's rule that one
        F1 mask serves every blur level: ``(r"_F\\d+_", "_F1_")``.
    suffix : str, optional
        With the same-stem rule, only partners with this extension (e.g. ``".png"``).

    Examples
    --------
    >>> rule = PairRule("masks", sub=(r"_F\\d+_", "_F1_"))
    >>> rule.partner_name(Path("SIMCEPImages_A05_C18_F16_s05_w1.TIF"), {})
    'SIMCEPImages_A05_C18_F1_s05_w1.TIF'
    """

    folder: str | os.PathLike[str]
    template: str | None = None
    sub: tuple[str, str] | None = None
    suffix: str | None = None

    def partner_name(self, image: Path, metadata: dict[str, Any]) -> str | None:
        if self.template is not None:
            fields = dict(metadata)
            fields.update(stem=image_stem(image), name=image.name, suffix=image.suffix)
            try:
                return self.template.format(**fields)
            except (KeyError, IndexError, ValueError) as exc:
                raise PairingError(f"template {self.template!r} cannot be filled for '{image.name}': missing "
                                   f"or mismatched field {exc}; available fields: {sorted(fields)}") from exc
        if self.sub is not None:
            from deepscope.io.patterns import pattern_sub

            return pattern_sub(self.sub[0], self.sub[1], image.name)  # stopped after limits().regex_seconds
        return None


#: Masks are paired by a :class:`PairRule` (alias kept for readability in user code).
MaskPairing = PairRule


class ImageLoader:
    """Load image sets with labels and metadata into an :class:`ImageDataset`.

    Parameters
    ----------
    pattern : str or FilenamePattern, optional
        A preset name (``"bbbc005"``) or a regex with named groups searched in each file name;
        every named group becomes a metadata column (numbers become ints).
    labels : str, PathLike, array-like or None
        Where labels come from: a metadata column name (from ``pattern`` or the CSV), a CSV file
        keyed by file name, or an array aligned with an explicit file list (its order is kept).
    label_column : str, optional
        With a CSV: the column holding the label (required when the CSV has several).
    csv_key : str, optional
        With a CSV: the column holding file names (default: the first of ``filename``, ``file``,
        ``image``, ``name``, ``path`` present).
    masks : PairRule, optional
        Pair each image with a label image (instance mask); the dataset's ``y`` are masks.
    targets : PairRule, optional
        Pair each image with a target image (image-to-image tasks).
    weights : array-like, optional
        Per-image weights aligned with an explicit file list.
    include, exclude : str or sequence of str, optional
        File-name globs for folder scans (case-insensitive), e.g. ``"*_w1.TIF"``.
    recursive : bool, default True
        Scan sub-folders.
    on_error : {"raise", "skip"}, default "raise"
        What to do with unreadable files or names the pattern does not match. ``"skip"`` leaves
        them out and lists them (path, reason) in ``dataset.skipped``; nothing is skipped silently.
    validate : {"header", "full", "none"}, default "header"
        How lazily loaded files are checked up front: the header only (fast), a full decode, or not at all.

    Examples
    --------
    >>> loader = ImageLoader(pattern="bbbc005", labels="count")
    >>> ds = loader.load("../shared/data/bbbc005/images")          # doctest: +SKIP
    >>> ds.metadata[["count", "blur", "stain", "field"]].head()  # doctest: +SKIP
    """

    def __init__(self, *, pattern: str | FilenamePattern | None = None, labels: Any = None,
                 label_column: str | None = None, csv_key: str | None = None,
                 masks: PairRule | None = None, targets: PairRule | None = None, weights: Any = None,
                 include: str | Sequence[str] | None = None, exclude: str | Sequence[str] | None = None,
                 recursive: bool = True, on_error: str = "raise", validate: str = "header") -> None:
        if on_error not in ON_ERROR:
            raise InputError(f"on_error={on_error!r} is not one of {ON_ERROR}")
        if validate not in VALIDATE:
            raise InputError(f"validate={validate!r} is not one of {VALIDATE}")
        if masks is not None and targets is not None:
            raise InputError("give masks= or targets=, not both")
        self.pattern = get_pattern(pattern)
        self.labels = labels
        self.label_column = label_column
        self.csv_key = csv_key
        self.masks = masks
        self.targets = targets
        self.weights = weights
        self.include = include
        self.exclude = exclude
        self.recursive = recursive
        self.on_error = on_error
        self.validate = validate

    # ------------------------------------------------------------------ public
    def load(self, source: Any, *, in_memory: bool = False) -> ImageDataset:
        """Load a folder, a zip archive, a single file or an explicit list of files.

        A zip archive is extracted to a temporary folder that is removed afterwards, so its
        images are always loaded into memory.

        Raises
        ------
        FileNotFoundError
            A path does not exist.
        deepscope.errors.InputError
            Empty folder, no matching files, label/file count mismatch, bad CSV.
        deepscope.errors.ImageReadError
            A file is unreadable and ``on_error="raise"``.
        deepscope.errors.PairingError
            A mask/target file is missing for an image.
        """
        if isinstance(source, (str, os.PathLike)):
            p = Path(source)
            if not p.exists():
                raise FileNotFoundError(f"No such file or folder: '{p}'")
            if p.is_file() and p.suffix.lower() == ".zip":
                with open_source(p) as folder:
                    return self._load_paths(self._scan(folder, origin=p), explicit=False, in_memory=True)
            if p.is_dir() and image_format(p) != "zarr":
                return self._load_paths(self._scan(p, origin=p), explicit=False, in_memory=in_memory)
            return self._load_paths([p], explicit=True, in_memory=in_memory)
        paths = [Path(s) for s in source]
        if not paths:
            raise InputError("the list of files is empty; give at least one image path")
        for q in paths:
            if not q.exists():
                raise FileNotFoundError(f"No such image file: '{q}'")
        return self._load_paths(paths, explicit=True, in_memory=in_memory)

    def create_dataset(self, inputs: Any, *, in_memory: bool = False) -> ImageDataset:
        """DeepChem-style entry point: ``inputs`` is a source, or ``(files, labels[, weights])``.

        Examples
        --------
        >>> ds = ImageLoader().create_dataset((files, counts))  # doctest: +SKIP
        """
        if isinstance(inputs, tuple) and len(inputs) in (2, 3):
            files, labels = inputs[0], inputs[1]
            weights = inputs[2] if len(inputs) == 3 else self.weights
            loader = ImageLoader(pattern=self.pattern, labels=labels, label_column=self.label_column,
                                 csv_key=self.csv_key, masks=self.masks, targets=self.targets, weights=weights,
                                 include=self.include, exclude=self.exclude, recursive=self.recursive,
                                 on_error=self.on_error, validate=self.validate)
            if isinstance(files, (str, os.PathLike)):
                return loader.load(files, in_memory=in_memory)
            return loader.load(list(files), in_memory=in_memory)
        return self.load(inputs, in_memory=in_memory)

    # ------------------------------------------------------------------ internals
    def _scan(self, folder: Path, *, origin: Path) -> list[Path]:
        files = find_images(folder, include=self.include, exclude=self.exclude, recursive=self.recursive)
        if self.masks is not None or self.targets is not None:
            rule = self.masks or self.targets
            assert rule is not None
            pf = Path(rule.folder).resolve()
            files = [f for f in files if pf not in f.resolve().parents]
        if not files:
            what = f" matching include={self.include!r}" if self.include else ""
            raise InputError(f"no image files{what} found in '{origin}' (looked for .tif/.tiff/.png/.jpg/"
                             ".jpeg/.zarr, recursive={self.recursive})")
        return files

    def _load_paths(self, paths: list[Path], *, explicit: bool, in_memory: bool) -> ImageDataset:
        import pandas as pd

        skipped: list[tuple[str, str]] = []
        n_in = len(paths)
        keep = np.ones(n_in, dtype=bool)

        # 1. metadata from the file-name pattern
        rows: list[dict[str, Any]] = [{"path": str(p), "filename": p.name} for p in paths]
        if self.pattern is not None:
            unmatched = []
            for i, p in enumerate(paths):
                md = self.pattern.parse(p.name)
                if md is None:
                    unmatched.append(i)
                else:
                    rows[i].update(md)
            if len(unmatched) == n_in:
                raise InputError(f"pattern {self.pattern.name if self.pattern.name != 'custom' else self.pattern.regex!r}"
                                 f" matched none of the {n_in} file names, e.g. '{paths[0].name}'. Check the "
                                 "pattern or filter the files with include=")
            if unmatched:
                if self.on_error == "raise":
                    raise InputError(f"{len(unmatched)} of {n_in} file names do not match the pattern, e.g. "
                                     f"'{paths[unmatched[0]].name}'. Filter them with include=/exclude= or pass "
                                     "on_error='skip' to leave them out")
                for i in unmatched:
                    keep[i] = False
                    skipped.append((str(paths[i]), "file name does not match the pattern"))

        # 2. labels from a CSV
        labels = self.labels
        y: Any = None
        csv_df = None
        if isinstance(labels, (str, os.PathLike)) and str(labels).lower().endswith((".csv", ".tsv")):
            csv_df, key = self._read_csv(Path(labels))
            by_name = csv_df.set_index(key)
            missing = [i for i, p in enumerate(paths) if keep[i] and p.name not in by_name.index]
            if missing:
                msg = (f"{len(missing)} of {n_in} images have no row in '{labels}' (keyed by column {key!r}), "
                       f"e.g. '{paths[missing[0]].name}'")
                if self.on_error == "raise":
                    raise InputError(msg + "; add them to the CSV or pass on_error='skip'")
                for i in missing:
                    keep[i] = False
                    skipped.append((str(paths[i]), f"no row in {Path(labels).name}"))
            for i, p in enumerate(paths):
                if keep[i]:
                    for col, val in by_name.loc[p.name].items():
                        rows[i].setdefault(str(col), _py(val))
            label_col = self.label_column
            if label_col is None:
                others = [c for c in csv_df.columns if c != key]
                if len(others) != 1:
                    raise InputError(f"'{labels}' has columns {others} besides {key!r}; say which holds the label "
                                     "with label_column=")
                label_col = others[0]
            if label_col not in csv_df.columns:
                raise InputError(f"label_column={label_col!r} is not a column of '{labels}'; columns are "
                                 f"{list(csv_df.columns)}")
            labels = label_col  # take it from the merged rows below

        # 3. check the files themselves
        level = "full" if in_memory else self.validate
        if level != "none" and not in_memory:
            for i, p in enumerate(paths):
                if not keep[i]:
                    continue
                try:
                    check_image(p, level=level)
                except ImageReadError as exc:
                    if self.on_error == "raise":
                        raise
                    keep[i] = False
                    skipped.append((str(p), exc.reason))

        # 4. labels from a column or an aligned array
        if isinstance(labels, str):
            col = labels
            missing_col = [i for i in range(n_in) if keep[i] and col not in rows[i]]
            if missing_col:
                known = sorted({k for r in rows for k in r})
                raise InputError(f"no label column {col!r}: the file-name pattern and CSV give {known}")
            y = np.array([rows[i].get(col) for i in range(n_in)], dtype=object)
        elif labels is not None:
            if not explicit:
                raise InputError("labels given as an array need an explicit list of files (a folder scan's "
                                 "order is not yours to rely on); pass load([...files...]) or use a CSV")
            y = np.asarray(labels)
            if len(y) != n_in:
                raise InputError(f"{len(y)} labels for {n_in} files; labels must align one to one with the "
                                 "file list, in the same order")
        w = None
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float32)
            if len(w) != n_in:
                raise InputError(f"{len(w)} weights for {n_in} files; weights must align with the file list")

        # 5. masks / targets
        partners: list[str] | None = None
        rule = self.masks or self.targets
        if rule is not None:
            partners = []
            missing_p: list[tuple[int, str]] = []
            index = _folder_index(Path(rule.folder), rule.suffix)
            for i, p in enumerate(paths):
                if not keep[i]:
                    partners.append("")
                    continue
                name = rule.partner_name(p, rows[i])
                if name is None:
                    cand = index.get(image_stem(p))
                    found = str(cand) if cand else None
                    expected = f"{image_stem(p)}.*"
                else:
                    cp = Path(rule.folder) / name
                    found = str(cp) if cp.exists() else None
                    expected = name
                if found is None:
                    missing_p.append((i, expected))
                    partners.append("")
                else:
                    partners.append(found)
            if missing_p:
                i0, exp0 = missing_p[0]
                what = "mask" if self.masks is not None else "target"
                msg = (f"{len(missing_p)} of {int(keep.sum())} images have no {what} in '{rule.folder}', e.g. "
                       f"'{paths[i0].name}' -> expected '{exp0}'")
                if self.on_error == "raise":
                    raise PairingError(msg + "; check the pairing rule or pass on_error='skip'")
                for i, exp in missing_p:
                    keep[i] = False
                    skipped.append((str(paths[i]), f"no {what} file (expected '{exp}')"))

        idx = np.flatnonzero(keep)
        if len(idx) == 0:
            raise InputError(f"none of the {n_in} files could be loaded; first problem: "
                             f"{skipped[0][0]}: {skipped[0][1]}" if skipped else "no files to load")
        for path, reason in skipped:
            logger.warning("skipped %s: %s", path, reason)
        md = pd.DataFrame([rows[i] for i in idx])
        kept_paths = [str(paths[i]) for i in idx]
        yk = None if y is None else _coerce_labels(y[idx])
        label_kind = None
        if partners is not None:
            yk = [partners[i] for i in idx]
            label_kind = "mask" if self.masks is not None else "image"
            md["mask_path" if self.masks is not None else "target_path"] = yk
        elif yk is not None:
            label_kind = "value"
        ds = ImageDataset(kept_paths, y=yk, w=None if w is None else w[idx], metadata=md, label_kind=label_kind)
        if in_memory:
            ds = self._materialise(ds, skipped)
        ds.skipped = skipped
        return ds

    def _materialise(self, ds: ImageDataset, skipped: list[tuple[str, str]]) -> ImageDataset:
        good = []
        for i in range(len(ds)):
            try:
                ds.get_image(i)
                good.append(i)
            except ImageReadError as exc:
                if self.on_error == "raise":
                    raise
                skipped.append((ds.paths[i] if ds.paths else str(i), exc.reason))  # type: ignore[index]
        ds = ds.select(good).to_memory()
        return ds

    def _read_csv(self, path: Path) -> tuple[pd.DataFrame, str]:
        import pandas as pd

        from deepscope.io.limits import check_regular_file

        check_regular_file(path, what="label file")  # missing: FileNotFoundError; a device or FIFO: InputError
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            df = pd.read_csv(path, sep=sep)
        except Exception as exc:
            raise InputError(f"'{path}' could not be read as CSV ({exc})") from exc
        key = self.csv_key
        if key is None:
            key = next((c for c in df.columns if str(c).lower() in _KEY_CANDIDATES), None)
            if key is None:
                raise InputError(f"'{path}' has no file-name column (looked for {_KEY_CANDIDATES}); name it "
                                 "with csv_key=")
        elif key not in df.columns:
            raise InputError(f"csv_key={key!r} is not a column of '{path}'; columns are {list(df.columns)}")
        df[key] = df[key].astype(str).map(lambda s: Path(s).name)
        dup = df[key][df[key].duplicated()]
        if len(dup):
            raise InputError(f"'{path}' lists {dup.iloc[0]!r} more than once; each file needs one row")
        return df, key


def _folder_index(folder: Path, suffix: str | None) -> dict[str, Path]:
    if not folder.exists():
        raise FileNotFoundError(f"No such mask/target folder: '{folder}'")
    out: dict[str, Path] = {}
    for p in find_images(folder, recursive=False):
        if suffix and not p.name.lower().endswith(suffix.lower()):
            continue
        out.setdefault(image_stem(p), p)
    return out


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _coerce_labels(y: np.ndarray) -> np.ndarray:
    try:
        f = y.astype(np.float64)
    except (TypeError, ValueError):
        return y
    if np.all(np.isfinite(f)) and np.all(f == np.round(f)):
        return f.astype(np.int64)
    return f.astype(np.float32)
