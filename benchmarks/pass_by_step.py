"""What denoising's second pass makes of a fit stopped at each step, from a run's snapshots.

    deepprior denoise noisy.png --reference clean.png --time-limit 30m --seed 0 \\
        -o out.png --save-every 400
    python benchmarks/pass_by_step.py noisy.png clean.png out.step*.png --json by_step.json

Each snapshot (``--save-every``) is the run's averaged output at that step, before the pass.
For each, this prints the PSNR of the fit and of the pass a run would end with (BM3D's first
step and the Wiener filter guided by the mean of it and the fit, at the noise level estimated
from the noisy image, as a run does), the Wiener step's seconds (``pass_seconds``), and how
far its result moved since the previous snapshot's (root mean square, in units of σ): where
the result stops gaining, the rest of the fit is time the pass does not repay. The first step
does not depend on the fit, so it runs once (its seconds: ``first_step_seconds``).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_header, print_table, provenance, save_json

from deepprior.io import read_image
from deepprior.metrics import psnr
from deepprior.stopping import estimate_noise_sigma
from deepprior.wiener import hard_threshold, refine_fit


def step_of(path: Path) -> int:
    """The step in a snapshot's name (``out.step00400.png`` -> 400)."""
    found = re.search(r"\.step(\d+)$", path.stem)
    if found is None:
        sys.exit(f"{path} is not a snapshot of --save-every (NAME.stepNNNNN.EXT)")
    return int(found.group(1))


def _four(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("noisy", type=Path)
    parser.add_argument("clean", type=Path)
    parser.add_argument("snapshots", type=Path, nargs="+")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    noisy, clean = read_image(args.noisy).pixels, read_image(args.clean).pixels
    sigma = estimate_noise_sigma(noisy)
    info = provenance("cpu")
    settings = {"noisy": str(args.noisy), "clean": str(args.clean), "sigma_255": sigma * 255}
    print_header(info, settings)
    started = time.perf_counter()
    first = hard_threshold(noisy, sigma)
    settings["first_step_seconds"] = time.perf_counter() - started
    rows: list[dict[str, float | int | None]] = []
    previous: np.ndarray | None = None
    for path in sorted(args.snapshots, key=step_of):
        fit = read_image(path).pixels
        started = time.perf_counter()
        result = refine_fit(noisy, fit, sigma, first=first)
        seconds = time.perf_counter() - started
        moved = None if previous is None else float(np.sqrt(np.mean((result - previous) ** 2)))
        previous = result
        rows.append(
            {
                "step": step_of(path),
                "fit": psnr(fit, clean),
                "pass": psnr(result, clean),
                "pass_seconds": seconds,
                "moved_sigma": None if moved is None else moved / sigma,
            }
        )
        print(f"step {rows[-1]['step']}: fit {rows[-1]['fit']:.2f} dB, pass {rows[-1]['pass']:.2f}")
    print_table(
        ["step", "fit PSNR", "after the pass", "Wiener s", "moved (σ)"],
        [
            [r["step"], r["fit"], r["pass"], r["pass_seconds"], _four(r["moved_sigma"])]
            for r in rows
        ],
    )
    save_json(args.json, info, settings, rows)


if __name__ == "__main__":
    main()
