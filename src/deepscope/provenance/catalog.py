"""A content-addressed catalog of images, their acquisition metadata, runs and lineage.

Images are keyed by the SHA-256 of their bytes; the path is an attribute. A file moved to a new
place is the same image (its path is updated); a file whose bytes changed is a new image, and
the old record is marked ``replaced_by`` the new one and reported as *changed*.

Backends: SQLite by default (a file such as ``deepscope.db``, WAL journal, writers serialised
with ``BEGIN IMMEDIATE`` and a 60 s busy timeout, so several processes can add at once) and
PostgreSQL when given a ``postgresql://`` URL (psycopg 3). Files are read and hashed outside
transactions; each batch of images (with all their metadata rows) is written in one
transaction, so a process killed mid-way leaves every image it catalogued complete and a rerun
adds the rest.

Examples
--------
>>> import tempfile, os, numpy as np, tifffile
>>> d = tempfile.mkdtemp()
>>> for i in range(3):
...     tifffile.imwrite(os.path.join(d, f"img_w{i % 2 + 1}.tif"), np.full((4, 4), i, np.uint8))
>>> cat = Catalog(os.path.join(d, "deepscope.db"))
>>> report = cat.add(d, pattern=r"_w(?P<stain>\\d)", overrides={"objective.na": 0.45})
>>> report.counts["added"]
2
>>> [os.path.basename(i.path) for i in cat.query(["stain=2"])]
['img_w2.tif']
>>> cat.add(d, pattern=r"_w(?P<stain>\\d)", overrides={"objective.na": 0.45}).counts["unchanged"]
2
>>> cat.close()
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from deepscope.errors import DeepscopeError, ImageReadError, InputError
from deepscope.io import safe_text
from deepscope.provenance import migrations
from deepscope.provenance.meta import (Channel, ImageMeta, canonical_key, format_value, key_leaf, key_name)
from deepscope.provenance.sources import Conflict, MergedMeta, MetadataSources, file_meta

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from deepscope.io import FileMeta
    from deepscope.provenance.lineage import Record, Run

__all__ = ["Catalog", "CatalogError", "CatalogImage", "AddResult", "AddReport", "CheckIssue", "Condition",
           "ADD_STATUS", "CHECK_KINDS", "EXPORT_FORMATS", "IMAGE_COLUMNS", "parse_where", "resolve_url"]

logger = logging.getLogger(__name__)

#: What :meth:`Catalog.add` did with each file.
ADD_STATUS = ("added", "unchanged", "updated", "moved", "changed", "duplicate", "failed")
#: Kinds of :class:`CheckIssue`.
CHECK_KINDS = ("missing-field", "undersampled", "missing-file")
#: Formats of :meth:`Catalog.export`.
EXPORT_FORMATS = ("csv", "parquet")
#: Image facts that ``where`` conditions may name besides metadata keys.
IMAGE_COLUMNS = ("sha256", "path", "name", "format", "dtype", "axes", "bit_depth", "pages", "compression",
                 "size_bytes")
_NUMERIC_COLUMNS = ("bit_depth", "pages", "size_bytes")
_FIXED_COLUMNS = ("sha256", "path", "name", "format", "shape", "dtype", "bit_depth", "pages", "axes",
                  "compression", "size_bytes", "added", "updated", "replaced_by")


class CatalogError(DeepscopeError):
    """The catalog cannot be opened or written, or holds no such image or run."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _mask(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def resolve_url(url: str | os.PathLike[str]) -> str:
    """Turn a catalog location into an SQLAlchemy URL.

    A plain path becomes ``sqlite:///<absolute path>``; ``postgresql://`` and ``postgres://``
    use psycopg 3 (``postgresql+psycopg://``).

    Raises
    ------
    deepscope.errors.InputError
        If the URL's scheme is neither SQLite nor PostgreSQL.

    Examples
    --------
    >>> resolve_url("postgresql://me@db.lab:5432/images")
    'postgresql+psycopg://me@db.lab:5432/images'
    >>> resolve_url("/data/deepscope.db")
    'sqlite:////data/deepscope.db'
    """
    s = os.fspath(url)
    if "://" not in s:
        return "sqlite:///" + os.path.abspath(s)
    scheme, rest = s.split("://", 1)
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + rest
    if scheme == "sqlite" or scheme.startswith(("sqlite+", "postgresql+")):
        return s
    raise InputError(f"catalog URL {_mask(s)!r}: scheme {scheme!r} is not supported; use a file path "
                     "(SQLite, e.g. deepscope.db) or postgresql://user@host:port/dbname")


# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class AddResult:
    """What :meth:`Catalog.add` did with one file.

    Attributes
    ----------
    path : str
        The file.
    status : str
        One of :data:`ADD_STATUS`: ``added`` (new image), ``unchanged``, ``updated`` (same bytes,
        new metadata), ``moved`` (same bytes, new path; path updated), ``changed`` (new bytes at a
        catalogued path: a new image, the old one marked replaced), ``duplicate`` (same bytes
        as an image catalogued at another path that still exists), ``failed``.
    sha256 : str or None
        SHA-256 of the file's bytes (None when it could not be read).
    detail : str
        The old path (moved), the old SHA-256 (changed), the other path (duplicate) or the
        reason (failed).
    """

    path: str
    status: str
    sha256: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class AddReport:
    """Outcome of :meth:`Catalog.add`: one :class:`AddResult` per file, conflicts and notes.

    Attributes
    ----------
    results : tuple of AddResult
    conflicts : tuple of (str, Conflict)
        Metadata conflicts per file path.
    notes : tuple of (str, str)
        Path and note (e.g. a file name the pattern did not match).
    """

    results: tuple[AddResult, ...] = ()
    conflicts: tuple[tuple[str, Conflict], ...] = ()
    notes: tuple[tuple[str, str], ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        """Number of files per status (every status of :data:`ADD_STATUS` present)."""
        out = dict.fromkeys(ADD_STATUS, 0)
        for r in self.results:
            out[r.status] += 1
        return out

    def by_status(self, status: str) -> list[AddResult]:
        """The results with one status."""
        return [r for r in self.results if r.status == status]

    @property
    def failed(self) -> list[tuple[str, str]]:
        """``(path, reason)`` of every file that could not be catalogued."""
        return [(r.path, r.detail) for r in self.results if r.status == "failed"]

    def summary(self) -> str:
        """One line: how many files of each status, failures and conflicts."""
        c = self.counts
        parts = [f"{c[s]} {s}" for s in ADD_STATUS if c[s] or s in ("added", "unchanged")]
        line = f"{len(self.results)} file(s): " + ", ".join(parts)
        if self.conflicts:
            line += f"; {len(self.conflicts)} metadata conflict(s)"
        return line


@dataclass(frozen=True)
class CatalogImage:
    """One catalogued image: file facts and merged metadata.

    Attributes
    ----------
    sha256, path, name : str
    size_bytes : int or None
    format, dtype, axes, compression : str or None
    shape : tuple of int
    bit_depth, pages : int or None
    meta : ImageMeta
    conflicts : tuple of dict
        Metadata conflicts found when it was catalogued.
    added, updated : str
        ISO 8601 times (UTC).
    replaced_by : str or None
        SHA-256 of the content that replaced this one at :attr:`path`.
    """

    sha256: str
    path: str
    name: str
    size_bytes: int | None
    format: str | None
    shape: tuple[int, ...]
    dtype: str | None
    bit_depth: int | None
    pages: int | None
    axes: str | None
    compression: str | None
    meta: ImageMeta
    conflicts: tuple[dict[str, Any], ...] = ()
    added: str = ""
    updated: str = ""
    replaced_by: str | None = None

    def to_row(self) -> dict[str, Any]:
        """A flat dict: file facts then every metadata key (for tables and export)."""
        row: dict[str, Any] = {
            "sha256": self.sha256, "path": self.path, "name": self.name, "format": self.format,
            "shape": "x".join(map(str, self.shape)), "dtype": self.dtype, "bit_depth": self.bit_depth,
            "pages": self.pages, "axes": self.axes, "compression": self.compression,
            "size_bytes": self.size_bytes, "added": self.added, "updated": self.updated,
            "replaced_by": self.replaced_by,
        }
        row.update(self.meta.flatten())
        return row


@dataclass(frozen=True)
class CheckIssue:
    """A problem :meth:`Catalog.check` found with one image.

    Attributes
    ----------
    sha256, path : str
    kind : str
        One of :data:`CHECK_KINDS`.
    message : str
    """

    sha256: str
    path: str
    kind: str
    message: str


@dataclass(frozen=True)
class Condition:
    """One ``where`` condition: ``key op value`` (see :func:`parse_where`)."""

    key: str
    op: str
    value: str


def parse_where(text: str | Condition) -> Condition:
    """Parse ``"key=value"`` (also ``!=``, ``<``, ``<=``, ``>``, ``>=``) into a :class:`Condition`.

    ``=`` compares numbers numerically and text case-insensitively; ``*`` in the value is a
    wildcard (``stain=Hoe*``).

    Raises
    ------
    deepscope.errors.InputError
        If ``text`` has no operator or no key.

    Examples
    --------
    >>> parse_where("blur=48"), parse_where("objective.na >= 0.5").op
    (Condition(key='blur', op='=', value='48'), '>=')
    """
    if isinstance(text, Condition):
        return text
    m = re.match(r"^\s*([^=!<>]+?)\s*(!=|>=|<=|==|=|>|<)\s*(.*?)\s*$", str(text))
    if not m or not m.group(1):
        raise InputError(f"where condition {text!r} must be KEY=VALUE (or KEY!=VALUE, KEY<VALUE, KEY<=VALUE, "
                         "KEY>VALUE, KEY>=VALUE), e.g. blur=48 or channels.stain=DAPI")
    op = "=" if m.group(2) == "==" else m.group(2)
    return Condition(m.group(1), op, m.group(3))


@dataclass
class _Prepared:
    fm: FileMeta
    merged: MergedMeta
    size: int
    path: str = field(init=False)

    def __post_init__(self) -> None:
        self.path = self.fm.path


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------- the catalog

class Catalog:
    """The image catalog (SQLAlchemy Core over SQLite or PostgreSQL).

    Parameters
    ----------
    url : str or PathLike, default "deepscope.db"
        A file path (SQLite, created if missing), an ``sqlite:///`` URL or a
        ``postgresql://user@host:port/dbname`` URL.
    echo : bool, default False
        Log every SQL statement (debugging).

    Raises
    ------
    deepscope.errors.InputError
        If the URL scheme is not supported.
    CatalogError
        If the database cannot be opened (server down, folder missing, psycopg not installed),
        or was written by a newer deepscope (schema version too high).

    Examples
    --------
    >>> import tempfile, os
    >>> with Catalog(os.path.join(tempfile.mkdtemp(), "deepscope.db")) as cat:
    ...     cat.schema_version, len(cat.list())
    (1, 0)
    """

    def __init__(self, url: str | os.PathLike[str] = "deepscope.db", *, echo: bool = False) -> None:
        self.url = resolve_url(url)
        self._engine = self._create_engine(self.url, echo=echo)
        self.dialect = self._engine.dialect.name
        md = sa.MetaData()
        self._t = migrations.define_tables(md)
        try:
            found, now = migrations.migrate(self._engine)
        except migrations.SchemaTooNew as exc:
            self._engine.dispose()
            raise CatalogError(f"catalog {_mask(self.url)} has schema version {exc.found}, newer than this "
                               f"deepscope supports ({exc.supported}); upgrade deepscope to open it") from None
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            self._engine.dispose()
            raise CatalogError(f"cannot open catalog {_mask(self.url)}: {getattr(exc, 'orig', exc)}. Check that "
                               "the folder exists and is writable, or that the server is running and the "
                               "URL (user, host, port, database) is right") from None
        if found != now:
            logger.info("catalog %s migrated from schema version %d to %d", _mask(self.url), found, now)

    # ------------------------------------------------------------------ engine
    @staticmethod
    def _create_engine(url: str, *, echo: bool) -> sa.Engine:
        if url.startswith("postgresql"):
            try:
                return sa.create_engine(url, echo=echo, pool_pre_ping=True)
            except ModuleNotFoundError as exc:
                raise CatalogError(f"PostgreSQL catalogs need psycopg 3 ({exc}); install it with "
                                   "pip install 'deepscope[postgres]'") from None
        memory = url in ("sqlite://", "sqlite:///:memory:") or ":memory:" in url
        if not memory:
            db_path = Path(sa.engine.make_url(url).database or "")
            if not db_path.parent.is_dir():
                raise CatalogError(f"cannot create catalog '{db_path}': folder '{db_path.parent}' does not "
                                   "exist; create it first")
        kwargs: dict[str, Any] = {"echo": echo, "connect_args": {"timeout": 60.0}}
        if memory:
            kwargs["poolclass"] = sa.pool.StaticPool
            kwargs["connect_args"]["check_same_thread"] = False
        engine = sa.create_engine(url, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 60000")
            for attempt in range(50):
                try:
                    cur.execute("PRAGMA journal_mode = WAL")
                    break
                except Exception:  # "database is locked" while another process creates the file
                    if attempt == 49:
                        raise
                    time.sleep(0.05 + random.random() * 0.1)
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            # writers take the write lock up front: no deadlock-prone lock upgrades, and the
            # busy timeout applies; readers use deferred transactions (WAL lets them run alongside)
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("deepscope_read") else
                                 "BEGIN IMMEDIATE")

        return engine

    def _read(self) -> Any:
        conn = self._engine.connect()
        conn.execution_options(deepscope_read=True)
        return conn

    def _write(self, fn: Callable[[sa.Connection], Any], *, what: str) -> Any:
        """Run ``fn(conn)`` in one write transaction, retrying on lock timeouts and deadlocks."""
        delay, attempts = 0.05, 8
        while True:
            attempts -= 1
            try:
                with self._engine.begin() as conn:
                    return fn(conn)
            except sa.exc.DBAPIError as exc:
                msg = str(getattr(exc, "orig", exc)).lower()
                retry = isinstance(exc, sa.exc.OperationalError) and any(
                    s in msg for s in ("locked", "busy", "deadlock", "could not serialize"))
                if not retry or attempts == 0:
                    raise CatalogError(f"catalog {_mask(self.url)}: {what} failed: {getattr(exc, 'orig', exc)}"
                                       ) from None
                logger.info("catalog busy (%s); retrying %s", msg.splitlines()[0], what)
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)

    def _insert(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table).on_conflict_do_nothing()

    @property
    def schema_version(self) -> int:
        """The database's schema version."""
        with self._read() as conn:
            return migrations.current_version(conn)

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({_mask(self.url)!r})"

    # ------------------------------------------------------------------ add
    def add(self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
            pattern: Any = None, meta: Any = None, sources: MetadataSources | None = None,
            overrides: Mapping[str, Any] | None = None, include: str | Sequence[str] | None = None,
            recursive: bool = True, discover: bool = True, batch_size: int = 200,
            verify: str = "header") -> AddReport:
        """Catalog image files and folders (content-addressed, idempotent, batch-atomic).

        Parameters
        ----------
        paths : path or iterable of paths
            Image files, folders (scanned for images, recursively by default) and OME-Zarr plates
            (each field of view is one image), expanded as every command expands its inputs
            (:func:`deepscope.io.expand_inputs`). An iterable is consumed lazily.
        pattern : str or FilenamePattern, optional
            File-name pattern (preset such as ``"bbbc005"`` or regex with named groups).
        meta : path or sequence of paths, optional
            YAML defaults and/or CSV sidecars (see :class:`MetadataSources`).
        sources : MetadataSources, optional
            Use these sources instead of ``pattern``/``meta``/``discover``.
        overrides : mapping, optional
            Metadata applied to every file, strongest of all sources.
        include : str or sequence of str, optional
            File-name globs for folder scans.
        recursive : bool, default True
            Scan sub-folders.
        discover : bool, default True
            Use ``deepscope-meta.yaml``/``deepscope-meta.csv`` found beside the images.
        batch_size : int, default 200
            Images written per transaction.
        verify : {"header", "full"}, default "header"
            Parse TIFF headers only (fast) or decode every image.

        Returns
        -------
        AddReport
            One result per file; unreadable files (and a plate whose metadata leads outside it) are
            ``failed`` rows, never an exception.

        Raises
        ------
        FileNotFoundError
            If a path given in a list does not exist.
        deepscope.errors.InputError
            If ``batch_size`` < 1, ``verify`` is unknown, or the pattern is invalid.
        deepscope.errors.ConfigError
            If a YAML or CSV of metadata is invalid.
        CatalogError
            If the database cannot be written.
        """
        if batch_size < 1:
            raise InputError(f"batch_size={batch_size} must be at least 1")
        if verify not in ("header", "full"):
            raise InputError(f"verify={verify!r} is not one of ('header', 'full')")
        if overrides:
            ImageMeta.from_flat(overrides)  # fail early on a bad override
        src = sources if sources is not None else MetadataSources(pattern=pattern, meta=meta, discover=discover)
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        elif isinstance(paths, Sequence):
            for p in paths:
                if not Path(p).exists():
                    raise FileNotFoundError(f"No such file or folder: '{p}'")
        results: list[AddResult] = []
        conflicts: list[tuple[str, Conflict]] = []
        notes: list[tuple[str, str]] = []
        batch: list[_Prepared] = []
        for f in self._expand(paths, include=include, recursive=recursive):
            if isinstance(f, AddResult):  # an input that could not be expanded (a plate refused)
                results.append(f)
                continue
            try:
                fm = file_meta(f, verify=verify)
                if safe_text(fm.path) != fm.path:  # a name not in UTF-8: kept with its odd bytes escaped
                    fm = dataclasses.replace(fm, path=safe_text(fm.path))
                merged = src.gather(fm, overrides=overrides)
                prep = _Prepared(fm, merged, os.stat(f).st_size if Path(f).is_file() else 0)
            except (ImageReadError, InputError, OSError) as exc:
                reason = exc.reason if isinstance(exc, ImageReadError) else str(exc)
                results.append(AddResult(str(f), "failed", None, reason))
                logger.warning("not catalogued: %s: %s", f, reason)
                continue
            conflicts.extend((prep.path, c) for c in merged.conflicts)
            notes.extend((prep.path, n) for n in merged.notes)
            batch.append(prep)
            if len(batch) >= batch_size:
                results.extend(self._write_batch(batch))
                batch = []
        if batch:
            results.extend(self._write_batch(batch))
        return AddReport(tuple(results), tuple(conflicts), tuple(notes))

    @staticmethod
    def _expand(paths: Iterable[str | os.PathLike[str]], *, include: Any,
                recursive: bool) -> Iterator[Path | AddResult]:
        """The images of each input in turn (lazily), or a failed result for an input that cannot be expanded."""
        from deepscope.io import expand_inputs

        for item in paths:
            try:
                yield from expand_inputs([item], include=include, recursive=recursive, empty="skip")
            except InputError as exc:
                logger.warning("not catalogued: %s: %s", item, exc)
                yield AddResult(str(item), "failed", None, str(exc))

    def _meta_rows(self, sha: str, merged: MergedMeta) -> list[dict[str, Any]]:
        rows = []
        for k, v in merged.meta.flatten().items():
            rows.append({"sha256": sha, "key": k, "name": key_name(k), "leaf": key_leaf(k),
                         "value_text": format_value(v), "value_num": float(v) if _is_num(v) else None,
                         "source": merged.sources.get(k, "")})
        return rows

    def _write_batch(self, batch: list[_Prepared]) -> list[AddResult]:
        return self._write(lambda conn: self._write_batch_tx(conn, batch), what=f"adding {len(batch)} image(s)")

    def _write_batch_tx(self, conn: sa.Connection, batch: list[_Prepared]) -> list[AddResult]:
        images, metadata = self._t["images"], self._t["metadata"]
        shas = sorted({b.fm.sha256 for b in batch})
        paths = sorted({b.path for b in batch})
        existing = {r.sha256: r for r in conn.execute(
            sa.select(images.c.sha256, images.c.path, images.c.meta_json, images.c.conflicts_json,
                      images.c.replaced_by, images.c.size_bytes).where(images.c.sha256.in_(shas)))}
        at_path = {r.path: r.sha256 for r in conn.execute(
            sa.select(images.c.path, images.c.sha256).where(images.c.path.in_(paths),
                                                           images.c.replaced_by.is_(None)))}
        now = _now()
        new_images: list[dict[str, Any]] = []
        new_meta: list[dict[str, Any]] = []
        refresh: dict[str, dict[str, Any]] = {}   # sha -> new path/meta for existing images
        replaced: dict[str, str] = {}             # old sha -> new sha
        seen: dict[str, str] = {}                 # sha -> path within this batch
        out: list[AddResult] = []
        for b in batch:
            sha, path = b.fm.sha256, b.path
            meta_json = b.merged.meta.to_json()
            conf_json = json.dumps([c.to_dict() for c in b.merged.conflicts], default=str, sort_keys=True)
            if sha in seen:
                out.append(AddResult(path, "unchanged" if seen[sha] == path else "duplicate", sha,
                                     "" if seen[sha] == path else seen[sha]))
                continue
            seen[sha] = path
            other = at_path.get(path)
            row = existing.get(sha)
            if row is None:
                status, detail = "added", ""
                if other is not None and other != sha:
                    status, detail = "changed", other
                    replaced[other] = sha
                new_images.append(self._image_row(b, meta_json, conf_json, now))
                new_meta.extend(self._meta_rows(sha, b.merged))
            elif row.replaced_by is not None:  # old content is back at a path
                status, detail = "changed", other or ""
                if other is not None and other != sha:
                    replaced[other] = sha
                refresh[sha] = {"path": path, "meta": (meta_json, conf_json, b.merged), "revive": True}
            elif row.path == path:
                if row.meta_json == meta_json and (row.conflicts_json or "[]") == conf_json:
                    status, detail = "unchanged", ""
                else:
                    status, detail = "updated", ""
                    refresh[sha] = {"path": path, "meta": (meta_json, conf_json, b.merged)}
            elif self._still_there(row.path, sha, row.size_bytes):
                status, detail = "duplicate", row.path
            else:
                status, detail = "moved", row.path
                if other is not None and other != sha:
                    replaced[other] = sha
                changed_meta = row.meta_json != meta_json or (row.conflicts_json or "[]") != conf_json
                refresh[sha] = {"path": path, "meta": (meta_json, conf_json, b.merged) if changed_meta else None}
            out.append(AddResult(path, status, sha, detail))
        if new_images:
            new_images.sort(key=lambda r: r["sha256"])
            if self._engine.dialect.insert_executemany_returning:
                inserted = {r[0] for r in conn.execute(self._insert(images).returning(images.c.sha256), new_images)}
            else:  # old SQLite without RETURNING: count them all as ours
                conn.execute(self._insert(images), new_images)
                inserted = {r["sha256"] for r in new_images}
            lost = {r["sha256"] for r in new_images} - inserted  # another process inserted them first
            if lost:
                out = [AddResult(r.path, "unchanged", r.sha256) if r.sha256 in lost and r.status == "added" else r
                       for r in out]
            if new_meta:
                new_meta.sort(key=lambda r: (r["sha256"], r["key"]))
                conn.execute(self._insert(metadata), new_meta)
        for sha in sorted(refresh):
            info = refresh[sha]
            values: dict[str, Any] = {"path": info["path"], "name": Path(info["path"]).name, "updated": now}
            if info.get("revive"):
                values["replaced_by"] = None
            if info["meta"] is not None:
                meta_json, conf_json, merged = info["meta"]
                values.update(meta_json=meta_json, conflicts_json=conf_json)
                conn.execute(sa.delete(metadata).where(metadata.c.sha256 == sha))
                rows = self._meta_rows(sha, merged)
                if rows:
                    conn.execute(self._insert(metadata), rows)
            conn.execute(sa.update(images).where(images.c.sha256 == sha).values(**values))
        for old in sorted(replaced):
            conn.execute(sa.update(images).where(images.c.sha256 == old)
                         .values(replaced_by=replaced[old], updated=now))
        return out

    @staticmethod
    def _still_there(path: str, sha: str, size: int | None) -> bool:
        """Does ``path`` still hold the bytes ``sha`` (so a second copy is a duplicate, not a move)?"""
        p = Path(path)
        try:
            if not p.is_file() or (size is not None and p.stat().st_size != size):
                return False
        except OSError:
            return False
        from deepscope.io import sha256_file

        return sha256_file(p) == sha

    @staticmethod
    def _image_row(b: _Prepared, meta_json: str, conf_json: str, now: str) -> dict[str, Any]:
        fm = b.fm
        return {"sha256": fm.sha256, "path": fm.path, "name": Path(fm.path).name, "size_bytes": b.size,
                "format": fm.format, "shape": json.dumps(list(fm.shape)), "dtype": fm.dtype,
                "bit_depth": fm.bit_depth, "pages": fm.pages, "axes": fm.axes, "compression": fm.compression,
                "meta_json": meta_json, "conflicts_json": conf_json, "added": now, "updated": now,
                "replaced_by": None}

    # ------------------------------------------------------------------ read
    def _to_image(self, r: Any) -> CatalogImage:
        return CatalogImage(
            sha256=r.sha256, path=r.path, name=r.name, size_bytes=r.size_bytes, format=r.format,
            shape=tuple(json.loads(r.shape or "[]")), dtype=r.dtype, bit_depth=r.bit_depth, pages=r.pages,
            axes=r.axes, compression=r.compression, meta=ImageMeta.from_dict(json.loads(r.meta_json)),
            conflicts=tuple(json.loads(r.conflicts_json or "[]")), added=r.added, updated=r.updated,
            replaced_by=r.replaced_by)

    def _condition(self, cond: Condition) -> Any:
        images, md = self._t["images"], self._t["metadata"]
        key, op, value = cond.key.strip(), cond.op, cond.value
        num = _to_float(value)
        if key.lower() in IMAGE_COLUMNS:
            col = images.c[key.lower()]
            if key.lower() in _NUMERIC_COLUMNS:
                if num is None:
                    raise InputError(f"where {key}{op}{value}: {key} is a number; give a number")
                target: Any = num
            else:
                target = value
            if op == "=" and isinstance(target, str) and any(c in target for c in "*?"):
                return col.like(_like(target), escape="\\")
            return _compare(col, op, target)
        keys = sorted({key, canonical_key(key)})
        key_cond = sa.or_(md.c.key.in_(keys), md.c.name.in_(keys), md.c.leaf.in_(keys))
        eq_op = "=" if op in ("=", "!=") else op
        if eq_op == "=":
            if any(c in value for c in "*?"):
                value_cond: Any = sa.func.lower(md.c.value_text).like(_like(value.lower()), escape="\\")
            elif num is not None:
                value_cond = sa.or_(md.c.value_num == num, sa.func.lower(md.c.value_text) == value.lower())
            else:
                value_cond = sa.func.lower(md.c.value_text) == value.lower()
        elif num is not None:
            value_cond = _compare(md.c.value_num, eq_op, num)
        else:  # text order (ISO dates compare correctly as text)
            value_cond = _compare(md.c.value_text, eq_op, value)
        sub = sa.select(md.c.sha256).where(key_cond, value_cond)
        return images.c.sha256.not_in(sub) if op == "!=" else images.c.sha256.in_(sub)

    def _select(self, where: Iterable[str | Condition] = (), *, include_replaced: bool = False) -> Any:
        images = self._t["images"]
        conds = [self._condition(parse_where(w)) for w in ([where] if isinstance(where, (str, Condition))
                                                             else where)]
        if not include_replaced:
            conds.append(images.c.replaced_by.is_(None))
        return sa.select(images).where(*conds).order_by(images.c.path, images.c.sha256)

    def query(self, where: str | Condition | Iterable[str | Condition] = (), *,
              include_replaced: bool = False, limit: int | None = None) -> list[CatalogImage]:
        """Images whose metadata match every condition, ordered by path.

        Parameters
        ----------
        where : str, Condition or iterable of them
            Conditions ``key op value`` (see :func:`parse_where`), all of which must hold. A key
            is a dotted metadata key (``objective.na``, ``channels.0.stain``), a key without the
            channel index (``channels.stain``: any channel), its last part (``stain``, ``blur``,
            ``na``: any key ending so), an alias (``operator``), or an image fact
            (:data:`IMAGE_COLUMNS`).
        include_replaced : bool, default False
            Also return images whose file has since changed.
        limit : int, optional
            At most this many.

        Raises
        ------
        deepscope.errors.InputError
            If a condition cannot be parsed.

        Examples
        --------
        >>> cat.query(["blur=48", "stain=1"])        # doctest: +SKIP
        """
        stmt = self._select(where, include_replaced=include_replaced)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            return [self._to_image(r) for r in conn.execute(stmt)]

    def list(self, *, include_replaced: bool = False, limit: int | None = None) -> list[CatalogImage]:
        """Every image, ordered by path (see :meth:`query`)."""
        return self.query((), include_replaced=include_replaced, limit=limit)

    def count(self, where: str | Condition | Iterable[str | Condition] = (), *,
              include_replaced: bool = False) -> int:
        """Number of images matching ``where``."""
        stmt = sa.select(sa.func.count()).select_from(self._select(where, include_replaced=include_replaced)
                                                      .order_by(None).subquery())
        with self._read() as conn:
            return int(conn.execute(stmt).scalar() or 0)

    def get(self, ref: str | os.PathLike[str]) -> CatalogImage:
        """One image by SHA-256 (or a unique prefix of at least 6 hex digits), path or unique file name.

        Raises
        ------
        CatalogError
            If no image (or several, for a short prefix or a file name) matches.
        """
        images = self._t["images"]
        s = os.fspath(ref)
        with self._read() as conn:
            if re.fullmatch(r"[0-9a-fA-F]{6,64}", s):
                rows = list(conn.execute(sa.select(images).where(images.c.sha256.like(s.lower() + "%")).limit(2)))
                if len(rows) == 1:
                    return self._to_image(rows[0])
                if len(rows) > 1:
                    raise CatalogError(f"SHA-256 prefix {s!r} matches several images; give more digits")
            absolute = os.path.abspath(s)
            rows = list(conn.execute(sa.select(images).where(images.c.path.in_({s, absolute}))
                                     .order_by(images.c.replaced_by.is_not(None), images.c.updated.desc())))
            if rows:
                return self._to_image(rows[0])
            if "/" not in s and os.sep not in s:  # a bare file name: fine when it is unique
                rows = list(conn.execute(sa.select(images).where(images.c.name == s,
                                                                 images.c.replaced_by.is_(None)).limit(2)))
                if len(rows) == 1:
                    return self._to_image(rows[0])
                if len(rows) > 1:
                    raise CatalogError(f"several catalogued images are named {s!r}; give the full path or the "
                                       "SHA-256")
        raise CatalogError(f"no image {s!r} in catalog {_mask(self.url)}; give a SHA-256 (or a prefix) or a "
                           "catalogued path (see 'deepscope catalog list')")

    def to_dataframe(self, where: str | Condition | Iterable[str | Condition] = (), *,
                     include_replaced: bool = False) -> pd.DataFrame:
        """One row per image: file facts then every metadata key as a column.

        Columns whose values mix numbers and text are text.
        """
        import pandas as pd

        rows = [img.to_row() for img in self.query(where, include_replaced=include_replaced)]
        df = pd.DataFrame(rows)
        if df.empty:
            return pd.DataFrame(columns=list(_FIXED_COLUMNS))
        fixed = list(_FIXED_COLUMNS)
        meta_cols = sorted(c for c in df.columns if c not in fixed)
        df = df[fixed + meta_cols]
        for c in meta_cols:
            vals = df[c].dropna()
            if len(vals) and not all(_is_num(v) for v in vals):
                df[c] = df[c].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else
                                  format_value(v))
        return df

    def export(self, path: str | os.PathLike[str], *, format: str = "csv",
               where: str | Condition | Iterable[str | Condition] = ()) -> Path:
        """Write one row per image (metadata as columns) to CSV or Parquet, with its lineage.

        In CSV, a text cell that a spreadsheet would run as a formula (one that starts with ``=``,
        ``+``, ``-``, ``@``, tab or carriage return, and is not a number) gets a leading ``'``
        (:func:`deepscope.io.csv_cell`).
        The file is written atomically; its provenance (the exported images as inputs) is
        attached with :func:`deepscope.provenance.lineage.attach` and recorded in this catalog.

        Raises
        ------
        deepscope.errors.InputError
            If ``format`` is not one of :data:`EXPORT_FORMATS`.
        """
        from deepscope.io.names import csv_text
        from deepscope.io.writers import atomic_path
        from deepscope.provenance import lineage

        if format not in EXPORT_FORMATS:
            raise InputError(f"format={format!r} is not one of {EXPORT_FORMATS}")
        conds = [parse_where(c) for c in ([where] if isinstance(where, (str, Condition)) else where)]
        df = self.to_dataframe(conds)
        out = Path(path)
        run = lineage.Run.start(command="catalog export", catalog=self,
                                params={"format": format, "where": [f"{c.key}{c.op}{c.value}" for c in conds]})
        try:
            with atomic_path(out) as tmp:
                if format == "csv":  # text cells that start like a formula (=, +, -, @) get a leading '
                    tmp.write_text(csv_text(df), encoding="utf-8")
                else:
                    df.to_parquet(tmp, index=False)
            rec = run.record(out, inputs=[lineage.InputRef(p, s) for p, s in zip(df["path"], df["sha256"])]
                             if len(df) else [], extra={"rows": len(df)})
            lineage.attach(out, rec)
        except BaseException as exc:
            run.finish("failed", {"error": f"{type(exc).__name__}: {exc}"})
            raise
        run.finish("ok", {"rows": len(df)})
        return out

    # ------------------------------------------------------------------ check
    def check(self, *, require: Iterable[str] = (), criterion: str = "abbe",
              where: str | Condition | Iterable[str | Condition] = (), files: bool = True) -> list[CheckIssue]:
        """Check every image against a metadata policy and its optics.

        Parameters
        ----------
        require : iterable of str
            Fields each image must have: dotted keys (``objective.na``), ``channels.<field>``
            (at least one channel, and every channel has the field), or any key/leaf/alias that
            :meth:`query` understands (``blur``, ``operator``).
        criterion : {"abbe", "rayleigh"}, default "abbe"
            Resolution criterion of the sampling check (:func:`deepscope.provenance.optics.check_sampling`).
        where : conditions, optional
            Check only these images.
        files : bool, default True
            Also report images whose file is no longer at its catalogued path.

        Returns
        -------
        list of CheckIssue

        Raises
        ------
        deepscope.errors.InputError
            If a ``channels.<field>`` requirement names no channel field, or the criterion is unknown.
        """
        from deepscope.provenance.optics import CRITERIA, check_sampling

        if criterion not in CRITERIA:
            raise InputError(f"criterion={criterion!r} is not one of {CRITERIA}")
        reqs = [r.strip() for r in require if r and r.strip()]
        channel_fields = {f for f in Channel.__dataclass_fields__}
        for r in reqs:
            k = canonical_key(r)
            if k.startswith("channels.") and k.count(".") == 1 and k.split(".")[1] not in channel_fields:
                raise InputError(f"required field {r!r}: channels have no field {k.split('.')[1]!r}; valid "
                                 f"fields are {', '.join(sorted(channel_fields))}")
        issues: list[CheckIssue] = []
        for img in self.query(where):
            flat = img.meta.flatten()
            for r in reqs:
                if not _has(img.meta, flat, r):
                    issues.append(CheckIssue(img.sha256, img.path, "missing-field", f"missing required field {r}"))
            for s in check_sampling(img.meta, criterion=criterion, warn=False):
                issues.append(CheckIssue(img.sha256, img.path, "undersampled", s.message))
            if files and not os.path.exists(img.path):
                issues.append(CheckIssue(img.sha256, img.path, "missing-file",
                                         "file is no longer at its catalogued path (moved or deleted); add its "
                                         "new location with 'deepscope catalog add'"))
        return issues

    # ------------------------------------------------------------------ runs and lineage
    def add_run(self, run: Run) -> None:
        """Record a started run and its models (called by :meth:`lineage.Run.start`)."""
        d = run.to_dict()
        self._write(lambda conn: self._add_run_tx(conn, d), what=f"recording run {run.run_id}")

    def _add_run_tx(self, conn: sa.Connection, d: Mapping[str, Any]) -> None:
        runs, models, run_models = self._t["runs"], self._t["models"], self._t["run_models"]
        conn.execute(self._insert(runs), {
            "run_id": d["run_id"], "command": d["command"], "params_json": json.dumps(d["params"], sort_keys=True),
            "user": d.get("user"), "host": d.get("host"), "started": d.get("started") or d.get("created") or _now(),
            "finished": d.get("finished"), "status": d.get("status") or "unknown",
            "deepscope_version": d.get("deepscope_version"),
            "software_json": json.dumps(d.get("software") or {}, sort_keys=True),
            "summary_json": None if d.get("summary") is None else json.dumps(d["summary"], sort_keys=True)})
        ms = sorted(d.get("models") or [], key=lambda m: m["sha256"])
        if ms:
            conn.execute(self._insert(models), [{"sha256": m["sha256"], "name": m["name"],
                                                 "card_json": None if m.get("card") is None else
                                                 json.dumps(m["card"], sort_keys=True)} for m in ms])
            conn.execute(self._insert(run_models), [{"run_id": d["run_id"], "model_sha256": m["sha256"]}
                                                    for m in ms])

    def finish_run(self, run: Run) -> None:
        """Record a run's end: status, time, summary (called by :meth:`lineage.Run.finish`)."""
        runs = self._t["runs"]
        values = {"finished": run.finished, "status": run.status,
                  "summary_json": None if run.summary is None else json.dumps(run.summary, sort_keys=True)}
        self._write(lambda conn: conn.execute(sa.update(runs).where(runs.c.run_id == run.run_id).values(**values)),
                    what=f"finishing run {run.run_id}")

    def add_lineage(self, rec: Record, *, output_path: str, output_sha256: str) -> None:
        """Record edges run -> inputs and run -> output for one output file.

        Called by :func:`lineage.attach` when the run has a catalog; also imports a record read
        from a file (:func:`lineage.read`) whose run the catalog does not know yet.
        """
        lin = self._t["lineage"]
        d = rec.to_dict()
        now = _now()
        edges = [{"run_id": rec.run_id, "role": "input", "sha256": i.sha256 or "", "path": i.path, "created": now}
                 for i in rec.inputs]
        edges.append({"run_id": rec.run_id, "role": "output", "sha256": output_sha256, "path": output_path,
                      "created": now})
        edges.sort(key=lambda e: (e["role"], e["sha256"], e["path"]))
        run_row = {**d, "started": d["created"], "status": "unknown"}

        def tx(conn: sa.Connection) -> None:
            self._add_run_tx(conn, run_row)  # no-op when the run is already recorded
            conn.execute(self._insert(lin), edges)

        self._write(tx, what=f"recording lineage of {output_path}")

    def get_run(self, run_id: str) -> dict[str, Any]:
        """A run with its models, inputs and outputs.

        Raises
        ------
        CatalogError
            If the run is not in the catalog.
        """
        runs, models, rm, lin = self._t["runs"], self._t["models"], self._t["run_models"], self._t["lineage"]
        with self._read() as conn:
            r = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
            if r is None:
                raise CatalogError(f"no run {run_id!r} in catalog {_mask(self.url)}")
            ms = conn.execute(sa.select(models).join(rm, rm.c.model_sha256 == models.c.sha256)
                              .where(rm.c.run_id == run_id).order_by(models.c.name)).all()
            edges = conn.execute(sa.select(lin.c.role, lin.c.sha256, lin.c.path)
                                 .where(lin.c.run_id == run_id).order_by(lin.c.role, lin.c.path)).all()
        return {
            "run_id": r.run_id, "command": r.command, "params": json.loads(r.params_json), "user": r.user,
            "host": r.host, "started": r.started, "finished": r.finished, "status": r.status,
            "deepscope_version": r.deepscope_version, "software": json.loads(r.software_json or "{}"),
            "summary": None if r.summary_json is None else json.loads(r.summary_json),
            "models": [{"name": m.name, "sha256": m.sha256,
                        "card": None if m.card_json is None else json.loads(m.card_json)} for m in ms],
            "inputs": [{"path": e.path, "sha256": e.sha256} for e in edges if e.role == "input"],
            "outputs": [{"path": e.path, "sha256": e.sha256} for e in edges if e.role == "output"],
        }

    def runs_for(self, sha256: str) -> list[str]:
        """Ids of the runs that wrote a file with these bytes, oldest first."""
        lin = self._t["lineage"]
        with self._read() as conn:
            rows = conn.execute(sa.select(lin.c.run_id).where(lin.c.sha256 == sha256, lin.c.role == "output")
                                .order_by(lin.c.created)).all()
        return list(dict.fromkeys(r.run_id for r in rows))

    def runs_using(self, sha256: str) -> list[dict[str, Any]]:
        """Runs that read a file with these bytes: ``run_id``, ``command``, ``started``, ``status``."""
        lin, runs = self._t["lineage"], self._t["runs"]
        with self._read() as conn:
            rows = conn.execute(sa.select(runs.c.run_id, runs.c.command, runs.c.started, runs.c.status)
                                .where(runs.c.run_id.in_(sa.select(lin.c.run_id).where(lin.c.sha256 == sha256,
                                                                                       lin.c.role == "input")))
                                .order_by(runs.c.started)).all()
        return [dict(r._mapping) for r in rows]

    def metadata_sources(self, sha256: str) -> dict[str, str]:
        """Where each metadata field of an image came from (``yaml``, ``ome``, ``pattern`` ...)."""
        md = self._t["metadata"]
        with self._read() as conn:
            rows = conn.execute(sa.select(md.c.key, md.c.source).where(md.c.sha256 == sha256)).all()
        return {r.key: r.source for r in rows}

    def images_by_sha(self, shas: Iterable[str]) -> dict[str, CatalogImage]:
        """The catalogued images among ``shas``, by SHA-256."""
        images = self._t["images"]
        wanted = sorted({s for s in shas if s})
        out: dict[str, CatalogImage] = {}
        with self._read() as conn:
            for i in range(0, len(wanted), 500):
                for r in conn.execute(sa.select(images).where(images.c.sha256.in_(wanted[i:i + 500]))):
                    out[r.sha256] = self._to_image(r)
        return out


def _has(meta: ImageMeta, flat: Mapping[str, Any], req: str) -> bool:
    k = canonical_key(req)
    if k.startswith("channels.") and k.count(".") == 1:
        attr = k.split(".", 1)[1]
        return bool(meta.channels) and all(getattr(ch, attr, None) is not None for ch in meta.channels)
    if k in flat or req in flat or f"extras.{req}" in flat:
        return True
    return any(key_name(x) in (k, req) or key_leaf(x) in (k, req) for x in flat)


def _like(pattern: str) -> str:
    esc = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return esc.replace("*", "%").replace("?", "_")


def _compare(col: Any, op: str, value: Any) -> Any:
    if op == "=":
        return col == value
    if op == "!=":
        return col != value
    if op == "<":
        return col < value
    if op == "<=":
        return col <= value
    if op == ">":
        return col > value
    return col >= value
