"""Turn the ``nnbackend bench`` pytest-benchmark JSON into a Markdown report with plots.

The benchmark suite times one training epoch of a fixed MLP per
(implementation, backend, device, mode, N) and records what it measured in each
benchmark's ``extra_info``. This package reads that JSON back and writes, into
an output folder:

``report.md``
    Machine, its load average and thread pools, date and command; per descent
    mode the time per epoch and the throughput at each N, and every timing's
    spread (quartiles, min–max, rounds, re-runs) with the noisy ones flagged
    and why; speedups of every nnbackend backend over the NumPy backend and
    over the peer implementations; the scaling exponent of the epoch cost in
    N with its fit (R²) and whether it is a finding; the N where a GPU starts
    to beat the NumPy backend; the time-to-target runs under one budget.
``epoch_time.png``, ``speedup.png``, ``time_to_target.png``
    The same numbers as plots, one panel per mode (and per peer), with Q1–Q3
    error bars, noisy timings ringed and crossovers marked (the last only
    when there are time-to-target runs).
``summary.json``
    The exponents, crossovers and speedups as numbers, and the paths written.

Run it as ``python -m nnbackend.bench.report RESULTS.json OUTDIR``.

One module per concern, each using only those above it: :mod:`.load` (the JSON
to rows), :mod:`.formatting` (numbers as text, Markdown tables), :mod:`.analysis`
(noisy timings, exponents with their fits, crossovers, speedups),
:mod:`.header` (the machine, its load and threads), :mod:`.targets` (time to
target with its budget, the ratio pairs), :mod:`.tables` (``report.md``),
:mod:`.plots` (the PNGs) and :mod:`.write` (:func:`write_report` and the
command line). What makes a timing noisy and how re-runs are bounded is
:mod:`nnbackend.bench.stability`, shared with the suite.
"""

# The constants and ratio_rows stay importable from here, as from the single module before.
from .analysis import (  # noqa: F401
    CPU_BASELINE, LINEAR_RANGE, MODE_ORDER, NNBACKEND_ORDER, PEER_ORDER, exponent_fits, fit_sizes,
    noise_notes, scaling_exponents)
from .load import load_results, ratio_rows  # noqa: F401
from .write import main, write_report

__all__ = ["load_results", "scaling_exponents", "exponent_fits", "noise_notes", "fit_sizes",
           "write_report", "main"]
