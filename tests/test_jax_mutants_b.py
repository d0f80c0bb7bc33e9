"""Tests for the survivors of the second pass of the JAX backend's mutation audit
(benchmarks/results/mutation-2026-12-07k, "Second pass"). Each names in a comment
the mutants it kills and what went wrong under them."""
import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="needs jax (the 'jax' extra)")
import jax.numpy as jnp  # noqa: E402

import nnbackend as nb  # noqa: E402
from nnbackend.backends.jax import batch as jax_batch  # noqa: E402
from nnbackend.backends.jax import scan as jax_scan  # noqa: E402
from nnbackend.data import host_rng, make_plan  # noqa: E402
from nnbackend.engine import EpochTask, run_epoch  # noqa: E402
from nnbackend.optim import get_optimizer, on_namespace, scheduled  # noqa: E402

N = 61  # not a multiple of the batch or chunk sizes below


def _problem(n=N, dtype="float32"):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] > 0).astype(float)
    model = nb.MLP([3, 4, 1], output_activation="sigmoid", loss="bce", backend="jax",
                   dtype=dtype, seed=1)
    return model, model._features(X), model._targets(y, n)


def _task(model, X, Y, opt, plan, chunk=16, multiclass=False, **kw):
    return EpochTask(model.backend, model.spec, opt, plan, X, Y, chunk, multiclass,
                     model.backend.index_dtype(), model.layer_sizes, **kw)


def test_a_scan_epoch_that_counts_no_rows_says_none():
    # S24: an epoch that counts no correct rows (multiclass None: the
    # benchmarks' stepper) returned the scan's zero accumulator (0.0) as its
    # count instead of None, which callers that test `correct is None`
    # (training/loop.py) would take for a count of 0 correct rows.
    model, X, Y = _problem()
    opt = on_namespace(get_optimizer("sgd", 0.1), jnp)
    plan = make_plan("minibatch", N, 16, shuffle=False)
    params = model.flat_params
    epoch = jax_scan.JaxScan().make_epoch(_task(model, X, Y, opt, plan, 16, None))
    *_, correct = epoch(params, opt.init(params), None)
    assert correct is None


def test_a_shuffled_batch_epoch_takes_its_order_as_int32_under_x64(x64_on):
    # B27: the row order was not cast to order_dtype (int32): under x64 a
    # host order (int64) compiled the gathering epoch a second time beside an
    # int32 one, and gathered with int64 indices (which changed float32 bits in
    # the scan: numerics review 2026-12-07, finding 1).
    jax_batch._COMPILED.clear()
    model, X, Y = _problem()
    opt = on_namespace(get_optimizer("sgd", 0.1), jnp)
    plan = make_plan("minibatch", N, N, shuffle=True)
    epoch = jax_batch.JaxBatch().make_epoch(_task(model, X, Y, opt, plan))
    params = model.flat_params
    epoch(params, opt.init(params), np.arange(N))
    epoch(params, opt.init(params), np.arange(N, dtype=np.int32))
    assert next(iter(jax_batch._COMPILED.values()))._cache_size() == 1


def _reference(model, X, Y, opt, plan):
    params = model.flat_params
    return run_epoch(params, opt.init(params), opt, model.spec, X, Y, plan, host_rng(3),
                     model.backend.index_dtype(), 16, False, xp=model.backend.xp)


def test_scan_epochs_are_compiled_per_batch_size_and_rows():
    # S16: the batch size was not in the scan's cache key: a task of 8-row
    # batches ran the 16-row one's executable (4 steps, not 8). (S17, N not in
    # the key, fails here too, but the existing tests kill it already.)
    jax_scan._COMPILED.clear()
    opt = on_namespace(get_optimizer("sgd", 0.1), jnp)
    big, small = _problem(), _problem(n=40)
    for (model, X, Y), batch in [(big, 16), (big, 8), (small, 16)]:
        n = X.shape[0]
        plan = make_plan("minibatch", n, batch, shuffle=False)
        params = model.flat_params
        epoch = jax_scan.JaxScan().make_epoch(_task(model, X, Y, opt, plan))
        got = epoch(params, opt.init(params), None)
        ref = _reference(model, X, Y, opt, plan)
        np.testing.assert_allclose(float(got[2]), float(ref[2]), rtol=1e-5)
        for a, b in zip(got[0], ref[0]):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    assert len(jax_scan._COMPILED) == 3


def test_a_wrapped_optimizers_step_counts_come_back_host_ints():
    # S37: the counts inside a wrapper's state (a schedule's inner Adam, in a
    # list) were left as the device scalars the compiled epoch returned, not
    # the host ints ScheduledState and AdamState document: each next epoch then
    # read them back from the device before it could start.
    model, X, Y = _problem()
    opt = on_namespace(scheduled(get_optimizer("adam", 0.01), lambda t: 1.0 / (1.0 + t)), jnp)
    plan = make_plan("minibatch", N, 16, shuffle=False)
    epoch = jax_scan.JaxScan().make_epoch(_task(model, X, Y, opt, plan))
    params = model.flat_params
    _, state, _, _ = epoch(params, opt.init(params), None)
    assert type(state.count) is int and state.count == 4
    inner = state.inner[0]
    assert type(inner.count) is int and inner.count == 4


def test_a_batch_epoch_past_int32_steps_is_refused_by_name(x64_off):
    # B15: the batch epoch did not check its step counts: without x64 an Adam
    # count at 2**31 - 1 went into the compiled epoch, whose int32 step then
    # passed 2**31 - 1, without a word. The fit-level test in test_jax_batch.py takes its
    # x64-off branch only when no float64 jax model ran before it in the process.
    model, X, Y = _problem()
    opt = on_namespace(get_optimizer("adam", 0.01), jnp)
    epoch = jax_batch.JaxBatch().make_epoch(_task(model, X, Y, opt, make_plan("batch", N)))
    params = model.flat_params
    state = opt.init(params)._replace(count=2**31 - 1)
    with pytest.raises(ValueError, match=r"step count reaches 2,147,483,648, past 2\*\*31 - 1"):
        epoch(params, state, None)
