"""Flash / no-flash: the flash image is the code z, the no-flash image the target.

The authors' run "sometimes gets stuck at a reddish image"; :func:`colour_guard` watches the
output's colour balance and sends a drifting fit back to its last good state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..canvas import to_tensor
from ..errors import UserError
from ..job import Job
from ..operators import Identity
from ..presets import FLASH_PRESETS
from .base import Problem, Task, load_picture

# The largest L1 distance between the output's and the target's chromaticities (each
# channel's mean over the sum of the means) before the guard fires: a grey output against a
# strongly tinted target is about 0.1 away, a red-stuck one 0.3 or more.
MAX_COLOUR_DRIFT = 0.15
GUARD_RULE = (
    f"the output's chromaticity (channel means over their sum) within {MAX_COLOUR_DRIFT} (L1) "
    "of the no-flash image's; on a drift, back to the last good state at half the rate"
)


def chromaticity(image: Tensor) -> Tensor:
    """(1, C, H, W) -> (C,): each channel's mean over the sum of the means."""
    means = image.float().mean(dim=(0, 2, 3))
    return means / means.sum().clamp_min(1e-6)


def colour_guard(target: Tensor) -> Callable[[Tensor], bool]:
    """True when an output's colour balance has drifted from the target's."""
    expected = chromaticity(target)

    def drifted(output: Tensor) -> bool:
        return float((chromaticity(output) - expected.to(output.device)).abs().sum()) > (
            MAX_COLOUR_DRIFT
        )

    return drifted


def build(job: Job, options: dict[str, Any]) -> Problem:
    picture = load_picture(job.inputs["image"])
    if "flash" not in job.inputs:
        raise UserError("flash needs the flash image as well as the no-flash one")
    flash = load_picture(job.inputs["flash"])
    shapes = [(p.width, p.height, p.channels) for p in (flash, picture)]
    if shapes[0] != shapes[1]:
        (fw, fh, fc), (nw, nh, nc) = shapes
        raise UserError(
            f"the flash image is {fw}×{fh} with {fc} channel(s) but the no-flash one is "
            f"{nw}×{nh} with {nc}; give two shots of one scene at one size"
        )
    target = to_tensor(picture.pixels)
    guarded = picture.channels > 1
    return Problem(
        picture=picture,
        observation=target,
        operator=Identity(),
        out_size=(picture.height, picture.width),
        out_channels=picture.channels,
        observed=torch.ones(1, 1, picture.height, picture.width),
        preset="authors",
        options=options,
        code_source=to_tensor(flash.pixels),
        guard=colour_guard(target) if guarded else None,
        guard_rule=GUARD_RULE if guarded else "",
        # The held-back pixels measure how closely the fit draws the no-flash shot, noise and
        # all, not how well it joins the two shots (there is no clean image to say that), so
        # a falling error does not ask for more than the authors' steps.
        may_run_past_cap=False,
    )


FLASH = Task(
    name="flash",
    summary="Flash / no-flash: the no-flash image's light, the flash image's detail.",
    presets=FLASH_PRESETS,
    options={},
    default_stop="validation",
    output_tag=lambda options: "flash",
    build=build,
    inputs=("flash", "reference"),
)
