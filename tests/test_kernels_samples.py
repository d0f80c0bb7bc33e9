"""The loss kernels on one sample, under autodiff, and with a host divisor of
another type than ``int``: what ``jax.vmap``, ``jax.grad``, torch autograd
and NumPy reductions hand them, on every backend available."""

import numpy as np
import pytest

from nnbackend import kernels as K

from conftest import to_numpy

K_OUT = 4
LOSSES = {  # name -> (forward, backward, the target's kind)
    "mse": (K.mse_forward, K.mse_backward, "values"),
    "bce": (K.bce_with_logits_forward, K.bce_with_logits_backward, "labels"),
    "cross_entropy": (K.softmax_cross_entropy_forward, K.softmax_cross_entropy_backward,
                      "one-hot"),
}


def _pair(kind, n, rng):
    z = rng.normal(size=(n, K_OUT))
    if kind == "values":
        return z, rng.normal(size=(n, K_OUT))
    if kind == "labels":
        return z, (rng.uniform(size=(n, K_OUT)) > 0.5) * 1.0
    return z, np.eye(K_OUT)[rng.integers(0, K_OUT, n)]


@pytest.mark.parametrize("loss", LOSSES)
def test_one_sample_of_shape_k_is_one_row_for_the_mean(backend, loss):
    # One sample (k,) as (1, k): the mean divides by one row, not by its k outputs.
    forward, backward, kind = LOSSES[loss]
    z, y = _pair(kind, 1, np.random.default_rng(0))
    zd, yd = backend.asarray(z), backend.asarray(y)
    want = to_numpy(backend, forward(zd, yd))
    np.testing.assert_allclose(to_numpy(backend, forward(zd[0, ...], yd[0, ...])), want,
                               rtol=1e-12)
    got = to_numpy(backend, backward(zd[0, ...], yd[0, ...]))
    assert got.shape == (K_OUT,)
    np.testing.assert_allclose(got, to_numpy(backend, backward(zd, yd))[0], rtol=1e-12)


def test_softmax_takes_one_sample_of_shape_k(backend):
    z = np.random.default_rng(1).normal(size=(1, K_OUT))
    zd = backend.asarray(z)
    a = K.softmax_forward(zd[0, ...])
    np.testing.assert_allclose(to_numpy(backend, a), to_numpy(backend, K.softmax_forward(zd))[0],
                               rtol=1e-12)
    da = backend.asarray(np.arange(K_OUT, dtype=np.float64))
    np.testing.assert_allclose(to_numpy(backend, K.softmax_backward(zd[0, ...], a, da)),
                               to_numpy(backend, K.softmax_backward(zd, a[None, ...],
                                                                    da[None, ...]))[0],
                               rtol=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
def test_per_sample_mean_losses_under_vmap_average_to_the_batch_mean(loss):
    jax = pytest.importorskip("jax", reason="jax is needed for the vmap check")
    forward, _, kind = LOSSES[loss]
    z, y = _pair(kind, 6, np.random.default_rng(2))
    z, y = jax.numpy.asarray(z, dtype="float32"), jax.numpy.asarray(y, dtype="float32")
    per_sample = jax.vmap(forward)(z, y)
    assert per_sample.shape == (6,)
    np.testing.assert_allclose(float(per_sample.mean()), float(forward(z, y)), rtol=1e-6)
    grads = jax.vmap(jax.grad(forward))(z, y)  # each sample's own gradient, a - y
    np.testing.assert_allclose(np.asarray(grads), np.asarray(jax.grad(forward)(z, y)) * 6,
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("library", ["jax", "torch"])
def test_bce_autodiff_at_a_zero_logit_gives_sigmoid_less_the_label(library):
    # At z = 0 (an output layer started at zero) the gradient is 1/2 - y; the
    # subgradients of |z| and max(z, 0) at 0 would give -y or -y - 1/2.
    y = np.array([[0.0, 0.3, 1.0]])
    want = (0.5 - y) / 1
    if library == "jax":
        jax = pytest.importorskip("jax", reason="jax is needed for jax.grad")
        jnp = jax.numpy
        got = jax.grad(K.bce_with_logits_forward)(jnp.zeros((1, 3)), jnp.asarray(y, "float32"))
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
        return
    torch = pytest.importorskip("torch", reason="torch is needed for autograd")
    z = torch.zeros((1, 3), dtype=torch.float64, requires_grad=True)
    K.bce_with_logits_forward(z, torch.asarray(y)).backward()
    np.testing.assert_allclose(z.grad.numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("divisor", [np.int64(8), np.float64(8.0), np.int32(8)])
def test_a_numpy_number_as_n_samples_keeps_float32(backend, loss, divisor):
    # n_samples from mask.sum() is a NumPy integer: it divides as 8 does, and
    # float32 results stay float32 (NumPy would promote; strict would refuse).
    if "float32" not in backend.float_dtypes():
        pytest.skip(f"{backend!r} has no float32")
    forward, backward, kind = LOSSES[loss]
    z, y = _pair(kind, 4, np.random.default_rng(3))
    zd, yd = (backend.asarray(a, dtype=backend.dtype("float32")) for a in (z, y))
    for kernel in (forward, backward):
        got = kernel(zd, yd, n_samples=divisor)
        assert got.dtype == zd.dtype, (kernel.__name__, got.dtype)
        np.testing.assert_array_equal(to_numpy(backend, got),
                                      to_numpy(backend, kernel(zd, yd, n_samples=8)))


def test_dense_kernels_refuse_bools_on_every_backend_alike(backend):
    # NumPy's matmul takes bools as numbers, array-api-strict's refuses them:
    # refused by name on both, as the activations refuse whole numbers.
    x = backend.asarray(np.ones((2, 3), dtype=bool))
    W, dz = backend.asarray(np.ones((3, 2))), backend.asarray(np.ones((2, 2)))
    b = backend.asarray(np.zeros(2))
    with pytest.raises(TypeError, match="dense_forward: x has dtype bool: the kernels compute "
                                        "in floating point"):
        K.dense_forward(x, W, b)
    with pytest.raises(TypeError, match="dense_backward: x has dtype bool"):
        K.dense_backward(x, W, dz)
    with pytest.raises(TypeError, match="dense_activation_forward: x has dtype bool"):
        K.dense_activation_forward(x, W, b, "tanh")


def test_operands_of_two_namespaces_or_lists_are_refused_by_name():
    strict = pytest.importorskip("array_api_strict", reason="a second namespace")
    W, b = np.ones((3, 2)), np.zeros(2)
    with pytest.raises(TypeError, match=r"dense_forward: the operands must be arrays of one "
                                        r"array-API namespace; x is array_api_strict\..*, "
                                        r"W is numpy\.ndarray"):
        K.dense_forward(strict.ones((2, 3)), W, b)
    with pytest.raises(TypeError, match="dense_backward: .*x is builtins.list"):
        K.dense_backward([[1.0, 2.0, 3.0]], W, np.ones((1, 2)))
    with pytest.raises(TypeError, match="nnbackend.kernels: the operands must be arrays of one "
                                        "array-API namespace; got ndarray, Array"):
        K.mse_forward(np.ones((2, 1)), strict.ones((2, 1)))
    with pytest.raises(TypeError, match="must be arrays .*got list"):
        K.sigmoid_forward([1.0])
