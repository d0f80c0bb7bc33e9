"""Configuration of the benchmark suite, from the environment.

``nnbackend bench`` sets these; run by hand (``pytest benchmarks``, whose
``conftest.py`` imports this one) they default to the full suite (with
``--benchmark-disable``, as CI runs it, to a tiny smoke size).

NNBACKEND_BENCH_MODELS     comma list of models (default: small); see nnbackend/bench/models.py:
                           small = [32,64,1] sigmoid, SGD; mnist = [784,1024,1024,10] relu,
                           softmax cross-entropy, Adam, batch and minibatch (256) only
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
NNBACKEND_BENCH_PEERS      1 (default) to time the hand-written peers, 0 not to
NNBACKEND_BENCH_TARGET_N   N of the time-to-target runs (default 10000; 0 skips them)
NNBACKEND_BENCH_TARGET_SECONDS  give up a time-to-target run after this long (default 30)
NNBACKEND_BENCH_SECONDS    seconds of timed rounds per epoch benchmark (default 2; at most 10
                           rounds, at least 1)
NNBACKEND_BENCH_BUDGET_SECONDS  once the run is this old, every case not yet started skips
                           (its reason says so) and the run ends normally, its JSON written:
                           how `nnbackend bench --time-budget` fits a device lease
"""

import gc
import os
import sys
import time

import pytest

import nnbackend as nb
from nnbackend.bench.models import DEFAULT_MODELS, MODEL_ORDER, workload

# Under --benchmark-disable (CI) every case runs once at these N (unless set).
SMOKE_N = {"small": 300, "small16": 300, "mnist": 128}
SIZE_ENV = {"small": "NNBACKEND_BENCH_SIZES", "small16": "NNBACKEND_BENCH_SIZES",
            "mnist": "NNBACKEND_BENCH_MNIST_SIZES"}


_STARTED = time.monotonic()  # the suite's start, near enough: conftest loads first


@pytest.fixture(autouse=True)
def _time_budget():
    """Skip a case that would start after NNBACKEND_BENCH_BUDGET_SECONDS."""
    budget = os.environ.get("NNBACKEND_BENCH_BUDGET_SECONDS")
    if budget and time.monotonic() - _STARTED > float(budget):
        pytest.skip(f"the run's time budget of {float(budget):g} s is spent "
                    "(NNBACKEND_BENCH_BUDGET_SECONDS)")


@pytest.fixture(autouse=True)
def _release_gpu_pools():
    """After each case, hand the memory CuPy's and torch's pools keep back to the
    device: the libraries share one GPU in this process, and an mnist batch
    epoch at N = 1e6 leaves gigabytes cached in whichever pool ran it."""
    yield
    cupy, torch = sys.modules.get("cupy"), sys.modules.get("torch")
    torch_gpu = torch is not None and torch.cuda.is_initialized()
    if cupy is None and not torch_gpu:
        return  # no GPU pool in use (a CPU run): spare it the collection
    gc.collect()  # the finished case's arrays, before their blocks can be freed
    try:
        if cupy is not None:
            cupy.get_default_memory_pool().free_all_blocks()
        if torch_gpu:
            torch.cuda.empty_cache()
    except Exception:  # a library without a usable GPU: nothing was cached there
        pass


def _env_list(name, default):
    text = os.environ.get(name)
    return [s.strip() for s in text.split(",") if s.strip()] if text else list(default)


def _env_sizes(name, default):
    return [int(float(s)) for s in _env_list(name, default)]


def _disabled(config):
    return config.getoption("benchmark_disable", default=False)


def pytest_generate_tests(metafunc):
    config = metafunc.config
    smoke = _disabled(config)
    # The smoke run covers every model, so none can rot.
    models = _env_list("NNBACKEND_BENCH_MODELS", MODEL_ORDER if smoke else DEFAULT_MODELS)
    for name in models:
        workload(name)  # an unknown name fails collection with the choices
    small_sizes = _env_sizes("NNBACKEND_BENCH_SIZES", ["1e3", "1e4", "1e5", "1e6"])
    sizes = {"small": small_sizes, "small16": small_sizes,
             "mnist": _env_sizes("NNBACKEND_BENCH_MNIST_SIZES", ["1e4", "6e4", "1e6"])}
    if smoke:
        sizes.update((name, [n]) for name, n in SMOKE_N.items()
                     if not os.environ.get(SIZE_ENV[name]))
    sgd_max = int(float(os.environ.get("NNBACKEND_BENCH_SGD_MAX", "1e4")))
    cpu_max = int(float(os.environ.get("NNBACKEND_BENCH_MNIST_CPU_MAX", "6e4")))
    modes = _env_list("NNBACKEND_BENCH_MODES", ["batch", "minibatch", "sgd"])
    usable = nb.available_backends()
    backends = _env_list("NNBACKEND_BENCH_BACKENDS",
                         [b for b in ("numpy", "torch", "jax", "cupy") if b in usable])
    peers = os.environ.get("NNBACKEND_BENCH_PEERS", "1") != "0"
    target_n = int(float(os.environ.get("NNBACKEND_BENCH_TARGET_N", "1e4")))
    if smoke:
        target_n = min(target_n, 300) if target_n else 0

    if "implementation" in metafunc.fixturenames:
        params = []
        for model in models:
            w = workload(model)
            # Smoke: the mnist workload on the first backend and the peers (it
            # builds and runs); every backend's code path is the small model's.
            timed = backends[:1] if smoke and model != "small" else backends
            for impl, where, gpu in _implementations(model, timed, usable, peers):
                for mode in modes:
                    for n in w.sizes_for(mode, sizes[model]):
                        if mode == "sgd" and n > sgd_max:
                            continue
                        if model == "mnist" and not gpu and n > cpu_max:
                            continue
                        params.append((model, impl, where, mode, n))
        metafunc.parametrize("model, implementation, where, mode, n_samples", params,
                             ids=[f"{m}-{i}-{w}-{mo}-{n}" for m, i, w, mo, n in params])
    if "target_case" in metafunc.fixturenames:
        seconds = float(os.environ.get("NNBACKEND_BENCH_TARGET_SECONDS", "1" if smoke else "30"))
        params = [(b, m, target_n, seconds) for b in backends for m in modes
                  if "small" in models] if target_n else []
        metafunc.parametrize("target_case", params, ids=[f"{b}-{m}-{n}" for b, m, n, _ in params])


def _implementations(model, backends, usable, peers):
    """``(implementation, where, on_gpu)`` timed for ``model``."""
    on_gpu = {b: _on_gpu(b) for b in backends}
    out = [("nnbackend", b, on_gpu[b]) for b in backends]
    # On CuPy, auto fuses sgd and small mini-batch epochs into one kernel
    # launch; the eager reference loop is timed beside it. The mnist network
    # is too big for that kernel: auto is the eager loop there already.
    if model == "small":
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
        if gpu and _cuda_torch():
            out.append(("torch-eager", "cuda", True))
    if any(b.split(":")[0] == "cupy" for b in backends):
        out.append(("cupy-eager", "cuda", True))
    return out


def _on_gpu(where):
    """Whether the nnbackend backend ``name[:device]`` runs on a GPU (False if unusable)."""
    name, _, device = where.partition(":")
    try:
        return nb.get_backend(name, device or None).is_gpu()
    except (nb.BackendUnavailableError, ValueError):
        return False


def _cuda_torch():
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
