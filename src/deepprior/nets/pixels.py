"""No network at all: the image's pixels are the parameters, for priors that act on pixels
(the TV norm of Mahendran & Vedaldi, which the paper compares with)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PixelImage(nn.Module):
    """An image of ``size`` whose pixels (through a sigmoid, so they stay in [0, 1]) are fitted
    directly; the code it is given only sets the output's type and device."""

    size_multiple = 1
    min_side = 1

    def __init__(self, in_channels: int, out_channels: int, size: tuple[int, int]):
        super().__init__()
        self.logits = nn.Parameter(torch.empty(1, out_channels, *size).uniform_(-0.1, 0.1))

    def forward(self, code: Tensor) -> Tensor:
        return torch.sigmoid(self.logits).to(code.dtype)


def total_variation(image: Tensor, beta: float = 1.0, eps: float = 1e-6) -> Tensor:
    """The TV^β norm of (N, C, H, W) images, per pixel: mean of (|∂x|² + |∂y|² + ε)^(β/2)."""
    dx = image[:, :, :-1, 1:] - image[:, :, :-1, :-1]
    dy = image[:, :, 1:, :-1] - image[:, :, :-1, :-1]
    return (dx.square() + dy.square() + eps).pow(beta / 2).mean()
