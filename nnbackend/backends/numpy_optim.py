"""NumPy's Adam update (``nnbackend_fused["adam_update"]``), over all
parameters at once.

A step's parameters are small: for a [64, 64, 10] network, four arrays of
10 to 4096 elements, where each NumPy call costs about a microsecond
whatever its size. Adam's twelve operations per parameter took 71 us a step
there, and 30 us on one flat array. So the update works on flat arrays: the
gradients are concatenated (one call), and the parameters and the
optimizer's state come back as consecutive views of one new flat array
each, which the next step takes as they are (found again through
:data:`_LAYOUTS`, without copying).
Elementwise arithmetic gives each element the same bits whatever the
layout, so the results are the generic update's (``nnbackend.optim``),
operation for operation; nothing passed in is written to. SGD and momentum
(two to four operations a parameter) stay per parameter in
``backends/numpy.py``: on a single-row step the layout's bookkeeping would
cost more calls than it saves.
"""

from __future__ import annotations

import weakref

import numpy as np

__all__ = ["FUSED_UPDATES"]

# id(flat array) -> (weakref to it, weakrefs to the views handed out), for
# the flat arrays of recent steps; a bounded table of weak references, so it
# keeps nothing alive.
_LAYOUTS: dict = {}
_MAX_LAYOUTS = 64


def _flat(arrays):
    """One 1-D array holding ``arrays`` in order: the array they are views
    of where :func:`_views` made them, else a new concatenation."""
    base = arrays[0].base
    entry = None if base is None else _LAYOUTS.get(id(base))
    if entry is not None and entry[0]() is base and len(entry[1]) == len(arrays):
        for ref, a in zip(entry[1], arrays):  # a loop: no generator frame per step
            if ref() is not a:
                break
        else:
            return base
    return np.concatenate(list(map(np.ndarray.ravel, arrays)))


def _views(flat, like):
    """``flat`` cut into consecutive views shaped as ``like``'s arrays."""
    views, start = [], 0
    for a in like:
        views.append(flat[start:start + a.size].reshape(a.shape))
        start += a.size
    if len(_LAYOUTS) >= _MAX_LAYOUTS:
        dead = [key for key, (ref, _) in _LAYOUTS.items() if ref() is None]
        for key in dead or [next(iter(_LAYOUTS))]:
            del _LAYOUTS[key]
    _LAYOUTS[id(flat)] = (weakref.ref(flat), tuple(map(weakref.ref, views)))
    return views


def _one_float_dtype(*lists):
    """Whether every array of ``lists`` has one floating dtype (else: the
    generic formulas, array by array, with NumPy's promotion)."""
    dtype = lists[0][0].dtype
    if dtype.kind != "f":
        return False
    for arrays in lists:
        for a in arrays:
            if a.dtype != dtype:
                return False
    return True


def adam_update(params, grads, mu, nu, b1, b2, step, eps_hat):
    """``m ← b1·m + (1-b1)·g``, ``v ← b2·v + (1-b2)·g²``, ``p - step·m / (√v + eps_hat)``."""
    if not _one_float_dtype(params, grads, mu, nu):
        mu = [b1 * m + (1 - b1) * g for m, g in zip(mu, grads)]
        nu = [b2 * v + (1 - b2) * (g * g) for v, g in zip(nu, grads)]
        return [p - step * m / (np.sqrt(v) + eps_hat) for p, m, v in zip(params, mu, nu)], mu, nu
    g = _flat(grads)
    m = np.multiply(_flat(mu), b1)
    m += np.multiply(g, 1 - b1)  # products commute bit for bit
    v = np.multiply(g, g)
    v *= 1 - b2
    v += np.multiply(_flat(nu), b2)
    root = np.sqrt(v)
    root += eps_hat
    delta = np.multiply(m, step)
    delta /= root
    new_params = np.subtract(_flat(params), delta, out=delta)
    return _views(new_params, params), _views(m, params), _views(v, params)


FUSED_UPDATES = {"adam_update": adam_update}
