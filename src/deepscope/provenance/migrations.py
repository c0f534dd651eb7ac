"""The catalog's schema, its version, and the migrations between versions.

The version lives in the ``schema_version`` table (one row per applied migration). Opening a
catalog applies the missing migrations in one transaction, under a lock (SQLite ``BEGIN
IMMEDIATE``; a PostgreSQL advisory lock), so several processes opening a new catalog at the same
time create it once. A catalog written by a newer deepscope (a higher version) is refused rather
than misread.

Adding a migration: define the new tables/columns in :func:`define_tables` (the current schema),
write ``_v<N>(conn)`` that brings a version N-1 database there (``ALTER TABLE ...``, data
copies), register it in :data:`MIGRATIONS` and bump :data:`SCHEMA_VERSION`.

Tables (version 1)
------------------
``images``
    One row per distinct content: ``sha256`` (key) of the file's bytes, ``path`` where it was
    last seen, file facts (format, shape, dtype, bit depth, pages, axes, compression, size),
    ``meta_json`` (the merged :class:`~deepscope.provenance.ImageMeta`), ``conflicts_json``,
    ``added``/``updated`` times and ``replaced_by`` (the SHA-256 of the new content when the
    file at ``path`` changed).
``metadata``
    ``(sha256, key)`` -> value: every flat metadata key of every image, with its name without
    channel indices, its last part, its text and numeric value and its source; what queries use.
``runs``
    Who ran which command when, where, with which parameters, software and outcome.
``models``
    Model weights by SHA-256, with name and card; ``run_models`` links runs to models.
``lineage``
    Edges run -> input (role ``input``) and run -> output (role ``output``), by SHA-256 and path.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable

import sqlalchemy as sa

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "define_tables", "current_version", "migrate"]

#: Version of the schema this deepscope writes.
SCHEMA_VERSION = 1

_LOCK_KEY = 0x64656570  # "deep": PostgreSQL advisory lock id for migrations


def define_tables(md: sa.MetaData) -> dict[str, sa.Table]:
    """Define the current schema's tables on ``md`` and return them by name."""
    t: dict[str, sa.Table] = {}
    t["schema_version"] = sa.Table(
        "schema_version", md,
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("applied", sa.Text, nullable=False),
        sa.Column("deepscope_version", sa.Text, nullable=False),
    )
    t["images"] = sa.Table(
        "images", md,
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("format", sa.String(32)),
        sa.Column("shape", sa.String(128)),
        sa.Column("dtype", sa.String(32)),
        sa.Column("bit_depth", sa.Integer),
        sa.Column("pages", sa.Integer),
        sa.Column("axes", sa.String(16)),
        sa.Column("compression", sa.String(64)),
        sa.Column("meta_json", sa.Text, nullable=False),
        sa.Column("conflicts_json", sa.Text),
        sa.Column("added", sa.Text, nullable=False),
        sa.Column("updated", sa.Text, nullable=False),
        sa.Column("replaced_by", sa.String(64)),
        sa.Index("ix_images_path", "path"),
    )
    t["metadata"] = sa.Table(
        "metadata", md,
        sa.Column("sha256", sa.String(64), sa.ForeignKey("images.sha256", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("leaf", sa.Text, nullable=False),
        sa.Column("value_text", sa.Text, nullable=False),
        sa.Column("value_num", sa.Float),
        sa.Column("source", sa.String(16)),
        sa.Index("ix_metadata_leaf", "leaf", "value_text"),
        sa.Index("ix_metadata_name", "name", "value_text"),
    )
    t["runs"] = sa.Table(
        "runs", md,
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("params_json", sa.Text, nullable=False),
        sa.Column("user", sa.Text),
        sa.Column("host", sa.Text),
        sa.Column("started", sa.Text, nullable=False),
        sa.Column("finished", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("deepscope_version", sa.Text),
        sa.Column("software_json", sa.Text),
        sa.Column("summary_json", sa.Text),
    )
    t["models"] = sa.Table(
        "models", md,
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("card_json", sa.Text),
    )
    t["run_models"] = sa.Table(
        "run_models", md,
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_sha256", sa.String(64), sa.ForeignKey("models.sha256"), primary_key=True),
    )
    t["lineage"] = sa.Table(
        "lineage", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created", sa.Text, nullable=False),
        sa.UniqueConstraint("run_id", "role", "sha256", "path", name="uq_lineage_edge"),
        sa.Index("ix_lineage_sha", "sha256", "role"),
    )
    return t


def _v1(conn: sa.Connection) -> None:
    """Version 1: the initial schema."""
    md = sa.MetaData()
    define_tables(md)
    md.create_all(conn)


#: version -> function that brings a database at ``version - 1`` to ``version``.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {1: _v1}


def current_version(conn: sa.Connection) -> int:
    """The schema version of the database behind ``conn`` (0 for an empty database)."""
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    v = conn.execute(sa.text("SELECT MAX(version) FROM schema_version")).scalar()
    return int(v or 0)


class SchemaTooNew(Exception):
    """The database was written by a newer deepscope (handled by the catalog)."""

    def __init__(self, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(f"schema version {found} > {supported}")


def migrate(engine: sa.Engine, *, migrations: dict[int, Callable[[sa.Connection], None]] | None = None,
            target: int | None = None) -> tuple[int, int]:
    """Bring the database to ``target`` (default :data:`SCHEMA_VERSION`); safe to call concurrently.

    Returns
    -------
    (int, int)
        The version found and the version now.

    Raises
    ------
    SchemaTooNew
        If the database's version is higher than ``target``.
    """
    import deepscope

    migs = MIGRATIONS if migrations is None else migrations
    target = SCHEMA_VERSION if target is None else target
    with engine.connect() as conn:  # cheap check first: no lock when nothing is to do
        found = current_version(conn)
    if found > target:
        raise SchemaTooNew(found, target)
    if found == target:
        return found, found
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        found = current_version(conn)  # again, under the lock
        if found > target:
            raise SchemaTooNew(found, target)
        st = sa.table("schema_version", sa.column("version"), sa.column("applied"),
                      sa.column("deepscope_version"))
        for v in range(found + 1, target + 1):
            migs[v](conn)
            conn.execute(sa.insert(st).values(version=v, applied=_dt.datetime.now(_dt.timezone.utc).isoformat(),
                                              deepscope_version=deepscope.__version__))
    return found, target
