"""``report.md``: the header, the summary and one section of Markdown tables per concern."""

from __future__ import annotations

import datetime as _dt
import os

from .analysis import (CPU_BASELINE, LINEAR_RANGE, fit_sizes, gpu_labels, label_key, mode_key,
                       sorted_labels, sorted_modes)
from ..caselog import not_measured
from ..models import describe
from .formatting import fmt_n, fmt_rate, fmt_speedup, sig3

__all__ = ["report_markdown"]


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
        body.append([r["label_a"], r["label_b"], r["model"], r["mode"], fmt_n(r["n_samples"]),
                     sig3(r["median_a"]), sig3(r["median_b"]), f"{r['ratio']:.3g}", target,
                     met])
    header = ["A", "B", "model", "mode", "N", "A s/epoch", "B s/epoch", "A / B", "target", "met"]
    return [_md_table(header, body, text_columns=4), ""]


def report_markdown(data, json_path, rows, sections, ratios):
    """The text of ``report.md``: the header, then per model (``sections``, as
    :func:`.write._model_section` makes them) key findings first and one
    section per concern, then the interleaved ratios."""
    out = _header(data, json_path, rows, [s["model"] for s in sections])
    several = len(sections) > 1
    for s in sections:
        if several:
            out += [f"# Model {s['model']}: {describe(s['model'])}", ""]
        out += _model_markdown(s)
    out += ["## Ratios, measured interleaved", ""]
    out += _ratio_markdown(ratios)
    out += _not_measured(data)
    return "\n".join(out)


def _model_markdown(s):
    """One model's findings, tables and plots."""
    rows, points, labels, modes = s["rows"], s["points"], s["labels"], s["modes"]
    out = []
    if not points:
        out += ["No epoch timings were found in the results.", ""]
    out += _summary(modes, s["exps"], s["numpy_linear"], s["crossovers"])
    out += _epoch_tables(rows, points, labels, modes)
    out += _speedup_tables(modes, s["speedups"], s["baselines"])
    out += _scaling(points, labels, s["exps"], s["range"], s["numpy_linear"])
    out += _crossover_table(rows, s["crossovers"])
    out += _time_to_target_tables(rows, s["ttt_modes"])
    out += _plot_links(s["paths"])
    return out


def _header(data, json_path, rows, models):
    """Machine, GPU, date, command, commit and model, as a list."""
    ours = data.get("nnbackend") if isinstance(data.get("nnbackend"), dict) else {}
    commit = data.get("commit_info") if isinstance(data.get("commit_info"), dict) else {}
    out = ["# nnbackend benchmark report", ""]
    if ours.get("failed"):
        out += [f"**Incomplete:** {ours['failed']}.", ""]
    missing = not_measured(data)
    if missing:
        out += [f"**Not measured:** {len(missing)} case(s), listed at the end "
                "(\"Cases not measured\").", ""]
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
    if len(models) == 1:
        out.append(f"- **Model:** {models[0]}: {describe(models[0])}; one training epoch per "
                   "timing (median over rounds)")
    else:
        out.append("- **Models:** " + "; ".join(f"{m}: {describe(m)}" for m in models)
                   + "; one training epoch per timing (median over rounds)")
    out.append("- **Labels** name the implementation and the kind of device it ran on "
               "(`nnbackend-torch-cuda`, `torch-eager-cpu`, ...).")
    out.append("")
    return out


def _summary(modes, exps, numpy_linear, crossovers):
    """Key findings: whether the NumPy epoch cost is linear in N, and the crossovers."""
    findings = []
    for mode in modes:
        if mode in numpy_linear:
            slope = exps[(CPU_BASELINE, mode)]
            sentence = _linearity_sentence(mode, slope, numpy_linear[mode])
            findings.append(sentence if numpy_linear[mode] else f"**Warning:** {sentence}.")
    for c in crossovers:
        findings.append(f"{c['label']} vs {c['cpu_label']}, {c['mode']}: {c['text']}.")
    if findings:
        return ["## Summary", ""] + [f"- {f}" for f in findings] + [""]
    return []


def _epoch_tables(rows, points, labels, modes):
    """Per mode: time per epoch and throughput at each N."""
    out = []
    for mode in modes:
        mode_labels = [lab for lab in labels if (lab, mode) in points]
        ns = sorted({n for lab in mode_labels for n in points[(lab, mode)]})
        out += [f"## {_mode_heading(mode, rows)}", ""]
        out += ["Time per epoch (ms):", ""]
        body = [[fmt_n(n)] + [sig3(points[(lab, mode)][n]["seconds_per_epoch"] * 1e3)
                              if n in points[(lab, mode)] else "—" for lab in mode_labels]
                for n in ns]
        out += [_md_table(["N"] + mode_labels, body), ""]
        if any((points[(lab, mode)][n].get("steps") or 1) > 1
               for lab in mode_labels for n in points[(lab, mode)]):
            out += ["Time per step (µs):", ""]
            body = [[fmt_n(n)] + [_per_step(points[(lab, mode)].get(n)) for lab in mode_labels]
                    for n in ns]
            out += [_md_table(["N"] + mode_labels, body), ""]
        out += ["Throughput (samples/s):", ""]
        body = [[fmt_n(n)] + [fmt_rate(points[(lab, mode)][n]["samples_per_s"])
                              if n in points[(lab, mode)] else "—" for lab in mode_labels]
                for n in ns]
        out += [_md_table(["N"] + mode_labels, body), ""]
    return out


def _per_step(row):
    step = row.get("seconds_per_step") if row else None
    return sig3(step * 1e6) if step else "—"


def _not_measured(data):
    """The cases that ran no timing (skipped, failed, cut off), by name, with why."""
    missing = not_measured(data)
    if not missing:
        return []
    out = ["## Cases not measured", "",
           f"{len(missing)} case(s) of this run have no timing above:", ""]
    body = [[f"`{name}`", outcome, reason.replace("|", "\\|")]
            for name, outcome, reason in missing]
    return out + [_md_table(["case", "outcome", "reason"], body, text_columns=3), ""]


def _speedup_tables(modes, speedups, baselines):
    """Per mode: each nnbackend label's speedup over each baseline at each N."""
    if not speedups:
        return []
    out = ["## Speedups", "",
           "Speedup of X over Y = epoch time of Y / epoch time of X "
           "(above 1: X is faster).", ""]
    for mode in modes:
        sub = [s for s in speedups if s["mode"] == mode]
        if not sub:
            continue
        cols = [b for b in baselines if any(s["baseline"] == b for s in sub)]
        index = {(s["label"], s["n_samples"], s["baseline"]): s["speedup"] for s in sub}
        keys = sorted({(s["label"], s["n_samples"]) for s in sub},
                      key=lambda k: (label_key(k[0]), k[1]))
        body = [[lab, fmt_n(n)] + [fmt_speedup(index.get((lab, n, b))) for b in cols]
                for lab, n in keys]
        header = ["nnbackend", "N"] + [f"over {b}" for b in cols]
        out += [f"### {mode}", "", _md_table(header, body), ""]
    return out


def _scaling(points, labels, exps, rng, numpy_linear):
    """The scaling exponents, the modes fitted outside the range, and the NumPy linearity check."""
    lo, hi = rng
    out = ["## Scaling of the epoch cost with N", ""]
    out.append(f"Least-squares slope of log(epoch time) against log(N) for "
               f"{fmt_n(int(lo))} ≤ N ≤ {fmt_n(int(hi))}; 1 means the epoch cost grows "
               f"linearly with N, below 1 that fixed per-step costs (such as GPU kernel "
               f"launches) still dominate.")
    out.append("")
    if exps:
        out += _exponent_table(points, exps, lo, hi)
    else:
        out += [f"No label has two or more measured N in {fmt_n(int(lo))}..{fmt_n(int(hi))}, "
                "so no exponent was fitted.", ""]
    if numpy_linear:
        lo_ok, hi_ok = LINEAR_RANGE
        for mode in sorted_modes(numpy_linear):
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
    return out


def _exponent_table(points, exps, lo, hi):
    """The exponents by label and mode, and a note per mode fitted below ``lo``."""
    exp_labels = sorted_labels(lab for lab, _ in exps)
    exp_modes = sorted_modes(m for _, m in exps)
    body = [[lab] + [f"{exps[(lab, m)]:.2f}" if (lab, m) in exps else "—" for m in exp_modes]
            for lab in exp_labels]
    out = [_md_table(["label"] + exp_modes, body), ""]
    outside = sorted({(m, tuple(fit_sizes(points[(lab, m)], lo, hi))) for lab, m in exps
                      if fit_sizes(points[(lab, m)], lo, hi)[0] < lo},
                     key=lambda item: mode_key(item[0]))
    for mode, ns in outside:
        out += [f"- {mode} was measured only up to N = {fmt_n(int(ns[-1]))} (one Python "
                f"step per row), so its exponent is fitted over N = "
                f"{fmt_n(int(ns[0]))}..{fmt_n(int(ns[-1]))}, where fixed costs weigh more."]
    if outside:
        out.append("")
    return out


def _crossover_table(rows, crossovers):
    """Where each GPU label starts to beat the NumPy backend."""
    out = ["## GPU/CPU crossover", ""]
    if crossovers:
        out += [f"Smallest N at which the GPU epoch is faster than {CPU_BASELINE} "
                "(interpolated log-linearly between measured N).", ""]
        body = [[c["mode"], c["label"], fmt_n(c["n"]) if c["n"] else "—", c["text"]]
                for c in crossovers]
        out += [_md_table(["mode", "GPU label", "crossover N", "result"], body, text_columns=2), ""]
    elif gpu_labels(rows):
        out += [f"No GPU label was measured at the same N as {CPU_BASELINE}.", ""]
    else:
        out += ["No GPU was measured.", ""]
    return out


def _time_to_target_tables(rows, ttt_modes):
    """Per mode: every time-to-target run (all N, unlike the plot)."""
    ttt_rows = [r for r in rows if r.get("kind") == "time_to_target" and r.get("mode")]
    out = ["## Time to target loss", ""]
    if not ttt_rows:
        return out + ["No time-to-target runs in the results.", ""]
    for mode in ttt_modes:
        sub = sorted((r for r in ttt_rows if r["mode"] == mode),
                     key=lambda r: (r.get("n_samples") or 0, label_key(r["label"])))
        body = [[r["label"], fmt_n(r["n_samples"]),
                 sig3(r["target_loss"]) if r["target_loss"] is not None else "—",
                 "yes" if r["reached"] else "**no**",
                 r["epochs"] if r["epochs"] is not None else "—",
                 sig3(r["seconds"]) if r["seconds"] is not None else "—",
                 sig3(r["final_loss"]) if r["final_loss"] is not None else "—"]
                for r in sub]
        header = ["label", "N", "target", "reached", "epochs", "seconds", "final loss"]
        out += [f"### {mode}", "", _md_table(header, body), ""]
    return out


def _plot_links(paths):
    """The plots, embedded (by file name: they sit beside report.md)."""
    out = ["## Plots", ""]
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
