"""The run report: one typed record shared by every task, written as JSON."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

# The folder above ``src/`` when the package runs from a clone (an editable install); for an
# installed package it is a folder of the Python installation, which holds no ``.git``.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
NOT_A_CHECKOUT = "not a git checkout"


def source_commit(root: Path = SOURCE_ROOT) -> str:
    """The commit checked out at ``root``, with ``+dirty`` when tracked files differ from it;
    ``not a git checkout`` where ``root`` holds no ``.git`` (an installed package)."""
    if not (root / ".git").exists():
        return NOT_A_CHECKOUT

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git failed)"
    return head + ("+dirty" if dirty else "")


def cpu_model() -> str:
    """The processor's model name (from ``/proc/cpuinfo`` on Linux), else what Python knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    """What made a run: the package (and its commit, run from a clone), its main libraries and
    the machine (wall times compare only on the same ``cpu``)."""
    from . import __version__

    return {
        "deepprior": __version__,
        "commit": source_commit(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu_model(),
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
