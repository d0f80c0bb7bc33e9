"""The benchmark's workloads at smoke size: models, labels that name the device, peers.

What a GPU run needs is checked here on the CPU as far as it can be: the
mnist model builds and trains on numpy, the labels say which kind of device
ran, and the hand-written CuPy peer's arithmetic (written against a module
``cp``) agrees with nnbackend when NumPy stands in for CuPy.
"""

import types

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.bench import peers
from nnbackend.bench import workloads as W
from nnbackend.bench.models import WORKLOADS, describe, label_for, workload
from nnbackend.bench.synthetic import data_for, synthetic_mnist
from conftest import load_script


def _epochs(step, count, n):
    return [step() / n for _ in range(count)]


def test_mnist_workload_builds_and_trains_one_epoch_on_numpy():
    step, info = W.nnbackend_epoch("numpy", None, "minibatch", 64, model="mnist")
    loss = step() / 64
    assert np.isfinite(loss) and 0 < loss < 10  # cross-entropy of 10 classes starts near ln 10
    assert info["model"] == "mnist" and info["label"] == "nnbackend-numpy-cpu"
    assert info["device_kind"] == "cpu" and info["gpu"] is False
    shapes = [a.shape for a in W.initial_params("mnist")]
    assert shapes == [(784, 1024), (1024,), (1024, 1024), (1024,), (1024, 10), (10,)]


def test_mnist_data_has_mnists_shape_and_ten_classes():
    X, labels = synthetic_mnist(2000, seed=3)
    assert X.shape == (2000, 784) and X.dtype == np.float32
    assert 0 <= X.min() and X.max() < 1
    assert labels.dtype == np.int64 and set(np.unique(labels)) == set(range(10))
    # Drawn once per (model, N, seed): the peers share one copy.
    assert data_for("mnist", 100, 0)[0] is data_for("mnist", 100, 0)[0]
    assert data_for("mnist", 100, 1)[0] is not data_for("mnist", 100, 0)[0]


def test_the_models():
    small, mnist = workload("small"), workload("mnist")
    assert small.layers == (32, 64, 1) and small.batch_size == 64 and small.optimizer == "sgd"
    assert mnist.layers == (784, 1024, 1024, 10) and mnist.batch_size == 256
    assert (mnist.hidden_activation, mnist.output_activation, mnist.loss, mnist.optimizer) == (
        "relu", "softmax", "cross_entropy", "adam")
    sizes = [10_000, 60_000, 1_000_000, 2_000_000]
    assert mnist.sizes_for("minibatch", sizes) == [10_000, 60_000]
    assert mnist.sizes_for("batch", sizes) == [10_000, 60_000, 1_000_000]
    assert mnist.sizes_for("sgd", sizes) == []
    assert small.sizes_for("sgd", sizes) == sizes
    assert "784 → 1024 → 1024 → 10" in describe("mnist")
    with pytest.raises(ValueError, match="unknown benchmark model 'cifar'; choose from small"):
        workload("cifar")
    assert set(WORKLOADS) == {"small", "small16", "mnist", "mid"}
    assert workload("small16").layers == (16, 32, 1)
    # mid: mnist's task and data, [784, 256, 256, 10], plain SGD, timed per step.
    mid = workload("mid")
    assert mid.layers == (784, 256, 256, 10) and mid.batch_size == 64
    assert (mid.hidden_activation, mid.output_activation, mid.loss, mid.optimizer) == (
        "relu", "softmax", "cross_entropy", "sgd")
    assert mid.sizes_for("batch", sizes) == [] and mid.sizes_for("sgd", sizes) == sizes
    assert "784 → 256 → 256 → 10" in describe("mid") and "sgd lr 0.01" in describe("mid")


def test_mid_workload_trains_on_mnists_data_on_numpy_and_its_peers_agree():
    assert data_for("mid", 64)[0] is data_for("mnist", 64)[0]  # one draw for both
    for mode in ("sgd", "minibatch"):
        step, info = W.nnbackend_epoch("numpy", None, mode, 96, model="mid")
        losses = _epochs(step, 3, 96)
        assert np.isfinite(losses).all() and losses[-1] < losses[0] < 3  # ln 10 to start
        assert info["model"] == "mid" and info["label"] == "nnbackend-numpy-cpu"
    # Batch mode (no shuffle): the same steps from the same start as nnbackend.
    ours, _ = W.nnbackend_epoch("numpy", None, "batch", 48, model="mid")
    plain = peers.plain_epoch(np, "batch", 48, model="mid")
    expected = _epochs(ours, 3, 48)
    np.testing.assert_allclose(_epochs(plain, 3, 48), expected, rtol=1e-4)
    pytest.importorskip("torch", reason="the torch-eager peer needs torch")
    theirs, info = W.make_epoch("torch-eager", "cpu", "batch", 48, model="mid")
    np.testing.assert_allclose(_epochs(theirs, 3, 48), expected, rtol=1e-4)
    assert info["model"] == "mid"


def test_labels_name_the_kind_of_device():
    assert label_for("nnbackend", "cuda", "torch") == "nnbackend-torch-cuda"
    assert label_for("nnbackend", "cpu", "torch") == "nnbackend-torch-cpu"
    assert label_for("nnbackend", "gpu", "jax") == "nnbackend-jax-gpu"
    assert label_for("nnbackend", "cuda", "cupy", "reference") == "nnbackend-cupy-cuda-reference"
    assert label_for("torch-eager", "cuda") == "torch-eager-cuda"
    assert label_for("cupy-eager", "cuda") == "cupy-eager-cuda"
    assert label_for("jax-scan-hand", "gpu") == "jax-scan-hand-gpu"
    assert label_for("numpy-seed", "cpu") == "numpy-seed"
    assert label_for("numpy-seed-bare", "cpu") == "numpy-seed-bare"


@pytest.mark.parametrize("device, gpu, kind", [
    (types.SimpleNamespace(type="cuda"), True, "cuda"),       # a torch.device
    (types.SimpleNamespace(type="cpu"), False, "cpu"),
    (types.SimpleNamespace(platform="gpu"), True, "gpu"),     # a JAX device
    (object(), True, "cuda"),                                 # CuPy's Device: cuda:N
    ("cpu", False, "cpu"),                                    # numpy
])
def test_device_kind(device, gpu, kind):
    backend = types.SimpleNamespace(device=device, is_gpu=lambda: gpu)
    assert W.device_kind(backend) == kind


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_a_cpu_backend_is_labelled_cpu(name):
    if name not in nb.available_backends():
        pytest.skip(f"{name} is not installed here")
    _, info = W.make_epoch("nnbackend", f"{name}:cpu", "batch", 32)
    assert info["label"] == f"nnbackend-{name}-cpu" and info["gpu"] is False


def test_make_epoch_refuses_unknown_and_mismatched():
    with pytest.raises(ValueError, match="unknown benchmark implementation 'tf-eager'"):
        W.make_epoch("tf-eager", "cpu", "batch", 32)
    with pytest.raises(ValueError, match="the numpy-seed peer trains the 'small' models only"):
        W.make_epoch("numpy-seed", "cpu", "batch", 32, model="mnist")


def test_cupy_peer_skips_with_the_reason_without_a_gpu():
    if "cupy" in nb.available_backends():
        pytest.skip("CuPy can use a GPU here")
    with pytest.raises(nb.BackendUnavailableError, match="backend 'cupy' is not available"):
        W.make_epoch("cupy-eager", "cuda", "batch", 32)


@pytest.mark.parametrize("model, rtol", [("small", 1e-5), ("mnist", 1e-4)])
def test_plain_peer_matches_nnbackend_with_numpy_standing_in_for_cupy(model, rtol):
    # Batch mode: no shuffle, so both take the same steps from the same start.
    n = 48
    ours, _ = W.nnbackend_epoch("numpy", None, "batch", n, model=model)
    plain = peers.plain_epoch(np, "batch", n, model=model)
    expected = _epochs(ours, 3, n)
    np.testing.assert_allclose(_epochs(plain, 3, n), expected, rtol=rtol)
    assert expected[2] != expected[0]  # it trained
    # Mini-batches in the peer's own order: runs and stays finite.
    shuffled = peers.plain_epoch(np, "minibatch", 40, batch_size=16, model=model)
    assert all(np.isfinite(_epochs(shuffled, 2, 40)))


def test_torch_peer_matches_nnbackend_on_mnist():
    pytest.importorskip("torch", reason="the torch-eager peer needs torch")
    n = 48
    ours, _ = W.nnbackend_epoch("numpy", None, "batch", n, model="mnist")
    theirs, info = W.make_epoch("torch-eager", "cpu", "batch", n, model="mnist")
    np.testing.assert_allclose(_epochs(theirs, 3, n), _epochs(ours, 3, n), rtol=1e-4)
    assert info["label"] == "torch-eager-cpu" and info["model"] == "mnist"


def test_the_fused_step_script_times_an_executor_and_says_when_it_cannot(capsys):
    """benchmarks/fused_step_time.py: its timing loop
    runs on any backend (here the eager loop on NumPy, a few rows), and
    without CuPy on a GPU it says why nothing was measured."""
    module = load_script("fused_step_time")
    times = module.step_times(nb.get_backend("numpy"), rows={"reference": 8}, rounds=1)
    assert set(times) == {"reference"} and times["reference"] > 0
    try:
        nb.get_backend("cupy")
    except nb.BackendUnavailableError as exc:
        assert module.main([]) == 0
        assert capsys.readouterr().out == (
            f"fused cupy sgd step, [784, 256, 256, 10] float32: not measured ({exc})\n")


# -- short epochs timed a window at a time ------------------------------------------

@pytest.mark.parametrize("implementation, where", [
    ("nnbackend", "numpy"), ("nnbackend", "jax"), ("numpy-seed", ""), ("numpy-seed-record", ""),
    ("torch-eager", "cpu"), ("jax-scan-hand", "cpu"), ("jax-jit-step", "cpu")])
@pytest.mark.parametrize("precision", [None, "highest"])
def test_every_implementations_window_trains_the_epochs_its_steps_would(implementation, where,
                                                                       precision):
    """``step.window(k)``: k epochs, their losses read once at the end, the same
    losses as k calls of ``step()`` from the same start (the precision's wrapper
    keeps the window)."""
    if implementation.startswith(("torch", "jax")):
        pytest.importorskip(implementation.split("-")[0])
    if where in ("jax", "torch"):
        pytest.importorskip(where)
    runs = []
    for windowed in (False, True):
        step, _ = W.make_epoch(implementation, where, "minibatch", 96, precision=precision)
        runs.append(step.window(3) + step.window(2) if windowed else [step() for _ in range(5)])
    assert all(isinstance(v, float) for v in runs[1]) and len(runs[1]) == 5
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-6)
    assert runs[0][-1] < runs[0][0]  # it trained


def test_the_plain_peers_window_reads_its_losses_in_one_stack():
    n = 40
    each, window = (peers.plain_epoch(np, "batch", n) for _ in range(2))
    assert window.window(3) == [each() for _ in range(3)]


def _epoch_cases():
    from nnbackend.bench.cases import test_epochs as E

    return E


def test_epochs_per_call_fills_a_call_within_the_window_and_the_fits(monkeypatch):
    E = _epoch_cases()
    monkeypatch.setattr(E, "WINDOW", 64)
    monkeypatch.setattr(E, "CALL_SECONDS", 0.02)
    assert E.epochs_per_call(lambda: 0.0, 1e-5) == 1  # no window: an epoch a call
    peer = types.SimpleNamespace(window=None)
    assert E.epochs_per_call(peer, 1e-5) == 64  # the benchmark's window
    assert E.epochs_per_call(peer, 0.001) == 20  # as many as fill 20 ms
    assert E.epochs_per_call(peer, 0.05) == 1  # a long epoch: alone
    ours = types.SimpleNamespace(window=None, fit_window=8)
    assert E.epochs_per_call(ours, 1e-5) == 8  # never more than a fit runs between reads
    monkeypatch.setattr(E, "WINDOW", 1)
    assert E.epochs_per_call(peer, 1e-5) == 1  # NNBACKEND_BENCH_WINDOW=1: every epoch read
    calls = []
    peer = types.SimpleNamespace(window=lambda k: calls.append(k))
    E.timed_call(peer, 5)()
    assert calls == [5] and E.timed_call(peer, 1) is peer


def _record_blas_threads(monkeypatch):
    """The list each NumPy ``blas_threads(threads)`` call appends its count to."""
    from nnbackend.backends.numpy import NumpyBackend

    asked = []
    real = NumpyBackend.blas_threads

    def recording(self, threads):
        asked.append(threads)
        return real(self, threads)

    monkeypatch.setattr(NumpyBackend, "blas_threads", recording)
    return asked


def test_an_epoch_is_timed_with_the_blas_threads_its_fit_runs_with(monkeypatch):
    # Timed at OpenBLAS's default (two threads on a 2-core VM), a small
    # network's batch epoch took 38 ms; the fit's one thread runs it in 0.3.
    from nnbackend.bench import workloads as W
    from nnbackend.bench.synthetic import data_for

    X, y = data_for("small", 1000, 0)
    fit = nb.MLP([32, 64, 1], backend="numpy", seed=0).fit(X, y, mode="batch", epochs=1)
    asked = _record_blas_threads(monkeypatch)
    step, info = W.make_epoch("nnbackend", "numpy", "batch", 1000)
    asked.clear()
    step()
    step.window(2)
    assert asked == [fit.blas_threads] * 2 and info["blas_threads"] == fit.blas_threads


def test_inside_hold_the_threads_are_set_once_for_every_call(monkeypatch):
    # A fit sets its BLAS threads once; so do a benchmark's rounds, inside
    # step.hold(), where each call had entered the limit (microseconds a call).
    from nnbackend.bench import workloads as W

    asked = _record_blas_threads(monkeypatch)
    step, info = W.make_epoch("nnbackend", "numpy", "batch", 1000)
    asked.clear()
    with step.hold():
        for _ in range(3):
            step()
        step.window(2)
    assert asked == [info["blas_threads"]]
    step()  # outside it, each call sets them again
    assert asked == [info["blas_threads"]] * 2
