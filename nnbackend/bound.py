"""The kernels bound to one namespace and dtype, for a loop of small steps.

Each ``bind_*`` function looks up once what the matching function of
:mod:`nnbackend.kernels` looks up on every call (the namespace, its fast
forms and fixes, the activation by name, the ``exp`` floor of the dtype)
and returns a function of the arrays alone that computes the same formula
in the same order, so the results are bit for bit the kernels'. The
namespace's table may add ``half_sum`` (``0.5 * xp.sum(sq)``, the
½·squared error's total, with its constant made once: NumPy). On NumPy a
single-row step is a few microseconds of arithmetic, and those look-ups
(about sixty Python calls a step) cost as much again.

A bound function is for arrays of the one dtype it was bound to, all of
them: the kernels' checks for mixed dtypes are not repeated (a caller with
mixed dtypes uses the kernels). No array library is imported here.
"""

from __future__ import annotations

import functools

from . import kernels as K
# The kernels' per-namespace look-ups, shared with them so that a bound
# function and its kernel always take the same fast form.
from .kernels import ACTIVATION_PAIRS, BIAS_FUSED, exp_floor, fused_form, matmul_form

__all__ = ["bind_activation_backward", "bind_activation_forward", "bind_dense_activation",
           "bind_hidden_layer", "bind_loss_and_backward", "bind_matmul", "bind_n_correct",
           "bind_sum_rows"]


def bind_matmul(xp):
    """``matmul(x, W)`` for 2-D operands: the namespace's fix or fast form, else ``xp.matmul``."""
    return matmul_form(xp)


def bind_sum_rows(xp):
    """``sum_rows(a)``: :func:`nnbackend.kernels.sum_rows` for a 2-D ``a``."""
    return fused_form(xp, "sum_rows") or functools.partial(xp.sum, axis=0)


def bind_activation_forward(name, xp, dtype):
    """``forward(z)``: the activation called ``name`` (see :func:`kernels.activation`)."""
    forward = K.activation(name)[0]
    if name == "sigmoid":
        floor = exp_floor(xp, dtype)
        fused = fused_form(xp, "sigmoid")
        if fused is not None:
            return lambda z: fused(z, floor)
        return lambda z: 1 / (1 + xp.exp(-xp.maximum(z, floor)))
    if name == "tanh":
        return xp.tanh
    if name in ("relu", "softmax") and fused_form(xp, name) is not None:
        return fused_form(xp, name)
    return functools.partial(forward, xp=xp)


def bind_activation_backward(name, xp, dtype):
    """``backward(z, a, da)``: the gradient with respect to ``z`` of the activation ``name``."""
    backward = K.activation(name)[1]
    fused = fused_form(xp, f"{name}_backward")
    if fused is None:
        if name == "identity":
            return backward
        return functools.partial(backward, xp=xp)
    if name == "relu":
        return lambda z, a, da: fused(z, da)
    return lambda z, a, da: fused(a, da)


def bind_dense_activation(name, xp, dtype):
    """``f(x, W, b) -> (z, a)``: :func:`kernels.dense_activation_forward` with ``name``.

    Shapes: ``x`` (n, fan_in), ``W`` (fan_in, fan_out), ``b`` (fan_out,);
    ``z`` and ``a`` (n, fan_out).
    """
    matmul = matmul_form(xp)
    key = BIAS_FUSED.get(name)
    fused = None if key is None else fused_form(xp, key)
    if fused is not None:
        floor = exp_floor(xp, dtype)
        return lambda x, W, b: fused(matmul(x, W), b, floor)
    if name == "identity":
        def dense_identity(x, W, b):
            z = matmul(x, W) + b
            return z, z
        return dense_identity
    forward = bind_activation_forward(name, xp, dtype)

    def dense_activation(x, W, b):
        z = matmul(x, W) + b
        return z, forward(z)

    return dense_activation


def bind_hidden_layer(name, xp, dtype):
    """``(forward, backward)`` for a hidden layer with the activation ``name``:
    :func:`bind_dense_activation` and :func:`bind_activation_backward`.

    Where ``backward`` never reads ``z`` (the namespace's fused gradient
    takes ``a``: not relu's) and the namespace gives the activation without
    it (``{bias form}_no_z``: NumPy's sigmoid), ``forward`` returns None for
    ``z`` and ``a`` as :func:`bind_dense_activation` would: a chunk then
    skips a pass.
    """
    forward = bind_dense_activation(name, xp, dtype)
    backward = bind_activation_backward(name, xp, dtype)
    key = BIAS_FUSED.get(name)
    no_z = None if key is None else fused_form(xp, f"{key}_no_z")
    if no_z is None or name == "relu" or fused_form(xp, f"{name}_backward") is None:
        return forward, backward
    matmul, floor = matmul_form(xp), exp_floor(xp, dtype)
    return (lambda x, W, b: (None, no_z(matmul(x, W), b, floor))), backward


def bind_loss_and_backward(loss, output_activation, reduction, xp, dtype):
    """``f(z, a, y, n_samples) -> (loss_sum, dz)``: :func:`kernels.loss_and_backward`.

    ``n_samples`` is what a ``"mean"`` gradient divides by (ignored for
    ``"sum"``); ``loss_sum`` is the summed per-sample loss (0-D), ``dz`` the
    gradient with respect to the logits ``z``, shape (n, k).
    """
    K.check_reduction(reduction)
    by_sum = reduction == "sum"
    if loss != "mse":
        return lambda z, a, y, n_samples: K._loss_and_backward(
            loss, output_activation, z, a, y, reduction, n_samples, xp)
    sigmoid = output_activation == "sigmoid"
    fused = fused_form(xp, "mse_sigmoid" if sigmoid else "mse")
    out_backward = bind_activation_backward(output_activation, xp, dtype)
    half_sum = fused_form(xp, "half_sum") or (lambda sq: 0.5 * xp.sum(sq))
    if fused is not None:
        def mse_fused(z, a, y, n_samples):
            # (d·d, the gradient) in one pass; with sigmoid, its backward too.
            sq, grad = fused(a, y, 1 if by_sum else n_samples)
            return half_sum(sq), (grad if sigmoid else out_backward(z, a, grad))
        return mse_fused

    def mse(z, a, y, n_samples):
        d = a - y
        total = half_sum(d * d)
        return total, out_backward(z, a, d if by_sum else d / n_samples)

    return mse


def bind_n_correct(multiclass, xp):
    """``f(a, y)``: :func:`kernels.n_correct` with ``multiclass`` (shapes (n, k))."""
    fused = None if multiclass else fused_form(xp, "n_correct_binary")
    return fused or (lambda a, y: K._n_correct(a, y, multiclass, xp))


# The activations a bound form knows; the kernels' table is the reference.
assert set(ACTIVATION_PAIRS) == {"sigmoid", "tanh", "relu", "identity", "softmax"}
