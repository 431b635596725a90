"""The library API: restore numpy arrays or torch tensors; each call is one job for the runner.

Images are H×W or H×W×C, uint8, uint16 or float in [0, 1]; results come back in the input's
type and layout, with the run report as a dict. ``**options`` are the :class:`~deepprior.job.
Job`'s fields (``preset``, ``overrides``, ``seed``, ``device``, ``precision``, ``engine``,
``steps``, ``stop``, ``max_steps``, ``quality``, ``runs``, ``ensemble``, ``patience``,
``average``, ``time_limit``) and ``progress`` / ``callbacks``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .errors import UserError
from .fitting import Callback
from .io import from_array, to_array
from .job import Job
from .runner import run

ArrayLike = np.ndarray | Tensor
JOB_FIELDS = tuple(f.name for f in fields(Job) if f.name not in ("task", "inputs", "options"))


def run_arrays(
    task: str,
    image: ArrayLike | None,
    *,
    reference: ArrayLike | None = None,
    inputs: dict[str, Any] | None = None,
    task_options: dict[str, Any] | None = None,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
    **options: Any,
) -> tuple[ArrayLike, dict[str, Any]]:
    """Run ``task`` on an array or tensor; the result comes back in the input's type."""
    unknown = sorted(set(options) - set(JOB_FIELDS))
    if unknown:
        raise UserError(f"unknown argument {', '.join(unknown)}; use {', '.join(JOB_FIELDS)}")
    if image is None:  # a task that makes its image from nothing
        job = Job(task=task, inputs=dict(inputs or {}), options=task_options or {}, **options)
        outcome = run(job, callbacks=callbacks, progress=progress)
        return to_array(outcome.picture, np.float32), outcome.report.to_dict()
    as_tensor = isinstance(image, Tensor)
    array = image.detach().cpu().numpy() if isinstance(image, Tensor) else np.asarray(image)
    picture = from_array(array)
    given: dict[str, Any] = {"image": picture, **(inputs or {})}
    if reference is not None:
        given["reference"] = reference
    job = Job(task=task, inputs=given, options=task_options or {}, **options)
    outcome = run(job, callbacks=callbacks, progress=progress)
    dtype = array.dtype
    out = to_array(outcome.picture, dtype if dtype in (np.uint8, np.uint16) else np.float32)
    out = (out[:, :, 0] if array.ndim == 2 and out.shape[2] == 1 else out).astype(dtype)
    return (torch.from_numpy(out) if as_tensor else out), outcome.report.to_dict()


def denoise(
    image: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    sigma: float | None = None,
    wiener: bool | None = None,
    **options: Any,
) -> tuple[ArrayLike, dict[str, Any]]:
    """Denoise an image; ``sigma`` is the noise level in 8-bit levels when known.

    ``steps="auto"`` (the default) stops by a rule (``stop``; see :mod:`deepprior.stopping`);
    ``runs`` averages that many independent fits; ``average`` sets the output's tail
    averaging (EMA decay; 0: off). ``wiener``: end with an empirical Wiener filter guided by
    the fit and BM3D's first step (None: the quality level's choice: on at ``fast``,
    ``default`` and ``best``, off at ``paper``).
    """
    options["task_options"] = {"sigma": sigma, "wiener": wiener}
    return run_arrays("denoise", image, reference=reference, **options)


def super_resolve(
    image: ArrayLike,
    scale: int,
    *,
    reference: ArrayLike | None = None,
    kernel: str = "lanczos2",
    back_project: bool | None = None,
    **options: Any,
) -> tuple[ArrayLike, dict[str, Any]]:
    """Upscale a low-resolution image ``scale`` times; with an HR ``reference`` the report
    holds the paper's metrics. ``back_project``: end by back-projecting the result onto the
    input (None: the quality level's choice: on at ``fast``, ``default`` and ``best``, off at
    ``paper``)."""
    return run_arrays(
        "sr",
        image,
        reference=reference,
        task_options={"scale": scale, "kernel": kernel, "back_project": back_project},
        **options,
    )


def inpaint(
    image: ArrayLike,
    mask: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    keep_known: bool = True,
    biharmonic: bool | None = None,
    **options: Any,
) -> tuple[ArrayLike, dict[str, Any]]:
    """Fill the holes of an image; ``mask`` is H×W, non-zero (True) = known pixel.
    ``biharmonic``: end by averaging the fit with biharmonic interpolation (None: the quality
    level's choice: on at ``fast``, ``default`` and ``best`` where scattered pixels are
    missing, off at ``paper``)."""
    return run_arrays(
        "inpaint",
        image,
        reference=reference,
        inputs={"mask": mask},
        task_options={"keep_known": keep_known, "biharmonic": biharmonic},
        **options,
    )


def restore(
    image: ArrayLike,
    degradation: str | Callable[[Tensor], Tensor] | None = None,
    *,
    reference: ArrayLike | None = None,
    **options: Any,
) -> tuple[ArrayLike, dict[str, Any]]:
    """Undo a degradation: none given is blind restoration (JPEG artefacts); a spec such as
    ``"blur:gaussian:2+downsample:2"`` or any operator, ``nn.Module`` or differentiable
    function of a (1, C, H, W) tensor is fitted through (see :mod:`deepprior.degradations`).
    A function that changes the shape says how as an :class:`~deepprior.operators.Operator`
    (``source_shape``)."""
    return run_arrays(
        "restore", image, reference=reference, task_options={"degradation": degradation}, **options
    )


def flash(
    no_flash: ArrayLike,
    flash: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    **options: Any,
) -> tuple[ArrayLike, dict[str, Any]]:
    """The no-flash image's light with the flash image's detail (the flash image is the code)."""
    return run_arrays("flash", no_flash, reference=reference, inputs={"flash": flash}, **options)


def invert(
    image: ArrayLike,
    net: str | nn.Module = "alexnet",
    layer: str = "fc6",
    *,
    weights: str | None = None,
    prior: str = "dip",
    tv_weight: float = 0.05,
    **options: Any,
) -> tuple[ArrayLike, dict[str, Any]]:
    """The natural pre-image of ``image``'s features at ``layer`` of a classifier.

    ``net``: ``alexnet``, ``vgg16``, ``vgg19`` (weights from ``weights``, a file, or
    torchvision's cache; ``"random"``: untrained) or any classifier as an ``nn.Module``
    (``layer`` then a module path). ``prior``: ``dip`` or ``tv``. The report's
    ``feature_error`` is ‖Φ(x) − Φ(x0)‖² / ‖Φ(x0)‖²."""
    task_options: dict[str, Any] = {"net": net, "layer": layer, "weights": weights}
    task_options |= {"prior": prior, "tv_weight": tv_weight}
    return run_arrays("invert", image, task_options=task_options, **options)


def maximize(
    net: str | nn.Module = "alexnet",
    layer: str = "fc8",
    unit: int = 0,
    *,
    size: int = 227,
    weights: str | None = None,
    prior: str = "dip",
    tv_weight: float = 0.05,
    **options: Any,
) -> tuple[ArrayLike, dict[str, Any]]:
    """A ``size``×``size`` RGB image (float32) that maximises ``unit`` at ``layer``."""
    task_options: dict[str, Any] = {"net": net, "layer": layer, "unit": unit, "size": size}
    task_options |= {"weights": weights, "prior": prior, "tv_weight": tv_weight}
    return run_arrays("maximize", None, task_options=task_options, **options)
