"""The throughput engine (issue 17) on this machine's CPU: whole processes, per-stage time, memory.

    .venv/bin/python benchmarks/bench_engine.py [--files 120] [--parts speed,stages,memory]

- speed: ``deepscope count`` (default ``count-bbbc005``), ``deepscope count --model count-bbbc005-fast``,
  ``deepscope segment`` (default ``nuclei``, overlays on) and ``deepscope restore --model deblur-bbbc005`` (and, by
  ``--commands``, ``segment_fast`` (``nuclei-fast``) and ``count_torch``/``segment_torch``/``segment_fast_torch``:
  the same on PyTorch where ``--backend auto`` picks int8) as
  whole processes (start-up, reading, inference, outputs; ``--no-report`` where the command writes a report) with ``--jobs 1`` and with the
  default (every core), and a Python process reading the same files and labelling them with
  ``otsu_watershed`` (the classical baseline the bars are ratios to), on the 120 BBBC005 test images
  (520 x 696, every blur and both stains); the page cache is warm for all. CPU time of each process
  over its wall time says how many cores it kept busy.
- stages: the same commands through the Python API with the default workers: seconds per stage summed
  over threads (``read``, ``infer`` with the ``network`` inside it, ``write`` in order, ``write_deferred``
  on the writer thread, ``wait``: the calling thread idle), i.e. where the time goes.
- memory: peak RSS of ``deepscope count --model count-bbbc005-fast`` over 1,000 and 10,000 inputs
  (the test and validation images listed again and again): flat if the engine's window bounds memory.
Result: ``benchmarks/results/engine.json`` (parts not run keep their figures from the last run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "recipes"))
from _util import RESULTS, report, start  # noqa: E402

OTSU = r"""
import sys
from deepscope.io import read_image
from deepscope.predict.classical import otsu_watershed
n = 0
for f in open(sys.argv[1]).read().split("\n"):
    if f:
        n += int(otsu_watershed(read_image(f).data).max())
print(n)
"""

COMMANDS = {
    "count": ["count", "-o", "{tmp}/counts.csv", "--no-report"],
    "count_fast": ["count", "--model", "count-bbbc005-fast", "-o", "{tmp}/counts.csv", "--no-report"],
    "segment": ["segment", "-o", "{tmp}/seg", "--no-report"],
    "segment_fast": ["segment", "--model", "nuclei-fast", "-o", "{tmp}/seg", "--no-report"],
    "restore": ["restore", "--model", "deblur-bbbc005", "-o", "{tmp}/restored"],
    # the same commands on PyTorch (float), what the default ran before --backend auto picked int8 on a CPU
    "count_torch": ["count", "--backend", "torch", "-o", "{tmp}/counts.csv", "--no-report"],
    "segment_torch": ["segment", "--backend", "torch", "-o", "{tmp}/seg", "--no-report"],
    "segment_fast_torch": ["segment", "--model", "nuclei-fast", "--backend", "torch", "-o", "{tmp}/seg",
                           "--no-report"],
}


def _files(n: int, parts: tuple[str, ...] = ("test",)) -> list[str]:
    from pack_data import bbbc005_split

    ds, part = bbbc005_split()
    files = [str(p) for p, pt in zip(ds.paths, part) if pt in parts]
    return files[:n] if n else files


def _timed(cmd: list[str]) -> dict:
    """Wall and CPU seconds and the peak RSS of one child process (its own, by wait4), and its output's end."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "cores_busy": round(cpu / wall, 2),
            "max_rss_mb": round(usage.ru_maxrss / 1024, 1), "stdout": stdout[-200:]}


def speed(files: list[str], commands: list[str]) -> dict:
    exe = str(Path(sys.executable).parent / "deepscope")
    out: dict = {"files": len(files), "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        lst = Path(tmp) / "files.txt"
        lst.write_text("\n".join(files))
        for f in files:  # page cache warm for every process
            Path(f).read_bytes()
        otsu = _timed([sys.executable, "-c", OTSU, str(lst)])
        otsu.pop("stdout")
        out["otsu_watershed"] = {**otsu, "images_per_s": round(len(files) / otsu["wall_s"], 2)}
        print("otsu", out["otsu_watershed"], flush=True)
        for name in commands:
            args = [a.format(tmp=tmp) for a in COMMANDS[name]]
            for jobs in ("1", "default"):
                extra = ["--jobs", "1"] if jobs == "1" else []
                r = _timed([exe, *args, *files, *extra])
                r.pop("stdout")
                r["images_per_s"] = round(len(files) / r["wall_s"], 2)
                r["ratio_vs_otsu"] = round(otsu["wall_s"] / r["wall_s"], 3)
                out[f"{name}_jobs_{jobs}"] = r
                print(name, jobs, r, flush=True)
    return out


def stages(files: list[str], commands: list[str]) -> dict:
    from deepscope.predict.files import count_paths, restore_paths, segment_paths

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in commands:
            if name not in ("count", "count_fast", "segment", "restore"):
                continue  # the speed part's other commands (torch, nuclei-fast) have no stages run here
            if name == "count":
                res = count_paths(files, output=f"{tmp}/c.csv")
            elif name == "count_fast":
                res = count_paths(files, model="count-bbbc005-fast", output=f"{tmp}/c.csv")
            elif name == "segment":
                res = segment_paths(files, f"{tmp}/seg")
            else:
                res = restore_paths(files, f"{tmp}/restored", model="deblur-bbbc005")
            st = dict(res.stages)
            st["post_and_normalise"] = round(st.get("infer", 0.0) - st.get("network", 0.0), 3)
            st["jobs"] = res.jobs
            out[name] = st
            print(name, st, flush=True)
    return out


def memory(n_small: int, n_large: int) -> dict:
    pool = _files(0, ("test", "valid"))
    exe = str(Path(sys.executable).parent / "deepscope")
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (n_small, n_large):
            files = [pool[i % len(pool)] for i in range(n)]
            lst = Path(tmp) / f"files{n}.txt"
            lst.write_text("\n".join(files))
            r = _timed([sys.executable, "-c", "import sys; from deepscope.predict.files import count_paths;"
                        "fs = open(sys.argv[1]).read().split(chr(10));"
                        "res = count_paths(fs, model='count-bbbc005-fast', output=sys.argv[2]);"
                        "print('failed', res.n_failed)",
                        str(lst), f"{tmp}/c{n}.csv"])
            r.pop("stdout")
            r["images_per_s"] = round(n / r["wall_s"], 2)
            out[f"inputs_{n}"] = r
            print(n, r, flush=True)
    out["rss_growth_mb"] = round(out[f"inputs_{n_large}"]["max_rss_mb"] - out[f"inputs_{n_small}"]["max_rss_mb"], 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=120)
    ap.add_argument("--parts", default="speed,stages,memory")
    ap.add_argument("--commands", default="count,count_fast,segment,restore")
    ap.add_argument("--memory-sizes", default="1000,10000")
    args = ap.parse_args(argv)
    if not start("bbbc005"):
        return 0
    parts = set(args.parts.split(","))
    commands = args.commands.split(",")
    files = _files(args.files)
    result: dict = {"load_before": os.getloadavg()[0]}
    if "speed" in parts:
        result["speed"] = speed(files, commands)
    if "stages" in parts:
        result["stages"] = stages(files, commands)
    if "memory" in parts:
        small, large = (int(v) for v in args.memory_sizes.split(","))
        result["memory"] = memory(small, large)
    result["load_after"] = os.getloadavg()[0]
    previous = RESULTS / "engine.json"  # parts not run this time are kept from the last run
    if previous.exists() and not {"speed", "stages", "memory"} <= parts:
        old = json.loads(previous.read_text())
        kept = {k: old[k] for k in ("speed", "stages", "memory") if k in old and k not in parts}
        if kept:
            result["kept_from_run_of"] = old.get("date")
            result.update(kept)
    if previous.exists() and "speed" in parts:  # commands not rerun keep their figures (with their run's date)
        old = json.loads(previous.read_text())
        others = {k: v for k, v in old.get("speed", {}).items() if k not in result["speed"]}
        if others:
            result["speed"] = {**others, **result["speed"], "others_from_run_of": old.get("date")}
    report("engine", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
