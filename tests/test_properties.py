"""Properties over random architectures, batch sizes and dtypes (hypothesis).

Gradients against finite differences (float64, every activation and loss,
both reductions) and against PyTorch autograd are in ``tests/test_gradients.py``;
here float32 gradients are tied to those float64 ones, and the rest of the
contract is drawn at random:

* output and gradient shapes and dtypes, softmax rows summing to 1;
* the batch-mode gradient is the mean (``reduction="mean"``) or the sum
  (``"sum"``) of the per-sample gradients, and the chunked gradient equals
  the one-shot one whatever the chunk size;
* one batch-mode epoch is exactly ``p - lr * grad``;
* batch gradient descent on a single linear layer with ``mse`` and a step no
  larger than ``1 / L`` (``L`` the largest eigenvalue of the loss's Hessian)
  never increases the loss.

Examples are bounded (``max_examples``, no deadline) so the file runs in
about half a minute on a 2-core machine.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nnbackend as nb

HEADS = [("sigmoid", "mse"), ("identity", "mse"), ("softmax", "mse"), ("sigmoid", "bce"),
         ("softmax", "cross_entropy")]
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def nets(draw, max_rows=12):
    """A random network and data: sizes, activations, loss, reduction, X, y, seed."""
    output_activation, loss = draw(st.sampled_from(HEADS))
    hidden = [draw(st.integers(1, 6)) for _ in range(draw(st.integers(0, 2)))]
    n_in = draw(st.integers(1, 4))
    n_out = draw(st.integers(2 if output_activation == "softmax" else 1, 4))
    n = draw(st.integers(1, max_rows))
    X = draw(hnp.arrays(np.float64, (n, n_in), elements=_floats(-3, 3)))
    if loss == "cross_entropy":
        y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, n_out - 1)))
    elif loss == "bce":
        y = draw(hnp.arrays(np.float64, (n, n_out), elements=st.sampled_from([0.0, 1.0])))
    else:
        y = draw(hnp.arrays(np.float64, (n, n_out), elements=_floats(-2, 2)))
    return dict(
        sizes=[n_in, *hidden, n_out],
        hidden_activation=draw(st.sampled_from(["sigmoid", "tanh", "relu", "identity"])),
        output_activation=output_activation, loss=loss,
        reduction=draw(st.sampled_from(["mean", "sum"])),
        seed=draw(st.integers(0, 2**31 - 1)), X=X, y=y,
    )


def _usable(name):
    """Why backend ``name`` is not usable here (nnbackend's message), or None."""
    try:
        nb.get_backend(name)
    except nb.BackendUnavailableError as exc:
        return str(exc)
    return None


def _backend_param(name):
    reason = _usable(name)
    return pytest.param(name, marks=pytest.mark.skipif(
        reason is not None, reason=f"backend {name} unavailable: {reason}"))


def _model(net, dtype="float64", backend="numpy", params=None):
    return nb.MLP(net["sizes"], hidden_activation=net["hidden_activation"],
                  output_activation=net["output_activation"], loss=net["loss"],
                  reduction=net["reduction"], backend=backend, dtype=dtype, seed=net["seed"],
                  params=params)


def _host(model, a):
    return np.asarray(model.backend.to_host(a), dtype=np.float64)


def _flat(model, grads):
    return [_host(model, g) for pair in grads for g in pair]


# One case per backend, so that strict skips with the reason where
# array-api-strict is missing instead of failing the numpy examples too.
@pytest.mark.parametrize("backend", [_backend_param("numpy"), _backend_param("strict")])
@settings(max_examples=20, **SETTINGS)
@given(net=nets(), dtype=st.sampled_from(["float32", "float64"]))
def test_output_and_gradient_shapes(net, dtype, backend):
    model = _model(net, dtype, backend)
    n, k = net["X"].shape[0], net["sizes"][-1]
    out = model.predict(net["X"])
    assert tuple(out.shape) == (n, k) and out.dtype == model.backend.dtype(dtype)
    host = _host(model, out)
    assert np.all(np.isfinite(host))
    if net["output_activation"] == "softmax":
        np.testing.assert_allclose(host.sum(axis=1), 1.0, rtol=1e-5)
    if net["output_activation"] == "sigmoid":
        assert np.all((host >= 0) & (host <= 1))
    loss, grads = model.loss_and_grads(net["X"], net["y"])
    assert np.isfinite(loss) and loss >= 0
    for (W, b), (dW, db) in zip(model.params, grads):
        assert tuple(dW.shape) == tuple(W.shape) and tuple(db.shape) == tuple(b.shape)
        assert dW.dtype == W.dtype and db.dtype == b.dtype


@settings(max_examples=40, **SETTINGS)
@given(net=nets())
def test_batch_gradient_is_the_mean_or_sum_of_per_sample_gradients(net):
    model = _model(net)
    X, y = net["X"], net["y"]
    loss, grads = model.loss_and_grads(X, y)
    per_sample = [model.loss_and_grads(X[i:i + 1], y[i:i + 1]) for i in range(X.shape[0])]
    combine = np.mean if net["reduction"] == "mean" else np.sum
    expected_loss = combine([l for l, _ in per_sample])
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-10, atol=1e-12)
    for j, g in enumerate(_flat(model, grads)):
        expected = combine([_flat(model, gs)[j] for _, gs in per_sample], axis=0)
        np.testing.assert_allclose(g, expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=30, **SETTINGS)
@given(net=nets(max_rows=20), chunk=st.integers(1, 25))
def test_chunked_gradient_equals_one_shot_for_any_chunk_size(net, chunk):
    model = _model(net)
    loss, grads = model.loss_and_grads(net["X"], net["y"])
    loss_c, grads_c = model.loss_and_grads(net["X"], net["y"], chunk_size=chunk)
    np.testing.assert_allclose(loss_c, loss, rtol=1e-12, atol=1e-14)
    for a, b in zip(_flat(model, grads_c), _flat(model, grads)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


@settings(max_examples=30, **SETTINGS)
@given(net=nets())
def test_float32_gradients_agree_with_float64_ones(net):
    # float64 gradients are checked against finite differences in
    # test_gradients.py; float32 ones must be those, rounded.
    m64 = _model(net, "float64")
    params = [(_host(m64, W), _host(m64, b)) for W, b in m64.params]
    m32 = _model(net, "float32", params=[(W.astype(np.float32).astype(np.float64), b)
                                         for W, b in params])
    m64 = _model(net, "float64", params=[(W.astype(np.float32).astype(np.float64), b)
                                         for W, b in params])
    if net["hidden_activation"] == "relu":
        # At a kink the two dtypes may round a pre-activation to opposite sides of 0.
        x = net["X"]
        for W, bias in [(_host(m64, W), _host(m64, bias)) for W, bias in m64.params][:-1]:
            z = x @ W + bias
            assume(np.all(np.abs(z) > 1e-3))
            x = np.maximum(z, 0)
    l32, g32 = m32.loss_and_grads(net["X"], net["y"])
    l64, g64 = m64.loss_and_grads(net["X"], net["y"])
    scale = max(1.0, abs(l64))
    assert abs(l32 - l64) <= 1e-4 * scale
    for a, b in zip(_flat(m32, g32), _flat(m64, g64)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(b).max()))


@settings(max_examples=25, **SETTINGS)
@given(net=nets(), lr=_floats(1e-3, 2.0))
def test_one_batch_epoch_is_one_gradient_step(net, lr):
    model = _model(net)
    before = [_host(model, p) for pair in model.params for p in pair]
    _, grads = model.loss_and_grads(net["X"], net["y"])
    y = net["y"] if net["y"].ndim == 2 else np.eye(net["sizes"][-1])[net["y"]]
    if net["loss"] in ("bce", "cross_entropy") and y.shape[0] > 1 and np.all(y == y[:1]):
        # One class only: training refuses it (see test_bad_input.py).
        with pytest.raises(ValueError, match="y holds a single class"):
            model.fit(net["X"], net["y"], mode="batch", epochs=1, lr=lr)
        assume(False)
    model.fit(net["X"], net["y"], mode="batch", epochs=1, lr=lr)
    after = [_host(model, p) for pair in model.params for p in pair]
    for p0, g, p1 in zip(before, _flat(model, grads), after):
        np.testing.assert_allclose(p1, p0 - lr * g, rtol=1e-12, atol=1e-14)


@settings(max_examples=40, **SETTINGS)
@given(
    n=st.integers(1, 30), d=st.integers(1, 5), k=st.integers(1, 3),
    reduction=st.sampled_from(["mean", "sum"]), fraction=_floats(0.05, 1.0),
    seed=st.integers(0, 2**31 - 1), data=st.data(),
)
def test_small_enough_steps_never_increase_a_linear_mse_loss(n, d, k, reduction, fraction, seed, data):
    X = data.draw(hnp.arrays(np.float64, (n, d), elements=_floats(-5, 5)))
    y = data.draw(hnp.arrays(np.float64, (n, k), elements=_floats(-5, 5)))
    # The loss is 1/(2m)·‖[X 1]·[W; b] − y‖² (m = n for the mean, 1 for the
    # sum): a quadratic whose Hessian, per output column, is AᵀA/m with
    # A = [X 1]. Gradient descent with lr <= 1/L, L its largest eigenvalue,
    # never increases it.
    A = np.hstack([X, np.ones((n, 1))])
    m = n if reduction == "mean" else 1
    L = np.linalg.eigvalsh(A.T @ A / m).max()
    lr = fraction / L
    model = nb.MLP([d, k], output_activation="identity", loss="mse", reduction=reduction,
                   dtype="float64", seed=seed)
    hist = model.fit(X, y, mode="batch", epochs=25, lr=lr)
    final, _ = model.loss_and_grads(X, y)
    losses = hist.loss + [final]
    for before, after in zip(losses, losses[1:]):
        assert after <= before * (1 + 1e-12) + 1e-12, losses
