"""Issue 30, finding 8: a file-name pattern cannot hang a run (catastrophic backtracking, huge counted repeats)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.data import PairRule
from deepscope.errors import InputError, LimitError
from deepscope.io import PRESETS, FilenamePattern, get_pattern
from deepscope.io.limits import override_limits
from deepscope.io.patterns import MAX_PATTERN_UNITS, pattern_sub

from ..pipeline._data import write_nuclei

NAME = "a" * 40 + "!"  # with re, (a|aa)+$ takes ~fib(40) = 1e8 steps at each of 40 starts


@pytest.mark.parametrize("regex", [r"(?P<x>(a|aa)+$)", r"(?P<x>(a|a)+$)", r"(?P<x>(a|ab|aa)+$)"])
def test_a_backtracking_pattern_is_stopped_after_the_limit(regex):
    pat = get_pattern(regex)
    with override_limits(regex_seconds=0.2):
        with pytest.raises(LimitError, match=rf"^'{NAME}': the file-name pattern '{re.escape(regex)}' took over 0\.2 s "
                                             r"\(CPU time\) to match this name and was stopped; .*"
                                             r"DEEPSCOPE_REGEX_TIMEOUT=N"):
            pat.parse(NAME)


def test_nested_plus_no_longer_backtracks():
    # (a+)+$ is the classic case; the matcher (regex) finds there is no match at once
    with override_limits(regex_seconds=0.2):
        assert get_pattern(r"(?P<x>(a+)+$)").parse(NAME) is None
        assert get_pattern(r"(?P<x>(a+)+)!$").parse(NAME) == {"x": "a" * 40}


def test_counted_repeats_that_would_unroll_to_gigabytes_are_refused():
    # regex unrolls counted repeats when it compiles: one more {100} than this took > 8 GB
    with pytest.raises(InputError, match=rf"holds 101,010,101 units .* over {MAX_PATTERN_UNITS:,}"):
        get_pattern(r"(?P<a>(((a{100}){100}){100}){100})")
    assert get_pattern(r"(?P<a>(a{100}){100})").parse("a" * 10000) == {"a": "a" * 10000}


NAMES = ["SIMCEPImages_A05_C18_F1_s05_w1.TIF", "plate1_B03_s2_w1.tif", "x_C12_s10_w22.png", "nothing.tif",
         "SIMCEPImages_P24_C100_F48_s25_w2.TIF", "é_Ü_A01_s1_w1.tif", "plate_A1_s1_w1.tif"]
CUSTOM = [r"(?P<well>[A-P]\d{2})", r"^(?P<plate>[^_]+)_(?P<well>(?P<row>[A-P])(?P<col>\d+))_s(?P<site>\d+)",
          r"(?i)(?P<stem>.+?)(?:_w(?P<channel>\d))?\.(?:tif|png)$", r"_(?P<n>-?\d+)(?=_)", r"(?P<opt>Z\d)?_(?P<w>w\d)"]


@pytest.mark.parametrize("regex", CUSTOM + [p.regex for p in PRESETS.values()])
def test_matches_are_those_of_pythons_re(regex):
    from deepscope.io.patterns import _convert

    pat = FilenamePattern(regex)
    for name in NAMES:
        m = re.search(regex, name)
        got = pat.parse(name)
        assert (got is None) == (m is None), (regex, name)
        if m is not None:  # presets add derived columns
            assert {k: got[k] for k in m.groupdict()} == {k: _convert(v) for k, v in m.groupdict().items()}


def test_presets_parse_as_before_and_a_zero_limit_means_no_limit():
    with override_limits(regex_seconds=0):
        md = get_pattern("bbbc005").parse("SIMCEPImages_A05_C18_F1_s05_w1.TIF")
    assert md == {"well": "A05", "row": "A", "column": 5, "count": 18, "blur": 1, "site": 5, "stain": 1,
                  "field": "C18_s05"}


def test_invalid_patterns_keep_res_errors():
    with pytest.raises(InputError, match=r"pattern '\(\?P<x>\[a' is not a valid regular expression: unterminated"):
        FilenamePattern(r"(?P<x>[a")
    with pytest.raises(InputError, match="has no named groups"):
        FilenamePattern(r"(a)")


def test_pairing_substitutions_are_bounded_too():
    assert pattern_sub(r"_F\d+_", "_F1_", "SIMCEPImages_A05_C18_F16_s05_w1.TIF") == \
        re.sub(r"_F\d+_", "_F1_", "SIMCEPImages_A05_C18_F16_s05_w1.TIF")
    assert pattern_sub(r"(?P<s>\w+)\.tif", r"\g<s>_mask.png", "img_01.tif") == "img_01_mask.png"
    rule = PairRule("masks", sub=(r"(a|aa)+$", "x"))
    with override_limits(regex_seconds=0.2):
        with pytest.raises(LimitError, match=rf"'{NAME}\.tif': the file-name pattern '\(a\|aa\)\+\$' took over 0\.2 s"):
            rule.partner_name(Path(NAME + ".tif"), {})
    with pytest.raises(InputError, match=r"replacement '\\\\9' of pattern 'a' is not valid"):
        pattern_sub("a", r"\9", "a.tif")


def test_a_pipeline_with_a_backtracking_pattern_stops_with_one_line(tmp_path):
    # the pattern is the run's, for every file: one that times out stops discovery (as a name it does
    # not match does), before any work, rather than costing the limit again on every file
    write_nuclei(tmp_path / "images", 2, prefix=NAME)
    spec = tmp_path / "p.yaml"
    spec.write_text(yaml.safe_dump({"inputs": {"paths": ["images"], "pattern": r"(?P<x>(a|aa)+$)"},
                                    "steps": [{"segment": {"model": "otsu-watershed"}}]}))
    with override_limits(regex_seconds=0.2):
        r = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "-j", "0"])
    assert r.exit_code == 2, r.output
    flat = " ".join(r.output.split())
    assert flat.count("error:") == 1 and "took over 0.2 s (CPU time) to match this name" in flat
    assert NAME in flat and "DEEPSCOPE_REGEX_TIMEOUT" in flat and "Traceback" not in r.output


def test_a_pipeline_spec_refuses_a_pattern_that_would_unroll(tmp_path):
    from deepscope.errors import ConfigError
    from deepscope.pipeline import load_pipeline

    (tmp_path / "images").mkdir()
    spec = tmp_path / "p.yaml"
    spec.write_text("inputs:\n  paths: [images]\n  pattern: '(?P<a>(((a{100}){100}){100}){100})'\n"
                    "steps: [{segment: {model: otsu-watershed}}]\n")
    with pytest.raises(ConfigError, match=r"p\.yaml, line 3: inputs\.pattern: .*units once its counted repeats"):
        load_pipeline(spec)
