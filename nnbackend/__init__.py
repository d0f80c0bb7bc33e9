"""nnbackend: backprop written once against the Python Array API standard.

One training loop, three descent modes (batch, mini-batch, stochastic), on
NumPy, CuPy, PyTorch, JAX, Dask or array-api-strict, chosen by name.

Layers, bottom to top (a module imports only from layers below its own;
``tests/test_layering.py`` holds it): ``checks``, ``kernels`` -> ``backends/``
-> ``network`` -> ``optim`` -> ``data``, ``datasets``, ``scaling`` -> ``engine`` ->
``training/`` -> ``model``, ``classifier``, ``checkpoint`` -> ``estimators`` ->
``cli``, ``plot``, ``bench/``.

``MLPClassifier`` and ``MLPRegressor`` (scikit-learn estimators, the
``sklearn`` extra) are imported on first use, so ``import nnbackend`` never
imports scikit-learn.
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
from .autoselect import ProfileWarning, explain_backend
from .data import FeatureScaleWarning
from .model import MLP, fit
from .optim import Optimizer, adam, momentum, sgd
from .scaling import StandardScaler
from .training import DivergenceWarning, History

__version__ = "0.1.0"

_ESTIMATORS = ("MLPClassifier", "MLPRegressor")


def __getattr__(name):
    """``MLPClassifier`` / ``MLPRegressor`` from :mod:`nnbackend.estimators`, imported
    on first use; without scikit-learn, an ``ImportError`` that says how to install it."""
    if name in _ESTIMATORS:
        try:
            import sklearn  # noqa: F401
        except ImportError as e:
            raise ImportError(
                f"nnbackend.{name} needs scikit-learn: pip install 'nnbackend[sklearn]'"
            ) from e
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'nnbackend' has no attribute {name!r}")

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendUnavailableError",
    "DivergenceWarning",
    "FeatureScaleWarning",
    "History",
    "MLP",
    "MLPClassifier",
    "MLPRegressor",
    "Optimizer",
    "ProfileWarning",
    "StandardScaler",
    "adam",
    "available_backends",
    "backend_of",
    "explain_backend",
    "fit",
    "get_backend",
    "kernels",
    "momentum",
    "sgd",
]
