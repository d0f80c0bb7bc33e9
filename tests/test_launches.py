"""What a step costs in launches and compilations, held where it is.

* jax-scan: one compilation per fit shape, whatever the number of epochs
  and fits (Adam's count used to make the second epoch compile again), and
  the optimizer state donated to it.
* The eager step on torch: its operations counted (each is a kernel
  launch on CUDA), with the optimizer's independent of the parameters.
* torch-graphs: see tests/test_torch_graphs.py (one replay per step).
"""

import numpy as np
import pytest

import nnbackend as nb


def _data(n=203, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.float64)


# A schedule's state holds the wrapped optimizer's (Adam's count) one level down.
WRAPPED = {"lr_schedule": "invscaling", "alpha": 1e-3}


@pytest.mark.parametrize("optimizer,wrapped", [("sgd", False), ("adam", False), ("sgd", True),
                                               ("adam", True)])
@pytest.mark.parametrize("mode", ["minibatch", "batch"])
def test_jax_scan_compiles_once_across_epochs_and_fits(optimizer, wrapped, mode):
    pytest.importorskip("jax")
    from nnbackend.backends.jax import batch as jax_batch
    from nnbackend.backends.jax import scan as jax_scan

    X, y = _data()
    cache = (jax_scan if mode == "minibatch" else jax_batch)._COMPILED
    cache.clear()
    kw = dict(optimizer=optimizer, lr=0.01, batch_size=16, mode=mode, **(WRAPPED if wrapped else {}))
    model = nb.MLP([5, 7, 1], loss="bce", backend="jax", device="cpu", seed=1)
    hist = model.fit(X, y, epochs=3, **kw)
    assert hist.executor == ("jax-scan" if mode == "minibatch" else "jax-batch")
    model.fit(X, y, epochs=3, resume=True, **kw)
    nb.MLP([5, 7, 1], loss="bce", backend="jax", device="cpu", seed=2).fit(X, y, epochs=2, **kw)
    (compiled,) = cache.values()
    assert compiled._cache_size() == 1
    if optimizer == "adam" and mode == "minibatch":
        assert model.train_state.state_scalars["count"] == 6 * 13
        assert isinstance(model.train_state.state_scalars["count"], int)


def test_jax_scan_donates_only_its_own_state():
    jnp = pytest.importorskip("jax.numpy")
    from nnbackend.data import make_plan
    from nnbackend.engine import EpochTask, epoch_runner

    X, y = _data()
    model = nb.MLP([5, 3, 1], loss="bce", backend="jax", seed=1)
    opt = nb.adam(0.01)
    task = EpochTask(model.backend, model.spec, opt, make_plan("minibatch", 203, 16),
                     model._features(X), model._targets(y, 203), 2048,
                     index_dtype=model.backend.index_dtype())
    epoch = epoch_runner("jax-scan", task)
    params = [a for pair in model.params for a in pair]
    state0 = opt.init(params)
    params1, state1, _, _ = epoch(params, state0, None)
    # The caller's state (and the parameters, which the loop keeps) survive...
    assert not any(a.is_deleted() for a in state0.mu + params)
    params2, state2, _, _ = epoch(params1, state1, None)
    # ...the executor's own state went into the next epoch's buffers.
    assert all(a.is_deleted() for a in state1.mu + state1.nu)
    assert not any(a.is_deleted() for a in params1)
    assert state2.count == 26 and isinstance(state2.count, int)
    assert bool(jnp.all(jnp.isfinite(params2[0])))


# The eager reference step of [5, 7, 1] (tanh, bce, 16 rows) on torch, in torch
# operations (CUDA launches, give or take views and slices), measured at this
# commit: the optimizer's share is 2 for sgd and 12 for adam, where the eager
# update took 2 and 12 per parameter array. A change that adds operations to
# the step fails here and must say why.
EAGER_STEP_OPS = {"sgd": 35, "adam": 45}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_eager_torch_step_operations_do_not_grow(optimizer):
    torch = pytest.importorskip("torch")
    from torch.overrides import TorchFunctionMode

    from nnbackend.backends.torch.foreach import OPTIMIZER_LAUNCHES
    from nnbackend.network import loss_and_grads_rows, slice_rows
    from nnbackend.optim import get_optimizer, on_namespace

    class Count(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", str(func))
            if name != "__get__":  # attribute reads (.dtype, .shape) launch nothing
                self.names.append(name)
            return func(*args, **(kwargs or {}))

    X, y = _data()
    model = nb.MLP([5, 7, 1], hidden_activation="tanh", loss="bce", backend="torch", seed=1)
    xp = model.backend.xp
    Xd, Yd = model._features(X), model._targets(y, 203)
    opt = on_namespace(get_optimizer(optimizer, 0.01), xp)
    params = [a for pair in model.params for a in pair]
    state = opt.init(params)
    with torch.inference_mode(), Count() as count:
        _, grads, _ = loss_and_grads_rows(params, model.spec, slice_rows(Xd, Yd), 16, 2048,
                                          None, xp)
        n_math = len(count.names)
        opt.update(grads, state, params)
    n_opt = len(count.names) - n_math
    assert n_opt == OPTIMIZER_LAUNCHES[optimizer]
    assert len(count.names) <= EAGER_STEP_OPS[optimizer], count.names


def test_jax_leaves_a_callers_own_state_fields_as_its_update_makes_them():
    # Only step counts go through the host: a float field, or an int that is not
    # a count, comes back as the caller's update left it.
    pytest.importorskip("jax.numpy")
    from typing import NamedTuple

    class DecayState(NamedTuple):
        count: int
        scale: float
        every: int

    def init(params):
        return DecayState(0, 1.0, 3)

    def update(grads, state, params):
        new = [p - 0.05 * state.scale * g for p, g in zip(params, grads)]
        return new, DecayState(state.count + 1, state.scale * 0.5, state.every)

    X, y = _data()
    for mode in ("minibatch", "batch"):
        model = nb.MLP([5, 4, 1], loss="bce", backend="jax", device="cpu", seed=1)
        opt = nb.optim.Optimizer(init, update)
        hist = model.fit(X, y, epochs=2, optimizer=opt, mode=mode, batch_size=64)
        assert hist.executor == ("jax-scan" if mode == "minibatch" else "jax-batch")
        reference = nb.MLP([5, 4, 1], loss="bce", backend="numpy", seed=1)
        reference.fit(X, y, epochs=2, optimizer=nb.optim.Optimizer(init, update), mode=mode,
                      batch_size=64)
        for got, want in zip(model.flat_params, reference.flat_params):
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
