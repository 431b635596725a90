"""``deepprior demo``: denoise a real photograph shipped with scikit-image, end to end."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .figures import side_by_side
from .io import Picture, write_image
from .presets import DENOISE_PRESETS
from .report import write_json
from .synthetic import add_noise

SIGMA = 25
NOISE_SEED = 0
FIT_SEED = 0
SIZE = 128
DEMO_STEPS = 900
FILES = ("clean.png", "noisy.png", "restored.png", "comparison.png", "report.json")


def demo_image(size: int = SIZE) -> np.ndarray:
    """The astronaut photograph (scikit-image), centre-cropped to the face and resized.

    Shape:
        (size, size, 3) float32 in [0, 1]
    """
    from skimage import data, transform

    photo = data.astronaut()[:320, 96:416]  # her face and the flag, 320×320
    return transform.resize(photo, (size, size), anti_aliasing=True).astype(np.float32)


def run_demo(out_dir: Path, *, steps: int | None, device: str, force: bool, quiet: bool) -> int:
    from .engine import resolve_device
    from .io import check_output_folder
    from .job import Job
    from .runner import run

    check_output_folder(out_dir, FILES, force=force)
    resolve_device(device)  # a missing GPU is refused before the folder is made
    out_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    clean = demo_image()
    noisy = add_noise(clean, SIGMA, NOISE_SEED)
    preset = replace(
        DENOISE_PRESETS["authors"],
        name="demo",
        steps=DEMO_STEPS,
        source=DENOISE_PRESETS["authors"].source + f"; {DEMO_STEPS} steps for a "
        f"{SIZE}×{SIZE} image",
    )
    job = Job(
        task="denoise",
        inputs={"image": Picture(noisy), "reference": Picture(clean)},
        preset=preset,
        steps=steps or "auto",
        seed=FIT_SEED,
        device=device,
    )
    outcome = run(job, progress=not quiet)
    restored = outcome.picture
    report = dict(
        outcome.report.to_dict(),
        demo={
            "image": f"skimage.data.astronaut, cropped, resized to {SIZE}×{SIZE}",
            "sigma": SIGMA,
            "noise_seed": NOISE_SEED,
        },
    )
    pictures = {"clean.png": clean, "noisy.png": noisy, "restored.png": restored.pixels}
    for name, pixels in pictures.items():
        write_image(out_dir / name, Picture(pixels), force=True)
    metrics = report.get("metrics", {})
    panels = [
        (f"noisy {metrics.get('psnr_input', 0):.2f} dB", noisy),
        (f"restored {metrics.get('psnr', 0):.2f} dB", restored.pixels),
        ("clean", clean),
    ]
    write_image(
        out_dir / "comparison.png",
        Picture(side_by_side(panels).astype(np.float32) / 255),
        force=True,
    )
    write_json(out_dir / "report.json", report)
    if metrics:
        print(f"noisy input: PSNR {metrics['psnr_input']:.2f} dB")
        gain = metrics["psnr"] - metrics["psnr_input"]
        print(
            f"restored:    PSNR {metrics['psnr']:.2f} dB  ({gain:+.2f} dB), "
            f"SSIM {metrics['ssim']:.3f}"
        )
    print(
        f"{report['steps_run']} steps, {report['seconds_per_step']:.3f} s/step, "
        f"{time.perf_counter() - started:.0f} s in all; files in {out_dir}/"
    )
    return 130 if outcome.interrupted else 0
