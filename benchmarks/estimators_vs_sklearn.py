#!/usr/bin/env python
"""nnbackend's scikit-learn estimators against scikit-learn's own MLPs, same data, same settings.

``nnbackend.MLPClassifier`` / ``nnbackend.MLPRegressor`` (NumPy backend, their
default float32, ``mode='minibatch'``) and ``sklearn.neural_network``'s
``MLPClassifier`` / ``MLPRegressor`` (float64, the dtype of the scaled data)
are fitted with the same hyperparameters: scikit-learn's defaults (adam,
lr 1e-3, ``batch_size='auto'`` = 200, ``alpha=1e-4``) except
``hidden_layer_sizes=(64,)`` and ``max_iter``:

- digits (``load_digits``), classification: stratified 25 % test split
  (``random_state=0``), ``StandardScaler`` fitted on the train split in a
  ``Pipeline``, ``max_iter=50``; the score is test accuracy.
- diabetes (``load_diabetes``), regression: 25 % test split
  (``random_state=0``), ``StandardScaler`` on X in a ``Pipeline``, the target
  standardized by a ``TransformedTargetRegressor``, ``max_iter=200``; the
  score is test R² (on the original target scale).

Run::

    python benchmarks/estimators_vs_sklearn.py               # 3 repeats
    python benchmarks/estimators_vs_sklearn.py --repeats 5 --out /tmp/x.json
    python benchmarks/estimators_vs_sklearn.py --quick       # smoke test: 1 repeat, 5 epochs

The figures. Repeat ``r`` fits each implementation once with
``random_state=r`` (weights and shuffling), so the spread of the scores over
the repeats shows what "within noise" is. ``s/epoch`` is the wall time
(``time.perf_counter``) of the whole pipeline's ``fit`` (the scalers' fits
are negligible) divided by the MLP's ``n_iter_``; the table gives the median
over the repeats, and ``ratio`` is nnbackend's median over scikit-learn's
(below 1: nnbackend is faster). Each implementation is warmed up by a
1-epoch fit first, and the order of the two alternates from one repeat to
the next, so that drifting load on a shared machine hits both alike.

The JSON (``--out``) holds the versions, the machine, the settings, every
raw figure, and whether the targets hold: nnbackend's median score >=
scikit-learn's median minus the spread (max - min) of scikit-learn's scores,
and the time ratio <= 0.5. It is a report, not a gate: the exit status is 0.
Both run until ``max_iter`` here (``tol`` does not stop them this early
unless the loss stalls), and the ``ConvergenceWarning`` this raises is silenced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn import neural_network
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import nnbackend

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "estimators_vs_sklearn.json"
HIDDEN = (64,)
# name: (loader, task, stratified split, max_iter)
DATASETS = {"digits": (load_digits, "classification", True, 50),
            "diabetes": (load_diabetes, "regression", False, 200)}
IMPLS = ("nnbackend", "sklearn")
SCORE_SLACK = "spread"  # nnbackend's median >= sklearn's median - (max - min) of sklearn's
TIME_RATIO_TARGET = 0.5


def make_estimator(impl: str, task: str, max_iter: int, seed: int):
    """The pipeline for one fit; the MLP is the last step (of ``regressor`` for regression)."""
    params = dict(hidden_layer_sizes=HIDDEN, max_iter=max_iter, random_state=seed)
    if impl == "nnbackend":
        # The backend named, so that $NNBACKEND_BACKEND cannot change what is measured.
        params.update(backend="numpy", dtype="float32", mode="minibatch")
        module = nnbackend
    else:
        module = neural_network
    if task == "classification":
        return Pipeline([("scale", StandardScaler()), ("mlp", module.MLPClassifier(**params))])
    mlp = Pipeline([("scale", StandardScaler()), ("mlp", module.MLPRegressor(**params))])
    return TransformedTargetRegressor(regressor=mlp, transformer=StandardScaler())


def fitted_mlp(estimator):
    return (estimator.regressor_ if hasattr(estimator, "regressor_") else estimator)[-1]


def fit_once(impl, task, max_iter, seed, data) -> dict:
    X_train, X_test, y_train, y_test = data
    est = make_estimator(impl, task, max_iter, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(X_train, y_train)
        seconds = time.perf_counter() - start
    n_iter = int(fitted_mlp(est).n_iter_)
    # score(): accuracy for the classifier, R² for the regressor.
    return {"seed": seed, "score": float(est.score(X_test, y_test)), "fit_seconds": seconds,
            "n_iter": n_iter, "seconds_per_epoch": seconds / n_iter}


def load(name: str):
    loader, task, stratified, _ = DATASETS[name]
    X, y = loader(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0,
                            stratify=y if stratified else None)


def summarize(runs: list[dict]) -> dict:
    scores = [r["score"] for r in runs]
    return {"score_median": statistics.median(scores), "score_min": min(scores),
            "score_max": max(scores),
            "seconds_per_epoch_median": statistics.median(r["seconds_per_epoch"] for r in runs)}


def bench(name: str, repeats: int, max_iter: int) -> dict:
    task = DATASETS[name][1]
    data = load(name)
    for impl in IMPLS:  # warm-up: imports, first allocations, caches
        fit_once(impl, task, 1, 0, data)
    runs = {impl: [] for impl in IMPLS}
    for r in range(repeats):
        for impl in (IMPLS if r % 2 == 0 else IMPLS[::-1]):
            runs[impl].append(fit_once(impl, task, max_iter, r, data))
    summary = {impl: summarize(runs[impl]) for impl in IMPLS}
    nb, sk = summary["nnbackend"], summary["sklearn"]
    ratio = nb["seconds_per_epoch_median"] / sk["seconds_per_epoch_median"]
    floor = sk["score_median"] - (sk["score_max"] - sk["score_min"])
    return {"task": task, "max_iter": max_iter, "n_train": len(data[0]), "n_test": len(data[1]),
            "n_features": data[0].shape[1], "runs": runs, "summary": summary,
            "time_ratio": ratio,
            "targets": {"score_floor": floor, "score_ok": nb["score_median"] >= floor,
                        "time_ratio_max": TIME_RATIO_TARGET,
                        "time_ok": ratio <= TIME_RATIO_TARGET}}


def table(results: dict) -> str:
    lines = ["| dataset | score | impl | score median [min, max] | s/epoch (median) | ratio |",
             "|---|---|---|---|---|---|"]
    for name, res in results.items():
        metric = "accuracy" if res["task"] == "classification" else "R²"
        for impl in IMPLS:
            s = res["summary"][impl]
            ratio = f"{res['time_ratio']:.2f}" if impl == "nnbackend" else ""
            lines.append(f"| {name} | {metric} | {impl} | {s['score_median']:.4f} "
                         f"[{s['score_min']:.4f}, {s['score_max']:.4f}] | "
                         f"{s['seconds_per_epoch_median'] * 1e3:.2f} ms | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3,
                        help="fits per implementation and dataset, random_state 0..R-1")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 repeat (overrides --repeats), max_iter=5")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    if repeats < 1:
        parser.error("--repeats must be >= 1")
    results = {name: bench(name, repeats, 5 if args.quick else spec[3])
               for name, spec in DATASETS.items()}
    report = {
        "versions": {"nnbackend": nnbackend.__version__, "sklearn": sklearn.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "machine": {"processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "system": platform.system(),
                    "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "settings": {"repeats": repeats, "quick": args.quick, "hidden_layer_sizes": list(HIDDEN),
                     "test_size": 0.25, "split_random_state": 0,
                     "other_hyperparameters": "scikit-learn's defaults",
                     "nnbackend": {"backend": "numpy", "dtype": "float32", "mode": "minibatch"},
                     "sklearn_dtype": "float64", "score_target": SCORE_SLACK,
                     "time_ratio_target": TIME_RATIO_TARGET},
        "results": results,
        "targets_hold": all(r["targets"]["score_ok"] and r["targets"]["time_ok"]
                            for r in results.values()),
    }
    print(table(results))
    for name, res in results.items():
        t = res["targets"]
        print(f"{name}: score target {'met' if t['score_ok'] else 'MISSED'} "
              f"(floor {t['score_floor']:.4f}); time target "
              f"{'met' if t['time_ok'] else 'MISSED'} (ratio {res['time_ratio']:.2f} "
              f"vs <= {TIME_RATIO_TARGET})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
