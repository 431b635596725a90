"""Flash / no-flash benchmark: the paper's cave pair, its time, and the collapse guard.

    python benchmarks/flash.py ../shared/data/dip-examples/flash_no_flash --shrink 6 \\
        --seeds 0 1 2 3 4 --out /tmp/flash

There is no ground truth: the table gives, per seed, the steps run (of the fit kept), the
time (all attempts), how often the collapse guard sent the fit back to its last good state,
how often it restarted a stuck fit, and the colour drift of the result from the no-flash
image (the guard's measure). The pair is shrunk ``--shrink`` times with Lanczos (a CPU proxy); with
``--out`` the inputs and each result are saved side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_run_arguments, print_header, print_table, provenance, run_task, save_json

from deepprior.baselines import resize
from deepprior.canvas import to_tensor
from deepprior.io import Picture, read_image
from deepprior.tasks.flash import chromaticity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--shrink", type=int, default=6, help="downscale factor (CPU proxy)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", default="auto", help="'auto' or a number (authors: 600)")
    parser.add_argument("--out", type=Path, default=None, help="save pictures here")
    add_run_arguments(parser)
    args = parser.parse_args()

    flash_file = next(args.folder.glob("*_flash.*"))
    no_flash_file = next(args.folder.glob("*_noflash.*"))
    pictures = []
    for file in (flash_file, no_flash_file):
        pixels = read_image(file).pixels
        h, w = pixels.shape[0] // args.shrink, pixels.shape[1] // args.shrink
        pictures.append(np.clip(resize(pixels, h, w, "lanczos"), 0, 1))
    flash, no_flash = pictures
    info = provenance(args.device)
    steps = args.steps if args.steps == "auto" else int(args.steps)
    settings = {"pair": flash_file.stem, "size": list(flash.shape), "steps": steps}
    settings |= {"shrink": args.shrink, "seeds": args.seeds}
    print_header(info, settings)
    target = chromaticity(to_tensor(no_flash))
    rows, results = [], []
    for seed in args.seeds:
        started = time.perf_counter()
        outcome = run_task(
            "flash",
            Picture(no_flash),
            inputs={"flash": Picture(flash)},
            steps=steps,
            seed=seed,
            device=args.device,
            precision=args.precision,
        )
        seconds = time.perf_counter() - started
        report = outcome.report
        drift = float((chromaticity(to_tensor(outcome.picture.pixels)) - target).abs().sum())
        guard = report.sections["collapse_guard"]
        fired, restarts = guard["fired"], guard["restarts"]
        entry = {
            "seed": seed,
            "steps_run": report.steps_run,
            "seconds": seconds,
            "seconds_per_step": report.seconds_per_step,
            "guard_fired": fired,
            "restarts": restarts,
            "backtracks": report.backtracks,
            "colour_drift": drift,
            "stopping": report.stopping,
        }
        results.append(entry)
        rows.append([seed, report.steps_run, seconds, fired, len(restarts), drift])
        if args.out is not None:
            from deepprior.figures import side_by_side
            from deepprior.io import from_array, write_image

            args.out.mkdir(parents=True, exist_ok=True)
            panels = [
                ("flash", flash),
                ("no flash", no_flash),
                ("deepprior", outcome.picture.pixels),
            ]
            panel = from_array(side_by_side(panels))
            write_image(args.out / f"flash_seed{seed}.png", panel, force=True)
    headers = ["seed", "steps", "seconds", "guard: back to good state", "restarts", "colour drift"]
    print_table(headers, rows)
    fired_runs = sum(1 for e in results if e["guard_fired"] or e["restarts"])
    print(f"the collapse guard acted in {fired_runs} of {len(results)} runs")
    save_json(args.json, info, settings, results)


if __name__ == "__main__":
    main()
