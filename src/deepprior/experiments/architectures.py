"""Inpainting with different architectures (the paper's Fig. 8): how depth and skip
connections change the prior.

Every network fills the same holes of the same image from the same seed. The family is the
authors' library example (1-channel code, encoder–decoder 16–128 channels, 5×5 down, 3×3 up,
nearest, no jitter) at depths 2, 4 and 6, the depth-6 net with skip connections added, and the
registry's U-Net and ResNet at the rate the authors gave them (0.001).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write, check_output_folder
from ..job import Job
from ..metrics import psnr
from ..presets import INPAINT_PRESETS, Preset
from ..runner import run

OUTPUT_NAMES = ("architectures.csv", "architectures.md", "architectures.png")
MIN_TILE_WIDTH = 200  # pixels: room for a panel's label in the grid


def candidates() -> dict[str, Preset]:
    """Label -> preset for each network compared (read from the preset table when called)."""
    base = replace(INPAINT_PRESETS["region"], average_decay=None, backtrack_db=None)
    levels = base.net_options["down"]

    def depth(count: int, skip: int = 0) -> Preset:
        options = {
            **base.net_options,
            "down": levels[:count],
            "up": levels[:count],
            "skip": (skip,) * count,
        }
        return replace(base, name=f"depth {count}", net_options=options)

    deepest = len(levels)
    nets = {f"depth {count}": depth(count) for count in sorted({2, 4, deepest}) if count <= deepest}
    nets[f"depth {deepest} + skip"] = depth(deepest, skip=4)
    for name in ("unet", "resnet"):
        label = {"unet": "U-Net", "resnet": "ResNet"}[name]
        nets[label] = replace(base, name=name, net=name, net_options={}, lr=0.001)
    return nets


@dataclass(frozen=True)
class Row:
    """One network's result."""

    architecture: str
    parameters: int
    lr: float
    steps: int
    psnr: float  # the whole image (known pixels are the input's own)
    psnr_holes: float  # the filled pixels only
    seconds: float


def compare(
    image: np.ndarray,
    known: np.ndarray,
    *,
    steps: int | None,
    seed: int,
    on_start: Callable[[str, int], None] | None = None,
    **job: Any,
) -> tuple[list[Row], dict[str, np.ndarray]]:
    """Fill the holes (``known`` False) of ``image`` with each candidate; rows and images."""
    rows, results = [], {}
    for label, preset in candidates().items():
        count = steps or preset.steps
        if on_start is not None:
            on_start(label, count)
        started = time.perf_counter()
        outcome = run(
            Job(
                "inpaint",
                {"image": image, "mask": known, "reference": image},
                preset=preset,
                steps=count,
                seed=seed,
                **job,
            )
        )
        result = outcome.picture.pixels
        holes = ~known
        rows.append(
            Row(
                architecture=label,
                parameters=outcome.report.net_parameters,
                lr=preset.lr,
                steps=outcome.report.steps_run,
                psnr=psnr(result, image),
                psnr_holes=psnr(result[holes], image[holes]),
                seconds=time.perf_counter() - started,
            )
        )
        results[label] = result
        if outcome.interrupted:
            raise KeyboardInterrupt
    return rows, results


def markdown(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| architecture | parameters | lr | steps | PSNR (dB) | PSNR in the holes (dB) | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.architecture} | {r.parameters:,} | {r.lr:g} | {r.steps} | {r.psnr:.2f} "
        f"| {r.psnr_holes:.2f} | {r.seconds:.0f} |"
        for r in rows
    ]
    legend = (
        "\n'depth N': the authors' encoder-decoder of N levels without skip connections; "
        "'+ skip': with 4-channel skip connections at every level.\n"
    )
    return "\n".join(lines) + "\n" + legend


def write_outputs(
    rows: list[Row],
    results: dict[str, np.ndarray],
    masked: np.ndarray,
    out_dir: Path,
    *,
    force: bool,
) -> list[Path]:
    """``architectures.csv``, ``architectures.md`` and ``architectures.png`` (the input with
    its holes, then each network's result, labelled with its PSNR)."""
    from ..figures import side_by_side

    check_output_folder(out_dir, OUTPUT_NAMES, force=force)
    csv_path, md_path, png_path = (out_dir / name for name in OUTPUT_NAMES)

    def fill_csv(path: Path) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                ["architecture", "parameters", "lr", "steps", "psnr", "psnr_holes", "seconds"]
            )
            for r in rows:
                writer.writerow(
                    [
                        r.architecture,
                        r.parameters,
                        r.lr,
                        r.steps,
                        f"{r.psnr:.4f}",
                        f"{r.psnr_holes:.4f}",
                        f"{r.seconds:.1f}",
                    ]
                )

    def colour(pixels: np.ndarray) -> np.ndarray:
        return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :3]

    panels = [("input", colour(masked))]
    panels += [
        (f"{r.architecture}: {r.psnr:.2f} dB", colour(results[r.architecture])) for r in rows
    ]
    grid = side_by_side(panels, zoom=min(4, -(-MIN_TILE_WIDTH // masked.shape[1])))

    def fill_png(path: Path) -> None:
        from PIL import Image

        Image.fromarray(grid).save(path, format="PNG")

    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        atomic_write(csv_path, fill_csv),
        atomic_write(md_path, lambda path: path.write_text(markdown(rows))),
        atomic_write(png_path, fill_png),
    ]
