"""Stopping rules: when they fire, what they keep, and --steps auto end to end."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import deepprior
from deepprior.data_terms import MSE
from deepprior.fitting import FitState, fit
from deepprior.metrics import psnr
from deepprior.nets import build_net
from deepprior.presets import DENOISE_PRESETS
from deepprior.stopping import (
    NoiseLevelRule,
    ValidationRule,
    VarianceRule,
    clipped_noise_sigma,
    estimate_noise_sigma,
    given_noise_sigma,
    split_holdout,
)

FAST = replace(
    DENOISE_PRESETS["authors"],
    name="test",
    steps=40,
    lr=0.02,
    average_decay=0.95,
    net_options={"down": (16, 16, 16), "up": (16, 16, 16), "skip": (4, 4, 4)},
)


def drive(rule, outputs, losses=None):
    """Feed a rule a sequence of outputs (and losses) as fit would; return the final state."""
    state = FitState(step=0, total_steps=len(outputs), net=torch.nn.Identity(), optimizer=None)  # type: ignore[arg-type]
    rule.on_start(state)
    for step, output in enumerate(outputs):
        state.step, state.output = step, output
        state.loss = torch.tensor(losses[step] if losses else 0.0)
        rule.on_step(state)
        if state.stop:
            break
    rule.on_end(state)
    return state


def test_noise_level_rule_fires_at_sigma_squared_and_keeps_that_iterate():
    sigma = 0.1
    losses = [0.05 * 0.9**k for k in range(60)]  # crosses σ² = 0.01 at k = 16
    outputs = [torch.full((1, 1, 4, 4), float(k)) for k in range(60)]
    rule = NoiseLevelRule(sigma, smoothing=0.0, every=1)
    state = drive(rule, outputs, losses)
    first_below = next(k for k, value in enumerate(losses) if value <= sigma**2)
    assert rule.fired_at == first_below + 1 and state.stop
    assert state.selected is not None and float(state.selected.mean()) == first_below
    assert state.stopped_by == "noise-level" and state.selected_step == first_below + 1


def test_noise_level_rule_keeps_the_iterate_where_the_data_term_first_fell_to_the_early_level():
    sigma = 0.1
    losses = [0.05 * 0.9**k for k in range(60)]
    outputs = [torch.full((1, 1, 4, 4), float(k)) for k in range(60)]
    rule = NoiseLevelRule(sigma, smoothing=0.0, every=1, early_factor=1.5)
    state = drive(rule, outputs, losses)
    early = next(k for k, value in enumerate(losses) if value <= 1.5 * sigma**2)
    final = next(k for k, value in enumerate(losses) if value <= sigma**2)
    assert early < final and rule.early_step == early + 1 and state.selected_step == final + 1
    assert rule.early_image is not None and float(rule.early_image.mean()) == early
    assert rule.summary()["early_step"] == early + 1
    with pytest.raises(ValueError, match="early_factor"):
        NoiseLevelRule(sigma, factor=1.1, early_factor=1.05)


def test_noise_level_rule_stops_once_the_data_term_stalls_above_sigma_squared():
    sigma = 0.1
    # The data term creeps towards 1.05·σ² and never reaches σ².
    losses = [sigma**2 * (1.05 + math.exp(-k / 20)) for k in range(300)]
    outputs = [torch.full((1, 1, 4, 4), float(k)) for k in range(300)]
    plain = NoiseLevelRule(sigma, smoothing=0.0, every=1)
    assert not drive(plain, outputs, losses).stop and plain.fired_at is None
    rule = NoiseLevelRule(sigma, smoothing=0.0, every=1, stall=0.01, patience=50)
    state = drive(rule, outputs, losses)
    # fell by under 0.01·σ² over the last 50 steps: exp(-k/20)·(exp(2.5) − 1) < 0.01
    first = next(k for k in range(50, 300) if losses[k - 50] - losses[k] < 0.01 * sigma**2)
    assert state.stop and rule.fired_at == first + 1 and rule.summary()["stalled"]
    assert state.selected_step == first + 1  # the closest to σ² so far
    falling = [0.05 * 0.9**k for k in range(60)]  # reaches σ² before any window stalls
    rule = NoiseLevelRule(sigma, smoothing=0.0, every=1, stall=0.01, patience=5)
    drive(rule, outputs[:60], falling)
    assert rule.fired_at is not None and not rule.summary()["stalled"]
    with pytest.raises(ValueError, match="stall must be positive"):
        NoiseLevelRule(sigma, stall=0.0)


def test_a_spike_of_the_data_term_is_not_a_stall():
    sigma = 0.1
    # Falls by 0.1·σ² every 50 steps to σ² at step 250, with a spike (the fit jolted) at 120.
    losses = [sigma**2 * (1.5 - 0.002 * k) for k in range(300)]
    losses[120] += sigma**2
    outputs = [torch.full((1, 1, 4, 4), float(k)) for k in range(300)]
    rule = NoiseLevelRule(sigma, smoothing=0.0, every=1, stall=0.01, patience=50)
    state = drive(rule, outputs, losses)
    assert state.stop and not rule.summary()["stalled"]
    assert rule.fired_at == next(k for k, value in enumerate(losses) if value <= sigma**2) + 1


def test_variance_rule_keeps_the_calmest_iterate_and_waits_for_its_patience():
    generator = torch.Generator().manual_seed(0)
    # The outputs wander less and less until step 200, then more and more.
    spread = [abs(k - 200) / 200 + 0.01 for k in range(600)]
    outputs = [torch.randn(1, 1, 8, 8, generator=generator) * s for s in spread]
    rule = VarianceRule(patience=100, alpha=0.1, every=10)
    state = drive(rule, outputs)
    assert rule.fired_at is not None and 250 <= rule.fired_at <= 400
    assert rule.best_step is not None and 150 <= rule.best_step <= 260
    assert rule.fired_at - rule.best_step >= 100
    assert state.selected is not None


def test_validation_rule_keeps_the_iterate_closest_on_held_out_pixels():
    target = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    holdout = torch.zeros(1, 1, 8, 8)
    holdout[..., ::3, ::3] = 1
    # Outputs approach the target until step 50, then drift away on every pixel.
    outputs = [target + abs(k + 1 - 50) / 50 for k in range(200)]  # step k + 1
    rule = ValidationRule(lambda x: x, target, holdout, patience=60, smoothing=0.0, every=5)
    state = drive(rule, [o.clamp(0, 1) for o in outputs])
    assert rule.best_step == 50 and rule.fired_at == 110
    assert state.selected is not None and torch.allclose(state.selected, target)


def test_a_validation_fit_does_not_keep_an_iterate_from_its_warm_up():
    target = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    holdout = torch.zeros(1, 1, 8, 8)
    holdout[..., ::3, ::3] = 1

    # An early dip (step 20), a rise to step 60, then a slow fall that passes the dip only at
    # step 172 and reaches the target at step 200, after which the fit drifts away.
    def distance(step: int) -> float:
        if step <= 60:
            return 0.1 + abs(step - 20) / 100
        return 0.5 * (200 - step) / 140 if step <= 200 else (step - 200) / 100

    outputs = [(target + distance(k)).clamp(0, 1) for k in range(1, 301)]

    def rule(warmup: int) -> ValidationRule:
        return ValidationRule(
            lambda x: x, target, holdout, patience=60, smoothing=0.0, every=5, warmup=warmup
        )

    eager = rule(0)
    drive(eager, outputs)
    assert eager.best_step == 20 and eager.fired_at == 80  # stopped on the dip
    patient = rule(60)
    state = drive(patient, outputs)
    assert patient.best_step == 200 and patient.fired_at == 260
    assert state.selected is not None and torch.allclose(state.selected, target)


def test_past_its_cap_a_validation_fit_goes_on_only_while_clearly_improving():
    target = torch.zeros(1, 1, 8, 8)
    holdout = torch.ones(1, 1, 8, 8)
    # The held-out RMS error falls 5 % every 10 steps until step 400, then 0.5 % (a slow creep).
    errors = [0.5 * 0.95 ** min(k, 40) * 0.995 ** max(k - 40, 0) for k in range(1, 101)]
    outputs = [torch.full((1, 1, 8, 8), e) for e in errors for _ in range(10)]

    def rule(gain_from: int | None) -> ValidationRule:
        return ValidationRule(
            lambda x: x,
            target,
            holdout,
            patience=100,
            smoothing=0.0,
            every=10,
            gain_from=gain_from,
            min_gain=0.2,
        )

    plain = rule(None)
    drive(plain, outputs)
    assert plain.fired_at is None  # never stops improving, so only a cap would end it
    early = rule(200)  # at its cap the error still falls ~60 % per 100 steps: it goes on
    drive(early, outputs)
    # the first check where the last 100 steps gained under 20 %: once the creep fills them
    assert early.fired_at is not None and 440 <= early.fired_at <= 500
    assert early.best_step == early.fired_at
    late = rule(700)  # at its cap the error creeps (under 10 % per 100 steps): it stops
    drive(late, outputs)
    assert late.fired_at == 700


def test_a_watching_rule_records_its_choice_but_does_not_stop_the_fit():
    losses = [0.05 * 0.9**k for k in range(60)]
    outputs = [torch.zeros(1, 1, 4, 4) for _ in range(60)]
    rule = NoiseLevelRule(0.1, smoothing=0.0, every=1, stop=False)
    state = drive(rule, outputs, losses)
    assert rule.fired_at is not None and not state.stop and state.selected is None
    assert rule.summary()["watch_only"]


def test_holdout_takes_the_asked_share_of_observed_pixels_only():
    observed = (torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    train, holdout = split_holdout(observed, 0.1, torch.Generator().manual_seed(1))
    assert torch.all(train + holdout == observed)
    share = float(holdout.sum() / observed.sum())
    assert 0.07 < share < 0.13
    with pytest.raises(ValueError):
        split_holdout(observed, 1.5, torch.Generator())


def test_held_out_pixels_do_not_enter_the_data_term():
    torch.manual_seed(0)
    net = build_net("skip", 4, 1, down=(8, 8), up=(8, 8), skip=(2, 2))
    z = torch.rand(1, 4, 16, 16) * 0.1
    y = torch.full((1, 1, 16, 16), 0.5)
    weight = torch.ones(1, 1, 16, 16)
    weight[..., :4, :] = 0
    y[..., :4, :] = 1.0  # only held-out pixels are bright
    result = fit(net, z, MSE(y, weight=weight), steps=150, lr=0.01)
    out = result.output
    assert abs(float(out[..., 4:, :].mean()) - 0.5) < 0.05
    assert float(out[..., :4, :].mean()) < 0.8  # never pulled towards the held-out 1.0


def test_noise_sigma_estimate_is_close_on_a_photograph(photo):
    from deepprior.synthetic import add_noise

    clean = photo(64)
    for sigma in (10, 25, 50):
        estimate = estimate_noise_sigma(add_noise(clean, sigma, seed=0)) * 255
        assert abs(estimate - sigma) < 0.25 * sigma


def test_noise_estimate_counts_clipped_noise_by_brightness():
    from skimage.restoration import estimate_sigma

    rng = np.random.default_rng(0)
    clean = np.full((64, 64, 3), 0.5, np.float32)
    clean[:, :32] = 0.03  # half the image near black, where σ = 25 noise is clipped
    noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    # What the data term of a perfect fit measures: each half's noise around its own mean.
    attainable = float(np.sqrt((noisy[:, :32].var() + noisy[:, 32:].var()) / 2))
    ours = estimate_noise_sigma(noisy)
    one_median = float(estimate_sigma(noisy, channel_axis=-1, average_sigmas=True))
    assert abs(ours - attainable) < 0.04 * attainable
    assert ours > one_median + 0.02 * attainable  # one median over both halves reads low


def test_clip_correction_matches_the_noise_actually_left(photo):
    rng = np.random.default_rng(0)
    gray = np.full((64, 64, 1), 0.5, np.float32)
    bright = np.where(np.arange(64)[None, :, None] < 32, 0.5, 0.97).repeat(64, 0).astype(np.float32)
    for clean in (gray, bright):
        noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1)
        actual = float(np.sqrt(np.mean((noisy - clean) ** 2)))
        assert abs(clipped_noise_sigma(noisy, 0.1) - actual) < 0.05 * actual
    assert clipped_noise_sigma(noisy, 0.1) < 0.095  # the bright half keeps less noise
    from deepprior.synthetic import add_noise

    clean = photo(64)  # a photograph with white and black areas
    for sigma in (25, 50):
        noisy = add_noise(clean, sigma, seed=0)
        actual = float(np.sqrt(np.mean((noisy - clean) ** 2)))
        assert actual < 0.97 * sigma / 255  # clipping did remove noise
        assert abs(clipped_noise_sigma(noisy, sigma / 255) - actual) < 0.025 * actual


def test_auto_stops_near_the_best_iterate_and_beats_running_long(photo):
    clean = photo(32)
    from deepprior.synthetic import add_noise

    noisy = add_noise(clean, 25, seed=0)
    cap = 1200
    auto, report = deepprior.denoise(
        noisy, reference=clean, preset=FAST, max_steps=cap, seed=0, device="cpu"
    )
    fixed, fixed_report = deepprior.denoise(
        noisy, reference=clean, preset=FAST, steps=cap, seed=0, device="cpu"
    )
    stopping = report["stopping"]
    assert stopping["steps"] == "auto" and stopping["rule"] == "noise-level"
    assert stopping["sigma_source"] == "estimated" and abs(stopping["sigma_255"] - 25) < 6
    assert stopping["fired_at"] is not None and report["steps_run"] < cap
    best = fixed_report["metrics"]["best_along_run"]["psnr_average"]
    assert psnr(auto, clean) > best - 1.0
    assert psnr(auto, clean) > psnr(fixed, clean) + 1.0


def test_a_noise_free_image_falls_back_to_the_variance_rule():
    ramp = np.linspace(0, 1, 32, dtype=np.float32)
    smooth = np.repeat((np.add.outer(ramp, ramp) / 2)[:, :, None], 3, axis=2)
    _, report = deepprior.denoise(smooth, preset=FAST, max_steps=20, seed=0, device="cpu")
    assert report["stopping"]["rule"] == "variance" and report["steps_run"] == 20


def test_runs_average_independent_fits_seeded_apart(photo):
    noisy = photo(32)
    options = {"preset": FAST, "steps": 5, "device": "cpu", "wiener": False}
    first, _ = deepprior.denoise(noisy, seed=5, **options)
    second, _ = deepprior.denoise(noisy, seed=1005, **options)
    both, report = deepprior.denoise(noisy, seed=5, runs=2, **options)
    assert [r["seed"] for r in report["runs"]] == [5, 1005] and report["steps_run"] == 10
    np.testing.assert_allclose(both, (first + second) / 2, atol=1e-6)


def test_validation_rule_runs_for_super_resolution(photo):
    hr = photo(32)
    from deepprior.baselines import degrade_for_sr

    _, lr = degrade_for_sr(hr, 2)
    small = replace(FAST, average_decay=None, backtrack_db=None)
    options = {"preset": small, "max_steps": 30, "stop": "validation", "seed": 0, "device": "cpu"}
    _, report = deepprior.super_resolve(lr, 2, patience=10, **options)
    assert report["stopping"]["rule"] == "validation"
    assert report["stopping"]["holdout_share"] == 0.05
    assert report["stopping"]["selected_step"] > 10  # none from the warm-up (the patience)
    _, short = deepprior.super_resolve(lr, 2, **options)  # all 30 steps within the warm-up
    assert short["stopping"]["selected_step"] is None and short["steps_run"] == 30


def test_bad_stopping_arguments_are_user_errors(photo):
    from deepprior.errors import UserError

    image = photo(32)
    with pytest.raises(UserError, match="stopping rule"):
        deepprior.denoise(image, preset=FAST, stop="magic", device="cpu")
    with pytest.raises(UserError, match="steps"):
        deepprior.denoise(image, preset=FAST, steps="lots", device="cpu")
    with pytest.raises(UserError, match="for denoising"):
        deepprior.super_resolve(image[:16, :16], 2, preset=FAST, stop="noise-level", device="cpu")
    with pytest.raises(UserError, match="apply when steps is 'auto'"):
        deepprior.denoise(image, preset=FAST, steps=5, stop="variance", device="cpu")
    with pytest.raises(UserError, match="runs"):
        deepprior.denoise(image, preset=FAST, steps=2, runs=0, device="cpu")


def test_a_given_sigma_bounds_the_estimate_from_above(photo):
    from deepprior.synthetic import add_noise

    noisy = add_noise(photo(64), 25, seed=0)
    estimated = estimate_noise_sigma(noisy)
    low, source = given_noise_sigma(noisy, 5 / 255)  # below the image's noise: it is kept
    assert low == pytest.approx(clipped_noise_sigma(noisy, 5 / 255)) and "clip-corrected)" in source
    high, source = given_noise_sigma(noisy, 60 / 255)  # far above: the estimate is used
    assert high == pytest.approx(estimated) and "(estimated)" in source
    ramp = np.linspace(0.2, 0.8, 64, dtype=np.float32)
    clean = np.repeat(ramp[None, :, None], 64, 0).repeat(3, 2)  # noiseless: the estimate is ~0
    assert estimate_noise_sigma(clean) < 0.5 / 255
    kept, source = given_noise_sigma(clean, 25 / 255)
    assert (
        kept == pytest.approx(clipped_noise_sigma(clean, 25 / 255)) and "clip-corrected)" in source
    )
