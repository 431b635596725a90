"""Restoration benchmark: deblurring, demosaicking and JPEG restoration.

    python benchmarks/restore.py deblur ../shared/data/CBM3D --crop 96 \\
        --images house kodim03 peppers --blur 2 --noise 5
    python benchmarks/restore.py demosaic ../shared/data/CBM3D --crop 96 \\
        --images house kodim03 peppers --pattern rggb
    python benchmarks/restore.py jpeg ../shared/data/CBM3D --crop 128 --jpeg 10 \\
        --images house kodim03 --skimage chelsea coffee

deblur: the crop blurred by deepprior's Gaussian operator (σ = ``--blur`` px, edge-padded) plus
Gaussian noise (``--noise`` in 8-bit levels, clipped), restored with ``--degradation
blur:gaussian:σ`` and ``--steps auto``; against scikit-image's Richardson–Lucy and Wiener
deconvolution given the same kernel, each with the best of a few settings chosen with the
clean image (an oracle: the strongest these baselines can be). demosaic: the crop's RGGB
mosaic (8-bit), restored with ``bayer:rggb``; against OpenCV's bilinear, VNG and edge-aware
demosaicking. jpeg: the crop saved by Pillow at quality ``--jpeg``, restored blind (the
authors' JPEG setting, ``deepprior restore``'s default); the JPEG itself is the baseline.
PSNR (RGB, data range 1) and SSIM with a border of ``--shave`` pixels removed from every
method's result, so that no method is judged on how it guesses past the frame.
``--skimage NAME ...`` adds scikit-image's bundled photographs (images outside ``../shared``);
``--quality`` picks the level (``paper``, the default here: the authors' settings as they are,
a hard cap; ``default``: the same, past the cap while the fit still clearly improves, except
blind JPEG restoration, which keeps its cap at every level).
"""

from __future__ import annotations

import argparse
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
    mean,
    print_header,
    print_table,
    provenance,
    run_task,
    save_json,
    skimage_photo,
)

from deepprior.degradations import apply
from deepprior.io import Picture, read_image
from deepprior.metrics import psnr, ssim
from deepprior.operators import Bayer, Blur, gaussian_kernel
from deepprior.quality import LEVELS


def deblur_baselines(blurred: np.ndarray, kernel: np.ndarray, clean: np.ndarray, shave: int):
    """Richardson–Lucy and Wiener, each at its best setting against the clean image."""
    from skimage.restoration import richardson_lucy, wiener

    def per_channel(method: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        planes = [method(blurred[:, :, c].astype(np.float64)) for c in range(blurred.shape[2])]
        return np.clip(np.stack(planes, axis=2), 0, 1).astype(np.float32)

    found: dict[str, tuple[np.ndarray, str]] = {}
    for name, settings, method in (
        ("Richardson-Lucy", (10, 30, 100), lambda n: lambda p: richardson_lucy(p, kernel, n)),
        ("Wiener", (0.003, 0.01, 0.03, 0.1), lambda b: lambda p: wiener(p, kernel, b)),
    ):
        results = {setting: per_channel(method(setting)) for setting in settings}
        best = max(results, key=lambda s: score(results[s], clean, shave)[0])
        found[name] = (results[best], f"{best}")
    return found


def demosaic_baselines(mosaic: np.ndarray, clean: np.ndarray, shave: int):
    """OpenCV's demosaicking; the Bayer code that fits the pattern is the best-scoring one
    (OpenCV names patterns by another corner of the 2×2 cell)."""
    import cv2

    raw = np.round(mosaic[:, :, 0] * 255).astype(np.uint8)
    found: dict[str, tuple[np.ndarray, str]] = {}
    for name, suffix in (("OpenCV bilinear", ""), ("OpenCV VNG", "_VNG"), ("OpenCV EA", "_EA")):
        results = {}
        for cell in ("BG", "GB", "RG", "GR"):
            code = getattr(cv2, f"COLOR_Bayer{cell}2RGB{suffix}")
            results[cell] = cv2.cvtColor(raw, code).astype(np.float32) / 255
        best = max(results, key=lambda c: score(results[c], clean, shave)[0])
        found[name] = (results[best], best)
    return found


def score(image: np.ndarray, clean: np.ndarray, shave: int) -> tuple[float, float]:
    inner = (slice(shave, -shave or None), slice(shave, -shave or None))
    return psnr(image[inner], clean[inner]), ssim(image[inner], clean[inner])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("task", choices=["deblur", "demosaic", "jpeg"])
    parser.add_argument("folder", type=Path, nargs="?", help="benchmark images (or --skimage)")
    parser.add_argument("--images", nargs="*", help="file stems to use (default: all)")
    parser.add_argument("--crop", type=int, default=96, help="centre crop (CPU proxy)")
    parser.add_argument("--blur", type=float, default=2.0, help="deblur: Gaussian σ (px)")
    parser.add_argument("--noise", type=float, default=5.0, help="deblur: noise σ (8-bit)")
    parser.add_argument("--pattern", default="rggb", help="demosaic: the Bayer pattern")
    parser.add_argument("--jpeg", type=int, default=10, help="jpeg: Pillow's quality, 1-95")
    parser.add_argument("--skimage", nargs="*", default=[], help="scikit-image photographs")
    parser.add_argument("--quality", default="paper", choices=LEVELS, help="deepprior's level")
    parser.add_argument("--max-steps", type=int, default=None, help="cap of --steps auto")
    parser.add_argument("--shave", type=int, default=None, help="border left out of scores")
    parser.add_argument("--seed", type=int, default=0)
    add_run_arguments(parser)
    args = parser.parse_args()
    if args.shave is None:
        args.shave = {"deblur": int(np.ceil(3 * args.blur)), "demosaic": 2, "jpeg": 0}[args.task]
    if args.folder is None and not args.skimage:
        parser.error("give a folder of benchmark images, --skimage names, or both")

    paths = list_images(args.folder, args.images) if args.folder is not None else []
    pictures = [(p.stem, read_image(p).pixels) for p in paths]
    pictures += [(f"skimage:{name}", skimage_photo(name)) for name in args.skimage]
    info = provenance(args.device)
    settings = {
        k: getattr(args, k)
        for k in (
            "task",
            "crop",
            "blur",
            "noise",
            "pattern",
            "jpeg",
            "quality",
            "max_steps",
            "shave",
            "seed",
        )
    }
    print_header(info, settings)
    rows, results = [], []
    for name, pixels in pictures:
        clean = centre_crop(pixels, args.crop)
        options: dict[str, str] = {}
        if args.task == "jpeg":
            observed = jpeg_round_trip(clean, args.jpeg)
            baselines: dict[str, tuple[np.ndarray, str]] = {}
            given = {f"JPEG {args.jpeg}": observed}
        elif args.task == "deblur":
            kernel = gaussian_kernel(args.blur)
            observed = apply(Blur(kernel), clean)
            noise = np.random.default_rng(args.seed).standard_normal(observed.shape)
            observed = np.clip(observed + args.noise / 255 * noise, 0, 1).astype(np.float32)
            options["degradation"] = f"blur:gaussian:{args.blur:g}"
            baselines = deblur_baselines(observed, kernel, clean, args.shave)
            given = {"blurred input": observed}
        else:
            observed = np.round(apply(Bayer(args.pattern), clean) * 255) / 255
            options["degradation"] = f"bayer:{args.pattern}"
            baselines = demosaic_baselines(observed, clean, args.shave)
            given = {}
        started = time.perf_counter()
        outcome = run_task(
            "restore",
            Picture(observed.astype(np.float32)),
            options=options,
            steps="auto",
            max_steps=args.max_steps,
            quality=args.quality,
            seed=args.seed,
            device=args.device,
            precision=args.precision,
        )
        seconds = time.perf_counter() - started
        methods = {**{k: (v, "") for k, v in given.items()}, **baselines}
        methods["deepprior"] = (outcome.picture.pixels, f"{outcome.report.steps_run} steps")
        entry: dict[str, Any] = {"image": name, "seconds": seconds, "methods": {}}
        for method, (image, note) in methods.items():
            value, similarity = score(image, clean, args.shave)
            entry["methods"][method] = {"psnr": value, "ssim": similarity, "setting": note}
            rows.append([name, method, note, value, similarity])
        entry["steps_run"] = outcome.report.steps_run
        entry["stopping"] = outcome.report.stopping
        results.append(entry)
        print(f"done {name}: {seconds:.0f} s, {outcome.report.steps_run} steps", flush=True)
    print_table(["image", "method", "setting", "PSNR", "SSIM"], rows)
    for method in list(results[0]["methods"]) if results else []:
        print(
            f"mean {method}: PSNR {mean(e['methods'][method]['psnr'] for e in results)}, "
            f"SSIM {mean(e['methods'][method]['ssim'] for e in results)}"
        )
    print(
        f"mean deepprior fit: {mean(e['seconds'] for e in results)} s, "
        f"{mean(e['steps_run'] for e in results)} steps"
    )
    save_json(args.json, info, settings, results)


if __name__ == "__main__":
    main()
