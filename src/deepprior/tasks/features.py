"""Looking into a classifier: natural pre-images (``invert``) and activation maximisation.

invert: min ‖Φ(x) − Φ(x0)‖² / ‖Φ(x0)‖², Φ a classifier cut at a layer; maximize: the largest
activation of one unit. ``prior`` is ``dip`` (the deep image prior: x = f(z)) or ``tv`` (the
pixels fitted directly, with a TV-norm penalty weighted by ``tv_weight``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..canvas import to_tensor
from ..classifiers import Features, layer_path, load_classifier
from ..errors import UserError
from ..io import Picture
from ..job import Job
from ..nets.pixels import total_variation
from ..operators import Identity
from ..presets import INVERT_PRESETS, MAXIMIZE_PRESETS
from .base import Problem, Task, load_picture

PRIORS = {"dip": "authors", "tv": "tv"}  # prior -> preset


def _features(options: dict[str, Any]) -> Features:
    if options["prior"] not in PRIORS:
        raise UserError(f"unknown prior {options['prior']!r}; use {' or '.join(PRIORS)}")
    weight = options["tv_weight"]
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0:
        raise UserError(f"tv_weight must be a number ≥ 0, got {weight!r}")
    net = options["net"]
    if isinstance(net, nn.Module):  # a classifier from Python: used as it is, frozen
        model, name = net.eval().requires_grad_(False), type(net).__name__
    elif isinstance(net, str):
        model, name = load_classifier(net, options["weights"]), net
    else:
        raise UserError(f"net is a network name or an nn.Module, got {net!r}")
    return Features(model, layer_path(name, str(options["layer"]), model))


class FeatureMatch(nn.Module):
    """‖Φ(x) − Φ(x0)‖² / ‖Φ(x0)‖², plus ``tv_weight`` · TV(x)."""

    def __init__(self, features: Features, target: Tensor, tv_weight: float = 0.0):
        super().__init__()
        self.features = features
        self.register_buffer("target", target, persistent=False)
        self.norm = float(target.square().sum())
        self.tv_weight = tv_weight

    def relative_error(self, image: Tensor) -> Tensor:
        target: Tensor = self.get_buffer("target").to(image.device)
        return (self.features(image) - target).square().sum() / self.norm

    def forward(self, image: Tensor) -> Tensor:
        loss = self.relative_error(image)
        return loss + self.tv_weight * total_variation(image) if self.tv_weight else loss


class UnitActivation(nn.Module):
    """−(the unit's activation) + ``tv_weight`` · TV(x): minimised, it maximises the unit.

    A convolutional unit's activation is its channel's mean over the image."""

    def __init__(self, features: Features, unit: int, tv_weight: float = 0.0):
        super().__init__()
        self.features = features
        self.unit = unit
        self.tv_weight = tv_weight

    def activation(self, image: Tensor) -> Tensor:
        values = self.features(image)[:, self.unit]
        return values.mean()

    def forward(self, image: Tensor) -> Tensor:
        loss = -self.activation(image)
        return loss + self.tv_weight * total_variation(image) if self.tv_weight else loss


def build_invert(job: Job, options: dict[str, Any]) -> Problem:
    features = _features(options)
    picture = load_picture(job.inputs["image"])
    image = to_tensor(picture.pixels)
    target = _probe(features, image, options)
    if not float(target.square().sum()) > 0:
        raise UserError(
            f"the image's features at {options['layer']} are all zero: there is nothing to "
            "match; try an earlier layer or another image"
        )
    return Problem(
        picture=picture,
        observation=image,
        operator=Identity(),
        out_size=(picture.height, picture.width),
        out_channels=picture.channels,
        observed=torch.ones(1, 1, picture.height, picture.width),
        preset=PRIORS[options["prior"]],
        options=options,
        reference=picture.pixels,
        data_term=FeatureMatch(features, target, options["tv_weight"] * _uses_tv(options)),
        settings=_settings(options, features),
    )


def build_maximize(job: Job, options: dict[str, Any]) -> Problem:
    features = _features(options)
    size = options["size"]
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 1024:
        raise UserError(f"size is the image's side in pixels, 16 to 1024; got {size!r}")
    blank = np.zeros((size, size, 3), np.float32)
    units = _probe(features, to_tensor(blank), options).shape[1]
    unit = options["unit"]
    if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < units:
        raise UserError(
            f"layer {options['layer']} has {units} units (0 to {units - 1}); got unit {unit!r}"
        )
    return Problem(
        picture=Picture(blank),
        observation=to_tensor(blank),
        operator=Identity(),
        out_size=(size, size),
        out_channels=3,
        observed=torch.ones(1, 1, size, size),
        preset=PRIORS[options["prior"]],
        options=options,
        data_term=UnitActivation(features, unit, options["tv_weight"] * _uses_tv(options)),
        settings=_settings(options, features) | {"unit": unit},
    )


def _probe(features: Features, image: Tensor, options: dict[str, Any]) -> Tensor:
    """Φ(image), or a one-line error when the image is too small for the network."""
    try:
        with torch.no_grad():
            return features(image)
    except RuntimeError as error:
        h, w = image.shape[-2:]
        raise UserError(
            f"a {w}×{h} image is too small for {options['net']} up to {options['layer']} "
            f"({str(error).splitlines()[0]}); use a larger image"
        ) from None


def _uses_tv(options: dict[str, Any]) -> bool:
    return options["prior"] == "tv"


def _settings(options: dict[str, Any], features: Features) -> dict[str, Any]:
    net = options["net"] if isinstance(options["net"], str) else type(options["net"]).__name__
    weights = options["weights"]
    return {
        "classifier": net,
        "layer": options["layer"],
        "module": features.path,
        "weights": None if weights is None else str(weights),
        "prior": options["prior"],
        "tv_weight": options["tv_weight"] if _uses_tv(options) else None,
    }


def invert_metrics(problem: Problem, pixels: np.ndarray) -> dict[str, Any]:
    """The pre-image's relative feature error ‖Φ(x) − Φ(x0)‖² / ‖Φ(x0)‖²."""
    term = problem.data_term
    assert isinstance(term, FeatureMatch)
    with torch.no_grad():
        return {"feature_error": float(term.relative_error(to_tensor(pixels)))}


def maximize_metrics(problem: Problem, pixels: np.ndarray) -> dict[str, Any]:
    term = problem.data_term
    assert isinstance(term, UnitActivation)
    with torch.no_grad():
        return {"activation": float(term.activation(to_tensor(pixels)))}


FEATURE_OPTIONS = {
    "net": "alexnet",
    "layer": "fc6",
    "weights": None,
    "prior": "dip",
    "tv_weight": 0.05,
}

INVERT = Task(
    name="invert",
    summary="The natural pre-image of a classifier's features at a layer.",
    presets=INVERT_PRESETS,
    options=FEATURE_OPTIONS,
    default_stop="variance",
    output_tag=lambda options: f"{options['layer']}.{options['prior']}",
    build=build_invert,
    metrics=invert_metrics,
    inputs=(),
)

MAXIMIZE = Task(
    name="maximize",
    summary="An image that maximises one unit of a classifier (activation maximisation).",
    presets=MAXIMIZE_PRESETS,
    options={**FEATURE_OPTIONS, "layer": "fc8", "unit": 0, "size": 227},
    default_stop="variance",
    output_tag=lambda options: f"{options['layer']}-{options['unit']}.{options['prior']}",
    build=build_maximize,
    metrics=maximize_metrics,
    inputs=(),
    needs_image=False,
)
