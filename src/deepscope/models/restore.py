"""Image-to-image models: deblurring, in-silico labelling (stain prediction) and 2x super-resolution.

The behaviour comes from the restore plugin (:mod:`deepscope.tasks.restore`).
"""

from __future__ import annotations

from deepscope.models.base import DeepscopeModel
from deepscope.models.config import ArchConfig

__all__ = ["RestoreModel"]


class RestoreModel(DeepscopeModel):
    """Predict an image from an image: in-focus from blurred, a second stain from the first, 2x resolution.

    Inputs and targets are normalised by the input's percentiles, so the prediction is mapped back
    to the input's intensity scale and written in its dtype. Images unlike the training inputs
    (``input.stats`` of the card) get a warning.
    """

    task = "restore"

    @classmethod
    def default_representation(cls, arch: ArchConfig | None) -> str:
        return "image"

    @property
    def upscale(self) -> int:
        return int(self.options().upscale)
