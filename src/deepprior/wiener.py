"""An empirical Wiener filter: a classical second pass that sharpens a denoised estimate.

The fit's result (the *pilot*) says how much of the image each transform coefficient holds;
the filter keeps that share of the noisy image's coefficient, ``pilot² / (pilot² + σ²)``, and
averages the filtered blocks back with the weights of BM3D's second step (Dabov et al.
2007): 1 / (σ² Σ gain²). It does so twice and returns the mean of the two:

- *grouped*: for every 8×8 block on a grid of step 3, the 32 blocks most like it within 16
  pixels (by the pilot's luminance) are filtered together in a 3-D transform (each block's
  DCT, then a DCT across the group), weighted by a Kaiser window: BM3D's second step itself,
  guided by the fit;
- *block by block*: every overlapping 8×8 block's DCT alone.

Grouping gains most where the pilot is good (0.1-0.2 dB over blocks alone after a stopped
fit on 64² to 128² crops); blocks alone did better after a 10-minute fit of a 1024×768
photograph (a pilot far from converged); their mean was within 0.2 dB of the better of the
two on every set measured (README, "Quality levels"). Colour images are filtered in an
orthonormal opponent colour space, where white noise stays white with the same σ. It needs
only σ, which the noise-level rule has already estimated; rows are filtered in bands, so
memory stays bounded on large images.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional

PATCH = 8
STEP = 3  # reference blocks start every STEP pixels (and at the last row and column)
RADIUS = 16  # matches are searched within ±RADIUS pixels of the reference block
GROUP = 32  # blocks per group, the reference included
KAISER_BETA = 2.0
GROUP_BAND_ROWS = 16  # rows of reference blocks grouped at a time: bounds memory
BLOCK_BAND_ROWS = 128  # rows of blocks filtered alone at a time: bounds memory
# A block or group the pilot says is flat keeps nothing but weighs most; this floor on its
# Σ gain² keeps an exactly flat one (a gray image's colour channels) finite.
WEIGHT_FLOOR = 1e-6
# Rows: luminance and two colour differences, each of unit length (so the map is orthonormal).
OPPONENT = np.array(
    [
        [1 / np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(3)],
        [1 / np.sqrt(2), 0.0, -1 / np.sqrt(2)],
        [1 / np.sqrt(6), -2 / np.sqrt(6), 1 / np.sqrt(6)],
    ],
    np.float32,
)


def dct_matrix(size: int) -> torch.Tensor:
    """The orthonormal DCT-II as a (size, size) matrix: row k is the k-th basis vector."""
    k = np.arange(size)[:, None]
    n = np.arange(size)[None, :]
    d = np.cos(np.pi * (2 * n + 1) * k / (2 * size)) * np.sqrt(2 / size)
    d[0] /= np.sqrt(2)
    return torch.from_numpy(d.astype(np.float32))


def dct_basis(size: int) -> torch.Tensor:
    """The 2-D orthonormal DCT-II of a size×size block as a (size², size²) matrix acting on
    the block's pixels in row-major order."""
    d = dct_matrix(size)
    return torch.kron(d, d)


def _grid(count: int, step: int) -> torch.Tensor:
    """Every ``step``-th position of ``count``, and the last one."""
    positions = list(range(0, count, step))
    if positions[-1] != count - 1:
        positions.append(count - 1)
    return torch.tensor(positions)


class _Groups:
    """The block positions, transforms and window of one image's filtering, its blocks matched
    by ``luminance`` (H, W)."""

    def __init__(self, luminance: torch.Tensor, patch: int) -> None:
        self.patch = patch
        self.luminance = luminance
        self.padded = functional.pad(luminance[None, None], (RADIUS,) * 4, mode="replicate")[0, 0]
        height, self.width = luminance.shape
        self.rows, self.cols = height - patch + 1, self.width - patch + 1  # block start positions
        reach = RADIUS + 1
        self.size = min(GROUP, min(self.rows, reach) * min(self.cols, reach))
        self.block_dct = dct_basis(patch)
        self.group_dct = dct_matrix(self.size)
        window = np.kaiser(patch, KAISER_BETA)
        self.window = torch.from_numpy(np.outer(window, window).astype(np.float32).reshape(-1))
        offsets = torch.arange(-RADIUS, RADIUS + 1)
        self.offset_rows = offsets.repeat_interleave(len(offsets))
        self.offset_cols = offsets.repeat(len(offsets))
        self.ref_cols = _grid(self.cols, STEP)

    def match(self, ref_rows: torch.Tensor) -> torch.Tensor:
        """For the references at ``ref_rows`` × every reference column, the start (flat
        index into the block positions) of the ``size`` blocks closest to each, (R, size)."""
        refs_y, refs_x = torch.meshgrid(ref_rows, self.ref_cols, indexing="ij")
        refs_y, refs_x = refs_y.reshape(-1), refs_x.reshape(-1)
        top, bottom = int(ref_rows[0]), int(ref_rows[-1]) + self.patch  # the rows the refs cover
        here = self.luminance[top:bottom]
        starts = ref_rows - top  # the references' rows in ``here``
        # Each reference's index into the (reference rows × block columns) means.
        ref_index = (
            torch.arange(len(ref_rows))[:, None] * self.cols + self.ref_cols[None]
        ).reshape(-1)
        shifts = range(-RADIUS, RADIUS + 1)
        distances = []
        for dy in shifts:
            rows = slice(RADIUS + top + dy, RADIUS + bottom + dy)
            moved = torch.stack(
                [self.padded[rows, RADIUS + dx : RADIUS + dx + self.width] for dx in shifts]
            )
            squared = (moved - here).square()
            # The sum over each patch×patch block, one axis at a time, down from the reference
            # rows only and then across.
            down = squared[:, starts]
            for i in range(1, self.patch):
                down = down + squared[:, starts + i]
            across = down[:, :, : self.cols]
            for i in range(1, self.patch):
                across = across + down[:, :, i : i + self.cols]
            distances.append(across.reshape(len(shifts), -1)[:, ref_index])  # (shifts, R)
        distance = torch.cat(distances)  # (offsets, R), offsets row-major as offset_rows/cols
        match_y = refs_y[None] + self.offset_rows[:, None]
        match_x = refs_x[None] + self.offset_cols[:, None]
        outside = (match_y < 0) | (match_y >= self.rows) | (match_x < 0) | (match_x >= self.cols)
        distance[outside] = float("inf")
        nearest = distance.topk(self.size, dim=0, largest=False).indices
        return (match_y.gather(0, nearest) * self.cols + match_x.gather(0, nearest)).T

    def transform(self, blocks: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """The 3-D transform of groups (C, R, size, patch²): each block's 2-D DCT, then a DCT
        across the group (or the inverse of both)."""
        block, group = self.block_dct, self.group_dct
        if inverse:
            block, group = block.T, group.T
        channels, refs, size, pixels = blocks.shape
        spectra = blocks.reshape(-1, pixels) @ block.T
        return (group @ spectra.reshape(channels * refs, size, pixels)).reshape(blocks.shape)

    def filter(
        self, noisy_blocks: torch.Tensor, pilot_blocks: torch.Tensor, variance: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Wiener-filter groups (C, R, size, patch²) of noisy blocks guided by the
        pilot's; returns the filtered blocks and each group's aggregation weight, (C, R)."""
        energy = self.transform(pilot_blocks).square()
        gain = energy / (energy + variance)
        weight = 1.0 / (variance * gain.square().sum((2, 3)).clamp_min(WEIGHT_FLOOR))
        return self.transform(gain * self.transform(noisy_blocks), inverse=True), weight

    def pixels(self, starts: torch.Tensor) -> torch.Tensor:
        """The flat pixel index of every pixel of the blocks starting at ``starts`` (flat block
        positions, (R, size)), (R, size, patch²) with the block's pixels in row-major order."""
        start_y = (starts // self.cols)[:, :, None, None]
        start_x = (starts % self.cols)[:, :, None, None]
        within = torch.arange(self.patch)
        flat = (start_y + within[:, None]) * self.width + start_x + within
        return flat.reshape(*starts.shape, self.patch * self.patch)


def empirical_wiener(
    noisy: np.ndarray, pilot: np.ndarray, sigma: float, patch: int = PATCH
) -> np.ndarray:
    """Filter ``noisy`` (H×W×C in [0, 1], white noise of std ``sigma``) guided by ``pilot``, an
    estimate of the clean image of the same shape; returns the filtered image (float32)."""
    if noisy.shape != pilot.shape or noisy.ndim != 3:
        raise ValueError(f"noisy {noisy.shape} and pilot {pilot.shape} must both be H×W×C")
    height, width, channels = noisy.shape
    if min(height, width) < patch:
        raise ValueError(f"the image is {width}×{height}, smaller than a {patch}-pixel block")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    colour = channels == 3
    y, p = noisy.astype(np.float32), pilot.astype(np.float32)
    if colour:
        y, p = y @ OPPONENT.T, p @ OPPONENT.T
    y_t = torch.from_numpy(np.ascontiguousarray(y.transpose(2, 0, 1)))
    p_t = torch.from_numpy(np.ascontiguousarray(p.transpose(2, 0, 1)))
    with torch.no_grad():
        filtered = (_grouped(y_t, p_t, sigma, patch) + _blockwise(y_t, p_t, sigma, patch)) / 2
    result = filtered.numpy().transpose(1, 2, 0)
    if colour:
        result = result @ OPPONENT  # the inverse of an orthonormal map is its transpose
    return np.clip(result, 0.0, 1.0).astype(np.float32)


def _grouped(y_t: torch.Tensor, p_t: torch.Tensor, sigma: float, patch: int) -> torch.Tensor:
    """The filter on groups of similar blocks of ``y_t`` (C, H, W), grouped by ``p_t``'s
    first channel; (C, H, W)."""
    channels, height, width = y_t.shape
    groups = _Groups(p_t[0], patch)
    y_flat, p_flat = y_t.reshape(channels, -1), p_t.reshape(channels, -1)
    variance = float(sigma) ** 2
    numerator = torch.zeros(channels, height * width)
    denominator = torch.zeros(channels, height * width)
    ref_rows = _grid(groups.rows, STEP)
    for band in torch.split(ref_rows, GROUP_BAND_ROWS):
        starts = groups.match(band)  # (R, size)
        where = groups.pixels(starts)  # (R, size, patch²)
        filtered, weight = groups.filter(y_flat[:, where], p_flat[:, where], variance)
        scale = groups.window * weight[:, :, None, None]
        where = where.reshape(-1)
        numerator.index_add_(1, where, (filtered * scale).reshape(channels, -1))
        denominator.index_add_(1, where, scale.expand_as(filtered).reshape(channels, -1))
    return (numerator / denominator).reshape(channels, height, width)


def _blockwise(y_t: torch.Tensor, p_t: torch.Tensor, sigma: float, patch: int) -> torch.Tensor:
    """The filter on every overlapping block of ``y_t`` (C, H, W) alone, its 2-D DCT's gains
    from ``p_t``'s; (C, H, W)."""
    height = y_t.shape[1]
    y_t, p_t = y_t[:, None], p_t[:, None]
    basis = dct_basis(patch).reshape(patch * patch, 1, patch, patch)
    ones = torch.ones(1, 1, patch, patch)
    numerator = torch.zeros_like(y_t)
    denominator = torch.zeros_like(y_t)
    variance = float(sigma) ** 2
    last_start = height - patch  # the last row at which a block starts
    for start in range(0, last_start + 1, BLOCK_BAND_ROWS):
        stop = min(start + BLOCK_BAND_ROWS, last_start + 1)  # blocks starting in [start, stop)
        rows = slice(start, stop + patch - 1)
        coefficients = functional.conv2d(y_t[:, :, rows], basis)
        pilot_energy = functional.conv2d(p_t[:, :, rows], basis).square()
        gain = pilot_energy / (pilot_energy + variance)
        weight = 1.0 / (variance * gain.square().sum(1, keepdim=True).clamp_min(WEIGHT_FLOOR))
        numerator[:, :, rows] += functional.conv_transpose2d(gain * coefficients * weight, basis)
        denominator[:, :, rows] += functional.conv_transpose2d(weight, ones)
    return (numerator / denominator)[:, 0]
