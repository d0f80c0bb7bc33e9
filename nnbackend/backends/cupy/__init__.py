"""CuPy (NVIDIA GPU) through array-api-compat; devices ``N`` or ``cuda:N``.

The namespace adds the kernels' elementwise chains as single CuPy kernels
and a fast sum over rows (``nnbackend_fused``, from :mod:`.elementwise`).
The executors run a whole sgd or small-batch epoch as one kernel launch
(:mod:`.fused`), a full-batch epoch as two (:mod:`.batch`), and the
mini-batch steps the fused kernel declines as one CUDA graph replay each
(:mod:`.graphs`).

TF32: CuPy computes float32 matmuls in full float32 unless the user sets
``CUPY_TF32=1`` before importing it; nnbackend sets it only for a fit with
``precision="tf32"`` (:meth:`CupyBackend.matmul_precision`). The kernels of
its own executors compute in float32 whatever the precision.
"""

from __future__ import annotations

import functools

from ..base import Backend, BackendUnavailableError, import_or_refuse, make_namespace
from .elementwise import OPTIONS, PREAMBLE, fused_table
from .optim_kernels import fused_updates

__all__ = ["CupyBackend"]

_HINT = ("pip install 'nnbackend[cuda12]' or 'nnbackend[cuda13]' "
         "(matching your CUDA driver), on a machine with an NVIDIA GPU")


def _cupy_fused(cupy, xp):
    """The kernels' hot chains as single CuPy kernels, by name (see :mod:`.elementwise`).

    Each replaces several launches (and passes over memory) with one; the
    kernels use them through ``xp.nnbackend_fused`` where a namespace has it
    and compute the same formula, in the same order, everywhere else.
    """
    def make_kernel(name, inputs, outputs, body):
        return cupy.ElementwiseKernel(inputs, outputs, body, "nnb_" + name,
                                      preamble=PREAMBLE, options=OPTIONS)

    # The kernels' elementwise chains (elementwise.py) and the optimizers'
    # updates (optim_kernels.py).
    return {**fused_table(make_kernel, xp), **fused_updates(cupy)}


@functools.lru_cache(maxsize=1)
def cupy_namespace():
    # Once per process: one namespace object, and each fused kernel compiled once.
    cupy = import_or_refuse("cupy", "cupy", _HINT)
    compat = import_or_refuse("cupy", "array_api_compat.cupy", _HINT)
    xp = make_namespace("nnbackend.cupy", compat, "array-api-compat's CuPy, with fused kernels.")
    # Kernels compile at their first call, not here.
    xp.nnbackend_fused = _cupy_fused(cupy, xp)
    return xp


def _device_index(cupy, device) -> int:
    if device is None:
        return 0
    if isinstance(device, cupy.cuda.Device):
        return device.id
    text = str(device)
    text = text.split(":", 1)[1] if text.startswith(("cuda:", "gpu:")) else text
    if text in ("cuda", "gpu"):
        text = "0"
    if not text.isdigit():
        raise ValueError(f"backend 'cupy': bad device {device!r}; use 0, 1, or 'cuda:N'")
    return int(text)


class CupyBackend(Backend):
    """CuPy arrays on one CUDA GPU."""

    install_hint = _HINT
    # The kernels torch:cuda and jax:gpu fits borrow by DLPack (bridge.py); their
    # own captured or compiled steps beat CuPy's graphs where no kernel applies.
    bridged_names = ("cupy-fused", "cupy-batch")
    executor_names = (*bridged_names, "cupy-graphs")

    @classmethod
    def open(cls, device):
        cupy = import_or_refuse("cupy", "cupy", _HINT)
        xp = cupy_namespace()
        try:
            n_gpus = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError when there is no driver or GPU
            n_gpus, reason = 0, f" ({type(exc).__name__}: {exc})"
        else:
            reason = ""
        if n_gpus == 0:
            raise BackendUnavailableError(
                f"backend 'cupy' needs an NVIDIA GPU, and none was found{reason}. "
                "Use backend='numpy' on this machine, or run on a GPU machine with "
                + _HINT.split(" (")[0]
            )
        index = _device_index(cupy, device)
        if index >= n_gpus:
            raise BackendUnavailableError(f"backend 'cupy': no GPU {index}; this machine has {n_gpus}")
        return xp, cupy.cuda.Device(index)

    @classmethod
    def of_array(cls, a):
        import array_api_compat as compat

        if not compat.is_cupy_array(a):
            return None
        return cls("cupy", cupy_namespace(), compat.device(a))

    def to_host(self, a):
        return a.get()

    def device_spec(self) -> str:
        return f"cuda:{self.device.id}"

    def matmul_precision(self, precision, dtype):
        import cupy

        if dtype != cupy.float32:
            return super().matmul_precision(precision, dtype)
        from ..precision import cupy_precision

        try:
            from cupy._core import _routines_linalg as linalg
        except ImportError:  # not public API: a CuPy that moved it
            linalg = None
        return cupy_precision(linalg, cupy.float32, precision)

    def executors(self) -> tuple:
        from .batch import CupyBatch
        from .fused import CupyFused
        from .graphs import CupyGraphs

        return (CupyFused(), CupyBatch(), CupyGraphs())

    def gpus(self) -> list:
        import cupy

        found = []
        for i in range(cupy.cuda.runtime.getDeviceCount()):
            props = cupy.cuda.runtime.getDeviceProperties(i)
            gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            found.append((f"cuda:{i}", gpu, props["totalGlobalMem"] / 2**30))
        return found

    def accelerator_name(self):
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(self.device.id)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    def is_gpu(self) -> bool:
        return True

    def free_memory(self):
        import cupy

        with self.device:
            free, _ = cupy.cuda.runtime.memGetInfo()
            # Blocks CuPy's memory pool holds unused are free to CuPy.
            return free + cupy.get_default_memory_pool().free_bytes()

    def synchronize(self) -> None:
        import cupy

        cupy.cuda.get_current_stream().synchronize()
