"""The paper's inpainting examples (vase, kate, library): restored, timed, shown side by side.

    python benchmarks/inpaint_examples.py ../shared/data/dip-examples/inpainting --save DIR
    python benchmarks/inpaint_examples.py ../shared/data/dip-examples/inpainting \\
        --images vase --steps 2000 --save DIR

Each ``NAME.png`` with a ``NAME_mask.png`` beside it (white = known) is inpainted with the
preset chosen from its mask, as ``deepprior inpaint NAME.png --mask NAME_mask.png`` does. There is
no ground truth for the holes, so the script reports the preset, the steps, the time and the
error on the known pixels; with ``--save`` it writes the result and a side-by-side PNG
(input with the holes in white | OpenCV Telea | deepprior).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    add_run_arguments,
    print_header,
    print_table,
    provenance,
    run_task,
    save_json,
    steps_value,
)

from deepprior.baselines import inpaint_opencv
from deepprior.figures import side_by_side
from deepprior.io import Picture, read_image, write_image
from deepprior.masks import from_mask_image
from deepprior.metrics import psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", nargs="*", help="file stems to use (default: all)")
    parser.add_argument("--preset", default=None, help="default: chosen from the mask")
    parser.add_argument(
        "--steps", type=steps_value, default="auto", help="'auto' (capped at the preset's) or N"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="cap for --steps auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, default=None)
    add_run_arguments(parser)
    args = parser.parse_args()

    masks = sorted(args.folder.glob("*_mask.png"))
    names = [m.name.removesuffix("_mask.png") for m in masks]
    if args.images:
        names = [n for n in names if n in args.images]
    info = provenance(args.device)
    settings = {
        "preset": args.preset or "auto",
        "steps": args.steps,
        "max_steps": args.max_steps,
        "seed": args.seed,
        "precision": args.precision,
    }
    print_header(info, settings)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)

    results: list[dict[str, Any]] = []
    for name in names:
        picture = read_image(args.folder / f"{name}.png")
        known = from_mask_image(read_image(args.folder / f"{name}_mask.png").pixels)
        started = time.perf_counter()
        outcome = run_task(
            "inpaint",
            picture,
            inputs={"mask": known},
            preset=args.preset,
            steps=args.steps,
            max_steps=args.max_steps,
            seed=args.seed,
            device=args.device,
            precision=args.precision,
        )
        restored, report = outcome.picture, outcome.report
        seconds = time.perf_counter() - started
        fitted = outcome.image[known]  # the net's own output on the known pixels
        entry = {
            "image": name,
            "size": [picture.height, picture.width],
            "hole_share": report.sections["mask"]["hole_fraction"],
            "preset": report.sections["mask"]["preset"],
            "steps": report.steps_run,
            "stopping": report.stopping,
            "psnr_known": psnr(fitted, picture.pixels[known]),
            "precision": report.precision,
            "seconds_per_step": report.seconds_per_step,
            "seconds": seconds,
        }
        results.append(entry)
        if args.save:
            holes_white = np.where(known[:, :, None], picture.pixels, 1.0)
            telea = inpaint_opencv(picture.pixels * known[:, :, None], known)
            panels = [("input", holes_white), ("Telea", telea), ("deepprior", restored.pixels)]
            write_image(args.save / f"{name}_inpainted.png", restored, force=True)
            write_image(
                args.save / f"{name}_side_by_side.png",
                Picture(side_by_side(panels, zoom=1).astype(np.float32) / 255),
                force=True,
            )
        print(
            f"done {name}: preset {entry['preset']}, {entry['steps']} steps, "
            f"{seconds / 60:.1f} min",
            flush=True,
        )

    rows = [
        [
            e["image"],
            "×".join(map(str, e["size"][::-1])),
            f"{100 * e['hole_share']:.1f} %",
            e["preset"],
            e["steps"],
            e["psnr_known"],
            e["seconds_per_step"],
            e["seconds"] / 60,
        ]
        for e in results
    ]
    print_table(
        ["image", "size", "holes", "preset", "steps", "PSNR known", "s/step", "minutes"], rows
    )
    save_json(args.json, info, settings, results)


if __name__ == "__main__":
    main()
