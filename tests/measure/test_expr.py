"""The filter language: parsed by deepscope, never evaluated by Python; the exploit string of issue 14 is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepscope.errors import InputError
from deepscope.measure.expr import MAX_DEPTH, MAX_LENGTH, parse_filter

TABLE = pd.DataFrame({"A": [10.0, 60.0, 300.0, np.nan], "B": [1.0, 0.9, 0.8, 0.5], "Area um2": [1, 2, 3, 4]})


@pytest.mark.parametrize("text, expected", [
    ("A > 50", [False, True, True, False]),
    ("50 <= A < 200", [False, True, False, False]),
    ("A > 50 and B >= 0.9", [False, True, False, False]),
    ("A > 200 or B == 1", [True, False, True, False]),
    ("not A > 50", [True, False, False, True]),          # a comparison with NaN is false; its negation true
    ("~(A > 50) & (B < 1) | (B == 1)", [True, False, False, True]),
    ("sqrt(A) * 2 + -1 >= 14 ** 1", [False, True, True, False]),
    ("isnan(A) or A % 100 == 60", [False, True, False, True]),
    ("max(A, 100) / min(B, 0.5) > 500", [False, False, True, False]),
    ("`Area um2` != 2", [True, False, True, True]),
    ("log10(A) >= 1 and abs(-B) > 0.85 and 1.5e2 > 1e-3", [True, True, False, False]),
])
def test_filters_select_rows(text: str, expected: list[bool]) -> None:
    assert parse_filter(text).evaluate(TABLE).tolist() == expected


EXPLOIT = "AreaShape_Area > @np.lib._datasource.os.system('id > pwned.txt')"


@pytest.mark.parametrize("text, match", [
    (EXPLOIT, r"at character 18: '@' names \(Python variables\) are not part"),
    ("A > np.lib._datasource.os.system('id')", r"attribute access \('\.'\) is not allowed"),
    ("A.__class__ > 1", r"attribute access"),
    ("__import__('os').system('id') > 0", r"strings are not part"),
    ("__import__(1) > 0", r"unknown function '__import__'"),
    ("eval(1) > 0", r"unknown function 'eval'"),
    ("A[0] > 1", r"indexing"),
    ("A > 'x'", r"strings are not part"),
    ("A = 1", r"write '==' for equality"),
    ("A", r"must be a condition"),
    ("A > 1 and 2", r"'and' joins conditions"),
    ("(A > 1) + 1 > 0", r"'\+' works on numbers"),
    ("sqrt(A, B) > 1", r"sqrt\(\) takes 1 argument"),
    ("A > ", r"ends too early"),
    ("A > 1 B < 2", r"unexpected 'B'"),
    ("(A > 1", r"expected '\)'"),
    ("", r"the filter is empty"),
    ("A > 1 and", r"ends too early"),
    ("2B > 1", r"a number runs into a name"),
    ("lambda: 1", r"':' is not part of the filter language"),
])
def test_refused(text: str, match: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=match):
        parse_filter(text)
    assert not (tmp_path / "pwned.txt").exists()


def test_size_limits() -> None:
    with pytest.raises(InputError, match=f"longer than the {MAX_LENGTH} allowed"):
        parse_filter("A > 1 and " * 500 + "A > 1")
    with pytest.raises(InputError, match=f"nests deeper than {MAX_DEPTH} levels"):
        parse_filter("(" * (MAX_DEPTH + 1) + "A > 1" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(InputError, match="nests deeper"):
        parse_filter("-" * 200 + "A > 1")


def test_evaluate_errors() -> None:
    with pytest.raises(InputError, match=r"no column 'C'; columns are \['A', 'B', 'Area um2'\]"):
        parse_filter("C > 1").evaluate(TABLE)
    with pytest.raises(InputError, match="holds object values, not numbers"):
        parse_filter("S > 1").evaluate(pd.DataFrame({"S": ["a", "b"]}))
    assert parse_filter("A > 1").evaluate(TABLE.iloc[:0]).tolist() == []
    assert parse_filter("1 < 2").evaluate(TABLE).tolist() == [True] * 4


def test_filter_objects_refuses_the_exploit(tmp_path, monkeypatch) -> None:
    from deepscope.measure import filter_objects, measure_objects

    monkeypatch.chdir(tmp_path)
    lab = np.zeros((8, 8), np.int32)
    lab[2:5, 2:5] = 1
    with pytest.raises(InputError, match="'@' names"):
        filter_objects(lab, measure_objects(lab), EXPLOIT)
    assert not (tmp_path / "pwned.txt").exists()


def test_doctests() -> None:
    import doctest

    import deepscope.measure.expr as mod

    assert doctest.testmod(mod, optionflags=doctest.ELLIPSIS).failed == 0
