"""Data-set designs of the synthetic generator and BBBC005's file naming.

BBBC005 simulates 24 cell counts (plate columns 01-24) at 16 focus-blur levels (plate rows
A-P), 25 sites each, in two stains: ``SIMCEPImages_<well>_C<count>_F<blur>_s<site>_w<stain>.TIF``.
Both lists are ``numpy.linspace`` rounded to integers: counts ``linspace(1, 100, 24)`` and blur
indices ``linspace(1, 48, 16)``, so row A = F1, H = F23 and P = F48 as in the real files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from deepscope.errors import InputError

__all__ = ["BBBC005_COUNTS", "BBBC005_BLURS", "BBBC005_SITES", "BBBC005_STAINS", "Design", "DESIGNS",
           "get_design", "well_positions", "image_name", "mask_name", "field_seed", "MAX_ROWS", "MAX_COLUMNS"]

#: The 24 cell counts of BBBC005 (plate columns 01-24): ``round(linspace(1, 100, 24))``.
BBBC005_COUNTS: tuple[int, ...] = (1, 5, 10, 14, 18, 23, 27, 31, 35, 40, 44, 48, 53, 57, 61, 66, 70, 74, 78, 83,
                                   87, 91, 96, 100)
#: The 16 focus-blur indices of BBBC005 (plate rows A-P): ``round(linspace(1, 48, 16))``.
BBBC005_BLURS: tuple[int, ...] = (1, 4, 7, 10, 14, 17, 20, 23, 26, 29, 32, 35, 39, 42, 45, 48)
#: Sites per (count, blur) well in BBBC005.
BBBC005_SITES = 25
#: Stains of BBBC005: 1 = nuclei (w1), 2 = cell bodies (w2).
BBBC005_STAINS: tuple[int, ...] = (1, 2)
#: A plate has rows A-P (one per blur level) and two-digit columns (one per count).
MAX_ROWS, MAX_COLUMNS = 16, 99


@dataclass(frozen=True)
class Design:
    """A full data-set design: every count x blur x site x stain is written.

    Examples
    --------
    >>> d = DESIGNS["bbbc005"]
    >>> len(d.counts) * len(d.blurs) * d.sites * len(d.stains)
    19200
    """

    counts: tuple[int, ...]
    blurs: tuple[int, ...]
    sites: int
    stains: tuple[int, ...]


#: Named designs for ``deepscope synth --preset``.
DESIGNS: dict[str, Design] = {
    "bbbc005": Design(BBBC005_COUNTS, BBBC005_BLURS, BBBC005_SITES, BBBC005_STAINS),
}


def get_design(name: str) -> Design:
    """The design named ``name`` (case-insensitive).

    Raises
    ------
    deepscope.errors.InputError
        If no design has that name.
    """
    try:
        return DESIGNS[name.lower()]
    except KeyError:
        raise InputError(f"unknown preset {name!r}; known presets: {', '.join(DESIGNS)}") from None


def well_positions(values: Iterable[int], reference: Sequence[int], *, axis: str) -> dict[int, int]:
    """Plate positions (0-based) of counts (``axis="column"``) or blur indices (``axis="row"``).

    The rule: when every value is one of BBBC005's (``reference``), it keeps BBBC005's position
    (so ``C53`` is always column 13 and ``F23`` row H); otherwise the distinct values are
    numbered in increasing order (``--counts 2,7,200`` gives columns 01, 02, 03). Mixing is
    never ambiguous because the whole axis follows one rule.

    Raises
    ------
    deepscope.errors.InputError
        If there are more distinct values than plate positions (16 rows A-P, 99 columns).

    Examples
    --------
    >>> well_positions([53, 1], BBBC005_COUNTS, axis="column")
    {1: 0, 53: 12}
    >>> well_positions([2, 7], BBBC005_COUNTS, axis="column")
    {2: 0, 7: 1}
    """
    vals = sorted(set(int(v) for v in values))
    limit = MAX_ROWS if axis == "row" else MAX_COLUMNS
    if all(v in reference for v in vals):
        return {v: list(reference).index(v) for v in vals}
    if len(vals) > limit:
        what = "blur levels (plate rows A-P)" if axis == "row" else "counts (two-digit plate columns)"
        raise InputError(f"{len(vals)} distinct {what.split(' (')[0]} do not fit a plate: at most {limit} "
                         f"{what}; split the run into several output folders")
    return {v: i for i, v in enumerate(vals)}


def image_name(count: int, blur: int, site: int, stain: int, *, row: int, column: int) -> str:
    """BBBC005 file name, e.g. ``SIMCEPImages_A05_C18_F1_s05_w1.TIF`` (row and column 0-based).

    Examples
    --------
    >>> image_name(18, 1, 5, 1, row=0, column=4)
    'SIMCEPImages_A05_C18_F1_s05_w1.TIF'
    """
    return f"SIMCEPImages_{chr(ord('A') + row)}{column + 1:02d}_C{count}_F{blur}_s{site:02d}_w{stain}.TIF"


def mask_name(count: int, site: int, stain: int, *, column: int) -> str:
    """Name of a field's ground-truth mask: its in-focus (row A, F1) image name, as in BBBC005.

    Examples
    --------
    >>> mask_name(18, 5, 2, column=4)
    'SIMCEPImages_A05_C18_F1_s05_w2.TIF'
    """
    return image_name(count, 1, site, stain, row=0, column=column)


def field_seed(seed: int, count: int, site: int) -> np.random.SeedSequence:
    """The seed of one simulated field, derived from ``(seed, count, site)`` only.

    Every image of a field (all blur levels and stains) comes from this seed, so files do not
    depend on which other fields are written, in what order or by how many processes.

    Examples
    --------
    >>> a = np.random.default_rng(field_seed(0, 18, 5)).random()
    >>> b = np.random.default_rng(field_seed(0, 18, 5)).random()
    >>> a == b
    True
    """
    if seed < 0:
        raise InputError(f"seed must be >= 0; got {seed}")
    return np.random.SeedSequence([int(seed), int(count), int(site)])
