"""Standardization: per-column ``(x - mean) / scale``, as scikit-learn's ``StandardScaler``.

A :class:`StandardScaler` keeps its statistics as host float64 arrays (so
they go into checkpoints as plain numbers) and applies them to arrays of any
array-API namespace, on the array's own device, in the array's dtype.
"""

from __future__ import annotations

import warnings

import numpy as np

from .backends import backend_of

__all__ = ["StandardScaler"]


class StandardScaler:
    """Per-column standardization: ``transform(X) = (X - mean_) / scale_``.

    ``scale_`` is the column's population standard deviation (``ddof=0``, as
    scikit-learn); a constant column gets ``scale_ = 1`` so it maps to 0
    instead of dividing by zero.

    Parameters
    ----------
    mean : array_like of shape (n_columns,), optional
    scale : array_like of shape (n_columns,), optional
        Given together: a scaler with these statistics (``fit`` not needed).

    Attributes
    ----------
    mean_ : ndarray of float64, shape (n_columns,)
    scale_ : ndarray of float64, shape (n_columns,)
    n_features_in_ : int
    """

    def __init__(self, mean=None, scale=None):
        self.mean_ = self.scale_ = None
        if (mean is None) != (scale is None):
            raise ValueError("StandardScaler takes mean and scale together, or neither")
        if mean is not None:
            self._set(mean, scale)

    def _set(self, mean, scale):
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        scale = np.asarray(scale, dtype=np.float64).reshape(-1)
        if mean.shape != scale.shape or mean.size == 0:
            raise ValueError(f"mean and scale must be two non-empty 1-D arrays of one length; "
                             f"got shapes {mean.shape} and {scale.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("mean must be finite and scale finite and > 0")
        self.mean_, self.scale_ = mean, scale

    @property
    def n_features_in_(self):
        """The number of columns the scaler was fitted on (int), or None before ``fit``."""
        return None if self.mean_ is None else int(self.mean_.shape[0])

    def __repr__(self):
        if self.mean_ is None:
            return "StandardScaler()"
        return f"StandardScaler(n_columns={self.n_features_in_})"

    def fit(self, X, backend=None, name="X"):
        """Learn each column's mean and standard deviation from ``X``.

        Parameters
        ----------
        X : array, shape (n_samples, n_columns)
            Host data or an array of any array-API namespace (the statistics
            are computed there, in ``X``'s dtype, float64 for whole numbers
            and bools, then brought to the host).
        backend : nnbackend.Backend, optional
            ``X``'s backend; NumPy (or ``X``'s namespace) if not given.
        name : str, default "X"
            What ``X`` is, for the error message ("X", "the targets").

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Values so large that a column's mean or spread overflows ``X``'s
            dtype (the message names the columns).
        """
        xp, to_host, asarray = _ops(X, backend)
        if not xp.isdtype(X.dtype, "real floating"):  # (the standard's mean takes floats)
            X = xp.astype(X, xp.float64)
        with warnings.catch_warnings():  # an overflow is refused below, by column
            warnings.simplefilter("ignore", RuntimeWarning)
            # Two passes, no cancellation. The mean goes back as the host read
            # it (the same numbers, in its own dtype: an int X's mean is not
            # whole), so lazy data is not read for it again.
            on_device = xp.mean(X, axis=0)
            mean = to_host(on_device)
            std = to_host(xp.sqrt(xp.mean((X - asarray(mean, on_device.dtype)) ** 2, axis=0)))
        mean, std = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (mean, std))
        overflowed = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std)))
        if overflowed.size:
            columns = ", ".join(map(str, overflowed[:5])) + (", ..." if overflowed.size > 5 else "")
            largest = np.asarray(to_host(xp.max(xp.abs(X), axis=0))).reshape(-1)
            if not np.all(np.isfinite(largest)):
                bad = ", ".join(map(str, np.flatnonzero(~np.isfinite(largest))[:5]))
                raise ValueError(f"{name} contains NaN or infinity (column(s) {bad})")
            wider = "" if "64" in str(X.dtype) else ", use dtype='float64'"
            raise ValueError(
                f"{name}: the values of column(s) {columns} are too large to standardize in "
                f"{X.dtype} (their spread overflows); rescale them{wider}, or turn "
                "standardizing off (standardize=False, --no-standardize)")
        tiny = np.finfo(np.float32).eps * np.maximum(np.abs(mean), 1.0)
        self._set(mean, np.where(std > tiny, std, 1.0))
        return self

    def _stats(self, X, backend):
        if self.mean_ is None:
            raise ValueError("this StandardScaler is not fitted yet; call fit(X) first")
        if X.shape[-1] != self.mean_.shape[0]:
            raise ValueError(f"the scaler was fitted on {self.mean_.shape[0]} columns; "
                             f"got {X.shape[-1]}")
        xp, _, asarray = _ops(X, backend)
        # Whole numbers and bools are standardized in float64 (their mean is
        # no whole number); floats in their own dtype.
        X = X if xp.isdtype(X.dtype, "real floating") else xp.astype(X, xp.float64)
        return X, asarray(self.mean_, X.dtype), asarray(self.scale_, X.dtype)

    def transform(self, X, backend=None):
        """Standardize ``X``: ``(X - mean_) / scale_``, column by column.

        Parameters
        ----------
        X : array, shape (n_samples, n_columns)
            Host data or an array of any array-API namespace.
        backend : nnbackend.Backend, optional
            ``X``'s backend; found from ``X`` if not given.

        Returns
        -------
        array, shape (n_samples, n_columns)
            In ``X``'s namespace, dtype (float64 for whole numbers and
            bools) and device.

        Raises
        ------
        ValueError
            The scaler is not fitted, or ``X`` has another number of columns.
        """
        X, mean, scale = self._stats(X, backend)
        return (X - mean) / scale

    def inverse_transform(self, X, backend=None):
        """Undo :meth:`transform`: ``X * scale_ + mean_``, back to the original units.

        Parameters
        ----------
        X : array, shape (n_samples, n_columns)
            Standardized values, host data or an array of any array-API namespace.
        backend : nnbackend.Backend, optional
            ``X``'s backend; found from ``X`` if not given.

        Returns
        -------
        array, shape (n_samples, n_columns)
            In ``X``'s namespace, dtype (float64 for whole numbers and
            bools) and device.
        """
        X, mean, scale = self._stats(X, backend)
        return X * scale + mean

    def to_dict(self):
        """The statistics as plain lists, for checkpoints and JSON.

        Returns
        -------
        dict
            ``{"mean": [...], "scale": [...]}``, each a list of n_columns floats.
        """
        return {"mean": self.mean_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_dict(cls, d):
        """The scaler that :meth:`to_dict` described.

        Parameters
        ----------
        d : dict
            ``{"mean": [...], "scale": [...]}``, two lists of one length.

        Returns
        -------
        StandardScaler

        Raises
        ------
        ValueError
            ``d`` is not such a dict, or its statistics are not finite (or a
            scale not > 0).
        """
        if not isinstance(d, dict) or set(d) != {"mean", "scale"}:
            raise ValueError(f"a scaler is a dict with 'mean' and 'scale'; got {d!r:.80}")
        return cls(d["mean"], d["scale"])


def _ops(X, backend):
    """(namespace, to_host, asarray(a, dtype=X's) on X's device) for ``X``."""
    if backend is not None:
        return (backend.xp, backend.to_host,
                lambda a, dtype=None: backend.asarray(a, dtype=X.dtype if dtype is None else dtype))
    if isinstance(X, np.ndarray):
        return np, np.asarray, lambda a, dtype=None: np.asarray(a, dtype=dtype or X.dtype)
    return _ops(X, backend_of(X))
