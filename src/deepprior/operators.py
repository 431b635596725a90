"""Degradation operators A (the "physics"): differentiable, linear ones carry an adjoint.

Every operator is an :class:`Operator` (an ``nn.Module`` whose ``forward`` applies A);
``A @ B`` composes them (B first, then A), and any differentiable callable becomes one with
:func:`as_operator`. :data:`OPERATORS` names every operator class, so that tests can check
each linear one against its adjoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

Kernel = Literal["lanczos2", "lanczos3", "box", "gauss", "bicubic"]
KERNELS: tuple[str, ...] = ("lanczos2", "lanczos3", "box", "gauss", "bicubic")


class Operator(nn.Module):
    """A degradation y = A(x), differentiable in x; ``linear`` says whether A has an adjoint.

    Shape:
        x (N, C, H, W) -> y, whatever shape the degradation gives.
    """

    linear = False

    def __matmul__(self, other: Operator) -> Compose:
        """``A @ B`` applies B, then A."""
        return Compose(other, self)

    def adjoint(self, y: Tensor, input_shape: tuple[int, ...]) -> Tensor:
        """Aᵀy, computed exactly by autograd (a vector–Jacobian product of a linear map is its
        transpose applied to the vector); only linear operators have one."""
        if not self.linear:
            raise TypeError(f"{type(self).__name__} is not linear and has no adjoint")
        x = torch.zeros(input_shape, dtype=y.dtype, device=y.device, requires_grad=True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self(x), x, grad_outputs=y)
        return grad


class LinearOperator(Operator):
    """A linear degradation."""

    linear = True


class Compose(Operator):
    """Operators applied in the order given: ``Compose(blur, downsample)(x)`` blurs first."""

    def __init__(self, *operators: Operator):
        super().__init__()
        flat: list[Operator] = []
        for operator in operators:
            flat += [*operator.parts] if isinstance(operator, Compose) else [operator]
        self.parts: nn.ModuleList = nn.ModuleList(flat)
        self.linear = all(part.linear for part in flat)

    def forward(self, x: Tensor) -> Tensor:
        for part in self.parts:
            x = part(x)
        return x


class FromFunction(Operator):
    """Any differentiable function of the image as an operator (``linear`` when you say so)."""

    def __init__(self, function: Callable[[Tensor], Tensor], *, linear: bool = False):
        super().__init__()
        self.function = function
        self.linear = linear

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)


def as_operator(operator: Operator | nn.Module | Callable[[Tensor], Tensor]) -> Operator:
    """An :class:`Operator` as it is; an ``nn.Module`` or a function wrapped as one."""
    return operator if isinstance(operator, Operator) else FromFunction(operator)


class Identity(LinearOperator):
    """A = I: denoising and blind restoration."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def _lanczos(t: np.ndarray, support: int) -> np.ndarray:
    return np.where(np.abs(t) < support, np.sinc(t) * np.sinc(t / support), 0.0)


def _bicubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def kernel_1d(factor: int, kind: str) -> np.ndarray:
    """The 1-D taps of a downsampling kernel for ``factor``, centred on a low-res pixel's centre.

    That centre falls between high-res pixels for even factors (the authors' "phase 0.5") and
    on one for odd factors, so the number of taps has the factor's parity. ``lanczos2``
    reproduces the authors' SR kernel (a = 2, 4·factor taps); ``lanczos3`` and ``bicubic``
    (a = −0.5) are the windows Pillow uses, stretched by the factor to antialias; ``box``
    averages factor×factor blocks; ``gauss`` has σ = factor / 2.
    """
    if kind == "box":
        return np.full(factor, 1.0 / factor)
    support = {"lanczos2": 2, "lanczos3": 3, "bicubic": 2, "gauss": 2}[kind]
    taps = 2 * support * factor + factor % 2
    offsets = (np.arange(taps) - (taps - 1) / 2) / factor  # distances in low-res pixels
    if kind.startswith("lanczos"):
        weights = _lanczos(offsets, support)
    elif kind == "bicubic":
        weights = _bicubic(offsets)
    else:
        weights = np.exp(-0.5 * (offsets / 0.5) ** 2)
    return weights / weights.sum()


class Downsample(LinearOperator):
    """Blur with a separable kernel, then keep every ``factor``-th pixel.

    Replicate padding makes the output exactly (H / factor) × (W / factor) for H and W
    multiples of the factor, as in the authors' ``Downsampler(preserve_size=True)``.

    Shape:
        (N, C, H, W) -> (N, C, H // factor, W // factor)
    """

    def __init__(self, factor: int, kernel: str = "lanczos2"):
        super().__init__()
        if factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor}")
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
        self.factor = factor
        self.kernel_name = kernel
        taps = torch.from_numpy(kernel_1d(factor, kernel)).float()
        self.register_buffer("taps", taps, persistent=False)
        side = (len(taps) - factor) // 2  # output size = input size / factor
        self.pad = (side, side)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        taps: Tensor = self.get_buffer("taps").to(x)
        planes = x.reshape(n * c, 1, h, w)
        planes = F.pad(planes, (*self.pad, *self.pad), mode="replicate")
        planes = F.conv2d(planes, taps.view(1, 1, 1, -1), stride=(1, self.factor))
        planes = F.conv2d(planes, taps.view(1, 1, -1, 1), stride=(self.factor, 1))
        return planes.reshape(n, c, planes.shape[-2], planes.shape[-1])


class Mask(LinearOperator):
    """Keep the known pixels: A(x) = x ⊙ m, with m = 1 where a pixel is known (inpainting).

    Shape:
        mask (1, 1, H, W) or (1, C, H, W); x (N, C, H, W) -> (N, C, H, W)
    """

    def __init__(self, mask: Tensor):
        super().__init__()
        self.register_buffer("mask", mask.float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        mask: Tensor = self.get_buffer("mask")
        return x * mask.to(x)


OPERATORS: dict[str, type[Operator]] = {
    "identity": Identity,
    "downsample": Downsample,
    "mask": Mask,
    "compose": Compose,
    "function": FromFunction,
}
