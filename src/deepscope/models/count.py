"""Cell counting models: a density U-Net whose output sums to the count (with a 95% interval), and the book's CountNet."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepscope.errors import InputError
from deepscope.models.base import DeepscopeModel
from deepscope.models.config import ArchConfig
from deepscope.models.spec import InputSpec

__all__ = ["CountModel", "CountResult"]


@dataclass(frozen=True)
class CountResult:
    """A count estimate with its 95% interval (``low`` is never below 0)."""

    count: float
    low: float
    high: float
    std: float


class CountModel(DeepscopeModel):
    """Count objects in an image.

    The default network is a U-Net that works on 2x-binned images and outputs a density map
    (softplus) whose sum is the count, and a second map whose sum is the count's variance; the
    95% interval is that standard deviation scaled by a factor calibrated on held-out fields
    (split conformal, stored in the card under ``output.interval``). ``CountModel.book()`` is the
    book chapter's CountNet (five 5x5 stride-2 convolutions and a dense output, L2 loss).

    Examples
    --------
    >>> from deepscope.models import load_model
    >>> model = load_model("count-bbbc005")                         # doctest: +SKIP
    >>> model.predict_image(image).count                            # doctest: +SKIP
    """

    task = "count"

    def __init__(self, arch: ArchConfig | None = None, spec: InputSpec | None = None, **kwargs: Any) -> None:
        arch = arch or ArchConfig("unet", in_channels=1, out_channels=2, base=8, depth=4, pool_input=2)
        super().__init__(arch, spec, **kwargs)
        out = self.card["output"]
        out.setdefault("head", "regress" if arch.arch == "book-countnet" else "density")
        # counting networks train on whole, unpadded images (the U-Net accepts any size), so they
        # also predict unpadded: reflect-padding adds content whose density would be counted
        out.setdefault("pad_input", False)
        out.setdefault("interval", {"method": "scaled-std" if out["head"] == "density" else "absolute",
                                    "scale": 1.96, "level": 0.95, "calibrated_on": None})

    @classmethod
    def book(cls, *, input_size: tuple[int, int] = (520, 696), **kwargs: Any) -> CountModel:
        """The book's CountNet (inputs scaled by 1/255 as 8-bit BBBC005 images)."""
        return cls(ArchConfig("book-countnet", input_size=input_size),
                   InputSpec(normalize="fixed", scale=255.0), **kwargs)

    @property
    def head(self) -> str:
        return str(self.card["output"]["head"])

    def _init_head(self) -> None:
        if self.head == "density":
            import torch

            with torch.no_grad():
                head = self._net.head
                head.bias.fill_(-7.0)  # start near an empty density map (softplus(-7) ~ 1e-3)

    # ------------------------------------------------------------------ inputs
    def prepare(self, image: np.ndarray, *, path: str = "", channel: int | None = None) -> np.ndarray:
        x = super().prepare(image, path=path, channel=channel)
        if self.arch.arch == "book-countnet" and x.shape[:2] != self.arch.input_size:
            from skimage.transform import resize

            x = resize(x, self.arch.input_size + (x.shape[-1],), order=1, anti_aliasing=True,
                       preserve_range=True).astype(np.float32)
        return x

    # ------------------------------------------------------------------ training
    def default_monitor(self) -> tuple[str, str]:
        return "val_mae", "min"

    def make_task(self, dataset: Any, valid_dataset: Any, *, device: Any, batch_size: int, **opts: Any) -> Any:
        from deepscope.train.tasks import CountTask

        if dataset.label_kind != "value":
            raise InputError("counting needs a dataset with one count per image (labels='count' or a CSV)")
        imgs = [self.prepare(dataset.get_image(i), path=str(dataset.ids[i])) for i in range(len(dataset))]
        vimgs, vy = [], []
        if valid_dataset is not None and len(valid_dataset):
            vimgs = [self.prepare(valid_dataset.get_image(i)) for i in range(len(valid_dataset))]
            vy = valid_dataset.y.astype(np.float32)
        return CountTask(imgs, dataset.y.astype(np.float32), valid_images=vimgs, valid_counts=vy, head=self.head,
                         batch_size=batch_size, device=device, **opts)

    def after_fit(self, task: Any, valid_dataset: Any) -> None:
        if valid_dataset is None or not len(valid_dataset):
            return
        counts, std = self.count_arrays([valid_dataset.get_image(i) for i in range(len(valid_dataset))])
        self.calibrate_interval(valid_dataset.y.astype(float), counts, std, name="validation split")

    def calibrate_interval(self, true: np.ndarray, pred: np.ndarray, std: np.ndarray, *, level: float = 0.95,
                           name: str = "") -> float:
        """Split-conformal calibration of the interval on held-out data; returns the scale stored in the card."""
        err = np.abs(np.asarray(true, float) - np.asarray(pred, float))
        n = len(err)
        if n == 0:
            raise InputError("interval calibration needs at least one held-out image")
        if self.head == "density":
            scores = err / np.maximum(std, 1e-3)
        else:
            scores = err
        q = float(np.quantile(scores, min(1.0, math.ceil((n + 1) * level) / n), method="higher"))
        self.card["output"]["interval"] = {"method": "scaled-std" if self.head == "density" else "absolute",
                                           "scale": q, "level": level, "calibrated_on": name, "n": n}
        return q

    # ------------------------------------------------------------------ prediction
    def count_arrays(self, images: list[np.ndarray], *, batch_size: int = 8, channel: int | None = None,
                     paths: list[str] | None = None, tta: str = "none") -> tuple[np.ndarray, np.ndarray]:
        """Counts and standard deviations for raw images (any sizes); ``tta`` averages over flips/rotations."""
        import torch

        from deepscope.predict.engine import run_network

        prepared = [self.prepare(im, path=(paths[i] if paths else ""), channel=channel) for i, im in enumerate(images)]
        net = self._eval_net()
        if self.head == "regress":
            with torch.inference_mode():
                outs = []
                for s in range(0, len(prepared), batch_size):
                    x = torch.from_numpy(np.stack(prepared[s:s + batch_size]).transpose(0, 3, 1, 2).copy())
                    outs.append(net(x.to(self.device)).float().reshape(-1).cpu().numpy())
            counts = np.concatenate(outs) if outs else np.zeros(0)
            return np.maximum(counts, 0.0), np.zeros_like(counts)
        import torch

        stride = self.arch.stride if self.card["output"].get("pad_input") else self.arch.pool_input
        small = [i for i, p in enumerate(prepared) if min(p.shape[:2]) < self.arch.pool_input]
        if small:
            i = small[0]
            raise InputError(f"{paths[i] if paths else 'image'}: {prepared[i].shape[:2]} is smaller than the "
                             f"model's {self.arch.pool_input}x{self.arch.pool_input} binning; nothing to count")
        # densities are averaged after the softplus (averaging logits would bias sums downwards)
        maps = run_network(net, prepared, stride=stride, device=self.device, batch_size=batch_size, tta=tta,
                           activation=torch.nn.Softplus())
        counts = np.array([m[0].sum() for m in maps], dtype=float)
        var = np.array([m[1].sum() + 1e-2 for m in maps], dtype=float)
        return counts, np.sqrt(var)

    def interval(self, count: float, std: float) -> tuple[float, float]:
        iv = self.card["output"]["interval"]
        half = iv["scale"] * (std if iv["method"] == "scaled-std" else 1.0)
        return max(0.0, count - half), count + half

    def predict_image(self, image: np.ndarray, **kwargs: Any) -> CountResult:
        return self.count_images([image], **kwargs)[0]

    def count_images(self, images: list[np.ndarray], **kwargs: Any) -> list[CountResult]:
        """Count objects in each raw image; returns :class:`CountResult` (count, low, high, std)."""
        counts, std = self.count_arrays(list(images), **kwargs)
        out = []
        for c, s in zip(counts, std):
            lo, hi = self.interval(float(c), float(s))
            out.append(CountResult(float(c), lo, hi, float(s)))
        return out

    def predict_on_batch(self, x: Any, **kwargs: Any) -> np.ndarray:
        """Counts (float array) for a batch ``(N, H, W[, C])`` of raw images (the book's API)."""
        counts, _ = self.count_arrays(list(x), **kwargs)
        return counts

    def predict(self, dataset: Any, **kwargs: Any) -> np.ndarray:
        """Counts (float array) for every image of a dataset."""
        counts, _ = self.count_arrays([dataset.get_image(i) for i in range(len(dataset))], **kwargs)
        return counts

