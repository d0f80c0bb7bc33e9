"""JAX: a whole epoch compiled into one ``jax.jit`` over a ``lax.scan`` of steps.

The scan's body is the reference step itself (the task's ``loss_and_grads``
and the optimizer's ``update``, traced with ``jax.numpy`` as ``xp``), fed the batches
of the epoch's host-drawn permutation, so the batch order and the math are
those of the reference loop; only the dispatch goes. A last, shorter batch
(N not a multiple of the batch size) is a second scan of one step.

One epoch is one dispatch of one executable, compiled once per fit shape
(and reused across fits): the epoch's inputs keep their types from epoch
to epoch (Adam's count goes in as a host integer every time, and comes
back as one, computed on the host), so nothing recompiles. The optimizer
state is donated: XLA writes the new state into the old one's buffers. The
parameters are not, because the training loop keeps each epoch's starting
parameters (to restore them when a step diverges, and for early stopping);
a state the caller handed in is copied once before its first donation, so
only buffers this executor made are ever donated.
"""

from __future__ import annotations

import collections
import functools
import threading

import jax
import jax.numpy as jnp

__all__ = ["JaxScan"]


def untraceable_schedule(opt):
    """Why ``opt``'s learning-rate schedule cannot run inside a compiled epoch
    (a string), or None where it can or there is none.

    A schedule function of the caller's gets the step count as a traced
    integer there: Python control flow on it (``1.0 if t < 10 else 0.1``),
    ``math`` or NumPy functions of it cannot run. It is traced once here,
    abstractly (no compilation), to find out.
    """
    # (nnbackend.optim.wrapped_parts, read as the graphs read it: the optimizers
    # are a layer above the backends.)
    parts = getattr(opt.update, "parts", None)
    while parts is not None:
        key = getattr(parts[2], "key", None) if parts[0] == "scheduled" else None
        if parts[0] == "scheduled" and parts[2] is not None \
                and not (key and key[0] == "inverse_scaling"):  # (this library's own traces)
            try:
                jax.eval_shape(parts[2], jax.ShapeDtypeStruct((), jnp.int32))
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [""])[0][:120]
                return ("a learning-rate schedule of the caller's that jax cannot trace "
                        f"({type(exc).__name__}: {first}); the reference loop calls it with "
                        "Python integers")
        parts = getattr(parts[1].update, "parts", None)
    return None


def untraceable_update(task):
    """Why ``task.optimizer``'s update cannot run inside a compiled epoch (a
    string), or None where it can (or where this cannot be told).

    An :class:`~nnbackend.optim.Optimizer` of the caller's own gets traced
    arrays there: an update that reads a host number (``float(norm)`` to
    clip by the gradients' norm, NumPy functions of the arrays) cannot run.
    The built-in updates and the fit's wrappers around them (those with an
    ``optimizer_key``) always trace. Others are traced once here, abstractly
    (no compilation), from a state their ``init`` makes for zero parameters.
    """
    opt, sizes = task.optimizer, task.layer_sizes
    if task.optimizer_key(opt) is not None or not sizes:
        return None
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params += [jnp.zeros((fan_in, fan_out), dtype=task.X.dtype),
                   jnp.zeros((fan_out,), dtype=task.X.dtype)]
    try:
        state = opt.init(params)
    except Exception:  # noqa: BLE001 - the reference loop's init says it, as the caller's
        return None
    try:
        jax.eval_shape(opt.update, params, state, params)
    except Exception as exc:  # noqa: BLE001 - any error of the caller's update, traced
        first = (str(exc).strip().splitlines() or [""])[0][:120]
        return ("an optimizer of the caller's whose update jax cannot trace "
                f"({type(exc).__name__}: {first}); the reference loop calls it with "
                "the arrays themselves")
    return None


class JaxScan:
    """The ``"jax-scan"`` executor (see :mod:`nnbackend.engine` for the contract)."""

    name = "jax-scan"

    def supports(self, task):
        """Why this executor cannot run ``task.plan`` (a string), or None if it can."""
        plan = task.plan
        if plan.batch_size >= plan.n_samples:
            return "batch mode is one step per epoch; there is no loop to compile"
        if plan.batch_size > task.chunk_size:
            return f"batches of {plan.batch_size} rows exceed chunk_size={task.chunk_size}"
        return untraceable_schedule(task.optimizer) or untraceable_update(task)

    def make_epoch(self, task):
        return make_epoch(task)

    def launches(self, task):
        """Host dispatches: none per step, one executable per epoch (plus the
        order's transfer). Inside it, XLA's loop launches the step's fused
        kernels on the device, without the host."""
        return {"per_step": 0, "per_epoch": 2}


# Compiled epochs by what they bake in, so that fit after fit (a sweep, a
# benchmark) reuses one compilation instead of tracing and compiling again
# (about a second each) and keeping every compiled copy alive.
_COMPILED = collections.OrderedDict()
_CACHE_SIZE = 32


_CACHE_LOCK = threading.Lock()  # fits in threads (joblib's threading backend) share it


def cached(cache, key, make):
    """``cache[key]``, made by ``make()`` on a miss; None keys are never cached.
    Least recently used entries go beyond :data:`_CACHE_SIZE`."""
    if key is None:
        return make()
    with _CACHE_LOCK:
        compiled = cache.get(key)
        if compiled is not None:
            cache.move_to_end(key)
            return compiled
    compiled = make()  # (outside the lock: a compilation takes a second)
    with _CACHE_LOCK:
        cache[key] = compiled
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return compiled


def make_epoch(task):
    """``epoch(params, state, order) -> (params, state, loss_sum, correct)`` for ``task.plan``."""
    backend, spec, opt, plan = task.backend, task.spec, task.optimizer, task.plan
    X, Y, multiclass, index_dtype = task.X, task.Y, task.multiclass, order_dtype(task)
    n = plan.n_samples
    # The update's identity (None for a custom optimizer: not cached).
    key = task.optimizer_key(opt)
    if key is not None:
        key = (spec, key, plan.batch_size, n, multiclass)
    compiled = cached(_COMPILED, key, lambda: _compile(task))

    n_steps = -(-n // plan.batch_size)
    made = {"state": None}  # the state this executor returned last (its own buffers)

    def epoch(params, state, order):
        if order is None:
            order = jnp.arange(n, dtype=index_dtype, device=backend.device)
        else:
            order = jnp.asarray(order, dtype=index_dtype, device=backend.device)
        if state is not made["state"]:
            # Someone else's arrays (init, a checkpoint): donate a copy.
            state = jax.tree_util.tree_map(_own, state)
        before = state = _host_counts(state)
        check_counts(before, n_steps)
        params, state, loss_sum, correct = compiled(params, state, order, X, Y)
        state = _advanced(state, before, n_steps)
        made["state"] = state
        return params, state, loss_sum, (None if multiclass is None else correct)

    return epoch


_INT32_MAX = 2**31 - 1


def order_dtype(task):
    """The dtype a compiled epoch takes the row order in: int32 wherever the
    rows' indices fit, with JAX's x64 on or off.

    The namespace's own index dtype is int64 with x64 on, and XLA compiles
    the float arithmetic around an int64 gather differently: a float32 fit's
    bits then depended on x64 (on after any float64 jax model), which the
    same seed must not (numerics review 2026-12-07, finding 1).
    """
    return jnp.int32 if task.plan.n_samples <= _INT32_MAX else task.index_dtype


def check_counts(state, n_steps):
    """Refuse an epoch whose step counts (``state``'s, host ints) would pass
    int32, which is what jax holds them in without x64: said by name, with
    the ways out, instead of an OverflowError from inside jax."""
    if jax.config.jax_enable_x64:
        return
    counts = _counts(state)
    if counts and max(counts) + n_steps > _INT32_MAX:
        raise ValueError(
            f"the optimizer's step count reaches {max(counts) + n_steps:,}, past 2**31 - 1, "
            "which jax's compiled epochs hold as int32 without x64: enable it "
            "(jax.config.update('jax_enable_x64', True)) or fit with executor='reference'")


def _counts(state):
    fields = getattr(state, "_fields", None)
    if not fields:
        return []
    out = []
    for name, value in zip(fields, state):
        if isinstance(value, list):
            out += [c for v in value for c in _counts(v)]
        elif _is_count(name, value):
            out.append(int(value))
    return out


def _own(leaf):
    return jnp.copy(leaf) if isinstance(leaf, jax.Array) else leaf


def _is_count(name, value):
    """A step count: a ``count`` field holding an integer (the built-in states' and
    :class:`~nnbackend.optim.ScheduledState`'s), not a float, which a caller's own
    state may hold under any name."""
    if name != "count" or isinstance(value, (bool, float)):
        return False
    dtype = getattr(value, "dtype", None)
    return isinstance(value, int) or (dtype is not None and getattr(value, "ndim", 1) == 0
                                      and jnp.issubdtype(dtype, jnp.integer))


def _host_counts(state):
    """The state with its step counts (Adam's, a schedule's) as host ints, at any
    depth: a wrapper's state holds the wrapped one's in a list.

    Passed to the compiled epoch as Python ints every epoch, they keep its
    signature (a weakly typed integer) the same; handed back as the
    device scalars the scan returns, they would make the second epoch
    compile again. Other fields are left as they are.
    """
    fields = getattr(state, "_fields", None)
    if not fields:
        return state
    # int(): a host int already, but for a resumed device scalar.
    return state._replace(**{
        name: ([_host_counts(v) for v in value] if isinstance(value, list)
               else int(value) if _is_count(name, value) else value)
        for name, value in zip(fields, state)})


def _advanced(out, before, steps):
    """``out`` (the compiled epoch's state) with ``before``'s host counts plus ``steps``."""
    fields = getattr(before, "_fields", None)
    if not fields:
        return out
    return out._replace(**{
        name: ([_advanced(o, b, steps) for o, b in zip(new, value)] if isinstance(value, list)
               else value + steps if _is_count(name, value) else new)
        for name, value, new in zip(fields, before, out)})


def _compile(task):
    """The jitted ``(params, state, order, X, Y) -> (params, state, loss_sum, correct)``."""
    spec, opt, multiclass = task.spec, task.optimizer, task.multiclass
    loss_and_grads, rows = task.loss_and_grads, task.rows
    size, n = task.plan.batch_size, task.plan.n_samples
    n_full, rest = divmod(n, size)
    xp = jnp

    def steps(carry, batches, rows_per_batch, X, Y):
        def body(carry, idx):
            params, state, loss_acc, correct_acc = carry
            Xb, Yb = jnp.take(X, idx, axis=0), jnp.take(Y, idx, axis=0)
            loss, grads, correct = loss_and_grads(
                params, spec, rows(Xb, Yb), rows_per_batch,
                rows_per_batch, multiclass, xp,
            )
            params, state = opt.update(grads, state, params)
            correct_acc = correct_acc if correct is None else correct_acc + correct
            return (params, state, loss_acc + loss, correct_acc), None

        return jax.lax.scan(body, carry, batches)[0]

    @functools.partial(jax.jit, donate_argnums=(1,))
    def compiled(params, state, order, X, Y):
        zero = jnp.zeros((), dtype=X.dtype)
        carry = (params, state, zero, zero)
        carry = steps(carry, order[: n_full * size].reshape(n_full, size), size, X, Y)
        if rest:
            carry = steps(carry, order[n_full * size:].reshape(1, rest), rest, X, Y)
        return carry

    return compiled
