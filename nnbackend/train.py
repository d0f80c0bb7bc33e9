"""The one training loop, shared by every backend and descent mode.

Per fit: the data goes to the device once. Per epoch: one host permutation
(and its index array) when shuffling, and one device-to-host transfer of the
epoch's few scalars (loss, correct predictions, validation loss), which is
what lets a diverging run stop and early stopping decide. Per step: a gather
or slice of the batch, the chunked loss and gradients, and the optimizer
update, all on the device: no step ever waits for the device.
"""

from __future__ import annotations

import inspect
import math
import numbers
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

from array_api_compat import array_namespace, device

from .data import MODES, _check_int, check_classes, host_rng, make_plan, n_rows
from .datasets import split_indices
from .executors import epoch_runner
from .model import DEFAULT_CHUNK_SIZE, evaluate_rows, loss_and_grads_rows
from .optim import OPTIMIZERS, Optimizer, get_optimizer, state_from_fields, state_fields

__all__ = ["History", "DivergenceWarning", "fit", "run_epoch", "epoch_function"]


class DivergenceWarning(RuntimeWarning):
    """Training stopped because the loss or the parameters stopped being finite."""


@dataclass
class History:
    """What a fit recorded, one entry per epoch run.

    Attributes
    ----------
    loss : list of float
        Training loss as the epoch's batches saw it before their updates
        (summed over the epoch's samples, divided by ``n_samples`` under
        ``reduction="mean"``), as Keras reports it.
    accuracy : list of float
        Training accuracy, counted the same way (sigmoid and softmax outputs
        only; empty otherwise).
    val_loss, val_accuracy : list of float
        On the validation data after each epoch (empty without one).
    mode, batch_size, n_samples
        The plan that was run (``batch_size`` after ``mode`` resolved it;
        ``n_samples`` counts the training rows).
    epochs : int
        Epochs run in this fit (fewer than asked after early stopping or
        divergence).
    best_epoch : int or None
        With early stopping, the 1-based epoch whose weights were kept.
    stopped_early : bool
    diverged : str or None
        Why training stopped on a non-finite loss, or None.
    """

    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    mode: str = "minibatch"
    batch_size: int = 0
    n_samples: int = 0
    epochs: int = 0
    best_epoch: int | None = None
    stopped_early: bool = False
    diverged: str | None = None

    def last(self) -> dict:
        """The last epoch's figures, by name (absent ones left out)."""
        names = ("loss", "accuracy", "val_loss", "val_accuracy")
        return {n: getattr(self, n)[-1] for n in names if getattr(self, n)}


# Shuffled epochs gather this many rows (rounded to whole batches) at a time
# through the permutation, then step through them by slicing: one gather per
# block instead of one per step, with memory bounded by the block (2 MiB at 32
# float32 features) rather than a shuffled copy of the whole data set.
GATHER_ROWS = 16384


def _slicer(X, Y, offset):
    """``rows(start, stop)`` of the batch beginning at row ``offset`` of ``X`` and ``Y``."""
    return lambda i, j: (X[offset + i : offset + j, :], Y[offset + i : offset + j, :])


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
    epoch_loss = epoch_correct = None
    n, size = plan.n_samples, plan.batch_size
    block = max(size, GATHER_ROWS // size * size)
    for block_start in range(0, n, block):
        block_stop = min(block_start + block, n)
        if index is None:
            Xb, Yb = X[block_start:block_stop, :], Y[block_start:block_stop, :]
        else:
            idx = index[block_start:block_stop]
            Xb, Yb = xp.take(X, idx, axis=0), xp.take(Y, idx, axis=0)
        for start in range(0, block_stop - block_start, size):
            n_batch = min(size, block_stop - block_start - start)
            loss_sum, grads, correct = loss_and_grads_rows(
                params, spec, _slicer(Xb, Yb, start), n_batch, chunk_size, multiclass, xp
            )
            params, state = opt.update(grads, state, params)
            epoch_loss = loss_sum if epoch_loss is None else epoch_loss + loss_sum
            if correct is not None:
                epoch_correct = correct if epoch_correct is None else epoch_correct + correct
    return params, state, epoch_loss, epoch_correct


def epoch_function(model, X, y, mode="minibatch", batch_size=32, lr=0.1, optimizer="sgd",
                   shuffle=True, seed=None, chunk_size=DEFAULT_CHUNK_SIZE, executor="auto"):
    """Set up a fit once and return ``step()``, which trains ``model`` one more
    epoch per call with the same code as :func:`fit` and returns that epoch's
    loss as a float (reading it waits for the device, so the epoch is done).

    For benchmarks: the data moves to the device here, not in ``step``.
    """
    X = model._features(X)
    Y = model._targets(y, n_rows(X))
    plan = make_plan(mode, n_rows(X), batch_size, shuffle)
    opt = get_optimizer(optimizer, lr)
    backend = model.backend
    index_dtype = backend.xp.__array_namespace_info__().default_dtypes(
        device=backend.device)["indexing"]
    rng = host_rng(model.seed if seed is None else seed)
    carry = {"params": model._flat, "state": opt.init(model._flat)}
    fast = epoch_runner(executor, backend, model.spec, opt, plan, X, Y, chunk_size, None,
                        index_dtype, model.layer_sizes)

    def step():
        with backend.loop_context():
            if fast is not None:
                params, state, loss_sum, _ = fast(carry["params"], carry["state"], plan.order(rng))
            else:
                params, state, loss_sum, _ = run_epoch(
                    carry["params"], carry["state"], opt, model.spec, X, Y, plan, rng,
                    index_dtype, chunk_size, xp=backend.xp,
                )
        carry["params"], carry["state"] = params, state
        model._flat = backend.export(params)
        return float(backend.to_host(loss_sum))

    step.plan = plan
    return step


def _check_options(optimizer, options):
    """``optimizer_options`` as a dict the named optimizer accepts, or a refusal naming it."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"optimizer_options must be a dict, got {type(options).__name__} {options!r}")
    factory = OPTIMIZERS.get(optimizer) if isinstance(optimizer, str) else None
    if factory is None:
        if options and isinstance(optimizer, Optimizer):
            raise ValueError("optimizer_options apply to a named optimizer; an Optimizer "
                             "object carries its own settings")
        return dict(options)
    accepted = [p for p in inspect.signature(factory).parameters if p != "lr"]
    unknown = sorted(set(options) - set(accepted), key=str)
    if unknown:
        raise ValueError(
            f"optimizer_options {unknown} are not options of optimizer {optimizer!r}; "
            f"it takes {accepted or 'none'} (lr is fit's own argument)"
        )
    return dict(options)


def _check_number(name, value, low, high=math.inf, low_open=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value < high
    if not ok:
        bound = f"> {low}" if low_open else f">= {low}"
        upper = f" and < {high}" if high != math.inf else ""
        raise ValueError(f"{name} must be a finite number {bound}{upper}, got {value!r}")
    return float(value)


def _all_finite(xp, arrays):
    """One 0-D boolean array: every element of every array is finite."""
    flags = [xp.all(xp.isfinite(a)) for a in arrays]
    out = flags[0]
    for f in flags[1:]:
        out = xp.logical_and(out, f)
    return out


def fit(model, X, y, mode="minibatch", batch_size=32, epochs=100, lr=0.1, optimizer="sgd",
        shuffle=True, seed=None, progress=False, chunk_size=DEFAULT_CHUNK_SIZE,
        optimizer_options=None, validation_split=None, validation_data=None,
        patience=None, min_delta=0.0, restore_best_weights=True, callback=None,
        resume=False, executor="auto"):
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
        Seeds the shuffling and the validation split; ``None`` takes the
        model's ``seed``.
    progress : bool
        Print each epoch's figures to stderr.
    chunk_size : int
        Batches with more rows than this are pushed through the network in
        chunks whose gradients are summed: full-batch memory stays flat in N.
    optimizer_options : dict, optional
        Extra arguments of the optimizer (``beta``, ``nesterov``, ``b1``...).
    validation_split : float in (0, 1), optional
        Hold out this fraction of the rows (stratified by class for
        classification) as validation data.
    validation_data : (X_val, y_val), optional
        Validation data given outright (instead of ``validation_split``).
    patience : int, optional
        Stop after this many epochs without the monitored loss (validation
        loss if there is validation data, else training loss) improving by
        more than ``min_delta``.
    min_delta : float
        The smallest decrease that counts as an improvement.
    restore_best_weights : bool
        With ``patience``, end with the weights of the best epoch.
    callback : callable, optional
        ``callback(epoch, figures)`` after each epoch, ``epoch`` 1-based and
        ``figures`` the dict of :meth:`History.last`.
    resume : bool
        Continue the model's previous fit (also one loaded from a
        checkpoint): its optimizer state and shuffling stream carry on, so
        3 + 3 resumed epochs equal 6 in one go.
    executor : {'auto', 'reference', 'jax-scan', 'cupy-fused', 'dask-chunks'}
        ``'auto'`` runs each epoch through the backend's fast path where the
        plan allows (on jax: one compiled ``lax.scan`` per epoch for
        minibatch and sgd; on cupy: one fused kernel launch per epoch for
        sgd and mini-batches of up to 64 rows on small networks; on dask,
        always: the data's row chunks, see the README);
        ``'reference'`` always runs the plain loop (not on dask).

    Returns
    -------
    History

    Notes
    -----
    When the loss turns NaN or infinite, training stops with a
    :class:`DivergenceWarning`; the model keeps the last parameters that were
    finite, and ``History.diverged`` says what happened.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
    epochs = _check_int("epochs", epochs)
    chunk_size = _check_int("chunk_size", chunk_size)
    # Only minibatch uses batch_size, but a value that is wrong anywhere is a
    # mistake worth naming; None is fine where the mode fixes the size.
    if batch_size is not None or mode == "minibatch":
        _check_int("batch_size", batch_size)
    if seed is not None:
        _check_int("seed", seed, minimum=0)
    for flag, value in (("shuffle", shuffle), ("progress", progress), ("resume", resume),
                        ("restore_best_weights", restore_best_weights)):
        # A string such as "no" is truthy: taking it would do the opposite of what was meant.
        if not isinstance(value, (bool, int)) or isinstance(value, float) or value not in (0, 1):
            raise TypeError(f"{flag} must be True or False, got {value!r}")
    if patience is not None:
        patience = _check_int("patience", patience)
    min_delta = _check_number("min_delta", min_delta, 0)
    if validation_split is not None and validation_data is not None:
        raise ValueError("give validation_split or validation_data, not both")
    opt = get_optimizer(optimizer, lr, **_check_options(optimizer, optimizer_options))
    opt_name = None if isinstance(optimizer, Optimizer) else optimizer

    X = model._features(X)
    Y = model._targets(y, n_rows(X))
    check_classes(model.backend, Y, model.loss)
    backend, spec = model.backend, model.spec
    xp = backend.xp
    index_dtype = xp.__array_namespace_info__().default_dtypes(device=backend.device)["indexing"]

    saved = model.train_state if resume else None
    if resume and saved is None:
        raise ValueError("resume=True, but this model has no earlier fit to resume")
    if saved is not None and saved["optimizer"] != opt_name:
        raise ValueError(
            f"resume=True: the earlier fit used optimizer {saved['optimizer']!r}, "
            f"this one asks for {opt_name!r}"
        )
    rng = host_rng(model.seed if seed is None else seed)
    if saved is not None:
        rng.bit_generator.state = saved["rng"]

    if validation_split is not None:
        fraction = _check_number("validation_split", validation_split, 0, 1, low_open=True)
        # Classification targets are stratified (fetched to the host once);
        # other targets are split at random, so one column of them will do.
        classify = spec.output_activation in ("sigmoid", "softmax")
        labels = backend.to_host(Y if classify else Y[:, :1])
        train_idx, val_idx = split_indices(labels, fraction, rng, stratify=classify)
        train_idx, val_idx = (backend.asarray(i, dtype=index_dtype) for i in (train_idx, val_idx))
        X, Y, X_val, Y_val = (xp.take(A, i, axis=0) for A, i in
                              ((X, train_idx), (Y, train_idx), (X, val_idx), (Y, val_idx)))
    elif validation_data is not None:
        try:
            X_val, y_val = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a pair (X_val, y_val)") from None
        X_val = model._features(X_val)
        Y_val = model._targets(y_val, n_rows(X_val))
    else:
        X_val = Y_val = None
    if X_val is not None:
        val_rows_per_pass = backend.rows_per_pass(X_val, chunk_size)

    n_samples = n_rows(X)
    plan = make_plan(mode, n_samples, batch_size, shuffle)
    multiclass = {"softmax": True, "sigmoid": False}.get(spec.output_activation)
    # Accuracy divides correct rows (softmax) or correct elements (sigmoid).
    per_row = 1 if multiclass else model.layer_sizes[-1]
    scale = 1.0 / n_samples if spec.reduction == "mean" else 1.0

    fast = epoch_runner(executor, backend, spec, opt, plan, X, Y, chunk_size, multiclass,
                        index_dtype, model.layer_sizes)
    params = model._flat
    state = opt.init(params)
    if saved is not None:
        state = state_from_fields(state, saved["state_scalars"], saved["state_arrays"])
    hist = History(mode=mode, batch_size=plan.batch_size, n_samples=n_samples)
    # Updates make new arrays, so earlier parameter lists stay valid as they
    # are: keeping them costs references, not copies.
    previous = params
    best_params, best_loss, best_epoch, waited = params, math.inf, None, 0

    # No per-operation overflow warnings (divergence is reported once,
    # below) and no autograd bookkeeping: see Backend.loop_context.
    with backend.loop_context():
        for epoch in range(1, epochs + 1):
            epoch_start = params
            if fast is not None:
                params, state, epoch_loss, epoch_correct = fast(params, state, plan.order(rng))
            else:
                params, state, epoch_loss, epoch_correct = run_epoch(
                    params, state, opt, spec, X, Y, plan, rng, index_dtype, chunk_size,
                    multiclass, xp,
                )
            scalars = [epoch_loss, _all_finite(xp, params)]
            if epoch_correct is not None:
                scalars.append(epoch_correct)
            if X_val is not None:
                n_val = n_rows(X_val)
                val_loss, val_correct = evaluate_rows(
                    params, spec, lambda i, j: (X_val[i:j, :], Y_val[i:j, :]), n_val,
                    val_rows_per_pass, multiclass, xp,
                )
                scalars.append(val_loss)
                if val_correct is not None:
                    scalars.append(val_correct)
            # The one device-to-host transfer of this epoch.
            host = backend.to_host(xp.stack([xp.astype(s, X.dtype) for s in scalars])).astype("float64")
            loss_value = float(host[0]) * scale
            params_finite = bool(host[1])
            if not (math.isfinite(loss_value) and params_finite):
                # epoch_start gave this epoch's first loss; if even that was not
                # finite, the epoch before's start is the last sure finite point.
                keep = epoch_start if params_finite or epoch == 1 else previous
                what = "the loss became NaN or infinite" if not math.isfinite(loss_value) else \
                    "the parameters overflowed to NaN or infinity"
                hist.diverged = (
                    f"training diverged at epoch {epoch}: {what} (lr={lr!r} may be too "
                    f"large); stopped and kept the parameters from before epoch {epoch}"
                )
                warnings.warn(hist.diverged, DivergenceWarning, stacklevel=3)
                params = keep
                break
            hist.epochs = epoch
            hist.loss.append(loss_value)
            rest = list(host[2:])
            if epoch_correct is not None:
                hist.accuracy.append(float(rest.pop(0)) / (n_samples * per_row))
            if X_val is not None:
                hist.val_loss.append(float(rest.pop(0)) * (1.0 / n_val if spec.reduction == "mean" else 1.0))
                if multiclass is not None:
                    hist.val_accuracy.append(float(rest.pop(0)) / (n_val * per_row))
            figures = hist.last()
            if progress:
                text = "  ".join(f"{k} {v:.6g}" for k, v in figures.items())
                print(f"epoch {epoch}/{epochs}  {text}", file=sys.stderr)
            if callback is not None:
                callback(epoch, figures)
            previous = epoch_start

            if patience is not None:
                monitored = hist.val_loss[-1] if hist.val_loss else loss_value
                # Training loss is measured before each step, so the weights that
                # earned epoch e's training loss are those of epoch e's start
                # (exactly so in batch mode); validation loss is measured after it.
                earned_by = params if hist.val_loss else epoch_start
                if monitored < best_loss - min_delta:
                    best_params, best_loss, best_epoch, waited = earned_by, monitored, epoch, 0
                else:
                    waited += 1
                    if waited >= patience:
                        hist.stopped_early = True
                        break

    if patience is not None and best_epoch is not None:
        hist.best_epoch = best_epoch
        if restore_best_weights:
            params = best_params
    model._flat = backend.export(params)
    # A diverged run's optimizer state is not worth resuming.
    model.train_state = None if opt_name is None or hist.diverged else {
        "optimizer": opt_name,
        # A compiled epoch leaves scalars (Adam's count) as device scalars.
        "state_scalars": {k: v if isinstance(v, (int, float)) else int(v)
                          for k, v in state_fields(state)[0].items()},
        "state_arrays": state_fields(state)[1],
        "rng": rng.bit_generator.state,
        "epochs_done": (saved["epochs_done"] if saved else 0) + hist.epochs,
    }
    return hist
