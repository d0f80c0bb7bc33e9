"""Dask: data chunked by rows (out of core, or on a dask.distributed cluster).

``X`` and ``y`` are Dask arrays; ``scheduler=`` (or
``$NNBACKEND_DASK_SCHEDULER``) names the cluster, ``"cuda"`` a dask-cuda
``LocalCUDACluster`` started here. Every plan runs through the chunk executor
(:mod:`.chunks`).

Where the parameters live follows the chunks' library (``X._meta``):

* NumPy chunks (device ``cpu``): NumPy arrays on the client (see
  :func:`dask_namespace`).
* CuPy chunks (device ``cuda`` / ``cuda:N``): CuPy arrays on that GPU of the
  client, the process that calls ``fit``. Each chunk task takes them to its
  chunk's GPU (no copy where it is the same one), the partial gradients stay
  CuPy and Dask adds them, and the optimizer steps on the client's GPU: with
  Dask's threaded scheduler on one GPU nothing crosses to the host but the
  epoch's loss.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..base import Backend, BackendUnavailableError, cpu_name, import_or_refuse, make_namespace, quiet_numpy
from ..numpy import numpy_namespace

__all__ = ["DaskBackend", "DASK_SCHEDULER_ENV_VAR", "CUDA_SCHEDULER"]

DASK_SCHEDULER_ENV_VAR = "NNBACKEND_DASK_SCHEDULER"
_HINT = "pip install 'nnbackend[dask]'  (dask[array] and distributed)"
# A forward pass over Dask data (evaluate, predict, the validation loss) takes
# slices of at most this many times the activation budget's rows: a task holds
# its slice's activations (4 MiB × 64 on a CPU).
PASS_SCALE = 64
#: ``scheduler=`` value that starts dask-cuda's LocalCUDACluster (one worker per GPU).
CUDA_SCHEDULER = "cuda"
_CUDA_HINT = "pip install dask-cuda  (or pip install 'nnbackend[dask-cuda]')"
# Devices that put the parameters on a GPU (CuPy chunks): cuda, cuda:N, gpu, gpu:N, N.
_GPU_DEVICE = re.compile(r"(cuda|gpu)(:\d+)?|\d+")

# Names of Dask's local schedulers, passed to dask as they are.
_LOCAL_SCHEDULERS = ("threads", "threading", "sync", "synchronous", "single-threaded",
                     "processes", "multiprocessing")
# Clients opened for an address, reused while they are connected.
_CLIENTS: dict = {}


@functools.lru_cache(maxsize=None)
def dask_namespace(eager=None):
    """A new namespace module built on array-api-compat's Dask namespace, which
    hands calls without a Dask array among their arguments to NumPy (or to
    ``eager``).

    The parameters of a dask-backend model are NumPy arrays (they are small
    and every chunk's task needs them), while ``X`` and ``y`` are Dask arrays.
    With this namespace the training loop's per-epoch work on parameters
    (finiteness checks, stacking the epoch's scalars) stays eager instead of
    becoming a graph that needs a second compute, and creation functions
    (``asarray`` of host data, ``zeros``) make ``eager``'s arrays; any call
    that touches a Dask array stays lazy.

    Parameters
    ----------
    eager : namespace, optional
        The namespace of the parameters where they are not NumPy (nnbackend's
        CuPy namespace for CuPy chunks); it must take NumPy's dtype objects,
        as CuPy does, since the dtypes are Dask's. None: nnbackend's NumPy
        namespace.

    Returns
    -------
    module
        Everything in ``array_api_compat.dask.array``, except that each of
        its public functions that ``eager`` also has as a function calls
        Dask's where an argument (or an item of a list or tuple argument) is
        a Dask array and ``eager``'s otherwise, and
        ``__array_namespace_info__`` is ``eager``'s. Made once per ``eager``
        and cached: every call with the same ``eager`` returns the same module.
    """
    dask_xp = import_or_refuse("dask", "array_api_compat.dask.array", _HINT)
    import_or_refuse("dask", "dask.array", _HINT)
    import dask.array as da

    eager = numpy_namespace() if eager is None else eager
    module_name = ("nnbackend.dask" if eager is numpy_namespace()
                   else f"nnbackend.dask+{eager.__name__}")

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
    return make_namespace(module_name, dask_xp, dask_namespace.__doc__, **overrides)


def _client(address: str, source: str):
    """A connected ``distributed.Client`` for ``address`` (one per address)."""
    import_or_refuse("dask", "distributed", _HINT)
    import distributed

    client = _CLIENTS.get(address)
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
    _CLIENTS[address] = client
    return client


def _cuda_client(source: str):
    """A Client of a dask-cuda ``LocalCUDACluster`` started here (one per process)."""
    client = _CLIENTS.get(CUDA_SCHEDULER)
    if client is not None and client.status == "running":
        return client
    try:
        import dask_cuda
    except Exception as exc:  # ImportError, or a broken install raising anything
        raise BackendUnavailableError(
            f"backend 'dask': scheduler='cuda'{source} starts dask-cuda's LocalCUDACluster "
            f"(one worker per GPU), and dask-cuda cannot be imported ({type(exc).__name__}: "
            f"{exc}). Install it with: {_CUDA_HINT}; or open your own Client, or name "
            "a scheduler address"
        ) from None
    import_or_refuse("dask", "distributed", _HINT)
    import distributed

    # One worker per visible GPU (CUDA_VISIBLE_DEVICES), as dask-cuda decides;
    # the Client becomes Dask's default, as any Client does.
    client = distributed.Client(dask_cuda.LocalCUDACluster())
    _CLIENTS[CUDA_SCHEDULER] = client
    return client


def _scheduler(scheduler):
    """What ``scheduler=`` (or the environment) names: None, a local scheduler's
    name, or a connected ``distributed.Client``."""
    scheduler, source = _named_scheduler(scheduler)
    if scheduler is None:
        return None
    if isinstance(scheduler, str):
        if scheduler in _LOCAL_SCHEDULERS:
            return scheduler
        if scheduler == CUDA_SCHEDULER:
            return _cuda_client(source)
        if not scheduler:
            raise ValueError("backend 'dask': the scheduler address is empty")
        return _client(scheduler, source)
    import_or_refuse("dask", "distributed", _HINT)
    import distributed

    if isinstance(scheduler, distributed.Client):
        return scheduler
    raise ValueError(
        f"backend 'dask': scheduler must be an address such as 'tcp://10.0.0.5:8786', "
        f"one of {list(_LOCAL_SCHEDULERS)}, or a distributed.Client; got {scheduler!r}"
    )


def _named_scheduler(scheduler):
    """``(scheduler, source)``: the argument, else ``$NNBACKEND_DASK_SCHEDULER``."""
    if scheduler is None and os.environ.get(DASK_SCHEDULER_ENV_VAR):
        return os.environ[DASK_SCHEDULER_ENV_VAR].strip(), f" (from ${DASK_SCHEDULER_ENV_VAR})"
    return scheduler, ""


def _gpu_device(device) -> bool:
    """Whether ``device`` names a GPU (else it must be None or 'cpu')."""
    if device is None or device == "cpu":
        return False
    if isinstance(device, (str, int)) and not isinstance(device, bool):
        if _GPU_DEVICE.fullmatch(str(device).strip().lower()):
            return True
        raise ValueError(
            f"backend 'dask' has the devices 'cpu' (NumPy chunks, parameters on the client's "
            f"CPU) and 'cuda' or 'cuda:N' (CuPy chunks, parameters on that GPU of the client); "
            f"got {device!r}; to use other machines, give a scheduler address"
        )
    return True  # a device object (cupy.cuda.Device): CuPy judges it


@dataclass(frozen=True, repr=False)
class DaskBackend(Backend):
    """Dask arrays chunked by rows; parameters on the client, in the chunks' library.

    ``params_backend`` is the backend the parameters live in where they are
    not NumPy (the CuPy backend on a GPU of the client, for CuPy chunks);
    None for NumPy parameters. ``device`` is then its device.
    """

    params_backend: Any = field(default=None, compare=False)

    # Backend's, kept: the dataclass decorator would make one hashing the device
    # object, which CuPy's is not.
    __hash__ = Backend.__hash__

    install_hint = _HINT
    executor_names = ("dask-chunks",)
    no_reference_loop = ("the dask backend has no reference loop; it always runs the "
                         "'dask-chunks' executor (use executor='auto')")
    computes_by_chunk = True

    @classmethod
    def load(cls, name, device=None, scheduler=None):
        """The dask backend: device None or 'cpu' for NumPy chunks, 'cuda' or
        'cuda:N' for CuPy chunks (the parameters on that GPU of the client);
        ``scheduler="cuda"`` starts a dask-cuda LocalCUDACluster and implies
        ``device="cuda"``."""
        xp = dask_namespace()
        gpu = _gpu_device(device)
        named, _ = _named_scheduler(scheduler)
        scheduler = _scheduler(scheduler)
        if not gpu and device is None and named == CUDA_SCHEDULER:
            gpu, device = True, "cuda"
        if not gpu:
            return cls(name, xp, "cpu", scheduler)
        from ..cupy import CupyBackend

        try:
            params_backend = CupyBackend.load("cupy", device)
        except BackendUnavailableError as exc:
            raise BackendUnavailableError(
                f"backend 'dask' on device {device!r} keeps the parameters on that GPU "
                f"with CuPy (for CuPy chunks): {exc}"
            ) from None
        return cls.on(params_backend, scheduler, name)

    @classmethod
    def on(cls, params_backend, scheduler=None, name="dask"):
        """The dask backend whose parameters live in ``params_backend`` (its
        namespace and device), computing on ``scheduler`` (already resolved:
        None, a local scheduler's name or a Client). Its namespace hands calls
        without Dask arrays to ``params_backend.xp``, which must take NumPy's
        dtypes (CuPy's and JAX's do)."""
        return cls(name, dask_namespace(params_backend.xp), params_backend.device, scheduler,
                   params_backend=params_backend)

    @classmethod
    def of_array(cls, a):
        """The dask backend of a Dask array: NumPy parameters for NumPy chunks,
        and for chunks of another known library (CuPy: ``a._meta`` is a CuPy
        array) parameters in that library on the client's current device."""
        import array_api_compat as compat

        if not compat.is_dask_array(a):
            return None
        meta = getattr(a, "_meta", None)
        if meta is None or isinstance(meta, np.ndarray):
            return cls.load("dask")
        from .chunks import known_backend

        params_backend = known_backend(meta)
        if params_backend is None:  # chunks of a library nnbackend does not know: as before
            return cls.load("dask")
        if params_backend.name != "cupy":
            # The parameters of other libraries' chunks (torch, JAX,
            # array-api-strict) cannot take the Dask arrays' NumPy dtypes,
            # nor can Dask run their chunks' steps: refused here, by name.
            from ..base import UnusableArrayError

            raise UnusableArrayError(
                f"a Dask array of {params_backend.name} chunks (its _meta is "
                f"{type(meta).__module__}.{type(meta).__qualname__}): the dask backend takes "
                "Dask arrays of NumPy or CuPy chunks; make its chunks NumPy arrays "
                "(X.map_blocks(np.asarray)), or compute it and pass the "
                f"{params_backend.name} array to the {params_backend.name!r} backend")
        return cls.on(params_backend, _scheduler(None))

    def asarray(self, a, dtype=None):
        """Host data or parameters on the parameters' device; a Dask array stays lazy."""
        import dask.array as da

        if self.params_backend is not None and isinstance(a, da.Array):
            return self.xp.asarray(a, dtype=dtype)
        return super().asarray(a, dtype=dtype)

    def from_chunks(self, a):
        """An array computed from chunks (a task's result) in the parameters'
        namespace and on their device: returned as it is where it already is
        (NumPy for NumPy parameters, CuPy on the parameters' GPU), else copied
        once (a GPU-to-GPU copy between two GPUs)."""
        inner = self.params_backend
        if inner is None:
            return a if isinstance(a, (np.ndarray, np.generic)) else self.to_host(a)
        if isinstance(a, (np.ndarray, np.generic)):
            return inner.asarray(a)
        own = inner.of_array(a)
        if own is not None and own.device == inner.device:
            return a
        return inner.xp.asarray(a, device=inner.device, copy=True)

    def to_host(self, a) -> np.ndarray:
        """A NumPy array: a lazy array is computed (on :attr:`scheduler`); the
        parameters, already NumPy, are returned as they are, not copied (CuPy
        ones are copied to the host)."""
        import dask.array as da

        if isinstance(a, da.Array):
            a = a.compute(scheduler=self.scheduler)
        elif self.params_backend is not None and self.params_backend.of_array(a) is not None:
            return np.asarray(self.params_backend.to_host(a))
        if hasattr(a, "get") and not isinstance(a, np.ndarray):  # a CuPy chunk result
            a = a.get()
        return np.asarray(a)

    def lazy_rows(self, path):
        """The file's rows as a Dask array read chunk by chunk; with parameters
        on a GPU, each chunk is moved to its worker's GPU in its task."""
        from .chunks import on_library, open_npy

        rows = open_npy(path)
        inner = self.params_backend
        return rows if inner is None else on_library(rows, inner.xp, inner.device)

    def loop_context(self):
        # The steps run on NumPy parameters on the client; every compute
        # in the loop goes to the backend's scheduler.
        stack = contextlib.ExitStack()
        stack.enter_context(quiet_numpy())
        stack.enter_context(self.compute_context())
        return stack

    def compute_context(self):
        """Lazy arrays compute on :attr:`scheduler` inside it, when one was
        named (else on Dask's default)."""
        if self.scheduler is None:
            return contextlib.nullcontext()
        import dask

        return dask.config.set(scheduler=self.scheduler)

    def rows_per_pass(self, X, chunk_size: int) -> int:
        """The largest row chunk of ``X`` (at least ``chunk_size``), up to
        :data:`PASS_SCALE` times ``chunk_size``: every slice of a Dask array
        is a piece of graph, and 2048-row slices of a million rows made an
        evaluation 25 times slower than one slice per chunk; but a task
        holds its slice's activations, and a whole chunk of a narrow file
        (8e6 rows of 2 columns, 64 hidden units) took 6.5 GB."""
        if getattr(X, "chunks", None):
            return max(chunk_size, min(max(X.chunks[0]), PASS_SCALE * chunk_size))
        return chunk_size

    def computed(self, arrays) -> list:
        import dask

        return [self.from_chunks(a)
                for a in dask.compute(*arrays, scheduler=self.scheduler)]

    def without_empty_chunks(self, a):
        chunks = getattr(a, "chunks", None)
        if not chunks or 0 not in chunks[0] or sum(chunks[0]) == 0:
            return a
        return a.rechunk({0: tuple(c for c in chunks[0] if c)})

    def matmul_precision(self, precision, dtype):
        """Nothing is set: the chunks' matmuls run on Dask's workers, which may
        be other processes, and a library's TF32 switch is per process. With
        CuPy chunks, set ``CUPY_TF32=1`` in the workers' environment instead."""
        if self.params_backend is None or not self.params_backend.is_gpu():
            return super().matmul_precision(precision, dtype)
        if precision is not None:
            raise ValueError(
                f"backend 'dask': precision={precision!r} cannot be set for a fit on CuPy "
                "chunks: their matmuls run on Dask's workers, which may be other processes; "
                "set CUPY_TF32=1 (or leave it unset) in the workers' environment instead, "
                "and precision=None")
        return contextlib.nullcontext("CuPy's own setting on the workers")

    def executors(self) -> tuple:
        from .chunks import DaskChunks

        return (DaskChunks(),)

    # -- parameters on a GPU: the device queries are the parameters' backend's ----
    def is_gpu(self) -> bool:
        return self.params_backend is not None and self.params_backend.is_gpu()

    def free_memory(self):
        return None if self.params_backend is None else self.params_backend.free_memory()

    def accelerator_name(self):
        return None if self.params_backend is None else self.params_backend.accelerator_name()

    def gpus(self) -> list:
        return [] if self.params_backend is None else self.params_backend.gpus()

    def synchronize(self) -> None:
        if self.params_backend is not None:
            self.params_backend.synchronize()

    def device_spec(self) -> str:
        # What load takes: "cuda:N" for CuPy parameters, else "cpu" (parameters
        # of another library follow the chunks' _meta, not a device name).
        params = self.params_backend
        return params.device_spec() if params is not None and params.name == "cupy" else "cpu"

    def device_name(self) -> str:
        scheduler = self.scheduler
        try:
            client = (cpu_name() if self.params_backend is None
                      else self.params_backend.device_name())
            if scheduler is None or isinstance(scheduler, str):
                return f"{client} (dask {scheduler or 'default'} scheduler)"
            workers = scheduler.scheduler_info().get("workers", {})
            kind = "dask-cuda LocalCUDACluster" if scheduler is _CLIENTS.get(CUDA_SCHEDULER) \
                else "dask.distributed cluster"
            where = f"{kind} at {scheduler.scheduler.address} ({len(workers)} workers)"
            return where if self.params_backend is None else f"{where}; parameters on {client}"
        except Exception:
            return cpu_name()
