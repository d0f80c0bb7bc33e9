"""Turn the ``nnbackend bench`` pytest-benchmark JSON into a Markdown report with plots.

The benchmark suite times one training epoch of a fixed MLP per
(implementation, backend, device, mode, N) and records what it measured in each
benchmark's ``extra_info``. This module reads that JSON back and writes, into
an output folder:

``report.md``
    Machine, date and command; per descent mode the time per epoch and the
    throughput at each N; speedups of every nnbackend backend over the NumPy
    backend and over the peer implementations; the scaling exponent of the
    epoch cost in N; the N where a GPU starts to beat the NumPy backend; the
    time-to-target runs.
``epoch_time.png``, ``speedup.png``, ``time_to_target.png``
    The same numbers as plots (the last only when there are time-to-target runs).
``summary.json``
    The exponents, crossovers and speedups as numbers, and the paths written.

Run it as ``python -m nnbackend.bench.report RESULTS.json OUTDIR``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import sys

__all__ = ["load_results", "scaling_exponents", "fit_sizes", "write_report", "main"]

MODE_ORDER = ("batch", "minibatch", "sgd")
CPU_BASELINE = "nnbackend-numpy"
PEER_ORDER = ("numpy-seed", "torch-eager-cpu", "torch-eager-cuda")
NNBACKEND_ORDER = ("nnbackend-numpy", "nnbackend-torch", "nnbackend-jax", "nnbackend-cupy")
LINEAR_RANGE = (0.9, 1.1)

_COLORS = {
    "nnbackend-numpy": "tab:blue",
    "nnbackend-torch": "tab:orange",
    "nnbackend-jax": "tab:green",
    "nnbackend-cupy": "tab:red",
    "numpy-seed": "tab:gray",
    "torch-eager-cpu": "tab:brown",
    "torch-eager-cuda": "tab:purple",
}
_SPARE_COLORS = ("tab:pink", "tab:olive", "tab:cyan", "black", "gold", "navy", "teal", "maroon")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")


# --------------------------------------------------------------------------- loading


def _num(value):
    """A finite float, or None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _pos(value):
    """A finite float > 0, or None."""
    out = _num(value)
    return out if out is not None and out > 0 else None


def _int(value):
    out = _num(value)
    if out is None:
        return None
    return int(round(out))


def _bool(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y")
    return bool(value)


def _derive_label(info, name):
    impl = info.get("implementation")
    backend = info.get("backend")
    if impl == "nnbackend" and backend:
        return f"nnbackend-{backend}"
    if impl == "torch-eager":
        return "torch-eager-cuda" if _bool(info.get("gpu")) else "torch-eager-cpu"
    if impl:
        return str(impl)
    return str(name) if name else "unknown"


def load_results(json_path):
    """Flatten a pytest-benchmark JSON file into one dict per benchmark.

    Each row is the benchmark's ``extra_info`` plus ``name``, ``group`` and the
    timing statistics (``median``, ``min``, ``max``, ``mean``, ``stddev``,
    ``rounds``; None where the run recorded none). Rows are normalised so the
    rest of the report can rely on them:

    * ``kind`` is ``"epoch"`` or ``"time_to_target"`` (inferred when absent);
    * ``label`` is always a string (derived from ``implementation`` and
      ``backend`` when absent; suffixed ``-gpu``/``-cpu`` when one label was
      measured on both kinds of device, the original kept in ``raw_label``);
    * ``mode`` is a string or None, ``gpu`` a bool, ``n_samples`` an int or None;
    * for epoch rows ``seconds_per_epoch`` falls back to the stats median, and
      ``samples_per_s`` / ``seconds_per_step`` are filled in from it when absent;
      a time that is missing, zero or not finite is None.

    Parameters
    ----------
    json_path : str or os.PathLike

    Returns
    -------
    list of dict
        In file order.

    Raises
    ------
    OSError
        The file cannot be read.
    ValueError
        The file is not JSON.
    """
    with open(os.fspath(json_path), encoding="utf-8") as fh:
        data = json.load(fh)
    return _rows_from_data(data)


def _rows_from_data(data):
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benchmarks, list):
        return []
    rows = []
    for bench in benchmarks:
        if not isinstance(bench, dict):
            continue
        info = bench.get("extra_info")
        row = dict(info) if isinstance(info, dict) else {}
        if row.get("kind") == "ratio":
            continue  # interleaved pairs: see ratio_rows
        stats = bench.get("stats") if isinstance(bench.get("stats"), dict) else {}
        row["name"] = bench.get("name")
        row["group"] = bench.get("group")
        for key in ("median", "min", "max", "mean", "stddev"):
            row[key] = _num(stats.get(key))
        row["rounds"] = _int(stats.get("rounds"))

        kind = row.get("kind")
        if kind not in ("epoch", "time_to_target"):
            kind = "time_to_target" if "target_loss" in row or "reached" in row else "epoch"
        row["kind"] = kind
        row["label"] = str(row["label"]) if row.get("label") else _derive_label(row, row["name"])
        row["mode"] = str(row["mode"]) if row.get("mode") else None
        row["gpu"] = _bool(row.get("gpu", False))
        row["n_samples"] = _int(row.get("n_samples"))
        if row["n_samples"] is not None and row["n_samples"] <= 0:
            row["n_samples"] = None
        row["batch_size"] = _int(row.get("batch_size"))
        row["steps"] = _int(row.get("steps"))

        if kind == "epoch":
            spe = _pos(row.get("seconds_per_epoch"))
            if spe is None:
                spe = _pos(row["median"])
            row["seconds_per_epoch"] = spe
            sps = _pos(row.get("samples_per_s"))
            if sps is None and spe is not None and row["n_samples"]:
                sps = row["n_samples"] / spe
            row["samples_per_s"] = sps
            step = _pos(row.get("seconds_per_step"))
            if step is None and spe is not None and row["steps"]:
                step = spe / row["steps"]
            row["seconds_per_step"] = step
        else:
            row["target_loss"] = _num(row.get("target_loss"))
            row["reached"] = _bool(row.get("reached", False))
            row["epochs"] = _int(row.get("epochs"))
            row["seconds"] = _num(row.get("seconds"))
            if row["seconds"] is not None and row["seconds"] < 0:
                row["seconds"] = None
            row["final_loss"] = _num(row.get("final_loss"))
        rows.append(row)

    # One label measured on both a GPU and a CPU would mix two curves: split it.
    flags = {}
    for row in rows:
        flags.setdefault(row["label"], set()).add(row["gpu"])
    for row in rows:
        if len(flags[row["label"]]) > 1:
            row["raw_label"] = row["label"]
            row["label"] = f"{row['label']}-{'gpu' if row['gpu'] else 'cpu'}"
    return rows


def ratio_rows(data):
    """The interleaved pairs of ``benchmarks/test_ratios.py``, as dicts.

    Each has ``label_a``, ``label_b``, ``mode``, ``n_samples``, ``median_a``,
    ``median_b`` (seconds per epoch), ``ratio`` (``median_a / median_b``),
    ``target``, ``sense`` (``"max"``: met when ratio <= target; ``"min"``:
    met when ratio >= target) and ``met`` (None without a target).
    """
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    rows = []
    for bench in benchmarks if isinstance(benchmarks, list) else []:
        info = bench.get("extra_info") if isinstance(bench, dict) else None
        if not isinstance(info, dict) or info.get("kind") != "ratio":
            continue
        ratio = _pos(info.get("ratio"))
        if ratio is None:
            continue
        rows.append({
            "label_a": str(info.get("label_a")), "label_b": str(info.get("label_b")),
            "mode": info.get("mode"), "n_samples": _int(info.get("n_samples")),
            "median_a": _pos(info.get("median_a")), "median_b": _pos(info.get("median_b")),
            "ratio": ratio, "target": _pos(info.get("target")),
            "sense": info.get("sense") if info.get("sense") in ("max", "min") else None,
            "met": None if info.get("met") is None else _bool(info.get("met")),
            "rounds": _int(info.get("rounds")),
        })
    return rows


def _ratio_markdown(ratios):
    if not ratios:
        return ["No interleaved ratio runs in the results.", ""]
    out = ["Each pair alternates epoch by epoch (A, B, A, B, ...) in one process; the "
           "ratio is of the two medians, so a slow spell of the machine slows both sides.", ""]
    body = []
    for r in ratios:
        target = "—" if r["target"] is None else ("≤ " if r["sense"] == "max" else "≥ ") + \
            f"{r['target']:g}"
        met = "—" if r["met"] is None else ("yes" if r["met"] else "**no**")
        body.append([r["label_a"], r["label_b"], r["mode"], _fmt_n(r["n_samples"]),
                     _sig3(r["median_a"]), _sig3(r["median_b"]), f"{r['ratio']:.3g}", target,
                     met])
    header = ["A", "B", "mode", "N", "A s/epoch", "B s/epoch", "A / B", "target", "met"]
    return [_md_table(header, body, text_columns=3), ""]


# --------------------------------------------------------------------------- ordering


def _mode_key(mode):
    return (MODE_ORDER.index(mode), "") if mode in MODE_ORDER else (len(MODE_ORDER), str(mode))


def _label_key(label):
    if label in NNBACKEND_ORDER:
        return (0, NNBACKEND_ORDER.index(label), "")
    if label.startswith("nnbackend"):
        return (0, len(NNBACKEND_ORDER), label)
    if label in PEER_ORDER:
        return (1, PEER_ORDER.index(label), "")
    return (2, 0, label)


def _sorted_modes(modes):
    return sorted({m for m in modes if m}, key=_mode_key)


def _sorted_labels(labels):
    return sorted(set(labels), key=_label_key)


def _is_nnbackend(label):
    return label.startswith("nnbackend")


def _is_peer(label):
    return label == "numpy-seed" or label.startswith(("torch-eager", "jax-"))


# --------------------------------------------------------------------------- analysis


def _epoch_points(rows):
    """{(label, mode): {N: row}} for the epoch rows with a time; the fastest of duplicates."""
    table = {}
    for row in rows:
        if row.get("kind") != "epoch" or not row.get("mode"):
            continue
        n, t = row.get("n_samples"), _pos(row.get("seconds_per_epoch"))
        if not n or t is None:
            continue
        cell = table.setdefault((row["label"], row["mode"]), {})
        if n not in cell or t < cell[n]["seconds_per_epoch"]:
            cell[n] = row
    return table


def _slope(ns, ts):
    xs = [math.log(n) for n in ns]
    ys = [math.log(t) for t in ts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def scaling_exponents(rows, lo=1e4, hi=1e6):
    """Least-squares slope of log(seconds per epoch) against log(N), per (label, mode).

    Only epoch rows with ``lo <= n_samples <= hi`` and a positive time count.
    A (label, mode) with fewer than two distinct N in that range (sgd, whose
    default sizes stop at 10^4) is fitted over its two largest measured N
    instead; :func:`fit_sizes` tells which. A slope of 1 means the epoch cost
    grows linearly with N.

    Returns
    -------
    dict
        ``{(label, mode): slope}``, ordered by label then mode.
    """
    out = {}
    points = _epoch_points(rows)
    for key in sorted(points, key=lambda k: (_label_key(k[0]), _mode_key(k[1]))):
        chosen = fit_sizes(points[key], lo, hi)
        if len(chosen) < 2:
            continue
        slope = _slope(chosen, [points[key][n]["seconds_per_epoch"] for n in chosen])
        if slope is not None:
            out[key] = slope
    return out


def fit_sizes(sizes, lo=1e4, hi=1e6):
    """The N an exponent is fitted over: those in [lo, hi], or else the two largest."""
    chosen = sorted(n for n in sizes if lo <= n <= hi)
    return chosen if len(chosen) >= 2 else sorted(sizes)[-2:]


def _common(points, a, b, mode):
    """Sorted N measured for both labels in a mode, with both times."""
    pa, pb = points.get((a, mode), {}), points.get((b, mode), {})
    ns = sorted(set(pa) & set(pb))
    return ns, [pa[n]["seconds_per_epoch"] for n in ns], [pb[n]["seconds_per_epoch"] for n in ns]


def _crossover(ns, t_gpu, t_cpu):
    """Where the GPU becomes faster, interpolating log(t_gpu/t_cpu) linearly in log N."""
    d = [math.log(g / c) for g, c in zip(t_gpu, t_cpu)]
    if not d:
        return {"status": "no_data", "n": None}
    if all(v < 0 for v in d):
        return {"status": "gpu_faster_everywhere", "n": None}
    if all(v >= 0 for v in d):
        return {"status": "cpu_faster_everywhere", "n": None}
    crossings = []
    for i in range(len(d) - 1):
        if (d[i] >= 0) != (d[i + 1] >= 0):
            x0, x1 = math.log(ns[i]), math.log(ns[i + 1])
            x = x0 + d[i] / (d[i] - d[i + 1]) * (x1 - x0) if d[i] != d[i + 1] else x0
            crossings.append({"n": math.exp(x), "gpu_faster_above": d[i] >= 0})
    if d[0] >= 0:
        first = next(c for c in crossings if c["gpu_faster_above"])
        status = "crossover" if len(crossings) == 1 else "mixed"
        return {"status": status, "n": first["n"], "crossings": crossings}
    return {"status": "mixed", "n": None, "crossings": crossings}


def _crossover_text(result):
    status = result["status"]
    if status == "gpu_faster_everywhere":
        return "GPU faster at every measured N"
    if status == "cpu_faster_everywhere":
        return "CPU faster at every measured N"
    if status == "no_data":
        return "no N measured on both"
    parts = []
    for c in result.get("crossings", []):
        side = "GPU" if c["gpu_faster_above"] else "CPU"
        parts.append(f"{side} faster above N ≈ {_fmt_n(c['n'])}")
    text = "; ".join(parts)
    if status == "crossover":
        return f"GPU faster from N ≈ {_fmt_n(result['n'])}"
    if result["n"] is None:
        return "GPU faster at the smallest measured N; " + text
    return text


def _gpu_labels(rows):
    return _sorted_labels(r["label"] for r in rows if r.get("gpu") and r.get("kind") == "epoch")


def _crossovers(rows, points, modes):
    out = []
    for mode in modes:
        for label in _gpu_labels(rows):
            if label == CPU_BASELINE:
                continue
            ns, tg, tc = _common(points, label, CPU_BASELINE, mode)
            if not ns:
                continue
            res = _crossover(ns, tg, tc)
            res.update(mode=mode, label=label, cpu_label=CPU_BASELINE,
                       n_measured=[int(n) for n in ns])
            res["text"] = _crossover_text(res)
            out.append(res)
    return out


def _speedups(points, labels, modes):
    """Speedup of every nnbackend label over nnbackend-numpy and each peer: t_baseline / t_label."""
    baselines = [b for b in labels if b == CPU_BASELINE or _is_peer(b)]
    out = []
    for mode in modes:
        for label in labels:
            if not _is_nnbackend(label):
                continue
            for base in baselines:
                if base == label:
                    continue
                ns, t_x, t_y = _common(points, label, base, mode)
                for n, tx, ty in zip(ns, t_x, t_y):
                    out.append({"mode": mode, "label": label, "baseline": base,
                                "n_samples": int(n), "speedup": ty / tx})
    return out, baselines


# --------------------------------------------------------------------------- formatting


def _sig3(value):
    """``value`` to three significant digits, without an exponent for ordinary sizes."""
    if value is None or not math.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    value = float(f"{value:.3g}")
    mag = math.floor(math.log10(abs(value)))
    if mag >= 7 or mag < -4:
        return f"{value:.3g}"
    decimals = max(0, 2 - mag)
    return f"{value:.{decimals}f}"


def _fmt_rate(value):
    """Samples per second with a k/M/G suffix, three significant digits."""
    if value is None or not math.isfinite(value):
        return "—"
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= scale:
            return _sig3(value / scale) + suffix
    return _sig3(value)


def _fmt_n(n):
    """A sample count: exact when measured (an int), rounded to 3 digits when interpolated."""
    if n is None:
        return "—"
    if isinstance(n, int):
        return f"{n:,}"
    return f"{int(float(f'{n:.3g}')):,}"


def _fmt_speedup(value):
    return "—" if value is None else f"{_sig3(value)}×"


def _md_table(header, body, text_columns=1):
    """A Markdown table; the first text_columns columns are left-aligned, the rest right."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < text_columns else "---:"
                            for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def _machine_text(data):
    ours = data.get("nnbackend") if isinstance(data.get("nnbackend"), dict) else {}
    info = data.get("machine_info") if isinstance(data.get("machine_info"), dict) else {}
    if ours.get("machine"):
        return str(ours["machine"])
    parts = []
    cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
    if cpu.get("brand_raw"):
        brand = str(cpu["brand_raw"])
        if cpu.get("count"):
            brand += f" ({cpu['count']} logical CPUs)"
        parts.append(brand)
    elif info.get("processor"):
        parts.append(str(info["processor"]))
    if info.get("system"):
        parts.append(" ".join(str(info[k]) for k in ("system", "release") if info.get(k)))
    if info.get("python_version"):
        impl = info.get("python_implementation") or "Python"
        parts.append(f"{impl} {info['python_version']}")
    return ", ".join(parts) if parts else "unknown machine"


def _date_text(data, json_path):
    stamp = data.get("datetime")
    if isinstance(stamp, str) and stamp:
        try:
            when = _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            return when.strftime("%Y-%m-%d %H:%M %Z").strip()
        except ValueError:
            return stamp
    try:
        when = _dt.datetime.fromtimestamp(os.path.getmtime(json_path), _dt.timezone.utc)
        return when.strftime("%Y-%m-%d %H:%M UTC") + " (results file time)"
    except OSError:
        return "unknown"


def _mode_heading(mode, rows):
    mine = [r for r in rows if r.get("mode") == mode and r.get("kind") == "epoch"
            and r.get("batch_size")]
    name = {"batch": "batch descent", "minibatch": "mini-batch descent",
            "sgd": "stochastic descent"}.get(mode, f"{mode} descent")
    if mine and all(r["batch_size"] == r.get("n_samples") for r in mine):
        return f"{name} (batch size = N, one step per epoch)"
    sizes = sorted({r["batch_size"] for r in mine})
    if sizes == [1]:
        return f"{name} (batch size 1, N steps per epoch)"
    if sizes:
        return f"{name} (batch size {', '.join(map(str, sizes))})"
    return name


# --------------------------------------------------------------------------- plots
#
# Layouts are fixed in inches (no tight_layout) and log axes carry plain-text
# major ticks only: on a slow CPU, matplotlib's automatic layout, mathtext tick
# labels and minor log ticks cost seconds per figure.

_PANEL_W, _PANEL_H = 5.0, 3.6  # inches per axes
_LEFT, _RIGHT, _GAP = 0.85, 0.25, 0.85
_TOP = 0.85  # suptitle + panel title
_BOTTOM = 0.6  # x label
_LEGEND_ROW = 0.28


def _style(labels):
    """{label: (color, marker)} stable over one report."""
    style, spare = {}, 0
    for i, label in enumerate(_sorted_labels(labels)):
        color = _COLORS.get(label)
        if color is None:
            color = _SPARE_COLORS[spare % len(_SPARE_COLORS)]
            spare += 1
        style[label] = (color, _MARKERS[i % len(_MARKERS)])
    return style


def _save(plt, fig, path):
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        plt.close(fig)


def _no_data(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes,
            fontsize=11, color="dimgray")
    ax.set_xticks([])
    ax.set_yticks([])


def _panels(plt, count, legend_rows, title):
    """A 1 x count row of axes under a (wrapped) title, with room for legend_rows below."""
    import textwrap

    count = max(1, count)
    legend_h = (0.25 + _LEGEND_ROW * legend_rows) if legend_rows else 0.0
    width = _fig_width(count)
    lines = textwrap.wrap(title, width=max(30, int(width * 9.5)))
    top = _TOP + 0.22 * (len(lines) - 1)
    height = top + _PANEL_H + _BOTTOM + legend_h
    fig, axes = plt.subplots(1, count, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=_LEFT / width, right=1 - _RIGHT / width, top=1 - top / height,
                        bottom=(_BOTTOM + legend_h) / height, wspace=_GAP / _PANEL_W)
    fig.suptitle("\n".join(lines), y=1 - 0.12 / height, va="top")
    return fig, list(axes[0])


def _fig_width(count):
    count = max(1, count)
    return _LEFT + _RIGHT + count * _PANEL_W + (count - 1) * _GAP


def _ncol(entries, panels, most, entry_in):
    """Legend columns: at most `most`, and as many entries of entry_in inches as fit."""
    return max(1, min(entries, most, int(_fig_width(panels) // entry_in)))


def _legend_rows(count, ncol):
    return math.ceil(count / ncol) if count else 0


def _figure_legend(fig, handles, labels, ncol):
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=9,
                   bbox_to_anchor=(0.5, 0.01))


def _tick_n(value, _pos=None):
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _tick_seconds(value, _pos=None):
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
        if value >= scale * 0.9999:
            return f"{value / scale:g} {unit}"
    return f"{value:g} s"


def _tick_times(value, _pos=None):
    return f"{value:g}×"


def _log_axes(ax, x_fmt, y_fmt):
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis, fmt in ((ax.xaxis, x_fmt), (ax.yaxis, y_fmt)):
        axis.set_major_locator(LogLocator(base=10, numticks=8))
        axis.set_major_formatter(FuncFormatter(fmt))
        axis.set_minor_locator(NullLocator())
    ax.grid(True, which="major", alpha=0.35)
    # Less than two decades shown: label a few ticks in between, or there may be only one.
    for axis, limits, fmt in ((ax.xaxis, ax.get_xlim(), x_fmt), (ax.yaxis, ax.get_ylim(), y_fmt)):
        lo, hi = sorted(limits)
        if lo > 0 and math.log10(hi / lo) < 2:
            axis.set_minor_locator(LogLocator(base=10, subs=(2.0, 3.0, 5.0), numticks=12))
            axis.set_minor_formatter(FuncFormatter(fmt))
            ax.grid(True, which="minor", alpha=0.15)


def _plot_epoch_time(plt, path, points, labels, modes, style):
    shown = [lab for lab in labels if any((lab, m) in points for m in modes)]
    ncol = _ncol(len(shown), len(modes), 4, 2.0)
    title = "Time per training epoch (MLP 32-64-1, float32; lower is better)"
    fig, axes = _panels(plt, len(modes), _legend_rows(len(shown), ncol), title)
    handles = {}
    if not modes:
        _no_data(axes[0], "no epoch timings in the results")
    for ax, mode in zip(axes, modes):
        for label in labels:
            cell = points.get((label, mode))
            if not cell:
                continue
            ns = sorted(cell)
            color, marker = style[label]
            (line,) = ax.plot(ns, [cell[n]["seconds_per_epoch"] for n in ns], marker=marker,
                              color=color, linestyle="-" if _is_nnbackend(label) else "--",
                              linewidth=1.6, markersize=5)
            handles.setdefault(label, line)
        _log_axes(ax, _tick_n, _tick_seconds)
        ax.set_title(mode)
        ax.set_xlabel("N (samples)")
        ax.set_ylabel("time per epoch")
    order = [lab for lab in labels if lab in handles]
    _figure_legend(fig, [handles[lab] for lab in order], order, ncol)
    _save(plt, fig, path)


def _mark_crossover(ax, n, color, index):
    ax.axvline(n, color=color, linestyle=":", linewidth=1.4)
    ax.annotate(f"crossover\nN ≈ {_fmt_n(n)}", xy=(n, 1.0), xytext=(6, 8 + 30 * index),
                textcoords="offset points", fontsize=8.5, color=color, ha="left", va="bottom",
                bbox=dict(boxstyle="round,pad=0.25", fc="white", ec=color, lw=0.6))


def _plot_speedup(plt, path, rows, points, labels, modes, style, crossovers):
    gpu = [lab for lab in _gpu_labels(rows) if lab != CPU_BASELINE]
    gpu_lines = {}
    for mode in modes:
        for lab in gpu:
            common = _common(points, lab, CPU_BASELINE, mode)
            if common[0]:
                gpu_lines[(lab, mode)] = common
    handles = {}
    if gpu_lines:
        plot_modes = [m for m in modes if any(k[1] == m for k in gpu_lines)]
        shown = [lab for lab in gpu if any(k[0] == lab for k in gpu_lines)]
        ncol = _ncol(len(shown), len(plot_modes), 4, 2.0)
        title = f"GPU over CPU: epoch time of {CPU_BASELINE} / epoch time on the GPU"
        fig, axes = _panels(plt, len(plot_modes), _legend_rows(len(shown), ncol), title)
        cross = {(c["label"], c["mode"]): c for c in crossovers}
        for ax, mode in zip(axes, plot_modes):
            ax.axhline(1.0, color="black", linewidth=0.9)
            marks, statuses = [], set()
            for label in shown:
                if (label, mode) not in gpu_lines:
                    continue
                ns, tg, tc = gpu_lines[(label, mode)]
                color, marker = style[label]
                (line,) = ax.plot(ns, [c / g for g, c in zip(tg, tc)], marker=marker, color=color,
                                  linestyle="-" if _is_nnbackend(label) else "--",
                                  linewidth=1.6, markersize=5)
                handles.setdefault(label, line)
                c = cross.get((label, mode))
                if c and c["n"]:
                    marks.append((c["n"], color))
                elif c:
                    statuses.add(c["text"])
            for index, (n, color) in enumerate(sorted(marks)):
                _mark_crossover(ax, n, color, index)
            _log_axes(ax, _tick_n, _tick_times)
            if not marks and len(statuses) == 1:
                ax.set_title(f"{mode}: {statuses.pop()}")
            else:
                ax.set_title(mode)
            ax.set_xlabel("N (samples)")
            ax.set_ylabel("speedup (above 1×: GPU faster)")
        _figure_legend(fig, [handles[lab] for lab in shown if lab in handles],
                       [lab for lab in shown if lab in handles], ncol)
        _save(plt, fig, path)
        return "gpu"

    # No GPU measured (or no CPU baseline to compare with): nnbackend over the peers.
    peers = [lab for lab in labels if _is_peer(lab)]
    ours = [lab for lab in labels if _is_nnbackend(lab)]
    dashes = ["-", "--", ":", "-."]
    lines = {}
    for mode in modes:
        for lab in ours:
            for peer in peers:
                ns, tx, ty = _common(points, lab, peer, mode)
                if ns:
                    lines[(lab, peer, mode)] = (ns, [y / x for x, y in zip(tx, ty)])
    plot_modes = [m for m in modes if any(k[2] == m for k in lines)]
    names = []
    for lab in ours:
        for peer in peers:
            if any(k[:2] == (lab, peer) for k in lines):
                names.append((lab, peer))
    ncol = _ncol(len(names), len(plot_modes), 3, 3.4)
    why = "no GPU was measured" if not gpu else f"no {CPU_BASELINE} run to compare the GPU with"
    title = f"Speedup of nnbackend over the peer implementations ({why})"
    fig, axes = _panels(plt, len(plot_modes), _legend_rows(len(names), ncol), title)
    if not plot_modes:
        _no_data(axes[0], "nothing to compare: no GPU timings and\nno nnbackend run next to a peer")
    for ax, mode in zip(axes, plot_modes):
        ax.axhline(1.0, color="black", linewidth=0.9)
        for lab, peer in names:
            if (lab, peer, mode) not in lines:
                continue
            ns, sp = lines[(lab, peer, mode)]
            color, marker = style[lab]
            (line,) = ax.plot(ns, sp, marker=marker, color=color,
                              linestyle=dashes[peers.index(peer) % len(dashes)],
                              linewidth=1.6, markersize=5)
            handles.setdefault((lab, peer), line)
        _log_axes(ax, _tick_n, _tick_times)
        ax.set_title(mode)
        ax.set_xlabel("N (samples)")
        ax.set_ylabel("speedup (above 1×: nnbackend faster)")
    shown = [k for k in names if k in handles]
    _figure_legend(fig, [handles[k] for k in shown], [f"{a} over {b}" for a, b in shown], ncol)
    _save(plt, fig, path)
    return "peers"


def _plot_time_to_target(plt, path, ttt, labels, modes, style):
    from matplotlib.patches import Patch

    per_mode = {m: [lab for lab in labels
                    if (lab, m) in ttt and ttt[(lab, m)]["seconds"] is not None]
                for m in modes}
    slots = max([len(v) for v in per_mode.values()] + [1])
    width = min(0.8 / slots, 0.3)
    any_missed = any(not r["reached"] for r in ttt.values() if r["seconds"] is not None)
    shown = [lab for lab in labels if any(lab in v for v in per_mode.values())]
    entries = len(shown) + (1 if any_missed else 0)
    ax_w = max(5.5, 0.34 * slots * len(modes) + 1.5)
    width_in = _LEFT + _RIGHT + ax_w
    ncol = max(1, min(entries, 4, int(width_in // 2.4)))
    legend_h = 0.25 + _LEGEND_ROW * _legend_rows(entries, ncol)
    height_in = 0.6 + _PANEL_H + _BOTTOM + legend_h
    fig, ax = plt.subplots(figsize=(width_in, height_in))
    fig.subplots_adjust(left=_LEFT / width_in, right=1 - _RIGHT / width_in,
                        top=1 - 0.6 / height_in, bottom=(_BOTTOM + legend_h) / height_in)
    drawn = {}
    seconds = [r["seconds"] for r in ttt.values() if r["seconds"]]
    log = bool(seconds) and max(seconds) / min(seconds) > 100
    for mi, mode in enumerate(modes):
        present = per_mode[mode]
        for li, label in enumerate(present):
            row = ttt[(label, mode)]
            x = mi + (li - (len(present) - 1) / 2) * width
            color = style[label][0]
            missed = not row["reached"]
            bar = ax.bar(x, row["seconds"], width * 0.9, color=color,
                         alpha=0.4 if missed else 0.9, hatch="///" if missed else None,
                         edgecolor="black" if missed else color, linewidth=0.6)
            drawn.setdefault(label, bar)
            epochs = f"{row['epochs']} ep" if row["epochs"] is not None else ""
            if slots > 3:  # narrow bars: vertical labels
                tag = f"not reached, {epochs}" if missed else epochs
            else:
                tag = f"not reached\n{epochs}" if missed else epochs
            ax.annotate(tag.strip(" ,\n"), (x, row["seconds"]), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7.5,
                        rotation=90 if slots > 3 else 0)
    ax.set_xticks(range(len(modes)))
    ax.set_xticklabels(modes)
    ax.set_xlim(-0.6, len(modes) - 0.4)
    ax.set_xlabel("descent mode")
    ax.set_ylabel("seconds to reach the target loss")
    if log:
        ax.set_yscale("log")
        ax.set_ylim(min(seconds) / 2, max(seconds) * (20 if slots > 3 else 6))
    else:
        ax.set_ylim(0, (max(seconds) if seconds else 1.0) * (1.5 if slots > 3 else 1.3))
    ax.grid(True, axis="y", alpha=0.35)
    ax.set_axisbelow(True)
    ax.set_title("Time to target loss (lower is better)")
    handles = [drawn[lab] for lab in shown]
    names = list(shown)
    if any_missed:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///"))
        names.append("not reached: time until giving up")
    _figure_legend(fig, handles, names, ncol)
    _save(plt, fig, path)


# --------------------------------------------------------------------------- report


def _time_to_target_rows(rows):
    """{(label, mode): row}; for several N, the largest N is kept per (label, mode) in the plot."""
    out = {}
    for row in rows:
        if row.get("kind") != "time_to_target" or not row.get("mode"):
            continue
        key = (row["label"], row["mode"])
        prev = out.get(key)
        if prev is None or (row.get("n_samples") or 0) > (prev.get("n_samples") or 0):
            out[key] = row
    return out


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
    rows = _rows_from_data(data)
    os.makedirs(out_dir, exist_ok=True)

    lo, hi = 1e4, 1e6
    points = _epoch_points(rows)
    labels = _sorted_labels(lab for lab, _ in points)
    modes = _sorted_modes(m for _, m in points)
    exps = scaling_exponents(rows, lo, hi)
    crossovers = _crossovers(rows, points, modes)
    speedups, baselines = _speedups(points, labels, modes)
    ttt = _time_to_target_rows(rows)
    ttt_labels = _sorted_labels(lab for lab, _ in ttt)
    ttt_modes = _sorted_modes(m for _, m in ttt)

    paths = {
        "report": os.path.join(out_dir, "report.md"),
        "epoch_time": os.path.join(out_dir, "epoch_time.png"),
        "speedup": os.path.join(out_dir, "speedup.png"),
        "time_to_target": os.path.join(out_dir, "time_to_target.png") if ttt else None,
        "summary": os.path.join(out_dir, "summary.json"),
    }

    from nnbackend.plot import require_matplotlib

    plt = require_matplotlib()
    style = _style(set(labels) | set(ttt_labels))
    _plot_epoch_time(plt, paths["epoch_time"], points, labels, modes, style)
    speedup_kind = _plot_speedup(plt, paths["speedup"], rows, points, labels, modes, style,
                                 crossovers)
    if ttt:
        _plot_time_to_target(plt, paths["time_to_target"], ttt, ttt_labels, ttt_modes, style)
    elif os.path.exists(os.path.join(out_dir, "time_to_target.png")):
        os.unlink(os.path.join(out_dir, "time_to_target.png"))  # stale from an earlier report

    numpy_linear = {}
    for mode in modes:
        slope = exps.get((CPU_BASELINE, mode))
        if slope is not None:
            numpy_linear[mode] = LINEAR_RANGE[0] <= slope <= LINEAR_RANGE[1]

    md = _markdown(data, json_path, rows, points, labels, modes, exps, (lo, hi), numpy_linear,
                   crossovers, speedups, baselines, ttt_labels, ttt_modes, paths)
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


def _markdown(data, json_path, rows, points, labels, modes, exps, rng, numpy_linear,
              crossovers, speedups, baselines, ttt_labels, ttt_modes, paths):
    ours = data.get("nnbackend") if isinstance(data.get("nnbackend"), dict) else {}
    commit = data.get("commit_info") if isinstance(data.get("commit_info"), dict) else {}
    out = ["# nnbackend benchmark report", ""]
    out.append(f"- **Machine:** {_machine_text(data)}")
    gpus = sorted({str(r.get("device")) for r in rows if r.get("gpu") and r.get("device")})
    if not gpus and any(r.get("gpu") for r in rows):
        gpus = ["measured (device name not recorded)"]
    out.append(f"- **GPU:** {', '.join(gpus) if gpus else 'none measured'}")
    out.append(f"- **Date:** {_date_text(data, json_path)}")
    command = ours.get("command")
    out.append(f"- **Command:** `{command}`" if command else "- **Command:** not recorded")
    if commit.get("id"):
        dirty = " (uncommitted changes)" if commit.get("dirty") else ""
        branch = f" on {commit['branch']}" if commit.get("branch") else ""
        out.append(f"- **Commit:** `{str(commit['id'])[:12]}`{branch}{dirty}")
    out.append("- **Model:** MLP 32 → 64 → 1, float32; one training epoch per timing "
               "(median over rounds)")
    out.append("")
    if not points:
        out += ["No epoch timings were found in the results.", ""]

    lo, hi = rng
    # Key findings first.
    findings = []
    for mode in modes:
        if mode in numpy_linear:
            slope = exps[(CPU_BASELINE, mode)]
            sentence = _linearity_sentence(mode, slope, numpy_linear[mode])
            findings.append(sentence if numpy_linear[mode] else f"**Warning:** {sentence}.")
    for c in crossovers:
        findings.append(f"{c['label']} vs {c['cpu_label']}, {c['mode']}: {c['text']}.")
    if findings:
        out += ["## Summary", ""] + [f"- {f}" for f in findings] + [""]

    # Epoch time and throughput.
    for mode in modes:
        mode_labels = [lab for lab in labels if (lab, mode) in points]
        ns = sorted({n for lab in mode_labels for n in points[(lab, mode)]})
        out += [f"## {_mode_heading(mode, rows)}", ""]
        out += ["Time per epoch (ms):", ""]
        body = [[_fmt_n(n)] + [_sig3(points[(lab, mode)][n]["seconds_per_epoch"] * 1e3)
                               if n in points[(lab, mode)] else "—" for lab in mode_labels]
                for n in ns]
        out += [_md_table(["N"] + mode_labels, body), ""]
        out += ["Throughput (samples/s):", ""]
        body = [[_fmt_n(n)] + [_fmt_rate(points[(lab, mode)][n]["samples_per_s"])
                               if n in points[(lab, mode)] else "—" for lab in mode_labels]
                for n in ns]
        out += [_md_table(["N"] + mode_labels, body), ""]

    # Speedups.
    if speedups:
        out += ["## Speedups", "",
                "Speedup of X over Y = epoch time of Y / epoch time of X "
                "(above 1: X is faster).", ""]
        for mode in modes:
            sub = [s for s in speedups if s["mode"] == mode]
            if not sub:
                continue
            cols = [b for b in baselines if any(s["baseline"] == b for s in sub)]
            index = {(s["label"], s["n_samples"], s["baseline"]): s["speedup"] for s in sub}
            keys = sorted({(s["label"], s["n_samples"]) for s in sub},
                          key=lambda k: (_label_key(k[0]), k[1]))
            body = [[lab, _fmt_n(n)] + [_fmt_speedup(index.get((lab, n, b))) for b in cols]
                    for lab, n in keys]
            header = ["nnbackend", "N"] + [f"over {b}" for b in cols]
            out += [f"### {mode}", "", _md_table(header, body), ""]

    # Scaling exponents.
    out += ["## Scaling of the epoch cost with N", ""]
    out.append(f"Least-squares slope of log(epoch time) against log(N) for "
               f"{_fmt_n(int(lo))} ≤ N ≤ {_fmt_n(int(hi))}; 1 means the epoch cost grows "
               f"linearly with N, below 1 that fixed per-step costs (such as GPU kernel "
               f"launches) still dominate.")
    out.append("")
    if exps:
        exp_labels = _sorted_labels(lab for lab, _ in exps)
        exp_modes = _sorted_modes(m for _, m in exps)
        body = [[lab] + [f"{exps[(lab, m)]:.2f}" if (lab, m) in exps else "—" for m in exp_modes]
                for lab in exp_labels]
        out += [_md_table(["label"] + exp_modes, body), ""]
        outside = sorted({(m, tuple(fit_sizes(points[(lab, m)], lo, hi))) for lab, m in exps
                          if fit_sizes(points[(lab, m)], lo, hi)[0] < lo},
                         key=lambda item: _mode_key(item[0]))
        for mode, ns in outside:
            out += [f"- {mode} was measured only up to N = {_fmt_n(int(ns[-1]))} (one Python "
                    f"step per row), so its exponent is fitted over N = "
                    f"{_fmt_n(int(ns[0]))}..{_fmt_n(int(ns[-1]))}, where fixed costs weigh more."]
        if outside:
            out.append("")
    else:
        out += [f"No label has two or more measured N in {_fmt_n(int(lo))}..{_fmt_n(int(hi))}, "
                "so no exponent was fitted.", ""]
    if numpy_linear:
        lo_ok, hi_ok = LINEAR_RANGE
        for mode in _sorted_modes(numpy_linear):
            slope = exps[(CPU_BASELINE, mode)]
            sentence = _linearity_sentence(mode, slope, numpy_linear[mode])
            if numpy_linear[mode]:
                out.append(f"- {sentence}")
            else:
                out.append(f"- **Warning:** {sentence} (expected {lo_ok}..{hi_ok}).")
        out.append("")
    elif CPU_BASELINE in labels:
        out += [f"- {CPU_BASELINE}: not enough measurements in the range to judge whether "
                "the epoch cost grows linearly.", ""]

    # GPU/CPU crossover.
    out += ["## GPU/CPU crossover", ""]
    if crossovers:
        out += [f"Smallest N at which the GPU epoch is faster than {CPU_BASELINE} "
                "(interpolated log-linearly between measured N).", ""]
        body = [[c["mode"], c["label"], _fmt_n(c["n"]) if c["n"] else "—", c["text"]]
                for c in crossovers]
        out += [_md_table(["mode", "GPU label", "crossover N", "result"], body, text_columns=2), ""]
    elif _gpu_labels(rows):
        out += [f"No GPU label was measured at the same N as {CPU_BASELINE}.", ""]
    else:
        out += ["No GPU was measured.", ""]

    # Time to target.
    ttt_rows = [r for r in rows if r.get("kind") == "time_to_target" and r.get("mode")]
    out += ["## Time to target loss", ""]
    if ttt_rows:
        for mode in ttt_modes:
            sub = sorted((r for r in ttt_rows if r["mode"] == mode),
                         key=lambda r: (r.get("n_samples") or 0, _label_key(r["label"])))
            body = [[r["label"], _fmt_n(r["n_samples"]),
                     _sig3(r["target_loss"]) if r["target_loss"] is not None else "—",
                     "yes" if r["reached"] else "**no**",
                     r["epochs"] if r["epochs"] is not None else "—",
                     _sig3(r["seconds"]) if r["seconds"] is not None else "—",
                     _sig3(r["final_loss"]) if r["final_loss"] is not None else "—"]
                    for r in sub]
            header = ["label", "N", "target", "reached", "epochs", "seconds", "final loss"]
            out += [f"### {mode}", "", _md_table(header, body), ""]
    else:
        out += ["No time-to-target runs in the results.", ""]

    out += ["## Ratios, measured interleaved", ""]
    out += _ratio_markdown(ratio_rows(data))

    # Files.
    out += ["## Plots", ""]
    out.append("![Time per epoch](epoch_time.png)")
    out.append("")
    out.append("![Speedup](speedup.png)")
    if paths.get("time_to_target"):
        out += ["", "![Time to target](time_to_target.png)"]
    out.append("")
    return "\n".join(out)


def _linearity_sentence(mode, slope, linear):
    if linear:
        return (f"{CPU_BASELINE}, {mode}: epoch cost grows linearly with N "
                f"(exponent {slope:.2f}).")
    how = "faster" if slope > 1 else "slower"
    return (f"{CPU_BASELINE}, {mode}: epoch cost does not grow linearly with N "
            f"(exponent {slope:.2f}, {how} than linear)")


# --------------------------------------------------------------------------- entry point


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


if __name__ == "__main__":
    sys.exit(main())
