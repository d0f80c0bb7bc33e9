"""The CuPy kernels on torch and JAX arrays, crossed by DLPack (backends/cupy/bridge.py).

On the CPU: the bridge's conversions (NumPy standing in for CuPy, so the
round trips are real DLPack crossings of torch and JAX CPU arrays, checked
to share memory), the order of the work around the kernel (fake CuPy,
torch and JAX modules that record it), the whole bridge end to end with
the fused kernel's host build inside, the choice of executor and its
fallbacks where CuPy is missing (with the reason in ``History``), and
``nnbackend info``. On a GPU with CuPy: torch:cuda and jax:gpu fits take
the bridge and equal the reference loop.
"""

import contextlib
import importlib
import json
import re
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.backends import executor_hosts, executor_owner, get_backend
from nnbackend.backends.cupy import CupyBackend
from nnbackend.backends.cupy import bridge as B
from nnbackend.backends.cupy import fused as F
from nnbackend.engine import EXECUTORS
from nnbackend.optim import AdamState, MomentumState, ScheduledState
from conftest import needs_cxx



def _data(n=101, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.float64)


def _flat(model):
    return [np.asarray(model.backend.to_host(a), dtype=np.float64)
            for pair in model.params for a in pair]


# -- stand-ins: NumPy for CuPy, and CUDA's streams as records -----------------------

class _Log(list):
    """What happened, in order: ``(event, current stream)`` tuples."""

    def __init__(self):
        super().__init__()
        self.stream = None  # the fake CuPy's current stream


class _FakeCupyCuda:
    """``cupy.cuda``'s Device, ExternalStream and Stream, recording entries and exits."""

    def __init__(self, log):
        self.log = log

    @contextlib.contextmanager
    def Device(self, index):
        self.log.append(("device", index))
        yield

    def ExternalStream(self, ptr, device_id=-1):
        # As CuPy 14 does: deprecated, but the bridge's way to torch's stream.
        warnings.warn("ExternalStream is deprecated. Use Stream.from_external() instead",
                      DeprecationWarning, stacklevel=2)
        return _FakeStream(self.log, ("external", ptr))

    def Stream(self, non_blocking=False):
        return _FakeStream(self.log, ("own", non_blocking))


class _FakeStream:
    def __init__(self, log, name):
        self.log, self.name, self._outer = log, name, []

    def __enter__(self):
        self._outer.append(self.log.stream)
        self.log.stream = self.name
        self.log.append(("enter", self.name))
        return self

    def __exit__(self, *exc):
        self.log.append(("exit", self.name))
        self.log.stream = self._outer.pop()

    def synchronize(self):
        self.log.append(("synchronize", self.name))


def fake_cupy(log):
    """CuPy as far as the bridge uses it, over NumPy arrays (a real DLPack import)."""
    def from_dlpack(a):
        log.append(("to_kernel", log.stream))
        return np.from_dlpack(a)

    return SimpleNamespace(cuda=_FakeCupyCuda(log), from_dlpack=from_dlpack)


def fake_torch(log, torch, stream_ptr=1234):
    """torch with a CUDA current stream and a recording ``from_dlpack`` (real DLPack)."""
    def from_dlpack(a):
        log.append(("to_caller", log.stream))
        return torch.from_dlpack(a)

    cuda = SimpleNamespace(current_stream=lambda index: SimpleNamespace(cuda_stream=stream_ptr))
    return SimpleNamespace(cuda=cuda, from_dlpack=from_dlpack)


def fake_jax(log, jax):
    def block_until_ready(arrays):
        log.append(("block_until_ready", log.stream))
        return jax.block_until_ready(arrays)

    def from_dlpack(a):
        log.append(("to_caller", log.stream))
        return jax.dlpack.from_dlpack(a)

    return SimpleNamespace(block_until_ready=block_until_ready,
                           dlpack=SimpleNamespace(from_dlpack=from_dlpack))


def _address_torch(t):
    return t.data_ptr()


def _aligned_numpy(n, alignment=B.JAX_ALIGNMENT, offset=0):
    """A float32 NumPy array of ``n`` elements whose data starts ``offset`` bytes past
    an ``alignment``-byte boundary (float32: JAX without x64 would convert float64)."""
    raw = np.zeros(n + 2 * alignment // 4, dtype=np.float32)
    start = (-raw.ctypes.data % alignment + offset) // 4
    out = raw[start:start + n]
    assert out.ctypes.data % alignment == offset
    return out


# -- conversions ---------------------------------------------------------------------

def test_torch_cpu_tensors_cross_and_come_back_without_a_copy():
    torch = pytest.importorskip("torch")
    log = _Log()
    ordering = B.TorchOrdering(fake_torch(log, torch), fake_cupy(log), 0)
    t = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    (k,) = ordering.take([t])
    assert isinstance(k, np.ndarray) and k.shape == (3, 4)
    assert B.data_address(k) == _address_torch(t)
    t[0, 0] = 42.0  # one memory: a write on one side is seen on the other
    assert k[0, 0] == 42.0
    owned = np.arange(6.0)[1:]  # a view at an offset: torch takes it as it is
    (back,) = ordering.hand_back([owned])
    assert isinstance(back, torch.Tensor) and back.device.type == "cpu"
    assert _address_torch(back) == B.data_address(owned)
    np.testing.assert_array_equal(back.numpy(), owned)
    zero_d = np.full((), 3.5)  # a 0-D result (loss sum) comes back 0-D
    (loss,) = ordering.hand_back([zero_d])
    assert loss.shape == () and float(loss) == 3.5


def test_jax_cpu_arrays_cross_and_come_back_without_a_copy_where_aligned():
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    log = _Log()
    ordering = B.JaxOrdering(fake_jax(log, jax), fake_cupy(log), 0)
    # On the host whatever JAX's default device (NumPy stands in for CuPy).
    a = jax.device_put(jnp.arange(12.0, dtype=jnp.float32).reshape(3, 4), jax.devices("cpu")[0])
    (k,) = ordering.take([a])
    assert isinstance(k, np.ndarray) and B.data_address(k) == a.unsafe_buffer_pointer()
    np.testing.assert_array_equal(k, np.arange(12.0).reshape(3, 4))
    good = _aligned_numpy(5)
    good[:] = np.arange(5.0)
    (back,) = ordering.hand_back([good])
    assert back.dtype == np.float32
    assert isinstance(back, jax.Array) and back.unsafe_buffer_pointer() == good.ctypes.data
    np.testing.assert_array_equal(np.asarray(back), np.arange(5.0))
    # A view at an odd offset (the fused kernel's biases, its correct count) is
    # copied before JAX gets it: XLA assumes aligned buffers.
    odd = _aligned_numpy(5, offset=8)
    odd[:] = np.arange(5.0)
    crossed = B.aligned(odd, B.JAX_ALIGNMENT)
    assert crossed is not odd and B.data_address(crossed) != B.data_address(odd)
    np.testing.assert_array_equal(crossed, odd)
    assert B.aligned(good, B.JAX_ALIGNMENT) is good
    (back,) = ordering.hand_back([odd])
    np.testing.assert_array_equal(np.asarray(back), np.arange(5.0))
    # A column of an aligned buffer (a window's losses, out[:, 0]) starts aligned
    # but is strided, which JAX refuses to import: it is copied too.
    column = _aligned_numpy(10).reshape(5, 2)[:, 0]
    column[:] = np.arange(5.0)
    assert B.data_address(column) % B.JAX_ALIGNMENT == 0 and not column.flags.c_contiguous
    crossed = B.aligned(column, B.JAX_ALIGNMENT)
    assert crossed is not column and crossed.flags.c_contiguous
    (back,) = ordering.hand_back([column])
    np.testing.assert_array_equal(np.asarray(back), np.arange(5.0))


@pytest.mark.parametrize("state", [
    (),
    MomentumState([np.ones(2), np.zeros((2, 3))]),
    AdamState(7, [np.ones(2), np.ones(3)], [np.zeros(2), np.zeros(3)]),
    # A schedule's state holds the optimizer's own (fit(lr_schedule=...), the estimators').
    ScheduledState(26, [MomentumState([np.ones(2), np.zeros((2, 3))])]),
    ScheduledState(26, [()]),
])
def test_an_optimizer_state_flattens_and_rebuilds(state):
    arrays = B.state_arrays(state)
    inner = state.inner[0] if isinstance(state, ScheduledState) else state
    assert len(arrays) == sum(len(v) for v in inner if isinstance(v, list))
    assert all(isinstance(a, np.ndarray) for a in arrays)
    again = B.with_state_arrays(state, [a + 1 for a in arrays])
    assert type(again) is type(state)
    if state == ():
        assert again == ()
        return
    for old, new in zip(arrays, B.state_arrays(again)):
        np.testing.assert_array_equal(new, old + 1)
    if isinstance(state, AdamState):
        assert again.count == 7
    if isinstance(state, ScheduledState):
        assert again.count == 26 and type(again.inner[0]) is type(state.inner[0])


def test_cuda_index_reads_the_dlpack_device():
    torch = pytest.importorskip("torch")
    assert B.cuda_index(torch.zeros(2)) is None
    assert B.cuda_index(SimpleNamespace(__dlpack_device__=lambda: (B.KDL_CUDA, 3))) == 3
    assert B.cuda_index(object()) is None


# -- the order of the work -----------------------------------------------------------

def _recording_inner(log):
    """A CuPy epoch stand-in: records its launch and the stream it runs on."""
    def epoch(params, state, order):
        log.append(("launch", log.stream))
        new_state = B.with_state_arrays(state, [a + 1.0 for a in B.state_arrays(state)])
        return [p - 1.0 for p in params], new_state, np.ones(()), None

    return epoch


def check_torch_order(log):
    """The CuPy work runs inside torch's current stream: entered before anything
    crosses, the launch and both crossings on it, left only after the results
    are handed back."""
    events = [e for e, _ in log]
    assert ("enter", ("external", 1234)) in log and ("exit", ("external", 1234)) in log, log
    entered = log.index(("enter", ("external", 1234)))
    left = log.index(("exit", ("external", 1234)))
    launch = events.index("launch")
    assert entered < launch < left, log
    for i, (event, stream) in enumerate(log):
        if event in ("to_kernel", "launch", "to_caller"):
            assert stream == ("external", 1234), f"{event} ran on {stream}, not torch's stream"
            assert entered < i < left
    crossings_in = [i for i, e in enumerate(events) if e == "to_kernel"]
    crossings_out = [i for i, e in enumerate(events) if e == "to_caller"]
    assert crossings_in and crossings_out
    assert max(crossings_in) < launch < min(crossings_out), log


def check_jax_order(log):
    """JAX's arrays are ready before they cross; the CuPy stream is synchronized
    after the launch and before anything is handed to JAX."""
    events = [e for e, _ in log]
    launch = events.index("launch")
    ready = [i for i, e in enumerate(events) if e == "block_until_ready"]
    syncs = [i for i, e in enumerate(events) if e == "synchronize"]
    crossings_in = [i for i, e in enumerate(events) if e == "to_kernel"]
    crossings_out = [i for i, e in enumerate(events) if e == "to_caller"]
    assert ready and syncs and crossings_in and crossings_out, log
    assert min(ready) < min(crossings_in) and max(crossings_in) < launch, log
    assert launch < min(syncs) and max(syncs) < min(crossings_out), log
    for event, stream in log:
        if event in ("to_kernel", "launch"):
            assert stream == ("own", True), f"{event} ran on {stream}, not the bridge's stream"


def test_a_torch_epoch_raises_no_deprecation_warning_of_cupys():
    # CuPy 14 deprecates ExternalStream (the fake warns as it does): an epoch a
    # warning would bury a fit's own warnings.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log, out, _ = _run_torch_epoch()
    assert ("enter", ("external", 1234)) in log  # torch's stream, entered all the same


def _run_torch_epoch(ordering_class=B.TorchOrdering):
    torch = pytest.importorskip("torch")
    log = _Log()
    ordering = ordering_class(fake_torch(log, torch), fake_cupy(log), 0)
    params = [torch.ones(2, 3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)]
    state = MomentumState([torch.zeros(2, 3, dtype=torch.float64),
                           torch.zeros(3, dtype=torch.float64)])
    out = B.bridged_epoch(_recording_inner(log), ordering)(params, state, None)
    return log, out, torch


def _run_jax_epoch(ordering_class=B.JaxOrdering):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    log = _Log()
    ordering = ordering_class(fake_jax(log, jax), fake_cupy(log), 0)
    log.clear()
    # On the host whatever JAX's default device (NumPy stands in for CuPy).
    with jax.default_device(jax.devices("cpu")[0]):
        params = [jnp.ones((2, 3)), jnp.zeros(3)]
        state = AdamState(4, [jnp.zeros((2, 3)), jnp.zeros(3)], [jnp.zeros((2, 3)), jnp.zeros(3)])
        out = B.bridged_epoch(_recording_inner(log), ordering)(params, state, None)
    return log, out, jax


def test_torch_work_runs_on_torch_current_stream():
    log, (params, state, loss, correct), torch = _run_torch_epoch()
    check_torch_order(log)
    assert all(isinstance(p, torch.Tensor) for p in params + state.velocity + [loss])
    np.testing.assert_array_equal(params[0].numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(state.velocity[1].numpy(), np.ones(3))
    assert correct is None and loss.shape == ()


def test_jax_inputs_are_ready_and_outputs_synchronized():
    log, (params, state, loss, _), jax = _run_jax_epoch()
    check_jax_order(log)
    assert all(isinstance(a, jax.Array) for a in params + state.mu + state.nu + [loss])
    assert state.count == 4  # host numbers are kept as they are
    np.testing.assert_array_equal(np.asarray(state.nu[0]), np.ones((2, 3)))


def test_several_epochs_cross_once_each_way_in_the_same_order():
    """A CuPy epoch's ``epochs`` (several epochs in one call) is bridged too: one
    crossing each way for the call, on torch's stream (JAX: ready inputs, one
    sync), its 1-D loss sums handed back as the caller's arrays."""
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    log = _Log()
    inner = _recording_inner(log)

    def several(params, state, orders):
        log.append(("launch", log.stream))
        new_state = B.with_state_arrays(state, [a + len(orders) for a in B.state_arrays(state)])
        return [p - len(orders) for p in params], new_state, np.arange(len(orders)) * 1.0, None

    inner.epochs = several
    ordering = B.TorchOrdering(fake_torch(log, torch), fake_cupy(log), 0)
    epoch = B.bridged_epoch(inner, ordering)
    params = [torch.ones(2, 3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)]
    state = MomentumState([torch.zeros(2, 3, dtype=torch.float64),
                           torch.zeros(3, dtype=torch.float64)])
    log.clear()
    out_params, out_state, losses, correct = epoch.epochs(params, state, [None] * 3)
    check_torch_order(log)
    assert [e for e, _ in log].count("launch") == 1
    assert isinstance(losses, torch.Tensor) and losses.tolist() == [0.0, 1.0, 2.0]
    np.testing.assert_array_equal(out_params[0].numpy(), -2 * np.ones((2, 3)))
    np.testing.assert_array_equal(out_state.velocity[1].numpy(), 3 * np.ones(3))
    assert correct is None
    jax_log = _Log()
    jax_inner = _recording_inner(jax_log)
    jax_inner.epochs = lambda p, s, o: (jax_log.append(("launch", jax_log.stream))
                                        or ([a - 1.0 for a in p], s, np.zeros(len(o)), None))
    jax_ordering = B.JaxOrdering(fake_jax(jax_log, jax), fake_cupy(jax_log), 0)
    jax_log.clear()
    with jax.default_device(jax.devices("cpu")[0]):
        jnp = jax.numpy
        out = B.bridged_epoch(jax_inner, jax_ordering).epochs(
            [jnp.ones((2, 3)), jnp.zeros(3)], (), [None] * 2)
    check_jax_order(jax_log)
    assert isinstance(out[2], jax.Array) and out[2].shape == (2,)
    # An inner epoch without ``epochs`` gives a bridged one without it.
    assert not hasattr(B.bridged_epoch(_recording_inner(_Log()), ordering), "epochs")


def _keeping_inner(log, seen):
    """``_recording_inner`` that also keeps what each call was given and returned."""
    inner = _recording_inner(log)

    def epoch(params, state, order):
        out = inner(params, state, order)
        seen.append(((params, state), out[:2]))
        return out

    return epoch


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_an_epoch_handed_the_last_results_takes_their_cupy_arrays_without_crossing(framework):
    """The training loop hands an epoch the last one's results: they do not cross
    again (no DLPack import, no wait for JAX), and the CuPy epoch is given the
    very arrays, and on torch the very state, that it returned (so that it takes
    its state buffers as they are). Anything else crosses."""
    lib = pytest.importorskip(framework)
    log, seen = _Log(), []
    if framework == "torch":
        ordering = B.TorchOrdering(fake_torch(log, lib), fake_cupy(log), 0)
        make = lambda *shape: lib.zeros(*shape, dtype=lib.float64)  # noqa: E731
    else:
        ordering = B.JaxOrdering(fake_jax(log, lib), fake_cupy(log), 0)
        make = lambda *shape: lib.numpy.zeros(shape)  # noqa: E731
    epoch = B.bridged_epoch(_keeping_inner(log, seen), ordering)
    with contextlib.ExitStack() as stack:
        if framework == "jax":
            stack.enter_context(lib.default_device(lib.devices("cpu")[0]))
        params = [make(2, 3), make(3)]
        state = MomentumState([make(2, 3), make(3)])
        log.clear()
        params, state, _, _ = epoch(params, state, None)
        assert [e for e, _ in log].count("to_kernel") == 4
        for _ in range(2):
            log.clear()
            params, state, _, _ = epoch(params, state, None)
            events = [e for e, _ in log]
            assert "to_kernel" not in events and "block_until_ready" not in events, log
            assert events.count("launch") == 1 and events.count("to_caller") == 5
            (given_params, given_state), _ = seen[-1]
            (_, _), (returned_params, returned_state) = seen[-2]
            assert all(a is b for a, b in zip(given_params, returned_params))
            if framework == "torch":
                assert given_state is returned_state  # its buffers taken as they are
            else:
                # JAX reads what it was handed on a stream of its own: the CuPy
                # epoch gets those arrays in a new state, which it copies.
                assert given_state is not returned_state
                assert all(a is b for a, b in zip(given_state.velocity,
                                                  returned_state.velocity))
        # Three epochs of -1 on the parameters and +1 on the velocity.
        np.testing.assert_array_equal(np.asarray(params[0]), -3 * np.ones((2, 3)))
        np.testing.assert_array_equal(np.asarray(state.velocity[1]), 3 * np.ones(3))
        # The same arrays in a new state (a checkpoint's, a copy): the arrays need
        # no crossing, but the CuPy epoch gets a state of its own, not its last.
        log.clear()
        epoch(params, MomentumState(list(state.velocity)), None)
        assert "to_kernel" not in [e for e, _ in log]
        assert seen[-1][0][1] is not seen[-2][1][1]
        # Other arrays (earlier parameters, the divergence guard's) cross.
        log.clear()
        epoch([make(2, 3), params[1]], state, None)
        assert [e for e, _ in log].count("to_kernel") == 4
        if framework == "jax":
            assert "block_until_ready" in [e for e, _ in log]
        check = check_torch_order if framework == "torch" else check_jax_order
        check(log)


class _NoStreamTorch(B.TorchOrdering):
    """The ordering dropped: the stream is never entered."""

    def on_stream(self):
        return contextlib.nullcontext()


class _NoWaitJax(B.JaxOrdering):
    """The ordering dropped: no wait for the inputs, no sync before the hand-back."""

    def take(self, arrays):
        return [self.cupy.from_dlpack(a) for a in arrays]

    def hand_back(self, arrays):
        return [self.jax.dlpack.from_dlpack(a) for a in arrays]


def test_the_order_checks_fail_when_the_ordering_is_dropped():
    # The checks above hold the bridge to its ordering: without it, they fail.
    log, *_ = _run_torch_epoch(_NoStreamTorch)
    with pytest.raises(AssertionError):
        check_torch_order(log)
    log, *_ = _run_jax_epoch(_NoWaitJax)
    with pytest.raises(AssertionError):
        check_jax_order(log)


# -- the whole bridge on the CPU: the fused kernel's host build inside ---------------

class _HostFused:
    """``cupy-fused`` with the kernel compiled for the host, on NumPy arrays."""

    name = "cupy-fused"

    def supports(self, task):
        return F.unsupported(task.spec, task.plan, task.optimizer, task.layer_sizes,
                             str(task.X.dtype))

    def make_epoch(self, task):
        epoch = F.make_epoch(np, task.spec, task.optimizer, task.plan, task.X, task.Y,
                             task.multiclass, task.layer_sizes, str(task.X.dtype),
                             F.host_launcher)

        def zero_d(params, state, order):
            # NumPy indexes a scalar out where CuPy gives a 0-D array: give the latter.
            params, state, loss, correct = epoch(params, state, order)
            return params, state, np.asarray(loss), None if correct is None else np.asarray(correct)

        zero_d.path = epoch.path
        # A window's epochs in one call, as on a GPU: its losses a strided column.
        zero_d.epochs = epoch.epochs
        return zero_d


@pytest.fixture
def host_bridge(monkeypatch):
    """The bridge as if on a GPU: a CUDA index for every array, NumPy for CuPy (its
    backend's executor the host build), and the real orderings over fake streams."""
    numpy_backend = get_backend("numpy")
    kernel_backend = SimpleNamespace(name="cupy", xp=numpy_backend.xp, device="cpu",
                                     index_dtype=numpy_backend.index_dtype,
                                     executors=lambda: (_HostFused(),))
    log = _Log()

    def make_ordering(framework, index):
        if framework == "torch":
            import torch

            return B.TorchOrdering(fake_torch(log, torch), fake_cupy(log), index)
        import jax

        return B.JaxOrdering(fake_jax(log, jax), fake_cupy(log), index)

    monkeypatch.setattr(B, "cuda_index", lambda a: 0)
    monkeypatch.setattr(B, "load_kernel_backend", lambda index: kernel_backend)
    monkeypatch.setattr(B, "make_ordering", make_ordering)
    return log


@needs_cxx
@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_bridge_runs_the_host_kernel_and_equals_the_reference(host_bridge, backend,
                                                                  optimizer):
    pytest.importorskip(backend)
    X, y = _data()
    runs = {}
    for executor in ("reference", "auto"):
        model = nb.MLP([5, 7, 1], hidden_activation="tanh", loss="bce", backend=backend,
                       device="cpu", dtype="float64", seed=1)
        given = [a for pair in model.params for a in pair]  # the caller's own arrays
        start = _flat(model)
        hist = model.fit(X, y, epochs=3, lr=0.05, batch_size=8, optimizer=optimizer, seed=4,
                         executor=executor)
        runs[executor] = (model, hist)
        # ...untouched: the kernel worked on copies of what crossed.
        for a, b in zip(given, start):
            np.testing.assert_array_equal(np.asarray(model.backend.to_host(a)), b)
    (ref, ref_hist), (got, hist) = runs["reference"], runs["auto"]
    # X and Y crossed once, and the parameters and state at the first epoch
    # only: each later epoch was handed the last one's results.
    n_state = {"sgd": 0, "adam": 8}[optimizer]
    assert [e for e, _ in host_bridge].count("to_kernel") == 2 + 4 + n_state
    assert hist.executor == "cupy-fused" and ref_hist.executor == "reference"
    assert hist.executor_reason.startswith("cupy-fused: CuPy's cupy-fused kernel on cuda:0")
    assert "crossed by DLPack" in hist.executor_reason
    # ...and how a window's epochs run, as the CuPy executor's epoch says.
    assert hist.executor_reason.endswith("; a window of epochs: a window's epochs launched back "
                                         "to back, one launch an epoch; the first of the "
                                         f"{backend} backend's executors that supports this fit")
    for a, b in zip(_flat(got), _flat(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hist.loss, ref_hist.loss, rtol=1e-12)
    assert hist.accuracy == pytest.approx(ref_hist.accuracy, abs=1e-12)
    # The caller's arrays of the caller's library come back, on its device.
    assert all(got.backend.of_array(a) is not None for pair in got.params for a in pair)
    assert str(got.backend.device) == str(ref.backend.device)
    # The optimizer state carries on for a resumed fit.
    if optimizer == "adam":
        assert got.train_state.state_scalars["count"] == 3 * 13
        for name, arrays in ref.train_state.state_arrays.items():
            for a, b in zip(got.train_state.state_arrays[name], arrays):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-11, atol=1e-14)


# -- the choice, and its fallbacks ---------------------------------------------------

def test_executor_names_are_shared_and_owned_by_cupy():
    from nnbackend.backends.jax import JaxBackend
    from nnbackend.backends.torch import TorchBackend

    # The kernels are bridged; CuPy's graphs are not (torch's graphs and JAX's scan
    # take those fits on their own arrays).
    assert CupyBackend.executor_names == ("cupy-fused", "cupy-batch", "cupy-graphs")
    assert TorchBackend.executor_names == (*CupyBackend.bridged_names, "torch-graphs")
    assert JaxBackend.executor_names == (*CupyBackend.bridged_names, "jax-scan", "jax-batch")
    assert len(EXECUTORS) == len(set(EXECUTORS))
    for name in CupyBackend.bridged_names:
        assert executor_owner(name) == "cupy"
        assert executor_hosts(name) == ("cupy", "torch", "jax")
    assert executor_owner("cupy-graphs") == "cupy" and executor_hosts("cupy-graphs") == ("cupy",)
    assert executor_owner("torch-graphs") == "torch" and executor_hosts("jax-scan") == ("jax",)
    assert executor_owner("jax-batch") == "jax"


def test_numpy_fits_record_the_reference_loop():
    X, y = _data()
    hist = nb.MLP([5, 1], backend="numpy").fit(X, y, epochs=1)
    assert hist.executor == "reference"
    assert hist.executor_reason == "reference: the numpy backend has no fast executor"
    hist = nb.MLP([5, 1], backend="numpy").fit(X, y, epochs=1, executor="reference")
    assert hist.executor_reason == "reference: asked for (executor='reference')"


def test_torch_cpu_fits_say_why_each_executor_declined():
    pytest.importorskip("torch")
    X, y = _data()
    hist = nb.MLP([5, 1], backend="torch").fit(X, y, epochs=1, batch_size=8)
    assert hist.executor == "reference"
    reason = hist.executor_reason
    assert reason.startswith("reference: no executor supports this fit: cupy-fused: the torch "
                             "arrays are on cpu, not a CUDA GPU")
    assert "torch-graphs: CUDA graphs need a CUDA device, not 'cpu'" in reason
    with pytest.raises(ValueError, match="executor 'cupy-fused' does not apply here: the torch "
                                         "arrays are on cpu, not a CUDA GPU"):
        nb.MLP([5, 1], backend="torch").fit(X, y, epochs=1, executor="cupy-fused")


def test_jax_cpu_fits_take_the_scan_and_say_why_not_the_kernel():
    pytest.importorskip("jax")
    X, y = _data()
    hist = nb.MLP([5, 1], backend="jax", device="cpu").fit(X, y, epochs=1, batch_size=8)
    assert hist.executor == "jax-scan"
    assert hist.executor_reason.startswith(
        "jax-scan: the first of the jax backend's executors that supports this fit; "
        "cupy-fused declined: the jax arrays are on cpu")
    hist = nb.MLP([5, 1], backend="jax", device="cpu").fit(X, y, epochs=1, mode="batch")
    assert hist.executor == "jax-batch"
    assert "jax-scan declined: batch mode is one step per epoch" in hist.executor_reason


def test_a_cupy_executor_is_refused_off_its_backends():
    X, y = _data()
    with pytest.raises(ValueError, match=r"executor 'cupy-fused' needs the cupy backend \(or "
                                         r"torch or jax, where its arrays are on a CUDA GPU\), "
                                         r"not 'numpy'"):
        nb.MLP([5, 1], backend="numpy").fit(X, y, epochs=1, executor="cupy-fused")


@pytest.fixture
def cuda_without_cupy(monkeypatch):
    """Every array on CUDA device 0, and CuPy missing (whatever this machine has)."""
    # The frameworks first: a first `import torch` with CuPy blanked out of
    # sys.modules can fail half-way (a lookup of cupy's module spec raises), and a
    # half-imported torch then fails every later import in this process (seen in a
    # GPU run's pytest-xdist worker, 2026-12-04: "partially initialized module 'torch'").
    for name in ("torch", "jax"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    monkeypatch.setattr(B, "cuda_index", lambda a: 0)
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ModuleNotFoundError


CUPY_MISSING = "CuPy is not installed: pip install 'nnbackend[cuda12]' or 'nnbackend[cuda13]'"


def test_without_cupy_torch_falls_back_and_says_why(cuda_without_cupy, monkeypatch):
    pytest.importorskip("torch")
    from nnbackend.backends.torch import TorchBackend
    from nnbackend.backends.torch.graphs import TorchGraphs, eager_capture

    X, y = _data()
    hist = nb.MLP([5, 1], backend="torch").fit(X, y, epochs=1, batch_size=8)
    assert hist.executor == "reference"
    assert f"cupy-fused: {CUPY_MISSING}" in hist.executor_reason
    # Where the CUDA-graph executor applies (here its eager stand-in), it runs instead.
    monkeypatch.setattr(TorchBackend, "executors",
                        lambda self: (*B.bridges("torch"), TorchGraphs(eager_capture)))
    hist = nb.MLP([5, 1], backend="torch").fit(X, y, epochs=1, batch_size=8)
    assert hist.executor == "torch-graphs"
    assert f"cupy-fused declined: {CUPY_MISSING}" in hist.executor_reason
    with pytest.raises(ValueError, match=re.escape(f"executor 'cupy-fused' does not apply here: "
                                                   f"{CUPY_MISSING}")):
        nb.MLP([5, 1], backend="torch").fit(X, y, epochs=1, executor="cupy-fused")


def test_without_cupy_jax_falls_back_to_the_scan_and_says_why(cuda_without_cupy):
    pytest.importorskip("jax")
    X, y = _data()
    hist = nb.MLP([5, 1], backend="jax").fit(X, y, epochs=1, batch_size=8)
    assert hist.executor == "jax-scan"
    assert f"cupy-fused declined: {CUPY_MISSING}" in hist.executor_reason
    with pytest.raises(ValueError, match=re.escape(f"does not apply here: {CUPY_MISSING}")):
        nb.MLP([5, 1], backend="jax").fit(X, y, epochs=1, executor="cupy-fused")


# -- nnbackend info ------------------------------------------------------------------

def _info(capsys, *args):
    from nnbackend.cli import main

    assert main(["info", *args]) == 0
    return capsys.readouterr().out


def test_info_lists_each_backends_executors_in_order(capsys):
    pytest.importorskip("torch")
    rows = {r["backend"]: r for r in json.loads(_info(capsys, "--json"))}
    assert [e["name"] for e in rows["numpy"]["executors"]] == ["reference"]
    torch_rows = rows["torch"]["executors"]
    assert [e["name"] for e in torch_rows] == [*CupyBackend.bridged_names, "torch-graphs",
                                               "reference"]
    assert torch_rows[0]["label"] == "cupy-fused via DLPack"
    if rows["torch"]["device"] == "cpu":
        assert not torch_rows[0]["usable"]
        assert "the torch arrays are on cpu, not a CUDA GPU" in torch_rows[0]["reason"]
    assert torch_rows[-1] == {"name": "reference", "label": "reference", "usable": True,
                              "fits": ["mini-batch", "batch"], "reason": None}
    if rows["jax"]["available"]:
        jax_rows = {e["name"]: e for e in rows["jax"]["executors"]}
        assert list(jax_rows)[-3:] == ["jax-scan", "jax-batch", "reference"]
        assert jax_rows["jax-scan"]["usable"] and jax_rows["jax-scan"]["fits"] == ["mini-batch"]
        assert jax_rows["jax-batch"]["usable"] and jax_rows["jax-batch"]["fits"] == ["batch"]
    if rows["dask"]["available"]:
        assert [(e["name"], e["usable"]) for e in rows["dask"]["executors"]] == [
            ("dask-chunks", True), ("reference", False)]
    text = _info(capsys, "--backend", "torch")
    assert "executors, in the order auto tries them" in text
    assert "cupy-fused via DLPack: " in text and "torch-graphs: " in text
    assert "reference: runs mini-batch and batch fits" in text


def test_info_says_when_cupy_is_missing(capsys, cuda_without_cupy):
    pytest.importorskip("torch")
    text = _info(capsys, "--backend", "torch")
    assert f"cupy-fused via DLPack: not here: {CUPY_MISSING}" in text


# -- on a GPU with CuPy --------------------------------------------------------------

def _gpu_backend(name, device):
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no GPU")
    except Exception as exc:
        pytest.skip(f"needs CuPy and a CUDA GPU ({type(exc).__name__}: {exc})")
    try:
        return get_backend(name, device)
    except nb.BackendUnavailableError as exc:
        pytest.skip(f"backend {name}:{device} unavailable: {exc}")


@pytest.mark.parametrize("name, device", [("torch", "cuda"), ("jax", "gpu")])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("mode, batch_size", [("sgd", 1), ("minibatch", 16)])
def test_gpu_fits_take_the_bridge_and_equal_the_reference(name, device, optimizer, mode,
                                                          batch_size):
    backend = _gpu_backend(name, device)
    X, y = _data()
    results = {}
    for dtype, epochs in (("float64", 3), ("float32", 1)):
        for executor in ("reference", "auto"):
            # float64's reference loop on NumPy: the same draws and sums to 1e-12,
            # where the framework's own eager loop on the GPU took 10-25 s a case.
            on = get_backend("numpy") if (dtype, executor) == ("float64", "reference") \
                else backend
            model = nb.MLP([5, 7, 6, 1], hidden_activation="tanh", loss="bce", backend=on,
                           dtype=dtype, seed=1)
            hist = model.fit(X, y, mode=mode, batch_size=batch_size, epochs=epochs, lr=0.05,
                             optimizer=optimizer, seed=4, executor=executor)
            results[dtype, executor] = (model, hist)
    # The bounds of tests/test_cupy_fused.py's fits on CuPy.
    for dtype, rtol in (("float64", 1e-9), ("float32", 1e-4)):
        (ref, ref_hist), (got, hist) = results[dtype, "reference"], results[dtype, "auto"]
        assert hist.executor == "cupy-fused", hist.executor_reason
        assert "crossed by DLPack" in hist.executor_reason
        for a, b in zip(_flat(got), _flat(ref)):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2)
        np.testing.assert_allclose(hist.loss, ref_hist.loss, rtol=rtol)
        # The caller's array type, on the caller's device.
        for pair in got.params:
            for a in pair:
                owner = got.backend.of_array(a)
                assert owner is not None and owner.name == name
                assert str(owner.device) == str(backend.device)


def test_torch_fit_on_a_side_stream_equals_the_default_stream():
    backend = _gpu_backend("torch", "cuda")
    import torch

    X, y = _data()
    flats = []
    for use_side in (False, True):
        model = nb.MLP([5, 7, 1], loss="bce", backend=backend, dtype="float64", seed=1)
        side = torch.cuda.Stream(backend.device)
        with torch.cuda.stream(side) if use_side else contextlib.nullcontext():
            hist = model.fit(X, y, epochs=2, lr=0.05, batch_size=8, seed=4)
        torch.cuda.synchronize()
        assert hist.executor == "cupy-fused"
        flats.append(_flat(model))
    for a, b in zip(*flats):
        np.testing.assert_array_equal(a, b)


# -- benchmarks/bridge_time.py: the bridge's pieces, timed ----------------------------

@needs_cxx
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_the_bridge_timing_splits_an_epoch_and_sees_the_reuse(host_bridge, framework):
    """With the host build as the kernel: every piece timed, the arrays crossed at the
    first epoch only (the untimed one), and a crossing timed alone."""
    pytest.importorskip(framework)
    from conftest import load_script

    script = load_script("bridge_time")
    device = "cpu"
    got = script.epoch_pieces(framework, device, "small", "sgd", 40, rounds=3)
    assert got["executor"] == "cupy-fused"
    assert all(got[k] > 0 for k in ("epoch", "take_alone", "kernel", "hand_back"))
    assert got["take"] == 0 and got["crossed"] == 0  # the timed epochs reused the last results
    assert got["kernel"] + got["hand_back"] < got["epoch"]
    line = script._line("small sgd 40", f"{framework}:cpu", got, 3)
    assert "crossed in 0 of 3 epochs, a crossing alone" in line
    # Left as it was.
    assert script.B.bridged_epoch.__name__ == "bridged_epoch"


def test_the_bridge_timing_says_no_gpu_and_exits_0(capsys):
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here: the script would time the GPU")
    except ImportError:
        pass
    from conftest import load_script

    assert load_script("bridge_time").main([]) == 0
    assert "bridge_time: not measured, no GPU for CuPy here" in capsys.readouterr().out
