"""CellProfiler-style tables of a run: one table per object set, and one row per well.

After :func:`~deepscope.pipeline.store.commit_tables` has written ``images.*`` and the long
``objects.*`` table, :func:`write_object_tables` writes ``RUN_DIR/<Objects>.{parquet,csv}`` for
every measured object set (``Nuclei.csv``, ``Cells.csv``, ...) with only that set's columns, as
CellProfiler's ExportToSpreadsheet writes one file per object, and :func:`write_well_table`
writes ``RUN_DIR/wells.{parquet,csv}`` when the image names carry a well (``Metadata_well``).
The object tables are streamed batch by batch from ``objects.parquet`` (or ``objects.csv``), so
memory stays bounded whatever the number of objects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from deepscope.pipeline.spec import Pipeline

__all__ = ["RESERVED_TABLES", "object_table_name", "object_set_columns", "write_object_tables", "write_well_table",
           "WELL_TABLE"]

logger = logging.getLogger(__name__)

#: Base names of the run folder's own tables: an object set of one of these names gets ``<name>_objects``.
RESERVED_TABLES = ("images", "objects", "wells", "skipped", "run", "pipeline", "report")
#: Base name of the per-well table.
WELL_TABLE = "wells"

RecordFor = Callable[[Path], Any]


def object_table_name(objects: str) -> str:
    """The base name of an object set's table (``Nuclei`` -> ``Nuclei``; ``Images`` -> ``Images_objects``).

    Examples
    --------
    >>> object_table_name("Nuclei"), object_table_name("Wells")
    ('Nuclei', 'Wells_objects')
    """
    return f"{objects}_objects" if objects.lower() in RESERVED_TABLES else objects


def object_set_columns(pipeline: Pipeline) -> dict[str, list[str]]:
    """Object set -> its columns (``ObjectNumber`` and its measurements), for the measured sets."""
    from deepscope.pipeline.steps import _empty

    return {name: [str(c) for c in table.columns] for name, table in _empty(pipeline).objects.items()}


def _record_metadata(record_for: RecordFor | None, path: Path) -> dict[bytes, bytes] | None:
    if record_for is None:
        return None
    from deepscope.provenance.lineage import embed_metadata

    return {k.encode() if isinstance(k, str) else k: v.encode() if isinstance(v, str) else v
            for k, v in embed_metadata(record_for(path)).items()}


def _batches(run_dir: Path, schema: pa.Schema) -> Any:
    """Record batches of the long objects table (Parquet if written, else CSV)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    parquet, csv = run_dir / "objects.parquet", run_dir / "objects.csv"
    if parquet.is_file():
        yield from pq.ParquetFile(parquet).iter_batches(batch_size=65536)
    elif csv.is_file():
        opts = pacsv.ConvertOptions(column_types={f.name: f.type for f in schema})
        yield from pacsv.open_csv(csv, convert_options=opts)


def write_object_tables(run_dir: str | os.PathLike[str], pipeline: Pipeline, *, formats: Sequence[str],
                        objects_schema: pa.Schema, record_for: RecordFor | None = None) -> dict[str, Path]:
    """Write one table per measured object set: ``ImageNumber``, ``ObjectNumber`` and the set's columns.

    Parameters
    ----------
    run_dir : str or PathLike
        A run folder whose ``objects.*`` is committed.
    pipeline : Pipeline
    formats : sequence of str
        ``parquet`` and/or ``csv``.
    objects_schema : pyarrow.Schema
        The long table's schema without ``ImageNumber`` (:func:`~deepscope.pipeline.steps.objects_schema`).
    record_for : callable, optional
        ``record_for(path) -> lineage.Record``: embedded in Parquet tables, a sidecar beside CSV.

    Returns
    -------
    dict of str to pathlib.Path
        File name -> path, e.g. ``{"Nuclei.parquet": ..., "Nuclei.csv": ...}``.
    """
    import contextlib

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from deepscope.io import atomic_path, csv_arrow
    from deepscope.provenance import lineage

    d = Path(run_dir)
    sets = object_set_columns(pipeline)
    if not sets:
        return {}
    types = {f.name: f.type for f in objects_schema}
    schemas = {name: pa.schema([pa.field("ImageNumber", pa.int64())] + [pa.field(c, types[c]) for c in cols])
               for name, cols in sets.items()}
    written: dict[str, Path] = {}
    with contextlib.ExitStack() as stack:
        writers: dict[tuple[str, str], Any] = {}
        for name, schema in schemas.items():
            for fmt in formats:
                fname = f"{object_table_name(name)}.{fmt}"
                tmp = stack.enter_context(atomic_path(d / fname))
                if fmt == "parquet":
                    writers[name, fmt] = pq.ParquetWriter(tmp, schema, compression="zstd", store_schema=False)
                else:
                    writers[name, fmt] = pacsv.CSVWriter(tmp, schema)
                written[fname] = d / fname
        long_schema = pa.schema([pa.field("ImageNumber", pa.int64())] + list(objects_schema))
        for batch in _batches(d, long_schema):
            for name, schema in schemas.items():
                part = batch.filter(pc.equal(batch.column("ObjectName"), name))
                if part.num_rows == 0:
                    continue
                table = pa.Table.from_batches([part]).select(schema.names).cast(schema)
                for fmt in formats:  # CSV: text cells a spreadsheet would run as formulas get a leading '
                    writers[name, fmt].write_table(csv_arrow(table) if fmt == "csv" else table)
        for (name, fmt), w in writers.items():
            if fmt == "parquet":
                md = _record_metadata(record_for, written[f"{object_table_name(name)}.{fmt}"])
                if md:
                    w.add_key_value_metadata(md)
                w.add_key_value_metadata({"deepscope.table": name})
            w.close()
    if record_for is not None:
        for fname, path in written.items():
            if fname.endswith(".csv"):
                lineage.attach(path, record_for(path))
    return written


def write_well_table(run_dir: str | os.PathLike[str], *, formats: Sequence[str],
                     record_for: RecordFor | None = None) -> dict[str, Path]:
    """Write ``wells.*``: per well (and plate), the image sets and ``Mean_/Median_/StDev_`` of their values.

    Written only when the images table has ``Metadata_well``. Failed image sets are counted
    (``ImageSets_Failed``) but left out of the aggregates.

    Returns
    -------
    dict of str to pathlib.Path
        File name -> path (empty when the images carry no well).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepscope.io import atomic_path, csv_frame_plain, csv_text, write_text
    from deepscope.provenance import lineage

    d = Path(run_dir)
    src = d / "images.parquet"
    images = pd.read_parquet(src) if src.is_file() else csv_frame_plain(pd.read_csv(d / "images.csv"))
    if "Metadata_well" not in images.columns or images["Metadata_well"].isna().all():
        return {}
    keys = [c for c in ("Metadata_plate", "Metadata_well") if c in images.columns]
    skip = {"ImageNumber", "Height", "Width", "seconds"}
    value_cols = [c for c in images.columns if c not in skip and not c.startswith("Metadata_")
                  and pd.api.types.is_numeric_dtype(images[c]) and not pd.api.types.is_bool_dtype(images[c])]
    ok = images[images["status"] == "ok"] if "status" in images.columns else images
    grouped = images.groupby(keys, sort=True, dropna=False)
    out = grouped.size().rename("ImageSets").to_frame()
    out["ImageSets_Failed"] = grouped["status"].apply(lambda s: int((s != "ok").sum())) if "status" in images else 0
    for c in ("Metadata_row", "Metadata_column"):
        if c in images.columns:
            out[c] = grouped[c].first()
    # per-image values get all three aggregates; per-image object means only their mean over the well
    # (per-image medians and spreads are left out: the object tables have the objects themselves)
    plain = [c for c in value_cols if not c.startswith(("Mean_", "Median_", "StDev_"))]
    means = [c for c in value_cols if c.startswith("Mean_")]
    g_ok = ok.groupby(keys, sort=True, dropna=False)
    columns: dict[str, Any] = {}
    for c in plain:
        columns[f"Mean_{c}"] = g_ok[c].mean()
        columns[f"Median_{c}"] = g_ok[c].median()
        columns[f"StDev_{c}"] = g_ok[c].std(ddof=0)
    for c in means:
        columns[f"Mean_{c}"] = g_ok[c].mean()
    wells = pd.concat([out, pd.DataFrame(columns).reindex(out.index)], axis=1).reset_index()
    written: dict[str, Path] = {}
    for fmt in formats:
        path = d / f"{WELL_TABLE}.{fmt}"
        if fmt == "parquet":
            table = pa.Table.from_pandas(wells, preserve_index=False)
            md = _record_metadata(record_for, path)
            if md:
                table = table.replace_schema_metadata({**(table.schema.metadata or {}), **md})
            with atomic_path(path) as tmp:
                pq.write_table(table, tmp, compression="zstd")
        else:
            write_text(path, csv_text(wells))
            if record_for is not None:
                lineage.attach(path, record_for(path))
        written[path.name] = path
    return written
