"""Shared fixtures: every array test runs once per backend (and device) available.

``$NNBACKEND_TEST_BACKENDS`` (comma-separated ``name`` or ``name:device``)
narrows or widens the list; the GPU check uses it to add ``cupy`` and
``torch:cuda``. A backend that is not usable here is skipped with the reason.
"""

import os

import numpy as np
import pytest

import nnbackend as nb

DEFAULT_BACKENDS = "numpy,strict,strict:device1,torch,jax,cupy"


def _backend_specs():
    text = os.environ.get("NNBACKEND_TEST_BACKENDS") or DEFAULT_BACKENDS
    specs = []
    for item in text.split(","):
        name, _, device = item.strip().partition(":")
        specs.append((name, device or None))
    return specs


def _make(name, device):
    try:
        return nb.get_backend(name, device)
    except nb.BackendUnavailableError as exc:
        pytest.skip(f"backend {name}{':' + device if device else ''} unavailable: {exc}")


@pytest.fixture(
    params=_backend_specs(),
    ids=lambda spec: spec[0] + (f"-{spec[1]}" if spec[1] else ""),
)
def backend(request):
    """An nnbackend Backend; skipped where it is not usable."""
    return _make(*request.param)


def to_numpy(backend, a):
    return backend.to_host(a).astype(np.float64)
