"""Time per sgd step of the fused CuPy epoch on [784,256,256,10], against the eager loop.

The fused kernel's target for this network (its parameters in global memory,
each product tiled across one block's warps) is 30 µs a step on an H100/H200
(see nnbackend/backends/cupy/fused.py). The benchmark's ``mid`` model times
that kernel in ``nnbackend bench`` (``gpu_check.sh`` runs it there, not
this script); this times one network by hand. Without CuPy on a GPU it
says so and exits 0.

    python benchmarks/fused_step_time.py            # float32
    python benchmarks/fused_step_time.py float64

Each executor trains one epoch first (NVRTC compiles the kernel, CuPy its
eager kernels), then the best of three timed epochs is taken. A fit's epoch
includes its per-epoch work (one transfer of the epoch's figures), which
at 2,000 steps is a small part of the epoch.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import nnbackend as nb

LAYERS = [784, 256, 256, 10]
# Rows per timed epoch (one sgd step each): the eager loop is ~20x slower a
# step, so it gets fewer.
ROWS = {"cupy-fused": 2000, "reference": 200}


def step_times(backend, dtype="float32", rows=ROWS, rounds=3):
    """``{executor: seconds per sgd step}``, the best of ``rounds`` epochs each."""
    rng = np.random.default_rng(0)
    n = max(rows.values())
    X, y = rng.normal(size=(n, LAYERS[0])), rng.integers(0, LAYERS[-1], n)
    times = {}
    for executor, n_rows in rows.items():
        model = nb.MLP(LAYERS, hidden_activation="relu", output_activation="softmax",
                       loss="cross_entropy", backend=backend, dtype=dtype, seed=1)
        fit = dict(mode="sgd", epochs=1, lr=0.01, seed=4, executor=executor)
        model.fit(X[:n_rows], y[:n_rows], **fit)  # compiles and warms up
        best = float("inf")
        for _ in range(rounds):
            backend.synchronize()
            start = time.perf_counter()
            model.fit(X[:n_rows], y[:n_rows], **fit)
            backend.synchronize()
            best = min(best, time.perf_counter() - start)
        times[executor] = best / n_rows
    return times


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    dtype = argv[0] if argv else "float32"
    label = f"fused cupy sgd step, {LAYERS} {dtype}"
    try:
        backend = nb.get_backend("cupy")
    except nb.BackendUnavailableError as exc:
        print(f"{label}: not measured ({exc})")
        return 0
    times = step_times(backend, dtype)
    fused, eager = times["cupy-fused"], times["reference"]
    print(f"{label}: {fused * 1e6:.1f} us a step (target 30 us on an H100/H200), "
          f"eager loop {eager * 1e6:.1f} us ({eager / fused:.1f}x); "
          f"{backend.accelerator_name() or 'GPU'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
