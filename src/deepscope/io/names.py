"""File names as text: names that are not valid UTF-8, and output names made unique per input."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["safe_text", "unique_names"]


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
