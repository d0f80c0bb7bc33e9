"""Shared fixtures: every array test runs once per backend (and device) available.

``$NNBACKEND_TEST_BACKENDS`` (comma-separated ``name`` or ``name:device``)
narrows or widens the list; the GPU check uses it to add ``cupy`` and
``torch:cuda``. A backend that is not usable here is skipped with the reason;
tests whose expectation dask does not meet by design are skipped for it with
the reason (``DASK_DIFFERS``), and backend cases that would only re-run NumPy
are skipped with the reason (``RERUNS_NUMPY``), so that a pass counted for a
backend is a pass on that backend's arrays.
"""

import os
import shutil

import numpy as np
import pytest

import nnbackend as nb

DEFAULT_BACKENDS = "numpy,strict,strict:device1,torch,jax,cupy,dask"


def needs_cxx(test):
    """Mark ``test`` as one of a CUDA kernel's host build (C++, one thread): it
    skips without a C++ compiler, and the GPU check, whose machine is for the GPU
    tests, deselects it (``-m "not host_build"``; CI runs it on the CPU)."""
    test = pytest.mark.host_build(test)
    return pytest.mark.skipif(shutil.which("c++") is None,
                              reason="no C++ compiler (c++) here")(test)


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

# Backend cases that would only re-run NumPy, keyed by (backend name, test
# name): they pass for that backend without one of its arrays ever reaching
# the code under test. Each is skipped with the reason, so that the count of
# passes per backend means what it says.
_DASK_ASARRAY = "Backend.asarray on dask makes NumPy arrays (it makes the parameters)"
_KERNELS_ON_DASK = (
    f"{_DASK_ASARRAY}, so every kernel input here is a NumPy array and the kernels "
    "run in NumPy's namespace, as in the numpy case"
)
_BAD_INPUT_ON_DASK = (
    f"{_DASK_ASARRAY}, so the 'device' arrays are host NumPy data and the check "
    "is the host-data test's"
)
_NUMPY_VS_NUMPY = "the reference is the numpy backend, so the numpy case compares NumPy with itself"
RERUNS_NUMPY = {
    **{("numpy", name): _NUMPY_VS_NUMPY for name in (
        "test_backends_match_numpy",                     # test_gradients.py
        "test_backends_agree_with_numpy_float64",        # test_fit.py
        "test_backends_agree_with_numpy_float32",        # test_fit.py
    )},
    **{("dask", name): _KERNELS_ON_DASK for name in (    # test_kernels.py
        "test_kernels_return_input_namespace_device_shape",
        "test_kernels_do_not_mutate_inputs",
        "test_softmax_rows_sum_to_one_for_huge_logits",
        "test_sigmoid_saturates_without_nan_or_warnings",
        "test_bce_with_logits_huge_logits",
        "test_bce_with_logits_backward_huge_logits",
        "test_softmax_cross_entropy_huge_logits",
        "test_activation_backward_matches_finite_differences",
        "test_loss_backward_matches_finite_differences",
        "test_loss_mean_is_sum_over_rows",
        "test_chunked_backward_sums_to_full_batch_mean",
    )},
    ("dask", "test_update_does_not_mutate"):            # test_optim.py
        f"{_DASK_ASARRAY}, so the optimizers update NumPy arrays, as in the numpy case",
    **{("dask", name): _BAD_INPUT_ON_DASK for name in (  # test_bad_input.py
        "test_targets_of_the_wrong_shape_on_device",
        "test_refused_dtypes_on_device",
        "test_integer_arrays_of_a_backend_are_converted",
        "test_device_float64_beyond_float32_range_is_refused",
        "test_nan_and_infinity_on_device_are_refused",
        "test_empty_data_is_refused_by_predict_and_loss",
        "test_class_ids_out_of_range_on_device",
        "test_a_single_class_on_device",
    )},
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        spec = getattr(item, "callspec", None)
        backend = spec.params.get("backend") if spec is not None else None
        if not backend:
            continue
        if backend[0] == "dask" and item.originalname in DASK_DIFFERS:
            item.add_marker(pytest.mark.skip(reason=f"dask differs: {DASK_DIFFERS[item.originalname]}"))
        elif (backend[0], item.originalname) in RERUNS_NUMPY:
            reason = RERUNS_NUMPY[backend[0], item.originalname]
            item.add_marker(pytest.mark.skip(reason=f"re-runs NumPy: {reason}"))


def own_array(backend, a, dtype=None):
    """Host data ``a`` as an array of ``backend``'s data namespace.

    That is ``backend.asarray`` everywhere but on dask, whose ``asarray``
    makes NumPy arrays (the parameters): there it is a Dask array of the
    data, in one chunk.
    """
    if backend.name == "dask":
        import dask.array as da

        return da.from_array(backend.asarray(a, dtype=dtype))
    return backend.asarray(a, dtype=dtype)


def child_pythonpath(*first):
    """``PYTHONPATH`` for a child Python: ``first`` ahead of the caller's own path.

    The caller's path stays, because on some machines (the GPU check's,
    which has no network) packages such as array-api-compat live only there.
    """
    return os.pathsep.join(p for p in (*map(str, first), os.environ.get("PYTHONPATH")) if p)


def load_script(name):
    """The module of ``benchmarks/NAME.py`` (a script, not a package), loaded by path."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def to_numpy(backend, a):
    return backend.to_host(a).astype(np.float64)


def max_rel_diff(a_params, b_params):
    """The largest difference between two parameter lists, relative to each
    array's largest magnitude (host or device arrays)."""
    out = 0.0
    for a, b in zip(a_params, b_params):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        out = max(out, float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-300)))
    return out


def cli_refusal(argv, capsys):
    """The command line's one-line refusal (exit status 2) for ``argv``,
    run in-process, as text."""
    from nnbackend.cli import main

    with pytest.raises(SystemExit) as refused:
        main([str(a) for a in argv])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("nnbackend: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def dask_backend():
    """The dask backend on Dask's default scheduler (skipped, saying why, without dask)."""
    try:
        return nb.get_backend("dask")
    except nb.BackendUnavailableError as exc:
        pytest.skip(f"needs the dask backend: {exc}")


def _jax_x64(on):
    jax = pytest.importorskip("jax", reason="needs jax (the 'jax' extra)")
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", on)
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.fixture
def x64_on():
    """JAX's x64 on for the test, then as it was."""
    yield from _jax_x64(True)


@pytest.fixture
def x64_off():
    """JAX's x64 off for the test, then as it was."""
    yield from _jax_x64(False)
