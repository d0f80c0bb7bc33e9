"""Gradients of ``MLP.loss_and_grads`` against finite differences, PyTorch
autograd, and across backends.

Hypothesis draws the architecture (1-3 layers of 1-5 units), the number of
samples (1-6), the weights (through ``seed``), the biases, ``X`` and ``y``,
for every hidden activation and every valid (output activation, loss) pair,
with both reductions, in float64 on the NumPy backend.

Tolerances
----------
Finite differences: central differences with step ``H = 1e-6``. Their
truncation error is ``H²/6·|L'''|`` (about 1e-12 here) and their rounding
error is about ``c·eps·|L| / H`` with ``eps = 2.2e-16`` and ``c`` the handful
of roundings in one loss evaluation: a few times 1e-10 for ``|L| ~ 1``. A
gradient passes when ``|g - fd| <= 1e-7·|fd| + 1e-8·max(1, |L|)``: relative
1e-7, with an absolute floor some 10-50 times the rounding noise of the
difference quotient (without a floor, gradients that are exactly or nearly
zero could never pass).

Autograd and cross-backend checks compare two exact computations, so their
floors are at rounding level (1e-12 and 1e-13 of the gradients' scale).

ReLU kinks: a central difference across ``z = 0`` measures neither one-sided
slope, so draws where any hidden pre-activation lies within 1e-4 of 0 are
rejected with ``assume`` (the largest change of a pre-activation a step of
``H`` can cause is about ``H·(1 + 5·3) << 1e-4``).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nnbackend as nb

from conftest import to_numpy

HIDDEN = ("sigmoid", "tanh", "relu", "identity")
PAIRS = (
    ("sigmoid", "mse"),
    ("identity", "mse"),
    ("softmax", "mse"),
    ("sigmoid", "bce"),
    ("softmax", "cross_entropy"),
)
REDUCTIONS = ("mean", "sum")

H = 1e-6  # central-difference step
FD_RTOL = 1e-7
FD_ATOL = 1e-8  # times max(1, |loss|); see the module docstring
KINK = 1e-4  # reject ReLU pre-activations closer to 0 than this

pair_ids = [f"{o}-{l}" for o, l in PAIRS]


# -- draws --------------------------------------------------------------------------


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def cases(draw, output_activation, loss):
    """One network and data set: sizes, seed, biases, X and y (host arrays)."""
    n_layers = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 5)) for _ in range(n_layers)]
    # A softmax output needs at least 2 units.
    sizes.append(draw(st.integers(2 if output_activation == "softmax" else 1, 5)))
    n = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    biases = [
        draw(hnp.arrays(np.float64, (k,), elements=_floats(-1, 1))) for k in sizes[1:]
    ]
    X = draw(hnp.arrays(np.float64, (n, sizes[0]), elements=_floats(-3, 3)))
    k = sizes[-1]
    if loss == "cross_entropy":
        y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    elif loss == "bce":
        if draw(st.booleans()):
            y = draw(hnp.arrays(np.float64, (n, k), elements=_floats(0, 1)))
        else:
            y = draw(hnp.arrays(np.float64, (n, k), elements=st.sampled_from([0.0, 1.0])))
    else:
        y = draw(hnp.arrays(np.float64, (n, k), elements=_floats(-3, 3)))
    return {"sizes": sizes, "seed": seed, "biases": biases, "X": X, "y": y}


def _make_model(case, hidden, output_activation, loss, reduction, params=None):
    return nb.MLP(
        case["sizes"],
        hidden_activation=hidden,
        output_activation=output_activation,
        loss=loss,
        reduction=reduction,
        backend="numpy",
        dtype="float64",
        seed=case["seed"],
        params=params,
    )


def _host_params(case, hidden, output_activation, loss, reduction):
    """The seeded model's weights with the drawn biases, as host float64 arrays."""
    seeded = _make_model(case, hidden, output_activation, loss, reduction)
    weights = [np.array(seeded.backend.to_host(W), dtype=np.float64) for W, _ in seeded.params]
    return [(W, b.copy()) for W, b in zip(weights, case["biases"])]


def _reject_relu_kinks(case, hidden, params):
    """``assume`` every hidden pre-activation is at least KINK away from 0."""
    if hidden != "relu":
        return
    x = case["X"]
    for W, b in params[:-1]:
        z = x @ W + b
        assume(np.all(np.abs(z) > KINK))
        x = np.maximum(z, 0.0)


def _setup(case, hidden, output_activation, loss, reduction):
    params = _host_params(case, hidden, output_activation, loss, reduction)
    _reject_relu_kinks(case, hidden, params)
    model = _make_model(case, hidden, output_activation, loss, reduction, params=params)
    lval, grads = model.loss_and_grads(case["X"], case["y"])
    grads = [(to_numpy(model.backend, dW), to_numpy(model.backend, db)) for dW, db in grads]
    for (W, b), (dW, db) in zip(params, grads):
        assert dW.shape == W.shape and db.shape == b.shape
    return params, lval, grads


# -- finite differences -------------------------------------------------------------


def _central_differences(case, hidden, output_activation, loss, reduction, params):
    """d loss / d every parameter, by central differences through fresh MLPs."""

    def loss_at(p):
        m = _make_model(case, hidden, output_activation, loss, reduction, params=p)
        return m.loss_and_grads(case["X"], case["y"])[0]

    fds = []
    for i, pair in enumerate(params):
        fd_pair = []
        for j, arr in enumerate(pair):
            fd = np.empty_like(arr)
            for idx in np.ndindex(arr.shape):
                values = []
                for sign in (1.0, -1.0):
                    p = [[W.copy(), b.copy()] for W, b in params]
                    p[i][j][idx] += sign * H
                    values.append(loss_at([tuple(q) for q in p]))
                fd[idx] = (values[0] - values[1]) / (2 * H)
            fd_pair.append(fd)
        fds.append(tuple(fd_pair))
    return fds


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("output_activation,loss", PAIRS, ids=pair_ids)
@pytest.mark.parametrize("hidden", HIDDEN)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_grads_match_finite_differences(hidden, output_activation, loss, reduction, data):
    case = data.draw(cases(output_activation, loss), label="case")
    params, lval, grads = _setup(case, hidden, output_activation, loss, reduction)
    assert np.isfinite(lval)
    fds = _central_differences(case, hidden, output_activation, loss, reduction, params)
    floor = FD_ATOL * max(1.0, abs(lval))
    for layer, ((dW, db), (fW, fb)) in enumerate(zip(grads, fds)):
        for name, g, fd in (("dW", dW, fW), ("db", db, fb)):
            err = np.abs(g - fd)
            bound = FD_RTOL * np.abs(fd) + floor
            bad = err > bound
            assert not bad.any(), (
                f"layer {layer} {name}: analytic {g[bad]} vs central differences "
                f"{fd[bad]} (|err| {err[bad]}, allowed {bound[bad]}); loss {lval}"
            )


# -- PyTorch autograd ---------------------------------------------------------------


def _torch_loss_and_grads(case, hidden, output_activation, loss, reduction, params):
    torch = pytest.importorskip("torch", reason="PyTorch is needed for the autograd check")
    F = torch.nn.functional
    X = torch.tensor(case["X"], dtype=torch.float64)
    ps = [
        (
            torch.tensor(W, dtype=torch.float64, requires_grad=True),
            torch.tensor(b, dtype=torch.float64, requires_grad=True),
        )
        for W, b in params
    ]
    hidden_fn = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "identity": lambda t: t,
    }[hidden]
    x = X
    for i, (W, b) in enumerate(ps):
        z = x @ W + b
        x = hidden_fn(z) if i < len(ps) - 1 else z
    z = x
    n = X.shape[0]
    if loss == "mse":
        out = {
            "sigmoid": torch.sigmoid,
            "identity": lambda t: t,
            "softmax": lambda t: torch.softmax(t, dim=1),
        }[output_activation](z)
        y = torch.tensor(case["y"], dtype=torch.float64)
        total = 0.5 * ((out - y) ** 2).sum()
    elif loss == "bce":
        y = torch.tensor(case["y"], dtype=torch.float64)
        total = F.binary_cross_entropy_with_logits(z, y, reduction="sum")
    else:
        y = torch.tensor(case["y"], dtype=torch.long)
        total = F.cross_entropy(z, y, reduction="sum")
    value = total / n if reduction == "mean" else total
    value.backward()
    grads = [(W.grad.numpy(), b.grad.numpy()) for W, b in ps]
    return float(value.detach()), grads


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("output_activation,loss", PAIRS, ids=pair_ids)
@pytest.mark.parametrize("hidden", HIDDEN)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_grads_match_torch_autograd(hidden, output_activation, loss, reduction, data):
    pytest.importorskip("torch", reason="PyTorch is needed for the autograd check")
    case = data.draw(cases(output_activation, loss), label="case")
    params, lval, grads = _setup(case, hidden, output_activation, loss, reduction)
    tval, tgrads = _torch_loss_and_grads(case, hidden, output_activation, loss, reduction, params)
    np.testing.assert_allclose(lval, tval, rtol=1e-7, atol=1e-12 * max(1.0, abs(tval)))
    scale = max(1.0, max(np.max(np.abs(g)) for pair in tgrads for g in pair))
    for layer, ((dW, db), (tW, tb)) in enumerate(zip(grads, tgrads)):
        np.testing.assert_allclose(dW, tW, rtol=1e-7, atol=1e-12 * scale, err_msg=f"layer {layer} dW")
        np.testing.assert_allclose(db, tb, rtol=1e-7, atol=1e-12 * scale, err_msg=f"layer {layer} db")


# -- every backend against NumPy ------------------------------------------------------

FIXED_SIZES = [3, 4, 3, 2]
FIXED_N = 7


def _fixed_data(loss):
    rng = np.random.default_rng(1234)
    X = rng.uniform(-2, 2, size=(FIXED_N, FIXED_SIZES[0]))
    k = FIXED_SIZES[-1]
    if loss == "cross_entropy":
        y = rng.integers(0, k, size=FIXED_N)
    elif loss == "bce":
        y = rng.uniform(0, 1, size=(FIXED_N, k))
    else:
        y = rng.uniform(-2, 2, size=(FIXED_N, k))
    # Non-zero biases so every parameter's gradient path is exercised.
    biases = [rng.uniform(-0.5, 0.5, size=s) for s in FIXED_SIZES[1:]]
    return X, y, biases


@pytest.mark.parametrize("output_activation,loss", PAIRS, ids=pair_ids)
def test_backends_match_numpy(backend, output_activation, loss):
    if "float64" not in backend.float_dtypes():
        pytest.skip(f"{backend!r} has no float64")
    X, y, biases = _fixed_data(loss)
    for hidden in HIDDEN:
        for reduction in REDUCTIONS:
            kwargs = dict(
                hidden_activation=hidden,
                output_activation=output_activation,
                loss=loss,
                reduction=reduction,
                dtype="float64",
                seed=7,
            )
            ref = nb.MLP(FIXED_SIZES, backend="numpy", **kwargs)
            params = [(np.asarray(W), b) for (W, _), b in zip(ref.params, biases)]
            ref = nb.MLP(FIXED_SIZES, backend="numpy", params=params, **kwargs)
            ref_loss, ref_grads = ref.loss_and_grads(X, y)

            model = nb.MLP(
                FIXED_SIZES, backend=backend.name, device=backend.device, params=params, **kwargs
            )
            # Host inputs, and the same inputs as arrays of the backend.
            inputs = [(X, y), (backend.asarray(X), backend.asarray(y))]
            for Xi, yi in inputs:
                lval, grads = model.loss_and_grads(Xi, yi)
                what = f"{hidden}/{reduction}"
                np.testing.assert_allclose(lval, ref_loss, rtol=1e-10, atol=1e-13, err_msg=what)
                scale = max(1.0, max(np.max(np.abs(np.asarray(g))) for p in ref_grads for g in p))
                for layer, ((dW, db), (rW, rb)) in enumerate(zip(grads, ref_grads)):
                    for g, r, name in ((dW, rW, "dW"), (db, rb, "db")):
                        assert nb.backend_of(g).name == backend.name
                        assert str(nb.backend_of(g).device) == str(backend.device)
                        np.testing.assert_allclose(
                            to_numpy(backend, g), np.asarray(r), rtol=1e-10,
                            atol=1e-13 * scale, err_msg=f"{what} layer {layer} {name}",
                        )
