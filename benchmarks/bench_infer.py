"""Where the time of ``deepscope count`` goes on this CPU, and what generic inference tricks buy.

    .venv/bin/python benchmarks/bench_infer.py

On 64 real BBBC005 images (520 x 696), 2 torch threads, batch 8, milliseconds per image:
- the counting network of ``count-bbbc005(-fast)`` (density U-Net, base 16, depth 3, 4x-binned input):
  as run in deepscope (BatchNorm folded into the convolutions, channels-last), without the folding,
  TorchScript-frozen, and int8 post-training static quantisation (FX, x86 backend);
  once and with the four flip passes of ``count-bbbc005``;
- the segmenter of the hybrid rule (``cells-bbbc005``) on a nuclear-stain image, end to end;
- reading (tifffile) and input preparation.
The 20 images/s bar leaves 50 ms per image for all of it.
"""

from __future__ import annotations

import copy
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import SHARED, report  # noqa: E402


def _ms(fn, x, n: int = 5) -> float:  # type: ignore[no-untyped-def]
    import torch

    with torch.inference_mode():
        fn(x)
        t = time.perf_counter()
        for _ in range(n):
            fn(x)
    return (time.perf_counter() - t) / n / x.shape[0] * 1000


def main() -> int:
    import tifffile
    import torch

    from deepscope.models import load_model

    torch.set_num_threads(2)
    files = sorted((SHARED / "bbbc005" / "images").glob("*.TIF"))[:64]
    t = time.perf_counter()
    imgs = [tifffile.imread(f) for f in files]
    read_ms = (time.perf_counter() - t) / len(files) * 1000
    model = load_model("count-bbbc005-fast", device="cpu")
    t = time.perf_counter()
    prep = [model.prepare(im) for im in imgs]
    prep_ms = (time.perf_counter() - t) / len(files) * 1000
    x = torch.from_numpy(np.stack(prep[:8]).transpose(0, 3, 1, 2).copy())
    from deepscope.predict.backends import torch_backend

    shipped = torch_backend(model).net
    plain = copy.deepcopy(model.net).eval()
    res = {"read_ms": read_ms, "prepare_ms": prep_ms,
           "net_ms": {"as_shipped_folded_bn_channels_last": _ms(shipped, x.contiguous(memory_format=torch.channels_last)),
                      "plain": _ms(plain, x)}}
    with torch.inference_mode():
        frozen = torch.jit.freeze(torch.jit.trace(copy.deepcopy(plain), x[:1]))
    res["net_ms"]["torchscript_frozen"] = _ms(frozen, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        calib = torch.from_numpy(np.stack(prep[8:40]).transpose(0, 3, 1, 2).copy())
        q = prepare_fx(copy.deepcopy(plain), get_default_qconfig_mapping("x86"), (x[:1],))
        with torch.inference_mode():
            q(calib)
        q = convert_fx(q)
        res["net_ms"]["int8_static_fx"] = _ms(q, x)
        with torch.inference_mode():
            ref = torch.nn.functional.softplus(plain(x)[:, 0]).sum((1, 2))
            got = torch.nn.functional.softplus(q(x)[:, 0]).sum((1, 2))
        res["int8_count_change_mean_abs"] = float((ref - got).abs().mean())
        res["int8_quantized_modules"] = sorted({"quantized." + type(mod).__name__
                                                for mod in q.modules() if "quantized" in type(mod).__module__})
    model.plugin.count_prepared(model, prep[:8], tta="none")
    for tta in ("none", "flips"):
        t = time.perf_counter()
        model.plugin.count_prepared(model, prep, tta=tta)
        res[f"count_network_tta_{tta}_ms"] = (time.perf_counter() - t) / len(prep) * 1000
    seg = load_model("cells-bbbc005", device="cpu")
    w1 = [im for f, im in zip(files, imgs) if "_w1" in f.name][:16]
    seg.predict_image(w1[0])
    t = time.perf_counter()
    for im in w1:
        seg.predict_image(im)
    res["segmenter_ms_per_nuclear_image"] = (time.perf_counter() - t) / len(w1) * 1000
    res["budget_ms_at_20_images_per_s"] = 50.0
    report("infer", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
