"""Super-resolution benchmark in the paper's protocol: the method against bicubic and Lanczos.

    python benchmarks/sr.py ../shared/data/Set5 --scale 4 --images butterfly bird head

Per HR image: crop to a multiple of the scale, make the LR input with Pillow's Lanczos, run
the preset for the scale, and score luma PSNR (ITU-R BT.601) with a border of ``scale``
pixels removed, as the paper's figures are computed; also RGB PSNR and SSIM.
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

from deepprior.baselines import degrade_for_sr
from deepprior.io import Picture, read_image, write_image
from deepprior.presets import SR_PRESETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="high-resolution images")
    parser.add_argument("--images", nargs="*", help="file stems to use (default: all)")
    parser.add_argument("--scale", type=int, default=4, choices=[2, 3, 4, 8])
    parser.add_argument("--crop", type=int, default=None, help="centre crop of the HR (proxy)")
    parser.add_argument(
        "--steps", type=steps_value, default="auto", help="'auto' (capped at the preset's) or N"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, default=None, help="write the results here")
    add_run_arguments(parser)
    args = parser.parse_args()

    preset = SR_PRESETS[f"x{args.scale}"]
    paths = list_images(args.folder, args.images)
    info = provenance(args.device)
    settings = {
        "scale": args.scale,
        "crop": args.crop,
        "seed": args.seed,
        "precision": args.precision,
        "steps": args.steps,
        "preset": preset.to_dict(),
    }
    print_header(
        info,
        {k: v for k, v in settings.items() if k != "preset"}
        | {"preset": f"{preset.name} ({preset.source})", "steps": args.steps},
    )
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)

    results = []
    for path in paths:
        hr, lr = degrade_for_sr(centre_crop(read_image(path).pixels, args.crop), args.scale)
        started = time.perf_counter()
        outcome = run_task(
            "sr",
            Picture(lr),
            reference=Picture(hr),
            options={"scale": args.scale},
            preset=preset,
            steps=args.steps,
            seed=args.seed,
            device=args.device,
            precision=args.precision,
        )
        restored, report = outcome.picture, outcome.report
        metrics = report.metrics or {}
        entry = {
            "image": path.stem,
            "hr_size": list(hr.shape),
            "lr_size": list(lr.shape),
            "psnr_y": metrics["psnr_y"],
            "psnr_y_bicubic": metrics["psnr_y_bicubic"],
            "psnr_y_lanczos": metrics["psnr_y_lanczos"],
            "psnr_rgb": metrics["psnr"],
            "ssim": metrics["ssim"],
            "steps": report.steps_run,
            "precision": report.precision,
            "seconds_per_step": report.seconds_per_step,
            "seconds": time.perf_counter() - started,
        }
        results.append(entry)
        if args.save:
            write_image(args.save / f"{path.stem}_x{args.scale}.png", restored, force=True)
            write_image(args.save / f"{path.stem}_lr.png", Picture(lr), force=True)
        print(
            f"done {path.stem}: {entry['psnr_y']:.2f} dB (bicubic {entry['psnr_y_bicubic']:.2f})"
            f" in {entry['seconds']:.0f} s",
            flush=True,
        )

    rows: list[list[Any]] = [
        [
            e["image"],
            "×".join(map(str, e["hr_size"][:2])),
            e["psnr_y"],
            e["psnr_y_bicubic"],
            e["psnr_y_lanczos"],
            e["psnr_y"] - e["psnr_y_bicubic"],
            e["ssim"],
            e["steps"],
            e["seconds_per_step"],
            e["precision"],
        ]
        for e in results
    ]
    if len(results) > 1:
        rows.append(
            [
                "mean",
                "",
                *(
                    mean(e[k] for e in results)
                    for k in ("psnr_y", "psnr_y_bicubic", "psnr_y_lanczos")
                ),
                mean(e["psnr_y"] - e["psnr_y_bicubic"] for e in results),
                mean(e["ssim"] for e in results),
                "",
                "",
                "",
            ]
        )
    print_table(
        [
            "image",
            "HR",
            "ours (Y)",
            "bicubic",
            "lanczos",
            "gain",
            "SSIM",
            "steps",
            "s/step",
            "precision",
        ],
        rows,
    )
    save_json(args.json, info, settings, results)


if __name__ == "__main__":
    main()
