"""What the Wiener filter adds after a fit, alone and mixed with it, from saved fits.

    python benchmarks/frontier.py denoise ../shared/data/CBM3D --crop 128 --images kodim01 \\
        --levers "quality best" --save-images fits/
    python benchmarks/wiener_mix.py fits/ --json mix.json

Each ``.npz`` that ``frontier.py --save-images`` wrote holds the clean crop, the noisy one and
the fit (the runs' average before any filter). For each, this prints the PSNR of the fit, of
its empirical Wiener filter (σ estimated from the noisy crop, as a run does) and of the even
mix of the two (what ``--quality best`` returns), then the means.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_header, print_table, provenance, save_json

from deepprior.metrics import psnr
from deepprior.stopping import estimate_noise_sigma
from deepprior.wiener import empirical_wiener

COLUMNS = ("fit", "wiener", "mix")


def measure(path: Path) -> dict[str, float | str]:
    """The PSNR of the fit in ``path``, of its Wiener filter and of their even mix."""
    saved = np.load(path)
    clean, noisy, fit = saved["clean"], saved["degraded"], saved["fit"]
    filtered = empirical_wiener(noisy, fit, estimate_noise_sigma(noisy))
    mixed = (fit + filtered) / 2
    return {
        "image": path.stem,
        "fit": psnr(fit, clean),
        "wiener": psnr(filtered, clean),
        "mix": psnr(mixed, clean),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", help="folders of frontier.py's .npz")
    parser.add_argument("--lever", default="quality best", help="the lever whose fits to read")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    pattern = f"*-{args.lever.replace(' ', '_')}.npz"
    paths = sorted(p for folder in args.folders for p in folder.glob(pattern))
    if not paths:
        parser.error(f"no {pattern} files in the folders given")
    info = provenance("cpu")
    settings = {"folders": [str(f) for f in args.folders], "lever": args.lever}
    print_header(info, settings)
    rows = [measure(path) for path in paths]
    means = {c: statistics.fmean(float(r[c]) for r in rows) for c in COLUMNS}
    print_table(
        ["image", *COLUMNS],
        [[r["image"], *(float(r[c]) for c in COLUMNS)] for r in rows] + [["mean", *means.values()]],
    )
    save_json(args.json, info, settings, rows)


if __name__ == "__main__":
    main()
