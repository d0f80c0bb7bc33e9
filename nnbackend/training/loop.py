"""The training loop over data already on the device.

Per fit: the data is on the device already (the front end moved it once).
Per epoch: one host permutation (and its index array) when shuffling, and
the epoch's few scalars (loss, finite flag, correct predictions, validation
loss) computed on the device. They cross to the host, which is what lets a
diverging run stop and early stopping decide, once per *window* of epochs:
one epoch where something on the host reads each epoch's figures before the
next (a callback, early stopping, a progress bar, the adaptive rate), else
up to :data:`WINDOW_EPOCHS` epochs (:data:`WINDOW_EPOCHS_IN_ONE_CALL` where
the executor runs them in one call), so that the host queues the next epoch
while the device runs this one instead of waiting for it. The figures are
then judged epoch by epoch as if each had been read alone: a window changes
when the host waits, never the result. Where the executor runs several
epochs in one call (``epoch.epochs``), a window's epochs but its last run in
that call (:meth:`_Epochs.run_window`). Per step: a gather or slice of the
batch, the chunked loss and gradients, and the optimizer update, all on the
device: no step ever waits for the device.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, replace
from typing import Any

from ..data import fresh_seed, host_rng, make_plan, n_rows
from ..datasets import split_indices
from ..engine import EpochTask, choose_executor, run_epoch
from ..network import NetSpec, chunk_rows, evaluate_rows, multiclass_of, slice_rows
from ..optim import ScheduledState, on_namespace
from .callbacks import DivergenceGuard, EarlyStopping, Progress, UserCallback
from .history import History
from .options import FitOptions
from .schedule import AdaptiveRate, fit_optimizer
from .state import TrainState

__all__ = ["Network", "WINDOW_BYTES", "WINDOW_EPOCHS", "WINDOW_EPOCHS_IN_ONE_CALL",
           "epoch_stepper", "train"]

# Epochs run between two reads of their figures where nothing on the host
# needs them sooner. A window keeps each of its epochs' starting parameters
# (references: updates make new arrays) for the divergence guard, so it is
# also bounded by their bytes.
WINDOW_EPOCHS = 8
WINDOW_BYTES = 64 * 2**20
# Where the executor runs a window's epochs in one call (``epoch.epochs``), the
# window keeps two parameter sets whatever its length (and, shuffling, every
# epoch's row order: WINDOW_BYTES bounds those), and the host's work per
# window (the call, the window's last epoch alone, the read) is spread over
# this many epochs: at small N it, not the device, sets an epoch's time.
WINDOW_EPOCHS_IN_ONE_CALL = 64


@dataclass(frozen=True)
class Network:
    """The network a fit trains: where it lives, its math and its parameters."""

    backend: Any  # the Backend its arrays live on
    spec: NetSpec
    layer_sizes: list  # [n_features, hidden..., n_outputs]
    params: list  # [W0, b0, W1, b1, ...] on the backend's device
    seed: int | None = None  # seeds the shuffling and validation split unless the fit has its own


def _finite_flag(xp, arrays):
    """One 0-D boolean array: every element of every array is finite."""
    flags = [xp.all(xp.isfinite(a)) for a in arrays]
    out = flags[0]
    for f in flags[1:]:
        out = xp.logical_and(out, f)
    return out


@functools.lru_cache(maxsize=64)
def _figures_function(backend, spec: NetSpec, multiclass, val_rows):
    """The function of ``(params, epoch_loss, epoch_correct, validation)`` that
    :meth:`_Epochs.figures` calls, compiled by the backend where it can
    (:meth:`Backend.compiled`): made once per backend and network kind, so a
    compiled one is reused from fit to fit."""
    xp = backend.xp

    def figures(params, epoch_loss, epoch_correct, validation):
        scalars = [epoch_loss, _finite_flag(xp, params)]
        if epoch_correct is not None:
            scalars.append(epoch_correct)
        if validation is not None:
            X_val, Y_val = validation
            val_loss, val_correct = evaluate_rows(params, spec, slice_rows(X_val, Y_val),
                                                  n_rows(X_val), val_rows, multiclass, xp)
            scalars.append(val_loss)
            if val_correct is not None:
                scalars.append(val_correct)
        return xp.stack([xp.astype(s, params[0].dtype) for s in scalars])

    return backend.compiled(figures)


def _copied(xp, state):
    """A copy of an optimizer state's arrays (its host numbers as they are): what
    an executor that consumes its own state cannot write."""
    if isinstance(state, (list, tuple)):
        items = [_copied(xp, v) for v in state]
        return type(state)(*items) if hasattr(state, "_fields") else type(state)(items)
    if hasattr(state, "shape") and hasattr(state, "dtype"):
        return xp.asarray(state, copy=True)
    return state


def _epoch_task(net: Network, X, Y, plan, opt, chunk_size, multiclass):
    # The backend's fused update where its namespace has one (same results).
    opt = on_namespace(opt, net.backend.xp)
    # "auto" becomes rows here, once per fit, so that every executor (and
    # its supports(), which compares batches with chunks) sees an int.
    rows = chunk_rows(chunk_size, net.backend, net.layer_sizes, X.dtype)
    return EpochTask(net.backend, net.spec, opt, plan, X, Y, rows, multiclass,
                     net.backend.index_dtype(), net.layer_sizes)


def _split(net: Network, X, Y, fraction, rng):
    """``(X, Y, X_val, Y_val)``: ``fraction`` of the rows held out, drawn from ``rng``.

    Classification targets are stratified (fetched to the host once); other
    targets are split at random, so one column of them will do.
    """
    backend, xp = net.backend, net.backend.xp
    classify = multiclass_of(net.spec) is not None
    labels = backend.to_host(Y if classify else Y[:, :1])
    train_idx, val_idx = split_indices(labels, fraction, rng, classify, "validation_split")
    index_dtype = backend.index_dtype()
    train_idx, val_idx = (backend.asarray(i, dtype=index_dtype) for i in (train_idx, val_idx))
    return tuple(xp.take(A, i, axis=0) for A, i in
                 ((X, train_idx), (Y, train_idx), (X, val_idx), (Y, val_idx)))


class _Epochs:
    """Runs epochs and brings each one's figures to the host in one transfer."""

    def __init__(self, net: Network, X, Y, validation, options: FitOptions, plan, count_correct=True,
                 lr_scale=1.0, samples_before=0):
        self.net, self.X, self.Y, self.plan, self.options = net, X, Y, plan, options
        self.samples_before = samples_before  # what earlier fits saw, for 'invscaling'
        self.validation = validation
        self.multiclass = multiclass_of(net.spec) if count_correct else None
        self.set_lr_scale(lr_scale)
        if validation is not None:
            self.val_rows_per_pass = net.backend.rows_per_pass(validation[0], self.task.chunk_size)

    def set_lr_scale(self, lr_scale):
        """Build the optimizer (schedule and penalty included) for this factor
        of the learning rate, and the executor that runs it."""
        net = self.net
        self.lr_scale = lr_scale
        self.optimizer = fit_optimizer(self.options, self.plan, len(net.layer_sizes) - 1,
                                       net.spec.reduction, lr_scale, self.samples_before)
        self.task = _epoch_task(net, self.X, self.Y, self.plan, self.optimizer,
                                self.options.chunk_size, self.multiclass)
        # Which executor runs the epochs, and why (History.executor, .executor_reason).
        self.choice = choose_executor(self.options.executor, self.task)
        self.fast = self.choice.epoch

    def loss_sum(self, params):
        """The training loss of ``params`` summed over the rows (a device scalar)."""
        rows = self.net.backend.rows_per_pass(self.X, self.task.chunk_size)
        loss, _ = evaluate_rows(params, self.net.spec, slice_rows(self.X, self.Y), n_rows(self.X),
                                rows, None, self.net.backend.xp)
        return loss

    def run(self, params, state, rng):
        if self.fast is not None:
            return self.fast(params, state, self.plan.order(rng))
        task = self.task
        return run_epoch(params, state, task.optimizer, task.spec, self.X, self.Y, self.plan, rng,
                         task.index_dtype, task.chunk_size, self.multiclass, self.net.backend.xp)

    def figures(self, params, epoch_loss, epoch_correct):
        """The epoch's scalars, as a 1-D array on the device: loss sum, params
        finite flag, then correct count and validation loss and correct count
        where there are any (:meth:`read` brings them to the host)."""
        figures = _figures_function(self.net.backend, self.net.spec, self.multiclass,
                                    getattr(self, "val_rows_per_pass", None))
        return figures(params, epoch_loss, epoch_correct, self.validation)

    def read(self, figures):
        """The figures of a window's epochs on the host: a float64 NumPy array of
        shape (n_epochs, n_figures), in one transfer. ``figures`` holds 1-D rows
        (:meth:`figures`) or 2-D blocks of rows (:meth:`run_window`)."""
        backend, xp = self.net.backend, self.net.backend.xp
        if len(figures) == 1 and figures[0].ndim == 1:
            # No stack: an eager op costs more than the epoch on small data.
            return backend.to_host(figures[0]).astype("float64")[None, :]
        if all(f.ndim == 1 for f in figures):
            return backend.to_host(xp.stack(figures)).astype("float64")
        rows = [f if f.ndim == 2 else xp.reshape(f, (1, -1)) for f in figures]
        return backend.to_host(xp.concat(rows)).astype("float64")

    def run_window(self, params, state, rng, k):
        """``k`` epochs: ``(starts, ends, figures, state, replay)``.

        Epoch by epoch, ``starts`` and ``ends`` hold each epoch's first and
        last parameters and ``figures`` a row each, and ``replay`` is None.
        Where the executor runs several epochs in one call (``epoch.epochs``,
        e.g. CuPy's batch kernels: no host work between epochs) and no
        validation needs each epoch's parameters, the first ``k - 1`` epochs
        run in that call (their starts and ends are None; their figures a
        block of rows whose finite flag is that of the parameters they ended
        with, since a non-finite value stays non-finite under every update)
        and the last alone, so that the next window's divergence guard knows
        where the epoch before it started. ``replay()`` then runs the window
        again epoch by epoch from its start (same row orders, the optimizer
        state copied before the call consumed it) and returns the first four:
        the loop calls it where an epoch of the window was not finite, so
        that each epoch is judged with its own parameters.
        """
        many = getattr(self.fast, "epochs", None)
        if many is None or k < 2 or self.validation is not None:
            return (*self._each(params, state, rng, k), None)
        xp = self.net.backend.xp
        first, kept, rng_state = params, _copied(xp, state), rng.bit_generator.state
        params, state, losses, corrects = many(params, state,
                                               [self.plan.order(rng) for _ in range(k - 1)])
        dtype = params[0].dtype
        losses = xp.astype(losses, dtype)
        columns = [losses, xp.astype(_finite_flag(xp, params), dtype) * xp.ones_like(losses)]
        if corrects is not None:
            columns.append(xp.astype(corrects, dtype))
        last_start = params
        params, state, loss, correct = self.run(params, state, rng)
        figures = [xp.stack(columns, axis=1), self.figures(params, loss, correct)]

        def replay():
            rng.bit_generator.state = rng_state
            return self._each(first, kept, rng, k)

        return [None] * (k - 1) + [last_start], [None] * (k - 1) + [params], figures, state, replay

    def _each(self, params, state, rng, k):
        """``k`` epochs one by one: ``(starts, ends, figures, state)``."""
        starts, ends, figures = [], [], []
        for _ in range(k):
            starts.append(params)
            params, state, loss, correct = self.run(params, state, rng)
            ends.append(params)
            figures.append(self.figures(params, loss, correct))
        return starts, ends, figures, state

    def window(self, options: FitOptions, host_reads_each_epoch: bool) -> int:
        """Epochs to run between two reads of their figures (see the module's docstring)."""
        if host_reads_each_epoch:
            return 1
        if getattr(self.fast, "epochs", None) is not None and self.validation is None:
            # The call takes every epoch's row order at once: bounded by their bytes.
            orders = (WINDOW_BYTES // (8 * self.plan.n_samples) if self.plan.shuffle
                      else WINDOW_EPOCHS_IN_ONE_CALL)
            return int(max(1, min(WINDOW_EPOCHS_IN_ONE_CALL, orders, options.epochs)))
        sizes = self.net.layer_sizes
        n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        nbytes = n_params * (self.net.backend.xp.finfo(self.X.dtype).bits // 8)
        return int(max(1, min(WINDOW_EPOCHS, WINDOW_BYTES // max(1, nbytes), options.epochs)))


def _record(hist: History, host, net: Network, n_samples, n_val, has_correct):
    """Append one epoch's figures (from :meth:`_Epochs.figures`) to ``hist``."""
    mean = net.spec.reduction == "mean"
    multiclass = multiclass_of(net.spec)
    # Accuracy divides correct rows (softmax) or correct elements (sigmoid).
    per_row = 1 if multiclass else net.layer_sizes[-1]
    hist.loss.append(float(host[0]) * (1.0 / n_samples if mean else 1.0))
    rest = list(host[2:])
    if has_correct:
        hist.accuracy.append(float(rest.pop(0)) / (n_samples * per_row))
    if n_val is not None:
        hist.val_loss.append(float(rest.pop(0)) * (1.0 / n_val if mean else 1.0))
        if multiclass is not None:
            hist.val_accuracy.append(float(rest.pop(0)) / (n_val * per_row))


def train(net: Network, X, Y, options: FitOptions, validation=None, resume: TrainState | None = None):
    """Train ``net`` on ``X``, ``Y`` (arrays on its device) as ``options`` say.

    Parameters
    ----------
    net : Network
    X : array, shape (n_samples, n_features); Y : array, shape (n_samples, n_outputs)
    options : FitOptions
    validation : (X_val, Y_val) arrays on the device, optional
        Validation data given outright (else ``options.validation_split``
        may hold some of ``X`` out).
    resume : TrainState, optional
        The state of the fit to continue (``options.resume``).

    Returns
    -------
    params : list of arrays
        The parameters to keep (after early stopping or divergence, the ones
        the rules choose).
    history : History
    state : TrainState or None
        What a later fit resumes; None after divergence or for an
        Optimizer object.
    """
    opt, opt_name = options.optimizer, options.optimizer_name
    if options.resume and not isinstance(resume, TrainState):
        why = f": {resume}" if isinstance(resume, str) else ""
        raise ValueError(f"resume=True, but this model has no earlier fit to resume{why}")
    saved = resume if options.resume else None
    if saved is not None and saved.optimizer != opt_name:
        asked = "an Optimizer object" if opt_name is None else f"optimizer {opt_name!r}"
        raise ValueError(
            f"resume=True: the earlier fit used optimizer {saved.optimizer!r}, "
            f"this one asks for {asked}"
        )
    seed = net.seed if options.seed is None else options.seed
    if seed is None:  # a seed of its own, kept: a resumed fit draws the same validation rows
        seed = fresh_seed()
    rng = host_rng(seed)
    # (A checkpoint from before split seeds were kept: the model's seed, its best guess.)
    split_seed = seed if saved is None else (
        saved.split_seed if saved.split_seed is not None else net.seed)
    if saved is not None:
        rng.bit_generator.state = saved.rng
    if options.validation_split is not None:
        # A resumed fit holds out the first fit's rows: its stream has moved on,
        # so the rows are drawn again from a fresh one of the first fit's seed.
        split_rng = rng if saved is None else host_rng(split_seed)
        X, Y, *validation = _split(net, X, Y, options.validation_split, split_rng)

    n_samples = n_rows(X)
    plan = make_plan(options.mode, n_samples, options.batch_size, options.shuffle)
    # The executor is made (a graph captured, a scan traced) inside it too.
    with net.backend.matmul_precision(options.precision, X.dtype) as precision:
        # The factor 'adaptive' reached goes on with 'adaptive' alone: a resumed
        # fit with another schedule runs at the rate it asks for.
        carried = saved is not None and options.lr_schedule == "adaptive"
        # The samples seen before, for 'invscaling' (a checkpoint from before
        # they were kept: the epochs done of these rows).
        samples_before = 0 if saved is None else (
            saved.samples_seen if saved.samples_seen is not None
            else saved.epochs_done * n_samples)
        epochs = _Epochs(net, X, Y, validation, options, plan,
                         lr_scale=saved.lr_scale if carried else 1.0,
                         samples_before=samples_before)
        params = net.params
        state = epochs.optimizer.init(params)
        steps_per_epoch = -(-n_samples // plan.batch_size)
        # Steps taken before (kept apart from the count the schedule reads).
        steps_before = 0 if saved is None else (
            saved.steps_done if saved.steps_done is not None
            else saved.epochs_done * steps_per_epoch)
        if saved is not None:
            inner = saved.optimizer_state(opt.init(params))
            count = _schedule_count(saved, options, steps_per_epoch, samples_before, n_samples)
            state = (ScheduledState(count, [inner])
                     if isinstance(state, ScheduledState) else inner)
        hist = History(mode=options.mode, batch_size=plan.batch_size, n_samples=n_samples,
                       executor=epochs.choice.name, executor_reason=epochs.choice.reason,
                       precision="highest" if epochs.choice.own_matmuls else precision)
        params, state, lr_scale, plateau, stopping = _loop(
            net, epochs, params, state, rng, hist, options, saved.plateau if carried else None,
            _stopping_from(saved))
        if epochs.choice.reason_now is not None:  # how the epochs ran, now that they have
            hist.executor_reason = epochs.choice.reason_now()
    inner = state.inner[0] if isinstance(state, ScheduledState) else state
    # No state to resume from where the optimizer is an object of the caller's,
    # the fit diverged, or the weights kept are an earlier epoch's (the state is
    # the last epoch's): History.not_resumable says which.
    hist.not_resumable = ("an Optimizer object's state is not kept" if opt_name is None
                          else "the fit diverged" if hist.diverged else hist.not_resumable)
    new_state = None if hist.not_resumable else TrainState.capture(
        opt_name, inner, rng, (saved.epochs_done if saved else 0) + hist.epochs, lr_scale,
        split_seed, plateau, _stopping_to(stopping, saved),
        steps_before + hist.epochs * steps_per_epoch, samples_before + hist.epochs * n_samples)
    return params, hist, new_state


def _schedule_count(saved, options, steps_per_epoch, samples_before, n_samples):
    """The step count a resumed fit's schedule goes on from.

    A function of the caller's counts steps: those taken, whatever batch size
    took them (a checkpoint from before they were kept: the epochs done of
    this fit's steps). ``'invscaling'`` counts from its ``start``: the whole
    epochs of these rows in the samples seen before, in this fit's steps.
    """
    if options.lr_schedule == "invscaling":
        return (samples_before // n_samples) * steps_per_epoch
    if saved.steps_done is not None:
        return saved.steps_done
    return saved.epochs_done * steps_per_epoch


def _stopping_from(saved):
    """An earlier fit's early-stopping count, its best epoch numbered from this fit's first."""
    if saved is None or saved.stopping is None:
        return None
    monitor, best_loss, waited, best_epoch = saved.stopping
    return monitor, best_loss, waited, best_epoch - saved.epochs_done


def _stopping_to(count, saved):
    """``count`` (this fit's) for the state, its best epoch numbered over all fits."""
    if count is None:
        return None
    monitor, best_loss, waited, best_epoch = count
    return monitor, best_loss, waited, best_epoch + (saved.epochs_done if saved else 0)


def _callbacks(options: FitOptions, params, stopping_count=None):
    callbacks = []
    if options.progress:
        callbacks.append(Progress(options.epochs))
    if options.callback is not None:
        callbacks.append(UserCallback(options.callback))
    stopping = None
    if options.patience is not None:
        stopping = EarlyStopping(options.patience, options.min_delta, params, stopping_count,
                                 restore=options.restore_best_weights)
        callbacks.append(stopping)
    return callbacks, stopping


def _loop(net: Network, epochs: _Epochs, params, state, rng, hist: History, options: FitOptions,
          plateau=None, stopping_count=None):
    """The epochs of one fit; returns the parameters to keep, the optimizer state, the
    adaptive factor and plateau, and early stopping's count (``plateau`` and
    ``stopping_count``: the resumed fit's, to go on from)."""
    callbacks, stopping = _callbacks(options, params, stopping_count)
    # An Optimizer object carries its own rate, and options.lr is unused then.
    named = options.optimizer_name is not None
    guard = DivergenceGuard(options.lr if named else (options.optimizer.hyper or {}).get("lr"),
                            options.alpha)
    rate = (AdaptiveRate(float(guard.lr if guard.lr is not None else options.lr),
                         scale=epochs.lr_scale, plateau=plateau)
            if options.lr_schedule == "adaptive" else None)
    n_val = None if epochs.validation is None else n_rows(epochs.validation[0])
    scale = 1.0 / hist.n_samples if net.spec.reduction == "mean" else 1.0
    # Where the loss started, for the growth warning: a batch epoch measures it
    # itself; the others measure each batch after earlier steps, so one pass here.
    start_loss = None if options.mode == "batch" else epochs.loss_sum(params)
    hist.window = epochs.window(options, bool(callbacks) or rate is not None)
    # No per-operation overflow warnings (divergence is reported once, by
    # the guard) and no autograd bookkeeping: see Backend.loop_context.
    try:
        with net.backend.loop_context():
            epoch, done = 0, False
            while epoch < options.epochs and not done:
                starts, ends, on_device, state, replay = epochs.run_window(
                    params, state, rng, min(hist.window, options.epochs - epoch))
                # The window's one device-to-host transfer; ``rows`` is a NumPy
                # array, so the float() and bool() below read host memory.
                rows = epochs.read(on_device)
                if replay is not None and not all(math.isfinite(r[0]) and r[1] for r in rows):
                    # Judge each epoch with its own parameters: run them one by one.
                    starts, ends, on_device, state = replay()
                    rows = epochs.read(on_device)
                for epoch_start, params, host in zip(starts, ends, rows):
                    epoch += 1
                    diverged = guard.check(epoch, float(host[0]) * scale, bool(host[1]),
                                           epoch_start)
                    if diverged is not None:
                        hist.diverged, params = diverged
                        done = True
                        break
                    hist.epochs = epoch
                    _record(hist, host, net, hist.n_samples, n_val, epochs.multiclass is not None)
                    figures = hist.last()
                    stop = [cb.on_epoch_end(epoch, figures, params, epoch_start)
                            for cb in callbacks]
                    if any(stop):
                        hist.stopped_early = done = True
                        break
                    if rate is not None and rate.after_epoch(figures):
                        epochs.set_lr_scale(rate.scale)
                        hist.lr_drops.append(epoch)
    finally:  # a progress bar ends even when an epoch raised (Ctrl-C included)
        for cb in callbacks:
            cb.on_train_end()
    if hist.loss and not hist.diverged:
        first = hist.loss[0] if start_loss is None else float(
            net.backend.to_host(start_loss)) * scale
        guard.check_growth(first, hist.loss[-1])
    if stopping is not None and stopping.best_epoch is not None:
        hist.best_epoch = stopping.best_epoch
        if (options.restore_best_weights and stopping.best_params is not None
                and stopping.best_params is not params):
            # (The training loss's best weights are an epoch's start: the last
            # epoch's too, where it was the best.)
            params = stopping.best_params
            kept = (f"epoch {hist.best_epoch}" if hist.best_epoch > 0
                    else "those the resumed fit started from")
            hist.not_resumable = (f"the weights kept (restore_best_weights, {kept}) are not "
                                  "the last epoch's, whose optimizer state the fit ended with")
    return (net.backend.export(params), state, epochs.lr_scale,
            None if rate is None else rate.plateau, None if stopping is None else stopping.count)


def epoch_stepper(net: Network, X, Y, mode="minibatch", batch_size=32, lr=0.1, optimizer="sgd",
                  shuffle=True, seed=None, chunk_size=None, executor="auto", precision=None):
    """Set up a fit once and return ``step()``, which trains one more epoch per
    call with the same code as :func:`train` and returns ``(params, loss)``.

    ``params`` is the flat list of parameter arrays after the epoch, on the
    device. ``loss`` is a Python float: the per-sample losses summed over the
    epoch's ``n_samples`` rows, each batch's measured before its update. That
    is ``History.loss × n_samples`` under ``reduction="mean"`` and
    ``History.loss`` itself under ``"sum"``. Reading it waits for the device,
    so the epoch is done when ``step`` returns.

    ``step.window(k)`` trains ``k`` more epochs as a fit's window of ``k``
    does: no host work between them (one call of the executor's
    ``epoch.epochs`` where it has one) and their figures read in one transfer
    at the end. It returns ``(params, losses)``, ``losses`` a list of ``k``
    Python floats, each as ``step`` returns it. ``step.fit_window`` is the
    ``k`` a long fit with no callback would use.

    For benchmarks: ``X`` and ``Y`` are on the device already. ``step.executor``
    and ``step.executor_reason`` name the executor that runs the epochs and why,
    ``step.precision`` the precision its float32 matmuls run at (as
    ``History.precision``).
    """
    options = FitOptions.check(mode=mode, batch_size=batch_size, lr=lr, optimizer=optimizer,
                               shuffle=shuffle, seed=seed, executor=executor, precision=precision,
                               **({} if chunk_size is None else {"chunk_size": chunk_size}))
    plan = make_plan(mode, n_rows(X), batch_size, shuffle)
    rng = host_rng(net.seed if seed is None else seed)

    def in_precision():
        return net.backend.matmul_precision(options.precision, X.dtype)

    with in_precision() as precision:
        # Benchmarks time the steps: no correct counts.
        epochs = _Epochs(net, X, Y, None, options, plan, count_correct=False)
    carry = {"params": net.params, "state": epochs.optimizer.init(net.params)}
    # The library's switch is process-wide: set for each step and put back
    # after, where there is one to set (None sets nothing: no cost per step).
    step_precision = contextlib.nullcontext if options.precision is None else in_precision

    def step():
        with step_precision(), net.backend.loop_context():
            params, state, loss_sum, _ = epochs.run(carry["params"], carry["state"], rng)
        carry["params"], carry["state"] = params, state
        return net.backend.export(params), float(net.backend.to_host(loss_sum))

    def window(k):
        # k epochs as a fit's window runs them (with epoch.epochs where the
        # executor offers it), their figures read in one transfer at the end.
        with step_precision(), net.backend.loop_context():
            _, ends, figures, state, _ = epochs.run_window(carry["params"], carry["state"],
                                                           rng, k)
            rows = epochs.read(figures)
        carry["params"], carry["state"] = ends[-1], state
        return net.backend.export(ends[-1]), [float(loss) for loss in rows[:, 0]]

    step.window = window
    # The window a long fit with no callback would run these epochs in.
    step.fit_window = epochs.window(replace(options, epochs=WINDOW_EPOCHS_IN_ONE_CALL), False)
    step.plan, step.options = plan, options
    step.executor, step.executor_reason = epochs.choice.name, epochs.choice.reason
    # How the epochs ran, asked after they have (a graph not captured, a cluster
    # launch that fell back): the fit's History.executor_reason.
    step.reason_now = epochs.choice.reason_now or (lambda: epochs.choice.reason)
    step.precision = "highest" if epochs.choice.own_matmuls else precision
    return step
