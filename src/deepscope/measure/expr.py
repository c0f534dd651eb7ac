"""Object filters as a small expression language with a parser of its own (``filter.where``).

A filter is a condition on an object's measurements, written with column names, numbers, arithmetic,
comparisons, ``and`` / ``or`` / ``not`` and a few whitelisted functions::

    AreaShape_Area >= 100 and AreaShape_Solidity > 0.9
    50 <= AreaShape_Area <= 2000 and not (Intensity_MeanIntensity_DNA < 0.1)
    sqrt(AreaShape_Area) / AreaShape_Perimeter > 0.2 or isnan(Intensity_MeanIntensity_DNA)

Nothing is evaluated by Python: the text is tokenised and parsed here into a tree of the forms
below, and the tree is evaluated with NumPy on the table's columns. There is no attribute access
(``a.b``), no indexing, no ``@`` variables, no strings and no function outside :data:`FUNCTIONS`;
anything else is a parse error that names the position. The grammar (docs/pipelines.md states it
too)::

    filter     := or
    or         := and (("or" | "|") and)*
    and        := not (("and" | "&") not)*
    not        := ("not" | "~") not | comparison
    comparison := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)*     # chains: 1 < a <= 5
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/" | "%") unary)*
    unary      := ("-" | "+") unary | power
    power      := atom ("**" unary)?
    atom       := NUMBER | COLUMN | FUNCTION "(" sum ("," sum)* ")" | "(" or ")"
    COLUMN     := a name [A-Za-z_][A-Za-z0-9_]*, or any text in backquotes (`Area um2`)

A comparison with a missing value (NaN) is false, as in pandas. The whole filter must be a
condition (a comparison, ``isnan``/``isfinite``, or conditions joined by and/or/not).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepscope.errors import InputError

__all__ = ["FilterExpression", "parse_filter", "FUNCTIONS", "MAX_LENGTH", "MAX_DEPTH"]

#: Longest filter text accepted (characters).
MAX_LENGTH = 4000
#: Deepest nesting of parentheses, operators and calls accepted.
MAX_DEPTH = 50

#: The functions a filter may call: name -> (number of arguments, NumPy function, returns a condition).
FUNCTIONS: Mapping[str, tuple[int, Callable[..., Any], bool]] = {
    "abs": (1, np.abs, False), "sqrt": (1, np.sqrt, False), "log": (1, np.log, False),
    "log2": (1, np.log2, False), "log10": (1, np.log10, False), "exp": (1, np.exp, False),
    "floor": (1, np.floor, False), "ceil": (1, np.ceil, False), "round": (1, np.round, False),
    "min": (2, np.minimum, False), "max": (2, np.maximum, False),
    "isnan": (1, np.isnan, True), "isfinite": (1, np.isfinite, True),
}

_KEYWORDS = {"and": "and", "or": "or", "not": "not", "&": "and", "|": "or", "~": "not"}
_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "==": np.equal,
            "!=": np.not_equal}
_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "%": np.mod, "**": np.power}
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<quoted>`[^`]*`)
  | (?P<op>\*\*|<=|>=|==|!=|[<>+\-*/%(),&|~])
""", re.VERBOSE)
#: Characters that people bring from Python or pandas, and why they are refused.
_REFUSED = {
    "@": "'@' names (Python variables) are not part of the filter language; write the number itself",
    ".": "attribute access ('.') is not allowed; use a column name, a number or a function of FUNCTIONS",
    "[": "indexing ('[') is not allowed; use a column name",
    "'": "strings are not part of the filter language; compare columns with numbers",
    '"': "strings are not part of the filter language; compare columns with numbers",
    "=": "'=' alone is not a comparison; write '==' for equality",
    "!": "'!' alone is not an operator; write 'not' or '!='",
}


@dataclass(frozen=True)
class _Tok:
    kind: str  # number, name, quoted, op, end
    text: str
    pos: int


def _fail(text: str, pos: int, msg: str) -> InputError:
    return InputError(f"filter {text!r}, at character {pos + 1}: {msg}")


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            raise _fail(text, pos, _REFUSED.get(ch, f"{ch!r} is not part of the filter language"))
        kind = m.lastgroup or ""
        if kind == "name" and m.end() < len(text) and text[m.end()] == ".":
            raise _fail(text, m.end(), _REFUSED["."])
        if kind == "number" and m.end() < len(text) and (text[m.end()].isalpha() or text[m.end()] == "_"):
            raise _fail(text, m.end(), f"a number runs into a name ({text[pos:m.end() + 1]!r}); put a space or "
                                       "an operator between them")
        if kind != "space":
            out.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


class _Parser:
    """Recursive descent over the tokens; every node is a tuple whose first item is its kind."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0
        self.columns: list[str] = []

    # ------------------------------------------------------------------ helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def word(self) -> str:
        t = self.tok
        if t.kind == "op" and t.text in _KEYWORDS:
            return _KEYWORDS[t.text]
        return t.text if t.kind == "name" and t.text in ("and", "or", "not") else ""

    def fail(self, msg: str, tok: _Tok | None = None) -> InputError:
        return _fail(self.text, (tok or self.tok).pos, msg)

    def expect(self, text: str) -> None:
        if self.tok.text != text or self.tok.kind != "op":
            found = repr(self.tok.text) if self.tok.kind != "end" else "the end"
            raise self.fail(f"expected {text!r}, found {found}")
        self.i += 1

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"the filter nests deeper than {MAX_DEPTH} levels")

    # ------------------------------------------------------------------ grammar
    def parse(self) -> tuple[Any, ...]:
        if not self.text.strip():
            raise _fail(self.text, 0, "the filter is empty; write a condition such as 'AreaShape_Area > 50'")
        node = self.logic("or")
        if self.tok.kind != "end":
            raise self.fail(f"unexpected {self.tok.text!r}; join conditions with 'and' / 'or'")
        if not _is_condition(node):
            raise _fail(self.text, 0, "the filter must be a condition (a comparison such as "
                                      "'AreaShape_Area > 50', or conditions joined by and/or/not), not a number")
        return node

    def logic(self, op: str) -> tuple[Any, ...]:
        self.nest()
        sub = self.logic_and if op == "or" else self.logic_not
        items = [sub()]
        while self.word() == op:
            t = self.tok
            self.i += 1
            items.append(sub())
            for item in (items[-2], items[-1]):
                if not _is_condition(item):
                    raise self.fail(f"'{op}' joins conditions (comparisons), not numbers", t)
        self.depth -= 1
        return items[0] if len(items) == 1 else (op, tuple(items))

    def logic_and(self) -> tuple[Any, ...]:
        return self.logic("and")

    def logic_not(self) -> tuple[Any, ...]:
        if self.word() == "not":
            t = self.tok
            self.i += 1
            self.nest()
            inner = self.logic_not()
            self.depth -= 1
            if not _is_condition(inner):
                raise self.fail("'not' applies to a condition (a comparison), not a number", t)
            return ("not", inner)
        return self.comparison()

    def comparison(self) -> tuple[Any, ...]:
        first = self.sum()
        ops, operands = [], [first]
        while self.tok.kind == "op" and self.tok.text in _COMPARE:
            ops.append(self.tok.text)
            t = self.tok
            self.i += 1
            operands.append(self.sum())
            for x in operands[-2:]:
                if _is_condition(x):
                    raise self.fail(f"'{t.text}' compares numbers; put parentheses around conditions joined by "
                                    "and/or", t)
        return first if not ops else ("cmp", tuple(ops), tuple(operands))

    def sum(self) -> tuple[Any, ...]:
        return self.binary(("+", "-"), self.product)

    def product(self) -> tuple[Any, ...]:
        return self.binary(("*", "/", "%"), self.unary)

    def binary(self, ops: tuple[str, ...], sub: Callable[[], tuple[Any, ...]]) -> tuple[Any, ...]:
        node = sub()
        while self.tok.kind == "op" and self.tok.text in ops:
            t = self.tok
            self.i += 1
            right = sub()
            if _is_condition(node) or _is_condition(right):
                raise self.fail(f"'{t.text}' works on numbers, not on conditions", t)
            node = ("arith", t.text, node, right)
        return node

    def unary(self) -> tuple[Any, ...]:
        if self.tok.kind == "op" and self.tok.text in ("-", "+"):
            t = self.tok
            self.i += 1
            self.nest()
            inner = self.unary()
            self.depth -= 1
            if _is_condition(inner):
                raise self.fail(f"'{t.text}' works on numbers, not on conditions", t)
            return inner if t.text == "+" else ("neg", inner)
        return self.power()

    def power(self) -> tuple[Any, ...]:
        base = self.atom()
        if self.tok.kind == "op" and self.tok.text == "**":
            t = self.tok
            self.i += 1
            self.nest()
            exp = self.unary()
            self.depth -= 1
            if _is_condition(base) or _is_condition(exp):
                raise self.fail("'**' works on numbers, not on conditions", t)
            return ("arith", "**", base, exp)
        return base

    def atom(self) -> tuple[Any, ...]:
        t = self.tok
        if t.kind == "number":
            self.i += 1
            return ("num", float(t.text))
        if t.kind == "quoted":
            self.i += 1
            name = t.text[1:-1]
            if not name:
                raise self.fail("empty column name ``", t)
            self.columns.append(name)
            return ("col", name)
        if t.kind == "name":
            if t.text in ("and", "or", "not"):
                raise self.fail(f"'{t.text}' needs a condition before it", t)
            self.i += 1
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(t)
            self.columns.append(t.text)
            return ("col", t.text)
        if t.kind == "op" and t.text == "(":
            self.i += 1
            self.nest()
            inner = self.logic("or")
            self.depth -= 1
            self.expect(")")
            return inner
        if t.kind == "end":
            raise self.fail("the filter ends too early; a column name, number or '(' is missing")
        raise self.fail(f"unexpected {t.text!r}; expected a column name, a number, a function call or '('")

    def call(self, name: _Tok) -> tuple[Any, ...]:
        spec = FUNCTIONS.get(name.text)
        if spec is None:
            raise self.fail(f"unknown function {name.text!r}; the filter language has {', '.join(sorted(FUNCTIONS))}",
                            name)
        self.expect("(")
        self.nest()
        args = [self.sum()]
        while self.tok.kind == "op" and self.tok.text == ",":
            self.i += 1
            args.append(self.sum())
        self.depth -= 1
        self.expect(")")
        if len(args) != spec[0]:
            raise self.fail(f"{name.text}() takes {spec[0]} argument(s), got {len(args)}", name)
        if any(_is_condition(a) for a in args):
            raise self.fail(f"{name.text}() takes numbers, not conditions", name)
        return ("call", name.text, tuple(args))


def _is_condition(node: tuple[Any, ...]) -> bool:
    kind = node[0]
    return kind in ("cmp", "and", "or", "not") or (kind == "call" and FUNCTIONS[node[1]][2])


def _evaluate(node: tuple[Any, ...], columns: Mapping[str, np.ndarray]) -> Any:
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "col":
        return columns[node[1]]
    if kind == "neg":
        return np.negative(_evaluate(node[1], columns))
    if kind == "arith":
        return _ARITH[node[1]](_evaluate(node[2], columns), _evaluate(node[3], columns))
    if kind == "call":
        return FUNCTIONS[node[1]][1](*(_evaluate(a, columns) for a in node[2]))
    if kind == "cmp":
        values = [_evaluate(x, columns) for x in node[2]]
        out: Any = True
        for op, a, b in zip(node[1], values, values[1:]):
            out = np.logical_and(out, _COMPARE[op](a, b))
        return out
    if kind == "not":
        return np.logical_not(_evaluate(node[1], columns))
    parts = [_evaluate(x, columns) for x in node[1]]
    combine = np.logical_and if kind == "and" else np.logical_or
    out = parts[0]
    for p in parts[1:]:
        out = combine(out, p)
    return out


@dataclass(frozen=True)
class FilterExpression:
    """A parsed filter: its text, the columns it reads and its tree (see the module docstring).

    Use :func:`parse_filter` to make one.
    """

    text: str
    columns: tuple[str, ...]
    tree: tuple[Any, ...]

    def evaluate(self, table: Any) -> np.ndarray:
        """The rows of ``table`` (a DataFrame or a mapping of column -> 1-D array) that meet the filter.

        Returns
        -------
        numpy.ndarray of bool, (n_rows,)

        Raises
        ------
        deepscope.errors.InputError
            A column the filter names is not in the table, or is not numeric.
        """
        names = list(table.columns) if hasattr(table, "columns") else list(table)
        n = len(table) if hasattr(table, "columns") else len(next(iter(table.values()), ()))
        cols: dict[str, np.ndarray] = {}
        for c in self.columns:
            if c not in names:
                raise InputError(f"filter {self.text!r}: no column {c!r}; columns are {names}")
            values = np.asarray(table[c])
            if values.dtype.kind not in "biuf":
                raise InputError(f"filter {self.text!r}: column {c!r} holds {values.dtype} values, not numbers")
            cols[c] = values.astype(float, copy=False)
        with np.errstate(all="ignore"):  # log(0), 0/0 ...: NaN and inf compare false, as missing values
            out = np.broadcast_to(np.asarray(_evaluate(self.tree, cols), dtype=bool), (n,))
        return np.array(out, dtype=bool)


def parse_filter(text: str) -> FilterExpression:
    """Parse a filter (``"AreaShape_Area > 50 and AreaShape_Solidity >= 0.9"``) without evaluating anything.

    Parameters
    ----------
    text : str
        A condition in the filter language (see the module docstring for the grammar).

    Returns
    -------
    FilterExpression

    Raises
    ------
    deepscope.errors.InputError
        Text that is not in the language (the message names the position and why), longer than
        :data:`MAX_LENGTH` or nested deeper than :data:`MAX_DEPTH`.

    Examples
    --------
    >>> f = parse_filter("50 <= AreaShape_Area < 200 and not isnan(AreaShape_Solidity)")
    >>> f.columns
    ('AreaShape_Area', 'AreaShape_Solidity')
    >>> f.evaluate({"AreaShape_Area": [10, 60, 300], "AreaShape_Solidity": [1.0, 0.9, 0.8]}).tolist()
    [False, True, False]
    >>> parse_filter("AreaShape_Area > @np.pi")
    Traceback (most recent call last):
    ...
    deepscope.errors.InputError: filter 'AreaShape_Area > @np.pi', at character 18: '@' names (Python variables) are not part of the filter language; write the number itself
    """
    if not isinstance(text, str):
        raise InputError(f"a filter is a text such as 'AreaShape_Area > 50'; got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise InputError(f"filter of {len(text)} characters is longer than the {MAX_LENGTH} allowed")
    p = _Parser(text)
    tree = p.parse()
    return FilterExpression(text, tuple(dict.fromkeys(p.columns)), tree)
