"""Data preparation and the descent modes as batch plans.

The three modes differ only in how an epoch's rows are cut into steps:

============  ===========================  =====================================
mode          rows per step                shuffled each epoch
============  ===========================  =====================================
batch         all N (one step per epoch)   no: the full gradient is one sum,
                                           and order changes only its rounding
minibatch     ``batch_size``               yes, if ``shuffle``
sgd           1                            yes, if ``shuffle``
============  ===========================  =====================================

The last mini-batch of an epoch holds the ``N mod batch_size`` rows left over.
Shuffling draws one permutation per epoch from a host NumPy ``Generator``, so
a given seed yields the same batch order on every backend.

Inputs are checked and moved to the backend's device here, once per fit.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np

from .backends import BACKEND_NAMES, Backend, UnusableArrayError, backend_of
from .checks import check_int

__all__ = ["MODES", "BatchPlan", "FeatureScaleWarning", "array_backend", "as_features",
           "as_targets", "check_classes", "checked_features", "feature_scale_problem",
           "frame_columns", "fresh_seed", "host_rng", "init_params", "is_frame", "is_host",
           "make_plan", "n_rows"]

MODES = ("batch", "minibatch", "sgd")


@dataclass(frozen=True)
class BatchPlan:
    """How one epoch walks ``n_samples`` rows.

    Attributes
    ----------
    n_samples : int
    batch_size : int
        Rows per step (the last step may hold fewer).
    shuffle : bool
        Whether each epoch visits the rows in a fresh random order.
    """

    n_samples: int
    batch_size: int
    shuffle: bool

    def order(self, rng: np.random.Generator) -> np.ndarray | None:
        """This epoch's row order (a host permutation), or None for 0..N-1."""
        return rng.permutation(self.n_samples) if self.shuffle else None


def host_rng(seed) -> np.random.Generator:
    """The host generator that draws a fit's batch orders (and validation split)."""
    return np.random.default_rng(seed)


def fresh_seed() -> int:
    """A seed from the operating system's entropy, for a fit given none (kept, so
    what it drew can be drawn again)."""
    return int(np.random.SeedSequence().generate_state(1, dtype=np.uint32)[0])


def init_params(sizes, hidden_activation, rng: np.random.Generator):
    """Host (float64) initial parameters ``[W0, b0, ...]``, as scikit-learn's MLP draws them.

    Weights are uniform in ±sqrt(factor / (fan_in + fan_out)), factor 2 for
    sigmoid networks (Glorot's bound for the logistic function) and 6
    otherwise. Biases start at 0.
    """
    factor = 2.0 if hidden_activation == "sigmoid" else 6.0
    params = []
    try:
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            params.append(rng.uniform(-bound, bound, size=(fan_in, fan_out)))
            params.append(np.zeros(fan_out))
    except (ValueError, MemoryError) as exc:  # NumPy's words name no layer
        n = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        raise MemoryError(f"layer_sizes {list(sizes)}: {n:,} parameters do not fit in memory "
                          f"({exc})") from None
    return params


def make_plan(mode: str, n_samples: int, batch_size: int | None = 32, shuffle: bool = True) -> BatchPlan:
    """The batch plan of a descent mode.

    ``batch_size`` is used by ``minibatch`` only (``batch`` takes N, ``sgd``
    takes 1). A ``batch_size`` above N is clipped to N, with a warning, as
    scikit-learn's MLP does.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
    if mode == "batch":
        return BatchPlan(n_samples, n_samples, False)
    if mode == "sgd":
        return BatchPlan(n_samples, 1, bool(shuffle))
    batch_size = check_int("batch_size", batch_size)
    if batch_size > n_samples:
        warnings.warn(
            f"batch_size={batch_size} is larger than the {n_samples} samples; "
            f"using batch_size={n_samples}",
            UserWarning,
            stacklevel=4,  # make_plan <- train <- MLP.fit <- the caller
        )
        batch_size = n_samples
    return BatchPlan(n_samples, batch_size, bool(shuffle))


# -- inputs ----------------------------------------------------------------------


def is_host(a) -> bool:
    """Whether ``a`` is host data (NumPy, a list, a number, a pandas DataFrame
    or Series) rather than a backend's array."""
    return isinstance(a, (np.ndarray, list, tuple, numbers.Number)) or is_frame(a)


def is_frame(a) -> bool:
    """Whether ``a`` is a pandas DataFrame or Series (pandas is not imported)."""
    return type(a).__module__.partition(".")[0] == "pandas" and hasattr(a, "to_numpy")


def frame_columns(a) -> list | None:
    """A DataFrame's column names as strings where every one is a string (as
    scikit-learn's ``feature_names_in_``), else None."""
    columns = getattr(a, "columns", None) if is_frame(a) else None
    if columns is None or not all(isinstance(c, str) for c in columns):
        return None
    return list(columns)


def array_backend(name, a) -> Backend:
    """:func:`backend_of` ``a``, with a refusal that names the argument.

    For arguments that take host data too (``X``, ``y``, ``params``): the
    refusal names lists among what they take, which ``backend_of`` does not.
    """
    try:
        return backend_of(a)
    except UnusableArrayError as exc:
        raise UnusableArrayError(f"{name} is {exc}") from None
    except TypeError:
        raise TypeError(
            f"{name}: expected a NumPy array, a list, or an array of one of "
            f"{list(BACKEND_NAMES)}; got {type(a).__module__}.{type(a).__qualname__}"
        ) from None


def _check_same_backend(name, a, backend: Backend):
    other = array_backend(name, a)
    if not other.holds_data():
        raise ValueError(f"{name} is on {other.name} device {other.device}, which holds no "
                         "values; pass an array with values")
    if other.name != backend.name:
        raise TypeError(
            f"{name} is a {other.name} array but the model's backend is "
            f"{backend.name!r}; pass NumPy data or build the model with "
            f"backend={other.name!r}"
        )
    if str(other.device) != str(backend.device):
        raise ValueError(
            f"{name} is on device {other.device!r} but the model is on "
            f"{backend.device!r}; move it there first, or build the model on "
            f"{name}'s device"
        )


def _host_all_finite(a: np.ndarray, rows_per_check: int = 65536) -> bool:
    """No NaN or infinity in ``a``, checked in row blocks so the temporary
    stays small however many rows there are."""
    if a.dtype.kind != "f":
        return True
    return all(
        np.isfinite(a[i : i + rows_per_check]).all() for i in range(0, a.shape[0], rows_per_check)
    )


def _max_abs(a: np.ndarray, rows_per_check: int = 65536) -> float:
    """The largest magnitude in ``a`` (finite, floating), in row blocks as above."""
    return max(
        float(np.max(np.abs(a[i : i + rows_per_check]), initial=0.0))
        for i in range(0, a.shape[0], rows_per_check)
    )


def _host_array(name, a) -> np.ndarray:
    if isinstance(a, np.ma.MaskedArray) and np.ma.is_masked(a):
        # np.asarray would drop the mask and train on whatever lies beneath it.
        raise ValueError(
            f"{name} is a masked array with masked entries; fill them "
            f"({name}.filled(value)) or drop those rows first"
        )
    if is_frame(a):
        return _frame_array(name, a)
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be read as an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (bool, int or float); got dtype {arr.dtype}"
        )
    return arr


class FeatureScaleWarning(UserWarning):
    """Unstandardized features whose scales would stall or saturate training.

    ``MLP.fit`` warns with it when the model does not standardize
    (``standardize=False``, the default) and the columns of ``X`` (shape
    (n_samples, n_features)) have largest magnitudes that differ by more than
    100 times, or exceed 1000. ``MLP(..., standardize=True)`` (or scaling the
    data first) avoids it; ``warnings.simplefilter("ignore", FeatureScaleWarning)``
    silences it.
    """


def feature_scale_problem(backend: Backend, X, extremes=None) -> str | None:
    """What is wrong with the scales of ``X``'s columns for an unstandardized
    network, or None: columns whose largest magnitudes differ by more than
    100 times (the small ones barely move the units the big ones saturate),
    or magnitudes above 1000 (sigmoid and tanh units saturate at once).

    ``extremes`` (shape (2, n_features): the columns' largest and smallest
    values) are those :func:`checked_features` read; without them, one pass
    over ``X`` reads them (and one transfer)."""
    if extremes is None:
        extremes = _column_extremes(backend, X)
    biggest = np.max(np.abs(extremes), axis=0)
    nonzero = biggest[biggest > 0]
    if nonzero.size == 0:
        return None
    low, high = float(nonzero.min()), float(nonzero.max())
    if high > 100 * low:
        return f"X's columns range from {low:.3g} to {high:.3g} in magnitude"
    if high > 1000:
        return f"X holds values up to {high:.3g} in magnitude"
    return None


def _frame_array(name, a) -> np.ndarray:
    """A pandas DataFrame's or Series' values as a NumPy array of numbers.

    Object columns of numbers are read as numbers, as scikit-learn reads
    them; nullable numbers' and bools' NA become NaN (which the finite check
    then refuses). Other columns are refused by name and dtype: text (object,
    string or category), dates, complex numbers."""
    arr = a.to_numpy()
    if arr.dtype.kind in "biuf":
        return arr
    from pandas.api import types

    columns = [a[c] for c in a.columns] if hasattr(a, "columns") else [a]
    bad, text = [], False
    for column in columns:
        dtype = column.dtype
        if types.is_object_dtype(dtype):
            try:
                column.to_numpy(dtype=np.float64, na_value=np.nan)
                continue
            except (TypeError, ValueError):
                pass
        elif (types.is_numeric_dtype(dtype) or types.is_bool_dtype(dtype)) \
                and not types.is_complex_dtype(dtype):
            continue
        text = text or types.is_object_dtype(dtype) or types.is_string_dtype(dtype) \
            or isinstance(dtype, types.CategoricalDtype)
        bad.append(f"{str(column.name)!r} ({dtype})")
    if bad:
        advice = ": encode text as numbers first" if text else ""
        raise TypeError(f"{name} must hold real numbers (bool, int or float); the columns "
                        f"{', '.join(bad)} do not{advice}")
    return a.to_numpy(dtype=np.float64, na_value=np.nan)


def as_features(backend: Backend, X, dtype, name: str = "X"):
    """``X`` as a (n_samples, n_features) floating array on the backend's device.

    Host data (NumPy arrays, lists) is checked on the host and moved once;
    an array of the backend's own namespace stays where it is (cast to
    ``dtype`` if needed). Raises on a wrong number of dimensions, non-real
    dtypes, NaN or infinity, and arrays of another backend or device.
    """
    return checked_features(backend, X, dtype, name)[0]


def checked_features(backend: Backend, X, dtype, name: str = "X", prescale=None):
    """:func:`as_features`, and the columns' extremes its check read.

    Returns ``(X, extremes)``: ``extremes`` a host array of shape
    (2, n_features), the columns' largest and smallest values in ``dtype``,
    for an array of the backend (one pass over it reads them, for all the
    checks), and None for host data (checked on the host) and for a Dask
    array of unknown row count (checked whole).

    ``prescale``, a callable, standardizes the data before its cast to
    ``dtype`` and returns it in ``dtype``: it is given the checked host NumPy
    array, or an array of the backend wider than ``dtype`` (float64 for a
    float32 model), and called after every check (which read the columns
    unscaled); other arrays are cast as without it, and it is not called.
    """
    if is_host(X):
        host = _host_array(name, X)
        _check_features_shape(name, host.shape)
        return _host_to_device(backend, host, dtype, name, prescale), None
    _check_same_backend(name, X, backend)
    _check_features_shape(name, tuple(X.shape))
    return _device_checked(backend, backend.without_empty_chunks(X), dtype, name, prescale)


def _column_extremes(backend: Backend, a) -> np.ndarray:
    """The largest and smallest value of each column of 2-D ``a``, shape (2,
    n_columns), on the host: two reductions (read in one pass on Dask) and one
    transfer, with no temporary the size of ``a`` (NaN propagates into its
    column's; an infinity is its column's)."""
    xp = backend.xp
    extremes = xp.stack([xp.max(a, axis=0), xp.min(a, axis=0)])
    if xp.isdtype(extremes.dtype, "real floating") and extremes.dtype not in (
            xp.float32, getattr(xp, "float64", xp.float32)):
        extremes = xp.astype(extremes, xp.float32)  # bfloat16, float16: exact, and readable
    return np.asarray(backend.to_host(extremes), dtype=np.float64)


def _host_to_device(backend: Backend, host: np.ndarray, dtype, name: str, prescale=None):
    """Checked host data moved to the device as ``dtype``: NaN and infinity are
    refused, ``prescale`` (see :func:`checked_features`) standardizes it if
    given, else values the cast would overflow to infinity are refused."""
    if not _host_all_finite(host):
        raise ValueError(f"{name} contains NaN or infinity")
    if prescale is None and host.dtype.kind == "f" and host.size:  # (standardized: no overflow)
        limit = float(backend.xp.finfo(dtype).max)
        if host.dtype.itemsize > 4 and limit < float(np.finfo(host.dtype).max):
            biggest = _max_abs(host)
            if biggest > limit:
                raise ValueError(
                    f"{name} holds values up to {biggest:.3g} in magnitude, beyond the "
                    f"{limit:.3g} of the model's dtype: they would become infinity; "
                    "rescale the data or use dtype='float64'"
                )
    if prescale is not None:
        host = prescale(host)
    return backend.asarray(host, dtype=dtype)


def _device_checked(backend: Backend, a, dtype, name: str, prescale=None):
    """``a`` (a 2-D array of the backend, on its device) as a finite ``dtype``
    array, and its columns' extremes in ``dtype`` (see :func:`_column_extremes`);
    ``prescale`` standardizes a wider ``a`` before the cast (see
    :func:`checked_features`).

    One check per fit, not per step, and one pass over ``a`` (on Dask, one
    read of the data): its columns' extremes say whether it is finite, and
    whether the cast to ``dtype`` overflows (rounding is monotonic, so the
    cast's extremes are the extremes' cast). Errors of the array library
    itself (a sparse or meta tensor, say) become one clear refusal naming
    the argument.
    """
    xp, a = backend.xp, backend.detached(a)
    if not xp.isdtype(a.dtype, ("real floating", "integral", "bool")):
        raise TypeError(f"{name} must hold real numbers (bool, int or float); got dtype {a.dtype}")
    if _unknown_rows(a):
        # A Dask array after a mask: its chunks may be empty, which a column's
        # reduction cannot take. Checked whole, with no extremes (a fit then
        # stops at its unknown row count); a wider float standardized before
        # its cast, as below.
        if prescale is not None and _wider_float(xp, a.dtype, dtype):
            return prescale(_finite_checked(backend, a, a.dtype, name)), None
        return _finite_checked(backend, a, dtype, name), None
    try:
        floating = xp.isdtype(a.dtype, "real floating")
        # Cast after standardizing, not before: the cast would round away a
        # spread that is small beside the column's offset.
        early = prescale is not None and _wider_float(xp, a.dtype, dtype)
        with warnings.catch_warnings():
            # An overflowing cast is reported below, once and by name.
            warnings.simplefilter("ignore", RuntimeWarning)
            out = xp.astype(a, dtype) if a.dtype != dtype and not early else a
        # Whole numbers and bools are read cast (exact for any id or label;
        # the standard's max takes no bools); floats as they are.
        extremes = _column_extremes(backend, a if floating else out)
    except (OSError, MemoryError):
        raise  # reading the data failed (a lazy file gone, say): not the array's kind
    except Exception as exc:  # the library's own error types
        raise _library_refusal(name, backend, exc) from None
    if not np.all(np.isfinite(extremes)):
        raise ValueError(f"{name} contains NaN or infinity")
    if early:  # standardized before the cast: none of it overflows
        return prescale(a), None
    with np.errstate(over="ignore"):
        cast = extremes.astype(np.dtype(f"float{xp.finfo(dtype).bits}"))
    if not np.all(np.isfinite(cast)):
        raise _overflows(name, xp, dtype)
    return out, cast.astype(np.float64)


def _overflows(name, xp, dtype):
    return ValueError(f"{name} holds values beyond the range of the model's dtype float"
                      f"{xp.finfo(dtype).bits}: they would become infinity; rescale the data or "
                      "use dtype='float64'")


def _unknown_rows(a) -> bool:
    n = a.shape[0]
    return n is None or (isinstance(n, float) and math.isnan(n))


def _wider_float(xp, dtype, target) -> bool:
    """Whether ``dtype`` is a float wider than the model's ``target`` dtype."""
    return xp.isdtype(dtype, "real floating") and xp.finfo(dtype).bits > xp.finfo(target).bits


def known_rows(a) -> bool:
    """Whether ``a``'s number of rows is known (not a Dask array after a mask)."""
    return not _unknown_rows(a)


def _finite_checked(backend: Backend, a, dtype, name: str):
    """``a`` as a finite ``dtype`` array, checked with whole-array reductions."""
    xp = backend.xp
    try:
        floating = xp.isdtype(a.dtype, "real floating")
        if floating and not bool(xp.all(xp.isfinite(a))):
            raise ValueError(f"{name} contains NaN or infinity")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = xp.astype(a, dtype) if a.dtype != dtype else a
        if out is not a and floating and not bool(xp.all(xp.isfinite(out))):
            raise _overflows(name, xp, dtype)
    except ValueError as exc:
        if str(exc).startswith(name + " "):
            raise
        raise _library_refusal(name, backend, exc) from None
    except Exception as exc:  # the library's own error types
        raise _library_refusal(name, backend, exc) from None
    return out


def _library_refusal(name, backend: Backend, exc):
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return TypeError(
        f"{name} could not be used as a dense {backend.name} array on {backend.device!r} "
        f"({type(exc).__name__}: {first}); pass a NumPy array or a dense array of the backend"
    )


def _check_features_shape(name, shape):
    if len(shape) != 2:
        hint = "; reshape a single feature with X.reshape(-1, 1), a sample with X.reshape(1, -1)"
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {tuple(shape)}"
                         + (hint if len(shape) == 1 else ""))
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples")
    if shape[1] == 0:
        raise ValueError(f"{name} has 0 features")


def as_targets(backend: Backend, y, loss: str, n_outputs: int, n_samples: int, dtype,
               name: str = "y", training: bool = False, prescale=None):
    """Targets as a (n_samples, n_outputs) floating array on the backend's device.

    How ``y`` is read:

    * ``loss="cross_entropy"``: a 1-D ``y``, or a 2-D ``y`` of one column,
      holds class ids, made one-hot rows here. They must be whole numbers
      (ints, bools, or floats with no fraction) in ``[0, n_outputs)``. A
      2-D ``y`` of ``n_outputs`` columns holds rows of class probabilities,
      one-hot or soft: every value in [0, 1] and every row summing to 1 (to
      within float32 rounding). A softmax has at least two outputs, so one
      column is never a row of probabilities.
    * ``loss="bce"``: 0/1 labels or probabilities (soft targets), every
      value in [0, 1].
    * ``loss="mse"``: any finite numbers.
    * For ``bce`` and ``mse``, a 1-D ``y`` is one output column (the
      network must have one output); a 2-D ``y`` must have ``n_outputs``
      columns.

    Parameters
    ----------
    backend : Backend
        Where the result goes.
    y : array-like, shape (n_samples,) or (n_samples, n_outputs)
        Real numbers (bool, int or float): host data (NumPy, a list, a
        pandas object) or an array of ``backend`` on its device. Text labels
        are not read here: :class:`nnbackend.MLP` turns them into class ids
        first (see its ``classes_``).
    loss : {'mse', 'bce', 'cross_entropy'}
    n_outputs : int
        The network's output units.
    n_samples : int
        The rows of ``X``; ``y`` must have as many.
    dtype : floating dtype of ``backend.xp``
        The result's dtype.
    name : str
        The argument's name in refusals.
    training : bool
        Targets to train on: a classification's that hold a single class
        are refused too (:func:`check_classes`), from the same read.
    prescale : callable, optional
        Standardizes targets that are not class ids before their cast to
        ``dtype``, as :func:`checked_features`'s does.

    Returns
    -------
    array, shape (n_samples, n_outputs)
        Of ``dtype``, on the backend's device.

    Raises
    ------
    TypeError
        ``y`` does not hold real numbers, or is an array of another backend.
    ValueError
        A shape or row count that does not fit, NaN or infinity, values the
        cast to ``dtype`` would overflow, class ids that are not whole or
        not in ``[0, n_outputs)``, values outside [0, 1] for ``bce`` or
        ``cross_entropy``, ``cross_entropy`` rows that do not sum to 1, an
        array on another device, or (``training``) a single class.
    """
    xp = backend.xp
    if is_host(y):
        y = _host_array(name, y)
        if y.ndim == 0:
            raise ValueError(f"{name} must be 1-D or 2-D; got a scalar")
    else:
        _check_same_backend(name, y, backend)
        y = backend.without_empty_chunks(y)
        if not xp.isdtype(y.dtype, ("real floating", "integral", "bool")):
            raise TypeError(f"{name} must hold real numbers (bool, int or float); got dtype {y.dtype}")
    shape = tuple(y.shape)
    if len(shape) not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D; got shape {shape}")
    if _unknown_rows(y):
        raise ValueError(f"{name}'s number of rows is unknown (a Dask array after a boolean "
                         f"mask, say): compute it first, {name} = {name}.compute_chunk_sizes()")
    if shape[0] != n_samples:
        raise ValueError(f"{name} has {shape[0]} rows but X{name[1:]} has {n_samples}")  # X_val

    class_ids = loss == "cross_entropy" and (
        len(shape) == 1 or (shape[1] == 1 and n_outputs > 1)
    )
    if class_ids:
        return _one_hot(backend, y, n_outputs, dtype, name, training)
    if len(shape) == 1:
        if n_outputs != 1:
            raise ValueError(
                f"{name} is 1-D but the network has {n_outputs} outputs; "
                f"give {name} shape ({n_samples}, {n_outputs})"
            )
        y = y.reshape(-1, 1) if isinstance(y, np.ndarray) else xp.reshape(y, (-1, 1))
    elif shape[1] != n_outputs:
        raise ValueError(
            f"{name} has {shape[1]} columns but the network has {n_outputs} outputs"
        )
    if isinstance(y, np.ndarray):
        host, y = y, _host_to_device(backend, y, dtype, name, prescale)
        extremes = None
        if loss in ("bce", "cross_entropy"):  # in the model's dtype, as the device holds them
            with np.errstate(over="ignore"):
                extremes = np.stack([host.max(axis=0), host.min(axis=0)]).astype(
                    np.dtype(f"float{backend.xp.finfo(dtype).bits}")).astype(np.float64)
    else:
        y, extremes = _device_checked(backend, y, dtype, name, prescale)
    _check_target_range(backend, y, loss, name, extremes)
    if training:
        check_classes(backend, y, loss, name, extremes)
    return y


def _check_target_range(backend: Backend, Y, loss: str, name: str, extremes=None):
    """Refuse targets a loss cannot mean: bce needs values in [0, 1], and 2-D
    cross_entropy targets are rows of class probabilities (one-hot or soft).

    Without this, labels {1, 2} under bce or a one-hot row of 5s train to
    numbers that look fine and mean nothing. ``extremes``: ``Y``'s columns'
    largest and smallest values, read already (else one read here).
    """
    if loss not in ("bce", "cross_entropy"):
        return
    xp = backend.xp
    if extremes is None:
        extremes = _column_extremes(backend, Y)
    low, high = float(np.min(extremes[1])), float(np.max(extremes[0]))
    if low < 0 or high > 1:
        what = ("probabilities or 0/1 labels; encode two classes as 0 and 1" if loss == "bce"
                else "one-hot rows or class probabilities (or give 1-D class ids)")
        raise ValueError(
            f"{name} for loss={loss!r} must lie in [0, 1] ({what}); got values in "
            f"[{low:g}, {high:g}]"
        )
    if loss == "cross_entropy":
        worst = float(backend.to_host(xp.max(xp.abs(xp.sum(Y, axis=1) - 1))))
        # softmax(z) - y is the gradient only for rows summing to 1 (to float32 rounding).
        if worst > 4 * Y.shape[1] * max(xp.finfo(Y.dtype).eps, 2.0**-23):
            raise ValueError(
                f"{name} for loss='cross_entropy' holds rows that do not sum to 1 (off by up to "
                f"{worst:.3g}, past rounding); give one-hot rows, class probabilities "
                f"(normalise: {name} / {name}.sum(axis=1, keepdims=True)) or 1-D class ids")


def check_classes(backend: Backend, Y, loss: str, name: str = "y", extremes=None):
    """Refuse training targets of a classification loss that hold one class only.

    A classifier fit on one class drives its logits off to infinity and
    learns nothing, as scikit-learn's classifiers also refuse it. Every row
    is the first where each column's largest value is its smallest:
    ``extremes`` (shape (2, n_outputs)) where they were read already.
    """
    if loss not in ("bce", "cross_entropy") or n_rows(Y) < 2:
        return
    if extremes is None:
        extremes = _column_extremes(backend, Y)
    if np.array_equal(extremes[0], extremes[1]):
        _single_class(name, extremes[0].tolist())


def _single_class(name, row):
    raise ValueError(
        f"{name} holds a single class (every target row is {row}); a classifier "
        "needs at least two classes to learn from"
    )


def _one_hot(backend: Backend, y, n_classes: int, dtype, name: str, training: bool = False):
    """One-hot rows of class ids ``y`` (n,) in ``dtype``: built on the host for
    host ids, on the backend for its own arrays (a Dask array stays chunked and
    lazy, a GPU's stays there), with one read of its checks either way
    (``training``: a single class refused too)."""
    if isinstance(y, np.ndarray):
        one_hot = _host_one_hot(y, n_classes, name)
        if training and one_hot.shape[0] > 1 and np.all(one_hot[0] == one_hot):
            _single_class(name, one_hot[0].tolist())
        return backend.asarray(one_hot, dtype=dtype)
    xp = backend.xp
    raw = xp.reshape(y, (-1,))
    # Checked in the ids' own dtype (1.00000001 is no class, whatever the model's
    # dtype rounds it to): smallest, largest and "all whole numbers" in one
    # transfer (NaN is not whole).
    work = raw if xp.isdtype(raw.dtype, "real floating") else xp.astype(raw, dtype)
    low, high, whole = (float(v) for v in backend.to_host(xp.stack(
        [xp.min(work), xp.max(work), xp.astype(xp.all(work == xp.round(work)), work.dtype)])))
    ids = xp.astype(raw, dtype)
    if not all(map(math.isfinite, (low, high))):  # (NaN and infinity reach the extremes)
        _not_finite_ids(name, "NaN" if math.isnan(low) or math.isnan(high) else "infinity")
    if not whole:
        raise ValueError(f"{name} holds class ids for cross_entropy, so they must be "
                         "whole numbers; got non-integer values")
    if low < 0 or high >= n_classes:
        raise ValueError(f"{name} holds class ids outside [0, {n_classes}) for a network "
                         f"with {n_classes} outputs (e.g. {low if low < 0 else high:g})")
    if training and low == high and n_rows(raw) > 1:
        _single_class(name, [float(c == low) for c in range(n_classes)])
    classes = backend.asarray(np.arange(n_classes).reshape(1, -1), dtype=dtype)
    return xp.astype(xp.reshape(ids, (-1, 1)) == classes, dtype)


def _not_finite_ids(name, what):
    hint = " (a missing label?)" if what == "NaN" else ""
    raise ValueError(f"{name} holds class ids for cross_entropy and contains {what}{hint}; "
                     "give every row a class id")


def _host_one_hot(y, n_classes, name):
    host = y.reshape(-1)
    if host.dtype.kind == "f":
        if not _host_all_finite(host):
            _not_finite_ids(name, "NaN" if np.isnan(host).any() else "infinity")
        if np.any(host != np.round(host)):
            raise ValueError(
                f"{name} holds class ids for cross_entropy, so they must be "
                "whole numbers; got non-integer values"
            )
    ids = host.astype(np.int64)
    bad = (ids < 0) | (ids >= n_classes)
    if np.any(bad):
        raise ValueError(
            f"{name} holds class ids outside [0, {n_classes}) for a network "
            f"with {n_classes} outputs (e.g. {ids[bad][0]})"
        )
    one_hot = np.zeros((ids.shape[0], n_classes), dtype=np.float64)
    one_hot[np.arange(ids.shape[0]), ids] = 1.0
    return one_hot


def n_rows(a) -> int:
    """Rows of an array whose first dimension is known."""
    n = a.shape[0]
    if n is None or (isinstance(n, float) and math.isnan(n)):
        raise ValueError("the number of rows is unknown (a Dask array after a boolean mask, "
                         "say): compute it first, X = X.compute_chunk_sizes()")
    return int(n)
