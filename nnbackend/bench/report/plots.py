"""The report's figures: epoch time, speedup and time to target, as PNG files."""

from __future__ import annotations

import math
import os

from .analysis import CPU_BASELINE, common_times, gpu_labels, is_nnbackend, is_peer, sorted_labels
from .formatting import fmt_n

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


def plot_epoch_time(plt, path, points, labels, modes, style):
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
                              color=color, linestyle="-" if is_nnbackend(label) else "--",
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
    ax.annotate(f"crossover\nN ≈ {fmt_n(n)}", xy=(n, 1.0), xytext=(6, 8 + 30 * index),
                textcoords="offset points", fontsize=8.5, color=color, ha="left", va="bottom",
                bbox=dict(boxstyle="round,pad=0.25", fc="white", ec=color, lw=0.6))


def plot_speedup(plt, path, rows, points, labels, modes, style, crossovers):
    gpu = [lab for lab in gpu_labels(rows) if lab != CPU_BASELINE]
    gpu_lines = {}
    for mode in modes:
        for lab in gpu:
            common = common_times(points, lab, CPU_BASELINE, mode)
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
                                  linestyle="-" if is_nnbackend(label) else "--",
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
    peers = [lab for lab in labels if is_peer(lab)]
    ours = [lab for lab in labels if is_nnbackend(lab)]
    dashes = ["-", "--", ":", "-."]
    lines = {}
    for mode in modes:
        for lab in ours:
            for peer in peers:
                ns, tx, ty = common_times(points, lab, peer, mode)
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
