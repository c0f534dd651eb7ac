from __future__ import annotations

import pytest
import sqlalchemy as sa

from deepscope.provenance import migrations
from deepscope.provenance.catalog import Catalog, CatalogError, resolve_url

from .conftest import make_images


def test_new_catalog_is_at_current_version_with_all_tables(db_url):
    with Catalog(db_url) as cat:
        assert cat.schema_version == migrations.SCHEMA_VERSION == 1
    eng = sa.create_engine(resolve_url(db_url))
    names = set(sa.inspect(eng).get_table_names())
    assert {"schema_version", "images", "metadata", "runs", "models", "run_models", "lineage"} <= names
    with eng.connect() as conn:
        rows = conn.execute(sa.text("SELECT version, deepscope_version FROM schema_version")).all()
    eng.dispose()
    assert [r[0] for r in rows] == [1] and rows[0][1]


def test_pending_migration_is_applied_once_and_keeps_data(tmp_path, monkeypatch):
    db = tmp_path / "old.db"
    with Catalog(db) as cat:
        cat.add(make_images(tmp_path / "imgs", 3))

    def v2(conn: sa.Connection) -> None:
        conn.execute(sa.text("ALTER TABLE images ADD COLUMN reviewed INTEGER DEFAULT 0"))

    monkeypatch.setitem(migrations.MIGRATIONS, 2, v2)
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 2)
    with Catalog(db) as cat:
        assert cat.schema_version == 2 and cat.count() == 3
    with Catalog(db) as cat:  # nothing left to do: no error from adding the column twice
        assert cat.schema_version == 2
    eng = sa.create_engine(resolve_url(db))
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM images WHERE reviewed = 0")).scalar() == 3
        assert [r[0] for r in conn.execute(sa.text("SELECT version FROM schema_version ORDER BY version"))] == [1, 2]
    eng.dispose()


def test_catalog_from_a_newer_deepscope_is_refused(tmp_path):
    db = tmp_path / "new.db"
    Catalog(db).close()
    eng = sa.create_engine(resolve_url(db))
    with eng.begin() as conn:
        conn.execute(sa.text("INSERT INTO schema_version VALUES (7, '2030-01-01', '9.0')"))
    eng.dispose()
    with pytest.raises(CatalogError, match="schema version 7, newer than this deepscope supports"):
        Catalog(db)
