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
and compiled once by NVRTC (``cupy.RawModule``). It is written in phases
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
import math
import os
import subprocess
import tempfile

import numpy as np

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


def _literal(x):
    return repr(float(x))


def kernel_source(layout, spec, opt_name, dtype_name, multiclass):
    """CUDA C++ source of ``nnb_fused_epoch`` for one network (also valid host C++).

    Kernel arguments: ``X`` (n, sizes[0]) and ``Y`` (n, sizes[-1]) row-major,
    ``order`` (n,) int64 (the epoch's row order), ``n``, ``params`` (the flat
    parameters, updated in place), ``s1`` and ``s2`` (the flat optimizer
    state: momentum's velocity, or Adam's first and second moments),
    ``count0`` (Adam's steps before this epoch), ``lr`` and three optimizer
    hyperparameters, and ``out`` (2,): the epoch's summed loss and hit count.
    """
    L, s, B = layout.n_layers, layout.sizes, layout.batch_size
    T = {"float32": "float", "float64": "double"}[dtype_name]
    f = "f" if dtype_name == "float32" else ""
    EXP, LOG, LOG1P, TANH, SQRT, FABS, FMAX = (
        name + f for name in ("exp", "log", "log1p", "tanh", "sqrt", "fabs", "fmax"))
    # The floor the reference sigmoid clamps z to (kernels.sigmoid_forward).
    floor = 1 - math.log(float(np.finfo(dtype_name).max))

    def act(name, z):
        return {
            "sigmoid": f"((T)1 / ((T)1 + {EXP}(-{FMAX}({z}, (T){_literal(floor)}))))",
            "tanh": f"{TANH}({z})",
            "relu": f"({z} > (T)0 ? {z} : (T)0)",
            "identity": z,
        }[name]

    def act_backward(name, a, da):
        # From the activation alone, as the reference kernels do (relu: a > 0 iff z > 0).
        return {
            "sigmoid": f"{da} * ({a} * ((T)1 - {a}))",
            "tanh": f"{da} * ((T)1 - {a} * {a})",
            "relu": f"({a} > (T)0 ? {da} : (T)0)",
            "identity": da,
        }[name]

    code = []
    emit = code.append
    # Forward: layer l's outputs, one (row, unit) pair per iteration.
    for l in range(L):
        fan_in, fan_out = s[l], s[l + 1]
        w, b = layout.w_offsets[l], layout.w_offsets[l] + fan_in * fan_out
        last = l == L - 1
        dst = layout.out_z if last else layout.acts[l + 1]
        value = "z" if last else act(spec.hidden_activation, "z")
        emit(f"""
        for (int t = tid; t < nb * {fan_out}; t += nt) {{
            const int r = t / {fan_out}, j = t - r * {fan_out};
            const T* x = sh + {layout.acts[l]} + r * {fan_in};
            T acc = (T)0;
            for (int i = 0; i < {fan_in}; ++i) acc += x[i] * sh[{w} + i * {fan_out} + j];
            const T z = acc + sh[{b} + j];
            sh[{dst} + t] = {value};
        }}
        __syncthreads();""")

    # Output layer: one row per iteration: activation, loss, dL/dz, hits.
    k = s[-1]
    mean = spec.reduction == "mean"
    scale = "/ (T)nb" if mean else ""
    out_act = spec.output_activation
    row = [f"""
        for (int r = tid; r < nb; r += nt) {{
            const T* z = sh + {layout.out_z} + r * {k};
            T* a = sh + {layout.out_a} + r * {k};
            T* dz = sh + {layout.grads[0]} + r * {k};
            const T* y = Y + order[start + r] * {k};
            T loss = (T)0;"""]
    if out_act == "softmax":
        row.append(f"""
            T m = z[0];
            for (int j = 1; j < {k}; ++j) m = {FMAX}(m, z[j]);
            T total = (T)0;
            for (int j = 0; j < {k}; ++j) {{ a[j] = {EXP}(z[j] - m); total += a[j]; }}
            for (int j = 0; j < {k}; ++j) a[j] = a[j] / total;""")
    else:
        row.append(f"""
            for (int j = 0; j < {k}; ++j) {{ const T zj = z[j]; a[j] = {act(out_act, "zj")}; }}""")
    if spec.loss == "mse":
        row.append(f"""
            for (int j = 0; j < {k}; ++j) {{
                const T d = a[j] - y[j];
                loss += d * d;
                dz[j] = d {scale};
            }}""")
        if out_act == "softmax":
            row.append(f"""
            T dot = (T)0;
            for (int j = 0; j < {k}; ++j) dot += dz[j] * a[j];
            for (int j = 0; j < {k}; ++j) dz[j] = a[j] * (dz[j] - dot);""")
        elif out_act == "sigmoid":
            row.append(f"""
            for (int j = 0; j < {k}; ++j) dz[j] = {act_backward("sigmoid", "a[j]", "dz[j]")};""")
    elif spec.loss == "bce":
        row.append(f"""
            for (int j = 0; j < {k}; ++j) {{
                const T zj = z[j];
                loss += (zj > (T)0 ? zj : (T)0) - zj * y[j] + {LOG1P}({EXP}(-{FABS}(zj)));
                dz[j] = (a[j] - y[j]) {scale};
            }}""")
    else:  # cross_entropy with softmax
        row.append(f"""
            const T log_norm = {LOG}(total);
            for (int j = 0; j < {k}; ++j) {{
                loss += y[j] * ((m - z[j]) + log_norm);
                dz[j] = (a[j] - y[j]) {scale};
            }}""")
    if multiclass is True:
        row.append(f"""
            int ia = 0, iy = 0;
            for (int j = 1; j < {k}; ++j) {{ if (a[j] > a[ia]) ia = j; if (y[j] > y[iy]) iy = j; }}
            sh[{layout.row_hits} + r] = (T)(ia == iy);""")
    elif multiclass is False:
        row.append(f"""
            T hits = (T)0;
            for (int j = 0; j < {k}; ++j) hits += (T)((a[j] > (T)0.5) == (y[j] > (T)0.5));
            sh[{layout.row_hits} + r] = hits;""")
    row.append(f"""
            sh[{layout.row_loss} + r] = loss;
        }}
        __syncthreads();
        if (tid == 0) {{
            T batch_loss = (T)0, batch_hits = (T)0;
            for (int r = 0; r < nb; ++r) {{
                batch_loss += sh[{layout.row_loss} + r];
                batch_hits += sh[{layout.row_hits} + r];
            }}
            loss_sum += {"(T)0.5 * batch_loss" if spec.loss == "mse" else "batch_loss"};
            hit_sum += batch_hits;
        }}""")
    code += row

    update = {
        "sgd": "sh[p] = sh[p] - lr_t * g;",
        "momentum": """const T v = h1_t * s1[p] + g;
            s1[p] = v;
            sh[p] = sh[p] - lr_t * (nesterov ? g + h1_t * v : v);""",
        "adam": """const T m1 = h1_t * s1[p] + one_minus_h1 * g;
            const T m2 = h2_t * s2[p] + one_minus_h2 * (g * g);
            s1[p] = m1;
            s2[p] = m2;
            sh[p] = sh[p] - adam_step * m1 / ({SQRT}(m2) + adam_eps);""".replace("{SQRT}", SQRT),
    }[opt_name]

    # Backward: gradient of the layer's input first (it needs W before the
    # update), then the update of W and b from the layer's input and dz.
    for l in reversed(range(L)):
        fan_in, fan_out = s[l], s[l + 1]
        w = layout.w_offsets[l]
        dz, dnext = layout.grads[(L - 1 - l) % 2], layout.grads[(L - l) % 2]
        x = layout.acts[l]
        if l > 0:
            emit(f"""
        for (int t = tid; t < nb * {fan_in}; t += nt) {{
            const int r = t / {fan_in}, i = t - r * {fan_in};
            const T* g = sh + {dz} + r * {fan_out};
            T acc = (T)0;
            for (int j = 0; j < {fan_out}; ++j) acc += g[j] * sh[{w} + i * {fan_out} + j];
            const T a = sh[{x} + t];
            (void)a;  // the identity's gradient does not read it
            sh[{dnext} + t] = {act_backward(spec.hidden_activation, "a", "acc")};
        }}
        __syncthreads();""")
        emit(f"""
        for (int t = tid; t < {fan_in * fan_out + fan_out}; t += nt) {{
            T g = (T)0;
            if (t < {fan_in * fan_out}) {{
                const int i = t / {fan_out}, j = t - i * {fan_out};
                for (int r = 0; r < nb; ++r) g += sh[{x} + r * {fan_in} + i] * sh[{dz} + r * {fan_out} + j];
            }} else {{
                const int j = t - {fan_in * fan_out};
                for (int r = 0; r < nb; ++r) g += sh[{dz} + r * {fan_out} + j];
            }}
            const int p = {w} + t;
            {update}
        }}
        __syncthreads();""")

    n_in = s[0]
    body = "\n".join(code)
    return f"""// Generated by nnbackend.executors.cupy_fused for sizes {s}, batch {B},
// {spec.hidden_activation}/{spec.output_activation}/{spec.loss}/{spec.reduction}, {opt_name}, {dtype_name}.
#ifndef __CUDACC__
#include <math.h>
#define __global__
#define __syncthreads()
struct nnb_dim {{ unsigned x; }};
static const nnb_dim threadIdx = {{0}}, blockDim = {{1}};
#endif

typedef {T} T;

extern "C" __global__ void nnb_fused_epoch(
    const T* __restrict__ X, const T* __restrict__ Y, const long long* __restrict__ order,
    const long long n, T* __restrict__ params, T* __restrict__ s1, T* __restrict__ s2,
    const long long count0, const double lr, const double h1, const double h2, const double h3,
    T* __restrict__ out)
{{
#ifdef __CUDACC__
    extern __shared__ __align__(16) unsigned char nnb_shared[];
#else
    alignas(16) static unsigned char nnb_shared[{layout.shared_bytes(dtype_name)}];
#endif
    T* sh = (T*)nnb_shared;
    const int tid = threadIdx.x, nt = blockDim.x;
    // Python floats meet arrays as the array's dtype in the reference.
    const T lr_t = (T)lr, h1_t = (T)h1, h2_t = (T)h2;
    const T one_minus_h1 = (T)(1.0 - h1), one_minus_h2 = (T)(1.0 - h2);
    const bool nesterov = h2 != 0.0;
    (void)lr_t; (void)h1_t; (void)h2_t; (void)one_minus_h1; (void)one_minus_h2; (void)nesterov; (void)h3;
    for (int t = tid; t < {layout.n_params}; t += nt) sh[t] = params[t];
    for (int t = tid; t < 2 * {B}; t += nt) sh[{layout.row_loss} + t] = (T)0;
    __syncthreads();
    T loss_sum = (T)0, hit_sum = (T)0;
    long long step = 0;
    for (long long start = 0; start < n; start += {B}, ++step) {{
        const long long left = n - start;
        const int nb = left < {B} ? (int)left : {B};
        // Adam's bias corrections in double, folded into the step as the reference does.
        const double root = sqrt(1.0 - pow(h2, (double)(count0 + step + 1)));
        const T adam_step = (T)(lr * root / (1.0 - pow(h1, (double)(count0 + step + 1))));
        const T adam_eps = (T)(h3 * root);
        (void)adam_step; (void)adam_eps;
        for (int t = tid; t < nb * {n_in}; t += nt) {{
            const int r = t / {n_in}, i = t - r * {n_in};
            sh[{layout.acts[0]} + t] = X[order[start + r] * {n_in} + i];
        }}
        __syncthreads();
{body}
    }}
    for (int t = tid; t < {layout.n_params}; t += nt) params[t] = sh[t];
    if (tid == 0) {{ out[0] = loss_sum; out[1] = hit_sum; }}
}}
"""


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
