"""Stopping rules: callbacks that decide when a fit has restored all it will, and keep that iterate.

Every rule looks at the fit every ``every`` steps (the only moments it reads figures back from
the device), keeps the iterate it judges best so far (the averaged output when averaging runs,
else the output), and, once its criterion fires, ends the fit. With ``stop=False`` a rule only
watches: the fit runs on and the rule still records where it would have stopped and what it
would have returned, which is how the benchmarks compare a rule against the best iterate seen
along the same run.

- :class:`VarianceRule` needs nothing but the outputs: the exponential moving variance of the
  outputs reaches its minimum when the fit starts to take in the noise (the ES-EMV detector of
  Wang et al., "Early Stopping for Deep Image Prior", TMLR 2023).
- :class:`NoiseLevelRule` needs the noise level σ (known, or estimated from the image's finest
  wavelet coefficients, see :func:`estimate_noise_sigma`): it stops when the data term falls
  to what σ predicts (Morozov's discrepancy principle; a given σ is first corrected for
  clipping, see :func:`clipped_noise_sigma`).
- :class:`ValidationRule` holds back a share of the observed pixels from the data term and stops
  when their error stops improving; past a cap it may be told to go on only while that error
  still falls clearly (see :data:`MIN_GAIN`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import UserError
from .fitting import Callback, FitState
from .presets import Preset

Operator = Callable[[Tensor], Tensor]


def current_image(state: FitState) -> Tensor:
    """A copy of the fit's result now: its averaged output where it averages, else its output."""
    current = state.average if state.average is not None else state.output
    return current.detach().clone()


class StoppingRule(Callback):
    """The common part: checks every ``every`` steps, keeps the best iterate, stops or watches.

    Subclasses implement :meth:`score` (lower is better; ``None`` while not ready) and
    :meth:`fired` (True once the rule's criterion holds).
    """

    name = "rule"

    def __init__(self, every: int = 10, stop: bool = True):
        self.every = max(1, every)
        self.stop = stop
        self.best_image: Tensor | None = None
        self.best_step: int | None = None
        self.best_score = float("inf")
        self.fired_at: int | None = None
        self.scores: list[tuple[int, float]] = []

    def score(self, state: FitState) -> float | None:
        raise NotImplementedError

    def fired(self, state: FitState) -> bool:
        raise NotImplementedError

    def no_better_for(self, state: FitState, steps: int) -> bool:
        """True once the best score is ``steps`` or more steps old."""
        return self.best_step is not None and state.step + 1 - self.best_step >= steps

    def on_start(self, state: FitState) -> None:
        self.best_image, self.best_step, self.best_score = None, None, float("inf")
        self.fired_at = None
        self.scores = []

    def on_step(self, state: FitState) -> None:
        self.update(state)
        if self.fired_at is not None or (state.step + 1) % self.every:
            return
        value = self.score(state)
        if value is None:
            return
        self.scores.append((state.step + 1, value))
        if value < self.best_score:
            self.best_score = value
            self.best_step = state.step + 1
            self.best_image = current_image(state)
        if self.fired(state):
            self.fired_at = state.step + 1
            if self.stop:
                state.stop = True

    def update(self, state: FitState) -> None:
        """Per-step bookkeeping on the device (no read-back); nothing by default."""

    def on_end(self, state: FitState) -> None:
        if self.stop and self.best_image is not None:
            state.selected = self.best_image
            state.selected_step = self.best_step
            state.stopped_by = self.name if self.fired_at is not None else None

    def summary(self) -> dict[str, Any]:
        """Where the rule fired (None: never) and which step's iterate it keeps."""
        return {
            "rule": self.name,
            "fired_at": self.fired_at,
            "selected_step": self.best_step,
            "watch_only": not self.stop,
        }


class VarianceRule(StoppingRule):
    """Stop when the exponential moving variance of the outputs has not reached a new minimum
    for ``patience`` steps; keep the iterate at that minimum.

    The variance is the mean over pixels of the running variance with weight ``alpha`` per step;
    it needs no noise level and costs two image-sized buffers.
    """

    name = "variance"

    def __init__(self, patience: int = 300, alpha: float = 0.1, every: int = 10, stop: bool = True):
        super().__init__(every, stop)
        self.patience = patience
        self.alpha = alpha
        self._mean: Tensor | None = None
        self._var: Tensor | None = None

    def on_start(self, state: FitState) -> None:
        super().on_start(state)
        self._mean = self._var = None

    def update(self, state: FitState) -> None:
        x = state.output.detach()
        if self._mean is None or self._var is None:
            self._mean, self._var = x.clone(), torch.zeros_like(x)
            return
        delta = x - self._mean
        self._mean.add_(delta, alpha=self.alpha)
        self._var.mul_(1 - self.alpha).addcmul_(delta, delta, value=self.alpha * (1 - self.alpha))

    def score(self, state: FitState) -> float | None:
        if self._var is None or state.step + 1 < 2 / self.alpha:
            return None
        return float(self._var.mean())

    def fired(self, state: FitState) -> bool:
        return self.no_better_for(state, self.patience)


class NoiseLevelRule(StoppingRule):
    """Stop once the data term, smoothed over checks, falls to ``factor``·σ² (σ in [0, 1] units).

    The kept iterate is the one at that moment; while the data term stays above σ², the score
    is how far above it is, so an interrupted or capped fit keeps the closest iterate. With
    ``stall``, it also stops once the lowest smoothed data term so far fell by less than
    ``stall``·σ² over the last ``patience`` steps (``stalled``): a fit that has all but stopped
    fitting (a spike of the data term is not a stall: the lowest value does not rise; but the
    steps spent falling back after one count in the window, README session 33). With
    ``early_factor``, the iterate where the data term first fell to that many times σ² is
    kept as well (``early_image``, ``early_step``), for a pass that refines both.
    """

    name = "noise-level"

    def __init__(
        self,
        sigma: float,
        factor: float = 1.0,
        smoothing: float = 0.5,
        every: int = 10,
        stop: bool = True,
        early_factor: float | None = None,
        stall: float | None = None,
        patience: int = 300,
    ):
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if stall is not None and stall <= 0:
            raise ValueError(f"stall must be positive, got {stall}")
        if early_factor is not None and early_factor <= factor:
            raise ValueError(f"early_factor must exceed factor ({factor}), got {early_factor}")
        super().__init__(every, stop)
        self.target = factor * sigma**2
        self.early_target = None if early_factor is None else early_factor * sigma**2
        self.smoothing = smoothing
        self.stall = None if stall is None else stall * sigma**2
        self.patience = patience
        self._loss: float | None = None
        self._lowests: deque[tuple[int, float]] = deque()  # (check step, lowest then)
        self.stalled = False
        self.early_image: Tensor | None = None
        self.early_step: int | None = None

    def on_start(self, state: FitState) -> None:
        super().on_start(state)
        self._loss = None
        self._lowests = deque()
        self.stalled = False
        self.early_image, self.early_step = None, None

    def score(self, state: FitState) -> float | None:
        self._loss = _smooth(self._loss, float(state.loss), self.smoothing)
        early = self.early_target
        if early is not None and self.early_step is None and self._loss <= early:
            self.early_step = state.step + 1
            self.early_image = current_image(state)
        excess = max(self._loss - self.target, 0.0)
        if self.stall is not None:  # the lowest so far: the best score kept, or this one
            lowest = self.target + min(self.best_score, excess)
            self.stalled = self._stalled(state.step + 1, lowest, self.stall)
        return excess

    def _stalled(self, step: int, lowest: float, stall: float) -> bool:
        """Whether the lowest smoothed data term so far, still above the target, fell by less
        than ``stall`` over the last ``patience`` steps (from the latest check that far back)."""
        lowests = self._lowests
        lowests.append((step, lowest))
        while len(lowests) > 1 and lowests[1][0] <= step - self.patience:
            lowests.popleft()
        then, before = lowests[0]
        return then <= step - self.patience and before - lowest < stall and lowest > self.target

    def fired(self, state: FitState) -> bool:
        return self._loss is not None and (self._loss <= self.target or self.stalled)

    def on_end(self, state: FitState) -> None:
        super().on_end(state)
        kept, early = self.best_step, self.early_step
        if kept is not None and early is not None and early >= kept:
            self.early_image = None  # not earlier than the iterate kept

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        if self.stall is not None:
            out["stalled"] = self.stalled
        if self.early_target is not None:
            out["early_step"] = self.early_step
        return out


class ValidationRule(StoppingRule):
    """Stop when the error on held-back observed pixels has not improved for ``patience`` steps;
    keep the iterate with the lowest (smoothed) held-back error.

    ``holdout`` marks the held-back pixels of the observation ``y`` (the fit's loss must leave
    them out: see :func:`split_holdout`); ``operator`` maps an iterate to the observation.
    From step ``gain_from`` on (None: never) it also stops once its best error has fallen by
    less than ``min_gain`` (a share) over the last ``patience`` steps: from a nominal cap on,
    a fit runs past the cap only while it is still clearly improving.

    No iterate of the first ``warmup`` steps is kept: a young fit's output is smooth, and a
    smooth image can predict scattered held-back pixels from their neighbours better than
    the sharper iterates that follow for hundreds of steps (Set5's butterfly, ×4 from 16×16:
    21.3·10⁻⁴ at step 110, 27·10⁻⁴ at 260, lower again only from step 710), so the rule
    stopped such fits at step 410 with that early, blurred iterate (README, session 32).
    """

    name = "validation"

    def __init__(
        self,
        operator: Operator,
        y: Tensor,
        holdout: Tensor,
        patience: int = 300,
        smoothing: float = 0.5,
        every: int = 10,
        stop: bool = True,
        gain_from: int | None = None,
        min_gain: float = 0.0,
        warmup: int = 0,
    ):
        super().__init__(every, stop)
        self.warmup = warmup
        self.gain_from = gain_from
        self.min_gain = min_gain
        self.operator = operator
        self.y = y
        self.holdout = holdout
        self.count = float(holdout.expand_as(y).sum())
        self.patience = patience
        self.smoothing = smoothing
        self._error: float | None = None

    def on_start(self, state: FitState) -> None:
        super().on_start(state)
        self._error = None

    def score(self, state: FitState) -> float | None:
        current = state.average if state.average is not None else state.output
        with torch.no_grad():
            residual = (self.operator(current.clamp(0, 1)) - self.y) * self.holdout
            error = float(residual.square().sum()) / self.count
        self._error = _smooth(self._error, error, self.smoothing)
        return self._error if state.step + 1 > self.warmup else None

    def fired(self, state: FitState) -> bool:
        if self.no_better_for(state, self.patience):
            return True
        step = state.step + 1
        if self.gain_from is None or step < self.gain_from:
            return False
        return self.gain(step) < self.min_gain

    def gain(self, step: int) -> float:
        """The share by which the best error fell over the ``patience`` steps up to ``step``
        (infinite while the fit is younger than that)."""
        then = min((error for at, error in self.scores if at <= step - self.patience), default=0.0)
        return 1.0 - self.best_score / then if then > 0 else math.inf


def _smooth(previous: float | None, value: float, weight: float) -> float:
    """One step of an exponential moving average over checks (``weight`` on the past)."""
    return value if previous is None else weight * previous + (1 - weight) * value


def split_holdout(
    observed: Tensor, share: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Split the observed pixels (1 where observed, shape (1, 1, h, w)) at random.

    Returns (train, holdout) weights of the same shape: ``share`` of the observed pixels go to
    the holdout, the rest stay in the data term.
    """
    if not 0 < share < 1:
        raise ValueError(f"the holdout share must lie in (0, 1), got {share}")
    draw = torch.rand(observed.shape, generator=generator, device=observed.device)
    holdout = (draw < share).float() * observed
    return observed * (1 - holdout), holdout


NOISE_BANDS = 16  # brightness bands in which estimate_noise_sigma measures the noise apart
MIN_BAND_COEFFICIENTS = 32  # a band with fewer wavelet coefficients is left out
MAD_TO_SIGMA = 0.6744897501960817  # the median of |N(0, 1)|


def estimate_noise_sigma(pixels: np.ndarray) -> float:
    """The RMS of additive white noise in an H×W×C image in [0, 1]: what the data term of a
    clean fit would measure (NaN for an image without detail).

    The finest diagonal wavelet coefficients (Daubechies 2, as in scikit-image's
    ``estimate_sigma``) hold next to nothing but noise, and their median absolute value over
    0.6745 is σ (Donoho's estimate). Noise clipped at black or white is smaller there, and one
    median over the whole image reads lower than the mean power (20.4 for the 22.3 left on the
    64² crop of astronaut at σ = 25, whose fits then ran past the noise): σ is measured in
    each of 16 bands of local brightness (the approximation coefficients) and the bands' σ²
    are averaged, weighted by their size (21.6 there). On images without clipping this reads
    0-3 % above one median.
    """
    import pywt

    powers, counts = 0.0, 0
    pooled: list[np.ndarray] = []
    for channel in range(pixels.shape[2]):
        approx, (_, _, diagonal) = pywt.dwt2(
            pixels[:, :, channel].astype(np.float64), "db2", mode="symmetric"
        )
        detail = diagonal != 0  # exact zeros are flat 8-bit areas, not noise (as scikit-image)
        magnitudes = np.abs(diagonal[detail])
        bands = np.clip((approx[detail] / 2 * NOISE_BANDS).astype(int), 0, NOISE_BANDS - 1)
        pooled.append(magnitudes)
        for index in range(NOISE_BANDS):
            coefficients = magnitudes[bands == index]
            if coefficients.size >= MIN_BAND_COEFFICIENTS:
                powers += (np.median(coefficients) / MAD_TO_SIGMA) ** 2 * coefficients.size
                counts += coefficients.size
    if counts:
        return float(np.sqrt(powers / counts))
    everything = np.concatenate(pooled)  # too small an image for bands: one median
    return float(np.median(everything) / MAD_TO_SIGMA) if everything.size else float("nan")


def clipped_noise_sigma(noisy: np.ndarray, sigma: float) -> float:
    """The noise σ that remains in ``noisy`` (H×W×C in [0, 1]) once values were clipped to [0, 1].

    Clipping shrinks the noise near black and white, so an image with bright skies or deep
    shadows carries less than σ²: the data term of a clean fit is E[(c − clip(c + n))²],
    n ~ N(0, σ²), averaged over the image's values c. Each c is the noisy image smoothed with
    a Gaussian of 1 pixel and mapped back through c ↦ E[clip(c + n)] (clipping pulls the local
    mean away from black and white). Computed per 8-bit level with 48-point Gauss–Hermite
    quadrature.
    """
    from skimage.filters import gaussian

    nodes, weights = np.polynomial.hermite_e.hermegauss(48)
    weights = weights / weights.sum()
    levels = np.linspace(0.0, 1.0, 257)
    clipped = np.clip(levels[:, None] + sigma * nodes[None, :], 0.0, 1.0)
    per_level = (levels[:, None] - clipped) ** 2 @ weights
    local_mean = gaussian(noisy, sigma=1, channel_axis=-1 if noisy.ndim == 3 else None)
    clean_guess = np.interp(local_mean, clipped @ weights, levels)
    index = np.clip(np.round(clean_guess * 256).astype(int), 0, 256)
    return float(np.sqrt(per_level[index].mean()))


def given_noise_sigma(noisy: np.ndarray, sigma: float) -> tuple[float, str]:
    """The noise level the rule aims at when σ is given, and a line saying how it was chosen.

    The given σ is first corrected for clipping; the image's own estimate is used instead when
    it is lower. The loss falls steeply before the best iterate and rises slowly after it, so
    aiming low (stopping a little late) costs less than aiming high: aiming at the true noise
    variance stopped a σ = 50 fit of a CBM3D crop (house) at step 250, 1.3 dB under its best
    at step 350, while the estimate of that time (one median over the image, 1–10 % low on
    clipped noise) stopped within 0.25 dB of the best on all three crops at σ = 25 and 50.
    """
    corrected = clipped_noise_sigma(noisy, sigma)
    estimated = estimate_noise_sigma(noisy)
    # An estimate of next to no noise says nothing about where to stop: keep the given σ.
    use_estimate = bool(np.isfinite(estimated)) and MIN_SIGMA <= estimated < corrected
    chosen = estimated if use_estimate else corrected
    which = "estimated" if use_estimate else "clip-corrected"
    source = (
        f"given {sigma * 255:g}: clip-corrected {corrected * 255:.3g}, estimated "
        f"{estimated * 255:.3g}; the lower ({which}) is used"
    )
    return chosen, source


def noise_sigma(noisy: np.ndarray, given: float | None) -> tuple[float, str]:
    """The noise level of ``noisy`` and where it came from: the given σ (corrected for
    clipping, see :func:`given_noise_sigma`), else the image's own estimate."""
    if given is not None:
        return given_noise_sigma(noisy, given)
    return estimate_noise_sigma(noisy), "estimated"


STOP_RULES = ("auto", "variance", "noise-level", "validation")


@dataclass
class Stopping:
    """How ``--steps auto`` ends a fit: the rule, its settings, and the held-back pixels.

    ``train_weight`` is the data term's pixel weight (None: every observed pixel counts);
    ``holdout`` the pixels a validation rule scores on. A validation fit may run past
    ``soft_cap`` (None: none; the preset's steps are then its ceiling) while its error still
    falls by ``min_gain`` or more over each ``patience`` steps.
    """

    rule_name: str
    patience: int
    sigma: float | None = None
    sigma_source: str | None = None
    train_weight: Tensor | None = None
    holdout: Tensor | None = None
    holdout_share: float = 0.0
    watch_only: bool = False
    factor: float = 1.0  # the noise-level rule stops at this many times σ²
    early_factor: float | None = None  # ... and keeps the iterate at this many times σ² too
    stall: float | None = None  # ... or stops once its data term falls by less than this·σ²
    soft_cap: int | None = None
    min_gain: float = 0.0

    def rule(self, operator: Operator, y: Tensor) -> StoppingRule:
        """A fresh rule for one fit (its tensors moved to ``y``'s device)."""
        stop = not self.watch_only
        if self.rule_name == "variance":
            return VarianceRule(patience=self.patience, stop=stop)
        if self.rule_name == "noise-level":
            assert self.sigma is not None
            return NoiseLevelRule(
                self.sigma,
                factor=self.factor,
                stop=stop,
                early_factor=self.early_factor,
                stall=self.stall,
                patience=self.patience,
            )
        assert self.holdout is not None
        holdout = self.holdout.to(y.device)
        return ValidationRule(
            operator,
            y,
            holdout,
            patience=self.patience,
            stop=stop,
            gain_from=self.soft_cap,
            min_gain=self.min_gain,
            warmup=self.patience,
        )

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"patience": self.patience}
        if self.sigma is not None:
            out.update(sigma_255=round(self.sigma * 255, 3), sigma_source=self.sigma_source)
        if self.rule_name == "noise-level":
            out["factor"] = self.factor
            if self.early_factor is not None:
                out["early_factor"] = self.early_factor
            if self.stall is not None:
                out["stall"] = self.stall
        if self.holdout is not None:
            out["holdout_share"] = self.holdout_share
        if self.soft_cap is not None:
            out["min_gain"] = self.min_gain
        return out


PATIENCE = 300
HOLDOUT_SHARE = 0.05
# Past its cap a validation fit goes on while its held-back error still falls by this share
# (0.13 dB) or more over each patience window, up to CEILING_FACTOR times the cap.
MIN_GAIN = 0.03
CEILING_FACTOR = 3
MIN_SIGMA = 0.5 / 255  # an estimated noise level below this counts as no noise


def make_stopping(
    rule: str,
    observed: Tensor,
    *,
    seed: int | None,
    sigma: float | None = None,
    estimate_from: np.ndarray | None = None,
    patience: int = PATIENCE,
    holdout_share: float = HOLDOUT_SHARE,
) -> Stopping:
    """The stopping plan for one of :data:`STOP_RULES` (``auto`` resolved by the caller).

    Args:
        observed: (1, 1, h, w), 1 where the observation has a pixel (the known pixels).
        sigma: the noise level in [0, 1] units for ``noise-level``; estimated from
            ``estimate_from`` when None.
    """
    if rule == "variance":
        return Stopping("variance", patience)
    if rule == "noise-level":
        source = "given"
        if sigma is None and estimate_from is None:
            raise UserError(
                "the noise-level rule is for denoising; use stop 'validation' or 'variance'"
            )
        if estimate_from is not None:
            given = sigma
            sigma, source = noise_sigma(estimate_from, given)
            if given is None and (not np.isfinite(sigma) or sigma < MIN_SIGMA):
                # Next to no noise: nothing for the noise level to tell; watch the outputs.
                return Stopping("variance", patience, sigma=sigma, sigma_source=source)
        return Stopping("noise-level", patience, sigma=sigma, sigma_source=source)
    if rule == "validation":
        generator = torch.Generator().manual_seed(0 if seed is None else seed + 3)
        train, holdout = split_holdout(observed, holdout_share, generator)
        if float(holdout.sum()) < 1:
            raise UserError(
                "the image has too few observed pixels to hold some back; give a number of steps"
            )
        return Stopping(
            "validation",
            patience,
            train_weight=train,
            holdout=holdout,
            holdout_share=holdout_share,
        )
    raise UserError(f"unknown stopping rule {rule!r}; use {', '.join(STOP_RULES)}")


def plan_steps(
    preset: Preset,
    steps: int | str | None,
    stop: str,
    max_steps: int | None,
    *,
    default_rule: str,
    observed: Tensor,
    seed: int | None,
    sigma: float | None = None,
    estimate_from: np.ndarray | None = None,
    patience: int | None = None,
    image_size: tuple[int, int] | None = None,
    extend: bool = False,
) -> tuple[Preset, Stopping | None]:
    """Fixed steps (no rule), or ``auto``: the rule (its patience: ``patience``, else
    :data:`PATIENCE`), with ``max_steps`` as the cap, else the preset's steps grown with the
    size of the restored image (``image_size``, see :func:`size_cap`). With ``extend`` and no
    ``max_steps``, a validation fit may run past that cap while its held-back error still
    falls by :data:`MIN_GAIN` over each patience window, up to :data:`CEILING_FACTOR` times it.
    """
    fixed = parse_steps(steps)
    if fixed is not None:
        if stop != "auto" or max_steps is not None or patience is not None:
            raise UserError(
                "stop, max_steps and patience apply when steps is 'auto'; "
                "give either a number of steps or them"
            )
        return preset.with_steps(fixed), None
    if max_steps is not None and max_steps < 1:
        raise UserError(f"max_steps must be positive, got {max_steps}")
    rule = default_rule if stop == "auto" else stop
    stopping = make_stopping(
        rule,
        observed,
        seed=seed,
        sigma=sigma,
        estimate_from=estimate_from,
        patience=PATIENCE if patience is None else patience,
    )
    if max_steps is not None:
        return preset.with_steps(max_steps), stopping
    cap = size_cap(preset.steps, *image_size) if image_size is not None else preset.steps
    if extend and stopping.rule_name == "validation":
        stopping = replace(stopping, soft_cap=cap, min_gain=MIN_GAIN)
        return preset.with_steps(cap * CEILING_FACTOR), stopping
    return preset.with_steps(cap), stopping


CAP_REFERENCE_SIDE = 256
MAX_CAP_FACTOR = 3.0


def size_cap(steps: int, height: int, width: int) -> int:
    """The cap of ``--steps auto`` for an image of ``height``×``width``: a preset's steps up to
    256×256 pixels, times the image's side over 256 beyond that, at most 3×.

    A larger image has more detail to fit: with the presets' caps, super-resolution of Set5
    (256–512 px) and inpainting of Heide-11 (512 px) ended at the cap while still improving.
    The stopping rule still ends a fit that stops improving; ``--time-limit`` bounds its time.
    """
    side = math.sqrt(height * width)
    factor = min(MAX_CAP_FACTOR, max(1.0, side / CAP_REFERENCE_SIDE))
    return round(steps * factor)


def parse_steps(steps: int | str | None) -> int | None:
    """``auto`` / None -> None (a stopping rule decides); a positive integer -> fixed steps."""
    if steps is None or steps == "auto":
        return None
    try:
        count = int(steps)
    except (TypeError, ValueError):
        raise UserError(f"steps must be 'auto' or a positive integer, got {steps!r}") from None
    if count < 1:
        raise UserError(f"the number of steps must be positive, got {count}")
    return count
