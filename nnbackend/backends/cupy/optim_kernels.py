"""CuPy: the optimizers' updates fused, one ``ElementwiseKernel`` launch per parameter.

An eager Adam update is about a dozen launches per parameter array (each
25-30 µs of host time on an H200); fused, it is one, which reads ``p, g, m,
v`` once and writes ``p, m, v`` once.

Each update is written once, as a Python function of an ``ops`` object
(:func:`sgd_formula`, :func:`momentum_formula`, :func:`adam_formula`):
:class:`CudaOps` renders it to the kernel's C body, and :class:`NumpyOps`
runs the same function body with NumPy (its twin, tested against the
generic update in ``nnbackend.optim`` on the CPU). The operations and their
order are those of the generic update, and each is an explicitly rounded
intrinsic (``__fmul_rn``, ``__dadd_rn``, ...), which the compiler never
contracts into a fused multiply-add, so the kernel rounds as the eager
operations do: the same results in float64 and float32.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FORMULAS", "CudaOps", "NumpyOps", "render", "fused_updates", "CUDA_PREAMBLE"]


def sgd_formula(o, p, g, lr):
    """``p - lr·g`` (the generic ``sgd`` update)."""
    return {"p_out": o.sub(p, o.mul(lr, g))}


def momentum_formula(o, p, g, v, lr, beta, nesterov=False):
    """``v ← beta·v + g``; ``p - lr·v``, or ``p - lr·(g + beta·v)`` (Nesterov)."""
    v_new = o.let("v_new", o.add(o.mul(beta, v), g))
    direction = o.add(g, o.mul(beta, v_new)) if nesterov else v_new
    return {"p_out": o.sub(p, o.mul(lr, direction)), "v_out": v_new}


def adam_formula(o, p, g, m, v, b1, c1, b2, c2, step, eps_hat):
    """Adam with the bias corrections folded into ``step`` and ``eps_hat``
    (``c1 = 1 - b1``, ``c2 = 1 - b2``, computed on the host as the generic update does)."""
    m_new = o.let("m_new", o.add(o.mul(b1, m), o.mul(c1, g)))
    v_new = o.let("v_new", o.add(o.mul(b2, v), o.mul(c2, o.mul(g, g))))
    p_new = o.sub(p, o.div(o.mul(step, m_new), o.add(o.sqrt(v_new), eps_hat)))
    return {"p_out": p_new, "m_out": m_new, "v_out": v_new}


# name -> (formula, array inputs, scalar inputs, outputs, fixed keyword arguments)
FORMULAS = {
    "sgd": (sgd_formula, ("p", "g"), ("lr",), ("p_out",), {}),
    "momentum": (momentum_formula, ("p", "g", "v"), ("lr", "beta"), ("p_out", "v_out"),
                 {"nesterov": False}),
    "nesterov": (momentum_formula, ("p", "g", "v"), ("lr", "beta"), ("p_out", "v_out"),
                 {"nesterov": True}),
    "adam": (adam_formula, ("p", "g", "m", "v"), ("b1", "c1", "b2", "c2", "step", "eps_hat"),
             ("p_out", "m_out", "v_out"), {}),
}


class NumpyOps:
    """The formulas' operations on NumPy arrays (their CPU twin)."""

    add, sub, mul, div, sqrt = np.add, np.subtract, np.multiply, np.divide, np.sqrt

    @staticmethod
    def let(name, value):
        return value


class CudaOps:
    """The formulas' operations as C source; :attr:`lines` collects the ``let`` statements."""

    def __init__(self):
        self.lines = []

    def add(self, a, b):
        return f"nnb_add({a}, {b})"

    def sub(self, a, b):
        return f"nnb_sub({a}, {b})"

    def mul(self, a, b):
        return f"nnb_mul({a}, {b})"

    def div(self, a, b):
        return f"nnb_div({a}, {b})"

    def sqrt(self, a):
        return f"nnb_sqrt({a})"

    def let(self, name, expr):
        self.lines.append(f"T {name} = {expr};")
        return name


# Correctly rounded operations that nvcc/NVRTC never fuse into an FMA.
CUDA_PREAMBLE = "\n".join(
    f"__device__ inline float nnb_{op}(float a, float b) {{ return __f{op}_rn(a, b); }}\n"
    f"__device__ inline double nnb_{op}(double a, double b) {{ return __d{op}_rn(a, b); }}"
    for op in ("add", "sub", "mul", "div")
) + (
    "\n__device__ inline float nnb_sqrt(float a) { return __fsqrt_rn(a); }"
    "\n__device__ inline double nnb_sqrt(double a) { return __dsqrt_rn(a); }\n"
)


def render(name):
    """``(in_params, out_params, body)`` of the ``ElementwiseKernel`` for ``FORMULAS[name]``."""
    formula, arrays, scalars, outputs, fixed = FORMULAS[name]
    ops = CudaOps()
    values = formula(ops, *arrays, *scalars, **fixed)
    assert tuple(values) == outputs
    body = "\n".join(ops.lines + [f"{out} = {values[out]};" for out in outputs])
    in_params = ", ".join(f"T {a}" for a in (*arrays, *scalars))
    return in_params, ", ".join(f"T {out}" for out in outputs), body


def fused_updates(cupy):
    """The fused updates for ``xp.nnbackend_fused`` (see ``nnbackend.optim.on_namespace``).

    Each takes and returns lists of arrays, one launch per parameter; the
    kernels are compiled by CuPy at their first use for each dtype.
    """
    kernels = {name: cupy.ElementwiseKernel(*render(name), f"nnb_{name}_update",
                                            preamble=CUDA_PREAMBLE)
               for name in FORMULAS}

    def scalar(p, x):
        # As the eager update rounds a Python float to the array's dtype. A factor
        # computed on the device from a device count (a captured step's Adam
        # corrections, a schedule's) is rounded there: no read back to the host.
        if isinstance(x, cupy.ndarray):
            return x.astype(p.dtype)
        return p.dtype.type(x)

    def sgd_update(params, grads, lr):
        return [kernels["sgd"](p, g, scalar(p, lr)) for p, g in zip(params, grads)]

    def momentum_update(params, grads, velocity, lr, beta, nesterov):
        kernel = kernels["nesterov" if nesterov else "momentum"]
        out = [kernel(p, g, v, scalar(p, lr), scalar(p, beta))
               for p, g, v in zip(params, grads, velocity)]
        return [o[0] for o in out], [o[1] for o in out]

    def adam_update(params, grads, mu, nu, b1, b2, step, eps_hat):
        kernel = kernels["adam"]
        out = [kernel(p, g, m, v, scalar(p, b1), scalar(p, 1 - b1), scalar(p, b2),
                      scalar(p, 1 - b2), scalar(p, step), scalar(p, eps_hat))
               for p, g, m, v in zip(params, grads, mu, nu)]
        return [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]

    return {"sgd_update": sgd_update, "momentum_update": momentum_update,
            "adam_update": adam_update}
