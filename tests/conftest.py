"""Shared fixtures: every array test runs once per backend (and device) available.

``$NNBACKEND_TEST_BACKENDS`` (comma-separated ``name`` or ``name:device``)
narrows or widens the list; the GPU check uses it to add ``cupy`` and
``torch:cuda``. A backend that is not usable here is skipped with the reason;
tests whose expectation dask does not meet by design are skipped for it with
the reason (``DASK_DIFFERS``).
"""

import os

import numpy as np
import pytest

import nnbackend as nb

DEFAULT_BACKENDS = "numpy,strict,strict:device1,torch,jax,cupy,dask"


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


# Shared tests whose expectation the dask backend does not meet by design, and
# why; what holds instead is tested in tests/test_dask.py.
DASK_DIFFERS = {
    "test_params_live_on_the_backend_device":
        "dask keeps the parameters as NumPy arrays on the client (they are small "
        "and every chunk's task needs them); only X and y are Dask arrays",
    "test_backend_of_round_trips":
        "dask's Backend.asarray makes NumPy arrays (it makes the parameters); "
        "Dask arrays are the caller's, chunked by rows",
    "test_backends_match_numpy":
        "on dask the gradients of loss_and_grads are lazy Dask arrays or NumPy "
        "arrays, not of one 'dask device', and Backend.asarray makes NumPy arrays; "
        "tests/test_dask.py::test_every_head_and_reduction_matches_numpy_on_dask_arrays "
        "compares loss_and_grads on Dask arrays with NumPy for every hidden activation, "
        "output head and reduction, and fit in batch and mini-batch mode",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        spec = getattr(item, "callspec", None)
        backend = spec.params.get("backend") if spec is not None else None
        if backend and backend[0] == "dask" and item.originalname in DASK_DIFFERS:
            item.add_marker(pytest.mark.skip(reason=f"dask differs: {DASK_DIFFERS[item.originalname]}"))


def to_numpy(backend, a):
    return backend.to_host(a).astype(np.float64)
