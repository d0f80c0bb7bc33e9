"""The :class:`MLP` front end: configuration, parameters, predict, fit, save and load.

It holds a backend, a :class:`~nnbackend.network.NetSpec` and a flat
parameter list ``[W0, b0, W1, b1, ...]``, checks and moves the user's data
(:mod:`nnbackend.data`), and hands the math to :mod:`nnbackend.network` and
the training to :mod:`nnbackend.training`. Nothing below imports it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import numbers
import time
import warnings

import numpy as np

from .autoselect import (
    active_profile,
    blas_threads_for,
    choose,
    data_decides,
    decided_by_data,
    note_used,
    workload_of,
)
from .backends import Backend, backend_of, candidate_key, get_backend, host_backend, is_auto
from .classifier import ClassLabels
from .data import (
    FeatureScaleWarning,
    array_backend,
    init_params,
    is_host,
    known_rows,
    n_rows,
)
from .model_epochs import callback_seeing_epochs, epoch_function
from .model_inputs import ModelInputs, dtype_name, first_param
from .model_pickle import HostPickling
from .network import (
    DEFAULT_CHUNK_SIZE,
    check_chunk_size,
    checked_network,
    chunk_rows,
    evaluate_rows,
    forward,
    loss_and_grads_rows,
    multiclass_of,
    predict_rows,
    slice_rows,
)
from .training import FitOptions, Network, train

__all__ = ["MLP", "epoch_function", "fit"]


class MLP(ModelInputs, ClassLabels, HostPickling):
    """A fully connected network trained with hand-written backprop on any backend.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, hidden..., n_outputs]``, at least two entries.
    hidden_activation : {'sigmoid', 'tanh', 'relu', 'identity'}
    output_activation : {'sigmoid', 'softmax', 'identity'}
    loss : {'mse', 'bce', 'cross_entropy'}
        ``mse`` is ½·squared error; ``bce`` needs a sigmoid output and
        ``cross_entropy`` a softmax output (both are computed from logits).
    reduction : {'mean', 'sum'}
        How per-sample losses combine over a batch: ``'sum'`` is the seed
        tutorial's update, ``'mean'`` divides it by the batch's rows.
    backend : str, Backend or None
        ``None`` takes the backend of the arrays in ``params`` (on
        ``device`` where one is named), else ``$NNBACKEND_BACKEND`` or
        ``'numpy'``. A model built with ``None`` (and
        no ``device``) then follows its data: each array-API ``X`` given to
        ``fit``, ``predict``, ``evaluate`` or ``loss_and_grads``, not only
        the first, moves it (parameters included) to that ``X``'s backend
        and device; host data (NumPy, lists, DataFrames) leaves it where it is.
        ``'auto'``: each fit but a resumed one moves the model to the backend
        predicted fastest for it (:func:`nnbackend.explain_backend`; an
        array-API ``X`` decides instead); the math is the same wherever it runs.
    device : optional
        The backend's device (see :func:`nnbackend.get_backend`).
    dtype : {'float32', 'float64'} or the NumPy dtype of one
    seed : int or None
        Seeds the host generator that draws the initial weights and, unless
        ``fit`` is given its own ``seed``, the shuffling.
    params : list of (W, b) or None
        Initial parameters, ``W`` of shape (fan_in, fan_out) and ``b`` of
        shape (fan_out,), as host data or arrays of the backend.
    standardize : {False, True, 'features'}
        ``True``: the first ``fit`` learns each feature's mean and standard
        deviation (and, for a regression head, identity output with ``mse``,
        the targets'), and the network sees ``(X - mean) / std`` from then
        on, in ``fit``, ``predict``, ``evaluate`` and ``loss_and_grads``;
        ``predict`` returns values in the targets' own units. ``'features'``
        scales the features alone. ``False`` (the default) leaves the data
        as given. As scikit-learn's ``StandardScaler`` in a pipeline; the
        statistics are kept in ``feature_scaler`` / ``target_scaler`` and in
        checkpoints. Losses (``History.loss``, ``evaluate``) are those the
        network minimizes: of the standardized targets.

    Attributes
    ----------
    feature_names_in_ : list of str or None
        The names of the features, in the order of ``X``'s columns, where
        known: the first fit on a pandas DataFrame with string column names
        learns them (the command line sets them from a CSV header); a later
        DataFrame with other columns, or the same in another order, is
        refused. Kept in checkpoints; ``nnbackend predict`` matches CSV
        columns by them.
    feature_scaler, target_scaler : StandardScaler or None
        The standardization applied to ``X`` and to regression targets; set
        by the first ``fit`` of a model with ``standardize``, or by hand.
    classes_ : ndarray, shape (n_classes,), or None
        The class labels, as scikit-learn's classifiers keep them: class id
        ``i`` (output column ``i`` of a softmax; 0 and 1 of one sigmoid unit)
        stands for ``classes_[i]``. The first ``fit`` given text labels sets
        them, sorted; they may also be set by hand before it (all the
        classes, in the order that defines the ids). Kept in checkpoints.
        None after a fit on numeric labels, which are the class ids
        themselves; :meth:`predict_labels` then returns ids.
    """

    def __init__(
        self,
        layer_sizes,
        hidden_activation="sigmoid",
        output_activation="sigmoid",
        loss="mse",
        reduction="mean",
        backend=None,
        device=None,
        dtype="float32",
        seed=0,
        params=None,
        standardize=False,
    ):
        self.layer_sizes, self.spec = checked_network(layer_sizes, hidden_activation,
                                                      output_activation, loss, reduction)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be an integer or None, got {seed!r}")
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be >= 0 (NumPy's generators take no negative seeds), got {seed}")
        self.seed = seed

        # backend="auto" (or None while $NNBACKEND_BACKEND=auto): the host until
        # each fit picks where it runs; like None, it follows the caller's arrays.
        self.auto = is_auto(backend)
        if self.auto and device is not None:
            raise ValueError(f"device={device!r} is a device of a named backend; "
                             "backend='auto' picks the backend and device itself")
        backend = None if self.auto else backend
        # The last fit's choice under "auto" (nnbackend.explain_backend's dict).
        self.backend_choice = None
        # A model whose backend was not named follows its data (see _follow).
        self._backend_named = backend is not None or device is not None
        # Params of a backend decide it; a device named is then one of its devices.
        if backend is None and params is not None:
            first = first_param(params)
            if first is not None and not is_host(first):
                backend = backend_of(first)
        self.backend: Backend = (host_backend() if self.auto and backend is None
                                 else get_backend(backend, device))
        self.dtype = dtype_name(dtype)
        # The backend's dtype object for ``dtype``.
        self.array_dtype = self.backend.dtype(self.dtype)

        # Set by fit: the optimizer state and shuffling stream that
        # fit(resume=True) continues (a training.TrainState); saved in checkpoints.
        self.train_state = None
        # Free-form facts about the task (class names, ...), saved in checkpoints.
        self.metadata = {}
        self._init_scaling(standardize)
        if params is None:
            rng = np.random.default_rng(seed)
            host = init_params(self.layer_sizes, hidden_activation, rng)
            self.flat_params = [self.backend.asarray(p, dtype=self.array_dtype) for p in host]
        else:
            self.flat_params = self._check_params(params)

    # -- configuration --------------------------------------------------------------
    @property
    def hidden_activation(self):
        """The hidden layers' activation: 'sigmoid', 'tanh', 'relu' or 'identity' (str)."""
        return self.spec.hidden_activation

    @property
    def output_activation(self):
        """The output layer's activation: 'sigmoid', 'softmax' or 'identity' (str)."""
        return self.spec.output_activation

    @property
    def loss(self):
        """The loss: 'mse', 'bce' or 'cross_entropy' (str)."""
        return self.spec.loss

    @property
    def reduction(self):
        """How per-sample losses combine over a batch: 'mean' or 'sum' (str)."""
        return self.spec.reduction

    @property
    def params(self):
        """The parameters, a list of ``(W, b)`` per layer: ``W`` an array of shape
        (fan_in, fan_out), ``b`` of shape (fan_out,).

        Arrays of the backend, on its device; ``flat_params`` holds the same
        arrays as one list ``[W0, b0, W1, b1, ...]``.
        """
        return [(self.flat_params[i], self.flat_params[i + 1]) for i in range(0, len(self.flat_params), 2)]

    def __repr__(self):
        return (
            f"MLP({self.layer_sizes}, hidden_activation={self.hidden_activation!r}, "
            f"output_activation={self.output_activation!r}, loss={self.loss!r}, "
            f"reduction={self.reduction!r}, backend={self.backend.name!r}, "
            f"device={self.backend.device!r}, dtype={self.dtype!r})"
        )

    def _follow(self, X):
        """Move to ``X``'s backend and device if the model's backend was not named."""
        if self._backend_named or is_host(X):
            return
        other = array_backend("X", X)
        if not other.holds_data():  # refused before the model moves there, losing its weights
            raise ValueError(f"X is on {other.name} device {other.device}, which holds no "
                             "values; pass an array with values")
        self._move_to(other)

    def _move_to(self, other, dtype=None):
        """The parameters onto backend ``other`` (through the host: the same values),
        in ``dtype`` (a name; None keeps the model's)."""
        dtype = self.dtype if dtype is None else dtype
        if (other.name == self.backend.name and str(other.device) == str(self.backend.device)
                and dtype == self.dtype):
            return
        old, array_dtype = self.backend, other.dtype(dtype)  # (refused before anything moves)
        self.backend, self.dtype, self.array_dtype = other, dtype, array_dtype
        self.flat_params = [other.asarray(old.to_host(p), dtype=self.array_dtype)
                            for p in self.flat_params]
        state = self.train_state
        if state is not None and state.state_arrays:  # a resumed fit reads them on `other`
            self.train_state = dataclasses.replace(state, state_arrays={
                field: [other.asarray(old.to_host(a), dtype=self.array_dtype) for a in arrays]
                for field, arrays in state.state_arrays.items()})

    def _choose_backend(self, X, y, options):
        """backend='auto': move to the backend predicted fastest for this fit
        (:func:`nnbackend.explain_backend`), or to the one the caller's arrays
        are on; :attr:`backend_choice` says which and why."""
        decided = data_decides(X, y)
        if decided is not None:
            backend, self.backend_choice = decided[0], decided_by_data(*decided)
        else:
            try:
                n = len(X) if isinstance(X, (list, tuple)) else int(X.shape[0])
            except (AttributeError, TypeError, IndexError, ValueError):
                return  # not data: the checks that follow refuse it by name
            started = time.perf_counter()
            backend, self.backend_choice = choose(self.layer_sizes, self.spec, n, options,
                                                  self.dtype, active_profile(announce=True))
            # Importing and probing the candidates' libraries: part of the fit's time.
            self.backend_choice["choice_seconds"] = time.perf_counter() - started
        self._move_to(backend)

    def _blas_threads(self, n_samples, options):
        """The BLAS threads from the profile for a fit of ``n_samples`` rows, on a
        backend that sets them (NumPy's); None elsewhere."""
        if not self.backend.sets_blas_threads:
            return None
        rows = chunk_rows(options.chunk_size, self.backend, self.layer_sizes, self.array_dtype)
        return blas_threads_for(workload_of(self.layer_sizes, n_samples, options, self.dtype),
                                rows)

    @contextlib.contextmanager
    def _fit_context(self, n_samples, options):
        """Around a fit of ``n_samples`` rows: its BLAS threads (:meth:`_blas_threads`,
        yielded); after it, the backend noted as started in this process (auto's
        ``first_use_s``)."""
        threads = self._blas_threads(n_samples, options)
        with self.backend.blas_threads(threads):
            yield threads
        note_used(candidate_key(self.backend))

    # -- math ----------------------------------------------------------------------
    def _rows_per_pass(self, X, chunk_size) -> int:
        """Rows of ``X`` pushed through the network at once for ``chunk_size``
        (checked already): see :func:`nnbackend.network.chunk_rows`."""
        rows = chunk_rows(chunk_size, self.backend, self.layer_sizes, X.dtype)
        return self.backend.rows_per_pass(X, rows)

    def predict(self, X, chunk_size=DEFAULT_CHUNK_SIZE):
        """The network's output for ``X``, computed in row chunks.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        chunk_size : 'auto' or int
            Rows pushed through the network at once: ``'auto'`` takes as many
            as the backend's memory budget holds (see :meth:`fit`).

        Returns
        -------
        array, shape (n_samples, n_outputs)
            After the output activation (probabilities for sigmoid and
            softmax), in the model's dtype (``X`` is cast to it), namespace
            and device (the chunks' outputs concatenated there); in the
            targets' units where the model standardizes them.
        """
        chunk_size = check_chunk_size(chunk_size)
        X = self._features(X)
        if self.backend.computes_by_chunk and not is_host(X) and not known_rows(X):
            # A lazy array of unknown row count (after a mask) cannot be sliced:
            # it computes chunk by chunk, a whole chunk at a time.
            out = forward(self.flat_params, X, self.spec, self.backend.xp)[2]
        else:  # host data on Dask too: in slices, not one pass of all its rows
            out = predict_rows(self.flat_params, self.spec, X, n_rows(X),
                               self._rows_per_pass(X, chunk_size), self.backend.xp)
        if self.target_scaler is not None:
            out = self.target_scaler.inverse_transform(out, backend=self.backend)
        return out

    def loss_and_grads(self, X, y, chunk_size=DEFAULT_CHUNK_SIZE):
        """Loss and exact gradients over all of ``X`` (computed in row chunks).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples, n_outputs) or (n_samples,)
        chunk_size : 'auto' or int
            Rows pushed through the network at once (``'auto'``: as many as
            the backend's memory budget holds, see :meth:`fit`); memory does
            not grow with ``n_samples``, and the result is the one-shot one
            to rounding.

        Returns
        -------
        loss : float
        grads : list of (dW, db)
            Arrays of the model's namespace, shaped like ``params``.
        """
        chunk_size = check_chunk_size(chunk_size)
        X = self._features(X)
        n = n_rows(X)
        Y = self._targets(y, n)
        chunk_size = self._rows_per_pass(X, chunk_size)
        loss_sum, grads, _ = loss_and_grads_rows(
            self.flat_params, self.spec, slice_rows(X, Y), n, chunk_size, xp=self.backend.xp,
        )
        # Lazy data (Dask): the loss and every gradient in one pass over it.
        loss_sum, *grads = self.backend.computed([loss_sum, *grads])
        loss = float(self.backend.to_host(loss_sum))
        if self.reduction == "mean":
            loss /= n
        return loss, [(grads[i], grads[i + 1]) for i in range(0, len(grads), 2)]

    def evaluate(self, X, y, chunk_size=DEFAULT_CHUNK_SIZE):
        """Loss (with the model's reduction) and, for sigmoid and softmax
        outputs, accuracy over ``X``, ``y``; forward passes only, in chunks.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples, n_outputs) or (n_samples,)
        chunk_size : 'auto' or int
            Rows pushed through the network at once (see :meth:`fit`).

        Returns
        -------
        dict
            ``{"loss": float}``, plus ``"accuracy"`` (the share of correct
            rows for softmax, of correct outputs for sigmoid).
        """
        chunk_size = check_chunk_size(chunk_size)
        X = self._features(X)
        n = n_rows(X)
        Y = self._targets(y, n)
        multiclass = multiclass_of(self.spec)
        loss_sum, correct = evaluate_rows(
            self.flat_params, self.spec, slice_rows(X, Y), n, self._rows_per_pass(X, chunk_size),
            multiclass, self.backend.xp,
        )
        scalars = [loss_sum] if correct is None else [loss_sum, correct]
        host = self.backend.to_host(self.backend.xp.stack(scalars)).astype(np.float64)
        out = {"loss": float(host[0]) / (n if self.reduction == "mean" else 1)}
        if correct is not None:
            out["accuracy"] = float(host[1]) / (n * (1 if multiclass else self.layer_sizes[-1]))
        return out

    def fit(self, X, y, mode="minibatch", batch_size=32, epochs=100, lr=0.1,
            optimizer="sgd", shuffle=True, seed=None, progress=False, chunk_size=DEFAULT_CHUNK_SIZE,
            optimizer_options=None, validation_split=None, validation_data=None,
            patience=None, min_delta=0.0, restore_best_weights=True, callback=None,
            resume=False, executor="auto", alpha=0.0, lr_schedule="constant", power_t=0.5,
            precision=None):
        """Train in place with gradient descent.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            NumPy array, list, or array of the model's namespace and device.
        y : array-like, shape (n_samples, n_outputs) or (n_samples,)
            Targets: numbers (class ids or one-hot rows for ``cross_entropy``,
            0/1 or probabilities for a sigmoid output), or, for a softmax
            output or one sigmoid unit, class labels as text (``'cat'``,
            ``'dog'``), encoded through :attr:`classes_` (learned, sorted, by
            the first such fit; a later fit's labels must be among them).
        mode : {'batch', 'minibatch', 'sgd'}
            Full-batch, mini-batch or stochastic (one sample per step) descent.
        batch_size : int
            Rows per step in ``minibatch`` mode (clipped to ``n_samples``).
        epochs : int
            Passes over the data.
        lr : float
            Learning rate of a named ``optimizer``. An :class:`Optimizer`
            object carries its own, and ``lr`` is then not used.
        optimizer : {'sgd', 'momentum', 'adam'} or Optimizer
        shuffle : bool
            Visit the rows in a fresh random order each epoch (minibatch, sgd).
        seed : int or None
            Seeds the shuffling and the validation split; ``None`` takes the
            model's ``seed``. Ignored with ``resume=True``: the resumed fit's
            generator state draws them instead.
        progress : bool
            Show each epoch's figures on stderr: a tqdm bar with the rate and
            the time left on a terminal or in a notebook (a widget there),
            one plain line per epoch otherwise (a log, a pipe, no tqdm).
        chunk_size : 'auto' or int
            Batches with more rows than this are pushed through the network in
            chunks whose gradients are summed: full-batch memory stays flat in
            N. ``'auto'`` sizes chunks in bytes: as many rows as fit in the
            backend's budget for one chunk's activations
            (``Backend.activation_budget()``: 4 MiB on a CPU, 2048 rows of a
            [32, 64, 1] float32 network; on a GPU a quarter of its free memory,
            at most 4 GiB), a power of two and at least 256 rows. An int is
            rows.
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
            An improvement is a decrease by more than this.
        restore_best_weights : bool
            With ``patience``, end with the weights that earned the best
            monitored loss (the training loss is measured during an epoch, so
            its best weights are that epoch's start). Where the weights kept
            are not the last epoch's, ``resume`` has no state to go on from
            (``History.not_resumable``).
        callback : callable, optional
            ``callback(epoch, figures)`` after each epoch, ``epoch`` 1-based and
            ``figures`` the dict of :meth:`History.last`; while it runs the model
            holds that epoch's weights (``predict``, ``save`` see them).
        resume : bool
            Continue the model's previous fit (also one loaded from a
            checkpoint): its optimizer state and shuffling stream carry on, so
            3 + 3 resumed epochs equal 6 in one go. ``seed`` is then ignored.
        executor : {'auto', 'reference', 'cupy-fused', 'cupy-batch', 'cupy-graphs', 'torch-graphs', 'jax-scan', 'jax-batch', 'dask-chunks'}
            ``'auto'`` runs each epoch through the backend's first fast path
            that takes the plan: on cupy, and on torch:cuda and jax:gpu where
            CuPy is installed, one fused kernel launch per epoch for sgd and
            small mini-batches (``cupy-fused``) and two for batch mode
            (``cupy-batch``), the steps they decline replayed as captured CUDA
            graphs (``cupy-graphs``, ``torch-graphs`` on torch:cuda without
            CuPy); on jax, one compiled epoch; on dask, the data's row chunks.
            ``'reference'`` runs the plain loop (not on dask). The history's
            ``executor`` and ``executor_reason`` say which ran and why.
        alpha : float
            L2 penalty: ``alpha/2·‖W‖²`` added to each batch's loss, over
            ``batch_size`` rows under ``reduction="mean"`` (scikit-learn's, but
            for an epoch's shorter last batch); biases are not penalised.
            ``History.loss`` reports the data term alone.
        lr_schedule : {'constant', 'invscaling', 'adaptive'} or callable
            ``'invscaling'``: ``lr / (t + 1) ** power_t``, ``t`` the samples
            seen before the epoch. ``'adaptive'``: ``lr`` divided by 5 each
            time more than 10 epochs in a row have not brought the monitored
            loss (as ``patience``'s) ``1e-4`` below its best, while it stays
            above 1e-6 (``History.lr_drops`` lists when). A callable
            ``factor(count)`` multiplies ``lr`` at each step, ``count`` the
            steps taken before it; it is called once with 0 before the fit,
            to check that it returns a number >= 0. The fused and compiled executors run the
            built-in optimizers alone: with ``alpha > 0`` or a schedule they
            may decline, and ``History.executor_reason`` says so.
        power_t : float
            The exponent of ``'invscaling'``.
        precision : {None, 'highest', 'tf32'}
            Float32 matmuls on a CUDA GPU (cupy, torch:cuda, jax:gpu): None
            leaves the array library's setting (full float32 unless you
            turned TF32 on in it), ``'highest'`` computes them in full
            float32, ``'tf32'`` on tensor cores with TF32 operands (about 1e-3
            relative error per product; see the docs' Precision section).
            Set for the fit and put back after. CPUs, float64 and the CuPy
            kernels (``cupy-fused``, ``cupy-batch``) always compute in full
            precision; ``History.precision`` says what ran.

        Returns
        -------
        History

        Notes
        -----
        When the loss or the parameters turn NaN or infinite, training stops
        with a :class:`~nnbackend.training.DivergenceWarning`; the model keeps
        the last parameters that were finite, and ``History.diverged`` says
        what happened. A fit that stays finite but ends with a loss more than 100
        times its starting loss warns with the same category.

        A fit that raises (a callback's exception, Ctrl-C) leaves the model as
        it was before the fit: its epochs, and the scalers and labels learned
        from its data, are not kept. A resumed fit holds out the first fit's
        ``validation_split`` rows and goes on with ``'adaptive'``'s factor
        (where it asks for ``'adaptive'``) and plateau count, and with
        ``patience``'s count (its best loss and epochs waited), each where it
        monitors the same loss, ``patience``'s also where
        ``restore_best_weights`` asks for no weights the earlier fit did not
        keep. With
        ``restore_best_weights=True`` a fit can be resumed only where it kept
        its last epoch's weights (see the checkpoints page).
        """
        options = FitOptions.check(
            mode=mode, batch_size=batch_size, epochs=epochs, lr=lr, optimizer=optimizer,
            shuffle=shuffle, seed=seed, progress=progress, chunk_size=chunk_size,
            optimizer_options=optimizer_options, validation_split=validation_split,
            has_validation_data=validation_data is not None, patience=patience,
            min_delta=min_delta, restore_best_weights=restore_best_weights, callback=callback,
            resume=resume, executor=executor, alpha=alpha, lr_schedule=lr_schedule,
            power_t=power_t, precision=precision)
        options.check_rates(self.backend.xp.finfo(self.array_dtype), self.dtype)
        if callback is not None:  # it sees the epoch's weights in the model
            options = dataclasses.replace(options, callback=callback_seeing_epochs(self, callback))
        before = dict(self.__dict__)
        try:  # the frames between the caller and train() are as the warnings count them
            if self.auto and not options.resume:  # a resumed fit stays where its state is
                self._choose_backend(X, y, options)
            problems = None if self.standardize else []
            X = self._features(X, fit_scaling=True, scale_problems=problems)
            for problem in problems or []:
                warnings.warn(f"{problem}: unscaled, they stall or saturate training; build "
                              "the model with standardize=True (or scale X first)",
                              FeatureScaleWarning, stacklevel=2)
            Y = self._targets(y, n_rows(X), fit_scaling=True)
            validation = None
            if validation_data is not None:
                try:
                    X_val, y_val = validation_data
                except (TypeError, ValueError):
                    raise ValueError("validation_data must be a pair (X_val, y_val)") from None
                X_val = self._features(X_val, name="X_val")
                validation = (X_val, self._targets(y_val, n_rows(X_val), name="y_val"))
            with self._fit_context(n_rows(X), options) as threads:
                params, history, self.train_state = train(
                    self._network(), X, Y, options, validation=validation,
                    resume=self.train_state or getattr(self, "_not_resumable", None))
            self._not_resumable = history.not_resumable  # what a later resume=True is told
            self.flat_params = params
            history.backend, history.blas_threads = candidate_key(self.backend), threads
            history.backend_choice = None if not self.auto else self.backend_choice if not \
                options.resume else _resumed_choice(self.backend, history.executor)
            return history
        except BaseException:
            # A fit that raises (Ctrl-C included) leaves the model as it was: not
            # the scalers, labels or backend learned from data it did not train on.
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _network(self) -> Network:
        return Network(self.backend, self.spec, self.layer_sizes, self.flat_params, self.seed)

    # -- checkpoints ---------------------------------------------------------------
    def config(self):
        """The constructor arguments that rebuild this architecture.

        Returns
        -------
        dict
            ``layer_sizes``, ``hidden_activation``, ``output_activation``,
            ``loss``, ``reduction``, ``dtype``, ``seed`` and ``standardize``,
            by name (not the backend, device or parameters).
        """
        return {
            "layer_sizes": list(self.layer_sizes),  # a copy: the caller's to change
            "hidden_activation": self.hidden_activation,
            "output_activation": self.output_activation,
            "loss": self.loss,
            "reduction": self.reduction,
            "dtype": self.dtype,
            "seed": self.seed,
            "standardize": self.standardize,
        }

    def save(self, path):
        """Write architecture, parameters, metadata and optimizer state to an .npz file.

        Written to a temporary file beside ``path`` and renamed over it, so a
        crash never leaves a half-written file where a good one was. Scalers,
        feature names and ``classes_`` are saved with it.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced if it exists; no suffix is added).

        Raises
        ------
        ValueError
            The file cannot be written (the message names it).
        """
        from .checkpoint import save

        save(self, path)

    @classmethod
    def load(cls, path, backend=None, device=None):
        """A model from a file written by :meth:`save`, on a backend and device.

        Never executes code from the file (no pickles).

        Parameters
        ----------
        path : str or os.PathLike
            A checkpoint written by :meth:`save`.
        backend : str, Backend or None, default=None
            Where the model's arrays go, as in :class:`MLP`.
        device : optional
            The backend's device (see :func:`nnbackend.get_backend`).

        Returns
        -------
        MLP
            The saved architecture with its parameters, metadata, scalers,
            feature names, classes and optimizer state (so that
            ``fit(resume=True)`` continues).

        Raises
        ------
        ValueError
            The file is missing, corrupt or not an nnbackend checkpoint (the
            message names it).
        """
        from .checkpoint import load

        return load(cls, path, backend=backend, device=device)


def _resumed_choice(backend, executor):
    """What a resumed auto fit records: no choice made, the backend its state is on."""
    key = candidate_key(backend)
    return {"chosen": key, "backend": backend.name, "device": backend.device_spec(),
            "executor": executor, "reason": f"resumed: stays on {key}, where its optimizer "
            "state is (no new choice)", "profile": None, "candidates": []}


def fit(model: MLP, X, y, **options):
    """Train ``model`` in place; the same as ``model.fit(X, y, **options)``.

    Parameters
    ----------
    model : MLP
        The model to train.
    X : array-like, shape (n_samples, n_features)
        NumPy array, list, or array of the model's namespace and device.
    y : array-like, shape (n_samples, n_outputs) or (n_samples,)
        Targets, as :meth:`MLP.fit` takes them.
    **options
        Any keyword argument of :meth:`MLP.fit` (``mode``, ``batch_size``,
        ``epochs``, ``lr``, ``optimizer``, ...).

    Returns
    -------
    History
        The per-epoch losses and how the fit ran.
    """
    return model.fit(X, y, **options)
