"""The ``deepprior`` command: parse arguments, call a task, write results. Nothing else."""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .classifiers import CLASSIFIERS
from .engine import DEVICES, ENGINES, PRECISIONS
from .errors import EXIT_INTERRUPTED, EXIT_USAGE, UserError
from .io import Picture
from .job import MAX_SEED
from .operators import KERNELS
from .presets import DENOISE_PRESETS, INPAINT_PRESETS, RESTORE_PRESETS
from .quality import LEVELS as QUALITY_LEVELS
from .stopping import STOP_RULES
from .tasks import SCALES
from .tasks.features import PRIORS

DEVICE = click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="Where to run the fit.",
)
FORCE = click.option("--force", is_flag=True, help="Overwrite existing output files.")
QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
SEED = click.option(
    "--seed",
    type=click.IntRange(min=0, max=MAX_SEED - 1),
    default=None,
    help="Random seed (default: drawn at random and written to the report).",
)
PRECISION = click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="auto",
    show_default=True,
    help="Arithmetic: 'auto' is bf16 on CPUs with native bfloat16, fp32 elsewhere.",
)
ENGINE = click.option(
    "--engine",
    type=click.Choice(list(ENGINES)),
    default="fast",
    show_default=True,
    help="'reference': the plain eager fp32 loop, kept to measure speed-ups against.",
)
DEFAULT_DATA = "../shared/data"
STEPS = click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Number of optimisation steps (default: the preset's).",
)


class StepsType(click.ParamType):
    """'auto' or a positive integer."""

    name = "auto|N"

    def convert(self, value: Any, param: Any, ctx: Any) -> str | int:
        if isinstance(value, int) or value == "auto":
            return value
        try:
            count = int(value)
        except ValueError:
            self.fail(f"{value!r} is neither 'auto' nor a whole number of steps", param, ctx)
        if count < 1:
            self.fail(f"{count} steps: give a positive number or 'auto'", param, ctx)
        return count


DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


class Duration(click.ParamType):
    """A wall time: '90' or '90s', '5m', '1h', '1h30m', '2.5m' -> seconds."""

    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        else:
            text = str(value).strip().lower()
            parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms]?)", text)
            if not parts or re.sub(r"\d+(?:\.\d+)?\s*[hms]?", "", text).strip():
                self.fail(f"{value!r} is not a duration; write e.g. 90s, 5m or 1h30m", param, ctx)
            seconds = sum(float(number) * DURATION_UNITS[unit or "s"] for number, unit in parts)
        if not 0 < seconds < float("inf"):
            self.fail(f"{value!r}: give a time above zero, e.g. 5m", param, ctx)
        return seconds


AUTO_STEPS = click.option(
    "--steps",
    type=StepsType(),
    default="auto",
    show_default=True,
    help="'auto': a stopping rule ends the fit and keeps its best iterate (see --stop); "
    "N: exactly N steps, no rule.",
)
STOPPING = [
    click.option(
        "--time-limit",
        type=Duration(),
        default=None,
        help="Wall time for the whole run (90s, 5m, 1h30m): the fit ends then and returns its "
        "best result so far.",
    ),
    click.option(
        "--stop",
        type=click.Choice(STOP_RULES),
        default="auto",
        show_default=True,
        help="The rule of --steps auto. auto: noise-level for denoise (σ estimated unless "
        "--sigma), validation (5 % of the observed pixels held back) for the rest.",
    ),
    click.option(
        "--max-steps",
        type=click.IntRange(min=1),
        default=None,
        help="The cap of --steps auto, exactly (default: the preset's steps, grown with "
        "the image; at default and best quality a fit under the validation rule goes "
        "past it while clearly improving).",
    ),
    click.option(
        "--quality",
        type=click.Choice(QUALITY_LEVELS),
        default="default",
        show_default=True,
        help="default: 32-channel networks (as good as the authors' 128 at a third of the "
        "time); fast: also fewer steps; best: several fits on turned and mirrored copies "
        "averaged; paper: the authors' networks. The report says what the level contains.",
    ),
    click.option(
        "--runs",
        type=click.IntRange(min=1),
        default=None,
        help="Average this many independent fits (seeds SEED, SEED+1000, …); default: the "
        "quality level's.",
    ),
    click.option(
        "--self-ensemble/--no-self-ensemble",
        "ensemble",
        default=None,
        help="Fit the runs to turned and mirrored copies of the image (run k: the k-th of the "
        "8 orientations) and turn each back before averaging; default: the quality level's.",
    ),
    click.option(
        "--patience",
        type=click.IntRange(min=1),
        default=None,
        help="Steps without improvement after which --steps auto ends a fit (default: the "
        "quality level's, else 300).",
    ),
    click.option(
        "--average",
        type=click.FloatRange(0, 1, max_open=True),
        default=None,
        help="Average the output over the fit's tail: a moving average with this decay "
        "(0.99 ≈ the last 100 steps; 0 turns it off). Default: the preset's.",
    ),
]
# The options above that are fields of the job, as click names them.
JOB_OPTIONS = (
    "steps",
    "stop",
    "max_steps",
    "quality",
    "runs",
    "ensemble",
    "patience",
    "average",
    "time_limit",
    "seed",
    "device",
    "precision",
)
OUTPUT_OPTIONS = [
    click.option(
        "--report",
        "report_path",
        type=click.Path(),
        default=None,
        help="Write the run report (JSON) here.",
    ),
    click.option(
        "--save-every",
        type=click.IntRange(min=1),
        default=None,
        help="Save a snapshot beside the output every N steps.",
    ),
    FORCE,
    QUIET,
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="deepprior")
def cli() -> None:
    """Restore images with the Deep Image Prior: no training data, one image at a time."""


def _existing_file(value: str | None) -> Path | None:
    from .io import check_readable

    if value is None:
        return None
    path = Path(value)
    check_readable(path)
    return path


def _check_new_file(path: Path | None, force: bool) -> None:
    from .io import check_new_file

    if path is not None:
        check_new_file(path, force=force)


def _snapshot_name(output: Path, step: int) -> Path:
    return output.with_name(f"{output.stem}.step{step:05d}{output.suffix}")


def _apply(function: Callable[..., Any], options: list[Callable[..., Any]]) -> Callable[..., Any]:
    for option in reversed(options):
        function = option(function)
    return function


def output_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Where and how a run's files are written."""
    return _apply(function, OUTPUT_OPTIONS)


def fit_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options every restoration command shares."""
    options = [
        click.option(
            "-o",
            "--output",
            type=click.Path(),
            default=None,
            help="Where to write the result (default: beside INPUT, tagged).",
        ),
        AUTO_STEPS,
        *STOPPING,
        SEED,
        DEVICE,
        PRECISION,
        ENGINE,
        click.option(
            "--reference",
            type=click.Path(),
            default=None,
            help="The clean image: PSNR and SSIM are shown live and reported.",
        ),
        *OUTPUT_OPTIONS,
    ]
    return _apply(function, options)


def _submit(
    task: str,
    input_path: str | None,
    *,
    options: dict[str, Any],
    preset: str | None,
    inputs: dict[str, str | None],
    common: dict[str, Any],
) -> int:
    """Turn a command's arguments into a job (paths made absolute) and execute it."""
    from .job import Job

    batch = common.pop("batch", None)
    given = {"image": input_path, "reference": common.pop("reference"), **inputs}
    paths = {name: str(Path(p).absolute()) for name, p in given.items() if p is not None}
    job = Job(
        task=task,
        inputs=paths,
        options=options,
        preset=preset,
        engine=common.pop("engine"),
        **{name: common.pop(name) for name in JOB_OPTIONS},
    )
    if batch is not None:
        return _run_batch(job, force=common["force"], quiet=common["quiet"], **batch)
    return _execute(job, **common)


def _run_batch(job: Any, *, force: bool, quiet: bool, **where: Any) -> int:
    """A batch: ``job`` is the template every image's job is made from."""
    from .batches import run_batch

    summary = run_batch(job, force=force, progress=not quiet, **where)
    if not quiet:
        counts = ", ".join(
            f"{summary.count(state)} {state}"
            for state in ("done", "failed", "skipped", "pending")
            if summary.count(state)
        )
        click.echo(
            f"batch: {counts}; {summary.ran} finished in this run ({summary.seconds / 60:.1f} "
            f"min, {summary.images_per_minute:.1f} images/min); summary: {summary.markdown}",
            err=True,
        )
    return summary.exit_code


def _execute(
    job: Any,
    *,
    output: str | None,
    report_path: str | None,
    save_every: int | None,
    force: bool,
    quiet: bool,
) -> int:
    """Check every output first, run the job, write the result and the report."""
    from .io import check_can_hold, check_distinct, check_writable, default_output, write_image
    from .report import write_json
    from .runner import prepare, run

    checked = prepare(job)
    task, options = checked.task, checked.options
    for path in job.inputs.values():
        _existing_file(path)
    if output is None and "image" not in job.inputs:
        raise UserError(f"{task.name} makes an image from nothing: name it with -o OUTPUT")
    if output is not None:
        out_path = Path(output)
    else:
        out_path = default_output(Path(job.inputs["image"]), task.output_tag(options))
    check_writable(out_path, force=force)
    report_file = Path(report_path) if report_path else None
    _check_new_file(report_file, force)
    outputs = {"output": out_path} | ({"--report": report_file} if report_file else {})
    check_distinct(outputs, {f"input {name}": Path(p) for name, p in job.inputs.items()})
    if save_every:
        existing = sorted(out_path.parent.glob(f"{out_path.stem}.step*{out_path.suffix}"))
        if existing and not force:
            raise UserError(f"snapshots such as {existing[0]} exist; pass --force to overwrite")

    def save(step: int, snapshot: Picture) -> None:
        write_image(_snapshot_name(out_path, step), snapshot, force=True)

    def ready(preview: Picture) -> None:
        check_can_hold(out_path, preview)

    try:
        outcome = run(job, progress=not quiet, save_every=save_every, save=save, ready=ready)
    except KeyboardInterrupt:  # before the first step: no result, but the report says so
        if report_file is not None:
            stub = {"job": job.to_dict(), "task": job.task, "steps_run": 0, "interrupted": True}
            write_json(report_file, stub)
        raise
    report = outcome.report.to_dict()
    if report["steps_run"]:
        write_image(out_path, outcome.picture, force=force)
    if report_file is not None:
        write_json(report_file, report)
    if not quiet:
        _summary(out_path if report["steps_run"] else None, report)
    return EXIT_INTERRUPTED if outcome.interrupted else 0


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option(
    "--preset",
    type=click.Choice(list(DENOISE_PRESETS)),
    default="authors",
    show_default=True,
    help="'authors': their code's settings (3000 steps); 'paper': the paper's 1800.",
)
@click.option(
    "--sigma",
    type=click.FloatRange(min=0, min_open=True, max=255),
    default=None,
    help="The noise level in 8-bit levels (e.g. 25), when known; else it is estimated.",
)
@click.option(
    "--wiener/--no-wiener",
    default=None,
    help="End with an empirical Wiener filter of groups of similar 8×8 blocks guided by the "
    "fit and BM3D's first step, at the noise level of the stopping rule; default: on at "
    "--quality fast, default and best, off at paper.",
)
@fit_options
def denoise(
    input_path: str, preset: str, sigma: float | None, wiener: bool | None, **common: Any
) -> int:
    """Blind denoising of INPUT (no noise level needed)."""
    given = {"sigma": sigma, "wiener": wiener}
    options = {name: value for name, value in given.items() if value is not None}
    return _submit("denoise", input_path, options=options, preset=preset, inputs={}, common=common)


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option(
    "--scale",
    type=click.Choice([str(scale) for scale in SCALES]),
    required=True,
    help="How many times larger the result is in each side.",
)
@click.option(
    "--kernel",
    type=click.Choice(KERNELS),
    default="lanczos2",
    show_default=True,
    help="The downsampler in the data term (the authors': lanczos2).",
)
@click.option(
    "--degrade",
    is_flag=True,
    help="INPUT is a high-resolution image: make the low-resolution input from it as "
    "the paper did (crop to a multiple of the scale, Lanczos downscale) and use it as "
    "the reference.",
)
@click.option(
    "--back-project/--no-back-project",
    default=None,
    help="End by back-projecting the result onto INPUT (bicubic, until it reproduces INPUT "
    "under the kernel); default: on at --quality fast, default and best, off at paper.",
)
@fit_options
def sr(
    input_path: str,
    scale: str,
    kernel: str,
    degrade: bool,
    back_project: bool | None,
    **common: Any,
) -> int:
    """Super-resolution of INPUT, a low-resolution image with no ground truth needed."""
    options = {"scale": int(scale), "kernel": kernel, "degrade": degrade}
    if back_project is not None:
        options["back_project"] = back_project
    return _submit("sr", input_path, options=options, preset=None, inputs={}, common=common)


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option(
    "--mask",
    "mask_path",
    type=click.Path(),
    default=None,
    help="Mask image: white (non-zero) = known, black = hole.",
)
@click.option("--invert-mask", is_flag=True, help="The mask's white marks the holes instead.")
@click.option("--hole-color", default=None, help="Pixels of this colour ('#ff00ff') are holes.")
@click.option(
    "--drop",
    type=float,
    default=None,
    help="Drop this share of pixels at random (e.g. 0.5), then restore them.",
)
@click.option(
    "--text", "overlay", default=None, help="Draw this text over the image, then remove it."
)
@click.option(
    "--strokes",
    type=click.IntRange(min=1),
    default=None,
    help="Draw this many random strokes over the image, then remove them.",
)
@click.option(
    "--boxes",
    type=click.IntRange(min=1),
    default=None,
    help="Cut this many random boxes out of the image, then fill them.",
)
@click.option(
    "--mask-seed",
    type=click.IntRange(min=0, max=2**32 - 1),
    default=0,
    show_default=True,
    help="Seed of --drop, --text, --strokes and --boxes.",
)
@click.option(
    "--preset",
    type=click.Choice(["auto", *INPAINT_PRESETS]),
    default="auto",
    show_default=True,
    help="The authors' settings; 'auto' picks one from the mask's shape.",
)
@click.option(
    "--keep-known/--no-keep-known",
    default=True,
    show_default=True,
    help="Copy the known pixels of the input into the result.",
)
@click.option(
    "--biharmonic/--no-biharmonic",
    default=None,
    help="End by averaging the result with biharmonic interpolation of the missing pixels; "
    "default: on at --quality fast, default and best where scattered pixels are missing "
    "(not for holes), off at paper.",
)
@fit_options
def inpaint(
    input_path: str,
    mask_path: str | None,
    invert_mask: bool,
    hole_color: str | None,
    drop: float | None,
    overlay: str | None,
    strokes: int | None,
    boxes: int | None,
    mask_seed: int,
    preset: str,
    keep_known: bool,
    biharmonic: bool | None,
    **common: Any,
) -> int:
    """Fill the holes of INPUT: from a mask, a hole colour, its transparency, or a generator."""
    options = {
        "invert_mask": invert_mask,
        "hole_color": hole_color,
        "drop": drop,
        "text": overlay,
        "strokes": strokes,
        "boxes": boxes,
        "mask_seed": mask_seed,
        "keep_known": keep_known,
        "biharmonic": biharmonic,
    }
    return _submit(
        "inpaint",
        input_path,
        options={k: v for k, v in options.items() if v is not None},
        preset=None if preset == "auto" else preset,
        inputs={"mask": mask_path},
        common=common,
    )


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option(
    "--degradation",
    default=None,
    metavar="SPEC",
    help="What happened to the image, e.g. blur:gaussian:2, blur:motion:15,30, blur:kernel.png, "
    "bayer:rggb, gray, downsample:2, mask:known.png, joined with + in the order applied "
    "(blur:gaussian:1.5+downsample:2). Without it the restoration is blind (JPEG artefacts).",
)
@click.option(
    "--preset",
    type=click.Choice(list(RESTORE_PRESETS)),
    default=None,
    help="Default: 'jpeg' (the authors' JPEG settings) when blind, 'authors' (their denoising "
    "settings) with --degradation.",
)
@fit_options
def restore(input_path: str, degradation: str | None, preset: str | None, **common: Any) -> int:
    """Restore INPUT: blind (JPEG artefacts) or through a --degradation you write down."""
    from .degradations import with_absolute_paths

    options = {"degradation": degradation and with_absolute_paths(degradation)}
    return _submit("restore", input_path, options=options, preset=preset, inputs={}, common=common)


@cli.command()
@click.option("--flash", "flash_path", type=click.Path(), required=True, help="The flash shot.")
@click.option(
    "--no-flash",
    "no_flash_path",
    type=click.Path(),
    required=True,
    help="The no-flash shot of the same scene, same size: its light is kept.",
)
@fit_options
def flash(flash_path: str, no_flash_path: str, **common: Any) -> int:
    """Flash / no-flash: the no-flash shot's light with the flash shot's detail."""
    inputs: dict[str, str | None] = {"flash": flash_path}
    return _submit("flash", no_flash_path, options={}, preset=None, inputs=inputs, common=common)


def feature_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The classifier to look into and the prior (invert and maximize)."""
    options = [
        click.option(
            "--net",
            type=click.Choice(list(CLASSIFIERS)),
            default="alexnet",
            show_default=True,
            help="The classifier (torchvision's layout; its weights are not downloaded).",
        ),
        click.option(
            "--weights",
            default=None,
            metavar="FILE|random",
            help="The network's weights (torchvision's file, e.g. alexnet-owt-7be5be79.pth); "
            "default: torchvision's cache under $TORCH_HOME; 'random': untrained (seed 0).",
        ),
        click.option(
            "--prior",
            type=click.Choice(list(PRIORS)),
            default="dip",
            show_default=True,
            help="dip: the deep image prior; tv: the pixels fitted with a TV-norm penalty.",
        ),
        click.option(
            "--tv-weight",
            type=click.FloatRange(min=0),
            default=0.05,
            show_default=True,
            help="The TV penalty's weight (with --prior tv).",
        ),
    ]
    return _apply(function, options)


def _weights(value: str | None) -> str | None:
    return value if value in (None, "random") else str(Path(value).absolute())


@cli.command()
@click.argument("input_path", metavar="IMAGE", type=click.Path())
@click.option(
    "--layer",
    default="fc6",
    show_default=True,
    help="conv1…conv5, fc6, fc7, fc8 (AlexNet, the paper's names), or a module path (features.29).",
)
@feature_options
@fit_options
def invert(
    input_path: str,
    layer: str,
    net: str,
    weights: str | None,
    prior: str,
    tv_weight: float,
    **common: Any,
) -> int:
    """The natural pre-image of IMAGE's features at a layer of a classifier."""
    options: dict[str, Any] = {"net": net, "layer": layer, "weights": _weights(weights)}
    options |= {"prior": prior, "tv_weight": tv_weight}
    return _submit("invert", input_path, options=options, preset=None, inputs={}, common=common)


@cli.command()
@click.option("--layer", default="fc8", show_default=True, help="As for invert.")
@click.option(
    "--unit", type=click.IntRange(min=0), default=0, show_default=True, help="The unit (channel)."
)
@click.option(
    "--size",
    type=click.IntRange(16, 1024),
    default=227,
    show_default=True,
    help="The image's side.",
)
@feature_options
@fit_options
def maximize(
    layer: str,
    unit: int,
    size: int,
    net: str,
    weights: str | None,
    prior: str,
    tv_weight: float,
    **common: Any,
) -> int:
    """An image that maximises one unit of a classifier (activation maximisation); needs -o."""
    options: dict[str, Any] = {"net": net, "layer": layer, "unit": unit, "size": size}
    options["prior"] = prior
    options |= {"weights": _weights(weights), "tv_weight": tv_weight}
    return _submit("maximize", None, options=options, preset=None, inputs={}, common=common)


@cli.group()
def experiment() -> None:
    """The paper's experiments."""


@experiment.command()
@click.argument("input_path", metavar="IMAGE", type=click.Path())
@click.option("--out", "out_dir", type=click.Path(), required=True, help="Folder for the results.")
@click.option(
    "--steps", type=click.IntRange(min=1), default=2400, show_default=True, help="Steps per fit."
)
@click.option(
    "--energy",
    type=click.FloatRange(min=0, min_open=True),
    default=0.01,
    show_default=True,
    help="The table gives the steps each target needs to reach this energy (MSE).",
)
@SEED
@DEVICE
@PRECISION
@FORCE
@QUIET
def impedance(
    input_path: str,
    out_dir: str,
    steps: int,
    energy: float,
    seed: int | None,
    device: str,
    precision: str,
    force: bool,
    quiet: bool,
) -> int:
    """Noise impedance (Fig. 2): energy against step for IMAGE, IMAGE + noise, its pixels
    shuffled, and white noise; writes impedance.csv and impedance.png into --out."""
    from .engine import resolve_device
    from .experiments.impedance import energy_curves, steps_to_reach, write_outputs
    from .io import check_output_folder, read_image

    folder = Path(out_dir)
    check_output_folder(folder, ("impedance.csv", "impedance.png"), force=force)
    resolve_device(device)
    image = read_image(input_path).pixels
    seed = _drawn(seed)
    if not quiet:
        click.echo(f"fitting 4 targets of {steps} steps each, seed {seed}", err=True)
    curves = energy_curves(image, steps=steps, seed=seed, device=device, precision=precision)
    written = write_outputs(curves, folder, force=force)
    if not quiet:
        click.echo(f"target           steps to energy {energy:g}   energy at {steps}")
        for name, curve in curves.items():
            reached = steps_to_reach(curve, energy)
            click.echo(f"{name:<16} {reached if reached else 'never':>22}   {curve[-1][1]:.5f}")
        click.echo(f"wrote {', '.join(map(str, written))}")
    return 0


@experiment.command()
@click.argument("input_path", metavar="IMAGE", type=click.Path())
@click.option("--mask", "mask_path", type=click.Path(), help="Mask image: white = known pixel.")
@click.option(
    "--drop",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=None,
    help="Instead of a mask, hide this share of the pixels at random (the paper: 0.5).",
)
@click.option("--out", "out_dir", type=click.Path(), required=True, help="Folder for the results.")
@STEPS
@SEED
@DEVICE
@PRECISION
@FORCE
@QUIET
def architectures(
    input_path: str,
    mask_path: str | None,
    drop: float | None,
    out_dir: str,
    steps: int | None,
    seed: int | None,
    device: str,
    precision: str,
    force: bool,
    quiet: bool,
) -> int:
    """Inpainting with different networks (Fig. 8): encoder-decoders of depth 2, 4 and 6,
    depth 6 with skip connections, the U-Net and the ResNet fill the same holes of IMAGE
    (intact: it is the reference). Writes a PSNR table (CSV, Markdown) and an image grid."""
    from . import masks
    from .engine import resolve_device
    from .experiments.architectures import OUTPUT_NAMES, compare, markdown, write_outputs
    from .io import check_output_folder, read_image

    if mask_path is not None and drop is not None:
        raise UserError("mark the holes with --mask or with --drop, not both")
    folder = Path(out_dir)
    check_output_folder(folder, OUTPUT_NAMES, force=force)
    resolve_device(device)
    image = read_image(input_path).pixels
    seed = _drawn(seed)
    height, width = image.shape[:2]
    if mask_path is not None:
        known = masks.from_mask_image(read_image(mask_path).pixels)
    elif drop is not None:
        known = masks.random_pixels(height, width, drop, seed)
    else:
        raise UserError("mark the holes: --mask MASK, or --drop 0.5 to hide half the pixels")
    known = masks.validate(known, height, width)

    def announce(label: str, count: int) -> None:
        if not quiet:
            click.echo(f"{label}: {count} steps, seed {seed}", err=True)

    rows, results = compare(
        image,
        known,
        steps=steps,
        seed=seed,
        on_start=announce,
        device=device,
        precision=precision,
    )
    written = write_outputs(rows, results, image * known[:, :, None], folder, force=force)
    if not quiet:
        click.echo(markdown(rows), nl=False)
        click.echo(f"wrote {', '.join(map(str, written))}")
    return 0


@cli.command()
@click.option(
    "--quick",
    "plan",
    flag_value="quick",
    default=True,
    help="A CPU proxy (crops, 3 images a table, automatic stopping): under 30 minutes.",
)
@click.option("--full", "plan", flag_value="full", help="The paper's setting; for a GPU.")
@click.option(
    "--data",
    type=click.Path(file_okay=False),
    default=None,
    help=f"Folder holding CBM3D/, Set5/ and Heide11/ (and Set14/) [default: {DEFAULT_DATA}].",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for report.md, its plots and the finished cells [default: reproduce-PLAN].",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=MAX_SEED - 1 - 1000),
    default=0,
    show_default=True,
    help="Seed of the noise, the masks and the fits.",
)
@DEVICE
@PRECISION
@FORCE
@QUIET
def reproduce(
    plan: str,
    data: str | None,
    out_dir: str | None,
    seed: int,
    device: str,
    precision: str,
    force: bool,
    quiet: bool,
) -> int:
    """The paper's tables: denoising (CBM3D, sigma 25), super-resolution x4 (Set5, Set14) and
    inpainting of 50 % of pixels (Heide-11), with NLM, BM3D, bicubic and biharmonic beside
    them; writes report.md. Run the same command again to resume an interrupted run."""
    from .experiments.reproduce import PLANS
    from .experiments.reproduce import reproduce as run_reproduction

    if data is None:
        if not Path(DEFAULT_DATA).is_dir():
            raise UserError(
                f"no --data given and {DEFAULT_DATA} does not exist; give the folder that holds "
                "CBM3D/, Set5/ and Heide11/"
            )
        data = DEFAULT_DATA
    out = Path(out_dir or f"reproduce-{plan}")
    command = " ".join(["deepprior", *sys.argv[1:]]) if sys.argv else "deepprior reproduce"
    try:
        report = run_reproduction(
            Path(data),
            out,
            PLANS[plan],
            seed=seed,
            force=force,
            quiet=quiet,
            device=device,
            precision=precision,
            command=command,
        )
    except KeyboardInterrupt:
        click.echo(
            f"deepprior: the finished cells are kept in {out}; run the same command to resume",
            err=True,
        )
        raise
    if not quiet:
        click.echo(f"wrote {report}")
    return 0


BATCH_TASKS = (denoise, sr, inpaint, restore)
# The one-image commands' options that a batch replaces (each image has its own).
ONE_IMAGE_ONLY = ("input_path", "output", "reference", "report_path", "save_every", "mask_path")


@cli.group()
def batch() -> None:
    """Restore every image of a folder (or a glob) into an output folder.

    deepprior batch TASK INPUT -o OUTPUT_DIR [the task's options]. A manifest in OUTPUT_DIR
    records each image: rerunning the command skips what is done and retries the rest. Exit
    status 0 when every image is done, 1 when any failed.
    """


def _batch_twin(single: click.Command) -> click.Command:
    """``deepprior batch TASK``: the one-image command's options, over a folder."""
    takes = {param.name for param in single.params}
    params: list[click.Parameter] = [
        click.Argument(["source"], metavar="INPUT"),
        click.Option(
            ["-o", "--output-dir"],
            type=click.Path(file_okay=False),
            required=True,
            help="Folder for the results, their reports, the manifest and the summary.",
        ),
        click.Option(
            ["--workers"],
            type=click.IntRange(min=1),
            default=None,
            help="Images restored at once, each on its share of the cores (one per GPU); "
            "default: from the cores and the images' size.",
        ),
        click.Option(
            ["--ray"],
            metavar="ADDRESS",
            default=None,
            help="Run on this Ray cluster ('local' starts one here); needs "
            "pip install 'deepprior[ray]'.",
        ),
    ]
    if "mask_path" in takes:
        params.append(
            click.Option(
                ["--mask-dir"],
                type=click.Path(file_okay=False),
                default=None,
                help="Folder of masks, matched by name (photo.jpg <- photo.png or "
                "photo_mask.png; white = known).",
            )
        )
    params += [param for param in single.params if param.name not in ONE_IMAGE_ONLY]
    assert single.callback is not None

    def callback(**values: Any) -> int:
        where = {
            name: values.pop(name, None)
            for name in ("source", "output_dir", "workers", "ray", "mask_dir")
        }
        values |= {name: None for name in ONE_IMAGE_ONLY if name in takes}
        return single.callback(batch=where, **values)  # type: ignore[misc]

    return click.Command(
        single.name,
        params=params,
        callback=callback,
        help=f"{single.help} Every image of INPUT (a folder or a glob) into OUTPUT_DIR.",
        short_help=single.get_short_help_str(),
    )


for _single in BATCH_TASKS:
    batch.add_command(_batch_twin(_single))


def _drawn(seed: int | None) -> int:
    """The seed given, or one drawn at random (printed by the caller)."""
    if seed is not None:
        return seed
    import secrets

    return secrets.randbelow(2**31)


@cli.command(name="run")
@click.argument("job_path", metavar="REPORT_OR_JOB", type=click.Path())
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    default=None,
    help="Where to write the result (default: beside the job's input, tagged).",
)
@output_options
def run_command(job_path: str, **common: Any) -> int:
    """Replay a run: the job in a run report (--report) or a job file, bit-identically on the
    same machine."""
    from .job import load_job

    return _execute(load_job(job_path), **common)


def _summary(written: Path | None, report: dict[str, Any]) -> None:
    done = f"{report['steps_run']} steps in {report['seconds_total']:.1f} s"
    stopping = report.get("stopping", {})
    if stopping.get("fired_at"):
        done += (
            f" (the {stopping['rule']} rule stopped at step {stopping['fired_at']}, "
            f"kept step {stopping['selected_step']})"
        )
    elif stopping.get("time_limit_reached_at"):
        kept = stopping.get("selected_step")
        done += f" (the time limit ended the fit{f'; kept step {kept}' if kept else ''})"
    elif stopping.get("steps") == "auto":
        done += f" (cap reached; kept step {stopping.get('selected_step')})"
    quality = report.get("quality")
    if quality and quality["name"] != "default":
        done += f" [quality {quality['name']}: {quality['contains']}"
        made = len(report.get("runs") or [])
        if 0 < made < quality["runs"]:  # the time limit or Ctrl-C came first
            done += f"; {made} of its {quality['runs']} fits made"
            averaged = sum(bool(fit.get("averaged")) for fit in report["runs"])
            if averaged < made:
                done += f", {averaged} averaged (the one cut short left out)"
        done += "]"
    state = "interrupted after" if report["interrupted"] else "finished:"
    line = f"{state} {done}" + (f", wrote {written}" if written else ", nothing written")
    metrics = report.get("metrics")
    if metrics:
        line += f"; PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f}"
        if "psnr_input" in metrics:
            line += f" (input {metrics['psnr_input']:.2f} dB)"
        if "psnr_biharmonic" in metrics:
            line += f"; biharmonic {metrics['psnr_biharmonic']:.2f} dB"
        if "psnr_y" in metrics:
            line += (
                f"; paper protocol {metrics['psnr_y']:.2f} dB "
                f"(bicubic {metrics['psnr_y_bicubic']:.2f} dB)"
            )
    click.echo(line, err=True)


@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="deepprior-demo",
    show_default=True,
    help="Folder for the demo's images and report.",
)
@STEPS
@DEVICE
@FORCE
@QUIET
def demo(out_dir: str, steps: int | None, device: str, force: bool, quiet: bool) -> int:
    """Denoise a real photograph (σ = 25) and write the images and a report into --out."""
    from .demo import run_demo

    return run_demo(Path(out_dir), steps=steps, device=device, force=force, quiet=quiet)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_free(host: str, port: int) -> None:
    """One line, before anything starts, when the address cannot be listened on."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as error:
        reason = error.strerror or str(error)
        raise UserError(
            f"cannot listen on {host}:{port} ({reason}); choose another --port or --host"
        ) from None


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False),
    default="deepprior-serve",
    show_default=True,
    help="Folder for the queue, the uploads and the results (kept across restarts).",
)
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=25,
    show_default=True,
    help="Largest file accepted, in MB.",
)
@click.option(
    "--max-megapixels",
    type=click.FloatRange(min=0, min_open=True),
    default=12,
    show_default=True,
    help="Largest image accepted, in millions of pixels.",
)
def serve(host: str, port: int, work_dir: str, max_upload_mb: float, max_megapixels: float) -> int:
    """A local web page: upload, paint the holes, watch the fit converge, download."""
    import uvicorn

    from .web.app import Limits, create_app

    folder = Path(work_dir)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file; --work-dir needs a folder")
    _check_free(host, port)
    limits = Limits(int(max_upload_mb * 2**20), int(max_megapixels * 1e6))
    app = create_app(folder, limits)
    if host not in LOOPBACK:
        click.echo(f"deepprior: listening on {host}: whoever reaches it can run jobs", err=True)
    click.echo(f"deepprior serve: http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0


def _interrupt_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback.

    SIGTERM is handled like Ctrl-C: the fit ends after its step and what it had is written.
    """
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        code = cli.main(args=argv, prog_name="deepprior", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help() if error.ctx else "deepprior --help", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as error:
        hint = ""
        if isinstance(error, click.UsageError):
            command = error.ctx.command_path if error.ctx else "deepprior"
            hint = f" (see '{command} --help')"
        message = " ".join(error.format_message().split())
        click.echo(f"deepprior: error: {message}{hint}", err=True)
        sys.exit(EXIT_USAGE)
    except UserError as error:
        click.echo(f"deepprior: error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("deepprior: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(code if isinstance(code, int) else 0)
