"""``nnbackend evaluate``: a saved model scored against data that holds the
labels, and the metrics it prints (computed with NumPy on the host).

Classes: accuracy, per-class precision, recall and support, and the
confusion matrix (rows the true class, columns the predicted one, both in
the order of the model's classes). Regression: R², MAE and RMSE, in the
target's units. ``--json`` prints the same figures as one JSON object.

A figure that does not exist is ``None`` (``null``; ``n/a`` in the text),
never a made-up number: the precision of a class the model never predicts,
the recall of a class absent from the data, R² of a constant target.
"""

from __future__ import annotations

import os

import numpy as np

from .cli_data import (Refusal, add_delimiter_flag, check_csv_flags, class_probabilities,
                       json_line, model_outputs)
from .datafiles import data_file_columns, load_features_file, read_labelled_file
from .model import MLP
from .tasks import read_number

__all__ = ["add_evaluate", "evaluate_command", "confusion_matrix", "classification_metrics",
           "regression_metrics"]


def add_evaluate(commands, backend_flags):
    """The ``evaluate`` subcommand's parser."""
    evaluate = commands.add_parser(
        "evaluate", help="score a saved model against data that holds the labels",
        description="Score a saved model (a checkpoint of nnbackend train --save) against a "
                    "data file that holds the labels. A classifier: accuracy, precision and "
                    "recall per class, and the confusion matrix (rows: the true class, "
                    "columns: the predicted one). A regression model: R2, MAE and RMSE in the "
                    "target's units. A figure that does not exist (the precision of a class "
                    "never predicted, the recall of a class absent from the data, R2 of a "
                    "constant target) is shown as n/a (null in --json). The columns of a .csv "
                    "are matched by name to the model's features, as predict does.")
    backend_flags(evaluate)
    evaluate.add_argument("--model", required=True, metavar="MODEL.npz")
    evaluate.add_argument("--data", required=True, metavar="FILE",
                          help="a .csv with a header row and the label column, a .npz with "
                               "arrays X and y, or a .npy of features (labels in --target "
                               "LABELS.npy)")
    evaluate.add_argument("--target", default=None,
                          help="the label column of the .csv (default: the column the model "
                               "was trained on, kept in its checkpoint; its 0-based index with "
                               "--no-header), the label array of an .npz (default: the "
                               "model's, where the archive holds it, else y), or the labels "
                               ".npy of a .npy --data")
    evaluate.add_argument("--no-header", action="store_true",
                          help="the .csv has no header row: columns are taken in order")
    add_delimiter_flag(evaluate)
    evaluate.add_argument("--json", action="store_true",
                          help="print the figures as one JSON object on stdout")
    return evaluate


# -- metrics -----------------------------------------------------------------------


def confusion_matrix(true_ids, predicted_ids, n_classes):
    """Counts ``m[i, j]`` of rows of class ``i`` predicted as class ``j``.

    Parameters
    ----------
    true_ids, predicted_ids : array_like of int, shape (n_samples,)
        Class ids in ``range(n_classes)``.
    n_classes : int

    Returns
    -------
    ndarray of int64, shape (n_classes, n_classes)
    """
    true_ids = np.asarray(true_ids, dtype=np.int64).reshape(-1)
    predicted_ids = np.asarray(predicted_ids, dtype=np.int64).reshape(-1)
    if true_ids.shape != predicted_ids.shape:
        raise ValueError(f"{true_ids.shape[0]} true labels but {predicted_ids.shape[0]} "
                         f"predictions")
    for ids in (true_ids, predicted_ids):
        if ids.size and (ids.min() < 0 or ids.max() >= n_classes):
            raise ValueError(f"class ids must lie in range({n_classes})")
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (true_ids, predicted_ids), 1)
    return m


def classification_metrics(true_ids, predicted_ids, classes):
    """Accuracy, per-class precision/recall/support and the confusion matrix.

    Precision of class ``c``: of the rows predicted ``c``, the share that are
    ``c`` (None where none is predicted ``c``). Recall: of the rows that are
    ``c``, the share predicted ``c`` (None where none is).

    Parameters
    ----------
    true_ids, predicted_ids : array_like of int, shape (n_samples,)
        Class ids: ``classes[i]`` is the label of id ``i``.
    classes : list
        The class labels (JSON-ready: Python strings or numbers).

    Returns
    -------
    dict
        ``accuracy``, ``correct``, ``classes``, ``per_class`` (a list of
        ``{class, precision, recall, support, predicted}``) and
        ``confusion_matrix`` (a list of rows).
    """
    m = confusion_matrix(true_ids, predicted_ids, len(classes))
    n = int(m.sum())
    if n == 0:
        raise ValueError("no rows to score")
    per_class = []
    for i, label in enumerate(classes):
        hits, predicted, support = int(m[i, i]), int(m[:, i].sum()), int(m[i, :].sum())
        per_class.append({"class": label,
                          "precision": hits / predicted if predicted else None,
                          "recall": hits / support if support else None,
                          "support": support, "predicted": predicted})
    correct = int(np.trace(m))
    return {"accuracy": correct / n, "correct": correct, "classes": list(classes),
            "per_class": per_class, "confusion_matrix": m.tolist()}


def regression_metrics(y_true, y_predicted):
    """R², mean absolute error and root mean squared error.

    With several outputs, ``mae`` and ``rmse`` are over every value (the
    mean of the squared errors of all of them, then its root) and ``r2`` the
    mean of the outputs' R², each given under ``outputs``.

    Parameters
    ----------
    y_true, y_predicted : array_like of float, shape (n_samples,) or (n_samples, k)

    Returns
    -------
    dict
        ``r2`` (None where a target column is constant: R² is then
        undefined), ``mae``, ``rmse``; with ``k > 1`` also ``outputs``, a
        list of ``{r2, mae, rmse}``.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_predicted = np.asarray(y_predicted, dtype=np.float64)
    y_true = y_true.reshape(y_true.shape[0], -1)
    y_predicted = y_predicted.reshape(y_predicted.shape[0], -1)
    if y_true.shape != y_predicted.shape or y_true.shape[0] == 0:
        raise ValueError(f"targets of shape {y_true.shape} cannot be scored against "
                         f"predictions of shape {y_predicted.shape}")
    error = y_predicted - y_true
    squared = np.mean(error ** 2, axis=0)
    spread = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    r2 = [None if s == 0 else float(1 - e / s) for e, s in zip(np.sum(error ** 2, axis=0), spread)]
    mae = np.mean(np.abs(error), axis=0)
    figures = {"r2": None if None in r2 else float(np.mean(r2)),
               "mae": float(np.mean(mae)), "rmse": float(np.sqrt(np.mean(squared)))}
    if y_true.shape[1] > 1:
        figures["outputs"] = [{"r2": r, "mae": float(a), "rmse": float(np.sqrt(q))}
                              for r, a, q in zip(r2, mae, squared)]
    return figures


# -- the command -------------------------------------------------------------------


def evaluate_command(args, backend):
    """``nnbackend evaluate``: the model's figures on ``--data``; exit status 0."""
    check_csv_flags(args)
    model = MLP.load(args.model, backend=backend, device=args.device)
    kind = _task_kind(model, args.model)
    X, labels, target = _labelled_data(args, model)
    if X.shape[1] != model.layer_sizes[0]:
        raise Refusal(f"{args.data} has {X.shape[1]} features but the model expects "
                      f"{model.layer_sizes[0]}")
    out = model_outputs(model, X)
    report = {"model": args.model, "data": args.data, "target": target, "task": kind,
              "n_samples": int(X.shape[0])}
    if kind == "regression":
        report.update(regression_metrics(_targets(args, labels, out.shape[1], target), out))
    else:
        probabilities, classes = class_probabilities(model, out)
        if probabilities is None:  # a bce head without classes_: ids 0 and 1
            probabilities, classes = np.concatenate([1 - out, out], axis=1), [0, 1]
        classes = [c.item() if isinstance(c, np.generic) else c for c in classes]
        true_ids = _class_ids(args, labels, classes, target)
        report.update(classification_metrics(true_ids, np.argmax(probabilities, axis=1),
                                             classes))
    if args.json:
        print(json_line(report))
    else:
        print("\n".join(report_lines(report)))
    return 0


def _task_kind(model, path):
    """binary, multiclass or regression: the checkpoint's word, else its head."""
    kind = model.metadata.get("task")
    if kind in ("binary", "multiclass", "regression"):
        return kind
    if model.loss == "cross_entropy":
        return "multiclass"
    if model.loss == "bce":
        if model.layer_sizes[-1] != 1:
            raise Refusal(f"{path}: a head of {model.layer_sizes[-1]} sigmoid units (several "
                          f"labels per row) is not scored by evaluate")
        return "binary"
    return "regression"


def _labelled_data(args, model):
    """``(X, labels, target)`` of ``--data``: features in the model's order,
    the labels as the file writes them, and the label column's name."""
    data, lower = args.data, args.data.lower()
    saved = model.metadata.get("target")
    if lower.endswith(".npy"):
        if not args.target or not args.target.lower().endswith(".npy"):
            raise Refusal(f"{data} holds the features only; name the labels with --target "
                          f"LABELS.npy (one per row)")
        X = load_features_file(data)
        try:
            labels = np.load(args.target, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise Refusal(f"could not read {args.target} as .npy: {exc}") from None
        if labels.ndim not in (1, 2) or labels.shape[0] != X.shape[0]:
            raise Refusal(f"{args.target} must hold one label per row of {data} "
                          f"({X.shape[0]}); got shape {labels.shape}")
        return X, labels, os.path.basename(args.target)
    if lower.endswith(".npz"):
        target = args.target or (saved if saved in (data_file_columns(data) or ()) else "y")
        X, labels = read_labelled_file(data, target)
        return X, labels, target
    target = args.target if args.target is not None else saved
    try:
        X, labels = read_labelled_file(data, target, header=not args.no_header,
                                       feature_names=model.feature_names_in_,
                                       delimiter=args.delimiter)
    except ValueError as exc:
        hint = ""
        if target is None:
            hint = (f"; the model {args.model} does not record the column it was trained on: "
                    f"name the label column with --target")
        elif args.target is None and f"has no column {target!r}" in str(exc):
            hint = (f"; evaluate looks for the label column the model was trained on, "
                    f"{target!r}: name the file's label column with --target")
        raise Refusal(f"{exc}{hint}") from None
    return X, labels, target


def _class_ids(args, labels, classes, target):
    """The class id of each row's label; a label the model does not know is refused."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        one_hot = labels.dtype.kind in "biuf" and labels.shape[1] == len(classes) and bool(
            np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(axis=1) == 1))
        if not one_hot:
            raise Refusal(f"{args.data}: the labels {target!r} have {labels.shape[1]} columns; "
                          f"a classifier is scored against one label (or one-hot row) per row")
        return np.argmax(labels, axis=1)
    labels = labels.reshape(-1)
    numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes)
    # Compared as Python numbers: whole ones stay exact ints (float64 would take
    # 2**53 + 1 for 2**53); NaN equals no class.
    key = _class_number if numeric else _text
    index = {key(c): i for i, c in enumerate(classes)}
    values = [key(v) for v in labels.tolist()]
    known = np.array([v in index for v in values], dtype=bool)
    if not known.all():
        unknown = list(dict.fromkeys(labels[~known].tolist()))
        shown = unknown[:5] + (["..."] if len(unknown) > 5 else [])
        raise Refusal(f"{args.data}: the labels {shown} in {target!r} are not among the "
                      f"model's classes {classes} ({int((~known).sum())} of {labels.shape[0]} "
                      f"rows)")
    return np.array([index[v] for v in values], dtype=np.int64)


def _class_number(value):
    """A numeric label as a class: an int where it is written as one (exact
    past 2**53, where float64 merges neighbours), else as :func:`_number`."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and read_number(value.strip()) is not None:
        try:
            return int(value.strip())
        except ValueError:
            pass
    return _number(value)


def _number(value):
    """A label as a float (NaN for text that is not a number, as the data
    files read one: see :func:`nnbackend.tasks.read_number`)."""
    if isinstance(value, str):
        number = read_number(value.strip())
        return float("nan") if number is None else number
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _text(value):
    """A label as text: whole numbers without a trailing .0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _targets(args, labels, n_outputs, target):
    """Regression targets as floats, shape (n, n_outputs); text or a
    non-finite value is refused."""
    labels = np.asarray(labels)
    flat = labels.reshape(-1)
    values = np.array([_number(v) for v in flat.tolist()], dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise Refusal(f"{args.data}: the target {target!r} holds {flat[bad][0].item()!r}, not a "
                      f"finite number; a regression model is scored against numbers")
    values = values.reshape(labels.shape[0], -1)
    if values.shape[1] != n_outputs:
        raise Refusal(f"{args.data}: the target {target!r} has {values.shape[1]} column(s) but "
                      f"the model predicts {n_outputs}")
    return values


# -- the text report ---------------------------------------------------------------


def _figure(value):
    return "n/a" if value is None else f"{value:.4f}"


def report_lines(report):
    """The text of ``nnbackend evaluate``: the figures of ``report`` (as
    ``--json`` prints it) to 4 decimals, n/a where a figure does not exist."""
    lines = [(f"{report['model']} on {report['data']} (target {report['target']!r}): "
              f"{report['n_samples']} rows, {report['task']}")]
    if report["task"] == "regression":
        undefined = "  (undefined: a target column is constant)" if report["r2"] is None else ""
        lines += [f"R2    {_figure(report['r2'])}{undefined}",
                  f"MAE   {_figure(report['mae'])}  (target units)",
                  f"RMSE  {_figure(report['rmse'])}  (target units)"]
        for i, o in enumerate(report.get("outputs", [])):
            lines.append(f"output {i}: R2 {_figure(o['r2'])}  MAE {_figure(o['mae'])}  "
                         f"RMSE {_figure(o['rmse'])}")
        return lines
    names = [str(c) for c in report["classes"]]
    width = max(len("class"), *map(len, names))
    accuracy = (f"accuracy {_figure(report['accuracy'])}  ({report['correct']} of "
                f"{report['n_samples']})")
    lines += [accuracy, "", f"{'class':<{width}}  precision  recall  support"]
    for name, c in zip(names, report["per_class"]):
        lines.append(f"{name:<{width}}  {_figure(c['precision']):>9}  {_figure(c['recall']):>6}"
                     f"  {c['support']:>7}")
    if any(c["precision"] is None or c["recall"] is None for c in report["per_class"]):
        lines.append("n/a: precision of a class never predicted, recall of a class absent "
                     "from the data")
    matrix = report["confusion_matrix"]
    cell = max(len(str(v)) for row in matrix for v in row)
    cells = [max(cell, len(n)) for n in names]
    lines += ["", "confusion matrix (rows: true class, columns: predicted class)",
              " " * width + "".join(f"  {n:>{w}}" for n, w in zip(names, cells))]
    for name, row in zip(names, matrix):
        lines.append(f"{name:<{width}}" + "".join(f"  {v:>{w}}" for v, w in zip(row, cells)))
    return lines
