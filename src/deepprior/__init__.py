"""deepprior: image restoration with the Deep Image Prior (Ulyanov, Vedaldi, Lempitsky, 2018).

The names below are loaded on first use, so that ``import deepprior`` (and ``deepprior
--help``) stay light: PyTorch, SciPy and scikit-image load when a run needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "UserError": "errors",
    "Callback": "fit",
    "FitResult": "fit",
    "FitState": "fit",
    "fit": "fit",
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


__all__ = ["__version__", *_EXPORTS]
