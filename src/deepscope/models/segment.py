"""Instance segmentation models: int32 label images (0 = background), tiled for large images.

The behaviour comes from the segment plugins (:mod:`deepscope.tasks.segment`): ``"instances"``
(foreground + distance maps, seeded watershed, optional classes per instance) and ``"foreground"``
(the book's U-Net: connected components of the foreground). Another representation (e.g. flows) is
another plugin.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepscope.io.image import Image, as_pixels
from deepscope.models.base import DeepscopeModel
from deepscope.models.config import ArchConfig
from deepscope.models.spec import InputSpec

__all__ = ["SegmentModel"]


class SegmentModel(DeepscopeModel):
    """Segment objects (nuclei, cells) into instances.

    With the default ``"instances"`` representation the network outputs a foreground probability, a
    normalised distance to the boundary (seeds for the watershed that separates touching objects)
    and, with ``n_classes > 1``, per-class probabilities (the class of an instance is the majority
    over its pixels). ``SegmentModel.book()`` is the chapter's small U-Net (foreground only;
    instances are its connected components).

    Its plugin provides ``maps``, ``postprocess_config`` and ``tune_postprocess``.
    """

    task = "segment"

    @classmethod
    def default_representation(cls, arch: ArchConfig | None) -> str:
        return "foreground" if arch is not None and arch.arch == "book-unet" else "instances"

    @classmethod
    def book(cls, **kwargs: Any) -> SegmentModel:
        """The book's U-Net (inputs scaled by 1/255, sigmoid cross-entropy on the foreground)."""
        return cls(ArchConfig("book-unet"), InputSpec(normalize="fixed", scale=255.0), **kwargs)

    @property
    def mode(self) -> str:
        """The representation (``"instances"``, ``"foreground"`` ...)."""
        return self.representation

    @property
    def n_classes(self) -> int:
        return int(self.options().n_classes)

    @property
    def postprocess(self) -> Any:
        """The post-processing settings (the plugin's typed config)."""
        return self.plugin.postprocess_config(self)

    def maps(self, image: np.ndarray | Image, **options: Any) -> np.ndarray:
        """Activated network output maps ``(C, H, W)`` of one image, array or Image (no tiling)."""
        return self.plugin.maps(self, as_pixels(image), **options)

    def tune_postprocess(self, images: list[np.ndarray], labels: list[np.ndarray], **options: Any) -> dict[str, Any]:
        """Choose post-processing thresholds that maximise the DSB score on held-out images (stored in the card)."""
        return self.plugin.tune_postprocess(self, [as_pixels(i) for i in images], [as_pixels(m) for m in labels],
                                            **options)
