"""Write synthetic BBBC005-style data sets: images, instance masks and ``labels.csv``.

Layout of an output folder (the names of BBBC005 and of its ground truth)::

    DIR/SIMCEPImages_<well>_C<count>_F<blur>_s<site>_w<stain>.TIF   uint8/uint16 images
    DIR/masks/SIMCEPImages_A<col>_C<count>_F1_s<site>_w<stain>.TIF  int32 instance labels
    DIR/labels.csv   filename,cell_count,blur,stain,site,well,field (as ../shared/data/bbbc005)
    DIR/synth.json   the arguments of the run (a rerun with the same ones resumes)

The mask of a field and stain is named like its in-focus (row A, F1) image, as BBBC005's
ground truth is: nuclei for ``w1``, cell bodies for ``w2``. Load with
``ImageLoader(pattern="bbbc005", labels="count", masks=PairRule(DIR / "masks", template=MASK_TEMPLATE))``,
or without masks with ``recursive=False`` (so the masks are not taken for images).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.data.synth._render import BIT_DEPTHS, check_size
from deepscope.data.synth.cells import STAINS, CellParams, _check_blurs, _check_stains, generate_field
from deepscope.data.synth.presets import (BBBC005_BLURS, BBBC005_COUNTS, field_seed, image_name, mask_name,
                                          well_positions)
from deepscope.errors import InputError
from deepscope.io.jsonable import to_jsonable

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["write_dataset", "plan_dataset", "LABEL_COLUMNS", "MASK_TEMPLATE", "MANIFEST"]

logger = logging.getLogger(__name__)

#: Columns of ``labels.csv``, as in the shared real BBBC005 set.
LABEL_COLUMNS = ("filename", "cell_count", "blur", "stain", "site", "well", "field")
#: :class:`deepscope.data.PairRule` template that finds a written image's mask (BBBC005 pattern fields).
MASK_TEMPLATE = "SIMCEPImages_A{column:02d}_C{count}_F1_s{site:02d}_w{stain}.TIF"
#: Name of the record of a run's arguments in its output folder.
MANIFEST = "synth.json"
_OWN_GLOB = "SIMCEPImages_*.TIF"


def _check_counts(counts: Iterable[int] | int) -> list[int]:
    items = [counts] if isinstance(counts, (int, np.integer)) else list(counts)
    if not items:
        raise InputError("counts is empty; give at least one cell count, e.g. counts=(1, 5, 10)")
    out: list[int] = []
    for c in items:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
            raise InputError(f"counts must be integers >= 0; got {c!r}")
        if c < 0:
            raise InputError(f"cell count must be >= 0; got {c}")
        if int(c) not in out:
            out.append(int(c))
    return sorted(out)


def _check_sites(sites: int | Sequence[int]) -> list[int]:
    if isinstance(sites, bool):
        raise InputError(f"sites must be a number of sites or a list of site numbers; got {sites!r}")
    if isinstance(sites, (int, np.integer)):
        if sites < 1:
            raise InputError(f"sites must be >= 1 (the number of sites per well); got {sites}")
        return list(range(1, int(sites) + 1))
    out = sorted({int(s) for s in sites})
    if not out or out[0] < 1:
        raise InputError(f"site numbers must be >= 1 (s01 is the first); got {list(sites)!r}")
    return out


def plan_dataset(*, counts: Iterable[int] | int, blurs: Iterable[int] | int = (1,), sites: int | Sequence[int] = 1,
                 stains: Iterable[int] | int = STAINS) -> pd.DataFrame:
    """The labels table of a design without generating anything: one row per image file.

    Besides the ``labels.csv`` columns it has ``count``, ``blur_index``, ``stain_index``,
    ``site_index``, ``column`` (1-based plate column) and ``mask`` (file name under ``masks/``).

    Raises
    ------
    deepscope.errors.InputError
        Negative counts, blur indices < 1, unknown stains, sites < 1, or more distinct counts or
        blur levels than plate positions.

    Examples
    --------
    >>> t = plan_dataset(counts=[53], blurs=[1, 23], sites=1, stains=[1])
    >>> t.filename.tolist()
    ['SIMCEPImages_A13_C53_F1_s01_w1.TIF', 'SIMCEPImages_H13_C53_F23_s01_w1.TIF']
    >>> t.loc[0, "mask"]
    'SIMCEPImages_A13_C53_F1_s01_w1.TIF'
    """
    import pandas as pd

    count_list = _check_counts(counts)
    blur_list = sorted(_check_blurs(blurs))
    site_list = _check_sites(sites)
    stain_list = sorted(_check_stains(stains))
    col = well_positions(count_list, BBBC005_COUNTS, axis="column")
    row = well_positions(blur_list, BBBC005_BLURS, axis="row")
    rows: list[dict[str, Any]] = []
    for c in count_list:
        for s in site_list:
            for f in blur_list:
                for st in stain_list:
                    name = image_name(c, f, s, st, row=row[f], column=col[c])
                    rows.append({"filename": name, "cell_count": c, "blur": f, "stain": f"w{st}", "site": f"s{s:02d}",
                                 "well": name.split("_")[1], "field": f"C{c}_s{s:02d}", "count": c, "blur_index": f,
                                 "stain_index": st, "site_index": s, "column": col[c] + 1,
                                 "mask": mask_name(c, s, st, column=col[c])})
    return pd.DataFrame(rows).sort_values("filename", kind="stable").reset_index(drop=True)


def write_dataset(out_dir: str | os.PathLike[str], *, counts: Iterable[int] | int, blurs: Iterable[int] | int = (1,),
                  sites: int | Sequence[int] = 1, stains: Iterable[int] | int = STAINS, seed: int = 0,
                  overwrite: bool = False, workers: int = 1, size: tuple[int, int] = (520, 696), bit_depth: int = 8,
                  clustering: float = 0.25, params: CellParams | None = None,
                  progress: Callable[[int, int], None] | None = None, **options: Any) -> pd.DataFrame:
    """Generate and write a BBBC005-style data set with instance masks and ``labels.csv``.

    Every (count, site) pair is one simulated field, written at every blur level and stain,
    from a seed derived from ``(seed, count, site)`` only: the files do not depend on the order
    of work or on ``workers``, and the same arguments give byte-identical files.

    Parameters
    ----------
    out_dir : str or PathLike
        Output folder (created). It must be empty or hold an earlier run with the same
        arguments (which is then completed: fields whose files all exist are skipped).
    counts : int or iterable of int
        Cell counts (>= 0). BBBC005's counts keep BBBC005's plate columns; any other set is
        numbered in increasing order (see :func:`~deepscope.data.synth.presets.well_positions`).
    blurs : int or iterable of int, default (1,)
        Focus-blur indices (>= 1): BBBC005's keep their plate rows (F1 = A, F23 = H, F48 = P).
    sites : int or sequence of int, default 1
        Number of sites per well (1..n), or explicit site numbers.
    stains : int or iterable of int, default (1, 2)
        1 = nuclei (w1), 2 = cell bodies (w2).
    seed : int, default 0
        Base seed (>= 0).
    overwrite : bool, default False
        Replace a folder that holds other files: earlier ``SIMCEPImages_*.TIF`` files not in
        this design, its masks, ``labels.csv`` and ``synth.json`` are removed; other files are kept.
    workers : int, default 1
        Processes generating fields in parallel.
    size : (int, int), default (520, 696)
        Image size (rows, cols).
    bit_depth : {8, 16}, default 8
        uint8 like BBBC005, or uint16.
    clustering : float, default 0.25
        Clustering probability (see :func:`generate_field`).
    params : CellParams, optional
        Generator parameters; ``**options`` override single fields.
    progress : callable, optional
        Called as ``progress(images_done, images_total)`` after each field.

    Returns
    -------
    pandas.DataFrame
        The labels table written to ``labels.csv`` (columns :data:`LABEL_COLUMNS`), sorted by file name.

    Raises
    ------
    FileExistsError
        ``out_dir`` holds files of another run or other files, and ``overwrite`` is False.
    deepscope.errors.InputError
        Invalid counts, blurs, sites, stains, seed, size, bit depth, workers or options, or a
        size too small to hold the largest count.

    Examples
    --------
    >>> import tempfile
    >>> table = write_dataset(tempfile.mkdtemp(), counts=[3], blurs=[1, 48], sites=1, stains=[1], size=(64, 96))
    >>> table[["filename", "cell_count", "blur", "stain", "well"]].values.tolist()
    [['SIMCEPImages_A01_C3_F1_s01_w1.TIF', 3, 1, 'w1', 'A01'], ['SIMCEPImages_P01_C3_F48_s01_w1.TIF', 3, 48, 'w1', 'P01']]
    """
    out = Path(out_dir)
    plan = plan_dataset(counts=counts, blurs=blurs, sites=sites, stains=stains)
    h, w = check_size(size)
    if bit_depth not in BIT_DEPTHS:
        raise InputError(f"bit_depth must be one of {BIT_DEPTHS}; got {bit_depth!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer >= 0; got {seed!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise InputError(f"workers must be an integer >= 1; got {workers!r}")
    # validates params, options, clustering and capacity before anything is written
    generate_field(0, size=(h, w), clustering=clustering, bit_depth=bit_depth, params=params, seed=0, **options)
    p = dataclasses.replace(params or CellParams(), **options)
    biggest = int(plan["count"].max())
    if biggest * p.nucleus_area > p.max_fill * h * w:
        raise InputError(f"size={(h, w)} is too small to hold {biggest} cells (nuclei would cover "
                         f"{biggest * p.nucleus_area / (h * w):.0%} of the image, at most {p.max_fill:.0%}); use a "
                         f"larger --size or smaller counts")
    manifest = {"generator": "deepscope.data.synth", "version": _version(), "seed": int(seed),
                "counts": sorted(set(plan["count"].tolist())), "blurs": sorted(set(plan["blur_index"].tolist())),
                "sites": sorted(set(plan["site_index"].tolist())), "stains": sorted(set(plan["stain_index"].tolist())),
                "size": [h, w], "bit_depth": int(bit_depth), "clustering": float(clustering),
                "params": to_jsonable(dataclasses.asdict(p))}
    resume = _prepare_folder(out, manifest, plan, overwrite=overwrite)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    from deepscope.io import write_text

    write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")

    fields = []
    for (c, s), grp in plan.groupby(["count", "site_index"], sort=True):
        files = [out / f for f in grp.filename] + [out / "masks" / m for m in set(grp["mask"])]
        if resume and all(f.exists() for f in files):
            continue
        fields.append({"out": str(out), "count": int(c), "site": int(s), "column": int(grp.column.iloc[0]) - 1,
                       "images": [(r.filename, int(r.blur_index), int(r.stain_index)) for r in grp.itertuples()],
                       "masks": sorted({(r.mask, int(r.stain_index)) for r in grp.itertuples()}),
                       "seed": int(seed), "size": (h, w), "bit_depth": int(bit_depth),
                       "clustering": float(clustering), "params": p})
    total = len(plan)
    done = total - sum(len(f["images"]) for f in fields)
    if done:
        logger.info("%s: %d of %d images already written by an earlier run with the same arguments; resuming",
                    out, done, total)
    if progress is not None:
        progress(done, total)
    if workers == 1 or len(fields) <= 1:
        for f in fields:
            _write_field(f)
            done += len(f["images"])
            if progress is not None:
                progress(done, total)
    else:
        import multiprocessing

        with ProcessPoolExecutor(max_workers=min(int(workers), len(fields)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_write_field, f): len(f["images"]) for f in fields}
            for fut in as_completed(futures):
                fut.result()
                done += futures[fut]
                if progress is not None:
                    progress(done, total)
    table = plan[list(LABEL_COLUMNS)].copy()
    write_text(out / "labels.csv", table.to_csv(index=False, lineterminator="\n"))
    logger.info("wrote %d images and %d masks to %s", total, plan["mask"].nunique(), out)
    return table


def _write_field(task: dict[str, Any]) -> None:
    """Generate one field and write its images and masks (runs in worker processes too)."""
    from deepscope.io import write_labels, write_tiff

    out = Path(task["out"])
    blurs = sorted({b for _, b, _ in task["images"]})
    stains = sorted({s for _, _, s in task["images"]})
    rng = np.random.default_rng(field_seed(task["seed"], task["count"], task["site"]))
    f = generate_field(task["count"], size=task["size"], blurs=blurs, stains=stains, clustering=task["clustering"],
                       bit_depth=task["bit_depth"], seed=rng, params=task["params"])
    about = {"generator": "deepscope.data.synth", "version": _version(), "seed": task["seed"],
             "count": task["count"], "site": task["site"]}
    for name, blur, stain in task["images"]:
        write_tiff(out / name, f.images[(stain, blur)], compression="zlib",
                   description={**about, "blur": blur, "stain": stain})
    for name, stain in task["masks"]:
        write_labels(out / "masks" / name, f.labels(stain),
                     description={**about, "stain": stain, "objects": "nuclei" if stain == 1 else "cells"})


def _prepare_folder(out: Path, manifest: dict[str, Any], plan: pd.DataFrame, *, overwrite: bool) -> bool:
    """Check the output folder; return True if it holds an earlier run with the same arguments."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output '{out}' exists and is not a folder; choose a folder path")
    if not out.exists() or not any(out.iterdir()):
        return False
    previous = None
    mf = out / MANIFEST
    if mf.exists():
        try:
            previous = json.loads(mf.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = None
    if previous == manifest:
        return True
    what = ("files of a run with other arguments" if previous is not None else
            "files not written by this generator" if not mf.exists() else "an unreadable synth.json")
    if not overwrite:
        raise FileExistsError(f"output folder '{out}' already holds {what}; choose an empty folder or pass "
                              "--overwrite (overwrite=True) to replace them")
    keep_images, keep_masks = set(plan.filename), set(plan["mask"])
    removed = 0
    for f in out.glob(_OWN_GLOB):
        if f.name not in keep_images:
            f.unlink()
            removed += 1
    for f in (out / "masks").glob(_OWN_GLOB) if (out / "masks").is_dir() else ():
        if f.name not in keep_masks:
            f.unlink()
            removed += 1
    for name in ("labels.csv", MANIFEST):
        if (out / name).exists():
            (out / name).unlink()
    logger.warning("overwriting '%s': removed %d files of the earlier run", out, removed)
    return False


def _version() -> str:
    import deepscope

    return str(deepscope.__version__)
