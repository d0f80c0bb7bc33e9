"""Optional per-backend fast paths for whole epochs.

An executor runs the same kernels, optimizer and batch order as
:func:`nnbackend.train.run_epoch`, compiled or fused for one backend, and
declares the plans it supports; :func:`epoch_runner` falls back to the
reference loop for everything else. Each is tested against the reference.
"""

from __future__ import annotations

__all__ = ["EXECUTORS", "epoch_runner", "lazy_rows"]

EXECUTORS = ("auto", "reference", "jax-scan", "cupy-fused", "dask-chunks")


def epoch_runner(executor, backend, spec, opt, plan, X, Y, chunk_size, multiclass, index_dtype,
                 layer_sizes=None):
    """A function ``epoch(params, state, order) -> (params, state, loss_sum, correct)``
    from the named executor, or None for the reference loop.

    ``executor``: ``"auto"`` (the backend's fast path where the plan allows),
    ``"reference"`` (always the reference loop) or a fast path's name, which
    must then apply. ``layer_sizes`` (the network's, inputs first) lets an
    executor judge whether the network fits it.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    if backend.name == "dask":
        # Dask data are lazy: the reference loop would build a graph per step
        # and leave the parameters lazy, so every plan runs chunk by chunk.
        if executor == "reference":
            raise ValueError("the dask backend has no reference loop; it always runs the "
                             "'dask-chunks' executor (use executor='auto')")
    if executor == "reference":
        return None
    needs = {"jax-scan": "jax", "cupy-fused": "cupy", "dask-chunks": "dask"}.get(executor)
    if needs is not None and needs != backend.name:
        raise ValueError(f"executor {executor!r} needs the {needs} backend, not {backend.name!r}")
    if backend.name == "dask":
        from . import dask_chunks

        return dask_chunks.make_epoch(backend, spec, opt, plan, X, Y, chunk_size, multiclass,
                                      index_dtype)
    if backend.name == "jax":
        from . import jax_scan

        why_not = jax_scan.unsupported(spec, plan, chunk_size)
        if why_not is None:
            return jax_scan.make_epoch(backend, spec, opt, plan, X, Y, multiclass, index_dtype)
        if executor == "jax-scan":
            raise ValueError(f"executor 'jax-scan' does not apply here: {why_not}")
        return None
    if backend.name == "cupy":
        from . import cupy_fused

        dtype_name = str(X.dtype)
        why_not = cupy_fused.unsupported(spec, plan, opt, layer_sizes, dtype_name,
                                         cupy_fused.shared_limit(backend.device))
        if why_not is None:
            import cupy

            with backend.device:
                return cupy_fused.make_epoch(cupy, spec, opt, plan, X, Y, multiclass, layer_sizes,
                                             dtype_name, cupy_fused.cuda_launcher, backend.device)
        if executor == "cupy-fused":
            raise ValueError(f"executor 'cupy-fused' does not apply here: {why_not}")
    return None


def lazy_rows(backend, path):
    """A ``.npy`` file's rows as a lazy array of ``backend`` that reads them
    chunk by chunk (out of core), or None where the backend has no lazy arrays."""
    if backend.name == "dask":
        from .dask_chunks import open_npy

        return open_npy(path)
    return None
