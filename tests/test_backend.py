"""Backend selection: names, the environment variable, devices and clear errors."""

import sys

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.backends import ENV_VAR


def test_available_backends_lists_known_names_and_numpy():
    names = nb.available_backends()
    assert "numpy" in names
    assert set(names) <= set(nb.BACKEND_NAMES)
    assert names == [n for n in nb.BACKEND_NAMES if n in names]  # stable order


def test_default_is_numpy(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert nb.get_backend().name == "numpy"
    assert nb.MLP([2, 1]).backend.name == "numpy"


def test_environment_variable_picks_backend(monkeypatch):
    pytest.importorskip("array_api_strict")
    monkeypatch.setenv(ENV_VAR, "strict")
    assert nb.get_backend().name == "strict"
    assert nb.MLP([2, 1]).backend.name == "strict"


def test_environment_variable_unknown_name_is_named(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "tensorflow")
    with pytest.raises(ValueError, match=r"unknown backend 'tensorflow' \(from \$NNBACKEND_BACKEND\)"):
        nb.get_backend()


@pytest.mark.parametrize("name", ["numpyy", "", "TF"])
def test_unknown_backend_lists_choices(name):
    with pytest.raises(ValueError, match="unknown backend .*choose one of .*numpy"):
        nb.get_backend(name)
    with pytest.raises(ValueError, match="unknown backend"):
        nb.MLP([2, 1], backend=name)


def test_a_backend_named_with_its_device_as_the_benchmark_names_it(monkeypatch):
    # "numpy:cpu", "strict:device1": as `nnbackend bench --backends` and the
    # CLI's --backend take them; had been an unknown backend everywhere but bench.
    pytest.importorskip("array_api_strict")
    backend = nb.get_backend("strict:device1")
    assert backend.name == "strict" and str(backend.device) == str(
        nb.get_backend("strict", "device1").device)
    assert nb.get_backend("numpy:cpu", "cpu").name == "numpy"  # the same device, twice
    with pytest.raises(ValueError, match=r"backend 'strict:device1' names its device "
                                         r"\('device1'\) and device='CPU_DEVICE' names another"):
        nb.get_backend("strict:device1", "CPU_DEVICE")
    assert nb.MLP([2, 1], backend="strict:device1").backend.name == "strict"
    monkeypatch.setenv(ENV_VAR, "strict:device1")
    assert nb.get_backend().name == "strict"
    with pytest.raises(ValueError, match=r"unknown backend 'tensorflow:gpu'"):
        nb.get_backend("tensorflow:gpu")


@pytest.mark.parametrize(
    "name, module, extra",
    [("torch", "torch", "nnbackend[torch]"), ("jax", "jax", "nnbackend[jax]"),
     ("strict", "array_api_strict", "nnbackend[strict]"), ("cupy", "cupy", "nnbackend[cuda12]")],
    ids=["torch_missing", "jax_missing", "strict_missing", "module_cupy_missing"],
)
def test_missing_library_gives_install_hint(monkeypatch, name, module, extra):
    # A None entry in sys.modules makes `import module` raise ImportError,
    # as on a machine without the library.
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(nb.BackendUnavailableError) as info:
        nb.get_backend(name)
    message = str(info.value)
    assert f"backend {name!r} is not available" in message
    assert extra in message


def test_cupy_without_gpu_is_one_clear_error():
    if "cupy" in nb.available_backends():
        pytest.skip("this machine has a GPU for CuPy")
    with pytest.raises(nb.BackendUnavailableError, match="cupy.*(GPU|not available).*nnbackend\\[cuda1"):
        nb.get_backend("cupy")
    with pytest.raises(nb.BackendUnavailableError):
        nb.MLP([2, 1], backend="cupy")


def test_torch_cuda_without_gpu_is_one_clear_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU for torch")
    with pytest.raises(nb.BackendUnavailableError, match="torch.*'cuda'.*no CUDA GPU"):
        nb.get_backend("torch", "cuda")


def test_jax_gpu_without_gpu_is_one_clear_error():
    jax = pytest.importorskip("jax")
    try:
        jax.devices("gpu")
        pytest.skip("this machine has a GPU for jax")
    except RuntimeError:
        pass
    with pytest.raises(nb.BackendUnavailableError, match="jax.*'gpu'"):
        nb.get_backend("jax", "gpu")


def test_bad_devices_are_named():
    with pytest.raises(ValueError, match="numpy.*only the device 'cpu'.*'cuda'"):
        nb.get_backend("numpy", "cuda")
    pytest.importorskip("array_api_strict")
    with pytest.raises(ValueError, match="strict.*no device 'device9'.*device1"):
        nb.get_backend("strict", "device9")


def test_strict_devices():
    pytest.importorskip("array_api_strict")
    b = nb.get_backend("strict", "device1")
    assert b.name == "strict" and "device1" in repr(b.device)
    a = b.asarray(np.ones((2, 3)), dtype=b.dtype("float32"))
    assert a.device == b.device
    np.testing.assert_array_equal(b.to_host(a), np.ones((2, 3)))


def test_float64_refused_on_device_without_it():
    pytest.importorskip("array_api_strict")
    b = nb.get_backend("strict", "no_float64")
    assert b.float_dtypes() == ("float32",)
    with pytest.raises(ValueError, match="'float64' is not supported by backend 'strict'.*float32"):
        b.dtype("float64")
    with pytest.raises(ValueError, match="float64"):
        nb.MLP([2, 1], backend="strict", device="no_float64", dtype="float64")
    assert nb.MLP([2, 1], backend="strict", device="no_float64").dtype == "float32"


@pytest.mark.parametrize("dtype", ["float16", "int32", "double"])
def test_unknown_dtype_is_named(dtype):
    with pytest.raises(ValueError, match="dtype must be one of"):
        nb.MLP([2, 1], dtype=dtype)


def test_backend_of_round_trips(backend):
    a = backend.asarray(np.arange(6.0).reshape(2, 3), dtype=backend.dtype("float32"))
    found = nb.backend_of(a)
    assert found.name == backend.name
    assert str(found.device) == str(backend.device)


def test_backend_of_refuses_non_arrays():
    with pytest.raises(TypeError, match="expected a NumPy array"):
        nb.backend_of(object())


class _UnhashableDevice:
    """Like CuPy's Device: compares by id, has no hash (``__eq__`` without ``__hash__``)."""

    def __init__(self, id):
        self.id = id

    def __eq__(self, other):
        return isinstance(other, _UnhashableDevice) and other.id == self.id

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def test_a_backend_on_a_device_that_does_not_hash_still_hashes():
    # The training loop keys its compiled figures on the backend: a CuPy fit
    # raised "unhashable type" there while the device object took part.
    from nnbackend.backends.cupy import CupyBackend
    from nnbackend.backends.dask import DaskBackend
    from nnbackend.network import NetSpec
    from nnbackend.training import loop

    with pytest.raises(TypeError):
        hash(_UnhashableDevice(0))
    xp = nb.get_backend("numpy").xp
    a = CupyBackend("cupy", xp, _UnhashableDevice(0))
    b = CupyBackend("cupy", xp, _UnhashableDevice(0))
    assert a == b and hash(a) == hash(b)
    assert a != CupyBackend("cupy", xp, _UnhashableDevice(1))
    spec = NetSpec("tanh", "sigmoid", "bce", "mean")
    assert loop._figures_function(a, spec, None, 0) is loop._figures_function(b, spec, None, 0)
    dask = DaskBackend("dask", xp, _UnhashableDevice(0))
    assert hash(dask) == hash(DaskBackend("dask", xp, _UnhashableDevice(0)))


@pytest.mark.parametrize("name, device", [("numpy", None), ("strict", None), ("strict", "device1"),
                                          ("torch", None), ("jax", "cpu"), ("dask", None)])
def test_a_backends_device_spec_makes_the_same_backend(name, device):
    # What a pickled estimator keeps: a name get_backend takes back.
    try:
        backend = nb.get_backend(name, device)
    except nb.BackendUnavailableError as exc:
        pytest.skip(f"backend {name} unavailable: {exc}")
    spec = backend.device_spec()
    assert isinstance(spec, str)
    assert nb.get_backend(name, spec) == backend


def test_cupys_device_spec_is_a_name_not_the_devices_text():
    from nnbackend.backends.cupy import CupyBackend

    backend = CupyBackend("cupy", nb.get_backend("numpy").xp, _UnhashableDevice(3))
    assert str(backend.device) == "<CUDA Device 3>" and backend.device_spec() == "cuda:3"


def test_torch_devices_absent_or_without_data_are_refused_by_name():
    pytest.importorskip("torch", reason="the torch backend needs torch")
    import torch

    if not getattr(getattr(torch, "xpu", None), "is_available", lambda: False)():
        with pytest.raises(nb.BackendUnavailableError, match="device 'xpu' is not available"):
            nb.get_backend("torch", "xpu")
    with pytest.raises(ValueError, match="'meta' device holds no data"):
        nb.get_backend("torch", "meta")
