"""An epoch of training steps, each captured once as a CUDA graph and replayed.

An eager step of a small network is launch-bound: some forty kernels, each
with tens of µs of host time (torch's dispatch, CuPy's). Captured in a CUDA
graph, the whole step (gather the batch, forward, backward, optimizer update)
is one replay. torch:cuda (``torch/graphs.py``) and CuPy (``cupy/graphs.py``)
capture the same epoch; this module is what they share, written against an
``ops`` object of a few array operations (:class:`XpOps` for any array-API
namespace, torch's own in ``torch/graphs.py``).

The graph works on static buffers: the parameters and optimizer state, the
epoch's row order, a step counter and the loss and hit accumulators. The
step reads its batch's rows as ``order[counter·B + arange(B)]`` and advances
the counter itself, so a replay needs no host input and nothing is copied
per step. Adam's step count rides along as a device scalar (float64), from
which the update computes its bias corrections on the device, and so does a
fit's ``'invscaling'`` schedule's (its factor); an L2 penalty and
``'adaptive'``'s factor are constants of the optimizer, which a plateau
replaces (and the graphs are captured again). An epoch copies the
parameters, state and order in, replays the full-batch graph ``N // B``
times and the last, shorter batch's own graph once, and copies the results
out: one launch per step, a few per epoch.

A graph replays addresses, not Python objects: every array a captured step
reads must outlive the graph. The epoch keeps each step (and through it the
arrays only the step holds, such as its row offsets ``base``) beside its
replay. Dropped after capture, ``base`` went back to torch's allocator, the
next allocation took its memory, and the replays gathered rows from garbage
indices (a device-side assert on the first GPU run, 2026-11-27).
"""

from __future__ import annotations

__all__ = ["DescribedEpochs", "GraphEpoch", "OPTIMIZERS", "VERIFY_ULPS", "WARMUP_STEPS", "XpOps",
           "base_name", "batch_shapes", "eager_capture", "epoch_launches", "leaves", "step_rows",
           "unsupported"]

# A captured replay and the same step run eagerly launch the same kernels; the
# BLAS may pick another algorithm inside a capture (no workspace to allocate),
# which moves the last bits, not more.
VERIFY_ULPS = 64
# torch's docs warm up "a few" iterations on a side stream before capture,
# so that lazy initialisations (cuBLAS handles, workspaces, caches, compiled
# kernels) happen outside the graph.
WARMUP_STEPS = 3
OPTIMIZERS = ("sgd", "momentum", "adam")


def batch_shapes(n_samples: int, batch_size: int):
    """``[(rows, steps), ...]``: the epoch's steps by batch shape, one graph each.

    ``N // B`` steps of ``B`` rows, then one step of the ``N mod B`` rows
    left over when there are any.
    """
    n_full, rest = divmod(n_samples, batch_size)
    shapes = [(batch_size, n_full)] if n_full else []
    return shapes + ([(rest, 1)] if rest else [])


def step_rows(base, counter, batch_size: int):
    """Positions in the epoch's order of step ``counter``'s rows: ``counter·B + base``.

    ``base`` is ``arange(rows)`` on the device and ``counter`` a 0-D integer
    array there; the tail step (counter ``N // B``, ``rows = N mod B``)
    reads the last rows.
    """
    return base + counter * batch_size


def unsupported(task):
    """Why a captured step cannot run ``task`` (a string), or None if it can
    (the device aside, which each executor checks)."""
    plan = task.plan
    if plan.batch_size >= plan.n_samples:
        return "batch mode is one step per epoch; there is no step to replay"
    if plan.batch_size > task.chunk_size:
        return f"batches of {plan.batch_size} rows exceed chunk_size={task.chunk_size}"
    return _unsupported_optimizer(task.optimizer)


def _unsupported_optimizer(opt):
    """Why the graphs cannot capture ``opt``'s update, or None.

    The built-in updates, and the fit's wrappers around them (an L2 penalty,
    a constant factor, ``'invscaling'``): their numbers are constants of the
    fit (a new factor is a new optimizer, captured again) or computed on the
    device from the step count, which rides along as a device scalar.
    """
    parts = getattr(opt.update, "parts", None)  # nnbackend.optim.wrapped_parts
    while parts is not None:
        if parts[0] == "scheduled":
            schedule = parts[2]
            key = getattr(schedule, "key", None) if schedule is not None else None
            if schedule is not None and (not key or key[0] != "inverse_scaling"):
                # A host function of the count: frozen at capture, or reading the device.
                return ("a learning-rate schedule of the caller's own (the graphs take "
                        "'invscaling' and 'adaptive')")
        opt = parts[1]
        parts = getattr(opt.update, "parts", None)
    if getattr(opt, "name", None) not in OPTIMIZERS or opt.hyper is None:
        # Its host-side numbers would be frozen into the graph at capture.
        return "a custom optimizer (only the built-in sgd, momentum and adam are captured)"
    return None


def base_name(opt):
    """``(name, wrappers)``: the built-in optimizer inside the fit's wrappers, and theirs."""
    wrappers = []
    while getattr(opt.update, "parts", None) is not None:
        wrappers.append(opt.update.parts[0])
        opt = opt.update.parts[1]
    return opt.name, wrappers


def epoch_launches(task):
    """Host launches of a captured fit's epoch: ``{"per_step": 1, "per_epoch": k}``.

    Per step, one graph replay (the kernels inside it are launched by the
    GPU from the graph, not by the host). Per epoch: the copies in (order,
    each parameter and state array, the count) and out, and three resets.
    """
    n_arrays = len(task.layer_sizes) - 1 if task.layer_sizes else 0
    name, wrappers = base_name(task.optimizer)
    per_state = {"sgd": 0, "momentum": 1, "adam": 2}[name]
    arrays = 2 * n_arrays * (1 + per_state)
    # The step counts: Adam's, and a schedule's.
    count = (name == "adam") + ("scheduled" in wrappers)
    # copies in + copies out + order + resets + accumulators out
    return {"per_step": 1, "per_epoch": 2 * arrays + count + 1 + 3 + 2}


def leaves(state):
    """An optimizer state's arrays and step counts, in order: its fields, and
    the fields of a state it holds (a ``ScheduledState``'s optimizer's)."""
    out = []
    for value in state if hasattr(state, "_fields") else ():
        if isinstance(value, list):
            for item in value:
                out += leaves(item) if isinstance(item, tuple) else [item]
        elif isinstance(value, int):
            out.append(value)
        else:
            raise TypeError(f"an optimizer state field is neither a list nor a count: {value!r}")
    return out


def _leaves_of_step(state):
    """A step's new state's leaves (its counts are device scalars by then)."""
    out = []
    for value in state if hasattr(state, "_fields") else ():
        if isinstance(value, list):
            for item in value:
                out += _leaves_of_step(item) if isinstance(item, tuple) else [item]
        else:
            out.append(value)
    return out


def _with_leaves(state, new_leaves):
    """``state`` with its :func:`leaves` replaced, in order, from the iterator ``new_leaves``."""
    if not hasattr(state, "_fields"):
        return state
    return type(state)(*[
        [_with_leaves(item, new_leaves) if isinstance(item, tuple) else next(new_leaves)
         for item in value] if isinstance(value, list) else next(new_leaves)
        for value in state])


def eager_capture(step, reset, device):
    """The step itself as its ``replay``: the executor's logic without a GPU (tests),
    and what an epoch runs where a capture failed."""
    return step


class XpOps:
    """The few array operations :class:`GraphEpoch` needs, in the array-API
    namespace ``xp`` (CuPy's; NumPy's and array-api-strict's in the tests):
    each a plain operation that a stream capture records."""

    def __init__(self, xp):
        self.xp = xp

    def clone(self, a):
        return self.xp.asarray(a, copy=True)

    def assign(self, static, value):
        static[...] = value

    def take(self, a, index):
        return self.xp.take(a, index, axis=0)

    def add(self, static, value):
        static[...] = static + value

    def zeros(self, dtype, like):
        return self.xp.zeros((), dtype=dtype, device=_device(self.xp, like))

    def arange(self, n, like):
        return self.xp.arange(n, dtype=self.xp.int64, device=_device(self.xp, like))

    def from_host(self, static, host):
        static[...] = self.xp.asarray(host, device=_device(self.xp, static))


def _device(xp, a):
    """The device of ``a``, as ``xp``'s functions take it."""
    import array_api_compat

    return array_api_compat.device(a)


class GraphEpoch:
    """``epoch(params, state, order)`` for one fit; captures at its first call.

    Parameters
    ----------
    task : EpochTask
    capture : callable
        ``capture(step, reset, device) -> replay``: the step captured as a
        CUDA graph (or :func:`eager_capture`).
    ops : object
        The array operations (:class:`XpOps`, or torch's).
    name : str
        The executor's name, for the error a failed capture raises.
    on_failure : {"raise", "eager"}
        What a failed capture does: raise, saying so, or run that batch
        shape's steps eagerly (``path`` says which).
    verify : bool
        Once a shape's step is captured, replay it once and run it once
        eagerly from the same buffers, and keep the graph only if both give
        the same parameters, state and loss (to a few units in the last
        place): a capture that froze a value the step reads from the host,
        or lost memory it reads, shows here, and that shape's steps then run
        eagerly. One host read per shape, at the first epoch.
    xp : namespace, optional
        The namespace the steps compute in: the backend's (the default), or
        one of the same library whose operations a capture can hold (CuPy's
        with cuBLAS called directly).
    """

    def __init__(self, task, capture, ops, name, on_failure="raise", verify=False, xp=None):
        self.task, self.capture, self.ops, self.name = task, capture, ops, name
        self.xp = task.backend.xp if xp is None else xp
        self.on_failure, self.verify = on_failure, verify
        self.shapes = batch_shapes(task.plan.n_samples, task.plan.batch_size)
        self.replays = None
        self.steps = None  # the captured steps: what each replay reads stays alive with them
        self.replayed = 0  # replays so far (the tests count them)
        self.path = "each step one replay of its captured CUDA graph"

    # -- static buffers ---------------------------------------------------------------
    def _build(self, params, state):
        task, ops = self.task, self.ops
        X = task.X
        self.params = [ops.clone(p) for p in params]
        # The state's arrays cloned; its step counts (Adam's, a schedule's) on the
        # device, in float64 as the host computes the bias corrections and factors.
        float64 = task.backend.xp.float64
        self.leaves = [ops.zeros(float64, X) if isinstance(leaf, int) else ops.clone(leaf)
                       for leaf in leaves(state)]
        self.state = _with_leaves(state, iter(self.leaves))
        self.order = ops.arange(task.plan.n_samples, X)
        self.counter = ops.zeros(task.backend.xp.int64, X)
        self.loss = ops.zeros(X.dtype, X)
        self.correct = ops.zeros(X.dtype, X)
        self.replays, self.steps, failed = [], [], []
        for first, (rows, _) in zip(self._first_steps(), self.shapes):
            # Warm-up and capture read the rows of the graph's own first step.
            step = self._step(rows, ops.arange(rows, X))
            try:
                replay = self.capture(step, lambda f=first: ops.assign(self.counter, f),
                                      task.backend.device)
            except Exception as exc:  # noqa: BLE001 - a refused capture, of any library's kind
                first_line = _first_line(exc)
                if self.on_failure != "eager":
                    self.replays = None  # never a partial set of graphs: a later call rebuilds
                    if not isinstance(exc, RuntimeError):  # torch's capture errors are these
                        raise
                    raise RuntimeError(
                        f"executor {self.name!r}: capturing a training step of {rows} rows as "
                        f"a CUDA graph failed ({first_line}); fit(..., executor='reference') "
                        "trains without graphs") from exc
                replay = step
                failed.append(f"{rows} rows: {_failure(exc)}")
            else:
                if self.verify and replay is not step and not self._replays_the_step(replay,
                                                                                   step):
                    replay = step
                    failed.append(f"{rows} rows: a replay differed from the step run eagerly")
            self.replays.append(replay)
            self.steps.append(step)
        if failed:
            self.path = ("the steps run eagerly, one at a time (capturing them as a CUDA graph "
                         f"failed: {'; '.join(failed)})")

    def _buffers(self):
        return [*self.params, *self.leaves, self.loss, self.correct, self.counter]

    def _replays_the_step(self, replay, step):
        """Whether one ``replay()`` and one eager ``step()`` from the same buffers
        leave the same buffers (:data:`VERIFY_ULPS` units in the last place)."""
        ops, xp = self.ops, self.task.backend.xp
        start = [ops.clone(b) for b in self._buffers()]
        replay()
        replayed = [ops.clone(b) for b in self._buffers()]
        for b, s in zip(self._buffers(), start):
            ops.assign(b, s)
        step()
        same = True
        for a, b in zip(replayed, self._buffers()):
            if xp.isdtype(a.dtype, "real floating"):
                eps = xp.finfo(a.dtype).eps
                close = xp.abs(a - b) <= VERIFY_ULPS * eps * (1 + xp.abs(b))
                same = same and bool(xp.all(close | (xp.isnan(a) & xp.isnan(b))))
            else:
                same = same and bool(xp.all(a == b))
        return same

    def _first_steps(self):
        first, out = 0, []
        for _, steps in self.shapes:
            out.append(first)
            first += steps
        return out

    def _step(self, rows, base):
        task, ops, xp = self.task, self.ops, self.xp
        size = task.plan.batch_size

        def step():
            idx = ops.take(self.order, step_rows(base, self.counter, size))
            Xb, Yb = ops.take(task.X, idx), ops.take(task.Y, idx)
            loss, grads, correct = task.loss_and_grads(
                self.params, task.spec, task.rows(Xb, Yb), rows, rows, task.multiclass, xp)
            params, state = task.optimizer.update(grads, self.state, self.params)
            for static, new in zip(self.params, params):
                ops.assign(static, new)
            for static, new in zip(self.leaves, _leaves_of_step(state)):
                ops.assign(static, new)
            ops.add(self.loss, loss)
            if correct is not None:
                ops.add(self.correct, correct)
            ops.add(self.counter, 1)

        return step

    # -- one epoch ----------------------------------------------------------------------
    def __call__(self, params, state, order):
        ops = self.ops
        if self.replays is None:
            self._build(params, state)
        for static, p in zip(self.params, params):
            ops.assign(static, p)
        given = leaves(state)
        for static, value in zip(self.leaves, given):
            ops.assign(static, value)
        if order is not None:
            ops.from_host(self.order, order)
        else:
            ops.assign(self.order, ops.arange(self.task.plan.n_samples, self.order))
        ops.assign(self.counter, 0)
        ops.assign(self.loss, 0)
        ops.assign(self.correct, 0)
        n_steps = 0
        for replay, (_, steps) in zip(self.replays, self.shapes):
            for _ in range(steps):
                replay()
            n_steps += steps
        self.replayed += n_steps
        # Each count went up by one a step; the arrays are copied out of the graph's.
        new_state = _with_leaves(state, iter([
            value + n_steps if isinstance(value, int) else ops.clone(static)
            for static, value in zip(self.leaves, given)]))
        correct = None if self.task.multiclass is None else ops.clone(self.correct)
        return [ops.clone(p) for p in self.params], new_state, ops.clone(self.loss), correct


def _first_line(exc):
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _failure(exc):
    """``exc``'s type and first line, and those of the error it was raised
    while handling: where a step fails inside a capture, ending the capture
    (torch's ``capture_end``, CuPy's ``end_capture``) raises "operation failed
    due to a previous error during capture", which names nothing of what the
    step did; the step's own error is its context."""
    text = f"{type(exc).__name__}: {_first_line(exc)}"
    inner = exc.__context__
    if isinstance(inner, Exception) and exc.__cause__ is None and not exc.__suppress_context__:
        text += f" (after {type(inner).__name__}: {_first_line(inner)})"
    return text


class DescribedEpochs:
    """An executor's ``describe(task)``: the path its last epoch for ``task``
    took (:attr:`GraphEpoch.path`), which a failed capture changes at the
    fit's first epoch; ``_made(task, epoch)`` records the epoch it made."""

    def _made(self, task, epoch):
        self._last = (task, epoch)
        return epoch

    def describe(self, task):
        """How the epochs run, in words (for ``History.executor_reason``)."""
        last = getattr(self, "_last", None)
        if last is not None and last[0] is task:
            return last[1].path
        return "each step one replay of its captured CUDA graph"
