"""Inpainting masks as users have them: True (1) = known pixel, False (0) = hole to fill."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UserError


def from_mask_image(pixels: np.ndarray, *, invert: bool = False) -> np.ndarray:
    """A mask picture: white / non-zero = known, black = hole (``invert`` swaps them).

    Shape:
        (H, W, C) floats in [0, 1] -> (H, W) bool
    """
    known = pixels.max(axis=2) > 0
    return ~known if invert else known


def from_alpha(alpha: np.ndarray) -> np.ndarray:
    """Transparent pixels (alpha below one half) are holes."""
    return alpha >= 0.5


def from_colour(pixels: np.ndarray, colour: tuple[float, ...]) -> np.ndarray:
    """Pixels of exactly ``colour`` (components in [0, 1], within half a level) are holes."""
    key = np.asarray(colour, dtype=np.float32)
    if key.shape[0] != pixels.shape[2]:
        raise UserError(
            f"the hole colour has {key.shape[0]} components but the image has "
            f"{pixels.shape[2]} channels"
        )
    return ~np.all(np.abs(pixels - key) <= 0.5 / 255, axis=2)


def random_pixels(height: int, width: int, drop: float, seed: int = 0) -> np.ndarray:
    """Drop a share ``drop`` of pixels: known where ``default_rng(seed).random(...)`` > drop."""
    if not 0 < drop < 1:
        raise UserError(f"drop must lie strictly between 0 and 1, got {drop}")
    return np.random.default_rng(seed).random((height, width)) > drop


def text_overlay(height: int, width: int, text: str, seed: int = 0) -> np.ndarray:
    """Text drawn over the whole image in lines, as in the paper's text-removal example."""
    from PIL import Image, ImageDraw, ImageFont

    if not text.strip():
        raise UserError("text needs some characters to draw")
    canvas = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(canvas)
    size = max(8, height // 12)
    font = ImageFont.load_default(size=size)
    rng = np.random.default_rng(seed)
    line = (text + "  ") * (1 + width // max(1, size * len(text) // 2))
    for top in range(size // 2, height, int(size * 1.8)):
        draw.text((-int(rng.integers(0, size * 2)), top), line, fill=0, font=font)
    return np.asarray(canvas) > 127


def strokes(height: int, width: int, count: int = 8, seed: int = 0) -> np.ndarray:
    """Random thick brush strokes (scribbles over a photo)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(canvas)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        points = [(float(rng.uniform(0, width)), float(rng.uniform(0, height)))]
        for _ in range(int(rng.integers(2, 6))):
            x, y = points[-1]
            points.append(
                (x + float(rng.normal(0, width / 6)), y + float(rng.normal(0, height / 6)))
            )
        draw.line(points, fill=0, width=max(2, min(height, width) // 30), joint="curve")
    return np.asarray(canvas) > 127


def boxes(height: int, width: int, count: int = 3, seed: int = 0) -> np.ndarray:
    """Random rectangles, each up to a quarter of the image's sides."""
    rng = np.random.default_rng(seed)
    known = np.ones((height, width), bool)
    for _ in range(count):
        h = int(rng.integers(max(2, height // 10), max(3, height // 4)))
        w = int(rng.integers(max(2, width // 10), max(3, width // 4)))
        top, left = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        known[top : top + h, left : left + w] = False
    return known


def validate(known: np.ndarray, height: int, width: int) -> np.ndarray:
    """Check a mask against the image: same size, at least one hole and one known pixel."""
    if known.ndim != 2:
        raise UserError(f"a mask is H×W (one value per pixel), got shape {known.shape}")
    if known.shape != (height, width):
        raise UserError(
            f"the mask is {known.shape[1]}×{known.shape[0]} but the image is "
            f"{width}×{height}; give a mask of the image's size"
        )
    if known.all():
        raise UserError(
            "the mask has no hole (every pixel is known); black marks holes, or invert the mask"
        )
    if not known.any():
        raise UserError(
            "the mask leaves no known pixel; white marks known pixels, or invert the mask"
        )
    return known


WIDE = 12  # a hole is wide when a disc of this radius (pixels) fits in it


@dataclass(frozen=True)
class MaskShape:
    """What decides the preset: how much is missing, how thick the widest hole is, how many."""

    hole_fraction: float
    thickest_hole: float  # radius in pixels of the largest disc that fits in a hole
    wide_holes: int = 0  # holes (connected) that a disc of radius WIDE fits in

    @classmethod
    def of(cls, known: np.ndarray) -> MaskShape:
        from scipy import ndimage

        holes = ~known
        if not holes.any():
            return cls(hole_fraction=0.0, thickest_hole=0.0)
        depth = ndimage.distance_transform_edt(holes)
        labels, _ = ndimage.label(holes)
        wide = np.unique(labels[depth >= WIDE])
        return cls(
            hole_fraction=float(holes.mean()),
            thickest_hole=float(depth.max()),
            wide_holes=int(np.count_nonzero(wide)),
        )

    def preset_name(self) -> str:
        """``pixels`` for scattered missing pixels, ``text`` for thin strokes, ``hole`` for one
        wide hole (the authors' vase), ``region`` for several (the deeper net of their library
        example)."""
        if self.thickest_hole >= WIDE:
            return "region" if self.wide_holes > 1 else "hole"
        if self.hole_fraction >= 0.2 and self.thickest_hole <= 3:
            return "pixels"
        return "text"
