"""The ``deepprior`` command: parse arguments, call a task, write results. Nothing else."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .errors import UserError

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


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    default=None,
    help="Where to write the result (default: INPUT's name + '.denoised.png').",
)
@click.option(
    "--preset",
    type=click.Choice(["authors", "paper"]),
    default="authors",
    show_default=True,
    help="'authors': their code's settings (3000 steps); 'paper': the paper's 1800.",
)
@STEPS
@SEED
@DEVICE
@PRECISION
@ENGINE
@click.option(
    "--reference",
    type=click.Path(),
    default=None,
    help="The clean image: PSNR and SSIM are shown live and reported.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(),
    default=None,
    help="Write the run report (JSON) here.",
)
@click.option(
    "--save-every",
    type=click.IntRange(min=1),
    default=None,
    help="Save a snapshot beside the output every N steps.",
)
@FORCE
@QUIET
def denoise(
    input_path: str,
    output: str | None,
    preset: str,
    steps: int | None,
    seed: int | None,
    device: str,
    precision: str,
    engine: str,
    reference: str | None,
    report_path: str | None,
    save_every: int | None,
    force: bool,
    quiet: bool,
) -> int:
    """Blind denoising of INPUT (no noise level needed)."""
    from .callbacks import Snapshots
    from .io import check_writable, default_output, read_image, write_image
    from .report import write_json
    from .tasks import denoise_picture, resolve_device, resolve_engine

    source = _existing_file(input_path)
    assert source is not None
    out_path = Path(output) if output else default_output(source, "denoised")
    check_writable(out_path, force=force)
    report_file = Path(report_path) if report_path else None
    _check_new_file(report_file, force)
    resolve_engine(engine, precision, resolve_device(device))
    picture = read_image(source)
    clean = read_image(ref) if (ref := _existing_file(reference)) else None

    callbacks = []
    if save_every:
        existing = sorted(out_path.parent.glob(f"{out_path.stem}.step*{out_path.suffix}"))
        if existing and not force:
            raise UserError(f"snapshots such as {existing[0]} exist; pass --force to overwrite")
        from .tasks import to_numpy

        def save(step: int, image: Any) -> None:
            write_image(
                _snapshot_name(out_path, step), picture.with_pixels(to_numpy(image)), force=True
            )

        callbacks.append(Snapshots(save_every, save))

    restored, run = denoise_picture(
        picture,
        preset=preset,
        steps=steps,
        reference=clean,
        seed=seed,
        device=device,
        precision=precision,
        engine=engine,
        progress=not quiet,
        callbacks=callbacks,
    )
    if run.result.steps_run:
        write_image(out_path, restored, force=force)
    if report_file is not None:
        write_json(report_file, run.report)
    if not quiet:
        _summary(out_path if run.result.steps_run else None, run.report)
    return EXIT_INTERRUPTED if run.result.interrupted else 0


def _summary(written: Path | None, report: dict[str, Any]) -> None:
    done = f"{report['steps_run']} steps in {report['seconds_total']:.1f} s"
    state = "interrupted after" if report["interrupted"] else "finished:"
    line = f"{state} {done}" + (f", wrote {written}" if written else ", nothing written")
    metrics = report.get("metrics")
    if metrics:
        line += (
            f"; PSNR {metrics['psnr']:.2f} dB (input {metrics['psnr_input']:.2f} dB), "
            f"SSIM {metrics['ssim']:.3f}"
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
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
        click.echo(f"deepprior: error: {error.format_message()}{hint}", err=True)
        sys.exit(EXIT_USAGE)
    except UserError as error:
        click.echo(f"deepprior: error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("deepprior: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
