"""Callbacks for :func:`deepprior.fitting.fit`: averaging, history, snapshots and a progress bar."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .fitting import Callback, FitState
from .presets import AVERAGE_WARMUP


def psnr_tensor(image: Tensor, reference: Tensor) -> Tensor:
    """PSNR in dB for images in [0, 1], computed on the device without synchronising."""
    mse = torch.mean((image.clamp(0, 1) - reference) ** 2)
    return -10 * torch.log10(mse.clamp_min(1e-12))


class ExponentialAverage(Callback):
    """Exponential moving average of the outputs (the authors' ``exp_weight`` 0.99), warmed up.

    With ``warmup`` k, step t (from 0) uses the decay min(decay, (1 + t) / (k + t)), the rule of
    TensorFlow's ExponentialMovingAverage with ``num_updates``: the average spans about the
    last (k + t) / (k − 1) outputs until that reaches the full window 1 / (1 − decay) (at step
    296 for k = 4 and 0.99), and uses the full decay from then on. The authors' own average
    (``warmup=None``) starts at the first output with the full decay, so for a few hundred
    steps it is mostly the blurry early outputs: stopped by the default rule on 64² CBM3D and
    scikit-image crops it read 28.55 dB on average against 29.59 warmed up (kodim03, stopped
    at step 240: 26.31 against 30.42); see ``benchmarks/averaging.py``. Fills
    ``state.average``.
    """

    def __init__(self, decay: float = 0.99, warmup: int | None = AVERAGE_WARMUP):
        if not 0 < decay < 1:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup

    def on_start(self, state: FitState) -> None:
        state.average = None

    def on_step(self, state: FitState) -> None:
        if state.average is None:
            state.average = state.output.clone()
            return
        decay = self.decay
        if self.warmup is not None:
            decay = min(decay, (1 + state.step) / (self.warmup + state.step))
        state.average.mul_(decay).add_(state.output, alpha=1 - decay)


class History(Callback):
    """Records the loss (and PSNR against a reference, when given) every ``every`` steps.

    The figures are read from the device only at those steps; the latest are published in
    ``state.metrics`` for the progress bar.
    """

    def __init__(self, every: int = 10, reference: Tensor | None = None):
        self.every = max(1, every)
        self.reference = reference
        self.records: list[dict[str, float]] = []

    def _record(self, state: FitState) -> None:
        row: dict[str, Any] = {"step": state.step + 1, "loss": float(state.loss)}
        if self.reference is not None:
            row["psnr"] = float(psnr_tensor(state.output, self.reference))
            if state.average is not None:
                row["psnr_average"] = float(psnr_tensor(state.average, self.reference))
        if self.records and self.records[-1]["step"] == row["step"]:
            return
        self.records.append(row)
        state.metrics.update({k: v for k, v in row.items() if k != "step"})

    def on_step(self, state: FitState) -> None:
        if (state.step + 1) % self.every == 0 or state.step == 0:
            self._record(state)

    def on_end(self, state: FitState) -> None:
        if state.output.dim() == 4:
            self._record(state)

    def best(self, key: str) -> dict[str, float] | None:
        """The record with the highest value of ``key`` (e.g. ``"psnr_average"``)."""
        rows = [r for r in self.records if key in r]
        return max(rows, key=lambda r: r[key]) if rows else None


class Snapshots(Callback):
    """Hands the current result to ``save(step, image)`` every ``every`` steps."""

    def __init__(self, every: int, save: Callable[[int, Tensor], None]):
        self.every = every
        self.save = save

    def on_step(self, state: FitState) -> None:
        if (state.step + 1) % self.every == 0:
            image = state.average if state.average is not None else state.output
            self.save(state.step + 1, image)


class CosineLearningRate(Callback):
    """Lowers Adam's learning rate from ``lr`` to ``lr * floor`` along half a cosine over
    ``steps`` (the fit's cap): large steps early, fine ones late."""

    def __init__(self, lr: float, steps: int, floor: float = 0.1):
        self.lr, self.steps, self.floor = lr, max(1, steps), floor

    def on_step(self, state: FitState) -> None:
        progress = min(1.0, (state.step + 1) / self.steps)
        scale = self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))
        for group in state.optimizer.param_groups:
            group["lr"] = self.lr * scale


class TimeLimit(Callback):
    """Ends the fit after the step during which the wall clock passed ``deadline``
    (a ``time.perf_counter()`` value); a stopping rule still returns its best iterate so far."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.reached_at: int | None = None

    def on_step(self, state: FitState) -> None:
        if self.reached_at is None and time.perf_counter() >= self.deadline:
            self.reached_at = state.step + 1
            state.stop = True


class Progress(Callback):
    """A tqdm progress bar with ETA, showing the latest loss and PSNR from ``state.metrics``.

    Its length is ``total`` (a cap the fit may run past; None: the fit's steps), and the fit's
    steps once the fit passes it.
    """

    def __init__(
        self,
        description: str = "fitting",
        refresh_every: int = 10,
        quiet: bool = False,
        total: int | None = None,
    ):
        self.description = description
        self.refresh_every = refresh_every
        self.quiet = quiet
        self.total = total
        self._bar: Any = None

    def on_start(self, state: FitState) -> None:
        from tqdm.auto import tqdm

        total = state.total_steps if self.total is None else min(self.total, state.total_steps)
        self._bar = tqdm(
            total=total,
            desc=self.description,
            mininterval=0.1 if sys.stderr.isatty() else 5.0,
            unit="step",
            disable=self.quiet,
            dynamic_ncols=True,
        )

    def on_step(self, state: FitState) -> None:
        if state.step >= self._bar.total:  # past the cap: show the way to the ceiling
            self._bar.total = state.total_steps
        self._bar.update(1)
        if (state.step + 1) % self.refresh_every == 0 and state.metrics:
            shown = {k: f"{v:.4g}" if k == "loss" else f"{v:.2f}" for k, v in state.metrics.items()}
            self._bar.set_postfix(shown, refresh=False)

    def on_end(self, state: FitState) -> None:
        self._bar.close()
