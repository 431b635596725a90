"""What the second pass adds after a fit, alone and mixed with it, from saved fits.

    python benchmarks/frontier.py denoise ../shared/data/CBM3D --crop 128 --images kodim01 \\
        --levers "quality best" --save-images fits/
    python benchmarks/wiener_mix.py fits/ --json mix.json

Each ``.npz`` that ``frontier.py --save-images`` wrote holds the clean crop, the noisy one and
the fit (the runs' average before any filter). For each, this prints the PSNR of the fit; of
BM3D's first (hard-thresholding) step on the noisy crop and of the Wiener filter guided by it
(both steps without the network); of the Wiener filter guided by the fit alone (as the pass was
until session 23, with today's grouping); of the second pass as a run makes it (the filter
guided by the mean of the fit and the first step, weighted 0.4 and 0.6; σ estimated from the
noisy crop, as a run does: the ``wiener`` column, as fast and the default make it); of the pass
as ``--quality best`` makes it (groups of up to 128 blocks on three reference grids, 0, 1 and 2
pixels in, averaged; since session 35); and of the even mix of the ``wiener`` column and the
fit (what best returned until session 24), then the means. ``--variants`` adds the second
pass's settings measured against the shipped ones: the filter guided by its own output a second
time, the first step zeroing under 2.7σ (the BM3D paper's) instead of 3σ, μ² 0.4 (the ``bm3d``
package's) or 0.7 instead of 0.5, the fit weighted 0.25 or 0.5 in the pilot instead of 0.4, a
wider search (±19 pixels, BM3D's), groups of 16, 32 or 128 blocks instead of 64 (32: the
package's, and the pass's until session 34), reference blocks every 2 pixels, σ read 5 % high
or low, 20 % of the fit mixed into the output, and two averages of the pass run several times:
on the image in its four quarter turns (turned back), and with the reference blocks' grid moved
by 0, 1 and 2 pixels down and across. ``--pilots`` asks whether a gap to BM3D lies in the
filter or in its pilot, with the ``bm3d`` package (free for non-commercial use: a measuring
instrument here, not a dependency) in the opponent colour space, σ as the run estimates it:
BM3D's own Wiener step guided by the fit (a channel at a time: the package takes no colour
pilot); CBM3D's first (hard-thresholding) estimate; this filter and BM3D's Wiener step guided
by it; this filter guided by the mean of it and the fit; CBM3D whole; and this filter and
BM3D's Wiener step guided by the clean image (an oracle: what each second step makes of a
perfect pilot). ``--early`` reads the early iterate that a lever with an early pilot (``"best,
early pilot 1.05"``) saved, and adds the pass guided by it, its mixes with the final pass, and
one pass guided by the mean of the two iterates.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_header, print_table, provenance, save_json

from deepprior import wiener
from deepprior.metrics import psnr
from deepprior.quality import BEST_WIENER_GRIDS, BEST_WIENER_GROUP
from deepprior.stopping import estimate_noise_sigma
from deepprior.wiener import OPPONENT, empirical_wiener, hard_threshold, refine_fit, refine_fits

COLUMNS = (
    "fit",
    "first step",
    "wiener on first step",
    "wiener on fit",
    "wiener",
    "best's pass",
    "mix",
)
# name -> the module constants of deepprior.wiener it changes, and σ's factor
SETTINGS: dict[str, tuple[dict[str, float], float]] = {
    "threshold 2.7 sigma": ({"HARD_LAMBDA": 2.7}, 1.0),
    "mu2 0.4": ({"WIENER_MU2": 0.4}, 1.0),
    "mu2 0.7": ({"WIENER_MU2": 0.7}, 1.0),
    "fit share 0.25": ({"FIT_SHARE": 0.25}, 1.0),
    "fit share 0.5": ({"FIT_SHARE": 0.5}, 1.0),
    "radius 19": ({"RADIUS": 19}, 1.0),
    "groups of 16": ({"GROUP": 16}, 1.0),
    "groups of 32": ({"GROUP": 32}, 1.0),
    "groups of 128": ({"GROUP": 128}, 1.0),
    "step 2": ({"STEP": 2}, 1.0),
    "sigma x1.05": ({}, 1.05),
    "sigma x0.95": ({}, 0.95),
}
VARIANTS = ("twice", *SETTINGS, "fit 20 %", "turned 4", "grids 3")
# With ``--early``, from the fits of a lever with an early pilot (Quality.early_pilot): the
# early iterates' mean, the pass guided by it alone, and its result and the final pass's
# (the "wiener" column) mixed with the early one's share 1/4, 1/2 (what a run with the
# early pilot returns) and 3/4; and one pass guided by the mean of the two iterates.
EARLY = ("early fit", "wiener on early", "early 1/4", "early 1/2", "early 3/4", "wiener on both")
PILOTS = (
    "bm3d step 2 on fit",
    "cbm3d step 1",
    "wiener on cbm3d step 1",
    "bm3d step 2 on cbm3d step 1",
    "wiener on mean",
    "cbm3d",
    "wiener on clean",
    "bm3d step 2 on clean",
)


@contextlib.contextmanager
def changed(constants: dict[str, float]) -> Iterator[None]:
    """deepprior.wiener with ``constants`` changed, within the block."""
    saved = {name: getattr(wiener, name) for name in constants}
    for name, value in constants.items():
        setattr(wiener, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(wiener, name, value)


def variants(
    clean: np.ndarray, noisy: np.ndarray, fit: np.ndarray, filtered: np.ndarray, sigma: float
) -> dict[str, float]:
    """The PSNR of each of :data:`VARIANTS` of the second pass on one fit (``filtered``: the
    pass as it ships, with ``sigma``)."""
    row = {"twice": psnr(empirical_wiener(noisy, filtered, sigma), clean)}
    for name, (constants, factor) in SETTINGS.items():
        with changed(constants):
            row[name] = psnr(refine_fit(noisy, fit, sigma * factor), clean)
    row["fit 20 %"] = psnr(0.2 * fit + 0.8 * filtered, clean)

    def turned(image: np.ndarray, k: int) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(image, k))

    passes = [turned(refine_fit(turned(noisy, k), turned(fit, k), sigma), -k) for k in range(4)]
    row["turned 4"] = psnr(np.mean(passes, axis=0), clean)
    row["grids 3"] = psnr(refine_fits(noisy, [fit], sigma, grids=3)[0], clean)
    return row


def pilots(clean: np.ndarray, noisy: np.ndarray, fit: np.ndarray, sigma: float) -> dict[str, float]:
    """The PSNR of each of :data:`PILOTS` on one fit (``sigma``: the run's estimate). BM3D runs
    on the opponent colour planes: whole, or its first step alone, on all of them at once
    (blocks matched on the first plane, luminance, as CBM3D does); its second step a plane at
    a time (the package takes no colour pilot), guided by the fit or by that first step."""
    import bm3d

    to_planes = OPPONENT if noisy.shape[2] == 3 else np.eye(1, dtype=np.float32)
    planes, fit_planes = np.float64(noisy @ to_planes.T), np.float64(fit @ to_planes.T)

    def back(done: np.ndarray) -> np.ndarray:
        return np.clip(done.reshape(planes.shape) @ to_planes, 0, 1).astype(np.float32)

    first_planes = bm3d.bm3d(planes, sigma, stage_arg=bm3d.BM3DStages.HARD_THRESHOLDING)
    first = back(first_planes)

    def second_step(pilot: np.ndarray) -> np.ndarray:
        """BM3D's Wiener step guided by ``pilot`` (opponent planes), a plane at a time."""
        done = [
            bm3d.bm3d(planes[:, :, c], sigma, stage_arg=np.ascontiguousarray(pilot[:, :, c]))
            for c in range(planes.shape[2])
        ]
        return back(np.stack(done, axis=2))

    return {
        "bm3d step 2 on fit": psnr(second_step(fit_planes), clean),
        "cbm3d step 1": psnr(first, clean),
        "wiener on cbm3d step 1": psnr(empirical_wiener(noisy, first, sigma), clean),
        "bm3d step 2 on cbm3d step 1": psnr(second_step(first_planes.reshape(planes.shape)), clean),
        "wiener on mean": psnr(empirical_wiener(noisy, (first + fit) / 2, sigma), clean),
        "cbm3d": psnr(back(bm3d.bm3d(planes, sigma)), clean),
        "wiener on clean": psnr(empirical_wiener(noisy, clean, sigma), clean),
        "bm3d step 2 on clean": psnr(second_step(np.float64(clean @ to_planes.T)), clean),
    }


def early(
    clean: np.ndarray,
    noisy: np.ndarray,
    iterate: np.ndarray,
    fit: np.ndarray,
    filtered: np.ndarray,
    sigma: float,
    first: np.ndarray,
) -> dict[str, float]:
    """The PSNR of each of :data:`EARLY` for the early ``iterate`` of one run (``fit``: its
    final iterate; ``filtered``: the pass on it; ``first``: the pass's first step)."""
    passed = refine_fit(noisy, iterate, sigma, first)
    row = {"early fit": psnr(iterate, clean), "wiener on early": psnr(passed, clean)}
    for name, share in (("early 1/4", 0.25), ("early 1/2", 0.5), ("early 3/4", 0.75)):
        row[name] = psnr(share * passed + (1 - share) * filtered, clean)
    row["wiener on both"] = psnr(refine_fit(noisy, (iterate + fit) / 2, sigma, first), clean)
    return row


def measure(
    path: Path, with_variants: bool = False, with_pilots: bool = False, with_early: bool = False
) -> dict[str, float | str]:
    """The PSNR of the fit in ``path``, of the first step, of the Wiener filter guided by the
    fit, of the second pass and of its even mix with the fit (and of the pass's variants, of
    the filter and BM3D on other pilots, and of the pass on the run's early iterate)."""
    saved = np.load(path)
    clean, noisy, fit = saved["clean"], saved["degraded"], saved["fit"]
    sigma = estimate_noise_sigma(noisy)
    first = hard_threshold(noisy, sigma)  # the pass's first step, made once for its uses here
    filtered = refine_fit(noisy, fit, sigma, first)
    stronger, _ = refine_fits(noisy, [fit], sigma, BEST_WIENER_GROUP, BEST_WIENER_GRIDS)
    mixed = (fit + filtered) / 2
    row: dict[str, float | str] = {
        "image": path.stem,
        "fit": psnr(fit, clean),
        "first step": psnr(first, clean),
        "wiener on first step": psnr(empirical_wiener(noisy, first, sigma), clean),
        "wiener on fit": psnr(empirical_wiener(noisy, fit, sigma), clean),
        "wiener": psnr(filtered, clean),
        "best's pass": psnr(stronger, clean),
        "mix": psnr(mixed, clean),
    }
    row |= variants(clean, noisy, fit, filtered, sigma) if with_variants else {}
    if with_early:
        if "early" not in saved:
            raise SystemExit(f"{path} has no early iterate: save a lever with an early pilot")
        row |= early(clean, noisy, saved["early"], fit, filtered, sigma, first)
    return row | (pilots(clean, noisy, fit, sigma) if with_pilots else {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", help="folders of frontier.py's .npz")
    parser.add_argument("--lever", default="quality best", help="the lever whose fits to read")
    parser.add_argument("--variants", action="store_true", help="also the filter's variants")
    parser.add_argument("--pilots", action="store_true", help="also other pilots, with bm3d")
    parser.add_argument("--early", action="store_true", help="also the early pilot's pass")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    pattern = f"*-{args.lever.replace(' ', '_')}.npz"
    paths = sorted(p for folder in args.folders for p in folder.glob(pattern))
    if not paths:
        parser.error(f"no {pattern} files in the folders given")
    info = provenance("cpu")
    settings: dict[str, Any] = {"folders": [str(f) for f in args.folders], "lever": args.lever}
    settings |= {"variants": args.variants, "pilots": args.pilots, "early": args.early}
    print_header(info, settings)
    rows = [measure(path, args.variants, args.pilots, args.early) for path in paths]
    columns = COLUMNS + (VARIANTS if args.variants else ()) + (PILOTS if args.pilots else ())
    columns += EARLY if args.early else ()
    means = {c: statistics.fmean(float(r[c]) for r in rows) for c in columns}
    print_table(
        ["image", *columns],
        [[r["image"], *(float(r[c]) for c in columns)] for r in rows] + [["mean", *means.values()]],
    )
    save_json(args.json, info, settings, rows)


if __name__ == "__main__":
    main()
