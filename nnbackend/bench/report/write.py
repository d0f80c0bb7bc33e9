"""The entry points: :func:`write_report` (analysis, plots, ``report.md`` and
``summary.json`` for one results file) and the command line :func:`main`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ...checks import replace_target
from ..caselog import not_measured
from ..models import model_key
from .analysis import (CPU_BASELINE, LINEAR_RANGE, epoch_points, exponent_fits, gpu_crossovers,
                       noise_notes, sorted_labels, sorted_modes, speedup_rows,
                       time_to_target_rows)
from .load import ratio_rows, rows_from_data
from .plots import plot_epoch_time, plot_speedup, plot_styles, plot_time_to_target
from .tables import report_markdown

__all__ = ["write_report", "main"]


def write_report(json_path, out_dir):
    """Write ``report.md``, the plots and ``summary.json`` for a benchmark JSON into ``out_dir``.

    Results are grouped by benchmark model (``extra_info["model"]``; records
    without one are the ``small`` model): each model gets its own tables and
    plots. The first model in :data:`nnbackend.bench.models.MODEL_ORDER`
    present draws ``epoch_time.png``, ``speedup.png`` and
    ``time_to_target.png``; any other model ``epoch_time-<model>.png`` and so on.

    Parameters
    ----------
    json_path : str or os.PathLike
        pytest-benchmark JSON written by the ``nnbackend bench`` suite.
    out_dir : str or os.PathLike
        Created when missing; files already there are overwritten, and the
        plots of an earlier report there (``epoch_time*.png``,
        ``speedup*.png``, ``time_to_target*.png``) that this one does not
        draw are removed.

    Returns
    -------
    dict
        What ``summary.json`` holds: ``models`` (in report order),
        ``exponents`` (``{model: {label: {mode: slope}}}``: the findings
        only), ``exponent_fits`` (every (label, mode): ``slope``, ``r2``,
        ``sizes``, ``measured``, ``reason`` when there is no exponent,
        ``flags`` when it is not a finding), ``exponent_range``, ``noisy``
        (one dict per timing flagged noisy: ``model``, ``label``, ``mode``,
        ``n_samples``, ``reasons``), ``bench_environment`` (the load and
        thread pools the suite recorded, or None), ``numpy_linear`` (``{model: {mode: bool}}``),
        ``crossovers`` (one dict per model, GPU label and mode: ``model``,
        ``label``, ``mode``, ``status``, ``n`` (the interpolated N, or None),
        ``text``), ``speedups`` (``model``, ``label``, ``baseline``, ``mode``,
        ``n_samples``, ``speedup`` = baseline time / label time), ``labels``
        and ``modes`` (over all models), ``speedup_plot`` (``{model: "gpu" or
        "peers"}``), ``ratios`` and ``paths`` (the files written: ``report``,
        ``summary``, the first model's ``epoch_time``, ``speedup`` and
        ``time_to_target`` (None when it had no such runs), and ``models``:
        ``{model: {"epoch_time", "speedup", "time_to_target"}}``).

    Raises
    ------
    ValueError
        ``json_path`` is not JSON, or not a benchmark results file: no
        ``benchmarks`` list, or no epoch timing, time-to-target run or ratio
        pair in it (nor, for a run cut off before any case ended, a case it
        names as not measured). Nothing is written then.
    """
    json_path = os.fspath(json_path)
    out_dir = os.fspath(out_dir)
    with open(json_path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except ValueError as exc:  # empty, cut short, not text
            raise ValueError(f"{exc} in {json_path}: it is not JSON; nothing was written") \
                from None
    rows = rows_from_data(data)
    ratios = ratio_rows(data)
    # Before anything is written: a file that is not a run's results (its
    # summary.json, any other JSON) would replace a good report with an empty one.
    _check_results(data, rows, ratios, json_path)
    os.makedirs(out_dir, exist_ok=True)

    from nnbackend.plot import require_matplotlib

    plt = require_matplotlib()
    models = sorted({r["model"] for r in rows}, key=model_key) or ["small"]
    sections = [_model_section(plt, [r for r in rows if r["model"] == model], model, out_dir,
                               "" if i == 0 else f"-{model}")
                for i, model in enumerate(models)]
    first = sections[0]["paths"]
    paths = {"report": os.path.join(out_dir, "report.md"),
             "epoch_time": first["epoch_time"], "speedup": first["speedup"],
             "time_to_target": first["time_to_target"],
             "summary": os.path.join(out_dir, "summary.json"),
             "models": {s["model"]: s["paths"] for s in sections}}
    _remove_stale_plots(out_dir, paths)
    _write_text(paths["report"], report_markdown(data, json_path, rows, sections, ratios))

    summary = {
        "source": os.path.abspath(json_path),
        "models": models,
        "labels": sorted_labels(lab for s in sections for lab in s["labels"]),
        "modes": sorted_modes(m for s in sections for m in s["modes"]),
        "exponents": {s["model"]: _nested(s["exps"]) for s in sections},
        "exponent_fits": {s["model"]: _nested(s["fits"]) for s in sections},
        "exponent_range": list(EXPONENT_RANGE),
        "noisy": [{"model": s["model"], "label": lab, "mode": mode, "n_samples": n,
                   "reasons": why} for s in sections
                  for (lab, mode, n), why in sorted(s["noise"].items(),
                                                    key=lambda kv: (kv[0][0], kv[0][1],
                                                                    kv[0][2]))],
        "bench_environment": data.get("bench_environment"),
        "numpy_linear": {s["model"]: s["numpy_linear"] for s in sections},
        "crossovers": [dict(c, model=s["model"]) for s in sections for c in s["crossovers"]],
        "speedups": [dict(x, model=s["model"]) for s in sections for x in s["speedups"]],
        "speedup_plot": {s["model"]: s["speedup_kind"] for s in sections},
        "ratios": ratios,
        "paths": paths,
    }
    _write_text(paths["summary"], json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


EXPONENT_RANGE = (1e4, 1e6)

# The plots write_report draws: ``<kind>.png`` for the first model,
# ``<kind>-<model>.png`` for the others.
PLOT_KINDS = ("epoch_time", "speedup", "time_to_target")


def _check_results(data, rows, ratios, json_path):
    """ValueError (one line) unless ``data`` is a benchmark results file with
    something to report: an epoch timing, a time-to-target run or a ratio pair
    (or, in a run cut off before any case ended, the cases it names as not
    measured: :func:`nnbackend.bench.caselog.results_from_log` makes those)."""
    where = f"{json_path} is not an nnbackend bench results file"
    kept = "; nothing was written"
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{where} (no \"benchmarks\" list: pass the run's results.json, "
                         f"not its summary.json){kept}")
    timed = [r for r in rows if r["kind"] == "time_to_target"
             or (r["kind"] == "epoch" and r["seconds_per_epoch"] is not None)]
    if not timed and not ratios and not not_measured(data):
        raise ValueError(f"{where}: none of its {len(data['benchmarks'])} benchmark(s) is an "
                         f"epoch timing, a time-to-target run or a ratio pair{kept}")


def _remove_stale_plots(out_dir, paths):
    """Remove the plots in ``out_dir`` that this report did not draw: those of
    models not in its results (or no longer first), and a time-to-target plot
    where a model had no such runs. Beside a new report.md they would pass for
    its own."""
    drawn = {os.path.basename(p) for model_paths in paths["models"].values()
             for p in model_paths.values() if p}
    try:
        names = os.listdir(out_dir)
    except OSError:
        return
    for name in names:
        stem, ext = os.path.splitext(name)
        ours = any(stem == kind or stem.startswith(kind + "-") for kind in PLOT_KINDS)
        if ext == ".png" and ours and name not in drawn:
            try:
                os.unlink(os.path.join(out_dir, name))
            except FileNotFoundError:
                pass


def _model_section(plt, rows, model, out_dir, suffix):
    """One model's numbers and plots (the files named with ``suffix``), as a dict."""
    lo, hi = EXPONENT_RANGE
    points = epoch_points(rows)
    labels = sorted_labels(lab for lab, _ in points)
    modes = sorted_modes(m for _, m in points)
    noise = noise_notes(points)
    fits = exponent_fits(points, noise, lo, hi)
    # Only an exponent that is a finding (3+ sizes, not negative, a good fit,
    # no noisy timing under it) is stated as one.
    exps = {k: f["slope"] for k, f in fits.items() if f["slope"] is not None and not f["flags"]}
    crossovers = gpu_crossovers(rows, points, modes, noise)
    speedups, baselines = speedup_rows(points, labels, modes, noise)
    ttt = time_to_target_rows(rows)
    ttt_labels = sorted_labels(lab for lab, _ in ttt)
    ttt_modes = sorted_modes(m for _, m in ttt)
    ttt_path = os.path.join(out_dir, f"time_to_target{suffix}.png")
    paths = {"epoch_time": os.path.join(out_dir, f"epoch_time{suffix}.png"),
             "speedup": os.path.join(out_dir, f"speedup{suffix}.png"),
             "time_to_target": ttt_path if ttt else None}

    style = plot_styles(set(labels) | set(ttt_labels))
    plot_epoch_time(plt, paths["epoch_time"], points, labels, modes, style, noise, crossovers)
    speedup_kind = plot_speedup(plt, paths["speedup"], rows, points, labels, modes, style,
                                crossovers, noise)
    if ttt:  # else a stale one from an earlier report is removed (_remove_stale_plots)
        plot_time_to_target(plt, ttt_path, ttt, ttt_labels, ttt_modes, style)

    numpy_linear = {}
    for mode in modes:
        slope = exps.get((CPU_BASELINE, mode))
        if slope is not None:
            numpy_linear[mode] = LINEAR_RANGE[0] <= slope <= LINEAR_RANGE[1]
    return {"model": model, "rows": rows, "points": points, "labels": labels, "modes": modes,
            "noise": noise, "fits": fits,
            "exps": exps, "range": (lo, hi), "numpy_linear": numpy_linear,
            "crossovers": crossovers, "speedups": speedups, "baselines": baselines,
            "ttt_modes": ttt_modes, "paths": paths, "speedup_kind": speedup_kind}


def _nested(exps):
    """``{(label, mode): value}`` as ``{label: {mode: value}}``."""
    out = {}
    for (label, mode), value in exps.items():
        out.setdefault(label, {})[mode] = value
    return out


def _write_text(path, text):
    target = replace_target(path, "report")
    tmp = f"{target}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
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
    except (TypeError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        # A field of a type or size no run writes (a hand-edited or foreign file).
        print(f"error: {args.results} has a record the report cannot read "
              f"({type(exc).__name__}: {exc}); its report may be incomplete", file=sys.stderr)
        return 2
    print(summary["paths"]["report"])
    return 0
