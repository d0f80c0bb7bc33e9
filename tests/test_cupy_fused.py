"""The CuPy fused-epoch kernel against the reference loop.

Without a GPU the kernel's source is compiled for the host (one thread runs
every phase in turn; see ``nnbackend.backends.cupy.fused``) and checked
against ``run_epoch`` on NumPy, and compiled for the GPU with nvcc where it
is installed; with a GPU, fit runs it through CuPy against the reference
loop on the same device.
"""

import shutil
import subprocess

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.data import host_rng, make_plan
from nnbackend.backends.cupy import fused as F
from nnbackend.engine import EpochTask, epoch_runner
from nnbackend.network import NetSpec
from nnbackend.optim import get_optimizer
from nnbackend.engine import run_epoch

N = 101  # not a multiple of any batch size below: every epoch ends on a short batch

# (hidden activation, output activation, loss, outputs): every loss, every
# output and every hidden activation at least once.
NETWORKS = [
    ("tanh", "sigmoid", "bce", 1),
    ("relu", "softmax", "cross_entropy", 3),
    ("sigmoid", "identity", "mse", 2),
    ("identity", "softmax", "mse", 3),
    ("sigmoid", "sigmoid", "mse", 1),
]
OPTIMIZERS = [("sgd", {}), ("momentum", {"beta": 0.8}), ("momentum", {"nesterov": True}),
              ("adam", {})]

needs_cxx = pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler (c++) here")


def _host_data(output, loss, k, seed=0):
    """``X`` (N, 5) and targets ``y`` suited to the output and loss, NumPy float64."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 5))
    if loss == "cross_entropy":
        y = rng.integers(0, k, N)
    elif output == "softmax":
        y = np.eye(k)[rng.integers(0, k, N)]
    elif output == "sigmoid":
        y = (X[:, :k] > 0).astype(np.float64)
    else:
        y = rng.normal(size=(N, k))
    return X, y


def _problem(hidden, output, loss, k, dtype, reduction="mean"):
    X, y = _host_data(output, loss, k)
    model = nb.MLP([5, 7, 6, k], hidden_activation=hidden, output_activation=output, loss=loss,
                   reduction=reduction, backend="numpy", dtype=dtype, seed=1)
    multiclass = {"softmax": True, "sigmoid": False}.get(output)
    return model, model._features(X), model._targets(y, N), multiclass


def _run_both(model, X, Y, multiclass, opt, plan, epochs, dtype):
    fused = F.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, model.layer_sizes, dtype,
                         F.host_launcher)
    rng_fused, rng_ref = host_rng(3), host_rng(3)
    params = model.flat_params
    a = (params, opt.init(params))
    b = (params, opt.init(params))
    for _ in range(epochs):
        *a, loss_a, hits_a = fused(*a, plan.order(rng_fused))
        *b, loss_b, hits_b = run_epoch(*b, opt, model.spec, X, Y, plan, rng_ref, np.int64, 2048,
                                       multiclass, xp=model.backend.xp)
    return a, b, (loss_a, hits_a), (loss_b, hits_b)


@needs_cxx
@pytest.mark.parametrize("optimizer, options", OPTIMIZERS)
@pytest.mark.parametrize("hidden, output, loss, k", NETWORKS)
def test_host_build_equals_reference_float64(hidden, output, loss, k, optimizer, options):
    model, X, Y, multiclass = _problem(hidden, output, loss, k, "float64")
    opt = get_optimizer(optimizer, 0.05, **options)
    plan = make_plan("minibatch", N, 8, shuffle=True)
    (params, state), (ref_params, ref_state), (loss_sum, hits), (ref_loss, ref_hits) = _run_both(
        model, X, Y, multiclass, opt, plan, 3, "float64")
    for got, want in zip(params, ref_params):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # The optimizer state carries on as the reference's does (resuming needs it).
    for got, want in zip(state, ref_state):
        if isinstance(want, list):
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-14)
        else:
            assert got == want
    np.testing.assert_allclose(float(loss_sum), float(ref_loss), rtol=1e-12)
    assert (hits is None) == (ref_hits is None)
    if hits is not None:
        assert float(hits) == float(ref_hits)


@needs_cxx
@pytest.mark.parametrize("mode, batch_size", [("sgd", 1), ("minibatch", 64)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_host_build_equals_reference_float32(mode, batch_size, reduction):
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "bce", 1, "float32", reduction)
    opt = get_optimizer("adam", 0.01)
    plan = make_plan(mode, N, batch_size, shuffle=True)
    (params, _), (ref_params, _), (loss_sum, hits), (ref_loss, ref_hits) = _run_both(
        model, X, Y, multiclass, opt, plan, 1, "float32")
    for got, want in zip(params, ref_params):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(loss_sum), float(ref_loss), rtol=1e-5)
    assert abs(float(hits) - float(ref_hits)) <= 1


@needs_cxx
def test_host_build_without_shuffle_and_leaves_inputs_alone():
    model, X, Y, multiclass = _problem("sigmoid", "sigmoid", "mse", 1, "float64")
    opt = get_optimizer("momentum", 0.1)
    plan = make_plan("sgd", N, 1, shuffle=False)
    params = [p.copy() for p in model.flat_params]
    state = opt.init(params)
    fused = F.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, model.layer_sizes,
                         "float64", F.host_launcher)
    new_params, new_state, _, _ = fused(params, state, plan.order(host_rng(0)))
    ref_params, _, _, _ = run_epoch(params, state, opt, model.spec, X, Y, plan, host_rng(0),
                                    np.int64, 2048, multiclass, xp=model.backend.xp)
    for got, want, before, original in zip(new_params, ref_params, params, model.flat_params):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(before, original)  # the caller's arrays are untouched
    assert all(np.all(v == 0) for v in state.velocity)
    assert not all(np.all(v == 0) for v in new_state.velocity)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (the CUDA compiler) is not installed")
@pytest.mark.parametrize("dtype, optimizer", [("float32", "adam"), ("float64", "momentum"),
                                              ("float32", "sgd")])
@pytest.mark.parametrize("hidden, output, loss, k", NETWORKS)
def test_cuda_source_compiles(tmp_path, hidden, output, loss, k, dtype, optimizer):
    spec = NetSpec(hidden, output, loss, "mean")
    layout = F.Layout([32, 24, 16, k], 16)
    source = tmp_path / "fused.cu"
    multiclass = {"softmax": True, "sigmoid": False}.get(output)
    source.write_text(F.kernel_source(layout, spec, optimizer, dtype, multiclass))
    done = subprocess.run(["nvcc", "-arch=sm_80", "--std=c++14", "-ptx", "-Werror",
                           "all-warnings", "-o", str(tmp_path / "fused.ptx"), str(source)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "bar.sync" in (tmp_path / "fused.ptx").read_text()  # the phases' barriers are there


def test_unsupported_says_why():
    spec = NetSpec("tanh", "sigmoid", "bce", "mean")
    sgd = get_optimizer("sgd", 0.1)
    assert F.unsupported(spec, make_plan("sgd", 100, 1), sgd, [32, 64, 1], "float32") is None
    # 67 KB for the benchmark's network at 64 rows: more than a block has
    # by default, within what an A100 or H100 lets a kernel opt in to.
    big = (spec, make_plan("minibatch", 100, 64), sgd, [32, 64, 1], "float32")
    assert "shared memory" in F.unsupported(*big)
    assert F.unsupported(*big, shared_limit=227 * 1024) is None
    assert "batch mode" in F.unsupported(spec, make_plan("batch", 100), sgd, [32, 64, 1], "float32")
    assert "exceed" in F.unsupported(spec, make_plan("minibatch", 1000, 128), sgd, [4, 1], "float32")
    custom = nb.Optimizer(sgd.init, sgd.update)
    assert "custom optimizer" in F.unsupported(spec, make_plan("sgd", 100, 1), custom, [4, 1],
                                               "float32")
    why = F.unsupported(spec, make_plan("minibatch", 100, 64), sgd, [784, 256, 10], "float32",
                        shared_limit=227 * 1024)
    assert "shared memory" in why
    layout = F.Layout([784, 256, 10], 64)
    assert layout.shared_bytes("float32") > F.SHARED_BYTES
    assert 32 <= layout.threads() <= 256 and layout.threads() % 32 == 0


def test_the_fused_executor_is_refused_off_cupy():
    model = nb.MLP([2, 3, 1], backend="numpy")
    X, y = np.zeros((4, 2)), np.zeros(4)
    with pytest.raises(ValueError, match="executor 'cupy-fused' needs the cupy backend"):
        model.fit(X, y, executor="cupy-fused", epochs=1)
    with pytest.raises(ValueError, match="unknown executor"):
        model.fit(X, y, executor="fused", epochs=1)


def _cupy():
    try:
        return nb.get_backend("cupy")
    except nb.BackendUnavailableError as exc:
        pytest.skip(f"backend cupy unavailable: {exc}")


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("mode, batch_size", [("sgd", 1), ("minibatch", 16)])
@pytest.mark.parametrize("hidden, output, loss, k", NETWORKS)
def test_cupy_fused_fit_equals_reference(hidden, output, loss, k, mode, batch_size, optimizer):
    backend = _cupy()
    results = {}
    for dtype, epochs in (("float64", 3), ("float32", 1)):
        for executor in ("reference", "cupy-fused"):
            X, y = _host_data(output, loss, k)
            model = nb.MLP([5, 7, 6, k], hidden_activation=hidden, output_activation=output,
                           loss=loss, backend=backend, dtype=dtype, seed=1)
            hist = model.fit(X, y, mode=mode, batch_size=batch_size,
                             epochs=epochs, lr=0.05, optimizer=optimizer, seed=4,
                             executor=executor)
            results[dtype, executor] = ([backend.to_host(a) for pair in model.params for a in pair],
                                        hist)
    for dtype, rtol in (("float64", 1e-9), ("float32", 1e-4)):
        (ref, ref_hist), (got, hist) = results[dtype, "reference"], results[dtype, "cupy-fused"]
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2)
        np.testing.assert_allclose(hist.loss, ref_hist.loss, rtol=rtol)


def test_cupy_auto_picks_the_fused_kernel_for_small_batches():
    backend = _cupy()
    model = nb.MLP([5, 7, 1], backend=backend, dtype="float32")
    X, Y = model._features(np.zeros((100, 5))), model._targets(np.zeros(100), 100)

    def task(plan):
        return EpochTask(backend, model.spec, get_optimizer("sgd", 0.1), plan, X, Y, 2048,
                         index_dtype=backend.index_dtype(), layer_sizes=model.layer_sizes)

    assert epoch_runner("auto", task(make_plan("sgd", 100, 1))) is not None
    assert epoch_runner("auto", task(make_plan("batch", 100))) is None
    with pytest.raises(ValueError, match="does not apply here: batch mode"):
        model.fit(np.zeros((100, 5)), np.zeros(100), mode="batch", executor="cupy-fused")
