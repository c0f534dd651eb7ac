"""Shared fixtures: paths to the real data beside the project (skipped cleanly when absent)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEEPSCOPE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _build_each_cli_once() -> None:
    """``typer.testing.CliRunner.invoke`` rebuilds the whole click command tree of the app it is given (every
    command's parameters from its signature: ~25 ms for deepscope's) on each call; the suite invokes the CLI
    about 450 times. Build it once per app and per set of registered commands (a test that registers a toy
    command gets a tree with it), and invoke that: the same click objects ``deepscope`` itself builds once per
    process."""
    try:
        import typer.testing
    except ImportError:  # pragma: no cover
        return
    build = typer.testing._get_command
    built: dict[tuple[object, ...], object] = {}

    def shape(app: object) -> tuple[object, ...]:
        cmds = tuple((c.name, id(c.callback)) for c in app.registered_commands)  # type: ignore[attr-defined]
        groups = tuple((g.name, shape(g.typer_instance)) for g in app.registered_groups)  # type: ignore[attr-defined]
        cb = app.registered_callback  # type: ignore[attr-defined]
        return (id(app), cmds, groups, id(cb.callback) if cb is not None else None)

    def get_command(app: object) -> object:
        key = shape(app)
        if key not in built:
            built[key] = build(app)
        return built[key]

    typer.testing._get_command = get_command  # type: ignore[assignment]


_build_each_cli_once()


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not available at {path}")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def bbbc005_dir() -> Path:
    return _need(SHARED / "bbbc005" / "images")


@pytest.fixture(scope="session")
def bbbc005_labels() -> Path:
    return _need(SHARED / "bbbc005" / "labels.csv")


@pytest.fixture(scope="session")
def dsb_dir() -> Path:
    return _need(SHARED / "dsb2018")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return _need(SHARED / "samples")


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """Give each test the torch thread count the session started with. A pipeline run in this process
    (``jobs=0``) sets torch's threads for its workers (cores // slots) and keeps them set: every later test
    of that pytest worker then ran with 2 threads next to the other worker's, which took 2-4x the CPU."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None:
        if threads is None:
            threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or None
        if threads and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


#: Test files that take 10-40 s each (whole documents run as written, every shipped model, recipe runs, the demo).
HEAVY = ("tests/docs/", "tests/models/test_zoo_reference.py", "tests/recipes/", "tests/test_demo.py")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the long test files first. ``make test`` hands whole files to two workers, one at a time as each
    runs out of work, in collection order (``--no-loadscope-reorder``: xdist's default order, files with the
    most tests first, put these one-test files last, so one worker ran a 40 s document while the other had
    finished). Long files first, the short ones even the two workers out at the end. The order inside a
    file, and of the other files, is unchanged."""
    items.sort(key=lambda item: 0 if item.nodeid.startswith(HEAVY) else 1)
