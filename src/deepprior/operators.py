"""Degradation operators A (the "physics"): differentiable, linear ones carry an adjoint.

Every operator is an :class:`Operator` (an ``nn.Module`` whose ``forward`` applies A);
``A @ B`` composes them (B first, then A), and any differentiable callable becomes one with
:func:`as_operator`. :data:`OPERATORS` names every operator class, so that tests can check
each linear one against its adjoint.
"""

from __future__ import annotations

import math
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

    def source_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """The (C, H, W) of an image this operator maps to an observation of ``shape``.

        The restored image's shape is found this way from the input's; the default keeps the
        shape (blur, mask, identity), operators that change it say how.
        """
        return shape

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

    def source_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        for part in reversed(self.parts):
            assert isinstance(part, Operator)
            shape = part.source_shape(shape)
        return shape


ShapeRule = Callable[[tuple[int, int, int]], tuple[int, int, int]]


class FromFunction(Operator):
    """Any differentiable function of the image as an operator (``linear`` when you say so).

    ``source_shape`` maps an observation's (C, H, W) to the image's when the function
    changes the shape (the default: it keeps it).
    """

    shape_rule: ShapeRule | None

    def __init__(
        self,
        function: Callable[[Tensor], Tensor],
        *,
        linear: bool = False,
        source_shape: ShapeRule | None = None,
    ):
        super().__init__()
        self.function = function
        self.linear = linear
        self.shape_rule = source_shape

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)

    def source_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return shape if self.shape_rule is None else self.shape_rule(shape)


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

    def source_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        c, h, w = shape
        return c, h * self.factor, w * self.factor


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


class Blur(LinearOperator):
    """Convolve every channel with a kernel (its weights sum to 1); the image keeps its size.

    The borders are replicate-padded, as a camera sees the scene go on past the frame. An
    even side of the kernel gets a zero row or column so that it has a centre.

    Shape:
        kernel (kh, kw); x (N, C, H, W) -> (N, C, H, W)
    """

    def __init__(self, kernel: np.ndarray | Tensor):
        super().__init__()
        taps = torch.as_tensor(np.asarray(kernel, dtype=np.float64)).float()
        if taps.ndim != 2 or not torch.isfinite(taps).all() or (taps < 0).any():
            raise ValueError("a blur kernel is a 2-D array of non-negative, finite weights")
        if float(taps.sum()) <= 0:
            raise ValueError("a blur kernel needs some weight; this one is all zeros")
        taps = F.pad(taps, (0, 1 - taps.shape[1] % 2, 0, 1 - taps.shape[0] % 2))
        # conv2d correlates: flipping the kernel makes it the convolution deconvolvers assume.
        taps = (taps / taps.sum()).flip(0, 1)
        self.register_buffer("taps", taps, persistent=False)

    @property
    def size(self) -> tuple[int, int]:
        """The kernel's (height, width), odd."""
        return self.get_buffer("taps").shape[0], self.get_buffer("taps").shape[1]

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        taps: Tensor = self.get_buffer("taps").to(x)
        kh, kw = taps.shape
        planes = F.pad(x.reshape(n * c, 1, h, w), (kw // 2, kw // 2, kh // 2, kh // 2), "replicate")
        return F.conv2d(planes, taps[None, None]).reshape(n, c, h, w)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """A Gaussian blur kernel of standard deviation ``sigma`` pixels, 2·⌈3σ⌉ + 1 taps a side."""
    radius = max(1, math.ceil(3 * sigma))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    line = np.exp(-0.5 * (t / sigma) ** 2)
    kernel = np.outer(line, line)
    return kernel / kernel.sum()


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A straight camera shake: a line ``length`` pixels long at ``angle`` degrees
    (counter-clockwise from the horizontal), drawn with bilinear weights."""
    radius = max(1, math.ceil(length / 2))
    kernel = np.zeros((2 * radius + 1, 2 * radius + 1))
    theta = math.radians(angle)
    for t in np.linspace(-length / 2, length / 2, max(2, 4 * math.ceil(length))):
        x, y = radius + t * math.cos(theta), radius - t * math.sin(theta)
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        for dy, dx, weight in (
            (0, 0, (1 - fx) * (1 - fy)),
            (0, 1, fx * (1 - fy)),
            (1, 0, (1 - fx) * fy),
            (1, 1, fx * fy),
        ):
            if 0 <= y0 + dy < kernel.shape[0] and 0 <= x0 + dx < kernel.shape[1]:
                kernel[y0 + dy, x0 + dx] += weight
    return kernel / kernel.sum()


LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601


class Gray(LinearOperator):
    """Colour to gray (colourisation): the BT.601 luma of an RGB image.

    Shape:
        (N, 3, H, W) -> (N, 1, H, W)
    """

    def forward(self, x: Tensor) -> Tensor:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device)
        return (x * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)

    def source_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return 3, shape[1], shape[2]


BAYER_PATTERNS = ("rggb", "bggr", "grbg", "gbrg")


class Bayer(LinearOperator):
    """A colour filter array (demosaicking): each pixel keeps one of R, G, B, in a 2×2
    pattern read row by row (``rggb``: R G on even rows, G B on odd ones).

    Shape:
        (N, 3, H, W) -> (N, 1, H, W)
    """

    def __init__(self, pattern: str = "rggb"):
        super().__init__()
        if pattern not in BAYER_PATTERNS:
            raise ValueError(
                f"unknown Bayer pattern {pattern!r}; use one of {', '.join(BAYER_PATTERNS)}"
            )
        self.pattern = pattern
        cells = torch.zeros(3, 2, 2)
        for index, colour in enumerate(pattern):
            cells["rgb".index(colour), index // 2, index % 2] = 1
        self.register_buffer("cells", cells, persistent=False)

    def filter_array(self, height: int, width: int) -> Tensor:
        """(1, 3, H, W): 1 where a pixel records that colour."""
        cells: Tensor = self.get_buffer("cells")
        tiled = cells.repeat(1, (height + 1) // 2, (width + 1) // 2)
        return tiled[None, :, :height, :width]

    def forward(self, x: Tensor) -> Tensor:
        return (x * self.filter_array(*x.shape[-2:]).to(x)).sum(1, keepdim=True)

    def source_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return 3, shape[1], shape[2]


OPERATORS: dict[str, type[Operator]] = {
    "identity": Identity,
    "downsample": Downsample,
    "mask": Mask,
    "blur": Blur,
    "gray": Gray,
    "bayer": Bayer,
    "compose": Compose,
    "function": FromFunction,
}
