"""Counting models: one float estimate per image with a 95% interval.

The behaviour comes from the count plugins (:mod:`deepscope.tasks.count`): ``"density"`` (a U-Net
whose density map sums to the count, the shipped counters) and ``"regress"`` (the book's CountNet).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepscope.io.image import Image, as_pixels
from deepscope.models.base import DeepscopeModel
from deepscope.models.config import ArchConfig
from deepscope.models.spec import InputSpec

__all__ = ["CountModel"]


class CountModel(DeepscopeModel):
    """Count objects (cells) in images: a float estimate with a 95% interval.

    The default network is deepscope's density U-Net: it works on 2x-binned input and outputs a
    density map whose sum is the count and a second map whose sum is the count's variance; the 95%
    interval is that standard deviation scaled by a factor calibrated on held-out fields (split
    conformal, stored in the card under ``output.interval``). ``CountModel.book()`` is the book
    chapter's CountNet (five 5x5 stride-2 convolutions and a dense output, L2 loss).

    Its results are :class:`deepscope.tasks.count.CountResult`. Its plugin provides ``count_images``,
    ``count_arrays``, ``interval`` and ``calibrate_interval``
    (and, for hybrid counting, ``calibrate_hybrid``).

    Examples
    --------
    >>> from deepscope.models import load_model
    >>> model = load_model("count-bbbc005")                         # doctest: +SKIP
    >>> model.predict_image(image).count                            # doctest: +SKIP
    """

    task = "count"

    @classmethod
    def default_representation(cls, arch: ArchConfig | None) -> str:
        return "regress" if arch is not None and arch.arch == "book-countnet" else "density"

    @classmethod
    def book(cls, *, input_size: tuple[int, int] = (520, 696), **kwargs: Any) -> CountModel:
        """The book's CountNet (inputs scaled by 1/255 as 8-bit BBBC005 images)."""
        return cls(ArchConfig("book-countnet", input_size=input_size), InputSpec(normalize="fixed", scale=255.0),
                   **kwargs)

    @property
    def head(self) -> str:
        """``"density"`` or ``"regress"`` (the representation)."""
        return self.representation

    def count_images(self, images: list[np.ndarray] | list[Image], **options: Any) -> list[Any]:
        """Count objects in each raw image, arrays or :class:`deepscope.io.Image` (options: ``batch_size``,
        ``channel``, ``paths``, ``tta``, ``hybrid``)."""
        images = list(images)
        if "paths" not in options and any(isinstance(i, Image) for i in images):
            options["paths"] = [str(i.meta.path) if isinstance(i, Image) else "" for i in images]
        return self.plugin.count_images(self, [as_pixels(i) for i in images], **options)

    def count_arrays(self, images: list[np.ndarray] | list[Image], **options: Any) -> tuple[np.ndarray, np.ndarray]:
        """Counts and standard deviations of raw images, from the network alone (no hybrid rule)."""
        return self.plugin.count_arrays(self, [as_pixels(i) for i in images], **options)

    def interval(self, count: float, std: float, *, shape: tuple[int, ...] | None = None) -> tuple[float, float]:
        """The calibrated 95% interval of a count (``shape``: the image's, for intervals that widen with its area)."""
        return self.plugin.interval(self, count, std, shape=shape)

    def calibrate_interval(self, true: np.ndarray, pred: np.ndarray, std: np.ndarray, *, level: float = 0.95,
                           name: str = "") -> float:
        """Split-conformal calibration of the interval on held-out data; returns the scale stored in the card."""
        return self.plugin.calibrate_interval(self, true, pred, std, level=level, name=name)

    def calibrate_hybrid(self, images: list[np.ndarray], true: np.ndarray, **options: Any) -> dict[str, Any]:
        """Set up and calibrate hybrid counting (density + segmented objects); see the density plugin."""
        return self.plugin.calibrate_hybrid(self, images, true, **options)

    def predict_image(self, image: np.ndarray | Image, **options: Any) -> Any:
        return self.count_images([image], **options)[0]

    def predict_on_batch(self, x: Any, **options: Any) -> np.ndarray:
        """Counts (float array) for a batch ``(N, H, W[, C])`` of raw images (the book's API)."""
        return np.array([r.count for r in self.count_images(list(x), **options)], dtype=float)

    def predict(self, dataset: Any, **options: Any) -> np.ndarray:
        """Counts (float array) for every image of a dataset."""
        return self.predict_on_batch([dataset.get_image(i) for i in range(len(dataset))], **options)
