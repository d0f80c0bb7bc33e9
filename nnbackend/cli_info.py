"""``nnbackend info``: the backends on this machine, their devices, and which of
their executors run a small probe fit here (and why not, where one does not)."""

from __future__ import annotations

import json

import numpy as np

from .backends import BACKEND_NAMES, BackendUnavailableError, get_backend, library_version
from .data import make_plan

__all__ = ["info_command"]


def _gpus(backend):
    """``[(device, GPU name, memory in GiB)]`` the backend's library sees; [] if it cannot say."""
    try:
        return backend.gpus()
    except Exception:  # a driver query that fails: the row says no GPU
        return []


# The fits `nnbackend info` asks each executor about: small, float32, sgd, in
# mini-batches of 8 rows of 64 and in batch mode; what an executor refuses for
# both is about this machine and device (no CUDA, no CuPy), not someone's data.
_PROBE_ROWS, _PROBE_BATCH, _PROBE_SIZES = 64, 8, [2, 4, 1]
_PROBE_FITS = {"mini-batch": ("minibatch", _PROBE_BATCH), "batch": ("batch", None)}


def _probe_task(backend, mode, batch_size):
    """A small :class:`~nnbackend.engine.EpochTask` (``_PROBE_*``) on ``backend``."""
    from .engine import EpochTask
    from .network import NetSpec
    from .optim import on_namespace, sgd

    dtype = backend.dtype("float32")
    X = backend.asarray(np.zeros((_PROBE_ROWS, _PROBE_SIZES[0]), np.float32), dtype=dtype)
    Y = backend.asarray(np.zeros((_PROBE_ROWS, _PROBE_SIZES[-1]), np.float32), dtype=dtype)
    plan = make_plan(mode, _PROBE_ROWS, batch_size)
    return EpochTask(backend, NetSpec("tanh", "sigmoid", "bce", "mean"),
                     on_namespace(sgd(0.1), backend.xp), plan, X, Y, _PROBE_ROWS, False,
                     backend.index_dtype(), list(_PROBE_SIZES))


def _executors(backend):
    """``[{name, label, usable, fits, reason}]``: the backend's executors in the order
    ``executor="auto"`` tries them, then the reference loop. ``fits``: which of
    the small probe fits (``_PROBE_FITS``) each runs here; ``usable``: any;
    ``reason``: why not, where none (its refusal of the first)."""
    try:
        executors = backend.executors()
        tasks = {kind: _probe_task(backend, *fit) for kind, fit in _PROBE_FITS.items()}
    except Exception as exc:  # a backend that cannot even be asked: say so, never fail info
        why = f"could not be asked ({type(exc).__name__}: {exc})"
        executors, tasks = [], {}
        rows = [{"name": name, "label": name, "usable": False, "fits": [], "reason": why}
                for name in backend.executor_names]
    else:
        rows = []
    for executor in executors:
        fits, refusals = [], []
        for kind, task in tasks.items():
            try:
                why = executor.supports(task)
            except Exception as exc:
                why = f"could not be asked ({type(exc).__name__}: {exc})"
            (refusals if why else fits).append(why or kind)
        rows.append({"name": executor.name, "label": getattr(executor, "label", executor.name),
                     "usable": bool(fits), "fits": fits,
                     "reason": None if fits else refusals[0]})
    ok = backend.no_reference_loop is None
    rows.append({"name": "reference", "label": "reference", "usable": ok,
                 "fits": list(_PROBE_FITS) if ok else [], "reason": backend.no_reference_loop})
    return rows


def info_command(args):
    """``nnbackend info``: each backend, its devices and executors (``--json``: as data)."""
    if args.scheduler is not None and args.backend not in (None, "dask"):
        raise ValueError(f"--scheduler names a Dask scheduler; it needs --backend dask, "
                         f"not {args.backend}")
    names = [args.backend] if args.backend is not None else list(BACKEND_NAMES)
    rows = []
    for name in names:
        row = {"backend": name, "version": library_version(name)}
        try:
            b = get_backend(name, args.device, **(
                {"scheduler": args.scheduler} if args.scheduler and name == "dask" else {}))
        except (BackendUnavailableError, ValueError) as exc:
            # One backend asked for: its error. All of them: each row says why it is
            # not usable (NumPy has no --device cuda, say).
            if args.backend is not None:
                raise
            row.update(available=False, reason=str(exc))
        else:
            # "torch:cpu", "NUMPY": the library's version by the backend's own name.
            row.update(backend=b.name, version=library_version(b.name))
            row.update(available=True, device=b.device_spec(),
                       float64="float64" in b.float_dtypes(),
                       gpus=[{"device": d, "name": n, "memory_gib": m} for d, n, m in _gpus(b)],
                       executors=_executors(b))
        rows.append(row)
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        if row["available"]:
            extra = "".join(
                f"\n           GPU {g['device']}: {g['name']}"
                + (f", {g['memory_gib']:.1f} GiB" if g["memory_gib"] else "")
                for g in row["gpus"]
            )
            which = "device" if args.device else "default device"
            print(f"{row['backend']:8s} {row['version'] or '':10s} installed  {which} "
                  f"{row['device']}  float64 {'yes' if row['float64'] else 'no'}{extra}")
            print("           executors, in the order auto tries them:")
            for e in row["executors"]:
                print(f"             {e['label']}: " + (
                    f"runs {' and '.join(e['fits'])} fits" if e["usable"] else
                    f"not here: {e['reason']}"))
        else:
            print(f"{row['backend']:8s} {row['version'] or '-':10s} not usable: {row['reason']}")
    return 0


