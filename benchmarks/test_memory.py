"""Memory does not grow over a long run or over many fits in one process.

Two measurements per backend, each a benchmark (timed once) whose figures go
to ``extra_info``:

* ``long_run``: one fit of ``NNBACKEND_MEMORY_EPOCHS`` epochs (default 10⁴)
  of a [4, 8, 1] network on 64 rows, batch mode. Python-heap growth
  (tracemalloc, which also sees NumPy's buffers) between epoch 10 % and the
  last epoch, less the history's own floats (one per epoch, which must
  grow), and RSS growth over the same span.
* ``many_fits``: ``NNBACKEND_MEMORY_FITS`` (default 300) fresh models fitted
  for 5 epochs each; growth between fit 10 % and the last one.

``NNBACKEND_MEMORY_BACKENDS`` (comma list) narrows the backends measured.

Each asserts the growth stays under 1 MiB of traced memory (RSS is recorded
and held to a looser 16 MiB: the allocator keeps freed pages). With
``--benchmark-disable`` (as CI runs it) and no size set in the environment,
the run shrinks to 300 epochs and 20 fits on numpy and torch: a few seconds.
"""

import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import nnbackend as nb

MIB = 2**20
TRACED_LIMIT = 1 * MIB
RSS_LIMIT = 16 * MIB
BACKENDS = ["numpy", "strict", "torch", "jax"]
# Without --benchmark-disable sizes, the smoke run (CI) measures the two quick
# backends; NNBACKEND_MEMORY_BACKENDS picks others.
SMOKE_BACKENDS = ["numpy", "torch"]


def _sizes(config):
    smoke = config.getoption("benchmark_disable", default=False)
    epochs = int(float(os.environ.get("NNBACKEND_MEMORY_EPOCHS", "300" if smoke else "1e4")))
    fits = int(float(os.environ.get("NNBACKEND_MEMORY_FITS", "20" if smoke else "300")))
    return epochs, fits


def _rss():
    """Resident set size in bytes (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def _backend(name, config):
    smoke = config.getoption("benchmark_disable", default=False)
    chosen = os.environ.get("NNBACKEND_MEMORY_BACKENDS")
    wanted = chosen.split(",") if chosen else (SMOKE_BACKENDS if smoke else BACKENDS)
    if name not in wanted:
        pytest.skip(f"{name} not measured in this run (NNBACKEND_MEMORY_BACKENDS={wanted})")
    try:
        return nb.get_backend(name)
    except nb.BackendUnavailableError as exc:
        pytest.skip(str(exc))


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4))
    return X, X @ np.array([0.5, -1.0, 0.25, 2.0]) / 4


def _report(benchmark, **figures):
    benchmark.extra_info.update(figures)
    line = ", ".join(f"{k}={v / MIB:.3f} MiB" if k.endswith("bytes") and v is not None
                     else f"{k}={v}" for k, v in figures.items())
    print(f"\n[memory] {line}", file=sys.stderr)


@pytest.mark.benchmark(group="memory")
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_long_run_memory_is_flat(benchmark, request, backend_name):
    backend = _backend(backend_name, request.config)
    epochs, _ = _sizes(request.config)
    X, y = _data()
    marks = {}
    start_epoch = max(1, epochs // 10)

    def callback(epoch, figures):
        if epoch == start_epoch or epoch == epochs:
            gc.collect()
            marks[epoch] = (tracemalloc.get_traced_memory()[0], _rss())

    def run():
        model = nb.MLP([4, 8, 1], output_activation="identity", backend=backend.name, seed=0)
        tracemalloc.start()
        try:
            hist = model.fit(X, y, mode="minibatch", batch_size=64, epochs=epochs, lr=0.05,
                             callback=callback)
        finally:
            tracemalloc.stop()
        return hist

    hist = benchmark.pedantic(run, rounds=1, iterations=1)
    assert hist.epochs == epochs and np.isfinite(hist.loss[-1])
    (t0, r0), (t1, r1) = marks[start_epoch], marks[epochs]
    # The history holds one float per epoch (and the list's slot): growth by design.
    history = (epochs - start_epoch) * (sys.getsizeof(1.0) + 8)
    traced = t1 - t0 - history
    rss = None if r0 is None else r1 - r0
    _report(benchmark, kind="long_run", backend=backend.name, epochs=epochs,
            traced_growth_bytes=traced, history_bytes=history, rss_growth_bytes=rss)
    assert traced < TRACED_LIMIT, f"{traced / MIB:.2f} MiB of traced growth over {epochs} epochs"
    if rss is not None:
        assert rss < RSS_LIMIT, f"RSS grew {rss / MIB:.1f} MiB over {epochs} epochs"


@pytest.mark.benchmark(group="memory")
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_many_fits_memory_is_flat(benchmark, request, backend_name):
    backend = _backend(backend_name, request.config)
    _, fits = _sizes(request.config)
    X, y = _data()
    start_fit = max(1, fits // 10)
    marks = {}

    def run():
        tracemalloc.start()
        try:
            for i in range(1, fits + 1):
                model = nb.MLP([4, 8, 1], output_activation="identity", backend=backend.name,
                               seed=i)
                model.fit(X, y, mode="minibatch", batch_size=16, epochs=5, lr=0.05)
                model.predict(X)
                del model
                if i in (start_fit, fits):
                    gc.collect()
                    marks[i] = (tracemalloc.get_traced_memory()[0], _rss())
        finally:
            tracemalloc.stop()

    benchmark.pedantic(run, rounds=1, iterations=1)
    (t0, r0), (t1, r1) = marks[start_fit], marks[fits]
    traced = t1 - t0
    rss = None if r0 is None else r1 - r0
    _report(benchmark, kind="many_fits", backend=backend.name, fits=fits,
            traced_growth_bytes=traced, rss_growth_bytes=rss)
    assert traced < TRACED_LIMIT, f"{traced / MIB:.2f} MiB of traced growth over {fits} fits"
    if rss is not None:
        assert rss < RSS_LIMIT, f"RSS grew {rss / MIB:.1f} MiB over {fits} fits"
