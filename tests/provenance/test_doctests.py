"""The Examples sections of the provenance modules run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["meta", "sources", "optics", "lineage", "catalog"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mod = importlib.import_module(f"deepscope.provenance.{name}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
