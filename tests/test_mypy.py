"""The task packages and the inference engine type-check (mypy, with the settings of ``[tool.mypy]`` in
pyproject.toml): the task contracts are Protocols and typed options, so a mistake in a plugin shows here."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_tasks_and_predict_type_check():
    api = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install -e '.[dev]')")
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir",
                                str(ROOT / ".mypy_cache"), "-p", "deepscope.tasks", "-p", "deepscope.predict"])
    assert status == 0, out + err
