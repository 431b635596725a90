"""Restoration: blind (JPEG artefacts, ‖x − x0‖²) or of a degradation the user writes down.

``degradation`` is a spec (``blur:gaussian:2+downsample:2``; see
:mod:`deepprior.degradations`) or, from Python, any operator, ``nn.Module`` or differentiable
function; the result has the shape the degradation maps to the input's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..baselines import resize
from ..canvas import to_tensor
from ..degradations import GRAMMAR, check_fits, parse
from ..errors import UserError
from ..io import Picture
from ..job import Job
from ..metrics import psnr
from ..operators import Identity, Operator, as_operator
from ..presets import RESTORE_PRESETS
from .base import Problem, Task, load_picture


def _operator(degradation: Any) -> tuple[Operator, str]:
    if isinstance(degradation, str):
        return parse(degradation), degradation
    if isinstance(degradation, dict):  # a replayed report: the operator was a Python object
        raise UserError(
            "the degradation was a Python object, which the report names but does not hold; "
            f"give it again from Python, or as a spec: {GRAMMAR}"
        )
    if not callable(degradation):
        raise UserError(f"degradation is a spec or a function of the image; got {degradation!r}")
    return as_operator(degradation), type(degradation).__name__


def build(job: Job, options: dict[str, Any]) -> Problem:
    picture = load_picture(job.inputs["image"])
    observed_shape = (picture.channels, picture.height, picture.width)
    observed = torch.ones(1, 1, picture.height, picture.width)
    if options["degradation"] is None:
        return Problem(
            picture=picture,
            observation=to_tensor(picture.pixels),
            operator=Identity(),
            out_size=(picture.height, picture.width),
            out_channels=picture.channels,
            observed=observed,
            preset="jpeg",
            options=options,
            noisy=picture.pixels,
            settings={"degradation": None},
            # JPEG's artefacts are shared by the pixels of a block, so held-back pixels are
            # predicted from fitted ones: their error kept falling past the cap while the
            # result got worse (-0.20 dB on six 128² crops at quality 10; README, session 23).
            may_run_past_cap=False,
        )
    operator, spec = _operator(options["degradation"])
    check_fits(operator, observed_shape, spec)
    channels, height, width = operator.source_shape(observed_shape)
    return Problem(
        picture=picture,
        observation=to_tensor(picture.pixels),
        operator=operator,
        out_size=(height, width),
        out_channels=channels,
        observed=observed,
        preset="authors",
        options=options,
        settings={"degradation": spec},
    )


def finish(problem: Problem, pixels: np.ndarray) -> Picture:
    """The input's alpha, resized with Lanczos when the result is larger."""
    alpha = problem.picture.alpha
    height, width = problem.out_size
    if alpha is not None and alpha.shape != (height, width):
        alpha = np.clip(resize(alpha, height, width, "lanczos"), 0, 1)
    return Picture(pixels, alpha=alpha, bit_depth=problem.picture.bit_depth)


def metrics(problem: Problem, pixels: np.ndarray) -> dict[str, Any]:
    """The input's PSNR against the reference, when it has the result's shape."""
    reference, given = problem.reference, problem.picture.pixels
    if reference is None or given.shape != reference.shape:
        return {}
    return {"psnr_input": psnr(given, reference)}


RESTORE = Task(
    name="restore",
    summary="Blind restoration (JPEG artefacts), or of a degradation you write down.",
    presets=RESTORE_PRESETS,
    options={"degradation": None},
    # benchmarks/stopping.py on JPEG inputs (CBM3D 128² crops, quality 10 and 20): validation
    # kept a result 0.05 dB under the best seen on average (worst 0.19), noise-level 0.05
    # (0.16), variance 0.54 (1.71: it stops too early, the best is near the cap).
    default_stop="validation",
    output_tag=lambda options: "restored",
    build=build,
    finish=finish,
    metrics=metrics,
)
