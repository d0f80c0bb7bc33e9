#!/usr/bin/env python
"""``nnbackend train`` with its defaults against scikit-learn's MLP pipeline
with its defaults, on small noisy tabular data: which generalizes better?

For each dataset and each repeat ``r``, a stratified (classification) 30 %
test split with ``random_state=r`` is written as two CSV files (a
``target`` column), then:

- nnbackend: ``nnbackend train --data train.csv --target target --seed r
  --save model.npz --quiet`` (every other option at its default:
  standardized features, 64 relu units, mini-batch 32, SGD lr 0.1, 50
  epochs, no penalty) and ``nnbackend predict --model model.npz --data
  test.csv``, both through ``nnbackend.cli.main`` in this process;
- scikit-learn: ``make_pipeline(StandardScaler(), MLPClassifier(random_state=r))``
  (``MLPRegressor`` for regression), every hyperparameter at its default.

The score is test accuracy (classification) or R² (regression). The
target: nnbackend's mean score over the repeats is at least scikit-learn's
minus the standard error of the difference of the two (paired by split).
Run::

    python benchmarks/cli_defaults_vs_sklearn.py            # 5 repeats
    python benchmarks/cli_defaults_vs_sklearn.py --quick    # smoke test: 1 repeat, 2 datasets

It writes a JSON report (``--out``) with every score, and prints a table.
It is a report, not a gate: the exit status is 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn import datasets, neural_network
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import nnbackend
from nnbackend.cli import main as cli

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "cli_defaults_vs_sklearn.json"


def _noisy_classes():
    return datasets.make_classification(n_samples=400, n_features=20, n_informative=6,
                                        n_redundant=4, flip_y=0.15, class_sep=0.8,
                                        random_state=0)


def _noisy_moons():
    return datasets.make_moons(n_samples=300, noise=0.35, random_state=0)


def _noisy_regression():
    return datasets.make_friedman1(n_samples=300, n_features=10, noise=2.0, random_state=0)


# name: (loader, task)
DATASETS = {
    "breast_cancer": (lambda: datasets.load_breast_cancer(return_X_y=True), "classification"),
    "wine": (lambda: datasets.load_wine(return_X_y=True), "classification"),
    "noisy_classes": (_noisy_classes, "classification"),
    "noisy_moons": (_noisy_moons, "classification"),
    "diabetes": (lambda: datasets.load_diabetes(return_X_y=True), "regression"),
    "friedman1_noisy": (_noisy_regression, "regression"),
}
QUICK = ("wine", "diabetes")


def _write_csv(path, X, y):
    header = ",".join([f"x{j}" for j in range(X.shape[1])] + ["target"])
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header=header, comments="",
               fmt="%.17g")


def _read_predictions(text: str) -> np.ndarray:
    lines = [line for line in text.strip().splitlines() if line]
    # A header row, then one prediction per row (the first column).
    return np.array([float(line.split(",")[0]) for line in lines[1:]])


def nnbackend_score(task, split, seed, workdir) -> float:
    X_train, X_test, y_train, y_test = split
    train, test, model = (os.path.join(workdir, n) for n in ("train.csv", "test.csv", "m.npz"))
    _write_csv(train, X_train, y_train)
    _write_csv(test, X_test, y_test)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        status = cli(["train", "--backend", "numpy", "--data", train, "--target", "target",
                      "--seed", str(seed), "--save", model, "--quiet"])
    if status not in (0, None):
        raise RuntimeError(f"nnbackend train exited with {status}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = cli(["predict", "--backend", "numpy", "--model", model, "--data", test])
    if status not in (0, None):
        raise RuntimeError(f"nnbackend predict exited with {status}")
    pred = _read_predictions(out.getvalue())
    return float(accuracy_score(y_test, pred) if task == "classification"
                 else r2_score(y_test, pred))


def sklearn_score(task, split, seed) -> float:
    X_train, X_test, y_train, y_test = split
    mlp = (neural_network.MLPClassifier if task == "classification"
           else neural_network.MLPRegressor)(random_state=seed)
    est = make_pipeline(StandardScaler(), mlp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X_train, y_train)
    return float(est.score(X_test, y_test))


def bench(name: str, repeats: int) -> dict:
    loader, task = DATASETS[name]
    X, y = loader()
    scores = {"nnbackend": [], "sklearn": []}
    with tempfile.TemporaryDirectory() as workdir:
        for r in range(repeats):
            split = train_test_split(X, y, test_size=0.3, random_state=r,
                                     stratify=y if task == "classification" else None)
            scores["nnbackend"].append(nnbackend_score(task, split, r, workdir))
            scores["sklearn"].append(sklearn_score(task, split, r))
    diffs = [a - b for a, b in zip(scores["nnbackend"], scores["sklearn"])]
    mean = {impl: statistics.fmean(s) for impl, s in scores.items()}
    stderr = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    ok = mean["nnbackend"] >= mean["sklearn"] - (0.0 if math.isnan(stderr) else stderr)
    return {"task": task, "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]),
            "metric": "accuracy" if task == "classification" else "r2", "scores": scores,
            "mean": mean, "mean_difference": statistics.fmean(diffs),
            "difference_stderr": stderr, "at_least_as_good": bool(ok)}


def table(results: dict) -> str:
    rows = ["| dataset | n x d | metric | nnbackend CLI (mean) | scikit-learn (mean) "
            "| difference ± s.e. | at least as good |", "|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        se = res["difference_stderr"]
        rows.append(f"| {name} | {res['n_samples']} x {res['n_features']} | {res['metric']} "
                    f"| {res['mean']['nnbackend']:.4f} | {res['mean']['sklearn']:.4f} "
                    f"| {res['mean_difference']:+.4f} ± {se:.4f} "
                    f"| {'yes' if res['at_least_as_good'] else 'no'} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 repeat on two datasets")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    names = QUICK if args.quick else tuple(DATASETS)
    results = {name: bench(name, repeats) for name in names}
    report = {
        "versions": {"nnbackend": nnbackend.__version__, "sklearn": sklearn.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "settings": {"repeats": repeats, "test_size": 0.3, "quick": bool(args.quick),
                     "nnbackend": "nnbackend train defaults (--seed r, --backend numpy)",
                     "sklearn": "make_pipeline(StandardScaler(), MLP*(random_state=r))",
                     "target": "mean(nnbackend) >= mean(sklearn) - stderr(paired difference)"},
        "results": results,
        "all_at_least_as_good": all(r["at_least_as_good"] for r in results.values()),
    }
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
