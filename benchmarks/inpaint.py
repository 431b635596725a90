"""Inpainting benchmark (the paper's Table 1): 50 % of pixels dropped at random.

    python benchmarks/inpaint.py ../shared/data/Heide11 --images house peppers --drop 0.5

Per image: the mask is numpy's ``default_rng(seed).random(shape) > drop`` (True = known);
the method (the preset, default: chosen from the mask), scikit-image's biharmonic inpainting
and OpenCV's Telea are scored by PSNR on the whole image, beside the paper's value.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    add_run_arguments,
    centre_crop,
    list_images,
    mean,
    print_header,
    print_table,
    provenance,
    run_task,
    save_json,
    steps_value,
)

from deepprior.baselines import inpaint_opencv
from deepprior.io import Picture, read_image, write_image
from deepprior.masks import random_pixels
from deepprior.metrics import psnr

PAPER_TABLE_1 = {
    "barbara": 32.22,
    "boat": 33.06,
    "house": 39.16,
    "lena": 36.16,
    "peppers": 33.05,
    "cameraman": 29.8,
    "couple": 32.52,
    "fingerprint": 32.84,
    "hill": 32.77,
    "man": 32.20,
    "montage": 34.54,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", nargs="*", help="file stems to use (default: all)")
    parser.add_argument("--drop", type=float, default=0.5)
    parser.add_argument("--crop", type=int, default=None, help="centre crop (CPU proxy)")
    parser.add_argument("--preset", default=None, help="default: chosen from the mask")
    parser.add_argument(
        "--steps", type=steps_value, default="auto", help="'auto' (capped at the preset's) or N"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, default=None)
    add_run_arguments(parser)
    args = parser.parse_args()

    paths = list_images(args.folder, args.images)
    info = provenance(args.device)
    settings = {
        "drop": args.drop,
        "crop": args.crop,
        "preset": args.preset or "auto",
        "steps": args.steps,
        "seed": args.seed,
        "precision": args.precision,
    }
    print_header(info, settings)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)

    results = []
    for path in paths:
        clean = centre_crop(read_image(path).pixels, args.crop)
        known = random_pixels(clean.shape[0], clean.shape[1], args.drop, args.seed)
        started = time.perf_counter()
        outcome = run_task(
            "inpaint",
            Picture(clean * known[:, :, None]),
            inputs={"mask": known},
            reference=Picture(clean),
            preset=args.preset,
            steps=args.steps,
            seed=args.seed,
            device=args.device,
            precision=args.precision,
        )
        restored, report = outcome.picture, outcome.report
        metrics = report.metrics or {}
        entry = {
            "image": path.stem,
            "size": list(clean.shape),
            "preset": report.sections["mask"]["preset"],
            "psnr": metrics["psnr"],
            "ssim": metrics["ssim"],
            "best_along_run": metrics.get("best_along_run"),
            "psnr_biharmonic": metrics["psnr_biharmonic"],
            "psnr_telea": psnr(inpaint_opencv(clean * known[:, :, None], known), clean),
            "paper": PAPER_TABLE_1.get(path.stem) if not args.crop else None,
            "steps": report.steps_run,
            "precision": report.precision,
            "seconds_per_step": report.seconds_per_step,
            "seconds": time.perf_counter() - started,
        }
        results.append(entry)
        if args.save:
            write_image(args.save / f"{path.stem}_inpainted.png", restored, force=True)
        print(
            f"done {path.stem}: {entry['psnr']:.2f} dB (biharmonic "
            f"{entry['psnr_biharmonic']:.2f}) in {entry['seconds']:.0f} s",
            flush=True,
        )

    rows: list[list[Any]] = [
        [
            e["image"],
            "×".join(map(str, e["size"][:2])),
            e["psnr"],
            e["paper"] if e["paper"] is not None else "n/a",
            e["psnr_biharmonic"],
            e["psnr_telea"],
            e["psnr"] - e["psnr_biharmonic"],
            e["preset"],
            e["steps"],
            e["seconds_per_step"],
        ]
        for e in results
    ]
    if len(results) > 1:
        rows.append(
            [
                "mean",
                "",
                mean(e["psnr"] for e in results),
                "",
                mean(e["psnr_biharmonic"] for e in results),
                mean(e["psnr_telea"] for e in results),
                mean(e["psnr"] - e["psnr_biharmonic"] for e in results),
                "",
                "",
                "",
            ]
        )
    print_table(
        [
            "image",
            "size",
            "ours",
            "paper",
            "biharmonic",
            "Telea",
            "gain",
            "preset",
            "steps",
            "s/step",
        ],
        rows,
    )
    save_json(args.json, info, settings, results)


if __name__ == "__main__":
    main()
