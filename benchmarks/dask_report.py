"""Tables from a ``benchmarks/test_dask.py`` run: epoch time against N, the
dask backend's overhead per epoch, and the out-of-core figures.

    NNBACKEND_BENCH_DASK=1 python -m pytest benchmarks/test_dask.py --benchmark-json=OUT/results.json
    python benchmarks/dask_report.py OUT/results.json     # writes OUT/report.md, OUT/summary.json

Overhead per epoch is reported two ways: the dask epoch's time minus the
numpy backend's at the same N (same run), and the intercept ``a`` of a
least-squares fit ``t = a + b*N`` over the measured N (the cost an epoch
pays whatever its size: graph building, scheduling, the compute round trip).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

LABELS = ("nnbackend-numpy", "nnbackend-dask-threads", "nnbackend-dask-localcluster-2w")


def summarize(results: dict) -> dict:
    epochs, fastest, ooc = {}, {}, None
    for bench in results["benchmarks"]:
        info = bench["extra_info"]
        if bench["group"] == "dask-batch-epoch":
            epochs.setdefault(info["label"], {})[info["n_samples"]] = bench["stats"]["median"]
            fastest.setdefault(info["label"], {})[info["n_samples"]] = bench["stats"]["min"]
        elif bench["group"] == "dask-out-of-core":
            ooc = {**info, "epoch_seconds": bench["stats"]["median"]}
    numpy_t = epochs.get("nnbackend-numpy", {})
    overhead = {}
    for label, times in epochs.items():
        ns = sorted(times)
        fit = None
        if len(ns) >= 2:
            b, a = np.polyfit(np.asarray(ns, float), np.asarray([times[n] for n in ns]), 1)
            fit = {"intercept_seconds": float(a), "seconds_per_row": float(b)}
        overhead[label] = {
            "minus_numpy_seconds": {n: times[n] - numpy_t[n] for n in ns if n in numpy_t},
            "fit": fit,
        }
    return {"epoch_seconds": epochs, "epoch_seconds_min": fastest, "overhead": overhead, "out_of_core": ooc,
            "machine": results.get("machine_info", {}).get("cpu", {}).get("brand_raw"),
            "datetime": results.get("datetime")}


def _ms(s):
    return f"{s * 1e3:.3g}" if abs(s) < 10 else f"{s * 1e3:.0f}"


def report(summary: dict) -> str:
    epochs = summary["epoch_seconds"]
    labels = [lab for lab in LABELS if lab in epochs]
    ns = sorted({n for times in epochs.values() for n in times})
    lines = ["# Dask backend: batch-mode epoch time", "",
             f"Machine: {summary['machine']}; run {summary['datetime']}.", "",
             "Median (then fastest) time per batch-mode epoch, ms (32 -> 64 sigmoid -> 1, float32, plain SGD):", "",
             "| N | " + " | ".join(labels) + " | " + " | ".join(f"min {lab}" for lab in labels)
             + " |", "|---:|" + "---:|" * (2 * len(labels))]
    for n in ns:
        cells = [_ms(epochs[lab][n]) if n in epochs[lab] else "-" for lab in labels]
        fast = summary.get("epoch_seconds_min", {})
        cells += [_ms(fast[lab][n]) if n in fast.get(lab, {}) else "-" for lab in labels]
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    lines += ["", "Overhead per epoch (dask minus numpy at the same N, ms; and the intercept "
              "of a fitted a + b*N):", "",
              "| backend | " + " | ".join(f"N={n:,}" for n in ns) + " | intercept a, ms | b, ns/row |",
              "|---|" + "---:|" * (len(ns) + 2)]
    for lab in labels:
        o = summary["overhead"][lab]
        cells = [_ms(o["minus_numpy_seconds"][n]) if n in o["minus_numpy_seconds"] else "-" for n in ns]
        fit = o["fit"]
        tail = ([_ms(fit["intercept_seconds"]), f"{fit['seconds_per_row'] * 1e9:.1f}"]
                if fit else ["-", "-"])
        lines.append(f"| {lab} | " + " | ".join(cells + tail) + " |")
    ooc = summary["out_of_core"]
    if ooc:
        mib = 2**20
        lines += ["", "## Out of core", "",
                  f"- dataset: {ooc['dataset_bytes'] / mib:,.0f} MiB on disk (`.npy`, X and y), "
                  f"{ooc['n_rows']:,} rows in chunks of {ooc['chunk_rows']:,} rows "
                  f"({ooc['chunk_bytes'] / mib:.0f} MiB)",
                  f"- LocalCluster: {ooc['workers']} worker processes, memory limit "
                  f"{ooc['memory_limit']} each ({ooc['memory_limit_bytes'] / mib:.0f} MiB); the "
                  f"dataset is {ooc['dataset_over_limit']:.1f}x one worker's limit",
                  "- peak resident memory per worker (VmHWM) during the epoch: "
                  + ", ".join(f"{p / mib:.0f} MiB" for p in ooc["worker_peak_rss_bytes"])
                  + "; from the worker's start through setup (one pass over the data): "
                  + ", ".join(f"{p / mib:.0f} MiB" for p in ooc["worker_peak_rss_through_setup_bytes"])
                  + ("" if ooc.get("peaks_reset_before_epoch") else
                     " (the peak could not be reset: the epoch figure includes setup)"),
                  f"- client process (pytest) peak RSS during the epoch: "
                  f"{ooc['client_epoch_peak_rss_bytes'] / mib:.0f} MiB (the client never holds "
                  "the data; this is the interpreter with numpy, dask, torch and jax loaded)",
                  f"- one batch epoch: {ooc['epoch_seconds']:.2f} s; setup (model, one "
                  f"finiteness pass over X and y): {ooc['setup_seconds']:.2f} s"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0])
    summary = summarize(json.loads(path.read_text()))
    (path.parent / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    text = report(summary)
    (path.parent / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
