"""deepprior: image restoration with the Deep Image Prior (Ulyanov, Vedaldi, Lempitsky, 2018)."""

__version__ = "0.1.0"

from .errors import UserError
from .fit import Callback, FitResult, FitState, fit
from .tasks import denoise, inpaint, super_resolve

__all__ = [
    "Callback",
    "FitResult",
    "FitState",
    "UserError",
    "__version__",
    "denoise",
    "fit",
    "inpaint",
    "super_resolve",
]
