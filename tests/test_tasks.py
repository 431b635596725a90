from dataclasses import replace

import numpy as np
import pytest
import torch

import deepprior
from deepprior.canvas import padded_layout
from deepprior.engine import resolve_device
from deepprior.errors import UserError
from deepprior.io import Picture
from deepprior.job import Job
from deepprior.metrics import psnr
from deepprior.runner import run


def test_denoising_beats_the_noisy_input(fast, clean32, noisy32):
    preset = replace(fast, steps=300, lr=0.02, average_decay=0.95)
    restored, report = deepprior.denoise(
        noisy32, reference=clean32, preset=preset, seed=0, device="cpu"
    )
    assert report["metrics"]["psnr"] > psnr(noisy32, clean32) + 2.0
    assert report["metrics"]["psnr_input"] == pytest.approx(psnr(noisy32, clean32))
    assert restored.shape == noisy32.shape and restored.dtype == np.float32


def test_same_seed_is_bit_identical_and_other_seeds_differ(fast, noisy32):
    first = deepprior.denoise(noisy32, preset=fast, seed=3, device="cpu")[0]
    again = deepprior.denoise(noisy32, preset=fast, seed=3, device="cpu")[0]
    other = deepprior.denoise(noisy32, preset=fast, seed=4, device="cpu")[0]
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(("height", "width"), [(16, 16), (37, 23), (20, 70)])
def test_any_size_comes_back_whole(fast, height, width):
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    restored, report = deepprior.denoise(image, preset=replace(fast, steps=3), seed=0, device="cpu")
    assert restored.shape == (height, width, 3)
    padded_h, padded_w = report["padded_size"]
    assert padded_h % 8 == 0 and padded_w % 8 == 0
    assert padded_h >= height and padded_w >= width


def test_an_ensemble_reports_the_padded_size_of_the_image_as_given(fast):
    image = np.random.default_rng(0).random((20, 70, 3), dtype=np.float32)
    options = {"preset": replace(fast, steps=2), "seed": 0, "device": "cpu"}
    _, alone = deepprior.denoise(image, **options)
    _, report = deepprior.denoise(image, runs=3, ensemble=True, **options)
    assert report["runs"][-1]["orientation"] == "turned 90°"  # the last fit is 70×20
    assert report["padded_size"] == alone["padded_size"]  # not the turned fit's
    assert alone["padded_size"][0] < alone["padded_size"][1]


def test_padding_is_centred_and_leaves_room_for_batch_norm():
    assert padded_layout(100, 64, 32) == (128, 64, 14, 0)
    assert padded_layout(16, 16, 32) == (64, 64, 24, 24)
    assert padded_layout(100, 300, 64, smallest=192) == (192, 320, 46, 10)


def test_integer_inputs_keep_their_type_and_layout(photo, fast):
    gray16 = (photo(32, gray=True) * 65535).astype(np.uint16)
    restored, _ = deepprior.denoise(gray16, preset=fast, seed=0, device="cpu")
    assert restored.dtype == np.uint16 and restored.shape == gray16.shape
    tensor = torch.from_numpy((photo(32) * 255).astype(np.uint8))
    restored_t, _ = deepprior.denoise(tensor, preset=fast, seed=0, device="cpu")
    assert isinstance(restored_t, torch.Tensor) and restored_t.dtype == torch.uint8


def test_alpha_is_carried_through_untouched(fast, noisy32):
    alpha = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    job = Job(
        "denoise", {"image": Picture(noisy32, alpha=alpha)}, preset=fast, seed=0, device="cpu"
    )
    outcome = run(job)
    assert outcome.picture.alpha is alpha and outcome.picture.mode == "RGBA"
    assert outcome.report.net_parameters > 0


def test_report_has_the_documented_keys(fast, clean32, noisy32):
    _, report = deepprior.denoise(
        noisy32, reference=clean32, preset=fast, steps=fast.steps, seed=1, device="cpu"
    )
    for key in (
        "task",
        "settings",
        "seed",
        "device",
        "precision",
        "versions",
        "net_parameters",
        "steps_run",
        "stopping",
        "seconds_total",
        "seconds_per_step",
        "interrupted",
        "history",
        "metrics",
    ):
        assert key in report, key
    assert report["seed"] == 1 and report["steps_run"] == fast.steps
    assert report["settings"]["lr"] == fast.lr and not report["interrupted"]
    assert {"psnr", "ssim", "psnr_input"} <= set(report["metrics"])
    assert all({"step", "loss", "psnr"} <= set(row) for row in report["history"])
    assert {"deepprior", "commit", "torch", "cpu"} <= set(report["versions"])


def test_a_seed_is_drawn_and_recorded_when_none_is_given(fast, noisy32):
    _, report = deepprior.denoise(noisy32, preset=replace(fast, steps=2), device="cpu")
    assert isinstance(report["seed"], int)


def test_mismatched_reference_and_bad_steps_are_user_errors(fast, noisy32):
    with pytest.raises(UserError, match="reference"):
        deepprior.denoise(noisy32, reference=noisy32[:20], preset=fast, device="cpu")
    with pytest.raises(UserError, match="positive"):
        deepprior.denoise(noisy32, preset=fast, steps=0, device="cpu")
    with pytest.raises(UserError, match="preset"):
        deepprior.denoise(noisy32, preset="fastest", device="cpu")


def test_devices_are_checked():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA"):
            resolve_device("cuda")


def test_the_report_records_the_cpu_threads(fast, noisy32):
    import torch

    _, report = deepprior.denoise(noisy32, preset=fast, steps=2, seed=0, device="cpu")
    assert report["cpu_threads"] == torch.get_num_threads() >= 1
