"""Dask: data chunked by rows (out of core, or on a dask.distributed cluster).

``X`` and ``y`` are Dask arrays; the parameters stay NumPy arrays on the
client (see :func:`dask_namespace`); ``scheduler=`` (or
``$NNBACKEND_DASK_SCHEDULER``) names the cluster. Device ``cpu``. Every
plan runs through the chunk executor (:mod:`.chunks`).
"""

from __future__ import annotations

import contextlib
import functools
import os

import numpy as np

from ..base import Backend, BackendUnavailableError, cpu_name, import_or_refuse, make_namespace, quiet_numpy
from ..numpy import numpy_namespace

__all__ = ["DaskBackend", "DASK_SCHEDULER_ENV_VAR"]

DASK_SCHEDULER_ENV_VAR = "NNBACKEND_DASK_SCHEDULER"
_HINT = "pip install 'nnbackend[dask]'  (dask[array] and distributed)"

# Names of Dask's local schedulers, passed to dask as they are.
_LOCAL_SCHEDULERS = ("threads", "threading", "sync", "synchronous", "single-threaded",
                     "processes", "multiprocessing")
# Clients opened for an address, reused while they are connected.
_CLIENTS: dict = {}


@functools.lru_cache(maxsize=1)
def dask_namespace():
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
    dask_xp = import_or_refuse("dask", "array_api_compat.dask.array", _HINT)
    import_or_refuse("dask", "dask.array", _HINT)
    import dask.array as da

    eager = numpy_namespace()

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
    return make_namespace("nnbackend.dask", dask_xp, dask_namespace.__doc__, **overrides)


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


def _scheduler(scheduler):
    """What ``scheduler=`` (or the environment) names: None, a local scheduler's
    name, or a connected ``distributed.Client``."""
    source = ""
    if scheduler is None and os.environ.get(DASK_SCHEDULER_ENV_VAR):
        scheduler, source = os.environ[DASK_SCHEDULER_ENV_VAR].strip(), f" (from ${DASK_SCHEDULER_ENV_VAR})"
    if scheduler is None:
        return None
    if isinstance(scheduler, str):
        if scheduler in _LOCAL_SCHEDULERS:
            return scheduler
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


class DaskBackend(Backend):
    """Dask arrays chunked by rows; NumPy parameters on the client."""

    install_hint = _HINT
    executor_names = ("dask-chunks",)
    no_reference_loop = ("the dask backend has no reference loop; it always runs the "
                         "'dask-chunks' executor (use executor='auto')")
    computes_by_chunk = True

    @classmethod
    def load(cls, name, device=None, scheduler=None):
        xp = dask_namespace()
        if device not in (None, "cpu"):
            raise ValueError(
                f"backend 'dask' has only the device 'cpu' (its chunks are NumPy arrays), "
                f"got {device!r}; to use other machines, give a scheduler address"
            )
        return cls(name, xp, "cpu", _scheduler(scheduler))

    @classmethod
    def of_array(cls, a):
        import array_api_compat as compat

        return cls.load("dask") if compat.is_dask_array(a) else None

    def to_host(self, a) -> np.ndarray:
        """A NumPy copy: a lazy array is computed (on :attr:`scheduler`); the
        parameters, already NumPy, are returned as they are."""
        import dask.array as da

        if isinstance(a, da.Array):
            a = a.compute(scheduler=self.scheduler)
        if hasattr(a, "get") and not isinstance(a, np.ndarray):  # a CuPy chunk result
            a = a.get()
        return np.asarray(a)

    def lazy_rows(self, path):
        from .chunks import open_npy

        return open_npy(path)

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
        """The largest row chunk of ``X`` (at least ``chunk_size``): every slice
        of a Dask array is a piece of graph, and 2048-row slices of a million
        rows made an evaluation 25 times slower than one slice per chunk."""
        if getattr(X, "chunks", None):
            return max(chunk_size, max(X.chunks[0]))
        return chunk_size

    def executors(self) -> tuple:
        from .chunks import DaskChunks

        return (DaskChunks(),)

    def device_name(self) -> str:
        scheduler = self.scheduler
        try:
            if scheduler is None or isinstance(scheduler, str):
                return f"{cpu_name()} (dask {scheduler or 'default'} scheduler)"
            workers = scheduler.scheduler_info().get("workers", {})
            return f"dask.distributed cluster at {scheduler.scheduler.address} ({len(workers)} workers)"
        except Exception:
            return cpu_name()
