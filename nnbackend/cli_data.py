"""The command line's data side: the training settings (defaults per dataset,
carried over by ``--resume``), the training data and its task, the
``--delimiter`` flag of every command that reads a ``.csv``, and ``predict``.

Everything here refuses bad input with :class:`Refusal`, which ``nnbackend``
prints as one line ``nnbackend: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from dataclasses import dataclass

import numpy as np

from .backends import Backend, get_backend, is_auto
from .checks import replace_target
from .datafiles import (data_file_columns, load_features_file, npy_problem, parse_delimiter,
                        read_data_file)
from .datasets import make_dataset
from .model import MLP
from .tasks import MANY_CLASSES, encode_labels, infer_task

__all__ = ["Refusal", "DEFAULTS", "training_settings", "load_training_data", "task_for",
           "predict_command", "OUTPUT_FORMATS", "add_delimiter_flag", "check_csv_flags",
           "check_not_empty", "check_not_inputs", "check_writable", "class_probabilities",
           "json_line", "loss_finite"]


class Refusal(Exception):
    """A user error found by the command line itself."""


# Settings per dataset where the flag is not given. XOR and AND are four
# points: full-batch steps with a large rate learn them in a second.
_TINY = {"hidden": [4], "activation": "tanh", "mode": "batch", "epochs": 1000, "lr": 1.0}
_GENERAL = {"hidden": [64], "activation": "relu", "mode": "minibatch", "epochs": 50, "lr": 0.1}
_COMMON = {"batch_size": 32, "optimizer": "sgd", "dtype": "float32", "seed": 0, "alpha": 0.0,
           "lr_schedule": "constant"}
DEFAULTS = {"xor": _TINY, "and": _TINY, None: _GENERAL}
# One sample per step takes a smaller rate: at 0.1 the synthetic regression
# diverges in its first sgd epoch; at 0.01 every built-in dataset learns.
_GENERAL_SGD_LR = 0.01

# What a checkpoint's "training" metadata carries into a --resume run: flags
# given anyway replace them (the schedule may change), with a note.
_CARRIED = ("mode", "batch_size", "lr", "epochs", "seed", "alpha", "lr_schedule")
# What the saved model fixes: a flag that differs is refused.
_FIXED = ("hidden", "activation", "dtype", "optimizer")


def training_settings(args, dataset, resumed=None):
    """The settings of a ``train`` run: the flags given, else the checkpoint's
    (with ``--resume``), else the dataset's defaults.

    Parameters
    ----------
    args : argparse.Namespace
    dataset : str or None
        The built-in dataset's name (None for a data file).
    resumed : MLP, optional
        The model of ``--resume``.

    Returns
    -------
    dict
        ``hidden, activation, mode, batch_size, epochs, lr, optimizer, dtype,
        seed, alpha, lr_schedule, standardize``.
    """
    settings = {**_COMMON, **DEFAULTS.get(dataset, _GENERAL), "standardize": True}
    lr_given = args.lr is not None
    if resumed is not None:
        fixed = {"hidden": resumed.layer_sizes[1:-1], "activation": resumed.hidden_activation,
                 "dtype": resumed.dtype, "optimizer": resumed.train_state.optimizer}
        for key in _FIXED:
            given = getattr(args, key)
            if given is not None and given != fixed[key]:
                flag = "--" + key.replace("_", "-")
                shown = ",".join(map(str, given)) if key == "hidden" else given
                saved = ",".join(map(str, fixed[key])) if key == "hidden" else fixed[key]
                raise Refusal(f"--resume {args.resume}: the model was trained with {flag} "
                              f"{saved}; {flag} {shown} cannot change it (leave the flag out)")
        if args.no_standardize and resumed.standardize:
            raise Refusal(f"--resume {args.resume}: the model standardizes its data; "
                          f"--no-standardize cannot change it (leave the flag out)")
        carried = (resumed.metadata.get("training") or {})
        lr_given = lr_given or "lr" in carried
        settings.update({k: carried[k] for k in _CARRIED if k in carried}, **fixed,
                        standardize=resumed.standardize)
        for key in _CARRIED:
            given = getattr(args, key)
            if key in carried and given is not None and given != carried[key]:
                print(f"nnbackend: note: --{key.replace('_', '-')} {given} replaces the "
                      f"checkpoint's {carried[key]}", file=sys.stderr)
    else:
        settings["standardize"] = not args.no_standardize
    for key in (*_CARRIED, *_FIXED):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.batch_size is not None and settings["mode"] != "minibatch":
        rows = "every row" if settings["mode"] == "batch" else "one row"
        given = "" if args.mode is not None else " (this data's default)"
        raise Refusal(f"--batch-size is the rows of a --mode minibatch step; --mode "
                      f"{settings['mode']}{given} takes {rows} a step: add --mode minibatch, "
                      "or leave --batch-size out")
    if settings["mode"] == "sgd" and not lr_given and dataset not in ("xor", "and"):
        settings["lr"] = _GENERAL_SGD_LR
    return settings


def _delimiter(text):
    """An argparse type: a delimiter (see nnbackend.datafiles.parse_delimiter)."""
    try:
        return parse_delimiter(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_delimiter_flag(group):
    """``--delimiter`` on a command (or argument group) that reads a ``.csv``."""
    group.add_argument(
        "--delimiter", type=_delimiter, default=None, metavar="CHAR",
        help="the .csv's delimiter: one character, or comma, semicolon, tab, pipe, space "
             "(default: detected by csv.Sniffer among comma, semicolon, tab and pipe; a "
             "comma where it cannot tell, which an error about the columns then says). "
             "Fields may be quoted")


def json_line(report):
    """``report`` as one line of strict JSON: a NaN or infinite figure (a loss
    that overflowed) is null, as a figure that does not exist is; Python's
    ``NaN`` and ``Infinity`` are no JSON, and JSON readers refuse them."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return [clean(v) for v in value] if isinstance(value, (list, tuple)) else value

    return json.dumps(clean(report), allow_nan=False)


def check_not_empty(*flags):
    """Refuse a path flag given as "" (an unset shell variable): read as left
    out, it would train without saving, or start afresh instead of resuming.
    ``flags`` are ``(value, flag)`` pairs."""
    for path, flag in flags:
        if path == "":
            raise Refusal(f"{flag}: the path is empty; name a file, or leave the flag out")


def check_writable(path, flag):
    """Refuse an output path up front, not after minutes of training."""
    if os.path.isdir(path):
        raise Refusal(f"{flag} {path} is a directory")
    try:
        # A path ending in "/", a FIFO, a loop of links; a link is written
        # through, so its target's directory is the one to check.
        directory = os.path.dirname(replace_target(path, flag))
    except ValueError as exc:
        raise Refusal(str(exc)) from None
    if not os.path.isdir(directory):
        raise Refusal(f"{flag} {path}: no such directory {directory}")
    if not os.access(directory, os.W_OK):
        raise Refusal(f"{flag} {path}: directory {directory} is not writable")


def check_not_inputs(output, flag, inputs):
    """Refuse an output path that is also an input's or another output's:
    writing it would destroy that file (a training set, a model) or output.

    ``inputs`` are ``(path or None, flag)`` pairs.
    """
    if not output:
        return
    for other, other_flag in inputs:
        if other and _same_path(output, other):
            raise Refusal(f"{flag} {output} is also {other_flag}: writing it would replace "
                           "that file; choose another path")


def _same_path(a, b):
    a, b = os.fspath(a), os.fspath(b)
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def check_csv_flags(args, flag="--data"):
    """Refuse ``--delimiter`` and ``--no-header`` for a file that is not a ``.csv``."""
    csv_file = bool(args.data and args.data.lower().endswith(".csv"))
    if getattr(args, "delimiter", None) is not None and not csv_file:
        raise Refusal(f"--delimiter is for a {flag} .csv file")
    if getattr(args, "no_header", False) and not csv_file:
        raise Refusal(f"--no-header is for a {flag} .csv file")


@dataclass
class TrainingData:
    X: object
    y: np.ndarray
    label_names: list | None
    feature_names: list | None
    source: str


def load_training_data(args, backend, seed):
    """The training data of ``--data`` or ``--dataset`` (xor by default)."""
    if args.data and args.dataset:
        raise Refusal("give --data or --dataset, not both")
    if args.data and getattr(args, "n_samples", None) is not None:
        raise Refusal("--n-samples sets the rows of a --dataset; a --data file is used whole")
    check_csv_flags(args)
    if args.data and args.data.lower().endswith(".npy"):
        return _npy_training_data(args, backend)
    if args.data:
        X, y, names, features = read_data_file(args.data, target=args.target,
                                               header=not args.no_header,
                                               delimiter=getattr(args, "delimiter", None))
        return TrainingData(X, y, names, features, os.path.basename(args.data))
    if args.target:
        raise Refusal("--target names a column of a --data .csv file")
    name = args.dataset or "xor"
    X, y = make_dataset(name, n_samples=args.n_samples, seed=seed)
    return TrainingData(X, y, None, None, name)


def _npy_training_data(args, backend):
    """Features from a ``.npy`` (lazily, chunk by chunk, where the backend
    reads rows lazily) and labels from the ``.npy`` named by ``--target``."""
    if not args.target or not args.target.lower().endswith(".npy"):
        raise Refusal("--data FILE.npy holds the features only; name the labels with "
                      "--target LABELS.npy (one per row)")
    for path in (args.data, args.target):
        if not os.path.exists(path):
            raise Refusal(f"no such file: {path}")
        problem = npy_problem(path)  # a directory, a text file, an .npz so named
        if problem is not None:
            raise Refusal(f"cannot read {path}: {problem}")
    if not is_auto(backend) and not isinstance(backend, Backend):
        # On --device: dask's rows go to the chunks' library there (CuPy on a GPU).
        backend = get_backend(backend, getattr(args, "device", None))
    path = args.target
    try:
        y = np.load(path, allow_pickle=False)  # one label per row: small
        path = args.data
        X = None if is_auto(backend) else backend.lazy_rows(path)
        if X is None:
            X = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError) as exc:  # EOFError: an empty file
        raise Refusal(f"cannot read {path}: {exc or type(exc).__name__}") from None
    if len(X.shape) != 2 or y.ndim not in (1, 2) or X.shape[0] != y.shape[0]:
        raise Refusal(f"{args.data} must hold a 2-D array and {args.target} one label per "
                      f"row; got shapes {tuple(X.shape)} and {y.shape}")
    if args.val_split is not None and not isinstance(X, np.ndarray):
        raise Refusal("--val-split would gather a chunked .npy into memory; split the file "
                      "beforehand")
    return TrainingData(X, y, None, None, os.path.basename(args.data))


def task_for(y, override, resume=None, resumed=None):
    """The task of labels ``y`` (``--task`` where given), and the labels as
    class ids for a classifier. A note on stderr where whole numbers with
    many distinct values were read one way or the other.

    With ``resumed`` (the model of ``--resume``, its path ``resume``) the
    ids are those of the model's ``classes_``: data holding fewer of the
    classes, or the same number with another one among them, must not
    shift the ids; a label the model does not know is refused."""
    try:
        task = infer_task(y, override)
    except ValueError as exc:
        if override is None:
            raise
        raise Refusal(f"--task {override}: {exc}") from None
    whole = y.dtype.kind in "biu" or (y.dtype.kind == "f" and bool(np.all(y == np.round(y))))
    if override is None and y.ndim == 1 and whole:
        distinct = int(np.unique(y).shape[0])
        if distinct > MANY_CLASSES:
            if task["kind"] == "regression":
                print(f"nnbackend: note: the target holds {distinct} distinct whole numbers "
                      f"in {y.shape[0]} rows: read as a quantity (regression); give --task "
                      f"multiclass to treat them as classes", file=sys.stderr)
            else:
                print(f"nnbackend: note: the target's {distinct} distinct whole numbers are "
                      f"read as {distinct} classes; give --task regression if they are a "
                      f"quantity", file=sys.stderr)
    if task["classes"] is not None and y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)  # a column of labels, as a 1-D array of them
    if task["classes"] is not None and y.ndim == 1:
        saved = None if resumed is None else resumed.classes_
        if saved is not None and saved.tolist() != task["classes"]:
            task = _with_classes(task, saved.tolist())
        try:
            y = encode_labels(y, task["classes"])
        except ValueError as exc:
            raise Refusal(f"--resume {resume}: {exc}") from None
    return task, y


def _with_classes(task, classes):
    """``task`` with the classes of the model it resumes (and their head)."""
    if len(classes) == 2 and task["kind"] == "binary":
        return {**task, "classes": classes}
    return {**task, "kind": "multiclass", "n_outputs": len(classes),
            "output_activation": "softmax", "loss": "cross_entropy", "classes": classes}


# -- predict -----------------------------------------------------------------------

OUTPUT_FORMATS = (".csv", ".npz")


def predict_command(args, backend):
    """``nnbackend predict``: the model's predictions for ``--data``."""
    if args.out and os.path.splitext(args.out)[1].lower() not in OUTPUT_FORMATS:
        raise Refusal(f"--out {args.out}: predictions are written as .csv or .npz; "
                      f"name the file so")
    check_csv_flags(args)
    model = MLP.load(args.model, backend=backend, device=args.device)
    delimiter = getattr(args, "delimiter", None)
    X = load_features_file(args.data, drop=model.metadata.get("target"),
                           header=not args.no_header, feature_names=model.feature_names_in_,
                           delimiter=delimiter)
    if X.shape[1] != model.layer_sizes[0]:
        extra = ("; if one of its columns is the target, nnbackend evaluate --target scores "
                 "the model against it" if X.shape[1] == model.layer_sizes[0] + 1 else "")
        raise Refusal(f"{args.data} has {X.shape[1]} features but the model expects "
                      f"{model.layer_sizes[0]}{extra}")
    _note_target(args, model, delimiter)
    out = model_outputs(model, X)
    probabilities, classes = class_probabilities(model, out)
    if probabilities is not None:
        labels = [classes[int(i)] for i in np.argmax(probabilities, axis=1)]
    if args.out and args.out.lower().endswith(".npz"):
        arrays = {"prediction": out} if probabilities is None else {
            "prediction": np.asarray(labels), "probabilities": probabilities,
            "classes": np.asarray(classes)}
        _write(args.out, lambda f: np.savez(f, **arrays), "wb")
    else:
        # Undone in float64, a scaled target's outputs have float64's digits.
        digits = "float64" if model.target_scaler is not None else model.dtype
        text = _csv_text(out, probabilities, labels if probabilities is not None else None,
                         classes, digits)
        if not args.out:
            sys.stdout.write(text)
            return 0
        _write(args.out, lambda f: f.write(text), "w")
    print(f"{len(out)} predictions written to {args.out}", file=sys.stderr)
    return 0


def model_outputs(model, X):
    """The model's outputs for ``X``, host float64, in the targets' units:
    what ``predict`` writes and ``evaluate`` scores.

    A model that standardizes its targets has their scaling undone here, in
    float64: ``MLP.predict`` undoes it in the model's dtype, and float32
    rounds a target near 1e7 to a whole number.
    """
    scaler = model.target_scaler
    with np.errstate(over="ignore", invalid="ignore"):  # such rows are refused below
        if scaler is None:
            out = model.backend.to_host(model.predict(X)).astype(np.float64)
        else:
            # The network's standardized output: the model, loaded here for this
            # command alone, predicts once without its target scaler.
            model.target_scaler = None
            try:
                out = model.predict(X)
            finally:
                model.target_scaler = scaler
            out = scaler.inverse_transform(model.backend.to_host(out).astype(np.float64))
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if bad.size:
        # NaN would be written as a prediction (a classifier's argmax: the first class).
        rows = ", ".join(str(i + 1) for i in bad[:5]) + (", ..." if bad.size > 5 else "")
        raise Refusal(f"the model's outputs are NaN or infinite for {bad.size} of {len(out)} "
                      f"rows (data rows {rows}): those rows' features, once scaled, or the "
                      f"model's weights overflow its {model.dtype}")
    return out


def loss_finite(model, X, y, rows=1024):
    """Whether the model's loss on the first ``rows`` rows of ``(X, y)`` is
    finite: one small pass, enough to see weights whose outputs overflow on
    every row (a sigmoid's output may stay finite, its logits not)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return math.isfinite(model.evaluate(X[:rows], y[:rows])["loss"])


def class_probabilities(model, out):
    """``(probabilities, classes)`` of a classifier's outputs ``out`` (host,
    one column per class: a single sigmoid unit's ``p`` becomes ``1 - p, p``),
    or ``(None, None)`` for a model whose outputs are not class scores. The
    predicted class of a row is its ``argmax`` (a tie: the first class)."""
    # The model's labels (a checkpoint from before classes_ was saved has
    # them from the command line's metadata: see nnbackend.checkpoint).
    classes = None if model.classes_ is None else model.classes_.tolist()
    # One sigmoid unit trained with bce tells two classes apart, ids 0 and 1
    # without classes_ (as evaluate scores it); several are multi-label.
    binary = (model.output_activation == "sigmoid"
              and (classes or (model.loss == "bce" and model.layer_sizes[-1] == 1)))
    if not (model.output_activation == "softmax" or binary):
        return None, None
    probabilities = np.concatenate([1 - out, out], axis=1) if out.shape[1] == 1 else out
    return probabilities, classes or list(range(probabilities.shape[1]))


def _note_target(args, model, delimiter):
    """Say on stderr where the input holds the labels predict leaves out."""
    names = data_file_columns(args.data, header=not args.no_header, delimiter=delimiter)
    target = model.metadata.get("target")
    if args.data.lower().endswith(".npz"):
        target = target if target in (names or ()) else "y"
    if names is None or target is None or target not in names:
        return
    what = "array" if args.data.lower().endswith(".npz") else "column"
    print(f"nnbackend: note: {args.data} holds the target {what} {target!r}, which predict "
          f"leaves out; to score the model against it, run nnbackend evaluate --model "
          f"{args.model} --data {args.data}", file=sys.stderr)


def _csv_text(out, probabilities, labels, classes, dtype="float64"):
    """The predictions as CSV text: a regression output as the shortest
    text that reads back as the model's number (its ``dtype``: 10000003.54
    is not 10000004), probabilities to 6 digits."""
    kind = np.float64 if dtype == "float64" else np.float32

    def shortest(v):
        x = kind(v)
        if x == 0 or 1e-4 <= abs(x) < 1e16:  # positional, as 1234567, not 1.234567e+06
            return np.format_float_positional(x, unique=True, trim="-")
        return np.format_float_scientific(x, unique=True, trim="-")

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if probabilities is not None:
        writer.writerow(["prediction", *[f"p_{c}" for c in classes]])
        for label, row in zip(labels, probabilities):
            writer.writerow([label, *[f"{p:.6g}" for p in row]])
    else:
        names = ["prediction"] if out.shape[1] == 1 else [f"prediction_{j}" for j in range(out.shape[1])]
        writer.writerow(names)
        for row in out:
            writer.writerow([shortest(v) for v in row])
    return buffer.getvalue()


def _write(path, write, mode):
    """``write(file)`` into a temporary file renamed over ``path``."""
    target = replace_target(path)
    tmp = f"{target}.tmp-{os.getpid()}"
    try:
        with open(tmp, mode, **({"newline": ""} if mode == "w" else {})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # on disk before it replaces the old file
        os.replace(tmp, target)
    except BaseException as exc:  # Ctrl-C too: no half-written temporary file is left
        if os.path.exists(tmp):
            os.unlink(tmp)
        if not isinstance(exc, OSError):
            raise
        raise Refusal(f"cannot write {path}: {exc.strerror or exc}") from None
