import torch

from deepprior.inputs import image_code, meshgrid_code, noise_code


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
