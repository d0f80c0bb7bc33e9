"""The full-batch epoch of the small model [32,64,1] on CuPy: kernels, epoch, PyTorch eager.

For each N: the ``cupy-batch`` executor's epoch as a fit runs it (the
epoch's loss read back, so the epoch is done), its kernels alone (many
epochs queued with no host read between them, then one synchronisation),
the eager chunked loop (``executor="reference"``: cuBLAS over chunks), and
PyTorch eager's one-shot full-batch step on the same GPU. The float32 floor
of the forward and backward passes is 8.6 kFLOP a row at 67 TFLOP/s (an
H100/H200's plain float32 rate). Also checks that the kernels' float64 fit
equals the reference loop to 1e-9 after 3 epochs.

    python benchmarks/batch_kernel_time.py                 # N = 1e3 .. 1e7
    python benchmarks/batch_kernel_time.py 1e3,1e5         # chosen sizes

Without CuPy on a GPU it says so and exits 0. About 40 s on an H200.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import nnbackend as nb
from nnbackend.bench.workloads import nnbackend_epoch, torch_eager_epoch

FLOP_PER_ROW = 8.6e3
FP32_RATE = 67e12


def _median_seconds(step, rounds, sync):
    step()  # warm-up: compilation, allocations
    sync()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _kernel_seconds(n, rounds):
    """Seconds per epoch with ``rounds`` epochs queued back to back (no host read)."""
    import cupy

    from nnbackend.backends.cupy.batch import CupyBatch
    from nnbackend.engine import EpochTask
    from nnbackend.data import make_plan
    from nnbackend.optim import get_optimizer

    backend = nb.get_backend("cupy")
    model = nb.MLP([32, 64, 1], backend=backend, dtype="float32", seed=0)
    rng = np.random.default_rng(0)
    X = cupy.asarray(rng.normal(size=(n, 32)), dtype=cupy.float32)
    Y = cupy.asarray(rng.random(size=(n, 1)) > 0.5, dtype=cupy.float32)
    opt = get_optimizer("sgd", 0.1)
    task = EpochTask(backend, model.spec, opt, make_plan("batch", n, None), X, Y, n,
                     layer_sizes=[32, 64, 1])
    epoch = CupyBatch().make_epoch(task)
    params, state = model.flat_params, opt.init(model.flat_params)
    params, state, _, _ = epoch(params, state)
    cupy.cuda.get_current_stream().synchronize()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(rounds):
        params, state, _, _ = epoch(params, state)
    stop.record()
    stop.synchronize()
    return cupy.cuda.get_elapsed_time(start, stop) / 1e3 / rounds


def _float64_check():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 32))
    y = (X[:, :1] > 0).astype(np.float64)
    out = {}
    for executor in ("cupy-batch", "reference"):
        model = nb.MLP([32, 64, 1], backend="cupy", dtype="float64", seed=0)
        hist = model.fit(X, y, mode="batch", epochs=3, lr=0.5, optimizer="adam", executor=executor)
        out[executor] = ([nb.get_backend("cupy").to_host(p) for p in model.flat_params], hist.loss)
    err = max(float(np.max(np.abs(a - b))) for a, b in zip(out["cupy-batch"][0], out["reference"][0]))
    return err, out["cupy-batch"][1][-1], out["reference"][1][-1]


def main(argv):
    try:
        backend = nb.get_backend("cupy")
    except Exception as exc:
        print(f"batch_kernel_time: no CuPy GPU here ({exc}); nothing timed")
        return 0
    import cupy

    sizes = [int(float(s)) for s in (argv[0] if argv else "1e3,1e4,1e5,1e6,1e7").split(",")]
    sync = cupy.cuda.get_current_stream().synchronize
    err, loss_a, loss_b = _float64_check()
    print(f"float64 fit, 3 Adam epochs, cupy-batch vs reference: max |dW| = {err:.2e} "
          f"(losses {loss_a:.12g} / {loss_b:.12g}){'' if err <= 1e-9 else '  NOT within 1e-9'}")
    print(f"{'N':>9} {'floor':>9} {'kernels':>9} {'epoch':>9} {'reference':>10} {'torch eager':>11}"
          "  (ms per epoch, medians)")
    for n in sizes:
        rounds = 20 if n <= 10**6 else 5
        kernels = _kernel_seconds(n, rounds)
        epoch = _median_seconds(nnbackend_epoch("cupy", None, "batch", n)[0], rounds, sync)
        reference = _median_seconds(nnbackend_epoch("cupy", None, "batch", n, executor="reference")[0],
                                    min(rounds, 5), sync)
        try:
            import torch

            torch_step = torch_eager_epoch("batch", n, device="cuda")[0]
            eager = _median_seconds(torch_step, rounds, torch.cuda.synchronize)
        except Exception as exc:  # no torch with CUDA here
            eager, why = float("nan"), exc
        floor = n * FLOP_PER_ROW / FP32_RATE
        print(f"{n:>9.0e} {floor * 1e3:9.4f} {kernels * 1e3:9.4f} {epoch * 1e3:9.4f} "
              f"{reference * 1e3:10.4f} {eager * 1e3:11.4f}   kernels/eager {kernels / eager:.3f}"
              f"  epoch/eager {epoch / eager:.3f}")
    del backend
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
