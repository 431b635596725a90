"""Trained classifiers to look into: AlexNet and VGG-16/19, frozen, cut at a layer.

The networks are defined here in torchvision's module layout (``features``, ``avgpool``,
``classifier``), so that torchvision's weight files load unchanged, without torchvision: its
wheels pin one exact torch release each, and depending on it would tie this package's torch
to it. Nothing is downloaded: weights come from a file the user names, or from torchvision's
cache (``$TORCH_HOME/hub/checkpoints``) when the file is already there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM = "random"  # weights: a random initialisation (seed 0), for tests and experiments


def alexnet() -> nn.Module:
    """AlexNet as torchvision builds it (the "one weird trick" variant, 61.1 M parameters)."""
    features = nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )
    classifier = nn.Sequential(
        nn.Dropout(),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, 1000),
    )
    return _Classifier(features, nn.AdaptiveAvgPool2d((6, 6)), classifier)


VGG_LAYOUTS = {
    "vgg16": (64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0),
    "vgg19": (64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, *(512, 512, 512, 512, 0) * 2),
}


def vgg(name: str) -> nn.Module:
    """VGG-16 or VGG-19 as torchvision builds them (no batch norm); 0 in the layout = max-pool."""
    layers: list[nn.Module] = []
    channels = 3
    for width in VGG_LAYOUTS[name]:
        if width == 0:
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(),
        nn.Linear(4096, 1000),
    )
    return _Classifier(nn.Sequential(*layers), nn.AdaptiveAvgPool2d((7, 7)), classifier)


class _Classifier(nn.Module):
    """features -> avgpool -> flatten -> classifier, with torchvision's parameter names."""

    def __init__(self, features: nn.Module, avgpool: nn.Module, classifier: nn.Module):
        super().__init__()
        self.features = features
        self.avgpool = avgpool
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(pooled, 1))


CLASSIFIERS: dict[str, Callable[[], nn.Module]] = {
    "alexnet": alexnet,
    "vgg16": lambda: vgg("vgg16"),
    "vgg19": lambda: vgg("vgg19"),
}
# torchvision's file names for the ImageNet weights (IMAGENET1K_V1).
WEIGHT_FILES = {
    "alexnet": "alexnet-owt-7be5be79.pth",
    "vgg16": "vgg16-397923af.pth",
    "vgg19": "vgg19-dcbb9e9d.pth",
}
# The paper's AlexNet layer names: each the output of its ReLU (fc8: the logits).
ALEXNET_LAYERS = {
    "conv1": "features.1",
    "conv2": "features.4",
    "conv3": "features.7",
    "conv4": "features.9",
    "conv5": "features.11",
    "fc6": "classifier.2",
    "fc7": "classifier.5",
    "fc8": "classifier.6",
}


def torch_cache() -> Path:
    """torchvision's weight cache: ``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch`` by
    default, or under ``$XDG_CACHE_HOME``)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch"
    return Path(os.environ.get("TORCH_HOME", default)) / "hub" / "checkpoints"


def load_classifier(name: str, weights: str | os.PathLike[str] | None) -> nn.Module:
    """The named classifier, frozen (eval mode, no gradients to its weights).

    ``weights``: a state-dict file, ``"random"`` (seed 0), or None for torchvision's cache.
    """
    if name not in CLASSIFIERS:
        raise UserError(f"unknown network {name!r}; choose one of {', '.join(CLASSIFIERS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLASSIFIERS[name]()
    if weights != RANDOM:
        model.load_state_dict(_state_dict(name, weights))
    model.eval()
    model.requires_grad_(False)
    return model


def _state_dict(name: str, weights: str | os.PathLike[str] | None) -> dict[str, Tensor]:
    expected = WEIGHT_FILES[name]
    path = Path(weights) if weights is not None else torch_cache() / expected
    if not path.is_file():
        where = f"{path} does not exist" if weights is not None else f"not in {path.parent}"
        raise UserError(
            f"{name}'s weights: {where}; give the weights file (torchvision's {expected}) "
            "as weights, or 'random' for an untrained network"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path} is not a PyTorch weights file ({first})") from None
    model_keys = set(CLASSIFIERS[name]().state_dict())
    if not isinstance(state, dict) or set(state) != model_keys:
        raise UserError(
            f"{path} does not hold {name}'s weights in torchvision's layout (expected {expected})"
        )
    return state


def layer_path(name: str, layer: str, model: nn.Module) -> str:
    """A layer by the paper's name (AlexNet) or by module path (any network)."""
    if name == "alexnet" and layer in ALEXNET_LAYERS:
        return ALEXNET_LAYERS[layer]
    paths = dict(model.named_modules())
    if layer in paths and layer:
        return layer
    names = ", ".join(ALEXNET_LAYERS) if name == "alexnet" else "features.N or classifier.N"
    raise UserError(f"{name} has no layer {layer!r}; give one of {names} (a module path)")


class _Reached(Exception):
    """Raised by the hook: the layer is computed, the rest of the network is not needed."""


class Features(nn.Module):
    """Φ: an image in [0, 1] (N, 3, H, W) -> the activations of one layer of a classifier.

    The image is normalised as the network expects (ImageNet mean and standard deviation);
    the network stops at the layer.
    """

    def __init__(self, model: nn.Module, path: str):
        super().__init__()
        self.model = model
        self.path = path
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)
        self.layer = dict(model.named_modules())[path]
        self._captured: Tensor | None = None

    def _capture(self, module: nn.Module, args: object, output: Tensor) -> None:
        self._captured = output.clone()  # a ReLU in place would change it afterwards
        raise _Reached

    def forward(self, image: Tensor) -> Tensor:
        if image.shape[1] == 1:
            image = image.expand(-1, 3, -1, -1)
        x = (image - self.get_buffer("mean")) / self.get_buffer("std")
        hook = self.layer.register_forward_hook(self._capture)  # only while this runs
        try:
            with contextlib.suppress(_Reached):
                self.model(x)
        finally:
            hook.remove()
        assert self._captured is not None, f"the layer {self.path} was not reached"
        captured, self._captured = self._captured, None
        return captured
