"""Pre-images and activation maximisation, on randomly initialised classifiers (no weights)."""

import pytest
import torch
from torch import nn

import deepprior
from deepprior.classifiers import CLASSIFIERS, Features, load_classifier
from deepprior.errors import UserError

SMALL = {
    "net_options": {"down": (16, 16, 16), "up": (16, 16, 16), "skip": (4, 4, 4)},
    "lr": 0.01,
}


@pytest.mark.parametrize(
    ("name", "parameters"),
    [("alexnet", 61_100_840), ("vgg16", 138_357_544), ("vgg19", 143_667_240)],
)
def test_classifiers_have_torchvisions_size_and_parameter_names(name, parameters):
    model = CLASSIFIERS[name]()
    assert sum(p.numel() for p in model.parameters()) == parameters  # torchvision's counts
    names = list(model.state_dict())
    assert names[0] == "features.0.weight" and names[-1] == "classifier.6.bias"


def test_weights_load_from_a_file_and_bad_files_are_one_clear_error(tmp_path):
    random_alexnet = load_classifier("alexnet", "random")
    torch.save(random_alexnet.state_dict(), tmp_path / "alexnet.pth")
    loaded = load_classifier("alexnet", tmp_path / "alexnet.pth")
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            loaded.state_dict().values(), random_alexnet.state_dict().values(), strict=True
        )
    )
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    for file, message in (
        ("missing.pth", "does not exist"),
        ("junk.pth", "not a PyTorch"),
        ("other.pth", "torchvision's layout"),
    ):
        with pytest.raises(UserError, match=message):
            load_classifier("alexnet", tmp_path / file)


def test_missing_weights_name_the_file_needed(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError, match=r"alexnet-owt-7be5be79\.pth"):
        load_classifier("alexnet", None)
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(
        load_classifier("alexnet", "random").state_dict(), checkpoints / "alexnet-owt-7be5be79.pth"
    )
    assert load_classifier("alexnet", None) is not None  # found in torchvision's cache


def test_features_stop_at_the_layer_and_take_gray_images():
    model = load_classifier("alexnet", "random")
    conv1 = Features(model, "features.1")
    image = torch.rand(1, 3, 64, 64)
    assert conv1(image).shape == (1, 64, 15, 15)
    assert conv1(image[:, :1]).shape == (1, 64, 15, 15)
    assert Features(model, "classifier.6")(image).shape == (1, 1000)


def test_inverting_conv1_of_a_random_alexnet_recovers_the_image(photo):
    image = photo(48)
    model = load_classifier("alexnet", "random")
    before = [p.clone() for p in model.parameters()]
    pre_image, report = deepprior.invert(
        image, model, "features.1", steps=200, seed=0, device="cpu", overrides=SMALL
    )
    assert pre_image.shape == image.shape
    assert report["metrics"]["psnr"] > 25  # 29.7 dB when measured
    assert report["metrics"]["feature_error"] < 0.02  # 0.005 when measured
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_the_tv_prior_fits_pixels_and_lowers_the_feature_error(photo):
    image = photo(48)
    _, early = deepprior.invert(
        image, "alexnet", "conv1", weights="random", prior="tv", steps=5, seed=0, device="cpu"
    )
    _, late = deepprior.invert(
        image, "alexnet", "conv1", weights="random", prior="tv", steps=150, seed=0, device="cpu"
    )
    assert late["settings"]["net"] == "pixels" and late["settings"]["tv_weight"] == 0.05
    assert late["metrics"]["feature_error"] < 0.5 * early["metrics"]["feature_error"]


def test_maximisation_raises_the_units_activation():
    _, start = deepprior.maximize(
        "alexnet",
        "conv2",
        5,
        size=48,
        weights="random",
        steps=1,
        seed=0,
        device="cpu",
        overrides=SMALL,
    )
    image, end = deepprior.maximize(
        "alexnet",
        "conv2",
        5,
        size=48,
        weights="random",
        steps=60,
        seed=0,
        device="cpu",
        overrides=SMALL,
    )
    assert image.shape == (48, 48, 3)
    assert end["metrics"]["activation"] > 1.0 > 10 * start["metrics"]["activation"]


def test_any_module_is_a_classifier_by_module_path(photo):
    tiny = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    _, report = deepprior.invert(
        photo(32), tiny, "1", steps=3, seed=0, device="cpu", overrides=SMALL
    )
    assert report["settings"]["classifier"] == "Sequential" and report["settings"]["module"] == "1"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda img: deepprior.invert(img, "alexnet", "conv9", weights="random"),
            "no layer 'conv9'",
        ),
        (lambda img: deepprior.invert(img, "resnet50", "fc", weights="random"), "unknown network"),
        (
            lambda img: deepprior.invert(img, "alexnet", "fc6", weights="random", prior="l2"),
            "unknown prior",
        ),
        (
            lambda img: deepprior.maximize("alexnet", "fc8", 1000, weights="random", size=64),
            "1000 units",
        ),
        (lambda img: deepprior.maximize("alexnet", "fc8", 1, weights="random", size=8), "size"),
        (lambda img: deepprior.invert(img, "alexnet", "fc6", weights="random"), "too small"),
        (lambda img: deepprior.invert(img, nn.Sequential(nn.Threshold(1e9, 0.0)), "0"), "all zero"),
    ],
    ids=["layer", "network", "prior", "unit", "size", "too small", "zero features"],
)
def test_feature_mistakes_are_the_package_error(photo, call, message):
    with pytest.raises(UserError, match=message):
        call(photo(32))


def test_cli_invert_and_maximize(run_cli, tmp_path, photo, capsys):
    from deepprior.io import Picture, write_image

    write_image(tmp_path / "in.png", Picture(photo(64)))
    argv = ["invert", str(tmp_path / "in.png"), "--layer", "conv1", "--weights", "random"]
    assert run_cli(*argv, "--prior", "tv", "--steps", "3", "-q") == 0
    assert (tmp_path / "in.conv1.tv.png").exists()
    out = tmp_path / "unit.png"
    assert (
        run_cli(
            "maximize",
            "--unit",
            "7",
            "--size",
            "64",
            "--weights",
            "random",
            "--prior",
            "tv",
            "--steps",
            "3",
            "-o",
            str(out),
            "-q",
        )
        == 0
    )
    assert out.exists()
    capsys.readouterr()
    assert (
        run_cli("maximize", "--unit", "1000", "--weights", "random", "-o", str(tmp_path / "x.png"))
        == 2
    )
    assert run_cli("maximize", "--weights", "random") == 2  # no -o
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "1000 units" in err[0] and "-o OUTPUT" in err[1]
    assert not (tmp_path / "x.png").exists()
