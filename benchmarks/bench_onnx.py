"""CPU speed of the ONNX Runtime backend against PyTorch (issue 18), same files, same process.

    .venv/bin/python benchmarks/bench_onnx.py [--files 120]

- network alone: ms per 520 x 696 image (batch of 8 for the counter, 1 for the segmenters), best of 3;
- whole batch functions: ``count_paths`` with ``count-bbbc005-fast`` (one network pass per image) on
  BBBC005 test files, ``segment_paths`` with ``nuclei-fluo`` and ``nuclei`` on nuclear-stain test files
  (no overlays), torch then onnx then torch again (the mean of the two torch runs is the reference);
- the largest difference of the outputs (counts; share of identical label pixels).

Result: ``benchmarks/results/onnx.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "recipes"))
from _util import report, start  # noqa: E402


def network_ms(name: str, batch: int) -> dict:
    from deepscope.models import load_model
    from deepscope.predict.backends import OnnxBackend, TorchBackend, export_onnx

    model = load_model(name, device="cpu")
    x = np.random.default_rng(0).random((batch, model.arch.in_channels, 520, 696), dtype=np.float32)
    out = {}
    for label, be in (("torch", TorchBackend(model.net, device="cpu")), ("onnx", OnnxBackend(export_onnx(model)))):
        be.forward(x)
        best = min(_timed(lambda be=be: be.forward(x)) for _ in range(3))
        out[f"{label}_ms_per_image"] = 1000 * best / batch
    out["onnx_speedup"] = out["torch_ms_per_image"] / out["onnx_ms_per_image"]
    return out


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def batch_speed(files: list[Path], fn, key) -> dict:  # type: ignore[no-untyped-def]
    runs = {}
    results = {}
    for label in ("torch", "onnx", "torch2"):
        t = time.perf_counter()
        results[label] = fn(label.rstrip("2"))
        runs[label] = time.perf_counter() - t
    torch_s = (runs["torch"] + runs["torch2"]) / 2
    return {"files": len(files), "torch_images_per_s": len(files) / torch_s,
            "onnx_images_per_s": len(files) / runs["onnx"], "onnx_speedup": torch_s / runs["onnx"],
            "agreement": key(results["torch"], results["onnx"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=120)
    args = ap.parse_args(argv)
    if not start("bbbc005"):
        return 0
    from deepscope.io import read_image
    from deepscope.predict.files import count_paths, segment_paths
    from pack_data import bbbc005_split

    ds, part = bbbc005_split()
    test = [(Path(p), s) for p, s, pt in zip(ds.paths, ds.metadata.stain, part) if pt == "test"]
    count_files = [p for p, _ in test][:args.files]
    seg_files = [p for p, s in test if s == 1][:40]
    result: dict = {"network": {"count-bbbc005-fast (batch 8)": network_ms("count-bbbc005-fast", 8),
                                "nuclei-fluo": network_ms("nuclei-fluo", 1), "nuclei": network_ms("nuclei", 1)}}

    def count(backend: str):  # type: ignore[no-untyped-def]
        return count_paths(count_files, model="count-bbbc005-fast", device="cpu", backend=backend).table["count"]

    result["count_paths count-bbbc005-fast"] = batch_speed(
        count_files, count, lambda a, b: {"max_count_difference": float(np.abs(a.to_numpy() - b.to_numpy()).max())})
    for name in ("nuclei-fluo", "nuclei"):
        tmp = Path(tempfile.mkdtemp())

        def seg(backend: str, name=name, tmp=tmp):  # type: ignore[no-untyped-def]
            out = tmp / backend
            segment_paths(seg_files, out, model=name, overlay=False, device="cpu", backend=backend)
            return out

        def agree(a: Path, b: Path) -> dict:
            same = [np.mean(read_image(a / f"{f.stem}.labels.tif").data == read_image(b / f"{f.stem}.labels.tif").data)
                    for f in seg_files]
            return {"identical_label_pixels_min": float(np.min(same)), "identical_label_pixels_mean": float(np.mean(same))}

        result[f"segment_paths {name}"] = batch_speed(seg_files, seg, agree)
    report("onnx", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
