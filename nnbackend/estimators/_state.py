"""The estimators' optimizer state between calls: its arrays moved with the
network, its make-up compared with another optimizer's."""

from __future__ import annotations

import numbers

import numpy as np

from ..backends import backend_of
from ..data import is_host

__all__ = ["_state_on", "_structure", "_tree"]


def _state_on(state, model):
    """An optimizer state with each array on ``model``'s backend; its floating ones
    in the network's dtype. Arrays already there are kept as they are (no copy)."""
    backend = model.backend

    def moved(a):
        if not is_host(a):
            where = backend_of(a)
            in_place = where.name == backend.name and str(where.device) == str(backend.device)
            floating = where.xp.isdtype(a.dtype, "real floating")
            if in_place and (not floating or a.dtype == model.array_dtype):
                return a
            a = where.to_host(a)
        host = np.asarray(a)
        return backend.asarray(host, dtype=model.array_dtype if host.dtype.kind == "f" else None)

    return _tree(state, moved)


def _tree(state, fn):
    """``state`` (an optimizer state: NamedTuples, lists, host numbers, arrays) with
    ``fn`` applied to each array."""
    if state is None or isinstance(state, (numbers.Number, str)):
        return state
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(_tree(v, fn) for v in state))
    if isinstance(state, (list, tuple)):
        return type(state)(_tree(v, fn) for v in state)
    return fn(state)


def _structure(state):
    """An optimizer state's make-up (its NamedTuples, lists, numbers and array
    shapes), to tell whether a state fits another optimizer."""
    if isinstance(state, (list, tuple)):
        return type(state).__name__, tuple(_structure(v) for v in state)
    if isinstance(state, numbers.Number):
        return "number"
    return tuple(state.shape)
