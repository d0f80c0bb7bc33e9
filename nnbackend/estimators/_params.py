"""The estimators' hyperparameters, checked as scikit-learn checks them."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..backends.precision import PRECISIONS

try:  # scikit-learn's own (a ValueError and a TypeError), where this version has it
    from sklearn.utils._param_validation import InvalidParameterError
except ImportError:  # pragma: no cover
    class InvalidParameterError(ValueError, TypeError):
        """A hyperparameter of the wrong type or value."""

__all__ = ["InvalidParameterError", "check_params"]

_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_SOLVERS = ("sgd", "adam")
_SCHEDULES = ("constant", "invscaling", "adaptive")


def check_params(est):
    """Refuse a wrong hyperparameter of ``est`` by name, as scikit-learn does at
    fit (its ``InvalidParameterError``); returns the hidden layer sizes as a list."""
    sizes = est.hidden_layer_sizes
    sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
    if not all(isinstance(s, numbers.Integral) and s > 0 for s in sizes):
        raise InvalidParameterError(
            f"hidden_layer_sizes must be positive integers, got {sizes}.")
    choices = (("activation", _ACTIVATIONS), ("solver", _SOLVERS),
               ("learning_rate", _SCHEDULES), ("mode", ("batch", "minibatch", "sgd")))
    for name, allowed in choices:
        try:
            known = getattr(est, name) in allowed
        except TypeError:  # a list, say: no hashable name at all
            known = False
        if not known:
            raise InvalidParameterError(f"The '{name}' parameter must be one of "
                                        f"{list(allowed)}; got {getattr(est, name)!r}.")
    # (name, low, high, low closed, high closed): scikit-learn's intervals.
    ranges = (("alpha", 0, None, True, False), ("learning_rate_init", 0, None, False, False),
              ("power_t", 0, None, True, False), ("tol", 0, None, True, False),
              ("momentum", 0, 1, True, True), ("validation_fraction", 0, 1, True, False),
              ("beta_1", 0, 1, True, False), ("beta_2", 0, 1, True, False),
              ("epsilon", 0, None, False, False))
    for name, low, high, closed, high_closed in ranges:
        value = getattr(est, name)
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and (
            math.isfinite(value)) and (value >= low if closed else value > low) and (
            high is None or (value <= high if high_closed else value < high))
        if not ok:
            upper = "" if high is None else f" and {'<=' if high_closed else '<'} {high}"
            raise InvalidParameterError(
                f"The '{name}' parameter must be a finite number {'>=' if closed else '>'} "
                f"{low}{upper}; got {value!r}.")
    for name, infinite in (("max_iter", False), ("n_iter_no_change", True)):
        value = getattr(est, name)
        whole = (isinstance(value, numbers.Integral) and not isinstance(value, bool)
                 and value >= 1)
        if not (whole or (infinite and value == np.inf)):
            raise InvalidParameterError(f"The '{name}' parameter must be an int >= 1"
                                        f"{' or np.inf' if infinite else ''}; got {value!r}.")
    for name in ("shuffle", "verbose", "warm_start", "nesterovs_momentum", "early_stopping"):
        value = getattr(est, name)
        if not isinstance(value, (bool, np.bool_)):
            if name == "verbose" and isinstance(value, numbers.Integral) and value >= 0:
                continue  # scikit-learn's verbose takes an int >= 0 too
            raise InvalidParameterError(
                f"The '{name}' parameter must be an instance of 'bool'; got {value!r}.")
    seed = est.random_state
    if not (seed is None or isinstance(seed, np.random.RandomState) or (
            isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
            and 0 <= seed < 2**32)):
        raise InvalidParameterError(
            f"The 'random_state' parameter must be None, an int in [0, 2**32) or a "
            f"numpy.random.RandomState; got {seed!r}.")
    bs = est.batch_size
    if not (bs == "auto" or (isinstance(bs, numbers.Integral) and bs >= 1)):
        raise InvalidParameterError(
            f"The 'batch_size' parameter must be 'auto' or an int >= 1; got {bs!r}.")
    if est.precision is not None and not (isinstance(est.precision, str)
                                           and est.precision in PRECISIONS):
        raise InvalidParameterError(f"The 'precision' parameter must be None or one of "
                         f"{list(PRECISIONS)}; got {est.precision!r}.")
    return sizes
