"""The task table, jobs as data, replay, and the runner's promises."""

import json
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from deepprior.canvas import to_tensor
from deepprior.errors import UserError
from deepprior.fitting import Callback, FitState
from deepprior.io import Picture, write_image
from deepprior.job import Job, load_job
from deepprior.metrics import psnr
from deepprior.operators import FromFunction
from deepprior.runner import run
from deepprior.tasks import TASKS, Problem, Task, load_picture


def test_a_job_round_trips_through_json_exactly(fast):
    job = Job(
        task="inpaint",
        inputs={"image": "/data/photo.png", "mask": "/data/mask.png"},
        options={"keep_known": False, "mask_seed": 3},
        preset=replace(fast, net_options={"down": (8, 8), "up": (8, 8), "skip": (0, 0)}),
        overrides={"lr": 0.02, "net_options": {"skip": (2, 2)}},
        seed=7,
        steps=30,
        runs=2,
        average=0.9,
    )
    again = Job.from_dict(json.loads(json.dumps(job.to_dict())))
    assert again == job
    assert Job.from_dict(json.loads(json.dumps(Job("denoise", {"image": "a.png"}).to_dict()))) == (
        Job("denoise", {"image": "a.png"})
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": 2.7}, "steps must be a positive whole number"),
        ({"steps": True}, "steps must be a positive whole number"),
        ({"runs": 0}, "runs must be"),
        ({"seed": -1}, "seed must be"),
        ({"average": 1.0}, "average must lie"),
        ({"options": {"scale": 4}}, "denoise has no option scale"),
        ({"inputs": {"image": "a.png", "mask": "m.png"}}, "denoise takes no input mask"),
        ({"task": "deblur"}, "unknown task"),
        ({"stop": "never"}, "unknown stopping rule"),
        ({"time_limit": 0}, "time_limit must be a positive number"),
        ({"time_limit": float("inf")}, "time_limit must be a positive number"),
        ({"time_limit": "5m"}, "time_limit must be a positive number"),
    ],
)
def test_a_job_no_run_could_take_is_refused_before_any_work(noisy32, change, message):
    job = replace(Job("denoise", {"image": noisy32}, device="cpu"), **change)
    with pytest.raises(UserError, match=message):
        run(job)


def test_job_files_are_checked(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"task": "denoise", "inputs": {"image": "a.png"}, "colour": 1}')
    with pytest.raises(UserError, match="unknown job fields colour"):
        load_job(bad)
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_job(bad)
    in_memory = Job("denoise", {"image": np.zeros((16, 16, 3), np.float32)}).to_dict()
    assert (
        in_memory["inputs"]["image"]["in_memory"]
        and len(in_memory["inputs"]["image"]["sha256"]) == 64
    )
    bad.write_text(json.dumps({"job": in_memory}))
    with pytest.raises(UserError, match="image in memory"):
        load_job(bad)


@pytest.mark.parametrize(
    "command",
    [
        ["denoise", "{image}", "--max-steps", "30"],
        ["sr", "{image}", "--scale", "2", "--steps", "8"],
        ["inpaint", "{image}", "--drop", "0.5", "--max-steps", "20", "--runs", "2"],
    ],
    ids=["denoise", "sr", "inpaint"],
)
def test_run_replays_a_report_bit_identically(run_cli, small_presets, tmp_path, noisy32, command):
    image = write_image(tmp_path / "in.png", Picture(noisy32))
    argv = [part.format(image=image) for part in command]
    first, report = tmp_path / "first.png", tmp_path / "first.json"
    assert run_cli(*argv, "-o", str(first), "--report", str(report), "--seed", "4", "-q") == 0
    recorded = json.loads(report.read_text())
    assert recorded["job"]["task"] == command[0] and recorded["job"]["seed"] == 4
    again = tmp_path / "again.png"
    assert run_cli("run", str(report), "-o", str(again), "-q") == 0
    assert again.read_bytes() == first.read_bytes()
    assert run_cli("run", str(report), "-o", str(again), "-q") == 2  # it exists: needs --force


def test_a_seedless_run_records_the_seed_it_drew_and_replays(small_presets, noisy32, tmp_path):
    path = write_image(tmp_path / "in.png", Picture(noisy32))
    job = Job("inpaint", {"image": str(path)}, options={"drop": 0.3}, steps=6, device="cpu")
    first = run(job)
    recorded = Job.from_dict(first.report.job)
    assert isinstance(recorded.seed, int)
    assert np.array_equal(run(recorded).picture.pixels, first.picture.pixels)


def _gray_build(job: Job, options: dict) -> Problem:
    """A toy task, colourisation: the observation is the luma of the image to find."""
    picture = load_picture(job.inputs["image"])
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    luma = picture.pixels @ weights.view(3, 1).numpy()
    return Problem(
        picture=picture,
        observation=to_tensor(luma),
        operator=FromFunction(lambda x: (x * weights.to(x)).sum(1, keepdim=True), linear=True),
        out_size=(picture.height, picture.width),
        out_channels=3,
        observed=torch.ones(1, 1, picture.height, picture.width),
        preset="authors",
        options=options,
    )


def test_a_new_task_is_one_entry(fast, clean32, monkeypatch):
    task = Task(
        name="colourise",
        summary="Colour from gray.",
        presets={"authors": replace(fast, steps=300, lr=0.02)},
        options={},
        default_stop="validation",
        output_tag=lambda options: "colour",
        build=_gray_build,
    )
    monkeypatch.setitem(TASKS, "colourise", task)
    outcome = run(Job("colourise", {"image": clean32}, seed=0, device="cpu"))
    luma = clean32 @ np.array([0.299, 0.587, 0.114], np.float32)
    fitted = outcome.picture.pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    assert outcome.picture.pixels.shape == clean32.shape
    assert np.abs(fitted - luma).mean() < np.abs(luma - luma.mean()).mean() / 2
    assert outcome.report.task == "colourise" and outcome.report.stopping["rule"] == "validation"


def test_the_package_exports_the_fit_function_and_the_api():
    import deepprior
    import deepprior.runner  # imports the deepprior.fitting module too

    assert callable(deepprior.fit) and deepprior.fit.__name__ == "fit"
    assert deepprior.run is run and deepprior.Job is Job and callable(deepprior.denoise)


def test_import_and_help_load_no_scipy_or_scikit_image():
    code = (
        "import sys, deepprior, deepprior.cli\n"
        "from click.testing import CliRunner\n"
        "assert CliRunner().invoke(deepprior.cli.cli, ['--help']).exit_code == 0\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'skimage', 'cv2'})\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_a_time_limit_ends_the_fit_with_its_best_result(fast, noisy32, clean32):
    started = time.perf_counter()
    job = Job(
        "denoise",
        {"image": noisy32, "reference": clean32},
        preset=fast,
        steps=100_000,
        time_limit=2.0,
        seed=0,
        device="cpu",
    )
    outcome = run(job)
    assert time.perf_counter() - started < 20
    reached = outcome.report.stopping["time_limit_reached_at"]
    assert outcome.report.stopping["time_limit_s"] == 2.0
    assert reached == outcome.report.steps_run < 100_000
    assert outcome.report.metrics["psnr"] > outcome.report.metrics["psnr_input"] + 2


def test_a_time_limit_keeps_the_stopping_rules_best_iterate_and_skips_later_runs(
    fast, noisy32, clean32
):
    job = Job(
        "denoise",
        {"image": noisy32, "reference": clean32},
        preset=replace(fast, steps=100_000),
        steps="auto",
        stop="variance",
        runs=3,
        time_limit=2.0,
        seed=0,
        device="cpu",
    )
    report = run(job).report
    assert len(report.runs) == 1  # the time was spent by the first fit
    stopping = report.stopping
    assert stopping["fired_at"] is None and stopping["time_limit_reached_at"] is not None
    assert stopping["selected_step"] <= stopping["time_limit_reached_at"]


class _SleepPastTheLimitInTheSecondFit(Callback):
    """Sleeps at the second fit's fifth step until ``until`` (past the run's time limit)."""

    def __init__(self, until: float):
        self.until, self.fits = until, 0

    def on_start(self, state: FitState) -> None:
        self.fits += 1

    def on_step(self, state: FitState) -> None:
        if self.fits == 2 and state.step == 5:
            time.sleep(max(0.0, self.until - time.perf_counter()))


def test_a_fit_the_time_limit_cuts_short_is_left_out_of_the_average(fast, noisy32, clean32):
    limit = 10.0  # ample for the first fit's 40 steps of 32²
    job = Job(
        "denoise",
        {"image": noisy32, "reference": clean32},
        preset=fast,
        steps=fast.steps,
        runs=2,
        time_limit=limit,
        seed=0,
        device="cpu",
    )
    outcome = run(job, callbacks=[_SleepPastTheLimitInTheSecondFit(time.perf_counter() + limit)])
    whole, cut = outcome.report.runs
    assert whole["steps_run"] == fast.steps and cut["steps_run"] < 10
    assert (whole["averaged"], cut["averaged"]) == (True, False)
    assert psnr(outcome.image, clean32) == pytest.approx(whole["metrics"]["psnr"])
    assert whole["metrics"]["psnr"] > cut["metrics"]["psnr"] + 1


def test_best_cut_to_one_fit_by_its_time_limit_still_ends_with_the_pass(fast, noisy32):
    job = Job(
        "denoise",
        {"image": noisy32},
        preset=fast,
        steps=100_000,  # no rule: the time limit ends the first fit
        quality="best",
        time_limit=2.0,
        seed=0,
        device="cpu",
    )
    report = run(job).report
    assert report.sections["quality"]["runs"] > 1 and len(report.runs) == 1
    assert report.sections["refine"]["wiener"] is True and report.sections["quality"]["refine"]
