import numpy as np
import pytest
import torch
from PIL import Image

from deepprior.baselines import degrade_for_sr, resize, upscale
from deepprior.metrics import luma, psnr, psnr_y
from deepprior.operators import (
    KERNELS,
    OPERATORS,
    Bayer,
    Blur,
    Compose,
    Downsample,
    FromFunction,
    Gray,
    Identity,
    Mask,
    Operator,
    gaussian_kernel,
    kernel_1d,
    motion_kernel,
)

FACTORS = (2, 3, 4, 8)


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_constant_stays_constant_and_size_is_exact(factor, kernel):
    x = torch.full((1, 3, 8 * factor, 5 * factor), 0.3)
    y = Downsample(factor, kernel)(x)
    assert y.shape == (1, 3, 8, 5)
    torch.testing.assert_close(y, torch.full_like(y, 0.3))


def _mask(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) > 0.5).double()


# Every registered operator, with examples (operator, input shape); the adjoint test below runs
# on every linear one, and a new operator without examples fails the registry test.
EXAMPLES: dict[str, list[tuple[Operator, tuple[int, ...]]]] = {
    "identity": [(Identity(), (2, 3, 5, 4))],
    "downsample": [
        (Downsample(factor, kernel).double(), (2, 3, 4 * factor, 3 * factor))
        for factor in FACTORS
        for kernel in KERNELS
    ],
    "mask": [(Mask(_mask((1, 1, 6, 5))), (2, 3, 6, 5)), (Mask(_mask((1, 3, 6, 5))), (1, 3, 6, 5))],
    "blur": [
        (Blur(gaussian_kernel(1.5)).double(), (1, 3, 12, 10)),
        (Blur(motion_kernel(5, 30)).double(), (2, 1, 9, 11)),
        (Blur(np.arange(12.0).reshape(3, 4)).double(), (1, 2, 7, 8)),  # even side, asymmetric
    ],
    "gray": [(Gray(), (2, 3, 5, 4))],
    "bayer": [(Bayer(pattern).double(), (1, 3, 7, 6)) for pattern in ("rggb", "gbrg")],
    "compose": [
        (Downsample(2).double() @ Mask(_mask((1, 1, 8, 6))), (1, 3, 8, 6)),
        (Compose(Mask(_mask((1, 1, 8, 8))), Downsample(4).double(), Identity()), (2, 1, 8, 8)),
        (Compose(Blur(gaussian_kernel(1.5)), Downsample(2)).double(), (1, 3, 12, 8)),
        (Compose(Mask(_mask((1, 1, 8, 8))), Blur(motion_kernel(4, 45))).double(), (1, 3, 8, 8)),
        (Compose(Blur(gaussian_kernel(1)), Bayer("bggr")).double(), (1, 3, 8, 8)),
    ],
    "function": [
        (FromFunction(lambda x: 3 * x.flip(-1), linear=True), (1, 2, 4, 4)),
        (FromFunction(torch.sigmoid), (1, 2, 4, 4)),
    ],
}
LINEAR = [
    pytest.param(op, shape, id=f"{name}-{i}")
    for name, examples in EXAMPLES.items()
    for i, (op, shape) in enumerate(examples)
    if op.linear
]


def test_every_registered_operator_has_examples():
    assert set(EXAMPLES) == set(OPERATORS)
    for name, examples in EXAMPLES.items():
        assert examples and all(isinstance(op, OPERATORS[name]) for op, _ in examples), name


@pytest.mark.parametrize(("op", "shape"), LINEAR)
def test_adjoint_identity(op, shape):
    """<Ax, y> = <x, Aᵀy> in float64, for every linear operator."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    y = torch.rand(op(x).shape, generator=g, dtype=torch.float64)
    lhs = (op(x) * y).sum()
    rhs = (x * op.adjoint(y, shape)).sum()
    torch.testing.assert_close(lhs, rhs)


def test_composition_applies_the_right_operand_first_and_stays_linear_only_if_all_are():
    mask = Mask(_mask((1, 1, 8, 8)))
    down = Downsample(2).double()
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close((down @ mask)(x), down(mask(x)))
    assert (down @ mask).linear
    nonlinear = FromFunction(torch.sigmoid) @ down
    assert not nonlinear.linear
    with pytest.raises(TypeError, match="not linear"):
        nonlinear.adjoint(torch.zeros(1, 1, 4, 4), (1, 1, 8, 8))
    assert len(Compose(down @ mask, Identity()).parts) == 3  # nested compositions flatten


def test_adjoint_is_the_transpose_of_the_matrix():
    op = Downsample(2, "lanczos2").double()
    n = 8 * 6
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 1, 8, 6)
    matrix = op(basis).reshape(n, -1).T  # column j = A e_j
    y = torch.rand(1, 1, 4, 3, dtype=torch.float64)
    expected = (matrix.T @ y.reshape(-1)).reshape(1, 1, 8, 6)
    torch.testing.assert_close(op.adjoint(y, (1, 1, 8, 6)), expected)


def test_gradients_flow_in_double_precision():
    op = Downsample(2, "lanczos2").double()
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x,))


def test_authors_kernel_taps():
    taps = kernel_1d(4, "lanczos2")
    assert len(taps) == 16 and np.isclose(taps.sum(), 1.0)
    np.testing.assert_allclose(taps, taps[::-1])  # symmetric, centred between pixels
    assert len(kernel_1d(3, "lanczos2")) == 13  # odd factor: centred on a pixel


@pytest.mark.parametrize("factor", FACTORS)
def test_agrees_with_pillow_lanczos(photo, factor):
    """Our lanczos3 is Pillow's LANCZOS (a = 3): > 45 dB apart from the borders; the authors'
    lanczos2 (a = 2) is a slightly different filter: > 30 dB."""
    image = photo(24 * factor)
    pillow = resize(image, 24, 24, "lanczos")
    x = torch.from_numpy(image.transpose(2, 0, 1))[None]
    for kernel, floor in (("lanczos3", 45), ("lanczos2", 30)):
        ours = Downsample(factor, kernel)(x)[0].permute(1, 2, 0).numpy()
        assert psnr(ours[3:-3, 3:-3], pillow[3:-3, 3:-3]) > floor, kernel


def test_identity_is_its_own_adjoint():
    x = torch.rand(1, 3, 5, 5)
    assert torch.equal(Identity()(x), x)
    assert torch.equal(Identity().adjoint(x, tuple(x.shape)), x)


def test_bad_factor_and_kernel_are_refused():
    with pytest.raises(ValueError):
        Downsample(0)
    with pytest.raises(ValueError, match="kernel"):
        Downsample(2, "nearest")


def test_paper_degradation_crops_to_a_multiple_then_uses_pillow_lanczos(photo):
    hr = photo(50)
    cropped, lr = degrade_for_sr(hr, 4)
    assert cropped.shape == (48, 48, 3) and lr.shape == (12, 12, 3)
    as_uint8 = Image.fromarray((cropped * 255).round().astype(np.uint8)).resize(
        (12, 12), Image.Resampling.LANCZOS
    )
    assert np.abs(np.asarray(as_uint8) / 255 - lr).mean() < 1 / 255  # uint8 clips overshoots


def test_luma_and_paper_psnr(photo):
    white = np.ones((8, 8, 3))
    assert np.allclose(luma(white), 235 / 255) and np.allclose(luma(0 * white), 16 / 255)
    hr = photo(32)
    assert psnr_y(hr, hr + 0.01, shave=4) == pytest.approx(
        20 * np.log10(1 / (0.01 * 219 / 255)), rel=1e-6
    )
    assert upscale(hr[::2, ::2], 2).shape == hr.shape


def test_blur_is_the_convolution_scipy_computes_with_edge_padding():
    from scipy.ndimage import convolve

    kernel = np.random.default_rng(1).random((5, 3))
    image = np.random.default_rng(2).random((12, 9))
    ours = Blur(kernel).double()(torch.from_numpy(image)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(ours, convolve(image, kernel / kernel.sum(), mode="nearest"))


def test_blur_keeps_a_constant_and_kernels_are_normalised():
    for kernel in (gaussian_kernel(2), motion_kernel(15, 30), motion_kernel(3, 90)):
        assert np.isclose(kernel.sum(), 1) and kernel.shape[0] % 2 == 1
        x = torch.full((1, 3, 40, 40), 0.4)
        torch.testing.assert_close(Blur(kernel)(x), x)
    horizontal = motion_kernel(7, 0)
    assert horizontal[horizontal.shape[0] // 2].sum() > 0.99  # angle 0: one row
    vertical = motion_kernel(7, 90)
    assert vertical[:, vertical.shape[1] // 2].sum() > 0.99
    assert gaussian_kernel(2).shape == (13, 13)
    for bad in (np.zeros((3, 3)), -np.ones((3, 3)), np.ones(3), np.full((3, 3), np.nan)):
        with pytest.raises(ValueError):
            Blur(bad)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "grbg", "gbrg"])
def test_bayer_keeps_one_colour_per_pixel_in_the_pattern(pattern):
    x = torch.stack([torch.full((5, 6), v) for v in (1.0, 2.0, 3.0)])[None]
    mosaic = Bayer(pattern)(x)[0, 0]
    expected = {"r": 1.0, "g": 2.0, "b": 3.0}
    for index, colour in enumerate(pattern):
        assert (mosaic[index // 2 :: 2, index % 2 :: 2] == expected[colour]).all()
    assert Bayer(pattern).source_shape((1, 5, 6)) == (3, 5, 6)


def test_gray_is_bt601_luma_and_compositions_know_the_source_shape():
    x = torch.rand(1, 3, 4, 4)
    expected = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    torch.testing.assert_close(Gray()(x)[:, 0], expected)
    chain = Compose(Blur(gaussian_kernel(1)), Downsample(2), Gray())
    assert chain.source_shape((1, 10, 12)) == (3, 20, 24)
    assert chain(torch.rand(1, 3, 20, 24)).shape == (1, 1, 10, 12)
    upscale = FromFunction(
        lambda t: t[:, :, ::2, ::2], source_shape=lambda s: (s[0], 2 * s[1], 2 * s[2])
    )
    assert upscale.source_shape((3, 5, 5)) == (3, 10, 10)
