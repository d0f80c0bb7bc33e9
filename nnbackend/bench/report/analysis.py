"""The numbers the report states: label and mode order, epoch times per N, scaling
exponents, GPU/CPU crossovers and speedups."""

from __future__ import annotations

import math

from .formatting import fmt_n
from .load import positive

__all__ = ["MODE_ORDER", "CPU_BASELINE", "PEER_ORDER", "NNBACKEND_ORDER", "LINEAR_RANGE",
           "mode_key", "label_key", "sorted_modes", "sorted_labels", "is_nnbackend", "is_peer",
           "epoch_points", "scaling_exponents", "fit_sizes", "common_times", "gpu_labels",
           "gpu_crossovers", "speedup_rows", "time_to_target_rows"]

MODE_ORDER = ("batch", "minibatch", "sgd")
CPU_BASELINE = "nnbackend-numpy-cpu"
PEER_ORDER = ("numpy-seed", "torch-eager-cpu", "torch-eager-cuda", "cupy-eager-cuda",
              "jax-scan-hand-cpu", "jax-scan-hand-gpu", "jax-jit-step-cpu", "jax-jit-step-gpu")
NNBACKEND_ORDER = ("nnbackend-numpy-cpu", "nnbackend-torch-cpu", "nnbackend-torch-cuda",
                   "nnbackend-jax-cpu", "nnbackend-jax-gpu", "nnbackend-cupy-cuda",
                   "nnbackend-cupy-cuda-reference")
LINEAR_RANGE = (0.9, 1.1)


def mode_key(mode):
    return (MODE_ORDER.index(mode), "") if mode in MODE_ORDER else (len(MODE_ORDER), str(mode))


def label_key(label):
    if label in NNBACKEND_ORDER:
        return (0, NNBACKEND_ORDER.index(label), "")
    if label.startswith("nnbackend"):
        return (0, len(NNBACKEND_ORDER), label)
    if label in PEER_ORDER:
        return (1, PEER_ORDER.index(label), "")
    return (2, 0, label)


def sorted_modes(modes):
    return sorted({m for m in modes if m}, key=mode_key)


def sorted_labels(labels):
    return sorted(set(labels), key=label_key)


def is_nnbackend(label):
    return label.startswith("nnbackend")


def is_peer(label):
    return label.startswith(("numpy-seed", "torch-eager", "cupy-eager", "jax-"))


def epoch_points(rows):
    """{(label, mode): {N: row}} for the epoch rows with a time; the fastest of duplicates."""
    table = {}
    for row in rows:
        if row.get("kind") != "epoch" or not row.get("mode"):
            continue
        n, t = row.get("n_samples"), positive(row.get("seconds_per_epoch"))
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
    points = epoch_points(rows)
    for key in sorted(points, key=lambda k: (label_key(k[0]), mode_key(k[1]))):
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


def common_times(points, a, b, mode):
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
        parts.append(f"{side} faster above N ≈ {fmt_n(c['n'])}")
    text = "; ".join(parts)
    if status == "crossover":
        return f"GPU faster from N ≈ {fmt_n(result['n'])}"
    if result["n"] is None:
        return "GPU faster at the smallest measured N; " + text
    return text


def gpu_labels(rows):
    return sorted_labels(r["label"] for r in rows if r.get("gpu") and r.get("kind") == "epoch")


def gpu_crossovers(rows, points, modes):
    out = []
    for mode in modes:
        for label in gpu_labels(rows):
            if label == CPU_BASELINE:
                continue
            ns, tg, tc = common_times(points, label, CPU_BASELINE, mode)
            if not ns:
                continue
            res = _crossover(ns, tg, tc)
            res.update(mode=mode, label=label, cpu_label=CPU_BASELINE,
                       n_measured=[int(n) for n in ns])
            res["text"] = _crossover_text(res)
            out.append(res)
    return out


def speedup_rows(points, labels, modes):
    """Speedup of every nnbackend label over nnbackend-numpy and each peer: t_baseline / t_label."""
    baselines = [b for b in labels if b == CPU_BASELINE or is_peer(b)]
    out = []
    for mode in modes:
        for label in labels:
            if not is_nnbackend(label):
                continue
            for base in baselines:
                if base == label:
                    continue
                ns, t_x, t_y = common_times(points, label, base, mode)
                for n, tx, ty in zip(ns, t_x, t_y):
                    out.append({"mode": mode, "label": label, "baseline": base,
                                "n_samples": int(n), "speedup": ty / tx})
    return out, baselines


def time_to_target_rows(rows):
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
