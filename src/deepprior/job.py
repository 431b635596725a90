"""A job: one run as plain data, what the CLI, batches, a cluster and a web page submit.

A job names its task, its inputs (file paths, or images in memory from Python), the task's
options, the preset and any overrides of it, and how to run: seed, device, precision,
stopping, runs, averaging. :meth:`Job.to_dict` and :meth:`Job.from_dict` round-trip it
through JSON exactly; every run report records the job that made it (with the seed drawn,
when none was given), so that ``deepprior run REPORT.json`` replays the run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .presets import Preset

MAX_SEED = 2**62  # runs use seed + 1000·k and seed + 1..3: all stay inside torch's range


@dataclass(frozen=True)
class Job:
    """One run, as data.

    Attributes:
        task: a name in :data:`deepprior.tasks.TASKS`.
        inputs: name -> file path, or an image in memory (numpy array, torch tensor or
            Picture; such a job runs but cannot be written out and replayed). ``image`` is
            the degraded input; ``reference`` the clean image, when known; ``mask`` the
            inpainting mask.
        options: the task's own options (see its ``options``), e.g. ``{"scale": 4}``.
        preset: a preset's name, a :class:`Preset`, or None for the task's default.
        overrides: preset fields to replace, e.g. ``{"lr": 0.02}``.
        steps: ``"auto"`` (a stopping rule ends the fit; ``max_steps`` caps it) or a count.
        stop: the rule of ``steps="auto"``; ``"auto"`` is the task's default.
        quality: ``fast``, ``default``, ``best`` or ``paper``: that level's changes to the
            preset (width, cap) and to the run (runs, self-ensemble; see
            :mod:`deepprior.quality`); the fields below, when given, win over it.
        runs: independent fits averaged (seeds ``seed``, ``seed`` + 1000, ...); None: the
            quality level's.
        ensemble: self-ensemble: run k fits the image mirrored and turned (orientation k mod
            8, see :mod:`deepprior.orientation`) and is turned back before the average; None:
            the quality level's.
        patience: steps without improvement after which a stopping rule ends the fit; None:
            the quality level's (else :data:`deepprior.stopping.PATIENCE`).
        average: the output's moving-average decay (0: off; None: the preset's).
        time_limit: seconds of wall time for the whole run (None: no limit); the fit then
            ends early with its best iterate so far (a stopping rule's choice, or the output).
    """

    task: str
    inputs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    preset: str | Preset | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    device: str = "auto"
    precision: str = "auto"
    engine: str = "fast"
    steps: int | str = "auto"
    stop: str = "auto"
    max_steps: int | None = None
    quality: str = "default"
    runs: int | None = None
    ensemble: bool | None = None
    patience: int | None = None
    average: float | None = None
    time_limit: float | None = None

    def check(self) -> None:
        """Raise :class:`UserError` for a value no run could take (before any work)."""
        _whole("steps", self.steps, auto=True)
        _whole("max_steps", self.max_steps, optional=True)
        _whole("runs", self.runs, optional=True)
        _whole("patience", self.patience, optional=True)
        if self.ensemble is not None and not isinstance(self.ensemble, bool):
            raise UserError(f"ensemble is true or false, got {self.ensemble!r}")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed < MAX_SEED):
            raise UserError(f"seed must be a whole number from 0 to 2**62 - 1, got {self.seed!r}")
        if self.average is not None and (
            isinstance(self.average, bool)
            or not isinstance(self.average, int | float)
            or not 0 <= self.average < 1
        ):
            raise UserError(f"average must lie in [0, 1), got {self.average!r}")
        if self.time_limit is not None and (
            isinstance(self.time_limit, bool)
            or not isinstance(self.time_limit, int | float)
            or not 0 < self.time_limit < float("inf")
        ):
            raise UserError(
                f"time_limit must be a positive number of seconds, got {self.time_limit!r}"
            )
        if not isinstance(self.inputs, dict):
            raise UserError("a job's inputs are a dict: inputs={'image': PATH_OR_ARRAY}")

    def with_seed(self, seed: int) -> Job:
        return replace(self, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; images in memory are described (shape and sha256), not kept."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["inputs"] = {name: _describe(value) for name, value in self.inputs.items()}
        if isinstance(self.preset, Preset):
            data["preset"] = self.preset.to_dict()
        data["options"] = {name: _describe_option(value) for name, value in self.options.items()}
        data["overrides"] = json.loads(json.dumps(self.overrides))
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Job:
        """The inverse of :meth:`to_dict`; unknown or missing fields are a :class:`UserError`."""
        if not isinstance(data, dict):
            raise UserError("a job is a JSON object with 'task' and 'inputs'")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(
                f"unknown job fields {', '.join(unknown)}; a job has {', '.join(known)}"
            )
        if "task" not in data or "inputs" not in data:
            raise UserError("a job needs 'task' and 'inputs'")
        values = dict(data)
        if isinstance(values.get("preset"), dict):
            values["preset"] = Preset.from_dict(values["preset"])
        overrides = dict(values.get("overrides") or {})
        if isinstance(overrides.get("net_options"), dict):
            overrides["net_options"] = {
                k: tuple(v) if isinstance(v, list) else v
                for k, v in overrides["net_options"].items()
            }
        values["overrides"] = overrides
        return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _whole(name: str, value: Any, *, auto: bool = False, optional: bool = False) -> None:
    """Check a count: a positive int (not a bool, not a float), or 'auto' / None if allowed."""
    if (auto and isinstance(value, str) and value == "auto") or (optional and value is None):
        return
    if not _is_int(value) or value < 1:
        extra = " or 'auto'" if auto else ""
        raise UserError(f"{name} must be a positive whole number{extra}, got {value!r}")


def _describe_option(value: Any) -> Any:
    """An option as it is when JSON holds it; a Python object (an operator) by its type."""
    if value is None or isinstance(value, str | int | float | bool | list | tuple | dict):
        return value
    return {"python_object": type(value).__name__}


def _describe(value: Any) -> Any:
    """A path as a string; an image in memory as its shape, type and sha256."""
    if isinstance(value, str | os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return value
    pixels = getattr(value, "pixels", value)  # a Picture
    array = np.ascontiguousarray(
        pixels.detach().cpu().numpy() if hasattr(pixels, "detach") else np.asarray(pixels)
    )
    return {
        "in_memory": True,
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "sha256": hashlib.sha256(array.tobytes()).hexdigest(),
    }


def is_in_memory(value: Any) -> bool:
    """True for an input that a replayed job cannot read (an image described, not a path)."""
    return isinstance(value, dict) and bool(value.get("in_memory"))


def load_job(path: str | os.PathLike[str]) -> Job:
    """Read a job from a job file, or the job a run report records."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{file}: no such file; give a job or a run report (JSON)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{file} is not valid JSON ({error}); give a job or a run report") from None
    if isinstance(data, dict) and "job" in data:
        data = data["job"]
    job = Job.from_dict(data)
    for name, value in job.inputs.items():
        if is_in_memory(value):
            raise UserError(
                f"{file}: the input {name!r} was an image in memory (from Python), which the "
                "report describes but does not hold; save it to a file and put its path there"
            )
    return job
