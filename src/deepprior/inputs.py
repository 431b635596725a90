"""The code z fed to the generator: uniform noise, a meshgrid, or a given image."""

from __future__ import annotations

import torch
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


def image_code(image: Tensor) -> Tensor:
    """Use an image (e.g. the flash photograph) as the code.

    Shape:
        image (C, H, W) or (1, C, H, W) -> (1, C, H, W)
    """
    return image[None] if image.dim() == 3 else image
