"""Cost of a distilled student against its teacher (issue 29): one network pass on a 512 x 512 image.

    .venv/bin/python benchmarks/bench_distill.py [--variant nuclei-student-b8] [--threads 1] [--repeats 7]

Same process, same input (a normalised 3-channel 512 x 512 image), eval mode, no gradients: the shipped
teacher and the student architecture of the variant (recipes/accumulate.py), interleaved, median of
``--repeats`` passes each; also weights and multiply-accumulates (convolutions) per pass. With
``--folder`` the run's state is read too (steps done, validation DSB of the last epoch and the
teacher's, from recipes/checkpoints/<variant>/).

Result: ``benchmarks/results/distill.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "recipes"))
from _util import report  # noqa: E402


def _macs(net, x) -> int:  # type: ignore[no-untyped-def]
    import torch

    total = 0

    def hook(mod, inp, out):  # type: ignore[no-untyped-def]
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        total += int(out.numel() * k)

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        net(x)
    for h in hs:
        h.remove()
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="nuclei-student-b8")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    import torch

    import accumulate
    from deepscope.models import ArchConfig, load_model
    from deepscope.models.networks import build_network

    torch.set_num_threads(args.threads)
    v = accumulate.VARIANTS[args.variant]
    teacher = load_model(v["teacher"], device="cpu").net.eval()
    student = build_network(ArchConfig("unet", 3, 4, base=v["base"], depth=v["depth"])).eval()
    x = torch.from_numpy(np.random.default_rng(0).random((1, 3, args.size, args.size), np.float32))
    times: dict[str, list[float]] = {"teacher": [], "student": []}
    with torch.no_grad():
        teacher(x), student(x)  # warm-up
        for _ in range(args.repeats):
            for name, net in (("teacher", teacher), ("student", student)):
                t = time.perf_counter()
                net(x)
                times[name].append(1000 * (time.perf_counter() - t))
    res: dict = {"variant": args.variant, "threads": args.threads, "size": args.size, "repeats": args.repeats}
    for name, net in (("teacher", teacher), ("student", student)):
        res[f"{name}_ms"] = float(np.median(times[name]))
        res[f"{name}_params"] = int(sum(p.numel() for p in net.parameters()))
        res[f"{name}_gmacs"] = round(_macs(net, x) / 1e9, 3)
    res["speedup"] = res["teacher_ms"] / res["student_ms"]
    res["mac_ratio"] = res["teacher_gmacs"] / res["student_gmacs"]
    folder = accumulate.checkpoint_folder(args.variant)
    if (folder / "chunks.jsonl").exists():
        chunks = [json.loads(s) for s in (folder / "chunks.jsonl").read_text().splitlines() if s.strip()]
        res["chunks"] = len(chunks)
        res["steps_done"] = chunks[-1]["end_step"]
        res["val_dsb"] = chunks[-1]["val_dsb"]
        res["teacher_val_dsb"] = chunks[-1]["teacher_val_dsb"]
        res["train_steps_per_s"] = chunks[-1]["steps_per_s"]
    report("distill", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
