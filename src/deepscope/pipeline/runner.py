"""Running a pipeline over all its image sets: resumable, fault-tolerant, local or on Dask.

:func:`run_pipeline` finds the image sets, checks the run folder (same pipeline? changed
inputs?), sends the sets that still need processing to an executor, and, once every set has a
result part, commits ``images.*`` and ``objects.*`` with their lineage records.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepscope.errors import ConfigError, InputError, user_stacklevel
from deepscope.pipeline.executors import DaskExecutor, Executor, LocalExecutor, SerialExecutor, WorkerLost
from deepscope.pipeline.inputs import ImageSet, discover_image_sets, set_stem, set_stems
from deepscope.pipeline.spec import ModelStep, Pipeline, load_pipeline, zoo_dir
from deepscope.pipeline.steps import Task, image_value_types, objects_schema, part_path, run_task
from deepscope.pipeline.store import (ON_CHANGE, RunDirError, _now, check_run_dir, lock_run_dir, plan_resume,
                                      prepare_run_dir, scan_parts, write_error_part, write_manifest)

__all__ = ["RunResult", "run_pipeline", "resolve_models", "default_pipeline", "Progress", "INLINE_INPUTS_MAX",
           "COMMIT_BLOCK", "DEFAULT_SEGMENT_MODEL", "DEFAULT_COUNTER"]

logger = logging.getLogger(__name__)

#: Table lineage records list every input file up to this many; beyond, they give a digest of them
#: (every row of ``images.*`` carries its own SHA-256s).
INLINE_INPUTS_MAX = 10_000
#: Image sets per block when committing the tables (blocks are built on the workers, then concatenated).
COMMIT_BLOCK = 2000
#: The segmentation model of ``deepscope analyze`` (otsu-watershed when it is not installed).
DEFAULT_SEGMENT_MODEL = "nuclei"
#: The counter ``deepscope analyze`` counts blurred images with (``Count_Nuclei_Method`` = ``counter``; objects
#: elsewhere, and everywhere when it is not installed): see :func:`deepscope.pipeline.steps.route_count`.
DEFAULT_COUNTER = "count-bbbc005"

#: ``progress(done, total, failed)``: image sets finished (including those of earlier sessions).
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class RunResult:
    """The outcome of :func:`run_pipeline`.

    Attributes
    ----------
    run_dir : pathlib.Path
    pipeline_hash : str
    n_sets : int
        Image sets in the tables (each exactly once).
    n_done_before : int
        Sets whose results were already in the run folder (resumed).
    n_processed : int
        Sets processed by this call.
    n_failed : int
        Sets with an error row in the tables.
    n_objects : int
        Rows of the objects table.
    n_changed : int
        Sets whose input files changed since their results were made (processed again).
    skipped : tuple of (str, str)
        Image sets left out (incomplete channel groups) and why.
    failures : tuple of (str, str)
        ``(set_id, error)`` of the failed sets (the first 20).
    tables : dict of str to pathlib.Path
        Written tables by file name (``images.parquet`` ...).
    seconds : float
        Wall time of this call.
    executor : str
        Where the sets ran.
    """

    run_dir: Path
    pipeline_hash: str
    n_sets: int
    n_done_before: int
    n_processed: int
    n_failed: int
    n_objects: int
    n_changed: int = 0
    skipped: tuple[tuple[str, str], ...] = ()
    failures: tuple[tuple[str, str], ...] = ()
    tables: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    executor: str = ""

    def summary(self) -> str:
        """One line: sets, objects, failures, time.

        Examples
        --------
        >>> RunResult(Path("r"), "ab", 10, 4, 6, 1, 250, seconds=3.2).summary()
        '10 image sets (6 processed now, 4 already done), 250 objects, 1 failed, in 3.2 s'
        """
        s = (f"{self.n_sets} image sets ({self.n_processed} processed now, {self.n_done_before} already done), "
             f"{self.n_objects} objects, {self.n_failed} failed, in {self.seconds:.1f} s")
        if self.skipped:
            s += f"; {len(self.skipped)} incomplete sets skipped"
        return s


def _classical_ref(name: str, options: Mapping[str, Any] | None = None) -> Any:
    import deepscope
    from deepscope.provenance.lineage import ModelRef

    text = f"deepscope.predict.classical:{name}:{deepscope.__version__}"
    return ModelRef(name, hashlib.sha256(text.encode()).hexdigest())


def resolve_models(pipeline: Pipeline) -> dict[str, Any]:
    """Model reference -> :class:`~deepscope.provenance.lineage.ModelRef` (name and weights SHA-256).

    Reads the model cards only (no weights, no torch); the workers check the weights against
    the card's SHA-256 when they load them.

    Raises
    ------
    deepscope.errors.ModelError
        A model card is invalid or has no weights SHA-256.
    """
    from deepscope.errors import ModelError
    from deepscope.models.registry import model_card
    from deepscope.provenance.lineage import ModelRef

    out: dict[str, Any] = {}
    for ref in pipeline.model_refs:
        if ref == "otsu-watershed":
            out[ref] = _classical_ref(ref)
            continue
        card = model_card(ref)
        sha = card.weights.sha256 if card.weights else None
        if not sha:
            raise ModelError(f"model {ref!r} has no weights SHA-256 in its card; save it with deepscope "
                             "(SegmentModel.save / training) so its weights can be identified")
        out[ref] = ModelRef(str(card.name or ref), str(sha))
    return out


def _model_columns(pipeline: Pipeline, models: Mapping[str, Any]) -> dict[str, str]:
    cols: dict[str, str] = {}
    for s in pipeline.steps:
        if isinstance(s, ModelStep):
            name = s.objects or s.into or ""
        elif getattr(s, "kind", None) == "segment" and s.model_refs:  # the segment task's step (the classical 3D
            name = s.objects                                           # method runs no model)
        elif getattr(s, "kind", None) == "count" and s.model_refs:  # a count model (not model: objects)
            name = f"Count_{s.name}"
        elif getattr(s, "kind", None) == "track" and s.model_refs:  # the model that segmented the frames
            name = s.objects
        else:
            continue
        cols[f"Model_{name}"] = models[s.model].name
        cols[f"ModelSha256_{name}"] = models[s.model].sha256
    return cols


def unguarded_main_script() -> str | None:
    """The script that called this at its top level without an ``if __name__ == "__main__":`` guard, else None.

    Worker processes started with *spawn* or *forkserver* import the main script again; a top-level
    ``run_pipeline(...)`` call there would start the run again in every worker. Interactive
    sessions and notebooks (no script file) are safe and give None.
    """
    import ast
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or not os.path.isfile(path):
        return None
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "<module>"
                                     and frame.f_globals.get("__name__") == "__main__"):
        frame = frame.f_back
    if frame is None:
        return None
    line = frame.f_lineno
    try:
        with open(path, encoding="utf-8") as fh:  # closed: an unclosed file warned on every analyze
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError):
        return None

    def is_main_test(test: ast.expr) -> bool:
        if not isinstance(test, ast.Compare) or len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
            return False
        sides = [test.left, test.comparators[0]]
        return (any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
                and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides))

    for node in tree.body:
        if isinstance(node, ast.If) and is_main_test(node.test) and node.body:
            if node.body[0].lineno <= line <= (node.end_lineno or line):
                return None
    return str(path)


def _safe_for_script(ex: Executor, *, workers: int | None) -> Executor:
    """Workers that do not import an unguarded main script again: fork them, or say exactly what to add."""
    import multiprocessing as mp

    local = isinstance(ex, LocalExecutor) and ex.start_method != "fork"
    cluster = isinstance(ex, DaskExecutor) and workers is not None
    if not (local or cluster):
        return ex
    script = unguarded_main_script()
    if script is None:
        return ex
    if local and "fork" in mp.get_all_start_methods():
        logger.info("%s calls run_pipeline without a __main__ guard: forking the worker processes", script)
        return LocalExecutor(ex.slots, start_method="fork")
    raise ConfigError(
        f"{script} calls run_pipeline at its top level, and the worker processes "
        f"({'a Dask LocalCluster' if cluster else 'spawned processes'}) would import that script again and start "
        "the run again in every worker. Put the call under a main guard, as for any Python multiprocessing:\n\n"
        "    if __name__ == \"__main__\":\n        result = run_pipeline(...)\n\n"
        "or run in this process with jobs=0")


def _make_executor(*, jobs: int | None, workers: int | None, scheduler: str | None, executor: Executor | None,
                   connect_timeout: float) -> Executor:
    given = [n for n, v in (("jobs", jobs), ("workers", workers), ("scheduler", scheduler), ("executor", executor))
             if v is not None]
    if len(given) > 1:
        raise ConfigError(f"give one of jobs (local processes), workers (a Dask LocalCluster), scheduler (an "
                          f"existing Dask cluster) or executor; got {', '.join(given)}")
    if executor is not None:
        if not isinstance(executor, Executor):
            raise ConfigError(f"executor must be a deepscope.pipeline Executor; got {type(executor).__name__}")
        return executor
    if scheduler is not None:
        return DaskExecutor(scheduler, connect_timeout=connect_timeout)
    if workers is not None:
        return DaskExecutor(workers=workers)
    if jobs == 0:
        return SerialExecutor()
    return LocalExecutor(jobs)


def run_pipeline(pipeline: Pipeline | str | os.PathLike[str], out: str | os.PathLike[str], *,
                 jobs: int | None = None, workers: int | None = None, scheduler: str | None = None,
                 executor: Executor | None = None, on_change: str = "refuse", retry_failed: bool = False,
                 rehash: bool = False, connect_timeout: float = 10.0, device: str = "auto",
                 command: str = "run", progress: Progress | None = None) -> RunResult:
    """Run a pipeline over all its image sets into a run folder, resuming what is already done.

    Parameters
    ----------
    pipeline : Pipeline or path
        A :class:`Pipeline`, or the path of its YAML file.
    out : str or PathLike
        The run folder. A new folder, an empty one, or one holding an earlier (interrupted or
        finished) run of the *same* pipeline, which is then completed.
    jobs : int, optional
        Local worker processes (default: the CPU cores, or this process when the pipeline has a single
        image set: a worker would spend seconds starting for it; 0 = in this process).
    workers : int, optional
        Run on a new Dask ``LocalCluster`` with this many worker processes instead.
    scheduler : str, optional
        Run on an existing Dask cluster (``tcp://HOST:8786``); RUN_DIR and the inputs must be on
        a file system the workers share.
    executor : Executor, optional
        Run on this executor (advanced; excludes ``jobs``/``workers``/``scheduler``).
    on_change : {"refuse", "rerun"}, default "refuse"
        When the run folder holds another pipeline's results, or inputs changed since their
        results were made: stop with an error that lists them, or process them again.
    retry_failed : bool, default False
        Process again the image sets that failed in an earlier session.
    rehash : bool, default False
        Compare every input's SHA-256 with the one its results were made from (default: only
        for files whose size or modification time changed).
    connect_timeout : float, default 10
        Seconds to wait for a Dask scheduler.
    device : str, default "auto"
        Device of the models in the workers (``"cpu"``, ``"cuda"``, ``"auto"``).
    command : str
        Command name in the lineage records.
    progress : callable, optional
        ``progress(done, total, failed)``, called as image sets finish.

    Returns
    -------
    RunResult

    Raises
    ------
    FileNotFoundError
        The pipeline file or an input path does not exist.
    deepscope.errors.ConfigError
        Invalid pipeline or options.
    deepscope.errors.InputError
        No images, or channels that do not group into complete fields.
    RunDirError
        The folder holds another pipeline's results or changed inputs (with ``on_change="refuse"``),
        or files that are not a run.
    SchedulerError
        The Dask scheduler cannot be reached within ``connect_timeout``.

    Examples
    --------
    >>> from deepscope.pipeline import Pipeline, run_pipeline
    >>> p = Pipeline.from_dict({"inputs": {"paths": ["images/"]},
    ...                         "steps": [{"segment": {"model": "otsu-watershed"}}, {"measure": {}}]})
    >>> result = run_pipeline(p, "run1", jobs=2)             # doctest: +SKIP
    >>> print(result.summary())                              # doctest: +SKIP
    10 image sets (10 processed now, 0 already done), 412 objects, 0 failed, in 4.1 s
    """
    t0 = time.perf_counter()
    import multiprocessing as mp

    from deepscope.io import check_output

    if getattr(mp.current_process(), "_inheriting", False):
        raise ConfigError("run_pipeline was called while a worker process was importing the script that started "
                          "the run; put the call under `if __name__ == \"__main__\":` in that script")
    if on_change not in ON_CHANGE:
        raise ConfigError(f"on_change={on_change!r} is not one of {', '.join(ON_CHANGE)}")
    if not isinstance(pipeline, Pipeline):
        pipeline = load_pipeline(pipeline)
    ex = _make_executor(jobs=jobs, workers=workers, scheduler=scheduler, executor=executor,
                        connect_timeout=connect_timeout)
    ex = _safe_for_script(ex, workers=workers)
    run_dir = Path(out).resolve()
    models = resolve_models(pipeline)
    phash = pipeline.hash({ref: m.sha256 for ref, m in models.items()})
    sets, skipped = discover_image_sets(pipeline.inputs, exclude_dirs=[run_dir])
    if len(sets) == 1 and all(v is None for v in (jobs, workers, scheduler, executor)):
        # one image set by default: in this process. A worker process would spend seconds starting (importing
        # the libraries, loading the models) for a single set, and there is nothing to run beside it.
        ex = SerialExecutor()
    check_run_dir(run_dir)  # before anything (even a lock file) is written into someone else's folder
    with ex:
        ex.open()  # an unreachable scheduler fails here, before the run folder is touched
        check_output(run_dir)  # created, writable, with free space: a clear error before any work
        with lock_run_dir(run_dir):
            return _run_locked(pipeline, run_dir, ex, sets, skipped, models, phash, on_change=on_change,
                               retry_failed=retry_failed, rehash=rehash, device=device, command=command,
                               progress=progress, t0=t0)


def _run_locked(pipeline: Pipeline, run_dir: Path, ex: Executor, sets: list[ImageSet],
                skipped: list[tuple[str, str]], models: dict[str, Any], phash: str, *, on_change: str,
                retry_failed: bool, rehash: bool, device: str, command: str, progress: Progress | None,
                t0: float) -> RunResult:
    import json

    import deepscope
    from deepscope.provenance import lineage

    manifest, fresh = prepare_run_dir(run_dir, pipeline_hash=phash, pipeline_name=pipeline.name,
                                      on_change=on_change)
    parts = {} if fresh else scan_parts(run_dir)
    plan = plan_resume(sets, parts, pipeline_hash=phash, retry_failed=retry_failed, rehash=rehash)
    if plan.changed and on_change == "refuse":
        shown = "; ".join(f"{sid}: {why}" for sid, why in plan.changed[:5])
        more = f"; and {len(plan.changed) - 5} more" if len(plan.changed) > 5 else ""
        raise RunDirError(f"{len(plan.changed)} image set(s) changed since their results in '{run_dir}' were "
                          f"made: {shown}{more}. Pass --on-change rerun to process them again, or use another "
                          "--out to keep both")
    stems, renamed = set_stems(sets, {k: str(m.get("stem") or set_stem(str(m.get("set_id"))))
                                      for k, m in parts.items()})
    for msg in renamed:
        warnings.warn(msg, stacklevel=user_stacklevel())
    if plan.stale:
        warnings.warn(f"{plan.stale} result part(s) in '{run_dir}' belong to image sets that are no longer "
                      "among the inputs; they are left out of the tables", stacklevel=user_stacklevel())
    from deepscope.io import write_text

    write_text(run_dir / "pipeline.yaml", pipeline.to_yaml())
    if skipped:
        import csv
        import io

        from deepscope.io import csv_cell, safe_text

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["set_id", "reason"])
        w.writerows([csv_cell(safe_text(str(v))) for v in row] for row in skipped)  # no formula cells
        write_text(run_dir / "skipped.csv", buf.getvalue())
    catalog = None
    if pipeline.outputs.catalog:
        from deepscope.provenance import Catalog

        catalog = Catalog(pipeline.outputs.catalog)
    run = lineage.Run.start(command=command, params={"pipeline": pipeline.to_dict(), "pipeline_hash": phash,
                                                     "run_dir": str(run_dir)},
                            models=list(models.values()), catalog=catalog)
    session = {"run_id": run.run_id, "started": run.started, "executor": ex.describe(),
               "todo": len(plan.todo), "done_before": plan.done, "status": "running"}
    manifest.setdefault("sessions", []).append(session)
    manifest.update(status="running", n_sets=len(sets), deepscope_version=deepscope.__version__)
    write_manifest(run_dir, manifest)
    total = len(sets)
    done = plan.done
    failed_now = 0
    processed = 0
    try:
        if progress is not None:
            progress(done, total, 0)
        runr = run.to_dict()
        job = {"pipeline": pipeline.to_dict(), "pipeline_hash": phash, "run_dir": str(run_dir),
               "device": device, "run": {k: runr[k] for k in ("run_id", "command", "params", "models",
                                                             "user", "host", "started",
                                                             "deepscope_version", "software")}}
        job["threads"] = max(1, (os.cpu_count() or 1) // max(1, ex.slots)) if not isinstance(
            ex, DaskExecutor) else 0
        job_json = json.dumps(job, sort_keys=True, default=str)
        if plan.todo:
            tasks = (Task(s.key, s.set_id, s.files, stems[s.key]) for s in plan.todo)
            ex.start(job_json)
            for task, res in ex.map_unordered(run_task, tasks):
                if isinstance(res, BaseException):
                    if not isinstance(res, WorkerLost):
                        raise res
                    lost = next(s for s in plan.todo if s.key == task.key)  # rare: no index kept for it
                    write_error_part(run_dir, lost, f"WorkerLost: {res}", pipeline_hash=phash,
                                     run_id=run.run_id, objects_schema=objects_schema(pipeline))
                    failed_now += 1
                elif not res.ok:
                    failed_now += 1
                processed += 1
                done += 1
                if progress is not None:
                    progress(done, total, failed_now)
        missing = [s for s in sets if not part_path(run_dir, s.key).is_file()]
        for s in missing:  # cannot happen unless an executor drops a task: never leave a hole
            write_error_part(run_dir, s, "no result was reported for this image set", pipeline_hash=phash,
                             run_id=run.run_id, objects_schema=objects_schema(pipeline))
        committed = _commit(run_dir, sets, pipeline, models, run, catalog, ex, job_json)
    except BaseException as exc:
        session.update(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                       finished=_now(), processed=processed, error=f"{type(exc).__name__}: {exc}")
        manifest["status"] = session["status"]
        write_manifest(run_dir, manifest)
        run.finish("failed", {"error": f"{type(exc).__name__}: {exc}", "processed": processed})
        if catalog is not None:
            catalog.close()
        raise
    n_failed, n_objects, failures, tables = (committed.n_failed, committed.n_objects, committed.failures,
                                             committed.tables)
    seconds = time.perf_counter() - t0
    summary = {"n_sets": total, "n_failed": n_failed, "n_objects": n_objects, "processed": processed,
               "done_before": plan.done, "changed": len(plan.changed), "skipped": len(skipped),
               "seconds": round(seconds, 3)}
    session.update(status="complete", finished=_now(), processed=processed, failed=failed_now)
    manifest.update(status="complete", summary=summary, tables=sorted(tables))
    write_manifest(run_dir, manifest)
    run.finish("ok", summary)
    if catalog is not None:
        catalog.close()
    _warn_out_of_domain(tables.get("images.parquet"))
    _warn_counted_by_counter(tables.get("images.parquet"))
    return RunResult(run_dir=run_dir, pipeline_hash=phash, n_sets=total, n_done_before=plan.done,
                     n_processed=processed, n_failed=n_failed, n_objects=n_objects, n_changed=len(plan.changed),
                     skipped=tuple(skipped), failures=tuple(failures), tables=tables, seconds=seconds,
                     executor=ex.describe())


def _warn_out_of_domain(images_table: Path | None, *, shown: int = 10) -> None:
    """One warning per image a generalist segmenter found unlike its training images (``InDomain_* == 0``)."""
    if images_table is None or not Path(images_table).exists():
        return
    import pandas as pd
    import pyarrow.parquet as pq

    names = [n for n in pq.read_schema(images_table).names if n.startswith("InDomain_")]
    if not names:
        return
    df = pd.read_parquet(images_table, columns=["path", *names])
    for col in names:
        bad = df.loc[df[col] == 0, "path"].tolist()
        for path in bad[:shown]:
            warnings.warn(f"{path}: looks unlike the images the model of {col.removeprefix('InDomain_')} was "
                          f"trained on ({col} = 0); check its overlay before trusting its objects", stacklevel=user_stacklevel())
        if len(bad) > shown:
            warnings.warn(f"... and {len(bad) - shown} more images with {col} = 0 (see the images table)",
                          stacklevel=user_stacklevel())


def _warn_counted_by_counter(images_table: Path | None) -> None:
    """One warning per routed count (``Count_<objects>_Method``) that took the counter's estimate for blurred images:
    the report flags each of those images as blurred and shows where its count came from."""
    if images_table is None or not Path(images_table).exists():
        return
    import pandas as pd
    import pyarrow.parquet as pq

    from deepscope.measure.quality import BLUR_SLOPE

    names = [n for n in pq.read_schema(images_table).names if n.startswith("Count_") and n.endswith("_Method")]
    for col in names:
        method = pd.read_parquet(images_table, columns=[col])[col]
        n = int((method == "counter").sum())
        if n:
            obj = col[len("Count_"):-len("_Method")]
            warnings.warn(f"{n} of {len(method)} images look blurred (power-log-log slope <= {BLUR_SLOPE:g}): their "
                          f"Count_{obj} is the count model's estimate ({col} = counter), as their {obj} objects "
                          f"(Count_{obj}_Objects, and their measurements) may be merged or missed; the report flags "
                          "each", stacklevel=user_stacklevel())


def _block_mapper(ex: Executor, job_json: str) -> Callable[..., Any]:
    """Build the tables' blocks on the executor's workers (in this process for a few blocks)."""

    def map_blocks(fn: Callable[..., Any], blocks: Sequence[Any]) -> Any:
        if len(blocks) <= 2 or isinstance(ex, SerialExecutor):
            for b in blocks:
                yield fn(job_json, b)
            return
        if not ex.started:
            ex.start(job_json)
        for _, res in ex.map_unordered(fn, blocks):
            if isinstance(res, BaseException):
                raise res
            yield res

    return map_blocks


def _commit(run_dir: Path, sets: Sequence[ImageSet], pipeline: Pipeline, models: Mapping[str, Any], run: Any,
            catalog: Any, ex: Executor, job_json: str) -> Any:
    from deepscope.io import sha256_file
    from deepscope.pipeline.store import commit_tables
    from deepscope.provenance import lineage

    file_channels = ([pipeline.inputs.channel] if pipeline.inputs.channels is None
                     else list(pipeline.inputs.channel_names))
    records: dict[Path, Any] = {}

    def record_for(path: Path, inputs: list[Any], extra: dict[str, Any]) -> Any:
        records[path] = run.record(path, inputs=inputs, extra=extra)
        return records[path]

    committed = commit_tables(run_dir, sets, file_channels=file_channels, objects_schema=objects_schema(pipeline),
                              value_types=image_value_types(pipeline), model_cols=_model_columns(pipeline, models),
                              formats=pipeline.outputs.tables, record_for=record_for,
                              map_blocks=_block_mapper(ex, job_json), chunk=COMMIT_BLOCK,
                              inline_inputs=INLINE_INPUTS_MAX)
    from deepscope.pipeline.export import write_object_tables, write_well_table

    def derived_record(path: Path) -> Any:  # per-object and per-well tables: made from images.* / objects.*
        records[path] = run.record(path, inputs=committed.inputs, extra=committed.extra)
        return records[path]

    extra_tables = write_object_tables(run_dir, pipeline, formats=pipeline.outputs.tables,
                                       objects_schema=objects_schema(pipeline), record_for=derived_record)
    extra_tables.update(write_well_table(run_dir, formats=pipeline.outputs.tables, record_for=derived_record))
    for name, path in committed.tables.items():
        if name.endswith(".csv"):
            lineage.attach(path, run.record(path, inputs=committed.inputs, extra=committed.extra))
        elif catalog is not None:
            catalog.add_lineage(records[path], output_path=str(path), output_sha256=sha256_file(path))
    if catalog is not None:
        for path in extra_tables.values():
            if path in records:
                catalog.add_lineage(records[path], output_path=str(path), output_sha256=sha256_file(path))
    committed.tables.update(extra_tables)
    if catalog is not None:
        try:
            catalog.add([p for s in sets for p in s.paths], pattern=pipeline.inputs.pattern)
        except Exception as exc:  # the catalog is a record of the run; never lose the run's results to it
            warnings.warn(f"could not add the input images to the catalog {pipeline.outputs.catalog}: {exc}",
                          stacklevel=user_stacklevel())
    return committed


def default_pipeline(paths: Sequence[str | os.PathLike[str]], *, model: str | None = None,
                     count_model: str | None = None, pattern: str | None = None,
                     include: Sequence[str] = (), recursive: bool = False, overlays: bool = True,
                     labels: bool = True, pixel_size: float | None = None, channel: int | None = None,
                     name: str = "analyze", diameter: float | None = None, label_images: str = "skip",
                     counter: str | None = None, axes: str | None = None,
                     voxel_size: Sequence[float] | None = None, volume_method: str | None = None,
                     prob_threshold: float | None = None, flow_threshold: float | None = None,
                     min_size: int | None = None) -> Pipeline:
    """The one-line analysis of ``deepscope analyze``: segment nuclei, count, measure; tables and overlays.

    ``Count_Nuclei`` is the number of nuclei found, except on images the image QC finds blurred (where
    segmentation merges and misses nuclei): there it is the counter's estimate where the counter finds the image
    in its domain (``Count_Nuclei_Method`` says which; ``Count_Nuclei_Objects`` is the objects' count, which the
    object tables hold; :func:`deepscope.pipeline.steps.route_count`).

    Z-stacks (files whose header states a Z axis, or every file with ``axes`` that has a Z) get the 3D analysis:
    nuclei segmented in 3D as ``deepscope segment STACK`` does (``segment: {volume: classical}``,
    :func:`deepscope.tasks.segment.volume_files.segment_stack`) and measured in 3D with the voxel size
    (:func:`deepscope.measure.measure_volume`: volume, surface area, sphericity ...; per stack
    :func:`~deepscope.measure.summarize_volume`). Stacks and 2-D images are not mixed in one run.

    Parameters
    ----------
    paths : sequence of path
        Folders (not descended into unless ``recursive``), image files or globs.
    model : str, optional
        Segmentation model; default ``nuclei``, or ``otsu-watershed`` with a warning when the
        shipped ``nuclei`` model is not installed.
    count_model : str, optional
        Also count with this model (e.g. ``count-bbbc005``) into ``Count_Cells``.
    pattern : str, optional
        File-name pattern for ``Metadata_`` columns.
    label_images : {"skip", "include"}
        Files of scanned folders that look like label images or outputs: left out with a warning, or read.
    include : sequence of str
        File-name globs.
    recursive : bool
        Scan sub-folders.
    overlays, labels : bool
        Write overlays and label images.
    pixel_size : float, optional
        Micrometres per pixel for the ``_um`` measurement columns; by default each image's own, where its
        file states one (``pixel_size: files``).
    channel : int, optional
        Channel (0-based) of multi-channel images to analyse (``inputs.plane``).
    diameter : float, optional
        Nucleus diameter in pixels for the generalist models (default: estimated per image).
    counter : str, optional
        Count model for the blurred images (a shipped name, folder or card); default :data:`DEFAULT_COUNTER`
        when it is installed; ``"objects"``: always the objects' count.
    axes : str, optional
        Z-stacks: axis letters overriding the files' (``ZYX`` for plain multi-page TIFFs of optical sections).
    voxel_size : (z, y, x), optional
        Z-stacks: micrometres, overriding the files'.
    volume_method : str, optional
        Z-stacks: the 3D method (:data:`~deepscope.tasks.segment.volume_files.VOLUME_METHODS`; default
        :data:`~deepscope.tasks.segment.volume_files.DEFAULT_VOLUME_METHOD`).
    prob_threshold, flow_threshold, min_size : optional
        The segmentation thresholds of the trained model, over its card's (as ``deepscope segment
        --prob-threshold ...``; the segment step's keys of the same names).

    Returns
    -------
    Pipeline

    Raises
    ------
    deepscope.errors.ConfigError
        An unknown model or invalid option.
    deepscope.errors.InputError
        Z-stacks and 2-D images in one run; stack options (``axes``, ``voxel_size``, ``volume_method``) without a
        stack; 2-D options (``count_model``, ``counter``, ``pixel_size``) with stacks.

    Examples
    --------
    >>> p = default_pipeline(["images/"], model="otsu-watershed")
    >>> [s.kind for s in p.steps], p.outputs.overlays
    (['segment', 'count', 'measure'], True)
    """
    if not paths:
        raise InputError("give at least one folder, image file or glob to analyze")
    thresholds = {k: v for k, v in (("prob_threshold", prob_threshold), ("flow_threshold", flow_threshold),
                                    ("min_size", min_size)) if v is not None}
    stacks = _stack_inputs(paths, include=include, recursive=recursive, label_images=label_images, axes=axes)
    if stacks:
        return _stack_pipeline(paths, model=model, count_model=count_model, pattern=pattern, include=include,
                               recursive=recursive, overlays=overlays, labels=labels, pixel_size=pixel_size,
                               channel=channel, name=name, diameter=diameter, label_images=label_images,
                               counter=counter, axes=axes, voxel_size=voxel_size, volume_method=volume_method,
                               thresholds=thresholds)
    stack_only = {"--axes": axes, "--voxel-size": voxel_size, "--volume-method": volume_method}
    given = [k for k, v in stack_only.items() if v is not None]
    if given:
        raise InputError(f"{', '.join(given)}: options for z-stacks, but no input has a Z axis (a plain multi-page "
                         "TIFF of optical sections needs --axes ZYX)")
    if model is None:
        model = DEFAULT_SEGMENT_MODEL
        if not (zoo_dir() / f"{model}.json").is_file():
            warnings.warn(f"the shipped '{model}' model is not installed; segmenting with the classical "
                          "otsu-watershed instead (pass --model to choose)", stacklevel=user_stacklevel())
            model = "otsu-watershed"
    seg: dict[str, Any] = {"objects": "Nuclei", "model": model, **thresholds}
    if diameter is not None:
        seg["diameter"] = diameter
    if counter is None:
        counter = DEFAULT_COUNTER if (zoo_dir() / f"{DEFAULT_COUNTER}.json").is_file() else "objects"
    steps: list[dict[str, Any]] = [{"segment": seg},
                                   {"count": {"model": counter, "objects": "Nuclei"}}]
    if count_model:
        steps.append({"count": {"model": count_model, "name": "Cells"}})
    steps.append({"measure": {"objects": ["Nuclei"], "pixel_size": pixel_size or "files"}})
    spec = {"name": name,
            "inputs": {"paths": [os.fspath(p) for p in paths], "include": list(include), "recursive": recursive,
                       "pattern": pattern} | ({"plane": channel} if channel is not None else {})
                      | ({"label_images": label_images} if label_images != "skip" else {}),
            "steps": steps, "outputs": {"labels": labels, "overlays": overlays}}
    return Pipeline.from_dict(spec, source="deepscope analyze")


def _stack_inputs(paths: Sequence[str | os.PathLike[str]], *, include: Sequence[str], recursive: bool,
                  label_images: str, axes: str | None) -> bool:
    """Whether the inputs are z-stacks (by their headers, or ``axes``), as ``deepscope segment`` decides; stacks
    mixed with 2-D images are refused. Inputs that cannot be listed are left to the run to report."""
    from deepscope.errors import DeepscopeError
    from deepscope.io import expand_inputs
    from deepscope.tasks.segment.volume_files import is_stack

    if axes is not None:
        return "Z" in axes.upper()
    try:
        with warnings.catch_warnings():  # what the scan warns about is said by the run
            warnings.simplefilter("ignore")
            files = expand_inputs(paths, include=list(include) or None, recursive=recursive,
                                  label_images=label_images)
    except (DeepscopeError, OSError):
        return False
    stacks = [p for p in files if is_stack(p)]
    if stacks and len(stacks) != len(files):
        flat = next(p for p in files if p not in set(stacks))
        raise InputError(f"{len(stacks)} of the inputs are z-stacks (e.g. {stacks[0]}) and {len(files) - len(stacks)} "
                         f"are 2D images (e.g. {flat}); analyze them in two runs with different --out folders")
    return bool(stacks)


def _stack_pipeline(paths: Sequence[str | os.PathLike[str]], *, model: str | None, count_model: str | None,
                    pattern: str | None, include: Sequence[str], recursive: bool, overlays: bool, labels: bool,
                    pixel_size: float | None, channel: int | None, name: str, diameter: float | None,
                    label_images: str, counter: str | None, axes: str | None,
                    voxel_size: Sequence[float] | None, volume_method: str | None,
                    thresholds: Mapping[str, Any]) -> Pipeline:
    """:func:`default_pipeline` for z-stacks: a 3D segment step (the method of ``deepscope segment STACK``), the
    objects' count and the 3D measurements."""
    from deepscope.tasks.segment.volume_files import DEFAULT_VOLUME_METHOD

    for opt, v in (("--count-model", count_model), ("--counter", counter), ("--pixel-size", pixel_size)):
        if v is not None:
            raise InputError(f"{opt}: an option for 2-D images; the inputs are z-stacks (measured with their voxel "
                             "size: --voxel-size Z Y X overrides the files')")
    method = volume_method or DEFAULT_VOLUME_METHOD
    seg: dict[str, Any] = {"objects": "Nuclei", "volume": method, **thresholds}
    if method == "classical" and model is not None:
        raise InputError(f"--model {model}: the classical 3D method runs no model; pass --volume-method flows25d or "
                         "slices to segment the stacks with a 2D model")
    if method != "classical":
        seg["model"] = model or DEFAULT_SEGMENT_MODEL
    if diameter is not None:
        seg["diameter"] = diameter
    steps: list[dict[str, Any]] = [{"segment": seg}, {"count": {"model": "objects", "objects": "Nuclei"}},
                                   {"measure": {"objects": ["Nuclei"]}}]
    inputs: dict[str, Any] = {"paths": [os.fspath(p) for p in paths], "include": list(include),
                              "recursive": recursive, "pattern": pattern}
    if channel is not None:
        inputs["plane"] = channel
    if label_images != "skip":
        inputs["label_images"] = label_images
    if axes is not None:
        inputs["axes"] = axes.upper()
    if voxel_size is not None:
        inputs["voxel_size"] = [float(v) for v in voxel_size]
    spec = {"name": name, "inputs": inputs, "steps": steps, "outputs": {"labels": labels, "overlays": overlays}}
    return Pipeline.from_dict(spec, source="deepscope analyze")
