"""The CUDA C++ source of the fused CuPy epoch kernel, generated in parts.

:func:`kernel_source` (through :func:`.fused.kernel_source`) joins the parts:
the forward phase, the output phase (activation, loss, dL/dz and hits), the
backward phase with the optimizer update, and the kernel around them
(host shims, signature, setup and the loop over the epoch's batches).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

__all__ = ["kernel_source", "output_phase", "backward_phase", "update_statement", "batch_loop"]

# Iterations ahead the global kernel's 16-byte update asks L1 for its parameters
# (4 x 16 KB for 1024 threads: a fraction of the L1 that its small shared
# memory leaves).
PREFETCH_ITERATIONS = 4


def _literal(x):
    return repr(float(x))


def _math_names(dtype_name):
    """The C type ``T`` and the math functions (``EXP``, ``LOG``, ...) for ``dtype_name``."""
    f = "f" if dtype_name == "float32" else ""
    names = {name.upper(): name + f for name in ("exp", "log", "log1p", "tanh", "sqrt", "fabs", "fmax")}
    # The floor the reference sigmoid clamps z to (kernels.sigmoid_forward).
    floor = 1 - math.log(float(np.finfo(dtype_name).max))
    return SimpleNamespace(T={"float32": "float", "float64": "double"}[dtype_name],
                           floor=floor, **names)


def _act(fn, name, z):
    """The activation ``name`` of the expression ``z``."""
    return {
        "sigmoid": f"((T)1 / ((T)1 + {fn.EXP}(-{fn.FMAX}({z}, (T){_literal(fn.floor)}))))",
        "tanh": f"{fn.TANH}({z})",
        "relu": f"({z} > (T)0 ? {z} : (T)0)",
        "identity": z,
    }[name]


# ``da`` through each activation, from its output ``a`` alone, as the
# reference kernels do (relu: a > 0 iff z > 0).
_BACKWARD = {
    "sigmoid": "{da} * ({a} * ((T)1 - {a}))",
    "tanh": "{da} * ((T)1 - {a} * {a})",
    "relu": "({a} > (T)0 ? {da} : (T)0)",
    "identity": "{da}",
}


def _act_backward(name, a, da):
    """``da`` through the activation ``name`` whose output is ``a``."""
    return _BACKWARD[name].format(a=a, da=da)


def forward_phase(layout, spec, fn):
    """Forward: layer l's outputs, one (row, unit) pair per iteration; one part per layer
    (the shared-memory kernel; :mod:`.tiled` has the global-memory one)."""
    L, s = layout.n_layers, layout.sizes
    code = []
    for l in range(L):
        fan_in, fan_out = s[l], s[l + 1]
        w, b = layout.w_offsets[l], layout.w_offsets[l] + fan_in * fan_out
        last = l == L - 1
        dst = layout.out_z if last else layout.acts[l + 1]
        value = "z" if last else _act(fn, spec.hidden_activation, "z")
        if layout.forward_blocks(l):
            code.append(_forward_blocks(layout, l, dst, value))
            continue
        code.append(f"""
        for (int t = tid; t < nb * {fan_out}; t += nt) {{
            const int r = t / {fan_out}, j = t - r * {fan_out};
            const T* x = sh + {layout.acts[l]} + r * {fan_in};
            T acc = (T)0;
            for (int i = 0; i < {fan_in}; ++i) acc += x[i] * sh[{w} + i * {fan_out} + j];
            const T z = acc + sh[{b} + j];
            sh[{dst} + t] = {value};
        }}
        __syncthreads();""")
    return code


def _forward_blocks(layout, l, dst, value):
    """Layer l's outputs for a mini-batch, 4 rows x 4 units an iteration.

    One (row, unit) an iteration reads an input and a weight from shared memory
    for each multiply-add; here 8 reads give 16 (rows r0..r0+3, units c, c + G,
    c + 2G, c + 3G with G = fan_out / 4: a warp's consecutive iterations read
    consecutive weights, on distinct banks, and share the rows' inputs). Each
    sum runs over the inputs in order, as the loop it replaces does: the same
    numbers. Rows past the batch's ``nb`` are summed but not stored.
    """
    fan_in, fan_out = layout.sizes[l], layout.sizes[l + 1]
    w, b = layout.w_offsets[l], layout.w_offsets[l] + fan_in * fan_out
    G = -(-fan_out // 4)
    blocks = -(-layout.batch_size // 4) * G
    return f"""
        for (int t = tid; t < {blocks}; t += nt) {{
            const int r0 = (t / {G}) * 4, c = t - (t / {G}) * {G};
            if (r0 >= nb) continue;
            T acc[16];
            #pragma unroll
            for (int q = 0; q < 16; ++q) acc[q] = (T)0;
            for (int i = 0; i < {fan_in}; ++i) {{
                T av[4], wv[4];
                #pragma unroll
                for (int a = 0; a < 4; ++a) av[a] = sh[{layout.acts[l]} + (r0 + a) * {fan_in} + i];
                #pragma unroll
                for (int q = 0; q < 4; ++q) {{
                    const int j = c + q * {G};
                    wv[q] = j < {fan_out} ? sh[{w} + i * {fan_out} + j] : (T)0;
                }}
                #pragma unroll
                for (int a = 0; a < 4; ++a) {{
                    #pragma unroll
                    for (int q = 0; q < 4; ++q) acc[a * 4 + q] += av[a] * wv[q];
                }}
            }}
            #pragma unroll
            for (int a = 0; a < 4; ++a) {{
                #pragma unroll
                for (int q = 0; q < 4; ++q) {{
                    const int r = r0 + a, j = c + q * {G};
                    if (r < nb && j < {fan_out}) {{
                        const T z = acc[a * 4 + q] + sh[{b} + j];
                        sh[{dst} + r * {fan_out} + j] = {value};
                    }}
                }}
            }}
        }}
        __syncthreads();"""


def _output_activation(k, out_act, fn):
    """The output row's activation ``a`` from ``z`` (softmax keeps ``m`` and ``total``)."""
    if out_act == "softmax":
        return [f"""
            T m = z[0];
            for (int j = 1; j < {k}; ++j) m = {fn.FMAX}(m, z[j]);
            T total = (T)0;
            for (int j = 0; j < {k}; ++j) {{ a[j] = {fn.EXP}(z[j] - m); total += a[j]; }}
            for (int j = 0; j < {k}; ++j) a[j] = a[j] / total;"""]
    return [f"""
            for (int j = 0; j < {k}; ++j) {{ const T zj = z[j]; a[j] = {_act(fn, out_act, "zj")}; }}"""]


def _loss_terms(k, spec, fn):
    """The row's ``loss`` and its gradient ``dz`` with respect to the output's z."""
    scale = "/ (T)nb" if spec.reduction == "mean" else ""
    out_act = spec.output_activation
    if spec.loss == "mse":
        code = [f"""
            for (int j = 0; j < {k}; ++j) {{
                const T d = a[j] - y[j];
                loss += d * d;
                dz[j] = d {scale};
            }}"""]
        if out_act == "softmax":
            code.append(f"""
            T dot = (T)0;
            for (int j = 0; j < {k}; ++j) dot += dz[j] * a[j];
            for (int j = 0; j < {k}; ++j) dz[j] = a[j] * (dz[j] - dot);""")
        elif out_act == "sigmoid":
            code.append(f"""
            for (int j = 0; j < {k}; ++j) dz[j] = {_act_backward("sigmoid", "a[j]", "dz[j]")};""")
        return code
    if spec.loss == "bce":
        return [f"""
            for (int j = 0; j < {k}; ++j) {{
                const T zj = z[j];
                loss += (zj > (T)0 ? zj : (T)0) - zj * y[j] + {fn.LOG1P}({fn.EXP}(-{fn.FABS}(zj)));
                dz[j] = (a[j] - y[j]) {scale};
            }}"""]
    # cross_entropy with softmax
    return [f"""
            const T log_norm = {fn.LOG}(total);
            for (int j = 0; j < {k}; ++j) {{
                loss += y[j] * ((m - z[j]) + log_norm);
                dz[j] = (a[j] - y[j]) {scale};
            }}"""]


def _hits(k, layout, multiclass):
    """The row's hit count: argmax match (multiclass), per-output 0.5 threshold, or none."""
    A = work_name(layout)
    if multiclass is True:
        return [f"""
            int ia = 0, iy = 0;
            for (int j = 1; j < {k}; ++j) {{ if (a[j] > a[ia]) ia = j; if (y[j] > y[iy]) iy = j; }}
            {A}[{layout.row_hits} + r] = (T)(ia == iy);"""]
    if multiclass is False:
        return [f"""
            T hits = (T)0;
            for (int j = 0; j < {k}; ++j) hits += (T)((a[j] > (T)0.5) == (y[j] > (T)0.5));
            {A}[{layout.row_hits} + r] = hits;"""]
    return []


def output_phase(layout, spec, fn, multiclass):
    """Output layer: one row per iteration (activation, loss, dL/dz, hits), then the batch's sums."""
    k, A = layout.sizes[-1], work_name(layout)
    if layout.prefetches_targets():
        # The row's targets came during the last step; the next step's are loaded
        # now (their indices came then too), and this step does not wait on them.
        B = layout.batch_size
        y = f"""const int q = NNB_YROWS == 1 ? 0 : r;
            T y[{k}];
            for (int j = 0; j < {k}; ++j) y[j] = gy[q][j];
            {{
                const int nb1 = {_rows_at(f"start + {B}", B)};
                if (r < nb1) {{ for (int j = 0; j < {k}; ++j) gy[q][j] = Y[yi[q] * {k} + j]; }}
                const long long start2 = start + {2 * B};
                if (r < {_rows_at("start2", B)}) yi[q] = order[start2 + r];
            }}"""
    else:
        y = f"const T* y = Y + order[start + r] * {k};"
    code = [f"""
        for (int r = tid; r < nb; r += nt) {{
            const T* z = {A} + {layout.out_z} + r * {k};
            T* a = {A} + {layout.out_a} + r * {k};
            T* dz = {A} + {layout.grads[0]} + r * {k};
            {y}
            T loss = (T)0;"""]
    code += _output_activation(k, spec.output_activation, fn)
    code += _loss_terms(k, spec, fn)
    code += _hits(k, layout, multiclass)
    code.append(f"""
            {A}[{layout.row_loss} + r] = loss;
        }}
        __syncthreads();
        if (tid == 0) {{
            T batch_loss = (T)0, batch_hits = (T)0;
            for (int r = 0; r < nb; ++r) {{
                batch_loss += {A}[{layout.row_loss} + r];
                batch_hits += {A}[{layout.row_hits} + r];
            }}
            loss_sum += {"(T)0.5 * batch_loss" if spec.loss == "mse" else "batch_loss"};
            hit_sum += batch_hits;
        }}""")
    return code


def work_name(layout):
    """The C name of the batch's work region: ``sh`` (all in shared memory) or ``wk``."""
    return "sh" if layout.params_in == "shared" else "wk"


def param_name(layout):
    """The C name of the parameters: ``sh`` (copied into shared memory) or ``params``."""
    return "sh" if layout.params_in == "shared" else "params"


def update_statement(opt, fn, P="sh", read=None):
    """The optimizer's update of parameter ``P[p]`` from its gradient ``g``.

    ``opt`` is the optimizer's name or a :class:`.kernel_update.KernelUpdate`,
    whose L2 penalty is added to ``g`` first (``g + l2·p`` where its condition
    on ``p`` holds) and whose factor ``h3`` multiplies the gradient or the
    step (``p + h3·(q - p)``), in the reference's order. ``read`` is where the
    parameter's current value is read (default ``P[p]``).
    """
    name = getattr(opt, "name", opt)
    scaled, on = getattr(opt, "scaled", False), getattr(opt, "on", None)
    eps = "adam_eps"
    if scaled and name == "adam":
        # h3 carries the factor: Adam's epsilon is a constant of the source.
        eps = f"(T)({opt.opt.hyper['eps']!r} * root)"
    # The state's update, then the step: the parameter becomes CUR - step.
    before, step = {
        "sgd": ("", "lr_t * g"),
        "momentum": ("""const T v = h1_t * s1[p] + g;
            s1[p] = v;
            """, "lr_t * (nesterov ? g + h1_t * v : v)"),
        "adam": ("""const T m1 = h1_t * s1[p] + one_minus_h1 * g;
            const T m2 = h2_t * s2[p] + one_minus_h2 * (g * g);
            s1[p] = m1;
            s2[p] = m2;
            """, f"adam_step * m1 / ({fn.SQRT}(m2) + {eps})"),
    }[name]
    lines = []
    penalized = getattr(opt, "penalized", None)
    if penalized is not None:
        # As the reference: a Python float meets the parameter as its dtype.
        lines.append(f"if ({penalized}) g = g + (T){opt.l2!r} * CUR;")
    if scaled and on == "grads":
        lines.append("g = h3_t * g;")
    if scaled and on == "updates":
        # The reference's p + f·(q - p), q the optimizer's own step.
        lines.append(f"{before}const T cur = CUR;\n            DST = cur + h3_t * ((cur - {step}) - cur);")
    else:
        lines.append(f"{before}DST = CUR - {step};")
    body = "\n            ".join(lines)
    return body.replace("DST", f"{P}[p]").replace("CUR", read or f"{P}[p]")


def _dx_loop(layout, spec, l, dz, dnext):
    """Layer l's input gradient through the activation below it, one (row, unit) per iteration."""
    fan_in, fan_out = layout.sizes[l], layout.sizes[l + 1]
    w, x = layout.w_offsets[l], layout.acts[l]
    return f"""
        for (int t = tid; t < nb * {fan_in}; t += nt) {{
            const int r = t / {fan_in}, i = t - r * {fan_in};
            const T* g = sh + {dz} + r * {fan_out};
            T acc = (T)0;
            for (int j = 0; j < {fan_out}; ++j) acc += g[j] * sh[{w} + i * {fan_out} + j];
            const T a = sh[{x} + t];
            (void)a;  // the identity's gradient does not read it
            sh[{dnext} + t] = {_act_backward(spec.hidden_activation, "a", "acc")};
        }}
        __syncthreads();"""


def _update_blocks(layout, l, dz, update):
    """:func:`update_loop` for mini-batches, a block of 4x4 parameters per iteration.

    Per parameter, a batch's gradient is a sum over its rows of two shared-memory
    reads and a multiply-add; one parameter an iteration reads both for each, so
    the loop waits on shared memory (about 4 of a [32,64,1] mini-batch-64 step's
    17 µs on an H200). Here an iteration sums 16 parameters' gradients from 8
    reads a row: rows i0..i0+3 of ``[W; b]`` (the bias is row ``fan_in``, its
    input a constant 1, and ``1·dz`` is ``dz`` exactly) and the columns c, c + G,
    c + 2G, c + 3G (G = ceil(fan_out / 4)), so that a warp's consecutive
    iterations read consecutive dz entries, on distinct banks. Each sum runs
    over the rows in order, as the loop it replaces does: the same numbers.
    """
    fan_in, fan_out = layout.sizes[l], layout.sizes[l + 1]
    w, x, A = layout.w_offsets[l], layout.acts[l], work_name(layout)
    G = -(-fan_out // 4)
    blocks = -(-(fan_in + 1) // 4) * G
    return f"""
        for (int t = tid; t < {blocks}; t += nt) {{
            const int i0 = (t / {G}) * 4, c = t - (t / {G}) * {G};
            T acc[16];
            #pragma unroll
            for (int q = 0; q < 16; ++q) acc[q] = (T)0;
            for (int r = 0; r < nb; ++r) {{
                T av[4], dv[4];
                #pragma unroll
                for (int a = 0; a < 4; ++a) {{
                    const int i = i0 + a;
                    av[a] = i < {fan_in} ? {A}[{x} + r * {fan_in} + i] : (T)1;
                }}
                #pragma unroll
                for (int b = 0; b < 4; ++b) {{
                    const int j = c + b * {G};
                    dv[b] = j < {fan_out} ? {A}[{dz} + r * {fan_out} + j] : (T)0;
                }}
                #pragma unroll
                for (int a = 0; a < 4; ++a) {{
                    #pragma unroll
                    for (int b = 0; b < 4; ++b) acc[a * 4 + b] += av[a] * dv[b];
                }}
            }}
            #pragma unroll
            for (int a = 0; a < 4; ++a) {{
                #pragma unroll
                for (int b = 0; b < 4; ++b) {{
                    const int i = i0 + a, j = c + b * {G};
                    if (i <= {fan_in} && j < {fan_out}) {{
                        const int p = {w} + i * {fan_out} + j;
                        T g = acc[a * 4 + b];
                        {update}
                    }}
                }}
            }}
        }}
        __syncthreads();"""


def _update_vectors(layout, l, dz, update):
    """:func:`update_loop` for parameters in global memory, 4 consecutive parameters of
    a row an iteration, read and written 16 bytes at a time (32 in float64).

    The update streams every parameter through one SM each step; one 4-byte
    load a parameter keeps too few bytes in flight for the L2's latency (the
    update was 72-79 of a [784,256,256,10] sgd step's 91-97 µs on an H200).
    Each parameter's gradient and update are the scalar loop's, in the same
    order: the same numbers. Needs ``fan_out`` and W's offset multiples of 4
    (:meth:`.fused.Layout.update_vectors`) and a 16-byte-aligned buffer.
    """
    fan_in, fan_out = layout.sizes[l], layout.sizes[l + 1]
    w, x, A = layout.w_offsets[l], layout.acts[l], work_name(layout)
    double = layout.dtype_name == "float64"
    load = ("const double2 u_ = reinterpret_cast<const double2*>(src_)[0], "
            "v_ = reinterpret_cast<const double2*>(src_)[1]; "
            "wv[0] = u_.x; wv[1] = u_.y; wv[2] = v_.x; wv[3] = v_.y;" if double else
            "const float4 v_ = *reinterpret_cast<const float4*>(src_); "
            "wv[0] = v_.x; wv[1] = v_.y; wv[2] = v_.z; wv[3] = v_.w;")
    store = ("reinterpret_cast<double2*>(src_)[0] = make_double2(wv[0], wv[1]); "
             "reinterpret_cast<double2*>(src_)[1] = make_double2(wv[2], wv[3]);" if double else
             "*reinterpret_cast<float4*>(src_) = make_float4(wv[0], wv[1], wv[2], wv[3]);")
    body = update.replace("params[p]", "wv[q]")
    ahead = f"{PREFETCH_ITERATIONS} * nt * 4"
    arrays = ["params"] + [a for a in ("s1", "s2") if f"{a}[p]" in update]
    prefetch = " ".join(f'asm volatile("prefetch.global.L1 [%0];" :: "l"({a} + {w} + t + {ahead}));'
                        for a in arrays)
    return f"""
        #pragma unroll 4
        for (int t = tid * 4; t < {(fan_in + 1) * fan_out}; t += nt * 4) {{
            const int i = t / {fan_out}, j = t - i * {fan_out};
            T gs[4] = {{(T)0, (T)0, (T)0, (T)0}};
            if (i < {fan_in}) {{
                #pragma unroll 8
                for (int r = 0; r < nb; ++r) {{
                    const T xi = {A}[{x} + r * {fan_in} + i];
                    #pragma unroll
                    for (int q = 0; q < 4; ++q) gs[q] += xi * {A}[{dz} + r * {fan_out} + j + q];
                }}
            }} else {{
                #pragma unroll 8
                for (int r = 0; r < nb; ++r) {{
                    #pragma unroll
                    for (int q = 0; q < 4; ++q) gs[q] += {A}[{dz} + r * {fan_out} + j + q];
                }}
            }}
            T* src_ = params + {w} + t;
            T wv[4];
#ifdef __CUDACC__
            // Ask L1 for a later iteration's parameters (and state) now: a load here
            // waits for the store before it, so one load a thread would otherwise
            // be in flight, each waiting on the L2's latency.
            if (t + {ahead} < {(fan_in + 1) * fan_out}) {{
                {prefetch}
            }}
            {{ {load} }}
#else
            for (int q = 0; q < 4; ++q) wv[q] = src_[q];
#endif
            #pragma unroll
            for (int q = 0; q < 4; ++q) {{
                const int p = {w} + t + q;
                (void)p;  // sgd's update reads no state
                T g = gs[q];
                {body}
            }}
#ifdef __CUDACC__
            {{ {store} }}
#else
            for (int q = 0; q < 4; ++q) src_[q] = wv[q];
#endif
        }}
        __syncthreads();"""


def update_loop(layout, l, dz, update):
    """The ``update`` of layer l's W and b, one parameter per iteration (consecutive
    iterations: consecutive units j of one input i, so a warp's loads coalesce);
    with ``layout.update_blocks()``, a block of 16 an iteration (:func:`_update_blocks`);
    with ``layout.update_vectors(l)``, 4 of a row, 16 bytes at a time
    (:func:`_update_vectors`)."""
    if layout.update_blocks():
        return _update_blocks(layout, l, dz, update)
    if layout.update_vectors(l) and "params[p]" in update:
        return _update_vectors(layout, l, dz, update)
    fan_in, fan_out = layout.sizes[l], layout.sizes[l + 1]
    w, x, A = layout.w_offsets[l], layout.acts[l], work_name(layout)
    # Unrolled: each thread's parameters (and a parameter's rows) are independent
    # loads, so several go in flight at once instead of one round trip each (the
    # update was 45% of a [32,64,1] sgd step on an H200, and 80% on [784,256,256,10]).
    # The sums keep their order.
    return f"""
        #pragma unroll 4
        for (int t = tid; t < {fan_in * fan_out + fan_out}; t += nt) {{
            T g = (T)0;
            if (t < {fan_in * fan_out}) {{
                const int i = t / {fan_out}, j = t - i * {fan_out};
                #pragma unroll 8
                for (int r = 0; r < nb; ++r) g += {A}[{x} + r * {fan_in} + i] * {A}[{dz} + r * {fan_out} + j];
            }} else {{
                const int j = t - {fan_in * fan_out};
                #pragma unroll 8
                for (int r = 0; r < nb; ++r) g += {A}[{dz} + r * {fan_out} + j];
            }}
            const int p = {w} + t;
            {update}
        }}
        __syncthreads();"""


def backward_phase(layout, spec, update, dx_loop=_dx_loop):
    """Backward, last layer first: the gradient of the layer's input (it needs W
    before the update; ``dx_loop(layout, spec, l, dz, dnext)`` writes it), then
    the ``update`` of W and b from the layer's input and dz."""
    L = layout.n_layers
    code = []
    for l in reversed(range(L)):
        dz, dnext = layout.grads[(L - 1 - l) % 2], layout.grads[(L - l) % 2]
        if l > 0:
            code.append(dx_loop(layout, spec, l, dz, dnext))
        code.append(update_loop(layout, l, dz, update))
    return code


def _kernel_head(layout, spec, opt_name, dtype_name, T, launch_bounds=""):
    """The comment, the host shims and the kernel's signature, up to its opening brace."""
    s, B = layout.sizes, layout.batch_size
    bounds_shim = "#define __launch_bounds__(n)\n" if launch_bounds else ""
    work_arg = ", T* __restrict__ work" if launch_bounds else ""
    return f"""// Generated by nnbackend.backends.cupy.fused for sizes {s}, batch {B},
// {spec.hidden_activation}/{spec.output_activation}/{spec.loss}/{spec.reduction}, {opt_name}, {dtype_name}.
#ifndef __CUDACC__
#include <math.h>
#define __global__
#define __syncthreads()
{bounds_shim}struct nnb_dim {{ unsigned x; }};
static const nnb_dim threadIdx = {{0}}, blockDim = {{1}};
#endif

typedef {T} T;

extern "C" __global__ void {launch_bounds}nnb_fused_epoch(
    const T* __restrict__ X, const T* __restrict__ Y, const long long* __restrict__ order,
    const long long n, T* __restrict__ params, T* __restrict__ s1, T* __restrict__ s2,
    const long long count0, const double lr, const double h1, const double h2, const double h3,
    T* __restrict__ out{work_arg})
{{"""


def _shared_array(n_bytes):
    """The block's shared memory (a static array on the host), as ``nnb_shared``."""
    return f"""#ifdef __CUDACC__
    extern __shared__ __align__(16) unsigned char nnb_shared[];
#else
    alignas(16) static unsigned char nnb_shared[{n_bytes}];
#endif"""


def kernel_setup():
    """The optimizer's constants, as every kernel's first statements after its memory."""
    return """    const int tid = threadIdx.x, nt = blockDim.x;
    // Python floats meet arrays as the array's dtype in the reference.
    const T lr_t = (T)lr, h1_t = (T)h1, h2_t = (T)h2, h3_t = (T)h3;
    const T one_minus_h1 = (T)(1.0 - h1), one_minus_h2 = (T)(1.0 - h2);
    const bool nesterov = h2 != 0.0;
    (void)lr_t; (void)h1_t; (void)h2_t; (void)h3_t; (void)one_minus_h1; (void)one_minus_h2;
    (void)nesterov;"""


def _gather_slots(n_in, body):
    """``body`` for each of this thread's gather slots ``k``: element ``t`` of the
    batch's X rows (row ``r``, column ``i``)."""
    return f"""for (int k = 0; k < NNB_GATHER; ++k) {{
            const int t = tid + k * nt, r = t / {n_in}, i = t - r * {n_in};
            (void)r; (void)i;
            {body}
        }}"""


def _rows_at(start, B):
    """The rows of the batch that starts at row ``start`` (0 past the epoch's end)."""
    return f"({start} < n ? (n - ({start}) < {B} ? (int)(n - ({start})) : {B}) : 0)"


def _target_prologue(layout):
    """The first step's target rows and the second step's indices, for
    :func:`output_phase`'s targets a step ahead (one row a thread on the GPU)."""
    B, k = layout.batch_size, layout.sizes[-1]
    return f"""#ifdef __CUDACC__
#define NNB_YROWS 1
#else
#define NNB_YROWS {B}
#endif
    T gy[NNB_YROWS][{k}];
    long long yi[NNB_YROWS];
    for (int r = tid; r < {_rows_at("0", B)}; r += nt) {{
        const int q = NNB_YROWS == 1 ? 0 : r;
        yi[q] = order[r];
        for (int j = 0; j < {k}; ++j) gy[q][j] = Y[yi[q] * {k} + j];
    }}
    for (int r = tid; r < {_rows_at(str(B), B)}; r += nt) yi[NNB_YROWS == 1 ? 0 : r] = order[{B} + r];"""


def _prefetched_loop(layout, A, body, head):
    """:func:`batch_loop` with the gather a step ahead: each step's X rows reach
    registers during the step before, their order indices a step before that, so
    no step waits on the gather's two dependent loads (an index, then its row)."""
    B, n_in = layout.batch_size, layout.sizes[0]

    fetch_rows = _gather_slots(n_in, f"if (t < nb1 * {n_in}) gx[k] = X[gi[k] * {n_in} + i];")
    fetch_index = _gather_slots(n_in, f"if (t < nb2 * {n_in}) gi[k] = order[start2 + r];")
    return f"""#ifdef __CUDACC__
#define NNB_GATHER {layout.gather_slots()}
#else
#define NNB_GATHER {B * n_in}
#endif
    // This thread's share of the next step's X rows, and of the order indices
    // of the step after: loaded while a step computes, used by the next.
    T gx[NNB_GATHER];
    long long gi[NNB_GATHER];
    {{
        const int nb1 = {_rows_at("0", B)};
        {_gather_slots(n_in, f"if (t < nb1 * {n_in}) gi[k] = order[r];")}
        {fetch_rows}
        const long long start2 = {B};
        const int nb2 = {_rows_at("start2", B)};
        {fetch_index}
    }}
{_target_prologue(layout) if layout.prefetches_targets() else ""}
{head}
        {_gather_slots(n_in, f"if (t < nb * {n_in}) {A}[{layout.acts[0]} + t] = gx[k];")}
        __syncthreads();
        {{
            const int nb1 = {_rows_at(f"start + {B}", B)};
            {fetch_rows}
            const long long start2 = start + {2 * B};
            const int nb2 = {_rows_at("start2", B)};
            {fetch_index}
        }}
{body}
    }}"""


def batch_loop(layout, A, body):
    """The loop over the epoch's batches: Adam's step constants, the gather, then ``body``
    (with ``layout.gather_slots()``, the gather a step ahead: :func:`_prefetched_loop`)."""
    B, n_in = layout.batch_size, layout.sizes[0]
    head = f"""    T loss_sum = (T)0, hit_sum = (T)0;
    long long step = 0;
    for (long long start = 0; start < n; start += {B}, ++step) {{
        const long long left = n - start;
        // A step of one row always has it (left >= 1): a constant, so the row loops fold.
        const int nb = {"1; (void)left" if B == 1 else f"left < {B} ? (int)left : {B}"};
        // Adam's bias corrections in double, folded into the step as the reference does.
        const double root = sqrt(1.0 - pow(h2, (double)(count0 + step + 1)));
        const T adam_step = (T)(lr * root / (1.0 - pow(h1, (double)(count0 + step + 1))));
        const T adam_eps = (T)(h3 * root);
        (void)adam_step; (void)adam_eps;"""
    if layout.gather_slots():
        return _prefetched_loop(layout, A, body, head)
    return f"""{head}
        for (int t = tid; t < nb * {n_in}; t += nt) {{
            const int r = t / {n_in}, i = t - r * {n_in};
            {A}[{layout.acts[0]} + t] = X[order[start + r] * {n_in} + i];
        }}
        __syncthreads();
{body}
    }}"""


def _kernel(layout, spec, opt_name, dtype_name, T, body):
    """The shared-memory kernel around the phases: parameters copied in, the loop over
    batches, parameters copied out."""
    B = layout.batch_size
    return f"""{_kernel_head(layout, spec, opt_name, dtype_name, T)}
{_shared_array(layout.shared_bytes(dtype_name))}
    T* sh = (T*)nnb_shared;
{kernel_setup()}
    for (int t = tid; t < {layout.n_params}; t += nt) sh[t] = params[t];
    for (int t = tid; t < 2 * {B}; t += nt) sh[{layout.row_loss} + t] = (T)0;
    __syncthreads();
{batch_loop(layout, "sh", body)}
    for (int t = tid; t < {layout.n_params}; t += nt) params[t] = sh[t];
    if (tid == 0) {{ out[0] = loss_sum; out[1] = hit_sum; }}
}}
"""


def kernel_source(layout, spec, opt_name, dtype_name, multiclass):
    """CUDA C++ source of ``nnb_fused_epoch`` for one network (also valid host C++).

    Kernel arguments: ``X`` (n, sizes[0]) and ``Y`` (n, sizes[-1]) row-major,
    ``order`` (n,) int64 (the epoch's row order), ``n``, ``params`` (the flat
    parameters, updated in place), ``s1`` and ``s2`` (the flat optimizer
    state: momentum's velocity, or Adam's first and second moments),
    ``count0`` (Adam's steps before this epoch), ``lr`` and three optimizer
    hyperparameters, and ``out`` (2,): the epoch's summed loss and hit count.
    For the shared-memory placement; :func:`.tiled.global_kernel_source`
    writes the global one.
    """
    fn = _math_names(dtype_name)
    code = forward_phase(layout, spec, fn)
    code += output_phase(layout, spec, fn, multiclass)
    code += backward_phase(layout, spec, update_statement(opt_name, fn))
    return _kernel(layout, spec, opt_name, dtype_name, fn.T, "\n".join(code))
