"""Backends: a name (and device) in, an array namespace ``xp`` out.

This package is the only place that knows array libraries by name. Each
backend is one module (or a folder, where it has a fast epoch executor)
holding a :class:`Backend` subclass: its loader, namespace fixes, device
queries, capability flags and executors. Everything else receives a
:class:`Backend` (or finds ``xp`` from its input arrays) and uses the Array
API standard alone.

A new backend is a new module here with a ``Backend`` subclass that
overrides :meth:`Backend.open` and :meth:`Backend.of_array` (and whatever
else differs), added to :data:`_CLASSES` below.

Names
-----
``numpy``   NumPy (CPU).
``strict``  ``array_api_strict``, with its simulated devices.
``torch``   PyTorch; devices ``cpu``, ``cuda``, ``cuda:N``.
``jax``     ``jax.numpy``; devices ``cpu``, ``gpu``, ``gpu:N``.
``cupy``    CuPy; devices ``N`` or ``cuda:N``. Needs an NVIDIA GPU.
``dask``    Dask arrays chunked by rows (NumPy or CuPy chunks); device ``cpu``, or
            ``cuda``/``cuda:N`` for CuPy chunks; ``scheduler=``.
"""

from __future__ import annotations

import functools
import os

from .auto import AUTO, auto_candidates, candidate_key, host_backend, is_auto
from .base import Backend, BackendUnavailableError, FLOAT_DTYPES, UnusableArrayError, cpu_name
from .cupy import CupyBackend
from .dask import DASK_SCHEDULER_ENV_VAR, DaskBackend
from .jax import JaxBackend
from .numpy import NumpyBackend
from .strict import StrictBackend
from .torch import TorchBackend

__all__ = [
    "AUTO",
    "Backend",
    "BackendUnavailableError",
    "UnusableArrayError",
    "BACKEND_NAMES",
    "DASK_SCHEDULER_ENV_VAR",
    "ENV_VAR",
    "FLOAT_DTYPES",
    "auto_candidates",
    "available_backends",
    "backend_of",
    "candidate_key",
    "cpu_name",
    "executor_hosts",
    "executor_names",
    "executor_owner",
    "get_backend",
    "host_backend",
    "is_auto",
    "library_version",
]

ENV_VAR = "NNBACKEND_BACKEND"

_CLASSES = {
    "numpy": NumpyBackend,
    "strict": StrictBackend,
    "torch": TorchBackend,
    "jax": JaxBackend,
    "cupy": CupyBackend,
    "dask": DaskBackend,
}
BACKEND_NAMES = tuple(_CLASSES)


def get_backend(name: str | None = None, device=None, *, scheduler=None) -> Backend:
    """The backend called ``name`` on ``device``.

    Parameters
    ----------
    name : str, Backend or None
        One of :data:`BACKEND_NAMES`, or one with its device after a colon
        (``"torch:cuda"``, ``"jax:cpu"``, ``"cupy:1"``) in place of
        ``device``. ``None`` reads ``$NNBACKEND_BACKEND``,
        then falls back to ``"numpy"``. ``"auto"`` is no backend of its own
        (a model picks one at each fit) and is refused here.
    device : str, int, device object or None
        The backend's device; ``None`` for its default: the CPU for numpy,
        strict, torch and dask (dask: unless the scheduler, given or from
        ``$NNBACKEND_DASK_SCHEDULER``, is ``"cuda"``, which implies
        ``"cuda"``), GPU 0 for CuPy, and for jax JAX's default
        device: the one ``jax.default_device`` names, else
        ``jax.devices()[0]`` (its first GPU where jaxlib has one, else the CPU).
    scheduler : str, distributed.Client or None
        dask only. A dask.distributed scheduler address (``tcp://host:8786``;
        a Client is opened and becomes Dask's default), a local scheduler's
        name (``"threads"``, ``"synchronous"``, ``"processes"``), or a Client.
        ``None`` reads ``$NNBACKEND_DASK_SCHEDULER``, then leaves Dask's
        default (its threaded scheduler, or a Client the caller opened).

    Returns
    -------
    Backend
        The backend (a :class:`Backend` subclass) with its namespace ``xp``
        and resolved ``device``. A :class:`Backend` given as ``name`` with no
        ``device`` or ``scheduler`` is returned as it is.

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
    if key == AUTO:
        source = " (from $NNBACKEND_BACKEND)" if os.environ.get(ENV_VAR) == name else ""
        raise ValueError(f"backend 'auto'{source} is chosen at each fit, not here: pass "
                         "backend='auto' to MLP or an estimator (nnbackend.explain_backend "
                         f"says what it would pick), or name one of {list(BACKEND_NAMES)}")
    prefix, colon, _ = key.partition(":")
    if colon and prefix in _CLASSES:
        # "torch:cuda", "jax:gpu:1": the device in the name, as the benchmark writes it,
        # in its own case ("strict:CPU_DEVICE").
        named_device = str(name).strip().partition(":")[2]
        if device is not None and str(device) != named_device:
            raise ValueError(f"backend {name!r} names its device ({named_device!r}) and "
                             f"device={device!r} names another; name it once")
        key, device = prefix, named_device
    if key not in _CLASSES:
        source = f" (from ${ENV_VAR})" if os.environ.get(ENV_VAR) == name else ""
        raise ValueError(
            f"unknown backend {name!r}{source}; choose one of {list(BACKEND_NAMES)}"
        )
    return _CLASSES[key].load(key, device, scheduler)


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

    Returns
    -------
    list of str
        Backend names, e.g. ``['numpy', 'strict', 'torch', 'jax', 'dask']``.
    """
    return [name for name in BACKEND_NAMES if _usable(name)]


def backend_of(a) -> Backend:
    """The backend an array belongs to (its namespace and device).

    Parameters
    ----------
    a : array of any shape
        An array of one of the backends' libraries.

    Returns
    -------
    Backend
        The backend of ``a``'s library, on the device ``a`` lives on.

    Raises
    ------
    TypeError
        ``a`` is not an array of a known backend: lists, tuples, numbers
        and NumPy scalars are refused too.
    """
    for cls in _CLASSES.values():
        backend = cls.of_array(a)
        if backend is not None:
            return backend
    raise TypeError(
        f"expected a NumPy array or an array of one of {list(BACKEND_NAMES)}; "
        f"got {type(a).__module__}.{type(a).__qualname__}"
    )


def library_version(name: str) -> str | None:
    """The installed version of backend ``name``'s library, or None (never an error)."""
    cls = _CLASSES.get(name)
    return None if cls is None else cls.version(name)


def executor_names() -> tuple[str, ...]:
    """Every backend's fast epoch executors, by name, each once.

    A name may be listed by several backends: the CuPy kernels' executors
    (``cupy-fused``, ...) are also torch's and jax's, whose CUDA arrays
    cross to them by DLPack (see :mod:`.cupy.bridge`).
    """
    return tuple(dict.fromkeys(n for cls in _CLASSES.values() for n in cls.executor_names))


def executor_hosts(executor: str) -> tuple[str, ...]:
    """The backends that run executor ``executor``: its owner (:func:`executor_owner`)
    first, then those that reach it through a bridge; () for an unknown name."""
    owner = executor_owner(executor)
    others = [key for key, cls in _CLASSES.items()
              if key != owner and executor in cls.executor_names]
    return ((owner,) if owner else ()) + tuple(others)


def executor_owner(executor: str) -> str | None:
    """The name of the backend whose executor ``executor`` is, or None.

    The owner is the backend whose arrays the executor's kernels are written
    for: a backend lists the executors it borrows (by DLPack, from another
    backend) in ``bridged_executor_names`` too, and does not own those.
    """
    for key, cls in _CLASSES.items():
        borrowed = getattr(cls, "bridged_executor_names", ())
        if executor in cls.executor_names and executor not in borrowed:
            return key
    return None
