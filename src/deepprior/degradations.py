"""Degradations written down as text: ``blur:gaussian:2+downsample:2`` -> an operator.

Steps are joined with ``+`` in the order they happen to the image. :data:`GRAMMAR` is the
whole language; every mistake in a spec is a :class:`UserError` that repeats it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .canvas import to_numpy, to_tensor
from .errors import UserError
from .operators import (
    BAYER_PATTERNS,
    KERNELS,
    Bayer,
    Blur,
    Compose,
    Downsample,
    Gray,
    Mask,
    Operator,
    gaussian_kernel,
    motion_kernel,
)

GRAMMAR = (
    "STEP[+STEP...], in the order applied; a STEP is blur:gaussian:SIGMA, "
    "blur:motion:LENGTH,ANGLE, blur:KERNEL.png, downsample:FACTOR[:KERNEL], "
    f"bayer:{'|'.join(BAYER_PATTERNS)}, gray, or mask:MASK.png (white = known)"
)
MAX_KERNEL_SIDE = 255


def _number(text: str, what: str, spec: str, *, low: float = 0, high: float = np.inf) -> float:
    """A finite number in (low, high]; anything else is one line naming the spec."""
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"degradation {spec!r}: {what} {text!r} is not a number") from None
    if not np.isfinite(value) or not low < value <= high:
        bound = f"in ({low:g}, {high:g}]" if np.isfinite(high) else f"above {low:g}"
        raise UserError(f"degradation {spec!r}: {what} must be {bound}, got {text}")
    return value


def kernel_from_file(path: Path) -> np.ndarray:
    """A blur kernel drawn as an image: brighter = more weight; colour is averaged."""
    from .io import read_image

    picture = read_image(path, min_side=1)
    kernel = picture.pixels.mean(axis=2)
    if max(kernel.shape) > MAX_KERNEL_SIDE:
        raise UserError(
            f"{path}: a {kernel.shape[1]}×{kernel.shape[0]} kernel is too large; "
            f"a blur kernel is at most {MAX_KERNEL_SIDE} px a side"
        )
    if kernel.sum() <= 0:
        raise UserError(f"{path}: the kernel is all black; draw the blur's path in white")
    return kernel


def _step(step: str, spec: str) -> Operator:
    name, _, rest = step.partition(":")
    if name == "blur":
        kind, _, value = rest.partition(":")
        if kind == "gaussian" and value:
            # 2·⌈3σ⌉ + 1 taps a side at most MAX_KERNEL_SIDE
            sigma = _number(value, "sigma", spec, high=(MAX_KERNEL_SIDE - 1) // 6)
            return Blur(gaussian_kernel(sigma))
        if kind == "motion" and "," in value:
            length, _, angle = value.partition(",")
            degrees = _number(angle, "angle", spec, low=-360, high=360)
            return Blur(
                motion_kernel(_number(length, "length", spec, high=MAX_KERNEL_SIDE - 1), degrees)
            )
        if kind not in ("gaussian", "motion") and rest:
            return Blur(kernel_from_file(Path(rest)))
    elif name == "downsample" and rest:
        factor_text, _, kernel = rest.partition(":")
        if not factor_text.isdigit() or int(factor_text) < 1:
            raise UserError(f"degradation {spec!r}: the factor must be a whole number ≥ 1")
        if kernel and kernel not in KERNELS:
            raise UserError(f"degradation {spec!r}: kernel is one of {', '.join(KERNELS)}")
        return Downsample(int(factor_text), kernel or "lanczos2")
    elif name == "bayer" and rest:
        if rest not in BAYER_PATTERNS:
            raise UserError(
                f"degradation {spec!r}: unknown Bayer pattern {rest!r}; "
                f"use one of {', '.join(BAYER_PATTERNS)}"
            )
        return Bayer(rest)
    elif name == "gray" and not rest:
        return Gray()
    elif name == "mask" and rest:
        from .io import read_image
        from .masks import from_mask_image

        known = from_mask_image(read_image(Path(rest)).pixels)
        return Mask(torch.from_numpy(known.astype(np.float32))[None, None])
    raise UserError(f"degradation {spec!r}: cannot read {step!r}; write {GRAMMAR}")


def parse(spec: str) -> Operator:
    """The operator a spec describes; a single step is returned as it is, several composed."""
    steps = [step.strip() for step in spec.split("+")]
    if not spec.strip() or not all(steps):
        raise UserError(f"degradation {spec!r} has an empty step; write {GRAMMAR}")
    operators = [_step(step, spec) for step in steps]
    return operators[0] if len(operators) == 1 else Compose(*operators)


def with_absolute_paths(spec: str) -> str:
    """The spec with its kernel and mask files made absolute, so that a replay finds them."""
    steps = []
    for step in spec.split("+"):
        name, _, rest = step.strip().partition(":")
        kind = rest.partition(":")[0]
        is_file = (name == "blur" and rest and kind not in ("gaussian", "motion")) or (
            name == "mask" and rest
        )
        steps.append(f"{name}:{Path(rest).absolute()}" if is_file else step.strip())
    return "+".join(steps)


def check_fits(operator: Operator, observed: tuple[int, int, int], spec: str) -> None:
    """Refuse a degradation that cannot have produced an observation of (C, H, W)."""
    from .io import MAX_PIXELS

    source = operator.source_shape(observed)
    if source[1] * source[2] > MAX_PIXELS:
        raise UserError(
            f"degradation {spec!r}: the result would be {source[2]}×{source[1]}, over the "
            f"{MAX_PIXELS // 10**6} MP limit; use a smaller image or factor"
        )
    for part in operator.parts if isinstance(operator, Compose) else [operator]:
        if isinstance(part, Blur) and (part.size[0] > source[1] or part.size[1] > source[2]):
            kh, kw = part.size
            raise UserError(
                f"degradation {spec!r}: the blur kernel is {kw}×{kh}, larger than the "
                f"{source[2]}×{source[1]} image; give a smaller kernel"
            )
    try:
        with torch.no_grad():
            shape = tuple(operator(torch.zeros(1, *source)).shape[1:])
    except RuntimeError as error:
        shape = (-1, -1, -1)
        detail = str(error).splitlines()[0]
    else:
        detail = ""
    if shape != observed:
        c, h, w = observed
        raise UserError(
            f"degradation {spec!r} does not fit a {w}×{h} image with {c} channel(s)"
            + (f" ({detail})" if detail else "")
            + "; bayer and gray take a one-channel image, mask:FILE one of the image's size"
        )


def apply(operator: Operator, pixels: np.ndarray) -> np.ndarray:
    """A degradation applied to an H×W×C image in [0, 1] (to simulate one): H'×W'×C'."""
    with torch.no_grad():
        return to_numpy(operator(to_tensor(np.asarray(pixels, np.float32))))
