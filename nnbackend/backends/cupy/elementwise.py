"""The CuPy namespace's fast forms of the kernels' hot chains (``xp.nnbackend_fused``).

Each elementwise chain of :mod:`nnbackend.kernels` that a training step runs
on every row (bias + activation, activation gradients, the loss and its
gradient) is one ``cupy.ElementwiseKernel`` here: one launch and one pass
over memory instead of one of each per operation. A big-batch step on a
GPU is made of such passes (about 1.2 ms for an unfused sigmoid over a
(1e6, 64) float32 array against 0.14 ms fused, on an H200).

Each kernel computes the formula of the generic kernel, operation for
operation and in the same order, so its results are those of the unfused
CuPy ops: compiled with ``--fmad=false`` (NVRTC would otherwise contract
``x - y * z`` into one rounding), with the same math functions (``exp``,
``tanh``, ``log1p`` of the data's type) that CuPy's own ufuncs call.

The bodies are written so that they are Python too: statements separated
by ``;``, outputs assigned once, no local declarations, ``T(1)`` for a
constant of the data's type, and the helpers of :data:`PREAMBLE` (``nnb_``
names) where C and NumPy spell a function differently. The tests run each
body with NumPy arrays (``nnb_where`` as ``numpy.where``, ...) against the
generic kernel, which checks the formula text on a machine without a GPU;
:func:`fused_table` takes the kernel maker as an argument for that reason.

The one form here that is not the generic formula is ``sum_rows``, the bias
gradient's sum over rows: CuPy's ``sum(axis=0)`` of a C-contiguous array
misses CuPy's CUB path (22.5 ms for a (1e6, 64) float32 array on an H200)
where a matmul with a row of ones takes 0.15 ms. It sums in another order:
equal to rounding, not bit for bit.
"""

from __future__ import annotations

__all__ = ["KERNELS", "OPTIONS", "PREAMBLE", "RowSums", "fused_table", "sum_rows_by_matmul"]

# The helpers the bodies call, in CUDA C++. Their NumPy twins: numpy.where,
# numpy.maximum (NaN-propagating, like nnb_max) and numpy.abs.
PREAMBLE = r"""
template <typename U> __device__ U nnb_where(bool c, U x, U y) { return c ? x : y; }
template <typename U> __device__ U nnb_max(U x, U y) { return (isnan(x) || x >= y) ? x : y; }
template <typename U> __device__ U nnb_abs(U x) { return fabs(x); }
"""

# No fused multiply-add: each product is rounded before it is added, as in
# the generic kernels' separate operations (and in NumPy).
OPTIONS = ("--fmad=false",)

# name: (inputs, outputs, body), each body the formula of the generic kernel
# whose name it shares (nnbackend.kernels): the same operations, in the same
# order. ``count`` is what a mean divides by (1 for a sum).
KERNELS = {
    # sigmoid_forward: 1 / (1 + exp(-maximum(z, floor)))
    "sigmoid": ("T z, T floor", "T a",
                "a = T(1) / (T(1) + exp(-nnb_max(z, floor)))"),
    # sigmoid_backward: da * (a * (1 - a))
    "sigmoid_backward": ("T a, T da", "T dz",
                         "dz = da * (a * (T(1) - a))"),
    # tanh_backward: da * (1 - a * a)
    "tanh_backward": ("T a, T da", "T dz",
                      "dz = da * (T(1) - a * a)"),
    # relu_forward: where(z > 0, z, 0)
    "relu": ("T z", "T a",
             "a = nnb_where(z > T(0), z, T(0))"),
    # relu_backward: where(z > 0, da, 0)
    "relu_backward": ("T z, T da", "T dz",
                      "dz = nnb_where(z > T(0), da, T(0))"),
    # dense_activation_forward: z = x @ W + b (the matmul stays cuBLAS's), a = f(z)
    "bias_sigmoid": ("T xw, T b, T floor", "T z, T a",
                     "z = xw + b; a = T(1) / (T(1) + exp(-nnb_max(z, floor)))"),
    "bias_tanh": ("T xw, T b", "T z, T a",
                  "z = xw + b; a = tanh(z)"),
    "bias_relu": ("T xw, T b", "T z, T a",
                  "z = xw + b; a = nnb_where(z > T(0), z, T(0))"),
    # loss_and_backward, mse: d = a - y; (d * d) for the sum; d / count, then
    # the output activation's backward (sigmoid's here; others apply theirs)
    "mse": ("T a, T y, T count", "T sq, T da",
            "sq = (a - y) * (a - y); da = (a - y) / count"),
    "mse_sigmoid": ("T a, T y, T count", "T sq, T dz",
                    "sq = (a - y) * (a - y); dz = ((a - y) / count) * (a * (T(1) - a))"),
    # loss_and_backward, bce: bce_with_logits_forward's per-element loss, and (a - y) / count
    "bce": ("T z, T a, T y, T count", "T loss, T dz",
            "loss = nnb_where(z > T(0), z, T(0)) - z * y + log1p(exp(-nnb_abs(z))); "
            "dz = (a - y) / count"),
    # bce and cross-entropy's logits gradient: (a - y) / count
    "logits_grad": ("T a, T y, T count", "T dz",
                    "dz = (a - y) / count"),
}


def sum_rows_by_matmul(xp, a, ones=None, matmul=None):
    """Sum over the rows of ``a`` as ``ones (1, n) @ a``.

    Parameters
    ----------
    xp : namespace
        Any Array API namespace (the tests run it on NumPy's).
    a : array, shape (n, k)
    ones : array, shape (1, n) of ones, optional
        Made here when not given.
    matmul : callable, optional
        The product (default ``xp.matmul``; a captured step's is
        :func:`.cublas_direct.matmul`).

    Returns
    -------
    array, shape (k,)
    """
    n, k = a.shape
    if ones is None:
        ones = xp.ones((1, n), dtype=a.dtype, device=a.device)
    return xp.reshape((matmul or xp.matmul)(ones, a), (k,))


class RowSums:
    """:func:`sum_rows_by_matmul` with the row of ones kept between calls.

    One row per dtype and device, as long as the most rows summed yet
    (4 bytes a row in float32, against the 4·k bytes a row of ``a`` takes);
    shorter sums use its front. Making it anew would add a launch to
    every sum. ``keep=True`` (the captured steps' namespace) also keeps each
    row a longer one replaced: a CUDA graph captured earlier reads it still.
    """

    def __init__(self, xp, matmul=None, keep=False):
        self.xp, self.matmul = xp, matmul
        self._ones = {}
        self._replaced = [] if keep else None

    def __call__(self, a):
        n = a.shape[0]
        device = a.device
        key = (a.dtype, getattr(device, "id", device))
        ones = self._ones.get(key)
        if ones is None or ones.shape[1] < n:
            if ones is not None and self._replaced is not None:
                self._replaced.append(ones)
            ones = self._ones[key] = self.xp.ones((1, n), dtype=a.dtype, device=device)
        return sum_rows_by_matmul(self.xp, a, ones if ones.shape[1] == n else ones[:, :n],
                                  self.matmul)


def fused_table(make_kernel, xp):
    """The ``nnbackend_fused`` table: the kernels' calls onto the kernels of :data:`KERNELS`.

    Parameters
    ----------
    make_kernel : callable
        ``make_kernel(name, inputs, outputs, body)`` -> a function of the
        inputs returning the output (a tuple for two): a
        ``cupy.ElementwiseKernel`` on the GPU, a NumPy evaluation of the body
        in the tests.
    xp : namespace
        For ``sum_rows``'s matmul.

    Returns
    -------
    dict
        By name, functions taking what :mod:`nnbackend.kernels` passes: Python
        numbers (a floor, a count) are made scalars of the data's dtype here,
        since a kernel's ``T`` must be one type.
    """
    k = {name: make_kernel(name, *spec) for name, spec in KERNELS.items()}

    def scalar(x, value):
        return x.dtype.type(value)

    def bias(kernel):
        return lambda xw, b, floor: kernel(xw, b)

    return {
        "sigmoid": lambda z, floor: k["sigmoid"](z, scalar(z, floor)),
        "sigmoid_backward": k["sigmoid_backward"],
        "tanh_backward": k["tanh_backward"],
        "relu": k["relu"],
        "relu_backward": k["relu_backward"],
        "bias_sigmoid": lambda xw, b, floor: k["bias_sigmoid"](xw, b, scalar(xw, floor)),
        "bias_tanh": bias(k["bias_tanh"]),
        "bias_relu": bias(k["bias_relu"]),
        "mse": lambda a, y, count: k["mse"](a, y, scalar(a, count)),
        "mse_sigmoid": lambda a, y, count: k["mse_sigmoid"](a, y, scalar(a, count)),
        "bce": lambda z, a, y, count: k["bce"](z, a, y, scalar(a, count)),
        "logits_grad": lambda a, y, count: k["logits_grad"](a, y, scalar(a, count)),
        "sum_rows": RowSums(xp),
    }
