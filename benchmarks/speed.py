"""Seconds per step of the fitting loop against what this device can do.

    python benchmarks/speed.py --sizes 128 256 512 --engines reference fast fast-bf16
    python benchmarks/speed.py --presets narrow --sizes 64 128 256 512 --engines fast fast-bf16

For each preset network, size and engine: the median seconds per step after warm-up, the
FLOPs of one step (forward + backward, counted with torch.utils.flop_counter), the achieved
GFLOP/s, the attainable GFLOP/s (a 3×3, 128-channel convolution measured here in the same
precision and layout), the ratio measured / floor (floor = FLOPs / attainable) and the peak
memory of the fit. Each configuration runs in a fresh process, so memory peaks are its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_header, print_table, provenance, save_json

from deepprior.callbacks import ExponentialAverage
from deepprior.data_terms import MSE
from deepprior.engine import ENGINES as USER_ENGINES
from deepprior.engine import FAST, REFERENCE, Engine, autocast, memory_format
from deepprior.fitting import Backtracking, Callback, FitState, fit
from deepprior.nets import build_net
from deepprior.presets import DENOISE_PRESETS, Preset
from deepprior.quality import get_quality

# The engines a user can pick (deepprior.engine.ENGINES), plus variants measured against them.
ENGINES: dict[str, Engine] = {
    **USER_ENGINES,
    "fast-bf16": FAST.with_precision("bf16"),
    "compiled": replace(FAST, name="compiled", compile=True),
    "compiled-bf16": replace(FAST, name="compiled", compile=True, precision="bf16"),
    "nchw-bf16": replace(REFERENCE, name="nchw-bf16", precision="bf16"),
    "fast-fp32-strict": replace(FAST, name="fast-fp32-strict"),
}
# Engines measured with TensorFloat-32 off: IEEE fp32 convolutions on CUDA, where PyTorch's
# default (and so the "fast" engine's) lets cuDNN use TF32. On a CPU both are plain fp32.
STRICT_FP32 = frozenset({"fast-fp32-strict"})


class StepTimer(Callback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_step(self, state: FitState) -> None:
        self.stamps.append(time.perf_counter())


class EveryStepMetrics(Callback):
    """What the authors' loop did each step: read the loss and a PSNR back to the host."""

    def __init__(self, y: torch.Tensor):
        self.y = y

    def on_step(self, state: FitState) -> None:
        float(state.loss)
        float(torch.mean((state.output - self.y) ** 2))


def current_rss_kib() -> int:
    """Resident memory now (ru_maxrss is the peak, in KiB on Linux)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() // 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def attainable_gflops(engine: Engine, device: torch.device, size: int = 256) -> float:
    """GFLOP/s of a 3×3, 128→128 convolution at size², forward, in the engine's precision."""
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(device)
    conv.to(memory_format=memory_format(engine))  # type: ignore[call-overload]
    x = torch.rand(1, 128, size, size, device=device).contiguous(
        memory_format=memory_format(engine)
    )
    flops = 2 * 128 * 128 * 9 * size * size
    times = []
    with torch.no_grad(), autocast(engine, device):
        for i in range(13):
            start = time.perf_counter()
            conv(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 3:
                times.append(time.perf_counter() - start)
    return flops / statistics.median(times) / 1e9


# Besides the denoising presets: "narrow", the authors' network at the quality levels' width
# (32 channels where they have 128), which every level but paper runs.
PRESETS = (*DENOISE_PRESETS, "narrow")


def network_preset(name: str) -> Preset:
    """A denoising preset by name, or "narrow" (see PRESETS)."""
    if name == "narrow":
        return get_quality("denoise", "default").preset(DENOISE_PRESETS["authors"])
    return DENOISE_PRESETS[name]


def step_flops(preset_name: str, size: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    preset = network_preset(preset_name)
    net = build_net(preset.net, preset.code_channels, 3, **preset.net_options)
    z = torch.rand(1, preset.code_channels, size, size)
    with FlopCounterMode(display=False) as counter:
        net(z).mean().backward()
    return int(counter.get_total_flops())


def measure_one(
    preset_name: str, size: int, engine_name: str, steps: int, warmup: int, device_name: str
) -> dict[str, Any]:
    device = torch.device(device_name)
    engine = ENGINES[engine_name]
    if engine_name in STRICT_FP32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    preset = network_preset(preset_name)
    torch.manual_seed(0)
    net = build_net(preset.net, preset.code_channels, 3, **preset.net_options).to(device)
    z = (torch.rand(1, preset.code_channels, size, size) * 0.1).to(device)
    y = torch.rand(1, 3, size, size, device=device)
    timer = StepTimer()
    callbacks: list[Callback] = [ExponentialAverage(0.99)]
    if engine.name == "reference":
        callbacks.append(EveryStepMetrics(y))
    callbacks.append(timer)
    base_rss = current_rss_kib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    fit(
        net,
        z,
        MSE(y),
        steps=warmup + steps,
        lr=0.01,
        input_noise=1 / 30,
        backtracking=Backtracking(),
        callbacks=callbacks,
        engine=engine,
    )
    total = time.perf_counter() - started
    gaps = [b - a for a, b in zip(timer.stamps, timer.stamps[1:], strict=False)][warmup - 1 :]
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 2**20
    return {
        "seconds_per_step": statistics.median(gaps),
        "seconds_total": total,
        "peak_memory_gib": peak,
        "attainable_gflops": attainable_gflops(engine, device),
        "tf32": device.type == "cuda" and torch.backends.cudnn.allow_tf32,
    }


def run_one(command: list[str], timeout: float | None) -> dict[str, Any]:
    """One configuration in a fresh process: its figures, or why it gave none."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"failed": f"over {timeout:g} s"}
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        return {"failed": lines[-1][:120]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["authors"], choices=PRESETS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument(
        "--engines", nargs="+", default=["reference", "fast", "fast-bf16"], choices=sorted(ENGINES)
    )
    parser.add_argument("--steps", type=int, default=8, help="timed steps after warm-up")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--timeout-each",
        type=float,
        default=None,
        help="seconds one configuration may take; one that fails or runs over is a row saying so",
    )
    parser.add_argument(
        "--one", nargs=3, metavar=("PRESET", "SIZE", "ENGINE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()

    if args.one:
        preset, size, engine = args.one
        print(
            json.dumps(measure_one(preset, int(size), engine, args.steps, args.warmup, args.device))
        )
        return

    info = provenance(args.device)
    settings = {
        "presets": args.presets,
        "sizes": args.sizes,
        "engines": args.engines,
        "timed_steps": args.steps,
        "warmup": args.warmup,
    }
    print_header(info, settings)
    rows, results = [], []
    for preset in args.presets:
        for size in args.sizes:
            flops = step_flops(preset, size)
            reference_time = None
            for engine in args.engines:
                command = [
                    sys.executable,
                    __file__,
                    "--one",
                    preset,
                    str(size),
                    engine,
                    "--steps",
                    str(args.steps),
                    "--warmup",
                    str(args.warmup),
                    "--device",
                    args.device,
                ]
                m = run_one(command, args.timeout_each)
                if "failed" in m:
                    results.append({"preset": preset, "size": size, "engine": engine, **m})
                    rows.append([preset, size, engine, m["failed"], *[""] * 6])
                    print(f"failed {preset} {size} {engine}: {m['failed']}", flush=True)
                    continue
                achieved = flops / m["seconds_per_step"] / 1e9
                floor = flops / (m["attainable_gflops"] * 1e9)
                if engine == "reference":
                    reference_time = m["seconds_per_step"]
                speedup = reference_time / m["seconds_per_step"] if reference_time else None
                entry = {
                    "preset": preset,
                    "size": size,
                    "engine": engine,
                    "engine_settings": ENGINES[engine].to_dict(),
                    "step_gflop": flops / 1e9,
                    "achieved_gflops": achieved,
                    "floor_seconds": floor,
                    "ratio_to_floor": m["seconds_per_step"] / floor,
                    "speedup_vs_reference": speedup,
                    **m,
                }
                results.append(entry)
                rows.append(
                    [
                        preset,
                        size,
                        engine,
                        m["seconds_per_step"],
                        flops / 1e9,
                        achieved,
                        m["attainable_gflops"],
                        m["seconds_per_step"] / floor,
                        f"{speedup:.2f}x" if speedup else "n/a",
                        m["peak_memory_gib"],
                    ]
                )
                print(
                    f"done {preset} {size} {engine}: {m['seconds_per_step']:.3f} s/step", flush=True
                )
    print_table(
        [
            "preset",
            "size",
            "engine",
            "s/step",
            "GFLOP/step",
            "GFLOP/s",
            "attainable",
            "x floor",
            "vs ref",
            "peak GiB",
        ],
        rows,
    )
    save_json(args.json, info, settings, results)


if __name__ == "__main__":
    main()
