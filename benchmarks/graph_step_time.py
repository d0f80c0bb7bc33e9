"""Time per step of CuPy's captured steps (``cupy-graphs``) against the eager loop.

The fits the fused kernel declines (batches past 64 rows, or networks past
its work bound) ran the eager loop on CuPy, launch-bound: about 1.2 ms a
[784,1024,1024,10] Adam step of 256 rows on an H200 (2026-12-04), where JAX's
compiled scan took 0.16 ms. ``cupy-graphs`` replays each step as one CUDA
graph. For each configuration this times one epoch of each executor (the best
of three, after one that compiles and captures; ``nnbackend.epoch_function``,
as the benchmark does), and says whether the graphs were kept or the steps
ran eagerly (``epoch.path``).

    python benchmarks/graph_step_time.py [--json out.json]

Without CuPy on a GPU it says so and exits 0. About 15 s on a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import nnbackend as nb
from nnbackend.model import epoch_function

# name, layers, hidden, output, loss, optimizer, lr, batch size, rows
CONFIGS = [
    ("mnist mini-batch 256 adam", [784, 1024, 1024, 10], "relu", "softmax", "cross_entropy",
     "adam", 0.001, 256, 10_240),
    ("mid mini-batch 64 sgd", [784, 256, 256, 10], "relu", "softmax", "cross_entropy", "sgd",
     0.01, 64, 8_192),
    ("small mini-batch 128 sgd", [32, 64, 1], "sigmoid", "sigmoid", "mse", "sgd", 0.1, 128,
     25_600),
]
EXECUTORS = ("reference", "cupy-graphs")


def _data(layers, n):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, layers[0])).astype(np.float32)
    y = rng.integers(0, layers[-1], n) if layers[-1] > 1 else (X[:, 0] > 0).astype(np.float32)
    return X, y


def step_times(backend, config, rounds=3, recorded=None):
    """``({executor: seconds per step}, path)``: the best of ``rounds`` epochs each
    (``nnbackend.epoch_function``: one executor, captured once, as the benchmark
    times it), and how cupy-graphs ran them (``recorded``: the executors made)."""
    name, layers, hidden, output, loss, optimizer, lr, batch_size, n = config
    X, y = _data(layers, n)
    times, path = {}, None
    for executor in EXECUTORS:
        model = nb.MLP(layers, hidden_activation=hidden, output_activation=output, loss=loss,
                       backend=backend, dtype="float32", seed=1)
        step = epoch_function(model, X, y, mode="minibatch", batch_size=batch_size, lr=lr,
                              optimizer=optimizer, seed=4, executor=executor)
        if step.executor != executor:
            raise RuntimeError(f"{name}: {executor} did not run ({step.executor})")
        step()  # compiles, and captures
        if executor == "cupy-graphs" and recorded:
            path = next(e for e in reversed(recorded) if e.name == executor)._last[1].path
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            step()  # returns the epoch's loss: the device is done
            best = min(best, time.perf_counter() - start)
        times[executor] = best / -(-n // batch_size)
    return times, path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    try:
        backend = nb.get_backend("cupy")
    except nb.BackendUnavailableError as exc:
        print(f"graph_step_time: not measured, no GPU for CuPy here ({exc})")
        return 0
    from nnbackend.backends.cupy import CupyBackend

    made = []
    executors = CupyBackend.executors

    def recorded(self):
        made.extend(executors(self))
        return tuple(made[-3:])

    CupyBackend.executors = recorded
    rows = []
    try:
        for config in CONFIGS:
            times, path = step_times(backend, config, recorded=made)
            graphs, eager = times["cupy-graphs"], times["reference"]
            rows.append({"config": config[0], "us_per_step": {k: v * 1e6 for k, v in
                                                             times.items()}, "path": path})
            print(f"{config[0]:<28} cupy-graphs {graphs * 1e6:9.1f} us a step, eager loop "
                  f"{eager * 1e6:9.1f} us ({eager / graphs:.1f}x); {path}", flush=True)
    finally:
        CupyBackend.executors = executors
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": backend.accelerator_name(), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
