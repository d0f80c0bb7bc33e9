"""JAX: a whole batch-mode epoch (the exact full-batch gradient, then one
optimizer step) compiled into one ``jax.jit`` dispatch.

Why (issue 26). Batch mode is one step per epoch, so :mod:`.scan` has no
loop to compile and refuses it, and the epoch ran the eager reference loop
(``engine.run_epoch`` -> ``network.loss_and_grads_rows`` over chunks). On
JAX that loop is one eagerly dispatched XLA executable per array operation,
none of them fused with the next. Measured on a CPU (jax 0.10.2, 2 cores,
a noisy shared machine: absolute times moved up to 2x between runs, the
ratios less), [32,64,1] float32 sigmoid/mse, sgd:

- Dispatches: an epoch of one chunk is 45 eager operations (the chunk's
  37: 5 matmuls, 3 transposes that are real copies when eager, the
  sigmoid's max/neg/exp/add/divide as separate passes, two row sums, the
  loss; and the sgd update's 8); every further chunk adds about 40 (its 35
  and 5 additions accumulating loss and gradients). A fit adds 11 for the
  epoch's figures. One eager operation costs 5-25 µs of host time (a row
  slice about 50 µs); inside a compiled function, none.
- N = 1e3 (one chunk): 45 dispatches, 0.82-0.85 ms an epoch against
  0.26-0.38 ms for a hand-written jitted full-batch step: launch-bound.
- N = 1e5 in the CPU's 2048-row chunks: 49 chunks, 1,965 dispatches,
  53-59 ms an epoch against 30-33 ms for the jitted full-batch step; the
  dispatches (about 25 ms) are the difference.
- N = 1e5 in one chunk (as on a GPU, whose memory budget gives chunks of
  2^21 rows): 45 dispatches, yet 56-68 ms: unfused whole-array passes
  (each elementwise operation and each transpose writes an N x 64 or
  N x 32 temporary and reads it back; timed one by one, the sigmoid's
  division and the five matmuls take most of it) cost what the
  dispatches saved.

So the eager batch epoch pays per-operation dispatch, and without fusion
one memory pass per operation. The H200's 7.97 ms against 1.56 ms for the
hand-written scan at N = 1e5 (one chunk there: some 55 dispatches with the
figures) was not reproduced here; ``benchmarks/jax_batch_time.py`` times
the reference loop, this executor and hand-written epochs side by side on
any JAX device. On the CPU this executor is 4.2-4.9x faster than the
reference loop at N = 1e3 to 1e6 (0.36 against 1.5 ms at 1e3, 25 against
106 ms at 1e5), as fast as the hand-written full-batch step at 1e3 and 1e4,
and about 2.2x faster than it from 1e5 on, where the hand-written step's
N-row activations leave the cache and the chunks' stay in it.

What this executor does. The same math, compiled: a ``lax.scan`` over the
epoch's whole chunks of ``task.chunk_size`` rows (and one more call for the
remaining rows), each chunk's loss and gradients computed by the task's own
``loss_and_grads`` (``network.loss_and_grads_rows``, the reference's
function, with ``n_samples = N`` so a ``"mean"`` gradient divides by N as
the reference's does), summed chunk after chunk in the reference's order,
then the task's ``optimizer.update`` once. Only the chunk's rows and
activations are alive at a time: memory does not grow with N beyond the
data itself (XLA's temporaries for [32,64,1] float32 in 2048-row chunks,
Adam: 1.9 MiB at N = 1e5, 1.5 MiB at 1e6, with or without an order).
Results equal the reference loop's to rounding (XLA fuses and may contract
multiply-adds).

Row order: a batch-mode plan never shuffles, and each chunk is then a
``dynamic_slice`` of the data (no copy). When an order is given (a
mini-batch plan whose batch size was clipped to N, with shuffling), each
chunk gathers its rows through the order, as the reference loop does (it
gathers the whole batch by the order, then chunks it): the same rows in the
same chunks, so the same sums. The gradient of a full batch does not
depend on the order but for rounding; following it keeps the results equal
to the reference's, at the cost of a gather per chunk.

One epoch is one dispatch of one executable (plus the order's transfer
when there is one), compiled once per (network, optimizer, N, chunk size,
with or without order) and reused across fits, like :mod:`.scan`'s. The
optimizer state is donated as there; the parameters are not.
"""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp

from .scan import (_advanced, _host_counts, _own, cached, check_counts, order_dtype,
                   untraceable_schedule, untraceable_update)

__all__ = ["JaxBatch"]


class JaxBatch:
    """The ``"jax-batch"`` executor (see :mod:`nnbackend.engine` for the contract)."""

    name = "jax-batch"

    def supports(self, task):
        """Why this executor cannot run ``task.plan`` (a string), or None if it can."""
        plan = task.plan
        if plan.batch_size < plan.n_samples:
            return (f"not batch mode: batches of {plan.batch_size} rows of "
                    f"{plan.n_samples} (jax-scan compiles those)")
        return untraceable_schedule(task.optimizer) or untraceable_update(task)

    def make_epoch(self, task):
        return make_epoch(task)

    def describe(self, task):
        """How it runs ``task``, in words (for ``History.executor_reason``)."""
        n, size = task.plan.n_samples, _chunk_rows(task)
        n_full, rest = divmod(n, size)
        chunks = f"{n_full} chunk{'s' if n_full > 1 else ''} of {size} rows"
        if rest:
            chunks += f" and one of {rest}"
        gather = ", each gathered through the epoch's row order" if task.plan.shuffle else ""
        return (f"the full-batch gradient over {chunks}{gather}, then the optimizer step, "
                "in one jitted dispatch per epoch")

    def launches(self, task):
        """Host dispatches, counted as :class:`.scan.JaxScan` counts them: none
        that grow with the steps, one executable per epoch, plus the order's
        transfer when the plan shuffles. Inside it, XLA's loop over the chunks
        launches the chunks' fused kernels on the device, without the host."""
        return {"per_step": 0, "per_epoch": 2 if task.plan.shuffle else 1}


# Compiled epochs by what they bake in (see scan.py's _COMPILED).
_COMPILED = collections.OrderedDict()


def _chunk_rows(task):
    """Rows per chunk: ``task.chunk_size``, at most N."""
    return max(1, min(int(task.chunk_size), task.plan.n_samples))


def _compiled(task, gather):
    """The jitted epoch for ``task`` (cached), with or without a row order."""
    key = task.optimizer_key(task.optimizer)
    if key is not None:
        key = (task.spec, key, task.plan.n_samples, _chunk_rows(task), task.multiclass,
               task.loss_and_grads, bool(gather))
    return cached(_COMPILED, key, lambda: _compile(task, gather))


def make_epoch(task):
    """``epoch(params, state, order) -> (params, state, loss_sum, correct)`` for a batch plan."""
    backend, multiclass, index_dtype = task.backend, task.multiclass, order_dtype(task)
    X, Y = task.X, task.Y
    n = task.plan.n_samples
    compiled = {}  # by gather: looked up (and compiled) at the first epoch that needs it
    made = {"state": None}  # the state this executor returned last (its own buffers)

    def epoch(params, state, order):
        gather = order is not None
        if gather not in compiled:
            compiled[gather] = _compiled(task, gather)
        if state is not made["state"]:
            # Someone else's arrays (init, a checkpoint): donate a copy.
            state = jax.tree_util.tree_map(_own, state)
        before = state = _host_counts(state)
        check_counts(before, 1)
        if gather:
            order = jnp.asarray(order, dtype=index_dtype, device=backend.device)
            if order.shape != (n,):
                raise ValueError(f"order must hold the {n} row indices, got shape {order.shape}")
            params, state, loss_sum, correct = compiled[gather](params, state, X, Y, order)
        else:
            params, state, loss_sum, correct = compiled[gather](params, state, X, Y)
        state = _advanced(state, before, 1)
        made["state"] = state
        return params, state, loss_sum, (None if multiclass is None else correct)

    return epoch


def _compile(task, gather):
    """The jitted ``(params, state, X, Y[, order]) -> (params, state, loss_sum, correct)``."""
    spec, opt, multiclass = task.spec, task.optimizer, task.multiclass
    loss_and_grads = task.loss_and_grads
    n = task.plan.n_samples
    size = _chunk_rows(task)
    n_full, rest = divmod(n, size)
    xp = jnp

    def chunk(params, X, Y, order, start, rows):
        """Loss, gradients and hits of rows ``start:start + rows`` (of the order, if any)."""
        if order is None:
            Xc = jax.lax.dynamic_slice_in_dim(X, start, rows, axis=0)
            Yc = jax.lax.dynamic_slice_in_dim(Y, start, rows, axis=0)
        else:
            idx = jax.lax.dynamic_slice_in_dim(order, start, rows, axis=0)
            Xc, Yc = jnp.take(X, idx, axis=0), jnp.take(Y, idx, axis=0)
        # The reference's function on one chunk; "mean" divides by all N rows.
        return loss_and_grads(params, spec, lambda i, j: (Xc[i:j, :], Yc[i:j, :]), rows, rows,
                              multiclass, xp, n_samples=n)

    def add(total, part):
        return jax.tree_util.tree_map(lambda a, b: a + b, total, part)

    def epoch(params, state, X, Y, order=None):
        # Zeros of the chunk results' shapes and dtypes: 0 + the first chunk's
        # results is those results, so the sums run as the reference's do.
        shapes = jax.eval_shape(lambda p: chunk(p, X, Y, order, 0, size), params)
        total = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        def body(total, i):
            return add(total, chunk(params, X, Y, order, i * size, size)), None

        if n_full == 1:
            total = body(total, 0)[0]
        else:
            total = jax.lax.scan(body, total, jnp.arange(n_full))[0]
        if rest:
            total = add(total, chunk(params, X, Y, order, n_full * size, rest))
        loss_sum, grads, correct = total
        params, state = opt.update(grads, state, params)
        return params, state, loss_sum, correct

    if gather:
        return jax.jit(epoch, donate_argnums=(1,))
    return jax.jit(functools.partial(epoch, order=None), donate_argnums=(1,))
