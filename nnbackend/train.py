"""The one training loop, shared by every backend and descent mode.

Per fit: the data goes to the device once; per epoch: one host permutation
(and its index array) when shuffling; per step: a gather or slice of the
batch, the chunked loss and gradients, and the optimizer update, all on the
device. Epoch losses stay on the device and come back in one transfer at the
end of the fit (or once per epoch when ``progress`` is on): no step ever waits
for the device.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from .data import MODES, _check_int, make_plan, n_rows
from .model import DEFAULT_CHUNK_SIZE, loss_and_grads_rows
from .optim import get_optimizer

__all__ = ["History", "fit"]


@dataclass
class History:
    """What a fit recorded.

    Attributes
    ----------
    loss : list of float
        Per epoch, the training loss as the epoch's batches saw it before
        their updates (summed over the epoch's samples, divided by
        ``n_samples`` under ``reduction="mean"``), as Keras reports it.
    mode, batch_size, n_samples, epochs
        The plan that was run (``batch_size`` after ``mode`` resolved it).
    """

    loss: list = field(default_factory=list)
    mode: str = "minibatch"
    batch_size: int = 0
    n_samples: int = 0
    epochs: int = 0


def _batch_rows(xp, X, Y, index, offset):
    """``rows(start, stop)`` for the batch beginning at row ``offset`` of the epoch:
    a slice in data order, or a gather through this epoch's permutation."""
    if index is None:
        return lambda i, j: (X[offset + i : offset + j, :], Y[offset + i : offset + j, :])

    def rows(i, j):
        idx = index[offset + i : offset + j]
        return xp.take(X, idx, axis=0), xp.take(Y, idx, axis=0)

    return rows


def fit(model, X, y, mode="minibatch", batch_size=32, epochs=100, lr=0.1, optimizer="sgd",
        shuffle=True, seed=None, progress=False, chunk_size=DEFAULT_CHUNK_SIZE,
        optimizer_options=None):
    """Train ``model`` in place with gradient descent.

    Parameters
    ----------
    model : MLP
    X : array-like, shape (n_samples, n_features)
        NumPy array, list, or array of the model's namespace and device.
    y : array-like, shape (n_samples, n_outputs) or (n_samples,)
        Targets; integer class ids or one-hot rows for ``cross_entropy``.
    mode : {'batch', 'minibatch', 'sgd'}
        Full-batch, mini-batch or stochastic (one sample per step) descent.
    batch_size : int
        Rows per step in ``minibatch`` mode (clipped to ``n_samples``).
    epochs : int
        Passes over the data.
    lr : float
        Learning rate.
    optimizer : {'sgd', 'momentum', 'adam'} or Optimizer
    shuffle : bool
        Visit the rows in a fresh random order each epoch (minibatch, sgd).
    seed : int or None
        Seeds the shuffling; ``None`` takes the model's ``seed``.
    progress : bool
        Print each epoch's loss to stderr (one device sync per epoch).
    chunk_size : int
        Batches with more rows than this are pushed through the network in
        chunks whose gradients are summed: full-batch memory stays flat in N.
    optimizer_options : dict, optional
        Extra arguments of the optimizer (``beta``, ``nesterov``, ``b1``...).

    Returns
    -------
    History
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
    epochs = _check_int("epochs", epochs)
    chunk_size = _check_int("chunk_size", chunk_size)
    opt = get_optimizer(optimizer, lr, **(optimizer_options or {}))

    X = model._features(X)
    n_samples = n_rows(X)
    Y = model._targets(y, n_samples)
    plan = make_plan(mode, n_samples, batch_size, shuffle)
    bounds = plan.bounds
    backend, spec = model.backend, model.spec
    xp = backend.xp
    index_dtype = xp.__array_namespace_info__().default_dtypes(device=backend.device)["indexing"]
    rng = np.random.default_rng(model.seed if seed is None else seed)

    params = model._flat
    state = opt.init(params)
    epoch_losses = []
    for epoch in range(epochs):
        order = plan.order(rng)
        index = None if order is None else backend.asarray(order, dtype=index_dtype)
        epoch_loss = None
        for start, stop in bounds:
            rows = _batch_rows(xp, X, Y, index, start)
            loss_sum, grads = loss_and_grads_rows(params, spec, rows, stop - start, chunk_size)
            params, state = opt.update(grads, state, params)
            epoch_loss = loss_sum if epoch_loss is None else epoch_loss + loss_sum
        epoch_losses.append(epoch_loss)
        if progress:
            value = float(backend.to_host(epoch_loss))  # the one sync of this epoch
            if spec.reduction == "mean":
                value /= n_samples
            print(f"epoch {epoch + 1}/{epochs}  loss {value:.6g}", file=sys.stderr)

    model._flat = params
    losses = backend.to_host(xp.stack(epoch_losses)).astype(np.float64)
    if spec.reduction == "mean":
        losses = losses / n_samples
    return History(
        loss=[float(v) for v in losses],
        mode=mode,
        batch_size=plan.batch_size,
        n_samples=n_samples,
        epochs=epochs,
    )
