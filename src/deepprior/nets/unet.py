"""A U-Net as compared in the paper's Fig. 8 (after the authors' ``models/unet.py``)."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from .layers import Padding, Upsample, conv, conv_block


def _double_conv(in_ch: int, out_ch: int, padding: Padding) -> nn.Sequential:
    return nn.Sequential(
        conv_block(in_ch, out_ch, 3, padding=padding),
        conv_block(out_ch, out_ch, 3, padding=padding),
    )


class _Up(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, mode: Upsample, padding: Padding):
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode=mode),
            conv(in_ch, out_ch, 3, padding=padding),
        )
        self.fuse = _double_conv(2 * out_ch, out_ch, padding)

    def forward(self, deep: Tensor, skip: Tensor) -> Tensor:
        return self.fuse(torch.cat([skip, self.up(deep)], dim=1))


class UNet(nn.Module):
    """Max-pool encoder, upsample + concatenate decoder, two 3×3 convolutions per level.

    Shape:
        input (N, in_channels, H, W), H and W multiples of ``2**len(channels)-1``; output alike.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: tuple[int, ...] = (16, 32, 64, 128, 256),
        upsample: Upsample = "nearest",
        padding: Padding = "reflection",
    ):
        super().__init__()
        self.size_multiple = 2 ** (len(channels) - 1)
        self.start = _double_conv(in_channels, channels[0], padding)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _double_conv(a, b, padding))
            for a, b in itertools.pairwise(channels)
        )
        self.ups = nn.ModuleList(
            _Up(b, a, upsample, padding) for a, b in itertools.pairwise(channels)
        )
        self.head = nn.Sequential(conv(channels[0], out_channels, 1), nn.Sigmoid())

    def forward(self, z: Tensor) -> Tensor:
        features = [self.start(z)]
        for down in self.downs:
            features.append(down(features[-1]))
        x = features.pop()
        for up in reversed(self.ups):
            x = up(x, features.pop())
        return self.head(x)
