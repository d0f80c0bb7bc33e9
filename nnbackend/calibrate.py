"""``nnbackend bench --calibrate``: measure this machine's profile for ``backend="auto"``.

Each candidate (:func:`nnbackend.backends.auto_candidates`) fits a few small
networks in each mode, as a user's fits run: with no callback, so the
epochs run in the windows a fit runs them in (on a GPU, many epochs a
kernel launch and one read of their figures). Per point: a cold fit of two
epochs (it compiles, where the executor compiles), then warm ones of one
epoch and of ``1 + k``, each of those twice, its quicker time kept. They
give one epoch (the two warm fits' difference over ``k``), the
once-per-fit setup (moving and checking the data) and the compile time;
the cost model's
terms (:mod:`nnbackend.autoselect.cost`) are fitted to them per candidate and
mode. NumPy's BLAS is timed with one thread and with its own count on
products of growing size, for the size from which more threads pay (the
fits themselves run with one thread: the gain is applied per fit). The
points go round-robin over the groups (a candidate and mode each), so a run
cut short by its time budget leaves every group measured at a few points (a
group with fewer than two is not measured). ``nnbackend bench --calibrate``
merges the groups measured over those of the profile file in the cache
directory (:func:`merge_profiles`), so a narrowed run (``--backends``,
``--modes``) keeps the others' terms; a run that measured none writes
nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import time
import warnings
from datetime import datetime, timezone

import numpy as np

from .autoselect import Profile, default_profile, machine_fingerprint, set_profile
from .autoselect.choose import used_candidates
from .autoselect.cost import COMPILE_TERMS, EPOCH_TERMS, SETUP_TERMS, Terms, Workload
from .autoselect.cost import compile_features, epoch_features, fit_nonnegative, setup_features
from .autoselect.profile import profile_mismatch
from .backends import auto_candidates, cpu_name, library_version
from .backends import blas
from .model import MLP
from .network import chunk_rows

__all__ = ["BUDGET_S", "POINTS", "calibrate", "measure_blas", "merge_profiles"]

# The whole calibration's time budget (the issue: 2 minutes on a laptop CPU).
BUDGET_S = 90.0

# Networks: (layer sizes, hidden activation, output activation, loss).
_NETS = {
    "small": ([16, 32, 1], "sigmoid", "sigmoid", "mse"),
    "wide": ([32, 256, 1], "tanh", "sigmoid", "mse"),
    "deep": ([64, 256, 256, 10], "relu", "softmax", "cross_entropy"),
}
# Per mode: (network, N, batch size), first the ones a short run keeps (two
# mini-batches past 64 rows among the first four: on a GPU they run the
# captured graphs, not the fused kernel, and an executor needs two points). They
# spread the features apart: steps per epoch from 32 to 6144, rows per step
# from 1 to 196608, three widths; a few hundred ms an epoch at most on NumPy.
POINTS = {
    "sgd": [("small", 512, 1), ("deep", 96, 1), ("small", 2048, 1), ("wide", 384, 1),
            ("deep", 256, 1), ("small", 6144, 1)],
    "minibatch": [("small", 4096, 32), ("deep", 4096, 128), ("small", 32768, 16),
                  ("small", 65536, 128), ("deep", 1024, 32), ("wide", 4096, 64)],
    "batch": [("small", 8192, 0), ("deep", 2048, 0), ("small", 65536, 0), ("wide", 16384, 0),
              ("deep", 16384, 0), ("small", 196608, 0)],
}
# A warm fit's later epochs (k, 2 to _MAX_EPOCHS) are about this many seconds
# in all: enough of them that their time stands above the setup's noise.
_EPOCHS_SECONDS = 0.15
_MAX_EPOCHS = 128
# Each calibration in a process offsets every N by one more row, so that
# compiled epochs cached by an earlier run (keyed by N) are not reused.
_RUNS = itertools.count()


def _data(sizes, loss, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    if loss == "cross_entropy":
        return X, rng.integers(0, sizes[-1], n)
    return X, (rng.random((n, sizes[-1])) > 0.5).astype(np.float32)


def _timed_fit(model, X, y, mode, batch, epochs):
    """``(seconds, executor)`` of one fit, start to end. No callback: one would
    read the figures back every epoch, where a fit reads them once a window."""
    start = time.perf_counter()
    hist = model.fit(X, y, mode=mode, batch_size=max(1, batch), epochs=epochs, lr=0.01)
    return time.perf_counter() - start, hist.executor


def _quicker_fit(model, X, y, mode, batch, epochs, times=2):
    # Noise only adds to a time: the quicker of two is the nearer.
    return min(_timed_fit(model, X, y, mode, batch, epochs)[0] for _ in range(times))


def _epochs_for(seconds):
    """The later epochs of a warm fit, for epochs of at most ``seconds`` each."""
    return int(min(_MAX_EPOCHS, max(2, round(_EPOCHS_SECONDS / max(seconds, 1e-6)))))


def measure_point(backend, mode, net, n, batch, seed=0):
    """One point: ``{"epoch", "setup", "compile", "executor", "workload", "rows"}``,
    seconds from fits of one model on ``backend``: a cold one of two epochs,
    then warm ones of one epoch and of ``1 + k`` (each the quicker of two; the
    latter twice more where the first ``k`` proves too small).
    An epoch is the warm fits' difference over ``k``; the one-epoch fit less
    an epoch is the setup; the cold fit less the one-epoch fit and an epoch
    is the compile."""
    sizes, hidden, output, loss = _NETS[net]
    X, y = _data(sizes, loss, n, seed)
    model = MLP(sizes, hidden, output, loss, backend=backend, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cold, executor = _timed_fit(model, X, y, mode, batch, 2)
        one = _quicker_fit(model, X, y, mode, batch, 1)
        # ``one`` (the setup and an epoch) bounds an epoch from above, so k epochs
        # sized from it take at most _EPOCHS_SECONDS: about that where the setup
        # is small. Where the k epochs take less than the setup, their own time
        # sizes k once more, or their difference would be lost in the setup's
        # noise (a GPU's 20 ms of setup against epochs of 100 us).
        k = _epochs_for(one)
        more = _quicker_fit(model, X, y, mode, batch, 1 + k)
        rough = (more - one) / k
        if rough * k < one - rough and _epochs_for(rough) > k:  # shorter than the setup
            k = _epochs_for(rough)
            more = _quicker_fit(model, X, y, mode, batch, 1 + k)
    epoch = max((more - one) / k, 1e-7)
    work = Workload(tuple(sizes), n, mode, {"batch": n, "sgd": 1}.get(mode, batch), 1)
    rows = chunk_rows("auto", backend, sizes, backend.dtype("float32"))
    return {"epoch": epoch, "setup": max(one - epoch, 1e-6),
            "compile": max(cold - one - epoch, 0.0), "executor": executor,
            "workload": work, "rows": rows}


def fit_terms(points) -> Terms:
    """The cost terms of one candidate and mode from its measured points."""
    epoch, epoch_err = fit_nonnegative(
        [epoch_features(p["workload"], p["rows"]) for p in points], [p["epoch"] for p in points])
    setup, _ = fit_nonnegative([setup_features(p["workload"]) for p in points],
                               [p["setup"] for p in points])
    compiles = [p["compile"] for p in points]
    # A median compile below 5 ms is the noise of a busy machine: nothing compiles.
    if float(np.median(compiles)) < 5e-3:
        compiled = [0.0] * len(COMPILE_TERMS)
    else:
        # Compile times scatter widely (0.4 to 1.2 s for one executor on the busy
        # 2-core VM): the fit scaled up to cover every point, so that auto counts
        # on a slow compile rather than a quick one.
        features = [compile_features(p["workload"]) for p in points]
        compiled, _ = fit_nonnegative(features, [max(c, 1e-4) for c in compiles])
        fitted = [max(sum(a * x for a, x in zip(compiled, f)), 1e-9) for f in features]
        scale = max(1.0, max(c / f for c, f in zip(compiles, fitted)))
        compiled = [a * scale for a in compiled]
    values = dict(zip(EPOCH_TERMS, epoch)) | dict(zip(SETUP_TERMS, setup)) \
        | dict(zip(COMPILE_TERMS, compiled))
    return Terms(executor=points[-1]["executor"], points=len(points),
                 rel_error=round(epoch_err, 4), **{k: float(f"{v:.4g}") for k, v in values.items()})


def terms_by_executor(mode, points) -> dict:
    """``{mode: Terms, "mode/EXECUTOR": Terms, ...}`` from one candidate's points of
    ``mode``, fitted apart for each executor that ran two or more of them.

    One mode's points may run different executors (on a GPU, mini-batches past
    the fused kernel's 64 rows run captured graphs; batch layers past its row
    width run the reference loop): one set of terms over both would price
    neither. The executor of the most points (the first measured, on a tie)
    keeps the mode's own entry; each other one its ``mode/EXECUTOR`` entry,
    which a fit that runs it is priced by (:meth:`.Profile.terms`).
    """
    groups = {}
    for p in points:
        groups.setdefault(p["executor"], []).append(p)
    fitted = [(executor, found) for executor, found in groups.items() if len(found) >= 2]
    if not fitted:
        return {}
    main = max(fitted, key=lambda item: len(item[1]))[0]  # max keeps the first of a tie
    return {(mode if executor == main else f"{mode}/{executor}"): fit_terms(found)
            for executor, found in fitted}


def _best_seconds(f, rounds=5, inner_seconds=0.01):
    f()
    start = time.perf_counter()
    f()
    once = max(time.perf_counter() - start, 1e-7)
    reps = max(1, int(inner_seconds / once))
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            f()
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def measure_blas(progress=None, gain=1.15, deadline=None):
    """The BLAS section of a profile: float32 products (rows, 256) @ (256, 256) of
    growing rows timed with one thread and with the library's count, and the
    smallest product (multiply-adds) from which the threads are ``gain`` times
    faster on it and every larger one (None: never here).

    No product starts after ``deadline`` (a ``time.perf_counter()`` reading):
    a section cut short has no threshold, since the products left out could
    undo it, and a profile then keeps the last one (see :func:`merge_profiles`)
    or the default's."""
    threads = blas.current_threads()
    if not blas.available() or threads is None:
        return {"threshold_madds": 2 ** 25, "threads": None,
                "note": "threadpoolctl is not installed: the BLAS threads are left alone"}
    if threads <= 1:
        return {"threshold_madds": None, "threads": 1, "measured": [],
                "note": "the BLAS runs one thread here"}
    rng = np.random.default_rng(0)
    W = rng.standard_normal((256, 256)).astype(np.float32)
    measured = []
    sizes = (16, 64, 128, 256, 512, 1024, 2048)
    for rows in sizes:
        if deadline is not None and time.perf_counter() > deadline:
            note = f"time budget spent after {len(measured)} of {len(sizes)} products"
            if progress:
                progress(f"BLAS: {note}: no threshold measured")
            return {"threads": threads, "measured": measured, "note": note}
        A = rng.standard_normal((rows, 256)).astype(np.float32)
        with blas.limit(1):
            one = _best_seconds(lambda: A @ W)
        with blas.limit(threads):
            many = _best_seconds(lambda: A @ W)
        measured.append([rows * 256 * 256, one, many])
        if progress:
            progress(f"BLAS {rows}x256x256: {one * 1e6:.0f} us with 1 thread, "
                     f"{many * 1e6:.0f} us with {threads}")
    threshold = None
    for i, (madds, _, _) in enumerate(measured):
        if all(one >= gain * many for _, one, many in measured[i:]):
            threshold = madds
            break
    return {"threshold_madds": threshold, "threads": threads, "measured": measured}


def _progress_line(text):
    print(f"nnbackend calibrate: {text}", file=sys.stderr, flush=True)


def _plan(candidates, modes, quick):
    """``[(key, backend, mode, point), ...]`` round-robin over the groups."""
    per_group = [[(key, backend, mode, p) for p in POINTS[mode][:3 if quick else None]]
                 for key, backend in candidates for mode in modes]
    return [item for row in itertools.zip_longest(*per_group) for item in row if item]


def calibrate(budget_s=BUDGET_S, keys=None, modes=("sgd", "minibatch", "batch"), quick=False,
              progress=_progress_line) -> Profile:
    """Measure this machine and return its profile (not written: see :meth:`Profile.save`).

    Parameters
    ----------
    budget_s : float
        Start no new point after this many seconds.
    keys : list of str, optional
        Candidate keys (``"numpy:cpu"``, ``"jax:gpu"``, ...) or backend names to
        measure; default every candidate here.
    modes : the modes to measure
    quick : bool
        Three points per candidate and mode instead of six.
    progress : callable(str) or None
        Gets one line per step.
    """
    start = time.perf_counter()
    say = progress or (lambda text: None)
    here = auto_candidates()
    # A name that matches nothing would be left out without a word, and the
    # run taken for one that measured what was asked.
    unknown = [k for k in keys or () if not any(k in (key, b.name) for key, b in here)]
    if unknown:
        raise ValueError(f"--backends: no candidate here matches {', '.join(unknown)} (the "
                         f"candidates: {', '.join(key for key, _ in here)})")
    candidates = [(k, b) for k, b in here if keys is None or k in keys or b.name in keys]
    if not candidates:
        raise ValueError(f"no candidate to calibrate among {keys}")
    say("candidates: " + ", ".join(key for key, _ in candidates))
    blas_section = measure_blas(say, deadline=start + budget_s)
    base = default_profile()
    offset = next(_RUNS)
    # The NumPy fits below run with one BLAS thread, whatever the load: a choice
    # scales the products' term by the gain measured above for the threads the
    # fit will get (see autoselect.choose).
    previous = set_profile(Profile(base.candidates, {"threshold_madds": None, "threads": 1},
                                   "calibrating"))
    plan = _plan(candidates, modes, quick)
    points = {}
    first_use = {}
    failed = {}  # candidate key -> why its warm-up failed: none of its points is measured
    try:
        for key, backend in candidates:  # a first fit pays each library's one-time costs
            if time.perf_counter() - start > budget_s:  # (the warm-ups count in the budget)
                failed[key] = f"time budget of {budget_s:g} s spent before its warm-up"
                say(f"{key}: not measured ({failed[key]})")
                continue
            started = key in used_candidates()
            try:
                first = _tiny_fit_seconds(backend, 64 + offset)
                if not started:  # the library's start, where this process had none yet
                    first_use[key] = round(
                        max(first - _tiny_fit_seconds(backend, 80 + offset), 0.0), 4)
                    say(f"{key}: the first fit in a process takes {first_use[key]:.3g} s more")
                for mode in modes:
                    measure_point(backend, mode, "small", 64 + offset, 16)
            except Exception as exc:  # noqa: BLE001 - one candidate's failure, said
                failed[key] = f"{type(exc).__name__}: {exc}"
                say(f"{key}: FAILED, not measured ({failed[key]})")
        for i, (key, backend, mode, (net, n, batch)) in enumerate(plan, 1):
            if time.perf_counter() - start > budget_s:
                say(f"time budget of {budget_s:g} s spent: {len(plan) - i + 1} points left out")
                break
            if key in failed:
                continue
            try:
                p = measure_point(backend, mode, net, n + offset, batch, seed=i)
            except Exception as exc:  # noqa: BLE001 - the other points still count
                say(f"[{i}/{len(plan)}] {key} {mode} {_NETS[net][0]} N={n}: FAILED "
                    f"({type(exc).__name__}: {exc})")
                continue
            points.setdefault((key, mode), []).append(p)
            say(f"[{i}/{len(plan)}] {key} {mode} {_NETS[net][0]} N={n}"
                f"{f' batch {batch}' if mode == 'minibatch' else ''} ({p['executor']}): "
                f"epoch {p['epoch'] * 1e3:.3g} ms, setup {p['setup'] * 1e3:.3g} ms, "
                f"compile {p['compile'] * 1e3:.3g} ms ({time.perf_counter() - start:.0f} s)")
    finally:
        set_profile(previous)
    measured = {}
    for (key, mode), found in points.items():
        measured_terms = terms_by_executor(mode, found)
        if measured_terms:
            measured.setdefault(key, {}).update(measured_terms)
    libraries = {name: library_version(name) for name in {b.name for _, b in candidates}}
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    machine = _machine()
    samples = {f"{key} {mode}": [_sample(p) for p in found]
               for (key, mode), found in points.items()}
    # Each group's own run, kept when a later calibration merges over it (merge_profiles).
    groups = {key: {mode.partition("/")[0]: {"created": created, "machine": machine,
                                             "version": libraries.get(key.partition(":")[0])}
                    for mode in modes_} for key, modes_ in measured.items()}
    return Profile(measured, blas_section, "measured", machine, created, libraries,
                   tuple((k, m) for k, modes_ in measured.items() for m in modes_), first_use,
                   samples, machine_fingerprint(), groups)


def merge_profiles(new: Profile, old: Profile | None) -> tuple[Profile, list]:
    """``(profile, notes)``: ``new`` (a calibration's) over the groups of ``old``
    (the file it would replace) that ``new`` did not measure, and lines saying
    which of ``old``'s groups were kept, or why none was.

    A group is a candidate and mode, with its ``MODE/EXECUTOR`` entries: a
    group ``new`` measured replaces all of ``old``'s, so that no entry of an
    executor the new run no longer saw is left beside it. ``old``'s groups are
    kept only where it was measured on this machine (the same CPU name and
    core count): prices from two machines would be mixed otherwise. The header
    (machine, created, fingerprint, BLAS section) is ``new``'s; each group
    keeps its own run in ``groups``, and ``libraries`` each library's version as
    of its latest run.
    """
    if old is None or not old.measured:
        return new, []
    elsewhere = profile_mismatch(old).get("machine")
    if elsewhere:
        return new, [f"{old.source} was {elsewhere}: its groups are replaced, not merged"]
    fresh = {(key, mode.partition("/")[0]) for key, mode in new.measured}
    candidates, groups, kept = {}, {}, set()
    for key, mode in old.measured:
        group = (key, mode.partition("/")[0])
        if group in fresh:
            continue
        kept.add(group)
        candidates.setdefault(key, {})[mode] = old.candidates[key][mode]
        groups.setdefault(key, {})[group[1]] = old.group_facts(key, mode)
    for key, modes in new.candidates.items():
        candidates.setdefault(key, {}).update(modes)
    for key, mode in new.measured:
        groups.setdefault(key, {})[mode.partition("/")[0]] = new.group_facts(key, mode)
    measured = tuple((k, m) for k, modes in candidates.items() for m in modes)
    # A library the new run did not load keeps the version its groups ran.
    libraries = {**old.libraries, **{k: v for k, v in new.libraries.items() if v}}
    # Samples ("KEY MODE": points) go with their group's terms: a kept group's
    # stay, though the new run timed a point or two of it (too few for terms).
    samples = {**new.samples, **{name: points for name, points in old.samples.items()
                                 if tuple(name.split(" ", 1)) in kept}}
    # A BLAS section cut short by the time budget measured no threshold: the
    # last run's, from this machine, stays.
    cut_short = "threshold_madds" not in new.blas and "threshold_madds" in old.blas
    merged = dataclasses.replace(
        new, candidates=candidates, measured=measured, groups=groups, libraries=libraries,
        first_use={**old.first_use, **new.first_use}, samples=samples,
        blas=old.blas if cut_short else new.blas)
    names = ", ".join(f"{key} {mode}" for key, mode in sorted(kept))
    return merged, ([f"kept from {old.source}: {names}"] if kept else []) + (
        [f"kept from {old.source}: its BLAS section (this run's was cut short)"]
        if cut_short else [])


def _sample(point):
    """A measured point as the profile keeps it (to read, not to price with)."""
    w = point["workload"]
    return {"layer_sizes": list(w.layer_sizes), "n_samples": w.n_samples,
            "batch_size": w.batch_size, "executor": point["executor"],
            **{k: float(f"{point[k]:.4g}") for k in ("epoch", "setup", "compile")}}


def _tiny_fit_seconds(backend, n):
    """A [16,32,1] mini-batch fit of two epochs on ``n`` rows, start to end."""
    sizes, hidden, output, loss = _NETS["small"]
    X, y = _data(sizes, loss, n, 0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MLP(sizes, hidden, output, loss, backend=backend).fit(X, y, batch_size=16, epochs=2)
    return time.perf_counter() - start


def _machine() -> str:
    try:
        load = ", load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = ""
    return f"{cpu_name()}, {os.cpu_count()} cores{load}"
