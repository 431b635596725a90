"""What a task is: an entry in the task table, and the problem it builds from a job."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from ..data_terms import DataTerm
from ..errors import UserError
from ..io import MIN_SIDE, Picture, from_array, read_image
from ..operators import Operator
from ..presets import Preset

if TYPE_CHECKING:
    from ..job import Job
    from ..quality import Quality


@dataclass
class Problem:
    """What a task builds from a job's inputs: the fit's target and what its result is for.

    Attributes:
        picture: the input image as read (its alpha and bit depth go to the output).
        observation: y, (1, C_y, h, w) on the CPU.
        operator: A, mapping the restored image to y.
        out_size, out_channels: the restored image's (H, W) and C.
        observed: (1, 1, h, w), 1 where y holds a pixel (a validation rule holds some back).
        preset: the task's default preset for these inputs (e.g. chosen from the mask).
        options: the task's options, defaults filled in.
        reference: the clean image (H×W×C), when the job gives or makes one.
        noisy, sigma: what the noise-level rule estimates σ from, and σ when known ([0, 1]).
        code_source: the image or tensor of an ``image`` or ``tensor`` code.
        data_term: the loss of the output; None: MSE between A(x) and y.
        settings: added to the report's ``settings`` (e.g. the scale and the kernel).
        sections: the task's own report sections (e.g. ``mask``).
        guard: a check of the output that, when it fails, sends the fit back to its last good
            state (:class:`deepprior.fitting.Backtracking`); ``guard_rule`` describes it.
        may_run_past_cap: False where a falling held-back error does not mean the fit still
            gains: no quality level then lets a fit run past its cap, nor says it does.
    """

    picture: Picture
    observation: Tensor
    operator: Operator
    out_size: tuple[int, int]
    out_channels: int
    observed: Tensor
    preset: str
    options: dict[str, Any]
    reference: np.ndarray | None = None
    noisy: np.ndarray | None = None
    sigma: float | None = None
    code_source: Tensor | None = None
    data_term: DataTerm | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    guard: Callable[[Tensor], bool] | None = None
    guard_rule: str = ""
    may_run_past_cap: bool = True


def _keep(problem: Problem, pixels: np.ndarray) -> Picture:
    return problem.picture.with_pixels(pixels)


def _no_metrics(problem: Problem, pixels: np.ndarray) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Task:
    """One entry of the task table: everything that makes denoising denoising.

    Attributes:
        name: the CLI verb and the job's ``task``.
        summary: one line for ``--help``.
        presets: the task's named settings.
        options: the task's own options and their defaults.
        default_stop: the stopping rule of ``--steps auto``.
        output_tag: how a default output is named (``photo.<tag>.png``), from the options.
        build: the job and its options -> the :class:`Problem` (operator, observation, code).
        finish: the fitted pixels (H×W×C) -> the output Picture (alpha, known pixels, ...).
        metrics: the task's own figures (against the reference, when there is one), from the
            finished pixels.
        refine: a classical second pass over the averaged fit, before ``finish`` (denoising:
            an empirical Wiener filter guided by the fit and BM3D's first step;
            super-resolution: back-projection onto the low-resolution input; inpainting:
            a mean with biharmonic interpolation): (problem, the averaged fit's iterates,
            the final one last (a level with ``early_pilot`` keeps an earlier one too),
            the quality level: whether it runs the pass, and denoising's settings of it, and
            the time limit's deadline, a ``time.perf_counter()`` value or None) -> (pixels,
            the report's section); the task's own option may override the level.
        inputs: the input names the task reads besides ``image``.
        needs_image: False for a task that makes an image from nothing (activation
            maximisation).
    """

    name: str
    summary: str
    presets: Mapping[str, Preset]
    options: Mapping[str, Any]
    default_stop: str
    output_tag: Callable[[Mapping[str, Any]], str]
    build: Callable[[Job, dict[str, Any]], Problem]
    finish: Callable[[Problem, np.ndarray], Picture] = _keep
    metrics: Callable[[Problem, np.ndarray], dict[str, Any]] = _no_metrics
    refine: (
        Callable[
            [Problem, Sequence[np.ndarray], Quality, float | None],
            tuple[np.ndarray, dict[str, Any]],
        ]
        | None
    ) = None
    inputs: tuple[str, ...] = ("reference",)
    needs_image: bool = True

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The task's options with defaults filled in; an unknown one is a :class:`UserError`."""
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise UserError(f"{self.name} has no option {', '.join(unknown)}; it takes {known}")
        return {**self.options, **given}

    def preset(self, name: str) -> Preset:
        if name not in self.presets:
            raise UserError(f"unknown preset {name!r}; choose one of {', '.join(self.presets)}")
        return self.presets[name]


def check_pass_option(options: Mapping[str, Any], name: str) -> None:
    """A task's option that turns its classical pass on or off is true, false or None (the
    quality level's choice); anything else is a :class:`UserError`."""
    value = options[name]
    if value is not None and not isinstance(value, bool):
        raise UserError(f"{name} is true, false or None (the quality level's), got {value!r}")


def runs_pass(problem: Problem, name: str, level_runs_it: bool) -> bool:
    """Whether the task's pass runs: the option ``name`` if given, else the quality level."""
    wanted = problem.options[name]
    return level_runs_it if wanted is None else bool(wanted)


def load_picture(value: Any) -> Picture:
    """An input as a Picture: a file path is read, an array or tensor converted."""
    if isinstance(value, str | Path):
        return read_image(value)
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    picture = value if isinstance(value, Picture) else from_array(np.asarray(value))
    if min(picture.height, picture.width) < MIN_SIDE:
        raise UserError(
            f"the image is {picture.width}×{picture.height}; both sides must be at least "
            f"{MIN_SIDE} px"
        )
    return picture
