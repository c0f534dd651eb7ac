"""Several processes writing one catalog at once, and a process killed mid-transaction."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from deepscope.provenance.catalog import Catalog, resolve_url

from . import _workers
from .conftest import make_images


@pytest.fixture(scope="module")
def thousand(tmp_path_factory) -> list[Path]:
    return make_images(tmp_path_factory.mktemp("thousand"), 1000, seed=7)


def _counts(url: str) -> tuple[int, int, int, int]:
    eng = sa.create_engine(resolve_url(url))
    with eng.connect() as conn:
        n = conn.execute(sa.text("SELECT COUNT(*) FROM images")).scalar()
        distinct_paths = conn.execute(sa.text("SELECT COUNT(DISTINCT path) FROM images")).scalar()
        meta = conn.execute(sa.text("SELECT COUNT(*) FROM metadata WHERE key = 'extras.index'")).scalar()
        orphans = conn.execute(sa.text(
            "SELECT COUNT(*) FROM images i WHERE NOT EXISTS "
            "(SELECT 1 FROM metadata m WHERE m.sha256 = i.sha256)")).scalar()
    eng.dispose()
    return int(n), int(distinct_paths), int(meta), int(orphans)


def _process_pool(n: int) -> Any:
    """A pool of ``n`` fresh processes that start with deepscope, SQLAlchemy and psycopg imported
    once in a fork server (four interpreters importing them at once would dominate the test)."""
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["deepscope.provenance.catalog", "sqlalchemy.dialects.sqlite",
                                    "sqlalchemy.dialects.postgresql", "tifffile", "tests.provenance._workers"])
    return ctx.Pool(n)


def test_four_processes_add_1000_images(db_url, thousand):
    """4 writers x 250 images (plus 25 of another writer's), all starting on an empty database."""
    jobs = []
    for k in range(4):
        nxt = (k + 1) % 4
        mine = thousand[k * 250:(k + 1) * 250] + thousand[nxt * 250:nxt * 250 + 25]
        jobs.append((db_url, [str(p) for p in mine]))
    with _process_pool(4) as pool:
        counts = pool.starmap(_workers.add_files, jobs)
    assert all(c["failed"] == 0 and c["duplicate"] == 0 for c in counts)
    assert sum(c["added"] for c in counts) == 1000              # every image added exactly once
    assert sum(c["added"] + c["unchanged"] for c in counts) == 1100
    assert _counts(db_url) == (1000, 1000, 1000, 0)              # no duplicate, every image has its metadata
    with Catalog(db_url) as cat:
        assert cat.count("index>=990") == 10 and cat.schema_version == 1


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import sqlalchemy as sa
    from deepscope.provenance.catalog import Catalog
    url, folder = sys.argv[1], sys.argv[2]
    cat = Catalog(url)
    seen = {"metadata inserts": 0}

    @sa.event.listens_for(cat._engine, "before_cursor_execute")
    def _kill(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO METADATA"):
            seen["metadata inserts"] += 1
            if seen["metadata inserts"] == 3:  # batch 3: its images are inserted, its metadata not yet
                os.kill(os.getpid(), signal.SIGKILL)

    cat.add(folder, batch_size=10, pattern=r"img_(?P<index>\\d+)")
""")


def test_killed_add_leaves_a_consistent_catalog_that_a_rerun_completes(db_url, tmp_path):
    make_images(tmp_path / "imgs", 60, seed=3)
    r = subprocess.run([sys.executable, "-c", KILL_SCRIPT, db_url, str(tmp_path / "imgs")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    # the two committed batches are there, complete; the batch killed mid-transaction left nothing
    assert _counts(db_url) == (20, 20, 20, 0)
    if not db_url.startswith("postgresql"):
        eng = sa.create_engine(resolve_url(db_url))
        with eng.connect() as conn:
            assert conn.execute(sa.text("PRAGMA integrity_check")).scalar() == "ok"
        eng.dispose()
    with Catalog(db_url) as cat:
        rep = cat.add(tmp_path / "imgs", pattern=r"img_(?P<index>\d+)")
        assert rep.counts["unchanged"] == 20 and rep.counts["added"] == 40
    assert _counts(db_url) == (60, 60, 60, 0)


@pytest.mark.slow
def test_cli_add_killed_by_signal_then_rerun(tmp_path):
    """The real command, stopped by a signal at an arbitrary moment, then rerun.

    Slow (two CLI processes); the library-level test above covers the same guarantee with a kill
    placed inside a transaction."""
    import time

    make_images(tmp_path / "imgs", 120, seed=5)
    db = tmp_path / "c.db"
    cmd = [sys.executable, "-m", "deepscope.cli.app", "catalog", "add", str(tmp_path / "imgs"), "--db", str(db),
           "--batch-size", "5", "--pattern", r"img_(?P<index>\d+)"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "200"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        if db.exists() and _safe_count(db) >= 10:
            break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    n, paths, meta, orphans = _counts(str(db))
    assert n == paths == meta and orphans == 0 and n >= 10
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{120 - n} added, {n} unchanged" in r.stdout
    assert _counts(str(db))[0] == 120


def _safe_count(db: Path) -> int:
    try:
        return _counts(str(db))[0]
    except sa.exc.OperationalError:  # tables not created yet
        return 0


def test_writer_waits_for_a_lock_held_by_another_connection(tmp_path):
    """A catalog busy with another writer's transaction waits (busy timeout) instead of failing."""
    import sqlite3
    import threading

    db = tmp_path / "c.db"
    Catalog(db).close()
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO runs (run_id, command, params_json, started, status) "
                  "VALUES ('r1', 'hold', '{}', 'now', 'running')")
    timer = threading.Timer(0.5, other.execute, args=("COMMIT",))
    timer.start()
    try:
        with Catalog(db) as cat:
            rep = cat.add(make_images(tmp_path / "imgs", 5))
            assert rep.counts["added"] == 5 and cat.get_run("r1")["command"] == "hold"
    finally:
        timer.join()
        other.close()
