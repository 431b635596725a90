"""The ``deepprior`` command: parse arguments, call a task, write results. Nothing else."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .errors import UserError
from .io import Picture

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEVICE = click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda", "mps"]),
    default="auto",
    show_default=True,
    help="Where to run the fit.",
)
FORCE = click.option("--force", is_flag=True, help="Overwrite existing output files.")
QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
SEED = click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Random seed (default: drawn at random and written to the report).",
)
PRECISION = click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16"]),
    default="auto",
    show_default=True,
    help="Arithmetic: 'auto' is bf16 on CPUs with native bfloat16, fp32 elsewhere.",
)
ENGINE = click.option(
    "--engine",
    type=click.Choice(["fast", "reference"]),
    default="fast",
    show_default=True,
    help="'reference': the plain eager fp32 loop, kept to measure speed-ups against.",
)
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
        "--stop",
        type=click.Choice(["auto", "variance", "noise-level", "validation"]),
        default="auto",
        show_default=True,
        help="The rule of --steps auto. auto: noise-level for denoise (σ estimated unless "
        "--sigma), validation (5 % of the observed pixels held back) for sr and inpaint.",
    ),
    click.option(
        "--max-steps",
        type=click.IntRange(min=1),
        default=None,
        help="The cap of --steps auto (default: the preset's steps).",
    ),
    click.option(
        "--runs",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Average this many independent fits (seeds SEED, SEED+1000, …).",
    ),
    click.option(
        "--average",
        type=click.FloatRange(0, 1, max_open=True),
        default=None,
        help="Average the output over the fit's tail: a moving average with this decay "
        "(0.99 ≈ the last 100 steps; 0 turns it off). Default: the preset's.",
    ),
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
    if path is None:
        return
    if path.is_dir():
        raise UserError(f"{path} is a directory; give a file name")
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise UserError(f"the folder {path.parent} does not exist; create it first")


def _snapshot_name(output: Path, step: int) -> Path:
    return output.with_name(f"{output.stem}.step{step:05d}{output.suffix}")


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
    for option in reversed(options):
        function = option(function)
    return function


Task = Callable[..., tuple[Any, Any]]


def _restore(
    task: Task,
    tag: str,
    input_path: str,
    *,
    output: str | None,
    reference: str | None,
    report_path: str | None,
    save_every: int | None,
    force: bool,
    quiet: bool,
    device: str,
    precision: str,
    engine: str,
    prepare: Callable[[Any, Any], tuple[Any, Any]] | None = None,
    **task_options: Any,
) -> int:
    """Check every path first, read, run ``task`` on the Picture, write the result and report.

    ``prepare(picture, reference)`` may turn the input into what the task takes (``--degrade``).
    """
    from .callbacks import Snapshots
    from .io import check_writable, default_output, read_image, write_image
    from .report import write_json
    from .tasks import resolve_device, resolve_engine, to_numpy

    source = _existing_file(input_path)
    assert source is not None
    out_path = Path(output) if output else default_output(source, tag)
    check_writable(out_path, force=force)
    report_file = Path(report_path) if report_path else None
    _check_new_file(report_file, force)
    resolve_engine(engine, precision, resolve_device(device))
    picture = read_image(source)
    clean = read_image(ref) if (ref := _existing_file(reference)) else None
    if prepare is not None:
        picture, clean = prepare(picture, clean)

    callbacks = []
    if save_every:
        existing = sorted(out_path.parent.glob(f"{out_path.stem}.step*{out_path.suffix}"))
        if existing and not force:
            raise UserError(f"snapshots such as {existing[0]} exist; pass --force to overwrite")

        def save(step: int, image: Any) -> None:
            pixels = to_numpy(image)
            alpha = picture.alpha
            if alpha is not None and alpha.shape != pixels.shape[:2]:
                alpha = None  # SR: the alpha is upscaled only with the final result
            snapshot = Picture(pixels, alpha=alpha, bit_depth=picture.bit_depth)
            write_image(_snapshot_name(out_path, step), snapshot, force=True)

        callbacks.append(Snapshots(save_every, save))

    restored, run = task(
        picture,
        reference=clean,
        device=device,
        precision=precision,
        engine=engine,
        progress=not quiet,
        callbacks=callbacks,
        **task_options,
    )
    if run.report["steps_run"]:
        write_image(out_path, restored, force=force)
    if report_file is not None:
        write_json(report_file, run.report)
    if not quiet:
        _summary(out_path if run.report["steps_run"] else None, run.report)
    return EXIT_INTERRUPTED if run.result.interrupted else 0


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option(
    "--preset",
    type=click.Choice(["authors", "paper"]),
    default="authors",
    show_default=True,
    help="'authors': their code's settings (3000 steps); 'paper': the paper's 1800.",
)
@click.option(
    "--sigma",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="The noise level in 8-bit levels (e.g. 25), when known; else it is estimated.",
)
@fit_options
def denoise(input_path: str, preset: str, sigma: float | None, **common: Any) -> int:
    """Blind denoising of INPUT (no noise level needed)."""
    from .tasks import denoise_picture

    return _restore(denoise_picture, "denoised", input_path, preset=preset, sigma=sigma, **common)


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option(
    "--scale",
    type=click.Choice(["2", "3", "4", "8"]),
    required=True,
    help="How many times larger the result is in each side.",
)
@click.option(
    "--kernel",
    type=click.Choice(["lanczos2", "lanczos3", "bicubic", "box", "gauss"]),
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
@fit_options
def sr(
    input_path: str,
    scale: str,
    kernel: str,
    degrade: bool,
    **common: Any,
) -> int:
    """Super-resolution of INPUT, a low-resolution image with no ground truth needed."""
    from .tasks import super_resolve_picture

    factor = int(scale)

    def make_low_resolution(picture: Picture, clean: Picture | None) -> tuple[Picture, Picture]:
        from .baselines import degrade_for_sr

        if clean is not None:
            raise UserError("--degrade uses INPUT as the reference; leave out --reference")
        hr, lr = degrade_for_sr(picture.pixels, factor)
        return Picture(lr, bit_depth=picture.bit_depth), Picture(hr, bit_depth=picture.bit_depth)

    return _restore(
        super_resolve_picture,
        f"x{factor}",
        input_path,
        scale=factor,
        kernel=kernel,
        prepare=make_low_resolution if degrade else None,
        **common,
    )


def _parse_colour(value: str, channels: int) -> tuple[float, ...]:
    """'#ff00ff', 'ff00ff' or '255,0,255' (or one number for gray) -> components in [0, 1]."""
    text = value.strip().lstrip("#")
    try:
        if "," in text or len(text) <= 3:
            parts = [int(p) for p in text.split(",")]
        else:
            parts = [int(text[i : i + 2], 16) for i in range(0, len(text), 2)]
    except ValueError:
        raise UserError(f"--hole-color {value!r}: give '#rrggbb' or 'r,g,b' (0–255)") from None
    if any(not 0 <= p <= 255 for p in parts) or len(parts) != channels:
        raise UserError(f"--hole-color {value!r}: give {channels} value(s) from 0 to 255")
    return tuple(p / 255 for p in parts)


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
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of --drop, --text, --strokes and --boxes.",
)
@click.option(
    "--preset",
    type=click.Choice(["auto", "hole", "text", "region", "pixels", "pixels-authors"]),
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
    **common: Any,
) -> int:
    """Fill the holes of INPUT: from a mask, a hole colour, its transparency, or a generator."""
    from . import masks
    from .io import read_image
    from .tasks import inpaint_picture

    sources = {
        "--mask": mask_path,
        "--hole-color": hole_color,
        "--drop": drop,
        "--text": overlay,
        "--strokes": strokes,
        "--boxes": boxes,
    }
    given = [name for name, value in sources.items() if value is not None]
    if len(given) > 1:
        raise UserError(f"give one way to mark the holes, not {' and '.join(given)}")
    mask_file = _existing_file(mask_path)

    def task(picture: Picture, **options: Any) -> tuple[Any, Any]:
        h, w = picture.height, picture.width
        if mask_file is not None:
            known = masks.from_mask_image(read_image(mask_file).pixels, invert=invert_mask)
        elif hole_color is not None:
            known = masks.from_colour(picture.pixels, _parse_colour(hole_color, picture.channels))
        elif drop is not None:
            known = masks.random_pixels(h, w, drop, mask_seed)
        elif overlay is not None:
            known = masks.text_overlay(h, w, overlay, mask_seed)
        elif strokes is not None:
            known = masks.strokes(h, w, strokes, mask_seed)
        elif boxes is not None:
            known = masks.boxes(h, w, boxes, mask_seed)
        elif picture.alpha is not None:
            known = masks.from_alpha(picture.alpha)
            picture = Picture(picture.pixels, bit_depth=picture.bit_depth)
        else:
            raise UserError(
                "mark the holes: --mask, --hole-color, --drop, --text, --strokes, "
                "--boxes, or transparent pixels in INPUT"
            )
        return inpaint_picture(
            picture,
            masks.validate(known, h, w),
            preset=None if preset == "auto" else preset,
            keep_known=keep_known,
            **options,
        )

    return _restore(task, "inpainted", input_path, **common)


def _summary(written: Path | None, report: dict[str, Any]) -> None:
    done = f"{report['steps_run']} steps in {report['seconds_total']:.1f} s"
    stopping = report.get("stopping", {})
    if stopping.get("fired_at"):
        done += (
            f" (the {stopping['rule']} rule stopped at step {stopping['fired_at']}, "
            f"kept step {stopping['selected_step']})"
        )
    elif stopping.get("steps") == "auto":
        done += f" (cap reached; kept step {stopping.get('selected_step')})"
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
