"""CuPy's captured steps (``cupy-graphs``) and the epoch they share with torch's graphs.

Off the GPU the epoch runs with ``eager_capture`` (each captured step run
as is) on NumPy and array-api-strict, whose namespaces take the same array
operations as CuPy's: the static buffers, the device step counter, the last
short batch and the optimizers' device counts are checked against the
reference loop. A capture that fails, or whose replay differs from the step
run eagerly, leaves that batch shape's steps eager, and the fit says so.
CuPy's capture itself (its stream, its private memory pool, the collector
held off) is checked against a stand-in for CuPy; the capture on a GPU is
checked where CuPy sees one.
"""

import gc
import sys
import types

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.backends import graph_epoch
from nnbackend.backends.cupy import graphs
from nnbackend.backends.numpy import NumpyBackend
from nnbackend.backends.strict import StrictBackend
from nnbackend.data import make_plan

from test_cupy_batch import _cupy_gpu

N = 203


def _data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.float64)


def _fit(executor, backend, optimizer, batch_size, dtype="float64", epochs=3, **options):
    X, y = _data()
    model = nb.MLP([5, 7, 1], hidden_activation="tanh", loss="bce", backend=backend,
                   dtype=dtype, seed=1)
    hist = model.fit(X, y, epochs=epochs, lr=0.05, seed=4, batch_size=batch_size,
                     mode="sgd" if batch_size == 1 else "minibatch", optimizer=optimizer,
                     executor=executor, **options)
    params = [np.asarray(model.backend.to_host(a), dtype=np.float64)
              for pair in model.params for a in pair]
    return params, hist, model.train_state


def _with_graphs(monkeypatch, capture=graph_epoch.eager_capture):
    made = []

    def executors(self):
        made.append(graphs.CupyGraphs(capture))
        return (made[-1],)

    for cls in (NumpyBackend, StrictBackend):
        monkeypatch.setattr(cls, "executors", executors)
    return made


def _same(got, ref, rtol):
    (params, hist, state), (ref_params, ref_hist, ref_state) = got, ref
    for a, b in zip(params, ref_params):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3)
    np.testing.assert_allclose(hist.loss, ref_hist.loss, rtol=rtol)
    assert hist.accuracy == ref_hist.accuracy
    assert state.state_scalars == ref_state.state_scalars  # Adam's count: a host int again


@pytest.mark.parametrize("backend", ["numpy", "strict"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("batch_size", [16, 1])
def test_the_epoch_run_eagerly_equals_the_reference_loop(backend, optimizer, batch_size,
                                                        monkeypatch):
    ref = _fit("reference", backend, optimizer, batch_size)
    made = _with_graphs(monkeypatch)
    got = _fit("auto", backend, optimizer, batch_size)
    assert got[1].executor == "cupy-graphs" and made
    # Adam's bias corrections from a float64 device count (a vectorised pow):
    # a last-place difference now and then.
    _same(got, ref, 1e-12 if optimizer == "adam" else 0.0)


@pytest.mark.parametrize("optimizer, alpha, lr_schedule", [
    ("sgd", 0.01, "invscaling"), ("momentum", 0.01, "adaptive"), ("adam", 0.0, "invscaling")])
def test_the_fits_wrappers_ride_along(optimizer, alpha, lr_schedule, monkeypatch):
    ref = _fit("reference", "numpy", optimizer, 16, alpha=alpha, lr_schedule=lr_schedule)
    _with_graphs(monkeypatch)
    got = _fit("auto", "numpy", optimizer, 16, alpha=alpha, lr_schedule=lr_schedule)
    assert got[1].executor == "cupy-graphs"
    _same(got, ref, 1e-12)


@pytest.mark.parametrize("backend", ["numpy", "strict"])
@pytest.mark.parametrize("optimizer, lr_schedule", [
    ("adam", "constant"), ("adam", "invscaling"), ("sgd", "invscaling"),
    ("momentum", "invscaling")])
def test_float32_factors_from_the_device_count_keep_float32_bits(backend, optimizer,
                                                                 lr_schedule, monkeypatch):
    # The count rides along as a float64 0-D array (a NumPy scalar once NumPy
    # computes with it). Neither is weakly typed: its factors, multiplied in
    # as they are, ran the float32 update in float64 (1e-5 off after 3 epochs).
    ref = _fit("reference", backend, optimizer, 16, dtype="float32", lr_schedule=lr_schedule)
    _with_graphs(monkeypatch)
    got = _fit("auto", backend, optimizer, 16, dtype="float32", lr_schedule=lr_schedule)
    assert got[1].executor == "cupy-graphs"
    for a, b in zip(got[0], ref[0]):
        np.testing.assert_array_equal(a, b)
    assert got[1].loss == ref[1].loss


def _task(optimizer, plan):
    from nnbackend.engine import EpochTask

    X, y = _data()
    model = nb.MLP([5, 1], backend="numpy")
    return EpochTask(model.backend, model.spec, optimizer, plan, model._features(X),
                     model._targets(y, N), 2048, index_dtype=model.backend.index_dtype(),
                     layer_sizes=[5, 1])


def _run(epoch, task):
    xp = task.backend.xp
    params = [xp.zeros((5, 1)), xp.zeros(1)]
    return epoch(params, task.optimizer.init(params), np.random.default_rng(0).permutation(N))


def test_a_failed_capture_leaves_those_steps_eager_and_says_why():
    task = _task(nb.adam(0.01), make_plan("minibatch", N, 16))
    shapes = []

    def capture(step, reset, device):
        shapes.append(1)
        if len(shapes) == 2:  # the last, shorter batch's graph
            raise RuntimeError("cudaErrorStreamCaptureUnsupported: operation not permitted "
                               "when stream is capturing\nmore")
        return step

    ref = _run(graphs.CupyGraphs(graph_epoch.eager_capture).make_epoch(task), task)
    executor = graphs.CupyGraphs(capture)
    epoch = executor.make_epoch(task)
    got = _run(epoch, task)
    for a, b in zip(got[0], ref[0]):
        np.testing.assert_array_equal(a, b)
    assert got[2] == ref[2]
    assert epoch.path == ("the steps run eagerly, one at a time (capturing them as a CUDA graph "
                          "failed: 11 rows: RuntimeError: cudaErrorStreamCaptureUnsupported: "
                          "operation not permitted when stream is capturing)")
    assert executor.describe(task) == epoch.path


def test_a_capture_refused_with_any_error_leaves_the_steps_eager():
    task = _task(nb.sgd(0.1), make_plan("minibatch", N, 16))

    def capture(step, reset, device):
        raise TypeError("a device value read on the host during a capture")

    epoch = graphs.CupyGraphs(capture).make_epoch(task)
    ref = _run(graphs.CupyGraphs(graph_epoch.eager_capture).make_epoch(task), task)
    got = _run(epoch, task)
    assert "16 rows: TypeError: a device value read on the host" in epoch.path
    for a, b in zip(got[0], ref[0]):
        np.testing.assert_array_equal(a, b)


def test_a_replay_that_differs_from_the_step_is_not_kept():
    # A stand-in for a graph whose memory another array was given: each replay
    # leaves garbage in the first weight matrix. The check at capture time sees
    # it, and the steps run eagerly; without the check the epoch would be wrong.
    task = _task(nb.sgd(0.1), make_plan("minibatch", N, 16))
    built = {}

    def capture(step, reset, device):
        def replay():
            step()
            built["epoch"].params[0][...] = built["epoch"].params[0] + 1.0
        return replay

    ref = _run(graphs.CupyGraphs(graph_epoch.eager_capture).make_epoch(task), task)
    ops = graph_epoch.XpOps(task.backend.xp)
    epoch = built["epoch"] = graph_epoch.GraphEpoch(task, capture, ops, "t", on_failure="eager",
                                                    verify=True)
    got = _run(epoch, task)
    assert "16 rows: a replay differed from the step run eagerly" in epoch.path
    assert "11 rows: a replay differed" in epoch.path
    for a, b in zip(got[0], ref[0]):
        np.testing.assert_array_equal(a, b)
    unchecked = built["epoch"] = graph_epoch.GraphEpoch(task, capture, ops, "t")
    wrong = _run(unchecked, task)
    assert not np.array_equal(wrong[0][0], ref[0][0])


def test_a_replay_that_matches_is_kept_and_replayed_once_a_step():
    task = _task(nb.adam(0.01), make_plan("minibatch", N, 16))
    calls = []

    def capture(step, reset, device):
        def replay():
            calls.append(1)
            step()
        return replay

    epoch = graph_epoch.GraphEpoch(task, capture, graph_epoch.XpOps(task.backend.xp), "t",
                                   on_failure="eager", verify=True)
    _run(epoch, task)
    assert epoch.path == "each step one replay of its captured CUDA graph"
    # 13 steps (12 of 16 rows and one of 11), plus one checking replay of each shape.
    assert len(calls) == 13 + 2 and epoch.replayed == 13


def test_the_fits_reason_says_when_the_steps_ran_eagerly(monkeypatch):
    # The reason is asked again after the fit: the capture happens at its first epoch.
    def refuse(step, reset, device):
        raise RuntimeError("cudaErrorStreamCaptureUnsupported")

    _with_graphs(monkeypatch)
    kept = _fit("auto", "numpy", "sgd", 16, epochs=1)[1]
    assert kept.executor_reason.startswith("cupy-graphs: each step one replay of its captured "
                                           "CUDA graph; the first of the numpy backend's")
    _with_graphs(monkeypatch, capture=refuse)
    eager = _fit("auto", "numpy", "sgd", 16, epochs=1)[1]
    assert eager.executor == "cupy-graphs"
    assert eager.executor_reason.startswith(
        "cupy-graphs: the steps run eagerly, one at a time (capturing them as a CUDA graph "
        "failed: 16 rows: RuntimeError: cudaErrorStreamCaptureUnsupported; 11 rows: "
        "RuntimeError: cudaErrorStreamCaptureUnsupported); the first of the numpy backend's")


def test_supports_gives_its_reasons():
    executor = graphs.CupyGraphs()
    assert executor.supports(_task(nb.sgd(0.1), make_plan("minibatch", N, 16))) is None
    assert "batch mode" in executor.supports(_task(nb.sgd(0.1), make_plan("batch", N)))
    base = nb.sgd(0.1)
    custom = nb.Optimizer(base.init, base.update)
    assert "custom optimizer" in executor.supports(_task(custom, make_plan("sgd", N)))
    assert executor.launches(_task(nb.adam(0.1), make_plan("sgd", N)))["per_step"] == 1


# -- CuPy's capture, against a stand-in for CuPy -------------------------------------


class _FakeCupy:
    """What cuda_capture calls of CuPy, recording the order of events."""

    def __init__(self, fail_step=False):
        self.events, self.fail_step = [], fail_step
        fake = self

        class Stream:
            def __init__(self, non_blocking=False):
                self.name = "side" if non_blocking else "current"

            def record(self):
                fake.events.append(f"record {self.name}")
                return self.name

            def wait_event(self, event):
                fake.events.append(f"{self.name} waits for {event}")

            def begin_capture(self):
                fake.events.append("begin capture")

            def end_capture(self):
                fake.events.append("end capture")
                return types.SimpleNamespace(
                    launch=lambda stream: fake.events.append(f"launch on {stream.name}"))

            def __enter__(self):
                fake.events.append(f"enter {self.name}")
                return self

            def __exit__(self, *exc):
                fake.events.append(f"exit {self.name}")
                return False

        class MemoryPool:
            def malloc(self, size):
                raise AssertionError("not called here")

        class UsingAllocator:
            def __init__(self, malloc):
                fake.allocator = malloc

            def __enter__(self):
                fake.events.append("private pool")

            def __exit__(self, *exc):
                fake.events.append("default pool")
                return False

        class DefaultPool:
            def free_all_blocks(self, stream=None):
                fake.events.append(f"free {stream.name}'s blocks")

        current = Stream()
        default_pool = DefaultPool()
        self.get_default_memory_pool = lambda: default_pool
        self.cuda = types.SimpleNamespace(Stream=Stream, MemoryPool=MemoryPool,
                                          get_current_stream=lambda: current,
                                          using_allocator=UsingAllocator)


def test_cupy_capture_warms_up_then_captures_on_its_own_stream_and_pool(monkeypatch):
    fake = _FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    seen_gc = []

    def step():
        fake.events.append("step")
        if "begin capture" in fake.events:
            seen_gc.append(gc.isenabled())

    replay = graphs.cuda_capture(step, lambda: fake.events.append("reset"), None)
    assert fake.events == [
        "record current", "side waits for current",
        "enter side", "reset", "step", "exit side",  # what a step keeps: the default pool
        "private pool", "enter side", *["reset", "step"] * (graph_epoch.WARMUP_STEPS - 1),
        "reset", "begin capture", "step", "end capture",
        "exit side", "default pool", "record side", "current waits for side",
        "free side's blocks"]  # the first warm-up's, in the default pool
    assert seen_gc == [False] and gc.isenabled()
    # The pool the capture allocated from lives with the replay.
    assert replay.pool.malloc.__self__ is fake.allocator.__self__
    fake.events.clear()
    replay()
    assert fake.events == ["launch on current"]


def test_cupy_capture_ends_a_capture_the_step_broke(monkeypatch):
    fake = _FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)

    def step():
        if "begin capture" in fake.events:
            raise RuntimeError("cudaErrorStreamCaptureUnsupported")

    with pytest.raises(RuntimeError, match="StreamCaptureUnsupported"):
        graphs.cuda_capture(step, lambda: None, None)
    # ...and the current stream waits for what the side stream ran.
    assert fake.events[-7:] == ["begin capture", "end capture", "exit side", "default pool",
                                "record side", "current waits for side", "free side's blocks"]
    assert gc.isenabled()


# -- on a GPU ------------------------------------------------------------------------


@pytest.mark.skipif(_cupy_gpu() is not None, reason=f"needs CuPy on a GPU: {_cupy_gpu()}")
@pytest.mark.parametrize("optimizer, dtype, rtol", [("adam", "float64", 1e-10),
                                                    ("adam", "float32", 1e-4),
                                                    ("momentum", "float32", 1e-4)])
def test_cuda_graphs_equal_the_reference_loop(optimizer, dtype, rtol):
    # Mini-batches of 128 rows: past the fused kernel's 64, so the graphs take them.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(700, 20))
    y = rng.integers(0, 4, size=700)
    runs = {}
    for executor in ("reference", "auto"):
        model = nb.MLP([20, 32, 4], hidden_activation="relu", output_activation="softmax",
                       loss="cross_entropy", backend="cupy", dtype=dtype, seed=0)
        hist = model.fit(X, y, epochs=3, lr=0.01, seed=2, batch_size=128, optimizer=optimizer,
                         executor=executor)
        runs[executor] = (model, hist)
    (ref, ref_hist), (got, hist) = runs["reference"], runs["auto"]
    # Captured and kept (a failed or differing capture would have left them eager).
    assert hist.executor == "cupy-graphs", hist.executor_reason
    assert hist.executor_reason.startswith("cupy-graphs: each step one replay of its captured "
                                           "CUDA graph;"), hist.executor_reason
    for a, b in zip(got.flat_params, ref.flat_params):
        np.testing.assert_allclose(a.get(), b.get(), rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_allclose(hist.loss, ref_hist.loss, rtol=rtol)


@pytest.mark.skipif(_cupy_gpu() is not None, reason=f"needs CuPy on a GPU: {_cupy_gpu()}")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cuda_direct_products_equal_cupys_and_are_captured(dtype):
    # CuPy refuses its own cuBLAS calls inside a capture; the captured steps'
    # products go to cuBLAS directly (cublas_direct), in every layout a step has.
    import cupy

    from nnbackend.backends.cupy import cublas_direct as D

    rng = np.random.default_rng(0)
    x = cupy.asarray(rng.standard_normal((128, 20)), dtype=dtype)
    W = cupy.asarray(rng.standard_normal((20, 32)), dtype=dtype)
    dz = cupy.asarray(rng.standard_normal((128, 32)), dtype=dtype)
    ones = cupy.ones((1, 200), dtype=dtype)
    pairs = [(x, W), (x.T, dz), (dz, W.T), (ones[:, :128], dz), (x[::2], W)]
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for a, b in pairs:
        np.testing.assert_allclose(D.matmul(a, b).get(), cupy.matmul(a, b).get(), rtol=rtol,
                                   atol=rtol)
    assert D._DIRECT.broken is None
    with pytest.raises(NotImplementedError, match="cuBLAS"):  # why the direct path is there
        side = cupy.cuda.Stream(non_blocking=True)
        with side:
            side.begin_capture()
            try:
                cupy.matmul(x, W)
            finally:
                side.end_capture()
    # Captured: a replay computes from what the inputs hold then.
    side = cupy.cuda.Stream(non_blocking=True)
    with side:
        D.matmul(x.T, dz)  # shape checked outside the capture
        side.begin_capture()
        out = D.matmul(x.T, dz)
        graph = side.end_capture()
    x[...] = 2 * x
    graph.launch(cupy.cuda.get_current_stream())
    np.testing.assert_allclose(out.get(), cupy.matmul(x.T, dz).get(), rtol=rtol, atol=rtol)
    assert D._DIRECT.broken is None
