"""Noise impedance (the paper's Fig. 2): how fast the network fits a natural image, the image
with noise, its pixels shuffled, and white noise.

Each target is fitted from the same seed with the authors' denoising network and rate, and
no jitter, averaging or backtracking (the energy ‖f(z) − x0‖² is the plain fit's); the
energy is recorded every ``every`` steps.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write, check_output_folder
from ..job import Job
from ..presets import DENOISE_PRESETS
from ..runner import run
from ..synthetic import add_noise

TARGETS = ("natural image", "image + noise", "shuffled pixels", "white noise")


def targets(image: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The four targets of Fig. 2 from an H×W×C image in [0, 1] (noise: σ = 25/255)."""
    rng = np.random.default_rng(seed)
    h, w, c = image.shape
    shuffled = image.reshape(h * w, c)[rng.permutation(h * w)].reshape(h, w, c)
    white = rng.uniform(0, 1, image.shape).astype(np.float32)
    noisy = add_noise(image, 25, seed=seed)
    return dict(zip(TARGETS, (image, noisy, shuffled, white), strict=True))


def energy_curves(
    image: np.ndarray, *, steps: int, seed: int = 0, every: int = 10, **job: Any
) -> dict[str, list[tuple[int, float]]]:
    """(step, energy) every ``every`` steps for each target; ``job``: device, precision, ..."""
    preset = replace(
        DENOISE_PRESETS["authors"],
        name="impedance",
        source="the authors' denoising network and rate; no jitter, averaging or backtracking",
        input_noise=0.0,
        average_decay=None,
        backtrack_db=None,
    )
    curves = {}
    for name, target in targets(image, seed).items():
        outcome = run(
            Job("denoise", {"image": target}, preset=preset, steps=steps, seed=seed, **job),
            history_every=every,
        )
        curves[name] = [(int(r["step"]), float(r["loss"])) for r in outcome.history.records]
    return curves


def steps_to_reach(curve: list[tuple[int, float]], energy: float) -> int | None:
    """The first recorded step at which the energy is at most ``energy`` (None: never)."""
    return next((step for step, value in curve if value <= energy), None)


def write_outputs(
    curves: dict[str, list[tuple[int, float]]], out_dir: Path, *, force: bool
) -> list[Path]:
    """``impedance.csv`` (step and one column per target) and ``impedance.png`` (the plot)."""
    csv_path, png_path = out_dir / "impedance.csv", out_dir / "impedance.png"
    check_output_folder(out_dir, (csv_path.name, png_path.name), force=force)

    def fill_csv(path: Path) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["step", *curves])
            columns = list(curves.values())
            for index, (step, _) in enumerate(columns[0]):
                writer.writerow([step, *(f"{column[index][1]:.6g}" for column in columns)])

    def fill_png(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(6, 4))
        for name, curve in curves.items():
            axes.plot([s for s, _ in curve], [e for _, e in curve], label=name)
        axes.set_xscale("log")
        axes.set_xlabel("step")
        axes.set_ylabel("energy ‖f(z) − x0‖² (MSE)")
        axes.legend()
        figure.tight_layout()
        figure.savefig(path, format="png", dpi=120)
        plt.close(figure)

    out_dir.mkdir(parents=True, exist_ok=True)
    return [atomic_write(csv_path, fill_csv), atomic_write(png_path, fill_png)]
