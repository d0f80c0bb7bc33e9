#!/usr/bin/env python
"""Is ``backend="auto"``'s pick the fastest? Whole fits, timed interleaved, on a grid.

For each cell of a grid of network x mode x N, every installed candidate
(``nnbackend.backends.auto_candidates()``: numpy, jax and torch on the CPU,
cupy, torch:cuda and jax:gpu where a GPU is at hand) and ``auto`` itself fit
the same host data from the same seed, one after another in an order drawn
anew for each round, with a pause of 50 ms before each fit (the last fit's
thread pools spin on a while); three rounds, up to fifteen where that takes
under two seconds. Every fit gets rows of its own count (``N`` plus fewer
than ``15 * contenders`` rows: JAX keeps what it compiled for a shape, and a
contender must not find the last one's epoch compiled). A fit is timed
whole, as a user waits for it: ``MLP(...)``'s data moved to the backend,
compiled where the executor compiles (nnbackend's compiled epochs are
forgotten before each fit, so each one compiles its epoch afresh), every
epoch, and for ``auto`` its choice. Each library has run a fit in the
process first: its one-time start (JAX's first fit took 0.5-2.5 s more than
later ones on the 2-core VM) is a cost of the process, not of the cell. Per
cell: the median of each contender, the fastest backend, ``auto / fastest``
(the target: at most 1.2 in 90 % of the cells and never above 2) and what
auto picked.

A second case (``--no-contention`` leaves it out) times a NumPy fit whose
products pay little for a second BLAS thread ([64,256,256,10], mini-batch
128: 128x256x256 products) with the BLAS's own thread count and with the
count nnbackend sets from the profile, each on the machine as it is and
next to a competing CPU load (two spinning processes per core), and reports
the ratios; and the 128x256x256 float32 product alone, with the BLAS's
threads and with one.

Run::

    python benchmarks/auto_choice.py --size full --out benchmarks/results/auto-cpu-DATE
    python benchmarks/auto_choice.py --size small          # a smoke run, seconds
    python benchmarks/auto_choice.py --size gpu            # 8 cells, for a GPU lease

(``benchmarks/test_auto.py`` runs the small size under pytest.) It writes
``grid.json`` (every time) and ``grid.md`` (the tables) to ``--out``; it is a
report, not a gate: the exit status is 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX beside CuPy / torch

import numpy as np  # noqa: E402

import nnbackend as nb  # noqa: E402
from nnbackend.autoselect import active_profile, set_profile  # noqa: E402
from nnbackend.autoselect import Profile  # noqa: E402
from nnbackend.backends import auto_candidates, blas, cpu_name  # noqa: E402

NETS = {
    "small": ([16, 32, 1], "sigmoid", "sigmoid", "mse"),
    "deep": ([64, 256, 256, 10], "relu", "softmax", "cross_entropy"),
}
BATCH = {"small": 32, "deep": 128}  # mini-batch rows per network
# size -> ({mode: [N, ...]}, epochs, repeats, networks)
SIZES = {
    "small": ({"sgd": [64], "minibatch": [256], "batch": [256]}, 1, 1, ["small"]),
    "full": ({"sgd": [500, 2000, 8000], "minibatch": [2000, 20000, 200000],
              "batch": [2000, 20000, 200000]}, 5, 3, ["small", "deep"]),
    # For a GPU machine's short lease (benchmarks/gpu_auto.sh): six candidates,
    # so 8 cells of 3 epochs, 2 rounds; batch also at 2e5 rows, where the GPU
    # should win.
    "gpu": ({"sgd": [2000], "minibatch": [20000], "batch": [20000, 200000]},
            3, 2, ["small", "deep"]),
}
TARGET_RATIO, TARGET_SHARE, LIMIT_RATIO = 1.2, 0.9, 2.0


def _forget_compiled():
    """Drop nnbackend's compiled epochs, so the next fit compiles its epoch as a
    fit of new shapes does (JAX's own caches of its eager operations stay: a
    library's start in the process is paid by its warm-up fit)."""
    for name in ("nnbackend.backends.jax.scan", "nnbackend.backends.jax.batch"):
        module = sys.modules.get(name)
        if module is not None:
            module._COMPILED.clear()


def _data(net, n, seed=0):
    sizes, _, _, loss = NETS[net]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    if loss == "cross_entropy":
        return X, rng.integers(0, sizes[-1], n)
    return X, (X[:, :1] * X[:, 1:2] > 0).astype(np.float32)


def time_fit(contender, net, mode, X, y, epochs):
    """``(seconds, the candidate key it ran on)`` of one whole fit."""
    sizes, hidden, output, loss = NETS[net]
    backend = "auto" if contender == "auto" else dict(auto_candidates())[contender]
    _forget_compiled()
    start = time.perf_counter()
    model = nb.MLP(sizes, hidden, output, loss, backend=backend, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hist = model.fit(X, y, mode=mode, batch_size=BATCH[net], epochs=epochs, lr=0.01)
    return time.perf_counter() - start, hist.backend


# Before each fit: the last one's thread pools (torch's OpenMP, XLA's) spin on
# for a while after their work, and would slow whichever fit follows (on two
# cores, by 0.5 ms: a third of a 2 ms fit).
PAUSE = 0.05
# A cell whose repeats took less than this many seconds in all is repeated
# again, up to MAX_REPEATS: a 2 ms fit's median of three is mostly noise.
CELL_SECONDS, MAX_REPEATS = 2.0, 15


def run_cell(net, mode, n, epochs, repeats, contenders, log=print, more=True):
    """One cell: every contender's times (interleaved, rotating order) and the verdict
    (``more``: repeat a quick cell beyond ``repeats``, see CELL_SECONDS)."""
    times = {c: [] for c in contenders}
    picks = []
    rng = random.Random(f"{net} {mode} {n}")
    # On a GPU, a kernel is compiled once per layout (CuPy's NVRTC, cached by
    # source; torch and JAX reach the same kernels by DLPack), and the layout
    # follows N: one untimed fit each on this cell's shapes, so that no
    # contender pays it inside a timed fit. Their row counts are below n, so
    # that no timed fit finds its own shapes compiled.
    gpus = [c for c in contenders if c.endswith(":gpu")]
    X, y = _data(net, n - 1, seed=1000)
    for i, c in enumerate(gpus + ["auto"] if gpus else []):
        time_fit(c, net, mode, X[:n - 1 - i], y[:n - 1 - i], epochs)
    start, r = time.perf_counter(), 0
    while r < repeats or (more and time.perf_counter() - start < CELL_SECONDS
                          and r < MAX_REPEATS):
        X, y = _data(net, n + (r + 1) * len(contenders), seed=r)
        order = rng.sample(contenders, len(contenders))
        for i, c in enumerate(order):
            rows = n + r * len(contenders) + i  # a count no fit of the run had before
            time.sleep(PAUSE)
            seconds, ran_on = time_fit(c, net, mode, X[:rows], y[:rows], epochs)
            times[c].append(seconds)
            if c == "auto":
                picks.append(ran_on)
        r += 1
    medians = {c: statistics.median(t) for c, t in times.items()}
    backends = {c: m for c, m in medians.items() if c != "auto"}
    fastest = min(backends, key=backends.get)
    pick = max(set(picks), key=picks.count)
    cell = {"net": net, "sizes": NETS[net][0], "mode": mode, "n_samples": n, "epochs": epochs,
            "repeats": r,
            "batch_size": BATCH[net] if mode == "minibatch" else None, "times": times,
            "medians": medians, "fastest": fastest, "auto_picked": picks,
            "auto_ratio": medians["auto"] / backends[fastest],
            "pick_ratio": backends[pick] / backends[fastest]}
    log(f"{net:5s} {mode:9s} N={n:<7d} fastest {fastest} {backends[fastest]:.3g} s; auto picked "
        f"{pick} {medians['auto']:.3g} s: {cell['auto_ratio']:.2f}x  "
        + "  ".join(f"{c} {m:.3g}" for c, m in backends.items()))
    return cell


def run_grid(size="small", contenders=None, log=print, on_cell=None):
    """Every cell of the ``size`` grid; returns ``{"cells": [...], "summary": {...}}``
    (``on_cell(result so far)`` after each cell). A cell whose fits raise is left
    out, saying why in ``log`` and in ``"failed"``: the others still count."""
    modes, epochs, repeats, nets = SIZES[size]
    contenders = contenders or [key for key, _ in auto_candidates()]
    contenders = list(contenders) + ["auto"]
    log("contenders: " + ", ".join(contenders))
    for c in contenders:  # each library's one-time costs before any timing
        time_fit(c, "small", "batch", *_data("small", 32), 1)
    cells, failed = [], []
    for net in nets:
        for mode, ns in modes.items():
            for n in ns:
                try:
                    cells.append(run_cell(net, mode, n, epochs, repeats, contenders, log,
                                          more=size != "small"))
                except Exception as exc:  # noqa: BLE001 - one failing fit loses one cell
                    why = f"{net} {mode} N={n}: {type(exc).__name__}: {exc}"
                    failed.append(why)
                    log(f"FAILED {why}")
                if on_cell is not None:
                    on_cell(_grid(cells, failed, contenders, epochs, repeats))
    return _grid(cells, failed, contenders, epochs, repeats)


def _grid(cells, failed, contenders, epochs, repeats):
    ratios = [c["auto_ratio"] for c in cells]
    within = sum(r <= TARGET_RATIO for r in ratios)
    summary = {"cells": len(cells), "within_1.2x": within,
               "share_within": within / len(cells) if cells else 0.0,
               "worst_ratio": max(ratios, default=float("nan")),
               "median_ratio": statistics.median(ratios) if ratios else float("nan"),
               "target_met": bool(cells) and not failed
               and within >= TARGET_SHARE * len(cells) and max(ratios) <= LIMIT_RATIO,
               "failed": failed, "contenders": contenders, "epochs": epochs,
               "repeats": repeats}
    return {"cells": cells, "summary": summary}


def _spinners(count):
    code = "import time\nend = time.time() + 600\nwhile time.time() < end: pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]


def contention(n=8192, epochs=2, repeats=3, log=print):
    """The NumPy fit with the BLAS's own thread count and with nnbackend's, alone and
    beside one spinning process per core: medians and ratios."""
    if not blas.available():
        return {"skipped": "threadpoolctl is not installed"}
    X, y = _data("deep", n)
    library = Profile({}, {}, "the BLAS's own count")  # no BLAS section: threads left alone

    def fit(profile):
        previous = set_profile(profile)
        try:
            model = nb.MLP(NETS["deep"][0], *NETS["deep"][1:], backend="numpy", seed=0)
            start = time.perf_counter()
            hist = model.fit(X, y, mode="minibatch", batch_size=128, epochs=epochs, lr=0.01)
            return time.perf_counter() - start, hist.blas_threads
        finally:
            set_profile(previous)

    out = {"library_threads": blas.current_threads(), "n_samples": n, "epochs": epochs}
    for load in ("quiet", "loaded"):
        spinners = _spinners(2 * (os.cpu_count() or 1)) if load == "loaded" else []
        try:
            time.sleep(0.5 if spinners else 0)
            runs = {"library": [], "nnbackend": []}
            for _ in range(repeats):
                for name, profile in (("library", library), ("nnbackend", None)):
                    seconds, threads = fit(profile)
                    runs[name].append(seconds)
                    out[f"{name}_threads_{load}"] = threads
            product = _product_seconds()
        finally:
            for p in spinners:
                p.kill()
                p.wait()
        medians = {k: statistics.median(v) for k, v in runs.items()}
        out[load] = {"times": runs, "medians": medians, "product_seconds": product,
                     "library_over_nnbackend": medians["library"] / medians["nnbackend"]}
        log(f"contention {load}: BLAS's own threads {medians['library']:.3g} s, nnbackend's "
            f"{medians['nnbackend']:.3g} s: {out[load]['library_over_nnbackend']:.2f}x; the "
            f"128x256x256 product {product['library'] * 1e3:.3g} ms with the BLAS's threads, "
            f"{product['one'] * 1e3:.3g} ms with one")
    return out


def _product_seconds(rounds=20):
    """The median seconds of a 128x256x256 float32 product with the BLAS's threads and with one."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((128, 256)).astype(np.float32)
    W = rng.standard_normal((256, 256)).astype(np.float32)
    out = {}
    for name, threads in (("library", None), ("one", 1)):
        with blas.limit(threads):
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                A @ W
                times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
    return out


def _markdown(result) -> str:
    s = result["summary"]
    lines = [f"# backend='auto' against every backend, {result['machine']}", "",
             f"- {result['date']}; load average before/after: {result['load_before']} / "
             f"{result['load_after']}; profile: {result['profile']}",
             f"- {s['epochs']} epochs a fit, the median of {s['repeats']} interleaved fits (up to "
             f"{MAX_REPEATS} in a cell done in under {CELL_SECONDS:g} s), compile and data "
             "transfer included; contenders: " + ", ".join(s["contenders"]),
             f"- **auto within {TARGET_RATIO}x of the fastest in {s['within_1.2x']} of "
             f"{s['cells']} cells ({s['share_within']:.0%}); worst {s['worst_ratio']:.2f}x; "
             f"target {'met' if s['target_met'] else 'NOT met'}**",
             *[f"- **cell FAILED**: {why}" for why in s.get("failed", [])], "",
             "| net | mode | N | fastest | auto picked | auto / fastest | "
             + " | ".join(c for c in s["contenders"] if c != "auto") + " | auto |",
             "|---|---|---|---|---|---:|" + "---:|" * len(s["contenders"])]
    for c in result["cells"]:
        picks = ", ".join(sorted(set(c["auto_picked"])))
        lines.append(f"| {c['sizes']} | {c['mode']}{' ' + str(c['batch_size']) if c['batch_size'] else ''} "
                     f"| {c['n_samples']:,} | {c['fastest']} | {picks} | {c['auto_ratio']:.2f} | "
                     + " | ".join(f"{c['medians'][k]:.3g} s" for k in s["contenders"]) + " |")
    cont = result.get("contention")
    if cont and "quiet" in cont:
        lines += ["", "## BLAS threads beside a competing load", "",
                  f"[64,256,256,10] mini-batch 128 on NumPy, N={cont['n_samples']}, "
                  f"{cont['epochs']} epochs; the BLAS's own count is {cont['library_threads']}.",
                  "", "| load | fit, BLAS's own threads | fit, nnbackend's threads | ratio "
                  "| 128x256x256 product, BLAS's threads | the product, one thread |",
                  "|---|---:|---:|---:|---:|---:|"]
        for load in ("quiet", "loaded"):
            m, p = cont[load]["medians"], cont[load]["product_seconds"]
            lines.append(f"| {load} | {m['library']:.3g} s | {m['nnbackend']:.3g} s "
                         f"({cont[f'nnbackend_threads_{load}']} thread) | "
                         f"{cont[load]['library_over_nnbackend']:.2f}x | "
                         f"{p['library'] * 1e3:.3g} ms | {p['one'] * 1e3:.3g} ms |")
    return "\n".join(lines) + "\n"


def _load():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--out", default=None, help="folder for grid.json and grid.md")
    parser.add_argument("--no-contention", action="store_true")
    args = parser.parse_args(argv)
    result = {"machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}",
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "load_before": _load(), "profile": active_profile().source,
              "python": platform.python_version(), "numpy": np.__version__}
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    def save_so_far(grid):  # a run cut off keeps the cells it measured
        if out is not None:
            (out / "grid.json").write_text(json.dumps({**result, **grid, "partial": True},
                                                      indent=1))

    result.update(run_grid(args.size, on_cell=save_so_far))
    if not args.no_contention:
        result["contention"] = contention(**({} if args.size == "full" else
                                             {"n": 512, "epochs": 1, "repeats": 1}))
    result["load_after"] = _load()
    text = _markdown(result)
    print(text)
    if out is not None:
        (out / "grid.json").write_text(json.dumps(result, indent=1))
        (out / "grid.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
