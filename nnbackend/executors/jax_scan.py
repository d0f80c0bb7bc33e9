"""JAX: a whole epoch compiled into one ``jax.jit`` over a ``lax.scan`` of steps.

The scan's body is the reference step itself (``loss_and_grads_rows`` and the
optimizer's ``update``, traced with ``jax.numpy`` as ``xp``), fed the batches
of the epoch's host-drawn permutation, so the batch order and the math are
those of the reference loop; only the dispatch goes. A last, shorter batch
(N not a multiple of the batch size) is a second scan of one step.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp

from ..model import loss_and_grads_rows

__all__ = ["unsupported", "make_epoch"]


def unsupported(spec, plan, chunk_size):
    """Why this executor cannot run ``plan`` (a string), or None if it can."""
    if plan.batch_size >= plan.n_samples:
        return "batch mode is one step per epoch; there is no loop to compile"
    if plan.batch_size > chunk_size:
        return f"batches of {plan.batch_size} rows exceed chunk_size={chunk_size}"
    return None


# Compiled epochs by what they bake in, so that fit after fit (a sweep, a
# benchmark) reuses one compilation instead of tracing and compiling again
# (about a second each) and keeping every compiled copy alive.
_COMPILED = collections.OrderedDict()
_CACHE_SIZE = 32


def _opt_key(opt):
    """What identifies an optimizer's update, or None for a custom one (not cached)."""
    if getattr(opt, "name", None) is None or opt.hyper is None:
        return None
    return opt.name, tuple(sorted(opt.hyper.items()))


def make_epoch(backend, spec, opt, plan, X, Y, multiclass, index_dtype):
    """``epoch(params, state, order) -> (params, state, loss_sum, correct)`` for ``plan``."""
    n = plan.n_samples
    key = _opt_key(opt)
    if key is not None:
        key = (spec, key, plan.batch_size, n, multiclass)
    compiled = _COMPILED.get(key) if key is not None else None
    if compiled is None:
        compiled = _compile(spec, opt, plan, multiclass)
        if key is not None:
            _COMPILED[key] = compiled
            while len(_COMPILED) > _CACHE_SIZE:
                _COMPILED.popitem(last=False)
    else:
        _COMPILED.move_to_end(key)

    def epoch(params, state, order):
        if order is None:
            order = jnp.arange(n, dtype=index_dtype, device=backend.device)
        else:
            order = jnp.asarray(order, dtype=index_dtype, device=backend.device)
        params, state, loss_sum, correct = compiled(params, state, order, X, Y)
        return params, state, loss_sum, (None if multiclass is None else correct)

    return epoch


def _compile(spec, opt, plan, multiclass):
    """The jitted ``(params, state, order, X, Y) -> (params, state, loss_sum, correct)``."""
    size, n = plan.batch_size, plan.n_samples
    n_full, rest = divmod(n, size)
    xp = jnp

    def steps(carry, batches, rows_per_batch, X, Y):
        def body(carry, idx):
            params, state, loss_acc, correct_acc = carry
            Xb, Yb = jnp.take(X, idx, axis=0), jnp.take(Y, idx, axis=0)
            loss, grads, correct = loss_and_grads_rows(
                params, spec, lambda i, j: (Xb[i:j, :], Yb[i:j, :]), rows_per_batch,
                rows_per_batch, multiclass, xp,
            )
            params, state = opt.update(grads, state, params)
            correct_acc = correct_acc if correct is None else correct_acc + correct
            return (params, state, loss_acc + loss, correct_acc), None

        return jax.lax.scan(body, carry, batches)[0]

    @jax.jit
    def compiled(params, state, order, X, Y):
        zero = jnp.zeros((), dtype=X.dtype)
        carry = (params, state, zero, zero)
        carry = steps(carry, order[: n_full * size].reshape(n_full, size), size, X, Y)
        if rest:
            carry = steps(carry, order[n_full * size:].reshape(1, rest), rest, X, Y)
        return carry

    return compiled
