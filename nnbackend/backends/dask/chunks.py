"""Dask: epochs over data chunked by rows, never gathered whole.

``X`` (n_samples, n_features) and ``Y`` (n_samples, n_outputs) are Dask arrays
split into row chunks (every chunk holds all columns); the parameters are
in-memory arrays of the chunks' library held by the client: NumPy arrays
for NumPy chunks, CuPy arrays on the client's GPU for CuPy chunks (the
backend's ``params_backend``).

Chunks of any library
    A task computes in its chunk's namespace (:func:`chunk_namespace`:
    nnbackend's own for the libraries it knows, so CuPy chunks get the CuPy
    backend's fused kernels) and first takes the parameters there
    (:func:`params_for_chunk`: no copy where they already are; a copy to the
    chunk's device where not, e.g. from the client's GPU to a worker's). The
    partial sums stay in the chunks' library and Dask adds them where they
    are; the client takes the total into the parameters' namespace
    (``DaskBackend.from_chunks``, nothing to do where it already is) before
    its optimizer step.

Batch mode
    One task per row chunk computes that chunk's summed loss, correct count
    and gradient where the chunk lives (a worker of a cluster, a thread of
    the local scheduler), with the model's own kernels in the chunk's
    namespace; a tree of additions sums them, and one ``dask.compute`` per
    epoch brings the sums (a few kB) to the client, which takes the
    optimizer step. Gradients of ``reduction="mean"`` divide by the total
    ``n_samples`` inside each chunk, so the sum is the full-batch gradient:
    the numpy backend's, summed in another order (equal to float rounding).
    Memory per task: one chunk plus its activations, in ``chunk_size``-row
    pieces, whatever ``n_samples`` is.

Mini-batch and sgd modes
    The chunks are fetched to the client one at a time (the next one is
    computed while the steps run on the current one; taken to the parameters' device
    where they are not on it), and the reference step
    (the task's ``loss_and_grads`` and the optimizer's ``update``) runs on their
    rows in their namespace. The row order of an epoch is derived from the
    permutation ``pi`` of ``0..n_samples-1`` that every backend draws for that
    epoch (see :func:`row_order`): the chunks are visited in a random order,
    each chunk's rows in the order ``pi`` visits them, and batches of
    ``batch_size`` rows are cut from that sequence as from any other, a batch
    carrying over a chunk boundary where it falls on one. The steps are
    therefore exactly those of the reference loop with the row order
    ``row_order(pi, chunks)``; with one chunk that is ``pi`` itself, the numpy
    backend's order, and without shuffling it is ``0..n_samples-1``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import uuid

import numpy as np

from ..numpy import numpy_namespace

__all__ = ["DaskChunks", "make_epoch", "row_order", "row_chunks", "chunk_bounds", "open_npy",
           "on_library", "chunk_namespace", "params_for_chunk"]

# Rows per chunk of open_npy by default: about this many bytes.
NPY_CHUNK_BYTES = 64 * 2**20


def _read_rows(path, start, stop):
    # Map the file only for this read and copy the rows out: a mapping kept
    # open for the epoch would count every page read so far in the process's
    # resident memory, and a pickled np.memmap (sent to a worker) carries
    # its whole data.
    mapped = np.load(path, mmap_mode="r")
    try:
        return np.array(mapped[start:stop])
    finally:
        del mapped


def open_npy(path, chunk_rows=None):
    """A ``.npy`` file as a Dask array of row chunks, read only when computed.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npy`` file of shape (n_rows, ...), read with ``mmap_mode="r"``
        chunk by chunk (each task maps the file, copies its rows, unmaps).
        On a cluster every worker must see the file at this path.
    chunk_rows : int, optional
        Rows per chunk; by default about 64 MiB of rows.

    Returns
    -------
    dask.array.Array, shape (n_rows, ...), chunked by rows only.
    """
    import os

    import dask.array as da
    from dask import delayed

    path = os.fspath(path)
    header = np.load(path, mmap_mode="r")
    shape, dtype = header.shape, header.dtype
    del header
    if not shape:
        raise ValueError(f"{path} holds a 0-D array; expected rows")
    if shape[0] == 0:
        raise ValueError(f"{path} holds no rows (shape {shape})")
    if chunk_rows is not None and (isinstance(chunk_rows, bool)
                                   or not isinstance(chunk_rows, (int, np.integer))
                                   or chunk_rows < 1):
        raise ValueError(f"chunk_rows must be an integer >= 1; got {chunk_rows!r}")
    row_bytes = max(1, dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64)))
    rows = int(chunk_rows) if chunk_rows is not None else max(1, NPY_CHUNK_BYTES // row_bytes)
    read = delayed(_read_rows, pure=True)
    blocks = [da.from_delayed(read(path, a, min(a + rows, shape[0])),
                              shape=(min(a + rows, shape[0]) - a, *shape[1:]), dtype=dtype)
              for a in range(0, shape[0], rows)]
    return da.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]


def on_device_of(a):
    """A context with array ``a``'s GPU current, where its library keeps a
    current device per thread (CuPy); else a null context.

    Dask's local schedulers run tasks in threads of their own, whose current
    device is GPU 0 whatever the client's is: CuPy would make a task's new
    arrays there, and refuses to compute on arrays of another GPU.
    """
    return _current(getattr(a, "device", None))


def _current(device):
    """``device`` made current where it is CuPy's (a current device per thread);
    else a null context."""
    if type(device).__module__.startswith("cupy") and hasattr(device, "__enter__"):
        return device
    return contextlib.nullcontext()


def _to_library_of(block, like):
    """``block`` (a NumPy chunk) as an array of ``like``'s library, on
    ``like``'s device: the client's GPU under a local scheduler, a dask-cuda
    worker's own GPU there (``like`` arrives on it)."""
    with on_device_of(like):
        return chunk_namespace(like).asarray(block)


def on_library(rows, xp, device=None):
    """Dask array ``rows`` with each chunk made an array of namespace ``xp``
    inside its task (``open_npy(path)`` read straight onto each worker's GPU
    with nnbackend's CuPy namespace), on ``device`` under a local scheduler;
    chunks already of ``xp``'s library pass."""
    # array-api-compat's CuPy `empty` drops `device` (CuPy makes its arrays on
    # the current GPU): the parameters' GPU is made current for it.
    with _current(device):
        like = xp.empty((0,) * rows.ndim, dtype=rows.dtype, device=device)
    if type(like) is type(rows._meta):
        return rows
    return rows.map_blocks(_to_library_of, like=like, dtype=rows.dtype, meta=like)


class DaskChunks:
    """The ``"dask-chunks"`` executor (see :mod:`nnbackend.engine` for the contract)."""

    name = "dask-chunks"

    def supports(self, task):
        """None: it runs every plan."""
        return None

    def make_epoch(self, task):
        return make_epoch(task)


def row_chunks(X, Y):
    """``X`` and ``Y`` as Dask arrays with the same row chunks and one column chunk.

    A NumPy ``X`` (host data given to a dask model) is wrapped in row chunks
    of Dask's automatic size (about 128 MiB); a NumPy ``Y`` follows ``X``'s
    chunks.
    """
    import dask.array as da

    if not isinstance(X, da.Array):
        rows = Y.chunks[0] if isinstance(Y, da.Array) else "auto"
        X = da.from_array(X, chunks=(rows, -1))
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    if not isinstance(Y, da.Array):
        Y = da.from_array(Y, chunks=(X.chunks[0], -1))
    elif Y.chunks[0] != X.chunks[0] or len(Y.chunks[1]) > 1:
        Y = Y.rechunk((X.chunks[0], -1))
    return X, Y


def chunk_bounds(chunks) -> np.ndarray:
    """Row offsets ``[0, r0, r0 + r1, ..., n]`` of row chunks of sizes ``chunks``."""
    return np.concatenate([[0], np.cumsum(np.asarray(chunks, dtype=np.int64))])


def row_order(order, chunks):
    """The order in which the dask backend visits rows in an epoch.

    Parameters
    ----------
    order : numpy.ndarray of int, shape (n_samples,), or None
        The epoch's permutation ``pi`` (as :meth:`BatchPlan.order` draws it),
        or None for no shuffling.
    chunks : tuple of int
        Rows per chunk, ``sum(chunks) == n_samples``.

    Returns
    -------
    visits : list of (int, numpy.ndarray or None)
        ``(c, rows)`` per chunk in visiting order, ``rows`` the chunk-local
        row indices in visiting order (None: the chunk's own order).

    Notes
    -----
    With ``K`` non-empty chunks, chunk ``k`` of them is visited in position
    ``rank(pi[k])`` among ``pi[0], ..., pi[K-1]`` (``argsort(pi[:K])`` lists
    the chunks in visiting order: the ranks of the first ``K`` entries of a
    uniform permutation are a uniform permutation of the chunks). Within a
    chunk, its rows come in the order in which ``pi`` lists them (a uniform
    permutation of the chunk's rows). Unshuffled, chunks and rows keep their
    order.
    """
    bounds = chunk_bounds(chunks)
    nonempty = [c for c in range(len(chunks)) if chunks[c] > 0]
    if order is None:
        return [(c, None) for c in nonempty]
    order = np.asarray(order)
    visit = [nonempty[k] for k in np.argsort(order[: len(nonempty)], kind="stable")]
    owner = np.searchsorted(bounds, order, side="right") - 1
    grouped = order[np.argsort(owner, kind="stable")]
    return [(c, grouped[bounds[c]: bounds[c + 1]] - bounds[c]) for c in visit]


def chunk_namespace(a):
    """The namespace of a chunk: nnbackend's NumPy namespace (its fast paths)
    for NumPy chunks; for others the namespace of the backend the chunk
    belongs to (CuPy chunks on GPU workers: the CuPy backend's, with its fused
    kernels), else array-api-compat's."""
    if isinstance(a, np.ndarray):
        return numpy_namespace()
    backend = known_backend(a)
    if backend is not None:
        return backend.xp
    from array_api_compat import array_namespace

    return array_namespace(a)


def known_backend(a):
    """The nnbackend backend of array ``a`` of a non-NumPy library nnbackend
    knows (CuPy, torch, JAX, array-api-strict), on ``a``'s device; else None."""
    from ..cupy import CupyBackend
    from ..jax import JaxBackend
    from ..strict import StrictBackend
    from ..torch import TorchBackend

    for cls in (CupyBackend, TorchBackend, JaxBackend, StrictBackend):
        backend = cls.of_array(a)
        if backend is not None:
            return backend
    return None


def _host(p):
    """A NumPy view or copy of array ``p`` of another library (CuPy: a copy)."""
    if hasattr(p, "get") and not isinstance(p, np.ndarray):  # CuPy
        return p.get()
    try:
        return np.from_dlpack(p)
    except Exception:  # no DLPack to the CPU: the library's own conversion
        return np.asarray(p)


def params_for_chunk(params, X, xp):
    """The parameters in chunk ``X``'s namespace ``xp`` and on its device.

    NumPy chunks take them with ``xp.asarray`` (NumPy parameters as they are,
    as ever). For other chunks, a parameter of the chunk's library on the
    chunk's device is used as it is; one on another device is copied to it
    (CuPy: GPU to GPU); one of another library goes through the host.
    """
    if isinstance(X, np.ndarray):
        return [xp.asarray(p if isinstance(p, np.ndarray) else _host(p)) for p in params]
    from array_api_compat import device

    where = device(X)
    out = []
    for p in params:
        if type(p) is type(X):
            out.append(p if device(p) == where else xp.asarray(p, device=where, copy=True))
        else:
            out.append(xp.asarray(p if isinstance(p, np.ndarray) else _host(p), device=where))
    return out


def _quiet(xp):
    # Overflow in a diverging run is reported once by fit; tasks run in
    # worker threads, which do not inherit the client's np.errstate.
    if getattr(xp, "__name__", "") == "nnbackend.numpy":
        return np.errstate(over="ignore", invalid="ignore", divide="ignore")
    return contextlib.nullcontext()


def _chunk_sums(params, X, Y, spec, n_total, chunk_size, multiclass, loss_and_grads, rows):
    """One row chunk's part of the full-batch loss and gradient.

    Parameters
    ----------
    params : list of arrays, ``[W0, b0, ...]``
    X : array, shape (m, n_features); Y : array, shape (m, n_outputs)
        The chunk (``m`` rows), in its own namespace.
    n_total : int
        Rows of the whole batch: ``"mean"`` gradients divide by it here, so
        the chunks' gradients add up to the full-batch one.
    loss_and_grads, rows
        The network's chunked loss and gradients and its row getter (the
        task's; see :class:`nnbackend.engine.EpochTask`).

    Returns
    -------
    (loss_sum, grads, correct)
        0-D summed loss, gradients shaped like ``params``, 0-D correct count
        (None when ``multiclass`` is None).
    """
    xp = chunk_namespace(X)
    with on_device_of(X):
        params = params_for_chunk(params, X, xp)
        with _quiet(xp):
            return loss_and_grads(params, spec, rows(X, Y), X.shape[0], chunk_size, multiclass,
                                  xp, n_samples=n_total)


def _add(a, b):
    """The sum of two ``(loss_sum, grads, correct)`` triples, on their device."""
    with on_device_of(a[0]):
        return (a[0] + b[0], [g + h for g, h in zip(a[1], b[1])],
                None if a[2] is None else a[2] + b[2])


def _tree_sum(parts):
    """Pairwise sums of delayed triples, ``log2(len(parts))`` levels deep."""
    from dask import delayed

    add = delayed(_add, pure=True)
    while len(parts) > 1:
        parts = [add(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return parts[0]


def make_epoch(task):
    """``epoch(params, state, order) -> (params, state, loss_sum, correct)`` for ``task.plan``.

    ``loss_sum`` and ``correct`` come back as 0-D arrays of the parameters'
    namespace, already on the client: the epoch's computes are done.
    """
    X, Y = row_chunks(task.X, task.Y)
    if task.plan.batch_size >= task.plan.n_samples:
        return _batch_epoch(task, X, Y)
    return _step_epoch(task, X, Y)


def _batch_epoch(task, X, Y):
    import dask
    from dask import delayed

    x_blocks = [b for b, m in zip(X.to_delayed().ravel(), X.chunks[0]) if m > 0]
    y_blocks = [b for b, m in zip(Y.to_delayed().ravel(), Y.chunks[0]) if m > 0]
    chunk = delayed(_chunk_sums, pure=True)
    backend, spec, opt, n = task.backend, task.spec, task.optimizer, task.plan.n_samples
    chunk_size, multiclass = task.chunk_size, task.multiclass

    on_host = backend.params_backend is None  # NumPy parameters

    def epoch(params, state, order):
        # The parameters enter the graph once, as one key every task reads.
        # Off the host they get a key of their own: hashing them for a pure
        # key would copy them to the host.
        shared = (delayed(list(params), pure=True, traverse=False) if on_host else
                  delayed(list(params), name=f"params-{uuid.uuid4().hex}", traverse=False))
        parts = [chunk(shared, xb, yb, spec, n, chunk_size, multiclass, task.loss_and_grads,
                       task.rows) for xb, yb in zip(x_blocks, y_blocks)]
        # The epoch's one compute: the chunks' sums, summed.
        (loss_sum, grads, correct), = dask.compute(_tree_sum(parts), scheduler=backend.scheduler)
        if not on_host:  # into the parameters' namespace and device (mostly as they are)
            loss_sum, grads = backend.from_chunks(loss_sum), [backend.from_chunks(g) for g in grads]
            correct = None if correct is None else backend.from_chunks(correct)
        params, state = opt.update(list(grads), state, params)
        return params, state, loss_sum, correct

    return epoch


def _step_epoch(task, X, Y):
    import dask

    backend, spec, opt = task.backend, task.spec, task.optimizer
    chunk_size, multiclass, loss_and_grads = task.chunk_size, task.multiclass, task.loss_and_grads
    size, n = task.plan.batch_size, task.plan.n_samples
    x_blocks, y_blocks = X.blocks, Y.blocks

    def fetch(c):
        Xc, Yc = dask.compute(x_blocks[c], y_blocks[c], scheduler=backend.scheduler)
        if backend.params_backend is None:  # NumPy chunks for NumPy parameters
            return Xc, Yc
        # Where the steps run: the parameters' device (CuPy chunks on the
        # client's GPU stay as they are).
        return backend.from_chunks(Xc), backend.from_chunks(Yc)

    def epoch(params, state, order):
        visits = row_order(order, X.chunks[0])
        loss_total = correct_total = None
        carry = None  # rows left over from the last chunk, fewer than a batch
        done = 0
        with concurrent.futures.ThreadPoolExecutor(1) as prefetch:
            pending = prefetch.submit(fetch, visits[0][0])
            for k, (c, rows) in enumerate(visits):
                Xc, Yc = pending.result()
                if k + 1 < len(visits):  # the next chunk loads while this one trains
                    pending = prefetch.submit(fetch, visits[k + 1][0])
                xp = chunk_namespace(Xc)
                if rows is not None:
                    idx = xp.asarray(rows)
                    Xc, Yc = xp.take(Xc, idx, axis=0), xp.take(Yc, idx, axis=0)
                if carry is not None:
                    Xc, Yc = xp.concat([carry[0], Xc], axis=0), xp.concat([carry[1], Yc], axis=0)
                m = Xc.shape[0]
                done += Xc.shape[0] - (0 if carry is None else carry[0].shape[0])
                last = done == n
                stop = m if last else m // size * size
                with _quiet(xp):
                    for start in range(0, stop, size):
                        j = min(start + size, m)
                        loss_sum, grads, correct = loss_and_grads(
                            params, spec, task.rows(Xc, Yc, start), j - start, chunk_size,
                            multiclass, xp,
                        )
                        params, state = opt.update(grads, state, params)
                        loss_total = loss_sum if loss_total is None else loss_total + loss_sum
                        if correct is not None:
                            correct_total = correct if correct_total is None else correct_total + correct
                carry = None if stop == m else (Xc[stop:, :], Yc[stop:, :])
        return params, state, loss_total, correct_total

    return epoch
