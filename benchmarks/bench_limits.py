"""Peak memory of hostile and large inputs under the resource limits (issues 14 and 30).

    .venv/bin/python benchmarks/bench_limits.py [--cases all|round1|round2|CASE,...] [--files 10 40] [--side 3072]
                                                [--before-src DIR]

Each case runs a ``deepscope`` command in a fresh process and records that process's peak resident
memory (``ru_maxrss`` from ``wait4``), its exit code and the first error line:

large-image
    ``count`` and ``inspect`` of a 1 MB zlib TIFF whose header declares 30000 x 30000 pixels.
zip-bomb
    ``inspect`` of a ~2 MB zip holding one 2 GiB member.
crafted-card
    ``count`` with a model card asking for a U-Net of base 4096 and depth 6.
many-files
    ``segment`` (a tiny untrained U-Net, so the runner's memory is what is measured) over N and then
    4N images of 2048 x 2048 uint16 (8 MiB each): peak memory should not grow with N.
working-memory
    ``segment`` (shipped ``nuclei``, with its overlay) and ``count`` (shipped ``count-bbbc005``) of one
    ``--side`` x ``--side`` image: the bytes per pixel a whole-image command needs above what it imports,
    from which the default pixel limit is sized (24 GB / bytes per pixel).

Round 2 (issue 30), each built at full attack size (the files are small: the point is that they are
refused cheaply):

chunk-bomb
    ``segment`` and ``inspect`` of a 10 x 10 uint8 OME-Zarr image stored as one 40000 x 40000 zlib chunk
    (~1.5 MB store, 1.6 GB decoded; the store of ``tests/io/test_hardening_ngff.py``, at level 9).
huge-store
    ``segment`` of a few-KB OME-Zarr store declaring 200000 x 200000 pixels (no chunk written).
yaml-bomb
    ``run`` of a ~515-byte pipeline YAML of 10 levels of 9 aliases ("billion laughs", 9**10 values), and of
    3000 nested brackets.
devices
    ``count`` of a folder holding a link ``a.tif`` -> ``/dev/zero``, a FIFO ``b.tif`` and one good image;
    ``count -m FOLDER`` whose ``model.json`` is a link to ``/dev/zero``.
many-members-zip
    ``inspect`` of a ~3.4 MB zip of 3000 members of 1 MiB of zeros each (none over the per-member ratio
    threshold), with ``TMPDIR`` inside the benchmark's folder: the bytes left there afterwards are recorded.
plate-escape
    ``segment`` of an OME-Zarr plate whose second well's field path is ``../../../victim.zarr``: the
    sha256 of every file of the victim store (with its ``labels/Nuclei``) before and after.
regex
    ``run`` of a pipeline whose ``inputs.pattern`` is ``(?P<a>(a|aa)+)$`` over a file named 40 ``a`` then
    ``b`` (catastrophic backtracking).

Every command runs with a safety net, so that a regression cannot take the machine: 4 GiB of address
space (``RLIMIT_AS``) and 120 s, after which its process group is killed (``timed_out``). Results are
merged into ``benchmarks/results/limits.json``: a subset of cases (``--cases round2``) keeps the figures
of the others.

``--before-src`` runs the many-files case again with another source tree first on ``PYTHONPATH``
(e.g. ``git archive 901e765 src | tar -x -C /tmp/before``), for a before/after figure. The
large-image and crafted-card cases are not run on old code: they take 9-23 GB there (issue 14).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from _util import RESULTS, ROOT, machine, report

sys.path.insert(0, str(ROOT))
from tests.io.test_limits import big_tiff  # noqa: E402  (the same file the tests use)

DEEPSCOPE = [sys.executable, "-m", "deepscope.cli.app"]


#: Starts the command from a small process and reports its exit code, peak RSS and wall time. Linux keeps a
#: process's peak RSS across fork and exec, so a command started straight from this (large) process would count
#: this process's memory as its own. The child gets its own process group, ``RLIMIT_AS`` of ``argv[2]`` bytes and
#: is killed (with its group) after ``argv[3]`` seconds: a safety net, so a regression cannot take the machine.
_LAUNCHER = """
import json, os, resource, signal, sys, time
out, limit_as, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    if limit_as:
        resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))
    os.execvpe(sys.argv[4], sys.argv[4:], os.environ)
timed_out = False
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    if time.monotonic() - t0 > timeout:
        timed_out = True
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status, usage = os.wait4(pid, 0)
        break
    time.sleep(0.02)
wall = time.monotonic() - t0
open(out, "w").write(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss, wall, timed_out]))
"""

#: The safety net of every command: address space and wall time.
LIMIT_AS = 4 << 30
TIMEOUT_S = 120.0


def run(args: list[str], *, env: dict[str, str] | None = None, limit_as: int | None = None,
        timeout: float | None = None) -> dict[str, Any]:
    """Run a command; its peak RSS (MiB), wall time, exit code and first error line."""
    limit_as = LIMIT_AS if limit_as is None else limit_as
    timeout = TIMEOUT_S if timeout is None else timeout
    with tempfile.TemporaryDirectory() as d:
        res = Path(d) / "rusage.json"
        proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, str(res), str(limit_as), str(timeout), *args],
                              env=env, capture_output=True, text=True, errors="replace", timeout=timeout + 60)
        code, maxrss_kib, wall, timed_out = json.loads(res.read_text())
    flat = " ".join((proc.stdout + proc.stderr).split())
    err = flat[flat.find("error:"):] if "error:" in flat else ""
    if err.find(" error:") > 0:  # the first of several
        err = err[:err.find(" error:")]
    err = err[:240]
    if not err and ("Error" in flat or "Traceback" in flat):  # an uncaught exception: its last line
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        err = lines[-1].strip()[:240] if lines else ""
    out = {"peak_rss_mib": round(maxrss_kib / 1024, 1), "wall_s": round(wall, 2), "exit_code": code, "error": err,
           "command": " ".join(a if len(a) < 60 else "..." + a[-40:] for a in args[2:])}
    if timed_out:
        out["timed_out"] = True
    return out


def zip_bomb(path: Path, gib: int = 2) -> Path:
    block = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("images/field.tif", "w", force_zip64=True) as fh:
            for _ in range(gib << 10):
                fh.write(block)
    return path


def crafted_card(folder: Path) -> Path:
    from deepscope.models import ZOO

    card = json.loads((ZOO / "count-bbbc005.json").read_text())
    card["architecture"].update(base=4096, depth=6)
    card["weights"] = None
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps(card))
    (folder / "model.safetensors").write_bytes((ZOO / "count-bbbc005.safetensors").read_bytes())
    return folder


def many_files(folder: Path, n: int) -> Path:
    from deepscope.io import write_tiff

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    base = (rng.random((2048, 2048)) * 4000).astype(np.uint16)
    for i in range(n):
        write_tiff(folder / f"f{i:04d}.tif", np.roll(base, i, axis=0), compression=None)
    return folder


# --------------------------------------------------------------------------- round 2 (issue 30)

def _csv_errors(path: Path) -> dict[str, str]:
    """File name -> error of each row of a ``counts.csv`` (empty when the row is good); {} without the file."""
    import pandas as pd

    if not path.is_file():
        return {}
    t = pd.read_csv(path, keep_default_na=False)
    return {Path(str(p)).name: " ".join(str(e).split())[:200] for p, e in zip(t["path"], t["error"])}


def _tree_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def _hashes(folder: Path) -> dict[str, str]:
    return {f.relative_to(folder).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file()}


def case_chunk_bomb(t: Path, result: dict[str, Any]) -> None:
    from tests.io.test_hardening_ngff import _store  # the store the tests build, here at full size

    # 10 x 10 uint8 in ONE 40000 x 40000 zlib chunk, all 1.6 GB of it written (at level 9: a ~1.5 MB store)
    c = zlib.compressobj(9)
    data = b"".join(c.compress(b"\x07" * 40_000) for _ in range(40_000)) + c.flush()
    store = _store(t / "chunkbomb.zarr", 40_000, data=data)
    result["chunk_bomb_store_bytes"] = _tree_bytes(store)
    r = run([*DEEPSCOPE, "segment", str(store), "-o", str(t / "chunk-seg"), "--no-overlay", "--no-report"])
    r["rows"] = _csv_errors(t / "chunk-seg" / "counts.csv")
    result["chunk_bomb_segment"] = r
    result["chunk_bomb_inspect"] = run([*DEEPSCOPE, "inspect", str(store)])


def case_huge_store(t: Path, result: dict[str, Any]) -> None:
    from tests.predict.test_hardening_large import _declared

    store = _declared(t / "huge.zarr", (200_000, 200_000), (4096, 4096))  # metadata only, no chunk
    result["huge_store_bytes"] = _tree_bytes(store)
    r = run([*DEEPSCOPE, "segment", str(store), "-o", str(t / "huge-seg"), "--no-overlay", "--no-report"])
    r["rows"] = _csv_errors(t / "huge-seg" / "counts.csv")
    r["labels_written"] = (store / "labels").exists()
    result["huge_store_segment"] = r


def case_yaml_bomb(t: Path, result: dict[str, Any]) -> None:
    from tests.pipeline.test_hardening_yaml import _bomb

    bomb = t / "bomb.yaml"
    bomb.write_text(_bomb(10, 9))  # 9 ** 10 = 3.5e9 values
    result["yaml_bomb_file_bytes"] = bomb.stat().st_size
    r = run([*DEEPSCOPE, "run", str(bomb), "-o", str(t / "yaml-run")])
    r["out_created"] = (t / "yaml-run").exists()
    result["yaml_bomb_run"] = r
    deep = t / "deep.yaml"
    deep.write_text("[" * 3000 + "]" * 3000)
    result["yaml_brackets_file_bytes"] = deep.stat().st_size
    result["yaml_brackets_run"] = run([*DEEPSCOPE, "run", str(deep), "-o", str(t / "deep-run")])


def case_devices(t: Path, result: dict[str, Any]) -> None:
    from tests.io.test_hardening_files import hostile_folder

    folder = hostile_folder(t / "hostile")  # good.tif, a.tif -> /dev/zero, b.tif a FIFO
    r = run([*DEEPSCOPE, "count", str(folder), "-o", str(t / "dev.csv")])
    r["rows"] = _csv_errors(t / "dev.csv")
    result["device_fifo_count"] = r
    model = t / "devmodel"
    model.mkdir()
    (model / "model.json").symlink_to("/dev/zero")
    result["device_card_count"] = run([*DEEPSCOPE, "count", str(folder / "good.tif"), "-m", str(model),
                                       "-o", str(t / "devcard.csv")])


def case_many_members_zip(t: Path, result: dict[str, Any]) -> None:
    from tests.io.test_hardening_files import _zeros_zip

    archive = _zeros_zip(t / "many.zip", 3000)  # 3000 members of exactly 1 MiB of zeros: 3 GiB unpacked
    result["many_members_zip_file_bytes"] = archive.stat().st_size
    tmpdir = t / "tmpdir"
    tmpdir.mkdir()
    r = run([*DEEPSCOPE, "inspect", str(archive)], env={**os.environ, "TMPDIR": str(tmpdir)})
    r["tmpdir_bytes_left"] = _tree_bytes(tmpdir)
    r["tmpdir_entries_left"] = len(list(tmpdir.rglob("*")))
    result["many_members_zip_inspect"] = r


def case_plate_escape(t: Path, result: dict[str, Any]) -> None:
    from tests.io.test_hardening_ngff import _hostile_plate, _victim

    d = t / "plate-escape"
    d.mkdir()
    victim = _victim(d)  # an OME-Zarr image with labels/Nuclei, beside the plate
    plate = _hostile_plate(d, victim, "dotdot-field")  # well A/2 lists its field as ../../../victim.zarr
    before = _hashes(victim)
    r = run([*DEEPSCOPE, "segment", str(plate), "-o", str(d / "out")])
    after = _hashes(victim)
    r["victim_files"] = len(before)
    r["victim_unchanged"] = before == after
    r["victim_files_changed"] = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    result["plate_escape_segment"] = r


def case_regex(t: Path, result: dict[str, Any]) -> None:
    from deepscope.io import write_tiff

    d = t / "regex"
    (d / "images").mkdir(parents=True)
    write_tiff(d / "images" / ("a" * 40 + "b.tif"), np.zeros((64, 80), np.uint8))
    spec = d / "p.yaml"
    spec.write_text(json.dumps({"inputs": {"paths": ["images"], "pattern": "(?P<a>(a|aa)+)$"},
                                "steps": [{"segment": {"model": "otsu-watershed"}}]}))
    result["regex_run"] = run([*DEEPSCOPE, "run", str(spec), "-o", str(d / "run")])


ROUND2 = {"chunk-bomb": case_chunk_bomb, "huge-store": case_huge_store, "yaml-bomb": case_yaml_bomb,
          "devices": case_devices, "many-members-zip": case_many_members_zip, "plate-escape": case_plate_escape,
          "regex": case_regex}
ROUND1 = ["large-image", "zip-bomb", "crafted-card", "many-files", "working-memory"]


def select(cases: str) -> list[str]:
    """The case names of ``--cases``: ``all``, ``round1``, ``round2`` or case names, comma-separated."""
    out: list[str] = []
    for c in (x.strip() for x in cases.split(",") if x.strip()):
        names = {"all": ROUND1 + list(ROUND2), "round1": ROUND1, "round2": list(ROUND2)}.get(c, [c])
        for n in names:
            if n not in ROUND1 and n not in ROUND2:
                raise SystemExit(f"unknown case {n!r}; cases: all, round1, round2, {', '.join(ROUND1 + list(ROUND2))}")
            if n not in out:
                out.append(n)
    return out


def _many_files_case(t: Path, args: argparse.Namespace, result: dict[str, Any]) -> None:
    from deepscope.models import ArchConfig, SegmentModel

    tiny = t / "tiny-seg"
    SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2)).save(tiny)
    n1, n2 = args.files
    folder = many_files(t / "many", n2)
    subsets = {}
    for n in (n1, n2):
        sub = t / f"many{n}"
        sub.mkdir()
        for f in sorted(folder.iterdir())[:n]:
            (sub / f.name).symlink_to(f)
        subsets[n] = sub
    trees = {"after": None} | ({"before": args.before_src.resolve()} if args.before_src else {})
    for label, src in trees.items():
        env = dict(os.environ)
        if src is not None:
            env["PYTHONPATH"] = str(src)
        for n, sub in subsets.items():
            result[f"many_files_segment_{label}_{n}"] = run(
                [*DEEPSCOPE, "segment", str(sub), "-o", str(t / f"seg-{label}-{n}"), "-m", str(tiny),
                 "--no-overlay", "--device", "cpu"], env=env)


def _working_memory_case(t: Path, args: argparse.Namespace, result: dict[str, Any]) -> None:
    from deepscope.data.synth import generate_field
    from deepscope.io import write_tiff

    side = args.side

    f = generate_field(int(60 * side * side / (520 * 696)), size=(side, side), stains=1, seed=1)
    img = write_tiff(t / "wide.tif", f.image(1))
    # what the command imports, without any image: subtracted to get the working memory per pixel
    base = run([sys.executable, "-c", "import deepscope.cli.app, torch, deepscope.models, deepscope.tasks, "
                "skimage.segmentation"])
    result["working_memory_baseline"] = base
    for name, cmd in (("segment_nuclei", ["segment", str(img), "-o", str(t / "wm")]),
                      ("count_bbbc005", ["count", str(img), "-o", str(t / "wm.csv")])):
        r = run([*DEEPSCOPE, *cmd, "--device", "cpu"])
        r["bytes_per_pixel"] = round((r["peak_rss_mib"] - base["peak_rss_mib"]) * 2**20 / side**2, 1)
        r["pixels_in_24_gb"] = int(24e9 / max(r["bytes_per_pixel"], 1.0))
        result[f"working_memory_{name}_{side}"] = r


def main() -> int:
    global LIMIT_AS, TIMEOUT_S
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, nargs=2, default=[10, 40], help="image counts of the many-files case")
    ap.add_argument("--side", type=int, default=3072, help="image side of the working-memory case")
    ap.add_argument("--before-src", type=Path, default=None, help="source tree to run many-files on as 'before'")
    ap.add_argument("--skip-working-memory", action="store_true")
    ap.add_argument("--cases", default="all", help="all, round1, round2, or case names, comma-separated: "
                    + ", ".join(ROUND1 + list(ROUND2)))
    ap.add_argument("--limit-as-gib", type=float, default=LIMIT_AS / 2**30,
                    help="address-space cap of each command, GiB (0: none)")
    ap.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds after which a command is killed")
    args = ap.parse_args()
    cases = select(args.cases)
    if args.skip_working_memory and "working-memory" in cases:
        cases.remove("working-memory")
    from deepscope.io import write_tiff

    LIMIT_AS, TIMEOUT_S = int(args.limit_as_gib * 2**30), args.timeout
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        t = Path(tmp)
        if "large-image" in cases:
            big = big_tiff(t / "big.tif")
            result["large_image_file_bytes"] = big.stat().st_size
            result["large_image_count"] = run([*DEEPSCOPE, "count", str(big), "-o", str(t / "c.csv")])
            result["large_image_inspect"] = run([*DEEPSCOPE, "inspect", str(big)])
        if "zip-bomb" in cases:
            bomb = zip_bomb(t / "bomb.zip")
            result["zip_bomb_file_bytes"] = bomb.stat().st_size
            result["zip_bomb_inspect"] = run([*DEEPSCOPE, "inspect", str(bomb)])
        if "crafted-card" in cases:
            small = write_tiff(t / "small.tif", np.zeros((520, 696), np.uint8))
            result["crafted_card_count"] = run([*DEEPSCOPE, "count", str(small), "-o", str(t / "c2.csv"), "-m",
                                                str(crafted_card(t / "crafted"))])
        for name, fn in ROUND2.items():
            if name in cases:
                print(f"case {name} ...", flush=True)
                fn(t, result)
        if "many-files" in cases:
            _many_files_case(t, args, result)
        if "working-memory" in cases:
            _working_memory_case(t, args, result)
    # merge: the figures of cases not run this time are kept
    path = RESULTS / "limits.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    runs = old.pop("case_runs", None) or ({"all (issue 14)": {"date": old.get("date"), "machine": old.get("machine")}}
                                          if old.get("date") else {})
    for k in ("topic", "date", "machine"):
        old.pop(k, None)
    for k in [k for k, v in runs.items() if set(v.get("cases") or ["?"]) <= set(cases)]:
        del runs[k]  # an earlier run of cases all rerun now
    runs[args.cases] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), "cases": cases}
    result = {**old, **result, "case_runs": runs}
    report("limits", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
