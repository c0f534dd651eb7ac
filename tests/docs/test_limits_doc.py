"""Every command of docs/limits.md runs as written (see _harness.py for the stand-in data), and the page's
table of limits states the defaults and environment variables deepscope applies."""

from __future__ import annotations

import re

import pandas as pd
import pytest

pytest.importorskip("torch")

from ._harness import ROOT, run_document  # noqa: E402

_UNITS = {"": 1, "GiB": 1 << 30, "MiB": 1 << 20, "s": 1}


def _stated_limits() -> dict[str, float]:
    """{environment variable: default} from the page's table (`| what | 250,000,000 | `DEEPSCOPE_...` | ...`)."""
    out = {}
    for value, unit, env in re.findall(r"^\| [^|]+ \| ([\d,]+) ?(GiB|MiB|s|) \| `(DEEPSCOPE_\w+)` \|",
                                       (ROOT / "docs" / "limits.md").read_text(encoding="utf-8"), flags=re.M):
        out[env] = float(value.replace(",", "")) * _UNITS[unit]
    return out


def test_limits_runs_as_written(tmp_path, monkeypatch):
    from deepscope.io.limits import DEFAULTS, ENV, limits

    run = run_document("docs/limits.md", tmp_path, monkeypatch)
    # the last command (`count huge_slide.tif` with --max-pixels 1e9) wrote counts.csv: the 12 cells of the slide
    counts = pd.read_csv(run.project / "counts.csv")
    assert list(counts["path"]) == ["huge_slide.tif"] and abs(counts["count"][0] - 12) <= 2

    # the table: every limit deepscope has, with its environment variable and default
    stated = _stated_limits()
    assert stated == {ENV[name]: float(DEFAULTS[name]) for name in ENV}
    assert limits().max_pixels == stated["DEEPSCOPE_MAX_PIXELS"] == 250_000_000  # the harness restored the environment
