import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from deepprior import cli, presets
from deepprior.callbacks import Progress
from deepprior.io import Picture, read_image, write_image


@pytest.fixture(autouse=True)
def fast_presets(fast, monkeypatch):
    """Run the CLI with a small network so that each call takes a second."""
    monkeypatch.setitem(presets.DENOISE_PRESETS, "authors", replace(fast, steps=6))


@pytest.fixture
def noisy_png(tmp_path, noisy32):
    return write_image(tmp_path / "noisy.png", Picture(noisy32))


@pytest.fixture
def clean_png(tmp_path, clean32):
    return write_image(tmp_path / "clean.png", Picture(clean32))


def test_denoise_writes_the_output_and_a_full_report(
    run_cli, tmp_path, noisy_png, clean_png, capsys
):
    out, report = tmp_path / "out.png", tmp_path / "run.json"
    code = run_cli(
        "denoise",
        str(noisy_png),
        "-o",
        str(out),
        "--seed",
        "0",
        "--reference",
        str(clean_png),
        "--report",
        str(report),
        "--device",
        "cpu",
    )
    assert code == 0
    assert read_image(out).pixels.shape == (32, 32, 3)
    data = json.loads(report.read_text())
    assert data["task"] == "denoise" and data["seed"] == 0 and data["steps_run"] == 6
    assert {"psnr", "ssim", "psnr_input"} <= set(data["metrics"])
    assert "PSNR" in capsys.readouterr().err


def test_default_output_name_and_snapshots(run_cli, tmp_path, noisy_png):
    assert run_cli("denoise", str(noisy_png), "--steps", "4", "--save-every", "2", "-q") == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "noisy.denoised.png",
        "noisy.denoised.step00002.png",
        "noisy.denoised.step00004.png",
        "noisy.png",
    ]
    # a second run would overwrite them: it needs --force
    assert run_cli("denoise", str(noisy_png), "--steps", "4", "--save-every", "2", "-q") == 2


def test_paper_preset_and_steps_flag(fast, run_cli, tmp_path, noisy_png, monkeypatch):
    monkeypatch.setitem(presets.DENOISE_PRESETS, "paper", replace(fast, name="paper", steps=3))
    report = tmp_path / "r.json"
    assert (
        run_cli(
            "denoise",
            str(noisy_png),
            "-o",
            str(tmp_path / "a.png"),
            "--preset",
            "paper",
            "--report",
            str(report),
            "-q",
        )
        == 0
    )
    assert json.loads(report.read_text())["settings"]["name"] == "paper"
    assert (
        run_cli(
            "denoise",
            str(noisy_png),
            "-o",
            str(tmp_path / "b.png"),
            "--steps",
            "2",
            "--report",
            str(report),
            "--force",
            "-q",
        )
        == 0
    )
    assert json.loads(report.read_text())["steps_run"] == 2


def test_steps_auto_is_the_default_and_its_rule_is_reported(run_cli, tmp_path, noisy_png):
    report = tmp_path / "run.json"
    argv = ["denoise", str(noisy_png), "-o", str(tmp_path / "a.png"), "--report", str(report)]
    assert run_cli(*argv, "--stop", "variance", "--max-steps", "5", "--seed", "1", "-q") == 0
    data = json.loads(report.read_text())
    assert data["stopping"]["steps"] == "auto" and data["stopping"]["rule"] == "variance"
    assert data["stopping"]["cap"] == 5 and data["steps_run"] == 5


def test_sigma_and_runs_flags(run_cli, tmp_path, noisy_png):
    report = tmp_path / "run.json"
    argv = ["denoise", str(noisy_png), "-o", str(tmp_path / "b.png"), "--report", str(report)]
    assert run_cli(*argv, "--sigma", "25", "--runs", "2", "--seed", "3", "-q") == 0
    data = json.loads(report.read_text())
    assert [r["seed"] for r in data["runs"]] == [3, 1003]
    assert all(r["stopping"]["sigma_source"].startswith("given 25") for r in data["runs"])
    assert 15 < data["runs"][0]["stopping"]["sigma_255"] <= 25  # clipping leaves less
    assert "clip-corrected" in data["runs"][0]["stopping"]["sigma_source"]


def test_average_flag_sets_the_tail_average(run_cli, tmp_path, noisy_png):
    outputs = {}
    for decay in ("0", "0.9"):
        report = tmp_path / f"avg{decay}.json"
        out = tmp_path / f"avg{decay}.png"
        argv = ["denoise", str(noisy_png), "-o", str(out), "--report", str(report)]
        assert run_cli(*argv, "--steps", "6", "--average", decay, "--seed", "0", "-q") == 0
        data = json.loads(report.read_text())
        assert data["settings"]["average_decay"] == (None if decay == "0" else 0.9)
        outputs[decay] = read_image(out).pixels
    assert not np.array_equal(outputs["0"], outputs["0.9"])  # the average is what is returned
    assert run_cli("denoise", str(noisy_png), "--average", "1", "-q") == 2


def user_error_cases(tmp_path, noisy_png):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(noisy_png.read_bytes()[:50])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    existing = write_image(tmp_path / "existing.png", Picture(np.zeros((16, 16, 3), np.float32)))
    out = str(tmp_path / "new.png")
    cases = {
        "missing": ["denoise", str(tmp_path / "nope.png"), "-o", out],
        "corrupt": ["denoise", str(corrupt), "-o", out],
        "empty": ["denoise", str(empty), "-o", out],
        "directory input": ["denoise", str(tmp_path), "-o", out],
        "directory output": ["denoise", str(noisy_png), "-o", str(tmp_path)],
        "existing output": ["denoise", str(noisy_png), "-o", str(existing)],
        "unknown format": ["denoise", str(noisy_png), "-o", str(tmp_path / "x.gif2")],
        "unknown device": ["denoise", str(noisy_png), "-o", out, "--device", "tpu"],
        "zero steps": ["denoise", str(noisy_png), "-o", out, "--steps", "0"],
        "negative steps": ["denoise", str(noisy_png), "-o", out, "--steps", "-5"],
        "unknown flag": ["denoise", str(noisy_png), "-o", out, "--noise", "25"],
        "steps not a number": [
            "denoise",
            str(noisy_png),
            "-o",
            out,
            "--steps",
            "lots",
        ],
        "unknown rule": ["denoise", str(noisy_png), "-o", out, "--stop", "magic"],
        "zero runs": ["denoise", str(noisy_png), "-o", out, "--runs", "0"],
        "negative sigma": ["denoise", str(noisy_png), "-o", out, "--sigma", "-3"],
        "bad reference": ["denoise", str(noisy_png), "-o", out, "--reference", str(empty)],
        "reference size": ["denoise", str(noisy_png), "-o", out, "--reference", str(existing)],
    }
    if not torch.cuda.is_available():
        cases["cuda without GPU"] = ["denoise", str(noisy_png), "-o", out, "--device", "cuda"]
    return cases


def test_user_errors_are_one_line_exit_2_and_write_nothing(run_cli, tmp_path, noisy_png, capsys):
    for name, argv in user_error_cases(tmp_path, noisy_png).items():
        before = sorted(p.name for p in tmp_path.iterdir())
        assert run_cli(*argv) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("deepprior: error:") and "\n" not in err, (name, err)
        assert "Traceback" not in err
        assert sorted(p.name for p in tmp_path.iterdir()) == before, name


def test_ctrl_c_writes_the_current_result_and_exits_130(run_cli, tmp_path, noisy_png, monkeypatch):
    original = Progress.on_step

    def interrupt_at_third(self, state):
        original(self, state)
        if state.step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Progress, "on_step", interrupt_at_third)
    out, report = tmp_path / "out.png", tmp_path / "run.json"
    assert run_cli("denoise", str(noisy_png), "-o", str(out), "--report", str(report), "-q") == 130
    data = json.loads(report.read_text())
    assert data["interrupted"] is True and data["steps_run"] == 2
    assert read_image(out).pixels.shape == (32, 32, 3)


def test_sigterm_is_handled_like_ctrl_c(run_cli, tmp_path, noisy_png, monkeypatch):
    import os
    import signal

    original = Progress.on_step

    def terminate_at_third(self, state):
        original(self, state)
        if state.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Progress, "on_step", terminate_at_third)
    out, report = tmp_path / "out.png", tmp_path / "run.json"
    assert run_cli("denoise", str(noisy_png), "-o", str(out), "--report", str(report), "-q") == 130
    assert json.loads(report.read_text())["interrupted"] is True and out.exists()
    assert signal.getsignal(signal.SIGTERM) is not cli._interrupt_on_sigterm  # restored


def test_snapshots_keep_the_alpha_channel(run_cli, tmp_path, noisy32):
    alpha = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    source = write_image(tmp_path / "rgba.png", Picture(noisy32, alpha=alpha))
    out = tmp_path / "out.png"
    argv = ["denoise", str(source), "-o", str(out), "--steps", "2", "--save-every", "2", "-q"]
    assert run_cli(*argv) == 0
    snapshot = read_image(tmp_path / "out.step00002.png")
    assert snapshot.alpha is not None and np.abs(snapshot.alpha - alpha).max() < 1 / 255


def test_a_failing_write_is_one_line_and_leaves_no_file(
    run_cli, tmp_path, noisy_png, monkeypatch, capsys
):
    from deepprior import io

    def disk_full(path, picture, fmt):
        path.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io, "_encode", disk_full)
    out = tmp_path / "out.png"
    assert run_cli("denoise", str(noisy_png), "-o", str(out), "--steps", "2", "-q") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("deepprior: error: could not write") and "No space left" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noisy.png"]


def test_demo_writes_its_files(run_cli, tmp_path, capsys):
    out = tmp_path / "demo"
    assert run_cli("demo", "--out", str(out), "--steps", "3", "--device", "cpu", "-q") == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"clean.png", "noisy.png", "restored.png", "comparison.png", "report.json"}
    assert "PSNR" in capsys.readouterr().out
    assert run_cli("demo", "--out", str(out), "--steps", "3", "-q") == 2  # would overwrite


def test_help_and_version_exit_cleanly(run_cli, capsys):
    assert run_cli("--help") == 0
    assert "denoise" in capsys.readouterr().out
    assert run_cli("--version") == 0


@pytest.mark.parametrize("command", sorted(cli.cli.commands))
def test_every_commands_help_prints_as_written(run_cli, command, capsys):
    assert run_cli(command, "--help") == 0
    text = capsys.readouterr().out
    assert "Usage:" in text and "%%" not in text  # click prints help text as it is


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0), ("2.5m", 150.0)],
)
def test_durations_read_as_seconds(text, seconds):
    from deepprior.cli import Duration

    assert Duration().convert(text, None, None) == seconds
