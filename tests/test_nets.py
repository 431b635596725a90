import pytest
import torch

from deepprior.nets import (
    NETS,
    SIZED_NETS,
    SkipConfig,
    SkipNet,
    build_net,
    count_parameters,
    min_side,
    size_multiple,
)


def test_authors_denoising_net_has_the_published_parameter_count():
    assert count_parameters(build_net("skip", 32, 3)) == 2_217_831


# The networks of a code z; a sized one (pixels: no network) is tested on its own below.
GENERATORS = sorted(set(NETS) - SIZED_NETS)


def make(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_net(name, 8, 3)


@pytest.mark.parametrize("name", GENERATORS)
def test_output_shape_and_range(name):
    net = make(name)
    side = 2 * size_multiple(net)
    out = net(torch.rand(2, 8, side, side + size_multiple(net)))
    assert out.shape == (2, 3, side, side + size_multiple(net))
    assert torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1  # sigmoid output


@pytest.mark.parametrize("name", GENERATORS)
def test_every_parameter_receives_a_gradient(name):
    net = make(name)
    side = 2 * size_multiple(net)
    net(torch.rand(1, 8, side, side)).mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_network(name):
    a, b = make(name), make(name)
    z = torch.rand(1, 8, 64, 64)
    assert torch.equal(a(z), b(z))
    torch.manual_seed(1)
    c = build_net(name, 8, 3)
    assert not torch.equal(a(z), c(z))


def test_pixels_are_the_parameters_of_an_image_of_fixed_size():
    torch.manual_seed(0)
    net = build_net("pixels", 1, 3, size=(5, 7))
    out = net(torch.zeros(1, 1, 5, 7, dtype=torch.float64))
    assert out.shape == (1, 3, 5, 7) and out.dtype == torch.float64
    assert float(out.detach().min()) > 0.45 and float(out.detach().max()) < 0.55  # mid-gray
    out.sum().backward()
    assert net.logits.grad is not None and net.logits.grad.abs().min() > 0


def test_hourglass_has_no_skip_branches():
    net = build_net("hourglass", 8, 3)
    assert isinstance(net, SkipNet) and all(ch == 0 for ch in net.config.skip)
    assert count_parameters(net) < count_parameters(build_net("skip", 8, 3))


@pytest.mark.parametrize("downsample", ["stride", "avg", "max"])
@pytest.mark.parametrize("upsample", ["nearest", "bilinear"])
@pytest.mark.parametrize("padding", ["reflection", "zero"])
def test_skip_options_keep_the_shape(downsample, upsample, padding):
    config = SkipConfig(
        down=(8, 16, 16),
        up=(8, 16, 16),
        skip=(0, 4, 4),
        filter_down=(5, 3, 3),
        downsample=downsample,
        upsample=upsample,
        padding=padding,
        conv1x1_up=False,
    )
    net = SkipNet(4, 1, config)
    assert net.size_multiple == 8
    assert net(torch.rand(1, 4, 24, 16)).shape == (1, 1, 24, 16)


def test_mismatched_levels_are_rejected():
    with pytest.raises(ValueError, match="levels"):
        SkipConfig(down=(8, 8), up=(8,), skip=(4, 4))
    with pytest.raises(ValueError, match="per-level"):
        SkipNet(4, 3, SkipConfig(down=(8, 8), up=(8, 8), skip=(4, 4), filter_down=(3, 3, 3)))


def test_unknown_network_names_the_choices():
    with pytest.raises(ValueError, match="skip"):
        build_net("vgg", 3, 3)


def test_a_net_with_wide_filters_runs_at_its_smallest_side():
    config = SkipConfig(down=(8,) * 6, up=(8,) * 6, skip=(0,) * 6, filter_down=5)
    net = SkipNet(2, 3, config)
    assert net.min_side == 3 * net.size_multiple  # a 3×3 coarsest map for the 5×5 padding
    side = min_side(net)
    assert net(torch.rand(1, 2, side, side)).shape == (1, 3, side, side)


def test_bf16_nets_pad_without_leaving_bf16():
    """Under CPU autocast no padded activation is copied up to fp32 (only the fp32 code is)."""
    net = build_net("skip", 8, 3)
    dtypes = []
    for module in net.modules():
        if isinstance(module, torch.nn.ReflectionPad2d):
            module.register_forward_hook(lambda m, i, o: dtypes.append((i[0].dtype, o.dtype)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(torch.rand(1, 8, 64, 64))
    assert dtypes and all(out == given for given, out in dtypes)
    assert sum(given == torch.bfloat16 for given, _ in dtypes) == len(dtypes) - 1
