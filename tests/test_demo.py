"""`make demo` (python -m deepscope.demo): the nuclear stain only, true counts beside measured ones, the report."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("torch")


def test_demo_analyses_the_nuclear_stain_and_ends_with_the_report(tmp_path, capsys):
    from deepscope.demo import main

    assert main(["--out", str(tmp_path / "demo"), "--model", "otsu-watershed"]) == 0
    out = capsys.readouterr().out
    report = tmp_path.resolve() / "demo" / "analysis" / "report.html"
    assert out.rstrip().splitlines()[-1] == f"report: {report}" and report.is_file()
    assert "$ deepscope analyze" in out and "--pattern bbbc005" in out  # the commands, as a user would type them
    images = pd.read_csv(tmp_path / "demo" / "analysis" / "images.csv")
    assert images["FileName_Image"].str.endswith("_w1.TIF").all() and len(images) == 8
    assert {"Count_Nuclei", "Metadata_count"} <= set(images.columns)  # measured beside true
    counts = pd.read_csv(tmp_path / "demo" / "counts.csv")
    assert counts["path"].str.endswith("_w1.TIF").all()
    assert (tmp_path / "demo" / "split.csv").is_file() and (tmp_path / "demo" / "analysis" / "Nuclei.csv").is_file()
