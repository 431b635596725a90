"""Blind denoising: the data term ‖x − x0‖²; the noise-level rule stops the fit."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..canvas import to_tensor
from ..errors import UserError
from ..job import Job
from ..metrics import psnr
from ..operators import Identity
from ..presets import DENOISE_PRESETS
from .base import Problem, Task, load_picture


def build(job: Job, options: dict[str, Any]) -> Problem:
    picture = load_picture(job.inputs["image"])
    sigma = options["sigma"]
    if sigma is not None and (
        isinstance(sigma, bool) or not isinstance(sigma, int | float) or not 0 < sigma < 256
    ):
        raise UserError(f"sigma is the noise level in 8-bit levels, in (0, 255]; got {sigma!r}")
    if sigma is not None and job.steps != "auto":
        raise UserError(
            "sigma tells the stopping rule where to stop, and a fixed step count has no rule: "
            "give either sigma or a number of steps"
        )
    return Problem(
        picture=picture,
        observation=to_tensor(picture.pixels),
        operator=Identity(),
        out_size=(picture.height, picture.width),
        out_channels=picture.channels,
        observed=torch.ones(1, 1, picture.height, picture.width),
        preset="authors",
        options=options,
        noisy=picture.pixels,
        sigma=None if sigma is None else sigma / 255,
    )


def metrics(problem: Problem, pixels: np.ndarray) -> dict[str, Any]:
    if problem.reference is None:
        return {}
    return {"psnr_input": psnr(problem.picture.pixels, problem.reference)}


DENOISE = Task(
    name="denoise",
    summary="Blind denoising (no noise level needed).",
    presets=DENOISE_PRESETS,
    options={"sigma": None},
    default_stop="noise-level",
    output_tag=lambda options: "denoised",
    build=build,
    metrics=metrics,
)
