"""Image quality figures, with an explicit data range of 1 (images as floats in [0, 1])."""

from __future__ import annotations

import numpy as np


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of H×W×C float images in [0, 1]."""
    from skimage.metrics import peak_signal_noise_ratio

    with np.errstate(divide="ignore"):  # identical images: +inf, reported as null with a reason
        return float(
            peak_signal_noise_ratio(
                reference.astype(np.float64),
                np.clip(image, 0, 1).astype(np.float64),
                data_range=1.0,
            )
        )


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """SSIM (scikit-image defaults, Gaussian-free 7×7 window) of H×W×C float images in [0, 1]."""
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            reference.astype(np.float64),
            np.clip(image, 0, 1).astype(np.float64),
            data_range=1.0,
            channel_axis=-1,
        )
    )


def luma(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma in [16/255, 235/255] (MATLAB's rgb2ycbcr), as SR papers measure.

    Shape:
        (H, W, 3) -> (H, W); a single-channel image is returned as it is.
    """
    if image.shape[2] == 1:
        return image[:, :, 0].astype(np.float64)
    weights = np.array([65.481, 128.553, 24.966]) / 255
    return 16 / 255 + image.astype(np.float64) @ weights


def psnr_y(image: np.ndarray, reference: np.ndarray, shave: int) -> float:
    """The SR protocol: PSNR of the luma, ``shave`` border pixels removed on every side."""
    from skimage.metrics import peak_signal_noise_ratio

    crop = (slice(shave, -shave or None), slice(shave, -shave or None))
    a, b = luma(np.clip(image, 0, 1))[crop], luma(reference)[crop]
    return float(peak_signal_noise_ratio(b, a, data_range=1.0))
