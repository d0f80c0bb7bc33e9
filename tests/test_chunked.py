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
