"""One epoch: the reference loop, the executor contract, and the choice between them.

The reference loop (:func:`run_epoch`) runs on every backend whose arrays
can be sliced and gathered eagerly. A backend may also offer fast
executors (a compiled scan, a fused kernel, chunk tasks); each implements
one contract:

``executor.name``
    Its name, as ``fit(executor=...)`` takes it.
``executor.supports(task) -> None | str``
    None if it can run ``task`` (an :class:`EpochTask`), else the reason
    it cannot.
``executor.make_epoch(task) -> epoch``
    ``epoch(params, state, order) -> (params, state, loss_sum, correct)``:
    one pass over ``task.X`` in the host-drawn row ``order`` (None: in
    order), with the same batches, math and optimizer as :func:`run_epoch`.

:func:`epoch_runner` picks one. A new executor is a class in its backend's
module (``nnbackend/backends/NAME/``), listed by that backend's
``executors()`` and ``executor_names``; nothing here changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from array_api_compat import array_namespace, device

from .backends import executor_names, executor_owner
from .network import bind_loss_and_grads, loss_and_grads_rows, slice_rows

__all__ = ["EXECUTORS", "EpochTask", "Executor", "GATHER_ROWS", "epoch_runner", "run_epoch"]

EXECUTORS = ("auto", "reference", *executor_names())

# Shuffled epochs gather this many rows (rounded to whole batches) at a time
# through the permutation, then step through them by slicing: one gather per
# block instead of one per step, with memory bounded by the block (2 MiB at 32
# float32 features) rather than a shuffled copy of the whole data set.
GATHER_ROWS = 16384


@dataclass(frozen=True)
class EpochTask:
    """Everything an epoch needs besides the parameters, state and row order.

    ``loss_and_grads`` and ``rows`` are the network's chunked loss and
    gradients and its row getter, handed to the executors so that they run
    the same math without importing the layers above the backends.
    """

    backend: Any  # the Backend
    spec: Any  # the NetSpec
    optimizer: Any  # the Optimizer
    plan: Any  # the BatchPlan
    X: Any  # (n_samples, n_features), on the backend's device
    Y: Any  # (n_samples, n_outputs), on the backend's device
    chunk_size: int  # rows pushed through the network at once
    multiclass: bool | None = None  # count correct predictions unless None
    index_dtype: Any = None  # the namespace's index dtype on the device
    layer_sizes: list | None = None  # inputs first; an executor may judge by them
    loss_and_grads: Callable = loss_and_grads_rows
    rows: Callable = slice_rows


class Executor(Protocol):
    """The contract every backend's fast epoch path implements (see above)."""

    name: str

    def supports(self, task: EpochTask) -> str | None: ...

    def make_epoch(self, task: EpochTask) -> Callable: ...


def run_epoch(params, state, opt, spec, X, Y, plan, rng, index_dtype, chunk_size, multiclass=None,
              xp=None):
    """One pass over the data, as every fit makes it; nothing leaves the device.

    Parameters
    ----------
    params, state : the flat parameter list and the optimizer state
    opt : Optimizer
    spec : NetSpec
    X : array, shape (n_samples, n_features); Y : array, shape (n_samples, n_outputs)
    plan : BatchPlan
    rng : numpy.random.Generator
        Draws this epoch's row order when the plan shuffles.
    index_dtype : the namespace's index dtype on this device
    chunk_size : int
    multiclass : bool or None
        Count correct predictions (see ``kernels.n_correct``) unless None.
    xp : namespace, optional
        The arrays' namespace (found from ``X`` if not given).

    Returns
    -------
    params, state
        After the epoch's steps.
    loss_sum : 0-D array
        Per-sample losses summed over the epoch, each seen before its step.
    correct : 0-D array or None
    """
    xp = array_namespace(X) if xp is None else xp
    order = plan.order(rng)
    index = None if order is None else xp.asarray(order, dtype=index_dtype, device=device(X))
    n, size = plan.n_samples, plan.batch_size
    # A batch of one chunk (every mini-batch and sgd step) goes through the
    # network's function bound once: the same math without the per-call
    # look-ups, which on NumPy cost as much as a small step's arithmetic.
    one_chunk = None
    if size <= chunk_size and _one_dtype(X, Y, params):
        one_chunk = bind_loss_and_grads(spec, xp, X.dtype, multiclass)
    epoch_loss = epoch_correct = None
    block = max(size, GATHER_ROWS // size * size)
    for block_start in range(0, n, block):
        block_stop = min(block_start + block, n)
        if index is None:
            Xb, Yb = X[block_start:block_stop, :], Y[block_start:block_stop, :]
        else:
            idx = index[block_start:block_stop]
            Xb, Yb = xp.take(X, idx, axis=0), xp.take(Y, idx, axis=0)
        rows = block_stop - block_start
        if one_chunk is not None:
            params, state, epoch_loss, epoch_correct = _one_chunk_steps(
                one_chunk, opt.update, params, state, Xb, Yb, rows, size, epoch_loss, epoch_correct)
            continue
        for start in range(0, rows, size):
            n_batch = min(size, rows - start)
            loss_sum, grads, correct = loss_and_grads_rows(
                params, spec, slice_rows(Xb, Yb, start), n_batch, chunk_size, multiclass, xp
            )
            params, state = opt.update(grads, state, params)
            epoch_loss = loss_sum if epoch_loss is None else epoch_loss + loss_sum
            if correct is not None:
                epoch_correct = correct if epoch_correct is None else epoch_correct + correct
    return params, state, epoch_loss, epoch_correct


def _one_dtype(X, Y, params):
    """Whether the data and every parameter share one dtype (a bound function's premise)."""
    dtype = X.dtype
    return Y.dtype == dtype and all(p.dtype == dtype for p in params)


def _one_chunk_steps(loss_and_grads, update, params, state, Xb, Yb, rows, size, epoch_loss,
                     epoch_correct):
    """The steps over ``rows`` rows of ``Xb``, ``Yb`` in batches of ``size`` rows, each
    batch one chunk: :func:`run_epoch`'s inner loop with nothing in it but the step."""
    full = rows - rows % size
    for start in range(0, full, size):
        stop = start + size
        loss_sum, grads, correct = loss_and_grads(params, Xb[start:stop, :], Yb[start:stop, :],
                                                  size)
        params, state = update(grads, state, params)
        epoch_loss = loss_sum if epoch_loss is None else epoch_loss + loss_sum
        if correct is not None:
            epoch_correct = correct if epoch_correct is None else epoch_correct + correct
    if full < rows:  # the epoch's last, smaller batch
        loss_sum, grads, correct = loss_and_grads(params, Xb[full:rows, :], Yb[full:rows, :],
                                                  rows - full)
        params, state = update(grads, state, params)
        epoch_loss = loss_sum if epoch_loss is None else epoch_loss + loss_sum
        if correct is not None:
            epoch_correct = correct if epoch_correct is None else epoch_correct + correct
    return params, state, epoch_loss, epoch_correct


def epoch_runner(executor: str, task: EpochTask):
    """``epoch(params, state, order) -> (params, state, loss_sum, correct)`` from the
    named executor, or None for the reference loop (:func:`run_epoch`).

    ``executor``: ``"auto"`` (the backend's first executor that supports the
    task, else the reference loop), ``"reference"`` (always the reference
    loop) or an executor's name, which must then apply: a forced executor
    that cannot run the task raises ``ValueError`` with its reason.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    backend = task.backend
    if executor == "reference" and backend.no_reference_loop:
        raise ValueError(backend.no_reference_loop)
    if executor == "reference":
        return None
    if executor != "auto" and executor not in backend.executor_names:
        raise ValueError(f"executor {executor!r} needs the {executor_owner(executor)} backend, "
                         f"not {backend.name!r}")
    for candidate in backend.executors():
        if executor not in ("auto", candidate.name):
            continue
        why_not = candidate.supports(task)
        if why_not is None:
            return candidate.make_epoch(task)
        if executor == candidate.name:
            raise ValueError(f"executor {executor!r} does not apply here: {why_not}")
    return None
