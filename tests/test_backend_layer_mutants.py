"""Tests from the mutation audit of the backend layer (the 08m audit):
``nnbackend/backends/base.py`` (the Backend base class and its helpers),
``nnbackend/backends/__init__.py`` (get_backend, the registry, the executor
table), ``nnbackend/backends/precision.py`` (the TF32 switches) and
``nnbackend/backends/blas.py`` (the BLAS thread count and the free cores).

Each test names in a comment the mutants it kills (ids of the audit's
tables) and what went wrong under them; "(killed before)" marks an id the
existing tests already killed, which the test here kills too (verified).
Nothing here needs a GPU or measures a machine: torch's and CuPy's
switches, threadpoolctl's controller, /proc/cpuinfo, /proc/loadavg, the
load average and the clock are stand-ins where a test needs them (one test
sets torch's own fp32_precision switches on the CPU and puts them back).
"""

import importlib.metadata
import io
import pickle
import sys
import types

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.backends import ENV_VAR, base, blas
from nnbackend.backends import precision as P
from nnbackend.backends.numpy import NumpyBackend


# -- base.py: the host arrays every library takes -----------------------------------------


def test_a_broken_install_is_refused_with_the_install_hint(tmp_path, monkeypatch):
    # A02: only ImportError was caught: a library whose import raised anything
    # else (a broken install) leaked its own error, not the "not available"
    # refusal with the install hint.
    (tmp_path / "nnb_broken_library.py").write_text("raise RuntimeError('half installed')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "nnb_broken_library", raising=False)
    with pytest.raises(nb.BackendUnavailableError,
                       match=r"backend 'fake' is not available: importing 'nnb_broken_library' "
                             r"failed \(RuntimeError: half installed\)\. Install it with: pip x"):
        base.import_or_refuse("fake", "nnb_broken_library", "pip x")


def test_native_host_copies_only_what_a_library_refuses():
    # A03: float64 (itemsize 8) taken for extended precision: every float64
    # array copied. A06: a stride of 0 (a broadcast array) taken for a
    # negative one: copied. A07 (killed before): a reversed array passed on
    # as it is (torch refuses negative strides).
    a = np.arange(6.0).reshape(2, 3)
    assert base.native_host(a) is a
    wide = np.broadcast_to(np.arange(3.0), (4, 3))
    assert 0 in wide.strides and base.native_host(wide) is wide
    back = base.native_host(a[::-1])
    assert all(s > 0 for s in back.strides)
    np.testing.assert_array_equal(back, a[::-1])


def test_native_host_turns_byte_order_and_extended_floats_native():
    # A04, A05 (both killed before): long doubles (itemsize 16 on x86-64)
    # left extended; a big-endian array passed on in its byte order.
    swapped = np.arange(4.0).astype(">f8")
    got = base.native_host(swapped)
    assert got.dtype.isnative and got.dtype == np.float64
    np.testing.assert_array_equal(got, np.arange(4.0))
    extended = np.arange(3, dtype=np.longdouble)
    if extended.dtype.itemsize <= 8:
        return  # long double is float64 on this platform: nothing to turn
    got = base.native_host(extended)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, np.arange(3.0))


def test_a_namespace_module_keeps_its_own_name_and_doc():
    # A08 (killed before): __name__ not kept back from the base: the new module took NumPy's
    # name ("numpy"), so tracebacks and reprs named the wrong module.
    module = base.make_namespace("nnb_test_ns", np, "a doc", add=len)
    assert module.__name__ == "nnb_test_ns" and module.__doc__ == "a doc"
    assert module.add is len and module.multiply is np.multiply


def test_the_cpu_name_is_the_model_name_line(monkeypatch):
    # A10: "model" matched first the line "model : 1" above "model name": the
    # CPU was named "CPU 1" in every profile and bench report.
    text = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n"
            "model name\t: AMD EPYC 7B13 64-Core Processor\nstepping\t: 1\n")
    monkeypatch.setattr(base, "open", lambda path: io.StringIO(text),
                        raising=False)
    assert base.cpu_name.__wrapped__() == "CPU AMD EPYC 7B13 64-Core Processor"


def test_a_cpuinfo_without_a_model_name_gives_the_machine(monkeypatch):
    # A28: no fallback to platform.machine() where /proc/cpuinfo names no
    # model (many ARM kernels) and platform.processor() is "": the CPU was
    # named "CPU " in profiles and reports.
    import platform

    monkeypatch.setattr(base, "open", lambda path: io.StringIO("processor\t: 0\nBogoMIPS\t: 50\n"),
                        raising=False)
    monkeypatch.setattr(platform, "processor", lambda: "")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert base.cpu_name.__wrapped__() == "CPU aarch64"


# -- base.py: making, pickling and describing a backend ------------------------------------


def test_a_scheduler_is_refused_by_every_backend_but_dask():
    # A11: numpy took scheduler= and dropped it: a fit meant for a cluster
    # ran locally, silently.
    with pytest.raises(ValueError, match="scheduler= applies to the dask backend only"):
        nb.get_backend("numpy", scheduler="synchronous")


def test_a_pickled_dask_backend_keeps_its_schedulers_name():
    # A13: the scheduler was dropped on pickling: a pickled (or deep-copied)
    # model's dask backend came back on Dask's default scheduler.
    pytest.importorskip("dask", reason="the dask backend needs dask")
    backend = nb.get_backend("dask", scheduler="synchronous")
    assert pickle.loads(pickle.dumps(backend)).scheduler == "synchronous"


def test_a_pickled_backend_keeps_its_device_as_get_backend_takes_it():
    # A14 (killed before): the device object itself was pickled, not its
    # name: CuPy's Device (text "<CUDA Device 3>") is not what get_backend
    # takes back.
    from nnbackend.backends.cupy import CupyBackend

    class Device:
        def __init__(self, id):
            self.id = id

        def __repr__(self):
            return f"<CUDA Device {self.id}>"

    backend = CupyBackend("cupy", np, Device(3))
    load, args = backend.__reduce__()
    assert args == ("cupy", "cuda:3", None)


class _NoFloats(NumpyBackend):
    """A device where no float array could be made."""

    def float_dtypes(self):
        return ()


def test_a_device_with_no_float_dtype_is_unusable_not_a_dtype_choice():
    # A16: refused as "dtype 'float32' is not supported ...; use
    # dtype='float32'", advice that cannot be followed, instead of naming the
    # device as unusable.
    with pytest.raises(nb.BackendUnavailableError, match="is not usable here"):
        _NoFloats("numpy", np, "cpu").dtype("float32")


def test_the_wide_dtype_is_float64_only_where_the_device_has_it():
    # A18: float64 given as the wide dtype on a float32-only device.
    assert nb.get_backend("numpy").wide_dtype() == np.float64
    pytest.importorskip("array_api_strict", reason="the strict backend needs array_api_strict")
    assert nb.get_backend("strict", "no_float64").wide_dtype() is None


def test_a_probe_array_has_the_dtype_named():
    # A19: the probe kept the host data's dtype (int64 here) instead of the
    # fit's, so executors were asked about a fit that would not run.
    probe = nb.get_backend("numpy").probe_array(np.arange(4), "float32")
    assert probe.dtype == np.float32


def test_a_dtype_is_taken_by_anything_whose_text_names_it():
    # A29: a NumPy dtype object (not its name) passed the check, equal to
    # "float32", and then failed as an attribute name: a TypeError.
    backend = nb.get_backend("numpy")
    assert backend.dtype(np.dtype("float32")) is np.float32


class _Accelerator(NumpyBackend):
    answer = None

    def accelerator_name(self):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_the_device_name_is_the_accelerators_else_the_cpus(monkeypatch):
    # A23: a CPU backend named None (no fallback to the CPU's name). A24: a
    # driver query that failed with anything but ImportError escaped. A34:
    # the accelerator's name replaced by the CPU's.
    monkeypatch.setattr(base, "cpu_name", lambda: "CPU Test")
    backend = _Accelerator("numpy", np, "cpu")
    assert backend.device_name() == "CPU Test"
    _Accelerator.answer = "NVIDIA H100"
    try:
        assert backend.device_name() == "NVIDIA H100"  # A34: the GPU's name dropped
    finally:
        _Accelerator.answer = None
    _Accelerator.answer = RuntimeError("driver")
    try:
        assert backend.device_name() == "CPU Test"
    finally:
        _Accelerator.answer = None
    assert nb.get_backend("numpy").device_name() == "CPU Test"


def test_a_backends_version_is_its_distributions():
    # A25: the backend's name looked up, not its distribution: the strict
    # backend's version (array-api-strict) was None in profiles and reports.
    pytest.importorskip("array_api_strict", reason="the strict backend needs array_api_strict")
    assert nb.backends.library_version("strict") == importlib.metadata.version(
        "array-api-strict")


def test_an_unknown_backends_version_is_none_not_an_error():
    # R16, R17: library_version of a name no backend has raised
    # (AttributeError, KeyError), where it promises None, never an error.
    assert nb.backends.library_version("tensorflow") is None
    assert nb.backends.library_version("numpy") == np.__version__


# -- __init__.py: get_backend and the registry -------------------------------------------


def test_a_backend_given_with_a_scheduler_is_made_again_with_it():
    # R01: a Backend given as the name with only scheduler= came back as it
    # was: the scheduler asked for was dropped.
    pytest.importorskip("dask", reason="the dask backend needs dask")
    plain = nb.get_backend("dask")
    assert nb.get_backend(plain, scheduler="synchronous").scheduler == "synchronous"


def test_a_backend_given_with_a_device_keeps_its_scheduler():
    # R02: a Backend given with device= was made again without its scheduler.
    pytest.importorskip("dask", reason="the dask backend needs dask")
    backend = nb.get_backend("dask", scheduler="synchronous")
    assert nb.get_backend(backend, "cpu").scheduler == "synchronous"


def test_an_empty_environment_variable_means_numpy(monkeypatch):
    # R03: NNBACKEND_BACKEND set to "" was taken as a backend's name and
    # refused as unknown, not read as unset.
    monkeypatch.setenv(ENV_VAR, "")
    assert nb.get_backend().name == "numpy"


@pytest.mark.parametrize("name", [" numpy ", "NumPy", "NUMPY:cpu"])
def test_a_backends_name_is_read_without_case_or_spaces(name):
    # R04: spaces round the name kept ("unknown backend ' numpy '"). R05: the
    # name's case kept ("unknown backend 'NumPy'").
    assert nb.get_backend(name).name == "numpy"


def test_a_device_in_the_name_keeps_its_case():
    # R08: the device after the colon lower-cased with the backend's name:
    # array-api-strict's "CPU_DEVICE" became "cpu_device", an unknown device.
    pytest.importorskip("array_api_strict", reason="the strict backend needs array_api_strict")
    assert nb.get_backend("strict:CPU_DEVICE") == nb.get_backend("strict", "CPU_DEVICE")


def test_a_device_given_twice_is_compared_by_its_text(monkeypatch):
    # R19: the device argument compared to the name's device as it is: an int
    # (get_backend("cupy:1", 1), as CuPy's devices are numbered) was refused
    # as naming another device.
    loaded = []

    class Recording(NumpyBackend):
        @classmethod
        def load(cls, name, device=None, scheduler=None):
            loaded.append((name, device))
            return NumpyBackend.load(name)

    monkeypatch.setitem(nb.backends._CLASSES, "numpy", Recording)
    assert nb.get_backend("numpy:1", 1).name == "numpy"
    assert loaded == [("numpy", "1")]


def test_a_backend_given_with_a_device_moves_there():
    # R20: a Backend given as the name with device= came back on its own
    # device, the one asked for dropped.
    pytest.importorskip("array_api_strict", reason="the strict backend needs array_api_strict")
    moved = nb.get_backend(nb.get_backend("strict"), "device1")
    assert moved == nb.get_backend("strict", "device1") != nb.get_backend("strict")


def test_the_same_device_named_twice_in_its_own_case_is_taken():
    # Found while checking R08 (a library bug, now fixed): "strict:CPU_DEVICE"
    # with device="CPU_DEVICE" names one device twice, which get_backend takes
    # ("numpy:cpu", "cpu"), but the name's copy was compared lower-cased and
    # refused as "names another".
    pytest.importorskip("array_api_strict", reason="the strict backend needs array_api_strict")
    assert nb.get_backend("strict:CPU_DEVICE", "CPU_DEVICE").name == "strict"


def test_the_executor_table_names_each_executor_once_with_its_owner_first():
    # R09: an executor several backends list (cupy-fused: cupy's, bridged by
    # torch and jax) listed three times in executor_names() and MLP's
    # executor choices.
    # R11: an unknown executor's hosts were (None,), not ().
    names = nb.backends.executor_names()
    assert len(names) == len(set(names)) and "cupy-fused" in names
    assert nb.backends.executor_hosts("cupy-fused") == ("cupy", "torch", "jax")
    assert nb.backends.executor_hosts("no-such-executor") == ()
    assert nb.backends.executor_owner("cupy-fused") == "cupy"
    assert nb.backends.executor_owner("no-such-executor") is None


def test_a_backend_refusing_its_default_with_a_value_error_is_not_listed():
    # R14: array-api-strict set to an earlier standard (get_backend("strict")
    # raises ValueError) made available_backends() raise, not leave strict out.
    xp = pytest.importorskip("array_api_strict", reason="the strict backend needs array_api_strict")
    if not hasattr(xp, "set_array_api_strict_flags"):
        pytest.skip("this array-api-strict has no flags")
    try:
        xp.set_array_api_strict_flags(api_version="2023.12")
        assert nb.backends._usable.__wrapped__("strict") is False
    finally:
        xp.reset_array_api_strict_flags()
    assert nb.backends._usable.__wrapped__("strict") is True


def test_only_usable_backends_are_listed(monkeypatch):
    # R21: every known backend listed, usable here or not (cupy without a GPU).
    monkeypatch.setattr(nb.backends, "_usable", lambda name: name in ("numpy", "dask"))
    assert nb.available_backends() == ["numpy", "dask"]


def test_auto_is_refused_as_chosen_at_each_fit_not_as_unknown():
    # R06: "auto" refused as an unknown backend, among names that leave it
    # out, instead of saying where it is taken (MLP, the estimators).
    with pytest.raises(ValueError, match=r"backend 'auto' is chosen at each fit, not here"):
        nb.get_backend("auto")
    with pytest.raises(ValueError, match=r"chosen at each fit"):
        nb.get_backend(" AUTO ")


# -- precision.py: the TF32 switches --------------------------------------------------------


class _Torch:
    """A stand-in torch: the legacy switch, and ``backends`` as the test builds it."""

    def __init__(self, backends, legacy="highest"):
        self.backends, self.legacy, self.set_calls = backends, legacy, []

    def get_float32_matmul_precision(self):
        if isinstance(self.legacy, Exception):
            raise self.legacy
        return self.legacy

    def set_float32_matmul_precision(self, value):
        self.set_calls.append(value)
        self.legacy = value


class _Strict:
    """An object that refuses attributes it does not have, as torch's modules do."""

    def __init__(self, **fields):
        object.__setattr__(self, "fields", fields)

    def __getattr__(self, name):
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        if name not in self.fields:
            raise AttributeError(f"no switch {name!r}")
        self.fields[name] = value


def test_a_torch_without_the_newer_switches_only_sets_the_legacy_one():
    # P02: a matmul module without fp32_precision (torch < 2.9) counted as a
    # newer switch: on leaving the block "none" was written to it, which
    # torch's module refuses (AttributeError after every TF32 fit).
    matmul = _Strict(allow_tf32=False)
    torch = _Torch(types.SimpleNamespace(cuda=types.SimpleNamespace(matmul=matmul)))
    with P.torch_precision(torch, "tf32") as now:
        assert now == "tf32" and torch.legacy == "high"
    assert torch.legacy == "highest" and "fp32_precision" not in matmul.fields


class _Raising:
    @property
    def fp32_precision(self):
        raise RuntimeError("not readable here")


def test_a_switch_that_raises_when_read_counts_as_absent():
    # P03: a RuntimeError reading a newer switch (torch raises one where the
    # switch is unsupported) escaped the fit instead of counting as absent.
    torch = _Torch(types.SimpleNamespace(cuda=types.SimpleNamespace(matmul=_Raising())))
    with P.torch_precision(torch, "tf32") as now:
        assert now == "tf32"
    assert torch.legacy == "highest"


def test_a_newer_switch_that_inherited_the_global_one_inherits_it_again():
    # P07: after a TF32 fit, a switch that had inherited the global
    # fp32_precision ("ieee") was pinned to "ieee": a later global opt-in to
    # TF32 no longer reached cuBLAS.
    torch = pytest.importorskip("torch", reason="needs torch")
    cuda = getattr(torch.backends.cuda, "matmul", None)
    if getattr(cuda, "fp32_precision", None) is None:
        pytest.skip(f"torch {torch.__version__} has no fp32_precision switches")
    try:
        torch.backends.fp32_precision = "ieee"
        assert cuda.fp32_precision == "ieee"  # read back: the global value
        with P.torch_precision(torch, "tf32") as now:
            assert now == "tf32"
        torch.backends.fp32_precision = "tf32"
        assert cuda.fp32_precision == "tf32"
    finally:
        torch.set_float32_matmul_precision("highest")
        for switch in (torch.backends, cuda, torch.backends.mkldnn.matmul):
            switch.fp32_precision = "none"


def test_precision_none_names_the_newer_switchs_value_by_nnbackends_name():
    # P10: with the legacy switch unreadable, the newer switch's value was
    # yielded in torch's words ("ieee", "bf16"), not nnbackend's.
    for value, name in (("ieee", "highest"), ("bf16", "bfloat16"), ("tf32", "tf32")):
        matmul = _Strict(fp32_precision=value)
        torch = _Torch(_Strict(fp32_precision="none", cuda=types.SimpleNamespace(matmul=matmul)),
                       legacy=RuntimeError("mixed APIs"))
        with P.torch_precision(torch, None) as now:
            assert now == name


def test_a_cupy_with_only_half_the_switch_is_refused_by_name():
    # P08: a linalg module with get_compute_type but no set_compute_type was
    # taken: the fit failed with an AttributeError, not the refusal.
    half = types.SimpleNamespace(get_compute_type=lambda dtype: 1)
    with pytest.raises(ValueError, match="no compute-type switch"), \
            P.cupy_precision(half, np.float32, "tf32"):
        pass


class _Linalg:
    """CuPy's linalg module with its own numbering of the compute types."""

    COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_TF32 = 11, 17

    def __init__(self):
        self.now = 11

    def get_compute_type(self, dtype):
        return self.now

    def set_compute_type(self, dtype, compute_type):
        self.now = compute_type


def test_cupys_compute_types_are_read_from_its_module():
    # P15: the numbers hard-coded here used in place of the module's own: a
    # CuPy numbering them otherwise was set to a wrong compute type.
    linalg = _Linalg()
    with P.cupy_precision(linalg, np.float32, "tf32") as now:
        assert now == "tf32" and linalg.now == 17
    assert linalg.now == 11


# -- blas.py: the BLAS thread count and the free cores -------------------------------------


class _Controller:
    """threadpoolctl's controller, with the BLAS libraries' thread counts."""

    def __init__(self, counts):
        self.counts, self.asked = counts, []

    def select(self, user_api):
        self.asked.append(("select", user_api))
        libs = [types.SimpleNamespace(num_threads=n) for n in self.counts.get(user_api, [])]
        return types.SimpleNamespace(lib_controllers=libs)

    def limit(self, limits, user_api):
        self.asked.append(("limit", limits, user_api))
        return "limited"


def test_the_blas_thread_count_is_the_largest_blas_librarys(monkeypatch):
    # L01: the smallest of several BLAS libraries' counts. L02: no BLAS
    # library read as 1 thread, not unknown. L10 (killed before): OpenMP's
    # count read.
    controller = _Controller({"blas": [1, 4], "openmp": [2]})
    monkeypatch.setattr(blas, "_controller", lambda: controller)
    assert blas.current_threads() == 4
    controller.counts = {"openmp": [2]}
    assert blas.current_threads() is None


def test_without_a_controller_the_threads_cannot_be_set(monkeypatch):
    # L15: available() said True without threadpoolctl, so the profile's
    # BLAS advice was taken for a fit that could not apply it.
    monkeypatch.setattr(blas, "_controller", lambda: None)
    assert blas.available() is False and blas.current_threads() is None


def test_the_limit_is_on_blas(monkeypatch):
    # L09 (killed before): OpenMP's threads limited, NumPy's BLAS left as it was.
    controller = _Controller({})
    monkeypatch.setattr(blas, "_controller", lambda: controller)
    assert blas.limit(3) == "limited"
    assert controller.asked == [("limit", 3, "blas")]


class _Failing:
    """A controller whose every query fails (a library threadpoolctl cannot drive)."""

    def select(self, user_api):
        raise RuntimeError("cannot inspect")

    def limit(self, limits, user_api):
        raise RuntimeError("cannot limit")


def test_a_controller_that_fails_leaves_the_threads_alone(monkeypatch):
    # L18: a failing limit() raised out of the fit instead of leaving BLAS as
    # it is. L19: a failing query raised instead of answering "unknown".
    monkeypatch.setattr(blas, "_controller", lambda: _Failing())
    with blas.limit(2) as entered:
        assert entered is None
    assert blas.current_threads() is None


def test_free_cores_asked_with_a_figure_is_not_the_cached_answer(monkeypatch):
    # L03: free_cores(load=...) without cores answered the cached reading of
    # the machine, not the load given.
    monkeypatch.setattr(blas, "_LAST", [float("inf"), 99])
    monkeypatch.setattr(blas.os, "cpu_count", lambda: 8)
    assert blas.free_cores(load=1.5, running=1) == 7


def test_the_machines_free_cores_are_read_again_after_half_a_second(monkeypatch):
    # L04: the reading cached for far longer (a load that started later was
    # never seen). L17: read anew at every call (70 us, a small fit's whole
    # step). L20: the reading's time not kept, so read anew at every call.
    # L11: the reading made with 1 core, not the machine's.
    clock, readings = [100.0], []

    def read(load, cores, running):
        readings.append((load, cores, running))
        return len(readings) + 1

    monkeypatch.setattr(blas, "_LAST", [float("-inf"), 1])
    monkeypatch.setattr(blas, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(blas, "_free_cores", read)
    assert blas.free_cores() == 2
    clock[0] = 100.4
    assert blas.free_cores() == 2
    clock[0] = 100.6
    assert blas.free_cores() == 3
    assert readings == [(None, None, None)] * 2


def test_the_load_is_the_one_minute_average_and_runnable_tasks_from_proc(monkeypatch):
    # L08: the five-minute average read. L07: the total task count read off
    # /proc/loadavg, not the runnable ones. L21: the runnable tasks never read
    # (taken as 1). L14: an unreadable /proc/loadavg read as 2 runnable tasks,
    # taking a core from the answer.
    monkeypatch.setattr(blas.os, "getloadavg", lambda: (1.0, 3.0, 3.0))
    assert blas.free_cores(cores=4, running=1) == 4
    monkeypatch.setattr(blas, "open", lambda path: io.StringIO("0.50 0.40 0.30 3/456 12345\n"),
                        raising=False)
    assert blas._running_now() == 3
    assert blas.free_cores(load=0.0, cores=4) == 2  # L21: the runnable tasks not asked

    def unreadable(path):
        raise OSError("no /proc here")

    monkeypatch.setattr(blas, "open", unreadable, raising=False)
    assert blas._running_now() == 1
    assert blas.free_cores(load=0.0, cores=4) == 4
