"""The classical denoisers that benchmarks and `deepprior reproduce` compare against."""

from __future__ import annotations

import pytest

from deepprior.baselines import denoise_bm3d, denoise_nlm
from deepprior.metrics import psnr
from deepprior.synthetic import add_noise


@pytest.mark.parametrize("denoiser", [denoise_nlm, denoise_bm3d])
@pytest.mark.parametrize("gray", [False, True])
def test_a_denoiser_keeps_the_images_shape_and_removes_noise(photo, denoiser, gray):
    clean = photo(48, gray=gray)
    clean = clean[:, :, None] if clean.ndim == 2 else clean
    noisy = add_noise(clean, 25, seed=0)
    denoised = denoiser(noisy, 25 / 255)
    assert denoised.shape == noisy.shape
    assert psnr(denoised, clean) > psnr(noisy, clean) + 3
