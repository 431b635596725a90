"""Would batching ``--runs K`` on one device pay? K fits stepped one after another against the
same K fits stacked into one batched network (torch.func: stacked weights, vmap).

    python benchmarks/batching.py --sizes 64 128 256 --members 2 --precision bf16

Stacking turns every convolution into a grouped one over the K members. Both compute the same
fits: the first step's outputs and gradients are compared (in fp32; bf16 differs by its own
rounding). Stacking pays where one fit leaves the device idle (small images on a large GPU)
and costs where one fit already keeps it busy. ``--runs`` steps its fits one after another;
run this on a new device before changing that.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_header, print_table, provenance, save_json

from deepprior.engine import FAST, Engine, autocast, resolve_device
from deepprior.nets import build_net, min_side


def members(k: int, device: torch.device) -> list[nn.Module]:
    """K of the authors' denoising nets, seeded 0 … K-1, channels-last on ``device``."""
    nets = []
    for seed in range(k):
        torch.manual_seed(seed)
        net = build_net("skip", 32, 3).to(device)
        nets.append(net.to(memory_format=torch.channels_last))  # type: ignore[call-overload]
    return nets


def sequential_step(
    nets: list[nn.Module], codes: Tensor, y: Tensor, engine: Engine
) -> Callable[[], Tensor]:
    """One step of each fit in turn; returns the outputs stacked (K, C, H, W)."""

    optimizers = [torch.optim.Adam(net.parameters(), lr=0.01) for net in nets]

    def step() -> Tensor:
        outputs = []
        for net, optimizer, code in zip(nets, optimizers, codes, strict=True):
            optimizer.zero_grad(set_to_none=True)
            with autocast(engine, code.device):
                out = net(code[None]).float()
            ((out - y) ** 2).mean().backward()
            optimizer.step()
            outputs.append(out.detach()[0])
        return torch.stack(outputs)

    return step


def stacked_step(
    nets: list[nn.Module], codes: Tensor, y: Tensor, engine: Engine
) -> tuple[Callable[[], Tensor], dict[str, Tensor]]:
    """One step of all K fits at once through the stacked network, and its stacked weights."""
    params, buffers = stack_module_state(nets)
    weights = [p.detach().requires_grad_() for p in params.values()]
    params = dict(zip(params, weights, strict=True))
    optimizer = torch.optim.Adam(weights, lr=0.01)
    skeleton = copy.deepcopy(nets[0]).to("meta")

    def one(p: dict[str, Tensor], b: dict[str, Tensor], code: Tensor) -> Tensor:
        return functional_call(skeleton, (p, b), (code[None],))[0]

    batched = vmap(one)
    # Autocast does not reach through vmap (the stacked convolutions would stay fp32), so a
    # bf16 engine casts weights, BatchNorm buffers and codes to bf16 by hand.
    dtype = torch.bfloat16 if engine.precision == "bf16" else torch.float32
    buffers = {
        name: buffer.to(dtype) if buffer.is_floating_point() else buffer
        for name, buffer in buffers.items()
    }

    def step() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        cast = {name: weight.to(dtype) for name, weight in params.items()}
        out = batched(cast, buffers, codes.to(dtype)).float()
        # Each member's own mean: the same gradients as K separate fits.
        ((out - y) ** 2).mean(dim=(1, 2, 3)).sum().backward()
        optimizer.step()
        return out.detach()

    return step, params


def median_seconds(step: Callable[[], Tensor], steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(
    size: int, k: int, device: torch.device, engine: Engine, steps: int, warmup: int
) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    codes = (0.1 * torch.rand(k, 32, size, size, generator=generator)).to(device)
    codes = codes.contiguous(memory_format=torch.channels_last)
    y = torch.rand(1, 3, size, size, generator=generator).to(device)
    nets = members(k, device)
    one_by_one = sequential_step(nets, codes, y, engine)
    together, stacked_weights = stacked_step([copy.deepcopy(net) for net in nets], codes, y, engine)
    output_diff = float((one_by_one() - together()).abs().max())
    squared_diff = squared_norm = 0.0
    for name, weights in stacked_weights.items():  # all gradients as one vector
        separate = torch.stack([net.get_parameter(name).grad for net in nets])  # type: ignore[misc]
        assert weights.grad is not None
        squared_diff += float(((separate - weights.grad) ** 2).sum())
        squared_norm += float((separate**2).sum())
    sequential = median_seconds(one_by_one, steps, warmup)
    stacked = median_seconds(together, steps, warmup)
    return {
        "size": size,
        "members": k,
        "sequential_seconds": sequential,
        "stacked_seconds": stacked,
        "stacked_speedup": sequential / stacked,
        "max_output_diff": output_diff,
        "gradient_relative_diff": (squared_diff / squared_norm) ** 0.5,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--members", type=int, default=2, help="K, the fits stepped together")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    smallest = min_side(build_net("skip", 32, 3))
    if min(args.sizes) < smallest or args.members < 1:
        parser.error(f"--sizes must be at least {smallest} and --members at least 1")
    device = resolve_device(args.device)
    engine = FAST.with_precision(args.precision)
    info = provenance(str(device))
    settings = {"members": args.members, "precision": args.precision, "steps": args.steps}
    print_header(info, settings)
    results = [
        measure(s, args.members, device, engine, args.steps, args.warmup) for s in args.sizes
    ]
    print_table(
        [
            "size",
            "K",
            "one after another (s/step)",
            "stacked (s/step)",
            "speed-up",
            "output / grad diff",
        ],
        [
            [
                f"{r['size']}²",
                r["members"],
                round(r["sequential_seconds"], 3),
                round(r["stacked_seconds"], 3),
                round(r["stacked_speedup"], 2),
                f"{r['max_output_diff']:.0e} / {r['gradient_relative_diff']:.0e}",
            ]
            for r in results
        ],
    )
    save_json(args.json, info, settings, results)


if __name__ == "__main__":
    main()
