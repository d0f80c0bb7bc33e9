"""CuPy: the steps the fused kernel declines, each captured once as a CUDA graph.

``cupy-fused`` runs SGD and mini-batches of up to 64 rows as one kernel an
epoch. Larger mini-batches (the mnist model's 256 rows, say) ran the eager
loop: about 1.2 ms a [784,1024,1024,10] Adam step on an H200 (2026-12-04),
nearly all of it CuPy's host time for some thirty launches, against 0.16 ms
for JAX's compiled scan. Here each step is captured once as a CUDA graph and
replayed (:class:`~nnbackend.backends.graph_epoch.GraphEpoch`, the epoch
torch:cuda's graphs run too): one launch a step.

The capture (:func:`cuda_capture`) follows CuPy's recipe: warm-up steps, then
``Stream.begin_capture`` / ``end_capture`` on a non-blocking stream of its
own, and ``Graph.launch`` on the current stream for each replay. CuPy
refuses its own cuBLAS calls on a capturing stream, so the steps compute in
a namespace whose products (``matmul``, and ``sum_rows``'s) call cuBLAS
directly (:mod:`.cublas_direct`); everything else is CuPy's. What the
capture allocates comes from a memory pool of the graph's own
(``cupy.cuda.using_allocator``): a replay writes where the capture's
temporaries were, so no other array may be given that memory afterwards.
The pool lives as long as the replay, and so does the workspace each
captured product took from it. The first warm-up step runs from the
default pool, so that what a step creates once and keeps (a cached row of
ones, the cuBLAS handle) is not in the graph's pool; its temporaries, left in
the default pool for the side stream alone, are given back to the device
after the capture.

A step that a capture cannot hold (a read of a device value on the host,
which CuPy's capture refuses) does not stop the fit: that batch shape's
steps run eagerly, and ``epoch.path`` says why. Each captured graph is
checked once against the same step run eagerly (``verify``) before it is
kept. What a replayed step costs awaits a GPU run.
"""

from __future__ import annotations

import contextlib
import gc

from ..graph_epoch import (WARMUP_STEPS, DescribedEpochs, GraphEpoch, XpOps, eager_capture,
                           epoch_launches, unsupported)
from .cublas_direct import capture_namespace

__all__ = ["CupyGraphs", "cuda_capture"]


def cuda_capture(step, reset, device):
    """``replay()`` of ``step`` captured as a CUDA graph by CuPy, after warm-up, on a
    stream and from a memory pool of its own (see the module's docstring)."""
    import cupy

    current = cupy.cuda.get_current_stream()
    side = cupy.cuda.Stream(non_blocking=True)
    side.wait_event(current.record())
    pool = cupy.cuda.MemoryPool()
    collecting = gc.isenabled()
    try:
        with side:
            # The first warm-up step from the default pool: what a step creates once
            # and keeps (compiled kernels, the cuBLAS handle, a cached row of ones)
            # must not live in the graph's pool, which goes with the graph.
            reset()
            step()
        with cupy.cuda.using_allocator(pool.malloc), side:
            for _ in range(WARMUP_STEPS - 1):
                reset()
                step()
            reset()
            # No finalizer may free (and so synchronise) GPU memory mid-capture.
            gc.disable()
            try:
                side.begin_capture()
                try:
                    step()
                finally:
                    graph = side.end_capture()  # ends the capture even where the step raised
            finally:
                if collecting:
                    gc.enable()
    finally:
        # Whatever the side stream ran (warm-up steps too, where the capture
        # failed) is done before the current stream's next work: the eager
        # steps that replace a refused capture write the same buffers.
        current.wait_event(side.record())
        # The first warm-up step's temporaries (each product's cuBLAS workspace
        # among them) went back to the default pool for the side stream alone,
        # which takes nothing from it again: given back to the device.
        cupy.get_default_memory_pool().free_all_blocks(stream=side)

    def replay():
        graph.launch(cupy.cuda.get_current_stream())

    replay.graph, replay.pool, replay.stream = graph, pool, side  # alive with the replay
    return replay


class _OnDevice(GraphEpoch):
    """The epoch with the fit's CuPy device current (its arrays' device)."""

    def __call__(self, params, state, order):
        device = self.task.backend.device  # a cupy.cuda.Device (a name off CuPy: the tests)
        with device if hasattr(device, "__enter__") else contextlib.nullcontext():
            return super().__call__(params, state, order)


class CupyGraphs(DescribedEpochs):
    """The ``"cupy-graphs"`` executor (see :mod:`nnbackend.engine` for the contract).

    ``capture`` is :func:`cuda_capture` (the default) or
    :func:`~nnbackend.backends.graph_epoch.eager_capture` (the tests).
    """

    name = "cupy-graphs"

    def __init__(self, capture=cuda_capture):
        self.capture = capture

    def supports(self, task):
        """Why captured steps cannot run ``task`` (a string), or None if they can."""
        return unsupported(task)

    def make_epoch(self, task):
        # CUDA's capture needs the steps' products off CuPy's cuBLAS calls.
        xp = capture_namespace(task.backend.xp) if self.capture is cuda_capture else None
        return self._made(task, _OnDevice(
            task, self.capture, XpOps(task.backend.xp), self.name, on_failure="eager",
            verify=self.capture is not eager_capture, xp=xp))

    def launches(self, task):
        """Host launches of a fit's epoch (:func:`.graph_epoch.epoch_launches`)."""
        return epoch_launches(task)
