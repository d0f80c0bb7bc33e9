"""Tests from the mutation audit of the JAX backend (2026-12-07k): behaviours of
``nnbackend/backends/jax/{__init__,batch,scan}.py`` that no other test pinned
down. Each test names the mutants it kills (see the audit's report) and what
went wrong under them."""

import collections
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="needs jax (the 'jax' extra)")
import jax.numpy as jnp  # noqa: E402

import nnbackend as nb  # noqa: E402
from nnbackend.backends.jax import JaxBackend  # noqa: E402
from nnbackend.backends.jax import batch as jax_batch  # noqa: E402
from nnbackend.backends.jax import scan as jax_scan  # noqa: E402
from nnbackend.data import host_rng, make_plan  # noqa: E402
from nnbackend.engine import EpochTask, loss_and_grads_rows, run_epoch  # noqa: E402
from nnbackend.optim import get_optimizer, l2_penalty, on_namespace, scheduled  # noqa: E402
from conftest import child_pythonpath  # noqa: E402

ROOT = Path(__file__).parent.parent

N = 61  # not a multiple of the batch or chunk sizes below


def _problem(n=N, dtype="float32", output="sigmoid", loss="bce"):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] > 0).astype(float)
    model = nb.MLP([3, 4, 1], output_activation=output, loss=loss, backend="jax", dtype=dtype,
                   seed=1)
    return model, model._features(X), model._targets(y, n)


def _task(model, X, Y, opt, plan, chunk=16, multiclass=False, **kw):
    return EpochTask(model.backend, model.spec, opt, plan, X, Y, chunk, multiclass,
                     model.backend.index_dtype(), model.layer_sizes, **kw)


def _reference(model, X, Y, opt, plan, chunk, multiclass):
    params = model.flat_params
    return run_epoch(params, opt.init(params), opt, model.spec, X, Y, plan, host_rng(3),
                     model.backend.index_dtype(), chunk, multiclass, xp=model.backend.xp)


# ---------------------------------------------------------------- __init__.py

def test_devices_that_are_no_device_here_are_refused_by_name():
    # J08: a bool was read as a device index (str(True) -> "True", a platform
    # jax lacks: BackendUnavailableError), not refused as a bad device.
    with pytest.raises(ValueError, match="bad device True"):
        nb.get_backend("jax", True)
    # J13: the index one past the last device passed the range check and
    # failed with an IndexError from the device list.
    past = f"cpu:{len(jax.devices('cpu'))}"
    with pytest.raises(nb.BackendUnavailableError, match=f"no device '{past}'"):
        nb.get_backend("jax", past)
    # J10: "1:0" (a number before the colon) was read as jax.devices()[1],
    # its ":0" dropped; it names no platform.
    with pytest.raises(ValueError, match="bad device '1:0': JAX has no platform '1'"):
        nb.get_backend("jax", "1:0")


def test_a_platform_named_as_jaxs_default_device_gives_that_platforms_first_device():
    # J05, J06: jax_default_device naming a platform ("cpu" on a GPU machine,
    # where jax.devices() lists the GPUs) gave jax.devices()[0], a GPU. A stub
    # of jax stands in for a machine of two platforms (this one has one).
    from nnbackend.backends.jax import _default_device

    listed = {None: ["gpu0", "gpu1"], "cpu": ["cpu0", "cpu1"]}

    def devices(platform=None):
        if platform not in listed:
            raise RuntimeError(f"Unknown backend {platform}")
        return listed[platform]

    config = types.SimpleNamespace(jax_default_device="cpu")
    stub = types.SimpleNamespace(config=config, Device=jax.Device, devices=devices)
    assert _default_device(stub) == "cpu0"
    config.jax_default_device = "tpu"  # a platform this process lacks: jax's default
    assert _default_device(stub) == "gpu0"
    config.jax_default_device = None
    assert _default_device(stub) == "gpu0"


def test_only_jax_arrays_have_the_jax_backend():
    # J16: JaxBackend.of_array claimed NumPy arrays and lists (backend_of asks
    # numpy first, so only a direct call saw it).
    assert JaxBackend.of_array(np.ones(3)) is None
    assert JaxBackend.of_array([1.0, 2.0]) is None
    assert JaxBackend.of_array(jnp.ones(3)).name == "jax"


def test_an_arrays_backend_is_on_the_arrays_device():
    # J20: the backend of a JAX array on a second device was made on JAX's
    # default device (its first): the model moved the data back. (A child with
    # two CPU devices: this process has one.)
    code = textwrap.dedent("""
        import jax, jax.numpy as jnp
        from nnbackend.backends.jax import JaxBackend
        X = jax.device_put(jnp.ones((4, 3)), jax.devices()[1])
        print(JaxBackend.of_array(X).device == jax.devices()[1])
        """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNBACKEND")}
    env.update(PYTHONPATH=child_pythonpath(ROOT), JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True"]


def test_compiled_traces_once_for_arrays_of_one_shape():
    # J22: backend.compiled returned the function itself: every call ran it
    # again, operation by operation (the fit's figures), instead of one jit.
    calls = []

    def f(x):
        calls.append(1)
        return x * 2.0

    g = nb.get_backend("jax").compiled(f)
    for _ in range(3):
        np.testing.assert_allclose(np.asarray(g(jnp.ones(4))), 2.0)
    assert len(calls) == 1


def test_a_cpu_backend_has_no_gpu_and_runs_full_float32(x64_off):
    # J14: "cpu" (no index) took the platform's device 1, not 0.
    b = nb.get_backend("jax", "cpu")
    assert b.device == jax.devices("cpu")[0]
    # J29: the CPU was listed among the GPUs.
    assert b.gpus() == []
    # J30: a CPU device was named as an accelerator ("cpu").
    assert b.accelerator_name() is None
    assert not b.is_gpu()
    # J28 (`or` -> `and`): on a CPU, a float32 fit asked for TF32 set JAX's
    # process-wide matmul precision and said "tf32"; a CPU has no TF32.
    with b.matmul_precision("tf32", jnp.float32) as now:
        assert now == "highest"
        assert jax.config.jax_default_matmul_precision is None


def test_free_memory_reads_xlas_pool_and_says_none_without_one():
    # J32: a device whose memory_stats() has no "bytes_limit" (some plugins)
    # raised a KeyError instead of "not known" (None). (A stub device: a CPU
    # device here gives no stats at all.)
    def on(stats):
        device = types.SimpleNamespace(platform="gpu", device_kind="Stub GPU",
                                       memory_stats=lambda: stats)
        return JaxBackend("jax", jnp, device)

    assert on(None).free_memory() is None
    assert on({"bytes_in_use": 5}).free_memory() is None
    assert on({"bytes_limit": 100, "bytes_in_use": 30}).free_memory() == 70
    assert on({"bytes_limit": 100}).free_memory() == 100
    assert on({}).accelerator_name() == "Stub GPU" and on({}).is_gpu()


def test_without_x64_dtypes_are_probed_and_summed_without_switching_it_on(x64_off):
    b = nb.get_backend("jax", "cpu")
    # J25: without x64, float64 was not offered (x64 is switched on when asked).
    assert b.float_dtypes() == ("float32", "float64")
    # J26: without x64 the wide dtype was float64: each sum a float32 one, warned.
    assert b.wide_dtype() is None
    # J27: wide_scope did not switch x64 on for its block.
    with b.wide_scope():
        assert jax.config.jax_enable_x64
        assert b.wide_dtype() == jnp.float64
    assert not jax.config.jax_enable_x64
    # J23: pricing a float64 fit switched x64 on for the whole process.
    assert b.probe_array(np.ones(3), "float64").dtype == jnp.float64
    assert not jax.config.jax_enable_x64
    # J24 (`or` -> `and`): a float32 probe without x64 came back float64.
    assert b.probe_array(np.ones(3), "float32").dtype == jnp.float32


# ---------------------------------------------------------------- batch.py

def test_batch_epochs_with_and_without_an_order_are_compiled_apart():
    # B09: the row order's presence was not in the cache key: the epoch without
    # an order got the gathering executable (or the reverse) and failed.
    jax_batch._COMPILED.clear()
    model, X, Y = _problem()
    opt = on_namespace(get_optimizer("sgd", 0.1), jnp)
    plan = make_plan("minibatch", N, N, shuffle=True)
    epoch = jax_batch.JaxBatch().make_epoch(_task(model, X, Y, opt, plan))
    params = model.flat_params
    _, _, plain, _ = epoch(params, opt.init(params), None)
    _, _, ordered, _ = epoch(params, opt.init(params), np.arange(N)[::-1])
    np.testing.assert_allclose(float(ordered), float(plain), rtol=1e-5)
    assert len(jax_batch._COMPILED) == 2


def test_batch_epochs_are_compiled_per_rows_chunk_size_counting_and_loss():
    # B10: the chunk size was not in the key: a task of 7-row chunks ran the
    # 16-row one's executable. B11: N was not in the key: a task of 40 rows ran
    # the 61-row one's loop over rows it does not have. B12: whether the epoch
    # counts correct rows was not: a counting fit after a benchmark's (which
    # counts none) got no count. B13: the task's loss_and_grads was not: a task
    # of another loss function ran the first one's.
    jax_batch._COMPILED.clear()
    opt = on_namespace(get_optimizer("sgd", 0.1), jnp)
    model, X, Y = _problem()
    ex = jax_batch.JaxBatch()

    small, Xs, Ys = _problem(n=40)

    def run(task):
        params = model.flat_params if task.plan.n_samples == N else small.flat_params
        return ex.make_epoch(task)(params, opt.init(params), None)

    run(_task(model, X, Y, opt, make_plan("batch", N), 16, multiclass=None))
    cases = [(model, X, Y, N, 16), (model, X, Y, N, 7), (small, Xs, Ys, 40, 16)]
    for m, x, y, n, chunk in cases:
        got = run(_task(m, x, y, opt, make_plan("batch", n), chunk))
        ref = _reference(m, x, y, opt, make_plan("batch", n), chunk, False)
        np.testing.assert_allclose(float(got[2]), float(ref[2]), rtol=1e-5)
        # (float32: a compiled prediction may round to the other side of 0.5)
        assert got[3] is not None and abs(int(got[3]) - int(ref[3])) <= 1
    assert len(jax_batch._COMPILED) == 4

    def doubled(*args, **kwargs):
        loss, grads, correct = loss_and_grads_rows(*args, **kwargs)
        return 2 * loss, grads, correct

    twice = run(_task(model, X, Y, opt, make_plan("batch", N), 16, loss_and_grads=doubled))
    once = run(_task(model, X, Y, opt, make_plan("batch", N), 16))
    np.testing.assert_allclose(float(twice[2]), 2 * float(once[2]), rtol=1e-5)


def test_a_batch_order_of_the_wrong_length_is_refused():
    # B16: an order of N - 1 rows ran (dynamic_slice clamps: a row counted twice).
    model, X, Y = _problem()
    opt = on_namespace(get_optimizer("sgd", 0.1), jnp)
    epoch = jax_batch.JaxBatch().make_epoch(
        _task(model, X, Y, opt, make_plan("minibatch", N, N, shuffle=True)))
    params = model.flat_params
    with pytest.raises(ValueError, match=f"order must hold the {N} row indices"):
        epoch(params, opt.init(params), np.arange(N - 1))


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_batch_epoch_donates_its_own_state_only(shuffle):
    # B24 (with an order), B29 (without): the optimizer state was not donated:
    # every epoch allocated a new state beside the old one.
    model, X, Y = _problem()
    opt = on_namespace(get_optimizer("adam", 0.01), jnp)
    plan = make_plan("minibatch", N, N, shuffle=True) if shuffle else make_plan("batch", N)
    epoch = jax_batch.JaxBatch().make_epoch(_task(model, X, Y, opt, plan))
    order = np.arange(N) if shuffle else None
    params = model.flat_params
    state0 = opt.init(params)
    params1, state1, _, _ = epoch(params, state0, order)
    assert not any(a.is_deleted() for a in state0.mu + params)
    epoch(params1, state1, order)
    assert all(a.is_deleted() for a in state1.mu + state1.nu)
    assert not any(a.is_deleted() for a in params1)


# ---------------------------------------------------------------- scan.py

def test_the_compilation_cache_keeps_the_least_recently_used_out(monkeypatch):
    # S13: a hit did not move its entry to the end (first in, first out).
    # S14: the cache held one entry fewer than its size. S15: the entry just
    # made was the one thrown out. S12: None keys (a caller's own optimizer)
    # were cached: the next such optimizer got the first one's compilation.
    monkeypatch.setattr(jax_scan, "_CACHE_SIZE", 2)
    cache, made = collections.OrderedDict(), []

    def get(key):
        return jax_scan.cached(cache, key, lambda: made.append(key) or key.upper())

    assert get("a") == "A" and get("b") == "B" and get("a") == "A"
    assert list(cache) == ["b", "a"]
    assert get("c") == "C"
    assert list(cache) == ["a", "c"] and made == ["a", "b", "c"]
    assert jax_scan.cached(cache, None, lambda: 1) == 1
    assert jax_scan.cached(cache, None, lambda: 2) == 2
    assert None not in cache


def test_the_scan_takes_batches_as_large_as_a_chunk():
    # S09: a batch of exactly chunk_size rows was refused (only larger ones must be).
    model, X, Y = _problem()
    opt = on_namespace(get_optimizer("sgd", 0.1), jnp)
    ex = jax_scan.JaxScan()
    task = _task(model, X, Y, opt, make_plan("minibatch", N, 16), chunk=16)
    assert ex.supports(task) is None
    # S11: the epoch's launches left out the order's transfer (one, not two).
    assert ex.launches(task) == {"per_step": 0, "per_epoch": 2}
    assert "exceed chunk_size=15" in ex.supports(
        _task(model, X, Y, opt, make_plan("minibatch", N, 16), chunk=15))


def test_scan_epochs_are_compiled_per_counting(monkeypatch):
    # S18: whether the epoch counts correct rows was not in the key: a counting
    # fit after a benchmark's epochs (which count none) got no count.
    jax_scan._COMPILED.clear()
    model, X, Y = _problem()
    opt = on_namespace(get_optimizer("sgd", 0.1), jnp)
    plan = make_plan("minibatch", N, 16, shuffle=False)
    params = model.flat_params
    for multiclass in (None, False):
        epoch = jax_scan.JaxScan().make_epoch(_task(model, X, Y, opt, plan, 16, multiclass))
        *_, correct = epoch(params, opt.init(params), None)
    ref = _reference(model, X, Y, opt, plan, 16, False)
    assert correct is not None and abs(int(correct) - int(ref[3])) <= 1  # (float32 rounding)


def test_a_step_count_the_epoch_would_carry_past_int32_is_refused(x64_off):
    # S22: only one step was added to the count before the check: an epoch of
    # several steps from 2**31 - 3 passed it, and overflowed inside jax.
    model, X, Y = _problem()
    opt = on_namespace(get_optimizer("adam", 0.01), jnp)
    epoch = jax_scan.JaxScan().make_epoch(_task(model, X, Y, opt, make_plan("minibatch", N, 16)))
    params = model.flat_params
    state = opt.init(params)._replace(count=2**31 - 3)
    with pytest.raises(ValueError, match=r"step count reaches 2,147,483,649, past 2\*\*31 - 1"):
        epoch(params, state, None)


Inner = collections.namedtuple("Inner", ["count", "mu"])
Outer = collections.namedtuple("Outer", ["wrapped", "count"])


def test_step_counts_are_checked_and_made_host_ints_at_any_depth(x64_off):
    # S28: a wrapper's state (the wrapped one's in a list) was not searched for
    # counts: a scheduled Adam past int32 was not refused by name.
    deep = Outer([Inner(2**31 - 1, [])], 0)
    with pytest.raises(ValueError, match="step count reaches"):
        jax_scan.check_counts(deep, 1)
    # S34: a count held as a device scalar (a resumed state) was left one:
    # the next epochs compiled again for it. S35: not inside a wrapper's list.
    host = jax_scan._host_counts(Outer([Inner(jnp.asarray(5, jnp.int32), [])],
                                       jnp.asarray(7, jnp.int32)))
    assert host.count == 7 and type(host.count) is int
    assert host.wrapped[0].count == 5 and type(host.wrapped[0].count) is int


def test_with_x64_a_count_past_int32_is_not_refused(x64_on):
    # S26: with x64 on (counts int64), a count past 2**31 - 1 was refused.
    jax_scan.check_counts(Inner(2**31 - 1, []), 10)


def test_only_scalar_integer_count_fields_are_step_counts():
    # S30: any integer field was taken for a step count; S31: a bool; S32: an
    # integer array of counts; S33: a float 0-d array (a caller's own state).
    count = jax_scan._is_count
    assert count("count", 3) and count("count", jnp.asarray(3, jnp.int32))
    assert not count("steps", 3)
    assert not count("count", True)
    assert not count("count", jnp.zeros(2, jnp.int32))
    assert not count("count", jnp.asarray(1.5, jnp.float32))


def test_a_schedule_inside_a_penalty_that_jax_cannot_trace_is_found():
    # S02: only the outermost wrapper was looked at: fit's l2_penalty around a
    # schedule (alpha > 0 with lr_schedule) hid an untraceable schedule.
    opt = l2_penalty(scheduled(get_optimizer("sgd", 0.1), lambda t: 1.0 if t < 10 else 0.1),
                     0.01)
    why = jax_scan.untraceable_schedule(opt)
    assert why and "a learning-rate schedule of the caller's that jax cannot trace" in why
    fine = l2_penalty(scheduled(get_optimizer("sgd", 0.1), lambda t: 1.0 / (1.0 + t)), 0.01)
    assert jax_scan.untraceable_schedule(fine) is None


def test_an_unshuffled_scan_epoch_under_x64_reuses_the_shuffled_ones_compilation(x64_on):
    # S20: without order_dtype, the unshuffled epoch's row order was int64 under
    # x64 (the shuffled ones' int32): compiled a second time, with other bits.
    jax_scan._COMPILED.clear()
    model, X, Y = _problem()
    opt = on_namespace(get_optimizer("sgd", 0.1), jnp)
    epoch = jax_scan.JaxScan().make_epoch(_task(model, X, Y, opt, make_plan("minibatch", N, 16)))
    params = model.flat_params
    epoch(params, opt.init(params), np.arange(N))
    epoch(params, opt.init(params), None)
    assert next(iter(jax_scan._COMPILED.values()))._cache_size() == 1
