"""Backend selection: a name (and device) in, an array namespace ``xp`` out.

This is the only module of the core that knows array libraries by name.
Everything else receives a :class:`Backend` (or finds ``xp`` from its input
arrays with ``array_api_compat.array_namespace``) and uses the Array API
standard alone.

Names
-----
``numpy``   NumPy (CPU): its own namespace from NumPy 2.1 on, else
            through ``array_api_compat.numpy``.
``strict``  ``array_api_strict``: the standard and nothing more. Its simulated
            devices (``device1``, ``no_float64``, ...) refuse what a GPU would
            refuse, which is how the tests prove the kernels portable.
``torch``   PyTorch through ``array_api_compat.torch``; devices ``cpu``,
            ``cuda``, ``cuda:N``.
``jax``     ``jax.numpy``; devices ``cpu``, ``gpu``, ``gpu:N``.
``cupy``    CuPy through ``array_api_compat.cupy``; devices ``N`` or
            ``cuda:N``. Needs an NVIDIA GPU.
``dask``    Dask arrays through ``array_api_compat.dask.array``, for data that
            is chunked by rows (out of core, or on a dask.distributed
            cluster); device ``cpu``. The parameters stay NumPy arrays on the
            client (see :func:`_dask_namespace`); ``scheduler=`` (or
            ``$NNBACKEND_DASK_SCHEDULER``) names the cluster.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import types
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "BACKEND_NAMES",
    "ENV_VAR",
    "available_backends",
    "backend_of",
    "get_backend",
]

ENV_VAR = "NNBACKEND_BACKEND"
DASK_SCHEDULER_ENV_VAR = "NNBACKEND_DASK_SCHEDULER"
BACKEND_NAMES = ("numpy", "strict", "torch", "jax", "cupy", "dask")

# How to get each backend, quoted in every "not available" error.
_INSTALL_HINT = {
    "numpy": "pip install nnbackend",
    "strict": "pip install 'nnbackend[test]'  (or: pip install array-api-strict)",
    "torch": "pip install 'nnbackend[torch]'",
    "jax": "pip install 'nnbackend[jax]'",
    "cupy": "pip install 'nnbackend[cuda12]' or 'nnbackend[cuda13]' "
    "(matching your CUDA driver), on a machine with an NVIDIA GPU",
    "dask": "pip install 'nnbackend[dask]'  (dask[array] and distributed)",
}

_FLOAT_DTYPES = ("float32", "float64")


class BackendUnavailableError(RuntimeError):
    """A known backend (or one of its devices) cannot be used on this machine."""


@dataclass(frozen=True)
class Backend:
    """An array namespace and the device arrays are placed on.

    Attributes
    ----------
    name : str
        One of :data:`BACKEND_NAMES`.
    xp : module
        The Array API namespace.
    device : object
        The namespace's device object (``None`` never appears: the default
        device is resolved when the backend is made).
    """

    name: str
    xp: Any
    device: Any
    # dask only: None (Dask's default scheduler), a local scheduler's name
    # ("threads", "synchronous", "processes") or a distributed.Client.
    scheduler: Any = field(default=None, compare=False)

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r})"

    # -- dtypes ---------------------------------------------------------------
    def dtype(self, name: str):
        """The namespace's floating dtype for ``name`` ('float32' or 'float64').

        Raises ``ValueError`` for other names and for float64 on a device
        that has none (e.g. array-api-strict's ``no_float64`` device).
        """
        name = str(name)
        if name not in _FLOAT_DTYPES:
            raise ValueError(
                f"dtype must be one of {list(_FLOAT_DTYPES)}, got {name!r}"
            )
        if self.name == "jax" and name == "float64":
            _jax_enable_x64()
        if name not in self.float_dtypes():
            raise ValueError(
                f"dtype {name!r} is not supported by backend {self.name!r} on "
                f"device {self.device!r}; use dtype='float32'"
            )
        return getattr(self.xp, name)

    def float_dtypes(self) -> tuple[str, ...]:
        """Names of the floating dtypes this backend's device supports."""
        if self.name == "jax":
            import jax

            if not jax.config.jax_enable_x64:
                # x64 is switched on when float64 is asked for (see dtype()).
                return _FLOAT_DTYPES
        if self.name == "torch" and getattr(self.device, "type", None) == "mps":
            return ("float32",)
        info = self.xp.__array_namespace_info__()
        supported = info.dtypes(device=self.device, kind="real floating")
        return tuple(n for n in _FLOAT_DTYPES if n in supported)

    # -- moving arrays ----------------------------------------------------------
    def asarray(self, a, dtype=None):
        """``a`` (host data or an array of this namespace) on this backend's device."""
        return self.xp.asarray(a, dtype=dtype, device=self.device)

    def to_host(self, a) -> np.ndarray:
        """A NumPy copy of an array of this backend (a device-to-host sync).

        On dask a lazy array is computed (on :attr:`scheduler`); the
        parameters, already NumPy, are returned as they are.
        """
        if self.name == "dask":
            return _dask_to_host(a, self.scheduler)
        return _TO_HOST[self.name](a)

    def loop_context(self):
        """The context the training loop runs in.

        NumPy (and array-api-strict, built on it): overflow raises no warnings,
        since a diverging run would warn at every operation and the loop
        reports divergence itself, once and clearly. PyTorch:
        ``torch.inference_mode``, since the loop computes its own gradients
        and autograd's bookkeeping would only cost time (see :meth:`export`).
        """
        if self.name in ("numpy", "strict"):
            return np.errstate(over="ignore", invalid="ignore", divide="ignore")
        if self.name == "dask":
            # The steps run on NumPy parameters on the client; every compute
            # in the loop goes to the backend's scheduler.
            stack = contextlib.ExitStack()
            stack.enter_context(np.errstate(over="ignore", invalid="ignore", divide="ignore"))
            stack.enter_context(self.compute_context())
            return stack
        if self.name == "torch":
            import torch

            return torch.inference_mode()
        return contextlib.nullcontext()

    def compute_context(self):
        """Where lazy arrays compute inside it: dask's :attr:`scheduler`, when
        one was named (else Dask's default). Other backends: nothing to do."""
        if self.name == "dask" and self.scheduler is not None:
            import dask

            return dask.config.set(scheduler=self.scheduler)
        return contextlib.nullcontext()

    def export(self, arrays):
        """Arrays made inside :meth:`loop_context`, made fit for any later use.

        PyTorch's inference-mode tensors cannot take part in autograd later;
        a copy made outside inference mode can. Other backends: unchanged.
        """
        if self.name == "torch":
            return [a.clone() for a in arrays]
        return list(arrays)

    def device_name(self) -> str:
        """A human name for the device: the GPU's model, or the CPU's."""
        try:
            if self.name == "cupy":
                import cupy

                props = cupy.cuda.runtime.getDeviceProperties(self.device.id)
                name = props["name"]
                return name.decode() if isinstance(name, bytes) else str(name)
            if self.name == "torch" and self.device.type == "cuda":
                import torch

                return torch.cuda.get_device_name(self.device)
            if self.name == "jax" and getattr(self.device, "platform", "cpu") != "cpu":
                return str(getattr(self.device, "device_kind", self.device))
            if self.name == "dask":
                return _dask_device_name(self.scheduler)
        except Exception:
            pass
        return cpu_name()

    def is_gpu(self) -> bool:
        """Whether arrays of this backend live on a GPU."""
        if self.name == "cupy":
            return True
        if self.name == "torch":
            return self.device.type == "cuda"
        if self.name == "jax":
            return getattr(self.device, "platform", "cpu") != "cpu"
        return False

    def rows_per_pass(self, X, chunk_size: int) -> int:
        """How many rows of ``X`` to push through the network at once.

        ``chunk_size`` everywhere but on dask, where every slice of a Dask
        array is a piece of graph: 2048-row slices of a million rows made
        an evaluation 25 times slower than one slice per chunk. There the
        largest row chunk of ``X`` is used (at least ``chunk_size``), so a
        pass holds one chunk's activations, as a batch epoch's tasks do.
        """
        if self.name == "dask" and getattr(X, "chunks", None):
            return max(chunk_size, max(X.chunks[0]))
        return chunk_size

    def synchronize(self) -> None:
        """Wait until queued device work is done (for timing)."""
        if self.name == "cupy":
            import cupy

            cupy.cuda.get_current_stream().synchronize()
        elif self.name == "torch" and self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)


# -- per-library loaders --------------------------------------------------------
# Each takes the requested device (None for the default) and returns
# (xp, device). They raise BackendUnavailableError or ValueError, never a
# library's own import or driver error.


def _import(name: str, module: str):
    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install raising anything
        raise BackendUnavailableError(
            f"backend {name!r} is not available: importing {module!r} failed "
            f"({type(exc).__name__}: {exc}). Install it with: {_INSTALL_HINT[name]}"
        ) from None


def _namespace(name, base, doc, **overrides):
    """A module holding everything of ``base`` (a namespace module) plus ``overrides``.

    A real module, not an object with ``__getattr__``: the kernels look a
    function up on ``xp`` for every operation, and a module attribute is a
    dictionary hit where ``__getattr__`` costs a microsecond.
    """
    module = types.ModuleType(name, doc)
    meta = {"__name__", "__doc__", "__file__", "__loader__", "__spec__", "__path__",
            "__package__", "__builtins__", "__cached__"}
    module.__dict__.update({k: v for k, v in vars(base).items() if k not in meta})
    module.__dict__.update(overrides)
    return module


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


# One namespace module per process, as for CuPy and Dask: the kernels key
# per-namespace caches on it, so a module built per get_backend call would
# keep every model's namespace alive (13 KB a model, measured by
# benchmarks/test_memory.py).
def _numpy_fused():
    """The kernels' elementwise chains for NumPy, by name (see ``kernels._fused``).

    The same operations in the same order as the kernels' formulas, so the
    results are bit for bit theirs, with one difference: the constants are
    0-D arrays of the input's dtype. NumPy takes half a microsecond or more
    to fit a Python number to an array's dtype, on every operation; a
    single-row step's sigmoids and their gradients spent about 3.5 us of 55
    doing it. Anything but floating arrays of one dtype takes the formula
    with Python numbers.
    """
    consts = {}

    def const(value, dtype):
        c = consts.get((value, dtype))
        if c is None:
            c = consts[value, dtype] = np.asarray(value, dtype=dtype)
        return c

    def sigmoid(z, floor):
        if z.dtype.kind != "f":
            return 1 / (1 + np.exp(-np.maximum(z, floor)))
        one = const(1, z.dtype)
        return one / (one + np.exp(-np.maximum(z, const(floor, z.dtype))))

    def sigmoid_backward(a, da):
        if a.dtype.kind != "f" or a.dtype != da.dtype:
            return da * (a * (1 - a))
        return da * (a * (const(1, a.dtype) - a))

    def tanh_backward(a, da):
        if a.dtype.kind != "f" or a.dtype != da.dtype:
            return da * (1 - a * a)
        return da * (const(1, a.dtype) - a * a)

    return {"sigmoid": sigmoid, "sigmoid_backward": sigmoid_backward,
            "tanh_backward": tanh_backward}


@functools.lru_cache(maxsize=1)
def _numpy_namespace():
    return _namespace("nnbackend.numpy", np, "NumPy, with a faster float sum and small matmul.",
                      sum=_numpy_sum, matmul=_numpy_matmul, nnbackend_fused=_numpy_fused())


def _load_numpy(device):
    if hasattr(np, "__array_namespace_info__") and hasattr(np, "astype"):
        # NumPy 2.1 and later implement the standard in their own namespace;
        # calling it directly skips array-api-compat's wrappers, which cost
        # more than the arithmetic on a training step's small arrays.
        xp = _numpy_namespace()
    else:  # NumPy < 2.1 goes through array-api-compat
        xp = _import("numpy", "array_api_compat.numpy")
    if device not in (None, "cpu"):
        raise ValueError(f"backend 'numpy' has only the device 'cpu', got {device!r}")
    return xp, "cpu"


def _load_strict(device):
    xp = _import("strict", "array_api_strict")
    devices = {d._device: d for d in xp.__array_namespace_info__().devices()}
    if device is None or device == "cpu":
        return xp, xp.Device("CPU_DEVICE")
    if isinstance(device, xp.Device):
        return xp, device
    if device in devices:
        return xp, devices[device]
    raise ValueError(
        f"backend 'strict' has no device {device!r}; its devices are "
        f"{['cpu'] + sorted(devices)}"
    )


@functools.lru_cache(maxsize=1)  # one module per process: see _numpy_namespace
def _torch_namespace(compat, torch):
    """array-api-compat's torch namespace, with the functions the training loop
    calls on every step bound straight to torch.

    array-api-compat makes torch follow the standard's type promotion and
    signatures, at a cost of several microseconds a call. Where nnbackend's
    kernels pass same-dtype tensors or a Python float, torch's own function
    already gives the standard's answer, and these skip the wrapper;
    everything else is array-api-compat's.
    """

    def matmul(x1, x2, /):
        if x1.dtype == x2.dtype:
            return torch.matmul(x1, x2)
        return compat.matmul(x1, x2)

    def maximum(x1, x2, /):
        if isinstance(x2, float) and x1.dtype.is_floating_point:
            return torch.clamp_min(x1, x2)
        return compat.maximum(x1, x2)

    def take(x, indices, /, *, axis=None):
        if axis == 0 and indices.ndim == 1:
            return torch.index_select(x, 0, indices)
        return compat.take(x, indices, axis=axis)

    return _namespace("nnbackend.torch", compat, _torch_namespace.__doc__,
                      matmul=matmul, maximum=maximum, take=take)


def _load_torch(device):
    _import("torch", "torch")
    compat = _import("torch", "array_api_compat.torch")
    import torch

    xp = _torch_namespace(compat, torch)

    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"backend 'torch': bad device {device!r} ({exc})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"backend 'torch' device {device!r}: PyTorch sees no CUDA GPU "
                f"(torch {torch.__version__}"
                f"{', a CPU-only build' if torch.version.cuda is None else ''}). "
                "Use device='cpu', or install a CUDA build of torch on a GPU machine"
            )
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise BackendUnavailableError(
                f"backend 'torch': no CUDA device {index}; this machine has "
                f"{torch.cuda.device_count()}"
            )
        dev = torch.device("cuda", index)
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise BackendUnavailableError("backend 'torch': the MPS device is not available")
    return xp, dev


def _load_jax(device):
    jax = _import("jax", "jax")
    xp = jax.numpy
    if device is None:
        return xp, jax.devices()[0]
    if not isinstance(device, str):
        return xp, device  # a jax Device object
    platform, _, index = device.partition(":")
    platform = {"cuda": "gpu"}.get(platform, platform)
    try:
        devices = jax.devices(platform)
    except RuntimeError:
        raise BackendUnavailableError(
            f"backend 'jax' has no {platform!r} device on this machine "
            f"(it has {[str(d) for d in jax.devices()]}); for a GPU install "
            "jax with CUDA support (pip install 'jax[cuda12]')"
        ) from None
    i = int(index) if index else 0
    if i >= len(devices):
        raise BackendUnavailableError(f"backend 'jax': no device {device!r}")
    return xp, devices[i]


def _cupy_fused(cupy):
    """Elementwise chains of the kernels as single CuPy kernels, by name.

    Each replaces several launches (and passes over memory) with one; the
    kernels use them through ``xp.nnbackend_fused`` where a namespace has it
    and compute the same formula, in the same order, everywhere else.
    """
    sigmoid = cupy.ElementwiseKernel(
        "T z, T floor", "T a", "a = T(1) / (T(1) + exp(-(z > floor ? z : floor)))", "nnb_sigmoid")
    sigmoid_backward = cupy.ElementwiseKernel(
        "T a, T da", "T dz", "dz = da * (a * (T(1) - a))", "nnb_sigmoid_backward")
    tanh_backward = cupy.ElementwiseKernel(
        "T a, T da", "T dz", "dz = da * (T(1) - a * a)", "nnb_tanh_backward")
    return {
        "sigmoid": lambda z, floor: sigmoid(z, z.dtype.type(floor)),
        "sigmoid_backward": sigmoid_backward,
        "tanh_backward": tanh_backward,
    }


@functools.lru_cache(maxsize=1)
def _cupy_namespace():
    # Once per process: one namespace object, and each fused kernel compiled once.
    cupy = _import("cupy", "cupy")
    compat = _import("cupy", "array_api_compat.cupy")
    return _namespace("nnbackend.cupy", compat, "array-api-compat's CuPy, with fused kernels.",
                      nnbackend_fused=_cupy_fused(cupy))


def _load_cupy(device):
    cupy = _import("cupy", "cupy")
    xp = _cupy_namespace()
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
            + _INSTALL_HINT["cupy"].split(" (")[0]
        )
    if device is None:
        index = 0
    elif isinstance(device, cupy.cuda.Device):
        index = device.id
    else:
        text = str(device)
        text = text.split(":", 1)[1] if text.startswith(("cuda:", "gpu:")) else text
        if text in ("cuda", "gpu"):
            text = "0"
        if not text.isdigit():
            raise ValueError(f"backend 'cupy': bad device {device!r}; use 0, 1, or 'cuda:N'")
        index = int(text)
    if index >= n_gpus:
        raise BackendUnavailableError(
            f"backend 'cupy': no GPU {index}; this machine has {n_gpus}"
        )
    return xp, cupy.cuda.Device(index)


# -- dask -----------------------------------------------------------------------
# Data are Dask arrays chunked by rows; parameters are small, so they stay
# NumPy arrays on the client and every chunk's task gets them as arguments.

# Names of Dask's local schedulers, passed to dask as they are.
_DASK_LOCAL_SCHEDULERS = ("threads", "threading", "sync", "synchronous", "single-threaded",
                          "processes", "multiprocessing")
# Clients opened for an address, reused while they are connected.
_DASK_CLIENTS: dict = {}


@functools.lru_cache(maxsize=1)
def _dask_namespace():
    """array-api-compat's Dask namespace, which hands calls without a Dask
    array among their arguments to NumPy.

    The parameters of a dask-backend model are NumPy arrays (they are small
    and every chunk's task needs them), while ``X`` and ``y`` are Dask arrays.
    With this namespace the training loop's per-epoch work on parameters
    (finiteness checks, stacking the epoch's scalars) stays eager NumPy
    instead of becoming a graph that needs a second compute, and creation
    functions (``asarray`` of host data, ``zeros``) make NumPy arrays; any
    call that touches a Dask array stays lazy.
    """
    dask_xp = _import("dask", "array_api_compat.dask.array")
    _import("dask", "dask.array")
    import dask.array as da

    eager = _load_numpy(None)[0]

    def has_dask(args, kwargs):
        for a in (*args, *kwargs.values()):
            if isinstance(a, da.Array) or (
                isinstance(a, (list, tuple)) and any(isinstance(b, da.Array) for b in a)
            ):
                return True
        return False

    def dispatch(name, lazy_f, eager_f):
        def f(*args, **kwargs):
            return (lazy_f if has_dask(args, kwargs) else eager_f)(*args, **kwargs)

        f.__name__, f.__qualname__, f.__doc__ = name, name, lazy_f.__doc__
        return f

    overrides = {"__array_namespace_info__": eager.__array_namespace_info__}
    for name, lazy_f in vars(dask_xp).items():
        eager_f = getattr(eager, name, None)
        if (name.startswith("_") or isinstance(lazy_f, type) or not callable(lazy_f)
                or eager_f is None or isinstance(eager_f, type) or not callable(eager_f)):
            continue
        overrides[name] = dispatch(name, lazy_f, eager_f)
    return _namespace("nnbackend.dask", dask_xp, _dask_namespace.__doc__, **overrides)


def _dask_client(address: str, source: str):
    """A connected ``distributed.Client`` for ``address`` (one per address)."""
    _import("dask", "distributed")
    import distributed

    client = _DASK_CLIENTS.get(address)
    if client is not None and client.status == "running":
        return client
    try:
        # The client becomes Dask's default scheduler, as a Client does: any
        # compute made outside nnbackend's loop (a data check) also runs there.
        # The connect timeout is Dask's distributed.comm.timeouts.connect.
        client = distributed.Client(address)
    except Exception as exc:  # OSError, TimeoutError, ValueError for a bad address
        raise BackendUnavailableError(
            f"backend 'dask': cannot connect to the Dask scheduler at {address!r}{source} "
            f"({type(exc).__name__}: {exc}); check the address, or start a scheduler "
            "with `dask scheduler` and workers with `dask worker ADDRESS`"
        ) from None
    _DASK_CLIENTS[address] = client
    return client


def _load_dask(device, scheduler=None):
    """(xp, device, scheduler) of the dask backend; see :func:`get_backend`."""
    xp = _dask_namespace()
    if device not in (None, "cpu"):
        raise ValueError(
            f"backend 'dask' has only the device 'cpu' (its chunks are NumPy arrays), "
            f"got {device!r}; to use other machines, give a scheduler address"
        )
    source = ""
    if scheduler is None and os.environ.get(DASK_SCHEDULER_ENV_VAR):
        scheduler, source = os.environ[DASK_SCHEDULER_ENV_VAR].strip(), f" (from ${DASK_SCHEDULER_ENV_VAR})"
    if scheduler is None:
        return xp, "cpu", None
    if isinstance(scheduler, str):
        if scheduler in _DASK_LOCAL_SCHEDULERS:
            return xp, "cpu", scheduler
        if not scheduler:
            raise ValueError("backend 'dask': the scheduler address is empty")
        return xp, "cpu", _dask_client(scheduler, source)
    _import("dask", "distributed")
    import distributed

    if isinstance(scheduler, distributed.Client):
        return xp, "cpu", scheduler
    raise ValueError(
        f"backend 'dask': scheduler must be an address such as 'tcp://10.0.0.5:8786', "
        f"one of {list(_DASK_LOCAL_SCHEDULERS)}, or a distributed.Client; got {scheduler!r}"
    )


def _dask_to_host(a, scheduler):
    import dask.array as da

    if isinstance(a, da.Array):
        a = a.compute(scheduler=scheduler)
    if hasattr(a, "get") and not isinstance(a, np.ndarray):  # a CuPy chunk result
        a = a.get()
    return np.asarray(a)


def _dask_device_name(scheduler) -> str:
    if scheduler is None or isinstance(scheduler, str):
        return f"{cpu_name()} (dask {scheduler or 'default'} scheduler)"
    workers = scheduler.scheduler_info().get("workers", {})
    return f"dask.distributed cluster at {scheduler.scheduler.address} ({len(workers)} workers)"


_LOADERS: dict[str, Callable] = {
    "numpy": _load_numpy,
    "strict": _load_strict,
    "torch": _load_torch,
    "jax": _load_jax,
    "cupy": _load_cupy,
    "dask": _load_dask,
}


def _strict_to_host(a):
    import array_api_strict as xp

    return np.asarray(a.to_device(xp.Device("CPU_DEVICE")))


_TO_HOST: dict[str, Callable] = {
    "numpy": np.asarray,
    "strict": _strict_to_host,
    "torch": lambda a: a.detach().cpu().numpy(),
    "jax": np.asarray,
    "cupy": lambda a: a.get(),
}


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return "CPU " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU " + (platform.processor() or platform.machine())


def _jax_enable_x64():
    import jax

    if not jax.config.jax_enable_x64:
        # JAX decides float64 support process-wide; switching it on leaves
        # float32 arrays float32, and nnbackend always names its dtypes.
        jax.config.update("jax_enable_x64", True)


def get_backend(name: str | None = None, device=None, *, scheduler=None) -> Backend:
    """The backend called ``name`` on ``device``.

    Parameters
    ----------
    name : str or None
        One of :data:`BACKEND_NAMES`. ``None`` reads ``$NNBACKEND_BACKEND``,
        then falls back to ``"numpy"``.
    device : str, int, device object or None
        The backend's device; ``None`` for its default (the CPU, or GPU 0
        for CuPy).
    scheduler : str, distributed.Client or None
        dask only. A dask.distributed scheduler address (``tcp://host:8786``;
        a Client is opened and becomes Dask's default), a local scheduler's
        name (``"threads"``, ``"synchronous"``, ``"processes"``), or a Client.
        ``None`` reads ``$NNBACKEND_DASK_SCHEDULER``, then leaves Dask's
        default (its threaded scheduler, or a Client the caller opened).

    Raises
    ------
    ValueError
        ``name`` is not a backend nnbackend knows, or ``device`` is not one
        of its devices.
    BackendUnavailableError
        The backend is not installed here, or the device (a GPU) is absent,
        or (dask) the scheduler at the address cannot be reached.
        The message says how to install it.
    """
    if isinstance(name, Backend):
        if device is None and scheduler is None:
            return name
        return get_backend(name.name, device,
                           scheduler=name.scheduler if scheduler is None else scheduler)
    if name is None:
        name = os.environ.get(ENV_VAR) or "numpy"
    key = str(name).strip().lower()
    if key not in _LOADERS:
        source = f" (from ${ENV_VAR})" if os.environ.get(ENV_VAR) == name else ""
        raise ValueError(
            f"unknown backend {name!r}{source}; choose one of {list(BACKEND_NAMES)}"
        )
    if key == "dask":
        xp, dev, sched = _load_dask(device, scheduler)
        return Backend(key, xp, dev, sched)
    if scheduler is not None:
        raise ValueError(f"scheduler= applies to the dask backend only, not {key!r}")
    xp, dev = _LOADERS[key](device)
    return Backend(key, xp, dev)


@functools.lru_cache(maxsize=None)
def _usable(name: str) -> bool:
    try:
        get_backend(name)
    except (BackendUnavailableError, ValueError):
        return False
    return True


def available_backends() -> list[str]:
    """Names of the backends usable on this machine, in :data:`BACKEND_NAMES` order.

    A backend is listed when it imports; ``cupy`` also needs a GPU. The answer
    is cached for the process.
    """
    return [name for name in BACKEND_NAMES if _usable(name)]


def backend_of(a) -> Backend:
    """The backend an array belongs to (its namespace and device).

    Raises ``TypeError`` for objects that are not arrays of a known backend.
    """
    import array_api_compat as compat

    if isinstance(a, np.ndarray):
        return get_backend("numpy")
    checks = (
        ("cupy", compat.is_cupy_array),
        ("torch", compat.is_torch_array),
        ("jax", compat.is_jax_array),
    )
    for name, check in checks:
        if check(a):
            return Backend(name, get_backend(name).xp, compat.device(a))
    if compat.is_dask_array(a):
        return get_backend("dask")
    if type(a).__module__.startswith("array_api_strict"):
        xp = get_backend("strict").xp
        return Backend("strict", xp, a.device)
    raise TypeError(
        f"expected a NumPy array, a list, or an array of one of {list(BACKEND_NAMES)}; "
        f"got {type(a).__module__}.{type(a).__qualname__}"
    )
