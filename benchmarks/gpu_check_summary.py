"""The summary lines of ``benchmarks/gpu_check.sh``, one subcommand per part.

    python benchmarks/gpu_check_summary.py machine BACKENDS_FILE  # the GPU backends usable
    python benchmarks/gpu_check_summary.py tests JUNIT_XML        # skips, failures by name
    python benchmarks/gpu_check_summary.py rebuild CASE_LOG DIR   # a cut-off run's results
    python benchmarks/gpu_check_summary.py bench DIR              # ratios, per step, not run

Each prints what goes into ``summary.txt``; none fails the check (exit 0)
unless its arguments are wrong.
"""

from __future__ import annotations

import ast
import collections
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET

# What the GPU benchmark is run on, in this order, where usable.
GPU_BACKENDS = ("cupy", "torch:cuda", "jax:gpu")
# The per-step and per-epoch figures issue 25 and 26 set targets for, as
# (model, mode, N or None for the largest measured, seconds per step).
TARGETS = [("small", "sgd", None, 2e-6), ("small", "minibatch", None, 10e-6),
           ("mid", "sgd", None, 30e-6),
           ("small", "batch", 1_000, 15e-6), ("small", "batch", 10_000, 15e-6),
           ("small", "batch", 100_000, 40e-6)]
TARGET_LABELS = ("nnbackend-cupy-cuda", "nnbackend-torch-cuda", "nnbackend-jax-gpu")
# Issue 26's crossover: each GPU backend's batch epoch faster than NumPy's from
# "a few hundred rows" at most, as (model, mode, largest N).
CROSSOVER_TARGET = ("small", "batch", 500)
# Columns of the per-step table, when measured.
STEP_LABELS = ("nnbackend-cupy-cuda", "nnbackend-torch-cuda", "nnbackend-jax-gpu",
               "nnbackend-numpy-cpu", "nnbackend-cupy-cuda-reference", "torch-eager-cuda",
               "cupy-eager-cuda", "jax-scan-hand-gpu")
SHORT = {"nnbackend-cupy-cuda": "cupy", "nnbackend-torch-cuda": "torch:cuda",
         "nnbackend-jax-gpu": "jax:gpu", "nnbackend-numpy-cpu": "numpy",
         "nnbackend-cupy-cuda-reference": "cupy eager", "torch-eager-cuda": "torch eager",
         "cupy-eager-cuda": "plain cupy", "jax-scan-hand-gpu": "jax hand"}


def machine(backends_file):
    """The machine's lines; the usable GPU backends (``numpy,cupy,...``) into ``backends_file``."""
    import nnbackend as nb

    print("date:", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    print("commit:", _run(["git", "rev-parse", "--short", "HEAD"]) or "unknown")
    gpu = _run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                "--format=csv,noheader"])
    print("gpu:", gpu or "nvidia-smi found no GPU")
    print("python:", platform.python_version(), "on", os.cpu_count(), "CPU cores")
    # (sklearn and dask: without them tests/test_estimators_devices.py and
    # tests/test_dask_cupy.py skip; the GPU machine has neither of its own.)
    for name in ("numpy", "cupy", "torch", "jax", "sklearn", "dask"):
        try:
            print(f"{name}: {__import__(name).__version__}")
        except Exception as exc:
            print(f"{name}: missing ({type(exc).__name__})")
    print("backends:", ", ".join(nb.available_backends()))
    usable = ["numpy"]
    for where in GPU_BACKENDS:
        name, _, device = where.partition(":")
        try:
            if nb.get_backend(name, device or None).is_gpu():
                usable.append(where)
        except Exception as exc:
            print(f"  {where}: not usable ({type(exc).__name__}: {str(exc)[:160]})")
    print("benchmark backends:", ",".join(usable))
    with open(backends_file, "w") as fh:
        fh.write(",".join(usable))


def _run(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def tests(junit):
    """Test counts by backend, then every skipped and failed test by name with its reason."""
    try:
        cases = list(ET.parse(junit).iter("testcase"))
    except (ET.ParseError, OSError):
        print("tests: no test report (the test run was cut off or never ran: see tests.log)")
        return
    counts = collections.defaultdict(collections.Counter)
    not_passed = []
    for case in cases:
        name = case.get("name", "")
        group = "other"
        for key in ("cupy", "torch-cuda", "jax-gpu", "numpy", "strict"):
            if f"[{key}" in name or f"-{key}" in name:
                group = key
                break
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = "failed" if tag in ("failure", "error") else "skipped"
                where = f"{case.get('classname', '')}::{name}".lstrip(":")
                reason = _reason(found).strip().splitlines()
                not_passed.append((outcome, where, reason[0][:200] if reason else ""))
                break
        counts[group][outcome] += 1
    print("tests by backend:")
    for group in sorted(counts):
        c = counts[group]
        print(f"  {group:11s} {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped")
    total = sum(counts.values(), collections.Counter())
    print(f"tests: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    for outcome in ("failed", "skipped"):
        mine = [(w, r) for o, w, r in not_passed if o == outcome]
        if mine:
            print(f"tests {outcome} ({len(mine)}):")
            for where, reason in mine:
                print(f"  {where}: {reason}")


def _reason(found):
    """Why a test did not pass. A file skipped whole at collection (its
    importorskip: scikit-learn or dask missing) says only "collection
    skipped"; the reason is in the element's text, ``(path, line, reason)``."""
    message = found.get("message") or ""
    if message == "collection skipped" and found.text:
        try:
            where = ast.literal_eval(found.text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            where = None
        if isinstance(where, tuple) and where:
            return f"{message}: {where[-1]}"
        return f"{message}: {found.text.strip()}"
    return message or found.text or ""


def rebuild(case_log, out_dir):
    """``results.json`` and the report from a case log, for a run cut off before its JSON."""
    from nnbackend.bench.caselog import results_from_log
    from nnbackend.bench.report import write_report

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "results.json")
    try:  # pytest-benchmark opens (empties) it at the start and writes it at the end
        with open(path) as fh:
            json.load(fh)
        written = True
    except (OSError, ValueError):
        written = False
    if not written:
        if not os.path.exists(case_log):
            print("benchmark: no results and no case log (it never started: see bench.log)")
            return
        with open(path, "w") as fh:
            json.dump(results_from_log(case_log, "the run was cut off (gpu_check.sh's time "
                                                 "limit) before it wrote its results"), fh)
        print("benchmark: cut off before it wrote its results; rebuilt from its case log")
    if not os.path.exists(os.path.join(out_dir, "report.md")) or \
            not os.path.exists(os.path.join(out_dir, "summary.json")):
        write_report(path, out_dir)


def bench(out_dir):
    """The benchmark's lines: crossovers, ratios, per-step tables, targets, cases not measured."""
    path = os.path.join(out_dir, "results.json")
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        print("benchmark: no results written (see bench.log)")
        return
    failed = (data.get("nnbackend") or {}).get("failed")
    if failed:
        print(f"benchmark INCOMPLETE: {failed}")
    try:
        with open(os.path.join(out_dir, "summary.json")) as fh:
            summary = json.load(fh)
    except (OSError, ValueError):
        summary = {}
    print("GPU/CPU crossovers (against nnbackend-numpy-cpu):")
    for c in summary.get("crossovers", []):
        print(f"  {c.get('model', 'small'):5s} {c['mode']:9s} {c['label']:28s} {c.get('text', '')}")
    if not summary.get("crossovers"):
        print("  none: no GPU result in the benchmark")
    _crossover_targets(summary.get("crossovers", []))
    _ratios(summary.get("ratios", []))
    points = _points(data)
    _step_tables(points)
    _targets(points, _flags(summary))
    _cases(data)


def _flags(summary):
    """``{(model, mode, N, label): reasons}`` of the timings the report flags noisy
    (a wide spread, neighbours that disagree, duplicates that disagree, a case
    that failed after its timing): a target read from one is not a finding."""
    return {(x.get("model", "small"), x.get("mode"), x.get("n_samples"), x.get("label")):
            x.get("reasons") or ["flagged noisy"] for x in summary.get("noisy", [])
            if isinstance(x, dict)}


def crossover_met(c, largest):
    """Whether crossover ``c`` (the report's, from summary.json) puts the GPU ahead from
    ``largest`` rows or fewer: one crossover, at most there, or the GPU faster at every
    N measured, the smallest at most there. None where the run cannot tell (the GPU
    faster at every N, all above ``largest``); a mixed result is not met."""
    if c.get("status") == "crossover":
        return c["n"] <= largest
    if c.get("status") == "gpu_faster_everywhere":
        measured = c.get("n_measured") or []
        return True if measured and min(measured) <= largest else None
    return False if c.get("status") in ("cpu_faster_everywhere", "mixed") else None


def _crossover_targets(crossovers):
    model, mode, largest = CROSSOVER_TARGET
    lines = []
    for c in crossovers:
        if (c.get("model", "small"), c["mode"]) != (model, mode) or \
                c["label"] not in TARGET_LABELS:
            continue
        met = crossover_met(c, largest)
        smallest = min(c.get("n_measured") or [0])
        verdict = {True: "met", False: "NOT met"}.get(
            met, f"not measured (smallest N {smallest}: GPU faster there)")
        lines.append(f"  {model:5s} {mode:9s} {SHORT[c['label']]:10s} {c.get('text', '')} "
                     f"(target: GPU faster from N <= {largest}): {verdict}")
    if lines:
        print("issue 26 crossover target (against nnbackend-numpy-cpu):")
        print("\n".join(lines))


def _ratios(ratios):
    print("interleaved ratios (A / B, medians of alternating epochs):")
    for r in ratios:
        verdict = {True: "met", False: "NOT met"}.get(
            r.get("met"), "no verdict (the sides ran on different devices)"
            if r.get("other_cards") else "no verdict")
        target = "" if r.get("target") is None else \
            f"  target {'<=' if r['sense'] == 'max' else '>='} {r['target']:g}: {verdict}"
        print(f"  {r['model']:5s} {r['mode']:9s} N={r['n_samples']:<9d} {r['label_a']} / "
              f"{r['label_b']} = {r['ratio']:.3g}{target}")
    if not ratios:
        print("  none measured")


def _points(data):
    """``{(model, mode, N): {label: (seconds per step, seconds per epoch, epochs a timed
    call, the executor that ran or None)}}`` of the epoch cases; of a timing
    recorded twice, the fastest, as the report shows it (and flags it where the
    two disagree)."""
    points = collections.defaultdict(dict)
    for b in data.get("benchmarks", []):
        e = b.get("extra_info", {})
        if e.get("kind") != "epoch" or not e.get("seconds_per_epoch"):
            continue
        key = (e.get("model", "small"), e.get("mode"), e.get("n_samples"))
        kept = points[key].get(e.get("label"))
        if kept is None or e["seconds_per_epoch"] < kept[1]:
            points[key][e.get("label")] = (e.get("seconds_per_step"), e["seconds_per_epoch"],
                                           e.get("epochs_per_call") or 1, e.get("executor_ran"))
    return points


def _step_tables(points):
    models = sorted({m for m, _, _ in points}, key=lambda m: ("small", "mid", "mnist").index(m)
                    if m in ("small", "mid", "mnist") else 9)
    for model in models:
        keys = sorted(k for k in points if k[0] == model)
        labels = [lab for lab in STEP_LABELS if any(lab in points[k] for k in keys)]
        if not labels:
            continue
        print(f"{model}: per step (batch: per epoch), µs")
        print("  " + f"{'mode':9s} {'N':>8s}" + "".join(f"{SHORT[lab]:>12s}" for lab in labels))
        for key in keys:
            cells = []
            for lab in labels:
                step, epoch, _, _ = points[key].get(lab, (None, None, None, None))
                value = epoch if key[1] == "batch" else step
                cells.append(f"{value * 1e6:12.2f}" if value else f"{'—':>12s}")
            print(f"  {key[1]:9s} {key[2]:8d}" + "".join(cells))


def _targets(points, flags=None):
    """Each issue 25/26 target against this run's median: met or not, and where the
    report flags the timing (``flags``, :func:`_flags`), unsure: not a finding."""
    flags = flags or {}
    lines = []
    for model, mode, n, limit in TARGETS:
        ns = sorted(k[2] for k in points if k[:2] == (model, mode))
        if not ns:
            continue
        n = ns[-1] if n is None else n
        for lab in TARGET_LABELS:
            got = points.get((model, mode, n), {}).get(lab)
            if got is None:
                continue
            value = got[1] if mode == "batch" else got[0]
            unit = "per epoch" if mode == "batch" else "per step"
            timed = ("" if got[2] == 1 else f", {got[2]} epochs a timed call") + (
                f", {got[3]}" if got[3] else "")
            verdict = "met" if value <= limit else "NOT met"
            why = flags.get((model, mode, n, lab))
            if why:
                verdict = f"unsure, {verdict} by its median but flagged: {'; '.join(why)}"
            lines.append(f"  {model:5s} {mode:9s} N={n:<7d} {SHORT[lab]:10s} "
                         f"{value * 1e6:9.2f} µs {unit} (target {limit * 1e6:g}{timed}): "
                         + verdict)
    if lines:
        print("issue 25/26 targets, from this run's medians:")
        print("\n".join(lines))


def _cases(data):
    cases = [c for c in data.get("cases", []) if isinstance(c, dict)]
    if not cases:
        print("benchmark cases: not recorded")
        return
    missing = [c for c in cases if c.get("outcome") != "passed"]
    seconds = [c["seconds"] for c in cases if isinstance(c.get("seconds"), (int, float))]
    print(f"benchmark cases: {len(cases)}, {len(cases) - len(missing)} measured, "
          f"{sum(seconds):.0f} s in all; slowest: " + ", ".join(
              f"{c['name']} {c['seconds']:.1f} s" for c in sorted(
                  (c for c in cases if isinstance(c.get("seconds"), (int, float))),
                  key=lambda c: -c["seconds"])[:5]))
    if missing:
        print(f"benchmark cases NOT measured ({len(missing)}):")
        for c in missing:
            print(f"  {c.get('name')}: {c.get('outcome')}: {c.get('reason') or ''}")
    else:
        print("benchmark cases not measured: none")
    from nnbackend.bench.caselog import left_out

    # Sizes the settings left out never became cases: named here, as report.md names them.
    dropped = left_out(data)
    if dropped:
        print(f"sizes left out by the run's settings ({len(dropped)}), never run:")
        for model, mode, n, impls, reason in dropped:
            size = f"{n:,}" if isinstance(n, int) else n
            print(f"  {model} {mode} N = {size} ({', '.join(impls) or '—'}): {reason}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    commands = {"machine": (machine, 1), "tests": (tests, 1), "rebuild": (rebuild, 2),
                "bench": (bench, 1)}
    if not argv or argv[0] not in commands or len(argv) - 1 != commands[argv[0]][1]:
        sys.exit(__doc__)
    commands[argv[0]][0](*argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
