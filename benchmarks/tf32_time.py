"""What ``precision="tf32"`` buys on a GPU: the mnist model's epochs, full float32 against TF32.

For each GPU backend here (cupy, torch:cuda, jax:gpu), the benchmark's
``mnist`` model ([784,1024,1024,10], relu, softmax, cross-entropy, Adam; its
matmuls are what an epoch costs) is trained for one batch-mode epoch and one
mini-batch-256 epoch on N rows of its synthetic data, through
``epoch_function`` (the code every fit runs), once with ``precision="highest"``
and once with ``"tf32"``. It prints the median epoch time of each, their
ratio, the precision the matmuls ran at (``step.precision``: a fit on the
CuPy kernels stays "highest") and the relative gap between the two runs'
losses after the timed epochs. One line per (backend, mode), printed as it
is measured, so a run cut off keeps what it measured.

    python benchmarks/tf32_time.py [N] [--backends cupy,torch:cuda,jax:gpu] [--rounds 5]

N defaults to 1e4. Without a GPU backend it says so and exits 0;
``--backends numpy`` runs the same lines on the CPU (tests do), where both
precisions are full float32.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import nnbackend as nb
from nnbackend.bench.models import workload
from nnbackend.bench.synthetic import data_for
from nnbackend.model import epoch_function

GPU_BACKENDS = "cupy,torch:cuda,jax:gpu"
MODES = (("batch", None), ("minibatch", 256))


def _backend(spec):
    name, _, device = spec.partition(":")
    try:
        return nb.get_backend(name, device or None)
    except (nb.BackendUnavailableError, ValueError) as exc:
        return str(exc).splitlines()[0]


def epoch_seconds(backend, mode, batch_size, precision, n, rounds):
    """``(median seconds an epoch, loss after the last, step.precision, step.executor)``;
    one epoch first, untimed (compilation, cuBLAS's first calls)."""
    w = workload("mnist")
    X, y = data_for("mnist", n)
    model = nb.MLP(list(w.layers), hidden_activation=w.hidden_activation,
                   output_activation=w.output_activation, loss=w.loss, backend=backend,
                   dtype="float32", seed=0)  # the Backend itself: a CuPy device's str is no name
    step = epoch_function(model, X, y, mode=mode, batch_size=batch_size or 32, lr=w.lr,
                          optimizer=w.optimizer, shuffle=False, seed=0, precision=precision)
    step()
    times, loss = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        loss = step()  # a float: reading it waits for the device
        times.append(time.perf_counter() - start)
    return statistics.median(times), loss, step.precision, step.executor


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", default="1e4", help="rows (default 1e4)")
    parser.add_argument("--backends", default=GPU_BACKENDS)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    n = int(float(args.n))
    measured = 0
    for spec in args.backends.split(","):
        backend = _backend(spec)
        if isinstance(backend, str):
            print(f"tf32 {spec}: not here ({backend})", flush=True)
            continue
        for mode, batch_size in MODES:
            label = "batch" if mode == "batch" else f"mini-batch {batch_size}"
            try:
                full, full_loss, _, _ = epoch_seconds(backend, mode, batch_size, "highest", n,
                                                   args.rounds)
                fast, fast_loss, ran, executor = epoch_seconds(backend, mode, batch_size, "tf32", n,
                                                     args.rounds)
            except Exception as exc:  # one backend's failure must not cost the others' lines
                print(f"tf32 {spec} mnist {label} N={n:.0e}: FAILED ({type(exc).__name__}: "
                      f"{exc})", flush=True)
                continue
            gap = abs(fast_loss - full_loss) / abs(full_loss)
            print(f"tf32 {spec} mnist {label} N={n:.0e}: highest {full * 1e3:.2f} ms, "
                  f"tf32 {fast * 1e3:.2f} ms an epoch ({fast / full:.2f}x; {executor}, its "
                  f"matmuls at {ran}); loss gap {gap:.1e}", flush=True)
            measured += 1
    if not measured:
        print("tf32: no backend measured (no GPU here?): every TF32 figure awaits a GPU run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
