"""The report's figures: epoch time, speedup and time to target, as PNG files."""

from __future__ import annotations

import math

from ...plot import save_figure
from .analysis import (CPU_BASELINE, common_times, gpu_labels, interval, is_nnbackend, is_peer,
                       sorted_labels)
from .formatting import fmt_n
from .targets import budget_text

__all__ = ["plot_styles", "plot_epoch_time", "plot_speedup", "plot_time_to_target"]

_COLORS = {
    "nnbackend-numpy-cpu": "tab:blue",
    "nnbackend-torch-cpu": "tab:orange",
    "nnbackend-torch-cuda": "darkorange",
    "nnbackend-jax-cpu": "tab:green",
    "nnbackend-jax-gpu": "darkgreen",
    "nnbackend-cupy-cuda": "tab:red",
    "numpy-seed": "tab:gray",
    "torch-eager-cpu": "tab:brown",
    "torch-eager-cuda": "tab:purple",
    "cupy-eager-cuda": "tab:pink",
}
_SPARE_COLORS = ("tab:olive", "tab:cyan", "black", "gold", "navy", "teal", "maroon")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")

# Layouts are fixed in inches (no tight_layout) and log axes carry plain-text
# major ticks only: on a slow CPU, matplotlib's automatic layout, mathtext tick
# labels and minor log ticks cost seconds per figure.

_PANEL_W, _PANEL_H = 5.0, 3.6  # inches per axes
_LEFT, _RIGHT, _GAP = 0.85, 0.25, 0.85
_TOP = 0.85  # suptitle + panel title
_BOTTOM = 0.6  # x label
_LEGEND_ROW = 0.28


def plot_styles(labels):
    """{label: (color, marker)} stable over one report."""
    style, spare = {}, 0
    for i, label in enumerate(sorted_labels(labels)):
        color = _COLORS.get(label)
        if color is None:
            color = _SPARE_COLORS[spare % len(_SPARE_COLORS)]
            spare += 1
        style[label] = (color, _MARKERS[i % len(_MARKERS)])
    return style


def _save(plt, fig, path):
    save_figure(plt, fig, path, "png")


def _no_data(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes,
            fontsize=11, color="dimgray")
    ax.set_xticks([])
    ax.set_yticks([])


def _panels(plt, count, legend_rows, title):
    """A 1 x count row of axes under a (wrapped) title, with room for legend_rows below."""
    fig, grid = _grid(plt, 1, max(1, count), legend_rows, title)
    return fig, grid[0]


def _grid(plt, nrows, ncols, legend_rows, title):
    """An nrows x ncols grid of axes under a (wrapped) title, with room for legend_rows below."""
    import textwrap

    legend_h = (0.25 + _LEGEND_ROW * legend_rows) if legend_rows else 0.0
    width = _fig_width(ncols)
    lines = textwrap.wrap(title, width=max(30, int(width * 9.5)))
    top = _TOP + 0.22 * (len(lines) - 1)
    row_gap = 0.75
    height = top + nrows * _PANEL_H + (nrows - 1) * row_gap + _BOTTOM + legend_h
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=_LEFT / width, right=1 - _RIGHT / width, top=1 - top / height,
                        bottom=(_BOTTOM + legend_h) / height, wspace=_GAP / _PANEL_W,
                        hspace=row_gap / _PANEL_H)
    fig.suptitle("\n".join(lines), y=1 - 0.12 / height, va="top")
    return fig, [list(row) for row in axes]


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


def _errorbar(ax, ns, values, bounds, color, marker, dashed):
    """One curve with its spread as error bars: ``bounds`` is a (low, high) per point."""
    lows = [max(v - lo, 0.0) for v, (lo, _) in zip(values, bounds)]
    highs = [max(hi - v, 0.0) for v, (_, hi) in zip(values, bounds)]
    container = ax.errorbar(ns, values, yerr=[lows, highs], marker=marker, color=color,
                            linestyle="--" if dashed else "-", linewidth=1.6, markersize=5,
                            capsize=3, elinewidth=1.0)
    return container.lines[0]


def _ring(ax, xs, ys):
    """Red rings around the points flagged noisy; the legend's handle, or None."""
    if not xs:
        return None
    return ax.scatter(xs, ys, s=160, facecolors="none", edgecolors="red", linewidths=1.6,
                      zorder=5)


def _noisy_handle(plt):
    from matplotlib.lines import Line2D

    return Line2D([], [], marker="o", linestyle="none", markerfacecolor="none",
                  markeredgecolor="red", markersize=10, markeredgewidth=1.6)


_NOISY_NAME = "flagged noisy (see report.md)"


def plot_epoch_time(plt, path, points, labels, modes, style, noise=None, crossovers=()):
    """One panel per mode: each label's epoch time against N, its Q1–Q3 as error
    bars, the noisy timings ringed and each GPU/CPU crossover marked."""
    noise = noise or {}
    shown = [lab for lab in labels if any((lab, m) in points for m in modes)]
    any_noisy = any(key[1] in modes for key in noise)
    entries = len(shown) + (1 if any_noisy else 0)
    ncol = _ncol(entries, len(modes), 4, 2.0)
    title = "Time per training epoch (median of its rounds, bars: Q1–Q3; lower is better)"
    fig, axes = _panels(plt, len(modes), _legend_rows(entries, ncol), title)
    handles = {}
    if not modes:
        _no_data(axes[0], "no epoch timings in the results")
    for ax, mode in zip(axes, modes):
        rings_x, rings_y = [], []
        for label in labels:
            cell = points.get((label, mode))
            if not cell:
                continue
            ns = sorted(cell)
            color, marker = style[label]
            times = [cell[n]["seconds_per_epoch"] for n in ns]
            line = _errorbar(ax, ns, times, [interval(cell[n]) for n in ns], color, marker,
                             not is_nnbackend(label))
            handles.setdefault(label, line)
            for n, t in zip(ns, times):
                if (label, mode, n) in noise:
                    rings_x.append(n)
                    rings_y.append(t)
        _ring(ax, rings_x, rings_y)
        _log_axes(ax, _tick_n, _tick_seconds)
        # Every crossing, each with its direction: a curve that crosses back is
        # marked where the CPU is faster again too.
        marks = sorted((x["n"], style[c["label"]][0], x["gpu_faster_above"])
                       for c in crossovers if c["mode"] == mode and c["label"] in style
                       for x in c.get("crossings") or [])
        for index, (n, color, gpu_above) in enumerate(marks):
            _mark_crossover(ax, n, color, index, at_parity=False,
                            side="GPU" if gpu_above else "CPU")
        ax.set_title(mode)
        ax.set_xlabel("N, samples (log scale)")
        ax.set_ylabel("time per epoch, s (log scale)")
    order = [lab for lab in labels if lab in handles]
    extra = [(_noisy_handle(plt), _NOISY_NAME)] if any_noisy else []
    _figure_legend(fig, [handles[lab] for lab in order] + [h for h, _ in extra],
                   order + [n for _, n in extra], ncol)
    _save(plt, fig, path)


def _mark_crossover(ax, n, color, index, at_parity=True, side="GPU"):
    """A dotted line at the crossover N, labelled; at the 1× line of a speedup
    panel, or near the bottom of an epoch-time panel ("GPU faster from" or, where
    a curve crosses back, "CPU faster from")."""
    ax.axvline(n, color=color, linestyle=":", linewidth=1.4)
    box = dict(boxstyle="round,pad=0.25", fc="white", ec=color, lw=0.6)
    if at_parity:
        ax.annotate(f"crossover\nN ≈ {fmt_n(n)}", xy=(n, 1.0), xytext=(6, 8 + 30 * index),
                    textcoords="offset points", fontsize=8.5, color=color, ha="left",
                    va="bottom", bbox=box)
    else:
        ax.annotate(f"{side} faster from\nN ≈ {fmt_n(n)}", xy=(n, 0.03),
                    xycoords=ax.get_xaxis_transform(), xytext=(6, 30 * index),
                    textcoords="offset points", fontsize=8.5, color=color, ha="left",
                    va="bottom", bbox=box)


def _ratio_bounds(cell_top, cell_bottom, ns):
    """(low, high) of top/bottom per N from the two timings' spreads."""
    out = []
    for n in ns:
        (lo_t, hi_t), (lo_b, hi_b) = interval(cell_top[n]), interval(cell_bottom[n])
        out.append((lo_t / hi_b, hi_t / lo_b))
    return out


def plot_speedup(plt, path, rows, points, labels, modes, style, crossovers, noise=None):
    """GPU over CPU, one panel per mode; with no GPU, nnbackend over each peer,
    one panel per peer and mode. Error bars from both timings' spreads; a
    ratio with a noisy timing ringed. Returns ``"gpu"`` or ``"peers"``."""
    noise = noise or {}
    gpu = [lab for lab in gpu_labels(rows) if lab != CPU_BASELINE]
    gpu_lines = {}
    for mode in modes:
        for lab in gpu:
            ns = common_times(points, lab, CPU_BASELINE, mode)[0]
            if ns:
                gpu_lines[(lab, mode)] = ns
    if gpu_lines:
        _plot_gpu_speedup(plt, path, points, modes, style, crossovers, noise, gpu, gpu_lines)
        return "gpu"
    _plot_peer_speedup(plt, path, points, labels, modes, style, noise,
                       "no GPU was measured" if not gpu
                       else f"no {CPU_BASELINE} run to compare the GPU with")
    return "peers"


def _plot_gpu_speedup(plt, path, points, modes, style, crossovers, noise, gpu, gpu_lines):
    plot_modes = [m for m in modes if any(k[1] == m for k in gpu_lines)]
    shown = [lab for lab in gpu if any(k[0] == lab for k in gpu_lines)]
    any_noisy = False
    ncol = _ncol(len(shown) + 1, len(plot_modes), 4, 2.0)
    title = f"GPU over CPU: epoch time of {CPU_BASELINE} / epoch time on the GPU"
    fig, axes = _panels(plt, len(plot_modes), _legend_rows(len(shown) + 1, ncol), title)
    cross = {(c["label"], c["mode"]): c for c in crossovers}
    handles = {}
    for ax, mode in zip(axes, plot_modes):
        ax.axhline(1.0, color="black", linewidth=0.9)
        marks, statuses, rings = [], set(), ([], [])
        cpu = points[(CPU_BASELINE, mode)]
        for label in shown:
            if (label, mode) not in gpu_lines:
                continue
            ns, cell = gpu_lines[(label, mode)], points[(label, mode)]
            color, marker = style[label]
            sp = [cpu[n]["seconds_per_epoch"] / cell[n]["seconds_per_epoch"] for n in ns]
            line = _errorbar(ax, ns, sp, _ratio_bounds(cpu, cell, ns), color, marker,
                             not is_nnbackend(label))
            handles.setdefault(label, line)
            for n, v in zip(ns, sp):
                if (label, mode, n) in noise or (CPU_BASELINE, mode, n) in noise:
                    rings[0].append(n)
                    rings[1].append(v)
            c = cross.get((label, mode))
            if c and c["n"]:
                marks.append((c["n"], color))
            elif c:
                statuses.add(c["text"])
        any_noisy |= _ring(ax, *rings) is not None
        for index, (n, color) in enumerate(sorted(marks)):
            _mark_crossover(ax, n, color, index)
        _log_axes(ax, _tick_n, _tick_times)
        ax.set_title(f"{mode}: {statuses.pop()}" if not marks and len(statuses) == 1 else mode)
        ax.set_xlabel("N, samples (log scale)")
        ax.set_ylabel("speedup, log scale (above 1×: GPU faster)")
    _finish(plt, fig, handles, shown, any_noisy, ncol, path)


def _plot_peer_speedup(plt, path, points, labels, modes, style, noise, why):
    """nnbackend over each peer: a grid of one row per peer and one column per
    mode, a line per nnbackend label in each panel."""
    peers = [lab for lab in labels if is_peer(lab)]
    ours = [lab for lab in labels if is_nnbackend(lab)]
    panels = [(peer, mode) for peer in peers for mode in modes
              if any(common_times(points, lab, peer, mode)[0] for lab in ours)]
    rows_of = [p for p in peers if any(k[0] == p for k in panels)]
    cols_of = [m for m in modes if any(k[1] == m for k in panels)]
    shown = [lab for lab in ours if any(common_times(points, lab, p, m)[0] for p, m in panels)]
    ncol = _ncol(len(shown) + 1, len(cols_of), 4, 2.2)
    title = f"Speedup of nnbackend over each peer implementation ({why})"
    fig, grid = _grid(plt, max(1, len(rows_of)), max(1, len(cols_of)),
                      _legend_rows(len(shown) + 1, ncol), title)
    handles, any_noisy = {}, False
    if not panels:
        _no_data(grid[0][0], "nothing to compare: no GPU timings and\nno nnbackend run next "
                             "to a peer")
    for r, peer in enumerate(rows_of):
        for c, mode in enumerate(cols_of):
            ax = grid[r][c]
            if (peer, mode) not in panels:
                _no_data(ax, f"{peer} not timed in {mode}")
                continue
            ax.axhline(1.0, color="black", linewidth=0.9)
            rings = ([], [])
            for lab in shown:
                ns = common_times(points, lab, peer, mode)[0]
                if not ns:
                    continue
                mine, theirs = points[(lab, mode)], points[(peer, mode)]
                sp = [theirs[n]["seconds_per_epoch"] / mine[n]["seconds_per_epoch"] for n in ns]
                color, marker = style[lab]
                handles.setdefault(lab, _errorbar(ax, ns, sp, _ratio_bounds(theirs, mine, ns),
                                                  color, marker, False))
                for n, v in zip(ns, sp):
                    if (lab, mode, n) in noise or (peer, mode, n) in noise:
                        rings[0].append(n)
                        rings[1].append(v)
            any_noisy |= _ring(ax, *rings) is not None
            _log_axes(ax, _tick_n, _tick_times)
            ax.set_title(f"{mode}: over {peer}", fontsize=10)
            ax.set_xlabel("N, samples (log scale)")
            ax.set_ylabel("speedup, log (above 1×: faster)")
    _finish(plt, fig, handles, shown, any_noisy, ncol, path)


def _budget_tag(row):
    kind, budget = row.get("budget_kind"), row.get("budget")
    if kind == "seconds":
        return f"in {budget:g} s"
    if kind == "epochs":
        return f"in {int(budget):,} ep"
    return ""


def plot_time_to_target(plt, path, ttt, labels, modes, style):
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
    height_in = 0.8 + _PANEL_H + _BOTTOM + legend_h
    fig, ax = plt.subplots(figsize=(width_in, height_in))
    fig.subplots_adjust(left=_LEFT / width_in, right=1 - _RIGHT / width_in,
                        top=1 - 0.8 / height_in, bottom=(_BOTTOM + legend_h) / height_in)
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
            within = _budget_tag(row)
            if slots > 3:  # narrow bars: vertical labels
                tag = f"not reached {within}, {epochs}" if missed else epochs
            else:
                tag = f"not reached\n{within}\n{epochs}" if missed else epochs
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
    budgets = {(r.get("budget_kind"), r.get("budget")) for r in ttt.values()}
    if len(budgets) == 1:
        (kind, budget), = budgets
        what = budget_text(kind, budget) if kind else "budget not recorded"
        ax.set_title(f"Time to target loss (lower is better)\nbudget: {what} per run, the "
                     "same for every backend", fontsize=10)
    else:
        ax.set_title("Time to target loss (lower is better)\nthe runs' budgets differ: see "
                     "report.md", fontsize=10)
    handles = [drawn[lab] for lab in shown]
    names = list(shown)
    if any_missed:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///"))
        names.append("not reached: time until its budget ran out")
    _figure_legend(fig, handles, names, ncol)
    _save(plt, fig, path)


def _finish(plt, fig, handles, shown, any_noisy, ncol, path):
    """One legend for the figure (the labels shown, in order, and the noisy
    ring where one was drawn), then the file."""
    names = [lab for lab in shown if lab in handles]
    hs = [handles[lab] for lab in names]
    if any_noisy:
        hs, names = hs + [_noisy_handle(plt)], names + [_NOISY_NAME]
    _figure_legend(fig, hs, names, ncol)
    _save(plt, fig, path)
