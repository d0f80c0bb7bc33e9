"""The functional layer, ``nnbackend.kernels``, on every backend available.

Each kernel must return arrays of its input's namespace, on its input's
device, with the documented shape and the input's dtype; never mutate its
inputs; stay finite (and warning-free) for huge logits; match finite
differences of its forward; honour ``reduction`` and ``n_samples``; and
trace under ``jax.jit``.
"""

import math
import warnings

import numpy as np
import pytest
from array_api_compat import array_namespace, device as device_of

from nnbackend import kernels as K

from conftest import to_numpy

DTYPES = ("float32", "float64")
ELEMENTWISE = ("sigmoid", "tanh", "relu", "identity")
ACTIVATIONS = ELEMENTWISE + ("softmax",)
PAIRS = (
    ("sigmoid", "mse"),
    ("identity", "mse"),
    ("softmax", "mse"),
    ("sigmoid", "bce"),
    ("softmax", "cross_entropy"),
)
N, FAN_IN, FAN_OUT, K_OUT = 4, 3, 5, 3


# -- host references (float64 NumPy) -----------------------------------------------


def ref_sigmoid(z):
    # exp(-|z|) never overflows; both branches are exact forms of the logistic.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def ref_softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ref_logsumexp(z):
    m = z.max(axis=1, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))


REF_ACT = {
    "sigmoid": ref_sigmoid,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "identity": lambda z: z,
    "softmax": ref_softmax,
}


def one_hot(ids, k):
    return np.eye(k)[np.asarray(ids)]


# -- helpers -------------------------------------------------------------------------


def dtype_of(backend, name):
    if name not in backend.float_dtypes():
        pytest.skip(f"{backend!r} has no {name}")
    return backend.dtype(name)


def put(backend, host, dtype):
    return backend.asarray(np.asarray(host, dtype=np.float64), dtype=dtype)


def tol(dtype_name):
    return {"float32": dict(rtol=2e-6, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-12)}[
        dtype_name
    ]


class _NoWarnings:
    def __enter__(self):
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def kernel_calls(rng):
    """Every kernel, with host float64 inputs and its documented output shapes.

    Yields (label, function of the device inputs, host inputs, shapes) where
    shapes is a tuple of expected output shapes (None for an output that is
    documented to be None).
    """
    x = rng.uniform(-2, 2, (N, FAN_IN))
    W = rng.uniform(-1, 1, (FAN_IN, FAN_OUT))
    b = rng.uniform(-1, 1, (FAN_OUT,))
    dz = rng.uniform(-1, 1, (N, FAN_OUT))
    yield "dense_forward", lambda x, W, b: (K.dense_forward(x, W, b),), dict(x=x, W=W, b=b), ((N, FAN_OUT),)
    yield (
        "dense_backward",
        lambda x, W, dz: K.dense_backward(x, W, dz),
        dict(x=x, W=W, dz=dz),
        ((N, FAN_IN), (FAN_IN, FAN_OUT), (FAN_OUT,)),
    )
    yield (
        "dense_backward(need_dx=False)",
        lambda x, W, dz: K.dense_backward(x, W, dz, need_dx=False),
        dict(x=x, W=W, dz=dz),
        (None, (FAN_IN, FAN_OUT), (FAN_OUT,)),
    )

    z = rng.uniform(-3, 3, (N, K_OUT))
    da = rng.uniform(-1, 1, (N, K_OUT))
    for name in ACTIVATIONS:
        fwd = getattr(K, f"{name}_forward")
        bwd = getattr(K, f"{name}_backward")
        a = REF_ACT[name](z)
        yield f"{name}_forward", (lambda z, fwd=fwd: (fwd(z),)), dict(z=z), ((N, K_OUT),)
        yield (
            f"{name}_backward",
            lambda z, a, da, bwd=bwd: (bwd(z, a, da),),
            dict(z=z, a=a, da=da),
            ((N, K_OUT),),
        )
        yield (
            f"activation_forward({name})",
            lambda z, name=name: (K.activation_forward(name, z),),
            dict(z=z),
            ((N, K_OUT),),
        )
        yield (
            f"activation_backward({name})",
            lambda z, a, da, name=name: (K.activation_backward(name, z, a, da),),
            dict(z=z, a=a, da=da),
            ((N, K_OUT),),
        )

    y_real = rng.uniform(-2, 2, (N, K_OUT))
    y_prob = rng.uniform(0, 1, (N, K_OUT))
    y_hot = one_hot(rng.integers(0, K_OUT, N), K_OUT)
    losses = (
        ("mse", K.mse_forward, K.mse_backward, dict(a=ref_sigmoid(z), y=y_real)),
        ("bce", K.bce_with_logits_forward, K.bce_with_logits_backward, dict(z=z, y=y_prob)),
        ("ce", K.softmax_cross_entropy_forward, K.softmax_cross_entropy_backward, dict(z=z, y=y_hot)),
    )
    for reduction in K.REDUCTIONS:
        for n_samples in (None, 10):
            tag = f"{reduction}, n_samples={n_samples}"
            for name, fwd, bwd, inputs in losses:
                yield (
                    f"{name}_forward({tag})",
                    lambda *args, fwd=fwd, r=reduction, s=n_samples: (fwd(*args, r, s),),
                    inputs,
                    ((),),
                )
                yield (
                    f"{name}_backward({tag})",
                    lambda *args, bwd=bwd, r=reduction, s=n_samples: (bwd(*args, r, s),),
                    inputs,
                    ((N, K_OUT),),
                )
            for name, bwd, act in (
                ("bce", K.bce_with_logits_backward, "sigmoid"),
                ("ce", K.softmax_cross_entropy_backward, "softmax"),
            ):
                inputs = dict(z=z, y=y_prob if name == "bce" else y_hot, a=REF_ACT[act](z))
                yield (
                    f"{name}_backward(a given, {tag})",
                    lambda z, y, a, bwd=bwd, r=reduction, s=n_samples: (
                        bwd(z, y, r, s, a=a),
                    ),
                    inputs,
                    ((N, K_OUT),),
                )
            for out_act, loss in PAIRS:
                y = {"mse": y_real, "bce": y_prob, "cross_entropy": y_hot}[loss]
                inputs = dict(z=z, a=REF_ACT[out_act](z), y=y)
                yield (
                    f"loss_forward({out_act}, {loss}, {tag})",
                    lambda z, a, y, o=out_act, l=loss, r=reduction, s=n_samples: (
                        K.loss_forward(l, o, z, a, y, r, s),
                    ),
                    inputs,
                    ((),),
                )
                yield (
                    f"loss_backward({out_act}, {loss}, {tag})",
                    lambda z, a, y, o=out_act, l=loss, r=reduction, s=n_samples: (
                        K.loss_backward(l, o, z, a, y, r, s),
                    ),
                    inputs,
                    ((N, K_OUT),),
                )


def _run_all(backend, dtype_name):
    dtype = dtype_of(backend, dtype_name)
    for label, fn, host_inputs, shapes in kernel_calls(np.random.default_rng(0)):
        inputs = {k: put(backend, v, dtype) for k, v in host_inputs.items()}
        before = {k: to_numpy(backend, v).copy() for k, v in inputs.items()}
        outputs = fn(*inputs.values())
        yield label, inputs, before, outputs, shapes, dtype


# -- namespace, device, shape, dtype; no mutation --------------------------------------------


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_kernels_return_input_namespace_device_shape(backend, dtype_name):
    for label, inputs, _, outputs, shapes, dtype in _run_all(backend, dtype_name):
        first = next(iter(inputs.values()))
        xp_in = array_namespace(first)
        assert xp_in is array_namespace(backend.asarray(np.zeros(1)))
        assert len(outputs) == len(shapes), label
        for i, (out, shape) in enumerate(zip(outputs, shapes)):
            where = f"{label} output {i}"
            if shape is None:
                assert out is None, where
                continue
            assert array_namespace(out) is xp_in, where
            assert device_of(out) == device_of(first), (where, device_of(out), device_of(first))
            assert tuple(out.shape) == shape, (where, tuple(out.shape), shape)
            assert out.dtype == dtype, (where, out.dtype, dtype)
            assert np.all(np.isfinite(to_numpy(backend, out))), where


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_kernels_do_not_mutate_inputs(backend, dtype_name):
    for label, inputs, before, _, _, _ in _run_all(backend, dtype_name):
        for k, v in inputs.items():
            after = to_numpy(backend, v)
            assert np.array_equal(after, before[k]), f"{label} changed its input {k!r}"


# -- huge logits ---------------------------------------------------------------------------

Z_HUGE = np.array(
    [
        [1000.0, -1000.0, 0.0],
        [-1000.0, -1000.0, -1000.0],
        [1000.0, 1000.0, 999.0],
        [-1000.0, 1000.0, 0.5],
        [0.5, -0.25, 2.0],
    ]
)


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_softmax_rows_sum_to_one_for_huge_logits(backend, dtype_name):
    dtype = dtype_of(backend, dtype_name)
    z = put(backend, Z_HUGE, dtype)
    with _NoWarnings():
        a = K.softmax_forward(z)
    a = to_numpy(backend, a)
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a.sum(axis=1), 1.0, **tol(dtype_name))
    np.testing.assert_allclose(a, ref_softmax(Z_HUGE), **tol(dtype_name))


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_sigmoid_saturates_without_nan_or_warnings(request, backend, dtype_name):
    dtype = dtype_of(backend, dtype_name)
    z = put(backend, [[-1000.0, 1000.0, -1e30, 1e30, 0.0]], dtype)
    with _NoWarnings():
        a = K.sigmoid_forward(z)
    a = to_numpy(backend, a)
    assert np.all(np.isfinite(a)), a
    tiny = np.finfo(dtype_name).smallest_normal
    assert 0.0 <= a[0, 0] <= tiny and 0.0 <= a[0, 2] <= tiny, a
    assert a[0, 1] == 1.0 and a[0, 3] == 1.0, a
    assert a[0, 4] == 0.5, a


@pytest.mark.parametrize("reduction", K.REDUCTIONS)
@pytest.mark.parametrize("dtype_name", DTYPES)
def test_bce_with_logits_huge_logits(backend, dtype_name, reduction):
    dtype = dtype_of(backend, dtype_name)
    y = np.array(
        [
            [1.0, 0.0, 0.5],
            [1.0, 0.0, 0.25],
            [0.0, 1.0, 1.0],
            [1.0, 1.0, 0.0],
            [0.3, 0.0, 1.0],
        ]
    )
    # Reference: per element log(1 + exp(z)) - z·y, with logaddexp.
    per = np.logaddexp(0.0, Z_HUGE) - Z_HUGE * y
    ref = per.sum() / (len(y) if reduction == "mean" else 1)
    with _NoWarnings():
        loss = K.bce_with_logits_forward(put(backend, Z_HUGE, dtype), put(backend, y, dtype), reduction)
    loss = float(to_numpy(backend, loss))
    assert math.isfinite(loss)
    np.testing.assert_allclose(loss, ref, **tol(dtype_name))


@pytest.mark.parametrize("reduction", K.REDUCTIONS)
@pytest.mark.parametrize("dtype_name", DTYPES)
def test_bce_with_logits_backward_huge_logits(request, backend, dtype_name, reduction):
    # The backward computes sigmoid(z) itself when ``a`` is not given.
    dtype = dtype_of(backend, dtype_name)
    y = np.zeros_like(Z_HUGE) + 0.5
    ref = (ref_sigmoid(Z_HUGE) - y) / (len(y) if reduction == "mean" else 1)
    with _NoWarnings():
        g = K.bce_with_logits_backward(put(backend, Z_HUGE, dtype), put(backend, y, dtype), reduction)
    g = to_numpy(backend, g)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, ref, **tol(dtype_name))


@pytest.mark.parametrize("reduction", K.REDUCTIONS)
@pytest.mark.parametrize("dtype_name", DTYPES)
def test_softmax_cross_entropy_huge_logits(backend, dtype_name, reduction):
    dtype = dtype_of(backend, dtype_name)
    ids = np.array([0, 0, 2, 1, 1])
    y = one_hot(ids, 3)
    per_row = ref_logsumexp(Z_HUGE)[:, 0] - Z_HUGE[np.arange(len(ids)), ids]
    ref = per_row.sum() / (len(ids) if reduction == "mean" else 1)
    with _NoWarnings():
        zd, yd = put(backend, Z_HUGE, dtype), put(backend, y, dtype)
        loss = K.softmax_cross_entropy_forward(zd, yd, reduction)
        g = K.softmax_cross_entropy_backward(zd, yd, reduction)
    loss = float(to_numpy(backend, loss))
    assert math.isfinite(loss)
    # The kernel subtracts z from the row maximum before adding log Σ exp, so
    # the loss is accurate to its own size even at |z| = 1000, not to an ulp
    # of the logits.
    np.testing.assert_allclose(loss, ref, **tol(dtype_name))
    g = to_numpy(backend, g)
    assert np.all(np.isfinite(g))
    ref_g = (ref_softmax(Z_HUGE) - y) / (len(ids) if reduction == "mean" else 1)
    np.testing.assert_allclose(g, ref_g, **tol(dtype_name))


# -- backward against finite differences of forward ------------------------------------------

H = 1e-6
FD_TOL = dict(rtol=1e-7, atol=1e-9)


def _fd_vjp(backend, dtype, f, z, weight):
    """d/dz of sum(weight · f(z)), one element at a time, by central differences."""
    grad = np.empty_like(z)
    for idx in np.ndindex(z.shape):
        vals = []
        for sign in (1.0, -1.0):
            zp = z.copy()
            zp[idx] += sign * H
            vals.append(np.sum(weight * to_numpy(backend, f(put(backend, zp, dtype)))))
        grad[idx] = (vals[0] - vals[1]) / (2 * H)
    return grad


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward_matches_finite_differences(backend, name):
    dtype = dtype_of(backend, "float64")
    rng = np.random.default_rng(5)
    # Magnitudes at least 0.1 keep every z clear of ReLU's kink at 0.
    z = rng.choice([-1.0, 1.0], (N, K_OUT)) * rng.uniform(0.1, 3.0, (N, K_OUT))
    da = rng.uniform(-1, 1, (N, K_OUT))
    fwd = getattr(K, f"{name}_forward")
    bwd = getattr(K, f"{name}_backward")
    zd = put(backend, z, dtype)
    a = fwd(zd)
    g = to_numpy(backend, bwd(zd, a, put(backend, da, dtype)))
    fd = _fd_vjp(backend, dtype, fwd, z, da)
    np.testing.assert_allclose(g, fd, **FD_TOL)
    # The dispatchers agree with the named functions.
    g2 = K.activation_backward(name, zd, K.activation_forward(name, zd), put(backend, da, dtype))
    np.testing.assert_allclose(to_numpy(backend, g2), g, rtol=0, atol=0)


@pytest.mark.parametrize("reduction", K.REDUCTIONS)
@pytest.mark.parametrize("loss", ("mse", "bce", "ce"))
def test_loss_backward_matches_finite_differences(backend, loss, reduction):
    dtype = dtype_of(backend, "float64")
    rng = np.random.default_rng(6)
    x = rng.uniform(-3, 3, (N, K_OUT))
    fwd, bwd, y = {
        "mse": (K.mse_forward, K.mse_backward, rng.uniform(-2, 2, (N, K_OUT))),
        "bce": (K.bce_with_logits_forward, K.bce_with_logits_backward, rng.uniform(0, 1, (N, K_OUT))),
        "ce": (
            K.softmax_cross_entropy_forward,
            K.softmax_cross_entropy_backward,
            one_hot(rng.integers(0, K_OUT, N), K_OUT),
        ),
    }[loss]
    yd = put(backend, y, dtype)
    g = to_numpy(backend, bwd(put(backend, x, dtype), yd, reduction))
    fd = _fd_vjp(backend, dtype, lambda t: fwd(t, yd, reduction), x, 1.0)
    np.testing.assert_allclose(g, fd, **FD_TOL)


# -- reduction and n_samples (chunk semantics) -----------------------------------------------

LOSS_KERNELS = {
    "mse": (K.mse_forward, K.mse_backward),
    "bce": (K.bce_with_logits_forward, K.bce_with_logits_backward),
    "ce": (K.softmax_cross_entropy_forward, K.softmax_cross_entropy_backward),
}


def _loss_data(rng, loss, n):
    z = rng.uniform(-3, 3, (n, K_OUT))
    if loss == "mse":
        y = rng.uniform(-2, 2, (n, K_OUT))
    elif loss == "bce":
        y = rng.uniform(0, 1, (n, K_OUT))
    else:
        y = one_hot(rng.integers(0, K_OUT, n), K_OUT)
    return z, y


@pytest.mark.parametrize("loss", sorted(LOSS_KERNELS))
def test_loss_mean_is_sum_over_rows(backend, loss):
    dtype = dtype_of(backend, "float64")
    n = 5
    z, y = _loss_data(np.random.default_rng(7), loss, n)
    zd, yd = put(backend, z, dtype), put(backend, y, dtype)
    fwd, bwd = LOSS_KERNELS[loss]
    f = {r: float(to_numpy(backend, fwd(zd, yd, r))) for r in K.REDUCTIONS}
    g = {r: to_numpy(backend, bwd(zd, yd, r)) for r in K.REDUCTIONS}
    np.testing.assert_allclose(f["mean"], f["sum"] / n, rtol=1e-14)
    np.testing.assert_allclose(g["mean"], g["sum"] / n, rtol=1e-14, atol=1e-16)
    # n_samples changes the mean's divisor and leaves the sum alone.
    f10 = float(to_numpy(backend, fwd(zd, yd, "mean", 10)))
    np.testing.assert_allclose(f10, f["sum"] / 10, rtol=1e-14)
    g10 = to_numpy(backend, bwd(zd, yd, "mean", 10))
    np.testing.assert_allclose(g10, g["sum"] / 10, rtol=1e-14, atol=1e-16)
    assert float(to_numpy(backend, fwd(zd, yd, "sum", 10))) == f["sum"]
    np.testing.assert_array_equal(to_numpy(backend, bwd(zd, yd, "sum", 10)), g["sum"])
    # A loss's ``a=`` shortcut gives the same as computing it inside.
    if loss != "mse":
        act = K.sigmoid_forward if loss == "bce" else K.softmax_forward
        ga = to_numpy(backend, bwd(zd, yd, "mean", a=act(zd)))
        np.testing.assert_allclose(ga, g["mean"], rtol=1e-15, atol=0)


@pytest.mark.parametrize("output_activation,loss", PAIRS, ids=[f"{o}-{l}" for o, l in PAIRS])
def test_chunked_backward_sums_to_full_batch_mean(backend, output_activation, loss):
    dtype = dtype_of(backend, "float64")
    xp = backend.xp
    rng = np.random.default_rng(8)
    n, split = 5, 2
    x = rng.uniform(-2, 2, (n, FAN_IN))
    W = rng.uniform(-1, 1, (FAN_IN, K_OUT))
    b = rng.uniform(-1, 1, (K_OUT,))
    _, y = _loss_data(rng, {"cross_entropy": "ce"}.get(loss, loss), n)
    xd, Wd, bd, yd = (put(backend, v, dtype) for v in (x, W, b, y))

    def grads(rows, reduction, n_samples):
        xs, ys = xd[rows, :], yd[rows, :]
        z = K.dense_forward(xs, Wd, bd)
        a = K.activation_forward(output_activation, z)
        value = K.loss_forward(loss, output_activation, z, a, ys, reduction, n_samples)
        dz = K.loss_backward(loss, output_activation, z, a, ys, reduction, n_samples)
        _, dW, db = K.dense_backward(xs, Wd, dz, need_dx=False)
        return value, dz, dW, db

    full = grads(slice(0, n), "mean", None)
    parts = [grads(slice(0, split), "mean", n), grads(slice(split, n), "mean", n)]
    # Losses and parameter gradients add up over the chunks...
    for i, name in ((0, "loss"), (2, "dW"), (3, "db")):
        total = to_numpy(backend, parts[0][i]) + to_numpy(backend, parts[1][i])
        np.testing.assert_allclose(total, to_numpy(backend, full[i]), rtol=1e-13, atol=1e-15,
                                   err_msg=name)
    # ...and the per-row logit gradients are the full batch's rows.
    dz = xp.concat([parts[0][1], parts[1][1]], axis=0)
    np.testing.assert_allclose(to_numpy(backend, dz), to_numpy(backend, full[1]), rtol=1e-15,
                               atol=0)
    # With "sum" the chunks' n_samples is ignored and the chunks still add up.
    full_s = grads(slice(0, n), "sum", None)
    parts_s = [grads(slice(0, split), "sum", n), grads(slice(split, n), "sum", n)]
    for i in (0, 2, 3):
        total = to_numpy(backend, parts_s[0][i]) + to_numpy(backend, parts_s[1][i])
        np.testing.assert_allclose(total, to_numpy(backend, full_s[i]), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(to_numpy(backend, full_s[i]) / n, to_numpy(backend, full[i]),
                                   rtol=1e-13, atol=1e-15)


# -- errors --------------------------------------------------------------------------------


def test_bad_names_raise_value_error():
    z = np.zeros((2, 2))
    with pytest.raises(ValueError, match="reduction"):
        K.mse_forward(z, z, "avg")
    with pytest.raises(ValueError, match="reduction"):
        K.mse_backward(z, z, "avg")
    with pytest.raises(ValueError, match="activation"):
        K.activation_forward("gelu", z)
    with pytest.raises(ValueError, match="activation"):
        K.activation_backward("gelu", z, z, z)
    with pytest.raises(ValueError, match="unknown loss"):
        K.loss_forward("hinge", "identity", z, z, z)
    with pytest.raises(ValueError, match="softmax"):
        K.loss_backward("cross_entropy", "sigmoid", z, z, z)
    with pytest.raises(ValueError, match="sigmoid"):
        K.loss_forward("bce", "identity", z, z, z)


def _mismatched_calls(backend, dtype):
    """Kernel calls whose arrays do not fit together, each with what its message
    must say. ``(n, 1)`` against ``(n,)`` is the common one: it broadcasts to
    ``(n, n)``, and the loss would be wrong with no error."""
    rng = np.random.default_rng(11)
    xp = backend.xp
    def draw(low, shape):
        return put(backend, rng.uniform(low, 1, shape), dtype)

    col, flat, x = draw(0, (N, 1)), draw(0, N), draw(-1, (N, FAN_IN))
    W, b, dz = draw(-1, (FAN_IN, FAN_OUT)), draw(-1, FAN_OUT), draw(-1, (N, FAN_OUT))
    outer = f"a ({N}, 1), y ({N},) broadcast to ({N}, {N}), not a's ({N}, 1)"
    logits = f"z ({N}, 1), y ({N},) broadcast to ({N}, {N})"
    yield "mse_forward", lambda: K.mse_forward(col, flat), outer
    yield "mse_backward", lambda: K.mse_backward(col, flat), outer
    yield "bce_with_logits_forward", lambda: K.bce_with_logits_forward(col, flat), logits
    yield "bce_with_logits_backward", lambda: K.bce_with_logits_backward(col, flat), logits
    ce_forward, ce_backward = K.softmax_cross_entropy_forward, K.softmax_cross_entropy_backward
    yield "softmax_cross_entropy_forward", lambda: ce_forward(col, flat), logits
    yield "softmax_cross_entropy_backward", lambda: ce_backward(col, flat), logits
    yield "loss_forward", lambda: K.loss_forward("mse", "identity", col, col, flat), "y (4,)"
    yield "loss_backward", lambda: K.loss_backward("bce", "sigmoid", col, col, flat), "y (4,)"
    yield "loss_and_backward", lambda: K.loss_and_backward("mse", "sigmoid", col, col, flat), \
        "y (4,)"
    yield "n_correct", lambda: K.n_correct(col, flat, False), outer
    yield "sigmoid_backward", lambda: K.sigmoid_backward(col, col, flat), "da (4,) broadcast to"
    yield "mse_forward", lambda: K.mse_forward(col, x), f"broadcast to ({N}, {FAN_IN}), not a's"
    yield "mse_forward", lambda: K.mse_forward(col, W), "do not broadcast together"
    x3 = xp.reshape(x, (1, N, FAN_IN))
    yield "dense_forward", lambda: K.dense_forward(x3, W, b), "x must be 2-D"
    yield "dense_forward", lambda: K.dense_forward(x, W.T, b), "x's columns must equal W's rows"
    yield "dense_forward", lambda: K.dense_forward(x, W, b[:-1]), f"b must have shape ({FAN_OUT},)"
    yield "dense_activation_forward", lambda: K.dense_activation_forward(x, W, x, "tanh"), "b must"
    yield "dense_backward", lambda: K.dense_backward(x, W, dz.T), f"dz must have shape ({N}, "
    yield "dense_backward", lambda: K.dense_backward(x[0, :], W, dz), "x must be 2-D, shape (n,"
    yield "mse_forward", lambda: K.mse_forward(col, col, "mean", 0), "n_samples must be a number"


def test_arrays_that_do_not_fit_together_are_refused_by_name(backend):
    # Every namespace: refused before any array operation, so the message is
    # the kernel's own, never one from inside the library (or none at all).
    dtype = dtype_of(backend, "float64")
    for kernel, call, words in _mismatched_calls(backend, dtype):
        with pytest.raises(ValueError, match=kernel) as refused:
            call()
        assert words in str(refused.value), (kernel, str(refused.value))


def test_broadcasts_that_keep_an_operands_shape_stay_allowed(backend):
    # A scalar or 0-D target, a (1, k) row, a bias as (1, fan_out), one sample
    # (what vmap over rows hands each call), and n_samples ignored by "sum".
    dtype = dtype_of(backend, "float64")
    rng = np.random.default_rng(12)
    a = put(backend, rng.uniform(0, 1, (N, K_OUT)), dtype)
    x = put(backend, rng.uniform(-1, 1, (N, FAN_IN)), dtype)
    W = put(backend, rng.uniform(-1, 1, (FAN_IN, FAN_OUT)), dtype)
    b = put(backend, rng.uniform(-1, 1, FAN_OUT), dtype)
    xp = backend.xp
    want = float(to_numpy(backend, K.mse_forward(a, xp.zeros_like(a))))
    assert float(to_numpy(backend, K.mse_forward(a, 0.0))) == want
    assert float(to_numpy(backend, K.mse_forward(a, xp.zeros_like(a[:1, :])))) == want
    assert float(to_numpy(backend, K.mse_forward(a, xp.zeros_like(a), "sum", 0))) == want * N
    one = K.dense_forward(x[0, :], W, b)
    assert tuple(one.shape) == (FAN_OUT,)
    whole = to_numpy(backend, K.dense_forward(x, W, b))
    np.testing.assert_allclose(to_numpy(backend, one), whole[0])
    row_bias = K.dense_forward(x, W, xp.reshape(b, (1, FAN_OUT)))
    np.testing.assert_array_equal(to_numpy(backend, row_bias), whole)


def test_per_sample_gradients_under_jax_vmap():
    jax = pytest.importorskip("jax", reason="jax is needed for the vmap check")
    jnp = jax.numpy
    rng = np.random.default_rng(13)
    x, y = jnp.asarray(rng.uniform(-1, 1, (N, FAN_IN))), jnp.asarray(rng.uniform(0, 1, (N, K_OUT)))
    W, b = jnp.asarray(rng.uniform(-1, 1, (FAN_IN, K_OUT))), jnp.asarray(rng.uniform(-1, 1, K_OUT))

    def loss(W, b, x, y):
        return K.mse_forward(K.sigmoid_forward(K.dense_forward(x, W, b)), y, "sum")

    per_sample = jax.vmap(jax.grad(loss), in_axes=(None, None, 0, 0))(W, b, x, y)
    assert per_sample.shape == (N, FAN_IN, K_OUT)
    whole = jax.grad(loss)(W, b, x, y)
    np.testing.assert_allclose(np.asarray(per_sample.sum(axis=0)), np.asarray(whole), rtol=1e-5)


def test_shape_checks_pass_unknown_sizes_and_integer_dtypes_are_named():
    da = pytest.importorskip("dask.array", reason="unknown sizes come from dask")
    from nnbackend.checks import check_dense, check_same_shape

    rng = np.random.default_rng(14)
    X = da.from_array(rng.uniform(size=(40, 3)), chunks=10)
    keep = da.from_array(rng.uniform(size=40) > 0.5, chunks=10)
    lazy = X[keep]  # rows unknown: (nan, 3)
    assert np.isnan(lazy.shape[0])
    check_same_shape("k", ("a", "y"), lazy, X)
    check_dense("k", lazy, np.ones((3, 2)), np.ones(2), lazy[:, :2])
    with pytest.raises(ValueError, match="do not broadcast together"):
        check_same_shape("k", ("a", "y"), lazy, lazy[:, :2])
    # (nan, 1) against (nan,): the unknown rows could grow the 1 into (nan, nan).
    with pytest.raises(ValueError, match="not a's"):
        K.mse_backward(lazy[:, :1], lazy[:, 0])
    with pytest.raises(ValueError, match="not a's"):  # a list reads as NumPy would read it
        K.mse_backward(np.zeros((5, 1)), [0.0, 1.0, 2.0, 3.0, 4.0])
    with pytest.raises(TypeError, match="dtype int64: cast it first"):
        K.sigmoid_forward(np.arange(3))


# -- jax.jit -------------------------------------------------------------------------------


def test_kernels_trace_under_jax_jit():
    jax = pytest.importorskip("jax", reason="jax is needed for the jit check")
    jnp = jax.numpy
    rng = np.random.default_rng(9)
    x = rng.uniform(-2, 2, (N, FAN_IN)).astype(np.float32)
    W = rng.uniform(-1, 1, (FAN_IN, K_OUT)).astype(np.float32)
    b = rng.uniform(-1, 1, (K_OUT,)).astype(np.float32)
    y = rng.uniform(0, 1, (N, K_OUT)).astype(np.float32)
    ids = rng.integers(0, K_OUT, N)
    y_hot = one_hot(ids, K_OUT).astype(np.float32)

    def mse_loss(x, W, b, y):
        return K.mse_forward(K.sigmoid_forward(K.dense_forward(x, W, b)), y)

    def mse_grads(x, W, b, y):
        z = K.dense_forward(x, W, b)
        a = K.sigmoid_forward(z)
        dz = K.loss_backward("mse", "sigmoid", z, a, y, "mean")
        _, dW, db = K.dense_backward(x, W, dz, need_dx=False)
        return dW, db

    def ce_loss(x, W, b, y):
        return K.softmax_cross_entropy_forward(K.dense_forward(x, W, b), y, "sum")

    args = tuple(jnp.asarray(v) for v in (x, W, b, y))
    value = jax.jit(mse_loss)(*args)
    assert isinstance(value, jax.Array) and value.shape == () and value.dtype == jnp.float32
    a = ref_sigmoid(x.astype(np.float64) @ W + b)
    ref = 0.5 * ((a - y) ** 2).sum() / N
    np.testing.assert_allclose(float(value), ref, rtol=1e-5)
    np.testing.assert_allclose(float(value), float(mse_loss(*args)), rtol=1e-6)

    # The hand-written backward, jitted, agrees with jax's own gradient.
    dW, db = jax.jit(mse_grads)(*args)
    jW, jb = jax.grad(mse_loss, argnums=(1, 2))(*args)
    np.testing.assert_allclose(np.asarray(dW), np.asarray(jW), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(db), np.asarray(jb), rtol=1e-5, atol=1e-7)

    ce = jax.jit(ce_loss)(args[0], args[1], args[2], jnp.asarray(y_hot))
    z = x.astype(np.float64) @ W + b
    ref_ce = (ref_logsumexp(z)[:, 0] - z[np.arange(N), ids]).sum()
    np.testing.assert_allclose(float(ce), ref_ce, rtol=1e-5)


def test_fused_chains_are_used_where_a_namespace_offers_them():
    # CuPy's namespace carries single-kernel versions of the hot elementwise
    # chains (nnbackend.backends.cupy._cupy_fused); here a NumPy namespace offers recording
    # stand-ins, to show the kernels call them and keep their results.
    import types

    calls = []

    def record(name, fn):
        def wrapped(*args):
            calls.append(name)
            return fn(*args)
        return wrapped

    xp = types.ModuleType("fused_numpy")
    xp.__dict__.update({k: v for k, v in vars(np).items() if not k.startswith("__")})
    xp.nnbackend_fused = {
        "sigmoid": record("sigmoid", lambda z, floor: 1 / (1 + np.exp(-np.maximum(z, floor)))),
        "sigmoid_backward": record("sigmoid_backward", lambda a, da: da * (a * (1 - a))),
        "tanh_backward": record("tanh_backward", lambda a, da: da * (1 - a * a)),
        "sum_rows": record("sum_rows", lambda a: (np.ones((1, a.shape[0])) @ a)[0]),
        "relu_backward": record("relu_backward", lambda z, da: np.where(z > 0, da, 0.0)),
    }
    rng = np.random.default_rng(0)
    z, da = rng.normal(size=(5, 3)) * 50, rng.normal(size=(5, 3))
    a = K.sigmoid_forward(z, xp=xp)
    np.testing.assert_array_equal(a, K.sigmoid_forward(z, xp=np))
    np.testing.assert_array_equal(K.sigmoid_backward(z, a, da, xp=xp),
                                  K.sigmoid_backward(z, a, da, xp=np))
    t = np.tanh(z)
    np.testing.assert_array_equal(K.tanh_backward(z, t, da, xp=xp), K.tanh_backward(z, t, da))
    assert calls == ["sigmoid", "sigmoid_backward", "tanh_backward"]
    # Mixed dtypes take the promoting formula, not the one-dtype kernel.
    K.tanh_backward(z, t.astype(np.float32), da, xp=xp)
    assert calls[-1] == "tanh_backward" and len(calls) == 3
    # The bias gradient's sum over rows and relu's gradient in the backward pass.
    x, W = rng.normal(size=(5, 2)), rng.normal(size=(2, 3))
    _, _, db = K.dense_backward(x, W, da, xp=xp)
    assert db.shape == (3,)
    np.testing.assert_allclose(db, da.sum(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(K.relu_backward(z, None, da, xp=xp), K.relu_backward(z, None, da))
    assert calls[3:] == ["sum_rows", "relu_backward"]
