"""torch:cuda: each training step captured once as a CUDA graph and replayed.

An eager step of a small network is launch-bound: some forty kernels of
25-30 µs of host time each on an H200. Captured in a CUDA graph, the whole
step (gather the batch, forward, backward, optimizer update) is one replay.

The graph works on static buffers: the parameters and optimizer state,
the epoch's row order, a step counter and the loss and hit accumulators.
The step reads its batch's rows as ``order[counter·B + arange(B)]`` and
advances the counter itself, so a replay needs no host input and nothing
is copied per step. Adam's step count rides along as a device scalar
(float64), from which the update computes its bias corrections on the
device, and so does a fit's ``'invscaling'`` schedule's (its factor); an L2
penalty and ``'adaptive'``'s factor are constants of the optimizer, which a
plateau replaces (and the graphs are captured again). An epoch copies the parameters, state and order in, replays the
full-batch graph ``N // B`` times and the last, shorter batch's own graph
once, and copies the results out: one launch per step, a few per epoch.

Measured on an H200 (2026-11-27, the small model [32,64,1]): a replayed
step takes 68-80 µs. The graph saves the host's launches, but its kernels
still run one after another on the GPU. Fewer, fused kernels would be
needed to go faster.

Capture follows torch's documented recipe: warm-up steps on a side stream,
then ``torch.cuda.graph``. The capture is a parameter (:func:`cuda_capture`
by default); :func:`eager_capture` runs the same step eagerly, which is how
the CPU tests check everything but the capture itself.

A graph replays addresses, not Python objects: every tensor a captured step
reads must outlive the graph. The epoch keeps each step (and through it the
tensors only the step holds, such as its row offsets ``base``) beside its
replay. Dropped after capture, ``base`` went back to torch's allocator, the
next allocation took its memory, and the replays gathered rows from garbage
indices (a device-side assert on the first GPU run, 2026-11-27).
"""

from __future__ import annotations

import gc

import torch

__all__ = ["TorchGraphs", "batch_shapes", "cuda_capture", "eager_capture", "step_rows",
           "unsupported", "WARMUP_STEPS"]

# torch's docs warm up "a few" iterations on a side stream before capture,
# so that lazy initialisations (cuBLAS handles, workspaces, caches) happen
# outside the graph.
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
    tensor there; the tail step (counter ``N // B``, ``rows = N mod B``)
    reads the last rows.
    """
    return base + counter * batch_size


def unsupported(task, need_cuda=True):
    """Why the graphs cannot run ``task`` (a string), or None if they can."""
    plan, device = task.plan, task.backend.device
    if need_cuda and getattr(device, "type", None) != "cuda":
        return f"CUDA graphs need a CUDA device, not {str(device)!r}"
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


def _base_name(opt):
    """``(name, wrappers)``: the built-in optimizer inside the fit's wrappers, and theirs."""
    wrappers = []
    while getattr(opt.update, "parts", None) is not None:
        wrappers.append(opt.update.parts[0])
        opt = opt.update.parts[1]
    return opt.name, wrappers


def _leaves(state):
    """An optimizer state's arrays and step counts, in order: its fields, and
    the fields of a state it holds (a ``ScheduledState``'s optimizer's)."""
    out = []
    for value in state if hasattr(state, "_fields") else ():
        if isinstance(value, list):
            for item in value:
                out += _leaves(item) if isinstance(item, tuple) else [item]
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


def _with_leaves(state, leaves):
    """``state`` with its :func:`_leaves` replaced, in order, from the iterator ``leaves``."""
    if not hasattr(state, "_fields"):
        return state
    return type(state)(*[
        [_with_leaves(item, leaves) if isinstance(item, tuple) else next(leaves)
         for item in value] if isinstance(value, list) else next(leaves)
        for value in state])


def cuda_capture(step, reset, device):
    """``replay()`` of ``step`` captured as a CUDA graph, after warm-up on a side stream.

    ``reset()`` puts the static buffers back in a state ``step`` may read
    (the warm-up steps change them; the epoch reloads them anyway).
    """
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(WARMUP_STEPS):
            reset()
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    reset()
    graph = torch.cuda.CUDAGraph()
    # Precautions, not fixes of an observed failure: in "thread_local" mode
    # another library's threads in this process (JAX's, CuPy's) may call the
    # CUDA runtime during the capture, which the default "global" mode makes
    # an error here; with the collector off no finalizer frees GPU memory
    # mid-capture. What this thread itself does must still be capture-safe.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            step()
    finally:
        if collecting:
            gc.enable()
    return graph.replay


def eager_capture(step, reset, device):
    """The step itself as its ``replay``: the executor's logic without a GPU (tests)."""
    return step


class TorchGraphs:
    """The ``"torch-graphs"`` executor (see :mod:`nnbackend.engine` for the contract).

    ``capture`` is :func:`cuda_capture` (the default) or :func:`eager_capture`,
    which also lifts the CUDA requirement.
    """

    name = "torch-graphs"

    def __init__(self, capture=cuda_capture):
        self.capture = capture

    def supports(self, task):
        return unsupported(task, need_cuda=self.capture is cuda_capture)

    def make_epoch(self, task):
        return GraphEpoch(task, self.capture)

    def launches(self, task):
        """Host launches of a fit's epoch: ``{"per_step": 1, "per_epoch": k}``.

        Per step, one graph replay (the kernels inside it are launched by the
        GPU from the graph, not by the host). Per epoch: the copies in (order,
        each parameter and state array, the count) and out, and three resets.
        """
        n_arrays = len(task.layer_sizes) - 1 if task.layer_sizes else 0
        name, wrappers = _base_name(task.optimizer)
        per_state = {"sgd": 0, "momentum": 1, "adam": 2}[name]
        arrays = 2 * n_arrays * (1 + per_state)
        # The step counts: Adam's, and a schedule's.
        count = (name == "adam") + ("scheduled" in wrappers)
        # copies in + copies out + order + resets + accumulators out
        return {"per_step": 1, "per_epoch": 2 * arrays + count + 1 + 3 + 2}


class GraphEpoch:
    """``epoch(params, state, order)`` for one fit; captures at its first call."""

    def __init__(self, task, capture):
        self.task, self.capture = task, capture
        self.shapes = batch_shapes(task.plan.n_samples, task.plan.batch_size)
        self.replays = None
        self.steps = None  # the captured steps: what each replay reads stays alive with them
        self.replayed = 0  # replays so far (the tests count them)

    # -- static buffers ---------------------------------------------------------------
    def _build(self, params, state):
        task = self.task
        dev = task.X.device
        self.params = [p.clone() for p in params]
        # The state's arrays cloned; its step counts (Adam's, a schedule's) on the
        # device, in float64 as the host computes the bias corrections and factors.
        self.leaves = [torch.zeros((), dtype=torch.float64, device=dev) if isinstance(leaf, int)
                       else leaf.clone() for leaf in _leaves(state)]
        self.state = _with_leaves(state, iter(self.leaves))
        n = task.plan.n_samples
        self.order = torch.arange(n, dtype=torch.int64, device=dev)
        self.counter = torch.zeros((), dtype=torch.int64, device=dev)
        self.loss = torch.zeros((), dtype=task.X.dtype, device=dev)
        self.correct = torch.zeros((), dtype=task.X.dtype, device=dev)
        self.replays, self.steps = [], []
        for first, (rows, _) in zip(self._first_steps(), self.shapes):
            # Warm-up and capture read the rows of the graph's own first step.
            step = self._step(rows, torch.arange(rows, dtype=torch.int64, device=dev))
            try:
                replay = self.capture(step, lambda f=first: self.counter.fill_(f), dev)
            except RuntimeError as exc:  # torch.AcceleratorError among them
                self.replays = None  # never a partial set of graphs: a later call rebuilds
                raise RuntimeError(
                    f"executor 'torch-graphs': capturing a training step of {rows} rows as a "
                    f"CUDA graph failed ({str(exc).splitlines()[0]}); "
                    "fit(..., executor='reference') trains without graphs") from exc
            self.replays.append(replay)
            self.steps.append(step)

    def _first_steps(self):
        first, out = 0, []
        for _, steps in self.shapes:
            out.append(first)
            first += steps
        return out

    def _step(self, rows, base):
        task, xp = self.task, self.task.backend.xp
        size = task.plan.batch_size

        def step():
            idx = torch.index_select(self.order, 0, step_rows(base, self.counter, size))
            Xb, Yb = torch.index_select(task.X, 0, idx), torch.index_select(task.Y, 0, idx)
            loss, grads, correct = task.loss_and_grads(
                self.params, task.spec, task.rows(Xb, Yb), rows, rows, task.multiclass, xp)
            params, state = task.optimizer.update(grads, self.state, self.params)
            for static, new in zip(self.params, params):
                static.copy_(new)
            for static, new in zip(self.leaves, _leaves_of_step(state)):
                static.copy_(new)
            self.loss.add_(loss)
            if correct is not None:
                self.correct.add_(correct)
            self.counter.add_(1)

        return step

    # -- one epoch ----------------------------------------------------------------------
    def __call__(self, params, state, order):
        if self.replays is None:
            self._build(params, state)
        for static, p in zip(self.params, params):
            static.copy_(p)
        given = _leaves(state)
        for static, value in zip(self.leaves, given):
            if isinstance(value, int):
                static.fill_(value)
            else:
                static.copy_(value)
        if order is not None:
            self.order.copy_(torch.from_numpy(order))
        else:
            self.order.copy_(torch.arange(self.order.shape[0]))
        self.counter.zero_()
        self.loss.zero_()
        self.correct.zero_()
        n_steps = 0
        for replay, (_, steps) in zip(self.replays, self.shapes):
            for _ in range(steps):
                replay()
            n_steps += steps
        self.replayed += n_steps
        # Each count went up by one a step; the arrays are copied out of the graph's.
        new_state = _with_leaves(state, iter([
            value + n_steps if isinstance(value, int) else static.clone()
            for static, value in zip(self.leaves, given)]))
        correct = None if self.task.multiclass is None else self.correct.clone()
        return [p.clone() for p in self.params], new_state, self.loss.clone(), correct
