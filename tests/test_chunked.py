"""Batch mode's chunked full-batch gradient: exact, and flat in memory."""

import tracemalloc

import numpy as np
import pytest

import nnbackend as nb
from conftest import to_numpy


def _problem(n, n_features=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    y = rng.normal(size=(n, 1))
    return X, y


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_chunked_gradient_equals_one_shot(backend, chunk_size, reduction):
    if "float64" not in backend.float_dtypes():
        pytest.skip(f"{backend} has no float64")
    X, y = _problem(203)
    model = nb.MLP([4, 6, 1], hidden_activation="tanh", output_activation="identity",
                   reduction=reduction, backend=backend.name, device=backend.device,
                   dtype="float64", seed=1)
    loss_one, grads_one = model.loss_and_grads(X, y, chunk_size=203)
    loss, grads = model.loss_and_grads(X, y, chunk_size=chunk_size)
    assert loss == pytest.approx(loss_one, rel=1e-12)
    for pair, pair_one in zip(grads, grads_one):
        for g, g1 in zip(pair, pair_one):
            np.testing.assert_allclose(to_numpy(backend, g), to_numpy(backend, g1),
                                       rtol=1e-11, atol=1e-13)


def test_batch_mode_chunked_fit_equals_one_shot_fit():
    X, y = _problem(500)
    fits = []
    for chunk_size in (500, 37):
        model = nb.MLP([4, 8, 1], output_activation="identity", dtype="float64", seed=2)
        model.fit(X, y, mode="batch", epochs=20, lr=0.05, chunk_size=chunk_size)
        fits.append([np.asarray(a) for pair in model.params for a in pair])
    for a, b in zip(*fits):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def _peak_bytes(n, chunk_size):
    """Peak memory allocated while computing the gradient of n rows, beyond the data."""
    X, y = _problem(n, n_features=8)
    model = nb.MLP([8, 64, 1], dtype="float64", seed=0)
    model.loss_and_grads(X[:10], y[:10])  # warm-up: caches, lazy imports
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        model.loss_and_grads(X, y, chunk_size=chunk_size)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_batch_memory_does_not_grow_with_n():
    # NumPy reports its allocations to tracemalloc. X and y are float64 and
    # used in place, so what is measured is the work memory of the gradient.
    small = _peak_bytes(20_000, chunk_size=2048)
    large = _peak_bytes(200_000, chunk_size=2048)
    one_shot = _peak_bytes(200_000, chunk_size=200_000)
    activations_of_one_chunk = 2048 * 64 * 8
    assert large < 1.2 * small + 64 * 1024, (small, large)
    assert large < 8 * activations_of_one_chunk, large
    # The measurement can see growth: pushing all rows at once costs ~N.
    assert one_shot > 5 * large, (one_shot, large)


# -- chunk_size="auto": rows from each backend's byte budget ----------------------------

from nnbackend import engine, network  # noqa: E402
from nnbackend.backends import base as backend_base  # noqa: E402
from nnbackend.backends.numpy import NumpyBackend  # noqa: E402


def test_bytes_per_row_counts_the_input_once_and_each_width_five_times():
    assert network.bytes_per_row([32, 64, 1], 4) == 4 * (32 + 5 * (64 + 1))
    assert network.bytes_per_row([784, 1024, 1024, 10], 8) == 8 * (784 + 5 * 2058)


def test_rows_for_budget_is_a_power_of_two_within_the_budget():
    sizes, itemsize = [32, 64, 1], 4
    per_row = network.bytes_per_row(sizes, itemsize)
    for budget in (10**6, 3 * 2**20, 4 * 2**20, 10**9, 4 * 2**30):
        rows = network.rows_for_budget(sizes, itemsize, budget)
        assert rows & (rows - 1) == 0, rows
        assert rows * per_row <= budget < 2 * rows * per_row, (budget, rows)
    # Halving the budget halves the rows; float64 rows cost twice float32's.
    assert network.rows_for_budget(sizes, 4, 2**30) == 2 * network.rows_for_budget(sizes, 4, 2**29)
    assert network.rows_for_budget(sizes, 8, 2**30) == network.rows_for_budget(sizes, 4, 2**29)
    # Never below the floor, however small the budget.
    assert network.rows_for_budget(sizes, itemsize, 0) == network.MIN_CHUNK_ROWS
    assert network.rows_for_budget([784, 1024, 1024, 10], 4, 10**6) == network.MIN_CHUNK_ROWS


def test_the_cpu_budget_keeps_2048_rows_for_the_tutorial_network():
    # The row count chunks had before they were sized in bytes.
    budget = nb.get_backend("numpy").activation_budget()
    assert budget == backend_base.CPU_ACTIVATION_BUDGET
    assert network.rows_for_budget([32, 64, 1], 4, budget) == 2048


class _FakeGpu(NumpyBackend):
    """NumPy arrays on a pretend GPU whose free memory the test sets."""

    free = None

    def is_gpu(self):
        return True

    def free_memory(self):
        if isinstance(self.free, Exception):
            raise self.free
        return self.free


def test_a_gpu_budget_is_a_share_of_free_memory_with_a_cap():
    gpu = _FakeGpu("numpy", np, "cpu")
    for free, want in ((8 * 2**30, 2 * 2**30), (80 * 2**30, backend_base.GPU_BUDGET_CAP),
                       (0, 0), (None, backend_base.GPU_BUDGET_UNKNOWN),
                       (RuntimeError("driver"), backend_base.GPU_BUDGET_UNKNOWN)):
        _FakeGpu.free = free
        assert gpu.activation_budget() == want, free
    _FakeGpu.free = None
    # At the cap, [32, 64, 1] float32 chunks hold 2^21 rows.
    assert network.rows_for_budget([32, 64, 1], 4, backend_base.GPU_BUDGET_CAP) == 2**21


@pytest.mark.parametrize("value, error", [(0, ValueError), (-3, ValueError), ("big", TypeError),
                                          (2.0, TypeError), (True, TypeError), (None, TypeError)])
def test_bad_chunk_sizes_are_refused_by_name(value, error):
    model = nb.MLP([4, 6, 1])
    X, y = _problem(10)
    for call in (lambda: model.loss_and_grads(X, y, chunk_size=value),
                 lambda: model.evaluate(X, y, chunk_size=value),
                 lambda: model.predict(X, chunk_size=value)):
        with pytest.raises(error, match="chunk_size must be 'auto' or an integer >= 1, got"):
            call()


@pytest.fixture
def forward_rows(monkeypatch):
    """The row count of every forward pass the network makes, in order."""
    seen = []
    real = network.forward

    def counting(params, X, spec, xp=None):
        seen.append(int(X.shape[0]))
        return real(params, X, spec, xp)

    monkeypatch.setattr(network, "forward", counting)
    # A chunk of one dtype goes through the bound one-chunk function instead
    # (bound by the engine for a batch of one chunk, by the network per call).
    real_bind = network.bind_loss_and_grads

    def counting_bind(spec, xp, dtype, multiclass=None):
        bound = real_bind(spec, xp, dtype, multiclass)

        def one_chunk(params, X, Y, n_samples):
            seen.append(int(X.shape[0]))
            return bound(params, X, Y, n_samples)
        return one_chunk

    monkeypatch.setattr(engine, "bind_loss_and_grads", counting_bind)
    monkeypatch.setattr(network, "bind_loss_and_grads", counting_bind)
    return seen


def _set_budget(monkeypatch, backend_class, budget):
    monkeypatch.setattr(backend_class, "activation_budget", lambda self: budget)


def _budget_for(rows, sizes, itemsize):
    """A budget whose auto chunks hold exactly ``rows`` rows (a power of two)."""
    return rows * network.bytes_per_row(sizes, itemsize) + 17


def test_auto_chunks_follow_a_fake_device_budget(monkeypatch, forward_rows):
    sizes, n = [4, 6, 1], 5000
    X, y = _problem(n)
    model = nb.MLP(sizes, hidden_activation="tanh", output_activation="identity",
                   dtype="float64", seed=1)
    loss_one, grads_one = model.loss_and_grads(X, y, chunk_size=n)
    for rows in (2048, 1024, 512):
        _set_budget(monkeypatch, NumpyBackend, _budget_for(rows, sizes, 8))
        forward_rows.clear()
        loss, grads = model.loss_and_grads(X, y)  # chunk_size="auto"
        assert forward_rows == [rows] * (n // rows) + [n % rows], (rows, forward_rows)
        assert loss == pytest.approx(loss_one, rel=1e-12)
        for pair, pair_one in zip(grads, grads_one):
            for g, g1 in zip(pair, pair_one):
                np.testing.assert_allclose(g, g1, rtol=1e-11, atol=1e-13)
        forward_rows.clear()
        assert model.evaluate(X, y)["loss"] == pytest.approx(loss_one, rel=1e-12)
        assert max(forward_rows) == rows and len(forward_rows) == -(-n // rows)


def test_predict_goes_in_auto_chunks_concatenated(monkeypatch, forward_rows):
    sizes, n = [4, 6, 3], 1300
    X, _ = _problem(n)
    model = nb.MLP(sizes, output_activation="softmax", loss="cross_entropy", dtype="float64")
    one_shot = model.predict(X, chunk_size=n)
    assert forward_rows == [n]
    _set_budget(monkeypatch, NumpyBackend, _budget_for(512, sizes, 8))
    forward_rows.clear()
    out = model.predict(X)
    assert forward_rows == [512, 512, 276]
    assert out.shape == (n, 3)
    np.testing.assert_allclose(out, one_shot, rtol=1e-13, atol=1e-15)


def test_fit_runs_its_batch_epochs_in_chunks_of_the_budget(monkeypatch, forward_rows):
    sizes, n, epochs = [4, 8, 1], 3000, 3
    X, y = _problem(n)
    fits = {}
    for chunk_size, rows in (("auto", 1024), ("auto", 256), (n, n)):
        _set_budget(monkeypatch, NumpyBackend, _budget_for(rows, sizes, 8))
        forward_rows.clear()
        model = nb.MLP(sizes, output_activation="identity", dtype="float64", seed=2)
        model.fit(X, y, mode="batch", epochs=epochs, lr=0.05, chunk_size=chunk_size)
        per_epoch = [rows] * (n // rows) + ([n % rows] if n % rows else [])
        assert forward_rows == per_epoch * epochs, (rows, forward_rows[:8])
        fits[rows] = [np.asarray(a) for pair in model.params for a in pair]
    for rows in (1024, 256):
        for a, b in zip(fits[rows], fits[n]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_auto_equals_the_same_rows_given_as_an_int_on_every_backend(backend, monkeypatch):
    sizes, n = [4, 6, 1], 700
    X, y = _problem(n)
    model = nb.MLP(sizes, hidden_activation="tanh", output_activation="identity",
                   backend=backend.name, device=backend.device, seed=1)
    _set_budget(monkeypatch, type(model.backend), _budget_for(256, sizes, 4))
    loss_auto, grads_auto = model.loss_and_grads(X, y)
    loss_int, grads_int = model.loss_and_grads(X, y, chunk_size=256)
    # The same chunks: the same numbers, bit for bit.
    assert loss_auto == loss_int
    for pair, pair_int in zip(grads_auto, grads_int):
        for g, g1 in zip(pair, pair_int):
            np.testing.assert_array_equal(to_numpy(backend, g), to_numpy(backend, g1))
    np.testing.assert_array_equal(to_numpy(backend, model.predict(X)),
                                  to_numpy(backend, model.predict(X, chunk_size=256)))


def test_jax_scan_compares_batches_with_the_resolved_auto_rows(monkeypatch):
    pytest.importorskip("jax")
    from nnbackend.backends.jax import JaxBackend

    sizes = [4, 6, 1]
    X, y = _problem(1200)
    model = nb.MLP(sizes, backend="jax", seed=0)
    _set_budget(monkeypatch, JaxBackend, _budget_for(256, sizes, 4))
    with pytest.raises(ValueError, match="batches of 512 rows exceed chunk_size=256"):
        model.fit(X, y, mode="minibatch", batch_size=512, epochs=1, executor="jax-scan")
    _set_budget(monkeypatch, JaxBackend, _budget_for(512, sizes, 4))
    model.fit(X, y, mode="minibatch", batch_size=512, epochs=1, executor="jax-scan")


def test_auto_memory_stays_within_the_cpu_budget_and_flat_in_n():
    small = _peak_bytes(20_000, chunk_size="auto")
    large = _peak_bytes(200_000, chunk_size="auto")
    assert large < 1.2 * small + 64 * 1024, (small, large)
    assert large <= backend_base.CPU_ACTIVATION_BUDGET, large
