"""The output average's warm-up: the default denoise (``--steps auto``) with the warmed-up
average against the authors' (constant decay from the first output), on the same fits.

    python benchmarks/averaging.py ../shared/data/CBM3D --crop 128 --images house f16 kodim03 \\
        --skimage astronaut

Noise σ = 25 (``add_noise`` seed 0), network seed 0. Both variants stop by the same rule (its
criterion reads the output's data term, which the average does not change), so the
difference is the averaged image returned at the same step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import centre_crop, list_images, print_header, print_table, provenance, save_json

from deepprior.io import read_image
from deepprior.job import Job
from deepprior.metrics import psnr
from deepprior.presets import AVERAGE_WARMUP
from deepprior.runner import run
from deepprior.synthetic import add_noise


def variants(text: list[str]) -> dict[str, int | None]:
    """'none' (the authors' average) and warm-up lengths, by label."""
    return {
        ("authors" if t == "none" else f"warm-up {t}"): (None if t == "none" else int(t))
        for t in text
    }


def denoise(noisy: np.ndarray, warmup: int | None, device: str) -> tuple[np.ndarray, Any]:
    """The authors' denoise (quality ``paper``) with the output average warmed up over
    ``warmup`` steps."""
    overrides = {"average_warmup": warmup}
    job = Job(
        "denoise", {"image": noisy}, overrides=overrides, quality="paper", seed=0, device=device
    )
    outcome = run(job)
    return outcome.picture.pixels, outcome.report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", nargs="*")
    parser.add_argument("--skimage", nargs="*", default=[])
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument(
        "--warmups", nargs="+", default=["none", str(AVERAGE_WARMUP)], help="'none' or steps"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    pictures = [(p.stem, read_image(p).pixels) for p in list_images(args.folder, args.images)]
    if args.skimage:
        from skimage import data

        pictures += [
            (f"skimage:{n}", np.asarray(getattr(data, n)(), np.float32) / 255) for n in args.skimage
        ]
    info = provenance(args.device)
    chosen = variants(args.warmups)
    settings = {"crop": args.crop, "sigma": 25, "seed": 0, "warmups": chosen}
    print_header(info, settings)
    results, rows = [], []
    for name, pixels in pictures:
        clean = centre_crop(pixels, args.crop)
        noisy = add_noise(clean, 25, 0)
        entry: dict[str, Any] = {"image": name}
        for variant, warmup in chosen.items():
            restored, report = denoise(noisy, warmup, args.device)
            entry[variant] = {
                "psnr": psnr(restored, clean),
                "step": report.stopping["selected_step"],
                "seconds": report.seconds_total,
            }
        results.append(entry)
        first = next(iter(chosen))
        rows.append([name, *(entry[v]["psnr"] for v in chosen), entry[first]["step"]])
        print(f"done {name}", flush=True)
    means = [statistics.fmean(e[v]["psnr"] for e in results) for v in chosen]
    print_table(["image", *chosen, "step"], [*rows, ["mean", *means, ""]])
    save_json(args.json, info, settings, results)


if __name__ == "__main__":
    main()
