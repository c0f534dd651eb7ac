"""Fixtures for the provenance tests: tiny distinct images, and a real PostgreSQL server.

The PostgreSQL server is started once per test session (per xdist worker) in a temporary folder
on a free local port with ``initdb`` + ``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` (or PATH),
trust authentication, fsync off. PostgreSQL refuses to run as root, so as root the server runs as
the ``postgres`` OS user (else ``nobody``). Without server binaries or psycopg the PostgreSQL tests
skip; set ``DEEPSCOPE_REQUIRE_POSTGRES=1`` (CI does when it installed the server) to make a server
that cannot start a failure instead of a skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def make_images(folder: Path, n: int, *, prefix: str = "img", seed: int = 0, shape: tuple[int, int] = (6, 7),
                start: int = 0) -> list[Path]:
    """Write ``n`` tiny uint8 TIFFs with distinct bytes (seeded) into ``folder``."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(start, start + n):
        data = rng.integers(0, 256, size=shape, dtype=np.uint8)
        data.flat[0] = i % 256
        data.flat[1] = i // 256
        p = folder / f"{prefix}_{i:05d}.tif"
        tifffile.imwrite(p, data, compression=None, metadata=None)
        out.append(p)
    return out


def _pg_bindir() -> Path | None:
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda s: [int(x) if x.isdigit() else x for x in s.split("/")])
    if cands:
        return Path(cands[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which and shutil.which("initdb") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unavailable(reason: str) -> None:
    if os.environ.get("DEEPSCOPE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL required (DEEPSCOPE_REQUIRE_POSTGRES=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a running PostgreSQL server's ``postgres`` database (superuser ``deepscope``)."""
    bindir = _pg_bindir()
    if bindir is None:
        _unavailable("PostgreSQL server binaries not installed (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg 3 is not installed (pip install 'psycopg[binary]')")
    base = Path(tempfile.mkdtemp(prefix="deepscope-pg-"))
    kw: dict[str, Any] = {"cwd": str(base), "capture_output": True, "text": True, "timeout": 120,
                          "env": {**os.environ, "LC_ALL": "C", "LANG": "C"}}
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pw = pwd.getpwnam("nobody")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        kw.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        kw["env"]["HOME"] = str(base)
    data = base / "data"
    port = _free_port()
    try:
        r = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "deepscope", "--auth=trust",
                            "--no-sync", "-E", "UTF8", "--locale=C"], **kw)
        if r.returncode != 0:
            _unavailable(f"initdb failed: {r.stderr.strip()[-500:]}")
        opts = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=60")
        r = subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w",
                            "-t", "60", "-o", opts, "start"], **kw)
        if r.returncode != 0:
            log = (base / "server.log").read_text(errors="replace")[-800:] if (base / "server.log").exists() else ""
            _unavailable(f"pg_ctl start failed: {r.stderr.strip()[-400:]} {log}")
        yield f"postgresql://deepscope@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], **kw)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    dsn = pg_server
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # PostgreSQL >= 13
        except psycopg.Error:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh catalog URL on each backend: a SQLite file, and a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "deepscope.db")
    return str(request.getfixturevalue("pg_url"))
