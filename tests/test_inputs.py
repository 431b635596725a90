import pytest
import torch

from deepprior.inputs import CODES, build_code, code_channels, image_code, meshgrid_code, noise_code


def test_noise_code_is_uniform_in_range_and_seeded():
    z = noise_code(32, 20, 24, generator=torch.Generator().manual_seed(3))
    assert z.shape == (1, 32, 20, 24)
    assert z.min() >= 0 and z.max() <= 0.1 and z.std() > 0.02
    again = noise_code(32, 20, 24, generator=torch.Generator().manual_seed(3))
    assert torch.equal(z, again)


def test_meshgrid_code_spans_the_unit_square():
    z = meshgrid_code(5, 7)
    assert z.shape == (1, 2, 5, 7)
    assert torch.equal(z[0, 0, 0], torch.linspace(0, 1, 7))
    assert torch.equal(z[0, 1, :, 0], torch.linspace(0, 1, 5))


def test_image_code_adds_the_batch_axis():
    assert image_code(torch.rand(3, 8, 8)).shape == (1, 3, 8, 8)


def test_every_registered_code_builds_on_a_canvas():
    image = torch.rand(1, 3, 6, 5)
    sources = {"image": image, "tensor": torch.rand(1, 4, 8, 8)}
    for kind in CODES:
        z = build_code(kind, 8, 8, channels=5, source=sources.get(kind))
        assert z.shape == (1, code_channels(kind, 5, sources.get(kind)), 8, 8), kind


def test_an_image_code_is_centred_and_its_border_repeats_the_edge():
    image = torch.rand(1, 3, 6, 5)
    z = image_code(image, 8, 9)
    assert torch.equal(z[:, :, 1:7, 2:7], image)
    assert torch.equal(z[:, :, 0, 2:7], image[:, :, 0]) and torch.equal(
        z[:, :, :, 0], z[:, :, :, 2]
    )


def test_codes_that_need_a_source_or_the_right_size_say_so():
    with pytest.raises(ValueError, match="needs its image"):
        build_code("image", 8, 8)
    with pytest.raises(ValueError, match="must be"):
        build_code("tensor", 8, 8, source=torch.rand(1, 2, 4, 4))
    with pytest.raises(ValueError, match="unknown code"):
        build_code("fractal", 8, 8)
