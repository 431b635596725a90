"""Super-resolution ×2/×3/×4/×8: the data term ‖d(x) − x0‖², d a downsampler; back-projection
onto the input ends the run (``back_project`` chooses)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..backprojection import ITERATIONS, back_project, residual_rms
from ..baselines import degrade_for_sr, upscale
from ..canvas import to_tensor
from ..errors import UserError
from ..io import Picture
from ..job import Job
from ..metrics import psnr_y
from ..operators import KERNELS, Downsample
from ..presets import SR_PRESETS
from ..quality import Quality
from .base import Problem, Task, check_pass_option, load_picture, runs_pass

SCALES = (2, 3, 4, 8)


def build(job: Job, options: dict[str, Any]) -> Problem:
    scale, kernel = options["scale"], options["kernel"]
    if isinstance(scale, bool) or scale not in SCALES:
        raise UserError(
            f"scale {scale!r} is not supported; use one of {', '.join(map(str, SCALES))} "
            "(a whole number)"
        )
    if kernel not in KERNELS:
        raise UserError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    check_pass_option(options, "back_project")
    picture = load_picture(job.inputs["image"])
    reference = None
    if options["degrade"]:
        if "reference" in job.inputs:
            raise UserError("degrade uses the input as the reference; leave out the reference")
        hr, lr = degrade_for_sr(picture.pixels, scale)
        picture, reference = Picture(lr, bit_depth=picture.bit_depth), hr
    return Problem(
        picture=picture,
        observation=to_tensor(picture.pixels),
        operator=Downsample(scale, kernel),
        out_size=(picture.height * scale, picture.width * scale),
        out_channels=picture.channels,
        observed=torch.ones(1, 1, picture.height, picture.width),
        preset=f"x{scale}",
        options=options,
        reference=reference,
        settings={"scale": scale, "kernel": kernel},
    )


def refine(
    problem: Problem,
    pilots: Sequence[np.ndarray],
    quality: Quality,
    deadline: float | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The fit back-projected onto the low-resolution input (:mod:`deepprior.backprojection`)
    if the quality level runs it and the ``back_project`` option (true, false or None: the
    level's) agrees; with several iterates (``pilots``, the final one last), the mean of
    their projections (without the pass, the final iterate)."""
    pixels = pilots[-1]
    if not runs_pass(problem, "back_project", quality.refine):
        return pixels, {"back_projection": False}
    low, operator = problem.picture.pixels, problem.operator
    projected = np.stack([back_project(pilot, low, operator) for pilot in pilots]).mean(
        axis=0, dtype=np.float32
    )
    section: dict[str, Any] = {
        "back_projection": True,
        "iterations": ITERATIONS,
        "upsampler": "bicubic",
        "residual_rms_255_before": round(residual_rms(pixels, low, operator) * 255, 3),
        "residual_rms_255_after": round(residual_rms(projected, low, operator) * 255, 3),
    }
    if problem.reference is not None:
        section["psnr_y_before"] = psnr_y(pixels, problem.reference, problem.options["scale"])
    return projected, section


def finish(problem: Problem, pixels: np.ndarray) -> Picture:
    """The alpha, if any, is upscaled with Lanczos."""
    alpha = problem.picture.alpha
    if alpha is not None:
        alpha = upscale(alpha[:, :, None], problem.options["scale"], "lanczos")[:, :, 0]
    return Picture(pixels, alpha=alpha, bit_depth=problem.picture.bit_depth)


def metrics(problem: Problem, pixels: np.ndarray) -> dict[str, Any]:
    """The paper's protocol: luma PSNR with a border of ``scale`` pixels removed."""
    reference, scale = problem.reference, problem.options["scale"]
    if reference is None:
        return {}
    figures: dict[str, Any] = {"psnr_y": psnr_y(pixels, reference, shave=scale)}
    for method in ("bicubic", "lanczos"):
        upscaled = upscale(problem.picture.pixels, scale, method)
        figures[f"psnr_y_{method}"] = psnr_y(upscaled, reference, scale)
    figures["protocol"] = f"psnr_y: BT.601 luma, {scale}-pixel border removed"
    return figures


SUPER_RESOLVE = Task(
    name="sr",
    summary="Super-resolution of a low-resolution image, no ground truth needed.",
    presets=SR_PRESETS,
    options={"scale": 4, "kernel": "lanczos2", "degrade": False, "back_project": None},
    default_stop="validation",
    output_tag=lambda options: f"x{options['scale']}",
    build=build,
    finish=finish,
    metrics=metrics,
    refine=refine,
)
