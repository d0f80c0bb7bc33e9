"""The data an :class:`nnbackend.MLP` is given: initial parameters, features
and targets checked and moved to its backend, feature names, standardization.

A mixin of :class:`nnbackend.MLP` (its own module to keep ``model.py``
short, as :mod:`nnbackend.classifier` is); it relies on the model's
``layer_sizes``, ``backend``, ``dtype``, ``array_dtype``, ``loss``,
``output_activation``, ``_follow`` and ``_class_ids``.
"""

from __future__ import annotations

import numpy as np

from .backends.base import native_host
from .data import (array_backend, as_targets, checked_features, feature_scale_problem,
                   frame_columns, is_host, n_rows)
from .scaling import StandardScaler

__all__ = ["ModelInputs", "dtype_name", "first_param"]


class ModelInputs:
    """Checks of ``params``, ``X`` and ``y`` and their standardization, for :class:`nnbackend.MLP`."""

    def _check_params(self, params):
        if not isinstance(params, (list, tuple)):
            raise TypeError(f"params must be a list of (W, b) pairs, one per layer; got "
                            f"{type(params).__name__}")
        params = list(params)
        n_layers = len(self.layer_sizes) - 1
        if len(params) != n_layers:
            raise ValueError(
                f"params must hold {n_layers} (W, b) pairs for layer_sizes "
                f"{self.layer_sizes}; got {len(params)}"
            )
        flat = []
        for i, pair in enumerate(params):
            try:
                W, b = pair
            except (TypeError, ValueError):
                raise ValueError(f"params[{i}] must be a (W, b) pair") from None
            fan_in, fan_out = self.layer_sizes[i], self.layer_sizes[i + 1]
            for name, a, shape in (("W", W, (fan_in, fan_out)), ("b", b, (fan_out,))):
                label = f"params[{i}] {name}"
                if is_host(a):
                    a = native_host(np.asarray(a))  # (torch takes no '>f8', no a[::-1])
                    if a.dtype.kind not in "biuf":
                        raise TypeError(f"{label} must hold real numbers; got dtype {a.dtype}")
                    if not np.all(np.isfinite(a)):
                        raise ValueError(f"{label} contains NaN or infinity")
                else:
                    source = array_backend(label, a)
                    if not source.holds_data():
                        raise ValueError(f"{label} is on device {source.device}, which holds "
                                         "no values; pass arrays with values")
                    a = source.detached(a)
                    if not source.xp.isdtype(a.dtype, ("real floating", "integral", "bool")):
                        raise TypeError(f"{label} must hold real numbers; got dtype {a.dtype}")
                    if source.name != self.backend.name:
                        a = source.to_host(a)
                if tuple(a.shape) != shape:
                    raise ValueError(f"{label} must have shape {shape}; got {tuple(a.shape)}")
                # A copy: the model never shares (and so never changes) the caller's arrays.
                a = self.backend.xp.asarray(a, dtype=self.array_dtype, device=self.backend.device, copy=True)
                # Arrays of a backend skipped the host check above; one sync
                # per array at construction is cheap.
                if not bool(self.backend.xp.all(self.backend.xp.isfinite(a))):
                    raise ValueError(f"{label} contains NaN or infinity (in dtype {self.dtype})")
                flat.append(a)
        return flat

    def _features(self, X, fit_scaling=False, scale_problems=None, name="X"):
        """``X`` checked, on the device and scaled; ``scale_problems``, a list,
        gets what :func:`feature_scale_problem` finds in the unscaled columns.
        Only ``X`` itself moves a model that follows its data: validation
        features (``name`` 'X_val') of another backend or device are refused by name."""
        self._check_feature_names(frame_columns(X), learn=fit_scaling)
        # A switch the dtype needs, turned off since the model was made (JAX's
        # x64 for float64), is turned on again, as making the model did.
        self.backend.dtype(self.dtype)
        if name == "X":
            self._follow(X)
        fit = fit_scaling and bool(self.standardize)
        # The scale problems of host data are read from the device copy, which
        # must then be unscaled (a fit asks for them only when it does not scale).
        prescale = None if scale_problems is not None else self._prescaler("feature_scaler", fit)
        # The input checks compute on lazy data (one pass): on the backend's scheduler.
        with self.backend.compute_context():
            X, extremes = checked_features(self.backend, X, self.array_dtype, name,
                                           prescale=prescale)
        self._check_width(X)
        if scale_problems is not None:
            n_rows(X)  # a fit's rows must be known (said before its columns are read)
            with self.backend.compute_context():
                problem = feature_scale_problem(self.backend, X, extremes)
            scale_problems += [problem] if problem else []
        if prescale is not None and prescale.ran:
            return X
        return self._scaled(X, "feature_scaler", fit)

    def _check_width(self, X):
        if X.shape[1] != self.layer_sizes[0]:
            raise ValueError(
                f"X has {X.shape[1]} features but the network expects {self.layer_sizes[0]}"
            )

    def _check_feature_names(self, names, learn):
        """A DataFrame's columns against :attr:`feature_names_in_`, which the
        first fit on a DataFrame learns; a mismatch is refused by name."""
        known = self.feature_names_in_
        if names is None or names == known:
            return
        if known is None:
            if learn:
                self.feature_names_in_ = names
            return
        unseen = [n for n in names if n not in known]
        missing = [n for n in known if n not in names]
        if unseen or missing:
            raise ValueError(f"X's columns are not the features the model was fitted on: "
                             f"unseen {unseen}, missing {missing}")
        raise ValueError(f"X's columns are those the model was fitted on in another order; "
                         f"select them as X[{known}]")

    def _targets(self, y, n_samples, fit_scaling=False, name="y"):
        y = self._class_ids(y, learn=fit_scaling)
        fit = fit_scaling and self._scales_targets()
        prescale = self._prescaler("target_scaler", fit)
        with self.backend.compute_context():
            # Training targets: a single class is refused too, from the same read.
            Y = as_targets(self.backend, y, self.loss, self.layer_sizes[-1], n_samples,
                           self.array_dtype, name, training=fit_scaling, prescale=prescale)
        if prescale is not None and prescale.ran:
            return Y
        return self._scaled(Y, "target_scaler", fit)

    # -- standardization -----------------------------------------------------------
    def _init_scaling(self, standardize):
        if standardize not in (False, True, "features"):
            raise ValueError(f"standardize must be False, True or 'features'; got {standardize!r}")
        self.standardize = standardize
        self.feature_names_in_ = None
        self.feature_scaler = None
        self.target_scaler = None
        self._classes = None

    def _scales_targets(self) -> bool:
        # Only an unbounded regression head: a sigmoid or softmax output's
        # targets are probabilities, which scaling would push out of range.
        return (self.standardize is True and self.output_activation == "identity"
                and self.loss == "mse")

    def _prescaler(self, attr, fit):
        """The standardization by the scaler ``attr`` that the input checks
        apply before the cast to a float32 model's dtype (see
        :func:`nnbackend.data.checked_features`), or None where nothing is
        scaled or the model is float64 (scaled after the cast, in float64, as
        ever). Its ``ran`` says whether it was applied: data it is not given
        are scaled after the cast (:meth:`_scaled`).

        The cast first would round the data to float32, whose resolution at
        an offset of 1e7 is 1: a feature 1e7 ± 1 would keep 8 values.
        """
        if self.dtype == "float64" or not (fit or getattr(self, attr) is not None):
            return None

        def prescale(A):
            if attr == "feature_scaler":
                self._check_width(A)  # before the scaler's own width refusal
            name = "X" if attr == "feature_scaler" else "the targets"
            host = isinstance(A, np.ndarray)  # host data, else a wider array of the backend
            if fit and getattr(self, attr) is None:
                n_rows(A)  # a fit's rows must be known: said before reading them again
                scaler = (StandardScaler().fit_host(A, name=name) if host else
                          StandardScaler().fit(A, backend=self.backend, name=name))
                setattr(self, attr, scaler)
            scaler = getattr(self, attr)
            prescale.ran = True
            if host:  # in float64 in row blocks, then rounded once to the model's dtype
                return scaler.transform_host(A, np.dtype(self.dtype))
            xp = self.backend.xp
            return xp.astype(scaler.transform(A, backend=self.backend), self.array_dtype)

        prescale.ran = False
        return prescale

    def _scaled(self, A, attr, fit):
        """``A`` through the scaler ``attr``, which ``fit`` first learns from ``A``
        where it has none yet (a later fit keeps it: the weights are fitted to it)."""
        if fit and getattr(self, attr) is None:
            n_rows(A)  # a fit's rows must be known: said before reading them again
            with self.backend.compute_context():
                name = "X" if attr == "feature_scaler" else "the targets"
                setattr(self, attr, StandardScaler().fit(A, backend=self.backend, name=name))
        scaler = getattr(self, attr)
        return A if scaler is None else scaler.transform(A, backend=self.backend)


def first_param(params):
    """``params[0][0]`` where ``params`` is a list of (W, b) pairs, else None: the
    parameter checks then say what is wrong with it, by name."""
    if not isinstance(params, (list, tuple)) or not params:
        return None
    pair = params[0]
    return pair[0] if isinstance(pair, (list, tuple)) and pair else None


def dtype_name(dtype) -> str:
    """'float32' or 'float64' from a name or a NumPy dtype (``np.float32``);
    anything else is passed on as text for the backend to refuse by name."""
    if isinstance(dtype, str):
        return dtype
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        return np.dtype(dtype).name
    return str(dtype)
