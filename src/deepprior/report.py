"""The run report: one typed record shared by every task, written as JSON."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch


def versions() -> dict[str, str]:
    from . import __version__

    return {
        "deepprior": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


@dataclass
class Report:
    """What a run did, assembled in one place (:func:`deepprior.runner.run`).

    ``to_dict`` gives the JSON the README documents: the fields in this order, the optional
    ones (``runs``, ``history``, ``metrics``) only when they hold something, then the task's
    own sections (``sections``, e.g. inpainting's ``mask``).
    """

    job: dict[str, Any]
    task: str
    settings: dict[str, Any]
    seed: int
    device: str
    precision: str
    engine: dict[str, Any]
    memory: dict[str, Any]
    versions: dict[str, str]
    net_parameters: int
    image_size: list[int]
    padded_size: list[int]
    steps_run: int
    stopping: dict[str, Any]
    seconds_total: float
    seconds_per_step: float
    backtracks: int
    interrupted: bool
    runs: list[dict[str, Any]] | None = None
    history: list[dict[str, float]] | None = None
    metrics: dict[str, Any] | None = None
    cpu_threads: int | None = None  # PyTorch's threads on a CPU: results differ in their last bits
    sections: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON data: a figure that does not exist (NaN, ±infinity) is null, and
        ``null_reasons`` says why, by its dotted path."""
        data = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "sections" and getattr(self, f.name) is not None
        }
        reasons: dict[str, str] = {}
        clean = finite(data | self.sections, "", reasons)
        return clean | ({"null_reasons": reasons} if reasons else {})


def finite(value: Any, where: str, reasons: dict[str, str]) -> Any:
    """``value`` with every NaN or infinite float replaced by None, the reason noted."""
    if isinstance(value, float) and not math.isfinite(value):
        reasons[where] = (
            "infinite: the two images are identical"
            if value > 0
            else "not a number: the figure is undefined here"
        )
        return None
    if isinstance(value, dict):
        return {
            k: finite(v, f"{where}.{k}" if where else str(k), reasons) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [finite(v, f"{where}[{i}]", reasons) for i, v in enumerate(value)]
    return value


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write strict JSON atomically (non-finite figures become null, see :func:`finite`)."""
    from .io import atomic_write

    text = json.dumps(finite(data, "", {}), indent=2, allow_nan=False) + "\n"
    return atomic_write(Path(path), lambda temporary: temporary.write_text(text))
