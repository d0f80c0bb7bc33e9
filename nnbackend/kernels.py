"""Forward and backward kernels written once against the Array API standard.

Every kernel (each public function that takes arrays) works in the
namespace ``xp`` of its input arrays, returns arrays of that namespace on
the same device, and never mutates its inputs, so the same code runs
eagerly on NumPy, CuPy, PyTorch and array-api-strict and traces under
``jax.jit``. All but three also take the namespace as the keyword ``xp=``,
which saves the look-up in hot loops. The three loss backward functions,
:func:`mse_backward`, :func:`bce_with_logits_backward` and
:func:`softmax_cross_entropy_backward`, take no ``xp=``: they compute with
array operators, and the last two look the namespace up from ``z`` only
where they compute the activation themselves (``a`` not given). No array
library is imported here.

Shapes: ``n`` rows (samples) of ``fan_in`` features enter a dense layer of
``fan_out`` units; ``k`` is the number of network outputs.

Conventions
-----------
* ``mse`` is ½·squared error: the per-sample loss is ½·Σ_k (a - y)².
* ``bce`` and ``cross_entropy`` take the output layer's *logits* ``z`` and
  are computed with log-sum-exp, never from clipped probabilities.
* ``reduction="sum"`` adds the per-sample losses; ``"mean"`` divides that sum
  by ``n_samples`` (default: the rows given; a sample of shape ``(k,)``, as
  ``jax.vmap`` hands each call, is one). The full dataset's ``n_samples``
  for each chunk lets chunk gradients sum to the full-batch mean gradient.
* Matmuls on ``jax.numpy`` arrays ask for full float32 precision (no TF32
  on GPUs) unless the user has set ``jax_default_matmul_precision``; a
  namespace may carry faster forms of the hot chains (CuPy: one kernel
  each), which compute the same formulas (see :func:`register_namespace_fixes`).
"""

from __future__ import annotations

import math

from .checks import check_dense, check_divisor, check_same_shape, namespace_of
# The namespaces' own forms of the hot chains; register_namespace_fixes is public here.
from .kernel_forms import fused_form, matmul_form, register_namespace_fixes

__all__ = ["dense_forward", "dense_backward", "dense_activation_forward", "sum_rows",
           "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
           "relu_forward", "relu_backward", "identity_forward", "identity_backward",
           "softmax_forward", "softmax_backward", "mse_forward", "mse_backward",
           "bce_with_logits_forward", "bce_with_logits_backward",
           "softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "activation",
           "activation_forward", "activation_backward", "check_loss", "check_reduction",
           "loss_forward", "loss_backward", "loss_and_backward", "HIDDEN_ACTIVATIONS",
           "OUTPUT_ACTIVATIONS", "LOSSES", "REDUCTIONS", "LOSS_OUTPUT", "n_correct",
           "register_namespace_fixes"]

REDUCTIONS = ("mean", "sum")


def _ns(xp, *arrays):
    """The namespace given, or the one of ``arrays``.

    Finding it costs more than a small matmul, so callers that run many
    kernels per step (the model) find it once and pass ``xp=`` on.
    """
    return namespace_of("nnbackend.kernels", (), *arrays) if xp is None else xp


def sum_rows(a, *, xp=None):
    """Sum over the rows (axis 0) of a 2-D array: the bias gradient's reduction.

    CuPy's own ``sum(axis=0)`` of a C-contiguous array misses its fast (CUB)
    path and takes 150 times as long as a matmul with a row of ones, which
    its namespace does instead (``nnbackend_fused["sum_rows"]``): the same
    sum in another order, equal to rounding. Everywhere else it is
    ``xp.sum(a, axis=0)``. The step's other sums need no such form: whole
    arrays (losses, hit counts) and rows (softmax's axis 1) are contiguous
    trailing axes, which CuPy reduces with CUB (on by default on CUDA).

    Parameters
    ----------
    a : array, shape (n, k)

    Returns
    -------
    array, shape (k,)
    """
    xp = _ns(xp, a)
    fused = fused_form(xp, "sum_rows")
    if fused is not None:
        return fused(a)
    return xp.sum(a, axis=0)


# -- dense layer -----------------------------------------------------------------


def dense_forward(x, W, b, *, xp=None):
    """Affine map ``z = x @ W + b``.

    Parameters
    ----------
    x : array, shape (n, fan_in)
        Or one sample, shape (fan_in,): what ``vmap`` over rows hands each call.
    W : array, shape (fan_in, fan_out)
    b : array, shape (fan_out,)

    Returns
    -------
    z : array, shape (n, fan_out), or (fan_out,) for one sample

    Raises
    ------
    ValueError
        Operands whose shapes do not fit together (a 1-D ``x`` among them).
    """
    check_dense("dense_forward", x, W, b)
    xp = xp or namespace_of("dense_forward", ("x", "W", "b"), x, W, b, floating=True)
    return matmul_form(xp)(x, W) + b


def dense_backward(x, W, dz, *, need_dx=True, xp=None):
    """Gradients of a dense layer given the gradient of its output.

    Parameters
    ----------
    x : array, shape (n, fan_in)
        The layer's input from the forward pass.
    W : array, shape (fan_in, fan_out)
    dz : array, shape (n, fan_out)
        Gradient of the loss with respect to ``z = x @ W + b``.
    need_dx : bool, default True
        False skips the input gradient (the first layer has no use for it).

    Returns
    -------
    dx : array, shape (n, fan_in), or None when ``need_dx`` is False
    dW : array, shape (fan_in, fan_out)
    db : array, shape (fan_out,)

    Raises
    ------
    ValueError
        Operands whose shapes do not fit together.
    """
    check_dense("dense_backward", x, W, dz=dz)
    xp = xp or namespace_of("dense_backward", ("x", "W", "dz"), x, W, dz, floating=True)
    # ``.T`` is the standard's transpose of a 2-D array, and an attribute
    # look-up is far cheaper than a matrix_transpose call on small arrays.
    matmul = matmul_form(xp)
    dW = matmul(x.T, dz)
    db = sum_rows(dz, xp=xp)
    dx = matmul(dz, W.T) if need_dx else None
    return dx, dW, db


def dense_activation_forward(x, W, b, activation_name, *, xp=None):
    """A dense layer and its activation: ``z = x @ W + b`` and ``a = f(z)``.

    Where the namespace has the bias and the activation as one kernel
    (CuPy), ``z`` and ``a`` come from one pass over ``x @ W`` instead of two
    (or three) launches; elsewhere this is :func:`dense_forward` then the
    activation, the same formula in the same order either way.

    Parameters
    ----------
    x : array, shape (n, fan_in)
    W : array, shape (fan_in, fan_out)
    b : array, shape (fan_out,)
    activation_name : str
        One of the activations (see :func:`activation`).

    Returns
    -------
    z : array, shape (n, fan_out)
        The pre-activation (the backward pass needs it).
    a : array, shape (n, fan_out)

    Raises
    ------
    ValueError
        An unknown activation, or operands whose shapes do not fit together.
    """
    forward = activation(activation_name)[0]
    check_dense("dense_activation_forward", x, W, b)
    xp = xp or namespace_of("dense_activation_forward", ("x", "W", "b"), x, W, b, floating=True)
    key = BIAS_FUSED.get(activation_name)
    fused = None if key is None else fused_form(xp, key)
    xw = matmul_form(xp)(x, W)
    if fused is None:
        z = xw + b
        return z, forward(z, xp=xp)
    if xw.dtype != b.dtype:
        z = xw + b
        return z, forward(z, xp=xp)
    return fused(xw, b, exp_floor(xp, xw.dtype))


# The fused bias + activation entries, by activation (identity has nothing to fuse).
BIAS_FUSED = {"sigmoid": "bias_sigmoid", "tanh": "bias_tanh", "relu": "bias_relu"}


# -- activations -----------------------------------------------------------------
# Every backward takes (z, a, da): the pre-activation, the activation and the
# gradient with respect to the activation, and returns the gradient with
# respect to z. Each uses whichever of z and a gives the cheaper formula.


def sigmoid_forward(z, *, xp=None):
    """Logistic sigmoid ``1 / (1 + exp(-z))`` of ``z`` (e.g. (n, fan_out)), shape of ``z``.

    ``z`` is raised to a floor a unit short of where ``exp(-z)`` would
    overflow: there the result is below the dtype's smallest normal number
    either way, and elsewhere it is bit for bit the textbook formula.
    """
    xp = _ns(xp, z)
    floor = exp_floor(xp, z.dtype)
    fused = fused_form(xp, "sigmoid")
    if fused is not None:
        return fused(z, floor)
    return 1 / (1 + xp.exp(-xp.maximum(z, floor)))


def exp_floor(xp, dtype):
    """-log of ``dtype``'s largest number, plus one (a Python float)."""
    # Keyed by type too: libraries' dtypes must never be compared to each other.
    key = (type(dtype), dtype)
    floor = _EXP_FLOORS.get(key)
    if floor is None:
        try:
            largest = float(xp.finfo(dtype).max)
        except (TypeError, ValueError, AttributeError):
            # Each library refuses an integer dtype in its own words, or deep inside.
            raise TypeError(f"the kernels compute in floating point, got an array of dtype "
                            f"{dtype}: cast it first (xp.astype(a, xp.float64))") from None
        floor = _EXP_FLOORS[key] = 1 - math.log(largest)
    return floor


# Computed once per dtype.
_EXP_FLOORS = {}


def sigmoid_backward(z, a, da, *, xp=None):
    """Sigmoid's gradient ``dz = da · a(1 - a)``; z, a, da and dz of shape (n, fan_out)."""
    check_same_shape("sigmoid_backward", ("a", "da"), a, da)
    fused = fused_form(xp, "sigmoid_backward")
    if fused is not None and a.dtype == da.dtype:
        return fused(a, da)
    return da * (a * (1 - a))


def tanh_forward(z, *, xp=None):
    """Hyperbolic tangent of ``z`` (e.g. (n, fan_out)), element by element, shape of ``z``."""
    return _ns(xp, z).tanh(z)


def tanh_backward(z, a, da, *, xp=None):
    """Tanh's gradient ``dz = da · (1 - a²)``; z, a, da and dz of shape (n, fan_out)."""
    check_same_shape("tanh_backward", ("a", "da"), a, da)
    fused = fused_form(xp, "tanh_backward")
    if fused is not None and a.dtype == da.dtype:
        return fused(a, da)
    return da * (1 - a * a)


def relu_forward(z, *, xp=None):
    """Rectified linear unit ``max(z, 0)`` of ``z`` (e.g. (n, fan_out)), shape of ``z``."""
    xp = _ns(xp, z)
    fused = fused_form(xp, "relu")
    if fused is not None:
        return fused(z)
    return xp.where(z > 0, z, xp.zeros_like(z))


def relu_backward(z, a, da, *, xp=None):
    """ReLU's gradient: ``da`` where ``z > 0``, else 0 (0 at 0); all of shape (n, fan_out)."""
    check_same_shape("relu_backward", ("z", "da"), z, da)
    xp = _ns(xp, z, da)
    fused = fused_form(xp, "relu_backward")
    if fused is not None and z.dtype == da.dtype:
        return fused(z, da)
    return xp.where(z > 0, da, xp.zeros_like(da))


def identity_forward(z, *, xp=None):
    """The identity: ``z`` itself, of any shape (e.g. (n, fan_out))."""
    return z


def identity_backward(z, a, da, *, xp=None):
    """The identity's gradient: ``da`` itself, of shape (n, fan_out)."""
    return da


def softmax_forward(z, *, xp=None):
    """Row-wise softmax, shifted by each row's maximum so ``exp`` cannot overflow.

    Parameters
    ----------
    z : array, shape (n, k)

    Returns
    -------
    a : array, shape (n, k), rows summing to 1
    """
    xp = _ns(xp, z)
    fused = fused_form(xp, "softmax")
    if fused is not None:
        return fused(z)
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def softmax_backward(z, a, da, *, xp=None):
    """Softmax's gradient, row by row: ``dz = a · (da - Σ_k da·a)``; all of shape (n, k)."""
    check_same_shape("softmax_backward", ("a", "da"), a, da)
    xp = _ns(xp, a, da)
    return a * (da - xp.sum(da * a, axis=-1, keepdims=True))


ACTIVATION_PAIRS = {
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
    "relu": (relu_forward, relu_backward),
    "identity": (identity_forward, identity_backward),
    "softmax": (softmax_forward, softmax_backward),
}
HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu", "identity")
OUTPUT_ACTIVATIONS = ("sigmoid", "softmax", "identity")


def activation(name):
    """``(forward, backward)`` of the activation called ``name``.

    Parameters
    ----------
    name : {'sigmoid', 'tanh', 'relu', 'identity', 'softmax'}

    Returns
    -------
    forward : callable
        ``forward(z, *, xp=None) -> a``, ``a`` of ``z``'s shape (n, fan_out).
    backward : callable
        ``backward(z, a, da, *, xp=None) -> dz``, each of shape (n, fan_out).
    """
    try:
        return ACTIVATION_PAIRS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; choose one of {list(ACTIVATION_PAIRS)}"
        ) from None


def activation_forward(name, z, *, xp=None):
    """The activation called ``name`` of ``z``, shape (n, fan_out); see :func:`activation`."""
    return activation(name)[0](z, xp=xp)


def activation_backward(name, z, a, da, *, xp=None):
    """Gradient ``dz`` of the activation ``name``; z, a, da and dz of shape (n, fan_out)."""
    return activation(name)[1](z, a, da, xp=xp)


# -- losses ----------------------------------------------------------------------


def check_reduction(reduction):
    """Refuse a reduction other than 'mean' or 'sum'.

    Raises
    ------
    ValueError
        Naming the reduction given and the two there are.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")


def _check_loss_args(kernel, n_samples, reduction, names, *arrays):
    """The loss kernels' arrays of one shape (n, k); their mean's divisor >= 1, a
    host number as a Python one (NumPy's int64 would promote float32 to float64)."""
    check_same_shape(kernel, names, *arrays)
    return check_divisor(kernel, n_samples, reduction)


def _rows(a):  # what a mean divides by: one for a single sample of shape (k,)
    return 1 if a.ndim == 1 else a.shape[0]


def _reduce(xp, per_element, reduction, n_samples):
    """Sum ``per_element`` (shape (n, k)); divide by ``n_samples`` for the mean."""
    check_reduction(reduction)
    total = xp.sum(per_element)
    if reduction == "sum":
        return total
    return total / (_rows(per_element) if n_samples is None else n_samples)


def _scale(dz, reduction, n_samples):
    check_reduction(reduction)
    if reduction == "sum":
        return dz
    return dz / (_rows(dz) if n_samples is None else n_samples)


def mse_forward(a, y, reduction="mean", n_samples=None, *, xp=None):
    """½·squared error between outputs ``a`` and targets ``y``.

    Parameters
    ----------
    a, y : array, shape (n, k)
    reduction : {'mean', 'sum'}
    n_samples : int, optional
        The divisor of ``'mean'`` (default: the rows given; see the module's conventions).

    Returns
    -------
    0-D array
        The sum over samples of ½·Σ_k (a - y)², divided by ``n_samples``
        when ``reduction="mean"``.
    """
    n_samples = _check_loss_args("mse_forward", n_samples, reduction, ("a", "y"), a, y)
    return _mse_forward(a, y, reduction, n_samples, xp)


def _mse_forward(a, y, reduction, n_samples, xp):
    xp = _ns(xp, a, y)
    d = a - y
    return _reduce(xp, 0.5 * (d * d), reduction, n_samples)


def mse_backward(a, y, reduction="mean", n_samples=None):
    """Gradient of :func:`mse_forward` with respect to ``a``: ``a - y`` (scaled), shape (n, k)."""
    n_samples = _check_loss_args("mse_backward", n_samples, reduction, ("a", "y"), a, y)
    return _scale(a - y, reduction, n_samples)


def bce_with_logits_forward(z, y, reduction="mean", n_samples=None, *, xp=None):
    """Binary cross-entropy of ``sigmoid(z)`` against ``y`` in [0, 1].

    Computed from the logits as ``max(z, 0) - z·y + log(1 + exp(-|z|))``,
    which neither overflows nor takes the log of 0.

    Parameters
    ----------
    z, y : array, shape (n, k)
        Logits, and 0/1 labels or probabilities.
    reduction : {'mean', 'sum'}
    n_samples : int, optional
        The divisor of ``'mean'`` (default: the rows given; see the module's conventions).

    Returns
    -------
    0-D array
    """
    n_samples = _check_loss_args("bce_with_logits_forward", n_samples, reduction, ("z", "y"), z, y)
    return _bce_forward(z, y, reduction, n_samples, xp)


def _bce_forward(z, y, reduction, n_samples, xp):
    xp = _ns(xp, z, y)
    # -|z| as where(z >= 0, -z, z): at z = 0 autodiff (jax.grad, torch) then takes one
    # branch's derivative whole, 1/2 - y, where abs's and max's subgradients are not.
    pos = z >= 0
    per_element = (xp.where(pos, z, xp.zeros_like(z)) - z * y
                   + xp.log1p(xp.exp(xp.where(pos, -z, z))))
    return _reduce(xp, per_element, reduction, n_samples)


def bce_with_logits_backward(z, y, reduction="mean", n_samples=None, a=None):
    """Gradient of :func:`bce_with_logits_forward` with respect to ``z``: ``sigmoid(z) - y``.

    ``z``, ``y``, ``a`` (``sigmoid(z)``, if the forward pass computed it) and
    the result are of shape (n, k).
    """
    n_samples = _check_loss_args("bce_with_logits_backward", n_samples, reduction,
                                 ("z", "y", "a"), z, y, a)
    if a is None:
        a = sigmoid_forward(z)
    return _scale(a - y, reduction, n_samples)


def softmax_cross_entropy_forward(z, y, reduction="mean", n_samples=None, *, xp=None):
    """Cross-entropy of ``softmax(z)`` against ``y``.

    Computed as ``Σ_k y·(logsumexp(z) - z)`` with the row maximum shifted out.
    Logits spread past the dtype's largest number (a diverged model's) give
    NaN, ``0·inf`` where ``y`` is 0, even where the loss is 0 or infinite.

    Parameters
    ----------
    z, y : array, shape (n, k)
        Logits, and one-hot rows (or probability rows summing to 1).
    reduction : {'mean', 'sum'}
    n_samples : int, optional
        The divisor of ``'mean'`` (default: the rows given; see the module's conventions).

    Returns
    -------
    0-D array
    """
    n_samples = _check_loss_args("softmax_cross_entropy_forward", n_samples, reduction,
                                 ("z", "y"), z, y)
    return _ce_forward(z, y, reduction, n_samples, xp)


def _ce_forward(z, y, reduction, n_samples, xp):
    xp = _ns(xp, z, y)
    m = xp.max(z, axis=-1, keepdims=True)
    log_norm = xp.log(xp.sum(xp.exp(z - m), axis=-1, keepdims=True))
    return _reduce(xp, y * ((m - z) + log_norm), reduction, n_samples)


def softmax_cross_entropy_backward(z, y, reduction="mean", n_samples=None, a=None):
    """Gradient of :func:`softmax_cross_entropy_forward` with respect to ``z``:
    ``softmax(z) - y`` (for rows of ``y`` summing to 1), shape (n, k).

    ``a``, if given, is ``softmax(z)`` already computed by the forward pass.
    """
    n_samples = _check_loss_args("softmax_cross_entropy_backward", n_samples, reduction,
                                 ("z", "y", "a"), z, y, a)
    if a is None:
        a = softmax_forward(z)
    return _scale(a - y, reduction, n_samples)


LOSSES = ("mse", "bce", "cross_entropy")
# The output activation each logits-based loss is defined with.
LOSS_OUTPUT = {"bce": "sigmoid", "cross_entropy": "softmax"}


def check_loss(loss, output_activation):
    """Refuse an unknown loss, or a logits-based loss without its output activation.

    Raises
    ------
    ValueError
        An unknown ``loss`` (naming :data:`LOSSES`), or ``bce`` without
        ``output_activation='sigmoid'`` or ``cross_entropy`` without ``'softmax'``.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {list(LOSSES)}")
    need = LOSS_OUTPUT.get(loss)
    if need is not None and output_activation != need:
        raise ValueError(
            f"loss {loss!r} is computed from logits and needs "
            f"output_activation={need!r}, got {output_activation!r}"
        )


def loss_forward(loss, output_activation, z, a, y, reduction="mean", n_samples=None, *, xp=None):
    """The loss of the network's output layer.

    Parameters
    ----------
    loss : {'mse', 'bce', 'cross_entropy'}
    output_activation : {'sigmoid', 'softmax', 'identity'}
        ``bce`` needs ``sigmoid`` and ``cross_entropy`` needs ``softmax``.
    z : array, shape (n, k)
        The output layer's logits.
    a : array, shape (n, k)
        ``activation_forward(output_activation, z)``.
    y : array, shape (n, k)
        Targets: for ``cross_entropy`` rows of class probabilities (one-hot
        or soft), for ``bce`` values in [0, 1].
    reduction : {'mean', 'sum'}
    n_samples : int, optional
        The divisor of ``'mean'`` (default: the rows given; see the module's
        conventions).
    xp : namespace, optional
        The arrays' namespace (found from ``a`` and ``y``, or ``z`` and
        ``y``, if not given).

    Returns
    -------
    0-D array
        The per-sample losses summed over the ``n`` rows, divided by
        ``n_samples`` when ``reduction="mean"``.

    Raises
    ------
    ValueError
        An unknown ``loss``, or one without its output activation
        (:func:`check_loss`).
    """
    check_loss(loss, output_activation)
    n_samples = _check_loss_args("loss_forward", n_samples, reduction, ("z", "a", "y"), z, a, y)
    return _loss_forward(loss, z, a, y, reduction, n_samples, xp)


def _loss_forward(loss, z, a, y, reduction, n_samples, xp):
    if loss == "mse":
        return _mse_forward(a, y, reduction, n_samples, xp)
    if loss == "bce":
        return _bce_forward(z, y, reduction, n_samples, xp)
    return _ce_forward(z, y, reduction, n_samples, xp)


def loss_backward(loss, output_activation, z, a, y, reduction="mean", n_samples=None, *, xp=None):
    """Gradient of :func:`loss_forward` with respect to the logits ``z``; arguments as
    :func:`loss_forward`, ``z``, ``a``, ``y`` and the result of shape (n, k)."""
    check_loss(loss, output_activation)
    n_samples = _check_loss_args("loss_backward", n_samples, reduction, ("z", "a", "y"), z, a, y)
    if loss == "mse":
        da = mse_backward(a, y, reduction, n_samples)
        return activation_backward(output_activation, z, a, da, xp=xp)
    # sigmoid + bce and softmax + cross-entropy both reduce to a - y.
    return _logits_grad(_ns(xp, a, y), a, y, reduction, n_samples)


def _count(a, reduction, n_samples):
    """What the fused loss kernels divide by: 1 for the sum (exactly the
    undivided value), the mean's divisor otherwise."""
    if reduction == "sum":
        return 1
    return _rows(a) if n_samples is None else n_samples


def _logits_grad(xp, a, y, reduction, n_samples):
    """``(a - y)`` scaled for ``reduction``: the logits' gradient of bce and cross-entropy."""
    fused = fused_form(xp, "logits_grad")
    if fused is not None and a.dtype == y.dtype:
        return fused(a, y, _count(a, reduction, n_samples))
    return _scale(a - y, reduction, n_samples)


def loss_and_backward(loss, output_activation, z, a, y, reduction="mean", n_samples=None, *,
                      xp=None):
    """``(loss_forward(..., "sum"), loss_backward(...))`` in one pass.

    The summed loss (whatever ``reduction``: callers accumulate sums) and the
    gradient with respect to ``z`` (with ``reduction``) share ``a - y``,
    which the training loop would otherwise compute twice per step. The
    names are not checked here (the model checked them when it was built).
    Arguments as :func:`loss_forward`; returns a 0-D array and shape (n, k).
    """
    n_samples = _check_loss_args("loss_and_backward", n_samples, reduction,
                                 ("z", "a", "y"), z, a, y)
    return _loss_and_backward(loss, output_activation, z, a, y, reduction, n_samples, xp)


def _loss_and_backward(loss, output_activation, z, a, y, reduction, n_samples, xp):
    """:func:`loss_and_backward` without its checks: for a step loop whose
    shapes were checked once (:mod:`nnbackend.bound`)."""
    xp = _ns(xp, a, y)
    if loss != "mse":
        # The fused forms (CuPy) give each chain in one kernel, formulas unchanged.
        fused = fused_form(xp, loss)  # "bce" or "cross_entropy"
        if fused is not None and z.dtype == a.dtype == y.dtype:
            per_element, dz = fused(z, a, y, _count(a, reduction, n_samples))
            return xp.sum(per_element), dz
        total = _loss_forward(loss, z, a, y, "sum", None, xp)
        return total, _logits_grad(xp, a, y, reduction, n_samples)
    sigmoid = output_activation == "sigmoid"
    fused = fused_form(xp, "mse_sigmoid" if sigmoid else "mse")
    if fused is not None and a.dtype == y.dtype:
        # (d·d, the gradient) in one pass; with sigmoid, its backward too.
        sq, grad = fused(a, y, _count(a, reduction, n_samples))
        total = 0.5 * xp.sum(sq)
        if sigmoid:
            return total, grad
        return total, ACTIVATION_PAIRS[output_activation][1](z, a, grad, xp=xp)
    d = a - y
    total = 0.5 * xp.sum(d * d)
    da = d if reduction == "sum" else d / (d.shape[0] if n_samples is None else n_samples)
    return total, ACTIVATION_PAIRS[output_activation][1](z, a, da, xp=xp)


# -- metrics ---------------------------------------------------------------------


def n_correct(a, y, multiclass, *, xp=None):
    """How many predictions in ``a`` match the targets ``y``, as a 0-D array.

    Parameters
    ----------
    a : array, shape (n, k)
        Network outputs (probabilities).
    y : array, shape (n, k)
        One-hot rows when ``multiclass``, else 0/1 targets.
    multiclass : bool
        True for softmax outputs: a row is right when its largest output is
        its class (counts rows). False for sigmoid outputs: each element is
        right when it falls on its target's side of 0.5 (counts elements).

    Returns
    -------
    0-D array of ``a``'s dtype
    """
    check_same_shape("n_correct", ("a", "y"), a, y)
    return _n_correct(a, y, multiclass, xp)


def _n_correct(a, y, multiclass, xp):
    """:func:`n_correct` without its check (see :func:`_loss_and_backward`)."""
    xp = _ns(xp, a, y)
    if multiclass:
        hit = xp.argmax(a, axis=1) == xp.argmax(y, axis=1)
    else:
        fused = fused_form(xp, "n_correct_binary")
        if fused is not None and a.dtype == y.dtype:
            return fused(a, y)
        hit = (a > 0.5) == (y > 0.5)
    return xp.sum(xp.astype(hit, a.dtype))
