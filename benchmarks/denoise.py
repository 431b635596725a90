"""Denoising benchmark: the method (last and averaged output) against non-local means and BM3D.

    python benchmarks/denoise.py ../shared/data/CBM3D --crop 128 --sigma 25 --steps 1800 \
        --images house f16 kodim03 --seeds 0 --json benchmarks/results/denoise.json

Noise: clean + N(0, σ²) drawn channels-first with numpy's default_rng(seed), then clipped.
PSNR on floats in [0, 1] over the whole image.
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
    centre_crop,
    list_images,
    mean,
    print_header,
    print_table,
    provenance,
    run_task,
    save_json,
)

from deepprior.baselines import bm3d_installed, denoise_bm3d, denoise_nlm
from deepprior.io import Picture, read_image
from deepprior.metrics import psnr
from deepprior.presets import DENOISE_PRESETS
from deepprior.synthetic import add_noise


def at_step(history: list[dict[str, float]], step: int, key: str) -> float | None:
    return next((row[key] for row in history if row["step"] == step and key in row), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", nargs="*", help="file stems to use (default: all)")
    parser.add_argument("--crop", type=int, default=None, help="centre crop size (CPU proxy)")
    parser.add_argument("--sigma", type=float, default=25)
    parser.add_argument("--steps", type=int, default=1800)
    parser.add_argument(
        "--checkpoints",
        type=int,
        nargs="*",
        default=None,
        help="steps to report (default: thirds of --steps)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--preset", default="authors", choices=sorted(DENOISE_PRESETS))
    add_run_arguments(parser, engine=True)
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        help="report the seconds until the averaged output reaches this PSNR",
    )
    args = parser.parse_args()

    preset = DENOISE_PRESETS[args.preset].with_steps(args.steps)
    checkpoints = args.checkpoints or [args.steps // 3, 2 * args.steps // 3, args.steps]
    paths = list_images(args.folder, args.images)
    sigma = args.sigma / 255
    info = provenance(args.device)
    settings = {
        "crop": args.crop,
        "sigma": args.sigma,
        "seeds": args.seeds,
        "checkpoints": checkpoints,
        "engine": args.engine,
        "precision": args.precision,
        "target_psnr": args.target,
        "preset": preset.to_dict(),
    }
    print_header(
        info,
        {k: v for k, v in settings.items() if k != "preset"}
        | {"preset": f"{preset.name} ({preset.source})", "steps": preset.steps},
    )

    results = []
    for path in paths:
        clean = centre_crop(read_image(path).pixels, args.crop)
        for seed in args.seeds:
            entry = run_one(path.stem, clean, seed, sigma, preset, checkpoints, args)
            results.append(entry)
            print(f"done {path.stem} seed {seed} in {entry['seconds']:.0f} s", flush=True)
    print_table(*table(results, checkpoints, args.target))
    save_json(args.json, info, settings, results)


def run_one(
    name: str,
    clean: np.ndarray,
    seed: int,
    sigma: float,
    preset: Any,
    checkpoints: list[int],
    args: argparse.Namespace,
) -> dict[str, Any]:
    noisy = add_noise(clean, args.sigma, seed)
    started = time.perf_counter()
    outcome = run_task(
        "denoise",
        Picture(noisy),
        reference=Picture(clean),
        preset=preset,
        steps=preset.steps,  # a fixed count: the checkpoints need the whole run
        seed=seed,
        device=args.device,
        engine=args.engine,
        precision=args.precision,
    )
    report = outcome.report
    history = report.history or []
    best = max((r for r in history if "psnr_average" in r), key=lambda r: r["psnr_average"])
    bm3d = denoise_bm3d(noisy, sigma) if bm3d_installed() else None
    return {
        "image": name,
        "seed": seed,
        "size": list(clean.shape),
        "psnr_noisy": psnr(noisy, clean),
        "at": {
            str(s): {
                "last": at_step(history, s, "psnr"),
                "average": at_step(history, s, "psnr_average"),
            }
            for s in checkpoints
        },
        "best_average": {"psnr": best["psnr_average"], "step": best["step"]},
        "best_last": max(r["psnr"] for r in history),
        "final": report.metrics,
        "nlm": psnr(denoise_nlm(noisy, sigma), clean),
        "bm3d": psnr(bm3d, clean) if bm3d is not None else None,
        "precision": report.precision,
        "stopping": report.stopping,
        "seconds_per_step": report.seconds_per_step,
        "seconds_to_target": seconds_to(history, args.target, report.seconds_per_step),
        "seconds": time.perf_counter() - started,
    }


def seconds_to(
    history: list[dict[str, float]], target: float | None, seconds_per_step: float
) -> float | None:
    """Fitting time until the averaged output first reaches ``target`` dB (None: never)."""
    if target is None:
        return None
    step = next((r["step"] for r in history if r.get("psnr_average", -1) >= target), None)
    return None if step is None else step * seconds_per_step


def table(
    results: list[dict[str, Any]], checkpoints: list[int], target: float | None
) -> tuple[list[str], list[list[Any]]]:
    headers = ["image", "seed", "noisy"]
    for s in checkpoints:
        headers += [f"last@{s}", f"avg@{s}"]
    headers += ["best avg (step)", "NLM", "BM3D", "s/step", "precision"]
    if target is not None:
        headers.append(f"s to {target:g} dB")
    rows = []
    for e in results:
        row: list[Any] = [e["image"], e["seed"], e["psnr_noisy"]]
        for s in checkpoints:
            row += [e["at"][str(s)]["last"], e["at"][str(s)]["average"]]
        row += [
            f"{e['best_average']['psnr']:.2f} ({e['best_average']['step']})",
            e["nlm"],
            e["bm3d"] if e["bm3d"] is not None else "n/a",
            e["seconds_per_step"],
            e["precision"],
        ]
        if target is not None:
            reached = e["seconds_to_target"]
            row.append(f"{reached:.0f}" if reached is not None else "never")
        rows.append(row)
    if len(results) > 1:
        means: list[Any] = ["mean", "", mean(e["psnr_noisy"] for e in results)]
        for s in checkpoints:
            for key in ("last", "average"):
                means.append(mean(e["at"][str(s)][key] for e in results))
        means += [
            f"{mean(e['best_average']['psnr'] for e in results):.2f}",
            mean(e["nlm"] for e in results),
            mean(e["bm3d"] for e in results),
            mean(e["seconds_per_step"] for e in results),
            "",
        ]
        rows.append(means + ([""] if target is not None else []))
    return headers, rows


if __name__ == "__main__":
    main()
