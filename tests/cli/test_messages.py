"""What a user reads: one message per problem in the tool's own words, and one exit-code rule (issue 31).

Warnings print as ``warning: <message>`` (no ``UserWarning``, no Python source line) and once per
message; a file that cannot be read is said once (the row's error), not again by a log line or by
tifffile; a path that does not exist stops every command with exit code 2 before any work; the rule is
stated in ``deepscope --help``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from deepscope.cli import _common  # noqa: E402
from deepscope.cli.app import EXIT_CODES, app  # noqa: E402
from deepscope.io import write_tiff  # noqa: E402

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_warnings_are_said_once_in_the_tools_words(capsys, monkeypatch):
    monkeypatch.setattr(_common, "_SHOWN", set())
    monkeypatch.setattr(_common, "_VERBOSE", [0])
    for _ in range(3):
        _common._show_warning(UserWarning("a.tif: looks unlike the images"), UserWarning, "/x/deepscope/y.py", 12)
    _common._show_warning(ResourceWarning("unclosed file <x>"), ResourceWarning, "/x/y.py", 3)
    err = capsys.readouterr().err
    assert _flat(err).count("warning: a.tif: looks unlike the images") == 1
    assert "UserWarning" not in err and "y.py" not in err and "unclosed" not in err
    monkeypatch.setattr(_common, "_VERBOSE", [2])  # -vv: as Python shows them, for debugging
    _common._show_warning(UserWarning("b.tif: odd"), UserWarning, "/x/deepscope/y.py", 12)
    err = capsys.readouterr().err
    assert "UserWarning: b.tif: odd" in _flat(err) and "y.py:12" in err


def test_setup_logging_routes_warnings_through_the_cli(monkeypatch):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    _common.setup_logging(0)
    assert warnings.showwarning is _common._show_warning


@pytest.mark.parametrize("command", [["count", "{m}", "-o", "{o}/c.csv"], ["segment", "{m}", "-o", "{o}/seg"],
                                     ["restore", "{m}", "--model", "deblur-bbbc005", "-o", "{o}/r"],
                                     ["analyze", "{m}", "-o", "{o}/an"]])
def test_a_path_that_does_not_exist_stops_every_command_with_exit_2(tmp_path, command):
    args = [a.format(m=tmp_path / "nope.tif", o=tmp_path) for a in command]
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "nope.tif" in _flat(r.output) and "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, not even a report


def test_an_unreadable_image_is_said_once(tmp_path):
    (tmp_path / "broken.tif").write_bytes(b"II*\x00junk")  # tifffile logs its own complaint about this one
    write_tiff(tmp_path / "ok.tif", (np.random.default_rng(0).random((64, 80)) * 200).astype(np.uint8))
    r = runner.invoke(app, ["count", str(tmp_path / "broken.tif"), str(tmp_path / "ok.tif"), "-o",
                            str(tmp_path / "c.csv"), "--no-report"])
    assert r.exit_code == 0, r.output  # one image done: the rule's 0, with the failure listed
    out = _flat(r.output)
    assert out.count("broken.tif: TIFF holds no image data") == 1
    assert "WARNING" not in r.output and "invalid offset" not in r.output


def test_the_exit_code_rule_is_in_the_help():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    assert _flat(EXIT_CODES) in _flat(r.output)
    for code in ("0 the command ran", "1 every image failed", "2 the command could not start", "130 interrupted"):
        assert code in EXIT_CODES
