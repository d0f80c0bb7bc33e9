"""NumPy (CPU): its own namespace from NumPy 2.1 on, else array-api-compat's.

The namespace is NumPy's with a faster float sum and small matmul, and the
kernels' elementwise chains (``nnbackend_fused``) with their constants as
0-D arrays of the input's dtype.
"""

from __future__ import annotations

import functools

import numpy as np

from .base import Backend, import_or_refuse, make_namespace, quiet_numpy
from .numpy_optim import FUSED_UPDATES

__all__ = ["NumpyBackend"]


def _numpy_sum(x, /, *, axis=None, dtype=None, keepdims=False):
    # np.sum spends twice the time of the reduction in argument dispatch;
    # for floating input np.add.reduce gives the standard's answer.
    if dtype is None and x.dtype.kind == "f":
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return np.sum(x, axis=axis, dtype=dtype, keepdims=keepdims)


def _numpy_matmul(x1, x2, /):
    # For two 2-D operands np.dot is the same product and skips matmul's
    # generalised-ufunc machinery: 1-3 us less a call on a step's small
    # arrays (five calls a step), the same BLAS call on large ones.
    if x1.ndim == 2 and x2.ndim == 2:
        return np.dot(x1, x2)
    return np.matmul(x1, x2)


# np.dot without its __array_function__ dispatch (a Python call, a third of
# the time of a single-row product): the namespace's arrays are ndarrays.
_dot = getattr(np.dot, "_implementation", np.dot)


# From this many elements on (a batch's chunk), the sigmoid and its gradient
# reuse one buffer; below it the extra calls and keyword arguments would
# cost more than the passes they save (a single-row step).
_IN_PLACE_MIN = 4096
# A sum over rows goes through einsum from this many rows on (see _sum_rows).
_EINSUM_MIN_ROWS = 256
# The bias is added in place, to row blocks this many elements wide, from
# _BIAS_IN_PLACE_MIN elements on (see _add_bias): below about that, making
# the repeated bias costs more than the row-by-row broadcast (a mini-batch).
# 16384 (64 KiB of float32) took the pass over a 4096 x 32 chunk from 40 to
# 27 us against 1024 (the repeated bias cached either way: see _repeated),
# in 8 inner-loop calls instead of 128.
_BIAS_BLOCK = 16384
_BIAS_IN_PLACE_MIN = 32768


def _sum_rows(a):
    """``np.add.reduce(a, axis=0)`` of a 2-D float array, bit for bit.

    For a C-contiguous (n, k) array NumPy's reduction adds the rows in order,
    one inner-loop call per row: about 25 ns a row, so 100 us for a 4096-row
    chunk of 32 columns. einsum's ``ij->j`` adds them in the same order (row
    after row, each column in the array's dtype) in a tighter loop, in a
    third of the time; tests/test_numpy_steps.py holds the bits equal. With
    one column the reduction runs along the rows, where both sum in blocks
    of their own (pairwise, unrolled): there, and below a few hundred rows
    (einsum's set-up costs more), it stays np.add.reduce.
    """
    if a.shape[0] >= _EINSUM_MIN_ROWS and a.ndim == 2 and a.shape[1] > 1 \
            and a.dtype.kind == "f" and a.flags.c_contiguous:
        return np.einsum("ij->j", a)
    return np.add.reduce(a, axis=0)


# Unsigned integers as wide as each float dtype: relu's gradient masks the bits.
_SAME_WIDTH_UINT = {np.dtype(np.float16): np.dtype(np.uint16),
                    np.dtype(np.float32): np.dtype(np.uint32),
                    np.dtype(np.float64): np.dtype(np.uint64)}


def _repeated(b, reps, xw):
    """``b`` repeated ``reps`` times (1-D, read-only), placed half a page away
    from ``xw`` modulo the 4 KiB page.

    Where the two addresses agree modulo 4096, each store to ``xw`` looks
    to the CPU like a store to the load from the repeated bias that
    follows (4K aliasing), and the in-place addition ran six times slower,
    by chance of where the allocator put the two arrays.

    Made once per bias value and page offset: a batch's chunks have one
    bias and their products come back at a few addresses, so the chunks
    after the first skip the allocation and fill (and the array stays in
    cache). The key holds the bias's bytes, so a changed bias (the next
    step's, or one written in place) is never served an old one.
    """
    offset = xw.ctypes.data % _PAGE
    key = (b.dtype, reps, offset, b.tobytes())
    repeated = _REPEATED.get(key)
    if repeated is None:
        itemsize = b.dtype.itemsize
        width = reps * b.shape[0]
        buffer = np.empty(width + _PAGE // itemsize, dtype=b.dtype)
        start = (offset + _PAGE // 2 - buffer.ctypes.data % _PAGE) % _PAGE // itemsize
        repeated = buffer[start:start + width]
        repeated.reshape(reps, -1)[...] = b
        repeated.flags.writeable = False
        if len(_REPEATED) >= _REPEATED_MAX:
            _REPEATED.clear()
        _REPEATED[key] = repeated
    return repeated


# The repeated biases by (dtype, reps, page offset, the bias's bytes): at most
# _REPEATED_MAX of 132 KiB or less (_BIAS_BLOCK float64 and a page).
_REPEATED = {}
_REPEATED_MAX = 8
_PAGE = 4096


def _n_correct_binary(a, y):
    """The kernels' count for sigmoid outputs, ``(a > 0.5) == (y > 0.5)`` summed
    in ``a``'s dtype, as one exact integer count: the same number while every
    count is a whole number in that dtype (below 2**24 elements in float32),
    in half the calls (5.8 us of a 40 us single-row step before)."""
    consts = _COUNT_CONSTS.get(a.dtype)
    if consts is None and a.dtype.kind == "f":
        consts = _COUNT_CONSTS[a.dtype] = (np.asarray(0.5, dtype=a.dtype),
                                           2 ** (np.finfo(a.dtype).nmant + 1))
    if consts is None or a.dtype != y.dtype or a.size >= consts[1]:
        return np.sum(((a > 0.5) == (y > 0.5)).astype(a.dtype))
    half = consts[0]
    return a.dtype.type(np.count_nonzero(np.equal(np.greater(a, half), np.greater(y, half))))


_COUNT_CONSTS = {}  # per floating dtype: (0.5, the first count it may not hold exactly)


def _owns_chunk(xw, b):
    """Whether ``xw`` is a chunk's fresh product (the caller's own temporary)
    that the bias ``b`` may be added to in place: large, 2-D, C-contiguous,
    writeable and of ``b``'s floating dtype."""
    return xw.size >= _BIAS_IN_PLACE_MIN and xw.ndim == 2 and b.ndim == 1 \
        and xw.dtype == b.dtype and xw.dtype.kind == "f" \
        and xw.flags.c_contiguous and xw.flags.writeable


def _add_bias(xw, b):
    """``xw + b`` for ``xw`` (n, k) and ``b`` (k,), written into ``xw`` when it is a
    chunk's fresh product (see ``_owns_chunk``).

    NumPy broadcasts ``b`` one row at a time, an inner-loop call per row of
    k elements. Viewed as rows of ``_BIAS_BLOCK`` elements beside ``b``
    repeated to match, the same additions run in long loops, in place: half
    the time and no new buffer. Each element is ``xw[i, j] + b[j]`` either
    way (the same bits).
    """
    if not _owns_chunk(xw, b):
        return xw + b
    return _bias_in_place(xw, b, lambda part, bias: np.add(part, bias, out=part))


def _negated_bias_in_place(xw, b):
    """``-(xw + b)``, as ``(-b) - xw``, written into the chunk's product ``xw``
    (see ``_owns_chunk``; the caller checks).

    The two are the same number: rounding to nearest is symmetric in sign,
    so ``(-b) + (-x)`` rounds to the negation of ``b + x`` (an exact zero
    aside, +0 here where the negation gives -0; ``exp`` maps both to 1).
    One pass, where the bias and then the negation take two.
    """
    return _bias_in_place(xw, np.negative(b),
                          lambda part, neg_b: np.subtract(neg_b, part, out=part))


def _bias_in_place(xw, b, combine):
    """``combine(part, bias)`` over ``xw`` (n, k) in place, ``bias`` being ``b``
    (k,) repeated to match ``part``'s rows (see ``_add_bias``)."""
    n, k = xw.shape
    reps = _BIAS_BLOCK // k
    if k == 1 or reps < 2:  # one long loop already (a column), or long rows
        return combine(xw, b)
    bulk = n - n % reps
    repeated = _repeated(b, reps, xw)
    if bulk:
        combine(xw[:bulk].reshape(bulk // reps, reps * k), repeated)
    if bulk < n:  # the last rows as one block too (fewer than reps of them)
        combine(xw[bulk:].reshape(-1), repeated[:(n - bulk) * k])
    return xw


def _sigmoid_forms(consts, const):
    """``_numpy_fused``'s sigmoid chains: ``sigmoid``, ``sigmoid_backward``,
    ``bias_sigmoid`` and ``bias_sigmoid_no_z``, over its constants (``consts``,
    the cache that ``const(value, dtype)`` fills)."""

    def sigmoid_consts(floor, dtype):
        # (1, floor, -floor) as 0-D arrays of the dtype, made once.
        consts_ = consts.get((floor, "sigmoid", dtype))
        if consts_ is None:
            consts_ = consts[floor, "sigmoid", dtype] = (
                const(1, dtype), const(floor, dtype), const(-floor, dtype))
        return consts_

    def sigmoid(z, floor):
        if z.dtype.kind != "f":
            return 1 / (1 + np.exp(-np.maximum(z, floor)))
        # The look-up inline: a single-row step calls this twice.
        one, floor_, neg_floor = consts.get((floor, "sigmoid", z.dtype)) \
            or sigmoid_consts(floor, z.dtype)
        if z.size < _IN_PLACE_MIN:
            return one / (one + np.exp(-np.maximum(z, floor_)))
        return sigmoid_of_negated(np.negative(z), one, neg_floor)

    def sigmoid_of_negated(t, one, neg_floor):
        # A chunk of a large batch: the formula's ufuncs on the same
        # operands, in place in t = -z (a quarter of the memory traffic of
        # four temporaries, and no fresh pages; the bits are the same).
        # -max(z, floor) is min(-z, -floor) exactly, and where no element is
        # above -floor (nor NaN: the maximum would be NaN and compare False)
        # that is t itself: a maximum costs a fifth of the pass it saves.
        if not np.maximum.reduce(t, axis=None) <= neg_floor:
            np.minimum(t, neg_floor, out=t)
        np.exp(t, out=t)
        np.add(one, t, out=t)
        return np.divide(one, t, out=t)

    def sigmoid_backward(a, da):
        if a.dtype.kind != "f" or a.dtype != da.dtype:
            return da * (a * (1 - a))
        if a.size < _IN_PLACE_MIN or da.shape != a.shape:
            return da * (a * (const(1, a.dtype) - a))
        t = np.subtract(const(1, a.dtype), a)  # in one buffer, as in sigmoid
        np.multiply(a, t, out=t)
        return np.multiply(da, t, out=t)

    # A small step's product takes the plain sum without a further call.
    def bias_sigmoid(xw, b, floor):
        z = xw + b if xw.size < _BIAS_IN_PLACE_MIN else _add_bias(xw, b)
        return z, sigmoid(z, floor)

    def bias_sigmoid_no_z(xw, b, floor):
        # bias_sigmoid's a alone, for a caller that never reads z (a hidden
        # layer whose gradient takes a): a chunk's -z is made in one pass
        # over its product, with no z (see _negated_bias_in_place).
        if xw.size < _BIAS_IN_PLACE_MIN:
            return sigmoid(xw + b, floor)
        if not _owns_chunk(xw, b):
            return sigmoid(_add_bias(xw, b), floor)
        one, _, neg_floor = sigmoid_consts(floor, xw.dtype)
        return sigmoid_of_negated(_negated_bias_in_place(xw, b), one, neg_floor)

    return {"sigmoid": sigmoid, "sigmoid_backward": sigmoid_backward,
            "bias_sigmoid": bias_sigmoid, "bias_sigmoid_no_z": bias_sigmoid_no_z}


def _relu_backward(z, da):
    bits = _SAME_WIDTH_UINT.get(da.dtype)
    if bits is None or z.dtype != da.dtype:
        return np.where(z > 0, da, np.zeros_like(da))  # the kernels' formula
    # where(z > 0, da, 0) bit for bit in a third of the time: da's bits
    # times 1 or 0 as integers are da's bits or +0's.
    return np.multiply(da.view(bits), np.greater(z, 0), dtype=bits).view(da.dtype)


def _softmax(z):
    # The kernels' softmax, its intermediates reused in place (np.max and
    # np.sum are these reductions, behind a Python wrapper).
    if z.dtype.kind != "f":
        e = np.exp(z - np.max(z, axis=-1, keepdims=True))
        return e / np.sum(e, axis=-1, keepdims=True)
    e = np.subtract(z, np.maximum.reduce(z, axis=-1, keepdims=True))
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=-1, keepdims=True)
    return e


def _cross_entropy(z, a, y, count):
    """Softmax cross-entropy's per-element loss ``y·((m - z) + log Σ exp(z - m))``
    and its logits' gradient ``(a - y) / count``, the kernels' formulas."""
    if not (z.dtype == a.dtype == y.dtype and z.dtype.kind == "f"):
        m = np.max(z, axis=-1, keepdims=True)
        log_norm = np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))
        d = a - y
        return y * ((m - z) + log_norm), (d if count == 1 else d / count)
    m = np.maximum.reduce(z, axis=-1, keepdims=True)
    e = np.subtract(z, m)
    np.exp(e, out=e)
    log_norm = np.log(np.add.reduce(e, axis=-1, keepdims=True))
    per_element = np.subtract(m, z)
    per_element += log_norm
    per_element *= y
    d = np.subtract(a, y)
    if count != 1:
        d /= count
    return per_element, d


def _numpy_fused():
    """The kernels' elementwise chains for NumPy, by name (see ``kernels.fused_form``).

    The same operations in the same order as the kernels' formulas, so the
    results are bit for bit theirs, with one difference: the constants are
    0-D arrays of the input's dtype. NumPy takes half a microsecond or more
    to fit a Python number to an array's dtype, on every operation; a
    single-row step's sigmoids and their gradients spent about 3.5 us of 55
    doing it. Anything but floating arrays of one dtype takes the formula
    with Python numbers. (NumPy 2 rounds a Python number to the array's
    dtype before the operation, as ``np.asarray(value, dtype)`` does: the
    same operands either way.)

    A batch's chunks take the same operations with fewer passes and
    buffers: the bias added in place to the product just made
    (``bias_sigmoid``, ``bias_tanh``, ``bias_relu``; from
    ``_BIAS_IN_PLACE_MIN`` elements), the sigmoid and its gradient in one
    buffer and the sigmoid's floor skipped where no element is below it
    (from ``_IN_PLACE_MIN``). ``bias_sigmoid_no_z`` gives the sigmoid
    alone, for a hidden layer whose gradient never reads ``z``: there the
    product, the bias and the negation take one pass.

    Besides the chains: ``matmul`` (the kernels' products, whose right
    operand is a 2-D weight or gradient: ``np.dot`` is then ``matmul``),
    ``sum_rows`` (``np.sum``'s own reduction, ``np.add.reduce``, or einsum's
    in the same order: see ``_sum_rows``), ``half_sum`` (the ½·squared
    error's total) and the optimizers' updates (see
    ``nnbackend.optim.on_namespace``).
    """
    consts = {}

    def const(value, dtype):
        c = consts.get((value, dtype))
        if c is None:
            c = consts[value, dtype] = np.asarray(value, dtype=dtype)
        return c

    sigmoid_forms = _sigmoid_forms(consts, const)

    def bias_tanh(xw, b, floor):
        z = xw + b if xw.size < _BIAS_IN_PLACE_MIN else _add_bias(xw, b)
        return z, np.tanh(z)

    def relu(z):
        if z.dtype.kind != "f":
            return np.where(z > 0, z, np.zeros_like(z))  # the kernels' formula
        # The same bits as where(z > 0, z, 0) in a third of the time: fmax
        # returns the number where z is NaN, and adding +0 turns the -0 it may
        # return for z = -0 into +0.
        zero = const(0, z.dtype)
        a = np.fmax(z, zero)
        a += zero
        return a

    def bias_relu(xw, b, floor):
        z = xw + b if xw.size < _BIAS_IN_PLACE_MIN else _add_bias(xw, b)
        return z, relu(z)

    def tanh_backward(a, da):
        if a.dtype.kind != "f" or a.dtype != da.dtype:
            return da * (1 - a * a)
        return da * (const(1, a.dtype) - a * a)

    def mse_sigmoid(a, y, count):
        # The kernels' d = a - y, d·d, d / count (count 1: d itself, the
        # same bits), then sigmoid_backward's da · (a · (1 - a)).
        d = a - y
        if a.dtype.kind != "f" or a.dtype != y.dtype:
            return d * d, (d if count == 1 else d / count) * (a * (1 - a))
        da = d if count == 1 else d / const(count, d.dtype)
        return d * d, da * (a * (const(1, a.dtype) - a))

    def half_sum(sq):
        # 0.5 · Σ sq, as the kernels' ``0.5 * xp.sum(sq)`` (np.add.reduce for
        # floating input). The whole-array sum is a NumPy scalar, whose
        # arithmetic with a Python number is fast: no constant array here.
        if sq.dtype.kind != "f":
            return 0.5 * np.sum(sq)
        return 0.5 * np.add.reduce(sq, axis=None)

    def sgd_update(params, grads, lr):
        return [p - const(lr, p.dtype) * g for p, g in zip(params, grads)]

    def momentum_update(params, grads, velocity, lr, beta, nesterov):
        velocity = [const(beta, v.dtype) * v + g for v, g in zip(velocity, grads)]
        steps = [g + const(beta, v.dtype) * v for g, v in zip(grads, velocity)] if nesterov \
            else velocity
        return [p - const(lr, p.dtype) * s for p, s in zip(params, steps)], velocity

    return {**sigmoid_forms,
            "tanh_backward": tanh_backward, "mse_sigmoid": mse_sigmoid, "half_sum": half_sum,
            "n_correct_binary": _n_correct_binary, "bias_tanh": bias_tanh, "bias_relu": bias_relu,
            "relu": relu, "relu_backward": _relu_backward,
            "softmax": _softmax, "cross_entropy": _cross_entropy,
            "matmul": _dot, "sum_rows": _sum_rows,
            "sgd_update": sgd_update, "momentum_update": momentum_update, **FUSED_UPDATES}


# One namespace module per process, as for CuPy and Dask: the kernels key
# per-namespace caches on it, so a module built per get_backend call would
# keep every model's namespace alive (13 KB a model, measured by
# benchmarks/test_memory.py).
@functools.lru_cache(maxsize=1)
def numpy_namespace():
    """nnbackend's NumPy namespace (one per process)."""
    if not (hasattr(np, "__array_namespace_info__") and hasattr(np, "astype")):
        # NumPy < 2.1 goes through array-api-compat.
        return import_or_refuse("numpy", "array_api_compat.numpy", NumpyBackend.install_hint)
    # NumPy 2.1 and later implement the standard in their own namespace;
    # calling it directly skips array-api-compat's wrappers, which cost
    # more than the arithmetic on a training step's small arrays.
    return make_namespace("nnbackend.numpy", np, "NumPy, with a faster float sum and small matmul.",
                          sum=_numpy_sum, matmul=_numpy_matmul, nnbackend_fused=_numpy_fused())


class NumpyBackend(Backend):
    """NumPy on the CPU."""

    install_hint = "pip install nnbackend"

    @classmethod
    def open(cls, device):
        xp = numpy_namespace()
        if device not in (None, "cpu"):
            raise ValueError(f"backend 'numpy' has only the device 'cpu', got {device!r}")
        return xp, "cpu"

    @classmethod
    def of_array(cls, a):
        return get_numpy() if isinstance(a, np.ndarray) else None

    def loop_context(self):
        return quiet_numpy()

    @property
    def sets_blas_threads(self) -> bool:
        """Where threadpoolctl is installed (see ``backends/blas.py``)."""
        from .blas import available

        return available()

    def blas_threads(self, threads):
        from .blas import limit

        return limit(threads)


@functools.lru_cache(maxsize=1)
def get_numpy() -> NumpyBackend:
    """The numpy backend (one per process)."""
    return NumpyBackend.load("numpy")
