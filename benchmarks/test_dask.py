"""The dask backend: batch-mode epoch time against N, and an out-of-core epoch.

* ``test_dask_batch_epoch``: one batch-mode epoch of the suite's network
  (32 -> 64 sigmoid -> 1, float32, plain SGD) on the numpy backend, on the
  dask backend with its local threaded scheduler, and on a two-worker
  ``LocalCluster`` (one thread each, on loopback). The data are in memory,
  on the cluster's workers (persisted there before timing), in row chunks
  of ``NNBACKEND_BENCH_DASK_CHUNK_ROWS``. ``benchmarks/dask_report.py`` turns
  the JSON into a table with the overhead per epoch (dask minus numpy at
  each N, and the intercept of a fitted ``a + b*N``).
* ``test_dask_out_of_core``: a ``.npy`` dataset several times larger than a
  worker's memory limit, trained one batch epoch on a two-worker
  ``LocalCluster`` with that limit; records the dataset size, the limit and
  each worker's peak resident memory (VmHWM) (which the test holds under the limit).

Timed only when ``NNBACKEND_BENCH_DASK=1`` (``nnbackend bench``, which runs
this directory, times the descent modes and leaves these out); with
``--benchmark-disable`` (CI) they run once at a smoke size of a few MB.

NNBACKEND_BENCH_DASK              1 to time these benchmarks

NNBACKEND_BENCH_DASK_SIZES        comma list of N (default 1e3,1e4,1e5,1e6)
NNBACKEND_BENCH_DASK_WHERE        comma list of numpy,threads,cluster (default all)
NNBACKEND_BENCH_DASK_CHUNK_ROWS   rows per chunk (default 131072: 16 MiB of X)
NNBACKEND_BENCH_DASK_OOC_MB       out-of-core dataset size, MB of X (default 1536; 0 skips)
NNBACKEND_BENCH_DASK_MEMORY_LIMIT memory limit per worker (default 400MB)
"""

import os
import time

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.bench import workloads as W
from nnbackend.model import epoch_function

SECONDS_PER_BENCHMARK = 2.0


def _smoke(config):
    return config.getoption("benchmark_disable", default=False)


def _env_list(name, default):
    text = os.environ.get(name)
    return [s.strip() for s in text.split(",") if s.strip()] if text else default


def pytest_generate_tests(metafunc):  # noqa: D103 -- collected from this module
    if "dask_case" not in metafunc.fixturenames:
        return
    smoke = _smoke(metafunc.config) and not os.environ.get("NNBACKEND_BENCH_DASK_SIZES")
    sizes = [300] if smoke else [
        int(float(s)) for s in _env_list("NNBACKEND_BENCH_DASK_SIZES", ["1e3", "1e4", "1e5", "1e6"])]
    where = _env_list("NNBACKEND_BENCH_DASK_WHERE", ["numpy", "threads", "cluster"])
    cases = [(w, n) for n in sizes for w in where]
    metafunc.parametrize("dask_case", cases, ids=[f"{w}-{n}" for w, n in cases])


def _skip_unless_requested(config):
    if not _smoke(config) and os.environ.get("NNBACKEND_BENCH_DASK") != "1":
        pytest.skip("the dask benchmarks run with NNBACKEND_BENCH_DASK=1 "
                    "(or --benchmark-disable for the smoke run)")


def _dask_or_skip():
    try:
        return nb.get_backend("dask", scheduler="threads")
    except nb.BackendUnavailableError as exc:
        pytest.skip(str(exc))


def _local_cluster(**kwargs):
    distributed = pytest.importorskip("distributed", reason="needs: pip install 'nnbackend[dask]'")
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address=None, **kwargs)


@pytest.fixture(scope="module")
def cluster_backend():
    _dask_or_skip()
    with _local_cluster() as cluster:
        backend = nb.get_backend("dask", scheduler=cluster.scheduler_address)
        yield backend
        backend.scheduler.close()


@pytest.mark.benchmark(group="dask-batch-epoch")
def test_dask_batch_epoch(benchmark, dask_case, request):
    _skip_unless_requested(request.config)
    where, n = dask_case
    chunk_rows = int(float(os.environ.get("NNBACKEND_BENCH_DASK_CHUNK_ROWS", "131072")))
    X, y = W.synthetic(n)
    if where == "numpy":
        backend = nb.get_backend("numpy")
    else:
        import dask.array as da

        backend = (_dask_or_skip() if where == "threads"
                   else request.getfixturevalue("cluster_backend"))
        X = da.from_array(X, chunks=(chunk_rows, -1))
        y = da.from_array(y, chunks=(chunk_rows, -1))
        # On the cluster the chunks move to the workers once, before timing.
        X, y = (X.persist(), y.persist()) if where == "cluster" else (X, y)
    model = nb.MLP(W.LAYERS, backend=backend, dtype="float32", seed=0)
    step = epoch_function(model, X, y, mode="batch", lr=W.LR, seed=0)
    start = time.perf_counter()
    loss = step()  # warm-up
    first = time.perf_counter() - start
    assert loss == loss, "the warm-up epoch's loss is NaN"
    rounds = max(1, min(10, int(SECONDS_PER_BENCHMARK / max(first, 1e-6))))
    label = {"numpy": "nnbackend-numpy", "threads": "nnbackend-dask-threads",
             "cluster": "nnbackend-dask-localcluster-2w"}[where]
    benchmark.extra_info.update(label=label, where=where, n_samples=n, mode="batch",
                                chunk_rows=None if where == "numpy" else chunk_rows,
                                n_chunks=None if where == "numpy" else len(X.chunks[0]),
                                device=backend.device_name(), dtype="float32")
    benchmark.pedantic(step, rounds=rounds, iterations=1)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info.update(seconds_per_epoch=stats.stats.median)


def _write_npy(path_x, path_y, n_rows, block=1 << 18):
    """X (n_rows, 32) float32 and y (n_rows, 1) written in blocks, never whole in memory."""
    X = np.lib.format.open_memmap(path_x, mode="w+", dtype=np.float32, shape=(n_rows, W.N_FEATURES))
    Y = np.lib.format.open_memmap(path_y, mode="w+", dtype=np.float32, shape=(n_rows, 1))
    for i, start in enumerate(range(0, n_rows, block)):
        stop = min(start + block, n_rows)
        X[start:stop], Y[start:stop] = W.synthetic(stop - start, seed=i)
    X.flush(), Y.flush()
    del X, Y


def _peak_rss_bytes():
    """This process's peak resident memory since it started (VmHWM).

    Not ``ru_maxrss``: Linux carries that over from the parent through fork
    and exec, so a worker would report the pytest process's size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak():
    """Start this process's VmHWM afresh (Linux: writing 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@pytest.mark.benchmark(group="dask-out-of-core")
def test_dask_out_of_core(benchmark, tmp_path, request):
    from dask.utils import parse_bytes

    from nnbackend.backends.dask.chunks import open_npy

    _skip_unless_requested(request.config)
    _dask_or_skip()
    smoke = benchmark.disabled and os.environ.get("NNBACKEND_BENCH_DASK_OOC_MB") is None
    mb = 8 if smoke else float(os.environ.get("NNBACKEND_BENCH_DASK_OOC_MB", "1536"))
    if mb <= 0:
        pytest.skip("NNBACKEND_BENCH_DASK_OOC_MB=0")
    limit_text = os.environ.get("NNBACKEND_BENCH_DASK_MEMORY_LIMIT", "400MB")
    limit = parse_bytes(limit_text)
    chunk_rows = int(float(os.environ.get("NNBACKEND_BENCH_DASK_CHUNK_ROWS", "131072")))
    n_rows = int(mb * 2**20) // (4 * W.N_FEATURES)
    _write_npy(tmp_path / "X.npy", tmp_path / "y.npy", n_rows)
    data_bytes = os.path.getsize(tmp_path / "X.npy") + os.path.getsize(tmp_path / "y.npy")

    with _local_cluster(memory_limit=limit) as cluster:
        backend = nb.get_backend("dask", scheduler=cluster.scheduler_address)
        client = backend.scheduler
        try:
            X = open_npy(tmp_path / "X.npy", chunk_rows=chunk_rows)
            y = open_npy(tmp_path / "y.npy", chunk_rows=chunk_rows)
            model = nb.MLP(W.LAYERS, backend=backend, dtype="float32", seed=0)
            client_before = _peak_rss_bytes()
            start = time.perf_counter()
            step = epoch_function(model, X, y, mode="batch", lr=W.LR, seed=0)  # checks X once
            setup = time.perf_counter() - start
            since_start = client.run(_peak_rss_bytes)
            reset = all(client.run(_reset_peak).values()) and _reset_peak()
            benchmark.pedantic(step, rounds=1, iterations=1)
            worker_peaks = client.run(_peak_rss_bytes)
            client_epoch_peak = _peak_rss_bytes()
            restarts = sum(ws.get("nanny") is None for ws in client.scheduler_info()["workers"].values())
        finally:
            client.close()
    peaks = sorted(worker_peaks.values())
    start_peaks = sorted(since_start.values())
    benchmark.extra_info.update(
        dataset_bytes=data_bytes, n_rows=n_rows, chunk_rows=chunk_rows,
        chunk_bytes=chunk_rows * 4 * W.N_FEATURES, memory_limit_bytes=limit,
        memory_limit=limit_text, worker_peak_rss_bytes=peaks, peaks_reset_before_epoch=reset,
        worker_peak_rss_through_setup_bytes=start_peaks, client_epoch_peak_rss_bytes=client_epoch_peak,
        client_peak_rss_before_bytes=client_before, client_peak_rss_after_bytes=_peak_rss_bytes(),
        setup_seconds=setup, dataset_over_limit=data_bytes / limit, workers=len(peaks))
    assert len(peaks) == 2 and restarts == 0
    if not smoke:
        assert data_bytes > 3 * limit, "the dataset should be several times the memory limit"
    # Bounded memory: no worker came near its limit (the nanny would have
    # restarted it at 95%), whatever the dataset's size.
    assert max(peaks + start_peaks) < limit
