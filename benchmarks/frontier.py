"""Quality against wall time: which settings ("levers") pay, on the paper's tasks.

    python benchmarks/frontier.py denoise ../shared/data/CBM3D --crop 64 \\
        --images house f16 kodim03 --skimage astronaut coffee --plot frontier_denoise.png

Each lever is a change to the default job (``--steps auto``): a narrower or shallower network,
another learning rate, no output averaging, two runs averaged. Every lever fits every image
from seed 0 with the degradation of ``deepprior reproduce`` (σ = 25 noise, Lanczos ×4, 50 % of
pixels dropped, seeded); the table gives the mean PSNR (the task's measure) and the mean wall
seconds of each, and marks the levers on the frontier (no other is both better and faster).
``--skimage NAME ...`` adds scikit-image's bundled photographs (held-out images).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import list_images, print_header, print_table, provenance, save_json

from deepprior.experiments.reproduce import SCALE, Sample, crop, make_sample, score
from deepprior.io import read_image
from deepprior.job import Job
from deepprior.runner import run

KINDS = ("denoise", "sr", "inpaint")
PRESETS = {"denoise": "authors", "sr": "x4", "inpaint": "pixels"}


def _widths(channels: int, levels: int = 5) -> dict[str, Any]:
    net = {"down": (channels,) * levels, "up": (channels,) * levels, "skip": (4,) * levels}
    return {"overrides": {"net_options": net}}


# name -> the Job fields it changes
LEVERS: dict[str, dict[str, Any]] = {
    "default": {},
    "width 64": _widths(64),
    "width 32": _widths(32),
    "depth 4": _widths(128, levels=4),
    "lr 0.02": {"overrides": {"lr": 0.02}},
    "lr 0.005": {"overrides": {"lr": 0.005}},
    "no averaging": {"average": 0},
    "runs 2": {"runs": 2},
}


def load(args: argparse.Namespace) -> list[Sample]:
    """The images of the folder (and scikit-image's), cropped and degraded, seed 0."""
    pictures = [(p.stem, read_image(p).pixels) for p in list_images(args.folder, args.images)]
    if args.skimage:
        from skimage import data

        for name in args.skimage:
            pixels = np.asarray(getattr(data, name)(), np.float32) / 255
            pixels = pixels if pixels.ndim == 3 else pixels[:, :, None]
            if args.kind == "inpaint" and pixels.shape[2] == 3:
                pixels = pixels @ np.array([[0.299], [0.587], [0.114]], np.float32)
            pictures.append((f"skimage:{name}", pixels[:, :, :3]))
    return [make_sample(args.kind, name, crop(pixels, args.crop), 0) for name, pixels in pictures]


def fit(
    kind: str, sample: Sample, lever: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    """One lever on one image: PSNR, wall seconds and steps."""
    inputs: dict[str, Any] = {"image": sample.degraded}
    options = {"scale": SCALE} if kind == "sr" else {}
    if sample.known is not None:
        inputs["mask"] = sample.known
    settings = {"preset": PRESETS[kind], "steps": "auto", "max_steps": args.max_steps, **lever}
    started = time.perf_counter()
    outcome = run(
        Job(kind, inputs, options=options, device=args.device, precision=args.precision, **settings)
    )
    seconds = time.perf_counter() - started
    return {
        "image": sample.name,
        "psnr": score(kind, outcome.picture.pixels, sample),
        "seconds": seconds,
        "steps_run": outcome.report.steps_run,
    }


def frontier(rows: list[dict[str, Any]]) -> set[str]:
    """The levers no other lever beats on both mean PSNR and mean seconds."""
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
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", nargs="*", help="file stems to use (default: all)")
    parser.add_argument("--skimage", nargs="*", default=[], help="scikit-image photographs too")
    parser.add_argument("--crop", type=int, default=64, help="centre crop side")
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--max-steps", type=int, default=None, help="cap (default: preset's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    samples = load(args)
    info = provenance(args.device)
    settings = {
        "kind": args.kind,
        "crop": args.crop,
        "images": [s.name for s in samples],
        "levers": {name: LEVERS[name] for name in args.levers},
        "preset": PRESETS[args.kind],
        "max_steps": args.max_steps,
        "precision": args.precision,
    }
    print_header(info, {k: v for k, v in settings.items() if k != "levers"})
    results = []
    for name in args.levers:
        for sample in samples:
            entry = {"lever": name, **fit(args.kind, sample, LEVERS[name], args)}
            results.append(entry)
            print(
                f"done {name} {sample.name}: {entry['psnr']:.2f} dB, {entry['seconds']:.0f} s",
                flush=True,
            )
    rows = [
        {
            "lever": name,
            "psnr": statistics.fmean(r["psnr"] for r in results if r["lever"] == name),
            "seconds": statistics.fmean(r["seconds"] for r in results if r["lever"] == name),
            "steps": statistics.fmean(r["steps_run"] for r in results if r["lever"] == name),
        }
        for name in args.levers
    ]
    on_front = frontier(rows)
    default = next((r for r in rows if r["lever"] == "default"), None)
    print_table(
        ["lever", "mean PSNR", "vs default", "mean s", "time vs default", "mean steps", "frontier"],
        [
            [
                r["lever"],
                r["psnr"],
                f"{r['psnr'] - default['psnr']:+.2f}" if default else "",
                r["seconds"],
                f"{r['seconds'] / default['seconds']:.2f}x" if default else "",
                f"{r['steps']:.0f}",
                "yes" if r["lever"] in on_front else "",
            ]
            for r in rows
        ],
    )
    if args.plot is not None:
        plot(rows, on_front, args.plot, f"{args.kind}, {len(samples)} images, crop {args.crop}")
    save_json(args.json, info, settings, results)


if __name__ == "__main__":
    main()
