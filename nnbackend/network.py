"""The network's math as pure functions of ``(spec, params)``.

``params`` is a flat list ``[W0, b0, W1, b1, ...]`` of arrays of one
namespace, ``Wi`` of shape (fan_in, fan_out) and ``bi`` of shape (fan_out,);
``spec`` (a :class:`NetSpec`) says what the math needs beyond them. Nothing
here holds state or knows a backend: the training loop, the executors and
the :class:`~nnbackend.MLP` front end all call these.

A new layer type would go here: its forward and backward kernels in
:mod:`nnbackend.kernels`, its place in :func:`forward` and :func:`backward`,
its initial parameters in :func:`nnbackend.data.init_params` (drawn on
the host).
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass

from array_api_compat import array_namespace

from . import bound as B
from . import kernels as K

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "NetSpec",
    "backward",
    "bind_loss_and_grads",
    "bytes_per_row",
    "check_chunk_size",
    "chunk_rows",
    "evaluate_rows",
    "forward",
    "loss_and_grads_chunk",
    "loss_and_grads_rows",
    "multiclass_of",
    "predict_rows",
    "rows_for_budget",
    "slice_rows",
]

# By default a batch too large to push through at once goes in chunks whose
# rows come from the backend's memory budget for one chunk's activations
# (Backend.activation_budget): bytes, not rows, so a CPU gets cache-sized
# chunks and a GPU chunks large enough to keep it busy; memory stays flat in N.
DEFAULT_CHUNK_SIZE = "auto"

# Row-sized arrays alive at once per unit of width, measured with tracemalloc
# on NumPy (3.3 to 4.9 for sigmoid, tanh, relu and softmax networks of one to
# three hidden layers): the forward pass keeps each layer's pre-activation and
# activation, and the backward pass adds the layer's gradient, the gradient
# it passes down and an elementwise temporary. An over-count only makes
# chunks smaller than they could be.
ACTIVATION_COPIES = 5

# Fewer rows than this and a chunk's fixed costs (the launches or calls of its
# operations, summing its parameter-sized gradients into the total, thin
# matmuls) outweigh what a smaller chunk saves; "auto" never goes below it.
MIN_CHUNK_ROWS = 256


def check_chunk_size(value):
    """``value`` as ``"auto"`` or an ``int`` >= 1; anything else is refused by name."""
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"chunk_size must be 'auto' or an integer >= 1, got {type(value).__name__} {value!r}"
        )
    if value < 1:
        raise ValueError(f"chunk_size must be 'auto' or an integer >= 1, got {value}")
    return int(value)


def bytes_per_row(layer_sizes, itemsize: int) -> int:
    """Bytes one row of a chunk takes in the forward and backward passes.

    The input row once (a slice of the data, or a gathered copy of it) and
    :data:`ACTIVATION_COPIES` row-sized arrays per unit of every layer's
    width beyond the input.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, hidden..., n_outputs]``.
    itemsize : int
        Bytes per element of the arrays (4 for float32).
    """
    sizes = [int(s) for s in layer_sizes]
    return int(itemsize) * (sizes[0] + ACTIVATION_COPIES * sum(sizes[1:]))


def rows_for_budget(layer_sizes, itemsize: int, budget: int) -> int:
    """Rows per chunk whose activations fit in ``budget`` bytes.

    The largest power of two of rows within the budget (so that half the
    budget gives exactly half the rows), at least :data:`MIN_CHUNK_ROWS`.
    At a 4 MiB budget a [32, 64, 1] float32 network gets 2048 rows.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, hidden..., n_outputs]``.
    itemsize : int
        Bytes per element (4 for float32, 8 for float64).
    budget : int
        Bytes one chunk's activations may take (see
        ``Backend.activation_budget``).

    Returns
    -------
    int
    """
    fits = int(budget) // bytes_per_row(layer_sizes, itemsize)
    if fits < MIN_CHUNK_ROWS:
        return MIN_CHUNK_ROWS
    return 1 << (fits.bit_length() - 1)


def chunk_rows(chunk_size, backend, layer_sizes, dtype) -> int:
    """Rows per chunk: ``chunk_size`` itself if it is an int, or for ``"auto"``
    the rows of :func:`rows_for_budget` under ``backend.activation_budget()``.

    Parameters
    ----------
    chunk_size : "auto" or int
        Checked by :func:`check_chunk_size`.
    backend : Backend
        Declares the budget (asked on every call: a GPU's free memory changes).
    layer_sizes : sequence of int
    dtype : dtype of ``backend.xp``
        The floating dtype of the activations.
    """
    if not (isinstance(chunk_size, str) and chunk_size == "auto"):
        return chunk_size
    itemsize = backend.xp.finfo(dtype).bits // 8
    return rows_for_budget(layer_sizes, itemsize, backend.activation_budget())


@dataclass(frozen=True)
class NetSpec:
    """What the math needs beyond the parameters."""

    hidden_activation: str
    output_activation: str
    loss: str
    reduction: str


def checked_network(layer_sizes, hidden_activation, output_activation, loss,
                    reduction) -> tuple[list, NetSpec]:
    """``(layer_sizes as ints, NetSpec)`` of a network, or the refusal that
    names what is wrong with it (what :class:`nnbackend.MLP` and
    :func:`nnbackend.explain_backend` say).

    Raises
    ------
    ValueError, TypeError
        Fewer than two sizes, a size that is no integer >= 1, an unknown
        activation, loss or reduction, a loss the output cannot take, or a
        softmax of one unit.
    """
    from .checks import check_int

    try:
        sizes = list(layer_sizes) if not isinstance(layer_sizes, (str, bytes)) else None
    except TypeError:  # a bare number
        sizes = None
    if not sizes or len(sizes) < 2:
        raise ValueError("layer_sizes must list at least the input and output sizes, "
                         f"e.g. [2, 4, 1]; got {layer_sizes!r}")
    for size in sizes:
        check_int("each entry of layer_sizes", size)
    sizes = [int(size) for size in sizes]
    if hidden_activation not in K.HIDDEN_ACTIVATIONS:
        raise ValueError(f"unknown hidden_activation {hidden_activation!r}; choose one of "
                         f"{list(K.HIDDEN_ACTIVATIONS)}")
    if output_activation not in K.OUTPUT_ACTIVATIONS:
        raise ValueError(f"unknown output_activation {output_activation!r}; choose one of "
                         f"{list(K.OUTPUT_ACTIVATIONS)}")
    K.check_loss(loss, output_activation)
    K.check_reduction(reduction)
    if output_activation == "softmax" and sizes[-1] < 2:
        raise ValueError("a softmax output needs at least 2 units")
    return sizes, NetSpec(hidden_activation, output_activation, loss, reduction)


def multiclass_of(spec: NetSpec):
    """How to count correct predictions (see ``kernels.n_correct``): True for a
    softmax output, False for sigmoid, None where accuracy means nothing."""
    return {"softmax": True, "sigmoid": False}.get(spec.output_activation)


def slice_rows(X, Y, offset=0):
    """``rows(start, stop)``: rows ``offset + start : offset + stop`` of ``X`` and ``Y``.

    The row getter that :func:`loss_and_grads_rows` and :func:`evaluate_rows`
    take, over arrays of shapes (n, n_features) and (n, n_outputs).
    """
    return lambda i, j: (X[offset + i: offset + j, :], Y[offset + i: offset + j, :])


def forward(params, X, spec: NetSpec, xp=None):
    """Forward pass keeping what the backward pass needs.

    Parameters
    ----------
    params : list of arrays
        ``[W0, b0, W1, b1, ...]``: ``Wi`` of shape (fan_in_i, fan_out_i),
        ``bi`` of shape (fan_out_i,).
    X : array, shape (n, n_features)
    spec : NetSpec
        Its ``hidden_activation`` and ``output_activation`` are used.
    xp : namespace, optional
        The arrays' namespace (found from the arrays if not given).

    Returns
    -------
    xs : list of arrays
        One per layer: ``xs[i]`` is layer i's input, shape (n, fan_in_i);
        ``xs[0]`` is ``X``.
    zs : list of arrays
        One per layer: ``zs[i]`` is layer i's pre-activation, shape
        (n, fan_out_i); the last is the output logits, shape (n, n_outputs).
    a : array, shape (n, n_outputs)
        The network's output (after the output activation).
    """
    xs, zs = [X], []
    n_layers = len(params) // 2
    for i in range(n_layers):
        # Bias and activation in one kernel where the namespace has it (CuPy).
        name = spec.hidden_activation if i < n_layers - 1 else spec.output_activation
        z, a = K.dense_activation_forward(xs[-1], params[2 * i], params[2 * i + 1], name, xp=xp)
        zs.append(z)
        xs.append(a)
    return xs[:-1], zs, xs[-1]


def backward(params, xs, zs, dz, spec: NetSpec, xp=None):
    """Backpropagate the output logits' gradient ``dz`` (shape (n, n_outputs)).

    Returns the gradients in the layout of ``params``: ``[dW0, db0, ...]``.
    """
    n_layers = len(params) // 2
    grads = [None] * len(params)
    hidden_backward = K.activation(spec.hidden_activation)[1]
    for i in reversed(range(n_layers)):
        dx, dW, db = K.dense_backward(xs[i], params[2 * i], dz, need_dx=i > 0, xp=xp)
        grads[2 * i], grads[2 * i + 1] = dW, db
        if i > 0:
            # xs[i] is the activation of zs[i - 1].
            dz = hidden_backward(zs[i - 1], xs[i], dx, xp=xp)
    return grads


def loss_and_grads_rows(params, spec: NetSpec, rows, n_batch: int, chunk_size: int,
                        multiclass=None, xp=None, n_samples=None):
    """Loss and gradients over ``n_batch`` rows, in chunks of at most ``chunk_size``.

    Parameters
    ----------
    params : list of arrays
        ``[W0, b0, W1, b1, ...]``: ``Wi`` of shape (fan_in_i, fan_out_i),
        ``bi`` of shape (fan_out_i,).
    spec : NetSpec
        The activations, loss and reduction.
    rows : callable
        ``rows(start, stop) -> (X, Y)``, the batch's rows ``start:stop`` as
        arrays of shapes (stop - start, n_features) and (stop - start, n_outputs).
    n_batch : int
        Rows in the batch.
    chunk_size : int
        The most rows pushed through the network at once.
    multiclass : bool or None
        If not None, also count correct predictions (see ``kernels.n_correct``).
    xp : namespace, optional
        The arrays' namespace (found from the arrays if not given).
    n_samples : int, optional
        What ``"mean"`` gradients divide by: ``n_batch`` unless these rows
        are one part of a larger batch (a Dask row chunk).

    Returns
    -------
    loss_sum : 0-D array
        The per-sample losses *summed* over the batch, whatever the reduction
        (the caller divides for the mean), left on the device.
    grads : list of arrays
        Gradients of the batch loss (with the model's reduction) in the
        layout of ``params``, each of its parameter's shape. One chunk gives exactly the one-shot result;
        several give the same sum, accumulated in a different order.
    correct : 0-D array or None
        Correct predictions in the batch, when ``multiclass`` is not None.
    """
    n_samples = n_batch if n_samples is None else n_samples
    loss_sum, grads, correct = None, None, None
    chunk = None
    for start in range(0, n_batch, chunk_size):
        X, Y = rows(start, min(start + chunk_size, n_batch))
        if chunk is None:
            chunk = _chunk_function(params, spec, X, Y, multiclass, xp)
        loss, chunk_grads, hits = chunk(params, X, Y, n_samples)
        if grads is None:
            loss_sum, grads, correct = loss, chunk_grads, hits
        else:
            loss_sum = loss_sum + loss
            grads = [g + c for g, c in zip(grads, chunk_grads)]
            correct = None if hits is None else correct + hits
    return loss_sum, grads, correct


def loss_and_grads_chunk(params, spec: NetSpec, X, Y, n_samples: int, multiclass=None, xp=None):
    """Loss and gradients over one chunk: the kernels called one by one.

    The reference that :func:`bind_loss_and_grads` computes bit for bit.
    ``X`` (n, n_features), ``Y`` (n, n_outputs); ``n_samples`` is what a
    ``"mean"`` gradient divides by. Returns ``(loss_sum, grads, correct)``
    as :func:`loss_and_grads_rows` does.
    """
    xs, zs, a = forward(params, X, spec, xp)
    loss, dz = K.loss_and_backward(spec.loss, spec.output_activation, zs[-1], a, Y,
                                   spec.reduction, n_samples=n_samples, xp=xp)
    grads = backward(params, xs, zs, dz, spec, xp)
    hits = None if multiclass is None else K.n_correct(a, Y, multiclass, xp=xp)
    return loss, grads, hits


def _chunk_function(params, spec, X, Y, multiclass, xp):
    """``f(params, X, Y, n_samples)`` for the chunks of one call: bound once where
    the data and every parameter share a dtype (the bound function's premise),
    else the kernels one by one (they handle mixed dtypes)."""
    dtype = X.dtype
    if Y.dtype == dtype and all(p.dtype == dtype for p in params):
        return bind_loss_and_grads(spec, array_namespace(X) if xp is None else xp, dtype,
                                   multiclass)
    return lambda params, X, Y, n_samples: loss_and_grads_chunk(params, spec, X, Y, n_samples,
                                                                multiclass, xp)


@functools.lru_cache(maxsize=64)
def bind_loss_and_grads(spec: NetSpec, xp, dtype, multiclass=None):
    """:func:`loss_and_grads_chunk`, with every look-up done once.

    For a loop of small steps (the reference epoch's): the per-call
    look-ups of the kernels (namespace, fast forms, activations by name)
    cost as much as a single-row step's arithmetic on NumPy. The result is
    bit for bit that of :func:`loss_and_grads_chunk`: the same
    kernels' formulas in the same order (see :mod:`nnbackend.bound`).
    Cached per ``(spec, xp, dtype, multiclass)``.

    Parameters
    ----------
    spec : NetSpec
    xp : namespace
    dtype : dtype of ``xp``
        The dtype of every array the function will see (data and parameters).
    multiclass : bool or None
        Count correct predictions (see ``kernels.n_correct``) unless None.

    Returns
    -------
    callable
        ``f(params, X, Y, n_samples) -> (loss_sum, grads, correct)`` with
        ``X`` (n, n_features), ``Y`` (n, n_outputs), ``n_samples`` what a
        ``"mean"`` gradient divides by; the results as
        :func:`loss_and_grads_rows` gives them.
    """
    # The hidden layers' z may be None: then their backward never reads it.
    hidden_forward, hidden_backward = B.bind_hidden_layer(spec.hidden_activation, xp, dtype)
    output_forward = B.bind_dense_activation(spec.output_activation, xp, dtype)
    loss_and_backward = B.bind_loss_and_backward(spec.loss, spec.output_activation,
                                                 spec.reduction, xp, dtype)
    matmul, sum_rows = B.bind_matmul(xp), B.bind_sum_rows(xp)
    count = None if multiclass is None else B.bind_n_correct(multiclass, xp)

    def loss_and_grads(params, X, Y, n_samples):
        last = len(params) - 2  # the output layer's W
        xs, zs, x = [X], [], X
        for i in range(0, last, 2):
            z, x = hidden_forward(x, params[i], params[i + 1])
            zs.append(z)
            xs.append(x)
        z, a = output_forward(x, params[last], params[last + 1])
        loss, dz = loss_and_backward(z, a, Y, n_samples)
        grads = [None] * len(params)
        for i in range(last, 0, -2):
            # dense_backward's order: dW, db, then dx (from the layer's W).
            x = xs[i // 2]
            grads[i] = matmul(x.T, dz)
            grads[i + 1] = sum_rows(dz)
            dz = hidden_backward(zs[i // 2 - 1], x, matmul(dz, params[i].T))
        grads[0] = matmul(X.T, dz)
        grads[1] = sum_rows(dz)
        hits = None if count is None else count(a, Y)
        return loss, grads, hits

    return loss_and_grads


def evaluate_rows(params, spec: NetSpec, rows, n_rows: int, chunk_size: int, multiclass=None,
                  xp=None):
    """Summed loss (and correct predictions) over ``n_rows`` rows, forward only.

    ``rows`` is as in :func:`loss_and_grads_rows`. Returns ``(loss_sum,
    correct)``, 0-D arrays left on the device (``correct`` None when
    ``multiclass`` is None).
    """
    loss_sum, correct = None, None
    for start in range(0, n_rows, chunk_size):
        X, Y = rows(start, min(start + chunk_size, n_rows))
        _, zs, a = forward(params, X, spec, xp)
        loss = K.loss_forward(spec.loss, spec.output_activation, zs[-1], a, Y, "sum", xp=xp)
        hits = None if multiclass is None else K.n_correct(a, Y, multiclass, xp=xp)
        loss_sum = loss if loss_sum is None else loss_sum + loss
        if hits is not None:
            correct = hits if correct is None else correct + hits
    return loss_sum, correct


def predict_rows(params, spec: NetSpec, X, n_rows: int, chunk_size: int, xp=None):
    """The network's output for the ``n_rows`` rows of ``X`` (shape (n_rows,
    n_features)), computed ``chunk_size`` rows at a time.

    Returns
    -------
    array, shape (n_rows, n_outputs)
        The chunks' outputs concatenated on the device; with one chunk, the
        one-shot forward pass itself (no copy).
    """
    if n_rows <= chunk_size:
        return forward(params, X, spec, xp)[2]
    parts = [forward(params, X[start: min(start + chunk_size, n_rows), :], spec, xp)[2]
             for start in range(0, n_rows, chunk_size)]
    return (array_namespace(X) if xp is None else xp).concat(parts, axis=0)
