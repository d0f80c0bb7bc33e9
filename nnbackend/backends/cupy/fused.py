"""CuPy: a whole epoch of small-batch descent in one kernel launch.

Eager GPU descent on a small network is all launch overhead: a step is
about twenty kernels (matmuls, activations, loss, optimizer) of 5-10 µs of
launch each around a few thousand flops, so an eager GPU loses to the CPU.
This executor writes the reference step (forward, loss, backward, optimizer
update) as one CUDA kernel that a single thread block runs for every step
of the epoch: the network's parameters live in shared memory, each batch is
gathered from the device arrays through the epoch's permutation, and
nothing returns to the host until the epoch's loss and hit count.

The source is generated for one network shape, dtype, loss and optimizer,
and compiled once by NVRTC (``cupy.RawModule``); :mod:`.source`
generates it, one function per phase. It is written in phases
separated by ``__syncthreads()``, each phase a loop ``for (t = threadIdx.x;
t < work; t += blockDim.x)`` whose iterations write disjoint elements, so the
same source compiled as C++ for the host, with one "thread", runs the same
arithmetic serially. The tests run that host build against the reference
loop on the CPU; the GPU check runs the CUDA build against it on a GPU.

It takes the built-in optimizers (sgd, momentum, adam), batches of at most
:data:`MAX_BATCH` rows, and networks whose parameters and one batch's
activations fit in a block's shared memory (48 KiB anywhere, up to 227 KiB
where the GPU lets a kernel opt in); :func:`unsupported` says why anything
else runs through the reference loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import subprocess
import tempfile

import numpy as np

from .source import kernel_source

__all__ = ["CupyFused", "MAX_BATCH", "SHARED_BYTES", "shared_limit", "unsupported", "Layout", "kernel_source", "make_epoch",
           "cuda_launcher", "host_launcher"]

# Beyond a few dozen rows a step has enough parallel work for cuBLAS and the
# eager loop, and one thread block would idle most of the GPU.
MAX_BATCH = 64
# The shared memory every CUDA GPU since Kepler gives a block; more (up to
# 227 KiB on Hopper) needs the kernel to opt in, which the launcher does
# where the device allows it.
SHARED_BYTES = 48 * 1024
OPTIMIZERS = ("sgd", "momentum", "adam")
_ITEM = {"float32": 4, "float64": 8}


class Layout:
    """Where everything lives in the kernel's shared memory, in elements.

    Parameters
    ----------
    sizes : sequence of int
        Layer sizes, inputs first: ``[n_features, hidden..., n_outputs]``.
    batch_size : int
        The largest batch the kernel steps on.
    """

    def __init__(self, sizes, batch_size):
        self.sizes = [int(s) for s in sizes]
        self.batch_size = B = int(batch_size)
        self.n_layers = len(self.sizes) - 1
        # Parameters flat as [W0, b0, W1, b1, ...], W row-major (fan_in, fan_out).
        self.w_offsets, self.shapes = [], []
        offset = 0
        for fan_in, fan_out in zip(self.sizes, self.sizes[1:]):
            self.w_offsets.append(offset)
            self.shapes += [(fan_in, fan_out), (fan_out,)]
            offset += fan_in * fan_out + fan_out
        self.n_params = offset
        # acts[l]: layer l's input for the batch, (B, sizes[l]); acts[0] is the
        # gathered X rows.
        self.acts = []
        for width in self.sizes[:-1]:
            self.acts.append(offset)
            offset += B * width
        k = self.sizes[-1]
        self.out_a, self.out_z = offset, offset + B * k
        offset += 2 * B * k
        # Two (B, width) gradient buffers: dL/dz of a layer's outputs and of
        # the hidden layer below it, so never the input width.
        widest = max(self.sizes[1:])
        self.grads = (offset, offset + B * widest)
        offset += 2 * B * widest
        self.row_loss, self.row_hits = offset, offset + B
        self.n_shared = offset + 2 * B

    def shared_bytes(self, dtype_name):
        return self.n_shared * _ITEM[dtype_name]

    def threads(self):
        """Threads per block: enough for the widest phase, in whole warps, at most 256."""
        B, s = self.batch_size, self.sizes
        work = max([B * w for w in s] + [a * b + b for a, b in zip(s, s[1:])])
        return int(min(256, max(32, -(-work // 32) * 32)))


def unsupported(spec, plan, opt, sizes, dtype_name, shared_limit=SHARED_BYTES):
    """Why the fused kernel cannot run this fit (a string), or None if it can.

    ``shared_limit`` is the shared memory one block may use on the device
    (bytes; the opt-in maximum where the device has one).
    """
    if plan.batch_size >= plan.n_samples:
        return "batch mode is one step per epoch; there are no launches to save"
    if plan.batch_size > MAX_BATCH:
        return f"batches of {plan.batch_size} rows exceed the fused kernel's {MAX_BATCH}"
    if getattr(opt, "name", None) not in OPTIMIZERS:
        return "a custom optimizer (only the built-in sgd, momentum and adam are fused)"
    if dtype_name not in _ITEM:
        return f"dtype {dtype_name!r}"
    if sizes is None:
        return "the layer sizes are unknown"
    need = Layout(sizes, plan.batch_size).shared_bytes(dtype_name)
    if need > shared_limit:
        return (f"the network and a batch need {need} bytes of shared memory, "
                f"more than the {shared_limit} a block has on this device")
    return None


def shared_limit(device):
    """The most shared memory a block may opt in to on a CuPy ``device``, in bytes."""
    try:
        return int(device.attributes["MaxSharedMemoryPerBlockOptin"])
    except (KeyError, AttributeError, TypeError):
        return SHARED_BYTES


def _hyper(opt):
    """``(lr, h1, h2, h3)`` as the kernel takes them."""
    h = opt.hyper
    if opt.name == "sgd":
        return h["lr"], 0.0, 0.0, 0.0
    if opt.name == "momentum":
        return h["lr"], h["beta"], float(h["nesterov"]), 0.0
    return h["lr"], h["b1"], h["b2"], h["eps"]


def cuda_launcher(source, layout, dtype_name):
    """``launch(*args)`` running the kernel on the current CUDA device (compiled once)."""
    import cupy

    kernel = cupy.RawKernel(source, "nnb_fused_epoch", options=("--std=c++14",))
    threads, shared = layout.threads(), layout.shared_bytes(dtype_name)
    if shared > SHARED_BYTES:
        kernel.max_dynamic_shared_size_bytes = shared

    def launch(X, Y, order, n, params, s1, s2, count0, lr, h1, h2, h3, out):
        kernel((1,), (threads,), (X, Y, order, np.int64(n), params, s1, s2, np.int64(count0),
                                  np.float64(lr), np.float64(h1), np.float64(h2), np.float64(h3),
                                  out), shared_mem=shared)

    return launch


# Per user: a library another user left in a shared /tmp is not loaded.
_HOST_CACHE = os.path.join(tempfile.gettempdir(),
                           f"nnbackend-fused-{getattr(os, 'getuid', lambda: 'user')()}")


def host_launcher(source, layout, dtype_name, compiler="c++"):
    """``launch(*args)`` running the same source compiled for the host, one thread.

    For the tests: it checks the kernel's arithmetic against the reference
    loop on a machine without a GPU. The arrays are NumPy arrays.
    """
    os.makedirs(_HOST_CACHE, exist_ok=True)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    library = os.path.join(_HOST_CACHE, f"fused_{digest}.so")
    if not os.path.exists(library):
        src = os.path.join(_HOST_CACHE, f"fused_{digest}.cpp")
        with open(src, "w") as fh:
            fh.write(source)
        partial = f"{library}.{os.getpid()}"
        subprocess.run([compiler, "-O1", "-std=c++14", "-shared", "-fPIC", "-o", partial, src],
                       check=True, capture_output=True, text=True)
        os.replace(partial, library)
    fn = ctypes.CDLL(library).nnb_fused_epoch
    pointer, i64, f64 = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_double
    fn.argtypes = [pointer, pointer, pointer, i64, pointer, pointer, pointer, i64,
                   f64, f64, f64, f64, pointer]
    fn.restype = None

    def launch(X, Y, order, n, params, s1, s2, count0, lr, h1, h2, h3, out):
        for a in (X, Y, order, params, s1, s2, out):
            assert a.flags.c_contiguous
        fn(X.ctypes.data, Y.ctypes.data, order.ctypes.data, n, params.ctypes.data,
           s1.ctypes.data, s2.ctypes.data, count0, lr, h1, h2, h3, out.ctypes.data)

    return launch


def make_epoch(am, spec, opt, plan, X, Y, multiclass, sizes, dtype_name, launcher, device=None):
    """``epoch(params, state, order) -> (params, state, loss_sum, correct)`` for ``plan``.

    Parameters
    ----------
    am : module
        The array module the arrays belong to: ``cupy`` (with
        :func:`cuda_launcher`) or ``numpy`` (with :func:`host_launcher`).
    X : array, shape (n_samples, sizes[0]); Y : array, shape (n_samples, sizes[-1])
    sizes : list of int
        The network's layer sizes.
    launcher : callable
        ``launcher(source, layout, dtype_name) -> launch``.
    device : context manager, optional
        Entered around each epoch (the CuPy device the arrays live on).
    """
    layout = Layout(sizes, plan.batch_size)
    source = kernel_source(layout, spec, opt.name, dtype_name, multiclass)
    launch = launcher(source, layout, dtype_name)
    X, Y = am.ascontiguousarray(X), am.ascontiguousarray(Y)
    n = plan.n_samples
    dtype = X.dtype
    lr, h1, h2, h3 = _hyper(opt)
    in_order = am.arange(n, dtype=am.int64)
    sizes_flat = [int(np.prod(shape)) for shape in layout.shapes]
    n_steps = -(-n // plan.batch_size)

    def flat(arrays):
        # A fresh buffer: the kernel updates it in place, the caller's arrays stay.
        return am.concatenate([am.reshape(a, (-1,)) for a in arrays]).astype(dtype, copy=False)

    def unflat(buffer):
        out, offset = [], 0
        for shape, size in zip(layout.shapes, sizes_flat):
            out.append(buffer[offset:offset + size].reshape(shape))
            offset += size
        return out

    def epoch(params, state, order):
        with device if device is not None else contextlib.nullcontext():
            return run(params, state, order)

    def run(params, state, order):
        order = in_order if order is None else am.asarray(order, dtype=am.int64)
        p = flat(params)
        dummy = am.zeros(1, dtype=dtype)
        if opt.name == "momentum":
            s1, s2, count0 = flat(state.velocity), dummy, 0
        elif opt.name == "adam":
            s1, s2, count0 = flat(state.mu), flat(state.nu), int(state.count)
        else:
            s1, s2, count0 = dummy, dummy, 0
        out = am.zeros(2, dtype=dtype)
        launch(X, Y, order, n, p, s1, s2, count0, lr, h1, h2, h3, out)
        # The optimizer's own state type, rebuilt field by field (optim.py).
        if opt.name == "momentum":
            state = state._replace(velocity=unflat(s1))
        elif opt.name == "adam":
            state = state._replace(count=count0 + n_steps, mu=unflat(s1), nu=unflat(s2))
        return unflat(p), state, out[0], (None if multiclass is None else out[1])

    return epoch


class CupyFused:
    """The ``"cupy-fused"`` executor (see :mod:`nnbackend.engine` for the contract)."""

    name = "cupy-fused"

    def supports(self, task):
        """Why the fused kernel cannot run ``task`` (a string), or None if it can."""
        return unsupported(task.spec, task.plan, task.optimizer, task.layer_sizes,
                           str(task.X.dtype), shared_limit(task.backend.device))

    def make_epoch(self, task):
        import cupy

        with task.backend.device:
            return make_epoch(cupy, task.spec, task.optimizer, task.plan, task.X, task.Y,
                              task.multiclass, task.layer_sizes, str(task.X.dtype), cuda_launcher,
                              task.backend.device)
