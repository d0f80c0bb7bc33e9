"""Configuration of the benchmark suite, from the environment.

``nnbackend bench`` sets these; run by hand (``pytest benchmarks``, whose
``conftest.py`` imports this one) they default to the full suite (with
``--benchmark-disable``, as CI runs it, to a tiny smoke size).

NNBACKEND_BENCH_MODELS     comma list of models (default: small); see nnbackend/bench/models.py:
                           small = [32,64,1] sigmoid, SGD; mnist = [784,1024,1024,10] relu,
                           softmax cross-entropy, Adam, batch and minibatch (256) only;
                           mid = [784,256,256,10] relu, softmax cross-entropy, SGD,
                           minibatch (64) and sgd only
NNBACKEND_BENCH_BACKENDS   comma list of nnbackend backends (default: numpy,torch,jax,cupy
                           where usable; ``name:device`` picks a device); cupy is
                           also timed with executor="reference" (the eager loop)
NNBACKEND_BENCH_MODES      comma list of batch,minibatch,sgd
NNBACKEND_BENCH_SIZES      comma list of N for the small model (default 1000,10000,100000,1000000)
NNBACKEND_BENCH_SGD_MAX    largest N for sgd mode (default 10000: one Python step per row)
NNBACKEND_BENCH_MNIST_SIZES  comma list of N for the mnist model (default 10000,60000,1000000;
                           its mini-batch runs stop at 60000, one MNIST epoch)
NNBACKEND_BENCH_MNIST_CPU_MAX  largest N of the mnist model for what runs on a CPU
                           (default 60000: a batch epoch at 1e6 is ~11 Tflop)
NNBACKEND_BENCH_MID_SIZES  comma list of N for the mid model (default 1000,10000)
NNBACKEND_BENCH_MODE_SIZES  N lists for one model and mode, replacing the lists above (and
                           the sgd maximum) there: ``[model:]mode=N,N;...``, e.g.
                           ``small:minibatch=100000;mid:sgd=1000`` (no model: every model)
NNBACKEND_BENCH_PRECISION  highest or tf32: the float32 matmuls' precision in every case, the
                           peers' included (as a fit's ``precision``); unset, each library
                           runs as it is set. Each case records what ran as ``precision``
NNBACKEND_BENCH_PEERS      1 (default) to time the hand-written peers, 0 not to, gpu for
                           those that run on a GPU only (the GPU check's)
NNBACKEND_BENCH_TARGET_N   N of the time-to-target runs (default 10000; 0 skips them)
NNBACKEND_BENCH_TARGET_SECONDS  the time-to-target runs' budget: give up after this many seconds
                           of training (default 30), the same for every backend
NNBACKEND_BENCH_TARGET_EPOCHS  a budget in epochs instead (no time limit), the same for every
                           backend: where set, the seconds above do not apply
NNBACKEND_BENCH_SECONDS    seconds of timed rounds per epoch benchmark (default 2; at most
                           NNBACKEND_BENCH_MAX_ROUNDS rounds (default 10), at least
                           NNBACKEND_BENCH_MIN_ROUNDS (default 3: a spread needs quartiles))
NNBACKEND_BENCH_RERUN_SECONDS  a case whose rounds' IQR exceeds half their median is timed
                           again (a fresh set of rounds) while it stays so, for at most this
                           many extra seconds (default 4; 0: no re-runs); every attempt is in
                           its extra_info and the report (nnbackend/bench/stability.py)
NNBACKEND_BENCH_RERUN_TOTAL  the same bound for the whole run (default 60)
NNBACKEND_BENCH_BUDGET_SECONDS  once the run is this old, every case not yet started skips
                           (its reason says so) and the run ends normally, its JSON written:
                           how `nnbackend bench --time-budget` fits a device lease
NNBACKEND_BENCH_DEADLINE   the same as a wall-clock time (seconds since the epoch): how a
                           script that runs other parts first gives the rest of its time
NNBACKEND_BENCH_CASE_LOG   a file to which each case's outcome is appended as it ends, one
                           JSON line (see nnbackend/bench/caselog.py): what ran survives a
                           run that is killed before pytest writes its JSON

Every case's outcome (passed, skipped or failed, with the reason) and its
wall time (set-up, warm-up, rounds and clean-up) is also written into the
results JSON as ``cases`` (the report lists those not measured), and the
sizes asked for that the settings above leave out (the sgd maximum, the
mnist model's CPU and mini-batch maxima) as ``dropped``, with why: they never
become cases. After the run, each case's median time per epoch is printed
(``pytest_terminal_summary``), with those sizes.
"""

import gc
import os
import sys
import time

import pytest

import nnbackend as nb
from nnbackend.bench.caselog import CaseLog, entry_from_reports
from nnbackend.bench.stability import machine_load, session_budget
from nnbackend.bench.models import DEFAULT_MODELS, MODEL_ORDER, workload
from nnbackend.bench.report.formatting import fmt_seconds
from nnbackend.bench.suite import mode_sizes

# Under --benchmark-disable (CI) every case runs once at these N (unless set).
SMOKE_N = {"small": 300, "small16": 300, "mnist": 128, "mid": 128}
SIZE_ENV = {"small": "NNBACKEND_BENCH_SIZES", "small16": "NNBACKEND_BENCH_SIZES",
            "mnist": "NNBACKEND_BENCH_MNIST_SIZES", "mid": "NNBACKEND_BENCH_MID_SIZES"}
DEFAULT_SIZES = {"small": ["1e3", "1e4", "1e5", "1e6"], "small16": ["1e3", "1e4", "1e5", "1e6"],
                 "mnist": ["1e4", "6e4", "1e6"], "mid": ["1e3", "1e4"]}


# The peers in the order they run (after nnbackend's cases): what a GPU check
# most needs first.
PEER_PRIORITY = ("torch-eager", "jax-scan-hand", "cupy-eager", "jax-jit-step", "numpy-seed")

_STARTED = time.monotonic()  # the suite's start, near enough: conftest loads first


@pytest.fixture(autouse=True)
def _time_budget():
    """Skip a case that would start after NNBACKEND_BENCH_BUDGET_SECONDS (of the
    run) or after the wall-clock NNBACKEND_BENCH_DEADLINE."""
    budget = os.environ.get("NNBACKEND_BENCH_BUDGET_SECONDS")
    if budget and time.monotonic() - _STARTED > float(budget):
        pytest.skip(f"the run's time budget of {float(budget):g} s is spent "
                    "(NNBACKEND_BENCH_BUDGET_SECONDS)")
    deadline = os.environ.get("NNBACKEND_BENCH_DEADLINE")
    if deadline and time.time() > float(deadline):
        pytest.skip("the run's deadline has passed (NNBACKEND_BENCH_DEADLINE: "
                    f"{time.time() - _STARTED:.0f} s into the run)")


# Each case's outcome and wall time (nnbackend/bench/caselog.py): into the
# results JSON as "cases", and line by line into NNBACKEND_BENCH_CASE_LOG.
_CASE_LOG = CaseLog(os.environ.get("NNBACKEND_BENCH_CASE_LOG"))
_REPORTS = {}
_CONFIG = []


_LOAD = {}  # the machine's load and thread pools at the start and the end


def pytest_configure(config):
    _CONFIG[:] = [config]
    _never_fail(_LOAD.setdefault, "start", machine_load())


def pytest_collection_finish(session):
    _never_fail(_CASE_LOG.collected, [item.name for item in session.items])
    if _DROPPED:  # a run rebuilt from its log lists them too
        _never_fail(_CASE_LOG.write, {"dropped": list(_DROPPED)})


def pytest_runtest_logreport(report):
    _never_fail(_log_report, report)


def _never_fail(fn, *args):
    """The case log is a record of the run: it must never stop the run itself."""
    try:
        fn(*args)
    except Exception as exc:  # an unwritable log file, a record it cannot make
        print(f"nnbackend bench: the case log failed ({type(exc).__name__}: {exc})",
              file=sys.stderr)


def _log_report(report):
    _REPORTS.setdefault(report.nodeid, []).append(report)
    if report.when != "teardown":
        return
    reports = _REPORTS.pop(report.nodeid)
    name = report.nodeid.rpartition("::")[2]
    entry = entry_from_reports(name, reports)
    if entry["outcome"] == "skipped" and entry["reason"].startswith("got empty parameter set"):
        return  # a test with no case here (no time-to-target runs asked for): nothing to say
    _CASE_LOG.add(entry, _benchmark_record(report.nodeid) if entry["outcome"] == "passed"
                  else None)


def _benchmark_record(nodeid):
    """The pytest-benchmark record of the case ``nodeid`` (as its JSON will hold it), or None."""
    session = getattr(_CONFIG[0], "_benchmarksession", None) if _CONFIG else None
    for bench in reversed(getattr(session, "benchmarks", None) or []):
        if getattr(bench, "fullname", None) == nodeid:
            try:
                return bench.as_dict(include_data=True)
            except Exception:  # a record it cannot make: the entry still says what ran
                return None
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["cases"] = list(_CASE_LOG.entries)
    output_json["dropped"] = list(_DROPPED)
    # The report's header: how busy the machine was and with how many threads
    # the libraries ran; and what the re-runs of noisy cases spent.
    budget = session_budget()
    output_json["bench_environment"] = {
        "start": _LOAD.get("start"), "end": machine_load(),
        "reruns": {"per_case": budget.per_case, "total": budget.total, "spent": budget.spent}}


def pytest_terminal_summary(terminalreporter):
    """Each case's time per epoch, and the sizes the settings left out, after the run.

    ``nnbackend bench`` runs pytest-benchmark with its table turned off: the
    table times a call, which runs ``epochs_per_call`` epochs, under a
    heading that reads as one (and compares cases timed in calls of
    different lengths). These lines give the per-epoch figure report.md has.
    """
    if _disabled(terminalreporter.config):
        return  # nothing was timed (CI's smoke run)
    session = getattr(terminalreporter.config, "_benchmarksession", None)
    try:
        ran = getattr(session, "benchmarks", None) or []
        records = [(b.name, dict(b.extra_info)) for b in ran
                   if isinstance(getattr(b, "extra_info", None), dict)]
        lines = summary_lines(records, _DROPPED)
    except Exception as exc:  # a record it cannot read: the run and its JSON still stand
        lines = [f"(per-epoch summary not available: {type(exc).__name__}: {exc})"]
    if lines:
        terminalreporter.write_sep("-", "nnbackend bench summary")
        for line in lines:
            terminalreporter.write_line(line)


def _duration(seconds):
    # ASCII only ("us", "-"): a terminal that cannot print "µ" must not cost the summary.
    text = fmt_seconds(seconds) if isinstance(seconds, (int, float)) else "-"
    return text.replace("µ", "u").replace("—", "-")


def summary_lines(records, dropped=()):
    """The lines :func:`pytest_terminal_summary` prints, from ``(name, extra_info)``
    pairs of the benchmarks that ran and ``dropped`` (:func:`dropped_entries`)."""
    out = []
    epochs = [(name, info) for name, info in records if info.get("kind") == "epoch"]
    if epochs:
        out.append("Median time per epoch (each timed call ran the epochs shown, and its time "
                   "is divided by them; report.md has the spread and the speedups):")
        width = max(len(name) for name, _ in epochs)
        for name, info in epochs:
            k = info.get("epochs_per_call") or 1
            out.append(f"  {name:<{width}}  {_duration(info.get('seconds_per_epoch')):>10} "
                       f"per epoch  ({k} epoch{'' if k == 1 else 's'} a call)")
    targets = [(name, info) for name, info in records if info.get("kind") == "time_to_target"]
    if targets:
        out.append("Time to the target loss:")
    for name, info in targets:
        got = (f"reached in {_duration(info.get('seconds'))}" if info.get("reached")
               else "not reached within its budget")
        out.append(f"  {name}: {got} ({info.get('epochs')} epochs)")
    ratios = [(name, info) for name, info in records if info.get("kind") == "ratio"
              and isinstance(info.get("ratio"), (int, float))]
    if ratios:
        out.append("Interleaved pairs (ratio of the two sides' median epoch times):")
    for name, info in ratios:
        target = info.get("target")
        met = "" if target is None else \
            f"; target {'<=' if info.get('sense') == 'max' else '>='} {target:g}: " \
            f"{'met' if info.get('met') else 'NOT met'}"
        out.append(f"  {name}: {info.get('label')} = {info['ratio']:.3g}{met}")
    if dropped:
        out.append("Left out by the run's settings (listed in report.md's \"Cases not "
                   "measured\"):")
        for d in dropped:
            out.append(f"  {d['model']} {d['mode']} N = {d['n_samples']:,} "
                       f"({', '.join(d['implementations'])}): {d['reason']}")
    return out


# Pools holding less than this after a case keep it for the next (a full
# collection costs tenths of a second with torch, JAX and CuPy loaded).
RELEASE_BYTES = int(float(os.environ.get("NNBACKEND_BENCH_RELEASE_BYTES", str(1 << 30))))


@pytest.fixture(autouse=True)
def _release_gpu_pools():
    """After each case, hand the memory CuPy's and torch's pools keep back to the
    device: the libraries share one GPU in this process, and an mnist batch
    epoch at N = 1e6 leaves gigabytes cached in whichever pool ran it. Pools
    under RELEASE_BYTES together (NNBACKEND_BENCH_RELEASE_BYTES) are left."""
    yield
    cupy, torch = sys.modules.get("cupy"), sys.modules.get("torch")
    torch_gpu = torch is not None and torch.cuda.is_initialized()
    if cupy is None and not torch_gpu:
        return  # no GPU pool in use (a CPU run): spare it the collection
    try:
        pooled = (cupy.get_default_memory_pool().total_bytes() if cupy is not None else 0) \
            + (torch.cuda.memory_reserved() if torch_gpu else 0)
    except Exception:  # a library that cannot say: release, as if it held much
        pooled = RELEASE_BYTES
    if pooled < RELEASE_BYTES:
        return
    gc.collect()  # the finished case's arrays, before their blocks can be freed
    try:
        if cupy is not None:
            cupy.get_default_memory_pool().free_all_blocks()
        if torch_gpu:
            torch.cuda.empty_cache()
    except Exception:  # a library without a usable GPU: nothing was cached there
        pass


def _env_list(name, default, env=None):
    text = (os.environ if env is None else env).get(name)
    return [s.strip() for s in text.split(",") if s.strip()] if text else list(default)


def _env_sizes(name, default, env=None):
    # 1e3,1000 set by hand is timed once, as `nnbackend bench --sizes` gives it.
    return list(dict.fromkeys(int(float(s)) for s in _env_list(name, default, env)))


def _disabled(config):
    return config.getoption("benchmark_disable", default=False)


def epoch_cases(env=None, smoke=False, usable=None, on_gpu=None, cuda_torch=None,
                dropped=None):
    """The epoch cases the environment asks for, in the order they run:
    ``(model, implementation, where, mode, N)`` tuples: nnbackend's, model by
    model, then the peers' on a GPU (in :data:`PEER_PRIORITY` order), then
    the peers' on the CPU alone (numpy-seed, torch-eager-cpu).

    ``env`` defaults to ``os.environ``; ``usable`` (the backends usable here),
    ``on_gpu(where) -> bool`` and ``cuda_torch() -> bool`` to what this
    machine has (a test passes a GPU machine's). ``dropped``, a list, gets
    ``(case, reason)`` for each size asked for that the settings leave out
    (above the sgd maximum, the mnist model's CPU maximum or its mini-batch
    maximum), ``case`` as above: they never become cases, so without this
    nothing would say why their tables stop short.
    """
    env = os.environ if env is None else env
    usable = nb.available_backends() if usable is None else usable
    # The smoke run covers every model, so none can rot.
    models = _env_list("NNBACKEND_BENCH_MODELS", MODEL_ORDER if smoke else DEFAULT_MODELS, env)
    for name in models:
        workload(name)  # an unknown name fails collection with the choices
    small_sizes = _env_sizes("NNBACKEND_BENCH_SIZES", DEFAULT_SIZES["small"], env)
    sizes = {name: _env_sizes(SIZE_ENV[name], DEFAULT_SIZES[name], env) for name in MODEL_ORDER}
    sizes.update(small=small_sizes, small16=small_sizes)
    if smoke:
        sizes.update((name, [n]) for name, n in SMOKE_N.items() if not env.get(SIZE_ENV[name]))
    per_mode = mode_sizes(env.get("NNBACKEND_BENCH_MODE_SIZES"))
    sgd_max = int(float(env.get("NNBACKEND_BENCH_SGD_MAX", "1e4")))
    cpu_max = int(float(env.get("NNBACKEND_BENCH_MNIST_CPU_MAX", "6e4")))
    modes = _env_list("NNBACKEND_BENCH_MODES", ["batch", "minibatch", "sgd"], env)
    backends = _env_list("NNBACKEND_BENCH_BACKENDS",
                         [b for b in ("numpy", "torch", "jax", "cupy") if b in usable], env)
    peers = {"0": False, "gpu": "gpu"}.get(env.get("NNBACKEND_BENCH_PEERS", "1"), True)
    cases = []
    for model in models:
        w = workload(model)
        # Smoke: the other models on the first backend and the peers (they
        # build and run); every backend's code path is the small model's.
        timed = backends[:1] if smoke and model != "small" else backends
        for impl, where, gpu in _implementations(model, timed, usable, peers, on_gpu, cuda_torch):
            for mode in modes:
                chosen = per_mode.get((model, mode), per_mode.get((None, mode)))
                asked = chosen or sizes[model]
                kept = w.sizes_for(mode, asked)
                for n in asked if mode in w.modes else []:
                    why = _left_out(model, mode, n, gpu, n not in kept, chosen, sgd_max, cpu_max)
                    if why is None:
                        cases.append((model, impl, where, mode, n, gpu))
                    elif dropped is not None:
                        dropped.append(((model, impl, where, mode, n), why))
    # nnbackend's cases first, then the peers, PyTorch eager on a GPU first and
    # those on the CPU alone last: where a time budget cuts a run short, it
    # cuts what the GPU figures need least.
    def priority(i):
        model, impl, where, mode, n, gpu = cases[i]
        if impl.startswith("nnbackend"):
            return (0, i)
        rank = PEER_PRIORITY.index(impl) if impl in PEER_PRIORITY else len(PEER_PRIORITY)
        return (1 if gpu else 2, rank, i)

    return [cases[i][:5] for i in sorted(range(len(cases)), key=priority)]


def _left_out(model, mode, n, gpu, above_cap, chosen, sgd_max, cpu_max):
    """Why the settings leave the case of N = ``n`` out (one line), or None to run it."""
    if above_cap:
        cap = workload(model).max_n.get(mode)
        return f"the {model} model's {mode} runs stop at N = {cap:,}"
    if mode == "sgd" and n > sgd_max and not chosen:
        return (f"above --sgd-max ({sgd_max:,}; NNBACKEND_BENCH_SGD_MAX): sgd mode stops "
                "there (one Python step per row)")
    if model == "mnist" and not gpu and n > cpu_max:
        return (f"above --mnist-cpu-max ({cpu_max:,}; NNBACKEND_BENCH_MNIST_CPU_MAX): the "
                "mnist model on a CPU stops there")
    return None


def dropped_entries(dropped):
    """``(case, reason)`` pairs (see :func:`epoch_cases`) as the results JSON's
    ``dropped``: one dict per model, mode, N and reason, with ``model``,
    ``mode``, ``n_samples``, ``implementations`` (``implementation-where``,
    as in the case names) and ``reason``; in the order first met."""
    out = {}
    for (model, impl, where, mode, n), why in dropped:
        entry = out.setdefault((model, mode, n, why), {
            "model": model, "mode": mode, "n_samples": n, "implementations": [],
            "reason": why})
        name = f"{impl}-{where}"
        if name not in entry["implementations"]:
            entry["implementations"].append(name)
    return list(out.values())


# The sizes the settings leave out (dropped_entries), found at collection.
_DROPPED = []


def pytest_generate_tests(metafunc):
    config = metafunc.config
    smoke = _disabled(config)
    if "implementation" in metafunc.fixturenames:
        dropped = []
        params = epoch_cases(smoke=smoke, dropped=dropped)
        _DROPPED[:] = dropped_entries(dropped)
        metafunc.parametrize("model, implementation, where, mode, n_samples", params,
                             ids=[f"{m}-{i}-{w}-{mo}-{n}" for m, i, w, mo, n in params])
    if "target_case" in metafunc.fixturenames:
        usable = nb.available_backends()
        backends = _env_list("NNBACKEND_BENCH_BACKENDS",
                             [b for b in ("numpy", "torch", "jax", "cupy") if b in usable])
        models = _env_list("NNBACKEND_BENCH_MODELS", MODEL_ORDER if smoke else DEFAULT_MODELS)
        modes = _env_list("NNBACKEND_BENCH_MODES", ["batch", "minibatch", "sgd"])
        target_n = int(float(os.environ.get("NNBACKEND_BENCH_TARGET_N", "1e4")))
        if smoke:
            target_n = min(target_n, 300) if target_n else 0
        budget = target_budget(smoke=smoke)
        params = [(b, m, target_n, budget) for b in backends for m in modes
                  if "small" in models] if target_n else []
        metafunc.parametrize("target_case", params, ids=[f"{b}-{m}-{n}" for b, m, n, _ in params])


def target_budget(env=None, smoke=False):
    """The time-to-target runs' budget, one for every backend: ``("epochs", E)``
    where NNBACKEND_BENCH_TARGET_EPOCHS is set (above 0), else ``("seconds", S)``
    (NNBACKEND_BENCH_TARGET_SECONDS; default 30, or 1 under --benchmark-disable)."""
    env = os.environ if env is None else env
    epochs = int(float(env.get("NNBACKEND_BENCH_TARGET_EPOCHS") or 0))
    if epochs > 0:
        return ("epochs", epochs)
    return ("seconds", float(env.get("NNBACKEND_BENCH_TARGET_SECONDS", "1" if smoke else "30")))


def _implementations(model, backends, usable, peers, on_gpu=None, cuda_torch=None):
    """``(implementation, where, on_gpu)`` timed for ``model``; ``peers``: True,
    False or ``"gpu"`` (only the peers that run on a GPU)."""
    on_gpu = {b: (on_gpu or _on_gpu)(b) for b in backends}
    out = [("nnbackend", b, on_gpu[b]) for b in backends]
    if peers == "gpu":
        return out + [p for p in _implementations(model, backends, usable, True, on_gpu.get,
                                                  cuda_torch)[len(out):] if p[2]]
    # On CuPy, auto fuses sgd and small mini-batch epochs into one kernel
    # launch (small models in shared memory, mid's parameters in global
    # memory); the eager reference loop is timed beside it. The mnist network
    # is too big for that kernel: auto is the eager loop there already.
    if model in ("small", "mid"):
        out += [("nnbackend-reference", b, True) for b in backends if b.split(":")[0] == "cupy"]
    if not peers:
        return out
    gpu = any(on_gpu.values())
    if model in ("small", "small16"):
        out.append(("numpy-seed", "cpu", False))
    if model == "small":
        # The hand-written JAX epochs, on each JAX device timed.
        for b in backends:
            name, _, device = b.partition(":")
            if name == "jax":
                out += [("jax-scan-hand", device or "default", on_gpu[b]),
                        ("jax-jit-step", device or "default", on_gpu[b])]
    if "torch" in usable:
        out.append(("torch-eager", "cpu", False))
        if gpu and (cuda_torch or _cuda_torch)():
            out.append(("torch-eager", "cuda", True))
    # Plain CuPy; for mid the eager reference loop above is nnbackend's plain CuPy.
    if model != "mid" and any(b.split(":")[0] == "cupy" for b in backends):
        out.append(("cupy-eager", "cuda", True))
    return out


def _on_gpu(where):
    """Whether the nnbackend backend ``name[:device]`` runs on a GPU (False if unusable).

    Any error counts as unusable (a GPU library that fails to start raises its
    own errors): collecting the suite must not fail on one backend.
    """
    name, _, device = where.partition(":")
    try:
        return nb.get_backend(name, device or None).is_gpu()
    except Exception:
        return False


def _cuda_torch():
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False
