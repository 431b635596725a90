"""deepprior: image restoration with the Deep Image Prior (Ulyanov, Vedaldi, Lempitsky, 2018).

The task API loads on first use, so that ``import deepprior`` and ``deepprior --help`` load
no SciPy or scikit-image (they come when a run needs them). ``fit`` is imported at once: it
shares its name with its module, which would otherwise take its place once imported.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

from .fit import Callback, FitResult, FitState, fit

_EXPORTS = {
    "UserError": "errors",
    "Job": "job",
    "run": "runner",
    "denoise": "api",
    "super_resolve": "api",
    "inpaint": "api",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'deepprior' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = ["Callback", "FitResult", "FitState", "__version__", "fit", *_EXPORTS]
