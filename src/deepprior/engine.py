"""How a fit runs on the hardware: precision, memory layout, compilation, checkpointing.

None of these change what is computed beyond rounding; each is kept only where it pays
(see ``benchmarks/speed.py``). ``REFERENCE`` is the straightforward implementation (eager,
fp32, contiguous NCHW), kept so that every speed-up is measured against it side by side.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
from torch import Tensor, nn

Precision = Literal["fp32", "bf16"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Engine:
    """Execution choices for :func:`deepprior.fitting.fit`."""

    name: str = "fast"
    precision: Precision = "fp32"
    channels_last: bool = True
    compile: bool = False
    checkpointing: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_precision(self, precision: Precision) -> Engine:
        return replace(self, precision=precision)


FAST = Engine()
REFERENCE = Engine(name="reference", channels_last=False)
ENGINES: dict[str, Engine] = {"fast": FAST, "reference": REFERENCE}
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16() -> bool:
    """True where the CPU multiplies bfloat16 natively (AVX-512-BF16 or AMX)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if "AMX" in capability.upper():
        return True
    try:
        with open("/proc/cpuinfo") as info:
            flags = info.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_bf16()
    return False


def autocast(engine: Engine, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast for ``bf16``; nothing for fp32."""
    if engine.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(engine: Engine) -> torch.memory_format:
    return torch.channels_last if engine.channels_last else torch.contiguous_format


def prepare(net: nn.Module, z: Tensor, engine: Engine) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """Put the net and the code in the engine's layout; return the callable to run and z."""
    fmt = memory_format(engine)
    net.to(memory_format=fmt)  # type: ignore[call-overload]
    z = z.contiguous(memory_format=fmt)
    set_checkpointing = getattr(net, "set_checkpointing", None)
    if callable(set_checkpointing):
        set_checkpointing(engine.checkpointing)
    forward: Callable[[Tensor], Tensor] = net
    if engine.compile:
        forward = _compiled_or_eager(net, z, engine)
    return forward, z


def _compiled_or_eager(net: nn.Module, z: Tensor, engine: Engine) -> Callable[[Tensor], Tensor]:
    """torch.compile the net if a trial forward and backward succeed, else keep it eager."""
    try:
        compiled = torch.compile(net)
        with _preserved(net), autocast(engine, z.device):
            compiled(z).float().mean().backward()
        net.zero_grad(set_to_none=True)
        return compiled
    except Exception as error:  # no compiler, unsupported op: run eagerly
        log.warning("torch.compile is unavailable here (%s); running eagerly", error)
        net.zero_grad(set_to_none=True)
        return net


@contextlib.contextmanager
def _preserved(net: nn.Module) -> Iterator[None]:
    """Restore BatchNorm buffers after a trial pass, so that it leaves no trace."""
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    try:
        yield
    finally:
        net.load_state_dict(saved)


def activation_bytes(net: nn.Module, z: Tensor, engine: Engine) -> tuple[int, int]:
    """Bytes kept for the backward pass of one step, without and with checkpointing.

    Counted exactly on ``z`` (a small probe) with saved-tensor hooks; both figures scale
    with the number of pixels. The checkpointed figure keeps each recomputed block's input
    plus, transiently, the largest block's own activations.
    """
    blocks: list[nn.Module] = getattr(net, "checkpoint_blocks", list)()
    stack: list[nn.Module | None] = [None]
    kept: dict[nn.Module | None, int] = {}
    inputs: dict[int, int] = {}
    seen: set[int] = set()

    def enter(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        storage = args[0].untyped_storage()
        inputs[storage.data_ptr()] = storage.nbytes()
        stack.append(module)

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        stack.pop()

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            kept[stack[-1]] = kept.get(stack[-1], 0) + storage.nbytes()
        return tensor

    handles = [b.register_forward_pre_hook(enter) for b in blocks]
    handles += [b.register_forward_hook(leave) for b in blocks]
    try:
        with _preserved(net), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fmt = memory_format(engine)
            with autocast(engine, z.device):
                net(z.contiguous(memory_format=fmt)).float().mean().backward()
    finally:
        for handle in handles:
            handle.remove()
        net.zero_grad(set_to_none=True)
    full = sum(kept.values())
    in_blocks = [kept.get(b, 0) for b in blocks]
    checkpointed = full - sum(in_blocks) + sum(inputs.values()) + max(in_blocks, default=0)
    return full, checkpointed


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a fit on ``device``, or None where it cannot be told."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as info:
                for line in info:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


# Keeping freed memory raised a 1024×768 fit's peak by 0.9 GiB over its 1.3 GiB estimate (the
# heap fragments); three times the estimate leaves room for that and for what the run holds.
KEEP_ROOM = 3.0


@dataclass(frozen=True)
class MemoryPlan:
    engine: Engine
    estimate_bytes: int
    available_bytes: int | None

    @property
    def roomy(self) -> bool:
        """Whether :data:`KEEP_ROOM` times the estimate is free: room for the heap to keep
        freed memory for reuse (:mod:`deepprior.allocator`)."""
        available = self.available_bytes
        return available is not None and KEEP_ROOM * self.estimate_bytes <= available

    def to_dict(self) -> dict[str, Any]:
        gib = 2**30
        return {
            "estimate_gib": round(self.estimate_bytes / gib, 2),
            "available_gib": round(self.available_bytes / gib, 2) if self.available_bytes else None,
            "checkpointing": self.engine.checkpointing,
        }


def plan_memory(
    net: nn.Module,
    in_channels: int,
    size: tuple[int, int],
    engine: Engine,
    device: torch.device,
    *,
    probe: int = 64,
    headroom: float = 0.8,
) -> MemoryPlan:
    """Choose checkpointing when a fit at ``size`` would not fit in free memory without it.

    Raises MemoryError when it would not fit either way.
    """
    multiple = int(getattr(net, "size_multiple", 1))
    smallest = int(getattr(net, "min_side", 2 * multiple))
    side = max(probe, math.ceil(smallest / multiple) * multiple)
    z = torch.rand(1, in_channels, side, side, device=device)
    full, checkpointed = activation_bytes(net, z, engine)
    scale = size[0] * size[1] / side**2
    fixed = 8 * sum(p.numel() * p.element_size() for p in net.parameters())
    fixed += 6 * in_channels * size[0] * size[1] * 4  # code, jitter, outputs, averages
    # The counted bytes over-estimate the measured peak by about 10 % (1024² bf16: 4.83 GiB
    # counted, 4.35 measured; checkpointed 3.56 and 3.15), so they are used as they are.
    estimate = int(full * scale) + fixed
    available = available_memory(device)
    if available is None or estimate <= headroom * available:
        return MemoryPlan(engine, estimate, available)
    can_checkpoint = hasattr(net, "set_checkpointing")
    estimate_ckpt = int(checkpointed * scale) + fixed
    if can_checkpoint and estimate_ckpt <= headroom * available:
        return MemoryPlan(replace(engine, checkpointing=True), estimate_ckpt, available)
    raise MemoryError(
        f"needs about {min(estimate, estimate_ckpt) / 2**30:.1f} GiB but "
        f"{available / 2**30:.1f} GiB are free"
    )


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; asking for a missing one is an error."""
    from .errors import UserError

    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if name == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if available[d]))
    if name not in available:
        raise UserError(f"unknown device {name!r}; use {', '.join(DEVICES)}")
    if not available[name]:
        missing = {"cuda": "no CUDA GPU is", "mps": "Apple's MPS is not"}[name]
        raise UserError(
            f"device {name!r} was asked for but {missing} available; use device 'cpu' or 'auto'"
        )
    return torch.device(name)


def resolve_engine(engine: str | Engine, precision: str, device: torch.device) -> Engine:
    """The engine by name, in the precision asked for; ``auto`` is bf16 where it is native.

    bf16 is chosen automatically only on CPUs with native bfloat16 arithmetic, where
    ``benchmarks/denoise.py --precision`` showed it within 0.1 dB of fp32; elsewhere fp32.
    """
    from .errors import UserError

    if isinstance(engine, Engine):
        chosen = engine
    elif engine in ENGINES:
        chosen = ENGINES[engine]
    else:
        raise UserError(f"unknown engine {engine!r}; use {' or '.join(ENGINES)}")
    if precision == "auto":
        native = device.type == "cpu" and bf16_supported(device)
        return chosen.with_precision("bf16" if native else "fp32")
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if precision == "bf16" and not bf16_supported(device):
        raise UserError(
            f"precision 'bf16' needs bfloat16 hardware, which this {device.type} "
            "lacks; use precision 'fp32' or 'auto'"
        )
    return chosen.with_precision(precision)  # type: ignore[arg-type]
