"""``optim.update_key``: what identifies an optimizer's update, so that JAX's
compiled epochs serve fit after fit with the L2 penalty and schedules too.

Equal keys must mean equal updates (a compiled epoch made around one
optimizer runs the other's steps), and anything not known (a custom
optimizer, a schedule function without a key) gives None: compiled afresh.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import optim


def test_builtins_wrappers_and_customs():
    adam = optim.adam(1e-3)
    assert optim.update_key(adam) == ("adam", tuple(sorted(adam.hyper.items())))
    l2 = optim.l2_penalty(adam, 0.01, [True, False])
    assert optim.update_key(l2) == ("l2_penalty", 0.01, (True, False), optim.update_key(adam))
    assert optim.update_key(optim.l2_penalty(optim.adam(1e-3), 0.01, [True, False])) \
        == optim.update_key(l2)
    assert optim.update_key(optim.l2_penalty(adam, 0.02, [True, False])) != optim.update_key(l2)
    assert optim.update_key(optim.l2_penalty(adam, 0.0)) == optim.update_key(adam)  # no wrapper

    sgd = optim.sgd(0.1)
    inv = optim.inverse_scaling(0.5, 100, 4)
    sched = optim.scheduled(sgd, inv, scale=0.2)
    assert optim.update_key(sched) == ("scheduled", inv.key, 0.2, "grads", optim.update_key(sgd))
    assert optim.update_key(optim.scheduled(sgd, optim.inverse_scaling(0.5, 100, 5))) \
        != optim.update_key(optim.scheduled(sgd, inv))
    assert optim.update_key(optim.scheduled(sgd)) == ("scheduled", None, 1.0, "grads",
                                                      optim.update_key(sgd))
    # Unknown parts: never shared.
    assert optim.update_key(optim.scheduled(sgd, lambda count: 1.0)) is None
    custom = optim.Optimizer(sgd.init, lambda g, s, p: (p, s))
    assert optim.update_key(custom) is None
    assert optim.update_key(optim.l2_penalty(custom, 0.1)) is None


def test_a_rebound_wrapper_keeps_its_key():
    import array_api_compat.numpy as xp

    wrapped = optim.l2_penalty(optim.scheduled(optim.momentum(0.1, 0.9),
                                               optim.inverse_scaling(0.5, 64, 2)), 1e-3)
    assert optim.update_key(optim.on_namespace(wrapped, xp)) == optim.update_key(wrapped)


@pytest.mark.parametrize("mode", ["minibatch", "batch"])
def test_jax_reuses_its_compiled_epoch_under_penalty_and_schedule(mode):
    pytest.importorskip("jax")
    from nnbackend.backends.jax import batch, scan

    cache = {"minibatch": scan, "batch": batch}[mode]

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = (X[:, :1] > 0).astype(float)
    kw = dict(mode=mode, batch_size=16, epochs=2, lr=0.1, alpha=1e-3,
              lr_schedule="invscaling")

    def fit(seed):
        model = nb.MLP([3, 4, 1], backend="jax", device="cpu", seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hist = model.fit(X, y, **kw)
        return hist, model

    hist, _ = fit(0)
    assert hist.executor in ("jax-scan", "jax-batch")
    cached = dict(cache._COMPILED)
    fit(1)
    assert dict(cache._COMPILED) == cached, "the second fit compiled its epoch again"
    # A different penalty is another update: its own entry, and its own numbers.
    kw["alpha"] = 1e-1
    _, model = fit(1)
    assert len(cache._COMPILED) == min(len(cached) + 1, scan._CACHE_SIZE)
    reference = nb.MLP([3, 4, 1], backend="numpy", dtype="float32", seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(X, y, **kw)
    for got, want in zip(model.flat_params, reference.flat_params):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
