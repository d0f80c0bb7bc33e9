"""What ``backend="auto"`` may choose from: the candidates, by name and device.

``auto`` is not a backend: a model or estimator built with it starts on the
host and picks, at each fit, the candidate predicted fastest for the fit
(:mod:`nnbackend.autoselect`, which knows no backend by name: it reads the
candidates' keys here and their cost terms in the profile). This module is
the one list of those candidates.

A candidate's key is ``"NAME:cpu"`` or ``"NAME:gpu"``: the profile measured on
a machine holds cost terms per key, so one profile serves whichever GPU
index or JAX device object the backend opens.
"""

from __future__ import annotations

import functools
import os

from .base import Backend, BackendUnavailableError
from .cupy import CupyBackend
from .jax import JaxBackend
from .numpy import NumpyBackend, get_numpy
from .torch import TorchBackend

__all__ = ["AUTO", "AUTO_CANDIDATES", "ENV_VAR", "auto_candidates", "candidate_key",
           "host_backend", "is_auto"]

AUTO = "auto"
ENV_VAR = "NNBACKEND_BACKEND"

# (backend, device, class), in the order of preference between equal predictions:
# the host first (no data to move), then the CPU libraries, then the GPUs. Dask
# and array-api-strict are not candidates: a Dask array the caller passes
# decides its backend itself, and array-api-strict is for testing the standard.
AUTO_CANDIDATES = (
    ("numpy", "cpu", NumpyBackend),
    ("jax", "cpu", JaxBackend),
    ("torch", "cpu", TorchBackend),
    ("cupy", None, CupyBackend),
    ("torch", "cuda", TorchBackend),
    ("jax", "gpu", JaxBackend),
)


def is_auto(name) -> bool:
    """Whether ``name`` asks for ``auto``: the string itself (any case), or None
    while ``$NNBACKEND_BACKEND`` says ``auto``."""
    if name is None:
        name = os.environ.get(ENV_VAR)
    return isinstance(name, str) and name.strip().lower() == AUTO


def candidate_key(backend: Backend) -> str:
    """``"NAME:gpu"`` for a backend whose arrays live on a GPU, else ``"NAME:cpu"``."""
    return f"{backend.name}:{'gpu' if backend.is_gpu() else 'cpu'}"


def host_backend() -> Backend:
    """Where an ``auto`` model lives before its first fit chooses: the host (NumPy)."""
    return get_numpy()


@functools.lru_cache(maxsize=1)
def auto_candidates() -> tuple:
    """``((key, Backend), ...)``: the candidates installed and working here, in
    :data:`AUTO_CANDIDATES` order; those that cannot load (not installed, no
    GPU, a broken install) are left out. Cached for the process: loading
    imports the libraries (a second or two for torch and jax, once), and
    sets ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` where it is unset."""
    found, seen = [], set()
    # JAX takes 75% of a GPU's memory when its GPU client starts, which listing
    # its GPU does: auto shares the GPU with the other libraries it may pick
    # (unless the caller has set this already).
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    for name, device, cls in AUTO_CANDIDATES:
        try:
            backend = cls.load(name, device)
            key = candidate_key(backend)
        except (BackendUnavailableError, ValueError):
            continue
        except Exception:  # a broken driver or install is not a working backend
            continue
        if key not in seen:
            seen.add(key)
            found.append((key, backend))
    return tuple(found)
