"""What every backend shares: the :class:`Backend` base class and its helpers.

A backend is an Array API namespace ``xp`` and a device. The base class
holds the behaviour most backends share; each backend module subclasses it
and overrides what differs (its loader, dtypes, host transfer, loop
context, device queries, fast epoch executors), so nothing here branches
on a backend's name.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import types
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = ["Backend", "BackendUnavailableError", "CPU_ACTIVATION_BUDGET", "FLOAT_DTYPES",
           "GPU_BUDGET_CAP", "GPU_BUDGET_FRACTION", "cpu_name", "gpu_budget", "import_or_refuse",
           "make_namespace", "native_host"]

FLOAT_DTYPES = ("float32", "float64")

# Bytes one chunk's activations may take on a CPU: about a last-level cache's
# share per core. It gives 2048 rows to a [32, 64, 1] float32 network, the
# row count chunks had before they were sized in bytes (see
# nnbackend.network.rows_for_budget).
CPU_ACTIVATION_BUDGET = 4 * 2**20

# On a GPU: this share of the free device memory (the rest is for the data
# the caller moves next, cuBLAS workspaces and other processes), at most
# GPU_BUDGET_CAP: past a few GiB of activations per chunk a GPU is busy
# already, and one chunk of a [32, 64, 1] float32 network at the cap holds
# 2^21 rows, where the H200 measurements of issue 12 peaked.
GPU_BUDGET_FRACTION = 0.25
GPU_BUDGET_CAP = 4 * 2**30
# Where a GPU's free memory cannot be read.
GPU_BUDGET_UNKNOWN = 2**30


def gpu_budget(free_bytes: int | None) -> int:
    """A GPU's activation budget in bytes from its free memory (None: unknown)."""
    if free_bytes is None:
        return GPU_BUDGET_UNKNOWN
    return max(0, min(int(free_bytes * GPU_BUDGET_FRACTION), GPU_BUDGET_CAP))


class BackendUnavailableError(RuntimeError):
    """A known backend (or one of its devices) cannot be used on this machine."""


def import_or_refuse(backend: str, module: str, hint: str):
    """``module`` imported, or a :class:`BackendUnavailableError` that says how
    to install ``backend`` (never the library's own import error)."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install raising anything
        raise BackendUnavailableError(
            f"backend {backend!r} is not available: importing {module!r} failed "
            f"({type(exc).__name__}: {exc}). Install it with: {hint}"
        ) from None


def native_host(a: np.ndarray) -> np.ndarray:
    """``a`` as every array library takes a NumPy array: native byte order, no
    negative strides, no extended precision (torch refuses each of the three:
    ``X.astype('>f8')``, ``X[::-1]``, ``np.longdouble``). A copy only where one
    of them is found; the values are ``a``'s (extended floats as float64)."""
    if a.dtype.kind == "f" and a.dtype.itemsize > 8:
        return a.astype(np.float64)
    if not a.dtype.isnative:
        return a.astype(a.dtype.newbyteorder("="))
    if any(stride < 0 for stride in a.strides):
        return a.copy()
    return a


def make_namespace(name, base, doc, **overrides):
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


def quiet_numpy():
    """NumPy's overflow warnings off: a diverging run would warn at every
    operation, and the training loop reports divergence itself, once."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


class UnusableArrayError(TypeError):
    """An array of a backend's library in a form nnbackend cannot use (a JAX
    tracer, an array sharded over several devices); the message says why."""


@dataclass(frozen=True)
class Backend:
    """An array namespace and the device arrays are placed on.

    Made by :func:`nnbackend.get_backend` (or :meth:`load`), not directly;
    each backend is a subclass. A frozen dataclass: two backends are equal
    when their name, namespace and device are (``scheduler`` is not compared).

    Parameters
    ----------
    name : str
        One of :data:`nnbackend.BACKEND_NAMES`.
    xp : module
        The Array API namespace.
    device : object
        The namespace's device object.
    scheduler : object, default=None
        dask only: where its lazy arrays compute (see the dask backend).

    Attributes
    ----------
    name : str
        One of :data:`nnbackend.BACKEND_NAMES`.
    xp : module
        The Array API namespace.
    device : object
        The namespace's device object (``None`` never appears: the default
        device is resolved when the backend is made).
    scheduler : object
        dask only: where its lazy arrays compute (see the dask backend);
        None elsewhere.
    """

    name: str
    xp: Any
    device: Any
    scheduler: Any = field(default=None, compare=False)

    #: How to install the backend, quoted in every "not available" error.
    install_hint: ClassVar[str] = ""
    #: The distribution whose version ``nnbackend info`` reports ("" for the backend's name).
    distribution: ClassVar[str] = ""
    #: Names of the fast epoch executors :meth:`executors` makes.
    executor_names: ClassVar[tuple[str, ...]] = ()
    #: Why the reference loop cannot train on this backend's arrays; None where it can.
    no_reference_loop: ClassVar[str | None] = None
    #: Whether :meth:`blas_threads` sets anything (NumPy's BLAS, through threadpoolctl).
    sets_blas_threads: ClassVar[bool] = False
    #: Whether its arrays are lazy and compute chunk by chunk already: then
    #: ``predict`` builds one forward pass over all rows instead of slicing.
    computes_by_chunk: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r})"

    def __reduce__(self):
        # Its namespace is a module, which pickles not: a pickled model (or a
        # deepcopy) keeps the backend as get_backend takes it back, and opens
        # it there again (a GPU backend needs its GPU where it is unpickled).
        scheduler = self.scheduler if isinstance(self.scheduler, str) else None
        return type(self).load, (self.name, self.device_spec(), scheduler)

    def __hash__(self) -> int:
        # Backends key caches (compiled figure functions). The device enters by
        # its text: CuPy's Device compares but does not hash (no __hash__ beside
        # its __richcmp__), and equal devices print the same.
        return hash((self.name, id(self.xp), str(self.device)))

    # -- making one ---------------------------------------------------------------
    @classmethod
    def load(cls, name: str, device=None, scheduler=None) -> "Backend":
        """The backend on ``device`` (``None``: its default device).

        Parameters
        ----------
        name : str
            The backend's name, stored as :attr:`name`.
        device : str or device object, default=None
            The device, as :func:`nnbackend.get_backend` takes it; None for
            the backend's default device.
        scheduler : str or distributed.Client, default=None
            dask only; any other backend refuses one.

        Returns
        -------
        Backend
            An instance of this class.

        Raises
        ------
        BackendUnavailableError
            The library or the device cannot be used on this machine.
        ValueError
            The device is unknown to the backend, or a scheduler was given
            to a backend other than dask.
        """
        if scheduler is not None:
            raise ValueError(f"scheduler= applies to the dask backend only, not {name!r}")
        xp, dev = cls.open(device)
        return cls(name, xp, dev)

    @classmethod
    def open(cls, device):
        """The namespace and the resolved device for a requested device.

        Each backend subclass implements it.

        Parameters
        ----------
        device : str, device object or None
            The requested device; None for the backend's default.

        Returns
        -------
        xp : module
            The Array API namespace.
        device : object
            The namespace's device object.

        Raises
        ------
        BackendUnavailableError
            The library or the device cannot be used (never the library's
            own import or driver error).
        ValueError
            The device is not one the backend knows.
        """
        raise NotImplementedError

    @classmethod
    def of_array(cls, a) -> "Backend | None":
        """The backend an array belongs to.

        Parameters
        ----------
        a : object
            Any object; typically an array.

        Returns
        -------
        Backend or None
            The backend of ``a``'s library, on ``a``'s device, where ``a`` is
            an array of this backend's library; None otherwise.
        """
        return None

    # -- dtypes ---------------------------------------------------------------
    def dtype(self, name: str):
        """The namespace's floating dtype for a dtype name.

        Parameters
        ----------
        name : str
            ``'float32'`` or ``'float64'`` (anything whose ``str`` is one).

        Returns
        -------
        dtype
            ``xp.float32`` or ``xp.float64``.

        Raises
        ------
        ValueError
            For other names, and for float64 on a device that has none
            (e.g. array-api-strict's ``no_float64`` device).
        """
        name = str(name)
        if name not in FLOAT_DTYPES:
            raise ValueError(f"dtype must be one of {list(FLOAT_DTYPES)}, got {name!r}")
        usable = self.float_dtypes()
        if not usable:  # no array of any float dtype could be made there
            raise BackendUnavailableError(
                f"backend {self.name!r}: device {self.device_spec()!r} is not usable here (no "
                "array could be made on it); choose another device")
        if name not in usable:
            raise ValueError(
                f"dtype {name!r} is not supported by backend {self.name!r} on "
                f"device {self.device!r}; use dtype='float32'"
            )
        return getattr(self.xp, name)

    def float_dtypes(self) -> tuple[str, ...]:
        """Names of the floating dtypes this backend's device supports.

        Returns
        -------
        tuple of str
            A subset of ``('float32', 'float64')``, in that order.
        """
        info = self.xp.__array_namespace_info__()
        supported = info.dtypes(device=self.device, kind="real floating")
        return tuple(n for n in FLOAT_DTYPES if n in supported)

    def wide_dtype(self):
        """The dtype that sums over many rows accumulate in: ``xp.float64``
        where this device holds it now, else None (the data's own dtype)."""
        return self.xp.float64 if "float64" in self.float_dtypes() else None

    def wide_scope(self):
        """A context for sums that must be wide whatever the process's settings
        (a scaler's statistics): JAX's x64 for the block where it is off, so
        that :meth:`wide_dtype` is float64 there; nothing elsewhere."""
        return contextlib.nullcontext()

    def index_dtype(self):
        """The namespace's default indexing dtype on this device.

        Returns
        -------
        dtype
            The integer dtype of the namespace's indices (e.g. ``int64``).
        """
        return self.xp.__array_namespace_info__().default_dtypes(device=self.device)["indexing"]

    # -- moving arrays ----------------------------------------------------------
    def probe_array(self, a, dtype_name: str):
        """``a`` as an array of the dtype named, to ask executors whether they take
        a fit (``backend="auto"`` pricing a candidate): a backend whose dtypes
        switch process-wide (JAX's float64) makes it without switching them.

        Parameters
        ----------
        a : array-like
            Host data.
        dtype_name : {'float32', 'float64'}

        Returns
        -------
        array
        """
        return self.asarray(a, dtype=self.dtype(dtype_name))

    def asarray(self, a, dtype=None):
        """Data as an array of this namespace on this backend's device.

        Parameters
        ----------
        a : array-like of any shape
            Host data (NumPy array, list, scalar) or an array of this namespace.
        dtype : dtype, default=None
            The namespace's dtype to convert to; None keeps the inferred one.

        Returns
        -------
        array of the same shape as ``a``
            An array of :attr:`xp` on :attr:`device`.
        """
        if isinstance(a, np.ndarray):
            a = native_host(a)
        return self.xp.asarray(a, dtype=dtype, device=self.device)

    def to_host(self, a) -> np.ndarray:
        """The values of an array of this backend as a NumPy array (a
        device-to-host sync).

        Not always a copy: where ``a``'s memory is already on the host, the
        result may be ``a`` itself or share its memory. A NumPy array (the
        numpy backend, dask's parameters) comes back as it is, and torch and
        array-api-strict on the CPU give a view of it, so writing to the
        result changes ``a``; JAX on the CPU gives a read-only view. Copy it
        before changing it. From a GPU it is a copy.

        Parameters
        ----------
        a : array of any shape
            An array of this backend (a lazy one is computed).

        Returns
        -------
        numpy.ndarray of the same shape as ``a``
        """
        return np.asarray(a)

    def export(self, arrays):
        """Arrays made inside :meth:`loop_context`, made fit for any later use.

        The default returns them as they are; torch copies them out of
        inference mode.

        Parameters
        ----------
        arrays : iterable of arrays
            Arrays of this backend, of any shapes.

        Returns
        -------
        list of arrays
            The same arrays (or copies), in order, shapes unchanged.
        """
        return list(arrays)

    def lazy_rows(self, path):
        """A ``.npy`` file's rows as a lazy array read chunk by chunk (out of core).

        Parameters
        ----------
        path : str or os.PathLike
            A ``.npy`` file holding an array of shape (n_rows, ...).

        Returns
        -------
        array of shape (n_rows, ...) or None
            A lazy array of this backend (dask:
            :func:`nnbackend.backends.dask.chunks.open_npy`); None where the
            backend has no lazy arrays (every backend but dask).
        """
        return None

    # -- running ------------------------------------------------------------------
    def loop_context(self):
        """The context the training loop runs in.

        Returns
        -------
        context manager
            Nothing to set by default; NumPy-based backends silence NumPy's
            overflow warnings in it, dask computes on its scheduler in it.
        """
        return contextlib.nullcontext()

    def blas_threads(self, threads: int | None):
        """A context that runs the backend's BLAS with a given number of threads.

        Parameters
        ----------
        threads : int or None
            BLAS threads for the fit inside the context; None leaves BLAS as
            it is.

        Returns
        -------
        context manager
            Nothing to set by default; NumPy limits its BLAS through
            threadpoolctl where it is installed (see :attr:`sets_blas_threads`
            and ``backends/blas.py``).
        """
        return contextlib.nullcontext()

    def matmul_precision(self, precision, dtype):
        """A context that runs float32 matmuls at ``precision`` (see
        :mod:`nnbackend.backends.precision`), yielding the precision they run at.

        Parameters
        ----------
        precision : {None, 'highest', 'tf32'}
            None leaves the library's own setting.
        dtype : dtype
            The fit's arrays' dtype: only float32 matmuls have a TF32 form.

        Returns
        -------
        context manager
            Yields ``"highest"`` here: a CPU has no TF32, and nothing is set.
            CuPy, torch on CUDA and JAX on a GPU set their library's switch.
        """
        return contextlib.nullcontext("highest")

    def compiled(self, fn):
        """``fn`` as one dispatch, where the library compiles functions of its arrays.

        The training loop's per-epoch figures (a dozen small reductions) go
        through this: run eagerly, each reduction is a dispatch of its own.

        Parameters
        ----------
        fn : callable
            A pure function of this backend's arrays (and of None and
            tuples of them), called with arrays of the same shapes each time.

        Returns
        -------
        callable
            ``fn`` itself here (each operation runs as it is called); JAX:
            ``jax.jit(fn)``.
        """
        return fn

    def compute_context(self):
        """A context inside which lazy arrays compute on the backend's scheduler.

        Returns
        -------
        context manager
            Nothing to set by default (only dask has lazy arrays).
        """
        return contextlib.nullcontext()

    def rows_per_pass(self, X, chunk_size: int) -> int:
        """How many rows of ``X`` to push through the network at once.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            The inputs about to be evaluated.
        chunk_size : int
            Rows per chunk, already resolved from :meth:`activation_budget`.

        Returns
        -------
        int
            ``chunk_size`` by default; dask returns at least the largest row
            chunk of ``X``, so that no chunk is sliced.
        """
        return chunk_size

    def computed(self, arrays) -> list:
        """``arrays`` computed, together: a lazy backend's in one pass over the
        data, into the parameters' namespace; others' as they are."""
        return list(arrays)

    def holds_data(self) -> bool:
        """False for a device of shapes without values (torch's 'meta'): a
        model never moves there, and arrays there are refused by name."""
        return True

    def detached(self, a):
        """``a``'s values with no framework state attached: torch's a tensor
        that autograd does not follow (a caller's parameters or data that
        require gradients; the model computes its own), others as they are."""
        return a

    def without_empty_chunks(self, a):
        """``a`` with no row chunk of 0 rows (dask: rechunked, lazily; a boolean
        mask leaves such chunks, which Dask's own reductions refuse); others as
        they are.

        Parameters
        ----------
        a : array of this backend, shape (n_rows, ...)

        Returns
        -------
        array of the same shape and values
        """
        return a

    def activation_budget(self) -> int:
        """Bytes that one chunk's activations (forward and backward) may take.

        ``chunk_size="auto"`` turns it into rows
        (:func:`nnbackend.network.chunk_rows`).

        Returns
        -------
        int
            :data:`CPU_ACTIVATION_BUDGET` on a CPU; on a GPU a share of its
            free memory (:func:`gpu_budget` of :meth:`free_memory`), asked
            anew on each call.
        """
        if not self.is_gpu():
            return CPU_ACTIVATION_BUDGET
        try:
            free = self.free_memory()
        except Exception:  # a driver query that fails leaves the cautious default
            free = None
        return gpu_budget(free)

    def free_memory(self) -> int | None:
        """Free bytes on the device for new arrays.

        Returns
        -------
        int or None
            Free bytes, including blocks the library's allocator holds
            unused; None where unknown (the default, and on CPUs).
        """
        return None

    def executors(self) -> tuple:
        """This backend's fast epoch executors, in order of preference.

        Returns
        -------
        tuple of executors
            New executor objects (see :mod:`nnbackend.engine` for their
            contract); empty by default.
        """
        return ()

    def synchronize(self) -> None:
        """Wait until queued device work is done (for timing)."""

    # -- the device ---------------------------------------------------------------
    def device_spec(self) -> str:
        """The device as :func:`nnbackend.get_backend` takes it back (``"cpu"``,
        ``"cuda:0"``): what a pickled estimator keeps. The device object's
        own text need not be one (CuPy's reads ``<CUDA Device 0>``).

        Returns
        -------
        str
        """
        return str(self.device)

    def device_name(self) -> str:
        """A human name for the device.

        Returns
        -------
        str
            The accelerator's model (:meth:`accelerator_name`), or the CPU's
            model name where there is none or the query fails.
        """
        try:
            name = self.accelerator_name()
        except Exception:  # a driver query that fails leaves the CPU's name
            name = None
        return name or cpu_name()

    @classmethod
    def version(cls, name: str) -> str | None:
        """The installed version of the backend's library, without importing it.

        Parameters
        ----------
        name : str
            The backend's name, the distribution to look up where the class
            names no :attr:`distribution`.

        Returns
        -------
        str or None
            The distribution's version from its metadata; None where it is
            not installed.
        """
        try:
            from importlib.metadata import version

            return version(cls.distribution or name)
        except Exception:
            return None

    def gpus(self) -> list:
        """The GPUs this backend's library sees.

        Returns
        -------
        list of tuple
            One ``(device, GPU name, memory in GiB or None)`` per GPU; empty
            for a CPU-only library or where it sees none.
        """
        return []

    def accelerator_name(self) -> str | None:
        """The model of the accelerator the arrays live on.

        Returns
        -------
        str or None
            The GPU's model name; None on the CPU.
        """
        return None

    def is_gpu(self) -> bool:
        """Whether arrays of this backend live on a GPU.

        Returns
        -------
        bool
        """
        return False
