"""BM3D's two steps that end denoising (the hard-thresholding step and the empirical Wiener
filter guided by the fit), alone and in a run."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from skimage.filters import gaussian

import deepprior
from deepprior import wiener
from deepprior.metrics import psnr
from deepprior.synthetic import add_noise
from deepprior.wiener import (
    OPPONENT,
    dct_basis,
    dct_matrix,
    empirical_wiener,
    haar_matrix,
    hard_threshold,
    refine_fit,
    refine_fits,
    wavelet_basis,
    wavelet_matrix,
)

SIGMA = 25 / 255


def test_the_transforms_and_the_colour_map_are_orthonormal():
    block = dct_basis(8).numpy()
    np.testing.assert_allclose(block @ block.T, np.eye(64), atol=1e-5)
    group = dct_matrix(32).numpy()
    np.testing.assert_allclose(group @ group.T, np.eye(32), atol=1e-5)
    np.testing.assert_allclose(OPPONENT @ OPPONENT.T, np.eye(3), atol=1e-6)
    for size in (1, 2, 16, 32):
        haar = haar_matrix(size).numpy()
        np.testing.assert_allclose(haar @ haar.T, np.eye(size), atol=1e-6)
        np.testing.assert_allclose(haar[0], np.full(size, size**-0.5), atol=1e-6)  # the mean
    with pytest.raises(ValueError, match="power of two"):
        haar_matrix(24)


def test_the_first_steps_wavelet_keeps_sigma_and_inverts():
    wavelet = wavelet_matrix(8).numpy()
    np.testing.assert_allclose(np.linalg.norm(wavelet, axis=1), np.ones(8), atol=1e-6)
    np.testing.assert_allclose(wavelet[0], np.full(8, 8**-0.5), atol=1e-6)  # the mean
    for pair in range(4):  # the finest level: differences of neighbours, as Haar's
        expected = np.zeros(8)
        expected[2 * pair : 2 * pair + 2] = [2**-0.5, -(2**-0.5)]
        np.testing.assert_allclose(wavelet[4 + pair], expected, atol=1e-6)
    assert np.abs(wavelet[1:4] @ wavelet[1:4].T - np.eye(3)).max() > 0.01  # biorthogonal
    block = wavelet_basis(8)
    np.testing.assert_allclose(torch.linalg.inv(block) @ block, torch.eye(64), atol=1e-4)
    with pytest.raises(ValueError, match="power of two"):
        wavelet_matrix(12)


def test_a_block_is_grouped_with_its_copies():
    rng = np.random.default_rng(0)
    tile = rng.random((8, 8)).astype(np.float32)
    image = torch.from_numpy(np.tile(tile, (5, 5)))  # 40×40: the tile every 8 pixels
    groups = wiener._Groups(image, 8, wiener.GROUP, wiener.THRESHOLD)
    starts, sizes = groups.match(torch.tensor([0]))  # the references of the first row
    first = starts[0]  # the candidates of the reference at (0, 0)
    found = [(int(s) // groups.cols, int(s) % groups.cols) for s in first]
    # Its 9 exact copies within 16 pixels come first, itself included, then other blocks.
    assert set(found[:9]) == {(r, c) for r in (0, 8, 16) for c in (0, 8, 16)}
    assert len(set(found)) == groups.size == wiener.GROUP
    # Only the copies are close enough to join its group: 8 of them, a power of two.
    assert int(sizes[0]) == 8
    flat = wiener._Groups(torch.full((40, 40), 0.5), 8, wiener.GROUP, wiener.THRESHOLD)
    assert set(flat.match(torch.tensor([0]))[1].tolist()) == {wiener.GROUP}  # flat: full groups


@pytest.mark.parametrize("shape", [(8, 40, 3), (12, 12, 1)])
def test_images_with_few_blocks_are_filtered(shape):
    rng = np.random.default_rng(0)
    clean = np.full(shape, 0.5, np.float32)
    noisy = np.clip(clean + rng.normal(0, SIGMA, shape), 0, 1).astype(np.float32)
    filtered = empirical_wiener(noisy, clean, SIGMA)
    assert filtered.shape == shape
    assert psnr(filtered, clean) > psnr(noisy, clean) + 5


@pytest.mark.parametrize("gray", [False, True])
def test_a_blurred_pilot_is_sharpened_and_a_perfect_one_removes_most_noise(photo, gray):
    clean = photo(64, gray=gray)
    clean = clean[:, :, None] if clean.ndim == 2 else clean
    noisy = add_noise(clean, 25, seed=0)
    blurred = gaussian(noisy, sigma=1.5, channel_axis=-1).astype(np.float32)
    filtered = empirical_wiener(noisy, blurred, SIGMA)
    assert filtered.shape == noisy.shape and filtered.dtype == np.float32
    assert psnr(filtered, clean) > psnr(blurred, clean) + 0.5
    oracle = empirical_wiener(noisy, clean, SIGMA)
    assert psnr(oracle, clean) > psnr(noisy, clean) + 8


@pytest.mark.parametrize("gray", [False, True])
def test_the_first_step_denoises_alone_and_lifts_a_blurred_fit(photo, gray):
    clean = photo(64, gray=gray)
    clean = clean[:, :, None] if clean.ndim == 2 else clean
    noisy = add_noise(clean, 25, seed=0)
    first = hard_threshold(noisy, SIGMA)
    assert first.shape == noisy.shape and first.dtype == np.float32
    assert psnr(first, clean) > psnr(noisy, clean) + 5
    blurred = gaussian(noisy, sigma=1.5, channel_axis=-1).astype(np.float32)
    guided_by_fit = empirical_wiener(noisy, blurred, SIGMA)
    assert psnr(refine_fit(noisy, blurred, SIGMA), clean) > psnr(guided_by_fit, clean) + 0.2


def test_bands_of_rows_give_the_same_image_as_one_pass(photo, monkeypatch):
    clean = photo(48)
    noisy = add_noise(clean, 25, seed=1)
    whole, first = empirical_wiener(noisy, clean, SIGMA), hard_threshold(noisy, SIGMA)
    monkeypatch.setattr(wiener, "BAND_BLOCKS", 1)  # one row of references at a time
    np.testing.assert_allclose(empirical_wiener(noisy, clean, SIGMA), whole, atol=1e-5)
    np.testing.assert_allclose(hard_threshold(noisy, SIGMA), first, atol=1e-5)


def test_bad_arguments_are_refused(photo):
    image = photo(32)
    with pytest.raises(ValueError, match="must have one shape"):
        empirical_wiener(image, image[:16], SIGMA)
    with pytest.raises(ValueError, match="must be H×W×C"):
        hard_threshold(image[:, :, 0], SIGMA)
    with pytest.raises(ValueError, match="smaller than"):
        empirical_wiener(image[:6, :6], image[:6, :6], SIGMA)
    with pytest.raises(ValueError, match="sigma must be positive"):
        hard_threshold(image, 0.0)


def test_a_denoising_run_ends_with_the_filter_unless_told_not_to(photo, fast):
    clean = photo(32)
    noisy = add_noise(clean, 25, seed=0)
    options = {"preset": fast, "seed": 0, "device": "cpu", "reference": clean}
    filtered, report = deepprior.denoise(noisy, **options)
    refine = report["refine"]
    assert refine["wiener"] is True and refine["sigma_source"] == "estimated"
    assert refine["block"] == wiener.PATCH and refine["group"] == wiener.GROUP
    assert "first (hard-thresholding) step" in refine["pilot"]
    assert refine["group_first_step"] == wiener.GROUP_HARD
    assert refine["threshold_first_step"] == wiener.HARD_LAMBDA
    assert refine["mu2"] == wiener.WIENER_MU2 and refine["fit_share"] == wiener.FIT_SHARE
    assert abs(refine["sigma_255"] - 25) < 5
    assert report["metrics"]["psnr"] > refine["psnr_before"] + 0.3
    plain, report = deepprior.denoise(noisy, wiener=False, **options)
    assert report["refine"] == {"wiener": False}
    assert report["metrics"]["psnr"] == pytest.approx(refine["psnr_before"], abs=1e-6)
    assert psnr(filtered, clean) > psnr(plain, clean)
    _, report = deepprior.denoise(noisy, quality="paper", steps=3, device="cpu", seed=0)
    assert report["refine"] == {"wiener": False} and report["quality"]["refine"] is False
    with pytest.raises(deepprior.UserError, match="wiener is true, false or None"):
        deepprior.denoise(noisy, wiener="yes", steps=3, device="cpu")


def test_a_given_sigma_sets_the_filter_and_the_cli_turns_it_off(tmp_path, photo, run_cli, fast):
    from deepprior.io import from_array, write_image

    noisy = add_noise(photo(32), 25, seed=0)
    _, report = deepprior.denoise(noisy, preset=fast, sigma=25, device="cpu")
    assert report["refine"]["sigma_source"].startswith("given 25")
    source = tmp_path / "noisy.png"
    write_image(source, from_array(noisy))
    report_path = tmp_path / "report.json"
    args = [str(source), "-o", str(tmp_path / "out.png"), "--report", str(report_path), "-q"]
    assert run_cli("denoise", *args, "--steps", "3", "--quality", "paper", "--wiener") == 0
    assert json.loads(report_path.read_text())["refine"]["wiener"] is True
    assert run_cli("denoise", *args, "--steps", "3", "--no-wiener", "--force") == 0
    data = json.loads(report_path.read_text())
    assert data["refine"] == {"wiener": False} and data["job"]["options"]["wiener"] is False


def test_best_ends_with_the_stronger_filter_of_its_averaged_fits(photo):
    from deepprior.quality import BEST_WIENER_GRIDS, BEST_WIENER_GROUP
    from deepprior.stopping import noise_sigma

    noisy = add_noise(photo(32), 25, seed=0)
    options = {"steps": 4, "runs": 2, "ensemble": True, "seed": 0, "device": "cpu"}
    average, _ = deepprior.denoise(noisy, wiener=False, **options)
    filtered, report = deepprior.denoise(noisy, **options)
    assert report["refine"]["group"] == wiener.GROUP and report["refine"]["grids"] == 1
    best, report = deepprior.denoise(noisy, quality="best", **options)
    assert report["refine"]["wiener"] is True and report["quality"]["refine"] is True
    assert report["refine"]["group"] == BEST_WIENER_GROUP == report["quality"]["wiener_group"]
    assert report["refine"]["grids"] == BEST_WIENER_GRIDS > 1
    sigma = noise_sigma(noisy, None)[0]
    stronger, made = refine_fits(noisy, [average], sigma, BEST_WIENER_GROUP, BEST_WIENER_GRIDS)
    assert made == BEST_WIENER_GRIDS
    np.testing.assert_allclose(best, stronger, atol=1e-5)
    np.testing.assert_allclose(filtered, refine_fits(noisy, [average], sigma)[0], atol=1e-5)
    assert np.abs(best - filtered).max() > 0.01 and np.abs(best - average).max() > 0.01
    _, report = deepprior.denoise(noisy, quality="paper", wiener=True, steps=4, seed=0)
    assert report["refine"]["wiener"] is True  # the option turns on a pass the level has not
    assert report["refine"]["grids"] == 1


def test_a_grid_further_in_keeps_the_first_and_last_positions():
    assert wiener._grid(20, 3).tolist() == [0, 3, 6, 9, 12, 15, 18, 19]
    assert wiener._grid(20, 3, 1).tolist() == [0, 1, 4, 7, 10, 13, 16, 19]
    assert wiener._grid(20, 3, 2).tolist() == [0, 2, 5, 8, 11, 14, 17, 19]


def test_the_pass_on_several_grids_and_fits_is_the_mean_of_their_passes(photo):
    clean = photo(48)
    noisy = add_noise(clean, 25, seed=0)
    fits = [add_noise(clean, 8, seed=1), add_noise(clean, 4, seed=2)]
    alone = [refine_fit(noisy, fit, SIGMA) for fit in fits]
    np.testing.assert_allclose(refine_fits(noisy, fits, SIGMA)[0], np.mean(alone, 0), atol=1e-6)
    moved = [refine_fit(noisy, fits[0], SIGMA, group=128, offset=o) for o in range(3)]
    assert np.abs(moved[1] - moved[0]).max() > 1e-3  # another grid: other groups
    stronger, made = refine_fits(noisy, fits[:1], SIGMA, group=128, grids=3)
    np.testing.assert_allclose(stronger, np.mean(moved, 0), atol=1e-6)
    assert made == 3 and psnr(stronger, clean) > psnr(noisy, clean) + 5
    # past the deadline, only the first grid is made
    hurried, made = refine_fits(noisy, fits[:1], SIGMA, 128, 3, deadline=time.perf_counter())
    assert made == 1
    np.testing.assert_allclose(hurried, moved[0], atol=1e-6)


def test_a_time_limit_leaves_out_the_grids_it_has_no_time_for(photo):
    noisy = add_noise(photo(32), 25, seed=0)
    options = {"steps": 4, "seed": 0, "device": "cpu", "quality": "best"}
    _, report = deepprior.denoise(noisy, time_limit=1e-3, **options)
    assert report["stopping"]["time_limit_reached_at"] == 1
    assert report["refine"]["grids"] == 1
    assert report["refine"]["grids_left_out"] == "the time limit was reached"
    _, report = deepprior.denoise(noisy, time_limit=600, **options)
    assert report["refine"]["grids"] > 1 and "grids_left_out" not in report["refine"]


def test_a_run_with_an_early_pilot_returns_its_early_iterate_and_filters_both(photo, monkeypatch):
    from dataclasses import replace

    from deepprior.io import from_array
    from deepprior.job import Job
    from deepprior.quality import QUALITIES
    from deepprior.runner import run
    from deepprior.tasks.denoise import DENOISE, refine

    levels = QUALITIES["denoise"]
    # an early level any fit is under from its first check on (50·σ² is about 0.5)
    monkeypatch.setitem(levels, "default", replace(levels["default"], early_pilot=50.0))
    noisy = add_noise(photo(32), 25, seed=0)
    job = Job("denoise", {"image": from_array(noisy)}, max_steps=40, seed=0, device="cpu")
    outcome = run(job)
    assert outcome.early_image is not None and outcome.early_image.shape == outcome.image.shape
    assert np.abs(outcome.early_image - outcome.image).max() > 0.01
    problem = DENOISE.build(job, DENOISE.resolve_options(job.options))
    both, section = refine(problem, [outcome.early_image, outcome.image], levels["default"])
    assert section["fit_iterates"] == 2 and outcome.report.sections["refine"]["fit_iterates"] == 2
    np.testing.assert_allclose(outcome.picture.pixels, np.clip(both, 0, 1), atol=1e-5)
    monkeypatch.setitem(levels, "default", replace(levels["default"], early_pilot=None))
    assert run(job).early_image is None


def test_the_filter_of_two_iterates_is_the_mean_of_their_filters(photo):
    from dataclasses import replace

    from deepprior.io import from_array
    from deepprior.job import Job
    from deepprior.quality import get_quality
    from deepprior.tasks.denoise import DENOISE, refine

    default = get_quality("denoise", "default")
    clean = photo(32)
    noisy = add_noise(clean, 25, seed=0)
    problem = DENOISE.build(
        Job("denoise", {"image": from_array(noisy)}), {"sigma": 25, "wiener": None}
    )
    early = add_noise(clean, 8, seed=1)
    final = add_noise(clean, 4, seed=2)
    both, section = refine(problem, [early, final], default)
    alone = [refine(problem, [pilot], default)[0] for pilot in (early, final)]
    np.testing.assert_allclose(both, (alone[0] + alone[1]) / 2, atol=1e-6)
    assert section["fit_iterates"] == 2 and np.abs(alone[0] - alone[1]).max() > 0.01
    unfiltered, section = refine(problem, [early, final], replace(default, refine=False))
    assert section == {"wiener": False} and unfiltered is final
