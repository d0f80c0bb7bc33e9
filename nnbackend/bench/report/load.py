"""Reading the pytest-benchmark JSON: one normalised dict per benchmark, and the
interleaved ratio pairs."""

from __future__ import annotations

import json
import math
import os

__all__ = ["load_results", "rows_from_data", "ratio_rows", "positive"]


def _num(value):
    """A finite float, or None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def positive(value):
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


# Records made before labels named the device (issue 12) say only gpu true
# or false: the kind of GPU each library names its devices by.
_LEGACY_GPU_KIND = {"jax": "gpu"}
_LEGACY_KIND_PEERS = ("jax-scan-hand", "jax-jit-step")


def _kind(info):
    """The device kind a row ran on: recorded, or inferred for a pre-issue-12 record."""
    if info.get("device_kind"):
        return str(info["device_kind"])
    if not _bool(info.get("gpu")):
        return "cpu"
    return _LEGACY_GPU_KIND.get(str(info.get("backend")), "cuda")


def _derive_label(info, name):
    impl = info.get("implementation")
    backend = info.get("backend")
    if impl == "nnbackend" and backend:
        executor = info.get("executor")
        suffix = f"-{executor}" if executor and executor != "auto" else ""
        return f"nnbackend-{backend}-{_kind(info)}{suffix}"
    if impl and impl.startswith("numpy-seed"):  # numpy-seed, -bare, -record
        return impl
    if impl:
        return f"{impl}-{_kind(info)}"
    return str(name) if name else "unknown"


def _upgrade_label(row):
    """A pre-issue-12 label (``nnbackend-torch`` for torch on CUDA and on the CPU alike)
    with the device kind put in: ``nnbackend-torch-cuda``; others as they are."""
    label, impl, backend = row["label"], row.get("implementation"), row.get("backend")
    if row.get("device_kind"):
        return label
    if impl == "nnbackend" and backend and (label == f"nnbackend-{backend}"
                                            or label.startswith(f"nnbackend-{backend}-")):
        rest, kind = label[len(f"nnbackend-{backend}"):], _kind(row)
        if rest == f"-{kind}" or rest.startswith(f"-{kind}-"):
            return label  # already names it
        return f"nnbackend-{backend}-{kind}{rest}"
    if impl in _LEGACY_KIND_PEERS and label == impl:
        return f"{impl}-{_kind(row)}"
    return label


def load_results(json_path):
    """Flatten a pytest-benchmark JSON file into one dict per benchmark.

    Each row is the benchmark's ``extra_info`` plus ``name``, ``group`` and the
    timing statistics (``median``, ``min``, ``max``, ``mean``, ``stddev``,
    ``rounds``; None where the run recorded none). Rows are normalised so the
    rest of the report can rely on them:

    * ``kind`` is ``"epoch"`` or ``"time_to_target"`` (inferred when absent);
    * the spread: ``q1``, ``q3``, ``iqr`` (None in records without them),
      ``reruns`` and ``rerun_seconds`` (None before re-runs existed) and
      ``attempts`` (each attempt's spread; ``[]`` when not recorded);
    * time-to-target rows have ``budget_kind`` (``"seconds"``, ``"epochs"``
      or None) and ``budget``, and the spread of their epochs' times;
      ``reached`` follows ``final_loss <= target_loss`` where both were
      recorded (a record that says otherwise keeps its word in
      ``reached_recorded``);
    * ``case_failed``: ``"outcome: reason"`` where the run's ``cases`` say this
      record's case did not pass (it failed after its timing was taken), else None;
    * ``model`` is the benchmark model's name (``"small"`` for records made
      before there were several);
    * ``label`` is always a string naming the device kind (derived from
      ``implementation``, ``backend`` and ``device_kind`` when absent; a
      record made before labels named the device gets the kind put in, as
      ``nnbackend-torch`` -> ``nnbackend-torch-cuda``; suffixed
      ``-gpu``/``-cpu`` when one label was still measured on both kinds of
      device; the original kept in ``raw_label`` whenever it changed);
    * ``mode`` is a string or None, ``gpu`` a bool, ``n_samples`` an int or None;
    * for epoch rows the timing statistics are per epoch: a case timed in
      calls of several epochs (``epochs_per_call``, 1 where not recorded)
      has them divided by that count; ``seconds_per_epoch`` falls back to
      the stats median, and ``samples_per_s`` / ``seconds_per_step`` are
      filled in from it when absent; a time that is missing, zero or not
      finite is None.

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
    return rows_from_data(data)


def rows_from_data(data):
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benchmarks, list):
        return []
    rows = []
    # A case that failed after its timing was taken (in a re-run, say) keeps its record.
    cases = data.get("cases") if isinstance(data.get("cases"), list) else []
    failed = {c.get("name"): f"{c.get('outcome')}: {c.get('reason') or 'no reason recorded'}"
              for c in cases if isinstance(c, dict) and c.get("outcome") not in ("passed", None)}
    for bench in benchmarks:
        if not isinstance(bench, dict):
            continue
        info = bench.get("extra_info")
        row = dict(info) if isinstance(info, dict) else {}
        if row.get("kind") == "ratio":
            continue  # interleaved pairs: see ratio_rows
        stats = bench.get("stats") if isinstance(bench.get("stats"), dict) else {}
        row["name"] = bench.get("name")
        row["case_failed"] = failed.get(row["name"])
        row["group"] = bench.get("group")
        for key in ("median", "min", "max", "mean", "stddev", "q1", "q3", "iqr"):
            row[key] = _num(stats.get(key))
        row["rounds"] = _int(stats.get("rounds"))
        if row["iqr"] is None and row["q1"] is not None and row["q3"] is not None:
            row["iqr"] = row["q3"] - row["q1"]
        row["reruns"] = _int(row.get("reruns"))
        row["rerun_seconds"] = _num(row.get("rerun_seconds"))
        if not isinstance(row.get("attempts"), list):
            row["attempts"] = []

        kind = row.get("kind")
        if kind not in ("epoch", "time_to_target"):
            kind = "time_to_target" if "target_loss" in row or "reached" in row else "epoch"
        row["kind"] = kind
        row["model"] = str(row["model"]) if row.get("model") else "small"
        if row.get("label"):
            row["label"] = str(row["label"])
            upgraded = _upgrade_label(row)
            if upgraded != row["label"]:
                row["raw_label"], row["label"] = row["label"], upgraded
        else:
            row["label"] = _derive_label(row, row["name"])
        row["mode"] = str(row["mode"]) if row.get("mode") else None
        row["gpu"] = _bool(row.get("gpu", False))
        row["n_samples"] = _int(row.get("n_samples"))
        if row["n_samples"] is not None and row["n_samples"] <= 0:
            row["n_samples"] = None
        row["batch_size"] = _int(row.get("batch_size"))
        row["steps"] = _int(row.get("steps"))

        if kind == "epoch":
            per_call = _int(row.get("epochs_per_call"))
            row["epochs_per_call"] = per_call if per_call and per_call > 0 else 1
            if row["epochs_per_call"] > 1:
                for key in ("median", "min", "max", "mean", "stddev", "q1", "q3", "iqr"):
                    if row[key] is not None:
                        row[key] /= row["epochs_per_call"]
            spe = positive(row.get("seconds_per_epoch"))
            if spe is None:
                spe = positive(row["median"])
            row["seconds_per_epoch"] = spe
            sps = positive(row.get("samples_per_s"))
            if sps is None and spe is not None and row["n_samples"]:
                sps = row["n_samples"] / spe
            row["samples_per_s"] = sps
            step = positive(row.get("seconds_per_step"))
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
            if row["final_loss"] is not None and row["target_loss"] is not None:
                # Reached means a final loss at most the target: the losses decide.
                reached = row["final_loss"] <= row["target_loss"]
                if reached != row["reached"]:
                    row["reached_recorded"], row["reached"] = row["reached"], reached
            _target_budget(row)
        rows.append(row)

    # One label measured on both a GPU and a CPU would mix two curves: split it.
    flags = {}
    for row in rows:
        flags.setdefault(row["label"], set()).add(row["gpu"])
    for row in rows:
        if len(flags[row["label"]]) > 1:
            row.setdefault("raw_label", row["label"])
            row["label"] = f"{row['label']}-{'gpu' if row['gpu'] else 'cpu'}"
    return rows


def _target_budget(row):
    """``budget_kind`` (``"seconds"``, ``"epochs"`` or None when unknown) and
    ``budget`` of a time-to-target row; a record made before budgets were
    recorded gave up after ``max_seconds`` or 10,000 epochs, whichever came
    first (``legacy_budget`` True)."""
    kind, budget = row.get("budget_kind"), row.get("budget")
    if kind == "seconds" or kind == "epochs":
        row["budget"] = _num(budget)
        if kind == "epochs" and row["budget"] is not None:
            row["budget"] = int(row["budget"])
    elif kind is None and _num(row.get("max_seconds")) is not None:
        kind, row["budget"], row["legacy_budget"] = "seconds", _num(row["max_seconds"]), True
    else:
        kind, row["budget"] = None, None
    row["budget_kind"] = kind if row["budget"] is not None else None
    for key in ("first_epoch_seconds", "epoch_median", "epoch_q1", "epoch_q3"):
        row[key] = positive(row.get(key))


def ratio_rows(data):
    """The interleaved pairs of ``nnbackend/bench/cases/test_ratios.py``, as dicts.

    Each has ``label_a``, ``label_b``, ``model`` (``"small"`` when not
    recorded), ``mode``, ``n_samples``, ``median_a``,
    ``median_b`` (seconds per epoch), ``ratio`` (``median_a / median_b``),
    ``target``, ``sense`` (``"max"``: met when ratio <= target; ``"min"``:
    met when ratio >= target), ``met`` (None without a target), ``rounds``,
    each side's quartiles ``q1_a``, ``q3_a``, ``q1_b``, ``q3_b`` (None in
    records made before they were kept), ``reruns``, each side's
    ``device_a``, ``device_b`` (None where not recorded) and ``other_cards``:
    True where the sides ran on two different devices of one kind (two GPUs,
    or two CPUs), which no run of one process does; such a ratio compares
    the cards as much as the code, so it gets no verdict (``met`` None);
    ``threads_a``, ``threads_b``: the CPU threads each side ran with, where
    recorded (BLAS threads for NumPy, intra-op threads for torch);
    ``first_side_alternates``: each round's first side changed (A, B, B, A,
    ...), where False A ran first every round (records made before).
    """
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    rows = []
    for bench in benchmarks if isinstance(benchmarks, list) else []:
        info = bench.get("extra_info") if isinstance(bench, dict) else None
        if not isinstance(info, dict) or info.get("kind") != "ratio":
            continue
        ratio = recorded = positive(info.get("ratio"))
        if ratio is None:
            continue
        median_a, median_b = positive(info.get("median_a")), positive(info.get("median_b"))
        if median_a is not None and median_b is not None:
            ratio = median_a / median_b  # the ratio of the medians, as recorded beside it
        target = positive(info.get("target"))
        sense = info.get("sense") if info.get("sense") in ("max", "min") else None
        devices = [str(info[k]) if info.get(k) else None for k in ("device_a", "device_b")]
        other_cards = _other_devices(*devices)
        rows.append({
            "name": bench.get("name"),
            "label_a": str(info.get("label_a")), "label_b": str(info.get("label_b")),
            "model": str(info.get("model") or "small"), "mode": info.get("mode"),
            "n_samples": _int(info.get("n_samples")),
            "median_a": median_a, "median_b": median_b, "ratio": ratio,
            "recorded_ratio": recorded if not math.isclose(recorded, ratio, rel_tol=1e-6)
            else None,
            "target": target, "sense": sense,
            "device_a": devices[0], "device_b": devices[1], "other_cards": other_cards,
            "threads_a": _int(info.get("threads_a")), "threads_b": _int(info.get("threads_b")),
            "first_side_alternates": info.get("first_side") == "alternates",
            "met": None if target is None or sense is None or other_cards
            else (ratio <= target if sense == "max" else ratio >= target),
            "recorded_met": None if info.get("met") is None else _bool(info.get("met")),
            "rounds": _int(info.get("rounds")),
            "q1_a": positive(info.get("q1_a")), "q3_a": positive(info.get("q3_a")),
            "q1_b": positive(info.get("q1_b")), "q3_b": positive(info.get("q3_b")),
            "reruns": _int(info.get("reruns")), "stable": info.get("stable"),
        })
    return rows


def _other_devices(device_a, device_b):
    """True where two recorded devices are of one kind (both CPUs, or both not)
    but not the same: a ratio's sides that should have shared a card."""
    if device_a is None or device_b is None or device_a == device_b:
        return False
    return device_a.upper().startswith("CPU") == device_b.upper().startswith("CPU")
