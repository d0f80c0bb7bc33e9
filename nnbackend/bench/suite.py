"""The ``nnbackend bench`` command's flags, the suite environment they make,
and the pytest command that runs the suite.

``nnbackend/cli.py`` builds the parser and runs the command; what the flags
mean for the suite's ``conftest.py`` (which reads the environment), where the
suite is and what it needs live here, beside the workloads it selects.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from ..backends import get_backend
from ..backends.precision import PRECISIONS, check_precision
from ..data import MODES
from .models import MODEL_ORDER, workload

__all__ = ["BENCH_REQUIREMENTS", "add_bench_arguments", "bench_environment",
           "missing_requirements", "mode_sizes", "number_list", "pytest_command", "suite_dir"]

# What the benchmark runs on, as (module, distribution): all of them are in
# the ``bench`` extra.
BENCH_REQUIREMENTS = (("pytest", "pytest"), ("pytest_benchmark", "pytest-benchmark"),
                      ("matplotlib", "matplotlib"))


def add_bench_arguments(parser):
    """The ``bench`` subcommand's flags, on its argparse parser."""
    parser.add_argument("--backends", default=None,
                        help="comma list of nnbackend backends (name or name:device); "
                             "default: numpy,torch,jax,cupy where usable")
    parser.add_argument("--models", default=None,
                        help="comma list of benchmark models: small ([32,64,1] sigmoid, SGD; "
                             "the default), small16 ([16,32,1], the same), mnist "
                             "([784,1024,1024,10] relu, softmax cross-entropy, Adam; batch and "
                             "minibatch 256), mid ([784,256,256,10] relu, softmax "
                             "cross-entropy, SGD; minibatch 64 and sgd)")
    parser.add_argument("--modes", default="batch,minibatch,sgd",
                        help="comma list of modes (default batch,minibatch,sgd)")
    parser.add_argument("--sizes", default=None,
                        help="comma list of N for the small model (default 1e3,1e4,1e5,1e6)")
    parser.add_argument("--mnist-sizes", default=None,
                        help="comma list of N for the mnist model (default 1e4,6e4,1e6; "
                             "its minibatch runs stop at 6e4)")
    parser.add_argument("--mnist-cpu-max", default=None,
                        help="largest N of the mnist model on a CPU (default 6e4)")
    parser.add_argument("--mid-sizes", default=None,
                        help="comma list of N for the mid model (default 1e3,1e4; sgd mode "
                             "stops at --sgd-max)")
    parser.add_argument("--mode-sizes", default=None, metavar="[MODEL:]MODE=N,N;...",
                        help="N lists for one model and mode, in place of the size flags "
                             "(and --sgd-max) there, e.g. 'small:minibatch=1e5;mid:sgd=1e3'; "
                             "without MODEL: for every model")
    parser.add_argument("--sgd-max", default=None, help="largest N for sgd mode (default 1e4)")
    parser.add_argument("--target-n", default=None,
                        help="N of the time-to-target runs (default 1e4; --quick: 2e3; "
                             "0 skips them)")
    parser.add_argument("--target-seconds", default=None, metavar="SECONDS",
                        help="the time-to-target runs' budget in seconds of training, the same "
                             "for every backend (default 30; --quick: 5)")
    parser.add_argument("--target-epochs", default=None, metavar="EPOCHS",
                        help="a budget in epochs instead (a whole number >= 1), the same for "
                             "every backend, with no time limit (not with --target-seconds; "
                             "--target-n 0 runs none)")
    parser.add_argument("--rerun-seconds", default=None, metavar="SECONDS",
                        help="a case whose rounds' IQR exceeds half their median is timed "
                             "again while it stays so, for at most this many extra seconds "
                             "(default 4; 0: no re-runs); the report says how many re-runs")
    parser.add_argument("--rerun-total", default=None, metavar="SECONDS",
                        help="at most this many extra seconds of re-runs in the whole run "
                             "(default 60)")
    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="the float32 matmuls' precision in every case, the peers' "
                             "included: highest (full float32) or tf32 (tensor cores on a "
                             "GPU); default: each library as it is set")
    parser.add_argument("--no-peers", action="store_true",
                        help="skip the hand-written peers (numpy-seed, torch-eager, "
                             "cupy-eager, the JAX loops)")
    parser.add_argument("--gpu-peers", action="store_true",
                        help="time only the peers that run on a GPU (torch-eager-cuda, "
                             "cupy-eager, the JAX loops on a GPU): a GPU check's")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (1e3, 1e4; sgd to 1e3) for a first look in about "
                             "a minute")
    parser.add_argument("--ratios", nargs="?", const="all", default=None,
                        choices=("all", "cpu", "gpu"),
                        help="also time the speed targets as interleaved pairs "
                             "(nnbackend/bench/cases/test_ratios.py: a few minutes more); "
                             "'cpu' or 'gpu' picks the pairs with no GPU side or with one; "
                             "--modes, and --models where given, pick among them too "
                             "(--backends does not: each pair runs on its own)")
    parser.add_argument("--time-budget", default=None, metavar="SECONDS",
                        help="start no case after this many seconds: the rest skip (listed "
                             "in the log) and the report covers what ran (to fit a lease)")
    parser.add_argument("--calibrate", action="store_true",
                        help="measure this machine's profile for backend='auto' instead (about "
                             "2 minutes; --backends, --modes, --quick and --time-budget apply) "
                             "and write it to the cache directory (nnbackend/cli_auto.py)")
    parser.add_argument("--out", default="bench_results", metavar="DIR",
                        help="where the JSON, report.md and PNGs go (default: bench_results)")


def number_list(text, flag, minimum=0):
    """``"1e3, 1e4"`` as ``"1000,10000"``; ValueError naming ``flag`` otherwise
    (a number below ``minimum``, inf or nan among them)."""
    try:
        values = [int(float(v)) for v in text.split(",") if v.strip()]
    except (ValueError, OverflowError):
        raise ValueError(f"{flag}: expected comma-separated finite numbers like 1e3,1e4; "
                         f"got {text!r}") from None
    if not values or any(v < minimum for v in values):
        raise ValueError(f"{flag}: expected numbers >= {minimum}; got {text!r}")
    return ",".join(str(v) for v in dict.fromkeys(values))  # 1e3,1000: timed once


def mode_sizes(text):
    """``{(model or None, mode): [N, ...]}`` from ``--mode-sizes``' ``[model:]mode=N,N;...``
    (``NNBACKEND_BENCH_MODE_SIZES``); ValueError (one line) for anything else."""
    out = {}
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        key, sep, values = part.partition("=")
        model, _, mode = key.strip().rpartition(":")
        try:
            sizes = [int(float(v)) for v in values.split(",") if v.strip()]
        except (ValueError, OverflowError):
            sizes = []
        if not sep or mode not in MODES or not sizes or any(n <= 0 for n in sizes) \
                or (model and model not in MODEL_ORDER):
            raise ValueError(f"--mode-sizes: expected [model:]mode=N,N;... (models "
                             f"{', '.join(MODEL_ORDER)}; modes {', '.join(MODES)}); "
                             f"got {part.strip()!r}")
        if model and mode not in workload(model).modes:
            raise ValueError(f"--mode-sizes: the {model} model is not timed in {mode} mode (its "
                             f"modes: {', '.join(workload(model).modes)}); got {part.strip()!r}")
        out[(model or None, mode)] = list(dict.fromkeys(sizes))  # 1e3,1000: timed once
    return out


def _one_number(text, flag, minimum=0):
    value = number_list(text, flag, minimum)
    if "," in value:
        raise ValueError(f"{flag}: expected one number; got {text!r}")
    return value


def _whole_count(text, flag, hint=""):
    """A whole number >= 1 (``1e3`` allowed), as text; ValueError naming ``flag``.

    ``int(float(text))`` would turn 2.5 into 2 and pass 0 on, which the suite
    reads as "unset" (its 30-second default): a budget must be what was asked.
    """
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = 0.0
    if not (1 <= value < float("inf")) or not value.is_integer():
        raise ValueError(f"{flag}: expected one number, a whole number >= 1; got "
                         f"{text!r}{hint}")
    return str(int(value))


def _one_seconds(text, flag, above_zero=False):
    """A number of seconds >= 0, or > 0 where ``above_zero`` (a budget of none would
    time nothing); fractions allowed; as text; ValueError naming ``flag``."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 if above_zero else value >= 0) or value == float("inf"):
        raise ValueError(f"{flag}: expected a number of seconds {'>' if above_zero else '>='} "
                         f"0; got {text!r}")
    return f"{value:g}"


def bench_environment(args, base):
    """The suite's environment (``nnbackend/bench/cases/conftest.py`` reads it): ``base``
    (a mapping, the caller's environment) with the flags' settings added.

    Every flag is checked first: a bad one raises ValueError (a one-line
    message naming it), an unusable backend BackendUnavailableError, before
    anything is timed.
    """
    # The suite is a pytest session of its own: run from a pytest-xdist worker
    # (a test of this command), the worker's variables would make
    # pytest-benchmark believe it is a worker too and refuse --benchmark-only.
    env = {k: v for k, v in base.items() if not k.startswith("PYTEST_XDIST_")}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"--modes: unknown mode(s) {bad}; choose from {list(MODES)}")
    env["NNBACKEND_BENCH_MODES"] = ",".join(modes)
    models = [m.strip() for m in (args.models or "small").split(",") if m.strip()]
    bad = [m for m in models if m not in MODEL_ORDER]
    if bad or not models:
        raise ValueError(f"--models: unknown model(s) {bad}; choose from {list(MODEL_ORDER)}")
    env["NNBACKEND_BENCH_MODELS"] = ",".join(models)
    if not args.ratios and not any(m in workload(x).modes for x in models for m in modes):
        # Nothing to time: say so here, not as "every case skipped or failed" after the run.
        raise ValueError(f"--modes {','.join(modes)}: no case to time for --models "
                         f"{','.join(models)} (" + "; ".join(
                             f"{x} is timed in {', '.join(workload(x).modes)}" for x in models)
                         + ")")
    mnist_sizes = args.mnist_sizes or ("1e3,1e4" if args.quick else None)
    if mnist_sizes:
        env["NNBACKEND_BENCH_MNIST_SIZES"] = number_list(mnist_sizes, "--mnist-sizes", minimum=1)
    if args.mnist_cpu_max:
        env["NNBACKEND_BENCH_MNIST_CPU_MAX"] = _one_number(args.mnist_cpu_max, "--mnist-cpu-max")
    mid_sizes = args.mid_sizes or ("1e3" if args.quick else None)
    if mid_sizes:
        env["NNBACKEND_BENCH_MID_SIZES"] = number_list(mid_sizes, "--mid-sizes", minimum=1)
    if args.mode_sizes:
        mode_sizes(args.mode_sizes)  # refused here, before anything is timed
        env["NNBACKEND_BENCH_MODE_SIZES"] = args.mode_sizes
    if args.backends:
        names = {}  # one name per backend and device: numpy,numpy:cpu is timed once
        for name in (b.strip() for b in args.backends.split(",") if b.strip()):
            backend, _, device = name.partition(":")
            b = get_backend(backend, device or None)  # refuse unusable ones before timing
            names.setdefault((b.name, str(b.device_spec())), name)
        env["NNBACKEND_BENCH_BACKENDS"] = ",".join(names.values())
    sizes = args.sizes or ("1e3,1e4" if args.quick else None)
    if sizes:
        env["NNBACKEND_BENCH_SIZES"] = number_list(sizes, "--sizes", minimum=1)
    sgd_max = args.sgd_max or ("1e3" if args.quick else None)
    if sgd_max:
        env["NNBACKEND_BENCH_SGD_MAX"] = _one_number(sgd_max, "--sgd-max")
    target_n = args.target_n or ("2e3" if args.quick else None)
    if target_n:
        env["NNBACKEND_BENCH_TARGET_N"] = _one_number(target_n, "--target-n")
    if args.target_seconds and args.target_epochs:
        raise ValueError("--target-seconds and --target-epochs: choose one budget, the same "
                         "for every backend")
    if args.target_epochs:
        env["NNBACKEND_BENCH_TARGET_EPOCHS"] = _whole_count(
            args.target_epochs, "--target-epochs",
            " (for no time-to-target runs at all: --target-n 0)")
        env.pop("NNBACKEND_BENCH_TARGET_SECONDS", None)
    elif args.target_seconds:
        env["NNBACKEND_BENCH_TARGET_SECONDS"] = _one_seconds(args.target_seconds,
                                                             "--target-seconds", True)
        env.pop("NNBACKEND_BENCH_TARGET_EPOCHS", None)
    elif args.quick:
        env.setdefault("NNBACKEND_BENCH_TARGET_SECONDS", "5")
    for flag, name in (("rerun_seconds", "RERUN_SECONDS"), ("rerun_total", "RERUN_TOTAL")):
        if getattr(args, flag):
            env[f"NNBACKEND_BENCH_{name}"] = _one_seconds(getattr(args, flag),
                                                          "--" + flag.replace("_", "-"))
    if args.precision:
        env["NNBACKEND_BENCH_PRECISION"] = check_precision(args.precision)
    env["NNBACKEND_BENCH_PEERS"] = "0" if args.no_peers else "gpu" if args.gpu_peers else "1"
    if args.ratios:
        env["NNBACKEND_BENCH_RATIOS"] = args.ratios
        if args.models:  # else every model's pairs, as the targets need
            env["NNBACKEND_BENCH_RATIO_MODELS"] = env["NNBACKEND_BENCH_MODELS"]
        from .cases.test_ratios import _selected

        if not _selected(env):  # a run with no pair would say nothing of them
            pairs = sorted({(c.model, c.mode)
                            for c in _selected({"NNBACKEND_BENCH_RATIOS": args.ratios})})
            raise ValueError(f"--ratios {args.ratios}: no pair in --modes "
                             f"{env['NNBACKEND_BENCH_MODES']} of --models {args.models}; "
                             "its pairs: " + ", ".join(f"{m} {mode}" for m, mode in pairs))
    if args.time_budget:
        env["NNBACKEND_BENCH_BUDGET_SECONDS"] = _one_seconds(args.time_budget, "--time-budget",
                                                               True)
    return env


def missing_requirements(find_spec=importlib.util.find_spec):
    """None if the suite can run here, else one line naming what is missing
    and the ``pip install`` that brings it."""
    missing = [dist for module, dist in BENCH_REQUIREMENTS if find_spec(module) is None]
    if not missing:
        return None
    return (f"nnbackend bench needs {', '.join(missing)}, not installed here: "
            f"pip install 'nnbackend[bench]' (or: pip install {' '.join(missing)})")


def suite_dir():
    """The folder of the benchmark cases: ``$NNBACKEND_BENCH_SUITE`` where set
    (a folder with ``test_epochs.py``, for a suite of one's own), else the
    cases shipped in the package (:mod:`nnbackend.bench.cases`), which an
    installed copy has as much as a source checkout.

    Raises ValueError (one line) for an ``$NNBACKEND_BENCH_SUITE`` without
    ``test_epochs.py``.
    """
    chosen = os.environ.get("NNBACKEND_BENCH_SUITE")
    if chosen:
        if not (Path(chosen) / "test_epochs.py").is_file():
            raise ValueError(f"NNBACKEND_BENCH_SUITE={chosen}: no test_epochs.py there; "
                             "unset it to run the suite that ships with nnbackend")
        return Path(chosen)
    return Path(__file__).resolve().parent / "cases"


def pytest_command(suite, raw_json, ratios, ini_file):
    """The command that runs the suite under pytest-benchmark into ``raw_json``.

    ``ini_file`` (an empty ``[pytest]`` file) and ``--confcutdir`` keep the
    run to the suite's own configuration: an installed package may sit in a
    virtual environment inside some project whose pytest settings and
    ``conftest.py`` files have nothing to do with it. pytest-benchmark's
    storage goes into ``ini_file``'s folder (the caller's temporary one), not
    a ``.benchmarks`` folder in the working directory; its table is left out
    (``--benchmark-quiet``) for the suite's own per-epoch lines.
    """
    # The epoch suite (and on request the interleaved pairs, first: they hold
    # the targets, and a time budget skips what comes last) feeds the report;
    # the memory and dask benchmarks run with pytest on their own.
    files = [str(suite / "test_epochs.py")]
    if ratios:
        files.insert(0, str(suite / "test_ratios.py"))
    # pytest-benchmark's table gives the time of a timed call, which runs
    # epochs_per_call epochs (several for a short epoch), in a column headed
    # as if it were one: read as epochs, a case timed 3 to a call looks 3
    # times slower than it is beside one timed 1 to a call. The conftest
    # prints each case's time per epoch instead (pytest_terminal_summary).
    storage = Path(ini_file).resolve().parent / "benchmark-storage"
    return [sys.executable, "-m", "pytest", *files, "-c", str(ini_file), "--rootdir", str(suite),
            "--confcutdir", str(suite), "-q", "-rs", "-p", "no:cacheprovider",
            "--benchmark-only", f"--benchmark-json={raw_json}", "--benchmark-quiet",
            f"--benchmark-storage=file://{storage}"]
