"""Optimizers against PyTorch's, step for step, and their purity."""

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
    ({"beta": 1.0}, "beta must be a number in"),
    ({"beta": -0.1}, "beta must be"),
])
def test_bad_hyperparameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_optimizer("momentum", 0.1, **kwargs)


def test_optimizer_object_is_accepted():
    X = np.array([[0.0], [1.0]])
    y = np.array([[0.0], [1.0]])
    model = nb.MLP([1, 1], output_activation="identity", dtype="float64")
    hist = model.fit(X, y, mode="batch", epochs=50, optimizer=nb.momentum(0.1, nesterov=True))
    assert hist.loss[-1] < hist.loss[0]
