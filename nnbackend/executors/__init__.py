"""Optional per-backend fast paths for whole epochs.

An executor runs the same kernels, optimizer and batch order as
:func:`nnbackend.train.run_epoch`, compiled or fused for one backend, and
declares the plans it supports; :func:`epoch_runner` falls back to the
reference loop for everything else. Each is tested against the reference.
"""

from __future__ import annotations

__all__ = ["EXECUTORS", "epoch_runner"]

EXECUTORS = ("auto", "reference", "jax-scan")


def epoch_runner(executor, backend, spec, opt, plan, X, Y, chunk_size, multiclass, index_dtype):
    """A function ``epoch(params, state, order) -> (params, state, loss_sum, correct)``
    from the named executor, or None for the reference loop.

    ``executor``: ``"auto"`` (the backend's fast path where the plan allows),
    ``"reference"`` (always the reference loop) or a fast path's name, which
    must then apply.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    if executor == "reference":
        return None
    if backend.name == "jax":
        from . import jax_scan

        why_not = jax_scan.unsupported(spec, plan, chunk_size)
        if why_not is None:
            return jax_scan.make_epoch(backend, spec, opt, plan, X, Y, multiclass, index_dtype)
        if executor == "jax-scan":
            raise ValueError(f"executor 'jax-scan' does not apply here: {why_not}")
        return None
    if executor != "auto":
        raise ValueError(f"executor {executor!r} needs the jax backend, not {backend.name!r}")
    return None
