"""Segmenting cells, as in chapter 7 ("Deep Learning for Microscopy") of *Deep Learning for the Life Sciences*.

The chapter pairs BBBC005 images with their foreground masks (one in-focus mask serves every
blur level of a field), trains a small U-Net (three 5x5 stride-2 convolutions of 16/32/64
filters, transposed convolutions with skip connections, sigmoid cross-entropy) and reports
pixel accuracy. BBBC005's masks are not in ``../shared/data``, so this example trains on
synthetic BBBC005-style images with *exact* instance masks from deepscope's SIMCEP-style
generator, named like BBBC005 (``deepscope synth`` writes the same from the command line):

1. write a small synthetic set (images at two blur levels + one mask per field and stain),
2. pair every image with its field's in-focus mask with a ``PairRule`` template over the
   file-name metadata, and split by field of view,
3. train the book's U-Net (``SegmentModel.book()``; ``--model unet`` for deepscope's instance
   segmenter) with ``model.fit(train, nb_epoch=...)``,
4. evaluate on the test fields with pixel accuracy *and* object F1 (IoU-matched objects at
   IoU 0.5): pixel accuracy is high even for a model that merges every touching cell,
5. ``model.restore()`` from the run folder, and segment real BBBC005 images, comparing their
   object counts with the counts in their file names.

It runs in a couple of minutes on a CPU by default; the numbers of a properly trained model are
in BENCHMARKS.md (and the shipped ``cells-bbbc005`` model does this job: ``deepscope segment``).
Run::

    python examples/chapter7_segmentation.py
    python examples/chapter7_segmentation.py --epochs 30 --fields 12 --model unet
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_REAL = HERE.parent.parent / "shared" / "data" / "bbbc005" / "images"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=4, help="training epochs")
    p.add_argument("--fields", type=int, default=4, help="synthetic fields (sites) per cell count")
    p.add_argument("--counts", default="4,8,12,16,20", help="cell counts of the synthetic fields")
    p.add_argument("--size", default="256x320", help="synthetic image size ROWSxCOLS (BBBC005: 520x696)")
    p.add_argument("--crop", type=int, default=128, help="training crop size")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: 0.01 for the book's U-Net, "
                   "whose 1/255-scaled inputs learn slowly in a short run; 0.001 for unet)")
    p.add_argument("--model", choices=("book", "unet"), default="book",
                   help="book: the chapter's U-Net (foreground only); unet: deepscope's instance segmenter")
    p.add_argument("--out", type=Path, default=Path("runs/chapter7_segmentation"),
                   help="work folder: synthetic data in OUT/synth, the run (model_dir) in OUT/model")
    p.add_argument("--real", type=Path, default=DEFAULT_REAL, help="real BBBC005 images to count (skipped if absent)")
    p.add_argument("--limit", type=int, default=8, help="real in-focus nuclei images to segment (0 = none)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the chapter's segmentation flow; returns the scores (and prints them)."""
    args = parse_args(argv)
    from deepscope.data import GroupSplitter, ImageLoader, PairRule
    from deepscope.data.synth import MASK_TEMPLATE, write_dataset
    from deepscope.evaluate import count_instances, match_instances, pixel_accuracy
    from deepscope.models import SegmentModel

    # 1. Synthetic BBBC005-style images with exact masks (deterministic for the seed; a rerun reuses them).
    rows, cols = (int(v) for v in args.size.lower().split("x"))
    synth = args.out / "synth"
    counts = [int(c) for c in args.counts.split(",")]
    write_dataset(synth, counts=counts, blurs=(1, 23), sites=args.fields, stains=(1,), size=(rows, cols),
                  seed=args.seed)

    # 2. Pair every image with its field's in-focus mask (named like the F1 image, as in BBBC005's ground truth).
    loader = ImageLoader(pattern="bbbc005", labels="count", recursive=False,
                         masks=PairRule(synth / "masks", template=MASK_TEMPLATE))
    dataset = loader.load(synth)
    train, valid, test = GroupSplitter(by="field").train_valid_test_split(dataset, 0.6, 0.2, 0.2, seed=args.seed)
    print(f"{len(dataset)} synthetic images with masks; split by field: {len(train)} train / {len(valid)} valid / "
          f"{len(test)} test")

    # 3. Train with the book's API.
    model_dir = args.out / "model"

    def make() -> SegmentModel:
        return SegmentModel.book(model_dir=model_dir) if args.model == "book" else SegmentModel(model_dir=model_dir)

    model = make()
    lr = args.lr if args.lr is not None else (0.01 if args.model == "book" else 1e-3)
    t0 = time.perf_counter()
    model.fit(train, nb_epoch=args.epochs, valid_dataset=valid, crop=args.crop, batch_size=8, lr=lr, device=args.device,
              seed=args.seed, resume=False)
    seconds = time.perf_counter() - t0

    # 4. Pixel accuracy (the book's number) and object F1 at IoU 0.5 (what the field reports).
    preds = model.predict(test)
    truths = [test.get_label(i) for i in range(len(test))]
    acc = float(np.mean([pixel_accuracy(t, p) for t, p in zip(truths, preds)]))
    results = [match_instances(t, p, thresholds=0.5) for t, p in zip(truths, preds)]
    tp = sum(int(r.tp[0]) for r in results)
    n_true = sum(r.n_true for r in results)
    n_pred = sum(r.n_pred for r in results)
    f1 = 2 * tp / max(n_true + n_pred, 1)
    print(f"trained {args.epochs} epoch(s) in {seconds:.0f} s; test pixel accuracy {acc:.3f}, object F1@0.5 "
          f"{f1:.3f} ({n_pred} objects found, {n_true} true)")

    # 5. Restore the trained weights (the book's model.restore()): the network's maps are the same. The
    #    post-processing thresholds tuned on the validation images live in the run's model card, so the
    #    complete model is loaded with load_model(model_dir) (or `deepscope segment --model OUT/model`).
    restored = make()
    restored.restore()
    same = bool(np.allclose(restored.maps(test.get_image(0)), model.maps(test.get_image(0)), atol=1e-5))
    print(f"restored from {model_dir}: same network output: {same}")
    from deepscope.models import load_model

    trained = load_model(model_dir, device=args.device)
    real: dict[str, Any] = {}
    if args.limit and args.real.exists():
        real_ds = ImageLoader(pattern="bbbc005", labels="count", include="*_F1_*_w1.TIF",
                              recursive=False).load(args.real)
        idx = np.linspace(0, len(real_ds) - 1, min(args.limit, len(real_ds))).round().astype(int)
        real_ds = real_ds.select(np.unique(idx))
        found = [count_instances(trained.predict_image(real_ds.get_image(i))) for i in range(len(real_ds))]
        truth = [int(c) for c in real_ds.y]
        for name, n, c in zip(real_ds.ids, found, truth):
            print(f"  {name}: {n} objects, file name says {c}")
        real = {"n_real": len(found), "real_count_mae": float(np.mean(np.abs(np.subtract(found, truth))))}
        print(f"real BBBC005 (in focus, nuclei): object-count MAE {real['real_count_mae']:.1f} cells on "
              f"{len(found)} images")
    return {"n_train": len(train), "n_test": len(test), "pixel_accuracy": acc, "object_f1": f1,
            "seconds": seconds, "restored_matches": same, **real}


if __name__ == "__main__":
    main(sys.argv[1:])
