"""The torch CUDA-graph executor: its batch plan, its refusals, and its epoch.

Off CUDA, the executor runs with ``eager_capture`` (the captured step run
as is): the static buffers, the device-side step counter, the last short
batch and Adam's device count are all checked against the reference loop.
The capture itself is checked where torch sees a CUDA GPU.
"""

import numpy as np
import pytest

import nnbackend as nb

torch = pytest.importorskip("torch")

from nnbackend.backends.torch import TorchBackend, graphs  # noqa: E402
from nnbackend.data import make_plan  # noqa: E402
from nnbackend.engine import EpochTask, choose_executor, epoch_runner  # noqa: E402
from nnbackend.optim import get_optimizer, on_namespace  # noqa: E402


def _data(n=203, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.float64)


@pytest.mark.parametrize("n, size, shapes", [
    (203, 16, [(16, 12), (11, 1)]),
    (64, 16, [(16, 4)]),
    (5, 1, [(1, 5)]),
    (7, 10, [(7, 1)]),
])
def test_batch_shapes(n, size, shapes):
    assert graphs.batch_shapes(n, size) == shapes
    assert sum(r * s for r, s in shapes) == n


def test_step_rows_cover_the_order_once():
    n, size = 203, 16
    positions = []
    counter = torch.zeros((), dtype=torch.int64)
    for rows, steps in graphs.batch_shapes(n, size):
        base = torch.arange(rows)
        for _ in range(steps):
            positions.append(graphs.step_rows(base, counter, size))
            counter += 1
    assert torch.equal(torch.cat(positions), torch.arange(n))


def _task(plan, optimizer=None, device="cpu", chunk_size=2048):
    X, y = _data()
    model = nb.MLP([5, 1], backend="torch", device=device)  # X and Y on the device
    return EpochTask(TorchBackend("torch", model.backend.xp, torch.device(device)), model.spec,
                     optimizer or nb.sgd(0.1), plan, model._features(X), model._targets(y, 203),
                     chunk_size, index_dtype=model.backend.index_dtype(), layer_sizes=[5, 1])


def test_supports_gives_its_reasons():
    ex = graphs.TorchGraphs()
    assert "need a CUDA device, not 'cpu'" in ex.supports(_task(make_plan("minibatch", 203, 16)))
    eager = graphs.TorchGraphs(graphs.eager_capture)
    assert eager.supports(_task(make_plan("minibatch", 203, 16))) is None
    assert "batch mode" in eager.supports(_task(make_plan("batch", 203)))
    assert "exceed chunk_size=8" in eager.supports(_task(make_plan("minibatch", 203, 16),
                                                         chunk_size=8))
    base = nb.sgd(0.1)
    assert "custom optimizer" in eager.supports(
        _task(make_plan("sgd", 203), nb.Optimizer(base.init, base.update)))


def test_off_cuda_auto_falls_back_and_forcing_says_why():
    assert epoch_runner("auto", _task(make_plan("minibatch", 203, 16))) is None
    X, y = _data()
    with pytest.raises(ValueError, match="'torch-graphs' does not apply here: CUDA graphs need"):
        nb.MLP([5, 1], backend="torch").fit(X, y, executor="torch-graphs")
    with pytest.raises(ValueError, match="needs the torch backend"):
        nb.MLP([5, 1]).fit(X, y, executor="torch-graphs")


def _fit(executor, dtype, optimizer, batch_size, monkeypatch=None, device="cpu", epochs=3):
    X, y = _data()
    model = nb.MLP([5, 7, 1], hidden_activation="tanh", loss="bce", backend="torch",
                   device=device, dtype=dtype, seed=1)
    hist = model.fit(X, y, epochs=epochs, lr=0.05, seed=4, batch_size=batch_size,
                     mode="sgd" if batch_size == 1 else "minibatch",
                     optimizer=optimizer, executor=executor)
    params = [np.asarray(a.cpu(), dtype=np.float64) for pair in model.params for a in pair]
    return params, hist, model.train_state


def _assert_captured(hist):
    """The fit replayed captured graphs: a failed capture runs its steps eagerly,
    and those equal the reference loop's too, so only the reason tells."""
    assert hist.executor == "torch-graphs", hist.executor_reason
    assert hist.executor_reason.startswith(
        "torch-graphs: each step one replay of its captured CUDA graph;"), hist.executor_reason


def _compare(executor, dtype, optimizer, batch_size, device="cpu", rtol=0.0):
    ref, ref_hist, ref_state = _fit("reference", dtype, optimizer, batch_size, device=device)
    got, hist, state = _fit(executor, dtype, optimizer, batch_size, device=device)
    if executor == "torch-graphs" and device == "cuda":
        _assert_captured(hist)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3)
    np.testing.assert_allclose(hist.loss, ref_hist.loss, rtol=rtol)
    assert hist.accuracy == ref_hist.accuracy
    assert state.state_scalars == ref_state.state_scalars  # Adam's count: a host int
    for name, arrays in ref_state.state_arrays.items():
        for a, b in zip(state.state_arrays[name], arrays):
            np.testing.assert_allclose(np.asarray(a.cpu()), np.asarray(b.cpu()), rtol=rtol,
                                       atol=rtol * 1e-3)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("batch_size", [16, 1])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_graph_logic_run_eagerly_equals_the_reference_loop(optimizer, batch_size, dtype,
                                                          monkeypatch):
    monkeypatch.setattr(TorchBackend, "executors",
                        lambda self: (graphs.TorchGraphs(graphs.eager_capture),))
    # Adam's bias corrections come from a float64 device count (torch's
    # vectorised pow, not Python's): a last-place difference in the step size
    # now and then, which 600 sgd steps grow to a few 1e-14.
    rtol = 1e-12 if optimizer == "adam" and dtype == "float64" else 0.0
    if optimizer == "adam" and dtype == "float32":
        rtol = 1e-5
    _compare("torch-graphs", dtype, optimizer, batch_size, rtol=rtol)


def test_one_replay_per_step_and_a_fixed_number_of_epoch_operations():
    from torch.overrides import TorchFunctionMode

    class Count(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls = 0
            self.paused = False

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls += not self.paused
            return func(*args, **(kwargs or {}))

    per_epoch = []
    for n in (64, 203):
        plan = make_plan("minibatch", n, 16)
        task = _task(plan, get_optimizer("adam", 0.01))
        task = EpochTask(task.backend, task.spec, task.optimizer, plan, task.X[:n], task.Y[:n],
                         task.chunk_size, index_dtype=task.index_dtype, layer_sizes=[5, 1])
        count = Count()

        def capture(step, reset, device):
            def replay():  # the step's own operations happen inside the graph
                count.paused = True
                step()
                count.paused = False
            return replay

        epoch = graphs.TorchGraphs(capture).make_epoch(task)
        params = list(task.backend.xp.asarray(p) for p in [np.zeros((5, 1)), np.zeros(1)])
        state = task.optimizer.init(params)
        params, state, _, _ = epoch(params, state, None)  # builds the buffers
        with count:
            epoch(params, state, np.arange(n))
        assert epoch.replayed == 2 * -(-n // 16)
        per_epoch.append(count.calls)
    # Per epoch the host adds the same few operations, whatever the number of steps,
    # and no more than the executor states.
    assert per_epoch[0] == per_epoch[1]
    stated = graphs.TorchGraphs().launches(task)
    assert stated["per_step"] == 1
    assert per_epoch[0] <= stated["per_epoch"]


def test_the_epoch_keeps_what_its_replays_read_alive():
    # A CUDA graph holds device addresses, not Python objects: a replay that
    # outlives its step's tensors (the row offsets ``base`` the step closes
    # over) reads memory torch has handed to another tensor. Here the replay
    # holds its step only weakly, as a graph would; the epoch must keep it.
    import gc
    import weakref

    def capture(step, reset, device):
        ref = weakref.ref(step)
        return lambda: ref()()

    task = _task(make_plan("minibatch", 203, 16), get_optimizer("adam", 0.01))
    epoch = graphs.TorchGraphs(capture).make_epoch(task)
    params = [task.backend.xp.asarray(p) for p in (np.zeros((5, 1)), np.zeros(1))]
    state = task.optimizer.init(params)
    for order in (None, np.random.default_rng(0).permutation(203)):
        gc.collect()
        params, state, _, _ = epoch(params, state, order)
    assert epoch.replayed == 2 * 13


def _epoch_of(capture, optimizer):
    """A torch-graphs epoch of 203 rows in batches of 16 whose captures go
    through ``capture``: (task, executor, epoch, params)."""
    task = _task(make_plan("minibatch", 203, 16), optimizer)
    executor = graphs.TorchGraphs(capture)
    params = [task.backend.xp.asarray(p) for p in (np.ones((5, 1)), np.zeros(1))]
    return task, executor, executor.make_epoch(task), params


def test_a_failed_capture_runs_the_steps_eagerly_and_says_what_failed():
    # As cupy-graphs: a refused capture must not end the fit. The steps run
    # eagerly and give the reference loop's numbers; the path says why.
    def capture(step, reset, device):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\n"
                           "Search for `cudaErrorStreamCaptureUnsupported' ...")

    task, executor, epoch, params = _epoch_of(capture, get_optimizer("adam", 0.01))
    got = epoch(params, task.optimizer.init(params), None)
    ref = graphs.TorchGraphs(graphs.eager_capture).make_epoch(task)(
        params, task.optimizer.init(params), None)
    for a, b in zip(got[0], ref[0]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(got[2]) == float(ref[2])
    assert executor.describe(task) == epoch.path == (
        "the steps run eagerly, one at a time (capturing them as a CUDA graph failed: "
        "16 rows: RuntimeError: CUDA error: operation not permitted when stream is capturing; "
        "11 rows: RuntimeError: CUDA error: operation not permitted when stream is capturing)")
    assert epoch.replayed == 13


def test_a_failed_capture_names_the_steps_own_error_where_ending_the_capture_hid_it():
    # A step's CUDA error inside a capture makes ending the capture raise too
    # (torch's capture_end in torch.cuda.graph's __exit__, CuPy's end_capture in
    # a finally), and that error, "a previous error during capture", was all
    # the fit's history said.
    def capture(step, reset, device):
        try:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing")
        finally:
            raise RuntimeError("CUDA error: operation failed due to a previous error during "
                               "capture")

    task, executor, epoch, params = _epoch_of(capture, get_optimizer("sgd", 0.1))
    epoch(params, task.optimizer.init(params), None)
    assert executor.describe(task).startswith(
        "the steps run eagerly, one at a time (capturing them as a CUDA graph failed: 16 rows: "
        "RuntimeError: CUDA error: operation failed due to a previous error during capture "
        "(after RuntimeError: CUDA error: operation not permitted when stream is capturing); ")


def test_a_fits_reason_says_when_torch_graphs_ran_its_steps_eagerly(monkeypatch):
    from nnbackend.backends.cupy.bridge import bridges

    def refuse(step, reset, device):
        raise RuntimeError("cudaErrorStreamCaptureUnsupported")

    X = np.random.default_rng(0).standard_normal((40, 5))
    y = (X[:, 0] > 0).astype(float)
    for capture, path in [(graphs.eager_capture, "each step one replay of its captured CUDA graph"),
                          (refuse, "the steps run eagerly, one at a time (capturing them as a "
                                   "CUDA graph failed: 16 rows: RuntimeError: "
                                   "cudaErrorStreamCaptureUnsupported; 8 rows: RuntimeError: "
                                   "cudaErrorStreamCaptureUnsupported)")]:
        monkeypatch.setattr(TorchBackend, "executors",
                            lambda self, c=capture: (*bridges("torch"), graphs.TorchGraphs(c)))
        hist = nb.MLP([5, 1], backend="torch").fit(X, y, epochs=2, batch_size=16)
        assert hist.executor == "torch-graphs"
        assert hist.executor_reason.startswith(f"torch-graphs: {path}; ")


def _profiled_capture(names):
    """A ``capture`` whose replays run the step under torch's CPU profiler, the
    names of what ran added to ``names``."""
    from torch.profiler import profile

    def capture(step, reset, device):
        def replay():
            with profile() as prof:
                step()
            names.extend(e.name for e in prof.events())
        return replay

    return capture


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_a_step_reads_nothing_back_to_the_host(optimizer):
    # A CUDA graph's capture refuses a host sync (the first GPU run: torch
    # read Adam's device epsilon with .item() inside _foreach_add). The CPU
    # profiler sees the same reads: aten::item / aten::_local_scalar_dense.
    names = []
    capture = _profiled_capture(names)
    xp = TorchBackend.open("cpu")[0]
    # The fused (multi-tensor) update, as a fit binds it (training.loop).
    task = _task(make_plan("minibatch", 203, 16), on_namespace(get_optimizer(optimizer, 0.01), xp))
    epoch = graphs.TorchGraphs(capture).make_epoch(task)
    params = [xp.asarray(p) for p in (np.zeros((5, 1)), np.zeros(1))]
    epoch(params, task.optimizer.init(params), None)
    assert "aten::_foreach_mul" in names  # the fused update ran inside the steps
    assert not {"aten::item", "aten::_local_scalar_dense"} & set(names)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")


@cuda
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_cuda_graphs_equal_the_reference_loop(optimizer):
    task = _task(make_plan("minibatch", 203, 16), device="cuda")
    assert graphs.TorchGraphs().supports(task) is None
    # The same kernels replayed: equal in float64 (Adam's device pow to a few
    # ulps), and to float32 rounding over three epochs.
    _compare("torch-graphs", "float64", optimizer, 16, device="cuda", rtol=1e-13)
    _compare("torch-graphs", "float32", optimizer, 16, device="cuda", rtol=1e-4)


@cuda
def test_auto_picks_the_graphs_on_cuda():
    # Where CuPy is installed its kernels come first (crossed by DLPack); the
    # graphs take the mini-batches without it, and batch mode stays eager.
    try:
        import cupy  # noqa: F401
        kernels = True
    except ImportError:
        kernels = False
    minibatch = choose_executor("auto", _task(make_plan("minibatch", 203, 16), device="cuda"))
    assert minibatch.name == ("cupy-fused" if kernels else "torch-graphs"), minibatch.reason
    batch = choose_executor("auto", _task(make_plan("batch", 203), device="cuda"))
    assert batch.name == ("cupy-batch" if kernels else "reference"), batch.reason
    # The graphs themselves take the mini-batches' task on CUDA.
    assert graphs.TorchGraphs().supports(_task(make_plan("minibatch", 203, 16),
                                               device="cuda")) is None


# -- the fit's wrappers: L2 penalty and learning-rate schedules ------------------------

def _wrapped_fit(executor, optimizer, alpha, lr_schedule, device="cpu"):
    X, y = _data()
    model = nb.MLP([5, 7, 1], hidden_activation="tanh", loss="bce", backend="torch",
                   device=device, dtype="float64", seed=1)
    kwargs = dict(epochs=2, lr=0.05, seed=4, batch_size=16, optimizer=optimizer, alpha=alpha,
                  lr_schedule=lr_schedule, executor=executor)
    hists = [model.fit(X, y, **kwargs), model.fit(X, y, resume=True, **kwargs)]
    params = [np.asarray(a.cpu(), dtype=np.float64) for pair in model.params for a in pair]
    return params, hists, model.train_state


@pytest.mark.parametrize("optimizer, alpha, lr_schedule", [
    ("sgd", 0.01, "invscaling"), ("momentum", 0.01, "adaptive"), ("momentum", 0.0, "invscaling"),
    ("adam", 0.01, "constant"), ("adam", 0.0, "invscaling")])
def test_graph_logic_with_the_fits_wrappers_equals_the_reference_loop(
        optimizer, alpha, lr_schedule, monkeypatch):
    """alpha and lr_schedule (a ScheduledState around the optimizer's, its count a
    device scalar in the graph) and a resumed fit, run eagerly, as the reference."""
    monkeypatch.setattr(TorchBackend, "executors",
                        lambda self: (graphs.TorchGraphs(graphs.eager_capture),))
    ref, ref_hists, ref_state = _wrapped_fit("reference", optimizer, alpha, lr_schedule)
    got, hists, state = _wrapped_fit("torch-graphs", optimizer, alpha, lr_schedule)
    assert [h.executor for h in hists] == ["torch-graphs"] * 2
    rtol = 1e-12  # the factor and Adam's corrections from a float64 device count
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-15)
    for h, r in zip(hists, ref_hists):
        np.testing.assert_allclose(h.loss, r.loss, rtol=rtol)
    assert state.state_scalars == ref_state.state_scalars


def test_a_schedule_of_the_callers_own_is_declined():
    eager = graphs.TorchGraphs(graphs.eager_capture)
    plan = make_plan("minibatch", 203, 16)
    own = nb.optim.scheduled(nb.sgd(0.1), lambda count: 0.5 if count < 10 else 0.1, on="grads")
    assert "schedule of the caller's own" in eager.supports(_task(plan, own))
    wrapped = nb.optim.l2_penalty(nb.optim.scheduled(
        nb.sgd(0.1), nb.optim.inverse_scaling(0.5, 203, 13), on="grads"), 1e-3)
    assert eager.supports(_task(plan, wrapped)) is None
    # Its host operations per epoch: Adam's count and the schedule's.
    assert graphs.TorchGraphs().launches(_task(plan, wrapped))["per_epoch"] == \
        graphs.TorchGraphs().launches(_task(plan, nb.sgd(0.1)))["per_epoch"] + 1


@pytest.mark.parametrize("lr_schedule", ["invscaling", "adaptive"])
def test_a_wrapped_step_reads_nothing_back_to_the_host(lr_schedule):
    from nnbackend.optim import inverse_scaling, l2_penalty, scheduled

    names = []
    capture = _profiled_capture(names)
    xp = TorchBackend.open("cpu")[0]
    plan = make_plan("minibatch", 203, 16)
    schedule = inverse_scaling(0.5, 203, 13) if lr_schedule == "invscaling" else None
    opt = l2_penalty(scheduled(get_optimizer("momentum", 0.01), schedule, 0.5, on="grads"),
                     1e-3, [True, False])
    task = _task(plan, on_namespace(opt, xp))
    epoch = graphs.TorchGraphs(capture).make_epoch(task)
    params = [xp.asarray(p) for p in (np.zeros((5, 1)), np.zeros(1))]
    _, state, _, _ = epoch(params, task.optimizer.init(params), None)
    assert state.count == 13 and isinstance(state.count, int)
    assert names and not {"aten::item", "aten::_local_scalar_dense"} & set(names)


@cuda
@pytest.mark.parametrize("optimizer, alpha, lr_schedule", [
    ("sgd", 0.01, "invscaling"), ("momentum", 0.01, "adaptive"), ("adam", 0.01, "constant")])
def test_cuda_graphs_with_the_fits_wrappers_equal_the_reference_loop(optimizer, alpha,
                                                                     lr_schedule):
    ref, ref_hists, _ = _wrapped_fit("reference", optimizer, alpha, lr_schedule, "cuda")
    got, hists, _ = _wrapped_fit("torch-graphs", optimizer, alpha, lr_schedule, "cuda")
    for hist in hists:
        _assert_captured(hist)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
