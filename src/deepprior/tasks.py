"""Tasks: a preset and an operator turned into a fit, and the fit into an image and a report."""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .baselines import inpaint_biharmonic, upscale
from .callbacks import ExponentialAverage, History, Progress
from .engine import FAST, REFERENCE, Engine, bf16_supported, plan_memory
from .errors import UserError
from .fit import Backtracking, Callback, FitResult, Operator, fit
from .inputs import meshgrid_code, noise_code
from .io import Picture, from_array, to_array
from .masks import MaskShape, validate
from .metrics import psnr, psnr_y, ssim
from .nets import build_net, count_parameters, min_side, size_multiple
from .operators import Downsample, Mask
from .presets import DENOISE_PRESETS, INPAINT_PRESETS, SR_PRESETS, Preset, get_preset
from .report import versions
from .stopping import Stopping, StoppingRule, plan_steps


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; asking for a missing one is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                "--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto"
            )
        return torch.device("cuda")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(
                "--device mps was asked for but Apple's MPS is not available; "
                "use --device cpu or auto"
            )
        return torch.device("mps")
    raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or mps")


def resolve_engine(engine: str | Engine, precision: str, device: torch.device) -> Engine:
    """The engine by name, in the precision asked for; ``auto`` is bf16 where it is native.

    bf16 is chosen automatically only on CPUs with native bfloat16 arithmetic, where
    ``benchmarks/denoise.py --precision`` showed it within 0.1 dB of fp32; elsewhere fp32.
    """
    if isinstance(engine, Engine):
        chosen = engine
    elif engine in ENGINES:
        chosen = ENGINES[engine]
    else:
        raise UserError(f"unknown engine {engine!r}; use {' or '.join(ENGINES)}")
    if precision == "auto":
        native = device.type == "cpu" and bf16_supported(device)
        return chosen.with_precision("bf16" if native else "fp32")
    if precision == "bf16" and not bf16_supported(device):
        raise UserError(
            f"--precision bf16 needs bfloat16 hardware, which this {device.type} "
            "lacks; use --precision fp32 or auto"
        )
    if precision not in ("fp32", "bf16"):
        raise UserError(f"unknown precision {precision!r}; use fp32, bf16 or auto")
    return chosen.with_precision(precision)  # type: ignore[arg-type]


ENGINES: dict[str, Engine] = {"fast": FAST, "reference": REFERENCE}


def padded_layout(
    height: int, width: int, multiple: int, smallest: int | None = None
) -> tuple[int, int, int, int]:
    """(padded height, padded width, top, left): the smallest multiple-sized canvas, centred.

    The canvas is at least ``smallest`` wide (default: two multiples, so that the coarsest
    level is 2×2 or more, as BatchNorm needs more than one value per channel).
    """
    smallest = 2 * multiple if smallest is None else smallest
    padded_h = max(math.ceil(height / multiple) * multiple, smallest)
    padded_w = max(math.ceil(width / multiple) * multiple, smallest)
    return padded_h, padded_w, (padded_h - height) // 2, (padded_w - width) // 2


def to_tensor(pixels: np.ndarray, device: torch.device) -> Tensor:
    """H×W×C float array -> (1, C, H, W) float32 tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None].to(device)


def to_numpy(image: Tensor) -> np.ndarray:
    """(1, C, H, W) tensor -> H×W×C float32 array in [0, 1]."""
    return image[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


@dataclass
class Run:
    """A finished (or interrupted) fit with what the report needs."""

    image: np.ndarray
    result: FitResult
    history: History
    report: dict[str, Any]
    rule: StoppingRule | None = None


def run_fit(
    observation: Tensor,
    operator: Operator,
    preset: Preset,
    *,
    task: str,
    out_channels: int,
    out_size: tuple[int, int],
    seed: int | None = None,
    device: str = "auto",
    reference: np.ndarray | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    history_every: int = 10,
    precision: str = "auto",
    engine: str | Engine = "fast",
    stopping: Stopping | None = None,
    runs: int = 1,
    watch_only: bool = False,
    average: float | None = None,
) -> Run:
    """Build the net and the code from ``preset``, fit ``runs`` times, and assemble the report.

    With ``stopping`` the fit ends when its rule fires (``preset.steps`` is then the cap) and
    the rule's chosen iterate is the result; ``watch_only`` lets the fit run to the cap and
    only records the rule's choice in ``Run.rule`` (for benchmarks). With ``runs`` > 1 the
    results of independent fits (seeds ``seed``, ``seed`` + 1000, …) are averaged. ``average``
    overrides the preset's output averaging (an EMA decay; 0 turns it off).

    Shape:
        observation: (1, C_y, h, w) on any device; ``out_size`` is the restored (H, W).
    """
    if runs < 1:
        raise UserError(f"--runs must be at least 1, got {runs}")
    if average is not None:
        if not 0 <= average < 1:
            raise UserError(f"--average must be in [0, 1), got {average}")
        preset = replace(preset, average_decay=average or None)
    started = time.perf_counter()
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    if stopping is not None and watch_only:
        stopping = replace(stopping, watch_only=True)
    request = _FitRequest(
        observation,
        operator,
        preset,
        out_channels=out_channels,
        out_size=out_size,
        device=device,
        reference=reference,
        callbacks=callbacks,
        progress=progress,
        history_every=history_every,
        precision=precision,
        engine=engine,
        stopping=stopping,
    )
    fits = []
    for index in range(runs):
        label = task if runs == 1 else f"{task} {index + 1}/{runs}"
        fits.append(_fit_once(request, task=label, seed=seed + 1000 * index))
        if fits[-1].result.interrupted:
            break
    finished = [f for f in fits if f.result.steps_run] or fits  # an interrupted run may have none
    image = np.mean([f.image for f in finished], axis=0).astype(np.float32)
    run = fits[-1]
    per_run = [
        {key: f.report[key] for key in ("seed", "steps_run", "stopping") if key in f.report}
        | {"metrics": f.report.get("metrics", {})}
        for f in fits
    ]
    report = dict(run.report)
    report["seed"] = seed
    report["seconds_total"] = round(time.perf_counter() - started, 3)
    if runs > 1:
        report["runs"] = per_run
        report["steps_run"] = sum(f.result.steps_run for f in fits)
        report["interrupted"] = run.result.interrupted
        report.pop("history", None)
    report.pop("metrics", None)
    if reference is not None and any(f.result.steps_run for f in fits):
        report["metrics"] = {"psnr": psnr(image, reference), "ssim": ssim(image, reference)}
        if runs == 1:
            best = run.history.best("psnr_average" if run.result.average is not None else "psnr")
            if best is not None:
                report["metrics"]["best_along_run"] = best
    return Run(image, run.result, run.history, report, run.rule)


@dataclass(frozen=True)
class _FitRequest:
    """What every one of ``run_fit``'s fits shares (all but the seed and the label)."""

    observation: Tensor
    operator: Operator
    preset: Preset
    out_channels: int
    out_size: tuple[int, int]
    device: str
    reference: np.ndarray | None
    callbacks: Sequence[Callback]
    progress: bool
    history_every: int
    precision: str
    engine: str | Engine
    stopping: Stopping | None


def _fit_once(request: _FitRequest, *, task: str, seed: int) -> Run:
    """One fit from ``seed``: net and code built, memory planned, report assembled."""
    preset, operator, stopping, reference = (
        request.preset,
        request.operator,
        request.stopping,
        request.reference,
    )
    out_channels = request.out_channels
    started = time.perf_counter()
    torch_device = resolve_device(request.device)
    chosen_engine = resolve_engine(request.engine, request.precision, torch_device)
    height, width = request.out_size

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_net(
            preset.net,
            preset.code_channels if preset.code == "noise" else 2,
            out_channels,
            **preset.net_options,
        )
    padded_h, padded_w, top, left = padded_layout(height, width, size_multiple(net), min_side(net))
    if preset.code == "meshgrid":
        z = meshgrid_code(padded_h, padded_w)
    else:
        code_gen = torch.Generator().manual_seed(seed + 1)
        z = noise_code(
            preset.code_channels, padded_h, padded_w, scale=preset.code_scale, generator=code_gen
        )
    net, z = net.to(torch_device), z.to(torch_device)
    try:
        plan = plan_memory(net, z.shape[1], (padded_h, padded_w), chosen_engine, torch_device)
    except MemoryError as error:
        raise UserError(
            f"a {width}×{height} image does not fit on {torch_device}: {error}; use a smaller "
            "image, --precision bf16, or a device with more memory"
        ) from None
    chosen_engine = plan.engine
    jitter_gen = torch.Generator(device=torch_device).manual_seed(seed + 2)
    y = request.observation.to(torch_device)
    if isinstance(operator, nn.Module):
        operator = operator.to(torch_device)

    ref_tensor = to_tensor(reference, torch_device) if reference is not None else None
    history = History(every=request.history_every, reference=ref_tensor)
    chain: list[Callback] = []
    if preset.average_decay is not None:
        chain.append(ExponentialAverage(preset.average_decay))
    rule = stopping.rule(operator, y) if stopping is not None else None
    chain += [
        history,
        *([rule] if rule else []),
        *request.callbacks,
        Progress(task, quiet=not request.progress),
    ]
    backtracking = Backtracking(preset.backtrack_db) if preset.backtrack_db is not None else None

    result = fit(
        y,
        operator,
        net,
        z,
        steps=preset.steps,
        lr=preset.lr,
        input_noise=preset.input_noise,
        crop=(top, left, height, width),
        weight=stopping.train_weight if stopping is not None else None,
        backtracking=backtracking,
        callbacks=chain,
        generator=jitter_gen,
        engine=chosen_engine,
    )
    image = (
        to_numpy(result.image)
        if result.steps_run
        else np.zeros((height, width, out_channels), np.float32)
    )
    report: dict[str, Any] = {
        "task": task,
        "settings": preset.to_dict(),
        "seed": seed,
        "device": str(torch_device),
        "precision": chosen_engine.precision,
        "engine": chosen_engine.to_dict(),
        "memory": plan.to_dict(),
        "versions": versions(),
        "net_parameters": count_parameters(net),
        "image_size": [height, width],
        "padded_size": [padded_h, padded_w],
        "steps_run": result.steps_run,
        "stopping": (
            {"steps": "auto", "cap": preset.steps, **stopping.describe(), **rule.summary()}
            if stopping is not None and rule is not None
            else {"steps": preset.steps}
        ),
        "seconds_total": round(time.perf_counter() - started, 3),
        "seconds_per_step": round(result.seconds_per_step, 5),
        "backtracks": result.backtracks,
        "interrupted": result.interrupted,
        "history": history.records,
    }
    if reference is not None and result.steps_run:
        report["metrics"] = {"psnr": psnr(image, reference), "ssim": ssim(image, reference)}
    return Run(image, result, history, report, rule)


def _check_reference(picture: Picture, reference: Picture | None) -> np.ndarray | None:
    if reference is None:
        return None
    if reference.pixels.shape != picture.pixels.shape:
        raise UserError(
            f"the reference is {reference.width}×{reference.height}×{reference.channels} but the "
            f"input is {picture.width}×{picture.height}×{picture.channels}; give the clean "
            "version of the same image"
        )
    return reference.pixels


def denoise_picture(
    picture: Picture,
    *,
    preset: str | Preset = "authors",
    steps: int | str | None = "auto",
    stop: str = "auto",
    sigma: float | None = None,
    max_steps: int | None = None,
    reference: Picture | None = None,
    callbacks: Sequence[Callback] = (),
    **options: Any,
) -> tuple[Picture, Run]:
    """Blind denoising (data term ‖x − x0‖²) of a Picture; alpha and bit depth are kept.

    With ``steps="auto"`` the fit stops by ``stop`` (auto: the noise-level rule, with σ in 8-bit
    levels from ``sigma`` or estimated from the image); ``max_steps`` caps it (default: the
    preset's steps).
    """
    chosen = preset if isinstance(preset, Preset) else get_preset(DENOISE_PRESETS, preset)
    ref = _check_reference(picture, reference)
    observation = to_tensor(picture.pixels, torch.device("cpu"))
    chosen, stopping = plan_steps(
        chosen,
        steps,
        stop,
        max_steps,
        default_rule="noise-level",
        observed=torch.ones(1, 1, picture.height, picture.width),
        seed=options.get("seed"),
        sigma=None if sigma is None else sigma / 255,
        estimate_from=picture.pixels,
    )
    run = run_fit(
        observation,
        _identity,
        chosen,
        stopping=stopping,
        task="denoise",
        out_channels=picture.channels,
        out_size=(picture.height, picture.width),
        reference=ref,
        callbacks=callbacks,
        **options,
    )
    if ref is not None and "metrics" in run.report:
        run.report["metrics"]["psnr_input"] = psnr(picture.pixels, ref)
    return picture.with_pixels(run.image), run


def _identity(x: Tensor) -> Tensor:
    return x


SCALES = (2, 3, 4, 8)


def super_resolve_picture(
    picture: Picture,
    scale: int,
    *,
    preset: str | Preset | None = None,
    steps: int | str | None = "auto",
    stop: str = "auto",
    max_steps: int | None = None,
    reference: Picture | None = None,
    kernel: str = "lanczos2",
    callbacks: Sequence[Callback] = (),
    **options: Any,
) -> tuple[Picture, Run]:
    """Super-resolution ×scale (data term ‖d(x) − x0‖², d the downsampler) of a Picture.

    The result is ``scale`` times larger in each side; alpha is upscaled with Lanczos.
    With an HR ``reference``, the report adds the paper's protocol (luma PSNR with a border of
    ``scale`` pixels removed) for the result and for bicubic and Lanczos upscaling.
    """
    if scale not in SCALES:
        raise UserError(f"scale {scale} is not supported; use one of {', '.join(map(str, SCALES))}")
    chosen = preset if isinstance(preset, Preset) else get_preset(SR_PRESETS, preset or f"x{scale}")
    hr_size = (picture.height * scale, picture.width * scale)
    ref = None
    if reference is not None:
        if reference.pixels.shape != (*hr_size, picture.channels):
            raise UserError(
                f"the reference is {reference.width}×{reference.height}×{reference.channels}, but "
                f"×{scale} of the {picture.width}×{picture.height}×{picture.channels} input is "
                f"{hr_size[1]}×{hr_size[0]}×{picture.channels}; give the matching HR image"
            )
        ref = reference.pixels
    observation = to_tensor(picture.pixels, torch.device("cpu"))
    chosen, stopping = plan_steps(
        chosen,
        steps,
        stop,
        max_steps,
        default_rule="validation",
        observed=torch.ones(1, 1, picture.height, picture.width),
        seed=options.get("seed"),
    )
    run = run_fit(
        observation,
        Downsample(scale, kernel),
        chosen,
        stopping=stopping,
        task="sr",
        out_channels=picture.channels,
        out_size=hr_size,
        reference=ref,
        callbacks=callbacks,
        **options,
    )
    run.report["settings"].update(scale=scale, kernel=kernel)
    if ref is not None and "metrics" in run.report:
        metrics = run.report["metrics"]
        metrics["psnr_y"] = psnr_y(run.image, ref, shave=scale)
        for method in ("bicubic", "lanczos"):
            metrics[f"psnr_y_{method}"] = psnr_y(upscale(picture.pixels, scale, method), ref, scale)
        metrics["protocol"] = f"psnr_y: BT.601 luma, {scale}-pixel border removed"
    alpha = (
        None
        if picture.alpha is None
        else upscale(picture.alpha[:, :, None], scale, "lanczos")[:, :, 0]
    )
    return Picture(run.image, alpha=alpha, bit_depth=picture.bit_depth), run


def inpaint_picture(
    picture: Picture,
    known: np.ndarray,
    *,
    preset: str | Preset | None = None,
    steps: int | str | None = "auto",
    stop: str = "auto",
    max_steps: int | None = None,
    reference: Picture | None = None,
    keep_known: bool = True,
    callbacks: Sequence[Callback] = (),
    **options: Any,
) -> tuple[Picture, Run]:
    """Inpainting (data term ‖(x − x0) ⊙ m‖², m = ``known``) of a Picture.

    Without ``preset``, one of the authors' settings is chosen from the mask's shape (see
    :class:`deepprior.masks.MaskShape`); the report says which and why. By default the known
    pixels of the result are the input's own (``keep_known``).
    """
    known = validate(known, picture.height, picture.width)
    shape = MaskShape.of(known)
    if isinstance(preset, Preset):
        chosen = preset
    else:
        chosen = get_preset(INPAINT_PRESETS, preset or shape.preset_name())
    ref = _check_reference(picture, reference)
    mask = torch.from_numpy(known.astype(np.float32))[None, None]
    observation = to_tensor(picture.pixels * known[:, :, None], torch.device("cpu"))
    chosen, stopping = plan_steps(
        chosen,
        steps,
        stop,
        max_steps,
        default_rule="validation",
        observed=mask,
        seed=options.get("seed"),
    )
    run = run_fit(
        observation,
        Mask(mask),
        chosen,
        stopping=stopping,
        task="inpaint",
        out_channels=picture.channels,
        out_size=(picture.height, picture.width),
        reference=ref,
        callbacks=callbacks,
        **options,
    )
    image = np.where(known[:, :, None], picture.pixels, run.image) if keep_known else run.image
    run.report["mask"] = {
        **asdict(shape),
        "preset": chosen.name,
        "chosen_automatically": preset is None,
        "keep_known": keep_known,
    }
    if ref is not None and "metrics" in run.report:
        run.report["metrics"].update(
            psnr=psnr(image, ref),
            ssim=ssim(image, ref),
            psnr_input=psnr(picture.pixels * known[:, :, None], ref),
            psnr_biharmonic=psnr(inpaint_biharmonic(picture.pixels, known), ref),
        )
    return picture.with_pixels(image), run


ArrayLike = np.ndarray | Tensor


def _as_picture(image: ArrayLike) -> tuple[Picture, Callable[[Picture], ArrayLike]]:
    """Accept H×W(×C) arrays or tensors; return a Picture and the way back to the input type."""
    if isinstance(image, Tensor):
        array = image.detach().cpu().numpy()
        as_tensor = True
    else:
        array, as_tensor = np.asarray(image), False
    dtype = array.dtype
    picture = from_array(array)

    def back(result: Picture) -> ArrayLike:
        out = to_array(result, dtype if dtype in (np.uint8, np.uint16) else np.float32)
        out = out[:, :, 0] if array.ndim == 2 else out
        return torch.from_numpy(out.astype(dtype)) if as_tensor else out.astype(dtype)

    return picture, back


def _on_arrays(
    task: Callable[..., tuple[Picture, Run]],
    image: ArrayLike,
    reference: ArrayLike | None,
    *args: Any,
    **options: Any,
) -> tuple[ArrayLike, dict[str, Any]]:
    """Run a Picture task on arrays or tensors; the result comes back in the input's type."""
    picture, back = _as_picture(image)
    ref = _as_picture(reference)[0] if reference is not None else None
    restored, run = task(picture, *args, reference=ref, **options)
    return back(restored), run.report


def denoise(
    image: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    preset: str | Preset = "authors",
    sigma: float | None = None,
    steps: int | str | None = "auto",
    stop: str = "auto",
    max_steps: int | None = None,
    runs: int = 1,
    average: float | None = None,
    seed: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
) -> tuple[ArrayLike, dict[str, Any]]:
    """Denoise an H×W or H×W×C image (uint8, uint16 or float in [0, 1]; numpy or torch).

    Returns the restored image in the input's type and layout, and the run report.
    ``steps="auto"`` stops by a rule (``stop``; see :mod:`deepprior.stopping`), ``sigma`` is the
    noise level in 8-bit levels when known, ``runs`` averages that many independent fits,
    ``average`` sets the output's tail averaging (EMA decay; 0: off).
    """
    return _on_arrays(
        denoise_picture,
        image,
        reference,
        preset=preset,
        sigma=sigma,
        steps=steps,
        stop=stop,
        max_steps=max_steps,
        runs=runs,
        average=average,
        seed=seed,
        device=device,
        precision=precision,
        progress=progress,
        callbacks=callbacks,
    )


def super_resolve(
    image: ArrayLike,
    scale: int,
    *,
    reference: ArrayLike | None = None,
    preset: str | Preset | None = None,
    steps: int | str | None = "auto",
    stop: str = "auto",
    max_steps: int | None = None,
    runs: int = 1,
    average: float | None = None,
    kernel: str = "lanczos2",
    seed: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
) -> tuple[ArrayLike, dict[str, Any]]:
    """Upscale a low-resolution H×W(×C) image ``scale`` times (numpy or torch, as in
    :func:`denoise`). With an HR ``reference`` the report holds the paper's metrics.
    """
    return _on_arrays(
        super_resolve_picture,
        image,
        reference,
        scale,
        preset=preset,
        steps=steps,
        stop=stop,
        max_steps=max_steps,
        runs=runs,
        average=average,
        kernel=kernel,
        seed=seed,
        device=device,
        precision=precision,
        progress=progress,
        callbacks=callbacks,
    )


def inpaint(
    image: ArrayLike,
    mask: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    preset: str | Preset | None = None,
    steps: int | str | None = "auto",
    stop: str = "auto",
    max_steps: int | None = None,
    runs: int = 1,
    average: float | None = None,
    keep_known: bool = True,
    seed: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
) -> tuple[ArrayLike, dict[str, Any]]:
    """Fill the holes of an H×W(×C) image; ``mask`` is H×W, non-zero (True) = known pixel."""
    known = np.asarray(mask.detach().cpu() if isinstance(mask, Tensor) else mask)
    if known.ndim == 3 and known.shape[2] == 1:
        known = known[:, :, 0]
    return _on_arrays(
        inpaint_picture,
        image,
        reference,
        known != 0,
        preset=preset,
        steps=steps,
        stop=stop,
        max_steps=max_steps,
        runs=runs,
        average=average,
        keep_known=keep_known,
        seed=seed,
        device=device,
        precision=precision,
        progress=progress,
        callbacks=callbacks,
    )
