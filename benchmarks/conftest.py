"""Configuration of the benchmark suite, from the environment.

``nnbackend bench`` sets these; run by hand they default to the full suite
(with ``--benchmark-disable``, as CI runs it, to a tiny smoke size).

NNBACKEND_BENCH_BACKENDS   comma list of nnbackend backends (default: numpy,torch,jax,cupy
                           where usable; ``name:device`` picks a device); cupy is
                           also timed with executor="reference" (the eager loop)
NNBACKEND_BENCH_MODES      comma list of batch,minibatch,sgd
NNBACKEND_BENCH_SIZES      comma list of N (default 1000,10000,100000,1000000)
NNBACKEND_BENCH_SGD_MAX    largest N for sgd mode (default 10000: one Python step per row)
NNBACKEND_BENCH_PEERS      1 (default) to time the numpy-seed and torch-eager peers, 0 not to
NNBACKEND_BENCH_TARGET_N   N of the time-to-target runs (default 10000; 0 skips them)
NNBACKEND_BENCH_TARGET_SECONDS  give up a time-to-target run after this long (default 30)
"""

import os


import nnbackend as nb


def _env_list(name, default):
    text = os.environ.get(name)
    return [s.strip() for s in text.split(",") if s.strip()] if text else default


def _disabled(config):
    return config.getoption("benchmark_disable", default=False)


def pytest_generate_tests(metafunc):
    config = metafunc.config
    smoke = _disabled(config) and not os.environ.get("NNBACKEND_BENCH_SIZES")
    sizes = [int(float(s)) for s in _env_list("NNBACKEND_BENCH_SIZES", ["1e3", "1e4", "1e5", "1e6"])]
    if smoke:
        sizes = [300]
    sgd_max = int(float(os.environ.get("NNBACKEND_BENCH_SGD_MAX", "1e4")))
    modes = _env_list("NNBACKEND_BENCH_MODES", ["batch", "minibatch", "sgd"])
    usable = nb.available_backends()
    backends = _env_list("NNBACKEND_BENCH_BACKENDS", [b for b in ("numpy", "torch", "jax", "cupy") if b in usable])
    peers = os.environ.get("NNBACKEND_BENCH_PEERS", "1") != "0"
    target_n = int(float(os.environ.get("NNBACKEND_BENCH_TARGET_N", "1e4")))
    if smoke:
        target_n = min(target_n, 300) if target_n else 0

    cases = [(m, n) for m in modes for n in sizes if m != "sgd" or n <= sgd_max]
    if "implementation" in metafunc.fixturenames:
        impls = [("nnbackend", b) for b in backends]
        # On CuPy, auto fuses sgd and small mini-batch epochs into one kernel
        # launch; the eager reference loop is timed beside it.
        impls += [("nnbackend-reference", b) for b in backends if b.split(":")[0] == "cupy"]
        if peers:
            impls.append(("numpy-seed", "numpy"))
            if "jax" in backends:
                impls += [("jax-scan-hand", "cpu"), ("jax-jit-step", "cpu")]
            if "torch" in usable:
                impls.append(("torch-eager", "cpu"))
                if any(b.startswith("torch:cuda") or b == "cupy" for b in backends) and _cuda_torch():
                    impls.append(("torch-eager", "cuda"))
        params = [(impl, where, m, n) for impl, where in impls for m, n in cases]
        metafunc.parametrize("implementation, where, mode, n_samples", params,
                             ids=[f"{i}-{w}-{m}-{n}" for i, w, m, n in params])
    if "target_case" in metafunc.fixturenames:
        seconds = float(os.environ.get("NNBACKEND_BENCH_TARGET_SECONDS", "1" if smoke else "30"))
        params = [(b, m, target_n, seconds) for b in backends for m in modes] if target_n else []
        metafunc.parametrize("target_case", params, ids=[f"{b}-{m}-{n}" for b, m, n, _ in params])


def _cuda_torch():
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
