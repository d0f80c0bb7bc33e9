"""The choice ``backend="auto"`` makes for one fit, and why, as data.

For host data (NumPy arrays, lists, DataFrames) every candidate of
:func:`nnbackend.backends.auto_candidates` is asked what it would run (its
first executor that supports the fit, as the fit itself asks) and priced
from the profile's terms for that candidate, mode and executor (see
:mod:`.cost`): the cheapest predicted fit wins, the earlier candidate on a
tie. An array of a backend (CuPy, torch, JAX, Dask...) decides the backend
itself: auto never moves the caller's arrays. No backend is named here.
"""

from __future__ import annotations

import os

import numpy as np

from ..backends import auto_candidates, backend_of, candidate_key
from ..backends.blas import free_cores
from ..data import is_host, make_plan
from ..engine import EpochTask
from ..network import multiclass_of, rows_for_budget
from ..optim import on_namespace
from ..training import FitOptions
from ..training.schedule import fit_optimizer
from .cost import Workload, predict
from .profile import active_profile

__all__ = ["blas_threads_for", "choose", "data_decides", "decided_by_data", "note_used",
           "used_candidates", "workload_of"]


def workload_of(layer_sizes, n_samples, options: FitOptions, dtype: str) -> Workload:
    """The :class:`Workload` of a fit of ``n_samples`` rows with ``options``."""
    n = max(1, int(n_samples))
    # make_plan's batch sizes, without its warning (the fit gives that).
    size = {"batch": n, "sgd": 1}.get(options.mode, min(int(options.batch_size or 1), n))
    return Workload(tuple(int(s) for s in layer_sizes), n, options.mode, size,
                    int(options.epochs), str(dtype), options.optimizer_name or "custom")


def data_decides(X, y=None) -> tuple | None:
    """``(backend, why)`` where ``X`` or ``y`` is an array of a backend (it stays
    there: the backend is that array's), else None for host data."""
    for name, a in (("X", X), ("y", y)):
        if a is not None and not is_host(a):
            try:
                backend = backend_of(a)
            except TypeError:  # not an array: the fit's own checks refuse it by name
                continue
            return backend, (f"{name} is an array of the {backend.name} backend on "
                             f"{backend.device}: the data decides (auto never moves the "
                             "caller's arrays)")
    return None


# The arrays executors are asked about, per candidate and dtype: their dtype and
# device are what supports() reads (shapes come from the task's layer sizes),
# so they are made once per process (a JAX array of a new shape costs a
# compilation of its own).
_PROBES = {}
# The candidates a fit has run on in this process (see note_used).
_USED = set()


def note_used(key: str) -> None:
    """Record that a fit ran on candidate ``key``: its library's one-time start in
    this process (``first_use_s``) is paid, and no later choice counts it."""
    _USED.add(key)


def used_candidates() -> frozenset:
    """The candidates a fit has run on in this process."""
    return frozenset(_USED)


def _probe_arrays(backend, dtype):
    key = (candidate_key(backend), str(backend.device), dtype)
    if key not in _PROBES:
        zeros = np.zeros((1, 1))
        _PROBES[key] = tuple(backend.probe_array(zeros, dtype) for _ in "XY")
    return _PROBES[key]


def _executor_for(backend, options, spec, layer_sizes, plan, dtype, rows):
    """The executor ``backend`` would run this fit with (as ``choose_executor``
    would pick it), "reference" for the plain loop, or None where the fit's
    named executor is not this backend's."""
    if options.executor == "reference":
        return None if backend.no_reference_loop else "reference"
    if options.executor != "auto" and options.executor not in backend.executor_names:
        return None
    X, Y = _probe_arrays(backend, dtype)
    opt = on_namespace(fit_optimizer(options, plan, len(layer_sizes) - 1, spec.reduction),
                       backend.xp)
    task = EpochTask(backend, spec, opt, plan, X, Y, rows, multiclass_of(spec),
                     backend.index_dtype(), list(layer_sizes))
    for candidate in backend.executors():
        if options.executor in ("auto", candidate.name) and candidate.supports(task) is None:
            return candidate.name
    if options.executor != "auto" or backend.no_reference_loop:
        return None
    return "reference"


def _cached_executor(key, backend, options, spec, work, rows):
    """:func:`_executor_for`, remembered per candidate and everything executors
    judge a fit by (a fit in a sweep asks once); a custom optimizer is asked anew."""
    opt = options.optimizer
    hyper = getattr(opt, "hyper", None)
    schedule = options.lr_schedule if isinstance(options.lr_schedule, str) else None
    memo = None
    if getattr(opt, "name", None) is not None and isinstance(hyper, dict) and schedule:
        try:
            # Executors judge a plan by its batch size against N and the chunk;
            # a full batch's size is N itself, which a sweep changes every fit.
            size = work.batch_size if work.mode != "batch" else None
            memo = (key, str(backend.device), spec, work.layer_sizes, work.mode, size,
                    work.batch_size >= work.n_samples, rows, opt.name,
                    tuple(sorted(hyper.items())), options.alpha > 0, schedule, options.executor,
                    options.shuffle, work.dtype)
            hash(memo)
        except TypeError:
            memo = None
    if memo is not None and memo in _EXECUTORS:
        return _EXECUTORS[memo]
    plan = make_plan(work.mode, work.n_samples, work.batch_size, options.shuffle)
    executor = _executor_for(backend, options, spec, work.layer_sizes, plan, work.dtype, rows)
    if memo is not None:
        if len(_EXECUTORS) > 512:
            _EXECUTORS.clear()
        _EXECUTORS[memo] = executor
    return executor


_EXECUTORS = {}  # _cached_executor's answers
_DTYPES = {}  # per candidate and device: its float dtypes


def _blas_speedup(backend, work, rows, profile):
    """How much faster the fit's products run with the BLAS threads it will get
    than with one (the candidate's terms are measured with one), from the
    profile's BLAS timings; 1 for a backend that sets no BLAS threads."""
    if not backend.sets_blas_threads:
        return 1.0
    threads = blas_threads_for(work, rows, profile)
    measured = profile.blas.get("measured") or []
    most = profile.blas.get("threads") or 1
    if not threads or threads <= 1 or not measured or most <= 1:
        return 1.0
    product = work.largest_product(rows)
    below = [m for m in measured if m[0] <= product] or measured[:1]
    _, one, many = below[-1]
    gain = max(1.0, one / many) if many > 0 else 1.0
    return 1.0 + (gain - 1.0) * (min(threads, most) - 1) / (most - 1)


def _price(key, backend, profile, work, options, spec):
    """One candidate's row of the choice: its executor and predicted seconds, or
    why it was left out (``skipped``)."""
    row = {"candidate": key, "backend": backend.name, "device": str(backend.device),
           "executor": None, "predicted_s": None, "skipped": None}
    where = (key, str(backend.device))
    if where not in _DTYPES:
        _DTYPES[where] = backend.float_dtypes()
    if work.dtype not in _DTYPES[where]:
        row["skipped"] = f"no {work.dtype} on {backend.device}"
        return row
    try:
        rows = options.chunk_size  # rows, or "auto": chunk_rows' rows, by the dtype's name
        if isinstance(rows, str):
            rows = rows_for_budget(list(work.layer_sizes), 8 if work.dtype == "float64" else 4,
                                   backend.activation_budget())
        executor = _cached_executor(key, backend, options, spec, work, rows)
    except Exception as exc:  # a backend that cannot even be asked does not run the fit
        row["skipped"] = f"cannot run this fit ({type(exc).__name__}: {exc})"
        return row
    row["executor"] = executor
    if executor is None:
        row["skipped"] = f"executor {options.executor!r} does not run here"
        return row
    terms = profile.terms(key, work.mode, executor)
    if terms is None or terms.executor != executor:
        measured = "nothing" if terms is None else f"the {terms.executor} executor"
        row["skipped"] = (f"the profile measured {measured} for {work.mode} fits here, "
                          f"and this fit would run {executor}")
        return row
    speedup = _blas_speedup(backend, work, rows, profile)
    row.update({k: _digits(v) for k, v in predict(terms, work, rows, speedup).items()})
    # The library's start in this process (its first fit), until a fit has run on it.
    row["first_use_s"] = 0.0 if key in _USED else profile.first_use.get(key, 0.0)
    row["predicted_s"] = _digits(row.pop("total_s") + row["first_use_s"])
    row["measured"] = (key, work.mode) in profile.measured
    return row


def _digits(seconds: float) -> float:
    """``seconds`` to six significant digits (the explanation's figures)."""
    return float(f"{seconds:.6g}")


def choose(layer_sizes, spec, n_samples, options: FitOptions, dtype: str, profile=None):
    """``(backend, explanation)``: the candidate predicted fastest for this fit of
    host data, and the choice as data (see :func:`nnbackend.explain_backend`)."""
    profile = profile or active_profile()
    work = workload_of(layer_sizes, n_samples, options, dtype)
    rows, backends = [], {}
    for key, backend in auto_candidates():
        rows.append(_price(key, backend, profile, work, options, spec))
        backends[key] = backend
    priced = [r for r in rows if r["predicted_s"] is not None]
    if not priced:
        raise ValueError("backend='auto' found no candidate that can run this fit: "
                         + "; ".join(f"{r['candidate']}: {r['skipped']}" for r in rows))
    best = min(priced, key=lambda r: r["predicted_s"])  # min keeps the first of equals
    others = sorted((r for r in priced if r is not best), key=lambda r: r["predicted_s"])
    reason = (f"{best['candidate']} ({best['executor']}) predicted {best['predicted_s']:.3g} s"
              + "".join(f", {r['candidate']} {r['predicted_s']:.3g} s" for r in others)
              + f" for {work.epochs} epochs of {work.mode} over {work.n_samples} rows"
              + _profile_note(profile))
    explanation = {
        "chosen": best["candidate"], "backend": best["backend"], "device": best["device"],
        "executor": best["executor"], "reason": reason, "profile": profile.source,
        "workload": {"layer_sizes": list(work.layer_sizes), "n_samples": work.n_samples,
                     "mode": work.mode, "batch_size": work.batch_size, "epochs": work.epochs,
                     "dtype": work.dtype, "optimizer": work.optimizer},
        "candidates": rows,
    }
    return backends[best["candidate"]], explanation


def _profile_note(profile) -> str:
    """What the reason adds about the profile: that it is the shipped default,
    or that it was measured elsewhere (still used: see :func:`.load_profile`)."""
    if profile.is_default:
        return " (shipped default profile)"
    if "machine" in profile.mismatch:
        return " (profile from another machine)"
    if profile.mismatch:
        return " (profile from other library versions)"
    return ""


def decided_by_data(backend, why) -> dict:
    """The explanation where the caller's array decides the backend."""
    return {"chosen": candidate_key(backend), "backend": backend.name,
            "device": str(backend.device), "executor": None, "reason": why, "profile": None,
            "workload": None, "candidates": []}


def blas_threads_for(work: Workload, rows: int, profile=None, idle=None) -> int | None:
    """The BLAS threads for a CPU fit of ``work`` with ``rows`` rows per chunk:
    1 where its largest product is below the profile's threshold (a second
    thread costs more than it brings there, and far more on a busy machine),
    else the profile's count, at most the cores not busy with other work.
    None where the profile says nothing (leave the library's own setting)."""
    profile = profile or active_profile()
    blas = profile.blas
    if not blas or "threshold_madds" not in blas:
        return None
    threshold = blas["threshold_madds"]
    if threshold is None or work.largest_product(rows) < threshold:
        return 1
    threads = blas.get("threads") or os.cpu_count() or 1
    return max(1, min(int(threads), free_cores() if idle is None else idle))
