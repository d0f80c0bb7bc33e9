"""The estimators' shared part: hyperparameters, the fit loop, pickling, helpers."""


from __future__ import annotations

import copy
import warnings
from dataclasses import replace

import numpy as np
from array_api_compat import is_array_api_obj
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from sklearn.utils.validation import check_is_fitted, validate_data

from ..backends import BackendUnavailableError, backend_of, get_backend, is_auto
from ..data import host_rng, is_host, make_plan, n_rows
from ..engine import EpochTask, choose_executor, run_epoch
from ..model import MLP
from ..model_inputs import dtype_name
from ..network import chunk_rows, predict_rows
from ..optim import (ScheduledState, adam, inverse_scaling, l2_penalty, momentum, on_namespace,
                     scheduled, sgd)
from ..training import FitOptions
from ..training.options import check_adam_eps
from ._params import _ACTIVATIONS, check_params
from ._state import _state_on, _structure, _tree

__all__ = ["_BaseMLP"]



def _is_numpy(a) -> bool:
    return is_host(a)


def _is_device_array(a) -> bool:
    """An array of a namespace other than NumPy (torch, JAX, CuPy, array-api-strict...)."""
    return is_array_api_obj(a) and not _is_numpy(a)


def _warn_if_gathered(X):
    """Warn that scikit-learn's input checks compute a Dask ``X`` into memory
    (without ``array_api_dispatch`` they take NumPy arrays only)."""
    from sklearn import get_config

    if (_is_device_array(X) and backend_of(X).computes_by_chunk
            and not get_config().get("array_api_dispatch")):
        warnings.warn("scikit-learn's input checks compute this Dask X into memory, whole; "
                      "for data that does not fit, train nnbackend.MLP(..., backend='dask') "
                      "on it, or fit under sklearn.config_context(array_api_dispatch=True)",
                      UserWarning, stacklevel=4)


def _readable(X):
    """``X`` as scikit-learn's checks read it: without ``array_api_dispatch`` they
    take NumPy arrays only, so a device array goes to the host, through its
    backend (which reads a bfloat16 tensor, where NumPy cannot)."""
    from sklearn import get_config

    if _is_device_array(X) and not get_config().get("array_api_dispatch"):
        return backend_of(X).to_host(X)
    return X


def _where(X):
    """``(backend name, device)`` of an array, ``('numpy', 'cpu')`` for host data."""
    if not _is_device_array(X):
        return ("numpy", "cpu")
    other = backend_of(X)
    return (other.name, str(other.device))


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: hyperparameters, the fit loop, predict."""

    _out_head = None  # set per fit: 'softmax', 'logistic' or 'identity'

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 backend=None, device=None, dtype="float32", mode="minibatch",
                 precision=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.mode = mode
        self.precision = precision

    # -- checks ----------------------------------------------------------------------
    def _check_params(self):
        """Refuse a wrong hyperparameter by name, as scikit-learn does at fit (its
        ``InvalidParameterError``); returns the hidden layer sizes as a list."""
        return check_params(self)

    def _validate_X(self, X, reset):
        X = _readable(X)
        return validate_data(self, X, dtype=_float_dtypes(X), reset=reset)

    # -- fitting -----------------------------------------------------------------------
    def fit(self, X, y):
        """Fit the model to ``X``, ``y`` with up to ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NumPy arrays, lists, DataFrames, or (under
            ``sklearn.config_context(array_api_dispatch=True)``) arrays of an
            nnbackend backend's namespace, which stay on their device.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classifier) or targets (regressor).

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)

    def _fit(self, X, y, incremental):
        # A call that raises leaves the estimator as it was (its network included);
        # Ctrl-C is not an error here: _run keeps the epochs done, as scikit-learn.
        before = self._snapshot()
        try:
            return self._fit_checked(X, y, incremental)
        except BaseException:
            self._restore(before)
            raise

    def _snapshot(self):
        """What :meth:`_restore` puts back: the attributes (lists and the fit's own
        random streams, which a fit changes in place, copied; the caller's
        hyperparameters as they are) and the network's."""
        def kept(name, value):
            if isinstance(value, list):
                return list(value)
            if name.startswith("_") and isinstance(
                    value, (np.random.Generator, np.random.RandomState)):
                return copy.deepcopy(value)
            return value
        network = dict(self.model_.__dict__) if hasattr(self, "model_") else None
        return {k: kept(k, v) for k, v in self.__dict__.items()}, network

    def _restore(self, snapshot):
        before, network = snapshot
        if network is not None:
            before["model_"].__dict__.update(network)
        self.__dict__.clear()
        self.__dict__.update(before)

    def _fit_checked(self, X, y, incremental):
        sizes = self._check_params()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        _warn_if_gathered(X)
        X = _readable(X)
        X, y = validate_data(self, X, y, multi_output=True, dtype=_float_dtypes(X),
                             y_numeric=not is_classifier(self) and _is_numpy(y), reset=first)
        self._fit_input = _where(X)
        # As scikit-learn: the stream of the weights and the validation split
        # starts again at each call (a warm fit's split is drawn from it afresh).
        self._random_state = check_random_state(self.random_state)
        Y = self._encode_targets(y, n_rows(X), incremental, first)
        n_outputs = Y.shape[1]
        if first:
            self._initialize(sizes, X, n_outputs)
        elif self.model_.layer_sizes[-1] != n_outputs:
            raise ValueError(f"y has {n_outputs} output columns; this model was fitted with "
                             f"{self.model_.layer_sizes[-1]}")
        model = self.model_
        if model.spec.hidden_activation != _ACTIVATIONS[self.activation]:
            # A warm start goes on from the weights with the activation asked for now,
            # as scikit-learn's does (it reads `activation` at every pass).
            model.spec = replace(model.spec, hidden_activation=_ACTIVATIONS[self.activation])
        if not first:
            self._retarget(model)
        options = self._fit_options(n_rows(X))
        if first and model.auto:  # backend="auto": where this fit runs (a warm start stays)
            model._choose_backend(X, Y, options)
        if self.solver == "adam":  # refused as MLP.fit refuses it, by scikit-learn's name
            check_adam_eps(float(self.epsilon), float(self.beta_2),
                           model.backend.xp.finfo(model.array_dtype), model.dtype, "epsilon")
        Xd, Yd = model._features(X), model._targets(Y, n_rows(X))
        if not incremental or getattr(self, "_opt_state", None) is None:
            self._lr_scale = 1.0
            self._opt_state = None
        else:  # the state follows the network, which follows X (another namespace, say)
            self._opt_state = _state_on(self._opt_state, model)
        validation = None
        if self.early_stopping:
            Xd, Yd, validation = self._split(Xd, Yd)
        # The executor is made (a graph captured, a scan traced) inside the precision too.
        with model._fit_context(n_rows(Xd), options), \
                model.backend.matmul_precision(self.precision, Xd.dtype) as precision:
            self._run(Xd, Yd, validation, incremental, precision)
        del self._train_labels
        return self

    def _retarget(self, model):
        """A warm start or ``partial_fit`` after ``set_params(backend=..., device=...,
        dtype=...)``: the network moves where a fresh fit would build it, with its
        weights (its optimizer state follows in ``_fit_checked``). Unnamed (None, or
        'auto') the backend stays where the last fit ran, or follows X as before."""
        dtype = dtype_name(self.dtype)
        if (self.backend is None and self.device is None) or is_auto(self.backend):
            model._move_to(model.backend, dtype)
            return
        target = get_backend(self.backend, self.device)
        model._move_to(target, dtype)
        model.auto, model._backend_named = False, True

    def _fit_options(self, n):
        """The fit as :class:`~nnbackend.training.FitOptions` put it, for what
        depends on its plan and optimizer: auto's choice, the BLAS threads."""
        optimizer = "adam" if self.solver == "adam" else "momentum" if self.momentum > 0 else "sgd"
        size = min(200, n) if self.batch_size == "auto" else int(np.clip(self.batch_size, 1, n))
        return FitOptions.check(mode=self.mode, batch_size=size,
                                epochs=self.max_iter, optimizer=optimizer,
                                shuffle=bool(self.shuffle), alpha=float(self.alpha),
                                lr_schedule=self.learning_rate, precision=self.precision)

    def _initialize(self, sizes, X, n_outputs):
        """A fresh network, drawn as scikit-learn draws it, and the fit's records."""
        layer_sizes = [X.shape[1], *sizes, n_outputs]
        factor = 2.0 if self.activation == "logistic" else 6.0
        params = []
        for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            params.append((self._random_state.uniform(-bound, bound, (fan_in, fan_out)),
                           self._random_state.uniform(-bound, bound, fan_out)))
        head = self._head(n_outputs)
        output, loss = {"softmax": ("softmax", "cross_entropy"), "logistic": ("sigmoid", "bce"),
                        "identity": ("identity", "mse")}[head]
        backend = self.backend
        if backend is None and self.device is None and not _is_numpy(X):
            backend = backend_of(X)
        self.model_ = MLP(layer_sizes, hidden_activation=_ACTIVATIONS[self.activation],
                          output_activation=output, loss=loss, backend=backend,
                          device=self.device, dtype=self.dtype,
                          seed=self._network_seed(), params=params)
        self.out_activation_ = head
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(layer_sizes)
        self.n_iter_, self.t_ = 0, 0
        self.loss_curve_, self._no_improvement_count = [], 0
        self._shuffle_rng = host_rng(self.model_.seed)
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_, self.best_validation_score_ = None, None
            self.best_loss_ = np.inf
        self._opt_state = None

    def _network_seed(self):
        """The network's own seed (its shuffles), drawn from a copy of the random
        state: the state itself goes on to the validation split as scikit-learn's
        does, which draws nothing between the weights and the split."""
        return int(copy.deepcopy(self._random_state).randint(2**31 - 1))

    def _split(self, Xd, Yd):
        """Hold out ``validation_fraction`` of the rows (stratified for one label
        column), drawn on the host from ``random_state``; the rows are taken on the device."""
        model = self.model_
        n = n_rows(Xd)
        # As scikit-learn: stratified for one label column (binary) only.
        stratify = self._train_labels if is_classifier(self) and self.n_outputs_ == 1 else None
        train_idx, val_idx = train_test_split(np.arange(n), random_state=self._random_state,
                                              test_size=self.validation_fraction,
                                              stratify=stratify)
        if val_idx.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        xp, backend = model.backend.xp, model.backend
        dtype = backend.index_dtype()
        ti, vi = backend.asarray(train_idx, dtype=dtype), backend.asarray(val_idx, dtype=dtype)
        take = lambda A, i: xp.take(A, i, axis=0)  # noqa: E731
        return take(Xd, ti), take(Yd, ti), (take(Xd, vi), take(Yd, vi))

    def _optimizer(self, plan):
        """The update scikit-learn's solver makes: the base optimizer, the learning-rate
        schedule (sgd only, as scikit-learn), the L2 penalty on the weights."""
        lr = float(self.learning_rate_init)
        if self.solver == "adam":
            opt = adam(lr, self.beta_1, self.beta_2, self.epsilon)
        elif self.momentum > 0:
            opt = momentum(lr, self.momentum, bool(self.nesterovs_momentum))
        else:
            opt = sgd(lr)
        if self.solver == "sgd" and (self.learning_rate != "constant" or self._lr_scale != 1.0):
            schedule = None
            if self.learning_rate == "invscaling":
                # scikit-learn's t_: the samples seen before this call, earlier
                # fits' included; a new optimizer (a fit, not partial_fit) runs
                # its first epoch at learning_rate_init.
                steps = -(-plan.n_samples // plan.batch_size)
                schedule = inverse_scaling(self.power_t, plan.n_samples, steps,
                                           self._samples_before, self._new_optimizer)
            opt = scheduled(opt, schedule, scale=self._lr_scale, on="grads")
        n_layers = len(self.model_.layer_sizes) - 1
        return l2_penalty(opt, float(self.alpha) / plan.batch_size, [True, False] * n_layers)

    def _plan(self, n):
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n and self.mode == "minibatch":
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                              "It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return make_plan(self.mode, n, batch_size, bool(self.shuffle))

    def _task(self, Xd, Yd, plan, precision):
        model = self.model_
        # The backend's fused update where its namespace has one (same results).
        opt = on_namespace(self._optimizer(plan), model.backend.xp)
        rows = chunk_rows("auto", model.backend, model.layer_sizes, Xd.dtype)
        task = EpochTask(model.backend, model.spec, opt, plan, Xd, Yd, rows, None,
                         model.backend.index_dtype(), model.layer_sizes)
        choice = choose_executor("auto", task)
        self.fit_executor_ = choice.reason
        # Kernels of the library's own compute their products in float32 whatever the switch.
        self.fit_precision_ = "highest" if choice.own_matmuls else precision
        return task, choice

    def _run(self, Xd, Yd, validation, incremental, precision):
        """The epochs, each followed by scikit-learn's host-side rules; ``precision``
        is the one the float32 matmuls run at (the fit's context is entered)."""
        model = self.model_
        plan = self._plan(n_rows(Xd))
        params = model.flat_params
        # scikit-learn's optimizer goes on across partial_fit calls; a fit makes a
        # new one, and so does another solver or schedule between partial_fit calls.
        self._samples_before, self._new_optimizer, state = self.t_, True, None
        if self._opt_state is not None and (
                _structure(self._opt_state) == _structure(self._optimizer(plan).init(params))):
            self._new_optimizer, state = False, self._opt_state
        task, choice = self._task(Xd, Yd, plan, precision)
        if state is None:
            state = task.optimizer.init(params)
        if isinstance(state, ScheduledState):
            # 'invscaling' counts from the whole epochs of these rows in t_ (its
            # schedule's start), in this call's steps; the other schedules read no count.
            steps = -(-plan.n_samples // plan.batch_size)
            state = ScheduledState((self._samples_before // plan.n_samples) * steps, state.inner)
        self.n_iter_ = 0  # this call's epochs, as scikit-learn (since 1.3) counts them
        try:
            params, state, best = self._epochs(Xd, Yd, validation, incremental, precision, plan,
                                               task, choice, params, state)
        except _Interrupted as stopped:
            # As scikit-learn: Ctrl-C ends the fit with the epochs done so far.
            warnings.warn("Training interrupted by user.")
            params, state, best = stopped.args
            state = None  # (a compiled epoch may have consumed it: the next call starts anew)
        if self.early_stopping and best is not None:
            params = best
        self._opt_state = state
        model.flat_params = model.backend.export(params)

    def _epochs(self, Xd, Yd, validation, incremental, precision, plan, task, choice, params,
                state):
        """The loop of :meth:`_run`: ``(params, state, best)``, ``best`` the best
        validated epoch's parameters (None without early stopping)."""
        model = self.model_
        backend, xp = model.backend, model.backend.xp
        n_batches = -(-plan.n_samples // plan.batch_size)
        best = None
        try:
            with backend.loop_context():
                for _ in range(1 if incremental else self.max_iter):
                    if choice.epoch is not None:
                        new = choice.epoch(params, state, plan.order(self._shuffle_rng))
                    else:
                        new = run_epoch(params, state, task.optimizer, task.spec, Xd, Yd, plan,
                                        self._shuffle_rng, task.index_dtype, task.chunk_size,
                                        None, xp)
                    host = self._epoch_figures(new[0], new[2], validation, task.chunk_size)
                    if not host[2]:
                        if best is None:
                            raise ValueError("Solver produced non-finite parameter weights. The "
                                             "input data may contain large values and need to "
                                             "be preprocessed.")
                        # Early stopping keeps the best validated weights, as scikit-learn's.
                        warnings.warn(f"Solver produced non-finite parameter weights at "
                                      f"iteration {self.n_iter_ + 1}; training stopped, the "
                                      "best validated weights are kept.", ConvergenceWarning)
                        state = None  # the epoch took it (a compiled one consumes it)
                        break
                    params, state = new[0], new[1]
                    self.n_iter_ += 1
                    self.t_ += plan.n_samples
                    self.loss_ = (float(host[0]) / plan.n_samples / self._loss_divisor()
                                  + 0.5 * float(self.alpha) * float(host[1]) * n_batches
                                  / plan.n_samples)
                    self.loss_curve_.append(self.loss_)
                    if self.verbose:
                        print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                    if self._improvement(host, validation):
                        best = params
                    if self._no_improvement_count > self.n_iter_no_change:
                        if self._stop():
                            break
                        self._no_improvement_count = 0
                        task, choice = self._task(Xd, Yd, plan, precision)
                    if incremental:
                        break
                    if self.n_iter_ == self.max_iter:
                        warnings.warn(f"Stochastic Optimizer: Maximum iterations "
                                      f"({self.max_iter}) reached and the optimization hasn't "
                                      "converged yet.", ConvergenceWarning)
        except KeyboardInterrupt:
            raise _Interrupted(params, state, best) from None
        return params, state, best

    def _stop(self) -> bool:
        """scikit-learn's ``trigger_stopping``: stop, unless the learning rate is
        'adaptive' (sgd) and still above 1e-6, which then divides it by 5."""
        what = "Validation score" if self.early_stopping else "Training loss"
        msg = (f"{what} did not improve more than tol={self.tol:f} for "
               f"{self.n_iter_no_change} consecutive epochs.")
        if self.solver != "sgd" or self.learning_rate != "adaptive" \
                or self.learning_rate_init * self._lr_scale <= 1e-6:
            if self.verbose:
                print(msg + " Stopping.")
            return True
        self._lr_scale /= 5.0
        if self.verbose:
            print(msg + f" Setting learning rate to {self.learning_rate_init * self._lr_scale:f}")
        return False

    def _improvement(self, host, validation) -> bool:
        """scikit-learn's ``_update_no_improvement_count``; True where the
        validation score is the best so far (those weights are kept)."""
        if validation is not None:
            score = self._validation_score(host[3:], n_rows(validation[0]))
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                return True
            return False
        if self.loss_curve_[-1] > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])
        return False

    def _epoch_figures(self, params, loss_sum, validation, chunk_size):
        """One transfer: ``[loss_sum, ‖W‖², finite, *validation parts]`` as float64."""
        xp = self.model_.backend.xp
        dtype = params[0].dtype
        weights = params[0::2]
        penalty = xp.sum(xp.stack([xp.sum(W * W) for W in weights]))
        finite = xp.all(xp.stack([xp.all(xp.isfinite(p)) for p in params]))
        parts = [xp.reshape(xp.astype(s, dtype), (1,)) for s in (loss_sum, penalty, finite)]
        if validation is not None:
            X_val, Y_val = validation
            out = predict_rows(params, self.model_.spec, X_val, n_rows(X_val), chunk_size, xp)
            parts += [xp.astype(p, dtype) for p in self._score_parts(out, Y_val, xp)]
        return self.model_.backend.to_host(xp.concat(parts)).astype(np.float64)

    # -- predicting ----------------------------------------------------------------------
    def _forward(self, X, method="predict"):
        """``(network output, X)``: X checked; the output in the model's namespace."""
        check_is_fitted(self, "model_")
        X = self._validate_X(X, reset=False)
        _check_same_namespace(X, self, method)
        return self.model_.predict(X), X

    def _to_caller(self, out, X):
        """``out`` as the caller's array type: NumPy for host ``X``, else ``X``'s namespace."""
        if not _is_device_array(X):
            return self.model_.backend.to_host(out)
        return out

    @property
    def coefs_(self):
        """list of ndarray, shape (n_features_l, n_features_l+1): the weights, on the host.

        On the CPU backends the network's own arrays (an edit in place
        changes the network, as scikit-learn's; jax's are read-only); on a
        GPU, copies. Assigning a whole list sets the network's weights on any
        backend."""
        check_is_fitted(self, "model_")
        return [self.model_.backend.to_host(W) for W in self.model_.flat_params[0::2]]

    @coefs_.setter
    def coefs_(self, coefs):
        self._set_params_of(0, "coefs_", coefs)

    @property
    def intercepts_(self):
        """list of ndarray, shape (n_features_l+1,): the biases, on the host (the
        network's own on the CPU backends, as :attr:`coefs_`)."""
        check_is_fitted(self, "model_")
        return [self.model_.backend.to_host(b) for b in self.model_.flat_params[1::2]]

    @intercepts_.setter
    def intercepts_(self, intercepts):
        self._set_params_of(1, "intercepts_", intercepts)

    def _set_params_of(self, offset, name, values):
        """Put ``values`` (host or backend arrays) in place of every other parameter
        from ``offset``, in the fitted shapes (ValueError naming ``name`` otherwise)."""
        check_is_fitted(self, "model_")
        model = self.model_
        flat = list(model.flat_params)
        current = flat[offset::2]
        values = list(values)
        shapes = [tuple(a.shape) for a in current]
        given = [tuple(getattr(v, "shape", np.shape(v))) for v in values]
        if given != shapes:
            raise ValueError(f"{name} must be {len(shapes)} arrays of shapes {shapes}; got "
                             f"{len(given)} of shapes {given}")
        for i, v in zip(range(offset, len(flat), 2), values):
            host = np.asarray(v if is_host(v) else backend_of(v).to_host(v))
            if host.dtype.kind not in "biuf":
                raise ValueError(f"{name} must hold real numbers; got dtype {host.dtype}")
            with np.errstate(over="ignore"):  # (an overflow is refused just below)
                cast = np.array(host, dtype=model.dtype)  # a copy, in the network's dtype
            if not np.all(np.isfinite(cast)):
                raise ValueError(f"{name} holds NaN or infinity (in the network's {model.dtype})")
            flat[i] = model.backend.asarray(cast, dtype=model.array_dtype)
        model.flat_params = flat

    def save(self, path):
        """Write the fitted network in nnbackend's checkpoint format (.npz).

        :meth:`nnbackend.MLP.load` reads it back as an :class:`~nnbackend.MLP`
        (the network, not the estimator), with the estimator's ``classes_``
        (one sigmoid unit or a softmax: its ``predict_labels`` gives what
        :meth:`predict` gives) and ``feature_names_in_``, which
        ``nnbackend predict`` matches a CSV's columns to.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write, as :meth:`nnbackend.MLP.save` writes it.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            The estimator is not fitted.
        ValueError
            The file cannot be written.
        """
        check_is_fitted(self, "model_")
        model = self.model_
        # The file carries the estimator's labels and column names, so that
        # MLP.load and `nnbackend predict` answer in them; the network itself
        # keeps taking the class ids the estimator hands it.
        kept = model._classes, model.feature_names_in_
        names = getattr(self, "feature_names_in_", None)
        classes = getattr(self, "classes_", None)
        try:
            if names is not None:
                model.feature_names_in_ = [str(name) for name in names]
            if (classes is not None and model._label_head() in ("softmax", "binary")
                    and len(classes) == model._n_classes("class labels")):
                model.classes_ = classes
            model.save(path)
        finally:
            model._classes, model.feature_names_in_ = kept

    # -- pickling: the network as host arrays, rebuilt on its backend on load ------------
    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else dict(self.__dict__)
        state = dict(state)
        model = state.pop("model_", None)
        if model is not None:
            to_host = model.backend.to_host
            state["_pickled_model"] = {
                "config": model.config(), "backend": model.backend.name,
                "device": model.backend.device_spec(),
                "params": [to_host(p) for p in model.flat_params]}
            state["_opt_state"] = _tree(state.get("_opt_state"), to_host)
        return state

    def __setstate__(self, state):
        state = dict(state)
        saved = state.pop("_pickled_model", None)
        if hasattr(super(), "__setstate__"):
            super().__setstate__(state)
        else:
            self.__dict__.update(state)
        if saved is not None:
            flat = saved["params"]
            config = dict(saved["config"])
            config.pop("standardize", None)
            params = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
            # Back on the device it was fitted on (the data's, where it decided),
            # or the backend's default one where this machine lacks that device.
            device = self.device if self.device is not None else saved.get("device")
            try:
                self.model_ = MLP(**config, backend=saved["backend"], device=device,
                                  params=params)
            except (BackendUnavailableError, ValueError) as exc:
                if self.device is not None or device is None:
                    raise
                # The backend's default device, where the backend itself is here
                # (else its own error, not a word about devices).
                self.model_ = MLP(**config, backend=saved["backend"], params=params)
                warnings.warn(f"the estimator was fitted on {saved['backend']} device "
                              f"{device!r}, which is not here ({exc}); it is loaded on "
                              f"{self.model_.backend.device_spec()}", RuntimeWarning,
                              stacklevel=2)
            backend = self.model_.backend
            self._opt_state = _tree(self._opt_state, lambda a: backend.asarray(a))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A backend named outright takes its own arrays alone: no other namespace's.
        tags.array_api_support = self.backend in (None, "auto")
        tags.non_deterministic = self.random_state is None
        return tags


def _check_same_namespace(X, estimator, method):
    """Under ``array_api_dispatch``, refuse ``X`` of another namespace or device than
    the fitted network's (scikit-learn's ``check_same_namespace``); a host ``X`` of a
    network on a device is moved there, as without dispatch."""
    from sklearn import get_config

    if not get_config().get("array_api_dispatch"):
        return
    fitted, given = estimator._fit_input, _where(X)
    if fitted != given:
        raise ValueError(
            f"Inputs passed to {type(estimator).__name__}.{method}() must use the same namespace "
            f"and the same device as those passed to fit(): fitted on "
            f"{fitted[0]} ({fitted[1]}), got {given[0]} ({given[1]}).")


def _float_dtypes(X):
    """validate_data's dtype: NumPy's floats for host data; for an array of another
    namespace (kept as it is under ``array_api_dispatch``), any numeric dtype (the
    network casts it to ``dtype`` on its device)."""
    if _is_device_array(X):
        return "numeric"
    return (np.float64, np.float32)


class _Interrupted(Exception):
    """Ctrl-C during the epochs, carrying ``(params, state, best)`` of those done."""


def _host_labels(y):
    """Labels as a NumPy array (copied from a device where they were there: labels are small)."""
    if _is_device_array(y):
        return backend_of(y).to_host(y)
    if hasattr(y, "to_numpy"):  # pandas
        return y.to_numpy()
    return np.asarray(y)
