"""Optimizers against a NumPy reference written out here and against PyTorch's,
step for step, and their purity."""

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.optim import get_optimizer


def _sequence(seed=0, steps=7):
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=(3, 2)), rng.normal(size=(2,))]
    grads = [[rng.normal(size=p.shape) for p in params] for _ in range(steps)]
    return params, grads


def _ours(opt, params, grads):
    state = opt.init(params)
    for g in grads:
        params, state = opt.update(g, state, params)
    return params


def _reference(kind, lr, params, grads, beta=0.9, nesterov=False, b1=0.9, b2=0.999, eps=1e-8):
    """The optimizers' textbook updates in NumPy float64, one parameter and one step at a time.

    SGD: ``p -= lr*g``. Momentum (PyTorch's convention): ``v = beta*v + g``,
    then ``p -= lr*v``, or ``p -= lr*(g + beta*v)`` with Nesterov. Adam
    (Kingma & Ba 2015, Algorithm 1): ``m = b1*m + (1-b1)*g``,
    ``v = b2*v + (1-b2)*g**2``, ``p -= lr*m_hat/(sqrt(v_hat) + eps)`` with
    ``m_hat = m/(1-b1**t)`` and ``v_hat = v/(1-b2**t)``.
    """
    params = [np.array(p, dtype=np.float64) for p in params]
    out = []
    for i, p in enumerate(params):
        vel = np.zeros_like(p)
        m = np.zeros_like(p)
        v = np.zeros_like(p)
        for t, step_grads in enumerate(grads, start=1):
            g = np.asarray(step_grads[i], dtype=np.float64)
            if kind == "sgd":
                p = p - lr * g
            elif kind == "momentum":
                vel = beta * vel + g
                p = p - lr * ((g + beta * vel) if nesterov else vel)
            elif kind == "adam":
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g**2
                m_hat = m / (1 - b1**t)
                v_hat = v / (1 - b2**t)
                p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
            else:
                raise ValueError(kind)
        out.append(p)
    return out


@pytest.mark.parametrize("name, options", [pytest.param(n, o, id=n) for n, o in [
    ("sgd", {}),
    ("momentum", {}),
    ("momentum-beta", {"beta": 0.5}),
    ("momentum-nesterov", {"beta": 0.8, "nesterov": True}),
    ("adam", {}),
    ("adam-betas", {"b1": 0.5, "b2": 0.9, "eps": 1e-6}),
]])
def test_matches_numpy_reference(name, options):
    # Needs nothing but NumPy: the maths is checked with only '.[test]' installed.
    params, grads = _sequence()
    kind = name.split("-")[0]
    got = _ours(get_optimizer(kind, 0.05, **options), params, grads)
    want = _reference(kind, 0.05, params, grads, **options)
    for a, w, p in zip(got, want, params):
        assert not np.allclose(w, p), "the reference moved nothing: a vacuous comparison"
        np.testing.assert_allclose(a, w, rtol=1e-12, atol=1e-14)


def test_numpy_reference_tells_the_variants_apart():
    # The reference is only worth comparing against if each option changes the result.
    params, grads = _sequence()
    runs = {
        "sgd": _reference("sgd", 0.05, params, grads),
        "momentum": _reference("momentum", 0.05, params, grads),
        "momentum-beta": _reference("momentum", 0.05, params, grads, beta=0.5),
        "nesterov": _reference("momentum", 0.05, params, grads, nesterov=True),
        "adam": _reference("adam", 0.05, params, grads),
        "adam-betas": _reference("adam", 0.05, params, grads, b1=0.5, b2=0.9, eps=1e-6),
    }
    names = list(runs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.allclose(runs[a][0], runs[b][0], rtol=1e-6), (a, b)


@pytest.mark.parametrize("name, ours, theirs", [
    ("sgd", {}, {}),
    ("momentum", {"beta": 0.9}, {"momentum": 0.9}),
    ("momentum-nesterov", {"beta": 0.8, "nesterov": True}, {"momentum": 0.8, "nesterov": True}),
    ("adam", {}, {}),
    ("adam-betas", {"b1": 0.5, "b2": 0.9, "eps": 1e-6}, {"betas": (0.5, 0.9), "eps": 1e-6}),
])
def test_matches_torch_optim(name, ours, theirs):
    torch = pytest.importorskip("torch")
    params, grads = _sequence()
    kind = name.split("-")[0]
    got = _ours(get_optimizer(kind, 0.05, **ours), params, grads)
    tparams = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    cls = torch.optim.Adam if kind == "adam" else torch.optim.SGD
    topt = cls(tparams, lr=0.05, **theirs)
    for g in grads:
        for p, gi in zip(tparams, g):
            p.grad = torch.tensor(gi)
        topt.step()
    for a, t in zip(got, tparams):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_update_does_not_mutate(backend):
    params, grads = _sequence()
    dev = [backend.asarray(p, dtype=backend.dtype("float32")) for p in params]
    copies = [backend.to_host(p).copy() for p in dev]
    for name in ("sgd", "momentum", "adam"):
        opt = get_optimizer(name, 0.1)
        state = opt.init(dev)
        g = [backend.asarray(x, dtype=backend.dtype("float32")) for x in grads[0]]
        new, state = opt.update(g, state, dev)
        for p, c in zip(dev, copies):
            np.testing.assert_array_equal(backend.to_host(p), c)
        assert not np.array_equal(backend.to_host(new[0]), copies[0])


@pytest.mark.parametrize("kwargs, match", [
    ({"beta": 1.01}, r"beta must be a number in \[0, 1\]"),
    ({"beta": -0.1}, "beta must be"),
])
def test_bad_hyperparameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_optimizer("momentum", 0.1, **kwargs)


def _regression_data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(16, 3))
    y = X @ np.array([[0.5], [-1.0], [2.0]]) + 0.1 * rng.normal(size=(16, 1))
    return X, y


def _fit_params(optimizer, **kwargs):
    X, y = _regression_data()
    model = nb.MLP([3, 4, 1], output_activation="identity", dtype="float64", seed=0)
    model.fit(X, y, mode="batch", epochs=20, optimizer=optimizer, **kwargs)
    return [np.asarray(a) for pair in model.params for a in pair]


def test_optimizer_object_is_accepted():
    # The object is used as given, with its own lr and options (fit's lr=0.1
    # default is not the object's 0.05): the same fit as the named optimizer
    # with those settings, bit for bit, and not plain sgd or momentum without
    # Nesterov.
    got = _fit_params(nb.momentum(0.05, beta=0.8, nesterov=True))
    named = _fit_params("momentum", lr=0.05, optimizer_options={"beta": 0.8, "nesterov": True})
    for a, b in zip(got, named):
        np.testing.assert_array_equal(a, b)
    for other in (_fit_params("sgd", lr=0.05), _fit_params("sgd"),
                  _fit_params("momentum", lr=0.05, optimizer_options={"beta": 0.8})):
        assert any(not np.allclose(a, b) for a, b in zip(got, other))


def test_optimizer_made_of_other_functions_is_accepted():
    # An Optimizer without name or hyper runs through its own update.
    built = nb.adam(0.05)
    custom = nb.Optimizer(built.init, built.update)
    got = _fit_params(custom)
    for a, b in zip(got, _fit_params("adam", lr=0.05)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(got, _fit_params("sgd", lr=0.05)))
