"""The classifier and the regressor on :class:`._base._BaseMLP`."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d

from ..backends import backend_of
from ._base import _BaseMLP, _host_labels, _is_device_array, _is_numpy, _where
from ._params import InvalidParameterError

__all__ = ["MLPClassifier", "MLPRegressor"]


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier, as :class:`sklearn.neural_network.MLPClassifier`,
    trained by nnbackend on any backend.

    Softmax output and cross-entropy for several classes; one logistic unit
    and binary cross-entropy for two classes, several for multi-label ``y``.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(100,)
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
    solver : {'sgd', 'adam'}, default='adam'
    alpha : float, default=1e-4
        L2 penalty: ``alpha/2·‖W‖²`` over the batch's rows (biases not penalised).
    batch_size : int or 'auto', default='auto'
        ``'auto'`` is ``min(200, n_samples)``; used by ``mode='minibatch'``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Used by ``solver='sgd'``, as scikit-learn.
    learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose,
    warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction,
    beta_1, beta_2, epsilon, n_iter_no_change
        As scikit-learn's (same defaults).
    backend : str or None
        nnbackend's backend (``'numpy'``, ``'torch'``, ``'jax'``, ``'cupy'``...);
        None: the backend of an array-API ``X``, else ``$NNBACKEND_BACKEND`` or NumPy.
        ``'auto'``: the backend predicted fastest for the first fit (see
        :func:`nnbackend.explain_backend`; ``model_.backend_choice`` says which and why).
    device : optional
        The backend's device.
    dtype : {'float32', 'float64'}, default='float32'
    mode : {'batch', 'minibatch', 'sgd'}, default='minibatch'
    precision : {None, 'highest', 'tf32'}, default=None
        The float32 matmuls' precision during fit, as :meth:`nnbackend.MLP.fit`'s:
        None leaves the array library's own setting (full float32 unless
        changed there), ``'highest'`` is full float32, ``'tf32'`` TF32 tensor
        cores where the GPU has them (faster, about 1e-3 relative error in
        the products). ``predict`` runs at the library's own setting.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coefs_, intercepts_ : list of ndarray
        Weights of shape (fan_in, fan_out) and biases of shape (fan_out,), on the host.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only for ``X`` with string column names (a DataFrame).
    n_iter_, t_ : int
        Epochs run by the last call (fit, warm fit or ``partial_fit``), and
        training samples seen over all calls.
    loss_, best_loss_ : float
    loss_curve_ : list of float, shape (n_iter_,)
    validation_scores_ : list of float or None
    best_validation_score_ : float or None
    out_activation_ : {'softmax', 'logistic'}
    n_outputs_, n_layers_ : int
    model_ : nnbackend.MLP
        The network, on its backend and device.
    fit_executor_ : str
        Which epoch executor ran the last fit, and why.
    fit_precision_ : str
        The precision the last fit's float32 matmuls ran at, as
        ``History.precision`` names it: ``'highest'`` (full float32: on
        CPUs, in float64, under nnbackend's own CUDA kernels, and on a GPU
        set to it); ``'tf32'`` where TF32 ran. With ``precision=None`` on a
        GPU, whatever the library was set to: ``'bfloat16'`` (torch's
        ``'medium'``, JAX's ``'bfloat16'``, CuPy's BF16 compute type),
        ``'float16'`` (CuPy's FP16 compute type), JAX's own name for any
        other ``jax_default_matmul_precision``, or ``"torch's own
        setting"`` / ``"CuPy's own setting"`` where the library's switch
        cannot be read.
    """

    def _head(self, n_outputs):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _loss_divisor(self):
        return 1.0

    def _encode_targets(self, y, n, incremental, first):
        y = _host_labels(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if y.shape[0] != n:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{n}, {y.shape[0]}]")
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same classes "
                                     f"as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        self._train_labels = y if y.ndim == 1 else None
        return self._label_binarizer.transform(y).astype(np.float64)

    def _score_parts(self, out, Y, xp):
        """Correct rows of the validation output ``out`` against one-hot or 0/1 ``Y``."""
        if self.out_activation_ == "softmax":
            right = xp.argmax(out, axis=1) == xp.argmax(Y, axis=1)
        else:
            right = xp.all((out > 0.5) == (Y > 0.5), axis=1)
        return [xp.reshape(xp.sum(xp.astype(right, out.dtype)), (1,))]

    def _validation_score(self, parts, n_val):
        return float(parts[0]) / n_val

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``X``, ``y``, continuing the optimizer's state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array of shape (n_classes,), optional
            All the classes, on the first call (not needed for multi-label ``y``).

        Returns
        -------
        self
        """
        before = self._snapshot()  # a first call that raises leaves no classes behind
        try:
            self._partial_fit_classes(y, classes)
            return self._fit(X, y, incremental=True)
        except BaseException:
            self._restore(before)
            raise

    def _partial_fit_classes(self, y, classes):
        classes = None if classes is None else _host_labels(classes)
        if not hasattr(self, "classes_"):
            y_host = _host_labels(y)
            multilabel = type_of_target(y_host).startswith("multilabel")
            if classes is None and not multilabel:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            # Multi-label y names its labels itself, classes or not (scikit-learn
            # asks for classes on a first call anyway, then fits them from y).
            self._label_binarizer = LabelBinarizer().fit(y_host if multilabel else classes)
            self.classes_ = self._label_binarizer.classes_
        if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"`classes={classes!r}` is not the same as on the first call to "
                             f"partial_fit (or, for multi-label y, its labels); was "
                             f"{self.classes_!r}")

    def predict_proba(self, X):
        """Probability of each class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        array of shape (n_samples, n_classes)
            Columns in the order of ``classes_``; NumPy for host ``X``, else
            ``X``'s namespace and device.
        """
        return self._proba(X, "predict_proba")

    def _proba(self, X, method):
        out, X = self._forward(X, method)
        if self.n_outputs_ == 1:
            out = self.model_.backend.xp.concat([1 - out, out], axis=1)
        return self._to_caller(out, X)

    def predict_log_proba(self, X):
        """Log of the probability of each class: ``log(predict_proba(X))``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        array of shape (n_samples, n_classes)
            Columns in the order of ``classes_``; ``-inf`` where a probability
            is 0. The same array type as :meth:`predict_proba` returns.
        """
        proba = self._proba(X, "predict_log_proba")
        if _is_numpy(proba):
            with np.errstate(divide="ignore"):
                return np.log(proba)
        return self.model_.backend.xp.log(proba)

    def predict(self, X):
        """The predicted class of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        array of shape (n_samples,), or (n_samples, n_labels) for multi-label
            Labels from ``classes_``. NumPy for host ``X``; in ``X``'s namespace
            for an array-API ``X`` where the labels are numbers (multi-label
            rows come back as NumPy, as scikit-learn's label binarizer makes them).
        """
        out, X = self._forward(X)
        xp, backend = self.model_.backend.xp, self.model_.backend
        on_device = not _is_numpy(X) and self.classes_.dtype.kind in "biuf"
        if self.out_activation_ == "softmax":
            ids = xp.argmax(out, axis=1)
        elif self.n_outputs_ == 1 and self.classes_.shape[0] == 1:  # fitted on one class
            ids = xp.zeros(out.shape[0], dtype=backend.index_dtype(), device=backend.device)
        elif self.n_outputs_ == 1:
            ids = xp.astype(out[:, 0] > 0.5, backend.index_dtype())
        else:
            return self._label_binarizer.inverse_transform(backend.to_host(out))
        if on_device:
            return xp.take(backend.asarray(self.classes_), ids, axis=0)
        return self.classes_[backend.to_host(ids)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor, as :class:`sklearn.neural_network.MLPRegressor`,
    trained by nnbackend on any backend: identity output and (half) squared error.

    Parameters and attributes are :class:`MLPClassifier`'s, less ``classes_``,
    and ``loss``: ``'squared_error'``, the only one offered (scikit-learn's
    ``'poisson'`` is refused). ``out_activation_`` is ``'identity'``. ``loss_``
    is scikit-learn's half mean squared error (over samples and outputs) plus
    the L2 term.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, loss="squared_error",
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 backend=None, device=None, dtype="float32", mode="minibatch",
                 precision=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, backend=backend, device=device,
            dtype=dtype, mode=mode, precision=precision)
        self.loss = loss

    def __setstate__(self, state):
        state.setdefault("loss", "squared_error")  # pickled before loss was a parameter
        super().__setstate__(state)

    def _check_params(self):
        if self.loss != "squared_error":
            raise InvalidParameterError(
                f"The 'loss' parameter must be 'squared_error' (nnbackend offers no other "
                f"regression loss); got {self.loss!r}.")
        return super()._check_params()

    def _head(self, n_outputs):
        return "identity"

    def _loss_divisor(self):
        return float(self.n_outputs_)

    def _encode_targets(self, y, n, incremental, first):
        if _is_device_array(y) and _where(y) != self._fit_input:
            y = backend_of(y).to_host(y)  # targets follow X (a copy of y, never of X)
        if not _is_device_array(y):
            y = np.asarray(y)
            if y.dtype.kind not in "biuf":
                y = y.astype(np.float64)
            if not np.all(np.isfinite(y)):
                raise ValueError("Input y contains NaN or infinity.")
        if y.shape[0] != n:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{n}, {y.shape[0]}]")
        if y.ndim == 2 and y.shape[1] == 1:
            if _is_numpy(y):
                warnings.warn("A column-vector y was passed when a 1d array was expected.",
                              DataConversionWarning)
            y = y[:, 0]
        self._y_1d = y.ndim == 1
        self._train_labels = None
        if _is_numpy(y):
            return y.reshape(n, -1).astype(np.float64)
        xp = backend_of(y).xp
        return xp.reshape(y, (n, -1))

    def _score_parts(self, out, Y, xp):
        """Per output: the residual and total sums of squares (R²'s parts)."""
        mean = xp.mean(Y, axis=0)
        return [xp.sum((Y - out) ** 2, axis=0), xp.sum((Y - mean) ** 2, axis=0)]

    def _validation_score(self, parts, n_val):
        k = self.n_outputs_
        ss_res, ss_tot = np.asarray(parts[:k]), np.asarray(parts[k:2 * k])
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
        return float(np.mean(r2))

    def partial_fit(self, X, y):
        """One epoch over ``X``, ``y``, continuing the optimizer's state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """The predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        array of shape (n_samples,), or (n_samples, n_outputs) for several
            NumPy for host ``X``, else ``X``'s namespace and device.
        """
        out, X = self._forward(X)
        if self.n_outputs_ == 1:
            out = out[:, 0]
        return self._to_caller(out, X)


