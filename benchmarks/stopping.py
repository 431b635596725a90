"""Stopping benchmark: the automatic stop against the best iterate seen along the same run.

    python benchmarks/stopping.py denoise ../shared/data/CBM3D --crop 128 --sigma 25 \\
        --images house f16 kodim03 --seeds 0 1 2 --cap 1800
    python benchmarks/stopping.py sr ../shared/data/Set5 --scale 4 --images bird butterfly head
    python benchmarks/stopping.py inpaint ../shared/data/Heide11 --drop 0.5 --images house peppers
    python benchmarks/stopping.py restore ../shared/data/CBM3D --crop 128 --jpeg 10 \
        --images house kodim03 peppers --stop validation

Each fit runs to ``--cap`` with the task's ``--steps auto`` rule (and the other rules) watching
only, so one run gives: where each rule would have stopped and the PSNR of the iterate it keeps,
the best PSNR seen along the run (checked every 10 steps), and the PSNR at the cap (the
fixed-step preset). PSNR is the task's: RGB for denoising, the paper's Y-channel protocol for
SR, the whole image with the known pixels kept for inpainting, RGB for JPEG restoration (the
crop saved by Pillow at ``--jpeg`` quality). ``--runs 2`` adds, per seed, a
real ``runs=2`` call (two fits stopped by the rule, averaged).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    add_run_arguments,
    centre_crop,
    jpeg_round_trip,
    list_images,
    print_header,
    print_table,
    provenance,
    run_task,
    save_json,
)

from deepprior.baselines import degrade_for_sr, inpaint_biharmonic
from deepprior.canvas import to_numpy
from deepprior.fitting import Callback, FitState
from deepprior.io import Picture, read_image
from deepprior.masks import random_pixels
from deepprior.metrics import psnr, psnr_y, ssim
from deepprior.runner import Outcome
from deepprior.stopping import (
    PATIENCE,
    NoiseLevelRule,
    StoppingRule,
    VarianceRule,
    estimate_noise_sigma,
    given_noise_sigma,
)
from deepprior.synthetic import add_noise

Metric = Callable[[np.ndarray], float]


class Scorer(Callback):
    """The task's PSNR of the current result (averaged output, else output), every few steps."""

    def __init__(self, metric: Metric, every: int = 10):
        self.metric = metric
        self.every = every
        self.trace: list[tuple[int, float]] = []

    def on_step(self, state: FitState) -> None:
        if (state.step + 1) % self.every == 0:
            current = state.average if state.average is not None else state.output
            self.trace.append((state.step + 1, self.metric(to_numpy(current))))


def prepare(args: argparse.Namespace, path: Path, seed: int) -> tuple[Any, Metric, dict[str, Any]]:
    """The task call (a function of seed, callbacks and options), its metric, and its inputs."""
    clean = centre_crop(read_image(path).pixels, args.crop)
    if args.task == "denoise":
        noisy = add_noise(clean, args.sigma, seed=0)

        def call(**options: Any) -> Outcome:
            return run_task("denoise", Picture(noisy), **options)

        extra = {"psnr_input": psnr(noisy, clean), "noisy": noisy}
        return call, lambda image: psnr(image, clean), extra
    if args.task == "sr":
        hr, lr = degrade_for_sr(clean, args.scale)

        def call_sr(**options: Any) -> Outcome:
            return run_task("sr", Picture(lr), options={"scale": args.scale}, **options)

        return call_sr, lambda image: psnr_y(image, hr, shave=args.scale), {}
    if args.task == "restore":
        jpeg = jpeg_round_trip(clean, args.jpeg)

        def call_restore(**options: Any) -> Outcome:
            return run_task("restore", Picture(jpeg), **options)

        extra = {"psnr_input": psnr(jpeg, clean), "ssim_input": ssim(jpeg, clean), "noisy": jpeg}
        return call_restore, lambda image: psnr(image, clean), extra
    known = random_pixels(clean.shape[0], clean.shape[1], args.drop, 0)
    observed = clean * known[:, :, None]

    def call_inpaint(**options: Any) -> Outcome:
        inputs = {"mask": known}
        return run_task("inpaint", Picture(observed), inputs=inputs, preset=args.preset, **options)

    def composite(image: np.ndarray) -> float:
        return psnr(np.where(known[:, :, None], observed, image), clean)

    baseline = psnr(inpaint_biharmonic(observed, known), clean)
    return call_inpaint, composite, {"psnr_input": psnr(observed, clean), "biharmonic": baseline}


def watchers(args: argparse.Namespace, noisy: np.ndarray | None) -> dict[str, StoppingRule]:
    """The rules that watch beside the task's own."""
    rules: dict[str, StoppingRule] = {"variance": VarianceRule(patience=PATIENCE, stop=False)}
    if args.task == "denoise" and noisy is not None:
        given, _ = given_noise_sigma(noisy, args.sigma / 255)  # what --sigma does
        rules["noise-level (given σ)"] = NoiseLevelRule(given, stop=False)
    if args.task == "restore" and noisy is not None:
        estimated = max(estimate_noise_sigma(noisy), 1e-3)
        rules["noise-level (estimated σ)"] = NoiseLevelRule(estimated, stop=False)
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("task", choices=["denoise", "sr", "inpaint", "restore"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", nargs="*", help="file stems to use (default: all)")
    parser.add_argument("--crop", type=int, default=None, help="centre crop (CPU proxy)")
    parser.add_argument("--sigma", type=float, default=25.0, help="denoise: noise σ (8-bit)")
    parser.add_argument("--scale", type=int, default=4, help="sr: the factor")
    parser.add_argument("--drop", type=float, default=0.5, help="inpaint: share of pixels lost")
    parser.add_argument("--jpeg", type=int, default=10, help="restore: the JPEG quality")
    parser.add_argument("--stop", default="auto", help="the rule the fit runs with")
    parser.add_argument("--preset", default=None, help="default: the task's default preset")
    parser.add_argument("--cap", type=int, default=None, help="default: the preset's steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--runs", type=int, default=1, help="also run runs=K with the rule")
    add_run_arguments(parser)
    args = parser.parse_args()

    paths = list_images(args.folder, args.images)
    info = provenance(args.device)
    settings = {
        k: getattr(args, k)
        for k in (
            "task",
            "crop",
            "sigma",
            "scale",
            "drop",
            "jpeg",
            "stop",
            "preset",
            "cap",
            "seeds",
            "runs",
        )
    }
    settings["patience"] = PATIENCE
    print_header(info, settings)

    common = {"device": args.device, "precision": args.precision}
    if args.task == "denoise" and args.preset:
        common["preset"] = args.preset
    results = []
    for path in paths:
        for seed in args.seeds:
            call, metric, extra = prepare(args, path, seed)
            scorer = Scorer(metric)
            others = watchers(args, extra.pop("noisy", None))
            started = time.perf_counter()
            outcome = call(
                **common,
                steps="auto",
                stop=args.stop,
                max_steps=args.cap,
                watch_only=True,
                seed=seed,
                callbacks=[scorer, *others.values()],
            )
            seconds = time.perf_counter() - started
            assert outcome.rule is not None
            report = outcome.report
            rules = {report.stopping["rule"] + " (auto)": outcome.rule, **others}
            best_step, best = max(scorer.trace, key=lambda t: t[1])
            entry: dict[str, Any] = {
                "image": path.stem,
                "seed": seed,
                "size": list(outcome.image.shape),
                **extra,
                "cap": report.steps_run,
                "psnr_at_cap": scorer.trace[-1][1],
                "best_seen": best,
                "best_step": best_step,
                "seconds": seconds,
                "seconds_per_step": report.seconds_per_step,
                "precision": report.precision,
                "stopping": report.stopping,
                "rules": {},
                "trace": scorer.trace,
            }
            for name, rule in rules.items():
                # A rule that never scored leaves the fit's own result.
                kept = (
                    metric(to_numpy(rule.best_image))
                    if rule.best_image is not None
                    else entry["psnr_at_cap"]
                )
                entry["rules"][name] = {
                    **rule.summary(),
                    "psnr": kept,
                    "scores": rule.scores,
                }
            if args.runs > 1:
                averaged = call(
                    **common, steps="auto", max_steps=args.cap, seed=seed, runs=args.runs
                )
                entry[f"runs_{args.runs}"] = metric(averaged.image)
                entry[f"runs_{args.runs}_steps"] = averaged.report.steps_run
            results.append(entry)
            auto = entry["rules"][next(iter(rules))]
            print(
                f"done {path.stem} seed {seed}: auto {auto['psnr']:.2f} dB (stop "
                f"{auto['fired_at']}, kept {auto['selected_step']}), best {best:.2f} "
                f"@{best_step}, cap {entry['psnr_at_cap']:.2f}, {seconds:.0f} s"
                + (f"; biharmonic {extra['biharmonic']:.2f}" if "biharmonic" in extra else ""),
                flush=True,
            )

    rule_names = list(results[0]["rules"]) if results else []
    headers = [
        "image",
        "seed",
        "best seen (step)",
        f"at cap ({results[0]['cap']})" if results else "",
    ]
    for name in rule_names:
        headers += [f"{name}", "stop", "gap"]
    if args.runs > 1:
        headers.append(f"runs={args.runs}")
    rows = []
    for e in results:
        row: list[Any] = [e["image"], e["seed"], f"{e['best_seen']:.2f} ({e['best_step']})"]
        row.append(e["psnr_at_cap"])
        for name in rule_names:
            r = e["rules"][name]
            row += [r["psnr"], r["fired_at"] or "cap", e["best_seen"] - r["psnr"]]
        if args.runs > 1:
            row.append(e[f"runs_{args.runs}"])
        rows.append(row)
    print_table(headers, rows)
    for name in rule_names:
        gaps = [e["best_seen"] - e["rules"][name]["psnr"] for e in results]
        stops = [e["rules"][name]["fired_at"] or e["cap"] for e in results]
        print(
            f"{name}: mean gap {statistics.mean(gaps):.2f} dB, worst {max(gaps):.2f} dB; "
            f"mean PSNR {statistics.mean(e['rules'][name]['psnr'] for e in results):.2f} vs "
            f"{statistics.mean(e['psnr_at_cap'] for e in results):.2f} at the cap; "
            f"steps {statistics.mean(stops):.0f} of {results[0]['cap']} on average"
        )
    spread(results, rule_names, args.runs)
    save_json(args.json, info, settings, results)


def spread(results: list[dict[str, Any]], rule_names: list[str], runs: int) -> None:
    """Standard deviation over seeds, per image, of each way of choosing the result."""
    images = sorted({e["image"] for e in results})
    for image in images:
        rows = [e for e in results if e["image"] == image]
        if len(rows) < 2:
            continue
        parts = [f"cap {statistics.stdev(e['psnr_at_cap'] for e in rows):.2f}"]
        parts += [
            f"{n} {statistics.stdev(e['rules'][n]['psnr'] for e in rows):.2f}" for n in rule_names
        ]
        if runs > 1:
            parts.append(f"runs={runs} {statistics.stdev(e[f'runs_{runs}'] for e in rows):.2f}")
        print(f"spread over {len(rows)} seeds, {image} (std, dB): " + ", ".join(parts))


if __name__ == "__main__":
    main()
