"""What every benchmark records beside its figures: command, machine, commit, versions."""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from deepprior.engine import DEVICES, ENGINES, PRECISIONS
from deepprior.experiments.reproduce import crop
from deepprior.fitting import Callback
from deepprior.io import Picture
from deepprior.job import Job
from deepprior.report import cpu_model, source_commit, versions
from deepprior.runner import Outcome, run

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def provenance(device: str) -> dict[str, Any]:
    """The command, the commit of this checkout, the machine and the versions."""
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": source_commit(ROOT),
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


# The centre size×size of an H×W(×C) array (the whole array when size is None): the crop
# `deepprior reproduce` takes, so that benchmarks and the report cut images alike.
centre_crop = crop


def skimage_photo(name: str) -> np.ndarray:
    """One of scikit-image's bundled photographs (``chelsea``, ``rocket``, ...), H×W×C
    float32 in [0, 1], at most three channels: images outside ``../shared`` to check on."""
    from skimage import data

    loader = getattr(data, name, None)
    if not callable(loader) or name.startswith("_"):
        sys.exit(f"scikit-image has no bundled photograph {name!r}; try chelsea, rocket, coffee")
    pixels = np.asarray(loader(), np.float32) / 255
    return (pixels if pixels.ndim == 3 else pixels[:, :, None])[:, :, :3]


def jpeg_round_trip(pixels: np.ndarray, quality: int) -> np.ndarray:
    """The image (H×W×1 or H×W×3 in [0, 1]) saved as a JPEG of this quality by Pillow and
    read back, in its own shape."""
    buffer = io.BytesIO()
    eight_bit = np.round(pixels * 255).astype(np.uint8)
    Image.fromarray(eight_bit.squeeze(2) if pixels.shape[2] == 1 else eight_bit).save(
        buffer, "JPEG", quality=quality
    )
    mode = "L" if pixels.shape[2] == 1 else "RGB"
    read = np.asarray(Image.open(buffer).convert(mode), np.float32) / 255
    return read.reshape(pixels.shape)


def steps_value(text: str) -> int | str:
    """argparse type of ``--steps``: 'auto' (a stopping rule, the default) or a fixed count."""
    return text if text == "auto" else int(text)


def list_images(folder: Path, stems: list[str] | None = None) -> list[Path]:
    """The PNG and TIFF files of ``folder`` (only those named in ``stems``, when given)."""
    if not folder.is_dir():
        sys.exit(f"{folder}: no such folder; give the folder of benchmark images")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".tif", ".tiff"))
    if stems:
        paths = [p for p in paths if p.stem in stems]
    if not paths:
        sys.exit(
            f"{folder}: no PNG or TIFF images" + (f" named {', '.join(stems)}" if stems else "")
        )
    return paths


def add_run_arguments(parser: argparse.ArgumentParser, *, engine: bool = False) -> None:
    """The options every fitting benchmark shares: device, precision (engine), JSON output."""
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    if engine:
        parser.add_argument("--engine", default="fast", choices=sorted(ENGINES))
    parser.add_argument("--json", type=Path, default=None, help="write the results here")


def mean(values: Iterable[float | None]) -> float | str:
    """The mean of a column, or 'n/a' when any cell is missing."""
    cells = list(values)
    if not cells or any(v is None for v in cells):
        return "n/a"
    return statistics.mean(float(v) for v in cells if v is not None)


def run_task(
    task: str,
    image: Picture,
    *,
    reference: Picture | np.ndarray | None = None,
    inputs: dict[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    watch_only: bool = False,
    **job: Any,
) -> Outcome:
    """Run a task on images in memory through the runner, as the CLI would on files.

    The presets run as they are (quality ``paper``) unless ``quality`` is given: these
    benchmarks measure the presets they name (``benchmarks/frontier.py`` measures the levels).
    """
    job.setdefault("quality", "paper")
    given: dict[str, Any] = {"image": image, **(inputs or {})}
    if reference is not None:
        given["reference"] = reference
    options = job.pop("options", {})
    return run(
        Job(task=task, inputs=given, options=options, **job),
        callbacks=callbacks,
        watch_only=watch_only,
    )
