"""Data terms: what a fit minimises, as a function of the generator's (cropped) output.

The default is the mean squared error through a degradation operator, with per-pixel weights;
any differentiable callable that maps the output to a scalar is a data term too (a feature
loss, a negative activation).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .operators import Identity, Operator, as_operator

DataTerm = Callable[[Tensor], Tensor]


class MSE(nn.Module):
    """mean(w ⊙ (A(x) − y)²): the pixel loss of every restoration task.

    ``weight`` (broadcastable to ``y``; 0 leaves a pixel out, e.g. the pixels a validation
    rule holds back) is scaled to mean 1 over ``y``'s shape, so that the loss stays a mean
    over the pixels that count.

    Shape:
        y: (1, C_y, h, w); x: whatever ``operator`` maps to y's shape.
    """

    def __init__(
        self,
        y: Tensor,
        operator: Operator | Callable[[Tensor], Tensor] | None = None,
        weight: Tensor | None = None,
    ):
        super().__init__()
        self.operator = Identity() if operator is None else as_operator(operator)
        self.register_buffer("y", y, persistent=False)
        if weight is not None:
            weight = weight.to(y.device) / weight.expand_as(y).mean().clamp_min(1e-12)
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        residual = (self.operator(x) - self.y) ** 2
        return torch.mean(residual if self.weight is None else residual * self.weight)
