"""Shared fixtures: small real photographs and their noisy versions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data, transform

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def photo(size: int, gray: bool = False) -> np.ndarray:
    """A real photograph (scikit-image's astronaut), resized to size×size, float32 in [0, 1]."""
    image = transform.resize(data.astronaut()[:320, 96:416], (size, size), anti_aliasing=True)
    if gray:
        image = image @ np.array([0.299, 0.587, 0.114])
    return image.astype(np.float32)


@pytest.fixture
def clean32() -> np.ndarray:
    return photo(32)


@pytest.fixture
def noisy32(clean32: np.ndarray) -> np.ndarray:
    from deepprior.demo import add_noise

    return add_noise(clean32, 25, seed=0)
