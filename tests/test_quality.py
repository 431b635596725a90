"""Quality levels, the self-ensemble and the stopping rule's patience."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

import deepprior
from deepprior.errors import UserError
from deepprior.orientation import (
    ORIENTATIONS,
    orient,
    oriented_size,
    unorient,
    unorient_array,
)
from deepprior.quality import LEVELS, QUALITIES, STALL, Quality, get_quality
from deepprior.synthetic import add_noise


def test_every_orientation_turns_back_exactly_and_all_eight_differ():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    seen = set()
    for k in range(ORIENTATIONS):
        turned = orient(x, k)
        assert tuple(turned.shape[-2:]) == oriented_size(4, 5, k)
        assert torch.equal(unorient(turned, k), x)
        array = turned[0].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(unorient_array(array, k), x[0].permute(1, 2, 0).numpy())
        seen.add(turned.numpy().tobytes() if k % 2 == 0 else (k, turned.numpy().tobytes()))
    assert len(seen) == ORIENTATIONS
    with pytest.raises(ValueError, match="orientation"):
        orient(x, 8)


def _turned(image: np.ndarray, k: int) -> np.ndarray:
    """``image`` (H×W×C) in orientation ``k``, as numpy."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    return orient(tensor, k).permute(1, 2, 0).contiguous().numpy()


def test_a_self_ensemble_run_is_the_fit_of_the_turned_image_turned_back(photo, fast):
    """Run k of an ensemble fits the image in orientation k: the same as fitting the turned
    image from run k's seed and turning the result back (a 32×48 image: the quarter turn
    swaps its sides)."""
    noisy = add_noise(photo(48)[:32], 25, seed=1)
    options = {"preset": fast, "steps": 6, "device": "cpu", "average": 0, "wiener": False}
    both, report = deepprior.denoise(noisy, seed=3, runs=3, ensemble=True, **options)
    assert [r["orientation"] for r in report["runs"]] == ["as given", "turned 180°", "turned 90°"]
    parts = []
    for k in range(3):
        fitted, _ = deepprior.denoise(_turned(noisy, k), seed=3 + 1000 * k, **options)
        parts.append(unorient_array(fitted, k))
    np.testing.assert_allclose(both, np.mean(parts, axis=0), atol=2e-3)
    plain, _ = deepprior.denoise(noisy, seed=3, runs=3, ensemble=False, **options)
    assert np.abs(plain - both).max() > 1e-2  # the orientations made other fits


def test_the_ensemble_honours_an_inpainting_mask(photo, fast, small_presets):
    clean = photo(32)
    known = np.ones((32, 32), np.float32)
    known[8:20, 10:26] = 0
    restored, report = deepprior.inpaint(
        clean * known[:, :, None], known, runs=2, ensemble=True, seed=0, device="cpu"
    )
    assert report["quality"]["ensemble"] is True
    np.testing.assert_allclose(restored[known == 1], clean[known == 1], atol=1 / 255)


def test_width_scales_the_channels_and_keeps_the_skips(fast):
    narrow = Quality("x", "half", width=0.5, lr=0.02).preset(fast)
    assert narrow.net_options["down"] == (8, 8, 8) and narrow.net_options["up"] == (8, 8, 8)
    assert narrow.net_options["skip"] == fast.net_options["skip"] and narrow.lr == 0.02
    authors = deepprior.presets.DENOISE_PRESETS["authors"]  # the net's own defaults, scaled
    assert Quality("x", "half", width=0.5).preset(authors).net_options["down"] == (64,) * 5
    assert Quality("x", "same").preset(fast) is fast


def test_a_small_image_gets_a_shallower_skip_network():
    x4 = deepprior.presets.SR_PRESETS["x4"]  # five levels, the net's defaults
    level = Quality("x", "shallow", width=0.25, deepest=8, shallow_below=128)
    for side, levels in ((64, 3), (100, 3), (127, 3), (128, 5), (1024, 5), (32, 2), (9, 1)):
        options = level.preset(x4, side).net_options
        assert options["down"] == (32,) * levels, side
        if levels < 5:
            assert options["up"] == (32,) * levels and options["skip"] == (4,) * levels
    per_level = deepprior.presets.Preset(
        name="p", source="", net_options={"upsample": ("nearest",) * 2 + ("bilinear",) * 3}
    )
    shallow = Quality("x", "shallow", deepest=8, shallow_below=128).preset(per_level, 64)
    assert shallow.net_options["upsample"] == ("nearest", "nearest", "bilinear")
    assert Quality("x", "same").preset(x4, 64) is x4  # no depth asked: all five levels


def test_super_resolution_of_a_small_image_runs_and_reports_the_shallower_net(photo):
    low = photo(16)  # ×4 to 64×64: three levels keep the deepest map 8 pixels on a side
    out, report = deepprior.super_resolve(low, 4, steps=5, seed=0, device="cpu")
    assert out.shape == (64, 64, 3)
    assert report["quality"]["deepest"] == 8 and report["quality"]["shallow_below"] == 128
    assert list(report["settings"]["net_options"]["down"]) == [32, 32, 32]
    _, large = deepprior.super_resolve(photo(64), 4, steps=1, seed=0, device="cpu")
    assert list(large["settings"]["net_options"]["down"]) == [32] * 5  # 256×256: all five


def test_every_level_of_the_three_main_tasks_says_what_it_contains():
    for task in ("denoise", "sr", "inpaint"):
        assert set(QUALITIES[task]) == set(LEVELS)
        for level in LEVELS:
            quality = get_quality(task, level)
            assert quality.name == level and quality.contains
    assert get_quality("flash", "best").runs == 1  # a task without levels runs its preset
    authors = deepprior.presets.DENOISE_PRESETS["authors"]
    assert get_quality("denoise", "default").preset(authors).net_options["down"] == (32,) * 5
    assert get_quality("denoise", "paper").preset(authors) is authors
    pixels = deepprior.presets.INPAINT_PRESETS["pixels"]  # inpainting's fast runs longer
    assert get_quality("inpaint", "fast").preset(pixels).steps == 1000
    assert get_quality("denoise", "fast").preset(authors).steps == 800
    region = deepprior.presets.INPAINT_PRESETS["region"]  # not measured: kept as it is
    assert get_quality("inpaint", "fast").preset(region) is region
    with pytest.raises(UserError, match="unknown quality 'great'"):
        get_quality("denoise", "great")


def test_the_report_says_which_level_ran_and_the_job_wins_over_it(photo, small_presets):
    noisy = add_noise(photo(32), 25, seed=0)
    best = get_quality("denoise", "best")
    _, report = deepprior.denoise(noisy, quality="best", seed=0, device="cpu")
    assert report["quality"]["name"] == "best" and report["quality"]["runs"] == best.runs
    assert len(report["runs"]) == best.runs
    _, report = deepprior.denoise(noisy, quality="best", runs=1, seed=0, device="cpu")
    assert report["quality"]["runs"] == 1 and "runs" not in report
    with pytest.raises(UserError, match="unknown quality"):
        deepprior.denoise(noisy, quality="perfect", device="cpu")


def test_patience_ends_the_rule_sooner(photo, fast):
    from dataclasses import replace

    noisy = add_noise(photo(32), 25, seed=0)
    options = {"preset": replace(fast, steps=400), "seed": 0, "device": "cpu", "stop": "variance"}
    _, short = deepprior.denoise(noisy, patience=30, **options)
    stopping = short["stopping"]
    assert stopping["patience"] == 30 and short["steps_run"] < 400
    assert 30 <= stopping["fired_at"] - stopping["selected_step"] < 40
    with pytest.raises(UserError, match="patience apply when steps is 'auto'"):
        deepprior.denoise(noisy, preset=fast, steps=5, patience=30, device="cpu")
    with pytest.raises(UserError, match="patience must be"):
        deepprior.denoise(noisy, preset=fast, patience=0, device="cpu")


def test_denoising_fast_stops_at_a_tenth_above_the_noise_level(photo, fast):
    from dataclasses import replace

    noisy = add_noise(photo(32), 25, seed=0)
    options = {"preset": replace(fast, steps=600), "seed": 0, "device": "cpu"}
    options |= {"stop": "noise-level", "wiener": False}
    _, quick = deepprior.denoise(noisy, quality="fast", **options)
    _, full = deepprior.denoise(noisy, quality="default", **options)
    assert quick["stopping"]["factor"] == 1.1 and full["stopping"]["factor"] == 1.0
    assert quick["stopping"]["fired_at"] < full["stopping"]["fired_at"] < 600
    assert "1.1·σ²" in quick["quality"]["contains"]
    for report in (quick, full):  # both fits reached their level; neither stalled
        assert report["stopping"]["stall"] == STALL and report["stopping"]["stalled"] is False
        assert "stalls" in report["quality"]["contains"] and report["quality"]["stall"] == STALL
    assert get_quality("denoise", "paper").stall is None
    assert get_quality("sr", "default").stall is None


def test_cli_quality_and_self_ensemble(tmp_path, photo, run_cli, small_presets):
    from deepprior.io import from_array, write_image

    source = tmp_path / "noisy.png"
    write_image(source, from_array(add_noise(photo(32), 25, seed=0)))
    out, report = tmp_path / "out.png", tmp_path / "report.json"
    args = [str(source), "-o", str(out), "--report", str(report), "--seed", "0", "-q"]
    assert run_cli("denoise", *args, "--quality", "fast", "--runs", "2", "--self-ensemble") == 0
    data = json.loads(report.read_text())
    assert data["quality"]["name"] == "fast" and data["quality"]["ensemble"] is True
    assert data["job"]["quality"] == "fast" and [r["orientation"] for r in data["runs"]] == [
        "as given",
        "turned 180°",
    ]
    assert run_cli("denoise", *args, "--force", "--quality", "great") == 2


def test_the_last_line_says_when_a_time_limit_left_best_one_fit(tmp_path, photo, run_cli, capsys):
    from deepprior.io import from_array, write_image

    source = tmp_path / "noisy.png"
    write_image(source, from_array(add_noise(photo(32), 25, seed=0)))
    args = [str(source), "-o", str(tmp_path / "out.png"), "--seed", "0", "--quality", "best"]
    assert run_cli("denoise", *args, "--steps", "100000", "--time-limit", "2s") == 0
    runs = get_quality("denoise", "best").runs
    assert f"1 of its {runs} fits made]" in capsys.readouterr().err


def test_the_cap_grows_with_the_image_side_up_to_three_times():
    from deepprior.stopping import size_cap

    assert size_cap(2000, 64, 64) == size_cap(2000, 256, 256) == 2000
    assert size_cap(2000, 512, 512) == 4000 and size_cap(2000, 384, 768) == 4243
    assert size_cap(2000, 4096, 4096) == 6000


def test_a_given_max_steps_is_the_cap_whatever_the_size(photo, fast):
    noisy = add_noise(photo(32), 25, seed=0)
    _, report = deepprior.denoise(noisy, preset=fast, max_steps=7, seed=0, device="cpu")
    assert report["stopping"]["cap"] == 7
    _, report = deepprior.denoise(noisy, preset=fast, steps="auto", seed=0, device="cpu")
    assert report["stopping"]["cap"] == fast.steps


def test_the_cosine_schedule_lowers_the_learning_rate_to_a_tenth(photo, fast):
    from dataclasses import replace

    from deepprior.fitting import Callback
    from deepprior.job import Job
    from deepprior.runner import run

    seen: list[float] = []

    class Watch(Callback):
        def on_step(self, state):
            seen.append(state.optimizer.param_groups[0]["lr"])

    noisy = add_noise(photo(24), 25, seed=0)
    preset = replace(fast, lr=0.02, lr_schedule="cosine")
    run(Job("denoise", {"image": noisy}, preset=preset, steps=20, seed=0), callbacks=[Watch()])
    assert len(seen) == 20 and seen[-1] == pytest.approx(0.002)
    assert all(a > b for a, b in itertools.pairwise(seen))
    assert seen[0] == pytest.approx(0.02 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi / 20))))
    with pytest.raises(UserError, match="lr_schedule"):
        run(Job("denoise", {"image": noisy}, preset=replace(fast, lr_schedule="step"), steps=2))
    # a fit that may run past its cap lowers the rate over the cap, not over its ceiling
    seen.clear()
    inputs = {"image": photo(32)}
    # seed 0: a drawn seed whose held-back error happened to flatten by step 20 stopped there
    options = {"degradation": "blur:gaussian:1"}
    job = Job("restore", inputs, options, preset=preset, patience=10, seed=0)
    report = run(replace(job, overrides={"steps": 20}), callbacks=[Watch()]).report
    assert report.stopping["ceiling"] == 60 and report.steps_run > 20
    assert seen[19] == pytest.approx(0.002) and set(seen[19:]) == {seen[19]}
