"""What the generated kernels share around their launches: flat buffers, the
optimizer state as flat buffers, and the host build of a kernel's source.

The kernels see the parameters as one flat buffer ``[W0, b0, W1, b1, ...]``
(each W row-major, (fan_in, fan_out)) and the optimizer state likewise
(momentum's velocity; Adam's two moments), so an epoch flattens them once and
hands back views of the buffers.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile

import numpy as np

__all__ = ["HOST_CACHE", "build_host_library", "flat_views", "hyper", "state_buffers",
           "state_from_buffers"]

# Per user: a library another user left in a shared /tmp is not loaded.
HOST_CACHE = os.path.join(tempfile.gettempdir(),
                          f"nnbackend-fused-{getattr(os, 'getuid', lambda: 'user')()}")


def flat_views(am, shapes, dtype):
    """``(flat, unflat)``: ``flat(arrays)`` copies arrays of ``shapes`` into one new
    buffer of ``dtype`` (the kernels write it; the caller's arrays stay);
    ``unflat(buffer)`` gives views of it in those shapes."""
    sizes = [int(np.prod(shape)) for shape in shapes]

    def flat(arrays):
        return am.concatenate([am.reshape(a, (-1,)) for a in arrays]).astype(dtype, copy=False)

    def unflat(buffer):
        out, offset = [], 0
        for shape, size in zip(shapes, sizes):
            out.append(buffer[offset:offset + size].reshape(shape))
            offset += size
        return out

    return flat, unflat


def hyper(opt):
    """``(lr, h1, h2, h3)`` as the kernels take them."""
    h = opt.hyper
    if opt.name == "sgd":
        return h["lr"], 0.0, 0.0, 0.0
    if opt.name == "momentum":
        return h["lr"], h["beta"], float(h["nesterov"]), 0.0
    return h["lr"], h["b1"], h["b2"], h["eps"]


def state_buffers(opt_name, state, flat, dummy):
    """``(s1, s2, count0)``: the optimizer state as the kernels' flat buffers (new
    copies, which they update in place), and Adam's steps so far."""
    if opt_name == "momentum":
        return flat(state.velocity), dummy, 0
    if opt_name == "adam":
        return flat(state.mu), flat(state.nu), int(state.count)
    return dummy, dummy, 0


def state_from_buffers(opt_name, state, s1, s2, count, unflat):
    """The optimizer's own state type, rebuilt field by field (optim.py) from the
    kernels' buffers; ``count`` is Adam's steps after the epoch."""
    if opt_name == "momentum":
        return state._replace(velocity=unflat(s1))
    if opt_name == "adam":
        return state._replace(count=count, mu=unflat(s1), nu=unflat(s2))
    return state


def build_host_library(source, prefix, compiler="c++"):
    """The path of ``source`` compiled as a host shared library (cached by its hash).

    For the tests: the generated kernels are also valid C++, which runs their
    arithmetic on a machine without a GPU.
    """
    os.makedirs(HOST_CACHE, exist_ok=True)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    library = os.path.join(HOST_CACHE, f"{prefix}_{digest}.so")
    if not os.path.exists(library):
        src = os.path.join(HOST_CACHE, f"{prefix}_{digest}.cpp")
        with open(src, "w") as fh:
            fh.write(source)
        partial = f"{library}.{os.getpid()}"
        # The GPU's #pragma unroll means nothing to the host compiler.
        subprocess.run([compiler, "-O1", "-std=c++14", "-Wno-unknown-pragmas", "-shared", "-fPIC",
                        "-o", partial, src], check=True, capture_output=True, text=True)
        os.replace(partial, library)
    return library
