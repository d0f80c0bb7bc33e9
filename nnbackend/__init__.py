"""nnbackend: backprop written once against the Python Array API standard.

One training loop, three descent modes (batch, mini-batch, stochastic), on
NumPy, CuPy, PyTorch, JAX or array-api-strict, chosen by name.
"""

from . import kernels
from .backend import (
    BACKEND_NAMES,
    Backend,
    BackendUnavailableError,
    available_backends,
    backend_of,
    get_backend,
)
from .model import MLP
from .optim import Optimizer, adam, momentum, sgd
from .train import History, fit

__version__ = "0.1.0"

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendUnavailableError",
    "History",
    "MLP",
    "Optimizer",
    "adam",
    "available_backends",
    "backend_of",
    "fit",
    "get_backend",
    "kernels",
    "momentum",
    "sgd",
]
