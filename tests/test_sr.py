import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from skimage import data

import deepprior
from deepprior import cli, presets
from deepprior.backprojection import back_project, residual_rms
from deepprior.baselines import degrade_for_sr, upscale
from deepprior.errors import UserError
from deepprior.io import Picture, read_image, write_image
from deepprior.metrics import psnr
from deepprior.operators import Downsample
from deepprior.quality import SR_INPUT_NOISE


@pytest.fixture
def fast_sr_presets(fast, monkeypatch):
    for name in ("x2", "x3", "x4", "x8"):
        monkeypatch.setitem(presets.SR_PRESETS, name, replace(fast, name=name, steps=4))


def test_super_resolution_beats_bicubic_and_explains_the_input():
    """×4 of sharp edges (scikit-image's checkerboard) with the ×4 net, 200 steps (the output
    average shortened to suit so short a run)."""
    hr, lr = degrade_for_sr(data.checkerboard()[:64, :64].astype(np.float32) / 255, 4)
    preset = replace(presets.SR_PRESETS["x4"], average_decay=0.95)
    out, report = deepprior.super_resolve(
        lr, 4, reference=hr, preset=preset, steps=200, seed=0, device="cpu"
    )
    assert out.shape == (64, 64)
    metrics = report["metrics"]
    assert metrics["psnr_y"] > metrics["psnr_y_bicubic"] + 2.0
    assert report["settings"]["scale"] == 4 and report["task"] == "sr"
    x = torch.from_numpy(out)[None, None]
    assert psnr(Downsample(4)(x)[0, 0].numpy()[:, :, None], lr[:, :, None]) > 25


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_output_is_scale_times_larger_for_any_size(scale, fast_sr_presets):
    lr = np.random.default_rng(0).random((17, 23), dtype=np.float32)
    out, report = deepprior.super_resolve(lr, scale, seed=0, device="cpu")
    assert out.shape == (17 * scale, 23 * scale)
    assert report["image_size"] == [17 * scale, 23 * scale]


def test_presets_follow_the_authors_by_scale():
    assert presets.SR_PRESETS["x4"].steps == 2000 and presets.SR_PRESETS["x4"].input_noise == 0.03
    assert presets.SR_PRESETS["x8"].steps == 4000 and presets.SR_PRESETS["x8"].input_noise == 0.05


def test_bad_scale_and_mismatched_reference_are_user_errors(photo, fast_sr_presets):
    lr = photo(16)
    with pytest.raises(UserError, match="scale 5"):
        deepprior.super_resolve(lr, 5, device="cpu")
    with pytest.raises(UserError, match="reference"):
        deepprior.super_resolve(lr, 4, reference=photo(60), device="cpu")
    with pytest.raises(UserError, match="back_project is true, false or None"):
        deepprior.super_resolve(lr, 4, back_project="yes", device="cpu")  # type: ignore[arg-type]


def test_alpha_is_upscaled_with_the_image(photo, fast_sr_presets):
    from deepprior.job import Job
    from deepprior.runner import run

    picture = Picture(photo(16), alpha=np.ones((16, 16), np.float32))
    job = Job("sr", {"image": picture}, options={"scale": 2}, seed=0, device="cpu")
    out = run(job).picture
    assert out.mode == "RGBA" and out.alpha is not None and out.alpha.shape == (32, 32)


def test_cli_sr_with_degrade_reports_the_paper_protocol(photo, run_cli, tmp_path, fast_sr_presets):
    hr = write_image(tmp_path / "hr.png", Picture(photo(50)))
    out, report = tmp_path / "sr.png", tmp_path / "sr.json"
    assert (
        run_cli(
            "sr",
            str(hr),
            "--scale",
            "4",
            "--degrade",
            "-o",
            str(out),
            "--report",
            str(report),
            "--seed",
            "1",
            "-q",
        )
        == 0
    )
    assert read_image(out).pixels.shape == (48, 48, 3)
    data = json.loads(report.read_text())
    assert {"psnr_y", "psnr_y_bicubic", "psnr_y_lanczos", "ssim"} <= set(data["metrics"])


def test_cli_sr_user_errors(photo, run_cli, tmp_path, fast_sr_presets, capsys):
    lr = write_image(tmp_path / "lr.png", Picture(photo(16)))
    wrong = write_image(tmp_path / "wrong.png", Picture(photo(40)))
    cases = [
        ["sr", str(lr), "--scale", "5"],
        ["sr", str(lr)],
        ["sr", str(lr), "--scale", "4", "--reference", str(wrong)],
        ["sr", str(lr), "--scale", "4", "--degrade", "--reference", str(wrong)],
    ]
    for argv in cases:
        assert run_cli(*argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("deepprior: error:") and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr.png", "wrong.png"]
    assert cli is not None


def test_back_projection_makes_an_upscaled_image_reproduce_its_input():
    """Bicubic ×4 of a photograph's Lanczos-downsampled crop: back-projection brings the
    downsampled result to the input and the image nearer the original; 0 iterations keep it."""
    operator = Downsample(4)
    hr = data.astronaut()[100:164, 200:264].astype(np.float32) / 255
    lr = operator(torch.from_numpy(hr).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    start = upscale(lr, 4, "bicubic")
    projected = back_project(start, lr, operator)
    before, after = residual_rms(start, lr, operator), residual_rms(projected, lr, operator)
    assert after < before / 20
    assert psnr(projected, hr) > psnr(start, hr) + 0.5
    assert projected.dtype == np.float32 and projected.min() >= 0 and projected.max() <= 1
    assert np.allclose(back_project(start, lr, operator, iterations=0), start)
    with pytest.raises(ValueError, match="iterations"):
        back_project(start, lr, operator, iterations=-1)


def test_levels_end_with_back_projection_unless_told_not_to(photo, fast_sr_presets):
    lr = photo(16)
    out, report = deepprior.super_resolve(lr, 4, seed=0, device="cpu")
    section = report["refine"]
    assert section["back_projection"] and report["quality"]["refine"]
    assert section["residual_rms_255_after"] < section["residual_rms_255_before"] / 5
    kept, off = deepprior.super_resolve(lr, 4, seed=0, device="cpu", back_project=False)
    assert off["refine"] == {"back_projection": False} and not np.allclose(kept, out)
    operator = Downsample(4)
    assert residual_rms(out, lr, operator) < residual_rms(kept, lr, operator) / 5
    _, paper = deepprior.super_resolve(lr, 4, seed=0, device="cpu", quality="paper")
    assert paper["refine"] == {"back_projection": False}
    _, forced = deepprior.super_resolve(
        lr, 4, seed=0, device="cpu", quality="paper", back_project=True
    )
    assert forced["refine"]["back_projection"]
    _, eight = deepprior.super_resolve(lr, 8, seed=0, device="cpu")  # its preset as it is
    assert eight["refine"]["back_projection"]
    assert report["quality"]["contains"].startswith("32 channels")
    assert eight["quality"]["contains"].startswith("the preset as it is")
    assert eight["quality"]["contains"].endswith("back-projected onto the low-resolution input")


def test_levels_jitter_the_code_more_where_they_were_measured(photo, fast_sr_presets):
    """×2–×4 at fast, default and best: input noise SR_INPUT_NOISE; paper, ×8 and a job's
    own override keep theirs."""
    lr = photo(16)
    preset_noise = presets.SR_PRESETS["x4"].input_noise
    assert preset_noise != SR_INPUT_NOISE
    for level in ("fast", "default", "best"):
        _, report = deepprior.super_resolve(lr, 4, seed=0, device="cpu", quality=level, runs=1)
        assert report["settings"]["input_noise"] == SR_INPUT_NOISE
        assert report["quality"]["input_noise"] == SR_INPUT_NOISE
        assert f"input noise {SR_INPUT_NOISE:g}" in report["quality"]["contains"]
    _, paper = deepprior.super_resolve(lr, 4, seed=0, device="cpu", quality="paper")
    assert paper["settings"]["input_noise"] == preset_noise
    _, eight = deepprior.super_resolve(lr, 8, seed=0, device="cpu")
    assert eight["settings"]["input_noise"] == presets.SR_PRESETS["x8"].input_noise
    _, own = deepprior.super_resolve(lr, 4, seed=0, device="cpu", overrides={"input_noise": 0.01})
    assert own["settings"]["input_noise"] == 0.01


def test_cli_sr_turns_back_projection_off(photo, run_cli, tmp_path, fast_sr_presets):
    lr = write_image(tmp_path / "lr.png", Picture(photo(16)))
    report = tmp_path / "sr.json"
    argv = ["sr", str(lr), "--scale", "2", "--no-back-project", "--report", str(report)]
    assert run_cli(*argv, "-o", str(tmp_path / "sr.png")) == 0
    assert json.loads(report.read_text())["refine"] == {"back_projection": False}
