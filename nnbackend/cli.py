"""The command line: ``nnbackend train``, ``predict``, ``evaluate``, ``bench``, ``info``.

Every refusal (bad argument, unknown name, missing or malformed file,
unusable backend) ends with one line ``nnbackend: error: ...`` on stderr and
exit status 2; no traceback reaches the user (``NNBACKEND_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
import warnings

import numpy as np

from . import __version__
from .backends import BACKEND_NAMES, BackendUnavailableError, get_backend, library_version
from .backends.precision import PRECISIONS
from .bench.suite import (
    add_bench_arguments,
    bench_environment,
    missing_requirements,
    pytest_command,
    suite_dir,
)
from .cli_auto import with_auto
from .cli_data import Refusal as _Refusal, add_delimiter_flag, load_training_data, predict_command
from .cli_data import (check_not_empty, check_not_inputs, check_writable, json_line,
                       loss_finite, task_for, training_settings)
from .cli_evaluate import add_evaluate, evaluate_command
from .cli_info import info_command
from .checks import replace_target
from .data import MODES
from .datasets import DATASETS, DatasetUnavailableError, train_val_split
from .kernels import HIDDEN_ACTIVATIONS
from .model import MLP
from .optim import OPTIMIZERS
from .training import DivergenceWarning, EpochProgress
from .training.options import LR_SCHEDULES

TASKS = ("binary", "multiclass", "regression")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, the same for every refusal, instead of usage + message;
        # line breaks inside a quoted argument are shown escaped (found by
        # tests/test_fuzz.py: an argument "\r" split the line).
        one_line = "".join(repr(c)[1:-1] if c in _LINE_BREAKS else c for c in message)
        self.exit(2, f"nnbackend: error: {one_line}\n")


# Every character str.splitlines() breaks at.
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def _sizes(text):
    fields = [s.strip() for s in text.split(",")]
    if fields and not fields[-1]:
        fields.pop()  # "64," is 64
    if "" in fields:  # "64,,32": a size left out, not a layer fewer
        raise argparse.ArgumentTypeError(f"a hidden layer size is empty in {text!r}; "
                                         "expected comma-separated integers like 64,32")
    try:
        sizes = [int(s) for s in fields]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 64,32; got {text!r}")
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"hidden layer sizes must be integers >= 1; got {text!r}")
    return sizes


def _int_at_least(minimum):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_seed = _int_at_least(0)


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _nonnegative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _fraction(text):
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text!r}")
    return value


def _parser():
    parser = _Parser(prog="nnbackend", description="Train and measure MLPs on any array-API backend.")
    parser.add_argument("--version", action="version", version=f"nnbackend {__version__}")
    # Not required here: main() answers a missing command with the list of them.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def backend_flags(p):
        p.add_argument("--backend", default=None,
                       help=f"one of {', '.join(BACKEND_NAMES)}, one with its device "
                            "(torch:cuda), or auto (picked from this machine's profile) "
                            "(default: $NNBACKEND_BACKEND or numpy)")
        p.add_argument("--device", default=None,
                       help="the backend's device, e.g. cuda:0 or device1 (default: the "
                            "backend's default device)")
        p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="dask backend: a dask.distributed scheduler to run on, e.g. "
                            "tcp://10.0.0.5:8786, or threads (default: "
                            "$NNBACKEND_DASK_SCHEDULER, else Dask's local threads); "
                            "implies --backend dask")

    _add_train(commands, backend_flags)
    _add_predict(commands, backend_flags)
    add_evaluate(commands, backend_flags)

    bench = commands.add_parser("bench", help="time an epoch of each descent mode as N grows; write a report")
    add_bench_arguments(bench)

    info = commands.add_parser("info", help="the backends on this machine and their devices")
    backend_flags(info)
    info.add_argument("--json", action="store_true")
    return parser


def _add_train(commands, backend_flags):
    train = commands.add_parser(
        "train", help="train an MLP (default: XOR with a hidden layer)",
        description="Train an MLP on a built-in dataset or a data file. Defaults that depend "
                    "on the dataset: xor and and: --hidden 4 --activation tanh --mode batch "
                    "--epochs 1000 --lr 1.0; every other dataset and --data files: --hidden 64 "
                    "--activation relu --mode minibatch --epochs 50 --lr 0.1 (0.01 with --mode "
                    "sgd). With --resume "
                    "the checkpoint's settings are the defaults.")
    backend_flags(train)
    data = train.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default=None,
                      help="a generated or bundled dataset (default: xor)")
    data.add_argument("--n-samples", type=_positive_int, default=None,
                      help="rows to generate (default: the dataset's own size)")
    data.add_argument("--data", metavar="FILE", default=None,
                      help="a .npz with arrays X and y, a .csv with a header row (label column "
                           "named by --target), or a .npy of features (labels in --target "
                           "LABELS.npy; read chunk by chunk, out of core, on the dask backend)")
    data.add_argument("--target", default=None,
                      help="the label column of a .csv file (its 0-based index with "
                           "--no-header; -1 the last), or the labels .npy of a .npy --data")
    data.add_argument("--no-header", action="store_true",
                      help="the .csv has no header row: every row is data (a first row of "
                           "numbers is refused as a header otherwise)")
    add_delimiter_flag(data)
    data.add_argument("--task", choices=TASKS, default=None,
                      help="override the task read off the labels (default: strings and few "
                           "whole numbers are classes, other numbers a regression target)")
    data.add_argument("--val-split", type=_fraction, default=None,
                      help="hold out this fraction (stratified for classes) for validation "
                           "(default: none)")
    data.add_argument("--no-standardize", action="store_true",
                      help="feed the features (and regression targets) as they are; by "
                           "default each is scaled to mean 0 and variance 1 with statistics "
                           "of the training rows, kept in the checkpoint and applied by "
                           "predict, which answers in the target's units")
    net = train.add_argument_group("network and training")
    # (flag, how to parse it, help): every one defaults to None, which means
    # "the dataset's default" (or, with --resume, the checkpoint's).
    for flag, parse, text in (
        ("--hidden", {"type": _sizes},
         "hidden layer sizes, e.g. 64,32 (default: 4 for xor/and, else 64)"),
        ("--activation", {"choices": HIDDEN_ACTIVATIONS},
         "hidden activation (default: tanh for xor/and, else relu)"),
        ("--mode", {"choices": MODES}, "descent mode (default: batch for xor/and, else minibatch)"),
        ("--batch-size", {"type": _positive_int}, "rows per minibatch step (default: 32)"),
        ("--epochs", {"type": _positive_int},
         "passes over the training rows (default: 1000 for xor/and, else 50)"),
        ("--lr", {"type": _positive_float},
         "learning rate (default: 1.0 for xor/and, else 0.1; 0.01 in sgd mode)"),
        ("--optimizer", {"choices": list(OPTIMIZERS)}, "default: sgd"),
        ("--alpha", {"type": _nonnegative_float},
         "L2 penalty on the weights, as scikit-learn's MLP alpha (default: 0)"),
        ("--lr-schedule", {"choices": list(LR_SCHEDULES)},
         "constant; invscaling: lr/(t+1)^0.5, t the samples seen; adaptive: lr/5 after 10 "
         "epochs without improvement (default: constant)"),
        ("--patience", {"type": _positive_int},
         "stop after this many epochs without improvement (default: never)"),
        ("--dtype", {"choices": ["float32", "float64"]}, "default: float32"),
        ("--precision", {"choices": list(PRECISIONS)},
         "float32 matmuls on a CUDA GPU: highest (full float32) or tf32 (tensor cores, about "
         "1e-3 relative error a product); CPUs and the fused CuPy kernels ignore it (default: "
         "the array library's setting, full float32 unless changed)"),
        ("--seed", {"type": _seed}, "seeds the data, weights, split and shuffling (default: 0)"),
    ):
        net.add_argument(flag, default=None, help=text, **parse)
    out = train.add_argument_group("output")
    out.add_argument("--save", metavar="MODEL.npz", default=None,
                     help="write a checkpoint (not written, and an existing file kept, if the "
                          "run diverges)")
    out.add_argument("--resume", metavar="MODEL.npz", default=None,
                     help="continue training a saved model: its architecture, settings, "
                          "scaling, optimizer state and shuffling carry on (give the same data)")
    out.add_argument("--plot", metavar="LOSS.png", default=None,
                     help="write the training curves (.png, .pdf, .svg: the format follows "
                          "the extension)")
    out.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    out.add_argument("--quiet", action="store_true", help="no per-epoch progress")


def _add_predict(commands, backend_flags):
    predict = commands.add_parser(
        "predict", help="predict with a saved model",
        description="Predict with a saved model. The columns of a .csv are matched by name to "
                    "the features the model was trained on (any order; a missing or unknown "
                    "column is refused); the label column is left out, with a note on stderr "
                    "(nnbackend evaluate scores the model against it).")
    backend_flags(predict)
    predict.add_argument("--model", required=True, metavar="MODEL.npz")
    predict.add_argument("--data", required=True, metavar="FILE",
                         help="a .csv with a header row, a .npz with X, or a .npy")
    predict.add_argument("--no-header", action="store_true",
                         help="the .csv has no header row: columns are taken in order")
    add_delimiter_flag(predict)
    predict.add_argument("--out", default=None, metavar="PREDS.csv",
                         help=".csv or .npz (default: csv on stdout)")


# -- train -------------------------------------------------------------------------


def _backend_arg(args):
    """The backend to build models on: ``--backend``'s name, or with
    ``--scheduler`` the dask backend connected to it (refused up front)."""
    if args.scheduler is None:
        return args.backend
    if args.backend not in (None, "dask"):
        raise _Refusal(f"--scheduler names a Dask scheduler; it needs --backend dask, "
                       f"not {args.backend}")
    return get_backend("dask", args.device, scheduler=args.scheduler)


def _check_outputs(args):
    """Refuse --save and --plot paths up front, not after minutes of training."""
    check_not_empty((args.save, "--save"), (args.plot, "--plot"), (args.resume, "--resume"),
                     (args.data, "--data"))
    for path, flag in ((args.save, "--save"), (args.plot, "--plot")):
        if path:
            check_writable(path, flag)
    target = args.target if args.data and args.data.lower().endswith(".npy") else None
    inputs = [(args.data, "--data"), (target, "--target")]
    # --save over --resume is how a fit goes on in one file: allowed.
    check_not_inputs(args.save, "--save", inputs)
    check_not_inputs(args.plot, "--plot", [*inputs, (args.resume, "--resume"),
                                            (args.save, "--save")])
    if args.plot:
        from .plot import plot_format, require_matplotlib

        require_matplotlib()
        plot_format(args.plot)


def _build_model(args, backend, data, task, settings, resumed):
    """The --resume model (checked against the data), or a new one."""
    if resumed is None:
        model = MLP([data.X.shape[1], *settings["hidden"], task["n_outputs"]],
                    hidden_activation=settings["activation"],
                    output_activation=task["output_activation"], loss=task["loss"],
                    backend=backend, device=args.device, dtype=settings["dtype"],
                    seed=settings["seed"], standardize=settings["standardize"])
        model.feature_names_in_ = data.feature_names
        return model
    model = resumed
    if model.layer_sizes[0] != data.X.shape[1] or model.layer_sizes[-1] != task["n_outputs"]:
        raise _Refusal(
            f"--resume {args.resume}: the model maps {model.layer_sizes[0]} features to "
            f"{model.layer_sizes[-1]} outputs, the data has {data.X.shape[1]} features and "
            f"{task['n_outputs']} outputs"
        )
    saved_task = model.metadata.get("task")
    if saved_task and saved_task != task["kind"]:
        raise _Refusal(f"--resume {args.resume}: the model was trained for a {saved_task} "
                       f"task, the data poses a {task['kind']} one")
    names = model.feature_names_in_
    if names is not None and data.feature_names is not None and names != data.feature_names:
        raise _Refusal(f"--resume {args.resume}: the model was trained on the columns "
                       f"{names}, {args.data} has {data.feature_names}")
    return model


def _resumed_model(args, backend):
    if not args.resume:
        return None
    model = MLP.load(args.resume, backend=backend, device=args.device)
    if model.train_state is None:
        raise _Refusal(f"--resume {args.resume}: the checkpoint holds no training state")
    return model


def _train(args):
    _check_outputs(args)
    backend = _backend_arg(args)
    resumed = _resumed_model(args, backend)
    dataset = args.dataset or ("xor" if not args.data else None)
    settings = training_settings(args, dataset, resumed)
    data = load_training_data(args, backend, settings["seed"])
    # Text labels as text: the task sees what the user wrote (classes by name).
    labels = data.y if data.label_names is None else np.asarray(data.label_names)[data.y]
    task, y = task_for(labels, args.task, args.resume, resumed)
    if args.val_split is not None:
        X_train, y_train, X_val, y_val = train_val_split(data.X, y, args.val_split,
                                                         seed=settings["seed"], name="--val-split")
        validation = (X_val, y_val)
    else:
        X_train, y_train, validation = data.X, y, None
    if task["classes"] is not None:
        # The model takes labels, encoding them through the classes_ set below
        # (the ids above drew the stratified split).
        labels_of = np.asarray(task["classes"])
        y_train = labels_of[y_train]
        validation = None if validation is None else (validation[0], labels_of[validation[1]])
    if args.patience is not None and validation is None:
        print("nnbackend: note: --patience without --val-split watches the training loss",
              file=sys.stderr)
    model = _build_model(args, backend, data, task, settings, resumed)
    model.classes_ = task["classes"]  # the labels predict and predict_labels give back
    model.metadata = {"task": task["kind"], "classes": task["classes"], "target": args.target,
                      "source": data.source,
                      "training": {k: settings[k] for k in ("mode", "batch_size", "lr", "epochs",
                                                            "seed", "alpha", "lr_schedule")}}

    # A tqdm bar on a terminal; piped or logged, about 20 plain lines.
    progress = None if args.quiet else EpochProgress(settings["epochs"], sys.stderr, max_lines=20)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hist = model.fit(X_train, y_train, mode=settings["mode"],
                             batch_size=settings["batch_size"], epochs=settings["epochs"],
                             lr=settings["lr"], optimizer=settings["optimizer"],
                             seed=settings["seed"], validation_data=validation,
                             patience=args.patience, resume=bool(args.resume),
                             alpha=settings["alpha"], lr_schedule=settings["lr_schedule"],
                             precision=args.precision,
                             callback=None if progress is None else progress.update)
        finally:
            if progress is not None:
                progress.close()
    seconds = time.perf_counter() - start
    for w in caught:
        # A stopped run's divergence is reported with the summary; a finite
        # but growing loss only by its warning.
        if not (issubclass(w.category, DivergenceWarning) and hist.diverged):
            print(f"nnbackend: warning: {w.message}", file=sys.stderr)
    if not hist.diverged and not loss_finite(model, X_train, y_train):
        # Finite weights, each epoch's loss finite (measured before its steps),
        # yet the last steps' weights overflow: as useless as a diverged fit.
        hist.diverged = ("training diverged in its last epoch: the weights it ended with give "
                         "a NaN or infinite loss (the learning rate may be too large)")
    # Saved before the summary's passes over the data: a failure there (out
    # of memory on a large file, say) loses no trained model.
    saved = args.save if args.save and not hist.diverged else None
    if saved:
        model.save(saved)
    summary = _summary(args, model, hist, settings, data.source, task,
                       (X_train, y_train), validation, seconds)
    summary["saved"] = saved
    return _finish(args, model, hist, summary)


def _summary(args, model, hist, settings, source, task, train, validation, seconds):
    """Everything the run did, enough to repeat it."""
    summary = {
        "source": source, "task": task["kind"], "backend": model.backend.name,
        "device": model.backend.device_spec(), "dtype": model.dtype,
        "layer_sizes": model.layer_sizes, "activation": model.hidden_activation,
        "mode": settings["mode"], "batch_size": hist.batch_size,
        "optimizer": settings["optimizer"], "lr": settings["lr"], "alpha": settings["alpha"],
        "lr_schedule": settings["lr_schedule"], "lr_drops": hist.lr_drops, "seed": settings["seed"],
        "standardize": bool(model.standardize), "epochs": settings["epochs"],
        "epochs_run": hist.epochs,
        "epochs_done": model.train_state.epochs_done if model.train_state else hist.epochs,
        "n_train": int(train[0].shape[0]),
        "n_val": 0 if validation is None else int(validation[0].shape[0]),
        # No epoch run (a divergence in the first): no time per epoch, no rate.
        "seconds": seconds, "seconds_per_epoch": seconds / hist.epochs if hist.epochs else None,
        "samples_per_second": (hist.epochs * train[0].shape[0] / seconds
                               if hist.epochs and seconds > 0 else None),
        "stopped_early": hist.stopped_early, "best_epoch": hist.best_epoch,
        "diverged": hist.diverged, "executor": hist.executor, "precision": hist.precision,
        "backend_choice": hist.backend_choice,
    }
    # Final figures of the kept weights, measured after training.
    for prefix, data in (("train", train), ("val", validation)):
        if data is None:
            continue
        for key, value in model.evaluate(*data).items():
            summary[f"{prefix}_{key}"] = value
        if task["kind"] == "regression":
            # In the target's units (the loss is of the standardized target).
            error = model.backend.to_host(model.predict(data[0])).astype(np.float64)
            target = np.asarray(data[1], dtype=np.float64).reshape(error.shape)
            summary[f"{prefix}_rmse"] = float(np.sqrt(np.mean((error - target) ** 2)))
    return summary


def _finish(args, model, hist, summary):
    """Plot, report; the exit status."""
    if args.plot:
        from .plot import plot_history

        plot_history(hist, args.plot,
                     title=f"{summary['source']}: {model.layer_sizes}, {summary['mode']}")
        summary["plot"] = args.plot
    if args.json:
        print(json_line(summary))
    else:
        _print_summary(summary)
    if hist.diverged:
        kept = f"; {args.save} was not written" if args.save else ""
        print(f"nnbackend: warning: {hist.diverged}{kept}", file=sys.stderr)
        return 1
    return 0


def _print_summary(s):
    print(f"trained {s['layer_sizes']} {s['activation']} on {s['source']} ({s['task']}, "
          f"{s['n_train']} training rows{', standardized' if s['standardize'] else ''}) with "
          f"{s['mode']} descent (batch size {s['batch_size']}, {s['optimizer']}, "
          f"lr {s['lr']:g}, seed {s['seed']})")
    for prefix, label in (("train", "train"), ("val", "validation")):
        if f"{prefix}_loss" in s:
            line = f"{label:10s} loss {s[prefix + '_loss']:.4g}"
            if f"{prefix}_accuracy" in s:
                line += f"  accuracy {s[prefix + '_accuracy']:.2%}"
            if f"{prefix}_rmse" in s:
                line += f"  rmse {s[prefix + '_rmse']:.4g} (target units)"
            print(line)
    stop = ""
    if s["stopped_early"]:
        # (0: a resumed fit's best stayed the weights it resumed from.)
        stop = (f" (stopped early; kept epoch {s['best_epoch']})" if s["best_epoch"] != 0
                else " (stopped early; kept the weights it resumed from)")
    rate = s["samples_per_second"]
    rate = f", {rate:,.0f} samples/s" if rate is not None else ""
    per = s["seconds_per_epoch"]
    per = f": {per * 1e3:.2f} ms/epoch{rate}" if per is not None else ""
    print(f"{s['epochs_run']} of {s['epochs']} epochs in {s['seconds']:.2f} s{stop}{per}")
    if s["diverged"]:
        print(s["diverged"] + ("" if s["saved"] else "; the model was not saved"))
    matmuls = "" if s["precision"] == "highest" else f", {s['precision']} matmuls"
    print(f"backend {s['backend']} on {s['device']}, {s['dtype']}{matmuls}")
    choice = s.get("backend_choice")
    if choice:
        took = choice.get("choice_seconds")
        took = f"; choosing took {took:.2f} s of the time above" if took is not None else ""
        print(f"auto: {choice['reason']}{took}")
    if s["saved"]:
        print(f"model saved to {s['saved']}")
    if "plot" in s:
        print(f"plot written to {s['plot']}")


# -- predict -----------------------------------------------------------------------


def _predict(args):
    check_not_empty((args.out, "--out"))
    if args.out:
        check_writable(args.out, "--out")
        check_not_inputs(args.out, "--out", [(args.model, "--model"), (args.data, "--data")])
    return predict_command(args, _backend_arg(args))


# -- bench -------------------------------------------------------------------------


def _bench(args):
    import subprocess
    import tempfile

    missing = missing_requirements()
    if missing:
        raise _Refusal(missing)
    try:
        suite = suite_dir()
    except ValueError as exc:
        raise _Refusal(str(exc)) from None
    env = bench_environment(args, os.environ)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise _Refusal(f"--out {args.out} is a file, not a directory")
    try:  # before the run: a folder that cannot be made must not cost its timings
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise _Refusal(f"--out {args.out}: {exc.strerror or exc}") from None
    raw = os.path.join(args.out, "results.json")
    with tempfile.TemporaryDirectory(prefix="nnbackend-bench-") as tmp:
        ini = os.path.join(tmp, "pytest.ini")
        with open(ini, "w") as f:
            f.write("[pytest]\n")
        # pytest-benchmark writes its JSON here first: a run that times
        # nothing leaves an empty file, which must not replace the last results.
        fresh = os.path.join(tmp, "results.json")
        command = pytest_command(suite, fresh, args.ratios, ini)
        print("running the benchmark suite: " + " ".join(command[3:]), file=sys.stderr)
        done = subprocess.run(command, env=env)
        results = _bench_results(fresh, done.returncode, args.out)
    results["nnbackend"] = {
        "machine": _machine_line(),
        "command": "nnbackend bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"]
        else "nnbackend bench",
    }
    if done.returncode != 0:
        results["nnbackend"]["failed"] = ("some benchmark cases failed (pytest exit status "
                                          f"{done.returncode}); this report covers the others")
    target = replace_target(raw, "results")
    with open(target + ".part", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(target + ".part", target)
    from .bench.report import write_report

    summary = write_report(raw, args.out)
    print(f"report written to {os.path.join(args.out, 'report.md')}", file=sys.stderr)
    if done.returncode != 0:
        print(f"nnbackend: error: {results['nnbackend']['failed']} (see the suite's output above)",
              file=sys.stderr)
        return 1
    return 0 if summary is not None else 1


def _bench_results(path, returncode, out):
    """The suite's timings from ``path``, or a refusal that says why there are none.

    pytest's 1 is "some cases failed": the others' timings are sound and are
    reported, marked incomplete, and the command still fails. Any other
    status (interrupted, a usage error) or no timing at all is a refusal,
    and ``out`` is left as it was.
    """
    kept = f"; nothing in {out} was changed"
    # 5 is pytest's "no tests collected": as much a run that timed nothing as
    # one whose cases all skipped.
    if returncode not in (0, 1, 5):
        raise _Refusal(f"the benchmark suite failed (pytest exit status {returncode}){kept}")
    try:  # pytest-benchmark writes no file, or an empty one, when nothing ran
        with open(path) as f:
            results = json.load(f)
    except (FileNotFoundError, ValueError):
        results = {}
    except OSError as exc:
        raise _Refusal(f"cannot read the suite's timings {path}: {exc.strerror or exc}{kept}")
    if not results.get("benchmarks"):
        raise _Refusal("no benchmark case was timed (every case skipped or failed: the "
                       f"suite's output above says why){kept}")
    return results


def _machine_line():
    import platform

    from .backends import cpu_name

    parts = [cpu_name(), f"{os.cpu_count()} cores", f"{platform.system()} {platform.machine()}",
             f"Python {platform.python_version()}", f"NumPy {np.__version__}", _blas_text()]
    for name in ("torch", "jax", "cupy"):
        version = library_version(name)
        if version:
            parts.append(f"{name} {version}")
    return ", ".join(parts)


_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _blas_text():
    """NumPy's BLAS and its thread count, for the report's machine line.

    The CPU ratios move with it: on a 2-core VM, OpenBLAS's second thread
    made the NumPy batch epoch's small chunk products slower and noisier
    (issue 15's closing note), so a figure without it is half a figure.
    threadpoolctl (scikit-learn's) says what the library runs with; without
    it, the environment variables that set it are named.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        try:
            blas = [d for d in threadpool_info() if d.get("user_api") == "blas"]
        except Exception:  # a library it cannot query: the line must not cost the report
            blas = []
        if blas:
            return ", ".join(_one_blas(d) for d in blas)
    set_by = [f"{name}={os.environ[name]}" for name in _THREAD_VARIABLES if os.environ.get(name)]
    return "BLAS threads: " + (", ".join(set_by) if set_by else "the library's default")


def _one_blas(info):
    """``openblas 0.3.31 with 1 thread`` from one of threadpoolctl's entries."""
    name = " ".join(str(info[k]) for k in ("internal_api", "version") if info.get(k)) or "BLAS"
    threads = info.get("num_threads")
    return f"{name} with {threads} thread{'' if threads == 1 else 's'}"


_COMMANDS = {"train": _train, "predict": _predict, "evaluate": lambda args: evaluate_command(
    args, _backend_arg(args)), "info": info_command, "bench": _bench}
with_auto(_COMMANDS)  # backend="auto": `bench --calibrate`, and `info`'s profile and picks


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error(f"choose a command: {', '.join(_COMMANDS)} "
                     f"(nnbackend COMMAND --help shows its flags; nnbackend --help, all)")
    formatwarning = warnings.formatwarning
    # A warning shown is one line, as a refusal is (not Python's file:line and source).
    warnings.formatwarning = lambda message, *_, **__: f"nnbackend: warning: {message}\n"
    try:
        status = _COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe is found here, not at exit
        return status
    except BrokenPipeError:
        # `nnbackend train | head -1`: the reader has gone, as for any
        # command-line tool; stop quietly (128 + SIGPIPE, as a shell reports it).
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass
        return 141
    except (_Refusal, ValueError, TypeError, BackendUnavailableError, DatasetUnavailableError,
            RuntimeError, OSError, EOFError, MemoryError) as exc:
        if os.environ.get("NNBACKEND_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, MemoryError):
            message = f"out of memory: {message}"
        parser.exit(2, f"nnbackend: error: {message}\n")
    except KeyboardInterrupt:
        parser.exit(130, "nnbackend: interrupted\n")
    finally:
        warnings.formatwarning = formatwarning


if __name__ == "__main__":
    sys.exit(main())
