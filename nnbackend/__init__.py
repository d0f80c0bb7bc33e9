"""nnbackend: backprop written once against the Python Array API standard.

One training loop, three descent modes (batch, mini-batch, stochastic), on
NumPy, CuPy, PyTorch, JAX, Dask or array-api-strict, chosen by name.

Layers, bottom to top (a module imports only from layers below its own;
``tests/test_layering.py`` holds it): ``checks``, ``kernels`` -> ``backends/``
-> ``network`` -> ``optim`` -> ``data``, ``datasets``, ``scaling`` -> ``engine`` ->
``training/`` -> ``model``, ``classifier``, ``checkpoint`` -> ``cli``, ``plot``, ``bench/``.
"""

from . import kernels
from .backends import (
    BACKEND_NAMES,
    Backend,
    BackendUnavailableError,
    available_backends,
    backend_of,
    get_backend,
)
from .model import MLP, fit
from .optim import Optimizer, adam, momentum, sgd
from .scaling import StandardScaler
from .training import DivergenceWarning, History

__version__ = "0.1.0"

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendUnavailableError",
    "DivergenceWarning",
    "History",
    "MLP",
    "Optimizer",
    "StandardScaler",
    "adam",
    "available_backends",
    "backend_of",
    "fit",
    "get_backend",
    "kernels",
    "momentum",
    "sgd",
]
