"""Image quality figures, with an explicit data range of 1 (images as floats in [0, 1])."""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of H×W×C float images in [0, 1]."""
    return float(
        peak_signal_noise_ratio(
            reference.astype(np.float64), np.clip(image, 0, 1).astype(np.float64), data_range=1.0
        )
    )


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """SSIM (scikit-image defaults, Gaussian-free 7×7 window) of H×W×C float images in [0, 1]."""
    return float(
        structural_similarity(
            reference.astype(np.float64),
            np.clip(image, 0, 1).astype(np.float64),
            data_range=1.0,
            channel_axis=-1,
        )
    )
