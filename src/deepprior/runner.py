"""The runner: a job -> its task's problem -> one or more fits -> the result and one report.

Every task runs through :func:`run`: the job is checked, the device and engine resolved, the
task builds its problem (observation, operator, code), the stopping rule is planned, ``runs``
fits are made (net and code from the preset, seeded), averaged, finished by the task, and
measured against the reference once. The report is assembled here and nowhere else.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from .allocator import hands_memory_back, keep_freed_memory
from .callbacks import (
    CosineLearningRate,
    ExponentialAverage,
    History,
    Progress,
    Snapshots,
    TimeLimit,
)
from .canvas import padded_layout, to_numpy, to_tensor
from .data_terms import MSE
from .engine import Engine, plan_memory, resolve_device, resolve_engine
from .errors import UserError
from .fitting import Backtracking, Callback, FitResult, fit
from .inputs import build_code, code_channels
from .io import MAX_PIXELS, Picture
from .job import Job
from .metrics import psnr, ssim
from .nets import SIZED_NETS, build_net, count_parameters, min_side, size_multiple
from .orientation import NAMES as ORIENTATION_NAMES
from .orientation import ORIENTATIONS, orient, oriented_size
from .presets import Preset
from .quality import Quality, get_quality
from .report import Report, versions
from .stopping import (
    STOP_RULES,
    NoiseLevelRule,
    Stopping,
    StoppingRule,
    parse_steps,
    plan_steps,
)
from .tasks import Problem, Task, get_task, load_picture


@dataclass
class Outcome:
    """A finished (or interrupted) run: the result, the fitted pixels and the report.

    ``image`` is the fit's output (H×W×C, averaged over runs) before the task refined and
    finished it into ``picture``; ``early_image`` the same for the iterates the noise-level
    rule kept early (``Quality.early_pilot``; None when it kept none); ``result``, ``history``
    and ``rule`` are the last fit's.
    """

    picture: Picture
    image: np.ndarray
    report: Report
    result: FitResult
    history: History
    rule: StoppingRule | None = None
    early_image: np.ndarray | None = None

    @property
    def interrupted(self) -> bool:
        return self.result.interrupted


# A guarded fit none of whose outputs has passed the guard by this step is stuck: on the
# flash/no-flash cave pair (1/12 size, seeds 0-5) good runs pass it by step 20-100, and
# stuck ones stay red to the end (1/6 size: 2 of 5 seeds).
GUARD_ARM_WITHIN = 150
MAX_RESTARTS = 3
RESTART_SEED_STEP = 7919  # a stuck fit restarts from seed + this


@dataclass(frozen=True)
class _Setup:
    """What every fit of one job shares (all but the seed and the label)."""

    problem: Problem
    preset: Preset
    device: torch.device
    engine: Engine
    stopping: Stopping | None
    callbacks: Sequence[Callback]
    progress: bool
    history_every: int
    deadline: float | None = None  # time.perf_counter() at which fits end (the time limit)


@dataclass
class _Fit:
    image: np.ndarray
    result: FitResult
    history: History
    rule: StoppingRule | None
    fields: dict[str, Any]
    guard_fired: int = 0
    stuck_at: int | None = None
    time_limit_at: int | None = None  # the step at which the time limit ended the fit
    restarts: list[dict[str, Any]] = field(default_factory=list)
    early_image: np.ndarray | None = None  # the noise-level rule's early iterate (H×W×C)


@dataclass(frozen=True)
class Checked:
    """A job's task, its options (defaults filled in), and the device and engine it runs on."""

    task: Task
    options: dict[str, Any]
    device: torch.device
    engine: Engine
    quality: Quality


def prepare(job: Job) -> Checked:
    """Check everything about a job that needs no image: task, options, counts, device, engine."""
    job.check()
    task = get_task(job.task)
    options = task.resolve_options(job.options)
    if task.needs_image and "image" not in job.inputs:
        raise UserError("a job needs an input image: inputs={'image': PATH_OR_ARRAY}")
    unknown = sorted(set(job.inputs) - {"image", *task.inputs})
    if unknown:
        raise UserError(
            f"{task.name} takes no input {', '.join(unknown)}; it reads image"
            + "".join(f", {name}" for name in task.inputs)
        )
    if job.stop not in STOP_RULES:
        raise UserError(f"unknown stopping rule {job.stop!r}; use {', '.join(STOP_RULES)}")
    quality = get_quality(task.name, job.quality)
    device = resolve_device(job.device)
    engine = resolve_engine(job.engine, job.precision, device)
    return Checked(task, options, device, engine, quality)


@hands_memory_back
def run(
    job: Job,
    *,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
    history_every: int = 10,
    watch_only: bool = False,
    save_every: int | None = None,
    save: Callable[[int, Picture], None] | None = None,
    ready: Callable[[Picture], None] | None = None,
) -> Outcome:
    """Run a job: build its task's problem, fit it ``job.runs`` times, finish and measure.

    ``callbacks`` join every fit (custom stopping, logging); ``watch_only`` lets the fit run
    to its cap while the stopping rule only records its choice (for benchmarks). With
    ``save_every``, ``save(step, picture)`` receives the current result every that many steps,
    finished as the final one is (alpha, known pixels). ``ready(preview)`` is called once the
    inputs are read, before any network exists, with a blank picture of the result's size and
    mode, so that a caller can check its outputs can hold it.
    """
    started = time.perf_counter()
    checked = prepare(job)
    task, device, engine = checked.task, checked.device, checked.engine
    problem = task.build(job, checked.options)
    height, width = problem.out_size
    if height * width > MAX_PIXELS:
        raise UserError(
            f"the result would be {width}×{height}, over the {MAX_PIXELS // 10**6} MP limit; "
            "use a smaller image or scale"
        )
    if ready is not None:
        blank = np.zeros((height, width, problem.out_channels), np.float32)
        ready(task.finish(problem, blank))
    if problem.reference is None and "reference" in job.inputs:
        problem.reference = _reference(load_picture(job.inputs["reference"]), problem)
    quality = checked.quality
    preset = _preset(task, job, problem, quality)
    quality = quality.on(preset)
    seed = secrets.randbelow(2**31) if job.seed is None else int(job.seed)
    runs = job.runs if job.runs is not None else quality.runs
    ensemble = job.ensemble if job.ensemble is not None else quality.ensemble
    patience = job.patience
    if patience is None and parse_steps(job.steps) is None:
        patience = quality.patience
    preset, stopping = plan_steps(
        preset,
        job.steps,
        job.stop,
        job.max_steps,
        default_rule=task.default_stop,
        observed=problem.observed,
        seed=seed,
        sigma=problem.sigma,
        estimate_from=problem.noisy,
        patience=patience,
        image_size=problem.out_size,
        extend=quality.extend and problem.may_run_past_cap,
    )
    if stopping is None or stopping.soft_cap is None:  # the report says only what runs
        quality = quality.held_to_cap()
    if stopping is not None:
        stopping = replace(
            stopping,
            factor=quality.noise_factor,
            early_factor=quality.early_pilot,
            stall=quality.stall,
            watch_only=watch_only,
        )
    if save_every and save is not None:
        keep = save

        def snapshot(step: int, image: torch.Tensor) -> None:
            keep(step, task.finish(problem, to_numpy(image)))

        callbacks = [*callbacks, Snapshots(save_every, snapshot)]
    deadline = started + job.time_limit if job.time_limit is not None else None
    setup = _Setup(
        problem, preset, device, engine, stopping, callbacks, progress, history_every, deadline
    )
    fits: list[_Fit] = []
    for index in range(runs):
        if index and _past(deadline):
            break  # out of time: the fits done are averaged
        label = task.name if runs == 1 else f"{task.name} {index + 1}/{runs}"
        fits.append(_fit_guarded(setup, label, seed + 1000 * index, _orientation(ensemble, index)))
        if fits[-1].result.interrupted:
            break
    finished = _averaged(fits)
    image = np.mean([f.image for f in finished], axis=0).astype(np.float32)
    refined, refine_section = image, None
    early = _early_iterate(finished)
    if task.refine is not None and any(f.result.steps_run for f in fits):
        pilots = [image] if early is None else [early, image]
        refined, refine_section = task.refine(problem, pilots, quality, deadline)
    picture = task.finish(problem, refined)
    last = fits[-1]
    report = Report(
        job=job.with_seed(seed).to_dict(),
        task=task.name,
        settings=preset.to_dict() | problem.settings,
        seed=seed,
        **last.fields,
        stopping=_stopping_summary(setup, last.rule) | _time_limit_summary(job, fits),
        seconds_total=round(time.perf_counter() - started, 3),
        seconds_per_step=round(last.result.seconds_per_step, 5),
        backtracks=last.result.backtracks,
        interrupted=last.result.interrupted,
        steps_run=sum(f.result.steps_run for f in fits),
        history=last.history.records if runs == 1 else None,
        sections={
            **problem.sections,
            "quality": quality.describe()
            | {"runs": runs, "ensemble": ensemble, "patience": patience},
            **({"refine": refine_section} if refine_section is not None else {}),
        },
    )
    if problem.guard is not None:
        report.sections = {
            **report.sections,
            "collapse_guard": {
                "rule": problem.guard_rule,
                "fired": sum(f.guard_fired for f in fits),
                "restarts": [restart for f in fits for restart in f.restarts],
            },
        }
    reference = problem.reference
    if runs > 1:
        report.runs = [
            {
                "seed": seed + 1000 * index,
                **({"orientation": ORIENTATION_NAMES[index % ORIENTATIONS]} if ensemble else {}),
                "steps_run": f.result.steps_run,
                "averaged": any(f is kept for kept in finished),
                "stopping": _stopping_summary(setup, f.rule),
                "metrics": _quality(f.image, reference) if f.result.steps_run else {},
            }
            for index, f in enumerate(fits)
        ]
    if any(f.result.steps_run for f in fits):
        metrics = _quality(picture.pixels, reference)
        if reference is not None and runs == 1:
            key = "psnr_average" if last.result.average is not None else "psnr"
            best = last.history.best(key)
            if best is not None:
                metrics["best_along_run"] = best
        metrics.update(task.metrics(problem, picture.pixels))
        report.metrics = metrics or None
    return Outcome(picture, image, report, last.result, last.history, last.rule, early)


def _averaged(fits: list[_Fit]) -> list[_Fit]:
    """The fits whose results are averaged: those that ended by themselves (their rule or
    step count). A fit the time limit or Ctrl-C cut short joins only when none did: the
    ensemble's third fit on a 256² photograph, cut after 229 of its steps at 20 dB, took the
    average of two whole ones at 28.8 dB down to 26.2 (README, session 33)."""
    made = [f for f in fits if f.result.steps_run] or fits  # an interrupted run may have none
    whole = [f for f in made if f.time_limit_at is None and not f.result.interrupted]
    return whole or made


def _early_iterate(fits: list[_Fit]) -> np.ndarray | None:
    """The mean of the fits' early iterates (see ``Quality.early_pilot``), when every fit kept
    one before the iterate it ended with; else None."""
    early = [f.early_image for f in fits if f.early_image is not None]
    if not early or len(early) < len(fits):
        return None
    return np.stack(early).mean(axis=0, dtype=np.float32)


def _quality(pixels: np.ndarray, reference: np.ndarray | None) -> dict[str, Any]:
    if reference is None:
        return {}
    return {"psnr": psnr(pixels, reference), "ssim": ssim(pixels, reference)}


def _reference(reference: Picture, problem: Problem) -> np.ndarray:
    expected = (*problem.out_size, problem.out_channels)
    if reference.pixels.shape != expected:
        h, w, c = expected
        raise UserError(
            f"the reference is {reference.width}×{reference.height}×{reference.channels} but "
            f"the result will be {w}×{h}×{c}; give the clean image the result should match"
        )
    return reference.pixels


def _preset(task: Task, job: Job, problem: Problem, quality: Quality) -> Preset:
    """The job's preset (by name or given), else the problem's default, changed by the quality
    level (for the restored image's size), then by the job's overrides."""
    if isinstance(job.preset, Preset):
        chosen = job.preset
    else:
        chosen = task.preset(job.preset if job.preset is not None else problem.preset)
    chosen = quality.preset(chosen, min(problem.out_size)).with_overrides(job.overrides)
    if job.average is not None:
        chosen = replace(chosen, average_decay=job.average or None)
    return chosen


def _stopping_summary(setup: _Setup, rule: StoppingRule | None) -> dict[str, Any]:
    stopping, steps = setup.stopping, setup.preset.steps
    if stopping is None or rule is None:
        return {"steps": steps}
    out = {"steps": "auto", "cap": steps, **stopping.describe(), **rule.summary()}
    if stopping.soft_cap is not None:  # the cap the fit may run past, and how far
        last = rule.scores[-1][0] if rule.scores else 0
        out.update(cap=stopping.soft_cap, ceiling=steps, ran_past_cap=last > stopping.soft_cap)
    return out


def _orientation(ensemble: bool, index: int) -> int:
    """The orientation run ``index`` draws the image in: all as given, unless self-ensembling."""
    return index % ORIENTATIONS if ensemble else 0


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.perf_counter() >= deadline


def _time_limit_summary(job: Job, fits: list[_Fit]) -> dict[str, Any]:
    """The time limit and where it ended the fits (None: it never did)."""
    if job.time_limit is None:
        return {}
    reached = next((f.time_limit_at for f in fits if f.time_limit_at is not None), None)
    return {"time_limit_s": job.time_limit, "time_limit_reached_at": reached}


def _fit_guarded(setup: _Setup, label: str, seed: int, orientation: int = 0) -> _Fit:
    """One fit; a fit the problem's guard found stuck (no good state by ``GUARD_ARM_WITHIN``
    steps, or a final output that fails it) starts afresh from another seed at half the
    learning rate, ``MAX_RESTARTS`` times at most."""
    attempt = _fit_once(setup, label, seed, orientation)
    guard, restarts = setup.problem.guard, []
    for restart in range(1, MAX_RESTARTS + 1):
        if attempt.result.interrupted or not attempt.result.steps_run or _past(setup.deadline):
            break
        failed = guard is not None and guard(to_tensor(attempt.image))
        if attempt.stuck_at is None and not failed:
            break
        preset = replace(setup.preset, lr=setup.preset.lr * 0.5**restart)
        restarts.append(
            {
                "seed": seed,
                "lr": setup.preset.lr * 0.5 ** (restart - 1),
                "steps_run": attempt.result.steps_run,
                "why": "final output failed it"
                if attempt.stuck_at is None
                else "no output passed the guard",
            }
        )
        seed += RESTART_SEED_STEP
        attempt = _fit_once(
            replace(setup, preset=preset), f"{label} (restart {restart})", seed, orientation
        )
    attempt.restarts = restarts
    return attempt


def _fit_once(setup: _Setup, label: str, seed: int, orientation: int = 0) -> _Fit:
    """One fit from ``seed``: net and code built, memory planned, the fit run; the net draws
    the image in ``orientation`` (see :mod:`deepprior.orientation`)."""
    problem, preset, device = setup.problem, setup.preset, setup.device
    height, width = oriented_size(*problem.out_size, orientation)
    source = problem.code_source
    if source is not None and orientation:
        source = orient(source, orientation)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sized = {"size": (height, width)} if preset.net in SIZED_NETS else {}
        net = build_net(
            preset.net,
            code_channels(preset.code, preset.code_channels, source),
            problem.out_channels,
            **preset.net_options,
            **sized,
        )
    padded_h, padded_w, top, left = padded_layout(height, width, size_multiple(net), min_side(net))
    z = build_code(
        preset.code,
        padded_h,
        padded_w,
        channels=preset.code_channels,
        scale=preset.code_scale,
        generator=torch.Generator().manual_seed(seed + 1),
        source=source,
    )
    net, z = net.to(device), z.to(device)
    try:
        plan = plan_memory(net, z.shape[1], (padded_h, padded_w), setup.engine, device)
    except MemoryError as error:
        raise UserError(
            f"a {width}×{height} image does not fit on {device}: {error}; use a smaller "
            "image, precision 'bf16', or a device with more memory"
        ) from None
    # Large blocks from the heap, freed memory kept for the next step, where there is room
    # (see deepprior.allocator): on until the run ends, so the refining pass gains as well.
    reusing = keep_freed_memory(device.type == "cpu" and plan.roomy)
    y = problem.observation.to(device)
    operator = problem.operator.to(device)
    stopping = setup.stopping
    if problem.data_term is not None:
        data_term = problem.data_term
        if isinstance(data_term, nn.Module):
            data_term = data_term.to(device)
    else:
        weight = stopping.train_weight if stopping is not None else None
        data_term = MSE(y, operator, weight)
    reference = to_tensor(problem.reference, device) if problem.reference is not None else None
    history = History(every=setup.history_every, reference=reference)
    chain: list[Callback] = []
    if preset.average_decay is not None:
        chain.append(ExponentialAverage(preset.average_decay, warmup=preset.average_warmup))
    if preset.lr_schedule not in ("constant", "cosine"):
        raise UserError(f"lr_schedule is 'constant' or 'cosine', got {preset.lr_schedule!r}")
    soft_cap = stopping.soft_cap if stopping is not None else None
    if preset.lr_schedule == "cosine":  # over the cap; a fit that runs past it keeps the floor
        chain.append(CosineLearningRate(preset.lr, soft_cap or preset.steps))
    rule = stopping.rule(operator, y) if stopping is not None else None
    limit = TimeLimit(setup.deadline) if setup.deadline is not None else None
    chain += [
        history,
        *([rule] if rule else []),
        *([limit] if limit else []),
        *setup.callbacks,
        Progress(label, quiet=not setup.progress, total=soft_cap),
    ]
    backtracking = None
    if preset.backtrack_db is not None or problem.guard is not None:
        arm_within = GUARD_ARM_WITHIN if problem.guard is not None else None
        backtracking = Backtracking(preset.backtrack_db, guard=problem.guard, arm_within=arm_within)
    result = fit(
        net,
        z,
        data_term,
        steps=preset.steps,
        lr=preset.lr,
        input_noise=preset.input_noise,
        crop=(top, left, height, width),
        backtracking=backtracking,
        callbacks=chain,
        generator=torch.Generator(device=device).manual_seed(seed + 2),
        engine=plan.engine,
        orientation=orientation,
    )
    height, width = problem.out_size
    image = (
        to_numpy(result.image)
        if result.steps_run
        else np.zeros((height, width, problem.out_channels), np.float32)
    )
    fields = {
        "device": str(device),
        "precision": plan.engine.precision,
        "engine": plan.engine.to_dict(),
        "memory": plan.to_dict() | {"reuses_freed_memory": reusing},
        "versions": versions(),
        "net_parameters": count_parameters(net),
        "cpu_threads": torch.get_num_threads() if device.type == "cpu" else None,
        "image_size": [height, width],
        # in the image's frame, as image_size: a turned fit padded it turned
        "padded_size": list(oriented_size(padded_h, padded_w, orientation)),
    }
    fired = backtracking.guard_fired if backtracking is not None else 0
    stuck_at = backtracking.stuck_at if backtracking is not None else None
    reached = limit.reached_at if limit is not None else None
    early = rule.early_image if isinstance(rule, NoiseLevelRule) else None
    return _Fit(
        image,
        result,
        history,
        rule,
        fields,
        fired,
        stuck_at,
        time_limit_at=reached,
        early_image=to_numpy(early) if early is not None else None,
    )
