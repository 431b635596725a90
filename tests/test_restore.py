"""Restoration through written-down degradations, blind JPEG restoration, and flash/no-flash."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import deepprior
from deepprior.degradations import GRAMMAR, apply, parse, with_absolute_paths
from deepprior.errors import UserError
from deepprior.fitting import Backtracking, Callback, fit
from deepprior.io import Picture, write_image
from deepprior.job import Job
from deepprior.metrics import psnr
from deepprior.nets import build_net
from deepprior.operators import (
    Bayer,
    Blur,
    Compose,
    Downsample,
    Gray,
    Mask,
    gaussian_kernel,
)
from deepprior.presets import FLASH_PRESETS
from deepprior.quality import AS_PRESET
from deepprior.runner import run
from deepprior.tasks.flash import colour_guard


@pytest.fixture(autouse=True)
def _small(small_presets):
    """Every preset on the small test network (conftest)."""


@pytest.mark.parametrize(
    ("spec", "parts"),
    [
        ("blur:gaussian:2", [Blur]),
        ("blur:motion:15,30", [Blur]),
        ("bayer:gbrg", [Bayer]),
        ("gray", [Gray]),
        ("downsample:3", [Downsample]),
        ("blur:gaussian:1.5+downsample:2:box", [Blur, Downsample]),
        ("blur:gaussian:1 + bayer:rggb", [Blur, Bayer]),
    ],
)
def test_specs_become_operators_in_the_order_applied(spec, parts):
    operator = parse(spec)
    found = list(operator.parts) if isinstance(operator, Compose) else [operator]
    assert [type(part) for part in found] == parts
    assert operator.linear


def test_files_in_a_spec_are_made_absolute_for_replays(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = with_absolute_paths("blur:k.png+downsample:2+mask:m.png+blur:gaussian:1")
    assert spec == f"blur:{tmp_path}/k.png+downsample:2+mask:{tmp_path}/m.png+blur:gaussian:1"
    assert with_absolute_paths("blur:gaussian+blur:motion") == "blur:gaussian+blur:motion"


def test_kernel_and_mask_files_in_a_spec(tmp_path):
    kernel = np.zeros((5, 7), np.float32)
    kernel[2, 1:6] = 1.0  # a horizontal streak, 5 px
    write_image(tmp_path / "k.png", Picture(kernel[:, :, None]))
    blur = parse(f"blur:{tmp_path / 'k.png'}")
    assert isinstance(blur, Blur) and blur.size == (5, 7)
    known = np.ones((20, 20), np.float32)
    known[5:10, 5:10] = 0
    write_image(tmp_path / "m.png", Picture(known[:, :, None]))
    chain = parse(f"mask:{tmp_path / 'm.png'}+blur:gaussian:1")
    assert [type(p) for p in chain.parts] == [Mask, Blur]
    image = np.ones((20, 20, 3), np.float32)
    assert apply(chain, image)[7, 7, 0] < 0.5  # the hole is dark before the blur


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "blur",
        "blur:gaussian",
        "blur:gaussian:x",
        "blur:gaussian:-2",
        "blur:motion:15",
        "blur:motion:15,up",
        "bayer:rgbg",
        "downsample:0",
        "downsample:2:nearest",
        "gray:3",
        "sharpen",
        "blur:gaussian:1++gray",
        "blur:gaussian:1e9",
        "blur:motion:1e9,0",
        "blur:motion:15,nan",
        "blur:motion:15,inf",
    ],
)
def test_a_spec_that_does_not_parse_is_one_clear_error(spec):
    with pytest.raises(UserError, match="degradation") as caught:
        parse(spec)
    assert "\n" not in str(caught.value)


def test_unreadable_grammar_errors_show_the_grammar():
    with pytest.raises(UserError) as caught:
        parse("sharpen:2")
    assert GRAMMAR in str(caught.value)


def test_bad_kernel_files_are_refused(tmp_path):
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    write_image(tmp_path / "black.png", Picture(np.zeros((5, 5, 1), np.float32)))
    write_image(tmp_path / "huge.png", Picture(np.ones((300, 300, 1), np.float32)))
    for name, message in (
        ("cut", "corrupt|not an image"),
        ("black", "all black"),
        ("huge", "too large"),
    ):
        with pytest.raises(UserError, match=message):
            parse(f"blur:{tmp_path / name}.png")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("blur:gaussian:8", "larger than"),
        ("gray", "does not fit"),
        ("bayer:rggb", "does not fit"),
        ("downsample:99999", "MP limit"),
    ],
)
def test_a_degradation_that_does_not_fit_the_image_is_refused_before_the_fit(
    clean32, spec, message
):
    with pytest.raises(UserError, match=message):
        deepprior.restore(clean32, spec, steps=2, device="cpu")


def test_deblurring_beats_the_blurred_input(photo):
    clean = photo(32)
    blurred = apply(Blur(gaussian_kernel(1.5)), clean)
    restored, report = deepprior.restore(
        blurred, "blur:gaussian:1.5", steps=300, average=0, seed=0, device="cpu", reference=clean
    )
    assert restored.shape == clean.shape
    assert report["metrics"]["psnr"] > psnr(blurred, clean) + 1.0
    assert report["settings"]["degradation"] == "blur:gaussian:1.5"


def test_demosaicking_gives_colour_that_explains_the_mosaic(photo):
    clean = photo(32)
    mosaic = apply(Bayer("rggb"), clean)[:, :, 0]
    restored, _ = deepprior.restore(
        mosaic, "bayer:rggb", steps=150, average=0, seed=0, device="cpu"
    )
    assert restored.shape == (32, 32, 3)
    naive = np.repeat(mosaic[:, :, None], 3, axis=2)  # the mosaic shown as gray
    assert psnr(restored, clean) > psnr(naive, clean) + 3.0
    assert psnr(apply(Bayer("rggb"), restored)[:, :, 0], mosaic) > 25  # it explains the input


def test_colourisation_keeps_the_gray_it_was_given(photo):
    gray = photo(32, gray=True)
    restored, _ = deepprior.restore(gray, "gray", steps=150, average=0, seed=0, device="cpu")
    assert restored.shape == (32, 32, 3)
    assert psnr(apply(Gray(), restored)[:, :, 0], gray) > 25


def test_any_function_or_module_is_a_degradation(photo):
    clean = photo(32)
    crop = deepprior.operators.FromFunction(
        lambda x: x[:, :, ::2, ::2], source_shape=lambda s: (s[0], 2 * s[1], 2 * s[2])
    )
    restored, report = deepprior.restore(clean[::2, ::2], crop, steps=4, device="cpu")
    assert restored.shape == (32, 32, 3)
    assert report["job"]["options"]["degradation"] == {"python_object": "FromFunction"}
    same, _ = deepprior.restore(clean, torch.nn.Identity(), steps=4, device="cpu")
    assert same.shape == clean.shape
    json.dumps(report)  # the report stays plain JSON
    replay = Job.from_dict(report["job"] | {"inputs": {"image": clean[::2, ::2]}})
    with pytest.raises(UserError, match="Python object"):
        run(replay)


def test_blind_restoration_is_the_authors_jpeg_setting_stopped_by_its_rule(photo):
    clean = photo(32)
    _, report = deepprior.restore(clean, max_steps=30, seed=0, device="cpu")
    assert report["settings"]["name"] == "jpeg"
    assert report["settings"]["degradation"] is None
    assert report["stopping"]["rule"] == "validation"


def test_default_restoration_runs_past_its_cap_while_improving_but_not_blind_or_fast(photo, fast):
    clean = photo(32)
    blurred = apply(Blur(gaussian_kernel(1.5)), clean)
    options = {"preset": replace(fast, steps=20), "seed": 0, "device": "cpu", "patience": 10}
    _, report = deepprior.restore(blurred, "blur:gaussian:1.5", **options)
    assert report["quality"]["extend"] and "past the step cap" in report["quality"]["contains"]
    # after 20 steps the held-back error still falls fast: the fit went on past the cap
    assert report["stopping"]["ceiling"] == 60 and report["stopping"]["ran_past_cap"]
    assert report["steps_run"] > 20
    for given in ({"quality": "fast"}, {"quality": "paper"}, {"max_steps": 20}):
        _, report = deepprior.restore(blurred, "blur:gaussian:1.5", **options, **given)
        assert "ceiling" not in report["stopping"] and report["steps_run"] <= 20
        assert not report["quality"]["extend"]  # nor does the report say it may
    # blind (JPEG) restoration: held-back pixels share their block's artefacts, so its
    # held-back error cannot say the fit still gains, and it stops at its cap
    _, report = deepprior.restore(blurred, **options)
    assert report["settings"]["degradation"] is None and report["stopping"]["cap"] == 20
    assert "ceiling" not in report["stopping"] and report["steps_run"] <= 20
    assert not report["quality"]["extend"] and report["quality"]["contains"] == AS_PRESET


def test_flash_no_flash_uses_the_flash_image_as_code_and_checks_sizes(photo):
    clean = photo(32)
    no_flash = np.clip(
        clean * 0.5 + 0.05 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1
    )
    flash = np.clip(clean[:, :, [2, 1, 0]] * 1.2, 0, 1)  # sharp, but lit in other colours
    result, report = deepprior.flash(
        no_flash.astype(np.float32), flash, steps=30, seed=0, device="cpu"
    )
    assert result.shape == clean.shape
    assert report["settings"]["code"] == "image"
    assert report["collapse_guard"]["rule"].startswith("the output's chromaticity")
    with pytest.raises(UserError, match="one size"):
        deepprior.flash(no_flash, flash[:16, :16], steps=2, device="cpu")


def test_flash_no_flash_stops_at_its_cap_at_every_level(photo):
    clean = photo(32)
    flash = np.clip(clean * 1.2, 0, 1)
    preset = replace(FLASH_PRESETS["authors"], steps=20)
    _, report = deepprior.flash(clean * 0.5, flash, preset=preset, patience=10, device="cpu")
    assert report["stopping"]["cap"] == 20 and "ceiling" not in report["stopping"]
    assert report["steps_run"] <= 20 and not report["quality"]["extend"]


def test_colour_guard_fires_on_a_red_cast_only():
    target = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    guard = colour_guard(target)
    assert not guard(target * 0.7)  # darker, same balance
    red = target.clone()
    red[:, 0] = 1.0
    red[:, 1:] *= 0.2
    assert guard(red)


def test_a_guard_sends_the_fit_back_to_its_last_good_state():
    """The target is red; the guard forbids red: no accepted output ever breaks it."""
    torch.manual_seed(0)
    net = build_net("skip", 4, 3, down=(8, 8), up=(8, 8), skip=(2, 2))
    z = torch.rand(1, 4, 16, 16, generator=torch.Generator().manual_seed(1)) * 0.1
    target = torch.zeros(1, 3, 16, 16)
    target[:, 0] = 1.0

    def too_red(output: torch.Tensor) -> bool:
        return float(output[:, 0].mean()) > 0.6

    seen: list[float] = []

    class Watch(Callback):
        def on_step(self, state):
            seen.append(float(state.output[:, 0].mean()))

    backtracking = Backtracking(None, guard=too_red, every=1)
    fit(
        net,
        z,
        lambda out: ((out - target) ** 2).mean(),
        steps=300,
        lr=0.05,
        backtracking=backtracking,
        callbacks=[Watch()],
    )
    assert backtracking.guard_fired > 0
    assert max(seen) <= 0.6


def test_a_flash_fit_stuck_off_colour_restarts_from_another_seed_at_half_the_rate(
    photo, monkeypatch
):
    monkeypatch.setattr("deepprior.tasks.flash.MAX_COLOUR_DRIFT", -1.0)  # nothing ever passes
    monkeypatch.setattr("deepprior.runner.GUARD_ARM_WITHIN", 20)
    clean = photo(32)
    result, report = deepprior.flash(
        clean, clean[:, :, ::-1].copy(), steps=60, seed=5, device="cpu"
    )
    restarts = report["collapse_guard"]["restarts"]
    assert [r["seed"] for r in restarts] == [5, 5 + 7919, 5 + 2 * 7919]
    assert [r["lr"] for r in restarts] == [0.1, 0.05, 0.025]
    assert all(r["steps_run"] <= 21 and r["why"] == "no output passed the guard" for r in restarts)
    assert result.shape == clean.shape  # the last attempt's result is still returned
