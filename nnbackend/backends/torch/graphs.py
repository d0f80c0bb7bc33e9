"""torch:cuda: each training step captured once as a CUDA graph and replayed.

The epoch, its static buffers and the step it captures are
:mod:`nnbackend.backends.graph_epoch`'s, shared with CuPy; this module gives
it torch's operations (:class:`TorchOps`) and torch's capture
(:func:`cuda_capture`).

Measured on an H200 (2026-11-27, the small model [32,64,1]): a replayed
step takes 68-80 µs. The graph saves the host's launches, but its kernels
still run one after another on the GPU. Fewer, fused kernels would be
needed to go faster.

Capture follows torch's documented recipe: warm-up steps on a side stream,
then ``torch.cuda.graph``. The capture is a parameter (:func:`cuda_capture`
by default); :func:`eager_capture` runs the same step eagerly, which is how
the CPU tests check everything but the capture itself. A batch shape whose
capture fails runs its steps eagerly, and the fit's history says so with
the failure, as cupy-graphs does.
"""

from __future__ import annotations

import gc

import torch

from ..graph_epoch import (WARMUP_STEPS, DescribedEpochs, GraphEpoch, batch_shapes, eager_capture,
                           epoch_launches, step_rows)
from ..graph_epoch import unsupported as _unsupported_step

__all__ = ["TorchGraphs", "TorchOps", "batch_shapes", "cuda_capture", "eager_capture",
           "step_rows", "unsupported", "WARMUP_STEPS"]


def unsupported(task, need_cuda=True):
    """Why the graphs cannot run ``task`` (a string), or None if they can."""
    device = task.backend.device
    if need_cuda and getattr(device, "type", None) != "cuda":
        return f"CUDA graphs need a CUDA device, not {str(device)!r}"
    return _unsupported_step(task)


class TorchOps:
    """:class:`~nnbackend.backends.graph_epoch.GraphEpoch`'s operations as torch's
    in-place tensor methods (one call each)."""

    @staticmethod
    def clone(a):
        return a.clone()

    @staticmethod
    def assign(static, value):
        if isinstance(value, (int, float)):
            static.fill_(value)
        else:
            static.copy_(value)

    @staticmethod
    def take(a, index):
        return torch.index_select(a, 0, index)

    @staticmethod
    def add(static, value):
        static.add_(value)

    @staticmethod
    def zeros(dtype, like):
        return torch.zeros((), dtype=dtype, device=like.device)

    @staticmethod
    def arange(n, like):
        return torch.arange(n, dtype=torch.int64, device=like.device)

    @staticmethod
    def from_host(static, host):
        static.copy_(torch.from_numpy(host))


def cuda_capture(step, reset, device):
    """``replay()`` of ``step`` captured as a CUDA graph, after warm-up on a side stream.

    ``reset()`` puts the static buffers back in a state ``step`` may read
    (the warm-up steps change them; the epoch reloads them anyway).
    """
    side = torch.cuda.Stream(device)
    current = torch.cuda.current_stream(device)
    side.wait_stream(current)
    try:
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                reset()
                step()
    finally:
        # Where a warm-up step raised, the eager steps that replace the capture
        # write the same buffers: what the side stream ran comes first.
        current.wait_stream(side)
    reset()
    graph = torch.cuda.CUDAGraph()
    pool = torch.cuda.graph_pool_handle()  # the graph's memory pool, named: see _end_routing
    # Precautions, not fixes of an observed failure: in "thread_local" mode
    # another library's threads in this process (JAX's, CuPy's) may call the
    # CUDA runtime during the capture, which the default "global" mode makes
    # an error here; with the collector off no finalizer frees GPU memory
    # mid-capture. What this thread itself does must still be capture-safe.
    collecting = gc.isenabled()
    gc.disable()
    try:
        # The capture stream on the fit's device, which is current meanwhile:
        # torch.cuda.graph's own stream is made on the current device, and a
        # step on another device's tensors would run eagerly, not be captured.
        with torch.cuda.device(device):
            try:
                with torch.cuda.graph(graph, pool=pool, stream=torch.cuda.Stream(device),
                                      capture_error_mode="thread_local"):
                    step()
            except BaseException:
                _end_routing(pool)
                raise
            finally:
                # torch.cuda.graph's __exit__ ends the capture before it puts the
                # current stream back: where ending a failed capture raises (it
                # does after any CUDA error inside it), its capture stream stayed
                # current, for the eager steps that follow and the caller's work.
                if torch.cuda.current_stream(device) != current:
                    torch.cuda.set_stream(current)
    finally:
        if collecting:
            gc.enable()
    return graph.replay


def _end_routing(pool):
    """After a failed capture, end the caching allocator's routing of new
    blocks into the graph's pool, where torch left it on.

    torch's ``capture_end`` raised before it ended that routing where ending
    the capture failed, as it does after any CUDA error inside it (fixed
    after torch 2.11 by pytorch/pytorch#180395). The allocator then took a
    capture for under way for good: each later ``torch.cuda.empty_cache()``
    (the next capture's own, the benchmark's) failed its
    "captures_underway.empty()" internal assert. Where torch ended it, or
    never began it, ending it again is refused: nothing was left on. The
    pool's blocks stay reserved (a step's temporaries).
    """
    binding = getattr(torch, "_C", None)  # (the older name: the same C++ call)
    end = (getattr(binding, "_cuda_endAllocateToPool", None)
           or getattr(binding, "_cuda_endAllocateCurrentStreamToPool", None))
    if end is None:
        return
    try:
        end(torch.cuda.current_device(), pool)
    except Exception:  # noqa: BLE001 - "not currently recording to mempool_id": nothing was
        pass           # left on (and no error here may hide the capture's own)


class _OnDevice(GraphEpoch):
    """The epoch with the fit's CUDA device current: a replay launches on the
    current device's stream, which must be the graph's."""

    def __call__(self, params, state, order):
        device = self.task.backend.device
        if getattr(device, "type", None) != "cuda":  # eager_capture's tests, on the CPU
            return super().__call__(params, state, order)
        with torch.cuda.device(device):
            return super().__call__(params, state, order)


class TorchGraphs(DescribedEpochs):
    """The ``"torch-graphs"`` executor (see :mod:`nnbackend.engine` for the contract).

    ``capture`` is :func:`cuda_capture` (the default) or :func:`eager_capture`,
    which also lifts the CUDA requirement.
    """

    name = "torch-graphs"

    def __init__(self, capture=cuda_capture):
        self.capture = capture

    def supports(self, task):
        return unsupported(task, need_cuda=self.capture is cuda_capture)

    def make_epoch(self, task):
        # A batch shape whose capture fails runs its steps eagerly, as on cupy;
        # the fit's history says so (describe).
        return self._made(task, _OnDevice(task, self.capture, TorchOps, self.name,
                                          on_failure="eager"))

    def launches(self, task):
        """Host launches of a fit's epoch (:func:`.graph_epoch.epoch_launches`)."""
        return epoch_launches(task)
