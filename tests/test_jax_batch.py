"""The JAX batch-mode executor (one jitted dispatch per epoch) against the reference loop."""

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="jax is not installed")

import nnbackend as nb  # noqa: E402
from nnbackend.backends.jax import batch as jax_batch  # noqa: E402
from nnbackend.data import host_rng, make_plan  # noqa: E402
from nnbackend.engine import EpochTask, run_epoch  # noqa: E402
from nnbackend.optim import get_optimizer, on_namespace  # noqa: E402

# Every loss, output and hidden activation; every optimizer (the fused kernel's cases).
from test_cupy_fused import NETWORKS, OPTIMIZERS, _host_data  # noqa: E402

N = 101  # prime: no chunk size below divides it, so every epoch ends on a shorter chunk
CHUNK = 16  # several chunks (6 whole ones and a tail of 5)

def _problem(hidden, output, loss, k, dtype, reduction="mean", n=N):
    X, y = _host_data(output, loss, k, n=n)
    model = nb.MLP([5, 7, 6, k], hidden_activation=hidden, output_activation=output, loss=loss,
                   reduction=reduction, backend="jax", dtype=dtype, seed=1)
    multiclass = {"softmax": True, "sigmoid": False}.get(output)
    return model, model._features(X), model._targets(y, n), multiclass


def _task(model, X, Y, multiclass, opt, plan, chunk):
    return EpochTask(model.backend, model.spec, opt, plan, X, Y, chunk, multiclass,
                     model.backend.index_dtype(), model.layer_sizes)


def _run_both(model, X, Y, multiclass, opt, plan, epochs, chunk=CHUNK):
    """Epochs of the executor and of the reference loop from the same start."""
    opt = on_namespace(opt, model.backend.xp)
    task = _task(model, X, Y, multiclass, opt, plan, chunk)
    assert jax_batch.JaxBatch().supports(task) is None
    epoch = jax_batch.JaxBatch().make_epoch(task)
    rng_fast, rng_ref = host_rng(3), host_rng(3)
    params = model.flat_params
    a = (params, opt.init(params))
    b = (params, opt.init(params))
    losses = []
    for _ in range(epochs):
        *a, loss_a, hits_a = epoch(*a, plan.order(rng_fast))
        *b, loss_b, hits_b = run_epoch(*b, opt, model.spec, X, Y, plan, rng_ref,
                                       task.index_dtype, chunk, multiclass,
                                       xp=model.backend.xp)
        losses.append(((loss_a, hits_a), (loss_b, hits_b)))
    return a, b, losses


def _assert_same(a, b, losses, rtol, atol, hits_slack=0):
    (params, state), (ref_params, ref_state) = a, b
    for p, w in zip(params, ref_params):
        assert p.shape == w.shape and p.dtype == w.dtype
        np.testing.assert_allclose(np.asarray(p), np.asarray(w), rtol=rtol, atol=atol)
    # The optimizer state carries on as the reference's does (resuming needs it).
    for g, w in zip(state, ref_state):
        if isinstance(w, list):
            for x, y in zip(g, w):
                np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=10 * rtol,
                                           atol=atol)
        else:
            assert isinstance(g, int) and g == int(w)
    for (loss, hits), (ref_loss, ref_hits) in losses:
        np.testing.assert_allclose(float(loss), float(ref_loss), rtol=rtol)
        assert (hits is None) == (ref_hits is None)
        if hits is not None:
            assert abs(float(hits) - float(ref_hits)) <= hits_slack


@pytest.mark.parametrize("optimizer, options", OPTIMIZERS)
@pytest.mark.parametrize("hidden, output, loss, k", NETWORKS)
def test_equals_reference_float64(hidden, output, loss, k, optimizer, options):
    model, X, Y, multiclass = _problem(hidden, output, loss, k, "float64")
    opt = get_optimizer(optimizer, 0.05, **options)
    a, b, losses = _run_both(model, X, Y, multiclass, opt, make_plan("batch", N), 4)
    _assert_same(a, b, losses, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("hidden, output, loss, k", NETWORKS[:3])
def test_equals_reference_float32(hidden, output, loss, k, reduction, optimizer):
    model, X, Y, multiclass = _problem(hidden, output, loss, k, "float32", reduction)
    opt = get_optimizer(optimizer, 0.01)
    a, b, losses = _run_both(model, X, Y, multiclass, opt, make_plan("batch", N), 3)
    assert all(p.dtype == np.float32 for p in a[0])
    _assert_same(a, b, losses, rtol=2e-4, atol=1e-5, hits_slack=1)


@pytest.mark.parametrize("chunk", [1, 7, N - 1, N, 4096])
def test_any_chunk_size(chunk):
    """One-row chunks, a tail of one row, exactly one chunk, and a chunk above N."""
    model, X, Y, multiclass = _problem("tanh", "softmax", "cross_entropy", 3, "float64")
    opt = get_optimizer("adam", 0.05)
    a, b, losses = _run_both(model, X, Y, multiclass, opt, make_plan("batch", N), 2, chunk)
    _assert_same(a, b, losses, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-9), ("float32", 2e-4)])
def test_shuffled_full_batch_gathers_by_the_order(dtype, rtol):
    """A mini-batch plan whose batch is all N rows, shuffled: each chunk takes
    its rows through the order, as the reference loop's do."""
    model, X, Y, multiclass = _problem("relu", "sigmoid", "bce", 1, dtype)
    plan = make_plan("minibatch", N, N, shuffle=True)
    assert plan.shuffle and plan.batch_size == N
    opt = get_optimizer("momentum", 0.05)
    a, b, losses = _run_both(model, X, Y, multiclass, opt, plan, 3)
    _assert_same(a, b, losses, rtol=rtol, atol=rtol * 1e-3,
                 hits_slack=0 if dtype == "float64" else 1)


def test_supports_only_batch_mode_and_states_its_launches():
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "bce", 1, "float32")
    opt = get_optimizer("sgd", 0.1)
    ex = jax_batch.JaxBatch()
    assert ex.name == "jax-batch"
    why = ex.supports(_task(model, X, Y, multiclass, opt, make_plan("minibatch", N, 16), CHUNK))
    assert isinstance(why, str) and "not batch mode" in why
    assert ex.supports(_task(model, X, Y, multiclass, opt, make_plan("sgd", N), CHUNK))
    batch = _task(model, X, Y, multiclass, opt, make_plan("batch", N), CHUNK)
    assert ex.supports(batch) is None
    assert ex.launches(batch) == {"per_step": 0, "per_epoch": 1}
    shuffled = _task(model, X, Y, multiclass, opt, make_plan("minibatch", N, N), CHUNK)
    assert ex.launches(shuffled) == {"per_step": 0, "per_epoch": 2}


def test_one_compilation_serves_fits_and_epochs_and_leaves_inputs_alone():
    jax_batch._COMPILED.clear()
    results = []
    for _ in range(2):
        model, X, Y, multiclass = _problem("sigmoid", "sigmoid", "mse", 1, "float64")
        opt = get_optimizer("adam", 0.05)
        task = _task(model, X, Y, multiclass, opt, make_plan("batch", N), CHUNK)
        epoch = jax_batch.JaxBatch().make_epoch(task)
        params = model.flat_params
        before = [np.asarray(p).copy() for p in params]
        state = opt.init(params)
        first = state
        for _ in range(3):
            params, state, loss, _ = epoch(params, state, None)
        # Adam's count goes back to the host as an int (no recompilation).
        assert state.count == 3 and isinstance(state.count, int)
        # Nothing the caller handed in was donated or changed.
        for p, was in zip(model.flat_params, before):
            np.testing.assert_array_equal(np.asarray(p), was)
        assert all(not m.is_deleted() for m in first.mu + first.nu)
        results.append([np.asarray(p) for p in params])
    assert len(jax_batch._COMPILED) == 1
    compiled = next(iter(jax_batch._COMPILED.values()))
    assert compiled._cache_size() == 1  # three epochs, two fits: traced and compiled once
    for x, y in zip(*results):
        np.testing.assert_array_equal(x, y)


def test_fit_with_a_forced_executor_when_wired():
    """Through MLP.fit once the JAX backend lists the executor (jax/__init__.py)."""
    from nnbackend.engine import EXECUTORS

    if "jax-batch" not in EXECUTORS:
        pytest.skip("jax-batch is not listed by the JAX backend's executors() yet")
    X, y = _host_data("sigmoid", "bce", 1, n=N)
    fits = {}
    for executor in ("reference", "jax-batch"):
        model = nb.MLP([5, 7, 1], hidden_activation="tanh", loss="bce", backend="jax",
                       dtype="float64", seed=1)
        hist = model.fit(X, y, mode="batch", epochs=5, lr=0.1, optimizer="adam",
                         chunk_size=CHUNK, executor=executor)
        fits[executor] = (hist, [np.asarray(a) for pair in model.params for a in pair])
    (ref_hist, ref), (hist, got) = fits["reference"], fits["jax-batch"]
    np.testing.assert_allclose(hist.loss, ref_hist.loss, rtol=1e-9)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_describe_says_how_it_chunks():
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "bce", 1, "float32")
    opt = get_optimizer("sgd", 0.1)
    ex = jax_batch.JaxBatch()
    text = ex.describe(_task(model, X, Y, multiclass, opt, make_plan("batch", N), CHUNK))
    assert "6 chunks of 16 rows and one of 5" in text and "one jitted dispatch" in text
    text = ex.describe(_task(model, X, Y, multiclass, opt, make_plan("minibatch", N, N), 4096))
    assert f"1 chunk of {N} rows" in text and "row order" in text


@pytest.mark.parametrize("gather", [False, True])
def test_memory_does_not_grow_with_n(gather):
    """XLA's temporaries are the chunk's, not N rows' (the data itself aside)."""
    temps = []
    for n in (2_000, 40_000):
        model = nb.MLP([5, 64, 1], backend="jax", dtype="float32", seed=0)
        X = model._features(np.zeros((n, 5)))
        Y = model._targets(np.zeros(n), n)
        opt = get_optimizer("adam", 0.1)
        task = _task(model, X, Y, False, opt, make_plan("batch", n), 64)
        params = model.flat_params
        args = (params, opt.init(params), X, Y)
        if gather:
            args += (jax.numpy.arange(n, dtype=model.backend.index_dtype()),)
        analysis = jax_batch._compile(task, gather).lower(*args).compile().memory_analysis()
        if analysis is None:
            pytest.skip("this JAX platform gives no memory analysis")
        temps.append(analysis.temp_size_in_bytes)
    # 38,000 more rows of 64 float32 activations would be 9.7 MB more.
    assert temps[1] <= temps[0] + 64 * 1024, temps


@pytest.mark.parametrize("mode", ["minibatch", "batch"])
def test_compiled_float32_adam_keeps_float32s_precision(mode):
    # The count is traced there (a float32 computation without x64): Adam's
    # bias corrections, 1 - b**count with b rounded to float32, were off by
    # ~1e-5 relative, always the same way, and drifted 10-40x past rounding.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(float)
    out = {}
    for executor in ("reference", "auto"):
        model = nb.MLP([4, 6, 1], loss="bce", backend="jax", device="cpu", dtype="float32",
                       seed=1)
        hist = model.fit(X, y, mode=mode, epochs=3, batch_size=16, optimizer="adam", lr=0.05,
                         seed=3, executor=executor)
        out[executor] = ([np.asarray(a) for pair in model.params for a in pair], hist.executor)
    assert out["auto"][1] == ("jax-batch" if mode == "batch" else "jax-scan")
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(out["auto"][0], out["reference"][0]))
    assert worst < 5e-7, worst


@pytest.mark.parametrize("mode", ["minibatch", "batch"])
def test_a_step_count_past_int32_is_refused_by_name_or_runs_under_x64(mode):
    # Without x64, jax holds the counts as int32: past 2**31 - 1 it raised an
    # OverflowError from inside jax.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    y = (X[:, 0] > 0).astype(float)
    model = nb.MLP([4, 6, 1], loss="bce", backend="jax", device="cpu", dtype="float32",
                   seed=1)
    model.fit(X, y, mode=mode, epochs=1, optimizer="adam", lr=0.01, batch_size=16)
    model.train_state.state_scalars["count"] = 2**31 - 1
    model.train_state.steps_done = 2**31 - 1
    kw = dict(mode=mode, epochs=1, optimizer="adam", lr=0.01, batch_size=16, resume=True)
    if jax.config.jax_enable_x64:  # (another test's float64 jax model turned it on)
        assert model.fit(X, y, **kw).executor.startswith("jax-")
    else:
        with pytest.raises(ValueError, match=r"step count reaches 2,147,48\d,\d+, past 2\*\*31 - 1"):
            model.fit(X, y, **kw)
