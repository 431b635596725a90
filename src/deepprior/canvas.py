"""The image as the network sees it: a padded canvas, and conversion to and from tensors."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def padded_layout(
    height: int, width: int, multiple: int, smallest: int | None = None
) -> tuple[int, int, int, int]:
    """(padded height, padded width, top, left): the smallest multiple-sized canvas, centred.

    The canvas is at least ``smallest`` wide (default: two multiples, so that the coarsest
    level is 2×2 or more, as BatchNorm needs more than one value per channel).
    """
    smallest = 2 * multiple if smallest is None else smallest
    padded_h = max(math.ceil(height / multiple) * multiple, smallest)
    padded_w = max(math.ceil(width / multiple) * multiple, smallest)
    return padded_h, padded_w, (padded_h - height) // 2, (padded_w - width) // 2


def to_tensor(pixels: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """H×W×C float array -> (1, C, H, W) float32 tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None].to(device)


def to_numpy(image: Tensor) -> np.ndarray:
    """(1, C, H, W) tensor -> H×W×C float32 array in [0, 1]."""
    return image[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
