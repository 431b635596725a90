"""The paper's ``skip`` encoder–decoder (and the hourglass, the same without skip connections)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .layers import Downsample, Padding, Upsample, conv, conv_block

PerLevel = int | tuple[int, ...]
CHECKPOINT_LEVELS = 2


def _per_level(value: Any, levels: int) -> tuple[Any, ...]:
    """Spread a scalar over all levels, or check that a sequence has one value per level."""
    if isinstance(value, (list, tuple)):
        if len(value) != levels:
            raise ValueError(f"expected {levels} per-level values, got {len(value)}: {value}")
        return tuple(value)
    return (value,) * levels


@dataclass(frozen=True)
class SkipConfig:
    """Every choice of the ``skip`` architecture; the defaults are the authors' denoising net.

    Source: DmitryUlyanov/deep-image-prior, ``models/skip.py`` and ``denoising.ipynb``.
    """

    down: tuple[int, ...] = (128, 128, 128, 128, 128)
    up: tuple[int, ...] = (128, 128, 128, 128, 128)
    skip: tuple[int, ...] = (4, 4, 4, 4, 4)
    filter_down: PerLevel = 3
    filter_up: PerLevel = 3
    filter_skip: int = 1
    downsample: Downsample | tuple[Downsample, ...] = "stride"
    upsample: Upsample | tuple[Upsample, ...] = "bilinear"
    padding: Padding = "reflection"
    conv1x1_up: bool = True
    batch_norm: bool = True
    sigmoid: bool = True

    def __post_init__(self) -> None:
        if not (len(self.down) == len(self.up) == len(self.skip)) or not self.down:
            raise ValueError("down, up and skip need the same, non-zero number of levels")

    @property
    def levels(self) -> int:
        return len(self.down)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Level(nn.Module):
    """One scale: skip branch ∥ (down, deeper levels, up), then merge convolutions."""

    def __init__(self, cfg: SkipConfig, index: int, in_channels: int, inner: _Level | None):
        super().__init__()
        n = cfg.levels
        skip_ch, down_ch, up_ch = cfg.skip[index], cfg.down[index], cfg.up[index]
        f_down = _per_level(cfg.filter_down, n)[index]
        f_up = _per_level(cfg.filter_up, n)[index]
        mode_down = _per_level(cfg.downsample, n)[index]
        mode_up = _per_level(cfg.upsample, n)[index]
        opts: dict[str, Any] = {"padding": cfg.padding, "batch_norm": cfg.batch_norm}

        self.skip = conv_block(in_channels, skip_ch, cfg.filter_skip, **opts) if skip_ch else None
        self.down = nn.Sequential(
            conv_block(in_channels, down_ch, f_down, stride=2, downsample=mode_down, **opts),
            conv_block(down_ch, down_ch, f_down, **opts),
        )
        self.inner = inner if inner is not None else nn.Identity()
        self.upsample = nn.Upsample(
            scale_factor=2,
            mode=mode_up,
            **({"align_corners": False} if mode_up == "bilinear" else {}),
        )
        deep_ch = cfg.up[index + 1] if inner is not None else down_ch
        merged = skip_ch + deep_ch
        merge: list[nn.Module] = [nn.BatchNorm2d(merged)] if cfg.batch_norm else []
        merge.append(conv_block(merged, up_ch, f_up, **opts))
        if cfg.conv1x1_up:
            merge.append(conv_block(up_ch, up_ch, 1, **opts))
        self.merge = nn.Sequential(*merge)

        self.checkpointing = False

    def _run(self, block: nn.Sequential, x: Tensor) -> Tensor:
        if not (self.checkpointing and torch.is_grad_enabled()):
            return block(x)
        for unit in block:  # one convolution block at a time: only its input is kept
            x = checkpoint(unit, x, use_reentrant=False)
        return x

    def forward(self, x: Tensor) -> Tensor:
        deep = self.upsample(self.inner(self._run(self.down, x)))
        if self.skip is not None:
            deep = torch.cat([self._run(self.skip, x), deep], dim=1)
        return self._run(self.merge, deep)


class SkipNet(nn.Module):
    """Encoder–decoder with skip connections (paper Fig. 21 of the supplement).

    Shape:
        input (N, in_channels, H, W) with H and W multiples of ``size_multiple`` and at least
        ``min_side``; output (N, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, config: SkipConfig | None = None):
        super().__init__()
        cfg = config or SkipConfig()
        self.config = cfg
        self.size_multiple = 2**cfg.levels
        # The coarsest map must be wider than the widest padding (reflection needs it) and at
        # least 2×2 (BatchNorm needs more than one value per channel).
        filters = [
            *_per_level(cfg.filter_down, cfg.levels),
            *_per_level(cfg.filter_up, cfg.levels),
            cfg.filter_skip,
        ]
        self.min_side = self.size_multiple * max(2, max(filters) // 2 + 1)
        inner: _Level | None = None
        for index in reversed(range(cfg.levels)):
            level_in = in_channels if index == 0 else cfg.down[index - 1]
            inner = _Level(cfg, index, level_in, inner)
        assert inner is not None
        self.body = inner
        head: list[nn.Module] = [conv(cfg.up[0], out_channels, 1, padding=cfg.padding)]
        if cfg.sigmoid:
            head.append(nn.Sigmoid())
        self.head = nn.Sequential(*head)

    def _levels(self) -> list[_Level]:
        levels, level = [], self.body
        while isinstance(level, _Level):
            levels.append(level)
            level = level.inner  # type: ignore[assignment]
        return levels

    def set_checkpointing(self, enabled: bool, levels: int = CHECKPOINT_LEVELS) -> None:
        """Recompute the blocks of the ``levels`` finest scales in the backward pass.

        Only each block's input is kept; this trades about a third more compute for a
        several-fold smaller activation memory at full resolution (large images).
        """
        for index, level in enumerate(self._levels()):
            level.checkpointing = enabled and index < levels

    def checkpoint_blocks(self, levels: int = CHECKPOINT_LEVELS) -> list[nn.Module]:
        """The blocks that :meth:`set_checkpointing` recomputes."""
        blocks: list[nn.Module] = []
        for level in self._levels()[:levels]:
            for block in (level.skip, level.down, level.merge):
                blocks += list(block) if block is not None else []
        return blocks

    def forward(self, z: Tensor) -> Tensor:
        return self.head(self.body(z))
