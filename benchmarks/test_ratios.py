"""Issue 5's speed targets as ratios, each pair timed interleaved in one run.

``test_epochs`` times one implementation's cases after another's, so a slow
spell of a shared machine lands on one side of a comparison. Here the two
sides of each target alternate epoch by epoch (A, B, A, B, ...), and the
ratio is of their medians: a slow spell slows both.

Each case records ``kind="ratio"`` with both medians and minima, the ratio
``a / b`` of the medians, the target the issue sets and whether it was met;
``nnbackend bench`` puts them in a table. Nothing here fails on a missed
target (the machine's noise is not a bug); the report says it.

NNBACKEND_BENCH_RATIO_ROUNDS  epochs of each side (default 9; 1 under --benchmark-disable)
"""

import os
import statistics
import time

import pytest

import nnbackend as nb
from nnbackend.bench import workloads as W

BATCH_SIZE = 64

# (a, b, mode, N, target, sense): the target holds when a/b <= target
# ("max") or a/b >= target ("min"); a and b are (implementation, where).
CASES = [
    (("nnbackend", "numpy"), ("numpy-seed", "numpy"), "sgd", 2_000, 1.2, "max"),
    (("nnbackend", "numpy"), ("numpy-seed", "numpy"), "minibatch", 100_000, 1.1, "max"),
    (("nnbackend", "numpy"), ("numpy-seed", "numpy"), "batch", 1_000_000, 0.5, "max"),
    (("torch-eager", "cpu"), ("nnbackend", "numpy"), "sgd", 2_000, 8.0, "min"),
    (("nnbackend", "numpy"), ("torch-eager", "cpu"), "batch", 1_000_000, 1.0, "max"),
    (("torch-eager", "cpu"), ("nnbackend", "torch"), "sgd", 2_000, 2.0, "min"),
    (("nnbackend", "jax"), ("jax-scan-hand", "cpu"), "sgd", 10_000, 2.0, "max"),
    (("nnbackend", "jax"), ("jax-scan-hand", "cpu"), "minibatch", 1_000, 2.0, "max"),
    (("nnbackend", "jax"), ("jax-scan-hand", "cpu"), "minibatch", 100_000, 2.0, "max"),
    (("jax-jit-step", "cpu"), ("nnbackend", "jax"), "sgd", 2_000, 50.0, "min"),
    # The GPU: fused CuPy epochs against eager CuPy and against NumPy (no target set).
    (("nnbackend-reference", "cupy"), ("nnbackend", "cupy"), "sgd", 10_000, None, None),
    (("nnbackend", "numpy"), ("nnbackend", "cupy"), "sgd", 10_000, None, None),
    (("nnbackend-reference", "cupy"), ("nnbackend", "cupy"), "minibatch", 100_000, None, None),
]


def _make(implementation, where, mode, n_samples):
    try:
        if implementation in ("nnbackend", "nnbackend-reference"):
            executor = "reference" if implementation == "nnbackend-reference" else "auto"
            return W.nnbackend_epoch(where, None, mode, n_samples, BATCH_SIZE, executor=executor)
        if implementation == "numpy-seed":
            return W.numpy_seed_epoch(mode, n_samples, BATCH_SIZE)
        if implementation == "torch-eager":
            pytest.importorskip("torch")
            return W.torch_eager_epoch(mode, n_samples, BATCH_SIZE, device=where)
        pytest.importorskip("jax")
        make = W.jax_scan_epoch if implementation == "jax-scan-hand" else W.jax_step_loop_epoch
        return make(mode, n_samples, BATCH_SIZE)
    except nb.BackendUnavailableError as exc:
        pytest.skip(str(exc))


def _id(case):
    (ia, wa), (ib, wb), mode, n, _, _ = case
    return f"{ia}-{wa}-vs-{ib}-{wb}-{mode}-{n}"


@pytest.mark.benchmark(group="ratio")
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_ratio(benchmark, case):
    (impl_a, where_a), (impl_b, where_b), mode, n_samples, target, sense = case
    smoke = benchmark.disabled
    if smoke:
        n_samples = 300
    rounds = 1 if smoke else int(os.environ.get("NNBACKEND_BENCH_RATIO_ROUNDS", "9"))
    step_a, info_a = _make(impl_a, where_a, mode, n_samples)
    step_b, info_b = _make(impl_b, where_b, mode, n_samples)
    # Warm-up: compilation, caches, the first epoch's allocations.
    loss_a, loss_b = step_a(), step_b()
    assert loss_a == loss_a and loss_b == loss_b, "a warm-up epoch's loss is NaN"
    times_a, times_b = [], []

    def pair():
        for step, times in ((step_a, times_a), (step_b, times_b)):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)

    benchmark.pedantic(pair, rounds=rounds, iterations=1)
    assert len(times_a) == len(times_b) == rounds
    ratio = statistics.median(times_a) / statistics.median(times_b)
    met = None if target is None else (ratio <= target if sense == "max" else ratio >= target)
    steps = -(-n_samples // W.batch_size_of(mode, BATCH_SIZE, n_samples))
    benchmark.extra_info.update(
        kind="ratio", mode=mode, n_samples=n_samples, steps=steps, rounds=rounds,
        label=f"{info_a['label']} / {info_b['label']}",
        label_a=info_a["label"], label_b=info_b["label"],
        device_a=info_a["device"], device_b=info_b["device"],
        median_a=statistics.median(times_a), median_b=statistics.median(times_b),
        min_a=min(times_a), min_b=min(times_b), ratio=ratio,
        target=target, sense=sense, met=met,
    )
