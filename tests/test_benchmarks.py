"""The benchmark scripts run end to end on tiny settings (their figures are not checked here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepprior import allocator
from deepprior.io import Picture, read_image, write_image

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_script(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_denoise_benchmark_prints_a_table_and_writes_json(photo, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "astronaut.png", Picture(photo(40)))
    out = tmp_path / "result.json"
    stdout = run_script(
        str(BENCHMARKS / "denoise.py"),
        str(folder),
        "--crop",
        "32",
        "--steps",
        "20",
        "--checkpoints",
        "10",
        "20",
        "--target",
        "10",
        "--json",
        str(out),
    )
    assert "avg@20" in stdout and "commit" in stdout
    data = json.loads(out.read_text())
    entry = data["results"][0]
    assert entry["size"] == [32, 32, 3] and entry["at"]["20"]["average"] is not None
    assert entry["stopping"] == {"steps": 20}  # fixed steps, no rule cutting the run short
    assert {"commit", "machine", "versions", "settings"} <= set(data)


def test_speed_benchmark_measures_each_engine(tmp_path):
    out = tmp_path / "speed.json"
    stdout = run_script(
        str(BENCHMARKS / "speed.py"),
        "--sizes",
        "64",
        "--engines",
        "reference",
        "fast",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--json",
        str(out),
    )
    assert "x floor" in stdout
    results = json.loads(out.read_text())["results"]
    assert [r["engine"] for r in results] == ["reference", "fast"]
    assert all(r["seconds_per_step"] > 0 and r["step_gflop"] > 0 for r in results)


def test_allocator_benchmark_runs_both_settings_to_the_same_pixels(tmp_path):
    out = tmp_path / "allocator.json"
    stdout = run_script(
        str(BENCHMARKS / "allocator.py"), "--sizes", "48x32", "--steps", "3", "--json", str(out)
    )
    assert "page faults" in stdout
    results = json.loads(out.read_text())["results"]
    assert [r["mode"] for r in results] == ["defaults", "kept"]
    assert [r["reuses_freed_memory"] for r in results] == [False, allocator.available()]
    assert len({r["pixels_md5"] for r in results}) == 1


def test_batching_benchmark_stacks_fits_that_agree_with_separate_ones(tmp_path):
    out = tmp_path / "batching.json"
    stdout = run_script(
        str(BENCHMARKS / "batching.py"),
        *("--sizes", "64", "--steps", "1", "--warmup", "0", "--json", str(out)),
    )
    assert "stacked" in stdout and "commit" in stdout
    (result,) = json.loads(out.read_text())["results"]
    assert result["members"] == 2 and result["stacked_seconds"] > 0
    assert result["max_output_diff"] < 1e-4
    assert result["gradient_relative_diff"] < 0.05  # a 1/K slip reads 0.5
    # (BatchNorm over the 2×2 deepest map of a 64² input amplifies rounding to ~2 %; 7e-4 at 128²)


def test_sr_and_inpaint_benchmarks_run(photo, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "astronaut.png", Picture(photo(40)))
    sr_json, inpaint_json = tmp_path / "sr.json", tmp_path / "inpaint.json"
    stdout = run_script(
        str(BENCHMARKS / "sr.py"),
        str(folder),
        "--scale",
        "2",
        "--steps",
        "3",
        "--json",
        str(sr_json),
    )
    assert "bicubic" in stdout
    entry = json.loads(sr_json.read_text())["results"][0]
    assert entry["hr_size"] == [40, 40, 3] and entry["psnr_y_bicubic"] > 20
    stdout = run_script(
        str(BENCHMARKS / "inpaint.py"), str(folder), "--steps", "3", "--json", str(inpaint_json)
    )
    assert "biharmonic" in stdout
    entry = json.loads(inpaint_json.read_text())["results"][0]
    assert entry["preset"] == "pixels" and entry["psnr_biharmonic"] > entry["psnr_telea"] - 5


def test_stopping_benchmark_compares_rules_with_the_best_seen(photo, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "astronaut.png", Picture(photo(40)))
    out = tmp_path / "stopping.json"
    stdout = run_script(
        str(BENCHMARKS / "stopping.py"),
        "denoise",
        str(folder),
        "--crop",
        "32",
        "--cap",
        "30",
        "--seeds",
        "0",
        "1",
        "--runs",
        "2",
        "--json",
        str(out),
    )
    assert "mean gap" in stdout and "spread over 2 seeds" in stdout
    entry = json.loads(out.read_text())["results"][0]
    assert (
        entry["cap"] == 30
        and entry["best_seen"] >= max(r["psnr"] for r in entry["rules"].values()) - 1e-6
    )
    assert set(entry["rules"]) == {"noise-level (auto)", "variance", "noise-level (given σ)"}
    assert 2 <= entry["runs_2_steps"] <= 60 and entry["runs_2"] > 0


def test_inpaint_examples_script_uses_the_masks_preset_and_saves_panels(photo, tmp_path):
    folder, saved = tmp_path / "examples", tmp_path / "saved"
    folder.mkdir()
    write_image(folder / "vase.png", Picture(photo(64)))
    mask = np.ones((64, 64, 1), np.float32)
    mask[16:48, 16:48] = 0  # one wide hole: the authors' large-hole setting
    write_image(folder / "vase_mask.png", Picture(mask))
    out = tmp_path / "examples.json"
    stdout = run_script(
        str(BENCHMARKS / "inpaint_examples.py"),
        str(folder),
        "--steps",
        "3",
        "--save",
        str(saved),
        "--json",
        str(out),
    )
    assert "minutes" in stdout
    entry = json.loads(out.read_text())["results"][0]
    assert entry["preset"] == "hole" and entry["steps"] == 3
    assert abs(entry["hole_share"] - 0.25) < 1e-6
    panels = read_image(saved / "vase_side_by_side.png")
    assert panels.width > 3 * 64 and (saved / "vase_inpainted.png").exists()


def test_restore_benchmark_compares_with_classical_methods(photo, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "astronaut.png", Picture(photo(40)))
    for task, methods in (
        ("deblur", {"blurred input", "Richardson-Lucy", "Wiener", "deepprior"}),
        ("demosaic", {"OpenCV bilinear", "OpenCV VNG", "OpenCV EA", "deepprior"}),
    ):
        out = tmp_path / f"{task}.json"
        argv = (task, str(folder), "--crop", "32", "--max-steps", "3", "--json", str(out))
        stdout = run_script(str(BENCHMARKS / "restore.py"), *argv)
        assert "commit" in stdout and "mean deepprior" in stdout
        (entry,) = json.loads(out.read_text())["results"]
        assert set(entry["methods"]) == methods
    # JPEG restoration of a scikit-image photograph, without a folder, at a given level
    out = tmp_path / "jpeg.json"
    argv = ("jpeg", "--skimage", "coffee", "camera", "--crop", "32", "--quality", "fast")
    run_script(str(BENCHMARKS / "restore.py"), *argv, "--max-steps", "3", "--json", str(out))
    saved = json.loads(out.read_text())
    colour, gray = saved["results"]  # a gray photograph goes through JPEG as gray
    assert colour["image"] == "skimage:coffee" and gray["image"] == "skimage:camera"
    assert set(colour["methods"]) == {"JPEG 10", "deepprior"}
    assert saved["settings"]["quality"] == "fast" and colour["steps_run"] == 3
    # a photograph scikit-image does not have: one line saying so, no traceback
    wrong = ("jpeg", "--skimage", "nosuch", "--crop", "32")
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "restore.py"), *wrong], capture_output=True, text=True
    )
    assert done.returncode != 0 and "no bundled photograph 'nosuch'" in done.stderr
    assert "Traceback" not in done.stderr


def test_flash_benchmark_reports_the_guard(photo, tmp_path):
    folder = tmp_path / "pair"
    folder.mkdir()
    write_image(folder / "a_flash.png", Picture(photo(32)))
    write_image(folder / "a_noflash.png", Picture(photo(32) * 0.5))
    out = tmp_path / "flash.json"
    argv = (str(folder), "--shrink", "1", "--seeds", "0", "--steps", "3", "--json", str(out))
    stdout = run_script(str(BENCHMARKS / "flash.py"), *argv, "--out", str(tmp_path / "pics"))
    assert "collapse guard acted in" in stdout
    (entry,) = json.loads(out.read_text())["results"]
    assert entry["steps_run"] == 3 and "restarts" in entry
    assert (tmp_path / "pics" / "flash_seed0.png").exists()


def test_invert_benchmark_covers_layers_and_priors(photo, tmp_path):
    write_image(tmp_path / "building.png", Picture(photo(64)))
    out = tmp_path / "invert.json"
    argv = [str(tmp_path / "building.png"), "--size", "64", "--steps", "2", "--json", str(out)]
    argv += ["--layers", "conv1", "fc8", "--out", str(tmp_path / "grid")]
    run_script(str(BENCHMARKS / "invert.py"), *argv)
    results = json.loads(out.read_text())["results"]
    assert [(r["layer"], r["prior"]) for r in results] == [
        ("conv1", "dip"),
        ("conv1", "tv"),
        ("fc8", "dip"),
        ("fc8", "tv"),
    ]
    assert read_image(tmp_path / "grid" / "grid.png").pixels.shape == (128, 128, 3)


def test_device_check_runs_every_part_and_writes_json(photo, tmp_path):
    data = tmp_path / "data"
    (data / "CBM3D").mkdir(parents=True)
    write_image(data / "CBM3D" / "astronaut.png", Picture(photo(32)))
    out = tmp_path / "check"
    settings = {"DEVICE": "cpu", "SIZES": "64", "BATCH_SIZES": "64", "CAP": "20"}
    done = subprocess.run(
        ["bash", str(BENCHMARKS / "device_check.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **settings, "PYTHON": sys.executable, "DATA": str(data)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    speed = json.loads((out / "speed.json").read_text())["results"]
    assert [r["engine"] for r in speed] == ["fast-fp32-strict", "fast", "fast-bf16"]
    assert all(r["seconds_per_step"] > 0 for r in speed)
    assert json.loads((out / "batching.json").read_text())["results"][0]["members"] == 2
    (denoised,) = json.loads((out / "denoise_cbm3d.json").read_text())["results"]
    assert denoised["image"] == "astronaut" and denoised["cap"] == 20


def test_a_configuration_that_fails_is_a_row_not_a_crash(tmp_path):
    out = tmp_path / "speed.json"
    stdout = run_script(
        str(BENCHMARKS / "speed.py"),
        *("--sizes", "64", "--engines", "fast", "--steps", "1", "--warmup", "1"),
        *("--timeout-each", "0.01", "--json", str(out)),
    )
    assert "failed" in stdout
    (result,) = json.loads(out.read_text())["results"]
    assert result["failed"] == "over 0.01 s"


def test_wiener_mix_measures_the_pass_on_a_saved_early_iterate(photo, tmp_path):
    from deepprior.metrics import psnr
    from deepprior.stopping import estimate_noise_sigma
    from deepprior.synthetic import add_noise
    from deepprior.wiener import refine_fit

    clean = photo(32)
    noisy = add_noise(clean, 25, seed=0)
    early, fit = add_noise(clean, 10, seed=1), add_noise(clean, 5, seed=2)
    saved = tmp_path / "saved"
    saved.mkdir()
    arrays = {"clean": clean, "degraded": noisy, "fit": fit, "result": fit}
    np.savez_compressed(saved / "photo-best.npz", **arrays, early=early)
    out = tmp_path / "mix.json"
    run_script(
        str(BENCHMARKS / "wiener_mix.py"),
        str(saved),
        "--lever",
        "best",
        "--early",
        "--json",
        str(out),
    )
    (row,) = json.loads(out.read_text())["results"]
    sigma = estimate_noise_sigma(noisy)
    passes = [refine_fit(noisy, pilot, sigma) for pilot in (early, fit)]
    assert row["early fit"] == pytest.approx(psnr(early, clean), abs=1e-4)
    assert row["wiener on early"] == pytest.approx(psnr(passes[0], clean), abs=1e-3)
    assert row["early 1/2"] == pytest.approx(psnr((passes[0] + passes[1]) / 2, clean), abs=1e-3)
    assert row["wiener on early"] < row["wiener"]  # the final pilot (less noise) guides better
    one_pass = refine_fit(noisy, (early + fit) / 2, sigma)
    assert row["wiener on both"] == pytest.approx(psnr(one_pass, clean), abs=1e-3)
    np.savez_compressed(saved / "photo-best.npz", **arrays)
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "wiener_mix.py"),
            str(saved),
            "--lever",
            "best",
            "--early",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0 and "has no early iterate" in done.stderr


def test_frontier_benchmark_marks_the_levers_that_pay(photo, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "astronaut.png", Picture(photo(40)))
    out, plot = tmp_path / "frontier.json", tmp_path / "frontier.png"
    stdout = run_script(
        str(BENCHMARKS / "frontier.py"),
        *("denoise", str(folder), "--crop", "32", "--skimage", "coffee", "--max-steps", "8"),
        *("--levers", "default", "width 32", "runs 2", "--plot", str(plot), "--json", str(out)),
        *("--save-images", str(tmp_path / "saved")),
    )
    assert "frontier" in stdout and plot.read_bytes()[:4] == b"\x89PNG"
    results = json.loads(out.read_text())["results"]
    assert {r["image"] for r in results} == {"astronaut", "skimage:coffee"}
    assert all(r["steps_run"] <= 16 and r["seconds"] > 0 for r in results)
    assert all("psnr_fit" in r for r in results)  # the PSNR before the Wiener filter
    saved = np.load(tmp_path / "saved" / "astronaut-default.npz")
    assert saved["fit"].shape == saved["result"].shape == (32, 32, 3)
    assert not np.array_equal(saved["fit"], saved["result"])  # the filter changed it
    mix = tmp_path / "mix.json"
    run_script(
        str(BENCHMARKS / "wiener_mix.py"),
        *(str(tmp_path / "saved"), "--lever", "default", "--variants", "--pilots"),
        *("--json", str(mix)),
    )
    recomputed = {r["image"]: r for r in json.loads(mix.read_text())["results"]}
    for row in (r for r in results if r["lever"] == "default"):
        again_filtered = recomputed[row["image"].replace(":", "_") + "-default"]
        assert again_filtered["wiener"] == pytest.approx(row["psnr"], abs=1e-4)  # as the run did
        assert {"twice", "radius 19", "fit 20 %"} <= again_filtered.keys()
        # a turn not undone would lose several dB
        for averaged in ("turned 4", "grids 3", "best's pass"):
            assert abs(again_filtered[averaged] - again_filtered["wiener"]) < 0.5
        # BM3D's own second step on the same pilot lands near this filter (a colour transform
        # gone wrong would not), and CBM3D's first estimate is a better pilot than 8 steps' fit
        assert abs(again_filtered["bm3d step 2 on fit"] - again_filtered["wiener on fit"]) < 1.5
        assert again_filtered["wiener on cbm3d step 1"] > again_filtered["wiener on fit"]
        # the first step in the pilot lifts a fit of 8 steps
        assert again_filtered["wiener"] > again_filtered["wiener on fit"] + 0.5
        assert again_filtered["wiener on clean"] > again_filtered["wiener on cbm3d step 1"]
    again = tmp_path / "again.json"
    run_script(
        str(BENCHMARKS / "frontier.py"),
        *("denoise", str(folder), "--crop", "32", "--max-steps", "8", "--levers", "default"),
        *("--json", str(again)),
    )
    rerun = json.loads(again.read_text())["results"]
    first = [r["psnr"] for r in results if r["lever"] == "default" and r["image"] == "astronaut"]
    assert [r["psnr"] for r in rerun] == first  # seeded: a rerun is the same fit
    merged = run_script(
        str(BENCHMARKS / "frontier.py"),
        *("denoise", "--merge", str(out), "--versus", "width 32"),
    )
    assert "vs width 32" in merged and "runs 2" in merged and str(out) in merged


def test_frontier_benchmark_measures_super_resolution_at_another_factor(photo, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "astronaut.png", Picture(photo(40)))
    out, saved = tmp_path / "x2.json", tmp_path / "saved"
    run_script(
        str(BENCHMARKS / "frontier.py"),
        *("sr", str(folder), "--crop", "32", "--scale", "2", "--max-steps", "4"),
        *("--levers", "default", "--baselines", "--json", str(out), "--save-images", str(saved)),
    )
    data = json.loads(out.read_text())
    assert data["settings"]["preset"] == "x2" and data["settings"]["scale"] == 2
    images = np.load(saved / "astronaut-default.npz")
    assert images["degraded"].shape == (16, 16, 3) and images["result"].shape == (32, 32, 3)
    assert {r["lever"] for r in data["results"]} == {"default", "bicubic"}
    script = str(BENCHMARKS / "frontier.py")
    refused = [sys.executable, script, "denoise", str(folder), "--scale", "2"]
    done = subprocess.run(refused, capture_output=True, text=True)
    assert done.returncode == 2 and "--scale is super-resolution's factor" in done.stderr


def test_pass_by_step_benchmark_filters_each_snapshot(photo, tmp_path):
    from deepprior.synthetic import add_noise

    clean = photo(48)
    noisy = add_noise(clean, 25, 0)
    paths = {name: tmp_path / name for name in ("clean.png", "noisy.png")}
    write_image(paths["clean.png"], Picture(clean))
    write_image(paths["noisy.png"], Picture(noisy))
    # a fit that took in all the noise (step 20) and one that took in none of the image (step 4)
    write_image(tmp_path / "out.step00020.png", Picture(noisy))
    write_image(tmp_path / "out.step00004.png", Picture(np.full_like(clean, clean.mean())))
    out = tmp_path / "by_step.json"
    run_script(
        str(BENCHMARKS / "pass_by_step.py"),
        *(str(paths["noisy.png"]), str(paths["clean.png"])),
        *(str(tmp_path / "out.step00020.png"), str(tmp_path / "out.step00004.png")),
        *("--json", str(out)),
    )
    rows = json.loads(out.read_text())["results"]
    assert [r["step"] for r in rows] == [4, 20]
    assert rows[1]["pass"] > rows[1]["fit"] + 3  # the pass denoises even a fit of the noise
    # the first step, run once, gives what a run's own pass gives
    from deepprior.metrics import psnr
    from deepprior.stopping import estimate_noise_sigma
    from deepprior.wiener import refine_fit

    read = {name: read_image(path).pixels for name, path in paths.items()}
    sigma = estimate_noise_sigma(read["noisy.png"])
    fit = read_image(tmp_path / "out.step00020.png").pixels
    alone = psnr(refine_fit(read["noisy.png"], fit, sigma), read["clean.png"])
    assert rows[1]["pass"] == pytest.approx(alone, abs=1e-6)
    assert rows[0]["moved_sigma"] is None and rows[1]["moved_sigma"] > 0.05
    script = str(BENCHMARKS / "pass_by_step.py")
    given = [str(paths["noisy.png"]), str(paths["clean.png"]), str(paths["clean.png"])]
    done = subprocess.run([sys.executable, script, *given], capture_output=True, text=True)
    assert done.returncode != 0 and "not a snapshot" in done.stderr


def test_the_frontier_keeps_only_undominated_levers():
    sys.path.insert(0, str(BENCHMARKS))
    from frontier import frontier

    rows = [
        {"lever": "fast", "psnr": 28.0, "seconds": 10.0},
        {"lever": "good", "psnr": 30.0, "seconds": 40.0},
        {"lever": "worse and slower", "psnr": 27.0, "seconds": 20.0},
        {"lever": "best", "psnr": 30.5, "seconds": 80.0},
    ]
    assert frontier(rows) == {"fast", "good", "best"}


def test_batch_throughput_benchmark_measures_modes_and_the_kill_demo(photo, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "astronaut.png", Picture(photo(64)))
    out = tmp_path / "result.json"
    argv = [str(BENCHMARKS / "batch_throughput.py"), str(folder), "--images", "4", "--crop", "24"]
    stdout = run_script(*argv, "--steps", "5", "--modes", "serial", "workers-2", "--json", str(out))
    assert "images_per_minute" in stdout and "commit" in stdout
    results = json.loads(out.read_text())["results"]
    assert [(r["mode"], r["images"], r["failed"]) for r in results] == [
        ("serial", 4, 0),
        ("workers-2", 4, 0),
    ]
    run_script(*argv, "--images", "8", "--steps", "60", "--kill-demo", "--json", str(out))
    [demo] = json.loads(out.read_text())["results"]
    assert demo["killed_after_done"] >= 4 and demo["rerun_exit"] == 0 and demo["all_done"]
    assert demo["done_untouched"] == demo["results_before_rerun"] >= 4
    assert demo["results_after_rerun"] == demo["summary_rows"] == 8
