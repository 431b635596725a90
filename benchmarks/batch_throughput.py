"""Images per minute of `deepprior batch`: one at a time, local workers, a local Ray cluster;
and a batch killed with SIGKILL halfway, then rerun.

    python benchmarks/batch_throughput.py ../shared/data/CBM3D --images 12 --crop 64 \
        --modes serial workers-2 ray --json J
    python benchmarks/batch_throughput.py ../shared/data/CBM3D --kill-demo --images 20

The inputs are ``--images`` crops (``--crop`` pixels, taken on a grid over the folder's
photographs) with Gaussian noise (σ = 25, seeded) added, written to a temporary folder; each
mode denoises all of them into a fresh output folder with the same settings and seed. Run it
on an otherwise idle machine: the figures are wall times.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import list_images, print_header, print_table, provenance, save_json, steps_value

import deepprior
from deepprior.io import read_image, to_array

MODES: dict[str, dict[str, Any]] = {
    "serial": {"workers": 1},
    "workers-2": {"workers": 2},
    "ray": {"ray": "local"},
}


def make_inputs(folder: Path, count: int, crop: int, target: Path) -> list[Path]:
    """``count`` noisy crops, cycling over the folder's images and positions on a grid."""
    sources = [read_image(path) for path in list_images(folder)]
    rng = np.random.default_rng(0)
    made = []
    for index in range(count):
        picture = sources[index % len(sources)]
        turn = index // len(sources)
        top = (turn * crop) % max(1, picture.height - crop)
        left = (turn * 2 * crop) % max(1, picture.width - crop)
        clean = picture.pixels[top : top + crop, left : left + crop]
        noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1)
        path = target / f"crop{index:02d}.png"
        array = to_array(picture.with_pixels(noisy.astype(np.float32)), np.uint8)
        Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)
        made.append(path)
    return made


def throughput(args: argparse.Namespace, inputs: Path, work: Path) -> list[dict[str, Any]]:
    results = []
    for mode in args.modes:
        started = time.perf_counter()
        summary = deepprior.batch(
            "denoise",
            inputs,
            work / mode,
            quality=args.quality,
            steps=args.steps,
            seed=0,
            **MODES[mode],
        )
        seconds = time.perf_counter() - started  # Ray's start-up included
        results.append(
            {
                "mode": mode,
                "images": summary.count("done"),
                "failed": summary.count("failed"),
                "seconds": seconds,
                "images_per_minute": 60 * summary.count("done") / seconds,
                "seconds_per_image_fit": float(
                    np.mean([e.seconds for e in summary.entries if e.seconds])
                ),
            }
        )
        print(f"done {mode}: {results[-1]['images_per_minute']:.2f} images/min", flush=True)
    return results


def states(out: Path) -> dict[str, str]:
    with sqlite3.connect(out / "manifest.sqlite") as db:
        return dict(db.execute("SELECT name, state FROM images").fetchall())


def kill_demo(args: argparse.Namespace, inputs: Path, work: Path, count: int) -> dict[str, Any]:
    """Start the batch, SIGKILL it once half the images are done, rerun it, check."""
    out = work / "killed"
    argv = [sys.executable, "-m", "deepprior", "batch", "denoise", str(inputs), "-o", str(out),
            "--quality", args.quality, "--steps", str(args.steps), "--seed", "0", "-q"]  # fmt: skip
    process = subprocess.Popen(argv)
    done: list[str] = []
    while process.poll() is None:
        time.sleep(0.2)
        if (out / "manifest.sqlite").is_file():
            done = [name for name, state in states(out).items() if state == "done"]
            if len(done) >= count // 2:
                process.send_signal(signal.SIGKILL)
                break
    process.wait()
    before = {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")}
    print(f"killed with {len(done)} done, {len(before)} results written", flush=True)
    rerun = subprocess.run(argv, capture_output=True, text=True)
    after = {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")}
    untouched = sum(after.get(name) == mtime for name, mtime in before.items())
    final = states(out)
    summary_rows = (out / "summary.csv").read_text().strip().splitlines()[1:]
    return {
        "killed_after_done": len(done),
        "results_before_rerun": len(before),
        "rerun_exit": rerun.returncode,
        "rerun_stderr_tail": rerun.stderr.strip().splitlines()[-1:],
        "results_after_rerun": len(after),
        "done_untouched": untouched,
        "all_done": set(final.values()) == {"done"} and len(final) == count,
        "summary_rows": len(summary_rows),
        "temporary_files_left": len(list(out.glob(".*"))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--quality", default="default")
    parser.add_argument("--steps", type=steps_value, default="auto")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--kill-demo", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    info = provenance("cpu")
    settings = {"images": args.images, "crop": args.crop, "quality": args.quality,
                "steps": args.steps, "sigma": 25,
                "cores": os.cpu_count()}  # fmt: skip
    print_header(info, settings)
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        inputs = work / "inputs"
        inputs.mkdir()
        make_inputs(args.folder, args.images, args.crop, inputs)
        if args.kill_demo:
            result = kill_demo(args, inputs, work, args.images)
            print_table(list(result), [list(result.values())])
            save_json(args.json, info, settings, [result])
            return
        results = throughput(args, inputs, work)
    columns = ["mode", "images", "failed", "seconds", "images_per_minute", "seconds_per_image_fit"]
    print_table(columns, [[r[c] for c in columns] for r in results])
    save_json(args.json, info, settings, results)


if __name__ == "__main__":
    main()
