"""The profile shipped with the package: ``backend="auto"``'s cost terms per
candidate where this machine has none measured (``nnbackend.autoselect``
reads it; it lives here, with the candidates, because it names backends).

Conservative on purpose. The CPU entries are a calibration of a shared
2-core VM (``benchmarks/results/auto-cpu-2026-12-05``) with every cost
raised by half for the libraries that compile or move data (JAX, torch),
so that without a measured profile auto leaves NumPy only where another
library wins clearly. The GPU entries are estimates from the H200 runs of
2026-12-04 (``benchmarks/results/h200-2026-12-04-gpu-check``: the fused
kernels' µs per step, the full-batch kernels' ms per epoch), raised by half,
with compile times of seconds; they await a calibration on a GPU. A mode's
entry may be keyed ``MODE/EXECUTOR`` for an executor other than the one the
candidate usually runs (torch without CuPy captures CUDA graphs, say).
"""

from __future__ import annotations

__all__ = ["DEFAULT_PROFILE"]


def _terms(executor, launch=0.0, param=0.0, madd=0.0, act=0.0, epoch=0.0, setup=0.0,
           byte=0.0, fwd=0.0, compile_=0.0, compile_layer=0.0):
    return {"executor": executor, "launch_s": launch, "param_s": param, "madd_s": madd,
            "act_s": act, "epoch_s": epoch, "setup_s": setup, "setup_byte_s": byte,
            "setup_madd_s": fwd, "compile_s": compile_, "compile_layer_s": compile_layer}


# A GPU fit's setup: the context's first use aside, a few ms of host work and
# the data's copy at about 10 GB/s (pageable host memory).
_GPU_SETUP = {"setup": 5e-3, "byte": 1e-10, "fwd": 1e-12}
# The CuPy kernels (cupy's own, and torch's and jax's through DLPack): from
# 2.4 µs per [32,64,1] sgd step, 97 µs per [784,256,256,10] one, 18 µs per
# [32,64,1] mini-batch-64 step, 1.1 ms per 10^6-row full-batch epoch.
# Any GPU library's plain loop, where no kernel takes the fit (a custom
# optimizer, a mini-batch too large for the fused kernel): launch-bound, about
# 1 ms an eager step of a small network on an H200 (torch eager, benchmarks/results/h200-*).
_GPU_EAGER = {
    f"{mode}/reference": _terms("reference", launch=1.5e-3, madd=2e-12, epoch=5e-4, **_GPU_SETUP)
    for mode in ("sgd", "minibatch", "batch")
}
_CUPY_KERNELS = {
    "sgd": _terms("cupy-fused", launch=3e-6, param=5e-10, epoch=3e-4, compile_=1.5,
                  **_GPU_SETUP),
    "minibatch": _terms("cupy-fused", launch=3e-6, param=5e-10, madd=1.8e-10, epoch=3e-4,
                        compile_=1.5, **_GPU_SETUP),
    "batch": _terms("cupy-batch", launch=1e-4, madd=7e-13, epoch=3e-4, compile_=1.5,
                    **_GPU_SETUP),
}

DEFAULT_PROFILE = {
    "format": "nnbackend-auto-profile",
    "version": 1,
    "machine": "nnbackend's shipped default",
    "created": "2026-12-05",
    "libraries": {},
    "candidates": {
        # From the VM's calibration of 2026-12-05 07:39 (load average 1.2-1.9),
        # JAX's and torch's terms raised by half.
        "numpy:cpu": {
            "sgd": _terms("reference", launch=2.3e-05, madd=8.7e-10, byte=7.1e-10, fwd=4.8e-11,
                          setup=0.00059),
            "minibatch": _terms("reference", launch=3e-05, madd=8.8e-11, byte=1.2e-09,
                                fwd=2.7e-11, setup=0.00053),
            "batch": _terms("reference", act=1.9e-09, madd=5.8e-11, byte=3.7e-10, setup=0.0004),
        },
        "jax:cpu": {
            "sgd": _terms("jax-scan", compile_=1.4, epoch=0.00063, launch=8.1e-07, madd=4.8e-10,
                          byte=7.2e-09, fwd=6.9e-11, setup=0.0025),
            "minibatch": _terms("jax-scan", act=3.1e-09, compile_layer=0.62, launch=4.7e-06,
                                madd=5.8e-11, param=1.8e-09, byte=4.5e-09, fwd=1.1e-10,
                                setup=0.0023),
            "batch": _terms("jax-batch", act=1.4e-09, compile_layer=0.44, epoch=0.0012,
                            madd=5.7e-11, byte=1.4e-09, setup=0.0038),
        },
        "torch:cpu": {
            "sgd": _terms("reference", launch=0.00014, madd=1.7e-09),
            "minibatch": _terms("reference", launch=0.00019, madd=1.8e-10),
            "batch": _terms("reference", act=3.3e-09, epoch=0.00031, madd=9.3e-11),
        },
        "cupy:gpu": {
            **_CUPY_KERNELS, **_GPU_EAGER,
            # Steps the fused kernel declines, each a replayed CUDA graph: torch's
            # graphs' terms, as a guess (CuPy's have no GPU figure yet).
            "sgd/cupy-graphs": _terms("cupy-graphs", launch=1e-4, param=5e-10, epoch=5e-4,
                                      compile_=0.5, **_GPU_SETUP),
            "minibatch/cupy-graphs": _terms("cupy-graphs", launch=1e-4, param=5e-10,
                                            madd=2e-12, epoch=5e-4, compile_=0.5,
                                            **_GPU_SETUP),
        },
        "torch:gpu": {
            **_CUPY_KERNELS, **_GPU_EAGER,
            # Without CuPy: each step replayed as a CUDA graph (67.9 µs per sgd
            # step before the kernels), batch mode the eager loop (~1.1 ms an epoch).
            "sgd/torch-graphs": _terms("torch-graphs", launch=1e-4, param=5e-10, epoch=5e-4,
                                       compile_=0.5, **_GPU_SETUP),
            "minibatch/torch-graphs": _terms("torch-graphs", launch=1e-4, param=5e-10,
                                             madd=2e-12, epoch=5e-4, compile_=0.5,
                                             **_GPU_SETUP),
            "batch/reference": _terms("reference", launch=1.6e-3, madd=1e-12, epoch=5e-4,
                                      **_GPU_SETUP),
        },
        "jax:gpu": {
            **_CUPY_KERNELS, **_GPU_EAGER,
            # Without CuPy: the compiled scan (11.7 µs per sgd step before the
            # kernels) and the compiled full batch (1.2-2 ms an epoch).
            "sgd/jax-scan": _terms("jax-scan", launch=2e-5, param=5e-10, epoch=1e-3,
                                   compile_=3.0, compile_layer=0.3, **_GPU_SETUP),
            "minibatch/jax-scan": _terms("jax-scan", launch=2e-5, param=5e-10, madd=2e-12,
                                         epoch=1e-3, compile_=3.0, compile_layer=0.3,
                                         **_GPU_SETUP),
            "batch/jax-batch": _terms("jax-batch", launch=2e-3, madd=1e-12, epoch=1e-3,
                                      compile_=3.0, compile_layer=0.3, **_GPU_SETUP),
        },
    },
    # A library's first fit in a process, over its later ones (its import and
    # device listing are paid by auto anyway): JAX compiles its eager operations
    # (0.5-0.8 s on the 2-core VM), a GPU library makes its context and kernels.
    "first_use": {"jax:cpu": 1.0, "torch:cpu": 0.05, "cupy:gpu": 3.0, "torch:gpu": 3.0,
                  "jax:gpu": 5.0},
    # One BLAS thread below 2^25 multiply-adds in a product (a 512x256x256
    # one), the library's own count above it, at most the idle cores.
    "blas": {"threshold_madds": 2 ** 25, "threads": None},
}
