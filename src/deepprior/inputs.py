"""The code z fed to the generator: uniform noise, a meshgrid, an image, or a given tensor.

:data:`CODES` names every kind; :func:`build_code` makes one for a canvas of a given size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def noise_code(
    channels: int,
    height: int,
    width: int,
    *,
    scale: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Uniform noise U(0, scale), the paper's default code (scale 0.1, 32 channels).

    Shape:
        (1, channels, height, width)
    """
    return torch.rand(1, channels, height, width, generator=generator) * scale


def meshgrid_code(height: int, width: int) -> Tensor:
    """Two channels holding the x and y coordinates in [0, 1] (the authors' large-hole input).

    Shape:
        (1, 2, height, width)
    """
    ys = torch.linspace(0, 1, height)
    xs = torch.linspace(0, 1, width)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y])[None]


def image_code(image: Tensor, height: int | None = None, width: int | None = None) -> Tensor:
    """Use an image (e.g. the flash photograph) as the code, centred on a height×width canvas
    whose border repeats the image's edge pixels.

    Shape:
        image (C, h, w) or (1, C, h, w) -> (1, C, height, width)
    """
    image = image[None] if image.dim() == 3 else image
    height, width = height or image.shape[-2], width or image.shape[-1]
    top, left = (height - image.shape[-2]) // 2, (width - image.shape[-1]) // 2
    if top < 0 or left < 0:
        size = tuple(image.shape[-2:])
        raise ValueError(f"a {size} image does not fit a {height}×{width} canvas")
    pad = (left, width - image.shape[-1] - left, top, height - image.shape[-2] - top)
    return F.pad(image, pad, mode="replicate") if any(pad) else image


def tensor_code(tensor: Tensor, height: int, width: int) -> Tensor:
    """A code given in full, already of the canvas's size.

    Shape:
        (1, C, height, width)
    """
    if tensor.dim() != 4 or tuple(tensor.shape[-2:]) != (height, width):
        raise ValueError(f"the code must be (1, C, {height}, {width}), got {tuple(tensor.shape)}")
    return tensor


CodeBuilder = Callable[..., Tensor]
CODES: dict[str, CodeBuilder] = {
    "noise": lambda h, w, channels, scale, generator, source: noise_code(
        channels, h, w, scale=scale, generator=generator
    ),
    "meshgrid": lambda h, w, channels, scale, generator, source: meshgrid_code(h, w),
    "image": lambda h, w, channels, scale, generator, source: image_code(source, h, w),
    "tensor": lambda h, w, channels, scale, generator, source: tensor_code(source, h, w),
}


def code_channels(kind: str, channels: int, source: Tensor | None = None) -> int:
    """The number of channels a code of ``kind`` has (what the net's input must take)."""
    if kind == "meshgrid":
        return 2
    if kind in ("image", "tensor"):
        if source is None:
            raise ValueError(f"a code of kind {kind!r} needs its image or tensor")
        return int(source.shape[-3])
    return channels


def build_code(
    kind: str,
    height: int,
    width: int,
    *,
    channels: int = 32,
    scale: float = 0.1,
    generator: torch.Generator | None = None,
    source: Tensor | None = None,
) -> Tensor:
    """A code of ``kind`` (one of :data:`CODES`) for a height×width canvas.

    ``channels``, ``scale`` and ``generator`` are the noise code's; ``source`` is the image
    (any size up to the canvas) or the full tensor of the ``image`` and ``tensor`` kinds.

    Shape:
        (1, C, height, width)
    """
    if kind not in CODES:
        raise ValueError(f"unknown code {kind!r}; choose one of {', '.join(CODES)}")
    if kind in ("image", "tensor") and source is None:
        raise ValueError(f"a code of kind {kind!r} needs its image or tensor")
    return CODES[kind](height, width, channels, scale, generator, source)
