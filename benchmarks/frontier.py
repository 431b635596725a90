"""Quality against wall time: which settings ("levers") pay, on the paper's tasks.

    python benchmarks/frontier.py denoise ../shared/data/CBM3D --crop 64 \\
        --images house f16 kodim03 --skimage astronaut coffee --plot frontier_denoise.png

Each lever is a change to the default job (``--steps auto``): a narrower or shallower network,
another learning rate, no output averaging, a shorter patience of the stopping rule, several
runs averaged, a self-ensemble (runs on turned and mirrored copies), or a quality level.
Every lever fits every image from the same network seed (``--seed``, 0) with the degradation
of ``deepprior reproduce`` (σ = 25 noise, Lanczos ×4 or ``--scale``'s factor with that
factor's preset, 50 % of pixels dropped, seeded), so a rerun gives the same figures; the table
gives the mean PSNR (the task's measure) and the mean wall seconds of each, and marks the
levers on the frontier (no other is both better and faster). ``--skimage NAME ...`` adds
scikit-image's bundled photographs (held-out images); ``--baselines`` the classical methods of
``deepprior reproduce`` (BM3D and non-local means told the true σ, bicubic, biharmonic).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    list_images,
    print_header,
    print_table,
    provenance,
    save_json,
    skimage_photo,
)

from deepprior.experiments.reproduce import (
    SCALE,
    Sample,
    classical,
    crop,
    make_sample,
    methods,
    score,
)
from deepprior.io import read_image
from deepprior.job import Job
from deepprior.quality import QUALITIES
from deepprior.runner import run

KINDS = ("denoise", "sr", "inpaint")
PRESETS = {"denoise": "authors", "sr": "x4", "inpaint": "pixels"}
SCALES = (2, 3, 4, 8)  # super-resolution's factors, each with its preset (x2 ... x8)


def preset_name(kind: str, scale: int) -> str:
    """The preset a task's levers change: super-resolution's is its factor's."""
    return f"x{scale}" if kind == "sr" else PRESETS[kind]


def _widths(channels: int, levels: int = 5) -> dict[str, Any]:
    net = {"down": (channels,) * levels, "up": (channels,) * levels, "skip": (4,) * levels}
    return {"overrides": {"net_options": net}}


# name -> the Job fields it changes
LEVERS: dict[str, dict[str, Any]] = {
    "default": {},
    "width 64": _widths(64),
    "width 32": _widths(32),
    "depth 4": _widths(128, levels=4),
    **{f"width 32, depth {n}": _widths(32, levels=n) for n in (3, 4, 5)},
    "fast, depth 3": {"quality": "fast", **_widths(32, levels=3)},
    "best, depth 3": {"quality": "best", **_widths(32, levels=3)},
    "lr 0.02": {"overrides": {"lr": 0.02}},
    "lr 0.005": {"overrides": {"lr": 0.005}},
    "no averaging": {"average": 0},
    "patience 150": {"patience": 150},
    "patience 100": {"patience": 100},
    "patience 600": {"patience": 600},
    "runs 2": {"runs": 2},
    "ensemble 2": {"runs": 2, "ensemble": True},
    "runs 4": {"runs": 4},
    "ensemble 4": {"runs": 4, "ensemble": True},
    "width 16": _widths(16),
    "width 48": _widths(48),
    "width 32, lr 0.02": {**_widths(32), "overrides": {**_widths(32)["overrides"], "lr": 0.02}},
    "width 32, patience 150": {**_widths(32), "patience": 150},
    "cap 1000": {"max_steps": 1000},
    "cap 3000": {"max_steps": 3000},
    **{f"fast, cap {n}": {"quality": "fast", "max_steps": n} for n in (900, 1000, 1100)},
    **{
        f"width 32, cap {n}": {**_widths(32), "max_steps": n}
        for n in (300, 500, 600, 800, 1000, 1200)
    },
    "paper": {"quality": "paper"},
    "paper, wiener": {"quality": "paper", "options": {"wiener": True}},
    "default, no wiener": {"options": {"wiener": False}},
    "fast, no wiener": {"quality": "fast", "options": {"wiener": False}},
    "best, no wiener": {"quality": "best", "options": {"wiener": False}},
    "width 32, runs 4": {**_widths(32), "runs": 4},
    "width 32, ensemble 4": {**_widths(32), "runs": 4, "ensemble": True},
    "width 32, ensemble 8": {**_widths(32), "runs": 8, "ensemble": True},
    "quality fast": {"quality": "fast"},
    "quality best": {"quality": "best"},
    **{f"fast, lr {lr}": {"quality": "fast", "overrides": {"lr": lr}} for lr in (0.02, 0.03)},
    **{
        f"fast, input noise {n}": {"quality": "fast", "overrides": {"input_noise": n}}
        for n in (0.0, 0.01, 0.04, 0.05, 0.07)
    },
    **{f"input noise {n}": {"overrides": {"input_noise": n}} for n in (0.04, 0.05, 0.07)},
    "input noise 0.04, patience 150": {"overrides": {"input_noise": 0.04}, "patience": 150},
    "fast, lr 0.02, input noise 0.05": {
        "quality": "fast",
        "overrides": {"lr": 0.02, "input_noise": 0.05},
    },
    **{
        f"fast, noise factor {f}": {"quality": "fast", "level": {"noise_factor": f}}
        for f in (1.0, 1.05, 1.1, 1.15)
    },
    **{f"default, noise factor {f}": {"level": {"noise_factor": f}} for f in (0.9, 0.95, 1.05)},
    "best, noise factor 0.9": {"quality": "best", "level": {"noise_factor": 0.9}},
    **{f"best {n} runs": {"quality": "best", "level": {"runs": n}} for n in (2, 4)},
    **{
        f"best 4 runs, noise factor {f}": {
            "quality": "best",
            "level": {"noise_factor": f, "runs": 4},
        }
        for f in (0.8, 0.9, 1.1)
    },
    "default, hard cap": {"level": {"extend": False}},
    "default, early pilot 1.05": {"level": {"early_pilot": 1.05}},
    "default, no stall": {"level": {"stall": None}},
    "best, early pilot 1.05": {"quality": "best", "level": {"early_pilot": 1.05}},
    "width 32, cosine lr": {
        **_widths(32),
        "overrides": {**_widths(32)["overrides"], "lr_schedule": "cosine"},
    },
    "width 32, cosine lr 0.02": {
        **_widths(32),
        "overrides": {**_widths(32)["overrides"], "lr_schedule": "cosine", "lr": 0.02},
    },
}


def load(args: argparse.Namespace) -> list[Sample]:
    """The images of the folder (and scikit-image's), cropped and degraded, seed 0."""
    paths = list_images(args.folder, args.images) if args.folder is not None else []
    pictures = [(p.stem, read_image(p).pixels) for p in paths]
    for name in args.skimage or ():
        pixels = skimage_photo(name)
        if args.kind == "inpaint" and pixels.shape[2] == 3:
            pixels = pixels @ np.array([[0.299], [0.587], [0.114]], np.float32)
        pictures.append((f"skimage:{name}", pixels))
    return [
        make_sample(args.kind, name, crop(pixels, args.crop), 0, scale=args.scale)
        for name, pixels in pictures
    ]


@contextlib.contextmanager
def changed_level(kind: str, level: str, changes: dict[str, Any]) -> Iterator[None]:
    """The quality level ``level`` of ``kind`` with ``changes`` (a lever that measures a
    level's setting no job option reaches), put back afterwards."""
    levels = QUALITIES[kind]
    kept = levels[level]
    levels[level] = replace(kept, **changes)
    try:
        yield
    finally:
        levels[level] = kept


def _job_inputs(kind: str, sample: Sample, scale: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The inputs and options of a job on ``sample`` (super-resolution by ``scale``)."""
    inputs: dict[str, Any] = {"image": sample.degraded}
    if sample.known is not None:
        inputs["mask"] = sample.known
    return inputs, ({"scale": scale} if kind == "sr" else {})


def warm_up(kind: str, sample: Sample, args: argparse.Namespace) -> None:
    """A short untimed fit, so that the first lever timed does not pay the process's one-time
    costs (lazy imports, thread pools, the first kernels): about a second, which had made the
    first 64² fast fit half as long again as the others."""
    inputs, options = _job_inputs(kind, sample, args.scale)
    settings = {"seed": args.seed, "device": args.device, "precision": args.precision}
    preset = preset_name(kind, args.scale)
    run(Job(kind, inputs, options=options, preset=preset, max_steps=10, **settings))


def fit(kind: str, sample: Sample, lever_name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One lever on one image: PSNR, wall seconds and steps."""
    lever = dict(LEVERS[lever_name])
    inputs, options = _job_inputs(kind, sample, args.scale)
    options |= lever.pop("options", {})
    changes = lever.pop("level", {})
    preset = preset_name(kind, args.scale)
    settings = {"preset": preset, "steps": "auto", "max_steps": args.max_steps, **lever}
    settings["seed"] = args.seed
    job = Job(
        kind, inputs, options=options, device=args.device, precision=args.precision, **settings
    )
    with changed_level(kind, job.quality, changes):
        started = time.perf_counter()
        outcome = run(job)
        seconds = time.perf_counter() - started
    row = {
        "image": sample.name,
        "psnr": score(kind, outcome.picture.pixels, sample, args.scale),
        "seconds": seconds,
        "steps_run": outcome.report.steps_run,
    }
    refine = (outcome.report.sections or {}).get("refine", {})
    if any(refine.get(name) for name in ("wiener", "back_projection", "biharmonic")):
        # the fit's own PSNR, before the task's pass (inpainting: with the known pixels kept)
        fit = outcome.image
        if sample.known is not None:
            fit = np.where(sample.known[:, :, None], sample.degraded, fit)
        row["psnr_fit"] = score(kind, fit, sample, args.scale)
    if args.save_images is not None:  # for studying what follows the fit without refitting
        args.save_images.mkdir(parents=True, exist_ok=True)
        name = f"{sample.name.replace(':', '_')}-{lever_name.replace(' ', '_')}.npz"
        arrays: dict[str, Any] = {
            "clean": sample.clean,
            "degraded": sample.degraded,
            "fit": outcome.image,  # the fits' mean before the pass
            "result": outcome.picture.pixels,
        }
        if outcome.early_image is not None:  # the early iterates' mean (an early pilot's)
            arrays["early"] = outcome.early_image
        np.savez_compressed(args.save_images / name, **arrays)
    return row


def baseline(kind: str, method: str, sample: Sample, scale: int) -> dict[str, Any]:
    """A classical method on one image (BM3D and NLM are told the true σ)."""
    started = time.perf_counter()
    pixels = classical(kind, method, sample, scale)
    seconds = time.perf_counter() - started
    psnr = score(kind, pixels, sample, scale)
    return {"image": sample.name, "psnr": psnr, "seconds": seconds, "steps_run": 0}


def frontier(rows: list[dict[str, Any]]) -> set[str]:
    """The levers no other lever beats on both mean PSNR and mean seconds (baselines aside)."""
    rows = [r for r in rows if not r.get("baseline")]
    return {
        r["lever"]
        for r in rows
        if not any(
            o["psnr"] >= r["psnr"]
            and o["seconds"] <= r["seconds"]
            and o is not r
            and (o["psnr"] > r["psnr"] or o["seconds"] < r["seconds"])
            for o in rows
        )
    }


def plot(rows: list[dict[str, Any]], on_front: set[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for r in rows:
        colour = "tab:red" if r["lever"] in on_front else "tab:blue"
        colour = "tab:gray" if r.get("baseline") else colour
        axes.scatter(r["seconds"], r["psnr"], color=colour)
        axes.annotate(
            r["lever"],
            (r["seconds"], r["psnr"]),
            fontsize=8,
            xytext=(4, 3),
            textcoords="offset points",
        )
    front = sorted((r for r in rows if r["lever"] in on_front), key=lambda r: r["seconds"])
    axes.plot(
        [r["seconds"] for r in front],
        [r["psnr"] for r in front],
        color="tab:red",
        linewidth=1,
        label="frontier",
    )
    axes.set_xscale("log")
    axes.set_xlabel("mean wall seconds per image")
    axes.set_ylabel("mean PSNR (dB)")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("folder", type=Path, nargs="?", help="benchmark images (optional)")
    parser.add_argument("--images", nargs="*", help="file stems to use (default: all)")
    parser.add_argument("--skimage", nargs="*", default=[], help="scikit-image photographs too")
    parser.add_argument("--crop", type=int, default=64, help="centre crop side")
    parser.add_argument(
        "--scale", type=int, default=SCALE, choices=SCALES, help="super-resolution's factor"
    )
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--max-steps", type=int, default=None, help="cap (default: preset's)")
    parser.add_argument("--seed", type=int, default=0, help="the networks' seed (every fit)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument(
        "--baselines", action="store_true", help="the classical methods too (σ told)"
    )
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="fit nothing: the table and plot of earlier --json files (same images) together",
    )
    parser.add_argument("--versus", default="default", help="the lever the table compares with")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--save-images",
        type=Path,
        default=None,
        help="folder for each fit's images (clean, degraded, fit, result) as .npz",
    )
    args = parser.parse_args()
    if args.scale != SCALE and args.kind != "sr":
        parser.error(f"--scale is super-resolution's factor; {args.kind} has none")

    if args.merge:
        results = merged(args.merge)
        count = len({r["image"] for r in results})
    else:
        if args.folder is None and not args.skimage:
            parser.error("give a folder of images or --skimage NAME ..., or --merge JSON ...")
        results, count = measure(args)
    names = list(dict.fromkeys(r["lever"] for r in results))
    rows = [
        {
            "lever": name,
            "baseline": any(r.get("baseline") for r in results if r["lever"] == name),
            "psnr": statistics.fmean(r["psnr"] for r in results if r["lever"] == name),
            "seconds": statistics.fmean(r["seconds"] for r in results if r["lever"] == name),
            "steps": statistics.fmean(r["steps_run"] for r in results if r["lever"] == name),
            "psnr_fit": _mean_fit_psnr([r for r in results if r["lever"] == name]),
        }
        for name in names
    ]
    on_front = frontier(rows)
    reference = next((r for r in rows if r["lever"] == args.versus), None)
    versus = f"vs {args.versus}"
    print_table(
        [
            "lever",
            "mean PSNR",
            versus,
            "mean s",
            f"time {versus}",
            "mean steps",
            "frontier",
            "before the pass",
        ],
        [
            [
                r["lever"] + (" (baseline, σ told)" if r["baseline"] else ""),
                r["psnr"],
                f"{r['psnr'] - reference['psnr']:+.2f}" if reference else "",
                r["seconds"],
                f"{r['seconds'] / reference['seconds']:.2f}x" if reference else "",
                f"{r['steps']:.0f}",
                "yes" if r["lever"] in on_front else "",
                "" if r["psnr_fit"] is None else f"{r['psnr_fit']:.2f}",
            ]
            for r in rows
        ],
    )
    if args.plot is not None:
        plot(rows, on_front, args.plot, f"{args.kind}, {count} images, crop {args.crop}")


def _mean_fit_psnr(results: list[dict[str, Any]]) -> float | None:
    """The mean PSNR of the fits before the Wiener filter, when every image had one."""
    if not results or any("psnr_fit" not in r for r in results):
        return None
    return statistics.fmean(r["psnr_fit"] for r in results)


def measure(args: argparse.Namespace) -> tuple[list[dict[str, Any]], int]:
    """Fit every lever on every image (and the baselines); the per-image rows, saved to
    ``--json``, and the number of images."""
    samples = load(args)
    info = provenance(args.device)
    settings = {
        "kind": args.kind,
        "crop": args.crop,
        "images": [s.name for s in samples],
        "levers": {name: LEVERS[name] for name in args.levers},
        "preset": preset_name(args.kind, args.scale),
        "scale": args.scale if args.kind == "sr" else None,
        "max_steps": args.max_steps,
        "seed": args.seed,
        "precision": args.precision,
    }
    print_header(info, {k: v for k, v in settings.items() if k != "levers"})
    warm_up(args.kind, samples[0], args)
    results = []
    for name in args.levers:
        for sample in samples:
            entry = {"lever": name, **fit(args.kind, sample, name, args)}
            results.append(entry)
            print(
                f"done {name} {sample.name}: {entry['psnr']:.2f} dB, {entry['seconds']:.0f} s"
                + (f" (fit {entry['psnr_fit']:.2f} dB)" if "psnr_fit" in entry else ""),
                flush=True,
            )
    if args.baselines:
        for method in (m for m in methods(args.kind) if not m.startswith("dip")):
            results += [
                {
                    "lever": method,
                    "baseline": True,
                    **baseline(args.kind, method, sample, args.scale),
                }
                for sample in samples
            ]
    save_json(args.json, info, settings, results)
    return results, len(samples)


def merged(paths: list[Path]) -> list[dict[str, Any]]:
    """The per-image rows of earlier ``--json`` files, each lever's first occurrence kept;
    prints where each file came from."""
    results: list[dict[str, Any]] = []
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        print(f"# {path}: {data['command']} (commit {data['commit'][:10]})")
        known = {r["lever"] for r in results}
        results += [r for r in data["results"] if r["lever"] not in known]
    return results


if __name__ == "__main__":
    main()
