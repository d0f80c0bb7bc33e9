"""A fit's ``precision``: TF32 matmuls as an opt-in, set for the fit and put back after.

Each library's switch is tested on the CPU through the context that sets it
(torch's and JAX's real switches; CuPy's through a stand-in of its
linear-algebra module), the plumbing through a backend whose context is the
torch one, and the rule that CPUs, float64 and the CuPy kernels report
full precision. The TF32 numbers themselves need a GPU (the last test).
"""

import contextlib
import sys
import types

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.backends import precision as P
from nnbackend.cli import main
from nnbackend.model import epoch_function


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    return X, (X[:, :1] > 0).astype(np.float32)


def test_an_unknown_precision_is_refused_by_name(capsys):
    X, y = _data()
    model = nb.MLP([3, 4, 1], seed=0)
    for bad in ("tf16", "float32", 32, True):
        with pytest.raises(ValueError, match=rf"unknown precision {bad!r}; choose None .* "
                                             r"\['highest', 'tf32'\]"):
            model.fit(X, y, epochs=1, precision=bad)
    assert main(["train", "--epochs", "1", "--quiet", "--precision", "tf32"]) == 0
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--precision", "bfloat16"])
    assert exit_.value.code == 2
    assert "invalid choice: 'bfloat16'" in capsys.readouterr().err


@pytest.mark.parametrize("asked", [None, "highest", "tf32"])
def test_cpu_fits_run_full_precision_and_say_so(backend, asked):
    """No CPU has TF32: every precision gives the same bits, reported as 'highest'."""
    if backend.is_gpu():
        pytest.skip("a GPU fit: test_tf32_on_a_gpu_changes_the_products_within_its_bound")
    X, y = _data()
    runs = []
    for precision in (None, asked):
        model = nb.MLP([3, 4, 1], backend=backend, dtype="float32", seed=0)
        hist = model.fit(X, y, mode="minibatch", batch_size=16, epochs=3, precision=precision)
        runs.append((hist, np.asarray(model.backend.to_host(model.predict(X)))))
    (base, out0), (hist, out1) = runs
    assert hist.precision == base.precision == "highest"
    assert hist.loss == base.loss
    np.testing.assert_array_equal(out0, out1)


def test_torch_switch_is_set_for_the_block_and_put_back():
    torch = pytest.importorskip("torch", reason="needs torch")
    assert torch.get_float32_matmul_precision() == "highest"
    with P.torch_precision(torch, "tf32") as now:
        assert now == "tf32" and torch.get_float32_matmul_precision() == "high"
        assert torch.backends.cuda.matmul.allow_tf32
    assert torch.get_float32_matmul_precision() == "highest"
    assert not torch.backends.cuda.matmul.allow_tf32
    with P.torch_precision(torch, None) as now:
        assert now == "highest"
    # The user's own TF32: None keeps it (and names it); 'highest' lifts it for the block.
    torch.set_float32_matmul_precision("high")
    try:
        with P.torch_precision(torch, None) as now:
            assert now == "tf32"
        with P.torch_precision(torch, "highest") as now:
            assert now == "highest" and torch.get_float32_matmul_precision() == "highest"
        assert torch.get_float32_matmul_precision() == "high"
        # ...and put back when the block raises, too.
        with pytest.raises(KeyError), P.torch_precision(torch, "highest"):
            raise KeyError("an epoch that failed")
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision("highest")


def test_a_torch_switch_set_through_both_its_apis_is_refused_not_overwritten():
    # A stand-in torch whose setting cannot be read back, as torch's is after a
    # mix of its legacy and new TF32 APIs; setting it would raise a TypeError.
    fake = types.SimpleNamespace(get_float32_matmul_precision=lambda: (_ for _ in ()).throw(
        RuntimeError("mix of the legacy and new APIs")), set_float32_matmul_precision=None)
    with P.torch_precision(fake, None) as now:
        assert now == "torch's own setting"
    with pytest.raises(ValueError, match="legacy and new APIs"), P.torch_precision(fake, "tf32"):
        pass


def test_torch_newer_switches_are_set_with_the_legacy_one_and_put_back_exactly():
    # torch >= 2.9's fp32_precision switches: a user who set TF32 through them alone
    # (torch then refuses to read the legacy switch) gets the precision asked for,
    # not a refusal; and a switch that inherited the global one inherits it again
    # after a fit (the legacy setter had pinned cuBLAS's and oneDNN's to 'ieee').
    torch = pytest.importorskip("torch", reason="needs torch")
    cuda = getattr(torch.backends.cuda, "matmul", None)
    if getattr(cuda, "fp32_precision", None) is None:
        pytest.skip(f"torch {torch.__version__} has no fp32_precision switches")
    switches = (torch.backends, cuda, torch.backends.mkldnn.matmul)

    def state():
        read = [s.fp32_precision for s in switches]
        try:
            return read + [torch.get_float32_matmul_precision()]
        except RuntimeError:
            return read + ["unreadable"]

    setups = {"default": lambda: None,
              "cuBLAS's switch": lambda: setattr(cuda, "fp32_precision", "tf32"),
              "the global switch": lambda: setattr(torch.backends, "fp32_precision", "tf32")}
    try:
        for setup in setups.values():
            for precision, legacy in (("highest", "highest"), ("tf32", "high"), (None, None)):
                torch.set_float32_matmul_precision("highest")
                for s in switches:
                    s.fp32_precision = "none"
                setup()
                before = state()
                with P.torch_precision(torch, precision) as now:
                    if legacy is not None:
                        assert now == precision
                        # The two APIs agree inside the block (torch refuses a matmul where not).
                        assert torch.get_float32_matmul_precision() == legacy
                        assert {"none": "highest", "ieee": "highest", "tf32": "tf32"}[
                            cuda.fp32_precision] == precision
                    else:
                        assert now == ("highest" if before[1] in ("none", "ieee") else "tf32")
                assert state() == before
        torch.set_float32_matmul_precision("highest")
        for s in switches:
            s.fp32_precision = "none"
        with P.torch_precision(torch, "tf32"):
            pass
        torch.backends.fp32_precision = "tf32"  # a later global opt-in reaches cuBLAS again
        assert cuda.fp32_precision == "tf32"
    finally:
        torch.set_float32_matmul_precision("highest")
        for s in switches:
            s.fp32_precision = "none"


class _Linalg:
    """A stand-in for ``cupy._core._routines_linalg``: the compute type per dtype."""

    COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_BF16, COMPUTE_TYPE_TF32 = 1, 6, 7

    def __init__(self, start=1, capability=90):
        self.types, self.capability, self.calls = {"f": start}, capability, []

    def get_compute_type(self, dtype):
        return self.types[np.dtype(dtype).char]

    def set_compute_type(self, dtype, compute_type):
        self.calls.append(compute_type)
        # As CuPy: TF32 and BF16 fall back to the default below compute capability 8.0.
        if compute_type in (6, 7) and self.capability < 80:
            compute_type = 1
        self.types[np.dtype(dtype).char] = compute_type


def test_cupy_compute_type_is_set_for_the_block_and_put_back():
    linalg = _Linalg()
    with P.cupy_precision(linalg, np.float32, "tf32") as now:
        assert now == "tf32" and linalg.types["f"] == 7
    assert linalg.types["f"] == 1 and linalg.calls == [7, 1]
    with P.cupy_precision(linalg, np.float32, None) as now:
        assert now == "highest"
    assert linalg.calls == [7, 1]  # None sets nothing
    # CUPY_TF32=1 (or bfloat16) set by the user: None names it, 'highest' lifts it.
    for start, name in ((7, "tf32"), (6, "bfloat16")):
        linalg = _Linalg(start)
        with P.cupy_precision(linalg, np.float32, None) as now:
            assert now == name
        with pytest.raises(KeyError), P.cupy_precision(linalg, np.float32, "highest") as now:
            assert now == "highest" and linalg.types["f"] == 1
            raise KeyError("an epoch that failed")
        assert linalg.types["f"] == start
    # A CuPy without the switch (it is not public API): None runs as it is, a
    # precision is refused by name rather than silently not set.
    for missing in (None, types.SimpleNamespace()):
        with P.cupy_precision(missing, np.float32, None) as now:
            assert now == "CuPy's own setting"
        with pytest.raises(ValueError, match="no compute-type switch.*CUPY_TF32=1"), \
                P.cupy_precision(missing, np.float32, "tf32"):
            pass
    # A GPU without TF32 (compute capability < 8.0): the fit says what ran.
    linalg = _Linalg(capability=75)
    with P.cupy_precision(linalg, np.float32, "tf32") as now:
        assert now == "highest"
    assert linalg.types["f"] == 1


def test_jax_precision_is_set_for_the_block_and_the_kernels_follow_it():
    jax = pytest.importorskip("jax", reason="needs jax")
    from nnbackend import kernels as K

    jnp = jax.numpy
    x, W = jnp.ones((4, 3), jnp.float32), jnp.ones((3, 2), jnp.float32)
    dense = jax.jit(lambda x, W: K.matmul_form(jnp)(x, W))

    def precision_of_traced():
        return dense.lower(x, W).as_text().split("precision = [")[1].split(",")[0]

    assert precision_of_traced() == "HIGHEST"
    with P.jax_precision(jax, "tf32") as now:
        assert now == "tf32" and jax.config.jax_default_matmul_precision == "tensorfloat32"
        assert precision_of_traced() == "HIGH"  # JAX's TF32 on a GPU
    assert jax.config.jax_default_matmul_precision is None
    assert precision_of_traced() == "HIGHEST"
    with P.jax_precision(jax, None) as now, P.jax_precision(jax, "highest") as also:
        assert now == also == "highest" and jax.config.jax_default_matmul_precision is None
    with jax.default_matmul_precision("tensorfloat32"):
        with P.jax_precision(jax, None) as now:
            assert now == "tf32"
        with P.jax_precision(jax, "highest") as now:
            assert now == "highest" and precision_of_traced() == "HIGHEST"


def _torch_backend_with_tf32(monkeypatch):
    """torch:cpu whose matmul_precision is the one torch:cuda has: what a CUDA fit sets."""
    torch = pytest.importorskip("torch", reason="needs torch")
    from nnbackend.backends.torch import TorchBackend

    entered = []

    def matmul_precision(self, precision, dtype):
        entered.append(precision)
        return P.torch_precision(torch, precision)

    monkeypatch.setattr(TorchBackend, "matmul_precision", matmul_precision)
    return torch, entered


def test_the_fit_runs_inside_the_precision_and_puts_it_back(monkeypatch):
    torch, entered = _torch_backend_with_tf32(monkeypatch)
    X, y = _data()
    seen = []
    model = nb.MLP([3, 4, 1], backend="torch", dtype="float32", seed=0)
    hist = model.fit(X, y, mode="minibatch", batch_size=16, epochs=2, precision="tf32",
                     callback=lambda *a: seen.append(torch.get_float32_matmul_precision()))
    assert seen == ["high", "high"] and entered == ["tf32"]
    assert hist.precision == "tf32" and torch.get_float32_matmul_precision() == "highest"
    # A fit that raises puts it back too.
    with pytest.raises(ValueError, match="stop here"):
        model.fit(X, y, epochs=2, precision="tf32",
                  callback=lambda *a: (_ for _ in ()).throw(ValueError("stop here")))
    assert torch.get_float32_matmul_precision() == "highest"
    # The benchmarks' step: set for each epoch, put back between them.
    step = epoch_function(model, X, y, mode="batch", precision="tf32")
    assert step.precision == "tf32" and torch.get_float32_matmul_precision() == "highest"
    monkeypatch.setattr(torch, "matmul", _recording(torch.matmul, torch, seen := []))
    step()
    assert seen and set(seen) == {"high"}
    assert torch.get_float32_matmul_precision() == "highest"


def _recording(matmul, torch, seen):
    def recorded(*args, **kwargs):
        seen.append(torch.get_float32_matmul_precision())
        return matmul(*args, **kwargs)
    return recorded


@pytest.mark.parametrize("executor, mode", [("jax-batch", "batch"), ("jax-scan", "minibatch")])
def test_jax_epochs_are_traced_again_under_tf32(monkeypatch, executor, mode):
    """The compiled epochs are cached across fits: a tf32 fit must trace them
    again (JAX keys jit's cache on the precision), its matmuls asking JAX for
    TF32 rather than HIGHEST. jax:cpu given jax:gpu's context."""
    jax = pytest.importorskip("jax", reason="needs jax")
    from nnbackend.backends.jax import JaxBackend

    monkeypatch.setattr(JaxBackend, "matmul_precision",
                        lambda self, precision, dtype: P.jax_precision(jax, precision))
    traced = []
    matmul = jax.numpy.matmul

    def spy(x1, x2, precision=None, **kwargs):
        traced.append((precision, jax.config.jax_default_matmul_precision))
        return matmul(x1, x2, precision=precision, **kwargs)

    monkeypatch.setattr(jax.numpy, "matmul", spy)
    X, y = _data()
    for precision in ("highest", "tf32", "highest"):
        model = nb.MLP([3, 4, 1], backend="jax", dtype="float32", seed=0)
        hist = model.fit(X, y, mode=mode, batch_size=16, epochs=2, precision=precision,
                         executor=executor)
        assert (hist.executor, hist.precision) == (executor, precision)
    highest = jax.lax.Precision.HIGHEST
    assert (None, "tensorfloat32") in traced, traced
    assert {p for p, config in traced if config is None} <= {highest}, traced
    assert jax.config.jax_default_matmul_precision is None


def test_float64_and_the_cupy_kernels_report_full_precision(monkeypatch):
    """What ran is what is reported: float64 has no TF32, and an executor whose own
    kernels compute the products (``own_matmuls``) is not reached by the switch."""
    torch, _ = _torch_backend_with_tf32(monkeypatch)
    from nnbackend import engine
    from nnbackend.backends.cupy.batch import CupyBatch
    from nnbackend.backends.cupy.bridge import CupyBridge
    from nnbackend.backends.cupy.fused import CupyFused

    assert CupyFused.own_matmuls and CupyBatch.own_matmuls and CupyBridge.own_matmuls
    X, y = _data()
    # float64: the torch context is entered, and torch's float64 matmuls have no TF32.
    model = nb.MLP([3, 4, 1], backend="torch", dtype="float64", seed=0)
    monkeypatch.setattr(type(model.backend), "matmul_precision",
                        lambda self, precision, dtype: contextlib.nullcontext("highest")
                        if dtype == torch.float64 else P.torch_precision(torch, precision))
    assert model.fit(X, y, epochs=1, precision="tf32").precision == "highest"
    # An executor with its own kernels: 'highest' whatever the library's switch says.
    chosen = engine.choose_executor

    def own_kernels(executor, task):
        choice = chosen(executor, task)
        return engine.Choice(choice.epoch, choice.name, choice.reason, own_matmuls=True)

    monkeypatch.setattr("nnbackend.training.loop.choose_executor", own_kernels)
    model = nb.MLP([3, 4, 1], backend="torch", dtype="float32", seed=0)
    assert model.fit(X, y, epochs=1, precision="tf32").precision == "highest"
    assert epoch_function(model, X, y, precision="tf32").precision == "highest"


def test_choose_executor_passes_on_own_matmuls():
    from nnbackend.engine import choose_executor

    class Kernel:
        name, own_matmuls = "cupy-fused", True

        def supports(self, task):
            return None

        def make_epoch(self, task):
            return "epoch"

    class Plain(Kernel):
        name, own_matmuls = "jax-scan", False

    for executor, want in ((Kernel(), True), (Plain(), False)):
        backend = types.SimpleNamespace(name="fake", no_reference_loop=None,
                                        executor_names=(executor.name,),
                                        executors=lambda e=executor: (e,))
        assert choose_executor("auto", types.SimpleNamespace(backend=backend)).own_matmuls is want
    assert choose_executor("reference", types.SimpleNamespace(backend=backend)).own_matmuls is False


def test_dask_on_gpu_chunks_refuses_a_precision_it_cannot_set():
    pytest.importorskip("dask", reason="needs dask")
    from nnbackend.backends.dask import DaskBackend

    gpu = types.SimpleNamespace(is_gpu=lambda: True)
    backend = DaskBackend.__new__(DaskBackend)
    object.__setattr__(backend, "params_backend", gpu)
    with pytest.raises(ValueError, match="Dask's workers.*CUPY_TF32=1"):
        backend.matmul_precision("tf32", None)
    with backend.matmul_precision(None, None) as now:
        assert now == "CuPy's own setting on the workers"
    with nb.get_backend("dask").matmul_precision("tf32", None) as now:
        assert now == "highest"



# -- the scikit-learn estimators' precision ----------------------------------------------

def test_estimators_refuse_an_unknown_precision_by_name():
    pytest.importorskip("sklearn", reason="needs scikit-learn")
    X, y = _data()
    for bad in ("tf16", 32, ["tf32"]):
        with pytest.raises(ValueError, match=r"The 'precision' parameter must be None or one "
                                             r"of \['highest', 'tf32'\]; got"):
            nb.MLPRegressor(max_iter=1, precision=bad).fit(X, y[:, 0])


@pytest.mark.parametrize("asked", [None, "highest", "tf32"])
def test_estimator_cpu_fits_run_full_precision_and_say_so(asked):
    pytest.importorskip("sklearn", reason="needs scikit-learn")
    X, y = _data()
    fits = [nb.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0,
                             precision=p).fit(X, y[:, 0]) for p in (None, asked)]
    assert [f.fit_precision_ for f in fits] == ["highest", "highest"]
    assert fits[0].loss_curve_ == fits[1].loss_curve_
    np.testing.assert_array_equal(fits[0].coefs_[0], fits[1].coefs_[0])


def test_estimator_fit_runs_inside_the_precision_and_puts_it_back(monkeypatch):
    """torch:cpu given torch:cuda's context: the epochs' matmuls (and the
    executor's making) run under TF32, the switch is put back after the fit
    (also one that raises), and an executor with its own kernels reports
    full precision."""
    pytest.importorskip("sklearn", reason="needs scikit-learn")
    torch, entered = _torch_backend_with_tf32(monkeypatch)
    from nnbackend import engine
    from nnbackend.estimators import _base

    X, y = _data()
    seen = []
    monkeypatch.setattr(torch, "matmul", _recording(torch.matmul, torch, seen))
    made = []
    chosen = engine.choose_executor

    def recording_choice(executor, task):
        made.append(torch.get_float32_matmul_precision())
        return chosen(executor, task)

    monkeypatch.setattr(_base, "choose_executor", recording_choice)
    est = nb.MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0, backend="torch",
                          precision="tf32").fit(X, y[:, 0])
    assert entered == ["tf32"] and made == ["high"]
    assert seen and set(seen) == {"high"}
    assert est.fit_precision_ == "tf32" and torch.get_float32_matmul_precision() == "highest"
    est.set_params(precision=None).fit(X, y[:, 0])
    assert est.fit_precision_ == "highest" and entered == ["tf32", None]
    # A fit that raises (a non-finite solver) puts it back too.
    with pytest.raises(ValueError, match="non-finite"):
        est.set_params(precision="tf32", learning_rate_init=1e30).fit(X * 1e30, y[:, 0] * 1e30)
    assert torch.get_float32_matmul_precision() == "highest"

    def own_kernels(executor, task):
        choice = chosen(executor, task)
        return engine.Choice(choice.epoch, choice.name, choice.reason, own_matmuls=True)

    monkeypatch.setattr(_base, "choose_executor", own_kernels)
    est.set_params(learning_rate_init=1e-3).fit(X, y[:, 0])
    assert est.fit_precision_ == "highest"


# One case a backend, so that pytest-xdist spreads them (14 fits in all, each
# executor compiled or captured twice).
@pytest.mark.parametrize("name, device", [("cupy", None), ("torch", "cuda"), ("jax", "gpu")])
def test_tf32_on_a_gpu_changes_the_products_within_its_bound(name, device):
    """On a GPU with tensor cores: the library executors' float32 matmuls in TF32
    differ from full float32, within TF32's rounding (10 mantissa bits), and
    every switch is put back after the fit."""
    try:
        backends = [nb.get_backend(name, device)]
    except Exception as exc:  # no library, or no GPU for it
        pytest.skip(f"needs {name}{':' + device if device else ''} on a CUDA GPU "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0]})")
    # The executors whose matmuls are the library's, a CUDA graph and XLA's included.
    # (executor, mode): the graphs replay steps, so mini-batches of 128 rows.
    library_executors = {
        "cupy": (("reference", "batch"), ("cupy-graphs", "minibatch")),
        "torch": (("reference", "batch"), ("torch-graphs", "minibatch")),
        "jax": (("reference", "batch"), ("jax-batch", "batch"), ("jax-scan", "minibatch"))}
    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, 256)).astype(np.float32)
    y = rng.integers(0, 10, 512)
    for backend in backends:
        for executor, mode in library_executors[backend.name]:
            where = f"{backend.name} {executor} {mode}"
            outs = {}
            for precision in ("highest", "tf32"):
                model = nb.MLP([256, 256, 10], output_activation="softmax",
                               loss="cross_entropy", backend=backend.name,
                               device=backend.device, seed=0)
                hist = model.fit(X, y, mode=mode, batch_size=128, epochs=1,
                                 precision=precision, executor=executor)
                outs[precision] = (hist, np.asarray(model.backend.to_host(model.predict(X))))
            (h0, p0), (h1, p1) = outs["highest"], outs["tf32"]
            assert (h0.precision, h1.precision) == ("highest", "tf32"), where
            assert h1.executor == executor, where
            # 256-term products of N(0,1) data: TF32 moves them by ~1e-3 relative.
            assert not np.array_equal(p0, p1), where
            np.testing.assert_allclose(p1, p0, rtol=2e-2, atol=2e-3, err_msg=where)
    if "torch" in sys.modules:
        assert sys.modules["torch"].get_float32_matmul_precision() == "highest"
    if "jax" in sys.modules:
        assert sys.modules["jax"].config.jax_default_matmul_precision is None
