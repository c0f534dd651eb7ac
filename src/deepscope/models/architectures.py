"""Architecture registry: network families registered by name with a decorator (as torchvision's and
timm's ``register_model``).

A new architecture is one decorated builder function; nothing else in deepscope changes::

    @register_architecture("my-net", stride=lambda cfg: 2 ** cfg.depth)
    def build_my_net(cfg: ArchConfig) -> torch.nn.Module:
        return MyNet(cfg.in_channels, cfg.out_channels, cfg.base)

``ArchConfig(arch="my-net", ...)`` then validates, ``build_network`` builds it and the predictor pads
inputs to its ``stride``. The built-in families are registered in :mod:`deepscope.models.families`
(builders in :mod:`deepscope.models.networks`). Registering and looking up import no torch; building a network does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from deepscope.errors import ConfigError

if TYPE_CHECKING:
    from deepscope.models.config import ArchConfig

__all__ = ["Architecture", "register_architecture", "get_architecture", "list_architectures", "build_network",
           "count_parameters"]


@dataclass(frozen=True)
class Architecture:
    """A registered network family.

    Attributes
    ----------
    name : str
        The ``ArchConfig.arch`` value.
    build : callable
        ``build(cfg) -> torch.nn.Module`` with freshly initialised weights.
    stride : callable
        ``stride(cfg) -> int``: spatial size multiple the network needs (inputs are padded to it).
    defaults : mapping
        ``ArchConfig`` fields filled in when left at ``None`` (e.g. the fixed input size of a dense head).
    description : str
    """

    name: str
    build: Callable[[ArchConfig], Any]
    stride: Callable[[ArchConfig], int]
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""


_REGISTRY: dict[str, Architecture] = {}


def register_architecture(name: str, *, stride: Callable[[ArchConfig], int],
                          defaults: Mapping[str, Any] | None = None, description: str = ""
                          ) -> Callable[[Callable[[ArchConfig], Any]], Callable[[ArchConfig], Any]]:
    """Register a network builder under ``name`` (a decorator).

    Raises
    ------
    deepscope.errors.ConfigError
        If another builder already has this name.
    """

    def decorate(build: Callable[[ArchConfig], Any]) -> Callable[[ArchConfig], Any]:
        if name in _REGISTRY and _REGISTRY[name].build is not build:
            raise ConfigError(f"architecture {name!r} is already registered (by {_REGISTRY[name].build.__module__})")
        doc = description or ((build.__doc__ or "").strip().splitlines() or [""])[0]
        _REGISTRY[name] = Architecture(name, build, stride, MappingProxyType(dict(defaults or {})), doc)
        return build

    return decorate


def _builtin() -> None:
    from deepscope.models import families

    assert families.__name__  # importing it registers the built-in families (torch is imported when one is built)


def list_architectures() -> list[str]:
    """Names of the registered architectures."""
    _builtin()
    return sorted(_REGISTRY)


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name``.

    Raises
    ------
    deepscope.errors.ConfigError
        An unknown name (the message lists the registered ones).
    """
    _builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"arch={name!r} is not one of {tuple(sorted(_REGISTRY))}") from None


def build_network(cfg: ArchConfig) -> Any:
    """Build the network an :class:`ArchConfig` describes (weights freshly initialised).

    Examples
    --------
    >>> import torch
    >>> from deepscope.models import ArchConfig
    >>> net = build_network(ArchConfig("unet", in_channels=1, out_channels=2, base=8, depth=2))
    >>> net(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 2, 32, 32])

    Raises
    ------
    deepscope.errors.ModelError
        The network would have more parameters than the ``max_parameters`` limit
        (:mod:`deepscope.io.limits`); counted before any weight memory is allocated.
    """
    arch = get_architecture(cfg.arch)
    count_parameters(cfg)  # refuses an oversized network before it takes any memory
    return arch.build(cfg)


def count_parameters(cfg: ArchConfig) -> int:
    """Parameters of the network ``cfg`` describes, counted on PyTorch's meta device (no memory allocated).

    Raises
    ------
    deepscope.errors.ModelError
        More than the ``max_parameters`` limit (:mod:`deepscope.io.limits`), e.g. from a crafted model card.

    Examples
    --------
    >>> from deepscope.models import ArchConfig
    >>> count_parameters(ArchConfig("unet", in_channels=1, out_channels=2, base=8, depth=2))
    29786
    """
    import torch

    from deepscope.errors import ModelError
    from deepscope.io.limits import limits

    with torch.device("meta"):
        n = int(sum(p.numel() for p in get_architecture(cfg.arch).build(cfg).parameters()))
    lim = limits()
    if lim.exceeded("max_parameters", n):
        raise ModelError(f"architecture {cfg.to_dict()} has {n:,} parameters, over the limit of "
                         f"{lim.max_parameters:,} ({4 * n / 2**30:,.1f} GiB of float32 weights); it was not built. "
                         f"If the model is genuine, {lim.how_to_raise('max_parameters')}")
    return n
