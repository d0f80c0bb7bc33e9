"""One kernel, three front ends: the CuPy executors on torch:cuda and jax:gpu arrays.

The CuPy backend's executors (``cupy-fused``: a whole small-batch epoch in
one kernel launch; and whichever :meth:`CupyBackend.executors` lists) are
written for CuPy arrays. A torch tensor or a JAX array on a CUDA GPU is the
same kind of memory, so a torch:cuda or jax:gpu fit can run those kernels
unchanged: :class:`CupyBridge` wraps one of them under its own name, crosses
the caller's arrays to CuPy by DLPack (no copy), runs the CuPy epoch, and
crosses the results back to the caller's framework, on the caller's device.

Per fit, once: ``X`` and ``Y`` cross (views, no copy) and the CuPy executor
builds its epoch (compiles its kernel) for the equivalent CuPy task
(:func:`dataclasses.replace` of the caller's, with the CuPy backend on the
same GPU). Per epoch: the parameters and the optimizer state's arrays
cross in, the CuPy epoch runs, and its results (parameters, state, loss
sum and correct count, 0-D arrays included) cross out: a few DLPack calls
per array, whatever the number of steps; nothing per step. Handed back the
very arrays the last epoch handed out (what the training loop does), an
epoch takes the CuPy arrays they came from instead of crossing them again,
and on torch the CuPy epoch gets back its own optimizer state, whose buffers
it then takes as they are (:class:`.flat.OwnState`) instead of copying them.
On JAX it copies them: JAX may still be reading them on its own stream.

Stream ordering is explicit, behind a small seam (an *ordering* object:
:class:`TorchOrdering`, :class:`JaxOrdering`; :func:`make_ordering` picks
one), because DLPack shares memory, not the order of the work on it:

- **torch**: the CuPy work runs *on torch's current stream* (entered as a
  ``cupy.cuda.ExternalStream`` around the epoch). CuPy's ``from_dlpack``
  passes its current stream (torch's) to ``torch.Tensor.__dlpack__``, and
  ``torch.from_dlpack`` passes torch's current stream to CuPy's
  ``__dlpack__``: both sides see one stream, so torch's work before the
  epoch, the kernel, and torch's work after it run in that order on the
  device, and torch's caching allocator (which orders reuse by stream)
  stays safe. No host wait.
- **jax**: JAX exposes no stream to run on. The CuPy work runs on a stream
  of the bridge's own; before the epoch ``jax.block_until_ready`` waits for
  the arrays that cross (whatever jaxlib does with DLPack's stream
  argument), and at its end the CuPy stream is synchronized once before the
  results go to JAX. That one host wait per epoch is what makes it correct
  without relying on JAX's stream handling: the results are complete
  before JAX reads them on any stream, and the kernel has finished reading
  the JAX buffers it was lent before JAX may free and reuse them. It costs
  nothing the loop does not already pay: the epoch's figures, read right
  after, wait for the same work. JAX arrays must also be aligned (XLA
  assumes it of the buffers it is given): a result that is a view at an odd
  offset into a CuPy buffer (the fused kernel's parameters are views of
  one flat buffer) is copied on the CuPy stream first (:func:`aligned`).

Memory: CuPy's pool and torch's caching allocator (or JAX's) both hold GPU
memory; with JAX, set ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` so that CuPy
finds any (JAX otherwise takes 75% of the GPU when its client starts;
``backend="auto"`` sets it where unset, :func:`..auto.auto_candidates`).

The tests replace :func:`cuda_index`, :func:`load_kernel_backend` and
:func:`make_ordering` to run the bridge on the CPU, with NumPy standing in
for CuPy and the fused kernel's host build for its CUDA build.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import warnings
from typing import Any, Callable

from ..base import BackendUnavailableError
from . import CupyBackend
from .flat import with_window_path

__all__ = ["CupyBridge", "JAX_ALIGNMENT", "JaxOrdering", "KDL_CUDA", "TorchOrdering", "aligned",
           "bridged_epoch", "bridges", "cuda_index", "data_address", "load_kernel_backend",
           "make_ordering", "state_arrays", "with_state_arrays"]

# DLPack's device type of CUDA device memory (DLDeviceType kDLCUDA).
KDL_CUDA = 2
# Bytes a buffer handed to JAX is aligned to: XLA's GPU kernels assume 16,
# its CPU ones 64; CuPy's allocations are aligned to 256 or more, so only a
# view at an offset ever needs the copy.
JAX_ALIGNMENT = 64
FRAMEWORKS = ("torch", "jax")


def bridges(framework: str) -> tuple:
    """The CuPy backend's executors for ``framework``'s arrays, in CuPy's order.

    Parameters
    ----------
    framework : {"torch", "jax"}

    Returns
    -------
    tuple of CupyBridge
        One per name in ``CupyBackend.bridged_names`` (the CuPy kernels; not
        ``cupy-graphs``, where torch's graphs and JAX's scan do better), so that
        a kernel executor added there is bridged with nothing changed here.
    """
    return tuple(CupyBridge(name, framework) for name in CupyBackend.bridged_names)


# -- the optimizer state's arrays ---------------------------------------------------

def state_arrays(state) -> list:
    """The arrays of an optimizer state, in field order.

    Parameters
    ----------
    state : NamedTuple or ()
        An optimizer state (``nnbackend.optim``): fields that are lists of
        arrays (one per parameter), lists of inner states (a
        ``ScheduledState``'s wrapped optimizer's) or host numbers (Adam's count).

    Returns
    -------
    list of arrays
        Every array of every list field, inner states' in turn; [] for a
        stateless ``()``.
    """
    if not hasattr(state, "_fields"):
        return []
    # States are tuples (NamedTuples, sgd's ()); arrays never are.
    return [a for value in state if isinstance(value, list)
            for item in value for a in (state_arrays(item) if isinstance(item, tuple) else [item])]


def with_state_arrays(state, arrays):
    """``state`` with its list fields' arrays replaced, in order, by ``arrays``.

    The inverse of :func:`state_arrays`: ``with_state_arrays(s,
    state_arrays(s))`` equals ``s``; host numbers (Adam's count) are kept.
    """
    return _refilled(state, iter(arrays))


def _refilled(state, it):
    if not hasattr(state, "_fields"):
        return state
    return type(state)(*[[_refilled(item, it) if isinstance(item, tuple) else next(it)
                          for item in value] if isinstance(value, list) else value
                         for value in state])


# -- where the arrays are -----------------------------------------------------------

def cuda_index(a) -> int | None:
    """The CUDA device ``a`` lives on (its index), from its DLPack device; None off CUDA.

    Parameters
    ----------
    a : array with ``__dlpack_device__`` (a torch tensor, a JAX array)
    """
    try:
        kind, index = a.__dlpack_device__()
    except (AttributeError, TypeError, ValueError, BufferError):
        return None
    return int(index) if int(kind) == KDL_CUDA else None


def _device_of(a, backend):
    """``a``'s device, for a message (the backend's where it cannot be read)."""
    try:
        import array_api_compat

        return array_api_compat.device(a)
    except Exception:  # any array the caller may hand in: the message must not fail
        return backend.device


def load_kernel_backend(index: int):
    """The CuPy backend on CUDA device ``index``.

    Raises
    ------
    BackendUnavailableError
        CuPy is not installed, does not import, or sees no such GPU; the
        message says which, and how to install CuPy.
    """
    try:
        importlib.import_module("cupy")
    except ModuleNotFoundError as exc:
        if exc.name != "cupy":
            raise BackendUnavailableError(
                f"CuPy does not import (ModuleNotFoundError: {exc}): {CupyBackend.install_hint}"
            ) from None
        raise BackendUnavailableError(
            f"CuPy is not installed: {CupyBackend.install_hint}") from None
    except Exception as exc:  # a broken install (CUDA libraries missing) raises anything
        raise BackendUnavailableError(
            f"CuPy does not import ({type(exc).__name__}: {exc}): {CupyBackend.install_hint}"
        ) from None
    return CupyBackend.load("cupy", index)


def data_address(a) -> int:
    """The address of ``a``'s first element: a CuPy array's ``data.ptr``, or
    (NumPy, the CPU tests' stand-in for CuPy) its array interface's."""
    ptr = getattr(getattr(a, "data", None), "ptr", None)
    if ptr is None:
        ptr = a.__array_interface__["data"][0]
    return int(ptr)


def aligned(a, alignment: int):
    """``a`` itself where its data is aligned to ``alignment`` bytes and C-contiguous,
    else a C-contiguous copy (made on the current stream: a new allocation, which
    is aligned). JAX imports compact strides only: a window's losses, a column
    ``out[:, 0]`` of the kernel's output, start aligned but step two elements."""
    if data_address(a) % alignment == 0 and a.flags.c_contiguous:
        return a
    return a.copy()


# -- the orderings (the seam) -------------------------------------------------------
#
# An ordering says how the CuPy work is ordered with the caller's:
#   on_stream()        a context: CuPy's current device and stream for the kernel side
#   take(arrays)       the caller's arrays as CuPy arrays (DLPack, no copy), safe to
#                      read from that stream; called inside on_stream()
#   hand_back(arrays)  CuPy results as the caller's arrays, safe for the caller to
#                      read; called inside on_stream(), after the kernel side's work
#   description        how, in words (History.executor_reason quotes it)

def _external_stream(cuda, ptr: int, index: int):
    """``cupy.cuda.ExternalStream(ptr, index)``, without CuPy 14's DeprecationWarning
    (one an epoch otherwise): it still wraps torch's stream as the bridge needs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ExternalStream is deprecated", DeprecationWarning)
        return cuda.ExternalStream(ptr, index)


class TorchOrdering:
    """torch: the CuPy work runs on torch's current CUDA stream (see the module notes).

    Parameters
    ----------
    torch, cupy : modules
        The two libraries (the tests pass stand-ins).
    index : int
        The CUDA device.
    """

    # The CuPy epoch may update its own state's buffers in place (flat.OwnState):
    # torch's reads of them (the loop's copy of a window's state) run on the
    # same stream, before the next epoch's writes.
    state_in_place = True

    description = ("run on torch's current CUDA stream (a CuPy ExternalStream; both DLPack "
                   "crossings name that stream), so torch's work before and after is ordered "
                   "with it on the device, with no host wait")

    def __init__(self, torch, cupy, index: int):
        self.torch, self.cupy, self.index = torch, cupy, index

    @contextlib.contextmanager
    def on_stream(self):
        # Read at every epoch: the caller may have switched torch's stream
        # (``with torch.cuda.stream(s):``) since the last one.
        ptr = self.torch.cuda.current_stream(self.index).cuda_stream
        cuda = self.cupy.cuda
        # The device first: CuPy's current stream is per device.
        with cuda.Device(self.index), _external_stream(cuda, ptr, self.index):
            yield

    def take(self, arrays) -> list:
        # cupy.from_dlpack passes its current stream (torch's, entered above)
        # to Tensor.__dlpack__: the same stream, so no wait is needed.
        return [self.cupy.from_dlpack(a) for a in arrays]

    def hand_back(self, arrays) -> list:
        # torch.from_dlpack passes torch's current stream to CuPy's __dlpack__,
        # which is CuPy's current stream here: the same again.
        return [self.torch.from_dlpack(a) for a in arrays]


class JaxOrdering:
    """jax: a CuPy stream of its own, ready inputs before, one sync after (see the
    module notes).

    Parameters
    ----------
    jax, cupy : modules
        The two libraries (the tests pass stand-ins).
    index : int
        The CUDA device.
    alignment : int
        Bytes every array handed to JAX is aligned to (:func:`aligned`).
    """

    # Not in place: JAX's reads of a state it was handed (the loop's copy of a
    # window's state) run on JAX's stream, which nothing orders before the next
    # epoch's writes on this one; JAX's arrays are immutable, too. The CuPy epoch
    # is given a new state over the same arrays, which it copies into new buffers.
    state_in_place = False

    description = ("run on a CuPy stream of its own, after jax.block_until_ready on the "
                   "arrays that cross, and synchronized once at the epoch's end before the "
                   "results go to JAX (JAX exposes no stream to share)")

    def __init__(self, jax, cupy, index: int, alignment: int = JAX_ALIGNMENT):
        self.jax, self.cupy, self.index, self.alignment = jax, cupy, index, alignment
        with cupy.cuda.Device(index):
            # Non-blocking: ordered only by what this class does, not by the
            # legacy default stream's implicit synchronization.
            self.stream = cupy.cuda.Stream(non_blocking=True)

    @contextlib.contextmanager
    def on_stream(self):
        with self.cupy.cuda.Device(self.index), self.stream:
            yield

    def take(self, arrays) -> list:
        # JAX's pending writes to them are done: what they hold is final.
        self.jax.block_until_ready(list(arrays))
        return [self.cupy.from_dlpack(a) for a in arrays]

    def hand_back(self, arrays) -> list:
        arrays = [aligned(a, self.alignment) for a in arrays]  # copies on this stream
        # The kernel side's work is finished: JAX may read the results on any
        # stream, and free the buffers it lent.
        self.stream.synchronize()
        return [self.jax.dlpack.from_dlpack(a) for a in arrays]


def make_ordering(framework: str, index: int):
    """The ordering of ``framework``'s work with CuPy's on CUDA device ``index``."""
    cupy = importlib.import_module("cupy")
    if framework == "torch":
        return TorchOrdering(importlib.import_module("torch"), cupy, index)
    jax = importlib.import_module("jax")
    importlib.import_module("jax.dlpack")
    return JaxOrdering(jax, cupy, index)


# -- the epoch ----------------------------------------------------------------------

def bridged_epoch(inner_epoch: Callable, ordering) -> Callable:
    """The caller's ``epoch(params, state, order)`` around a CuPy one.

    Parameters
    ----------
    inner_epoch : callable
        ``epoch(params, state, order) -> (params, state, loss_sum, correct)``
        on CuPy arrays (a CuPy executor's ``make_epoch``).
    ordering : TorchOrdering, JaxOrdering or a stand-in
        Crosses the arrays and orders the work (see the module notes).

    Returns
    -------
    callable
        The same signature on the caller's arrays: ``params`` a list of
        arrays (W: (fan_in, fan_out), b: (fan_out,)), ``state`` the
        optimizer's NamedTuple of lists of arrays (or ``()``), ``order``
        the host row order (n_samples,) or None; it returns the caller's
        arrays, ``loss_sum`` and ``correct`` as 0-D arrays (``correct``
        None where the CuPy epoch gives none). Handed the arrays (and
        state) that its last call returned, it gives the CuPy epoch the
        CuPy arrays (and state) they came from, with no crossing.
    """
    # What the last call handed back: the caller's arrays and state, and the
    # CuPy ones they share memory with. The training loop hands an epoch the
    # previous one's results, and those need not cross again.
    last = None

    def taken(params, state):
        arrays = [*params, *state_arrays(state)]
        if last is not None and len(arrays) == len(last.caller) and all(
                a is b for a, b in zip(arrays, last.caller)):
            # The same objects: no crossing and no wait (they were complete when
            # handed back, and neither side has written them since). The state the
            # CuPy epoch returned goes back to it as that object, so that its
            # buffers are taken as they are (flat.OwnState) instead of copied,
            # where the ordering allows it.
            if state is last.caller_state and getattr(ordering, "state_in_place", True):
                return last.kernel[:len(params)], last.kernel_state
            return last.kernel[:len(params)], with_state_arrays(state, last.kernel[len(params):])
        given = ordering.take(arrays)
        return given[:len(params)], with_state_arrays(state, given[len(params):])

    def crossed(run, params, state, order):
        nonlocal last
        n_params = len(params)
        with ordering.on_stream():
            # At most one take and one hand_back per call: constant work, whatever the steps.
            params_in, state_in = taken(params, state)
            params_k, state_k, loss, correct = run(params_in, state_in, order)
            figures = [loss] if correct is None else [loss, correct]
            kernel = [*params_k, *state_arrays(state_k)]
            back = ordering.hand_back([*kernel, *figures])
        n_state = len(kernel) - n_params
        out_params = back[:n_params]
        out_state = with_state_arrays(state_k, back[n_params:len(kernel)])
        out_correct = None if correct is None else back[-1]
        last = _HandedBack(caller=[*out_params, *state_arrays(out_state)], caller_state=out_state,
                           kernel=kernel, kernel_state=state_k)
        return out_params, out_state, back[n_params + n_state], out_correct

    def epoch(params, state, order):
        return crossed(inner_epoch, params, state, order)

    inner_epochs = getattr(inner_epoch, "epochs", None)
    if inner_epochs is not None:
        # Several epochs in one call (see engine's contract): one crossing each
        # way for all of them; the loss sums and correct counts come back 1-D.
        epoch.epochs = lambda params, state, orders: crossed(inner_epochs, params, state, orders)
    return epoch


@dataclasses.dataclass(frozen=True)
class _HandedBack:
    """What a bridged call handed back: the caller's arrays (parameters, then the
    state's), its state, and the CuPy arrays and state they came from."""

    caller: list
    caller_state: Any
    kernel: list
    kernel_state: Any


@dataclasses.dataclass(frozen=True)
class _Crossed:
    """A task made ready for the CuPy side."""

    inner: Any  # the CuPy executor
    task: Any  # the equivalent CuPy EpochTask
    ordering: Any
    index: int


class CupyBridge:
    """A CuPy executor run on another framework's CUDA arrays, crossed by DLPack.

    Implements the executor contract (:mod:`nnbackend.engine`) under the
    CuPy executor's own name: ``fit(executor="cupy-fused")`` asks for the
    same kernel on cupy, torch:cuda and jax:gpu.

    Parameters
    ----------
    name : str
        The CuPy executor's name (one of ``CupyBackend.bridged_names``).
    framework : {"torch", "jax"}
        The caller's array library.
    """

    #: CuPy's kernels compute the products: a fit's precision does not reach them.
    own_matmuls = True

    def __init__(self, name: str, framework: str):
        if framework not in FRAMEWORKS:
            raise ValueError(f"CupyBridge: framework must be one of {list(FRAMEWORKS)}, "
                             f"got {framework!r}")
        self.name, self.framework = name, framework
        self.label = f"{name} via DLPack"  # what `nnbackend info` lists
        self._last = None  # (task, _Crossed or reason) of the last task seen

    def supports(self, task) -> str | None:
        """Why this cannot run ``task`` (not CUDA, no CuPy, or the CuPy executor's own
        reason for the equivalent CuPy task), or None if it can."""
        crossed = self._cross(task)
        if isinstance(crossed, str):
            return crossed
        return crossed.inner.supports(crossed.task)

    def make_epoch(self, task) -> Callable:
        """The caller's epoch around the CuPy executor's (see :func:`bridged_epoch`)."""
        crossed = self._cross(task)
        if isinstance(crossed, str):
            raise ValueError(f"executor {self.name!r} does not apply here: {crossed}")
        with crossed.ordering.on_stream():  # its buffers made, and kernel compiled, on that stream
            inner = crossed.inner.make_epoch(crossed.task)
        self._inner_path = (task, inner)  # its path read when described: it may change
        return bridged_epoch(inner, crossed.ordering)

    def describe(self, task) -> str:
        """How the epochs run, in words (for ``History.executor_reason``)."""
        crossed = self._cross(task)
        if isinstance(crossed, str):
            return f"{self.label}: {crossed}"
        text = (f"CuPy's {self.name} kernel on cuda:{crossed.index}, the {self.framework} "
                f"arrays crossed by DLPack without a copy and {crossed.ordering.description}")
        return with_window_path(text, getattr(self, "_inner_path", None), task)

    def _cross(self, task):
        """``_Crossed`` for ``task``, or the reason there is none; the last one kept,
        so that supports(), make_epoch() and describe() cross X and Y once."""
        if self._last is not None and self._last[0] is task:
            return self._last[1]
        crossed = self._make_crossed(task)
        self._last = (task, crossed)
        return crossed

    def _make_crossed(self, task):
        index = cuda_index(task.X)
        if index is None:
            return (f"the {self.framework} arrays are on {_device_of(task.X, task.backend)}, "
                    "not a CUDA GPU (CuPy's kernels run on CUDA memory)")
        try:
            kernel_backend = load_kernel_backend(index)
        except BackendUnavailableError as exc:
            return str(exc)
        inner = next((e for e in kernel_backend.executors() if e.name == self.name), None)
        if inner is None:
            return f"the CuPy backend here has no executor {self.name!r}"
        ordering = make_ordering(self.framework, index)
        try:
            with ordering.on_stream():
                X, Y = ordering.take([task.X, task.Y])
        except (BufferError, TypeError, ValueError, RuntimeError) as exc:
            return f"the data does not cross to CuPy by DLPack ({type(exc).__name__}: {exc})"
        kernel_task = dataclasses.replace(
            task, backend=kernel_backend, X=X, Y=Y, index_dtype=kernel_backend.index_dtype(),
            # The caller's optimizer may be bound to its own fused kernels
            # (torch's multi-tensor updates); the CuPy side gets CuPy's.
            optimizer=task.bind_optimizer(task.optimizer, kernel_backend.xp))
        return _Crossed(inner, kernel_task, ordering, index)
