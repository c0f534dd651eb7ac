"""What a report shows, read from a result folder: an analysis run, a ``segment`` folder or a ``count`` table.

:func:`load_results` turns any of them into one :class:`Results`: a per-image table with the
same column names whatever made it (``name``, ``count``, ``true_count``, ``well``, ``condition``,
the quality columns, ``in_domain``, ``error``, ``overlay``), the per-object sizes, the run's
summary and its lineage.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Results", "load_results", "find_well", "pick_condition", "QC_LIMIT", "CONDITION_PREFERENCE"]

logger = logging.getLogger(__name__)

#: Count and segment tables with more images than this get no quality measurements at report time
#: (the images would have to be read again); ``deepscope analyze`` measures them as it goes.
QC_LIMIT = 5000
#: Metadata columns tried first as the condition that distributions are split by.
CONDITION_PREFERENCE = ("condition", "treatment", "compound", "dose", "concentration", "genotype", "blur", "stain",
                        "plate", "channel")
#: Metadata columns that identify a field rather than a condition.
_NOT_CONDITIONS = {"well", "row", "column", "site", "field", "count", "filename", "path", "id"}
_WELL_RE = re.compile(r"(?<![A-Za-z0-9])(?P<row>[A-P])(?P<column>\d{2})(?![0-9])")


@dataclass
class Results:
    """The results a report shows.

    Attributes
    ----------
    kind : str
        ``"analysis"`` (a ``deepscope analyze``/``run`` folder), ``"segment"``, ``"count"`` or ``"track"``
        (a ``deepscope track`` folder, :mod:`deepscope.report.tracks`).
    source : pathlib.Path
        The folder or table the results were read from.
    images : pandas.DataFrame
        One row per image (set): ``name``, ``path``, ``ok`` (bool), ``error``, ``count``, ``count_low``,
        ``count_high``, ``true_count``, ``well``, ``condition``, ``focus``, ``slope``, ``saturation``,
        ``in_domain`` (NaN when unknown; for an analysis, False where any ``InDomain_*`` column is 0),
        ``overlay`` (PNG path or ""), ``count_method`` (analyses whose count step routes between the counter
        and the objects: ``counter`` / ``objects``), and the original columns.
    objects : pandas.DataFrame
        ``name``, ``condition`` and ``area`` per object (pixels), or ``volume`` (um^3) for z-stacks (empty when
        unknown).
    object_name : str
        What was counted (``Nuclei`` ...).
    summary : dict
        Headline facts (images, failed, objects, time ...).
    lineage : dict
        How the results were made: command, parameters, models with their weights' SHA-256,
        software, who, when (empty when no record was found).
    condition : str
        The metadata column used as the condition (``""`` when none).
    tables : list of str
        The result files in the folder.
    movies : list of deepscope.report.tracks.MovieTracks
        A track report's movies (kind ``"track"``: then ``images`` has one row per movie, ``count`` = its
        tracks); empty otherwise.
    """

    kind: str
    source: Path
    images: pd.DataFrame
    objects: pd.DataFrame
    object_name: str = "Nuclei"
    summary: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    condition: str = ""
    tables: list[str] = field(default_factory=list)
    movies: list[Any] = field(default_factory=list)


def find_well(name: str) -> str | None:
    """A well (``A01`` ... ``P24``) in a file name, or None.

    Examples
    --------
    >>> find_well("SIMCEPImages_A05_C18_F1_s01_w1.TIF"), find_well("plate1_B12_s2_w1.tif"), find_well("img_07.tif")
    ('A05', 'B12', None)
    """
    m = _WELL_RE.search(name)
    return f"{m['row']}{m['column']}" if m else None


def pick_condition(metadata: pd.DataFrame) -> str:
    """The metadata column (``Metadata_`` prefix removed) that best splits images into conditions, or ``""``.

    A preferred name (:data:`CONDITION_PREFERENCE`) with 2-12 values, else the first other column
    with 2-12 values that does not identify a field (well, site, ...).
    """
    cols = {c[len("Metadata_"):] if c.startswith("Metadata_") else c: c for c in metadata.columns}

    def good(key: str) -> bool:
        n = metadata[cols[key]].nunique(dropna=True)
        return 2 <= n <= 12

    for key in CONDITION_PREFERENCE:
        if key in cols and good(key):
            return key
    for key in cols:
        if key.lower() not in _NOT_CONDITIONS and good(key):
            return key
    return ""


def _read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    from deepscope.io import csv_frame_plain

    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return csv_frame_plain(pd.read_csv(path, keep_default_na=True))  # the ' before formula-like cells removed


def _lineage_of(path: Path) -> dict[str, Any]:
    from deepscope.provenance import lineage

    try:
        rec = lineage.read(path, verify=False)
    except Exception as exc:  # a damaged record must not stop the report
        logger.warning("could not read the lineage of %s: %s", path, exc)
        return {}
    if rec is None:
        return {}
    d = rec.to_dict()
    return {"command": d.get("command"), "run_id": d.get("run_id"), "created": d.get("created"),
            "user": d.get("user"), "host": d.get("host"), "deepscope_version": d.get("deepscope_version"),
            "software": d.get("software") or {}, "params": d.get("params") or {},
            "models": [{"name": m.get("name"), "sha256": m.get("sha256")} for m in d.get("models") or []],
            "n_inputs": len(d.get("inputs") or []), "record_of": path.name}


def _metadata_from_names(names: list[str]) -> pd.DataFrame:
    """File-name metadata for tables that have none (count/segment): a known pattern, else the well alone."""
    import pandas as pd

    from deepscope.io import PRESETS

    for pattern in PRESETS.values():
        parsed = [pattern.parse(n) for n in names]
        if names and all(p is not None for p in parsed):
            return pd.DataFrame(parsed).add_prefix("Metadata_")
    wells = [find_well(n) for n in names]
    if names and all(w is not None for w in wells):
        return pd.DataFrame({"Metadata_well": wells})
    return pd.DataFrame(index=range(len(names)))


def _quality_from_files(paths: list[str]) -> pd.DataFrame:
    """Quality measurements of image files (first channel), NaN where a file cannot be read.

    The files are read and measured on threads (decoding and the FFT release the GIL): ~40 ms a 520 x 696 field
    on one core, so a report of 10,000 segmented images spent minutes here on one core."""
    import pandas as pd
    from concurrent.futures import ThreadPoolExecutor

    from deepscope.io import as_pixels, read_image
    from deepscope.measure import measure_image_quality
    from deepscope.predict.runner import default_jobs

    def one(p: str) -> dict[str, Any]:
        try:
            x = np.asarray(as_pixels(read_image(p)))
            return measure_image_quality(x if x.ndim == 2 else x[..., 0], channel="Image")
        except Exception:  # unreadable files are the table's error rows already
            return {}

    workers = min(8, default_jobs(), max(1, len(paths)))
    if workers == 1:
        return pd.DataFrame([one(p) for p in paths])
    with ThreadPoolExecutor(workers) as pool:
        return pd.DataFrame(list(pool.map(one, paths)))


def _standard(images: pd.DataFrame, *, name: Any, ok: Any, error: Any, count: Any, overlay: Any,
              quality_channel: str | None) -> pd.DataFrame:
    import pandas as pd

    out = pd.DataFrame(index=images.index)
    out["name"] = name
    out["path"] = images["path"].astype(str) if "path" in images else ""
    out["ok"] = np.asarray(ok, bool)
    err = pd.Series(error, index=images.index, dtype=object)
    out["error"] = err.where(err.notna(), "").astype(str)
    out["count"] = pd.to_numeric(count, errors="coerce")
    for c in ("count_low", "count_high"):
        out[c] = pd.to_numeric(images[c], errors="coerce") if c in images else np.nan
    true = images.get("Metadata_count")
    out["true_count"] = pd.to_numeric(true, errors="coerce") if true is not None else np.nan
    well = images.get("Metadata_well")
    if well is None:
        well = pd.Series([find_well(str(n)) for n in out["name"]], index=images.index)
    out["well"] = well.astype(object).where(well.notna(), None)
    ch = quality_channel or ""
    for new, feat in (("focus", "FocusScore"), ("slope", "PowerLogLogSlope"), ("saturation", "PercentMaximal")):
        col = f"ImageQuality_{feat}_{ch}"
        out[new] = pd.to_numeric(images[col], errors="coerce") if col in images else np.nan
    if "in_domain" in images:
        v = images["in_domain"]
        out["in_domain"] = v.map(lambda x: np.nan if x is None or x == "" or (isinstance(x, float) and np.isnan(x))
                                 else str(x).strip().lower() in ("true", "1", "yes")).astype(object)
    else:
        out["in_domain"] = np.nan
    out["overlay"] = overlay
    return out


def _in_domain(images: pd.DataFrame) -> pd.Series:
    """Per image set: False where a model's domain check said no (any ``InDomain_*`` column 0: what the console
    warned about), True where every check that ran said yes, NaN where none ran."""
    import pandas as pd

    cols = [c for c in images.columns if c.startswith("InDomain_")]
    if not cols:
        return pd.Series(np.nan, index=images.index, dtype=object)
    v = images[cols].apply(pd.to_numeric, errors="coerce")
    out = pd.Series(np.nan, index=images.index, dtype=object)
    known = v.notna().any(axis=1)
    out[known] = (v[known].fillna(1) != 0).all(axis=1)
    return out


def _quality_channel(images: pd.DataFrame) -> str | None:
    chans = [c[len("ImageQuality_PowerLogLogSlope_"):] for c in images.columns
             if c.startswith("ImageQuality_PowerLogLogSlope_")]
    return chans[0] if chans else None


def _load_analysis(d: Path) -> Results:
    import pandas as pd

    images = _read_table(d / "images.parquet" if (d / "images.parquet").is_file() else d / "images.csv")
    manifest = json.loads((d / "run.json").read_text(encoding="utf-8"))
    counts = [c for c in images.columns if c.startswith("Count_") and not c.endswith(("_Low", "_High", "_Std"))]
    obj_sets = [c[len("Count_"):] for c in counts if f"AreaOccupied_AreaOccupied_{c[len('Count_'):]}" in images]
    object_name = obj_sets[0] if obj_sets else (counts[0][len("Count_"):] if counts else "Objects")
    count_col = f"Count_{object_name}"
    overlays = d / "overlays"
    from deepscope.pipeline.inputs import set_stem

    def overlay_of(sid: str) -> str:
        p = overlays / f"{set_stem(sid)}.png"
        return str(p) if p.is_file() else ""

    std = _standard(images, name=images["set_id"].astype(str), ok=images["status"].eq("ok"),
                    error=images.get("error"), count=images.get(count_col, np.nan),
                    overlay=[overlay_of(s) for s in images["set_id"].astype(str)],
                    quality_channel=_quality_channel(images))
    model_count = f"Count_{next((c[len('Count_'):] for c in counts if f'{c}_Low' in images and c != count_col), '')}"
    if model_count in images:
        std["model_count"] = pd.to_numeric(images[model_count], errors="coerce")
        std["count_low"] = pd.to_numeric(images[f"{model_count}_Low"], errors="coerce")
        std["count_high"] = pd.to_numeric(images[f"{model_count}_High"], errors="coerce")
    if f"{count_col}_Method" in images:  # a routed count (counter on blurred images): its method and interval
        method = images[f"{count_col}_Method"].astype(object)
        std["count_method"] = method.where(method.notna(), "")
        std["count_low"] = pd.to_numeric(images[f"{count_col}_Low"], errors="coerce")
        std["count_high"] = pd.to_numeric(images[f"{count_col}_High"], errors="coerce")
    std["in_domain"] = _in_domain(images)
    meta = images[[c for c in images.columns if c.startswith("Metadata_")]]
    condition = pick_condition(meta)
    std["condition"] = meta[f"Metadata_{condition}"].astype(str) if condition else "all images"
    std = pd.concat([std, images.drop(columns=[c for c in images.columns if c in std.columns])], axis=1)
    objects = pd.DataFrame({"name": pd.Series(dtype=str), "condition": pd.Series(dtype=str),
                            "area": pd.Series(dtype=float)})
    table = next((d / f"{object_name}.{ext}" for ext in ("parquet", "csv") if (d / f"{object_name}.{ext}").is_file()),
                 None)
    if table is not None:
        import pyarrow.parquet as pq

        names = (pq.read_schema(table).names if table.suffix == ".parquet" else
                 pd.read_csv(table, nrows=0).columns.tolist())
        # z-stacks' objects (deepscope analyze on stacks) have volumes, not areas
        size, col = ("volume", "AreaShape_Volume_um3") if "AreaShape_Area" not in names else ("area", "AreaShape_Area")
        obj = (pq.read_table(table, columns=["ImageNumber", col]).to_pandas() if table.suffix == ".parquet"
               else pd.read_csv(table, usecols=["ImageNumber", col]))
        key = images.set_index("ImageNumber")
        objects = pd.DataFrame({"name": obj["ImageNumber"].map(key["set_id"]).astype(str),
                                "condition": obj["ImageNumber"].map(pd.Series(std["condition"].to_numpy(),
                                                                              index=images["ImageNumber"])),
                                size: obj[col].astype(float)})
    summary = dict(manifest.get("summary") or {})
    summary.update(pipeline=manifest.get("pipeline_name"), pipeline_hash=str(manifest.get("pipeline_hash", ""))[:12],
                   sessions=len(manifest.get("sessions") or []), created=manifest.get("created"),
                   status=manifest.get("status"))
    lin_src = next((d / n for n in ("images.parquet", "images.csv") if (d / n).is_file()), d / "images.csv")
    tables = sorted(p.name for p in d.iterdir() if p.suffix in (".csv", ".parquet"))
    return Results("analysis", d, std, objects, object_name, summary, _lineage_of(lin_src), condition, tables)


def _load_batch(table_path: Path, kind: str) -> Results:
    import pandas as pd

    d = table_path.parent
    from deepscope.io import csv_frame_plain

    images = csv_frame_plain(pd.read_csv(table_path, keep_default_na=False, na_values=[""]))
    if "path" not in images or "error" not in images:
        raise InputError(f"'{table_path}' is not a deepscope count or segment table (no path/error columns)")
    names = [Path(p).name for p in images["path"].astype(str)]
    meta = _metadata_from_names(names)
    meta.index = images.index
    for c in meta.columns:
        if c not in images:
            images[c] = meta[c]
    if not any(c.startswith("ImageQuality_") for c in images.columns):
        if len(images) <= QC_LIMIT:
            q = _quality_from_files(images["path"].astype(str).tolist())
            q.index = images.index
            images = pd.concat([images, q], axis=1)
        else:
            logger.warning("%d images: no quality measurements at report time (over %d); deepscope analyze "
                           "measures them as it goes", len(images), QC_LIMIT)
    error = images["error"].astype(object).where(images["error"].notna(), "").astype(str)
    overlays = []
    for p in images["path"].astype(str):
        from deepscope.data import image_stem

        ov = d / f"{image_stem(Path(p))}.overlay.png"
        overlays.append(str(ov) if kind == "segment" and ov.is_file() else "")
    std = _standard(images, name=names, ok=error.eq(""), error=error, count=images["count"], overlay=overlays,
                    quality_channel="Image" if "ImageQuality_PowerLogLogSlope_Image" in images else None)
    condition = pick_condition(images[[c for c in images.columns if c.startswith("Metadata_")]])
    std["condition"] = images[f"Metadata_{condition}"].astype(str) if condition else "all images"
    std = pd.concat([std, images.drop(columns=[c for c in images.columns if c in std.columns])], axis=1)
    objects = pd.DataFrame({"name": pd.Series(dtype=str), "condition": pd.Series(dtype=str),
                            "area": pd.Series(dtype=float)})
    if kind == "segment":
        objects = _segment_sizes(std, d)
    lin = _lineage_of(table_path)
    model = (lin.get("params") or {}).get("model", "")
    summary = {"n_sets": len(std), "n_failed": int((~std["ok"]).sum()), "model": model}
    if kind == "segment":
        summary["n_objects"] = int(pd.to_numeric(std["count"], errors="coerce").fillna(0).sum())
    tables = sorted(p.name for p in d.iterdir() if p.suffix in (".csv", ".parquet")) if kind == "segment" else [
        table_path.name]
    return Results(kind, d if kind == "segment" else table_path, std, objects, "Objects", summary, lin, condition,
                   tables)


def _segment_sizes(images: pd.DataFrame, d: Path, limit: int = 500) -> pd.DataFrame:
    """Object areas from the label images of a segment folder (at most ``limit`` images, spread evenly)."""
    import pandas as pd

    from deepscope.data import image_stem
    from deepscope.evaluate._labels import ids_areas
    from deepscope.io import read_image

    ok = images[images["ok"]]
    if len(ok) > limit:
        ok = ok.iloc[np.linspace(0, len(ok) - 1, limit).astype(int)]
    rows = []
    for _, r in ok.iterrows():
        lab = d / f"{image_stem(Path(r['path']))}.labels.tif"
        if not lab.is_file():
            continue
        try:
            img = read_image(lab)
            _, area = ids_areas(np.asarray(img.data).reshape(-1))
        except Exception:
            continue
        if np.ndim(img.data) == 3 and img.meta.z_step and img.meta.pixel_size:  # 3D labels: volumes in um^3
            voxel = float(img.meta.z_step) * float(img.meta.pixel_size[0]) * float(img.meta.pixel_size[1])
            rows.append(pd.DataFrame({"name": r["name"], "condition": r["condition"],
                                      "volume": area.astype(float) * voxel}))
            continue
        rows.append(pd.DataFrame({"name": r["name"], "condition": r["condition"], "area": area.astype(float)}))
    if not rows:
        return pd.DataFrame({"name": pd.Series(dtype=str), "condition": pd.Series(dtype=str),
                             "area": pd.Series(dtype=float)})
    return pd.concat(rows, ignore_index=True)


def load_results(source: str | os.PathLike[str]) -> Results:
    """Read the results of an analysis run folder, a ``deepscope segment`` or ``track`` folder or a ``count`` table.

    Parameters
    ----------
    source : str or PathLike
        A run folder (``run.json`` + ``images.*``), a segment output folder (``counts.csv`` beside
        ``*.labels.tif``), a count table (``counts.csv``) or a folder holding one, or a ``deepscope track``
        output folder (``movies.csv`` beside the CTC folders, :func:`deepscope.report.tracks.load_tracks`).

    Returns
    -------
    Results

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist.
    deepscope.errors.InputError
        If it holds no deepscope results, or the run is not finished (no ``images.*`` yet).
    """
    p = Path(source)
    if not p.exists():
        raise FileNotFoundError(f"No such file or folder: '{p}'")
    if p.is_file():
        if p.suffix.lower() != ".csv":
            raise InputError(f"'{p}' is not a result folder or a count table (.csv); give a run folder of deepscope "
                             "analyze/run, a segment output folder or a counts CSV")
        from deepscope.report.tracks import MOVIES_TABLE, is_track_folder, load_tracks

        if p.name == MOVIES_TABLE and is_track_folder(p.parent):
            return load_tracks(p.parent)
        segment = any(p.parent.glob("*.labels.tif"))
        return _load_batch(p, "segment" if segment else "count")
    if (p / "run.json").is_file():
        if not any((p / f"images.{ext}").is_file() for ext in ("parquet", "csv")):
            raise InputError(f"'{p}' holds a run that has not finished (no images.parquet/csv yet); run the same "
                             "deepscope run/analyze command again to finish it, then make the report")
        return _load_analysis(p)
    if (p / "counts.csv").is_file():
        return _load_batch(p / "counts.csv", "segment" if any(p.glob("*.labels.tif")) else "count")
    from deepscope.report.tracks import is_track_folder, load_tracks

    if is_track_folder(p):
        return load_tracks(p)
    raise InputError(f"'{p}' holds no deepscope results: expected run.json and images.* (deepscope analyze/run), "
                     "counts.csv (deepscope segment/count) or movies.csv (deepscope track)")
