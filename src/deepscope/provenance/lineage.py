"""Lineage: which images, model weights and parameters made each output file.

A :class:`Run` is one invocation of a command (``segment``, ``train``, ``catalog export``). For
every file it writes, the run makes a :class:`Record` (run id, command, parameters, the input
images with their SHA-256, the models with their weights' SHA-256, deepscope version, when, who,
where) and :func:`attach` stores it with the file:

- ``.parquet``: in the Parquet schema metadata (key ``deepscope.lineage``), so the record
  travels inside the file;
- anything else: in a sidecar ``<file>.prov.json`` beside it, holding the SHA-256 of the file it
  describes, so :func:`read` notices a file changed after the fact. (Rewriting a TIFF's
  ImageDescription after the fact is not safe; a writer that wants the record *inside* a TIFF
  or a safetensors file passes :func:`embed_metadata` at write time, and :func:`read` finds it.)

Writes are atomic (temporary name, then rename). When the run was started with a catalog, the
run, its models and the edges run -> inputs and run -> output are also recorded there.

This module imports only the standard library at import time; pyarrow (Parquet) and the
catalog are imported when used.

Examples
--------
>>> import tempfile, os
>>> from deepscope.provenance import lineage
>>> out = os.path.join(tempfile.mkdtemp(), "counts.csv")
>>> _ = open(out, "w").write("image,count\\na.tif,12\\n")
>>> with lineage.Run.start(command="count", params={"model": "count-bbbc005"},
...                        models=[lineage.ModelRef("count-bbbc005", "ab" * 32)]) as run:
...     rec = run.record(out, inputs=[lineage.InputRef("a.tif", "cd" * 32)])
...     where = lineage.attach(out, rec)
>>> where.name
'counts.csv.prov.json'
>>> back = lineage.read(out)
>>> back.command, back.inputs[0].sha256[:4], back.models[0].name
('count', 'cdcd', 'count-bbbc005')
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import getpass
import json
import os
import platform
import socket
import uuid
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepscope.errors import InputError, user_stacklevel

if TYPE_CHECKING:  # pragma: no cover
    from deepscope.provenance.catalog import Catalog

__all__ = ["SCHEMA", "METADATA_KEY", "SIDECAR_SUFFIX", "RUN_STATUS", "InputRef", "ModelRef", "Record", "Run",
           "LineageWarning", "attach", "read", "sidecar_path", "embed_metadata"]

#: Schema tag written into every record.
SCHEMA = "deepscope.lineage/1"
#: Key of the record in Parquet schema metadata, safetensors metadata and TIFF description JSON.
METADATA_KEY = "deepscope.lineage"
#: Suffix of sidecar files: ``counts.csv`` -> ``counts.csv.prov.json``.
SIDECAR_SUFFIX = ".prov.json"
#: Values :meth:`Run.finish` accepts.
RUN_STATUS = ("ok", "failed")


class LineageWarning(UserWarning):
    """A provenance record does not match the file it describes (the file changed since)."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _sha256_file(path: Path) -> str:
    from deepscope.io import sha256_file

    return sha256_file(path)


def _jsonable(value: Any, *, what: str) -> Any:
    from deepscope.io.jsonable import to_jsonable

    try:
        return to_jsonable(value)
    except TypeError as exc:
        raise InputError(f"{what} must be JSON-serialisable (numbers, strings, lists, dicts, paths): {exc}. "
                         "Pass plain values, e.g. str(obj) for custom objects.") from exc


@dataclass(frozen=True)
class InputRef:
    """An input file of a run: its path and the SHA-256 of its bytes.

    Examples
    --------
    >>> InputRef("a.tif", "00" * 32).to_dict()["path"]
    'a.tif'
    """

    path: str
    sha256: str | None = None

    @classmethod
    def of(cls, item: Any) -> InputRef:
        """Make an InputRef from an InputRef, a :class:`~deepscope.io.Image`, a
        :class:`~deepscope.io.FileMeta`, a dict with ``path``/``sha256``, or a path (hashed now).

        Raises
        ------
        FileNotFoundError
            If a bare path is given and does not exist (its SHA-256 cannot be computed).
        deepscope.errors.InputError
            If ``item`` is none of these.
        """
        if isinstance(item, InputRef):
            return item
        meta = getattr(item, "meta", item)
        if hasattr(meta, "sha256") and hasattr(meta, "path"):
            return cls(str(meta.path), meta.sha256 or None)
        if isinstance(item, Mapping) and "path" in item:
            return cls(str(item["path"]), item.get("sha256"))
        if isinstance(item, (str, os.PathLike)):
            p = Path(item)
            if not p.is_file():
                raise FileNotFoundError(f"input '{p}' does not exist, so its SHA-256 cannot be recorded; pass "
                                        "InputRef(path, sha256) for inputs that are not files here")
            return cls(os.path.abspath(p), _sha256_file(p))
        raise InputError(f"input {item!r} is not an InputRef, Image, FileMeta, dict or path")

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256}


@dataclass(frozen=True)
class ModelRef:
    """A model used by a run: its name, the SHA-256 of its weights and optionally its card.

    Examples
    --------
    >>> ModelRef("count-bbbc005", "ab" * 32).name
    'count-bbbc005'
    """

    name: str
    sha256: str
    card: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "card": self.card}


@dataclass(frozen=True)
class Record:
    """How one output file was made. JSON-serialisable with :meth:`to_dict` / :meth:`from_dict`.

    Attributes
    ----------
    run_id : str
        The run's id (uuid4 hex).
    command : str
        The command (``"segment"``, ``"train"``, ``"catalog export"``).
    output : str
        Absolute path of the output file when it was written.
    inputs : tuple of InputRef
        Input images (path + SHA-256).
    models : tuple of ModelRef
        Models with their weights' SHA-256.
    params : dict
        The run's parameters.
    created : str
        When the record was made (ISO 8601, UTC).
    deepscope_version : str
        deepscope's version.
    user, host : str
        Who ran it, on which machine.
    software : dict
        Python and library versions (torch when installed).
    extra : dict or None
        Anything else the writer wants to keep (e.g. per-file summary).
    output_sha256 : str or None
        SHA-256 of the output file, set by :func:`attach` for sidecar records.
    schema : str
        :data:`SCHEMA`.
    run : Run or None
        The live run (not serialised); lets :func:`attach` record into the run's catalog.
    """

    run_id: str
    command: str
    output: str
    inputs: tuple[InputRef, ...]
    models: tuple[ModelRef, ...]
    params: dict[str, Any]
    created: str
    deepscope_version: str
    user: str
    host: str
    software: dict[str, Any]
    extra: dict[str, Any] | None = None
    output_sha256: str | None = None
    schema: str = SCHEMA
    run: Run | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict (everything but :attr:`run`)."""
        return {
            "schema": self.schema, "run_id": self.run_id, "command": self.command, "output": self.output,
            "output_sha256": self.output_sha256, "inputs": [i.to_dict() for i in self.inputs],
            "models": [m.to_dict() for m in self.models], "params": self.params, "created": self.created,
            "deepscope_version": self.deepscope_version, "user": self.user, "host": self.host,
            "software": self.software, "extra": self.extra,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        """Rebuild a record from :meth:`to_dict` output.

        Raises
        ------
        deepscope.errors.InputError
            If ``data`` is not a deepscope lineage record or misses a field.
        """
        schema = str(data.get("schema", ""))
        if not schema.startswith("deepscope.lineage/"):
            raise InputError(f"not a deepscope lineage record (schema {schema or 'missing'!r}, expected "
                             f"{SCHEMA!r})")
        try:
            return cls(
                run_id=str(data["run_id"]), command=str(data["command"]), output=str(data["output"]),
                inputs=tuple(InputRef(str(i["path"]), i.get("sha256")) for i in data["inputs"]),
                models=tuple(ModelRef(str(m["name"]), str(m["sha256"]), m.get("card")) for m in data["models"]),
                params=dict(data["params"]), created=str(data["created"]),
                deepscope_version=str(data["deepscope_version"]), user=str(data.get("user", "")),
                host=str(data.get("host", "")), software=dict(data.get("software") or {}),
                extra=data.get("extra"), output_sha256=data.get("output_sha256"), schema=schema)
        except (KeyError, TypeError) as exc:
            raise InputError(f"lineage record is missing or has a malformed field {exc}") from exc


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def _software() -> dict[str, Any]:
    from importlib import metadata

    out: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for dist in ("numpy", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


class Run:
    """One invocation of a command; makes the provenance records of the files it writes.

    Use :meth:`start` to create one, :meth:`record` per output file, :func:`attach` to store
    the record, and :meth:`finish` at the end (or use the run as a context manager: it finishes
    with ``"ok"``, or ``"failed"`` when the block raises).

    Attributes
    ----------
    run_id : str
        uuid4 hex.
    command : str
    params : dict
        JSON-normalised parameters.
    models : tuple of ModelRef
    user, host, started : str
    deepscope_version : str
    software : dict
        Python, numpy and (when installed) torch versions.
    catalog : Catalog or None
    status : str
        ``"running"``, then ``"ok"`` or ``"failed"``.
    finished : str or None
    summary : dict or None
    """

    def __init__(self, *, run_id: str, command: str, params: dict[str, Any], models: tuple[ModelRef, ...],
                 user: str, host: str, started: str, deepscope_version: str, software: dict[str, Any],
                 catalog: Catalog | None = None) -> None:
        self.run_id = run_id
        self.command = command
        self.params = params
        self.models = models
        self.user = user
        self.host = host
        self.started = started
        self.deepscope_version = deepscope_version
        self.software = software
        self.catalog = catalog
        self.status = "running"
        self.finished: str | None = None
        self.summary: dict[str, Any] | None = None

    @classmethod
    def start(cls, *, command: str, params: Mapping[str, Any] | None = None,
              models: Iterable[ModelRef] = (), catalog: Catalog | None = None) -> Run:
        """Start a run.

        Parameters
        ----------
        command : str
            Command name.
        params : mapping, optional
            Parameters (JSON-serialisable; paths and NumPy scalars are converted).
        models : iterable of ModelRef
            Models the run uses.
        catalog : Catalog, optional
            Record the run (and later its lineage edges) in this catalog.

        Raises
        ------
        deepscope.errors.InputError
            If ``command`` is empty, ``params`` is not JSON-serialisable or a model is not a ModelRef.
        """
        import deepscope

        if not command or not str(command).strip():
            raise InputError("command must be a non-empty name such as 'segment'")
        models = tuple(models)
        bad = [m for m in models if not isinstance(m, ModelRef)]
        if bad:
            raise InputError(f"models must be lineage.ModelRef(name, sha256, card=None); got {bad[0]!r}")
        run = cls(run_id=uuid.uuid4().hex, command=str(command),
                  params=_jsonable(dict(params or {}), what="params"), models=models, user=_user(),
                  host=socket.gethostname(), started=_now(), deepscope_version=deepscope.__version__,
                  software=_software(), catalog=catalog)
        if catalog is not None:
            catalog.add_run(run)
        return run

    def to_dict(self) -> dict[str, Any]:
        """The run as a JSON-serialisable dict."""
        return {"run_id": self.run_id, "command": self.command, "params": self.params,
                "models": [m.to_dict() for m in self.models], "user": self.user, "host": self.host,
                "started": self.started, "finished": self.finished, "status": self.status,
                "deepscope_version": self.deepscope_version, "software": self.software, "summary": self.summary}

    def record(self, output_path: str | os.PathLike[str], inputs: Iterable[Any] = (),
               extra: Mapping[str, Any] | None = None) -> Record:
        """Make the provenance record of one output file.

        Parameters
        ----------
        output_path : str or PathLike
            The file written (or about to be written).
        inputs : iterable
            Input images: :class:`InputRef`, :class:`~deepscope.io.Image`, ``FileMeta``, dicts
            with ``path``/``sha256``, or paths (hashed now).
        extra : mapping, optional
            Further JSON-serialisable facts about this output.

        Raises
        ------
        deepscope.errors.InputError
            If an input or ``extra`` cannot be recorded.
        FileNotFoundError
            If an input given as a bare path does not exist.
        """
        refs = tuple(InputRef.of(i) for i in inputs)
        return Record(run_id=self.run_id, command=self.command, output=os.path.abspath(output_path),
                      inputs=refs, models=self.models, params=self.params, created=_now(),
                      deepscope_version=self.deepscope_version, user=self.user, host=self.host,
                      software=self.software,
                      extra=None if extra is None else _jsonable(dict(extra), what="extra"), run=self)

    def finish(self, status: str = "ok", summary: Mapping[str, Any] | None = None) -> None:
        """Mark the run finished (in the catalog too, when it has one).

        Raises
        ------
        deepscope.errors.InputError
            If ``status`` is not one of :data:`RUN_STATUS`.
        """
        if status not in RUN_STATUS:
            raise InputError(f"status={status!r} is not one of {RUN_STATUS}")
        self.status = status
        self.finished = _now()
        self.summary = None if summary is None else _jsonable(dict(summary), what="summary")
        if self.catalog is not None:
            self.catalog.finish_run(self)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.status == "running":
            if exc is None:
                self.finish("ok")
            else:
                self.finish("failed", {"error": f"{type(exc).__name__}: {exc}"})


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar of ``path``: ``counts.csv`` -> ``counts.csv.prov.json``.

    Examples
    --------
    >>> sidecar_path("out/labels.tif").name
    'labels.tif.prov.json'
    """
    p = Path(path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def embed_metadata(rec: Record) -> dict[str, str]:
    """``{"deepscope.lineage": <record JSON>}`` for writers that take string metadata at write time.

    Pass it as safetensors ``metadata=``, Parquet schema metadata, or inside the JSON of
    :func:`deepscope.io.write_tiff`'s ``description=`` (as ``{**embed_metadata(rec)}``);
    :func:`read` finds it there.

    Examples
    --------
    >>> rec = Record("r", "c", "o", (), (), {}, "t", "0", "u", "h", {})
    >>> list(embed_metadata(rec))
    ['deepscope.lineage']
    """
    return {METADATA_KEY: rec.to_json()}


def attach(output_path: str | os.PathLike[str], rec: Record) -> Path:
    """Store ``rec`` with the file it describes, atomically; also in the run's catalog if any.

    Parquet files get the record in their schema metadata (the file is rewritten to a temporary
    name and renamed); other files get a sidecar ``<file>.prov.json`` holding the record and the
    file's SHA-256.

    Parameters
    ----------
    output_path : str or PathLike
        The output file (or folder, e.g. OME-Zarr), already written.
    rec : Record
        From :meth:`Run.record`.

    Returns
    -------
    pathlib.Path
        Where the record is: the Parquet file itself, or the sidecar.

    Raises
    ------
    FileNotFoundError
        If ``output_path`` does not exist.
    deepscope.errors.InputError
        If ``rec`` is not a :class:`Record`.
    """
    if not isinstance(rec, Record):
        raise InputError(f"rec must be a lineage.Record (from Run.record); got {type(rec).__name__}")
    p = Path(output_path)
    if not p.exists():
        raise FileNotFoundError(f"No such output file: '{p}'; write the file first, then attach its record")
    if p.suffix.lower() == ".parquet" and p.is_file():
        _embed_parquet(p, rec)
        where = p
        final = rec
    else:
        from deepscope.io.writers import write_text

        final = dataclasses.replace(rec, output_sha256=_sha256_file(p))
        where = sidecar_path(p)
        write_text(where, json.dumps(final.to_dict(), indent=1, sort_keys=True) + "\n")
    run = rec.run
    if run is not None and run.catalog is not None:
        run.catalog.add_lineage(final, output_path=str(p.resolve()),
                                output_sha256=final.output_sha256 or _sha256_file(p))
    return where


def _embed_parquet(p: Path, rec: Record) -> None:
    import pyarrow.parquet as pq

    from deepscope.io.writers import atomic_path

    table = pq.read_table(p)
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY.encode()] = rec.to_json().encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(p) as tmp:
        pq.write_table(table, tmp)


def _from_embedded(p: Path) -> dict[str, Any] | None:
    suffix = p.suffix.lower()
    text: str | None = None
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            meta = pq.read_schema(p).metadata or {}
        except Exception as exc:  # pyarrow raises several types for non-Parquet bytes
            raise InputError(f"'{p}' is not a readable Parquet file ({exc})") from exc
        raw = meta.get(METADATA_KEY.encode())
        text = raw.decode() if raw else None
    elif suffix == ".safetensors":
        with open(p, "rb") as fh:
            head = fh.read(8)
            if len(head) == 8:
                n = int.from_bytes(head, "little")
                if 0 < n < 100_000_000:
                    try:
                        header = json.loads(fh.read(n))
                        text = (header.get("__metadata__") or {}).get(METADATA_KEY)
                    except (ValueError, AttributeError):
                        text = None
    elif suffix in (".tif", ".tiff"):
        import tifffile

        try:
            with tifffile.TiffFile(p) as tf:
                page = tf.pages.first if hasattr(tf.pages, "first") else tf.pages[0]
                desc = page.description
        except Exception:  # not a TIFF we can read: no embedded record
            desc = ""
        if desc and desc.lstrip().startswith("{"):
            try:
                d = json.loads(desc)
            except ValueError:
                d = None
            if isinstance(d, dict):
                if isinstance(d.get(METADATA_KEY), str):
                    text = d[METADATA_KEY]
                elif isinstance(d.get(METADATA_KEY), dict):
                    return dict(d[METADATA_KEY])
                elif str(d.get("schema", "")).startswith("deepscope.lineage/"):
                    return d
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(f"'{p}' holds a corrupt lineage record ({exc})") from exc
    return dict(data)


def read(path: str | os.PathLike[str], *, verify: bool = True) -> Record | None:
    """Read the provenance record of a file: embedded in it, or from its sidecar.

    Looks in Parquet schema metadata, safetensors metadata and TIFF ImageDescription JSON
    first, then in ``<file>.prov.json``.

    Parameters
    ----------
    path : str or PathLike
        The output file.
    verify : bool, default True
        For sidecar records, check the file's SHA-256 against the one recorded and warn
        (:class:`LineageWarning`) when the file changed after the record was written.

    Returns
    -------
    Record or None
        None when the file carries no record.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    deepscope.errors.InputError
        If a record is present but corrupt.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"No such file: '{p}'")
    data = _from_embedded(p) if p.is_file() else None
    if data is None:
        side = sidecar_path(p)
        if not side.is_file():
            return None
        try:
            data = json.loads(side.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(f"provenance sidecar '{side}' is corrupt ({exc}); it cannot say how '{p.name}' "
                             "was made") from exc
        if not isinstance(data, dict):
            raise InputError(f"provenance sidecar '{side}' does not hold a record")
    try:
        rec = Record.from_dict(data)
    except InputError as exc:
        raise InputError(f"'{p}': {exc}") from exc
    if verify and rec.output_sha256:
        actual = _sha256_file(p)
        if actual != rec.output_sha256:
            warnings.warn(f"'{p}' has changed since its provenance record was written (SHA-256 "
                          f"{actual[:12]} != recorded {rec.output_sha256[:12]}); the record describes an "
                          "earlier version of the file", LineageWarning, stacklevel=user_stacklevel())
    return rec
