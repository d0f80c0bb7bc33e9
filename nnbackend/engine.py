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
    Optionally ``epoch.epochs(params, state, orders) -> (params, state,
    loss_sums, corrects)``: ``len(orders)`` epochs in one call with no host
    work between them (the training loop's windows), the same bits as that
    many ``epoch`` calls; and ``epoch.path``, how it runs them, in words.
``executor.describe(task) -> str`` (optional)
    How it runs ``task``, in words, for :attr:`Choice.reason` (and so
    ``History.executor_reason``).
``executor.own_matmuls`` (optional, default False)
    True where its own kernels compute the matrix products (the CuPy
    kernels), so that the array library's matmul precision (a fit's
    ``precision``, TF32) does not reach them.

:func:`choose_executor` picks one and says why (:func:`epoch_runner` is its
epoch alone). A new executor is a class in its backend's module
(``nnbackend/backends/NAME/``), listed by that backend's ``executors()`` and
``executor_names``; nothing here changes. One executor name may be listed by
several backends: the CuPy kernels (``cupy-fused``, ...) also run torch:cuda
and jax:gpu fits, their arrays crossed by DLPack (``backends/cupy/bridge.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from array_api_compat import array_namespace, device

from .backends import executor_hosts, executor_names
from .network import bind_loss_and_grads, loss_and_grads_rows, slice_rows
from .optim import on_namespace, update_key

__all__ = ["EXECUTORS", "Choice", "EpochTask", "Executor", "GATHER_ROWS", "choose_executor",
           "epoch_runner", "run_epoch"]

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
    the same math without importing the layers above the backends;
    ``bind_optimizer(optimizer, xp)`` likewise rebinds the optimizer to
    another namespace's fused updates (``optim.on_namespace``), for an
    executor that runs the task's math in another namespace (the CuPy
    bridge: a torch task's optimizer is bound to torch's multi-tensor
    kernels, which take no CuPy arrays); ``optimizer_key(optimizer)`` gives
    what identifies the optimizer's update (``optim.update_key``), for
    executors that cache what they compile around it.
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
    bind_optimizer: Callable = on_namespace
    optimizer_key: Callable = update_key


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


@dataclass(frozen=True)
class Choice:
    """The executor an epoch runs through, and why (see :func:`choose_executor`)."""

    epoch: Callable | None  # epoch(params, state, order) -> ...; None: the reference loop
    name: str  # the executor's name, or "reference"
    reason: str  # "NAME: why", e.g. each refusal that led to the reference loop
    own_matmuls: bool = False  # its own kernels compute the products (see the module docstring)
    # The reason asked again (None: it cannot change): an executor whose epochs
    # find out how they run only when they run (a CUDA graph that could not be
    # captured) describes them anew after the fit.
    reason_now: Callable[[], str] | None = None


def choose_executor(executor: str, task: EpochTask) -> Choice:
    """The executor that runs ``task``'s epochs, its epoch, and why it was chosen.

    ``executor``: ``"auto"`` (the backend's first executor that supports the
    task, else the reference loop), ``"reference"`` (always the reference
    loop) or an executor's name, which must then apply: a forced executor
    that cannot run the task raises ``ValueError`` with its reason.

    Returns
    -------
    Choice
        ``epoch`` is None for the reference loop (:func:`run_epoch`).
        ``reason`` starts with the name and says why: asked for, or the first
        of the backend's executors that supports the task (with the refusals
        of those before it), or, for the reference loop under ``"auto"``,
        every executor's refusal.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    backend = task.backend
    if executor == "reference" and backend.no_reference_loop:
        raise ValueError(backend.no_reference_loop)
    if executor == "reference":
        return Choice(None, "reference", "reference: asked for (executor='reference')")
    if executor != "auto" and executor not in backend.executor_names:
        owner, *others = executor_hosts(executor)
        also = f" (or {' or '.join(others)}, where its arrays are on a CUDA GPU)" if others else ""
        raise ValueError(f"executor {executor!r} needs the {owner} backend{also}, "
                         f"not {backend.name!r}")
    declined = []
    for candidate in backend.executors():
        if executor not in ("auto", candidate.name):
            continue
        why_not = candidate.supports(task)
        if why_not is None:
            epoch = candidate.make_epoch(task)
            how = getattr(candidate, "describe", None)
            why = (f"asked for (executor={executor!r})" if executor != "auto" else
                   f"the first of the {backend.name} backend's executors that supports this fit")
            refusals = [f"{name} declined: {why_not}" for name, why_not in declined]

            def reason(candidate=candidate, how=how, why=why, refusals=refusals):
                parts = [how(task)] if how is not None else []
                return f"{candidate.name}: " + "; ".join([*parts, why, *refusals])

            return Choice(epoch, candidate.name, reason(),
                          own_matmuls=getattr(candidate, "own_matmuls", False),
                          reason_now=reason if how is not None else None)
        if executor == candidate.name:
            raise ValueError(f"executor {executor!r} does not apply here: {why_not}")
        declined.append((candidate.name, why_not))
    if executor != "auto":  # listed by name, but not among the executors the backend made
        raise ValueError(f"executor {executor!r} is not among the {backend.name} backend's "
                         f"executors here")
    if not declined:
        return Choice(None, "reference",
                      f"reference: the {backend.name} backend has no fast executor")
    return Choice(None, "reference", "reference: no executor supports this fit: "
                  + "; ".join(f"{name}: {why}" for name, why in declined))


def epoch_runner(executor: str, task: EpochTask):
    """``epoch(params, state, order) -> (params, state, loss_sum, correct)`` from the
    named executor, or None for the reference loop (:func:`run_epoch`).

    :func:`choose_executor`'s epoch alone (which also says which executor
    ran and why); the same arguments and errors.
    """
    return choose_executor(executor, task).epoch
