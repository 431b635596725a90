"""What keeping freed memory for reuse (deepprior.allocator) does to a denoising run's time.

    python benchmarks/allocator.py --sizes 512x512 1024x768 --steps 22

For each size: the top-left crop of scikit-image's retina (enlarged where it is smaller)
with σ = 25 noise (seeded), denoised at the default level for a fixed number of steps (so both
runs do the same work), then its Wiener filter; once with glibc's defaults and once with freed
memory kept, each in a fresh process (the allocator's settings are the process's). Prints the
wall seconds of the whole run, the seconds per step, the kernel's (system) seconds, the page
faults, the peak resident memory and
whether both runs returned the same pixels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_header, print_table, provenance, save_json

MODES = ("defaults", "kept")


def child(size: str, steps: int, mode: str) -> dict[str, Any]:
    """One run in this process; ``mode`` ``defaults`` keeps glibc's allocator settings."""
    import numpy as np
    import skimage.data
    import skimage.transform

    from deepprior import engine
    from deepprior.job import Job
    from deepprior.runner import run

    if mode == "defaults":
        engine.KEEP_ROOM = float("inf")  # no plan has room: the run never keeps memory
    width, height = (int(v) for v in size.split("x"))
    photo = skimage.data.retina().astype(np.float32) / 255  # 1411×1411
    if max(width, height) > min(photo.shape[:2]):  # enlarged to cover the size asked for
        side = max(width, height)
        photo = skimage.transform.resize(photo, (side, side), order=3, anti_aliasing=False)
    clean = np.clip(photo[:height, :width], 0, 1)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1)
    job = Job("denoise", {"image": noisy.astype(np.float32)}, steps=steps, seed=0, device="cpu")
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    outcome = run(job)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "size": size,
        "mode": mode,
        "seconds": seconds,
        "seconds_per_step": outcome.report.seconds_per_step,
        "system_seconds": after.ru_stime - before.ru_stime,
        "page_faults": after.ru_minflt - before.ru_minflt,
        "peak_gib": after.ru_maxrss / 2**20,
        "reuses_freed_memory": outcome.report.memory.get("reuses_freed_memory"),
        "pixels_md5": hashlib.md5(outcome.picture.pixels.tobytes()).hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["512x512", "1024x768"], help="W×H")
    parser.add_argument("--steps", type=int, default=22)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.steps, args.child[1])))
        return
    info = provenance("cpu")
    settings = {"sizes": args.sizes, "steps": args.steps, "level": "default", "sigma": 25}
    print_header(info, settings)
    results = []
    for size in args.sizes:
        for mode in MODES:
            command = [sys.executable, __file__, "--steps", str(args.steps), "--child", size, mode]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows = []
    for result in results:
        same = {r["pixels_md5"] for r in results if r["size"] == result["size"]}
        rows.append(
            [
                result["size"],
                result["mode"],
                result["seconds"],
                result["seconds_per_step"],
                result["system_seconds"],
                result["page_faults"],
                result["peak_gib"],
                "yes" if len(same) == 1 else "no",
            ]
        )
    headers = ["size", "memory", "run s", "s/step", "kernel s", "page faults", "peak GiB", "same"]
    print_table(headers, rows)
    save_json(args.json, info, settings, results)


if __name__ == "__main__":
    main()
