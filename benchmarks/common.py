"""What every benchmark records beside its figures: command, machine, commit, versions."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from deepprior.report import versions

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: str) -> dict[str, Any]:
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": _git("rev-parse", "HEAD") + ("+dirty" if dirty else ""),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": device,
        },
        "versions": versions(),
    }


def print_header(info: dict[str, Any], settings: dict[str, Any]) -> None:
    print(f"# {info['command']}")
    print(
        f"# commit {info['commit']}; {info['machine']['cpu']}, "
        f"{info['machine']['torch_threads']} threads, device {info['machine']['device']}; "
        f"torch {info['versions']['torch']}"
    )
    print("# settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(" | ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in cells:
        print(" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def save_json(
    path: Path | None, info: dict[str, Any], settings: dict[str, Any], results: list[dict[str, Any]]
) -> None:
    """Write the provenance, the settings and the per-image results (when a path is given)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**info, "settings": settings, "results": results}, indent=2) + "\n")
    print(f"wrote {path}")


def centre_crop(pixels: Any, size: int | None) -> Any:
    """The centre size×size of an H×W(×C) array (the whole array when size is None)."""
    if size is None:
        return pixels
    h, w = pixels.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return pixels[top : top + size, left : left + size]


def steps_value(text: str) -> int | str:
    """argparse type of ``--steps``: 'auto' (a stopping rule, the default) or a fixed count."""
    return text if text == "auto" else int(text)
