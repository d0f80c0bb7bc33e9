"""The numbers the report states: label and mode order, epoch times per N, scaling
exponents, GPU/CPU crossovers and speedups."""

from __future__ import annotations

import math

from ..caselog import not_measured
from ..stability import MIN_SPREAD_ROUNDS, NOISY_IQR, too_wide
from .formatting import fmt_n, fmt_ms
from .load import positive, ratio_rows

__all__ = ["MODE_ORDER", "CPU_BASELINE", "PEER_ORDER", "NNBACKEND_ORDER", "LINEAR_RANGE",
           "mode_key", "label_key", "sorted_modes", "sorted_labels", "is_nnbackend", "is_peer",
           "epoch_points", "scaling_exponents", "exponent_fits", "fit_sizes", "common_times",
           "gpu_labels", "gpu_crossovers", "speedup_rows", "time_to_target_rows",
           "interval", "noise_notes", "MIN_FIT_SIZES", "MIN_R2", "STEEPEST_EXPONENT",
           "NOISY_IQR", "MIN_SPREAD_ROUNDS", "unmeasured", "few_rounds"]

MODE_ORDER = ("batch", "minibatch", "sgd")
CPU_BASELINE = "nnbackend-numpy-cpu"
PEER_ORDER = ("numpy-seed", "torch-eager-cpu", "torch-eager-cuda", "cupy-eager-cuda",
              "jax-scan-hand-cpu", "jax-scan-hand-gpu", "jax-jit-step-cpu", "jax-jit-step-gpu")
NNBACKEND_ORDER = ("nnbackend-numpy-cpu", "nnbackend-torch-cpu", "nnbackend-torch-cuda",
                   "nnbackend-jax-cpu", "nnbackend-jax-gpu", "nnbackend-cupy-cuda",
                   "nnbackend-cupy-cuda-reference")
LINEAR_RANGE = (0.9, 1.1)
#: An exponent is fitted on at least this many sizes...
MIN_FIT_SIZES = 3
#: ...and is flagged, not a finding, when the log-log fit's R² is below this.
MIN_R2 = 0.9
#: Neighbouring N whose times grow faster than N to this power, even at the
#: edges of their spreads, disagree: an epoch's work is linear in N.
STEEPEST_EXPONENT = 2.0


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
    """{(label, mode): {N: row}} for the epoch rows with a time; of a timing recorded
    more than once, the fastest, with the others in its ``duplicates``."""
    groups = {}
    for row in rows:
        if row.get("kind") != "epoch" or not row.get("mode"):
            continue
        n, t = row.get("n_samples"), positive(row.get("seconds_per_epoch"))
        if not n or t is None:
            continue
        groups.setdefault((row["label"], row["mode"]), {}).setdefault(n, []).append(row)
    table = {}
    for key, by_n in groups.items():
        cell = table[key] = {}
        for n, found in by_n.items():
            best = min(found, key=lambda r: r["seconds_per_epoch"])
            others = [r for r in found if r is not best]
            cell[n] = dict(best, duplicates=others) if others else best
    return table


def unmeasured(data, rows):
    """``(name, outcome, reason)`` of each case with no figure in the report: those
    the run says did not pass (:func:`nnbackend.bench.caselog.not_measured`) and
    left no record with a time, those whose record holds no usable time
    (zero, negative, not a number), and those it says passed that left no
    record at all (a record lost, or a run with timing disabled)."""
    ratios = ratio_rows(data)
    usable = {r["name"] for r in rows if r["kind"] == "time_to_target"
              or r.get("seconds_per_epoch") is not None} | {r["name"] for r in ratios}
    out = [case for case in not_measured(data) if case[0] not in usable]
    why = "its recorded time is zero, negative or not a number"
    out += [(str(r["name"]), "no usable time", why) for r in rows if r["kind"] == "epoch"
            and r["name"] is not None and r.get("seconds_per_epoch") is None
            and r["name"] not in usable]
    recorded = usable | {b.get("name") for b in _listed(data, "benchmarks")}
    out += [(str(c["name"]), "passed, no record", "the run says it passed, but the results "
             "hold no record of it") for c in _listed(data, "cases")
            if c.get("outcome") == "passed" and c.get("name") and c["name"] not in recorded]
    return out


def _listed(data, key):
    """The dicts of ``data[key]``, a list in a well-formed results file ([] otherwise)."""
    found = data.get(key) if isinstance(data, dict) else None
    return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def few_rounds(row):
    """True for a timing of fewer rounds than a spread needs."""
    return row.get("rounds") is not None and row["rounds"] < MIN_SPREAD_ROUNDS


def interval(row):
    """``(low, high)`` of a timing's spread: its quartiles, else its min and max
    (records made before quartiles were kept), else its time alone."""
    t = row["seconds_per_epoch"]
    for lo_key, hi_key in (("q1", "q3"), ("min", "max")):
        lo, hi = positive(row.get(lo_key)), positive(row.get(hi_key))
        if lo is not None and hi is not None and lo <= t <= hi:
            return lo, hi
    return t, t


def _own_noise(row):
    """Why a timing is noisy by its own rounds, or None (quartiles, else min-max)."""
    stats = {"median": row["seconds_per_epoch"], "rounds": row.get("rounds") or 0,
             "iqr": row.get("iqr")}
    if stats["iqr"] is None and positive(row.get("min")) and positive(row.get("max")):
        # No quartiles recorded: the whole range stands in, judged against the median.
        if stats["rounds"] >= MIN_SPREAD_ROUNDS and row["max"] - row["min"] > stats["median"]:
            return (f"min–max {fmt_ms(row['min'])}–{fmt_ms(row['max'])} ms wider than the "
                    f"median over {stats['rounds']} rounds")
        return None
    return too_wide(stats)


def overlap(a, b):
    """True where two timings' spreads (:func:`interval`) overlap."""
    (lo_a, hi_a), (lo_b, hi_b) = interval(a), interval(b)
    return lo_a <= hi_b and lo_b <= hi_a


def _duplicates_disagree(row):
    """Why a timing recorded more than once is noisy: a duplicate's spread does not
    overlap the one kept (the fastest); else None."""
    others = row.get("duplicates") or []
    if not any(not overlap(row, other) for other in others):
        return None
    times = ", ".join(fmt_ms(r["seconds_per_epoch"]) for r in [row, *others])
    return (f"recorded {len(others) + 1} times in these results ({times} ms), beyond each "
            "other's spreads; the fastest is shown")


def noise_notes(points):
    """``{(label, mode, N): [reason, ...]}`` for every timing flagged noisy.

    A timing is noisy when its own rounds' IQR exceeds :data:`NOISY_IQR` of its
    median (:func:`nnbackend.bench.stability.too_wide`), or when it and its
    neighbour in N disagree beyond both spreads: the larger N is faster even at
    the edges of the two spreads (an epoch's work only grows with N), or
    slower by more than (N ratio) ** :data:`STEEPEST_EXPONENT`. Both neighbours
    are flagged, each reason naming the other N. So is a timing recorded more
    than once whose records' spreads do not overlap, and one whose case failed
    after it was taken.
    """
    out = {}
    for (label, mode), cell in points.items():
        ns = sorted(cell)
        for n in ns:
            for why in (_own_noise(cell[n]), _duplicates_disagree(cell[n])):
                if why:
                    out.setdefault((label, mode, n), []).append(why)
            if cell[n].get("case_failed"):
                out.setdefault((label, mode, n), []).append(
                    f"its case did not pass after this timing was taken "
                    f"({cell[n]['case_failed']})")
        for a, b in zip(ns, ns[1:]):
            ra, rb = cell[a], cell[b]
            if min(ra.get("rounds") or MIN_SPREAD_ROUNDS,
                   rb.get("rounds") or MIN_SPREAD_ROUNDS) < MIN_SPREAD_ROUNDS:
                continue  # a spread of one or two rounds is unknown: nothing to go beyond
            (lo_a, hi_a), (lo_b, hi_b) = interval(ra), interval(rb)
            ta, tb = ra["seconds_per_epoch"], rb["seconds_per_epoch"]
            steep = (b / a) ** STEEPEST_EXPONENT
            if hi_b < lo_a:
                what = (f"the time falls from {fmt_ms(ta)} ms at N = {fmt_n(a)} to "
                        f"{fmt_ms(tb)} ms at N = {fmt_n(b)}, beyond both spreads")
            elif lo_b > hi_a * steep:
                what = (f"the time grows {tb / ta:,.0f}× from N = {fmt_n(a)} to "
                        f"N = {fmt_n(b)} ({b / a:g}× the rows), beyond both spreads "
                        f"and faster than N^{STEEPEST_EXPONENT:g}")
            else:
                continue
            out.setdefault((label, mode, a), []).append(what)
            out.setdefault((label, mode, b), []).append(what)
    return out


def _fit(ns, ts):
    """Least-squares slope of log t against log N, and the fit's R²."""
    xs = [math.log(n) for n in ns]
    ys = [math.log(t) for t in ts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None, None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    syy = sum((y - my) ** 2 for y in ys)
    resid = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys))
    return slope, (1.0 - resid / syy) if syy > 0 else 1.0


def exponent_fits(points, noise=None, lo=1e4, hi=1e6):
    """The scaling exponent of each (label, mode), with its fit and its verdict.

    Fitted on the measured N in [lo, hi] where there are at least
    :data:`MIN_FIT_SIZES`, else on every measured N where there are that
    many; with fewer there is no exponent. An exponent is a finding only
    when it is not negative, its R² is at least :data:`MIN_R2` and no timing
    it was fitted on is noisy (``noise``: :func:`noise_notes`).

    Returns
    -------
    dict
        ``{(label, mode): fit}``, ordered by label then mode; each fit has
        ``slope`` and ``r2`` (None without an exponent), ``sizes`` (the N
        fitted, or all measured where too few), ``measured``, ``reason`` (why
        there is no exponent, else None), ``flags`` (why it is not a finding;
        empty for a finding) and ``outside_range`` (fitted on N outside
        [lo, hi], too few being inside).
    """
    noise = noise or {}
    out = {}
    for key in sorted(points, key=lambda k: (label_key(k[0]), mode_key(k[1]))):
        cell = points[key]
        measured = sorted(cell)
        chosen = fit_sizes(measured, lo, hi)
        fit = {"slope": None, "r2": None, "sizes": chosen, "measured": measured,
               "reason": None, "flags": [], "outside_range": False}
        if len(chosen) < MIN_FIT_SIZES:
            listed = ", ".join(fmt_n(n) for n in measured)
            fit["reason"] = (f"{len(measured)} size{'' if len(measured) == 1 else 's'} "
                             f"measured (N = {listed}); an exponent needs at least "
                             f"{MIN_FIT_SIZES}")
            out[key] = fit
            continue
        slope, r2 = _fit(chosen, [cell[n]["seconds_per_epoch"] for n in chosen])
        fit.update(slope=slope, r2=r2, outside_range=any(n < lo or n > hi for n in chosen))
        if slope < 0:
            fit["flags"].append("negative: the time falls as N grows, which no epoch's "
                                "work does (noise, or a warm-up in the timing)")
        if r2 < MIN_R2:
            fit["flags"].append(f"poor fit: R² {r2:.2f} is below {MIN_R2:g}, the times "
                                "follow no single power of N over these sizes")
        noisy = [n for n in chosen if (key[0], key[1], n) in noise]
        if noisy:
            fit["flags"].append("fitted on timings flagged noisy (N = "
                                + ", ".join(fmt_n(n) for n in noisy) + ")")
        few = [n for n in chosen if few_rounds(cell[n])]
        if few:
            fit["flags"].append(f"fitted on timings of fewer than {MIN_SPREAD_ROUNDS} rounds, "
                                "spread unknown (N = " + ", ".join(fmt_n(n) for n in few) + ")")
        out[key] = fit
    return out


def scaling_exponents(rows, lo=1e4, hi=1e6):
    """The exponents that are findings: ``{(label, mode): slope}``.

    The least-squares slope of log(seconds per epoch) against log(N), over
    at least :data:`MIN_FIT_SIZES` measured N (:func:`exponent_fits`), left
    out where it is negative, poorly fitted or fitted on noisy timings. A
    slope of 1 means the epoch cost grows linearly with N.
    """
    points = epoch_points(rows)
    fits = exponent_fits(points, noise_notes(points), lo, hi)
    return {k: f["slope"] for k, f in fits.items() if f["slope"] is not None and not f["flags"]}


def fit_sizes(sizes, lo=1e4, hi=1e6):
    """The N an exponent is fitted over: those in [lo, hi] where there are at
    least :data:`MIN_FIT_SIZES`, else all of them (too few for a fit where
    fewer than that were measured)."""
    chosen = sorted(n for n in sizes if lo <= n <= hi)
    return chosen if len(chosen) >= MIN_FIT_SIZES else sorted(sizes)


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
    if all(v == 0 for v in d):
        return {"status": "tied", "n": None}
    if all(v < 0 for v in d):
        return {"status": "gpu_faster_everywhere", "n": None}
    if all(v >= 0 for v in d):
        # Equal times at some N (not all): the CPU is not faster there.
        tied = [n for n, v in zip(ns, d) if v == 0]
        return {"status": "cpu_faster_everywhere", "n": None, "tied_n": tied}
    crossings = []
    for i in range(len(d) - 1):
        if (d[i] >= 0) != (d[i + 1] >= 0):
            x0, x1 = math.log(ns[i]), math.log(ns[i + 1])
            x = x0 + d[i] / (d[i] - d[i + 1]) * (x1 - x0) if d[i] != d[i + 1] else x0
            crossings.append({"n": math.exp(x), "gpu_faster_above": d[i] >= 0,
                              "between": (ns[i], ns[i + 1])})
    if d[0] >= 0:
        first = next(c for c in crossings if c["gpu_faster_above"])
        status = "crossover" if len(crossings) == 1 else "mixed"
        return {"status": status, "n": first["n"], "crossings": crossings}
    return {"status": "mixed", "n": None, "crossings": crossings}


def _crossover_text(result):
    status = result["status"]
    measured = result.get("n_measured") or []
    where = (f"at the one N measured (N = {fmt_n(measured[0])})" if len(measured) == 1
             else "at every measured N")
    if status == "gpu_faster_everywhere":
        return f"GPU faster {where}"
    if status == "cpu_faster_everywhere":
        tied = result.get("tied_n") or []
        if tied:
            return (f"CPU faster or as fast {where} (as fast at N = "
                    f"{', '.join(fmt_n(n) for n in tied)})")
        return f"CPU faster {where}"
    if status == "tied":
        return f"GPU and CPU equally fast {where}"
    if status == "no_data":
        return "no N measured on both"
    parts = []
    for c in result.get("crossings", []):
        side = "GPU" if c["gpu_faster_above"] else "CPU"
        parts.append(f"{side} faster above N ≈ {fmt_n(c['n'])}{_between(c)}")
    text = "; ".join(parts)
    if status == "crossover":
        return f"GPU faster from N ≈ {fmt_n(result['n'])}{_between(result['crossings'][0])}"
    if result["n"] is None:
        return "GPU faster at the smallest measured N; " + text
    return text


def _between(crossing):
    """The measured sizes a crossing was interpolated between (log-linear)."""
    lo, hi = crossing.get("between", (None, None))
    return "" if lo is None else f" (between the measured {fmt_n(lo)} and {fmt_n(hi)})"


def gpu_labels(rows):
    return sorted_labels(r["label"] for r in rows if r.get("gpu") and r.get("kind") == "epoch")


def gpu_crossovers(rows, points, modes, noise=None):
    """Where each GPU label's epoch becomes faster than :data:`CPU_BASELINE`'s,
    per mode; ``noisy_n`` lists the N compared where either timing is noisy,
    ``few_rounds_n`` where either has too few rounds for a spread and
    ``overlap_n`` where the two spreads overlap (which is faster is not resolved)."""
    noise = noise or {}
    out = []
    for mode in modes:
        for label in gpu_labels(rows):
            if label == CPU_BASELINE:
                continue
            ns, tg, tc = common_times(points, label, CPU_BASELINE, mode)
            if not ns:
                continue
            res = _crossover(ns, tg, tc)
            few = [n for n in ns if min(points[(lab, mode)][n].get("rounds") or MIN_SPREAD_ROUNDS
                                        for lab in (label, CPU_BASELINE)) < MIN_SPREAD_ROUNDS]
            res.update(mode=mode, label=label, cpu_label=CPU_BASELINE,
                       n_measured=[int(n) for n in ns],
                       noisy_n=[int(n) for n in ns if (label, mode, n) in noise
                                or (CPU_BASELINE, mode, n) in noise],
                       few_rounds_n=[int(n) for n in few],
                       overlap_n=[int(n) for n in ns if n not in few and overlap(
                           points[(label, mode)][n], points[(CPU_BASELINE, mode)][n])])
            res["text"] = _crossover_text(res)
            out.append(res)
    return out


def speedup_rows(points, labels, modes, noise=None):
    """Speedup of every nnbackend label over nnbackend-numpy and each peer:
    t_baseline / t_label; ``noisy`` where either timing is flagged noisy,
    ``few_rounds`` where either has too few rounds for a spread."""
    noise = noise or {}
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
                                "n_samples": int(n), "speedup": ty / tx,
                                "noisy": (label, mode, n) in noise or (base, mode, n) in noise,
                                "few_rounds": any(few_rounds(points[(lab, mode)][n])
                                                  for lab in (label, base))})
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
