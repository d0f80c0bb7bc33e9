"""Standardization: per-column ``(x - mean) / scale``, as scikit-learn's ``StandardScaler``.

A :class:`StandardScaler` keeps its statistics as host float64 arrays (so
they go into checkpoints as plain numbers) and applies them to arrays of any
array-API namespace, on the array's own device, in the array's dtype.
:meth:`StandardScaler.fit_host` and :meth:`StandardScaler.transform_host` do
the same for host NumPy data in float64 whatever its dtype, for a model that
standardizes before its cast to float32 (which would round 1e7 + 0.3 to 1e7).
"""

from __future__ import annotations

import warnings

import numpy as np
from array_api_compat import array_namespace

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
            and bools where the device has it, then brought to the host).
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
        X = _checked(X, backend, name, fitting=True)
        # Summed wide (float64) whatever JAX's x64 says, so that the statistics,
        # and a fit's bits, do not depend on it; only host figures leave.
        with (backend or backend_of(X)).wide_scope():
            return self._fit_wide(X, backend, name)

    def _fit_wide(self, X, backend, name):
        xp, to_host, asarray = _ops(X, backend)
        wide = _wide_dtype(X, backend)
        if not xp.isdtype(X.dtype, "real floating"):  # (the standard's mean takes floats)
            X = xp.astype(X, xp.float32 if wide is None else wide)
        resolution = _resolution(xp.finfo(X.dtype).bits // 8)
        with warnings.catch_warnings():  # an overflow is refused below, by column
            warnings.simplefilter("ignore", RuntimeWarning)
            if wide is not None and X.dtype != wide:
                mean, std, stats = _wide_stats(X, xp, to_host, asarray, wide)
            else:
                # Two passes, no cancellation. The mean goes back as the host
                # read it (the same numbers, in its own dtype), so lazy data
                # is not read for it again.
                on_device = xp.mean(X, axis=0)
                mean, stats = to_host(on_device), X.dtype
                std = to_host(xp.sqrt(xp.mean((X - asarray(mean, on_device.dtype)) ** 2,
                                              axis=0)))
        return self._learned(mean, std, stats, name,
                             lambda: to_host(xp.max(xp.abs(X), axis=0)), resolution)

    def fit_host(self, X, name="X"):
        """:meth:`fit` for host data, computed in float64 whatever ``X``'s dtype.

        The mean, then the spread about it (two passes, no cancellation), in
        row blocks: no temporary the size of ``X``. Float64 keeps the spread
        of a column with a large offset (1e7 + 0.3), which float32 statistics
        (or float32 data) would round away.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_columns)
            Real numbers, finite (as the model's input checks leave them).
        name : str, default "X"
            What ``X`` is, for the error message.

        Returns
        -------
        self
        """
        X = _checked(np.asarray(X), None, name, fitting=True)
        n = X.shape[0]
        with warnings.catch_warnings():  # an overflow is refused by column, as in fit
            warnings.simplefilter("ignore", RuntimeWarning)
            total = np.zeros(X.shape[1])
            for block in _row_blocks(X):
                total += np.sum(block, axis=0, dtype=np.float64)
            mean = total / n
            squares = np.zeros(X.shape[1])
            for block in _row_blocks(X):
                deviation = np.subtract(block, mean, dtype=np.float64)
                deviation *= deviation
                squares += np.sum(deviation, axis=0)
        return self._learned(mean, np.sqrt(squares / n), np.dtype(np.float64), name,
                             lambda: np.max(np.abs(X), axis=0),
                             _resolution(X.dtype.itemsize if X.dtype.kind == "f" else 8))

    def _learned(self, mean, std, dtype, name, largest, resolution=np.finfo(np.float32).eps):
        """Keep the statistics ``mean`` and ``std`` (computed in ``dtype``), or
        refuse the columns they overflowed; ``largest()`` reads the columns'
        largest magnitudes, to tell NaN from overflow. A column whose spread
        is within ``resolution`` of its mean is constant (scale 1)."""
        mean, std = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (mean, std))
        overflowed = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std)))
        if overflowed.size:
            columns = ", ".join(map(str, overflowed[:5])) + (", ..." if overflowed.size > 5 else "")
            largest = np.asarray(largest()).reshape(-1)
            if not np.all(np.isfinite(largest)):
                bad = ", ".join(map(str, np.flatnonzero(~np.isfinite(largest))[:5]))
                raise ValueError(f"{name} contains NaN or infinity (column(s) {bad})")
            wider = "" if "64" in str(dtype) else ", use dtype='float64'"
            raise ValueError(
                f"{name}: the values of column(s) {columns} are too large to standardize in "
                f"{dtype} (their spread overflows); rescale them{wider}, or turn "
                "standardizing off (standardize=False, --no-standardize)")
        # Relative to the mean alone (as scikit-learn's constant test): a column of
        # small values (1e-8 ± 1e-9, in metres, say) varies, and is standardized.
        tiny = resolution * np.abs(mean)
        self._set(mean, np.where(std > tiny, std, 1.0))
        return self

    def _check_columns(self, X):
        if self.mean_ is None:
            raise ValueError("this StandardScaler is not fitted yet; call fit(X) first")
        if X.shape[-1] != self.mean_.shape[0]:
            raise ValueError(f"the scaler was fitted on {self.mean_.shape[0]} columns; "
                             f"got {X.shape[-1]}")

    def _stats(self, X, backend):
        X = _checked(X, backend, "X")
        self._check_columns(X)
        xp, _, asarray = _ops(X, backend)
        # Whole numbers and bools are standardized in float64 (their mean is
        # no whole number; float32 where the device has no float64, JAX's
        # without x64); floats in their own dtype.
        if not xp.isdtype(X.dtype, "real floating"):
            wide = _wide_dtype(X, backend)
            X = xp.astype(X, xp.float32 if wide is None else wide)
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
            bools, where the device has it) and device.

        Raises
        ------
        ValueError
            The scaler is not fitted, or ``X`` has another number of columns.
        """
        X, mean, scale = self._stats(X, backend)
        return (X - mean) / scale

    def transform_host(self, X, dtype=np.float64):
        """:meth:`transform` for host data, computed in float64 and only then
        rounded to ``dtype``.

        Row block by row block, so the float64 temporary stays small whatever
        ``X``'s size: the one array made is the result.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_columns)
            Real numbers, of any NumPy dtype.
        dtype : NumPy floating dtype, default float64
            The result's dtype (a float32 model's, say).

        Returns
        -------
        ndarray of ``dtype``, shape (n_samples, n_columns)
        """
        X = _checked(np.asarray(X), None, "X")
        self._check_columns(X)
        out = np.empty(X.shape, dtype=dtype)
        start = 0
        for block in _row_blocks(X):
            scaled = np.subtract(block, self.mean_, dtype=np.float64)
            scaled /= self.scale_
            out[start:start + block.shape[0]] = scaled
            start += block.shape[0]
        return out

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
            bools, where the device has it) and device.
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


def _resolution(itemsize):
    """The relative spread below which a column of data with floats (or whole
    numbers cast to them) of ``itemsize`` bytes is constant: the data's own
    rounding of its mean, as the same values are judged on every backend."""
    return 16 * np.finfo(np.float64).eps if itemsize >= 8 else np.finfo(np.float32).eps


def _wide_stats(X, xp, to_host, asarray, wide):
    """``(mean, std, wide)`` of ``X``'s columns, summed in the ``wide`` dtype.

    Summed in float32, row after row (NumPy's axis-0 sums, Dask's chunks),
    a column around 1e5 drifts: over 1e6 rows its mean came out 1000 off.
    The deviations from the mean rounded to ``X``'s dtype are taken in that
    dtype (values near each other: their differences are exact), and summed
    with their squares in ``wide``; no temporary is wider than ``X`` unless
    the squares overflow ``X``'s dtype.
    """
    n = X.shape[0]
    if n is None or n != n:  # a Dask array of unknown row count
        n = float(to_host(xp.sum(xp.ones_like(X[:, 0]), dtype=wide)))
    first = to_host(xp.sum(X, axis=0, dtype=wide)) / n
    shifted = X - asarray(first)
    sums = np.array(to_host(xp.stack([xp.sum(shifted, axis=0, dtype=wide),
                                      xp.sum(shifted * shifted, axis=0, dtype=wide)])),
                    dtype=np.float64)  # a copy: JAX's host arrays are read-only
    if not np.all(np.isfinite(sums[1])):  # squares past X's dtype (1e20 in float32): wide
        wide_shifted = xp.astype(shifted, wide)
        sums[1] = to_host(xp.sum(wide_shifted * wide_shifted, axis=0, dtype=wide))
    offset = sums[0] / n  # the true mean's distance from the rounded one
    rounded = np.asarray(to_host(asarray(first)), dtype=np.float64)
    variance = np.maximum(sums[1] / n - offset * offset, 0.0)
    return rounded + offset, np.sqrt(variance), np.dtype(np.float64)


def _row_blocks(X, block_bytes=8 << 20):
    """``X``'s rows in blocks of about ``block_bytes`` bytes of float64 (at
    least one row): the float64 temporaries of the host methods are this size."""
    rows = max(1, block_bytes // (8 * max(1, X.shape[1])))
    return (X[i:i + rows] for i in range(0, X.shape[0], rows))


def _checked(X, backend, name, fitting=False):
    """``X`` (host data as NumPy's), refused by name unless a 2-D array of real
    numbers (bools, whole numbers, real floats), with rows where ``fitting``."""
    if backend is None and not hasattr(X, "__array_namespace__") \
            and not isinstance(X, np.ndarray):
        try:
            array_namespace(X)
        except TypeError:  # lists, DataFrames: host data, as NumPy reads it
            X = np.asarray(X)
    shape = tuple(X.shape)
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_columns); got shape {shape}")
    if fitting and shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples, and the statistics need one")
    xp = backend.xp if backend is not None else array_namespace(X)
    if not xp.isdtype(X.dtype, ("bool", "integral", "real floating")):
        raise TypeError(f"{name} has dtype {X.dtype}: StandardScaler takes real numbers "
                        "(bools, whole numbers or real floats)")
    return X


def _wide_dtype(X, backend):
    """float64 of ``X``'s namespace, or None where its device has none now."""
    owner = backend or (None if isinstance(X, np.ndarray) else backend_of(X))
    return np.float64 if owner is None else owner.wide_dtype()


def _ops(X, backend):
    """(namespace, to_host, asarray(a, dtype=X's) on X's device) for ``X``."""
    if backend is not None:
        return (backend.xp, backend.to_host,
                lambda a, dtype=None: backend.asarray(a, dtype=X.dtype if dtype is None else dtype))
    if isinstance(X, np.ndarray):
        return np, np.asarray, lambda a, dtype=None: np.asarray(a, dtype=dtype or X.dtype)
    return _ops(X, backend_of(X))
