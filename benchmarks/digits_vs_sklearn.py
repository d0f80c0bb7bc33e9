#!/usr/bin/env python
"""nnbackend against scikit-learn's MLPClassifier on the digits set, same split, same settings.

Both train a 64-64-10 ReLU network with a softmax / log-loss head by plain
mini-batch SGD (batch 32, constant rate, no momentum, no L2, reshuffled every
epoch, Glorot-uniform initial weights) for a fixed number of epochs on the
same 75 % of ``make_dataset('digits')`` (features scaled to [0, 1]), and are
scored on the same stratified 25 % held out by
``nnbackend.datasets.train_val_split(X, y, 0.25, seed=0)``: the split the
``nnbackend train --val-split 0.25 --seed 0`` command makes, whose
"validation" accuracy is therefore the test accuracy.

    python benchmarks/digits_vs_sklearn.py                 # E=50, lr=0.1, 3 repeats
    python benchmarks/digits_vs_sklearn.py --epochs 30 --lr 0.05 --repeats 5

Prints a Markdown table and the exact nnbackend command, and writes the same
to ``benchmarks/results/digits_vs_sklearn.json`` (``--out``). Exits 1 if
nnbackend's test accuracy is below 0.96 (2 if the command itself fails).

What the times cover. nnbackend: ``seconds_per_epoch`` of the command's JSON,
the wall time of ``model.fit`` over the epochs run (moving the data to the
backend once, the epochs' steps, and each epoch's validation pass over the
449 held-out rows), float32 by default. scikit-learn: wall time of
``MLPClassifier.fit`` (input checks included) divided by ``n_iter_``, float64
(the dtype of the data it is given). The median over the repeats is
reported; every repeat's figure is kept in the JSON. The two run in turn
within each repeat, so load that drifts on a shared machine hits both.

Load from other processes matters at these sizes (32-row batches, 64-wide
layers): on a 2-core machine shared with a busy neighbour, nnbackend's epochs
were seen to take 2-3x longer with OpenBLAS's default threads, and not with
one thread. ``--blas-threads 1`` pins both implementations to one thread
(threadpoolctl); the thread pools in use are recorded in the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import nnbackend
from nnbackend.cli import main as nnbackend_main
from nnbackend.datasets import make_dataset, train_val_split

THRESHOLD = 0.96
VAL_SPLIT = 0.25
SEED = 0
HIDDEN = 64
BATCH_SIZE = 32
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "digits_vs_sklearn.json"


def nnbackend_args(epochs: int, lr: float) -> list[str]:
    return [
        "train", "--dataset", "digits", "--val-split", str(VAL_SPLIT),
        "--hidden", str(HIDDEN), "--activation", "relu", "--mode", "minibatch",
        "--batch-size", str(BATCH_SIZE), "--optimizer", "sgd",
        "--epochs", str(epochs), "--lr", f"{lr:g}", "--seed", str(SEED), "--json", "--quiet",
        # As scikit-learn gets them: features in [0, 1], not standardized.
        "--no-standardize",
    ]


def run_nnbackend(epochs: int, lr: float) -> dict:
    """One in-process run of the CLI; its JSON summary."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            rc = nnbackend_main(nnbackend_args(epochs, lr))
    except SystemExit as exc:  # the CLI refuses with parser.exit(2, ...)
        rc = exc.code
    if rc != 0:
        raise RuntimeError(f"nnbackend train exited with status {rc}; stdout: {out.getvalue()!r}")
    return json.loads(out.getvalue().strip().splitlines()[-1])


def run_sklearn(epochs: int, lr: float, split) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X_train, y_train, X_test, y_test = split
    clf = MLPClassifier(
        hidden_layer_sizes=(HIDDEN,), activation="relu", solver="sgd", alpha=0.0,
        batch_size=BATCH_SIZE, learning_rate="constant", learning_rate_init=lr,
        momentum=0.0, nesterovs_momentum=False, max_iter=epochs, shuffle=True,
        random_state=SEED, tol=0.0, n_iter_no_change=epochs + 1, early_stopping=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        clf.fit(X_train, y_train)
        seconds = time.perf_counter() - start
    return {
        "epochs": int(clf.n_iter_),
        "seconds": seconds,
        "seconds_per_epoch": seconds / clf.n_iter_,
        "test_accuracy": float(clf.score(X_test, y_test)),
        "train_accuracy": float(clf.score(X_train, y_train)),
        "final_train_loss": float(clf.loss_),
        "dtype": str(clf.coefs_[0].dtype),
    }


def machine_info() -> dict:
    cpu = None
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in text.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.SubprocessError):
        pass
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    import sklearn

    blas = []
    try:
        from threadpoolctl import threadpool_info

        blas = [{k: d.get(k) for k in ("internal_api", "num_threads", "version")}
                for d in threadpool_info()]
    except Exception:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "nnbackend": nnbackend.__version__,
        "threadpools": blas,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit BLAS/OpenMP threads (threadpoolctl) for both; default: "
                             "the libraries' own choice")
    args = parser.parse_args(argv)
    bad_threads = args.blas_threads is not None and args.blas_threads < 1
    if args.epochs < 1 or args.repeats < 1 or not args.lr > 0 or bad_threads:
        parser.error("--epochs, --repeats and --blas-threads must be >= 1 and --lr > 0")

    try:
        import sklearn  # noqa: F401
    except ImportError:
        parser.error("scikit-learn is needed (pip install scikit-learn)")

    X, y = make_dataset("digits")
    split = train_val_split(X, y, VAL_SPLIT, seed=SEED)

    limit = contextlib.nullcontext()
    if args.blas_threads is not None:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(limits=args.blas_threads)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    began = time.perf_counter()
    nn_runs, sk_runs = [], []
    with limit:
        # Interleaved, so drifting load on a shared machine hits both alike.
        for _ in range(args.repeats):
            try:
                nn_runs.append(run_nnbackend(args.epochs, args.lr))
            except RuntimeError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            sk_runs.append(run_sklearn(args.epochs, args.lr, split))
        machine = machine_info()
    total = time.perf_counter() - began

    nn_last, sk_last = nn_runs[-1], sk_runs[-1]
    # The command's split must be the one given to scikit-learn.
    assert nn_last["n_train"] == split[0].shape[0] and nn_last["n_val"] == split[2].shape[0]
    nn_accs = sorted({r["val_accuracy"] for r in nn_runs})
    sk_accs = sorted({r["test_accuracy"] for r in sk_runs})
    machine["load_average_1_5_15min_before"] = load_before
    machine_line = (f"{machine['cpu']}, {machine['cores']} cores, {platform.system()} "
                    f"{platform.machine()}, Python {machine['python']}")
    command = "nnbackend " + " ".join(nnbackend_args(args.epochs, args.lr))

    rows = [
        {
            "implementation": f"nnbackend {machine['nnbackend']} ({nn_last['backend']}, "
                              f"{nn_last['dtype']})",
            "test_accuracy": nn_last["val_accuracy"],
            "ms_per_epoch": 1e3 * statistics.median(r["seconds_per_epoch"] for r in nn_runs),
            "epochs": nn_last["epochs"],
            "machine": machine_line,
            "ms_per_epoch_each": [1e3 * r["seconds_per_epoch"] for r in nn_runs],
            "test_accuracy_each": [r["val_accuracy"] for r in nn_runs],
            "train_accuracy": nn_last["train_accuracy"],
            "train_loss": nn_last["train_loss"],
            "test_loss": nn_last["val_loss"],
            "deterministic": len(nn_accs) == 1,
        },
        {
            "implementation": f"scikit-learn {machine['sklearn']} MLPClassifier ({sk_last['dtype']})",
            "test_accuracy": sk_last["test_accuracy"],
            "ms_per_epoch": 1e3 * statistics.median(r["seconds_per_epoch"] for r in sk_runs),
            "epochs": sk_last["epochs"],
            "machine": machine_line,
            "ms_per_epoch_each": [1e3 * r["seconds_per_epoch"] for r in sk_runs],
            "test_accuracy_each": [r["test_accuracy"] for r in sk_runs],
            "train_accuracy": sk_last["train_accuracy"],
            "train_loss": sk_last["final_train_loss"],
            "deterministic": len(sk_accs) == 1,
        },
    ]

    print("| implementation | test accuracy | ms per epoch | epochs | machine |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['implementation']} | {r['test_accuracy']:.4f} | {r['ms_per_epoch']:.2f} "
              f"| {r['epochs']} | {r['machine']} |")
    print()
    print(f"nnbackend command: {command}")
    print(f"split: {split[0].shape[0]} training / {split[2].shape[0]} test rows "
          f"(train_val_split(X, y, {VAL_SPLIT}, seed={SEED}), stratified); "
          f"median of {args.repeats} repeats; whole run {total:.1f} s")
    for r in rows:
        if not r["deterministic"]:
            print(f"note: {r['implementation']} gave different accuracies across repeats: "
                  f"{r['test_accuracy_each']}")

    result = {
        "benchmark": "digits_vs_sklearn",
        "settings": {"epochs": args.epochs, "lr": args.lr, "repeats": args.repeats,
                     "hidden": [HIDDEN], "activation": "relu", "batch_size": BATCH_SIZE,
                     "optimizer": "sgd (no momentum, no L2)", "val_split": VAL_SPLIT,
                     "seed": SEED, "blas_threads": args.blas_threads, "n_train": int(split[0].shape[0]),
                     "n_test": int(split[2].shape[0])},
        "nnbackend_command": command,
        "threshold": THRESHOLD,
        "passed": nn_last["val_accuracy"] >= THRESHOLD,
        "results": rows,
        "machine": machine,
        "machine_line": machine_line,
        "total_seconds": total,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")

    if nn_last["val_accuracy"] < THRESHOLD:
        print(f"FAIL: nnbackend test accuracy {nn_last['val_accuracy']:.4f} < {THRESHOLD}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
