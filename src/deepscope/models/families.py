"""deepscope's built-in network families, registered by name without importing torch (each builder imports
:mod:`deepscope.models.networks`, and torch with it, when a network is built): a model card names its
architecture, and reading one (``deepscope models``, a pipeline's model hashes) must stay light."""

from __future__ import annotations

from typing import Any

from deepscope.models.architectures import register_architecture
from deepscope.models.config import ArchConfig

__all__: list[str] = []


@register_architecture("unet", stride=lambda cfg: cfg.pool_input * 2 ** cfg.depth)
def _unet(cfg: ArchConfig) -> Any:
    """deepscope's U-Net (3x3 conv + BatchNorm + ReLU blocks, max-pool down, bilinear up, skips)."""
    from deepscope.models.networks import UNet

    return UNet(cfg.in_channels, cfg.out_channels, cfg.base, cfg.depth, cfg.pool_input)


@register_architecture("book-unet", stride=lambda cfg: 8)
def _book_unet(cfg: ArchConfig) -> Any:
    """The book chapter's small U-Net (foreground logit)."""
    from deepscope.models.networks import BookUNet

    return BookUNet(cfg.in_channels, cfg.out_channels)


@register_architecture("book-countnet", stride=lambda cfg: 1, defaults={"input_size": (520, 696)})
def _book_countnet(cfg: ArchConfig) -> Any:
    """The book chapter's CountNet (five stride-2 convolutions and a dense count)."""
    from deepscope.models.networks import BookCountNet

    return BookCountNet(cfg.in_channels, cfg.input_size or (520, 696))
