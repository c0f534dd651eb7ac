"""Counting cells, as in chapter 7 ("Deep Learning for Microscopy") of *Deep Learning for the Life Sciences*.

The chapter trains a small CNN (five 5x5 stride-2 convolutions, a dense output, L2 loss,
learning rate 0.001 decayed by 0.9 every 250 steps) to count the cells of BBBC005 images, whose
file names carry the count (``..._C<count>_...``). Here is the same flow with deepscope:

1. load the images with the BBBC005 file-name pattern (the count becomes the label),
2. split by *field of view* (every blur level and stain of one field shows the same cells, so a
   random split by image would leak test fields into training),
3. build the book's CountNet (``CountModel.book()``; ``--model density`` for deepscope's
   counter with 95% intervals) and train it with the book's API, ``model.fit(train, nb_epoch=...)``,
4. predict the test set and report RMSE (and MAE),
5. ``model.restore()`` the trained weights from the run folder into a fresh model.

By default it runs in a couple of minutes on a CPU (a few epochs on a sample of images), so the
numbers are far from the book's 50 GPU epochs: see BENCHMARKS.md for fully trained models, or
use the shipped counter (``deepscope count IMAGES``). Run::

    python examples/chapter7_counting.py                            # ../shared/data/bbbc005/images
    python examples/chapter7_counting.py --epochs 50 --limit 0      # the whole chapter (GPU advised)
    python examples/chapter7_counting.py --data src/deepscope/samples --limit 0 --epochs 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "bbbc005" / "images"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of BBBC005 images (file names carry "
                   "the count)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs (the book: 50)")
    p.add_argument("--limit", type=int, default=64, help="use this many images, sampled at random (0 = all)")
    p.add_argument("--model", choices=("book", "density"), default="book",
                   help="book: the chapter's CountNet; density: deepscope's counter with 95%% intervals")
    p.add_argument("--out", type=Path, default=Path("runs/chapter7_counting"), help="run folder (model_dir)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    p.add_argument("--seed", type=int, default=123, help="seeds the sample, the split and the training")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the chapter's counting flow; returns the test scores (and prints them)."""
    args = parse_args(argv)
    from deepscope.data import GroupSplitter, ImageLoader
    from deepscope.models import CountModel

    # 1. Load: the pattern parses well, count, blur, site and stain from each name, and derives the
    #    field (count + site); labels="count" makes the count each image's label.
    loader = ImageLoader(pattern="bbbc005", labels="count", recursive=False)
    dataset = loader.load(args.data)
    if args.limit and args.limit < len(dataset):
        rng = np.random.default_rng(args.seed)
        dataset = dataset.select(np.sort(rng.choice(len(dataset), args.limit, replace=False)))
    print(f"loaded {len(dataset)} images from {args.data}; counts {int(dataset.y.min())}..{int(dataset.y.max())}")

    # 2. Split by field of view: no field is in two parts (the book split by image, which leaks).
    splitter = GroupSplitter(by="field")
    train, valid, test = splitter.train_valid_test_split(dataset, 0.8, 0.1, 0.1, seed=args.seed)
    print(f"split by field: {len(train)} train / {len(valid)} valid / {len(test)} test images")

    # 3. The model, trained with the book's schedule: lr 0.001 x 0.9 every 250 steps.
    def make() -> CountModel:
        return CountModel.book(model_dir=args.out) if args.model == "book" else CountModel(model_dir=args.out)

    model = make()
    t0 = time.perf_counter()
    model.fit(train, nb_epoch=args.epochs, valid_dataset=valid if len(valid) else None,
              monitor="val_mae" if len(valid) else "train_loss", schedule="exponential", lr=1e-3, decay_rate=0.9,
              decay_steps=250, batch_size=args.batch_size, device=args.device, seed=args.seed, resume=False)
    seconds = time.perf_counter() - t0

    # 4. Predict the held-out fields; the book reports RMSE.
    y_pred = model.predict(test)
    y_true = np.asarray(test.y, dtype=float)
    rmse = float(np.sqrt(np.mean((y_pred - y_true) ** 2)))
    mae = float(np.mean(np.abs(y_pred - y_true)))
    print(f"trained {args.epochs} epoch(s) in {seconds:.0f} s; test RMSE {rmse:.2f} cells, MAE {mae:.2f} cells "
          f"on {len(test)} images")
    if model.head == "density":
        from deepscope.evaluate import count_summary

        res = model.count_images([test.get_image(i) for i in range(len(test))])
        cov = count_summary(y_true, [r.count for r in res], low=[r.low for r in res], high=[r.high for r in res])
        print(f"95% interval coverage on the test images: {cov.coverage:.2f}")

    # 5. Restore the trained weights from the run folder into a new model (the book's model.restore()).
    restored = make()
    restored.restore()
    same = bool(np.allclose(restored.predict(test), y_pred, atol=1e-4))
    print(f"restored from {args.out}: same predictions: {same}")
    return {"n_train": len(train), "n_valid": len(valid), "n_test": len(test), "rmse": rmse, "mae": mae,
            "seconds": seconds, "restored_matches": same, "run_dir": str(args.out)}


if __name__ == "__main__":
    main(sys.argv[1:])
