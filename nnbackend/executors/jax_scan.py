"""JAX: a whole epoch compiled into one ``jax.jit`` over a ``lax.scan`` of steps.

The scan's body is the reference step itself (``loss_and_grads_rows`` and the
optimizer's ``update``, traced with ``jax.numpy`` as ``xp``), fed the batches
of the epoch's host-drawn permutation, so the batch order and the math are
those of the reference loop; only the dispatch goes. A last, shorter batch
(N not a multiple of the batch size) is a second scan of one step.
"""

from __future__ import annotations

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


def make_epoch(backend, spec, opt, plan, X, Y, multiclass, index_dtype):
    """``epoch(params, state, order) -> (params, state, loss_sum, correct)`` for ``plan``."""
    size, n = plan.batch_size, plan.n_samples
    n_full, rest = divmod(n, size)
    xp = jnp

    def steps(carry, batches, rows_per_batch):
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
    def compiled(params, state, order):
        zero = jnp.zeros((), dtype=X.dtype)
        carry = (params, state, zero, zero)
        carry = steps(carry, order[: n_full * size].reshape(n_full, size), size)
        if rest:
            carry = steps(carry, order[n_full * size:].reshape(1, rest), rest)
        return carry

    def epoch(params, state, order):
        if order is None:
            order = jnp.arange(n, dtype=index_dtype, device=backend.device)
        else:
            order = jnp.asarray(order, dtype=index_dtype, device=backend.device)
        params, state, loss_sum, correct = compiled(params, state, order)
        return params, state, loss_sum, (None if multiclass is None else correct)

    return epoch
