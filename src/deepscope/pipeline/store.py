"""The run folder: its manifest, the per-image-set parts, resume bookkeeping and the final tables.

Layout of ``RUN_DIR``::

    run.json                 pipeline hash, sessions, status and summary
    pipeline.yaml            the resolved pipeline (defaults filled in, paths absolute)
    parts/<kk>/<key>.parquet one per image set: its object rows; status, error, input SHA-256s and
                             the image row in the Parquet schema metadata (written atomically)
    labels/, overlays/       label images (lineage inside) and overlays (lineage sidecar)
    tracks/                  track steps' CTC results and tables, per image set (lineage sidecars)
    images.parquet/.csv      one row per image set, committed once from the parts at the end
    objects.parquet/.csv     one row per object
    skipped.csv              image sets left out (incomplete channel groups), when any

A part exists only once it is complete (temporary name, then rename), so after any interruption
the parts on disk are exactly the finished image sets, and the tables are rebuilt from them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepscope.errors import DeepscopeError, InputError
from deepscope.pipeline.inputs import ImageSet
from deepscope.pipeline.steps import PART_META_KEY, PART_SCHEMA, conform, part_path, read_part_meta, write_part
from deepscope.predict.runner import TRANSIENT_ERRNOS

if TYPE_CHECKING:
    import pyarrow as pa

    from deepscope.provenance.lineage import Record

__all__ = ["RunDirError", "RUN_SCHEMA", "MANIFEST", "ON_CHANGE", "Resume", "read_manifest", "write_manifest",
           "check_run_dir", "prepare_run_dir", "lock_run_dir", "scan_parts", "plan_resume", "failed_for_environment",
           "write_error_part",
           "Block", "BlockResult", "build_block", "plan_blocks", "commit_tables", "Committed", "TABLE_NAMES"]

logger = logging.getLogger(__name__)

#: Schema tag of ``run.json``.
RUN_SCHEMA = "deepscope.run/1"
#: The manifest's file name.
MANIFEST = "run.json"
#: What to do when the run folder holds results of another pipeline or of changed inputs.
ON_CHANGE = ("refuse", "rerun")
#: Base names of the committed tables.
TABLE_NAMES = ("images", "objects")
#: Tables written beside them (the per-object tables have the object sets' names; run.json lists them).
DERIVED_TABLES = ("wells",)
#: What a run writes, and so what ``on_change="rerun"`` may remove (nothing else is ever deleted).
_OWNED = ("parts", "commit", "labels", "overlays", "tracks", "pipeline.yaml", "skipped.csv", "report.html", MANIFEST) + tuple(
    f"{t}.{ext}{side}" for t in TABLE_NAMES + DERIVED_TABLES for ext in ("parquet", "csv")
    for side in ("", ".prov.json"))


class RunDirError(DeepscopeError, ValueError):
    """The run folder cannot be used: another pipeline's results, changed inputs, or not a run folder."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_manifest(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``run.json`` of a run folder, or None when there is none.

    Raises
    ------
    RunDirError
        If ``run.json`` exists but is not a deepscope run manifest.
    """
    p = Path(run_dir) / MANIFEST
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"'{p}' is not a readable run manifest ({exc}); was the folder made by something "
                          "else? Choose another --out") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if not isinstance(data, dict) or schema != RUN_SCHEMA:
        raise RunDirError(f"'{p}' is not a deepscope run manifest (schema {schema!r}); choose another --out")
    return data


def write_manifest(run_dir: str | os.PathLike[str], manifest: Mapping[str, Any]) -> Path:
    """Write ``run.json`` atomically."""
    from deepscope.io import write_text

    return write_text(Path(run_dir) / MANIFEST, json.dumps(dict(manifest), indent=1, default=str) + "\n")


@contextlib.contextmanager
def lock_run_dir(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on a run folder (``RUN_DIR/.lock``) for the life of one driver.

    The lock is an OS file lock, so a killed driver releases it. Without ``fcntl`` (Windows) no
    lock is taken.

    Raises
    ------
    RunDirError
        If another ``deepscope run`` is using the folder now.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(run_dir) / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RunDirError(f"'{run_dir}' is in use by another deepscope run (it holds {path}); wait for it to "
                              "finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def _clear(run_dir: Path) -> None:
    manifest = read_manifest(run_dir) or {}
    listed = [t for t in manifest.get("tables") or [] if isinstance(t, str) and t == Path(t).name]
    for name in _OWNED + tuple(f"{t}{side}" for t in listed for side in ("", ".prov.json")):
        p = run_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def check_run_dir(run_dir: str | os.PathLike[str]) -> None:
    """Refuse a path that is a file, or a folder that holds files but no run manifest.

    Raises
    ------
    RunDirError
        With what was found there and the fix.
    """
    d = Path(run_dir)
    if d.exists() and not d.is_dir():
        raise RunDirError(f"--out '{d}' is a file; give a folder for the run's results")
    if d.is_dir() and read_manifest(d) is None:
        others = [p.name for p in d.iterdir() if p.name != ".lock"]
        if others:
            raise RunDirError(f"--out '{d}' is not empty and holds no deepscope run (no {MANIFEST}; found "
                              f"{', '.join(sorted(others)[:5])}); choose a new or empty folder")


def prepare_run_dir(run_dir: str | os.PathLike[str], *, pipeline_hash: str, pipeline_name: str,
                    on_change: str = "refuse") -> tuple[dict[str, Any], bool]:
    """Create a run folder, or check that an existing one belongs to this pipeline.

    Parameters
    ----------
    run_dir : str or PathLike
        The folder (created when missing).
    pipeline_hash : str
        :meth:`Pipeline.hash` of the pipeline to run.
    pipeline_name : str
        For messages and the manifest.
    on_change : {"refuse", "rerun"}
        For a folder holding another pipeline's run: stop with an error, or delete that run's
        results (only the files a run writes) and start again.

    Returns
    -------
    manifest : dict
        The existing manifest, or a new one (not yet written).
    fresh : bool
        True when nothing of an earlier run is kept.

    Raises
    ------
    RunDirError
        The folder holds files but no run manifest, or (with ``on_change="refuse"``) the run of
        another pipeline.
    deepscope.errors.InputError
        ``on_change`` is not one of :data:`ON_CHANGE`.
    """
    if on_change not in ON_CHANGE:
        raise InputError(f"on_change={on_change!r} is not one of {ON_CHANGE}")
    d = Path(run_dir)
    check_run_dir(d)
    new = {"schema": RUN_SCHEMA, "pipeline_hash": pipeline_hash, "pipeline_name": pipeline_name,
           "created": _now(), "status": "new", "sessions": []}
    if not d.exists():
        d.mkdir(parents=True)
        return new, True
    manifest = read_manifest(d)
    if manifest is None:
        return new, True
    if manifest.get("pipeline_hash") != pipeline_hash:
        if on_change == "refuse":
            raise RunDirError(
                f"--out '{d}' holds the results of another pipeline ({manifest.get('pipeline_name')!r}, hash "
                f"{str(manifest.get('pipeline_hash'))[:12]}, made {manifest.get('created')}); this pipeline "
                f"({pipeline_name!r}) has hash {pipeline_hash[:12]}: its steps, models or channel grouping differ. "
                "Choose another --out, or pass --on-change rerun to delete those results and run this pipeline")
        logger.warning("deleting the results of pipeline %s in %s (on_change=rerun)",
                       str(manifest.get("pipeline_hash"))[:12], d)
        _clear(d)
        return new, True
    return manifest, False


def _part_files(run_dir: Path) -> Iterator[Path]:
    parts = run_dir / "parts"
    if not parts.is_dir():
        return
    with os.scandir(parts) as top:
        for sub in top:
            if not sub.is_dir():
                continue
            with os.scandir(sub.path) as it:
                for e in it:
                    if e.name.endswith(".parquet"):
                        yield Path(e.path)


def scan_parts(run_dir: str | os.PathLike[str], *, threads: int = 8) -> dict[str, dict[str, Any]]:
    """The descriptions of the finished parts of a run folder, by key.

    Temporary files left by killed workers are removed; a part that cannot be read is removed
    too (its image set is then processed again).
    """
    d = Path(run_dir)
    paths: list[Path] = []
    for p in _part_files(d):
        if p.name.startswith("."):
            with contextlib.suppress(OSError):
                p.unlink()
        else:
            paths.append(p)

    def read(p: Path) -> dict[str, Any] | None:
        try:
            return read_part_meta(p)
        except InputError as exc:
            logger.warning("removing unreadable part %s (%s); its image set will be processed again", p, exc)
            with contextlib.suppress(OSError):
                p.unlink()
            return None

    out: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for p, meta in zip(paths, pool.map(read, paths)):
            if meta is not None and meta.get("key") == p.stem:
                out[p.stem] = meta
    return out


@dataclass(frozen=True)
class Resume:
    """How the image sets of a run relate to the parts already in its folder.

    Attributes
    ----------
    todo : list of ImageSet
        To process now (new, retried, or changed with ``on_change="rerun"``).
    done : int
        Sets whose part is current (same pipeline, same input bytes).
    changed : list of (str, str)
        ``(set_id, what changed)`` for sets whose input files differ from those of their part.
    failed_before : int
        Sets whose current part holds an error (processed again with ``retry_failed``).
    stale : int
        Parts of image sets that are no longer among the inputs (left out of the tables).
    """

    todo: list[ImageSet]
    done: int
    changed: list[tuple[str, str]]
    failed_before: int
    stale: int


def _same_files(s: ImageSet, meta: Mapping[str, Any], *, rehash: bool) -> str | None:
    """None if the set's files are those its part was made from, else what differs."""
    from deepscope.io import sha256_file

    recorded = meta.get("files") or []
    if [(f.get("channel"), f.get("path")) for f in recorded] != [tuple(x) for x in s.files]:
        return "its files are not the same files"
    for f in recorded:
        path = f["path"]
        try:
            st = os.stat(path)
        except OSError:
            return f"{Path(path).name} cannot be read"
        if not rehash and f.get("size") == st.st_size and f.get("mtime_ns") == st.st_mtime_ns:
            continue  # same size and modification time: the bytes hashed then (rsync's rule)
        if f.get("sha256") is None or sha256_file(path) != f["sha256"]:
            return f"{Path(path).name} changed (SHA-256 differs from the one its results were made from)"
    return None


#: Error texts of environmental failures in parts written before parts said so themselves (``retry``).
_ENVIRONMENTAL = re.compile(r"\[Errno (?:%s)\]|MemoryError" % "|".join(str(n) for n in sorted(TRANSIENT_ERRNOS)))


def failed_for_environment(meta: Mapping[str, Any]) -> bool:
    """Whether a failed part failed for a reason of the machine (disk full, I/O error ...), not of its input:
    such sets are processed again by a plain rerun.

    Examples
    --------
    >>> failed_for_environment({"status": "failed", "error": "OSError: [Errno 28] No space left on device"})
    True
    >>> failed_for_environment({"status": "failed", "error": "a.tif: not a readable TIFF"})
    False
    """
    if meta.get("status") == "ok":
        return False
    if meta.get("retry") is not None:
        return bool(meta["retry"])
    return bool(_ENVIRONMENTAL.search(str(meta.get("error") or "")))


def plan_resume(sets: Sequence[ImageSet], parts: Mapping[str, Mapping[str, Any]], *, pipeline_hash: str,
                retry_failed: bool = False, rehash: bool = False) -> Resume:
    """Decide which image sets still need processing.

    A set is done when its part was made by this pipeline from the same bytes: same size and
    modification time as recorded, or else the same SHA-256 (``rehash=True`` always compares
    SHA-256s). A set whose part failed is done too (its error row stands), unless ``retry_failed``
    or it failed for an environmental reason (:func:`failed_for_environment`: a full disk, an I/O
    error), which a plain rerun retries.
    """
    todo: list[ImageSet] = []
    changed: list[tuple[str, str]] = []
    done = failed_before = 0
    keys = set()
    for s in sets:
        keys.add(s.key)
        meta = parts.get(s.key)
        if meta is None or meta.get("pipeline_hash") != pipeline_hash or meta.get("set_id") != s.set_id:
            todo.append(s)
            continue
        why = _same_files(s, meta, rehash=rehash)
        if why is not None:
            changed.append((s.set_id, why))
            todo.append(s)
            continue
        if meta.get("status") != "ok":
            failed_before += 1
            if retry_failed or failed_for_environment(meta):
                todo.append(s)
                continue
        done += 1
    stale = sum(1 for k in parts if k not in keys)
    return Resume(todo=todo, done=done, changed=changed, failed_before=failed_before, stale=stale)


def write_error_part(run_dir: str | os.PathLike[str], s: ImageSet, error: str, *, pipeline_hash: str, run_id: str,
                     objects_schema: pa.Schema) -> Path:
    """Write the part of an image set whose worker never reported (it died with it): an error row."""
    import deepscope
    from deepscope.io import sha256_file

    files = []
    for ch, path in s.files:
        info: dict[str, Any] = {"channel": ch, "path": path, "sha256": None, "size": None, "mtime_ns": None}
        with contextlib.suppress(OSError):
            st = os.stat(path)
            info.update(size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=sha256_file(path))
        files.append(info)
    meta = {"schema": PART_SCHEMA, "key": s.key, "set_id": s.set_id, "status": "failed", "error": error,
            "files": files, "input_sha256": files[0]["sha256"] if len(files) == 1 else None, "image": {},
            "seconds": None, "pipeline_hash": pipeline_hash, "run_id": run_id,
            "deepscope_version": deepscope.__version__}
    return write_part(part_path(run_dir, s.key), objects_schema.empty_table(), meta)


# ---------------------------------------------------------------------------------------------- commit
def _metadata_table(sets: Sequence[ImageSet]) -> pa.Table:
    import pandas as pd
    import pyarrow as pa

    from deepscope.io import safe_text

    df = pd.DataFrame([{k: safe_text(v) if isinstance(v, str) else v for k, v in s.metadata.items()} for s in sets])
    cols = {}
    for c in df.columns:
        col = df[c]
        try:
            arr = pa.array(col.tolist(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = pa.array([None if v is None or v != v else str(v) for v in col.tolist()], pa.string())
        if pa.types.is_null(arr.type):
            arr = arr.cast(pa.string())
        cols[f"Metadata_{c}"] = arr
    return pa.table(cols) if cols else pa.table({"_": pa.nulls(len(sets))}).drop(["_"])


def _image_schema(file_channels: Sequence[str], meta_schema: pa.Schema, value_types: Sequence[tuple[str, str]],
                  model_cols: Mapping[str, str]) -> pa.Schema:
    import pyarrow as pa

    fields: list[tuple[str, pa.DataType]] = [("ImageNumber", pa.int64()), ("set_id", pa.string()),
                                             ("path", pa.string()), ("status", pa.string()),
                                             ("error", pa.string()), ("input_sha256", pa.string())]
    for ch in file_channels:
        fields += [(f"FileName_{ch}", pa.string()), (f"PathName_{ch}", pa.string()), (f"Sha256_{ch}", pa.string())]
    fields += [("Height", pa.int64()), ("Width", pa.int64())]
    fields += [(f.name, f.type) for f in meta_schema]
    fields += [(name, {"int64": pa.int64(), "string": pa.string()}.get(t, pa.float64())) for name, t in value_types]
    fields += [("seconds", pa.float64()), ("pipeline_hash", pa.string())]
    fields += [(name, pa.string()) for name in model_cols]
    fields += [("deepscope_version", pa.string()), ("run_id", pa.string())]
    names = [n for n, _ in fields]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError(f"image table columns {sorted(dup)} would appear twice; rename the metadata column(s) "
                         "or the object sets")
    return pa.schema(fields)


def _image_rows(metas: Sequence[Mapping[str, Any]], numbers: Sequence[int], schema: pa.Schema,
                meta_chunk: pa.Table, model_cols: Mapping[str, str]) -> pa.Table:
    import pyarrow as pa

    from deepscope.io import safe_text

    cols: dict[str, list[Any]] = {f.name: [] for f in schema}
    for n, m in zip(numbers, metas):
        files = {f["channel"]: f for f in m.get("files") or []}
        image = m.get("image") or {}
        row: dict[str, Any] = {"ImageNumber": n, "set_id": m["set_id"],
                               "path": (m.get("files") or [{}])[0].get("path"), "status": m.get("status"),
                               "error": m.get("error"), "input_sha256": m.get("input_sha256"),
                               "seconds": m.get("seconds"), "pipeline_hash": m.get("pipeline_hash"),
                               "deepscope_version": m.get("deepscope_version"), "run_id": m.get("run_id")}
        for ch, f in files.items():
            row[f"FileName_{ch}"] = Path(f["path"]).name
            row[f"PathName_{ch}"] = str(Path(f["path"]).parent)
            row[f"Sha256_{ch}"] = f.get("sha256")
        row.update(image)
        row.update(model_cols)
        for name, values in cols.items():
            v = row.get(name)
            values.append(safe_text(v) if isinstance(v, str) else v)  # names not in UTF-8: bytes escaped
    arrays = [meta_chunk.column(f.name) if f.name in meta_chunk.column_names
              else pa.array(cols[f.name], type=f.type, from_pandas=True) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class Block:
    """A block of consecutive image sets whose parts one worker turns into table rows (see :func:`build_block`).

    ``key`` and ``set_id`` name the block in executor messages.
    """

    key: str
    set_id: str
    run_dir: str
    start: int
    part_keys: tuple[str, ...]
    set_ids: tuple[str, ...]
    image_schema: pa.Schema
    objects_schema: pa.Schema
    model_cols: dict[str, str]


@dataclass(frozen=True)
class BlockResult:
    """What :func:`build_block` reports: counts and the first failures."""

    key: str
    n_images: int
    n_objects: int
    n_failed: int
    failures: list[tuple[str, str]]


def _block_path(run_dir: str | os.PathLike[str], key: str, table: str) -> Path:
    return Path(run_dir) / "commit" / f"{key}.{table}.parquet"


def build_block(job_json: str, block: Block) -> BlockResult:
    """Read the parts of a block of image sets and write its image rows and object rows (in order).

    Runs on any worker (the signature is an executor task's), so committing a large run is
    spread over the cluster; the driver then only concatenates the blocks.

    Raises
    ------
    deepscope.errors.InputError
        If a part is missing or cannot be read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepscope.io import atomic_path

    metas: list[dict[str, Any]] = []
    objs: list[pa.Table] = []
    failures: list[tuple[str, str]] = []
    n_failed = 0
    for i, (key, sid) in enumerate(zip(block.part_keys, block.set_ids)):
        p = part_path(block.run_dir, key)
        if not p.is_file():
            raise InputError(f"image set {sid} has no result part ({p}); the run is not finished")
        try:
            pf = pq.ParquetFile(p)
            meta = json.loads((pf.metadata.metadata or {})[PART_META_KEY])
            t = pf.read(use_threads=False)  # ~2x faster than read_table for small files
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise InputError(f"result part '{p}' of {sid} cannot be read ({exc}); delete it and run again") from exc
        metas.append(meta)
        t = conform(t.replace_schema_metadata(None), block.objects_schema)
        objs.append(t.add_column(0, "ImageNumber", pa.array([block.start + 1 + i] * t.num_rows, pa.int64())))
        if meta.get("status") != "ok":
            n_failed += 1
            if len(failures) < 20:
                failures.append((str(meta.get("set_id")), str(meta.get("error"))))
    numbers = range(block.start + 1, block.start + 1 + len(metas))
    images = _image_rows(metas, numbers, block.image_schema, pa.table({}), block.model_cols)
    obj_schema = pa.schema([pa.field("ImageNumber", pa.int64())] + list(block.objects_schema))
    objects = pa.concat_tables(objs) if objs else obj_schema.empty_table()
    for name, table in (("images", images), ("objects", objects)):
        with atomic_path(_block_path(block.run_dir, block.key, name)) as tmp:
            pq.write_table(table, tmp, compression="lz4")
    return BlockResult(block.key, len(metas), objects.num_rows, n_failed, failures)


@dataclass(frozen=True)
class Committed:
    """What :func:`commit_tables` wrote.

    Attributes
    ----------
    tables : dict of str to pathlib.Path
        ``"images.parquet"`` etc. -> path.
    n_images, n_objects, n_failed : int
        Rows of the images and objects tables, and image sets with an error row.
    failures : list of (str, str)
        ``(set_id, error)`` of the first 20 failed sets.
    inputs : list of lineage.InputRef
        Every input file (path, SHA-256), or empty beyond ``inline_inputs`` files.
    extra : dict
        Counts and a digest of all input files, for the lineage record.
    """

    tables: dict[str, Path]
    n_images: int
    n_objects: int
    n_failed: int
    failures: list[tuple[str, str]]
    inputs: list[Any]
    extra: dict[str, Any]


#: ``map_blocks(build_block, blocks) -> iterable of BlockResult`` (any order), e.g. an executor's map.
BlockMap = Callable[[Callable[[str, Block], BlockResult], Sequence[Block]], Iterable[BlockResult]]


def plan_blocks(run_dir: str | os.PathLike[str], sets: Sequence[ImageSet], *, image_schema: pa.Schema,
                objects_schema: pa.Schema, model_cols: Mapping[str, str], chunk: int = 2000) -> list[Block]:
    """Split a run's image sets into blocks of ``chunk`` consecutive sets for :func:`build_block`."""
    return [Block(key=f"block-{i // chunk:06d}", set_id=f"table rows {i + 1}-{min(i + chunk, len(sets))}",
                  run_dir=str(run_dir), start=i, part_keys=tuple(s.key for s in sets[i:i + chunk]),
                  set_ids=tuple(s.set_id for s in sets[i:i + chunk]), image_schema=image_schema,
                  objects_schema=objects_schema, model_cols=dict(model_cols))
            for i in range(0, len(sets), chunk)]


def _serial_map(fn: Callable[[str, Block], BlockResult], blocks: Sequence[Block]) -> Iterator[BlockResult]:
    for b in blocks:
        yield fn("", b)


def commit_tables(run_dir: str | os.PathLike[str], sets: Sequence[ImageSet], *, file_channels: Sequence[str],
                  objects_schema: pa.Schema, value_types: Sequence[tuple[str, str]],
                  model_cols: Mapping[str, str], formats: Sequence[str],
                  record_for: Callable[[Path, list[Any], dict[str, Any]], Record] | None = None,
                  map_blocks: BlockMap | None = None, chunk: int = 2000,
                  inline_inputs: int = 10_000) -> Committed:
    """Build ``images.*`` and ``objects.*`` from the parts, and replace them atomically.

    Two stages: blocks of ``chunk`` consecutive image sets are turned into rows by
    :func:`build_block` (in parallel on the workers when ``map_blocks`` is an executor's map),
    then the blocks are concatenated in order into the final files. Image sets are numbered
    ``ImageNumber`` 1..N in the order of ``sets``; object rows carry their set's ``ImageNumber``.
    Memory is bounded by one block, whatever the run's size.

    Parameters
    ----------
    run_dir : str or PathLike
    sets : sequence of ImageSet
        Every image set of the run, each of which has a part.
    file_channels : sequence of str
        Channel names of the files of a set (``FileName_<ch>`` columns).
    objects_schema : pyarrow.Schema
        :func:`~deepscope.pipeline.steps.objects_schema` of the pipeline.
    value_types : sequence of (str, str)
        :func:`~deepscope.pipeline.steps.image_value_types` of the pipeline.
    model_cols : mapping of str to str
        Constant lineage columns (``Model_<name>``, ``ModelSha256_<name>``).
    formats : sequence of str
        ``parquet`` and/or ``csv``.
    record_for : callable, optional
        ``record_for(path, inputs, extra) -> lineage.Record``; each Parquet table gets its record
        in its schema metadata (written with the footer, so the table is written once).
    map_blocks : callable, optional
        ``map_blocks(build_block, blocks)`` yielding the results in any order; default in this process.
    chunk : int
        Image sets per block.
    inline_inputs : int
        List input files in the lineage record up to this many; beyond, only their digest.

    Returns
    -------
    Committed

    Raises
    ------
    deepscope.errors.InputError
        If an image set has no part (the run is not finished) or a part cannot be read.
    """
    import hashlib

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from deepscope.io import atomic_path, csv_arrow
    from deepscope.provenance.lineage import InputRef, embed_metadata

    d = Path(run_dir)
    meta_table = _metadata_table(sets)
    img_schema = _image_schema(file_channels, meta_table.schema, value_types, model_cols)
    block_schema = pa.schema([f for f in img_schema if f.name not in meta_table.column_names])
    obj_schema = pa.schema([pa.field("ImageNumber", pa.int64())] + list(objects_schema))
    blocks = plan_blocks(d, sets, image_schema=block_schema, objects_schema=objects_schema, model_cols=model_cols,
                         chunk=chunk)
    n_files = sum(len(s.files) for s in sets)
    shutil.rmtree(d / "commit", ignore_errors=True)
    results = {r.key: r for r in (map_blocks or _serial_map)(build_block, blocks)}
    missing = [b.set_id for b in blocks if b.key not in results]
    if missing:
        raise InputError(f"{len(missing)} block(s) of the tables were not built ({missing[0]}); run again")
    written: dict[str, Path] = {}
    refs: list[Any] = []
    digest = hashlib.sha256()
    n_files = n_objects = n_failed = 0
    failures: list[tuple[str, str]] = []
    with contextlib.ExitStack() as stack:
        writers: dict[str, Any] = {}
        for table, schema in (("images", img_schema), ("objects", obj_schema)):
            for fmt in formats:
                name = f"{table}.{fmt}"
                tmp = stack.enter_context(atomic_path(d / name))
                if fmt == "parquet":  # store_schema=False: the footer metadata is the schema metadata
                    writers[name] = pq.ParquetWriter(tmp, schema, compression="zstd", store_schema=False)
                else:
                    writers[name] = pacsv.CSVWriter(tmp, schema)
                written[name] = d / name
        for b in blocks:
            r = results[b.key]
            n_objects += r.n_objects
            n_failed += r.n_failed
            failures.extend(r.failures[:max(0, 20 - len(failures))])
            block_images = pq.ParquetFile(_block_path(d, b.key, "images")).read()
            columns = [tuple(block_images.column(f"{c}_{ch}").to_pylist() for c in ("PathName", "FileName", "Sha256"))
                       for ch in file_channels]
            for i in range(block_images.num_rows):  # every input file, in table order
                for folders, names, shas in columns:
                    if names[i] is None:
                        continue
                    path = os.path.join(folders[i], names[i])
                    digest.update(f"{path}\0{shas[i]}\n".encode())
                    if n_files <= inline_inputs:
                        refs.append(InputRef(path, shas[i]))
            meta_slice = meta_table.slice(b.start, len(b.part_keys))
            images = pa.Table.from_arrays(
                [meta_slice.column(f.name) if f.name in meta_slice.column_names else block_images.column(f.name)
                 for f in img_schema], schema=img_schema)
            objects = pq.ParquetFile(_block_path(d, b.key, "objects")).read().cast(obj_schema)
            for fmt in formats:  # CSV: text cells a spreadsheet would run as formulas get a leading '
                writers[f"images.{fmt}"].write_table(csv_arrow(images) if fmt == "csv" else images)
                writers[f"objects.{fmt}"].write_table(csv_arrow(objects) if fmt == "csv" else objects)
        extra: dict[str, Any] = {"image_sets": len(sets), "input_files": n_files,
                                 "inputs_digest": digest.hexdigest(), "failed": n_failed}
        if n_files > inline_inputs:
            extra["inputs_note"] = (f"{n_files} input files, too many to list here: every row of images.* has the "
                                    "path and SHA-256 of its files")
            refs = []
        for name, w in writers.items():
            if name.endswith(".parquet"):
                if record_for is not None:
                    w.add_key_value_metadata(embed_metadata(record_for(d / name, refs, extra)))
                w.add_key_value_metadata({"deepscope.table": name.split(".")[0]})
            w.close()
    shutil.rmtree(d / "commit", ignore_errors=True)
    return Committed(tables=written, n_images=len(sets), n_objects=n_objects, n_failed=n_failed,
                     failures=failures, inputs=refs, extra=extra)
