"""Classical methods to compare with, behind plain functions on H×W×C float images."""

from __future__ import annotations

import numpy as np
from PIL import Image

RESAMPLING = {
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
}


def resize(pixels: np.ndarray, height: int, width: int, method: str = "bicubic") -> np.ndarray:
    """Pillow's resampling, per channel in 32-bit float (no rounding to 8 bits).

    Shape:
        (H, W) or (H, W, C) float -> (height, width) or (height, width, C) float32
    """
    planes = pixels[:, :, None] if pixels.ndim == 2 else pixels
    out = [
        np.asarray(
            Image.fromarray(
                np.ascontiguousarray(planes[:, :, c], dtype=np.float32), mode="F"
            ).resize((width, height), RESAMPLING[method])
        )
        for c in range(planes.shape[2])
    ]
    stacked = np.stack(out, axis=2)
    return stacked[:, :, 0] if pixels.ndim == 2 else stacked


def degrade_for_sr(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The paper's low-resolution input: HR cropped to a multiple of ``scale``, then Pillow's
    Lanczos downscale. Returns (cropped HR, LR)."""
    h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
    cropped = hr[:h, :w]
    return cropped, np.clip(resize(cropped, h // scale, w // scale, "lanczos"), 0, 1)


def upscale(lr: np.ndarray, scale: int, method: str = "bicubic") -> np.ndarray:
    """Classical upscaling by ``scale`` (the baseline the paper compares with)."""
    return np.clip(resize(lr, lr.shape[0] * scale, lr.shape[1] * scale, method), 0, 1)


def inpaint_biharmonic(pixels: np.ndarray, known: np.ndarray) -> np.ndarray:
    """scikit-image's biharmonic inpainting. Shape: (H, W, C), (H, W) -> (H, W, C)."""
    from skimage.restoration import inpaint_biharmonic as biharmonic

    return np.clip(biharmonic(pixels, ~known, channel_axis=-1), 0, 1).astype(np.float32)


def inpaint_opencv(pixels: np.ndarray, known: np.ndarray, method: str = "telea") -> np.ndarray:
    """OpenCV's Telea or Navier–Stokes inpainting (8-bit, radius 3). Shape as above."""
    import cv2

    flags = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}[method]
    image = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
    holes = (~known).astype(np.uint8) * 255
    result = cv2.inpaint(image if image.shape[2] == 3 else image[:, :, 0], holes, 3, flags)
    return (result.reshape(pixels.shape) / 255).astype(np.float32)


def denoise_nlm(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """scikit-image's non-local means (5×5 patches, 13×13 search, h = 0.8σ; σ in [0, 1] units).

    Shape: (H, W, C) -> (H, W, C)
    """
    from skimage.restoration import denoise_nl_means

    result = denoise_nl_means(
        noisy,
        h=0.8 * sigma,
        sigma=sigma,
        fast_mode=True,
        patch_size=5,
        patch_distance=6,
        channel_axis=-1,
    )
    # A one-channel image comes back H×W: give it back its channel axis.
    return np.clip(result, 0, 1).reshape(noisy.shape).astype(np.float32)


def bm3d_installed() -> bool:
    """Whether the optional ``bm3d`` package (free for non-commercial use) can be imported."""
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def denoise_bm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D from the ``bm3d`` package (CBM3D for colour; σ in [0, 1] units).

    Shape: (H, W, C) -> (H, W, C)
    """
    import bm3d

    if noisy.shape[2] == 3:
        result = bm3d.bm3d_rgb(noisy, sigma)
    else:
        result = bm3d.bm3d(noisy[:, :, 0], sigma)[:, :, None]
    return np.clip(np.asarray(result), 0, 1).astype(np.float32)
