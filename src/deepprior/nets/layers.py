"""Building blocks shared by the architectures: padded convolutions and norm + activation."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Padding = Literal["reflection", "zero"]
Downsample = Literal["stride", "avg", "max"]
Upsample = Literal["nearest", "bilinear"]


class ReflectionPad(nn.ReflectionPad2d):
    """Reflection padding in the input's own precision.

    Autocast on CPU runs ``reflection_pad2d`` in fp32, so every padded convolution of a
    bfloat16 net would copy its input up to fp32 and back down again. Padding only moves
    values, so keeping the input's precision changes nothing but the time.
    """

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x)


def conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: Padding = "reflection",
    downsample: Downsample = "stride",
    bias: bool = True,
) -> nn.Module:
    """A convolution that keeps the size (stride 1) or halves it (stride 2).

    Downsampling by ``"avg"`` or ``"max"`` runs the convolution at stride 1 and pools after it,
    as the authors' code does; ``"stride"`` uses a strided convolution.
    """
    pad = (kernel_size - 1) // 2
    layers: list[nn.Module] = []
    if padding == "reflection" and pad > 0:
        layers.append(ReflectionPad(pad))
        pad = 0
    conv_stride = stride if downsample == "stride" else 1
    layers.append(nn.Conv2d(in_channels, out_channels, kernel_size, conv_stride, pad, bias=bias))
    if stride > 1 and downsample == "avg":
        layers.append(nn.AvgPool2d(stride))
    elif stride > 1 and downsample == "max":
        layers.append(nn.MaxPool2d(stride))
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


def norm_act(channels: int, *, batch_norm: bool = True, negative_slope: float = 0.2) -> nn.Module:
    """BatchNorm (optional) followed by LeakyReLU, the pair that follows every convolution."""
    act = nn.LeakyReLU(negative_slope, inplace=True)
    return nn.Sequential(nn.BatchNorm2d(channels), act) if batch_norm else act


def conv_block(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: Padding = "reflection",
    downsample: Downsample = "stride",
    batch_norm: bool = True,
) -> nn.Sequential:
    """Convolution, then BatchNorm and LeakyReLU."""
    return nn.Sequential(
        conv(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            downsample=downsample,
        ),
        norm_act(out_channels, batch_norm=batch_norm),
    )
