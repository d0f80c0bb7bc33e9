"""The command line: ``nnbackend train``, ``nnbackend predict``, ``nnbackend info``.

Every refusal (bad argument, unknown name, missing or malformed file,
unusable backend) ends with one line ``nnbackend: error: ...`` on stderr and
exit status 2; no traceback reaches the user (``NNBACKEND_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
import warnings

import numpy as np

from . import __version__
from .backends import BACKEND_NAMES, BackendUnavailableError, get_backend
from .bench.suite import add_bench_arguments, bench_environment
from .data import MODES
from .datasets import (
    DATASETS,
    DatasetUnavailableError,
    encode_labels,
    infer_task,
    load_data_file,
    load_features_file,
    make_dataset,
    train_val_split,
)
from .kernels import HIDDEN_ACTIVATIONS
from .model import MLP
from .optim import OPTIMIZERS
from .training import DivergenceWarning

# Settings per dataset where the flag is not given. XOR and AND are four
# points: full-batch steps with a large rate learn them in a second.
_TINY = {"hidden": [4], "activation": "tanh", "mode": "batch", "epochs": 1000, "lr": 1.0}
_DEFAULTS = {"xor": _TINY, "and": _TINY}
_GENERAL = {"hidden": [64], "activation": "relu", "mode": "minibatch", "epochs": 50, "lr": 0.1}
TASKS = ("binary", "multiclass", "regression")


class _Refusal(Exception):
    """A user error found by the CLI itself."""


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
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
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


def _fraction(text):
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text!r}")
    return value


def _parser():
    parser = _Parser(prog="nnbackend", description="Train and measure MLPs on any array-API backend.")
    parser.add_argument("--version", action="version", version=f"nnbackend {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def backend_flags(p):
        p.add_argument("--backend", default=None,
                       help=f"one of {', '.join(BACKEND_NAMES)} (default: $NNBACKEND_BACKEND or numpy)")
        p.add_argument("--device", default=None, help="the backend's device, e.g. cuda:0 or device1")
        p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="dask backend: a dask.distributed scheduler to run on, e.g. "
                            "tcp://10.0.0.5:8786, or threads (default: "
                            "$NNBACKEND_DASK_SCHEDULER, else Dask's local threads); "
                            "implies --backend dask")

    train = commands.add_parser("train", help="train an MLP (default: XOR with a hidden layer)")
    backend_flags(train)
    data = train.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default=None,
                      help="a generated or bundled dataset (default: xor)")
    data.add_argument("--n-samples", type=_positive_int, default=None, help="rows to generate")
    data.add_argument("--data", metavar="FILE", default=None,
                      help="a .npz with arrays X and y, a .csv (label column named by --target), "
                           "or a .npy of features (labels in --target LABELS.npy; read chunk "
                           "by chunk, out of core, on the dask backend)")
    data.add_argument("--target", default=None,
                      help="the label column of a .csv file, or the labels .npy of a .npy --data")
    data.add_argument("--task", choices=TASKS, default=None,
                      help="override the task read off the labels")
    data.add_argument("--val-split", type=_fraction, default=None,
                      help="hold out this fraction (stratified for classes) for validation")
    net = train.add_argument_group("network and training")
    net.add_argument("--hidden", type=_sizes, default=None, help="hidden layer sizes, e.g. 64,32")
    net.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default=None, help="hidden activation")
    net.add_argument("--mode", choices=MODES, default=None, help="descent mode")
    net.add_argument("--batch-size", type=_positive_int, default=32, help="rows per minibatch step")
    net.add_argument("--epochs", type=_positive_int, default=None)
    net.add_argument("--lr", type=_positive_float, default=None, help="learning rate")
    net.add_argument("--optimizer", choices=list(OPTIMIZERS), default="sgd")
    net.add_argument("--patience", type=_positive_int, default=None,
                     help="stop after this many epochs without improvement")
    net.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    net.add_argument("--seed", type=_seed, default=0)
    out = train.add_argument_group("output")
    out.add_argument("--save", metavar="MODEL.npz", default=None, help="write a checkpoint")
    out.add_argument("--resume", metavar="MODEL.npz", default=None,
                     help="continue training a saved model (its architecture, optimizer state "
                          "and shuffling carry on; give the same data and --optimizer)")
    out.add_argument("--plot", metavar="LOSS.png", default=None, help="write the training curves")
    out.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    out.add_argument("--quiet", action="store_true", help="no per-epoch progress")

    predict = commands.add_parser("predict", help="predict with a saved model")
    backend_flags(predict)
    predict.add_argument("--model", required=True, metavar="MODEL.npz")
    predict.add_argument("--data", required=True, metavar="FILE", help="a .npz with X, or a .csv")
    predict.add_argument("--out", default=None, metavar="PREDS.csv", help="default: stdout")

    bench = commands.add_parser("bench", help="time an epoch of each descent mode as N grows; write a report")
    add_bench_arguments(bench)

    info = commands.add_parser("info", help="the backends on this machine and their devices")
    backend_flags(info)
    info.add_argument("--json", action="store_true")
    return parser


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


def _load_npy_training_data(args, backend):
    """Features from a ``.npy`` (lazily, chunk by chunk, where the backend
    reads rows lazily) and labels from the ``.npy`` named by ``--target``."""
    if not args.target or not args.target.endswith(".npy"):
        raise _Refusal("--data FILE.npy holds the features only; name the labels with "
                       "--target LABELS.npy (one per row)")
    for path in (args.data, args.target):
        if not os.path.isfile(path):
            raise _Refusal(f"no such file: {path}")
    try:
        y = np.load(args.target, allow_pickle=False)  # one label per row: small
        X = get_backend(backend).lazy_rows(args.data)
        if X is None:
            X = np.load(args.data, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise _Refusal(f"cannot read {args.data} or {args.target}: {exc}") from None
    if len(X.shape) != 2 or y.ndim not in (1, 2) or X.shape[0] != y.shape[0]:
        raise _Refusal(f"{args.data} must hold a 2-D array and {args.target} one label per "
                       f"row; got shapes {tuple(X.shape)} and {y.shape}")
    if args.val_split is not None and not isinstance(X, np.ndarray):
        raise _Refusal("--val-split would gather a chunked .npy into memory; split the file "
                       "beforehand")
    return X, y, None, os.path.basename(args.data)


def _load_training_data(args, backend=None):
    if args.data and args.dataset:
        raise _Refusal("give --data or --dataset, not both")
    if args.data and args.data.endswith(".npy"):
        return _load_npy_training_data(args, backend)
    if args.data:
        X, y, names = load_data_file(args.data, target=args.target, return_classes=True)
        source = os.path.basename(args.data)
    else:
        if args.target:
            raise _Refusal("--target names a column of a --data .csv file")
        name = args.dataset or "xor"
        X, y = make_dataset(name, n_samples=args.n_samples, seed=args.seed)
        names, source = None, name
    return X, y, names, source


def _task_for(y, override):
    if override == "regression":
        return {"kind": "regression", "n_outputs": 1 if y.ndim == 1 else y.shape[1],
                "output_activation": "identity", "loss": "mse", "classes": None}
    task = infer_task(y)
    if override and task["kind"] != override:
        if override == "multiclass" and task["kind"] == "binary":
            return {**task, "kind": "multiclass", "n_outputs": 2,
                    "output_activation": "softmax", "loss": "cross_entropy"}
        raise _Refusal(f"--task {override}: the labels look like a {task['kind']} task")
    return task


class _Progress:
    """A progress bar on a terminal; otherwise at most about 20 lines."""

    def __init__(self, epochs, stream, enabled):
        self.epochs, self.stream, self.enabled = epochs, stream, enabled
        self.tty = enabled and stream.isatty()
        self.every = max(1, math.ceil(epochs / 20))
        self.start = time.perf_counter()

    def __call__(self, epoch, figures):
        if not self.enabled:
            return
        text = "  ".join(f"{k} {v:.4g}" for k, v in figures.items())
        if self.tty:
            width = 24
            done = int(width * epoch / self.epochs)
            elapsed = time.perf_counter() - self.start
            bar = "#" * done + "-" * (width - done)
            self.stream.write(f"\r[{bar}] {epoch}/{self.epochs}  {text}  {elapsed:.1f}s\033[K")
            if epoch == self.epochs:
                self.stream.write("\n")
        elif epoch % self.every == 0 or epoch == self.epochs or epoch == 1:
            self.stream.write(f"epoch {epoch}/{self.epochs}  {text}\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")


def _check_writable(path, flag):
    """Refuse an output path up front, not after minutes of training."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise _Refusal(f"{flag} {path}: no such directory {directory}")
    if not os.access(directory, os.W_OK):
        raise _Refusal(f"{flag} {path}: directory {directory} is not writable")
    if os.path.isdir(path):
        raise _Refusal(f"{flag} {path} is a directory")


def _train(args):
    for path, flag in ((args.save, "--save"), (args.plot, "--plot")):
        if path:
            _check_writable(path, flag)
    if args.plot:
        from .plot import require_matplotlib

        require_matplotlib()
    backend = _backend_arg(args)
    X, y, label_names, source = _load_training_data(args, backend)
    task = _task_for(y, args.task)
    if task["classes"] is not None:
        y = encode_labels(y, task["classes"]) if y.ndim == 1 else y
    name = args.dataset or ("xor" if not args.data else None)
    settings = {**_DEFAULTS.get(name, _GENERAL)}
    for key in ("hidden", "activation", "mode", "epochs", "lr"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)

    if args.val_split is not None:
        X_train, y_train, X_val, y_val = train_val_split(X, y, args.val_split, seed=args.seed)
        validation = (X_val, y_val)
    else:
        X_train, y_train, validation = X, y, None
    if args.patience is not None and validation is None:
        print("nnbackend: note: --patience without --val-split watches the training loss",
              file=sys.stderr)

    if args.resume:
        model = MLP.load(args.resume, backend=backend, device=args.device)
        if model.layer_sizes[0] != X.shape[1] or model.layer_sizes[-1] != task["n_outputs"]:
            raise _Refusal(
                f"--resume {args.resume}: the model maps {model.layer_sizes[0]} features to "
                f"{model.layer_sizes[-1]} outputs, the data has {X.shape[1]} features and "
                f"{task['n_outputs']} outputs"
            )
        if model.train_state is None:
            raise _Refusal(f"--resume {args.resume}: the checkpoint holds no training state")
        settings["hidden"] = model.layer_sizes[1:-1]
    else:
        model = MLP([X.shape[1], *settings["hidden"], task["n_outputs"]],
                    hidden_activation=settings["activation"],
                    output_activation=task["output_activation"], loss=task["loss"],
                    backend=backend, device=args.device, dtype=args.dtype, seed=args.seed)
    classes = task["classes"]
    if label_names is not None:
        classes = [label_names[int(c)] for c in classes]
    model.metadata = {"task": task["kind"], "classes": classes, "target": args.target,
                      "source": source}

    progress = _Progress(settings["epochs"], sys.stderr, not args.quiet)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = model.fit(X_train, y_train, mode=settings["mode"], batch_size=args.batch_size,
                         epochs=settings["epochs"], lr=settings["lr"], optimizer=args.optimizer,
                         seed=args.seed, validation_data=validation, patience=args.patience,
                         callback=progress, resume=bool(args.resume))
    seconds = time.perf_counter() - start
    if hist.epochs < settings["epochs"]:
        progress.close()
    for w in caught:
        if not issubclass(w.category, DivergenceWarning):
            print(f"nnbackend: warning: {w.message}", file=sys.stderr)

    summary = {
        "source": source, "task": task["kind"], "backend": model.backend.name,
        "epochs_done": model.train_state.epochs_done if model.train_state else hist.epochs,
        "device": str(model.backend.device), "dtype": model.dtype,
        "layer_sizes": model.layer_sizes, "mode": settings["mode"],
        "batch_size": hist.batch_size, "optimizer": args.optimizer, "lr": settings["lr"],
        "epochs": hist.epochs, "n_train": int(X_train.shape[0]),
        "n_val": 0 if validation is None else int(validation[0].shape[0]),
        "seconds": seconds, "seconds_per_epoch": seconds / max(hist.epochs, 1),
        "samples_per_second": hist.epochs * X_train.shape[0] / seconds if seconds > 0 else None,
        "stopped_early": hist.stopped_early, "best_epoch": hist.best_epoch,
        "diverged": hist.diverged,
    }
    # Final figures of the kept weights, measured after training.
    for prefix, data in (("train", (X_train, y_train)), ("val", validation)):
        if data is not None:
            for key, value in model.evaluate(*data).items():
                summary[f"{prefix}_{key}"] = value
    if args.save:
        model.save(args.save)
        summary["saved"] = args.save
    if args.plot:
        from .plot import plot_history

        plot_history(hist, args.plot, title=f"{source}: {model.layer_sizes}, {settings['mode']}")
        summary["plot"] = args.plot

    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    if hist.diverged:
        print(f"nnbackend: warning: {hist.diverged}", file=sys.stderr)
        return 1
    return 0


def _print_summary(s):
    print(f"trained {s['layer_sizes']} on {s['source']} ({s['task']}, {s['n_train']} training rows) "
          f"with {s['mode']} descent (batch size {s['batch_size']}, {s['optimizer']}, lr {s['lr']:g})")
    for prefix, label in (("train", "train"), ("val", "validation")):
        if f"{prefix}_loss" in s:
            line = f"{label:10s} loss {s[prefix + '_loss']:.4g}"
            if f"{prefix}_accuracy" in s:
                line += f"  accuracy {s[prefix + '_accuracy']:.2%}"
            print(line)
    stop = ""
    if s["stopped_early"]:
        stop = f" (stopped early; kept epoch {s['best_epoch']})"
    print(f"{s['epochs']} epochs in {s['seconds']:.2f} s{stop}: "
          f"{s['seconds_per_epoch'] * 1e3:.2f} ms/epoch, {s['samples_per_second']:,.0f} samples/s")
    print(f"backend {s['backend']} on {s['device']}, {s['dtype']}")
    for key, label in (("saved", "model saved to"), ("plot", "plot written to")):
        if key in s:
            print(f"{label} {s[key]}")


# -- predict -----------------------------------------------------------------------


def _predict(args):
    if args.out:
        _check_writable(args.out, "--out")
    model = MLP.load(args.model, backend=_backend_arg(args), device=args.device)
    X = load_features_file(args.data, drop=model.metadata.get("target"))
    if X.shape[1] != model.layer_sizes[0]:
        raise _Refusal(f"{args.data} has {X.shape[1]} features but the model expects "
                       f"{model.layer_sizes[0]}")
    out = model.backend.to_host(model.predict(X)).astype(np.float64)
    classes = model.metadata.get("classes")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if model.output_activation == "softmax" or (model.output_activation == "sigmoid" and classes):
        if model.output_activation == "sigmoid":
            out = np.concatenate([1 - out, out], axis=1)
        classes = classes or list(range(out.shape[1]))
        writer.writerow(["prediction", *[f"p_{c}" for c in classes]])
        for row in out:
            writer.writerow([classes[int(np.argmax(row))], *[f"{p:.6g}" for p in row]])
    else:
        names = ["prediction"] if out.shape[1] == 1 else [f"prediction_{j}" for j in range(out.shape[1])]
        writer.writerow(names)
        for row in out:
            writer.writerow([f"{v:.8g}" for v in row])
    text = buffer.getvalue()
    if args.out:
        tmp = f"{args.out}.tmp-{os.getpid()}"
        try:
            with open(tmp, "w", newline="") as f:
                f.write(text)
            os.replace(tmp, args.out)
        except OSError as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise _Refusal(f"cannot write {args.out}: {exc.strerror or exc}") from None
        print(f"{len(out)} predictions written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# -- bench -------------------------------------------------------------------------


def _suite_dir():
    """The benchmark suite: beside the package in a source checkout, or ./benchmarks."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    for candidate in (os.environ.get("NNBACKEND_BENCH_SUITE"), here.parent / "benchmarks",
                      Path.cwd() / "benchmarks"):
        if candidate and (Path(candidate) / "test_epochs.py").is_file():
            return Path(candidate)
    raise _Refusal("the benchmark suite (benchmarks/test_epochs.py) was not found: run "
                   "nnbackend bench from a source checkout, or set NNBACKEND_BENCH_SUITE")


def _bench(args):
    import subprocess

    suite = _suite_dir()
    env = bench_environment(args, os.environ)
    os.makedirs(args.out, exist_ok=True)
    raw = os.path.join(args.out, "results.json")
    # The epoch suite (and on request the interleaved pairs, first: they hold
    # the targets, and a time budget skips what comes last) feeds the report;
    # the memory and dask benchmarks run with pytest on their own.
    files = [str(suite / "test_epochs.py")]
    if args.ratios:
        files.insert(0, str(suite / "test_ratios.py"))
    command = [sys.executable, "-m", "pytest", *files, "-q", "-rs", "-p", "no:cacheprovider",
               "--benchmark-only", f"--benchmark-json={raw}", "--benchmark-columns=median,rounds",
               "--benchmark-sort=name"]
    print("running the benchmark suite: " + " ".join(command[3:]), file=sys.stderr)
    done = subprocess.run(command, env=env)
    if done.returncode != 0 or not os.path.isfile(raw):
        raise _Refusal(f"the benchmark suite failed (pytest exit status {done.returncode})")
    with open(raw) as f:
        results = json.load(f)
    results["nnbackend"] = {
        "machine": _machine_line(),
        "command": "nnbackend bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"]
        else "nnbackend bench",
    }
    with open(raw, "w") as f:
        json.dump(results, f, indent=1)
    from .bench.report import write_report

    summary = write_report(raw, args.out)
    print(f"report written to {os.path.join(args.out, 'report.md')}", file=sys.stderr)
    return 0 if summary is not None else 1


def _machine_line():
    import platform

    from .backends import cpu_name

    parts = [cpu_name(), f"{os.cpu_count()} cores", f"{platform.system()} {platform.machine()}",
             f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    for name in ("torch", "jax", "cupy"):
        version = _versions(name)
        if version:
            parts.append(f"{name} {version}")
    return ", ".join(parts)


# -- info --------------------------------------------------------------------------


def _versions(name):
    # A backend without an entry here is a distribution of its own name: a
    # newly added backend must not make `nnbackend info` crash.
    module = {"strict": "array_api_strict"}.get(name, name)
    try:
        from importlib.metadata import version

        dist = {"strict": "array-api-strict"}.get(name, module)
        return version(dist)
    except Exception:
        return None


def _gpus(name):
    """[(device, GPU name, memory in GiB)] that CuPy or torch sees."""
    found = []
    try:
        if name == "cupy":
            import cupy

            for i in range(cupy.cuda.runtime.getDeviceCount()):
                props = cupy.cuda.runtime.getDeviceProperties(i)
                gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
                found.append((f"cuda:{i}", gpu, props["totalGlobalMem"] / 2**30))
        elif name == "torch":
            import torch

            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                found.append((f"cuda:{i}", props.name, props.total_memory / 2**30))
        elif name == "jax":
            import jax

            for d in jax.devices():
                if d.platform != "cpu":
                    found.append((str(d), getattr(d, "device_kind", d.platform), None))
    except Exception:
        pass
    return found


def _info(args):
    names = [args.backend] if args.backend else list(BACKEND_NAMES)
    rows = []
    for name in names:
        row = {"backend": name, "version": _versions(name)}
        try:
            b = get_backend(name, args.device, **(
                {"scheduler": args.scheduler} if args.scheduler and name == "dask" else {}))
        except BackendUnavailableError as exc:
            if args.backend:
                raise
            row.update(available=False, reason=str(exc))
        else:
            row.update(available=True, device=str(b.device),
                       float64="float64" in b.float_dtypes(),
                       gpus=[{"device": d, "name": n, "memory_gib": m} for d, n, m in _gpus(name)])
        rows.append(row)
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        if row["available"]:
            extra = "".join(
                f"\n           GPU {g['device']}: {g['name']}"
                + (f", {g['memory_gib']:.1f} GiB" if g["memory_gib"] else "")
                for g in row["gpus"]
            )
            print(f"{row['backend']:8s} {row['version'] or '':10s} installed  default device "
                  f"{row['device']}  float64 {'yes' if row['float64'] else 'no'}{extra}")
        else:
            print(f"{row['backend']:8s} {row['version'] or '-':10s} not usable: {row['reason']}")
    return 0


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    command = {"train": _train, "predict": _predict, "info": _info, "bench": _bench}[args.command]
    try:
        return command(args)
    except (_Refusal, ValueError, TypeError, BackendUnavailableError, DatasetUnavailableError,
            RuntimeError, OSError) as exc:
        if os.environ.get("NNBACKEND_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        parser.exit(2, f"nnbackend: error: {message}\n")
    except KeyboardInterrupt:
        parser.exit(130, "nnbackend: interrupted\n")


if __name__ == "__main__":
    sys.exit(main())
