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
    """A count estimate with its 95% interval (``low`` is never below 0).

    ``method`` says how it was made: ``"density"`` (sum of the density map) or ``"density+objects"``
    (hybrid models: the mean of the density count and the number of segmented objects, used for
    images of small, well-separated objects).
    """

    count: float
    low: float
    high: float
    std: float
    method: str = "density"


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
                     paths: list[str] | None = None, tta: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Counts and standard deviations for raw images (any sizes).

        ``tta`` (``"none"``, ``"flips"``, ``"d8"``; default: the card's ``output.tta``) averages the density
        maps over flips/rotations of the image.
        """
        prepared = [self.prepare(im, path=(paths[i] if paths else ""), channel=channel) for i, im in enumerate(images)]
        return self._count_prepared(prepared, batch_size=batch_size, paths=paths, tta=tta)

    def _count_prepared(self, prepared: list[np.ndarray], *, batch_size: int = 8, paths: list[str] | None = None,
                        tta: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        tta = tta or self.card["output"].get("tta", "none")
        import torch

        from deepscope.predict.engine import run_network

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

    def count_images(self, images: list[np.ndarray], *, hybrid: bool | None = None, batch_size: int = 8,
                     channel: int | None = None, paths: list[str] | None = None, tta: str | None = None
                     ) -> list[CountResult]:
        """Count objects in each raw image; returns :class:`CountResult` (count, low, high, std, method).

        Parameters
        ----------
        images : list of numpy.ndarray
        hybrid : bool, optional
            For models whose card defines a hybrid rule (``output.hybrid``): also segment each image
            and, where the objects are small (median area below the card's threshold), average the
            density count with the number of objects. Default: as the card says.
        batch_size, channel, paths, tta
            As for :meth:`count_arrays`.
        """
        images = list(images)
        prepared = [self.prepare(im, path=(paths[i] if paths else ""), channel=channel) for i, im in enumerate(images)]
        counts, std = self._count_prepared(prepared, batch_size=batch_size, paths=paths, tta=tta)
        hy = self.card["output"].get("hybrid")
        use = bool(hy) and (hy.get("enabled", True) if hybrid is None else hybrid)
        gate = float(hy.get("gate_area_per_object") or 0.0) if use else 0.0
        out = []
        for k, (c, s) in enumerate(zip(counts, std)):
            method = "density"
            # clearly large objects (area per counted cell above the gate): the rule would not use the
            # segmenter's count, so do not run it
            if use and not (gate and area_per_object(prepared[k], c) > gate):
                n_obj, area = self._objects(images[k], channel=channel)
                if n_obj > 0 and area < hy["max_object_area"]:
                    c = 0.5 * (c + n_obj)
                    method = "density+objects"
            if method == "density":
                lo, hi = self.interval(float(c), float(s))
            else:
                q = float(hy["interval_scale"])
                lo, hi = max(0.0, float(c) - q), float(c) + q
            out.append(CountResult(float(c), lo, hi, float(s), method))
        return out

    # ------------------------------------------------------------------ hybrid counting
    def _segmenter(self) -> Any:
        if getattr(self, "_seg", None) is None:
            import warnings

            from deepscope.models.registry import load_model

            hy = self.card["output"]["hybrid"]
            seg = load_model(hy["segmenter"], device=self.device_name, task="segment")
            want = hy.get("segmenter_sha256")
            have = seg.card.get("weights", {}).get("sha256")
            if want and have and want != have:
                warnings.warn(f"count model {self.name!r} was calibrated with segmenter {hy['segmenter']!r} "
                              f"weights {want[:12]}... but {have[:12]}... are installed; its intervals may be off",
                              stacklevel=3)
            self._seg = seg
        return self._seg

    def _objects(self, image: np.ndarray, *, channel: int | None = None) -> tuple[int, float]:
        """Number of segmented objects and their median area (pixels)."""
        labels = self._segmenter().predict_image(image, channel=channel)
        sizes = np.bincount(labels.ravel())[1:]
        sizes = sizes[sizes > 0]
        return int(len(sizes)), float(np.median(sizes)) if len(sizes) else 0.0

    def calibrate_hybrid(self, images: list[np.ndarray], true: np.ndarray, *, segmenter: str,
                         max_object_area: float, level: float = 0.95, name: str = "",
                         gate: bool = True) -> dict[str, Any]:
        """Set up hybrid counting and calibrate both interval branches by split conformal on held-out images.

        With ``gate``, images whose foreground area per counted object (:func:`area_per_object`) is
        above ``gate_area_per_object`` skip the segmenter. The gate is set to 1.25 x ``max_object_area``,
        raised where needed so that every held-out image the rule counted with objects stays above it
        by 10%: on the held-out images it never changes a result, it only saves time.
        """
        from deepscope.models.registry import model_card

        true = np.asarray(true, float)
        self.card["output"]["hybrid"] = {"segmenter": segmenter, "max_object_area": float(max_object_area),
                                         "combine": "mean", "interval_scale": 0.0, "enabled": True,
                                         "segmenter_sha256": model_card(segmenter).get("weights", {}).get("sha256")}
        self._seg = None
        res = self.count_images(images)
        small = np.array([r.method != "density" for r in res])
        est = np.array([r.count for r in res])
        std = np.array([r.std for r in res])
        n = int(small.sum())
        q = 0.0
        if n:
            err = np.abs(true[small] - est[small])
            q = float(np.quantile(err, min(1.0, math.ceil((n + 1) * level) / n), method="higher"))
        self.card["output"]["hybrid"]["interval_scale"] = q
        if (~small).any():
            self.calibrate_interval(true[~small], est[~small], std[~small], level=level, name=name)
        self.card["output"]["hybrid"]["calibrated_on"] = f"{name} ({n} small-object images)"
        if gate:
            prepared = [self.prepare(im) for im in images]
            dens, _ = self._count_prepared(prepared)
            apo = np.array([area_per_object(p, c) for p, c in zip(prepared, dens)])
            g = 1.25 * float(max_object_area)
            if n:
                g = max(g, 1.1 * float(apo[small].max()))
            self.card["output"]["hybrid"]["gate_area_per_object"] = round(g, 1)
            self.card["output"]["hybrid"]["gate_skips_on_calibration"] = int((apo > g).sum())
        return self.card["output"]["hybrid"]

    def predict_on_batch(self, x: Any, **kwargs: Any) -> np.ndarray:
        """Counts (float array) for a batch ``(N, H, W[, C])`` of raw images (the book's API)."""
        return np.array([r.count for r in self.count_images(list(x), **kwargs)], dtype=float)

    def predict(self, dataset: Any, **kwargs: Any) -> np.ndarray:
        """Counts (float array) for every image of a dataset."""
        return self.predict_on_batch([dataset.get_image(i) for i in range(len(dataset))], **kwargs)



def area_per_object(prepared: np.ndarray, count: float) -> float:
    """Foreground pixels (above Otsu's threshold) per counted object: a cheap object-size estimate.

    Hybrid counters use it to skip the (slow) segmenter on images whose objects are clearly larger
    than their ``max_object_area`` rule allows. A flat image has no foreground and gives 0.
    """
    from skimage.filters import threshold_otsu

    g = prepared[..., 0] if prepared.ndim == 3 else prepared
    if not g.size or float(g.max()) <= float(g.min()):
        return 0.0
    fg = int((g > threshold_otsu(g)).sum())
    return fg / max(float(count), 0.5)
