"""Feature-inversion benchmark: natural pre-images per AlexNet layer, deep image prior vs TV.

    python benchmarks/invert.py ../shared/data/dip-examples/feature_inversion/building.jpg \\
        --size 128 --steps 500 --weights random --out /tmp/invert

For each layer (conv1 … fc8) and each prior, one fit of ``--steps`` steps (no stopping rule)
on the image resized to ``--size``² (a CPU proxy; the authors ran 3100 steps): the relative
feature error ‖Φ(x) − Φ(x0)‖² / ‖Φ(x0)‖², the PSNR of the pre-image against the image, the
seconds, and the process's peak memory so far (resident set, MiB). ``--weights random`` is an
untrained AlexNet (seed 0); give torchvision's ``alexnet-owt-7be5be79.pth`` for the trained
one. With ``--out`` the grid (rows: layers; columns: DIP, TV) is saved as a PNG.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_run_arguments, print_header, print_table, provenance, run_task, save_json

from deepprior.baselines import resize
from deepprior.classifiers import ALEXNET_LAYERS
from deepprior.io import Picture, read_image


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--weights", default="random")
    parser.add_argument("--layers", nargs="*", default=list(ALEXNET_LAYERS))
    parser.add_argument("--priors", nargs="*", default=["dip", "tv"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="save the grid here")
    add_run_arguments(parser)
    args = parser.parse_args()

    pixels = np.clip(resize(read_image(args.image).pixels, args.size, args.size, "lanczos"), 0, 1)
    info = provenance(args.device)
    settings = {k: getattr(args, k) for k in ("size", "steps", "weights", "layers", "priors")}
    settings |= {"image": args.image.name, "seed": args.seed}
    print_header(info, settings)
    rows, results, grid = [], [], []
    for layer in args.layers:
        row_images = []
        for prior in args.priors:
            started = time.perf_counter()
            outcome = run_task(
                "invert",
                Picture(pixels),
                options={"net": "alexnet", "layer": layer, "weights": args.weights, "prior": prior},
                steps=args.steps,
                seed=args.seed,
                device=args.device,
                precision=args.precision,
            )
            seconds = time.perf_counter() - started
            metrics = outcome.report.metrics or {}
            entry = {
                "layer": layer,
                "prior": prior,
                "feature_error": metrics["feature_error"],
                "psnr": metrics["psnr"],
                "seconds": seconds,
                "seconds_per_step": outcome.report.seconds_per_step,
                "peak_rss_mib": peak_mib(),
            }
            results.append(entry)
            rows.append(
                [
                    layer,
                    prior,
                    entry["feature_error"],
                    entry["psnr"],
                    seconds,
                    entry["peak_rss_mib"],
                ]
            )
            row_images.append(outcome.picture.pixels)
            print(f"done {layer} {prior}: {seconds:.0f} s", flush=True)
        grid.append(np.concatenate(row_images, axis=1))
    print_table(["layer", "prior", "feature error", "PSNR", "seconds", "peak MiB"], rows)
    if args.out is not None:
        from deepprior.io import write_image

        args.out.mkdir(parents=True, exist_ok=True)
        write_image(args.out / "grid.png", Picture(np.concatenate(grid, axis=0)), force=True)
        write_image(args.out / "input.png", Picture(pixels), force=True)
    save_json(args.json, info, settings, results)


if __name__ == "__main__":
    main()
