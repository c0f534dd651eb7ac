"""File names as text: names that are not valid UTF-8, CSV cells a spreadsheet would run as formulas, and
output names made unique per input."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["safe_text", "unique_names", "csv_cell", "csv_plain", "csv_text", "csv_arrow", "csv_frame_plain",
           "CSV_FORMULA_CHARS"]

#: First characters that make a spreadsheet (Excel, LibreOffice, Google Sheets) read a CSV cell as a
#: formula: ``= + - @``, tab and carriage return (OWASP, "CSV Injection").
CSV_FORMULA_CHARS = "=+-@\t\r"
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_FORMULA = re.compile(r"[=+\-@\t\r]")
_PLAIN_NUMBER = re.compile(_NUMBER)


def safe_text(text: str) -> str:
    """``text`` as valid UTF-8 text: the undecodable bytes of a file name shown as ``\\xNN`` escapes.

    Python reads a file name that is not valid UTF-8 with each bad byte as a lone surrogate
    (PEP 383), which no UTF-8 table, CSV, Parquet file or database can hold. Tables keep such a
    name with those bytes escaped, so every row is written and the name stays recognisable.

    Examples
    --------
    >>> import os
    >>> name = os.fsdecode(b"caf\\xe9.tif")  # a Latin-1 name on a UTF-8 file system
    >>> safe_text(name), safe_text("plain.tif")
    ('caf\\\\xe9.tif', 'plain.tif')
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def unique_names(names: Sequence[str], *, taken: Iterable[str] = ()) -> tuple[list[str], list[tuple[int, str]]]:
    """Make output names unique: a name already used (by an earlier one or by ``taken``) gets ``_2``, ``_3`` ...

    Names are compared case-insensitively (``A`` and ``a`` are one file on macOS and Windows), and a
    suffixed name never takes a name that another input would get as it is.

    Returns
    -------
    names : list of str
        One per input, in order.
    renamed : list of (int, str)
        The index and original name of each input that got a suffix.

    Examples
    --------
    >>> unique_names(["y", "cell_1", "Y", "y_2"])
    (['y', 'cell_1', 'Y_3', 'y_2'], [(2, 'Y')])
    """
    used = {t.casefold() for t in taken}
    wanted = {n.casefold() for n in names}
    out: list[str] = []
    renamed: list[tuple[int, str]] = []
    seen: set[str] = set()
    for i, n in enumerate(names):
        key = n.casefold()
        if key not in used and key not in seen:
            out.append(n)
            seen.add(key)
            continue
        k = 2
        while any(f"{n}_{k}".casefold() in group for group in (used, seen, wanted)):
            k += 1
        new = f"{n}_{k}"
        out.append(new)
        seen.add(new.casefold())
        renamed.append((i, n))
    return out, renamed


def csv_cell(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs as a formula: a single quote ``'`` before a leading
    ``=``, ``+``, ``-``, ``@``, tab or carriage return.

    This is what spreadsheet tools expect (OWASP's advice on CSV injection): the quote makes the
    cell text, so a file named ``=HYPERLINK("http://x")+1.tif`` is shown, not run. Text that is a
    plain number (``-1.5``, ``+3``, ``-2e-3``) is left as it is, and so are numeric columns; a cell
    that already starts with ``'`` is unchanged, so neutralising twice changes nothing.
    :func:`csv_plain` undoes it when deepscope reads its own CSV tables back.

    Examples
    --------
    >>> csv_cell("=1+2.tif"), csv_cell("-1.5"), csv_cell("-x"), csv_cell("a=b")
    ("'=1+2.tif", '-1.5', "'-x", 'a=b')
    """
    if text and _FORMULA.match(text) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_plain(text: str) -> str:
    """The text :func:`csv_cell` neutralised: the ``'`` before a formula character removed.

    Examples
    --------
    >>> csv_plain("'=1+2.tif"), csv_plain("'quoted"), csv_plain("plain")
    ('=1+2.tif', "'quoted", 'plain')
    """
    if len(text) > 1 and text[0] == "'" and _FORMULA.match(text, 1) and not _PLAIN_NUMBER.fullmatch(text, 1):
        return text[1:]
    return text


def csv_text(table: pd.DataFrame, **to_csv: Any) -> str:
    """A data frame as CSV text whose text cells are :func:`csv_cell`-neutralised (numbers stay numbers).

    Every CSV table deepscope writes from pandas goes through this function (count and segment
    tables, wells, splits, evaluations, catalog exports), so a file name, set id, error or
    metadata value that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return is written
    with a leading ``'``. ``to_csv`` is passed to :meth:`pandas.DataFrame.to_csv` (default
    ``index=False``).

    Examples
    --------
    >>> import pandas as pd
    >>> print(csv_text(pd.DataFrame({"path": ["=1+2.tif", "a.tif"], "x": [-1.5, 2.0]})), end="")
    path,x
    '=1+2.tif,-1.5
    a.tif,2.0
    """
    import pandas as pd

    to_csv.setdefault("index", False)
    out = table.copy(deep=False)
    for c in out.columns:
        col = out[c]
        if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
            out[c] = col.map(lambda v: csv_cell(v) if isinstance(v, str) else v)
    text: str = out.to_csv(**to_csv)
    return text


def csv_frame_plain(table: pd.DataFrame) -> pd.DataFrame:
    """A data frame read from a CSV deepscope wrote, with its text cells :func:`csv_plain` again."""
    import pandas as pd

    for c in table.columns:
        col = table[c]
        if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
            table[c] = col.map(lambda v: csv_plain(v) if isinstance(v, str) else v)
    return table


def csv_arrow(table: pa.Table) -> pa.Table:
    """An Arrow table whose text columns are :func:`csv_cell`-neutralised, for :class:`pyarrow.csv.CSVWriter`
    (the pipeline's ``images.csv``, ``objects.csv`` and object tables); other columns are untouched."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for f, col in zip(table.schema, table.columns):
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            risky = pc.and_(pc.match_substring_regex(col, "^[=+\\-@\t\r]"),
                            pc.invert(pc.match_substring_regex(col, f"^{_NUMBER}$")))
            col = pc.if_else(risky, pc.binary_join_element_wise("'", col, ""), col)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=table.schema)
