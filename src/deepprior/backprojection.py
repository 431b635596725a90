"""Iterative back-projection (Irani and Peleg, 1991): a super-resolved image made to reproduce
its low-resolution input under the downsampler of the data term.

A fit stopped early (by its held-back pixels) leaves a residual between the downsampled fit
and the input. Each iteration upsamples that residual with bicubic interpolation and adds it,
so the result keeps the fit's detail and loses the part of its error the input can see.
"""

from __future__ import annotations

import numpy as np
import torch

from .baselines import resize
from .operators import Operator

ITERATIONS = 10  # the residual stops changing after about 5 (README, session 26)


def _planes(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]


def _pixels(planes: torch.Tensor) -> np.ndarray:
    return planes[0].permute(1, 2, 0).numpy()


def residual_rms(image: np.ndarray, low: np.ndarray, operator: Operator) -> float:
    """The root-mean-square difference between the downsampled ``image`` and ``low``."""
    with torch.no_grad():
        return float((operator(_planes(image)) - _planes(low)).square().mean().sqrt())


def back_project(
    image: np.ndarray, low: np.ndarray, operator: Operator, iterations: int = ITERATIONS
) -> np.ndarray:
    """``image`` (H×W×C in [0, 1]) corrected ``iterations`` times by the bicubic upsampled
    residual ``low − operator(image)``; clipped to [0, 1] at the end (float32).

    Shape:
        image (H, W, C), low (h, w, C) with ``operator`` mapping H×W to h×w.
    """
    if iterations < 0:
        raise ValueError(f"iterations must not be negative, got {iterations}")
    estimate, target = _planes(image), _planes(low)
    height, width = image.shape[:2]
    with torch.no_grad():
        for _ in range(iterations):
            residual = _pixels(target - operator(estimate))
            estimate = estimate + _planes(resize(residual, height, width, "bicubic"))
    return np.clip(_pixels(estimate), 0, 1).astype(np.float32)
