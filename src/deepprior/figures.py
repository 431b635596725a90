"""Figures for people: labelled panels side by side."""

from __future__ import annotations

import numpy as np


def side_by_side(panels: list[tuple[str, np.ndarray]], zoom: int = 2) -> np.ndarray:
    """Labelled panels in a row, each enlarged ``zoom`` times (nearest neighbour).

    Shape:
        panels of (H, W, 3) floats in [0, 1] -> (zoom·H + 28, n·(zoom·W + 4) − 4, 3) uint8
    """
    from PIL import Image, ImageDraw, ImageFont

    label_h, gap = 28, 4
    tiles = [np.repeat(np.repeat(p, zoom, 0), zoom, 1) for _, p in panels]
    h, w = tiles[0].shape[:2]
    canvas = Image.new("RGB", (len(tiles) * (w + gap) - gap, h + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=16)
    for i, ((label, _), tile) in enumerate(zip(panels, tiles, strict=True)):
        x = i * (w + gap)
        canvas.paste(
            Image.fromarray(np.round(np.clip(tile, 0, 1) * 255).astype(np.uint8)), (x, label_h)
        )
        draw.text((x + 4, 5), label, fill="black", font=font)
    return np.asarray(canvas)
