"""What the benchmark times: one training epoch of a named model, nnbackend or a peer.

* ``nnbackend``: :func:`nnbackend.model.epoch_function`, the code every fit runs.
* The peers (:mod:`.peers`): ``numpy-seed`` (and its ``-bare`` and
  ``-record`` forms, which keep no loss or keep it as nnbackend does),
  ``torch-eager``, ``cupy-eager``, ``jax-scan-hand`` and ``jax-jit-step``,
  written by hand.

The models are :data:`.models.WORKLOADS`: ``small`` ([32, 64, 1] sigmoid,
½·squared error, SGD), ``small16`` ([16, 32, 1], trained the same way),
``mnist`` ([784, 1024, 1024, 10] relu, softmax cross-entropy, Adam) and
``mid`` ([784, 256, 256, 10], mnist's task with SGD). Every implementation trains the same model from the
same start on the same synthetic data, already on the device, float32. Each
``step()`` runs one epoch and waits for the device before returning.

Labels name what ran and on which kind of device (:func:`.models.label_for`):
``nnbackend-torch-cuda`` and ``nnbackend-torch-cpu`` are two curves.
"""

from __future__ import annotations

import time

from ..backends import get_backend
from ..model import MLP, epoch_function
from .models import label_for, workload
from ..backends.precision import check_precision
from .peers import (SEED_RECORDS, cupy_eager_epoch, jax_default_precision, jax_scan_epoch,
                    jax_step_loop_epoch, numpy_seed_epoch, torch_eager_epoch)
from .stability import spread
from .synthetic import batch_size_of, data_for, initial_params, synthetic, synthetic_mnist

__all__ = ["nnbackend_epoch", "make_epoch", "device_kind", "time_to_target", "synthetic",
           "synthetic_mnist", "data_for", "initial_params", "batch_size_of", "numpy_seed_epoch",
           "torch_eager_epoch", "cupy_eager_epoch", "jax_scan_epoch", "jax_step_loop_epoch",
           "IMPLEMENTATIONS", "N_FEATURES", "N_HIDDEN", "LR", "LAYERS"]

# The small model's constants, as before there were several models.
N_FEATURES = 32
N_HIDDEN = 64
LR = 0.1
LAYERS = [N_FEATURES, N_HIDDEN, 1]

#: Every implementation the suite can time.
IMPLEMENTATIONS = ("nnbackend", "nnbackend-reference", "numpy-seed", "numpy-seed-bare",
                   "numpy-seed-record", "torch-eager",
                   "cupy-eager", "jax-scan-hand", "jax-jit-step")


def device_kind(backend) -> str:
    """The kind of device a backend's arrays live on, spelled as its library spells it.

    ``torch.device.type`` (``cpu``, ``cuda``, ``mps``), a JAX device's
    ``platform`` (``cpu``, ``gpu``); otherwise ``cuda`` on a GPU (CuPy's
    devices are ``cuda:N``) and ``cpu`` elsewhere.
    """
    dev = backend.device
    for attr in ("type", "platform"):
        kind = getattr(dev, attr, None)
        if isinstance(kind, str) and kind:
            return kind
    return "cuda" if backend.is_gpu() else "cpu"


def nnbackend_epoch(backend, device, mode, n_samples, batch_size=None, seed=0, lr=None,
                    executor="auto", model="small", precision=None):
    """``(step, info)``: one nnbackend epoch per ``step()`` call.

    ``batch_size`` and ``lr`` default to the model's. ``executor="reference"``
    times the plain loop where ``"auto"`` would take the backend's fast path
    (labelled ``nnbackend-<name>-<kind>-reference``). ``precision`` is
    ``fit``'s; ``info["precision"]`` says what the float32 matmuls run at.
    """
    w = workload(model)
    b = get_backend(backend, device)
    net = MLP(list(w.layers), hidden_activation=w.hidden_activation,
              output_activation=w.output_activation, loss=w.loss, backend=b, dtype="float32",
              seed=seed)
    X, y = data_for(model, n_samples, seed)
    X = b.asarray(X, dtype=b.dtype("float32"))  # on the device before timing
    if y.dtype.kind == "f":
        y = b.asarray(y, dtype=b.dtype("float32"))
    # Class ids stay on the host: epoch_function makes the targets on the device once.
    step = epoch_function(net, X, y, mode=mode,
                          batch_size=min(batch_size or w.batch_size, n_samples),
                          lr=w.lr if lr is None else lr, optimizer=w.optimizer, seed=seed,
                          executor=executor, precision=precision)
    kind = device_kind(b)
    info = {"implementation": "nnbackend", "label": label_for("nnbackend", kind, b.name, executor),
            "backend": b.name, "device": b.device_name(), "device_kind": kind, "gpu": b.is_gpu(),
            "model": w.name, "executor": executor, "executor_ran": step.executor,
            "precision": step.precision, "blas_threads": step.blas_threads}
    return step, info


def make_epoch(implementation, where, mode, n_samples, model="small", seed=0, precision=None):
    """``(step, info)`` for one implementation of :data:`IMPLEMENTATIONS`.

    ``where``: for nnbackend a backend as ``name`` or ``name:device``; for the
    torch peer a torch device (``cpu``, ``cuda``); for the JAX peers a JAX
    platform (``cpu``, ``gpu``; ``default`` or empty for JAX's default); the
    other peers ignore it. Batch size and learning rate are the model's.
    ``precision`` (None, ``"highest"``, ``"tf32"``) is set for every epoch,
    the peers' included, through the same switch as a fit's (its library's);
    ``info["precision"]`` says what the float32 matmuls run at.

    Raises
    ------
    nnbackend.BackendUnavailableError, ImportError
        What the implementation needs is missing here (the suite skips).
    ValueError
        An unknown implementation, or a peer that does not train ``model``.
    """
    w = workload(model)
    if implementation in ("nnbackend", "nnbackend-reference"):
        name, _, device = where.partition(":")
        executor = "reference" if implementation == "nnbackend-reference" else "auto"
        return nnbackend_epoch(name, device or None, mode, n_samples, seed=seed,
                               executor=executor, model=model, precision=precision)
    check_precision(precision)
    if implementation in SEED_RECORDS:
        step, info = numpy_seed_epoch(mode, n_samples, w.batch_size, seed, w.lr, model=model,
                                      implementation=implementation)
        info["precision"] = "highest"  # NumPy on the CPU: no TF32
        return step, info
    if implementation == "torch-eager":
        step, info = torch_eager_epoch(mode, n_samples, seed=seed, device=where or "cpu",
                                       model=model)
        return _at_precision(step, info, get_backend("torch", where or "cpu"), precision)
    if implementation == "cupy-eager":
        step, info = cupy_eager_epoch(mode, n_samples, seed=seed, model=model)
        return _at_precision(step, info, get_backend("cupy"), precision)
    if implementation in ("jax-scan-hand", "jax-jit-step"):
        make = jax_scan_epoch if implementation == "jax-scan-hand" else jax_step_loop_epoch
        device = None if where in (None, "", "default") else where
        step, info = make(mode, n_samples, w.batch_size, seed, w.lr, device=device, model=model)
        if precision is not None and info["gpu"]:
            # jax_precision sets nothing for "highest" while JAX is at its default
            # (nnbackend's own matmuls ask for HIGHEST); these hand-written `@` ask
            # for nothing, so JAX's default (TF32) would run: name it for them.
            import jax

            setting = {"highest": "highest", "tf32": "tensorfloat32"}[precision]
            info["precision"] = precision
            return _in_context(step, lambda: jax.default_matmul_precision(setting)), info
        step, info = _at_precision(step, info, get_backend("jax", device), precision)
        if precision is None and info["gpu"]:
            # The hand-written epochs' ``@`` asks for no precision (nnbackend's asks
            # for HIGHEST): JAX's own default is theirs.
            info["precision"] = jax_default_precision(info["precision"])
        return step, info
    raise ValueError(f"unknown benchmark implementation {implementation!r}; choose from "
                     f"{', '.join(IMPLEMENTATIONS)}")


def _at_precision(step, info, backend, precision):
    """A peer's ``(step, info)`` with each epoch run inside ``backend``'s
    float32 matmul precision (the switch a fit on it sets: torch's, CuPy's,
    JAX's); ``info["precision"]`` what its matmuls run at."""
    dtype = backend.dtype("float32")
    with backend.matmul_precision(precision, dtype) as now:
        info["precision"] = now
    if precision is None:
        return step, info  # nothing to set: the library as it is
    return _in_context(step, lambda: backend.matmul_precision(precision, dtype)), info


def _in_context(step, context):
    """``step`` (and ``step.window``) with each call inside ``context()``."""
    def stepped():
        with context():
            return step()

    def window(k):
        with context():
            return step.window(k)

    stepped.window = window
    return stepped


def time_to_target(make_step, target_loss, n_samples, max_seconds=None, max_epochs=None):
    """Train epoch after epoch until the mean epoch loss is at most ``target_loss``,
    or the budget is spent: ``max_seconds`` of training (checked at each
    epoch's end: the run stops at the first epoch that ends past it) or
    ``max_epochs`` epochs. Give one of them, the same for every backend
    compared, so that "not reached" means the same everywhere.

    Returns a dict: ``reached``, ``epochs``, ``seconds`` (wall time, set-up
    excluded), ``final_loss``, ``budget_kind`` (``"seconds"`` or
    ``"epochs"``; ``"seconds or epochs"`` when both were given), ``budget``
    (the figure of that kind; ``[seconds, epochs]`` for both),
    ``first_epoch_seconds`` (it holds any compilation) and the spread of the
    epochs' times: ``epoch_median``, ``epoch_q1``, ``epoch_q3``.
    """
    if max_seconds is None and max_epochs is None:
        raise ValueError("time_to_target needs a budget: max_seconds or max_epochs")
    step = make_step()
    start = time.perf_counter()
    loss, times = float("inf"), []
    while max_epochs is None or len(times) < max_epochs:
        began = time.perf_counter()
        loss = step() / n_samples
        times.append(time.perf_counter() - began)
        if loss <= target_loss or (max_seconds is not None
                                   and time.perf_counter() - start > max_seconds):
            break
    seconds = time.perf_counter() - start
    if max_epochs is None:
        kind, budget = "seconds", max_seconds
    elif max_seconds is None:
        kind, budget = "epochs", max_epochs
    else:
        kind, budget = "seconds or epochs", [max_seconds, max_epochs]
    out = {"reached": loss <= target_loss, "epochs": len(times), "seconds": seconds,
           "final_loss": loss, "budget_kind": kind, "budget": budget,
           "first_epoch_seconds": times[0] if times else None}
    if times:
        s = spread(times)
        out.update(epoch_median=s["median"], epoch_q1=s["q1"], epoch_q3=s["q3"])
    return out
