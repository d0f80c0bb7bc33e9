"""``report.md``'s header: the machine, how busy it was and with how many
threads the libraries ran, the run's date, command and commit, and how many
timings are noisy and were re-run."""

from __future__ import annotations

import datetime as _dt
import os
import statistics

from ..caselog import left_out
from ..models import describe
from ..stability import NOISY_IQR
from .analysis import STEEPEST_EXPONENT, unmeasured
from .formatting import sig3

__all__ = ["header", "load_text", "precision_text", "threads_text"]


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


def header(data, json_path, rows, models, sections):
    """Machine, its load and threads, GPU, date, command, commit, model and the
    timings' noise, as a list of lines."""
    ours = data.get("nnbackend") if isinstance(data.get("nnbackend"), dict) else {}
    commit = data.get("commit_info") if isinstance(data.get("commit_info"), dict) else {}
    out = ["# nnbackend benchmark report", ""]
    if ours.get("failed"):
        out += [f"**Incomplete:** {ours['failed']}.", ""]
    missing = unmeasured(data, rows)
    if missing:
        out += [f"**Not measured:** {len(missing)} case(s), listed at the end "
                "(\"Cases not measured\").", ""]
    dropped = left_out(data)
    if dropped:  # asked for, but the settings (--sgd-max, --mnist-cpu-max) left them out
        out += [f"**Left out by the run's settings:** {len(dropped)} size(s), listed at the "
                "end (\"Cases not measured\").", ""]
    out.append(f"- **Machine:** {_machine_text(data)}")
    out += _load_lines(data, rows)
    gpus = sorted({str(r.get("device")) for r in rows if r.get("gpu") and r.get("device")})
    if not gpus and any(r.get("gpu") for r in rows):
        gpus = ["measured (device name not recorded)"]
    out.append(f"- **GPU:** {', '.join(gpus) if gpus else 'none measured'}")
    matmuls = precision_text(rows)
    if matmuls:
        out.append(f"- **Float32 matmuls:** {matmuls}")
    out.append(f"- **Date:** {_date_text(data, json_path)}")
    command = ours.get("command")
    out.append(f"- **Command:** `{command}`" if command else "- **Command:** not recorded")
    if commit.get("id"):
        dirty = " (uncommitted changes)" if commit.get("dirty") else ""
        branch = f" on {commit['branch']}" if commit.get("branch") else ""
        out.append(f"- **Commit:** `{str(commit['id'])[:12]}`{branch}{dirty}")
    per_timing = _per_timing_text(rows)
    if len(models) == 1:
        out.append(f"- **Model:** {models[0]}: {describe(models[0])}; {per_timing}")
    else:
        out.append("- **Models:** " + "; ".join(f"{m}: {describe(m)}" for m in models)
                   + f"; {per_timing}")
    out.append("- **Labels** name the implementation and the kind of device it ran on "
               "(`nnbackend-torch-cuda`, `torch-eager-cpu`, ...).")
    out += _noise_lines(data, sections)
    out.append("")
    return out


def _per_timing_text(rows):
    """How the epochs were timed: one a call, or several (a window) for short ones."""
    windows = [r.get("epochs_per_call") or 1 for r in rows if r.get("kind") == "epoch"]
    if max(windows, default=1) <= 1:
        return "one training epoch per timing (median over rounds)"
    return (f"times per epoch (median over rounds); short epochs timed in calls of up to "
            f"{max(windows)} epochs with their losses read once at the end, as a loop that "
            "reads the loss now and then runs them (nnbackend: at most its fit's window; "
            "the `epochs_per_call` of each case in results.json), longer epochs one a call")


def precision_text(rows):
    """What the cases' float32 matmuls ran at (``nnbackend bench --precision``,
    or each library as it was set), by label; None where no case recorded it
    (results made before the suite did)."""
    ran = {}
    for row in rows:
        if row.get("precision"):
            ran.setdefault(str(row["precision"]), set()).add(str(row.get("label")))
    if not ran:
        return None
    if set(ran) == {"highest"}:
        return "full float32 in every case"
    others = "; ".join(f"{name} in {', '.join(sorted(labels))}"
                       for name, labels in sorted(ran.items()) if name != "highest")
    return f"full float32, except {others}" if "highest" in ran else others


def _environment(data):
    env = data.get("bench_environment")
    return env if isinstance(env, dict) else None


def _load_triple(snapshot):
    load = snapshot.get("load_average") if isinstance(snapshot, dict) else None
    if isinstance(load, list) and len(load) == 3:
        return ", ".join(f"{v:.2f}" for v in load)
    return None


def load_text(data, rows):
    """The load-average line's text (without its bold label)."""
    env = _environment(data)
    if env is None:
        return "not recorded (results made before the suite recorded it)"
    start, end = env.get("start") or {}, env.get("end") or {}
    first, last = _load_triple(start), _load_triple(end)
    if first is None and last is None:
        return "unknown (os.getloadavg is not available on this system)"
    parts = [f"load average (1, 5, 15 min) {first or 'unknown'} at the start and "
             f"{last or 'unknown'} at the end"]
    cpus = end.get("cpu_count") or start.get("cpu_count")
    if cpus:
        parts[0] += f", on {cpus} logical CPU{'' if cpus == 1 else 's'}"
    at_cases = [r["load_average"][0] for r in rows
                if isinstance(r.get("load_average"), list) and r["load_average"]]
    if at_cases:
        parts.append(f"1-min load as the cases started: {min(at_cases):.2f} to "
                     f"{max(at_cases):.2f} (median {statistics.median(at_cases):.2f})")
    busiest = max(at_cases + [v for v in (_first(start), _first(end)) if v is not None],
                  default=None)
    if cpus and busiest is not None and busiest > cpus:
        parts.append(f"a load above {cpus} means more runnable work than CPUs: other work "
                     "competed with the timings (the run itself counts about 1)")
    return "; ".join(parts)


def _first(snapshot):
    load = snapshot.get("load_average") if isinstance(snapshot, dict) else None
    return load[0] if isinstance(load, list) and load else None


def threads_text(data):
    """The thread-pools line's text (without its bold label)."""
    env = _environment(data)
    if env is None:
        return "not recorded (results made before the suite recorded them)"
    end, start = env.get("end") or {}, env.get("start") or {}
    pools = end.get("thread_pools") if end.get("thread_pools") is not None \
        else start.get("thread_pools")
    if pools is None:
        return ("unknown: threadpoolctl was not installed where the suite ran "
                "(pip install threadpoolctl)")
    named = []
    for pool in pools:
        api = pool.get("api") or "?"
        what = " ".join(str(pool[k]) for k in ("library", "version") if pool.get(k))
        threads = pool.get("threads")
        count = f"{threads} thread{'' if threads == 1 else 's'}" if threads else "? threads"
        kind = {"blas": "BLAS", "openmp": "OpenMP"}.get(api, "")
        where = f" ({pool['file']})" if pool.get("file") else ""
        named.append(f"{kind + ' ' if kind else ''}{what or api}{where} with {count}")
    if not any(p.get("api") == "blas" for p in pools):
        named.insert(0, "BLAS: none loaded that threadpoolctl knows")
    return "; ".join(named)


def _load_lines(data, rows):
    return [f"- **Machine load:** {load_text(data, rows)}",
            f"- **Threads:** {threads_text(data)}"]


def _noise_lines(data, sections):
    """How many timings are noisy and what the re-runs did, over all models."""
    timed = sum(len(cell) for s in sections for cell in s["points"].values())
    if not timed:
        return []
    noisy = sum(len(s["noise"]) for s in sections)
    rows = [r for s in sections for cell in s["points"].values() for r in cell.values()]
    line = (f"- **Spread:** every timing is the median of its rounds, shown with its IQR, "
            f"min–max and rounds in the spread tables; {noisy} of {timed} flagged noisy (⚠): "
            f"IQR above {NOISY_IQR:.0%} of the median, or neighbouring N that disagree "
            f"beyond both spreads (faster at the larger N, or slower by more than "
            f"N^{STEEPEST_EXPONENT:g})")
    out = [line]
    rerun = [r for r in rows if r.get("reruns")]
    env = _environment(data) or {}
    budget = env.get("reruns") if isinstance(env.get("reruns"), dict) else None
    if rerun or budget:
        still = sum(1 for r in rerun if r.get("stable") is False)
        extra = sum(r.get("rerun_seconds") or 0.0 for r in rerun)
        text = (f"- **Re-runs:** {len(rerun)} case(s) re-timed because their spread was too "
                f"wide ({sum(r['reruns'] for r in rerun)} re-run(s), {sig3(extra)} s extra)")
        if rerun:
            text += f"; {still} still too wide when the budget ran out" if still else \
                "; all steady in the end"
        if budget:
            text += (f"; budget {budget.get('per_case', 0):g} s per case, "
                     f"{budget.get('total', 0):g} s for the run")
        out.append(text)
    elif any(r.get("rounds") is not None for r in rows):
        out.append("- **Re-runs:** not recorded (results made before the suite re-ran "
                   "noisy cases)")
    return out
