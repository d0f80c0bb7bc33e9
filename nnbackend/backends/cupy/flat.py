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

__all__ = ["HOST_CACHE", "OwnState", "build_host_library", "flat_views", "hyper", "state_buffers",
           "state_from_buffers", "with_window_path"]

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


class OwnState:
    """The optimizer state's flat buffers, kept from one epoch to the next.

    The kernels update the state's buffers in place. Handed back the state
    an epoch returned (views of those buffers), the next epoch takes the
    buffers as they are instead of flattening them into new ones: the
    previous state is consumed, as JAX's executors donate theirs (nothing
    keeps an optimizer state across epochs; the training loop keeps
    parameters only). Any other state (``init``'s, a checkpoint's, one of
    another library) is copied into new buffers first, so a caller's arrays
    are never written.

    Parameters
    ----------
    opt_name : {'sgd', 'momentum', 'adam'}
    flat, unflat : callable
        From :func:`flat_views`.
    dummy : array, shape (1,)
        The buffer for a state the optimizer does not have.
    """

    def __init__(self, opt_name, flat, unflat, dummy):
        self.opt_name, self.flat, self.unflat, self.dummy = opt_name, flat, unflat, dummy
        self.returned, self.s1, self.s2 = None, None, None

    def buffers(self, state):
        """``(s1, s2, count0)`` for the kernels (see :func:`state_buffers`)."""
        if state is not None and state is self.returned:
            count0 = int(state.count) if self.opt_name == "adam" else 0
            return self.s1, self.s2, count0
        return state_buffers(self.opt_name, state, self.flat, self.dummy)

    def state(self, state, s1, s2, count):
        """The optimizer's state over ``s1`` and ``s2`` after the epoch (see
        :func:`state_from_buffers`), remembered as this executor's own."""
        new = state_from_buffers(self.opt_name, state, s1, s2, count, self.unflat)
        if self.opt_name in ("momentum", "adam"):
            self.returned, self.s1, self.s2 = new, s1, s2
        return new


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
        # -pthread: the grid barrier's host build runs each block as a thread.
        subprocess.run([compiler, "-O1", "-std=c++14", "-pthread", "-Wno-unknown-pragmas",
                        "-shared", "-fPIC", "-o", partial, src],
                       check=True, capture_output=True, text=True)
        os.replace(partial, library)
    return library


def with_window_path(text, last, task):
    """``text`` and how a window's epochs run, for an executor's ``describe``:
    ``last`` is its ``(task, epoch)`` of the last ``make_epoch``. The epoch's
    ``path`` is read now, not when it was made: a launch that falls back at
    the first epoch (a refused persistent or cluster launch) changes it."""
    if last is not None and last[0] is task and getattr(last[1], "path", None):
        return f"{text}; a window of epochs: {last[1].path}"
    return text
