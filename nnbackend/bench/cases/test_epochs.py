"""One training epoch per model, implementation, backend, mode and N; and time to a target loss.

Run through ``nnbackend bench`` (which writes the report), or by hand:
``pytest benchmarks --benchmark-json=out.json``. CI runs it with
``--benchmark-disable`` at a tiny size so the suite never rots.
"""

import contextlib
import functools
import os
import time

import pytest

import nnbackend as nb
from nnbackend.bench import workloads as W
from nnbackend.bench.models import label_for, workload
from nnbackend.bench.stability import MIN_SPREAD_ROUNDS, load_average, rerun_until_stable, \
    session_budget

BATCH_SIZE = 64  # the small model's mini-batch, for the time-to-target runs
# Rounds are chosen so a benchmark takes about this long after its warm-up
# (NNBACKEND_BENCH_SECONDS; gpu_check.sh lowers it to fit a device lease).
SECONDS_PER_BENCHMARK = float(os.environ.get("NNBACKEND_BENCH_SECONDS", "2.0"))
MAX_ROUNDS = max(1, int(os.environ.get("NNBACKEND_BENCH_MAX_ROUNDS", "10")))
# At least this many rounds, however slow the epoch: fewer give no quartiles,
# so no spread (NNBACKEND_BENCH_MIN_ROUNDS; 1 to time a slow case once).
MIN_ROUNDS = max(1, min(MAX_ROUNDS, int(os.environ.get("NNBACKEND_BENCH_MIN_ROUNDS",
                                                       str(MIN_SPREAD_ROUNDS)))))
# The time-to-target runs stop at this mean ½·squared error.
TARGET_LOSS = 0.0075
# The float32 matmuls' precision for every case, peers included (None: as each library is set).
PRECISION = os.environ.get("NNBACKEND_BENCH_PRECISION") or None
# Short epochs are timed as a loop runs them, several to a call with their
# losses read once at its end, not each waiting for its own read: up to
# NNBACKEND_BENCH_WINDOW epochs a call (1: every epoch read alone), as many
# as fill NNBACKEND_BENCH_CALL_SECONDS, and for nnbackend no more than a long
# fit with no callback runs between two reads (its window: 8, or 64 where the
# executor runs several epochs in one call).
WINDOW = max(1, int(os.environ.get("NNBACKEND_BENCH_WINDOW", "64")))
CALL_SECONDS = float(os.environ.get("NNBACKEND_BENCH_CALL_SECONDS", "0.02"))
# A first epoch longer than CALL_SECONDS is followed by a second, which sizes
# the call (the first compiles: JAX's XLA takes seconds on a CPU too) and, where
# a call is one epoch, counts as the first round. A first epoch of this long or
# more on a CPU is followed by one only where the rounds are more than one (so
# that the second epoch costs nothing where it is as slow): with one round
# (NNBACKEND_BENCH_MIN_ROUNDS=1, to time a slow case once) it would be an epoch more.
ESTIMATE_BELOW = 2.0


def epochs_per_call(step, first):
    """Epochs each timed call runs: ``step``'s window (see :data:`WINDOW`) for an
    epoch of ``first`` seconds; 1 where ``step`` has no ``window``."""
    if not hasattr(step, "window"):
        return 1
    k = min(WINDOW, getattr(step, "fit_window", WINDOW), int(CALL_SECONDS / max(first, 1e-9)))
    return max(1, k)


def timed_call(step, k):
    """What one timed round runs: an epoch (``k == 1``) or a window of ``k``."""
    return step if k == 1 else functools.partial(step.window, k)


def _make(model, implementation, where, mode, n_samples):
    try:
        return W.make_epoch(implementation, where, mode, n_samples, model=model,
                            precision=PRECISION)
    except (nb.BackendUnavailableError, ImportError) as exc:
        pytest.skip(str(exc))


@pytest.mark.benchmark(group="epoch")
def test_epoch(benchmark, model, implementation, where, mode, n_samples):
    made = time.perf_counter()
    step, info = _make(model, implementation, where, mode, n_samples)
    # nnbackend's epochs set the fit's BLAS threads once for all the rounds, as
    # a fit sets them once (not a few microseconds a round).
    with getattr(step, "hold", contextlib.nullcontext)():
        _time_epochs(benchmark, step, info, made, model, mode, n_samples)


def _time_epochs(benchmark, step, info, made, model, mode, n_samples):
    size = W.batch_size_of(mode, workload(model).batch_size, n_samples)
    steps = -(-n_samples // size)
    # Warm-up outside the timing: context creation, kernel compilation, caches.
    start = time.perf_counter()
    loss = step()
    first = time.perf_counter() - start
    assert loss == loss, "the warm-up epoch's loss is NaN"
    epoch = first
    estimate = None  # the second epoch's time, where it ran
    # A first epoch may be seconds of compilation over a millisecond epoch (on a
    # GPU; JAX's on a CPU too): estimate wherever the estimate costs nothing more
    # for a slow epoch, and always on a GPU (every GPU epoch of the plan is short).
    if first > CALL_SECONDS and hasattr(step, "window") and (
            first < ESTIMATE_BELOW or info.get("gpu") or MIN_ROUNDS > 1):
        # The first epoch's time may be mostly compilation: the next one's is
        # the epoch's own.
        again = time.perf_counter()
        step()
        epoch = estimate = time.perf_counter() - again
    k = epochs_per_call(step, epoch)
    call = timed_call(step, k)
    if k > 1:
        call()  # a window's own warm-up (CuPy's several-epoch kernel compiles here)
    rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(SECONDS_PER_BENCHMARK / max(k * epoch, 1e-6))))
    # Timed one epoch a call, the second epoch was a warm call like the rounds
    # (the same step, timed the same way): it counts as the first of them.
    counted = estimate is not None and k == 1 and rounds > 1
    # Where a case's time goes beside its rounds (data, model, compilation):
    # what a GPU check's budget is sized from; and how busy the machine was.
    # The statistics are of calls of ``epochs_per_call`` epochs each.
    benchmark.extra_info.update(info, kind="epoch", mode=mode, batch_size=size,
                                n_samples=n_samples, steps=steps, dtype="float32",
                                setup_seconds=start - made, warmup_seconds=first,
                                epochs_per_call=k, load_average=load_average(),
                                estimate_counted=counted)
    benchmark.pedantic(call, rounds=rounds - counted, iterations=1)
    if getattr(step, "reason_now", None) is not None:  # which executor ran, and how
        benchmark.extra_info["executor_reason"] = step.reason_now()
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        if counted:
            _restate(stats, [estimate, *stats.stats.data])
        _rerun_if_noisy(benchmark, stats, call, rounds)
        if benchmark.extra_info.get("reruns"):  # the rounds kept are a fresh set
            benchmark.extra_info["estimate_counted"] = False
        median = stats.stats.median / k
        benchmark.extra_info.update(seconds_per_epoch=median,
                                    samples_per_s=n_samples / median,
                                    seconds_per_step=median / steps)


def _timed_rounds(step, rounds):
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        out.append(time.perf_counter() - start)
    return out


def _rerun_if_noisy(benchmark, meta, step, rounds):
    """While the rounds' spread is too wide, time a fresh set (within the session's budget);
    the last set becomes the benchmark's statistics, every set is recorded."""
    # The extra time they may take: NNBACKEND_BENCH_RERUN_SECONDS per case,
    # NNBACKEND_BENCH_RERUN_TOTAL for the run.
    budget = session_budget()
    stats = meta.stats
    kept, record = rerun_until_stable(list(stats.data), lambda n: _timed_rounds(step, n),
                                      budget, rounds)
    if record["reruns"]:
        _restate(meta, kept)
    benchmark.extra_info.update(record, rerun_budget=[budget.per_case, budget.total])


def _restate(meta, times):
    """``meta``'s statistics made of ``times`` (seconds, one per round)."""
    fresh = type(meta.stats)()
    for t in times:
        fresh.update(t)
    meta.stats = fresh


@pytest.mark.benchmark(group="time_to_target")
def test_time_to_target(benchmark, target_case):
    backend, mode, n_samples, (budget_kind, budget) = target_case
    name, _, device = backend.partition(":")

    def make_step():
        try:
            return W.nnbackend_epoch(name, device or None, mode, n_samples, BATCH_SIZE,
                                     precision=PRECISION)[0]
        except nb.BackendUnavailableError as exc:
            pytest.skip(str(exc))

    try:
        b = nb.get_backend(name, device or None)
    except nb.BackendUnavailableError as exc:
        pytest.skip(str(exc))
    # Warm-up at the run's own N: an executor that compiles per shape (JAX's scan
    # over N / batch steps) would otherwise compile in the timed run's first epoch,
    # where CuPy's kernels, compiled per network, were warmed up already.
    warm, made = W.nnbackend_epoch(name, device or None, mode, n_samples, BATCH_SIZE,
                                   precision=PRECISION)
    warm()
    result = {}

    def run():
        # The same budget for every backend, in seconds or in epochs (not both).
        limit = {"max_seconds" if budget_kind == "seconds" else "max_epochs": budget}
        result.update(W.time_to_target(make_step, TARGET_LOSS, n_samples, **limit))

    benchmark.pedantic(run, rounds=1, iterations=1)
    size = W.batch_size_of(mode, BATCH_SIZE, n_samples)
    kind = W.device_kind(b)
    benchmark.extra_info.update(
        kind="time_to_target", implementation="nnbackend", model="small",
        label=label_for("nnbackend", kind, b.name), backend=b.name, device=b.device_name(),
        device_kind=kind, gpu=b.is_gpu(), mode=mode, batch_size=size,
        n_samples=n_samples, steps=-(-n_samples // size), dtype="float32",
        target_loss=TARGET_LOSS, lr=W.LR, load_average=load_average(),
        precision=made["precision"], **result,
    )
