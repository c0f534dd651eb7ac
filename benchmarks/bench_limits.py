"""Peak memory of hostile and large inputs under the resource limits (issue 14).

    .venv/bin/python benchmarks/bench_limits.py [--files 10 40] [--side 3072] [--before-src DIR]

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

``--before-src`` runs the many-files case again with another source tree first on ``PYTHONPATH``
(e.g. ``git archive 901e765 src | tar -x -C /tmp/before``), for a before/after figure. The
large-image and crafted-card cases are not run on old code: they take 9-23 GB there (issue 14).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from _util import ROOT, report

sys.path.insert(0, str(ROOT))
from tests.io.test_limits import big_tiff  # noqa: E402  (the same file the tests use)

DEEPSCOPE = [sys.executable, "-m", "deepscope.cli.app"]


#: Starts the command from a small process and reports its exit code and peak RSS. Linux keeps a process's
#: peak RSS across fork and exec, so a command started straight from this (large) process would count this
#: process's memory as its own.
_LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execvpe(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss]))
"""


def run(args: list[str], *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command; its peak RSS (MiB), exit code and first error line."""
    with tempfile.TemporaryDirectory() as d:
        res = Path(d) / "rusage.json"
        proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, str(res), *args], env=env,
                              capture_output=True, text=True, errors="replace")
        code, maxrss_kib = json.loads(res.read_text())
    flat = " ".join((proc.stdout + proc.stderr).split())
    err = flat[flat.find("error:"):][:240] if "error:" in flat else ""
    return {"peak_rss_mib": round(maxrss_kib / 1024, 1), "exit_code": code, "error": err,
            "command": " ".join(a if len(a) < 60 else "..." + a[-40:] for a in args[2:])}


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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, nargs=2, default=[10, 40], help="image counts of the many-files case")
    ap.add_argument("--side", type=int, default=3072, help="image side of the working-memory case")
    ap.add_argument("--before-src", type=Path, default=None, help="source tree to run many-files on as 'before'")
    ap.add_argument("--skip-working-memory", action="store_true")
    args = ap.parse_args()
    from deepscope.models import ArchConfig, SegmentModel
    from deepscope.io import write_tiff

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        t = Path(tmp)
        big = big_tiff(t / "big.tif")
        result["large_image_file_bytes"] = big.stat().st_size
        result["large_image_count"] = run([*DEEPSCOPE, "count", str(big), "-o", str(t / "c.csv")])
        result["large_image_inspect"] = run([*DEEPSCOPE, "inspect", str(big)])
        bomb = zip_bomb(t / "bomb.zip")
        result["zip_bomb_file_bytes"] = bomb.stat().st_size
        result["zip_bomb_inspect"] = run([*DEEPSCOPE, "inspect", str(bomb)])
        small = write_tiff(t / "small.tif", np.zeros((520, 696), np.uint8))
        result["crafted_card_count"] = run([*DEEPSCOPE, "count", str(small), "-o", str(t / "c2.csv"), "-m",
                                            str(crafted_card(t / "crafted"))])
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
        if not args.skip_working_memory:
            side = args.side
            from deepscope.data.synth import generate_field

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
    report("limits", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
