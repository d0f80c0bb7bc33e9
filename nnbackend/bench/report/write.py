"""The entry points: :func:`write_report` (analysis, plots, ``report.md`` and
``summary.json`` for one results file) and the command line :func:`main`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .analysis import (CPU_BASELINE, LINEAR_RANGE, epoch_points, gpu_crossovers, scaling_exponents,
                       sorted_labels, sorted_modes, speedup_rows, time_to_target_rows)
from .load import ratio_rows, rows_from_data
from .plots import plot_epoch_time, plot_speedup, plot_styles, plot_time_to_target
from .tables import report_markdown

__all__ = ["write_report", "main"]


def write_report(json_path, out_dir):
    """Write ``report.md``, the plots and ``summary.json`` for a benchmark JSON into ``out_dir``.

    Parameters
    ----------
    json_path : str or os.PathLike
        pytest-benchmark JSON written by the ``nnbackend bench`` suite.
    out_dir : str or os.PathLike
        Created when missing; files already there are overwritten.

    Returns
    -------
    dict
        What ``summary.json`` holds: ``exponents`` (``{label: {mode: slope}}``),
        ``exponent_range``, ``numpy_linear`` (``{mode: bool}``), ``crossovers``
        (one dict per GPU label and mode: ``label``, ``mode``, ``status``, ``n``
        (the interpolated N, or None), ``text``), ``speedups`` (``label``,
        ``baseline``, ``mode``, ``n_samples``, ``speedup`` = baseline time /
        label time), ``labels``, ``modes``, ``speedup_plot`` (``"gpu"`` or
        ``"peers"``) and ``paths`` (the files written; ``time_to_target`` is
        None when there were no such runs).
    """
    json_path = os.fspath(json_path)
    out_dir = os.fspath(out_dir)
    with open(json_path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        data = {}
    rows = rows_from_data(data)
    os.makedirs(out_dir, exist_ok=True)

    lo, hi = 1e4, 1e6
    points = epoch_points(rows)
    labels = sorted_labels(lab for lab, _ in points)
    modes = sorted_modes(m for _, m in points)
    exps = scaling_exponents(rows, lo, hi)
    crossovers = gpu_crossovers(rows, points, modes)
    speedups, baselines = speedup_rows(points, labels, modes)
    ttt = time_to_target_rows(rows)
    ttt_labels = sorted_labels(lab for lab, _ in ttt)
    ttt_modes = sorted_modes(m for _, m in ttt)

    paths = {
        "report": os.path.join(out_dir, "report.md"),
        "epoch_time": os.path.join(out_dir, "epoch_time.png"),
        "speedup": os.path.join(out_dir, "speedup.png"),
        "time_to_target": os.path.join(out_dir, "time_to_target.png") if ttt else None,
        "summary": os.path.join(out_dir, "summary.json"),
    }

    from nnbackend.plot import require_matplotlib

    plt = require_matplotlib()
    style = plot_styles(set(labels) | set(ttt_labels))
    plot_epoch_time(plt, paths["epoch_time"], points, labels, modes, style)
    speedup_kind = plot_speedup(plt, paths["speedup"], rows, points, labels, modes, style,
                                crossovers)
    if ttt:
        plot_time_to_target(plt, paths["time_to_target"], ttt, ttt_labels, ttt_modes, style)
    elif os.path.exists(os.path.join(out_dir, "time_to_target.png")):
        os.unlink(os.path.join(out_dir, "time_to_target.png"))  # stale from an earlier report

    numpy_linear = {}
    for mode in modes:
        slope = exps.get((CPU_BASELINE, mode))
        if slope is not None:
            numpy_linear[mode] = LINEAR_RANGE[0] <= slope <= LINEAR_RANGE[1]

    md = report_markdown(data, json_path, rows, points, labels, modes, exps, (lo, hi),
                         numpy_linear, crossovers, speedups, baselines, ttt_modes, paths)
    _write_text(paths["report"], md)

    exponents_out = {}
    for (label, mode), slope in exps.items():
        exponents_out.setdefault(label, {})[mode] = slope
    summary = {
        "source": os.path.abspath(json_path),
        "labels": labels,
        "modes": modes,
        "exponents": exponents_out,
        "exponent_range": [lo, hi],
        "numpy_linear": numpy_linear,
        "crossovers": crossovers,
        "speedups": speedups,
        "speedup_plot": speedup_kind,
        "ratios": ratio_rows(data),
        "paths": paths,
    }
    _write_text(paths["summary"], json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def _write_text(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv=None):
    """``python -m nnbackend.bench.report RESULTS.json OUTDIR``; returns an exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m nnbackend.bench.report",
        description="Write report.md, plots and summary.json for an nnbackend bench JSON.")
    parser.add_argument("results", help="pytest-benchmark JSON written by `nnbackend bench`")
    parser.add_argument("out_dir", help="folder for report.md, the PNGs and summary.json")
    args = parser.parse_args(argv)
    try:
        summary = write_report(args.results, args.out_dir)
    except FileNotFoundError:
        print(f"error: no such results file: {args.results}", file=sys.stderr)
        return 2
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary["paths"]["report"])
    return 0
