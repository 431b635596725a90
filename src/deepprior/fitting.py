"""The one optimisation loop: fit a generator's output so that a data term falls."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .data_terms import DataTerm
from .engine import FAST, Engine, autocast, prepare
from .orientation import unorient

MAX_BACKTRACKS_IN_ROW = 20


@dataclass
class FitState:
    """What callbacks see after each evaluated step.

    ``step`` counts from 0; ``output`` is the generator's output for this step (cropped to the
    image, detached) and ``loss`` its data term, both still on the device. Callbacks may set
    ``stop`` to end the fit, fill ``average`` with an averaged output, and publish figures in
    ``metrics`` for other callbacks (progress bars, reports) to show. A stopping rule puts the
    iterate it chose in ``selected`` (with its step) and its name in ``stopped_by``.
    """

    step: int
    total_steps: int
    net: nn.Module
    optimizer: torch.optim.Optimizer
    loss: Tensor = field(default_factory=lambda: torch.zeros(()))
    output: Tensor = field(default_factory=lambda: torch.zeros(()))
    average: Tensor | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    stop: bool = False
    interrupted: bool = False
    backtracks: int = 0
    selected: Tensor | None = None
    selected_step: int | None = None
    stopped_by: str | None = None


class Callback:
    """Hooks into :func:`fit`; the three no-op methods are all there is."""

    def on_start(self, state: FitState) -> None:
        """Called once before the first step."""

    def on_step(self, state: FitState) -> None:
        """Called after each accepted step's forward pass, before its update."""

    def on_end(self, state: FitState) -> None:
        """Called once after the last step, also when the fit was interrupted."""


class Backtracking:
    """Undo a collapse: the data term rising ``drop_db`` dB above the last good check, or a
    ``guard`` saying the output has gone wrong (e.g. its colours drifted from the target's).

    Every ``every`` steps the loss is read back (the only host–device synchronisation it
    needs). A good check snapshots the weights, the BatchNorm buffers, the optimiser state
    and the averaged output as they were evaluated. On a collapse all four are restored, the
    pending update is dropped, and the learning rate is multiplied by ``lr_factor`` so that
    the retry takes a different path. A check the guard fails is never snapshotted, so the
    guard is armed only once an output has passed it; ``guard_fired`` counts its restores.
    A fit whose outputs have failed the guard at every check up to step ``arm_within`` has
    no good state to go back to: it is ended, and ``stuck_at`` says when (the runner then
    starts it afresh).
    """

    def __init__(
        self,
        drop_db: float | None = 5.0,
        lr_factor: float = 0.5,
        every: int = 10,
        guard: Callable[[Tensor], bool] | None = None,
        arm_within: int | None = None,
    ):
        self.factor = math.inf if drop_db is None else 10 ** (drop_db / 10)
        self.lr_factor = lr_factor
        self.every = every
        self.guard = guard
        self.arm_within = arm_within
        self.guard_fired = 0
        self.stuck_at: int | None = None
        self._last_loss: float | None = None
        self._saved: dict[str, Any] = {}

    def reject(self, state: FitState, loss: Tensor, output: Tensor | None = None) -> bool:
        """Return True, after restoring the snapshot, when this step's loss has collapsed."""
        if state.step % self.every:
            return False
        value = float(loss)
        collapsed = not math.isfinite(value) or (
            self._last_loss is not None and value > self.factor * self._last_loss
        )
        drifted = self.guard is not None and output is not None and self.guard(output)
        if (collapsed or drifted) and self._saved:
            state.net.load_state_dict(self._saved["net"])
            state.optimizer.load_state_dict(self._saved["optimizer"])
            for group in state.optimizer.param_groups:
                group["lr"] *= self.lr_factor
            state.average = self._saved["average"]
            self.guard_fired += drifted and not collapsed
            return True
        if drifted:
            if self.arm_within is not None and state.step >= self.arm_within:
                self.stuck_at, state.stop = state.step, True  # never good: end, to restart
            return False  # not a good state: nothing to keep
        self._last_loss = value
        self._saved = {
            "net": _cloned(state.net.state_dict()),
            "optimizer": _cloned(state.optimizer.state_dict()),
            "average": None if state.average is None else state.average.clone(),
        }
        return False


def _cloned(value: Any) -> Any:
    """A copy of nested dicts and lists whose tensors are cloned (``copy.deepcopy`` of an
    optimiser's state costs eight times as much, in Python, at every snapshot)."""
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {key: _cloned(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cloned(item) for item in value)
    return copy.copy(value)


def adam(parameters: Sequence[Tensor], lr: float) -> torch.optim.Optimizer:
    """Adam, with its fused kernel where the device has one (CPU, CUDA, MPS): one call for
    all parameters instead of a dozen small ops per tensor (2.3 → 0.5 ms an update for a
    32-channel skip net on CPU, 15 % of a 64² step); the same update up to rounding."""
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except RuntimeError:  # a device without the fused kernel
        return torch.optim.Adam(parameters, lr=lr)


@dataclass
class FitResult:
    """The outcome of :func:`fit`. Images are (1, C, H, W) tensors on the fit's device."""

    output: Tensor
    average: Tensor | None
    steps_run: int
    seconds: float
    interrupted: bool
    backtracks: int
    selected: Tensor | None = None
    selected_step: int | None = None
    stopped_by: str | None = None

    @property
    def image(self) -> Tensor:
        """The result to use: a stopping rule's choice, else the averaged output when averaging
        ran, else the last output."""
        if self.selected is not None:
            return self.selected
        return self.average if self.average is not None else self.output

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(self.steps_run, 1)


def fit(
    net: nn.Module,
    z: Tensor,
    data_term: DataTerm,
    *,
    steps: int,
    lr: float = 0.01,
    input_noise: float = 0.0,
    crop: tuple[int, int, int, int] | None = None,
    backtracking: Backtracking | None = None,
    callbacks: Sequence[Callback] = (),
    generator: torch.Generator | None = None,
    engine: Engine = FAST,
    orientation: int = 0,
) -> FitResult:
    """Fit ``net(z)`` so that ``data_term(net(z))`` falls, with Adam.

    Args:
        net: the generator, trained in place (BatchNorm in training mode, as in the paper).
        z: the fixed code.
        data_term: the loss of the (cropped) output, a scalar tensor; for restoration
            :class:`deepprior.data_terms.MSE` (an observation seen through an operator).
        steps: the number of Adam steps at most (callbacks may stop earlier).
        lr: Adam's learning rate.
        input_noise: σ of the fresh Gaussian jitter added to z at every step.
        crop: (top, left, height, width) of the image inside the padded output.
        backtracking: undo collapsing steps (see :class:`Backtracking`).
        callbacks: averaging, history, progress, snapshots, stopping rules.
        generator: the random source of the jitter, for reproducible runs.
        engine: precision, memory layout, compilation (see :mod:`deepprior.engine`).
        orientation: the net draws the image in this orientation (see
            :mod:`deepprior.orientation`); its cropped output is turned back before anything
            else sees it.

    Shape:
        z: (1, C_z, H, W); outputs: (1, C, height, width).

    Ctrl-C ends the fit after the current step; the result then has ``interrupted`` set.
    """
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    net.train()
    run_net, z = prepare(net, z, engine)
    optimizer = adam(list(net.parameters()), lr)
    state = FitState(step=0, total_steps=steps, net=net, optimizer=optimizer)
    # A contiguous buffer: normal_ is several times slower on a channels-last tensor.
    jitter = torch.empty(z.shape, dtype=z.dtype, device=z.device) if input_noise > 0 else None
    precision = autocast(engine, z.device)

    def forward() -> Tensor:
        code = z
        if jitter is not None:
            jitter.normal_(0.0, input_noise, generator=generator)
            code = z + jitter
        with precision:
            out = run_net(code).float()
        if crop is not None:
            top, left, height, width = crop
            out = out[:, :, top : top + height, left : left + width]
        return unorient(out, orientation) if orientation else out

    for callback in callbacks:
        callback.on_start(state)
    steps_run = rejected_in_row = 0
    started = time.perf_counter()
    try:
        while steps_run < steps and not state.stop:
            optimizer.zero_grad(set_to_none=True)
            out = forward()
            loss = data_term(out)
            state.step = steps_run
            if backtracking is not None and backtracking.reject(state, loss.detach(), out.detach()):
                state.backtracks += 1
                rejected_in_row += 1
                state.stop = rejected_in_row >= MAX_BACKTRACKS_IN_ROW
                continue
            rejected_in_row = 0
            state.step, state.loss, state.output = steps_run, loss.detach(), out.detach()
            for callback in callbacks:
                callback.on_step(state)
            loss.backward()
            optimizer.step()
            steps_run += 1
    except KeyboardInterrupt:
        state.interrupted = True
    seconds = time.perf_counter() - started
    for callback in callbacks:
        callback.on_end(state)
    return FitResult(
        output=state.output,
        average=state.average,
        steps_run=steps_run,
        seconds=seconds,
        interrupted=state.interrupted,
        backtracks=state.backtracks,
        selected=state.selected,
        selected_step=state.selected_step,
        stopped_by=state.stopped_by,
    )
