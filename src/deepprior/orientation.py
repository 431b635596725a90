"""The eight orientations of an image (mirrorings and quarter turns), for the self-ensemble.

A self-ensemble fits the network to the image turned or mirrored and turns its output back
before anything else sees it: the data term, the stopping rule and the output average all
work on the image as given, so every task and operator take part unchanged. Orientation ``k``
(0–7) mirrors left–right when ``k >= 4`` and then turns by a quarter-turn count taken from
``TURNS``; the order puts the orientations that move the most pixels first, so that the first
two or four runs of an ensemble differ the most (a half turn shifts the phase of every
stride-2 downsampling along both axes).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

ORIENTATIONS = 8
TURNS = (0, 2, 1, 3)
NAMES = (
    "as given",
    "turned 180°",
    "turned 90°",
    "turned 270°",
    "mirrored",
    "mirrored, turned 180°",
    "mirrored, turned 90°",
    "mirrored, turned 270°",
)


def _parts(k: int) -> tuple[int, bool]:
    if not 0 <= k < ORIENTATIONS:
        raise ValueError(f"an orientation is 0 to {ORIENTATIONS - 1}, got {k}")
    return TURNS[k % 4], k >= 4


def orient(x: Tensor, k: int) -> Tensor:
    """``x`` (..., H, W) in orientation ``k``."""
    turns, mirror = _parts(k)
    if mirror:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, turns, dims=(-2, -1)) if turns else x


def unorient(x: Tensor, k: int) -> Tensor:
    """The inverse of :func:`orient`: an image in orientation ``k`` turned back."""
    turns, mirror = _parts(k)
    if turns:
        x = torch.rot90(x, -turns, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if mirror else x


def oriented_size(height: int, width: int, k: int) -> tuple[int, int]:
    """(height, width) of an image of that size in orientation ``k``."""
    turns, _ = _parts(k)
    return (width, height) if turns % 2 else (height, width)


def unorient_array(pixels: np.ndarray, k: int) -> np.ndarray:
    """:func:`unorient` for an H×W×C array."""
    turns, mirror = _parts(k)
    if turns:
        pixels = np.rot90(pixels, -turns, axes=(0, 1))
    return np.ascontiguousarray(np.flip(pixels, axis=1) if mirror else pixels)
