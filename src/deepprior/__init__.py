"""deepprior: image restoration with the Deep Image Prior (Ulyanov, Vedaldi, Lempitsky, 2018).

Everything loads on first use, so that ``import deepprior`` loads neither PyTorch nor SciPy
(they come when a run needs them) and the command can catch Ctrl-C while they load.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Callback": "fitting",
    "FitResult": "fitting",
    "FitState": "fitting",
    "fit": "fitting",
    "UserError": "errors",
    "Job": "job",
    "run": "runner",
    "batch": "batches",
    "denoise": "api",
    "super_resolve": "api",
    "inpaint": "api",
    "restore": "api",
    "flash": "api",
    "invert": "api",
    "maximize": "api",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'deepprior' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = ["__version__", *_EXPORTS]
