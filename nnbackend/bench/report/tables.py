"""``report.md``: the header, the summary and one section of Markdown tables per concern.

Every note is made from the timings it is about and stands on the row it
concerns: a noisy timing's reason on that timing's row of the spread table,
an exponent's verdict on that exponent's row, a budget on each
time-to-target row that missed it.
"""

from __future__ import annotations

import os
import statistics

from ..caselog import left_out
from ..models import describe
from ..stability import MIN_SPREAD_ROUNDS, NOISY_IQR
from .analysis import (CPU_BASELINE, LINEAR_RANGE, MIN_FIT_SIZES, gpu_labels, label_key,
                       unmeasured)
from .formatting import fmt_ms, fmt_n, fmt_rate, fmt_speedup, md_table, sig3
from .header import header
from .targets import ratio_markdown, time_to_target_tables

__all__ = ["report_markdown", "mark", "row_notes", "NOISY_MARK", "UNKNOWN_MARK"]

NOISY_MARK = "⚠"  # a timing flagged noisy
UNKNOWN_MARK = "†"  # fewer rounds than a spread needs


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


def report_markdown(data, json_path, rows, sections, ratios):
    """The text of ``report.md``: the header, then per model (``sections``, as
    :func:`.write._model_section` makes them) key findings first and one
    section per concern, then the interleaved ratios."""
    out = header(data, json_path, rows, [s["model"] for s in sections], sections)
    several = len(sections) > 1
    for s in sections:
        if several:
            out += [f"# Model {s['model']}: {describe(s['model'])}", ""]
        out += _model_markdown(s)
    out += ["## Ratios, measured interleaved", ""]
    out += ratio_markdown(ratios)
    out += _not_measured(data, rows)
    return "\n".join(out)


def _model_markdown(s):
    """One model's findings, tables and plots."""
    rows, points, labels, modes = s["rows"], s["points"], s["labels"], s["modes"]
    out = []
    if not points:
        out += ["No epoch timings were found in the results.", ""]
    out += _summary(modes, s["exps"], s["numpy_linear"], s["crossovers"])
    for mode in modes:
        out += _epoch_tables(rows, points, labels, mode, s["noise"])
        out += _spread_table(points, labels, mode, s["noise"])
    out += _speedup_tables(modes, s["speedups"], s["baselines"])
    out += _scaling(labels, s["fits"], s["exps"], s["range"], s["numpy_linear"])
    out += _crossover_table(rows, s["crossovers"])
    out += time_to_target_tables(rows, s["ttt_modes"])
    out += _plot_links(s["paths"])
    return out


def _summary(modes, exps, numpy_linear, crossovers):
    """Key findings: whether the NumPy epoch cost is linear in N (from an
    exponent that is a finding only), and the crossovers."""
    findings = []
    for mode in modes:
        if mode in numpy_linear:
            slope = exps[(CPU_BASELINE, mode)]
            sentence = _linearity_sentence(mode, slope, numpy_linear[mode])
            findings.append(sentence if numpy_linear[mode] else f"**Warning:** {sentence}.")
    for c in crossovers:
        findings.append(f"{c['label']} vs {c['cpu_label']}, {c['mode']}: {c['text']}"
                        f"{_noisy_crossover(c)}.")
    if findings:
        return ["## Summary", ""] + [f"- {f}" for f in findings] + [""]
    return []


def _noisy_crossover(c):
    """What weakens a crossover: timings flagged noisy, or of too few rounds for
    a spread, at the N it compared."""
    out = ""
    if c.get("noisy_n"):
        out += (f" ({NOISY_MARK} from timings flagged noisy at N = "
                + ", ".join(fmt_n(n) for n in c["noisy_n"]) + ")")
    if c.get("overlap_n"):
        out += (" (the two timings lie within each other's Q1–Q3 at N = "
                + ", ".join(fmt_n(n) for n in c["overlap_n"]) + ": which is faster there is "
                "not resolved)")
    if c.get("few_rounds_n"):
        out += (f" ({UNKNOWN_MARK} from timings of fewer than {MIN_SPREAD_ROUNDS} rounds, "
                "spread unknown, at N = " + ", ".join(fmt_n(n) for n in c["few_rounds_n"])
                + ")")
    return out


def mark(label, mode, n, row, noise):
    """`` ⚠`` for a noisy timing, `` †`` for one with too few rounds for a spread."""
    if (label, mode, n) in noise:
        return f" {NOISY_MARK}"
    if row.get("rounds") is not None and row["rounds"] < MIN_SPREAD_ROUNDS:
        return f" {UNKNOWN_MARK}"
    return ""


def _epoch_tables(rows, points, labels, mode, noise):
    """One mode: time per epoch (marked where noisy), per step and throughput at each N."""
    mode_labels = [lab for lab in labels if (lab, mode) in points]
    ns = sorted({n for lab in mode_labels for n in points[(lab, mode)]})
    out = [f"## {_mode_heading(mode, rows)}", "", "Time per epoch (ms; median of its rounds):",
           ""]

    def cell(lab, n):
        row = points[(lab, mode)].get(n)
        if row is None:
            return "—"
        return fmt_ms(row["seconds_per_epoch"]) + mark(lab, mode, n, row, noise)

    out += [md_table(["N"] + mode_labels, [[fmt_n(n)] + [cell(lab, n) for lab in mode_labels]
                                          for n in ns]), ""]
    out += _mark_legend(points, mode_labels, mode, noise)
    if any((points[(lab, mode)][n].get("steps") or 1) > 1
           for lab in mode_labels for n in points[(lab, mode)]):
        out += ["Time per step (µs; the epoch's time over its ceil(N / batch size) steps, "
                "the last one short where the batch size does not divide N):", ""]
        body = [[fmt_n(n)] + [_per_step(points[(lab, mode)].get(n)) for lab in mode_labels]
                for n in ns]
        out += [md_table(["N"] + mode_labels, body), ""]
    out += ["Throughput (samples/s):", ""]
    body = [[fmt_n(n)] + [fmt_rate(points[(lab, mode)][n]["samples_per_s"])
                          if n in points[(lab, mode)] else "—" for lab in mode_labels]
            for n in ns]
    out += [md_table(["N"] + mode_labels, body), ""]
    if any(n not in points[(lab, mode)] for lab in mode_labels for n in ns):
        out += ["— not measured at that N (see \"Cases not measured\" where the run "
                "recorded its cases).", ""]
    return out


def _mark_legend(points, labels, mode, noise):
    """What the marks in a time table mean, naming the timings that carry them."""
    noisy = [(lab, n) for lab in labels for n in sorted(points[(lab, mode)])
             if (lab, mode, n) in noise]
    few = [(lab, n) for lab in labels for n, r in sorted(points[(lab, mode)].items())
           if (lab, mode, n) not in noise and r.get("rounds") is not None
           and r["rounds"] < MIN_SPREAD_ROUNDS]
    out = []
    if noisy:
        out.append(f"{NOISY_MARK} flagged noisy: " + _cells(noisy)
                   + " (why: the spread table below).")
    if few:
        out.append(f"{UNKNOWN_MARK} fewer than {MIN_SPREAD_ROUNDS} rounds, spread unknown: "
                   + _cells(few) + ".")
    return [" ".join(out), ""] if out else []


def _cells(pairs):
    by_label = {}
    for lab, n in pairs:
        by_label.setdefault(lab, []).append(fmt_n(n))
    return "; ".join(f"{lab} at N = {', '.join(ns)}" for lab, ns in by_label.items())


def _spread_table(points, labels, mode, noise):
    """One mode: every timing's median, quartiles, min–max, rounds, re-runs and notes."""
    body = []
    cells = [r for lab in labels for r in points.get((lab, mode), {}).values()]
    # Said once above the table where no timing has quartiles, else on the rows without.
    none_have_quartiles = not any(r.get("q1") is not None for r in cells)
    for lab in labels:
        for n, row in sorted(points.get((lab, mode), {}).items()):
            q = (f"{fmt_ms(row['q1'])}–{fmt_ms(row['q3'])}"
                 if row.get("q1") is not None and row.get("q3") is not None else "—")
            mm = (f"{fmt_ms(row['min'])}–{fmt_ms(row['max'])}"
                  if row.get("min") is not None and row.get("max") is not None else "—")
            reruns = "—" if row.get("reruns") is None else str(row["reruns"])
            notes = "; ".join(row_notes(lab, mode, n, row, noise,
                                        quartile_note=not none_have_quartiles))
            body.append([lab + mark(lab, mode, n, row, noise), fmt_n(n),
                         fmt_ms(row["seconds_per_epoch"]), q, mm,
                         "—" if row.get("rounds") is None else row["rounds"], reruns,
                         notes or "—"])
    if not body:
        return []
    head = ["label", "N", "median ms", "Q1–Q3 ms", "min–max ms", "rounds", "re-runs", "notes"]
    intro = (f"Spread of each timing ({mode}): the middle half of its rounds (Q1–Q3), all of "
             "them (min–max), how many, and the re-runs a too-wide spread cost.")
    if none_have_quartiles:
        intro += (" These results record no quartiles (made before they were kept): min–max "
                  "stands in for the spread.")
    return [intro, "",
            md_table(head, body, text_columns=2, text_last=True), ""]


def row_notes(label, mode, n, row, noise, quartile_note=True):
    """The notes of one timing's row, from its own record: why it is noisy, its
    rounds when too few for a spread, and what its re-runs did."""
    notes = [f"noisy: {why}" for why in noise.get((label, mode, n), [])]
    rounds = row.get("rounds")
    if rounds is not None and rounds < MIN_SPREAD_ROUNDS:
        notes.append(f"{rounds} round{'' if rounds == 1 else 's'}: no quartiles, so its "
                     "spread is unknown")
    duplicates = row.get("duplicates") or []
    flagged = any(why.startswith("recorded ") for why in noise.get((label, mode, n), []))
    if duplicates and not flagged:
        times = ", ".join(fmt_ms(r["seconds_per_epoch"]) for r in [row, *duplicates])
        notes.append(f"measured {len(duplicates) + 1} times in these results ({times} ms, "
                     "within each other's spreads); the fastest is shown")
    if quartile_note and row.get("q1") is None and row.get("min") is not None and rounds:
        notes.append("no quartiles recorded: min–max stands in for the spread")
    reruns = row.get("reruns")
    earlier = [a for a in row.get("attempts") or [] if isinstance(a, dict)][:-1]
    if reruns:
        iqrs = _earlier_iqrs(earlier)
        took = f"{sig3(row['rerun_seconds'])} s" if row.get("rerun_seconds") is not None \
            else "time not recorded"
        text = (f"re-run {reruns}× ({took}; earlier attempts' IQR {iqrs} of their medians); "
                "these figures are the last attempt's")
        if row.get("stable") is False:
            text += f", still too wide: {row.get('stopped') or 'the budget ran out'}"
        notes.append(text)
        moved = _attempts_moved(row.get("attempts") or [])
        if moved:
            notes.append(moved)
    elif row.get("stable") is False and row.get("stopped"):
        notes.append(f"not re-run: {row['stopped']}")
    if (label, mode, n) in noise and isinstance(row.get("load_average"), list) \
            and row["load_average"]:
        notes.append(f"1-min load {row['load_average'][0]:.2f} as it started")
    return [note.replace("|", "\\|") for note in notes]


def _earlier_iqrs(attempts):
    """The earlier attempts' IQR as a share of their median: listed up to three,
    else their range and median."""
    shares = [a["iqr"] / a["median"] for a in attempts
              if a.get("median") and a.get("iqr") is not None]
    if len(shares) <= 3:
        return ", ".join(f"{v:.0%}" for v in shares)
    return (f"{min(shares):.0%} to {max(shares):.0%} (median "
            f"{statistics.median(shares):.0%})")


def _attempts_moved(attempts):
    """A note where the attempts' medians differ more than 2x: the case's time
    moved while it was timed, and the kept (last) attempt is one of them."""
    medians = [a["median"] for a in attempts if isinstance(a, dict) and a.get("median")]
    if len(medians) < 2 or max(medians) <= 2 * min(medians):
        return None
    return (f"its attempts' medians differ {max(medians) / min(medians):.3g}× "
            f"({', '.join(sig3(m) for m in medians)} s a call, the last kept): its time "
            "moved while it was timed")


def _per_step(row):
    step = row.get("seconds_per_step") if row else None
    return sig3(step * 1e6) if step else "—"


def _not_measured(data, rows):
    """The cases that ran no timing (skipped, failed, cut off), by name, with
    why; then the sizes asked for that the run's settings left out."""
    missing = unmeasured(data, rows)
    dropped = _left_out_lines(data)
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        return ["## Cases not measured", "",
                "This run did not record its cases' outcomes, so whether any planned case "
                "is missing above is not known.", "", *_missing_table(missing), *dropped]
    if not missing and not dropped:
        return []
    return ["## Cases not measured", "", *_missing_table(missing), *dropped]


def _missing_table(missing):
    if not missing:
        return []
    body = [[f"`{name}`", outcome, str(reason).replace("|", "\\|")]
            for name, outcome, reason in missing]
    return [f"{len(missing)} case(s) of this run have no timing above:", "",
            md_table(["case", "outcome", "reason"], body, text_columns=3), ""]


def _left_out_lines(data):
    """The sizes the settings left out (never cases, so in no list above), with why."""
    dropped = left_out(data)
    if not dropped:
        return []
    body = [[model, mode, fmt_n(n) if isinstance(n, int) else str(n),
             ", ".join(impls) or "—", reason.replace("|", "\\|")]
            for model, mode, n, impls, reason in dropped]
    return [f"{len(dropped)} size(s) asked for were left out by the run's settings and "
            "never run:", "",
            md_table(["model", "mode", "N", "implementations", "reason"], body,
                     text_columns=5), ""]


def _speedup_tables(modes, speedups, baselines):
    """Per mode: each nnbackend label's speedup over each baseline at each N."""
    if not speedups:
        return []
    out = ["## Speedups", "",
           "Speedup of X over Y = epoch time of Y / epoch time of X "
           f"(above 1: X is faster). {NOISY_MARK}: either timing is flagged noisy; "
           f"{UNKNOWN_MARK}: either has fewer than {MIN_SPREAD_ROUNDS} rounds, spread unknown.",
           ""]
    for mode in modes:
        sub = [s for s in speedups if s["mode"] == mode]
        if not sub:
            continue
        cols = [b for b in baselines if any(s["baseline"] == b for s in sub)]
        index = {(s["label"], s["n_samples"], s["baseline"]): s for s in sub}
        keys = sorted({(s["label"], s["n_samples"]) for s in sub},
                      key=lambda k: (label_key(k[0]), k[1]))

        def cell(key):
            s = index.get(key)
            if s is None:
                return "—"
            return fmt_speedup(s["speedup"]) + (f" {NOISY_MARK}" if s.get("noisy") else "") \
                + (f" {UNKNOWN_MARK}" if s.get("few_rounds") else "")

        body = [[lab, fmt_n(n)] + [cell((lab, n, b)) for b in cols] for lab, n in keys]
        header_cells = ["nnbackend", "N"] + [f"over {b}" for b in cols]
        out += [f"### {mode}", "", md_table(header_cells, body), ""]
    return out


def _scaling(labels, fits, exps, rng, numpy_linear):
    """The exponents, each with its sizes, fit and verdict; the NumPy linearity check."""
    lo, hi = rng
    out = ["## Scaling of the epoch cost with N", "",
           f"Least-squares slope of log(epoch time) against log(N) over the measured N in "
           f"{fmt_n(int(lo))}..{fmt_n(int(hi))} (all measured N where fewer than "
           f"{MIN_FIT_SIZES} lie there), with the fit's R². 1 means the epoch cost grows "
           f"linearly with N, below 1 that fixed per-step costs (such as GPU kernel "
           f"launches) still dominate. An exponent needs at least {MIN_FIT_SIZES} sizes; "
           "one that is negative, poorly fitted or fitted on noisy timings (or on timings "
           "of too few rounds for a spread) is not a finding, and its row says why.", ""]
    if fits:
        out += _exponent_table(fits, lo, hi)
    if numpy_linear:
        lo_ok, hi_ok = LINEAR_RANGE
        for mode in [m for m in numpy_linear]:
            slope = exps[(CPU_BASELINE, mode)]
            sentence = _linearity_sentence(mode, slope, numpy_linear[mode])
            if numpy_linear[mode]:
                out.append(f"- {sentence}")
            else:
                out.append(f"- **Warning:** {sentence} (expected {lo_ok}..{hi_ok}).")
        out.append("")
    elif CPU_BASELINE in labels:
        out += [f"- {CPU_BASELINE}: no exponent that is a finding, so whether its epoch cost "
                "grows linearly is not judged (its rows above say why).", ""]
    return out


def _exponent_table(fits, lo, hi):
    """One row per (label, mode): the N fitted, the exponent, R² and the verdict."""
    body = []
    for (lab, mode), fit in fits.items():
        sizes = fit["sizes"]
        span = f"{fmt_n(sizes[0])}..{fmt_n(sizes[-1])} ({len(sizes)})" if sizes else "—"
        if fit["slope"] is None:
            body.append([lab, mode, span, "—", "—", f"no exponent: {fit['reason']}"])
            continue
        verdict = "finding" if not fit["flags"] else \
            "**not a finding**: " + "; ".join(fit["flags"])
        if fit["outside_range"]:
            verdict += (f"; fitted on N outside {fmt_n(int(lo))}..{fmt_n(int(hi))}, where "
                        f"fewer than {MIN_FIT_SIZES} were measured (fixed per-epoch costs "
                        "weigh more at small N)")
        slope = f"{fit['slope']:.2f}" if not fit["flags"] else f"({fit['slope']:.2f})"
        body.append([lab, mode, span, slope, f"{fit['r2']:.3f}", verdict])
    head = ["label", "mode", "N fitted (sizes)", "exponent", "R²", "verdict"]
    return [md_table(head, body, text_columns=2, text_last=True), ""]


def _crossover_table(rows, crossovers):
    """Where each GPU label starts to beat the NumPy backend."""
    out = ["## GPU/CPU crossover", ""]
    if crossovers:
        out += [f"Smallest N at which the GPU epoch is faster than {CPU_BASELINE} "
                "(interpolated log-linearly between measured N).", ""]
        # A mixed result has no one crossover N: its text lists each crossing.
        body = [[c["mode"], c["label"],
                 fmt_n(c["n"]) if c["n"] and c["status"] == "crossover" else "—",
                 c["text"] + _noisy_crossover(c)] for c in crossovers]
        out += [md_table(["mode", "GPU label", "crossover N", "result"], body, text_columns=2,
                         text_last=True), ""]
    elif gpu_labels(rows):
        out += [f"No GPU label was measured at the same N as {CPU_BASELINE}.", ""]
    else:
        out += ["No GPU was measured.", ""]
    return out


def _plot_links(paths):
    """The plots, embedded (by file name: they sit beside report.md)."""
    out = ["## Plots", "",
           f"Error bars span each timing's Q1–Q3; a red ring marks a timing flagged noisy "
           f"(IQR above {NOISY_IQR:.0%} of the median, or neighbours that disagree).", ""]
    out.append(f"![Time per epoch]({os.path.basename(paths['epoch_time'])})")
    out.append("")
    out.append(f"![Speedup]({os.path.basename(paths['speedup'])})")
    if paths.get("time_to_target"):
        out += ["", f"![Time to target]({os.path.basename(paths['time_to_target'])})"]
    out.append("")
    return out


def _linearity_sentence(mode, slope, linear):
    if linear:
        return (f"{CPU_BASELINE}, {mode}: epoch cost grows linearly with N "
                f"(exponent {slope:.2f}).")
    how = "faster" if slope > 1 else "slower"
    return (f"{CPU_BASELINE}, {mode}: epoch cost does not grow linearly with N "
            f"(exponent {slope:.2f}, {how} than linear)")
