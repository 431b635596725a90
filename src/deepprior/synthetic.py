"""Synthetic degradations for demos, benchmarks and tests (the method never adds noise)."""

from __future__ import annotations

import numpy as np


def add_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """clean + N(0, (σ/255)²), drawn channels-first with numpy's default_rng(seed), clipped."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sigma / 255, size=(clean.shape[2], *clean.shape[:2]))
    return np.clip(clean + noise.transpose(1, 2, 0), 0, 1).astype(np.float32)
