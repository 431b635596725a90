"""A full-resolution ResNet as compared in the paper's Fig. 8 (after ``models/resnet.py``)."""

from __future__ import annotations

from torch import Tensor, nn

from .layers import Padding, conv, conv_block


class _Residual(nn.Module):
    def __init__(self, channels: int, padding: Padding):
        super().__init__()
        self.body = nn.Sequential(
            conv_block(channels, channels, 3, padding=padding),
            conv(channels, channels, 3, padding=padding),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNet(nn.Module):
    """Residual blocks at full resolution, no down-sampling.

    Shape:
        input (N, in_channels, H, W), any H and W; output (N, out_channels, H, W).
    """

    size_multiple = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        blocks: int = 8,
        channels: int = 64,
        padding: Padding = "reflection",
    ):
        super().__init__()
        self.net = nn.Sequential(
            conv(in_channels, channels, 3, padding=padding),
            nn.LeakyReLU(0.2, inplace=True),
            *(_Residual(channels, padding) for _ in range(blocks)),
            conv(channels, channels, 3, padding=padding),
            nn.BatchNorm2d(channels),
            conv(channels, out_channels, 3, padding=padding),
            nn.Sigmoid(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)
