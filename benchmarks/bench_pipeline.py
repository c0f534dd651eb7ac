"""Analysis pipelines at scale: scaling 1 -> 2 local workers, start-up, and the driver at 10,000 images.

    .venv/bin/python benchmarks/bench_pipeline.py                      # everything (~10 min on 2 cores)
    .venv/bin/python benchmarks/bench_pipeline.py --parts scaling      # or startup, scale (comma-separated)
    .venv/bin/python benchmarks/bench_pipeline.py --n-scaling 80 --n-scale 2000   # quicker

Pipeline measured everywhere: segment with the classical ``otsu-watershed`` (the shipped deep models
are benchmarked with the models), count, measure (CellProfiler columns, one channel), per-image and
per-object tables in Parquet + CSV, label images (except at 10,000 images).

1. **scaling**: the first ``--n-scaling`` w1 images of ``../shared/data/bbbc005`` (696x520; synthetic
   BBBC005-style images when absent), ``deepscope run`` with the local executor, 1 then 2 worker
   processes, interleaved, ``--reps`` times (best of each reported). Throughput counts the images
   finished between the first and the last image done (the steady state, without process
   start-up); efficiency = thr(2) / (2 thr(1)).
   The 1-minute load average is recorded before each run: the machine is shared.
2. **startup**: wall time from launching ``deepscope run`` (a new Python process) to the first image
   set's result on disk, for the classical segmenter and for a (small, untrained) deep model loaded
   from a model folder, which adds torch and the weights to each worker's start.
3. **scale**: ``--n-scale`` small synthetic images (96x96, 1-4 nuclei): the driver's peak memory
   (RSS sampled every 20 ms) at a tenth and at all of them, discovery, the per-task message, resume
   bookkeeping (reading every part's footer), committing the tables from the parts in the driver
   alone and with blocks built by the 2 workers, table sizes; and 2,000 of them on a Dask
   LocalCluster (2 workers) against the local executor. Extrapolated linearly to 1 million images.

Writes ``benchmarks/results/pipeline.json`` and prints a summary.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from _util import SHARED, write_result  # noqa: E402


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def spec_dict(paths: list[str], *, labels: bool = True, model: str = "otsu-watershed") -> dict[str, Any]:
    return {"name": "bench", "inputs": {"paths": paths},
            "steps": [{"segment": {"model": model}}, {"count": {}}, {"measure": {}}],
            "outputs": {"labels": labels, "overlays": False}}


def bbbc_images(n: int, tmp: Path) -> tuple[list[str], str]:
    folder = SHARED / "bbbc005" / "images"
    if folder.is_dir():
        files = sorted(folder.glob("*_w1.TIF"))[:n]
        if len(files) == n:
            link = tmp / "bbbc"
            link.mkdir()
            for f in files:  # a folder of exactly these images (symlinks: no copy of the data)
                (link / f.name).symlink_to(f)
            return [str(link)], f"first {n} w1 images of ../shared/data/bbbc005 (696x520 uint8)"
    from deepscope.data.synth import generate_field
    from deepscope.io import write_tiff

    out = tmp / "synth"
    for i in range(n):
        write_tiff(out / f"img_{i:04d}.tif", generate_field(5 + i % 40, seed=i, stains=1).image(1))
    return [str(out)], f"{n} synthetic BBBC005-style images (696x520 uint8, data.synth)"


# ---------------------------------------------------------------------------------------------- 1. scaling
def scaling(n: int, tmp: Path, reps: int = 3) -> dict[str, Any]:
    from deepscope.pipeline import Pipeline, run_pipeline

    paths, what = bbbc_images(n, tmp)
    pipe = Pipeline.from_dict(spec_dict(paths))
    runs: list[dict[str, Any]] = []
    for rep in range(reps):
        for jobs in (1, 2):
            out = tmp / f"scaling_{jobs}_{rep}"
            stamps: list[float] = []
            before = load1()
            t0 = time.perf_counter()
            r = run_pipeline(pipe, out, jobs=jobs,
                             progress=lambda d, t, f: stamps.append(time.perf_counter()) if d else None)
            wall = time.perf_counter() - t0
            steady = (len(stamps) - 1) / (stamps[-1] - stamps[0])
            runs.append({"jobs": jobs, "rep": rep, "images": r.n_sets, "failed": r.n_failed, "wall_s": round(wall, 2),
                         "first_done_s": round(stamps[0] - t0, 2), "steady_images_per_s": round(steady, 3),
                         "wall_images_per_s": round(r.n_sets / wall, 3), "load1_before": before,
                         "load1_after": load1()})
            print(f"  jobs={jobs} rep={rep}: {steady:.2f} img/s steady, {r.n_sets / wall:.2f} img/s wall "
                  f"(load {before} -> {load1()})", flush=True)
            shutil.rmtree(out)
    best = {j: max(x["steady_images_per_s"] for x in runs if x["jobs"] == j) for j in (1, 2)}
    best_wall = {j: max(x["wall_images_per_s"] for x in runs if x["jobs"] == j) for j in (1, 2)}
    return {"images": what, "runs": runs, "best_steady_images_per_s": best,
            "efficiency_steady": round(best[2] / (2 * best[1]), 3),
            "best_wall_images_per_s": best_wall, "efficiency_wall": round(best_wall[2] / (2 * best_wall[1]), 3),
            "bar": 0.85}


# ---------------------------------------------------------------------------------------------- 2. start-up
def _first_part_seconds(spec: Path, out: Path, jobs: int) -> float:
    """Launch ``deepscope run`` and return the seconds until the first image set's part exists."""
    import signal

    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "deepscope.cli.app", "run", str(spec), "--out", str(out), "-j",
                             str(jobs)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        while proc.poll() is None:
            if any(p for p in out.glob("parts/*/*.parquet") if not p.name.startswith(".")):
                return time.perf_counter() - t0
            time.sleep(0.005)
        raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "deepscope run ended early")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def startup(tmp: Path) -> dict[str, Any]:
    import yaml

    (tmp / "startup_in").mkdir()
    paths, what = bbbc_images(10, tmp / "startup_in")
    out: dict[str, Any] = {"images": what}
    import torch

    from deepscope.models import SegmentModel

    SegmentModel().save(tmp / "unet")
    from deepscope.io import read_image
    from deepscope.models import load_model

    model = load_model(tmp / "unet", device="cpu")
    torch.set_num_threads(1)
    img = read_image(sorted(Path(paths[0]).glob("*"))[0]).data
    t0 = time.perf_counter()
    model.predict_image(img)
    out["unet_first_predict_1_thread_s"] = round(time.perf_counter() - t0, 2)
    from deepscope.pipeline.spec import zoo_dir

    models = [("otsu-watershed", "otsu-watershed")]
    if (zoo_dir() / "nuclei.json").is_file():
        models.append(("shipped nuclei model", "nuclei"))
    models.append(("deep model (untrained U-Net folder)", str(tmp / "unet")))
    for label, model in models:
        spec = tmp / f"startup_{len(out)}.yaml"
        spec.write_text(yaml.safe_dump(spec_dict(paths, model=model)))
        trials = []
        for i in range(3):
            run_dir = tmp / f"startup_run_{len(out)}_{i}"
            before = load1()
            first = _first_part_seconds(spec, run_dir, 2)
            trials.append({"first_image_s": round(first, 2), "load1_before": before})
            shutil.rmtree(run_dir)
        out[label] = {"trials": trials, "median_first_image_s": sorted(t["first_image_s"] for t in trials)[1],
                      "bar_s": 10.0}
        print(f"  {label}: first image done after {out[label]['median_first_image_s']} s (median of 3)", flush=True)
    return out


# ---------------------------------------------------------------------------------------------- 3. scale
def _write_small(folder: Path, n: int) -> float:
    import tifffile

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :96]
    t0 = time.perf_counter()
    for i in range(n):
        img = rng.normal(10, 2, (96, 96))
        for _ in range(int(rng.integers(1, 5))):
            cy, cx = rng.uniform(12, 84, 2)
            img += 120 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(3, 6) ** 2))
        tifffile.imwrite(folder / f"s_{i:05d}.tif", np.clip(img, 0, 255).astype(np.uint8), compression="zlib")
    return time.perf_counter() - t0


class RssSampler:
    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self.start = self.proc.memory_info().rss
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()


def scale(n: int, tmp: Path) -> dict[str, Any]:
    import tracemalloc

    import pyarrow.parquet as pq

    from deepscope.pipeline import DaskExecutor, Pipeline, discover_image_sets, run_pipeline
    from deepscope.pipeline.runner import _model_columns, resolve_models
    from deepscope.pipeline.steps import Task, image_value_types, objects_schema
    from deepscope.pipeline.store import commit_tables, plan_resume, scan_parts

    folder = tmp / "small"
    write_s = _write_small(folder, n)
    pipe = Pipeline.from_dict(spec_dict([str(folder)], labels=False))
    res: dict[str, Any] = {"images": n, "image_size": "96x96 uint8, 1-4 nuclei", "write_inputs_s": round(write_s, 1)}

    t0 = time.perf_counter()
    sets, _ = discover_image_sets(pipe.inputs)
    res["discover_s"] = round(time.perf_counter() - t0, 3)
    del sets
    tracemalloc.start()
    sets, _ = discover_image_sets(pipe.inputs)
    res["image_sets_bytes_per_set"] = round(tracemalloc.get_traced_memory()[0] / n)
    tracemalloc.stop()

    # the driver's peak memory for a tenth of the images, then for all: the difference is what grows with n
    tenth = tmp / "small_tenth"
    tenth.mkdir()
    for f in sorted(folder.glob("*.tif"))[:n // 10]:
        (tenth / f.name).symlink_to(f)
    with RssSampler() as rss_tenth:
        run_pipeline(Pipeline.from_dict(spec_dict([str(tenth)], labels=False)), tmp / "tenth_run", jobs=2)
    run_dir = tmp / "scale_run"
    stamps: list[float] = []
    with RssSampler() as rss:
        t0 = time.perf_counter()
        r = run_pipeline(pipe, run_dir, jobs=2, progress=lambda d, t, f: stamps.append(time.perf_counter()))
        wall = time.perf_counter() - t0
    grow = (rss.peak - rss_tenth.peak) / (n - n // 10)
    res.update(run_wall_s=round(wall, 1), run_images_per_s=round(n / wall, 1), failed=r.n_failed,
               objects=r.n_objects, driver_rss_peak_tenth_mb=round(rss_tenth.peak / 2**20, 1),
               driver_rss_peak_mb=round(rss.peak / 2**20, 1), driver_rss_bytes_per_set=round(grow))
    print(f"  {n} images: {wall:.1f} s ({n / wall:.0f} img/s), driver peak RSS {rss_tenth.peak / 2**20:.0f} MB "
          f"at {n // 10} images, {rss.peak / 2**20:.0f} MB at {n}", flush=True)

    from deepscope.provenance import lineage

    models = resolve_models(pipe)
    run = lineage.Run.start(command="run", params={"pipeline": pipe.to_dict(), "pipeline_hash": r.pipeline_hash,
                                                   "run_dir": str(run_dir)}, models=list(models.values()))
    job = {"pipeline": pipe.to_dict(), "pipeline_hash": r.pipeline_hash, "run_dir": str(run_dir), "device": "auto",
           "threads": 1, "run": run.to_dict()}  # as the runner sends it with every task
    res["task_message_bytes"] = len(pickle.dumps((json.dumps(job), Task(sets[0].key, sets[0].set_id, sets[0].files))))
    res["tasks_in_flight_local_2"] = 8
    t0 = time.perf_counter()
    parts = scan_parts(run_dir)
    res["scan_parts_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    plan = plan_resume(sets, parts, pipeline_hash=r.pipeline_hash)
    res["plan_resume_s"] = round(time.perf_counter() - t0, 2)
    assert plan.done == n and not plan.todo
    for formats in (("parquet",), ("parquet", "csv")):
        t0 = time.perf_counter()
        committed = commit_tables(run_dir, sets, file_channels=["Image"], objects_schema=objects_schema(pipe),
                                  value_types=image_value_types(pipe), model_cols=_model_columns(pipe, models),
                                  formats=formats)
        res[f"commit_in_driver_{'_'.join(formats)}_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    again = run_pipeline(pipe, run_dir, jobs=2)  # blocks of 2,000 sets built by the 2 workers
    res["resume_nothing_left_s"] = round(time.perf_counter() - t0, 2)
    assert again.n_processed == 0
    res["table_bytes"] = {name: p.stat().st_size for name, p in committed.tables.items()}
    res["parts_bytes"] = sum(p.stat().st_size for p in (run_dir / "parts").glob("*/*.parquet"))
    res["objects_rows"] = pq.ParquetFile(committed.tables["objects.parquet"]).metadata.num_rows
    print(f"  scan {res['scan_parts_s']} s, plan {res['plan_resume_s']} s, commit in the driver "
          f"{res['commit_in_driver_parquet_s']} s (+csv {res['commit_in_driver_parquet_csv_s']} s), resume with "
          f"nothing left (blocks on 2 workers, parquet+csv) {res['resume_nothing_left_s']} s", flush=True)

    # Dask LocalCluster vs local processes on the same 2,000 images
    sub = tmp / "small2k"
    sub.mkdir()
    for f in sorted(folder.glob("*.tif"))[:2000]:
        (sub / f.name).symlink_to(f)
    p2 = Pipeline.from_dict(spec_dict([str(sub)], labels=False))
    for name, kwargs in (("local_2_processes", {"jobs": 2}), ("dask_localcluster_2_workers",
                                                              {"executor": DaskExecutor(workers=2)})):
        out = tmp / f"cmp_{name}"
        stamps = []
        t0 = time.perf_counter()
        rr = run_pipeline(p2, out, progress=lambda d, t, f: stamps.append(time.perf_counter()) if d else None,
                          **kwargs)
        wall = time.perf_counter() - t0
        res[name] = {"images": rr.n_sets, "wall_s": round(wall, 1),
                     "steady_images_per_s": round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 1),
                     "load1": load1()}
        print(f"  2000 images, {name}: {res[name]}", flush=True)

    # linear extrapolation to one million image sets
    m = 1_000_000 / n
    res["extrapolated_1M"] = {
        "image_sets_in_driver_mb": round(res["image_sets_bytes_per_set"] * 1_000_000 / 2**20),
        "driver_rss_growth_mb": round(res["driver_rss_bytes_per_set"] * 1_000_000 / 2**20),
        "discover_s": round(res["discover_s"] * m),
        "scan_parts_s": round(res["scan_parts_s"] * m),
        "commit_in_driver_parquet_csv_s": round(res["commit_in_driver_parquet_csv_s"] * m),
        "resume_nothing_left_2_workers_s": round(res["resume_nothing_left_s"] * m),
        "images_parquet_mb": round(res["table_bytes"]["images.parquet"] * m / 2**20),
        "objects_parquet_mb": round(res["table_bytes"]["objects.parquet"] * m / 2**20),
        "parts_gb": round(res["parts_bytes"] * m / 2**30, 1),
        "tasks_in_flight": "4 per worker slot, whatever the number of images",
    }
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="scaling,startup,scale")
    ap.add_argument("--n-scaling", type=int, default=120)
    ap.add_argument("--n-scale", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=3, help="scaling: interleaved repetitions (best is reported)")
    args = ap.parse_args()
    parts = args.parts.split(",")
    result_path = Path(__file__).resolve().parent / "results" / "pipeline.json"
    result: dict[str, Any] = {}
    if result_path.exists():  # keep the parts not rerun now, and every scaling session (the machine is shared)
        result = {k: v for k, v in json.loads(result_path.read_text()).items()
                  if k in ("scaling", "scaling_sessions", "startup", "scale")}
    result["command"] = "python benchmarks/bench_pipeline.py " + " ".join(sys.argv[1:])
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        if "scaling" in parts:
            print(f"scaling, {args.n_scaling} images:", flush=True)
            result["scaling"] = scaling(args.n_scaling, tmp, args.reps)
            s = result["scaling"]
            s["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
            result.setdefault("scaling_sessions", []).append(s)
            print(f"  efficiency {s['efficiency_steady']:.0%} steady-state, {s['efficiency_wall']:.0%} wall "
                  f"(bar 85%)")
        if "startup" in parts:
            print("start-up:", flush=True)
            result["startup"] = startup(tmp)
        if "scale" in parts:
            print(f"scale, {args.n_scale} images:", flush=True)
            result["scale"] = scale(args.n_scale, tmp)
            print(f"  extrapolated to 1M: {result['scale']['extrapolated_1M']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    path = write_result("pipeline", result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
