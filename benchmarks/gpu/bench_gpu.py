"""The throughput engine on a GPU machine (issue 17): images/s, GPU use and per-stage time per command.

    python3 benchmarks/gpu/bench_gpu.py --out OUTDIR [--device cuda] [--budget 240] [--tiny]

Run by ``benchmarks/gpu/run.sh OUTDIR`` (see there). Makes its own synthetic BBBC005-like images (520 x
696 uint8 TIFFs: unique simulated fields, hard-linked under as many names as a case needs), then runs each
case in a fresh Python process through the batch API (``count_paths`` / ``segment_paths`` /
``restore_paths``: what ``deepscope count|segment|restore`` run, without the terminal UI):

- ``count_fast``: ``count-bbbc005-fast``; ``count``: the default ``count-bbbc005``; ``segment``: the default
  ``nuclei`` with overlays; ``restore``: ``deblur-bbbc005``; each with the default workers (every core)
  and, for reference, ``--jobs 1``;
- each case first runs a short calibration batch, then a batch sized to take about ``--case-seconds``.

Per case it records the whole process's wall time, the engine's own wall time (``BatchRunner.run``, no
start-up), images/s both ways, the child's CPU time (cores kept busy), its peak RSS, the engine's
seconds per stage (read, infer, network, write, wait) and the GPU's utilisation and memory sampled by
``nvidia-smi`` every 200 ms. Writes ``OUTDIR/results.json`` (the log is ``OUTDIR/log.txt``, by run.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
from deepscope.predict.files import count_paths, restore_paths, segment_paths
t_import = time.perf_counter() - t0
case, files_txt, out, device, jobs = sys.argv[1:6]
files = open(files_txt).read().split("\n")
jobs = None if jobs == "default" else int(jobs)
t = time.perf_counter()
if case == "count_fast":
    res = count_paths(files, model="count-bbbc005-fast", output=out + "/counts.csv", device=device, jobs=jobs)
elif case == "count":
    res = count_paths(files, output=out + "/counts.csv", device=device, jobs=jobs)
elif case == "segment":
    res = segment_paths(files, out + "/seg", device=device, jobs=jobs)
elif case == "restore":
    res = restore_paths(files, out + "/restored", model="deblur-bbbc005", device=device, jobs=jobs)
else:
    raise SystemExit("unknown case " + case)
t_call = time.perf_counter() - t
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
print("RESULT " + json.dumps({"t_import": t_import, "t_call": t_call, "n": res.n_images, "failed": res.n_failed,
                              "jobs": res.jobs, "stages": res.stages, "gpu": gpu, "cuda_peak_mb": peak,
                              "first_error": next((e for e in res.table["error"] if e), "")}))
"""


class GpuSampler:
    """``nvidia-smi`` utilisation and memory every 200 ms while a case runs (nothing without nvidia-smi)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.proc: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                          "--format=csv,noheader,nounits", "-lms", "200"],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                u, m = (float(v) for v in line.strip().split(",")[:2])
                self.samples.append((u, m))
            except ValueError:
                pass

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=5)

    def summary(self) -> dict:
        if not self.samples:
            return {}
        u = [s[0] for s in self.samples]
        return {"gpu_util_mean_pct": round(sum(u) / len(u), 1), "gpu_util_max_pct": max(u),
                "gpu_mem_max_mb": max(s[1] for s in self.samples), "samples": len(u)}


def make_images(folder: Path, n_unique: int, size: tuple[int, int]) -> list[Path]:
    from deepscope.data.synth import generate_field
    from deepscope.io import write_tiff

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    most = 90 if size[0] * size[1] >= 300_000 else 10  # cells per field: BBBC005's 1-100 at full size
    for k in range(n_unique // 2):
        f = generate_field(1 + (k * 7) % most, size=size, blurs=(1 + (k % 3) * 11,), stains=(1, 2), seed=1000 + k)
        for (stain, _blur), img in sorted(f.images.items()):
            p = folder / f"u{k:04d}_w{stain}.tif"
            write_tiff(p, img)
            out.append(p)
    return out


def file_list(work: Path, unique: list[Path], n: int, tag: str) -> Path:
    """``n`` distinct names hard-linked (or copied) to the unique images; their list in a text file."""
    d = work / f"set_{tag}_{n}"
    d.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        p = d / f"img{i:06d}.tif"
        if not p.exists():
            try:
                os.link(unique[i % len(unique)], p)
            except OSError:
                shutil.copyfile(unique[i % len(unique)], p)
        names.append(str(p))
    lst = work / f"files_{tag}_{n}.txt"
    lst.write_text("\n".join(names))
    return lst


def run_case(case: str, lst: Path, n: int, device: str, jobs: str, work: Path, timeout: float) -> dict:
    out = Path(tempfile.mkdtemp(dir=work, prefix=f"out_{case}_"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with GpuSampler() as gpu:
        try:
            proc = subprocess.run([sys.executable, "-c", CHILD, case, str(lst), str(out), device, jobs],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"case": case, "n": n, "jobs": jobs, "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(out, ignore_errors=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        return {"case": case, "n": n, "jobs": jobs, "error": (proc.stderr or proc.stdout)[-3000:]}
    r = json.loads(line[7:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    engine_wall = r["stages"].get("wall", r["t_call"])
    res = {"case": case, "n": n, "jobs": r["jobs"], "failed": r["failed"], "first_error": r["first_error"],
           "process_wall_s": round(wall, 2), "engine_wall_s": round(engine_wall, 2),
           "images_per_s_process": round(n / wall, 1), "images_per_s_engine": round(n / engine_wall, 1),
           "import_s": round(r["t_import"], 2), "cpu_s": round(cpu, 1), "cores_busy": round(cpu / wall, 2),
           "child_max_rss_mb": round(after.ru_maxrss / 1024, 1), "cuda_peak_mb": r["cuda_peak_mb"],
           "stages": r["stages"], **gpu.summary()}
    print(json.dumps(res), flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget", type=float, default=240.0, help="seconds for all cases (stops starting new ones)")
    ap.add_argument("--case-seconds", type=float, default=20.0)
    ap.add_argument("--cases", default="count_fast,count,segment,restore")
    ap.add_argument("--tiny", action="store_true", help="a CPU check of the script: small images, few of them")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size = (128, 160) if args.tiny else (520, 696)
    cap = 64 if args.tiny else 20000
    work = Path(tempfile.mkdtemp(prefix="deepscope-gpu-bench-"))
    result: dict = {"python": platform.python_version(), "cores": os.cpu_count(), "device": args.device,
                    "image_size": list(size), "tiny": args.tiny, "cases": []}
    try:
        import torch

        result["torch"] = torch.__version__
        result["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        t = time.perf_counter()
        unique = make_images(work / "unique", 16 if args.tiny else 192, size)
        result["images_made_s"] = round(time.perf_counter() - t, 2)
        plan = [(c, "default") for c in args.cases.split(",")] + [("count_fast", "1"), ("segment", "1")]
        for case, jobs in plan:
            left = args.budget - (time.perf_counter() - t_start)
            if left < 15:
                result["cases"].append({"case": case, "jobs": jobs, "error": "skipped: budget spent"})
                continue
            n0 = 8 if args.tiny else 64
            cal = run_case(case, file_list(work, unique, n0, "cal"), n0, args.device, jobs, work, min(left, 120))
            if "error" in cal:
                result["cases"].append(cal)
                continue
            rate = cal["images_per_s_engine"]
            want = args.case_seconds if jobs == "default" else args.case_seconds / 2
            n = int(min(cap, max(n0, rate * min(want, max(5.0, left - 30) / 2))))
            res = run_case(case, file_list(work, unique, n, case), n, args.device, jobs, work, max(30.0, left - 10))
            res["calibration_images_per_s"] = rate
            result["cases"].append(res)
    finally:
        result["total_s"] = round(time.perf_counter() - t_start, 1)
        (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        shutil.rmtree(work, ignore_errors=True)
    print("wrote", out / "results.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
