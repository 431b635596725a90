"""The classical second pass that ends denoising: BM3D's two steps (Dabov et al. 2007), the
second guided by the fit.

Both steps filter *groups*: for every 8×8 reference block on a grid of step 3, the blocks most
like it within 16 pixels, as many as lie within a distance threshold, up to a power of two
(the reference always in), stacked and transformed in 3-D (a 2-D transform of each block,
then a Haar transform across the group), shrunk, transformed back and averaged into the image
with a Kaiser window and a weight per group that favours the groups the shrinking left least
noise in. The settings are those of the ``bm3d`` package (Mäkinen, Azzari and Foi) for white
noise, except the Wiener step's largest group and μ² (below).

- :func:`hard_threshold` (step 1): groups of up to 16 blocks matched on the noisy image's
  luminance, each block in the bior1.5 wavelet; coefficients under 3σ are zeroed; weight
  1 / (σ² · coefficients kept).
- :func:`empirical_wiener` (step 2): groups of up to 64 blocks matched on a *pilot* (an
  estimate of the clean image), each block in the DCT; each coefficient of the noisy group
  keeps the share ``pilot² / (pilot² + μ²σ²)`` of it the pilot's says is image; weight
  1 / (σ² Σ gain²).
- :func:`refine_fit`: step 2 guided by a weighted mean of the fit (0.4) and step 1 (0.6). The
  two pilots err differently, so their mean guides the filter better than either: after the
  default's fits of 17 crops of 128², 30.87 dB against 30.61 guided by the fit and 30.75 by
  step 1 (README, session 25).
- :func:`refine_fits`: that pass averaged over several fits and, for ``--quality best``, over
  reference grids started 0, 1 and 2 pixels in, with larger groups (deepprior.quality).

Colour images are filtered in an orthonormal opponent colour space, where white noise stays
white with the same σ; blocks are matched on its first plane (luminance). Only σ is needed,
which the noise-level rule has already estimated; reference rows are taken in bands, so memory
stays bounded on large images.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np
import pywt
import torch
from torch.nn import functional

PATCH = 8
STEP = 3  # reference blocks every STEP pixels from an offset, and the first and last ones
RADIUS = 16  # matches are searched within ±RADIUS pixels of the reference block
# Step 2's largest group, the reference included: the package has 32; 64 gave +0.11 dB after
# best's fits of eight held-out 128² crops (retina +0.37, brick +0.19, clock +0.17; none under
# -0.01), +0.02 at 64² and 1024×768, 0.00 at 256² and 512² (after fast's noisier fits, -0.01
# on the CBM3D crops), for about 1.5× the pass's time (README, session 34). A group grows only
# where that many blocks match: in smooth areas.
GROUP = 64
GROUP_HARD = 16  # step 1's
# A block joins a group if its mean squared difference from the reference, in 8-bit levels
# squared per pixel, is under this: BM3D's 3000 for step 1 (noisy blocks); 1500 for step 2
# (between BM3D's 400 and 3000, which all measured within 0.02 dB of each other).
THRESHOLD_HARD = 3000.0
THRESHOLD = 1500.0
# Step 1 zeroes coefficients under this many σ: the bm3d package's 3.0 for white noise (the
# BM3D paper's 2.7 gave -0.12 to +0.04 dB against it after the default's and best's fits, and
# -0.05 to +0.10 after fast's; README, session 25).
HARD_LAMBDA = 3.0
# The Wiener step's gain is pilot² / (pilot² + WIENER_MU2·σ²): the bm3d package uses 0.4 (for
# white noise) on its step 1; the mean of the fit and step 1 is a better pilot, and 0.5 lay
# between 0.4 and 0.7 on 17 crops of 128² and the held-out crops (README, session 25).
WIENER_MU2 = 0.5
# The fit's share of step 2's pilot (the rest is step 1's): 0.4 was within 0.02 dB of the best
# of 0.25-0.6 after the default's and best's fits of 64² and 128² crops, held-out ones
# included, and within 0.07 after fast's, where 0.5 lost up to 0.15 dB (README, session 25).
FIT_SHARE = 0.4
# Step 1's 2-D transform of a block, as BM3D's: a pilot 0.05-0.15 dB better than with the DCT.
HARD_WAVELET = "bior1.5"
KAISER_BETA = 2.0
# Rows of reference blocks times their largest group filtered at a time: bounds memory (8 rows
# at step 2's groups of 64, 32 at step 1's 16; 16 for both until session 34).
BAND_BLOCKS = 512
# A group the pilot says is flat keeps nothing but weighs most; this floor on its Σ gain² (or
# its count of kept coefficients) keeps an exactly flat one (a gray image's colour channels)
# finite.
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

# (noisy spectra, pilot spectra or None, σ) -> (shrunk spectra, each group's weight (C, R))
Shrink = Callable[[torch.Tensor, torch.Tensor | None, float], tuple[torch.Tensor, torch.Tensor]]


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


@cache
def wavelet_matrix(size: int, wavelet: str = HARD_WAVELET) -> torch.Tensor:
    """The full periodic decomposition of ``size`` (a power of two) values in ``wavelet`` as a
    (size, size) matrix, each row scaled to unit length (so white noise keeps its σ in every
    coefficient); a biorthogonal wavelet's rows are not orthogonal: invert, do not transpose."""
    if size < 2 or size & (size - 1):
        raise ValueError(f"the wavelet transform needs a power of two over 1, got {size}")
    levels = size.bit_length() - 1
    with warnings.catch_warnings():  # every level but the finest wraps around: as intended
        warnings.simplefilter("ignore", UserWarning)
        columns = [
            np.concatenate(pywt.wavedec(unit, wavelet, mode="periodization", level=levels))
            for unit in np.eye(size)
        ]
    matrix = np.stack(columns, axis=1)
    return torch.from_numpy(
        (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)
    )


def wavelet_basis(size: int) -> torch.Tensor:
    """Step 1's 2-D transform of a size×size block (row-major), as :func:`dct_basis`."""
    w = wavelet_matrix(size)
    return torch.kron(w, w)


@cache
def haar_matrix(size: int) -> torch.Tensor:
    """The orthonormal Haar transform of ``size`` (a power of two) values as a matrix: the
    mean first, then differences from the coarsest to the finest (made once per size)."""
    if size < 1 or size & (size - 1):
        raise ValueError(f"the Haar transform needs a power of two, got {size}")
    matrix = torch.ones(1, 1)
    while matrix.shape[0] < size:
        half = matrix.shape[0]
        coarse = torch.kron(matrix, torch.tensor([[1.0, 1.0]]))
        fine = torch.kron(torch.eye(half), torch.tensor([[1.0, -1.0]]))
        matrix = torch.cat([coarse, fine])
    return matrix / matrix.norm(dim=1, keepdim=True)


def _grid(count: int, step: int, offset: int = 0) -> torch.Tensor:
    """Every ``step``-th position of ``count`` from ``offset``, and the first and last ones."""
    return torch.tensor(sorted({0, *range(offset, count, step), count - 1}))


class _Groups:
    """The block positions, transforms and window of one image's filtering, its blocks matched
    by ``luminance`` (H, W) into groups of at most ``largest`` blocks no further than
    ``threshold`` (mean squared difference per pixel, 8-bit levels squared) from the reference,
    each block transformed by ``block_transform`` (patch², patch²; the DCT if None), the
    reference grid's rows and columns from ``offset`` (and the first and last ones)."""

    def __init__(
        self,
        luminance: torch.Tensor,
        patch: int,
        largest: int,
        threshold: float,
        block_transform: torch.Tensor | None = None,
        offset: int = 0,
    ):
        self.patch = patch
        self.offset = offset  # where the reference grid's rows and columns start (0 is always in)
        self.luminance = luminance
        self.padded = functional.pad(luminance[None, None], (RADIUS,) * 4, mode="replicate")[0, 0]
        height, self.width = luminance.shape
        self.rows, self.cols = height - patch + 1, self.width - patch + 1  # block start positions
        reach = RADIUS + 1
        self.size = min(largest, min(self.rows, reach) * min(self.cols, reach))
        self.max_distance = threshold * patch * patch / 255.0**2  # summed over a block, [0, 1]
        self.block = dct_basis(patch) if block_transform is None else block_transform
        self.block_inverse = torch.linalg.inv(self.block)
        window = np.kaiser(patch, KAISER_BETA)
        self.window = torch.from_numpy(np.outer(window, window).astype(np.float32).reshape(-1))
        offsets = torch.arange(-RADIUS, RADIUS + 1)
        self.offset_rows = offsets.repeat_interleave(len(offsets))
        self.offset_cols = offsets.repeat(len(offsets))
        self.ref_cols = _grid(self.cols, STEP, offset)

    def match(self, ref_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For the references at ``ref_rows`` × every reference column, the start (flat index
        into the block positions) of the ``size`` blocks closest to each, itself first and then
        the nearest, and how many of them make its group; (R, size) and (R,)."""
        refs_y, refs_x = torch.meshgrid(ref_rows, self.ref_cols, indexing="ij")
        refs_y, refs_x = refs_y.reshape(-1), refs_x.reshape(-1)
        top, bottom = int(ref_rows[0]), int(ref_rows[-1]) + self.patch  # the rows the refs cover
        here = self.luminance[top:bottom]
        starts = ref_rows - top  # the references' rows in ``here``
        # Each reference's index into the (reference rows × block columns) sums.
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
        distance[len(distance) // 2] = -1.0  # the reference itself (offset 0, 0) comes first
        nearest_distance, nearest = distance.topk(self.size, dim=0, largest=False)
        close = (nearest_distance <= self.max_distance).sum(0).clamp_min(1)
        sizes = 2 ** torch.floor(torch.log2(close.float())).long()  # a power of two, for Haar
        flat = match_y.gather(0, nearest) * self.cols + match_x.gather(0, nearest)
        return flat.T, sizes

    def transform(self, blocks: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """The 3-D transform of groups (C, R, size, patch²): each block's 2-D transform, then
        a Haar transform across the group (or the inverse of both, in the reverse order)."""
        channels, refs, size, pixels = blocks.shape
        stacks = blocks.reshape(channels * refs, size, pixels)
        group = haar_matrix(size)
        if inverse:
            return ((group.T @ stacks) @ self.block_inverse.T).reshape(blocks.shape)
        return (group @ (stacks @ self.block.T)).reshape(blocks.shape)

    def pixels(self, starts: torch.Tensor) -> torch.Tensor:
        """The flat pixel index of every pixel of the blocks starting at ``starts`` (flat block
        positions, (R, size)), (R, size, patch²) with the block's pixels in row-major order."""
        start_y = (starts // self.cols)[:, :, None, None]
        start_x = (starts % self.cols)[:, :, None, None]
        within = torch.arange(self.patch)
        flat = (start_y + within[:, None]) * self.width + start_x + within
        return flat.reshape(*starts.shape, self.patch * self.patch)


def _wiener_gains(
    noisy: torch.Tensor, pilot: torch.Tensor | None, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 2's shrinking: the share of each coefficient the pilot's says is image."""
    assert pilot is not None
    variance = sigma**2
    energy = pilot.square()
    gain = energy / (energy + WIENER_MU2 * variance)
    weight = 1.0 / (variance * gain.square().sum((2, 3)).clamp_min(WEIGHT_FLOOR))
    return gain * noisy, weight


def _hard_threshold(
    noisy: torch.Tensor, pilot: torch.Tensor | None, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 1's shrinking: coefficients under HARD_LAMBDA·σ zeroed."""
    keep = noisy.abs() > HARD_LAMBDA * sigma
    kept = keep.sum((2, 3)).float().clamp_min(WEIGHT_FLOOR)
    return noisy * keep, 1.0 / (sigma**2 * kept)


def _collaborate(
    noisy: torch.Tensor, pilot: torch.Tensor | None, groups: _Groups, sigma: float, shrink: Shrink
) -> torch.Tensor:
    """Filter the planes of ``noisy`` (C, H, W) in ``groups``, each group's 3-D spectrum
    shrunk by ``shrink`` (given ``pilot``'s, when there is a pilot); (C, H, W)."""
    channels, height, width = noisy.shape
    noisy_flat = noisy.reshape(channels, -1)
    pilot_flat = None if pilot is None else pilot.reshape(channels, -1)
    numerator = torch.zeros(channels, height * width)
    denominator = torch.zeros(channels, height * width)
    for band in torch.split(
        _grid(groups.rows, STEP, groups.offset), max(1, BAND_BLOCKS // groups.size)
    ):
        starts, sizes = groups.match(band)
        for size in sizes.unique().tolist():
            where = groups.pixels(starts[sizes == size, :size])  # (R, size, patch²)
            spectra = groups.transform(noisy_flat[:, where])
            guide = None if pilot_flat is None else groups.transform(pilot_flat[:, where])
            shrunk, weight = shrink(spectra, guide, sigma)
            filtered = groups.transform(shrunk, inverse=True)
            scale = groups.window * weight[:, :, None, None]
            where = where.reshape(-1)
            numerator.index_add_(1, where, (filtered * scale).reshape(channels, -1))
            denominator.index_add_(1, where, scale.expand_as(filtered).reshape(channels, -1))
    return (numerator / denominator).reshape(channels, height, width)


def _check(noisy: np.ndarray, sigma: float, patch: int) -> None:
    """Refuse an image that is not H×W×C or is smaller than a block, or a σ that is not > 0."""
    if noisy.ndim != 3:
        raise ValueError(f"the image must be H×W×C, got shape {noisy.shape}")
    height, width = noisy.shape[:2]
    if min(height, width) < patch:
        raise ValueError(f"the image is {width}×{height}, smaller than a {patch}-pixel block")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")


def _to_planes(image: np.ndarray) -> torch.Tensor:
    """H×W×C in [0, 1] -> (C, H, W), colour in the opponent space."""
    planes = image.astype(np.float32)
    if planes.shape[2] == 3:
        planes = planes @ OPPONENT.T
    return torch.from_numpy(np.ascontiguousarray(planes.transpose(2, 0, 1)))


def _to_image(planes: torch.Tensor) -> np.ndarray:
    """(C, H, W) -> H×W×C clipped to [0, 1], colour back from the opponent space."""
    image = planes.numpy().transpose(1, 2, 0)
    if image.shape[2] == 3:
        image = image @ OPPONENT  # the inverse of an orthonormal map is its transpose
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def hard_threshold(
    noisy: np.ndarray, sigma: float, patch: int = PATCH, offset: int = 0
) -> np.ndarray:
    """BM3D's first step on ``noisy`` (H×W×C in [0, 1], white noise of std ``sigma``): an
    estimate of the clean image from the noisy one alone (float32); ``offset``: where the
    reference grid's rows and columns start (the first and last always in)."""
    _check(noisy, sigma, patch)
    planes = _to_planes(noisy)
    with torch.no_grad():
        wavelet = wavelet_basis(patch)
        groups = _Groups(planes[0], patch, GROUP_HARD, THRESHOLD_HARD, wavelet, offset)
        return _to_image(_collaborate(planes, None, groups, float(sigma), _hard_threshold))


def empirical_wiener(
    noisy: np.ndarray,
    pilot: np.ndarray,
    sigma: float,
    patch: int = PATCH,
    group: int | None = None,
    offset: int = 0,
) -> np.ndarray:
    """BM3D's second step: filter ``noisy`` (H×W×C in [0, 1], white noise of std ``sigma``)
    guided by ``pilot``, an estimate of the clean image of the same shape (float32), in
    groups of at most ``group`` blocks (None: GROUP), the reference grid from ``offset``."""
    if noisy.shape != pilot.shape:
        raise ValueError(f"noisy {noisy.shape} and pilot {pilot.shape} must have one shape")
    _check(noisy, sigma, patch)
    planes, guide = _to_planes(noisy), _to_planes(pilot)
    largest = GROUP if group is None else group
    with torch.no_grad():
        groups = _Groups(guide[0], patch, largest, THRESHOLD, offset=offset)
        return _to_image(_collaborate(planes, guide, groups, float(sigma), _wiener_gains))


def refine_fit(
    noisy: np.ndarray,
    fit: np.ndarray,
    sigma: float,
    first: np.ndarray | None = None,
    group: int | None = None,
    offset: int = 0,
) -> np.ndarray:
    """The Wiener step guided by the mean of ``fit`` and the hard-thresholding step, the fit
    weighted by FIT_SHARE; ``first``: that step's result when already computed (it does not
    depend on the fit); ``group`` and ``offset``: both steps' reference grid's start and the
    Wiener step's largest group, as :func:`empirical_wiener`'s."""
    if first is None:
        first = hard_threshold(noisy, sigma, offset=offset)
    pilot = FIT_SHARE * fit.astype(np.float32) + (1 - FIT_SHARE) * first
    return empirical_wiener(noisy, pilot, sigma, group=group, offset=offset)


def refine_fits(
    noisy: np.ndarray,
    fits: Sequence[np.ndarray],
    sigma: float,
    group: int | None = None,
    grids: int = 1,
    deadline: float | None = None,
) -> tuple[np.ndarray, int]:
    """The mean of :func:`refine_fit` over ``fits`` and over up to ``grids`` reference grids,
    the n-th starting n pixels down and across (each grid's first step made once), and how
    many grids it made: after the first, a grid is made only if the last one's time still
    fits before ``deadline`` (a ``time.perf_counter()`` value; None: no limit)."""
    passes: list[np.ndarray] = []
    made, took = 0, 0.0
    for offset in range(grids):
        started = time.perf_counter()
        if offset and deadline is not None and started + took > deadline:
            break
        first = hard_threshold(noisy, sigma, offset=offset)
        passes += [refine_fit(noisy, fit, sigma, first, group, offset) for fit in fits]
        made, took = made + 1, time.perf_counter() - started
    return np.stack(passes).mean(axis=0, dtype=np.float32), made
