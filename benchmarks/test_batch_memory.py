"""Batch mode's memory beyond the data, as N grows (issue 5, item 3).

One full-batch epoch of the benchmark network on NumPy, run the way every
fit runs it (``epoch_function``), under tracemalloc: the peak of what the
epoch allocates beyond the data already in memory. The exact gradient is
summed over chunks sized by the backend's budget (2048 rows here), so the
peak must not grow with N once N holds a full chunk; the one-shot
loop (numpy-seed) is measured beside it at the smaller sizes, where its
N-sized activations still fit.

NNBACKEND_BENCH_MEMORY_SIZES  comma list of N (default 1e4,1e5,1e6; 1e4,1e5 under --benchmark-disable)
"""

import os
import tracemalloc

import pytest

from nnbackend.bench import workloads as W

LIMIT_BYTES = 64 * 2**20


def _sizes(disabled):
    text = os.environ.get("NNBACKEND_BENCH_MEMORY_SIZES")
    if not text:
        # Every size holds several full chunks: an N below one chunk needs
        # less memory than a chunk, and would make a flat curve look steep.
        text = "1e4,1e5" if disabled else "1e4,1e5,1e6"
    return [int(float(s)) for s in text.split(",") if s.strip()]


def _peak_beyond_data(step):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        step()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.benchmark(group="memory")
def test_batch_epoch_memory_is_flat_in_n(benchmark):
    sizes = _sizes(benchmark.disabled)
    peaks, seed_peaks = {}, {}
    for n in sizes:
        step, _ = W.nnbackend_epoch("numpy", None, "batch", n)
        step()  # warm-up: the first epoch's one-time allocations (namespace caches)
        peaks[n] = _peak_beyond_data(step)
        if n <= 100_000:
            seed_step, _ = W.numpy_seed_epoch("batch", n)
            seed_peaks[n] = _peak_beyond_data(seed_step)
    # Timed once, for the record: the epoch at the largest N.
    benchmark.pedantic(step, rounds=1, iterations=1)
    benchmark.extra_info.update(
        kind="memory", mode="batch", sizes=sizes, limit_bytes=LIMIT_BYTES,
        peak_bytes_beyond_data={str(n): p for n, p in peaks.items()},
        seed_peak_bytes_beyond_data={str(n): p for n, p in seed_peaks.items()},
    )
    for n, peak in peaks.items():
        assert peak < LIMIT_BYTES, f"batch epoch at N={n} took {peak / 2**20:.1f} MiB beyond the data"
    # Flat: the largest N costs at most a little more than the smallest
    # (the chunk count's few bytes of bookkeeping), unlike the one-shot loop.
    smallest, largest = peaks[min(peaks)], peaks[max(peaks)]
    if max(peaks) >= 10 * min(peaks) >= 10_000:
        assert largest <= 1.25 * smallest + 2**20, peaks
