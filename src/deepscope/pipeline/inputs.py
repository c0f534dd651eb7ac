"""Finding a pipeline's input files and grouping them into image sets (one per field of view).

Every image set has a stable id (its relative path, or its field's metadata when channels are
grouped), the file of each channel and its metadata (file-name pattern + CSV sidecar). The id
decides the set's result file ``parts/<key>.parquet``, so a run can be resumed.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepscope.errors import InputError, user_stacklevel
from deepscope.pipeline.spec import Inputs

__all__ = ["ImageSet", "discover_image_sets", "set_key", "set_stem", "set_stems"]

_GLOB_CHARS = set("*?[")
_FILE_KEYS = ("filename", "file_name", "file", "image", "image_name", "name", "path")


@dataclass(frozen=True, slots=True)
class ImageSet:
    """One field of view: a file per channel and its metadata.

    Attributes
    ----------
    set_id : str
        Unique, stable name: the file's path relative to the folder given in ``inputs.paths`` (a
        given file's folder, a glob's part before its first wildcard); the files of a second,
        third ... folder get that folder's name in front (``plate2/img_00.tif``). One file per set;
        a link keeps its own name. Or ``key=value`` pairs of the grouping columns
        (``well=A05,site=1``). Adding files or sub-folders under the given paths, or another path
        after them, never changes the ids of the sets already there.
    files : tuple of (str, str)
        ``(channel name, absolute path)`` in channel order.
    metadata : dict
        Values from the file-name pattern and the CSV sidecar that all files of the set share.

    Examples
    --------
    >>> s = ImageSet("a/img1.tif", (("Image", "/data/a/img1.tif"),))
    >>> s.key == set_key("a/img1.tif"), s.paths
    (True, ('/data/a/img1.tif',))
    """

    set_id: str
    files: tuple[tuple[str, str], ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The name of the set's part file (see :func:`set_key`)."""
        return set_key(self.set_id)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p for _, p in self.files)


def set_key(set_id: str) -> str:
    """A file-name-safe key for an image set id: the first 24 hex digits of its SHA-256.

    Examples
    --------
    >>> set_key("img1.tif")
    '50744d61c0cb557f202efd5a'
    """
    return hashlib.sha256(set_id.encode("utf-8", "surrogateescape")).hexdigest()[:24]  # names not in UTF-8 too


def set_stem(set_id: str) -> str:
    """The path (without image extension) under which a set's labels and overlays are written.

    Sub-folders are kept; a field of an OME-Zarr plate is one name (``plate_A_1_0``); characters that
    are unsafe in file names become ``_``.

    Examples
    --------
    >>> set_stem("plate1/A01_s1.TIF"), set_stem("well=A05,site=1"), set_stem("screen/plate.zarr/A/1/0")
    ('plate1/A01_s1', 'well=A05,site=1', 'screen/plate_A_1_0')
    """
    from deepscope.data.loader import image_stem

    parts = [p for p in set_id.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    store = next((i for i, p in enumerate(parts[:-1]) if p.lower().endswith(".zarr")), None)
    if store is not None:  # the groups inside a Zarr store are one image, not sub-folders
        parts = parts[:store] + ["/".join(parts[store:])]
    if parts:
        parts[-1] = image_stem(parts[-1])
    safe = ["".join(c if (c.isalnum() or c in "._-=,+") else "_" for c in p) or "_" for p in parts]
    return "/".join(safe) or "_"


def set_stems(sets: Sequence[ImageSet], recorded: Mapping[str, str] | None = None
              ) -> tuple[dict[str, str], list[str]]:
    """The output stem of every image set (by key), unique in the run, and a warning per set renamed.

    ``recorded`` gives the stems that earlier sessions of the run used (key -> stem, from the
    parts): they are kept, so finished sets keep their files. Every other set gets
    :func:`set_stem` of its id, with a suffix (``_2`` ...) when that name is taken (``cell 1.tif``
    and ``cell_1.tif``, or ``y.tif`` and ``y.png``, would otherwise write the same label file).

    Examples
    --------
    >>> sets = [ImageSet("y.png", ()), ImageSet("y.tif", ()), ImageSet("cell 1.tif", ()), ImageSet("cell_1.tif", ())]
    >>> stems, warned = set_stems(sets)
    >>> [stems[s.key] for s in sets], len(warned)
    (['y', 'y_2', 'cell_1', 'cell_1_2'], 2)
    """
    from deepscope.io import unique_names

    recorded = dict(recorded or {})
    keep = {s.key: recorded[s.key] for s in sets if s.key in recorded}
    rest = [s for s in sets if s.key not in keep]
    names, renamed = unique_names([set_stem(s.set_id) for s in rest], taken=keep.values())
    out = keep | {s.key: n for s, n in zip(rest, names)}
    warned = [f"image sets {rest[i].set_id!r} and another would write labels and overlays under the same name "
              f"{old!r}; {rest[i].set_id!r} writes them as {names[i]!r}" for i, old in renamed]
    return out, warned


def _root_of(entry: str) -> Path:
    """The folder a path entry's set ids are relative to: the folder itself, a file's folder, or the part of a
    glob before its first wildcard."""
    if _GLOB_CHARS & set(entry):
        parts = Path(entry).parts
        static = [q for q in parts[:next(i for i, q in enumerate(parts) if _GLOB_CHARS & set(q))]]
        return Path(os.path.abspath(Path(*static) if static else "."))
    p = Path(os.path.abspath(entry))
    return p if p.is_dir() and not p.name.lower().endswith(".zarr") else p.parent


def _expand(inputs: Inputs, exclude_dirs: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """The input files (paths to read: symbolic links resolved) and their set ids (their path relative to the
    root folder of the entry that found them, links not resolved; see :func:`_set_ids`), in natural order of
    the ids.

    A file reached twice (also through a link) is one input, under its own name rather than a link's.
    A link that cannot be resolved (a loop, a missing target) stays an input, so that it gets an error row;
    so do a device, FIFO or socket with an image name, and a link to one, under the name they were found as.
    """
    from deepscope.io import expand_inputs, image_format, natural_key

    found: list[Path] = []
    roots: list[Path] = []
    owner: list[Path] = []  # the root folder of each found file
    for entry in inputs.paths:
        if _GLOB_CHARS & set(entry):
            matches = sorted(glob.glob(entry, recursive=True))
            if not matches:
                raise FileNotFoundError(f"inputs.paths: the glob '{entry}' matches no file or folder")
            cands = [Path(m) for m in matches]
        else:
            p = Path(entry)
            if not p.exists() and not p.is_symlink():
                raise FileNotFoundError(f"inputs.paths: no such file or folder: '{p}'")
            cands = [p]
        roots.append(_root_of(entry))
        # what a glob (or a path) names that is no image (a CSV beside the images) is not an input
        cands = [c for c in cands if c.is_dir() or image_format(c) is not None]
        if cands:  # folders scanned, plates as their fields: as every command expands its inputs
            found.extend(expand_inputs(cands, include=inputs.include or None, exclude=inputs.exclude or None,
                                       recursive=inputs.recursive, empty="skip",
                                       label_images=inputs.label_images))
        owner += [roots[-1]] * (len(found) - len(owner))
    excluded = [Path(os.path.realpath(d)) for d in exclude_dirs]
    chosen: dict[str, tuple[Path, tuple[Path, str]]] = {}  # real path -> (path to read, (root, path in it))
    links: dict[str, Path] = {}  # real path -> the path it was found as
    for f, root in zip(found, owner):
        link = Path(os.path.abspath(f))
        real = Path(os.path.realpath(link))  # never raises: a loop gives some path, which then fails to read
        if any(r == real or r in real.parents for r in excluded):
            continue  # never read a run's own outputs (labels, overlays) as inputs
        try:
            sid = (root, link.relative_to(root).as_posix())
        except ValueError:  # pragma: no cover - every file lies under its root
            sid = (root, link.as_posix())
        if os.path.exists(real) and not (os.path.isfile(real) or os.path.isdir(real)):
            # a device, FIFO or socket (or a link to one, e.g. to /dev/zero): kept under the name it was found
            # as, so that its error row names that file; the reader refuses it without opening it
            chosen.setdefault(str(link), (link, sid))
            continue
        prev = chosen.get(str(real))
        if prev is None or (link == real and links.get(str(real)) != real):
            chosen[str(real)] = (real, sid)  # the file under its own name wins over a link to it
            links[str(real)] = link
    ids = _set_ids([sid for _, sid in chosen.values()], roots)
    ordered = sorted(zip([f for f, _ in chosen.values()], ids), key=lambda x: natural_key(x[1]))
    return [f for f, _ in ordered], [sid for _, sid in ordered]


def _set_ids(found: Sequence[tuple[Path, str]], roots: Sequence[Path]) -> list[str]:
    """Set ids from ``(root folder, path in it)`` pairs; ``roots``: the root folders in the order given.

    The first root folder's files keep their path in it; every other root folder's files get its
    name as a first folder (``plate2/img.tif``), made unique (``plate2_2``) among the roots and
    against the first root's own top-level names. So an id depends on its own root alone (and on
    whether that root came first), never on the common folder of all the paths: adding a root keeps
    the ids of the roots given before it.
    """
    order = list(dict.fromkeys(roots))
    if not order:
        return []
    first = order[0]
    used = {rel.split("/")[0] for r, rel in found if r == first}
    prefix: dict[Path, str] = {first: ""}
    for r in order[1:]:
        name, k = r.name or "root", 2
        cand = name
        while cand in used:
            cand, k = f"{name}_{k}", k + 1
        used.add(cand)
        prefix[r] = cand + "/"
    return [prefix[r] + rel for r, rel in found]


def _read_sidecar(path: str) -> dict[str, dict[str, Any]]:
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"inputs.metadata: no such CSV file: '{p}'")
    try:
        df = pd.read_csv(p, sep="\t" if p.suffix.lower() == ".tsv" else ",")
    except Exception as exc:  # pandas raises several parser errors
        raise InputError(f"inputs.metadata: '{p}' could not be read as CSV ({exc})") from exc
    key = next((c for c in df.columns if str(c).lower() in _FILE_KEYS), None)
    if key is None:
        raise InputError(f"inputs.metadata: '{p}' has no file-name column (looked for {', '.join(_FILE_KEYS)}); "
                         "name the column holding the image file names 'filename'")
    names = df[key].astype(str).map(lambda s: Path(s).name)
    dup = names[names.duplicated()]
    if len(dup):
        raise InputError(f"inputs.metadata: '{p}' lists {dup.iloc[0]!r} more than once; each file needs one row")
    out: dict[str, dict[str, Any]] = {}
    cols = [c for c in df.columns if c != key]
    for name, row in zip(names, df[cols].itertuples(index=False, name=None)):
        out[name] = {str(c): (v.item() if hasattr(v, "item") else v) for c, v in zip(cols, row)
                     if not (isinstance(v, float) and v != v)}
    return out


def _file_metadata(files: list[Path], inputs: Inputs) -> list[dict[str, Any]]:
    from deepscope.io import get_pattern

    pattern = get_pattern(inputs.pattern)
    sidecar = _read_sidecar(inputs.metadata) if inputs.metadata else None
    rows: list[dict[str, Any]] = []
    unmatched: list[str] = []
    missing: list[str] = []
    for f in files:
        md: dict[str, Any] = {}
        if pattern is not None:
            parsed = pattern.parse(f.name)
            if parsed is None:
                unmatched.append(f.name)
            else:
                md.update(parsed)
        if sidecar is not None:
            row = sidecar.get(f.name)
            if row is None:
                missing.append(f.name)
            else:
                for k, v in row.items():
                    md.setdefault(k, v)
        rows.append(md)
    if unmatched:
        raise InputError(f"inputs.pattern {inputs.pattern!r} does not match {len(unmatched)} of {len(files)} file "
                         f"names, e.g. {', '.join(unmatched[:3])}; fix the pattern or leave those files out with "
                         "inputs.include / inputs.exclude")
    if missing:
        raise InputError(f"inputs.metadata '{inputs.metadata}' has no row for {len(missing)} of {len(files)} files, "
                         f"e.g. {', '.join(missing[:3])}; add them to the CSV or leave them out with inputs.exclude")
    return rows


def discover_image_sets(inputs: Inputs, *, exclude_dirs: Sequence[str | os.PathLike[str]] = ()
                        ) -> tuple[list[ImageSet], list[tuple[str, str]]]:
    """List the image sets of a pipeline's inputs, in a stable order.

    Parameters
    ----------
    inputs : Inputs
        The ``inputs`` section of a :class:`~deepscope.pipeline.Pipeline`.
    exclude_dirs : sequence of path
        Folders whose files are never inputs (the run folder).

    Returns
    -------
    sets : list of ImageSet
        In natural order of their ids.
    skipped : list of (str, str)
        Image sets left out (``incomplete: skip``) and why.

    Raises
    ------
    FileNotFoundError
        A path, glob or the sidecar does not exist.
    deepscope.errors.InputError
        No image files found; a file name the pattern does not match or the sidecar does not list;
        files whose channels do not group into complete fields (the message lists the incomplete
        fields and what each lacks) or two files for one channel of a field.

    Examples
    --------
    >>> from deepscope.pipeline import Pipeline
    >>> import deepscope.demo
    >>> p = Pipeline.from_dict({"inputs": {"paths": [str(deepscope.demo.sample_dir())]},
    ...                         "steps": [{"segment": {"model": "otsu-watershed"}}]})
    >>> sets, skipped = discover_image_sets(p.inputs)
    >>> len(sets), sets[0].set_id, skipped
    (10, 'SIMCEPImages_A02_C5_F1_s01_w1.TIF', [])
    """
    from deepscope.io import natural_key

    files, ids = _expand(inputs, [Path(d) for d in exclude_dirs])
    if not files:
        what = f" matching {list(inputs.include)}" if inputs.include else ""
        raise InputError(f"inputs.paths: no image files{what} found in {', '.join(inputs.paths)} (looked for "
                         f".tif/.tiff/.png/.jpg/.jpeg/.zarr, recursive={inputs.recursive})")
    meta = _file_metadata(files, inputs)
    if inputs.channels is None:
        sets = [ImageSet(sid, ((inputs.channel, str(f)),), md) for f, sid, md in zip(files, ids, meta)]
        return sorted(sets, key=lambda s: natural_key(s.set_id)), []
    return _group(files, meta, inputs)


def _group(files: list[Path], meta: list[dict[str, Any]], inputs: Inputs
           ) -> tuple[list[ImageSet], list[tuple[str, str]]]:
    from deepscope.io import natural_key

    g = inputs.channels
    assert g is not None
    wanted = list(dict.fromkeys(g.names.values()))
    missing_by = [f.name for f, md in zip(files, meta) if g.by not in md]
    if missing_by:
        known = sorted({k for md in meta for k in md})
        raise InputError(f"inputs.channels.by: {g.by!r} is not a metadata column of {len(missing_by)} files, e.g. "
                         f"{missing_by[0]}; the pattern and sidecar give {known}")
    group_by = list(g.group_by) if g.group_by else [k for k in dict.fromkeys(k for md in meta for k in md)
                                                    if k != g.by]
    if not group_by:
        raise InputError("inputs.channels: no metadata column is left to identify the field of view; add groups "
                         "such as (?P<well>...) and (?P<site>...) to inputs.pattern, or set channels.group_by")
    groups: dict[tuple[Any, ...], dict[str, list[Path]]] = {}
    group_meta: dict[tuple[Any, ...], dict[str, Any]] = {}
    ignored: list[str] = []
    for f, md in zip(files, meta):
        absent = [c for c in group_by if c not in md]
        if absent:
            raise InputError(f"inputs.channels.group_by: {f.name} has no metadata {absent[0]!r}; the pattern and "
                             f"sidecar give {sorted(md)}")
        ch = g.names.get(str(md[g.by]))
        if ch is None:
            ignored.append(f.name)
            continue
        key = tuple(md[c] for c in group_by)
        groups.setdefault(key, {}).setdefault(ch, []).append(f)
        if key in group_meta:
            shared = group_meta[key]
            for k in [k for k in shared if md.get(k) != shared[k]]:
                del shared[k]  # keep what every file of the field agrees on
        else:
            group_meta[key] = {k: v for k, v in md.items() if k != g.by}
    if ignored:
        import warnings

        warnings.warn(f"{len(ignored)} files have a {g.by!r} value not in inputs.channels.names (e.g. "
                      f"{ignored[0]}) and are not read", stacklevel=user_stacklevel())
    sets: list[ImageSet] = []
    incomplete: list[tuple[str, str]] = []
    for key, chans in groups.items():
        sid = ",".join(f"{c}={v}" for c, v in zip(group_by, key))
        dup = {c: fs for c, fs in chans.items() if len(fs) > 1}
        if dup:
            c, fs = next(iter(dup.items()))
            raise InputError(f"field {sid} has {len(fs)} files for channel {c!r} ({', '.join(f.name for f in fs)}); "
                             f"add the column that tells them apart to inputs.channels.group_by")
        lacking = [c for c in wanted if c not in chans]
        if lacking:
            have = ", ".join(f"{c}: {chans[c][0].name}" for c in wanted if c in chans)
            incomplete.append((sid, f"missing {', '.join(lacking)} (has {have})"))
            continue
        sets.append(ImageSet(sid, tuple((c, str(chans[c][0])) for c in wanted), group_meta[key]))
    if incomplete and g.incomplete == "error":
        shown = "; ".join(f"{sid}: {why}" for sid, why in incomplete[:10])
        more = f"; and {len(incomplete) - 10} more" if len(incomplete) > 10 else ""
        raise InputError(f"{len(incomplete)} of {len(groups)} fields do not have every channel "
                         f"({', '.join(wanted)}): {shown}{more}. Add the missing files, leave those fields out with "
                         "inputs.exclude, or set inputs.channels.incomplete: skip")
    if not sets:
        raise InputError(f"no field of view has every channel ({', '.join(wanted)}); first: "
                         f"{incomplete[0][0]}: {incomplete[0][1]}" if incomplete else "no image sets found")
    return sorted(sets, key=lambda s: natural_key(s.set_id)), incomplete
