"""Generator networks behind one registry: ``build_net(name, in_channels, out_channels)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .pixels import PixelImage
from .resnet import ResNet
from .skip import SkipConfig, SkipNet
from .unet import UNet

NetFactory = Callable[..., nn.Module]


def _skip(in_channels: int, out_channels: int, **options: Any) -> nn.Module:
    return SkipNet(in_channels, out_channels, SkipConfig(**options))


def _hourglass(in_channels: int, out_channels: int, **options: Any) -> nn.Module:
    levels = len(options.get("down", SkipConfig().down))
    options = {"skip": (0,) * levels, **options}
    return SkipNet(in_channels, out_channels, SkipConfig(**options))


NETS: dict[str, NetFactory] = {
    "skip": _skip,
    "hourglass": _hourglass,
    "unet": UNet,
    "resnet": ResNet,
    "pixels": PixelImage,
}
# Networks built for one image size: their factory takes ``size=(height, width)``.
SIZED_NETS = frozenset({"pixels"})


def build_net(name: str, in_channels: int, out_channels: int, **options: Any) -> nn.Module:
    """Build a registered network; every network has a ``size_multiple`` attribute."""
    if name not in NETS:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETS)}")
    return NETS[name](in_channels, out_channels, **options)


def size_multiple(net: nn.Module) -> int:
    """The number H and W of the network's input must be multiples of."""
    return int(getattr(net, "size_multiple", 1))


def min_side(net: nn.Module) -> int:
    """The smallest height and width the network's input may have (a multiple of the above)."""
    return int(getattr(net, "min_side", 2 * size_multiple(net)))


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


__all__ = [
    "NETS",
    "SIZED_NETS",
    "ResNet",
    "SkipConfig",
    "SkipNet",
    "UNet",
    "build_net",
    "count_parameters",
    "min_side",
    "size_multiple",
]
