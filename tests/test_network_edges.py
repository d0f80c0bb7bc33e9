"""Edges of ``nnbackend.network`` that a mutation of it moved without another
test noticing (``benchmarks/mutation_survivors.md``)."""

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import data, network

NUMPY = nb.get_backend("numpy")


@pytest.mark.parametrize("dtype, rows", [(np.float32, 2048), (np.float64, 1024)])
def test_auto_chunks_fill_the_cpu_budget_in_a_power_of_two(dtype, rows):
    # 4 MiB of a [32, 64, 1] network's activations: 2048 float32 rows (the README's figure).
    assert network.chunk_rows("auto", NUMPY, [32, 64, 1], dtype) == rows
    assert network.chunk_rows(300, NUMPY, [32, 64, 1], dtype) == 300


def test_float64_parameters_on_float32_data_take_the_promoted_formula():
    rng = np.random.default_rng(0)
    sizes, n = [3, 4, 2], 10
    params = data.init_params(sizes, "tanh", rng)  # float64
    X = rng.normal(size=(n, 3)).astype(np.float32)
    Y = rng.normal(size=(n, 2)).astype(np.float32)
    spec = network.NetSpec("tanh", "identity", "mse", "mean")
    got = network.loss_and_grads_rows(params, spec, network.slice_rows(X, Y), n, 4, None,
                                      NUMPY.xp)
    want = network.loss_and_grads_rows(params, spec, network.slice_rows(
        X.astype(np.float64), Y.astype(np.float64)), n, 4, None, NUMPY.xp)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    for g, w in zip(got[1], want[1]):
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


class _Budget:
    """A backend whose activation budget is set by the test."""

    def __init__(self, budget):
        self.xp, self._budget = NUMPY.xp, budget

    def activation_budget(self):
        return self._budget


@pytest.mark.parametrize("dtype, itemsize", [(np.float32, 4), (np.float64, 8)])
def test_auto_chunks_count_the_dtype_bytes(dtype, itemsize):
    sizes = [32, 64, 1]
    per_row = network.bytes_per_row(sizes, itemsize)
    # Just under 4096 rows' worth: 2048 (the power of two below), not 4096.
    assert network.chunk_rows("auto", _Budget(per_row * 4095), sizes, dtype) == 2048
    assert network.chunk_rows("auto", _Budget(per_row * 4096), sizes, dtype) == 4096


@pytest.mark.parametrize("output, loss, k", [("sigmoid", "bce", 1), ("softmax", "cross_entropy", 3)])
def test_chunked_evaluation_counts_as_one_pass(output, loss, k):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(23, 3))
    y = rng.integers(0, 2 if k == 1 else k, size=23)
    model = nb.MLP([3, 5, k], hidden_activation="tanh", output_activation=output, loss=loss,
                   dtype="float64", seed=3)
    whole = model.evaluate(X, y, chunk_size=1000)
    for rows in (1, 4, 22):
        chunked = model.evaluate(X, y, chunk_size=rows)
        assert chunked["accuracy"] == whole["accuracy"]
        assert chunked["loss"] == pytest.approx(whole["loss"], rel=1e-12)


@pytest.mark.parametrize("params,message", [
    ({"W": 1}, "params must be a list of \\(W, b\\) pairs, one per layer; got dict"),
    ("abc", "got str"),
    ([1], r"params\[0\] must be a \(W, b\) pair"),
])
def test_params_of_the_wrong_form_are_named_before_their_backend_is_guessed(params, message):
    with pytest.raises((TypeError, ValueError), match=message):
        nb.MLP([2, 1], params=params)
