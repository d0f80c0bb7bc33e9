"""One epoch of a model's fit at a time, for benchmarks: :func:`epoch_function`."""

from __future__ import annotations

import contextlib

from .data import n_rows
from .network import DEFAULT_CHUNK_SIZE
from .training import epoch_stepper

__all__ = ["callback_seeing_epochs", "epoch_function"]


def callback_seeing_epochs(model, callback):
    """The user's ``callback(epoch, figures)`` of a fit of ``model``, run while the
    model holds the epoch's parameters: ``predict``, ``evaluate`` or ``save`` in
    it see the weights trained so far, not the fit's start. ``train_state``
    (the start's) is None meanwhile: a ``save`` there writes no state that the
    weights do not go on from. Both are put back after the call (a fit that
    raises leaves the model as it was; one that ends sets them)."""

    def with_params(epoch, figures, params):
        kept = model.flat_params, model.train_state
        model.flat_params, model.train_state = list(model.backend.export(params)), None
        try:
            callback(epoch, figures)
        finally:
            model.flat_params, model.train_state = kept

    def shown(epoch, figures):
        return callback(epoch, figures)

    shown.with_params = with_params
    return shown


def epoch_function(model, X, y, mode="minibatch", batch_size=32, lr=0.1, optimizer="sgd",
                   shuffle=True, seed=None, chunk_size=DEFAULT_CHUNK_SIZE, executor="auto",
                   precision=None):
    """Set up a fit once and return ``step()``, which trains ``model`` one more
    epoch per call with the same code as :meth:`MLP.fit`.

    ``step()`` returns a Python float: the epoch's per-sample losses summed
    over its ``n_samples`` rows, each batch's measured before its update. That
    is ``History.loss × n_samples`` under ``reduction="mean"`` and
    ``History.loss`` itself under ``"sum"``. Reading it waits for the device,
    so the epoch is done when ``step`` returns; ``model.flat_params`` then
    holds the epoch's parameters.

    ``step.window(k)`` trains ``k`` more epochs as one window of a fit (no
    host work between them, their figures read once at the end) and returns
    the ``k`` epochs' loss sums, a list of floats; ``step.fit_window`` is
    the ``k`` a long fit with no callback would use.

    For benchmarks: the data moves to the device here, not in ``step``.
    ``step.precision`` is the precision the float32 matmuls run at (as
    ``History.precision``), ``step.executor`` the executor that runs the epochs,
    ``step.blas_threads`` the BLAS threads each call runs with (as
    ``History.blas_threads``: the fit's own count, None where the backend
    sets none). Each call sets them, and sets them back on return; inside
    ``with step.hold():`` they are set once for all the calls in it.
    """
    X = model._features(X)
    n = n_rows(X)
    Y = model._targets(y, n)
    stepper = epoch_stepper(model._network(), X, Y, mode=mode, batch_size=batch_size, lr=lr,
                            optimizer=optimizer, shuffle=shuffle, seed=seed,
                            chunk_size=chunk_size, executor=executor, precision=precision)
    # The fit's BLAS threads (one for a small network's products, say): timed
    # at the library's default instead, an epoch is not the one a fit runs.
    threads = model._blas_threads(n, stepper.options)
    held = []  # non-empty inside step.hold(): the threads are set already

    def limited():
        return contextlib.nullcontext() if held else model.backend.blas_threads(threads)

    def step():
        with limited():
            model.flat_params, loss = stepper()
        return loss

    def window(k):
        with limited():
            model.flat_params, losses = stepper.window(k)
        return losses

    @contextlib.contextmanager
    def hold():
        # A fit sets its threads once; a benchmark's rounds set them once too
        # (entering the limit costs microseconds a call, a few per cent of the
        # smallest epochs), inside ``with step.hold():``.
        with model.backend.blas_threads(threads):
            held.append(True)
            try:
                yield
            finally:
                held.pop()

    step.window, step.fit_window, step.hold = window, stepper.fit_window, hold
    step.plan, step.precision, step.executor = stepper.plan, stepper.precision, stepper.executor
    step.reason_now, step.blas_threads = stepper.reason_now, threads
    return step
