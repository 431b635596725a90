"""Blind denoising: the data term ‖x − x0‖²; the noise-level rule stops the fit; BM3D's two
classical steps, the second guided by the fit and the first, refine it (``wiener`` chooses)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..canvas import to_tensor
from ..errors import UserError
from ..job import Job
from ..metrics import psnr
from ..operators import Identity
from ..presets import DENOISE_PRESETS
from ..quality import Quality
from ..stopping import MIN_SIGMA, noise_sigma
from ..wiener import (
    FIT_SHARE,
    GROUP,
    GROUP_HARD,
    HARD_LAMBDA,
    PATCH,
    WIENER_MU2,
    refine_fits,
)
from .base import Problem, Task, check_pass_option, load_picture, runs_pass


def build(job: Job, options: dict[str, Any]) -> Problem:
    picture = load_picture(job.inputs["image"])
    sigma = options["sigma"]
    if sigma is not None and (
        isinstance(sigma, bool) or not isinstance(sigma, int | float) or not 0 < sigma < 256
    ):
        raise UserError(f"sigma is the noise level in 8-bit levels, in (0, 255]; got {sigma!r}")
    check_pass_option(options, "wiener")
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


def refine(
    problem: Problem,
    pilots: Sequence[np.ndarray],
    quality: Quality,
    deadline: float | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The empirical Wiener filter of the noisy image guided by a weighted mean of the fit and
    BM3D's first step (:func:`deepprior.wiener.refine_fit`), at the noise level the stopping
    rule uses (the given σ corrected for clipping, or the image's estimate), if the quality
    level runs it and the ``wiener`` option (true, false or None: the level's) agrees.
    ``pilots`` are the fit's iterates, the final one last: each guides a filter, and the
    filtered images are averaged (without the filter, the final iterate is the result); the
    level may enlarge the Wiener step's groups and filter on several reference grids
    (:func:`deepprior.wiener.refine_fits`; "grids" in the report: how many, 0, 1, ... pixels
    in, were made and averaged; those after the first only while the time limit's
    ``deadline`` allows)."""
    pixels = pilots[-1]
    if not runs_pass(problem, "wiener", quality.refine):
        return pixels, {"wiener": False}
    noisy = problem.picture.pixels
    sigma, source = noise_sigma(noisy, problem.sigma)
    group = GROUP if quality.wiener_group is None else quality.wiener_group
    section: dict[str, Any] = {"wiener": True, "block": PATCH, "group": group}
    section["pilot"] = "a weighted mean of the fit and BM3D's first (hard-thresholding) step"
    section["fit_share"] = FIT_SHARE  # the fit's weight in that mean
    section["group_first_step"] = GROUP_HARD  # "group": the Wiener step's largest group
    section["threshold_first_step"] = HARD_LAMBDA  # its coefficients under this many σ zeroed
    section["mu2"] = WIENER_MU2  # the Wiener gain: pilot² / (pilot² + mu2·σ²)
    section["sigma_source"] = source
    if not np.isfinite(sigma) or sigma < MIN_SIGMA:
        return pixels, section | {"wiener": False, "skipped": "no noise measured in the image"}
    grids = quality.wiener_grids
    filtered, section["grids"] = refine_fits(noisy, pilots, sigma, group, grids, deadline)
    if section["grids"] < grids:
        section["grids_left_out"] = "the time limit was reached"
    section["sigma_255"] = round(sigma * 255, 3)
    section["fit_iterates"] = len(pilots)  # the filters averaged, one per iterate
    if problem.reference is not None:
        section["psnr_before"] = psnr(pixels, problem.reference)
    return filtered, section


def metrics(problem: Problem, pixels: np.ndarray) -> dict[str, Any]:
    if problem.reference is None:
        return {}
    return {"psnr_input": psnr(problem.picture.pixels, problem.reference)}


DENOISE = Task(
    name="denoise",
    summary="Blind denoising (no noise level needed).",
    presets=DENOISE_PRESETS,
    options={"sigma": None, "wiener": None},
    default_stop="noise-level",
    output_tag=lambda options: "denoised",
    build=build,
    metrics=metrics,
    refine=refine,
)
