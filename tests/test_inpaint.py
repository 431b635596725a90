import json
from dataclasses import replace

import numpy as np
import pytest

import deepprior
from deepprior import masks, presets
from deepprior.baselines import inpaint_biharmonic, inpaint_opencv
from deepprior.errors import UserError
from deepprior.io import Picture, read_image, write_image
from deepprior.metrics import psnr


@pytest.fixture
def fast_inpaint_presets(monkeypatch):
    for name, preset in list(presets.INPAINT_PRESETS.items()):
        small = {"down": (16, 16, 16), "up": (16, 16, 16), "skip": (4, 4, 4)}
        if preset.net_options.get("skip") == (0,) * 5 or name == "region":
            small["skip"] = (0, 0, 0)
        monkeypatch.setitem(
            presets.INPAINT_PRESETS, name, replace(preset, steps=4, net_options=small)
        )


def test_random_pixels_follow_numpy_and_the_drop_share():
    known = masks.random_pixels(64, 64, 0.5, seed=0)
    assert np.array_equal(known, np.random.default_rng(0).random((64, 64)) > 0.5)
    assert 0.45 < known.mean() < 0.55
    with pytest.raises(UserError, match="between 0 and 1"):
        masks.random_pixels(8, 8, 1.0)


def test_mask_sources():
    image = np.zeros((20, 20, 3), np.float32)
    image[5:10, 5:10] = 1.0
    assert masks.from_mask_image(image).sum() == 25
    assert masks.from_mask_image(image, invert=True).sum() == 400 - 25
    assert (~masks.from_colour(image, (1.0, 1.0, 1.0))).sum() == 25
    alpha = np.ones((20, 20), np.float32)
    alpha[0] = 0
    assert (~masks.from_alpha(alpha)).sum() == 20
    for generated in (
        masks.text_overlay(64, 96, "deep prior"),
        masks.strokes(64, 64),
        masks.boxes(64, 64),
    ):
        assert 0 < (~generated).mean() < 0.6


def test_masks_are_validated():
    with pytest.raises(UserError, match="size"):
        masks.validate(np.ones((10, 12), bool), 12, 10)
    with pytest.raises(UserError, match="no hole"):
        masks.validate(np.ones((10, 10), bool), 10, 10)
    with pytest.raises(UserError, match="no known"):
        masks.validate(np.zeros((10, 10), bool), 10, 10)


def test_the_preset_follows_the_mask_shape():
    assert masks.MaskShape.of(masks.random_pixels(128, 128, 0.5)).preset_name() == "pixels"
    assert masks.MaskShape.of(masks.text_overlay(128, 128, "hello")).preset_name() == "text"
    hole = np.ones((128, 128), bool)
    hole[30:90, 40:100] = False
    assert masks.MaskShape.of(hole).preset_name() == "hole"
    hole[100:126, 4:40] = False  # a second wide hole
    assert masks.MaskShape.of(hole).preset_name() == "region"


def test_inpainting_fills_holes_better_than_the_input_and_keeps_known_pixels(photo, fast):
    clean = photo(48)
    known = masks.random_pixels(48, 48, 0.5, seed=1)
    preset = replace(fast, steps=150, lr=0.02, input_noise=0.0, backtrack_db=None)
    restored, report = deepprior.inpaint(
        clean * known[:, :, None], known, reference=clean, preset=preset, seed=0, device="cpu"
    )
    assert np.array_equal(restored[known], clean[known])
    assert report["metrics"]["psnr"] > report["metrics"]["psnr_input"] + 10
    holes = ~known
    assert psnr(restored[holes], clean[holes]) > psnr(0 * clean[holes], clean[holes]) + 10


def test_auto_preset_is_reported(photo, fast_inpaint_presets):
    clean = photo(32)
    known = masks.random_pixels(32, 32, 0.5)
    _, report = deepprior.inpaint(clean, known, seed=0, device="cpu")
    assert report["mask"]["preset"] == "pixels" and report["mask"]["chosen_automatically"]
    assert report["settings"]["lr"] == presets.INPAINT_PRESETS["pixels"].lr


def test_default_may_run_past_its_cap_while_improving_but_not_a_given_one(photo, fast):
    clean = photo(32)
    known = masks.random_pixels(32, 32, 0.5, seed=1)
    preset = replace(fast, steps=20, lr=0.02, backtrack_db=None)
    image = clean * known[:, :, None]
    options = {"preset": preset, "seed": 0, "device": "cpu", "patience": 10}
    _, report = deepprior.inpaint(image, known, **options)
    stopping = report["stopping"]
    assert (stopping["cap"], stopping["ceiling"], stopping["min_gain"]) == (20, 60, 0.03)
    # after 20 steps the held-out error still falls fast: the fit went on past the cap
    assert stopping["ran_past_cap"] and report["steps_run"] > 20
    for given in ({"max_steps": 20}, {"quality": "paper"}):
        _, report = deepprior.inpaint(image, known, **options, **given)
        assert report["stopping"]["cap"] == 20 and "ceiling" not in report["stopping"]
        assert report["steps_run"] <= 20


def test_baselines_fill_the_holes(photo):
    clean = photo(48)
    known = masks.random_pixels(48, 48, 0.5, seed=2)
    holed = clean * known[:, :, None]
    for filled in (
        inpaint_biharmonic(holed, known),
        inpaint_opencv(holed, known, "telea"),
        inpaint_opencv(holed, known, "ns"),
    ):
        assert filled.shape == clean.shape and psnr(filled, clean) > psnr(holed, clean) + 8


def test_cli_inpaint_from_a_mask_file_and_from_a_generator(
    photo, run_cli, tmp_path, fast_inpaint_presets
):
    image = write_image(tmp_path / "photo.png", Picture(photo(32)))
    mask = np.ones((32, 32, 1), np.float32)
    mask[8:16, 8:16] = 0
    mask_file = write_image(tmp_path / "mask.png", Picture(mask))
    report = tmp_path / "r.json"
    assert (
        run_cli(
            "inpaint",
            str(image),
            "--mask",
            str(mask_file),
            "-o",
            str(tmp_path / "a.png"),
            "--report",
            str(report),
            "-q",
        )
        == 0
    )
    assert json.loads(report.read_text())["mask"]["hole_fraction"] == pytest.approx(64 / 1024)
    assert (
        run_cli(
            "inpaint",
            str(image),
            "--drop",
            "0.5",
            "--reference",
            str(image),
            "-o",
            str(tmp_path / "b.png"),
            "-q",
        )
        == 0
    )
    assert read_image(tmp_path / "b.png").pixels.shape == (32, 32, 3)


def test_cli_inpaint_user_errors(photo, run_cli, tmp_path, fast_inpaint_presets, capsys):
    image = write_image(tmp_path / "photo.png", Picture(photo(32)))
    small = write_image(tmp_path / "small.png", Picture(np.ones((20, 20, 1), np.float32)))
    full = write_image(tmp_path / "full.png", Picture(np.ones((32, 32, 1), np.float32)))
    cases = [
        ["inpaint", str(image)],  # no mask given
        ["inpaint", str(image), "--mask", str(small)],
        ["inpaint", str(image), "--mask", str(full)],  # no hole
        ["inpaint", str(image), "--drop", "0.5", "--text", "x"],
        ["inpaint", str(image), "--drop", "1.5"],
        ["inpaint", str(image), "--hole-color", "red"],
    ]
    for argv in cases:
        assert run_cli(*argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("deepprior: error:") and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.png", "photo.png", "small.png"]


@pytest.mark.parametrize("name", sorted(presets.INPAINT_PRESETS))
def test_every_inpainting_preset_runs_its_real_network_on_a_small_image(photo, name):
    # The region net (6 levels, 5×5 filters) needs a 3×3 coarsest map: the canvas grows to fit.
    clean = photo(24)
    known = masks.random_pixels(24, 24, 0.3, seed=0)
    preset = replace(presets.INPAINT_PRESETS[name], steps=1)
    restored, report = deepprior.inpaint(
        clean, known, preset=preset, max_steps=1, seed=0, device="cpu"
    )
    assert restored.shape == clean.shape and np.isfinite(restored).all()
    assert report["steps_run"] == 1
    assert min(report["padded_size"]) >= 24


def test_scattered_pixels_end_averaged_with_biharmonic_interpolation(photo, fast_inpaint_presets):
    """The levels mix the fit with biharmonic interpolation where pixels are scattered, not
    in a hole; the known pixels stay the input's; ``biharmonic`` turns it on or off."""
    clean = photo(32)
    known = masks.random_pixels(32, 32, 0.5, seed=1)
    image = clean * known[:, :, None]
    options = {"reference": clean, "seed": 0, "device": "cpu"}
    mixed, report = deepprior.inpaint(image, known, **options)
    section = report["refine"]
    assert section["biharmonic"] and section["fit_share"] == 0.75
    assert report["quality"]["contains"].endswith("where scattered pixels are missing")
    fit, off = deepprior.inpaint(image, known, biharmonic=False, **options)
    assert off["refine"] == {"biharmonic": False}
    assert psnr(fit, clean) == pytest.approx(section["psnr_before"])
    smooth = inpaint_biharmonic(image, known)
    holes = ~known
    expected = 0.75 * fit[holes] + 0.25 * smooth[holes]
    assert np.allclose(mixed[holes], expected, atol=1e-5)
    assert np.array_equal(mixed[known], clean[known])
    _, paper = deepprior.inpaint(image, known, quality="paper", **options)
    assert paper["refine"] == {"biharmonic": False}
    hole = np.ones((32, 32), bool)
    hole[8:24, 8:24] = False
    _, holed = deepprior.inpaint(clean * hole[:, :, None], hole, **options)
    assert holed["refine"]["biharmonic"] is False and "holes" in holed["refine"]["skipped"]
    _, asked = deepprior.inpaint(clean * hole[:, :, None], hole, biharmonic=True, **options)
    assert asked["refine"]["biharmonic"]
    with pytest.raises(UserError, match="biharmonic is true, false or None"):
        deepprior.inpaint(image, known, biharmonic="yes", device="cpu")  # type: ignore[arg-type]
