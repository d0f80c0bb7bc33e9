"""The full-batch epoch of the small model [32,64,1] on the GPU: kernels, epochs, PyTorch eager.

First the gradient kernel's phases at N = 1e6 (the kernel with a phase left
out; the update kernel alone; the whole kernel and its reduction with the
gradient in 4x4 blocks only, no strips, to time against). Then for each N:
the ``cupy-batch`` executor's kernels alone (many epochs queued with no host
read between them, then one synchronisation), the batch epoch as a fit runs
it (the epoch's loss read back, so the epoch is done) on cupy, torch:cuda and
jax:gpu (the last two through the DLPack bridge where CuPy is installed),
the eager chunked loop (``executor="reference"``: cuBLAS over chunks), and
PyTorch eager's one-shot full-batch step on the same GPU; and up to
N = 1e6, epochs with nothing read between them: ``epoch.epochs`` over 64
epochs (one launch of the persistent kernel) and a whole batch fit per
epoch on each GPU backend (windows of 64 epochs), on the
benchmark's data (``nnbackend.bench.synthetic.data_for``). Last, for N >= 1e6,
each tile size's epoch (kernels back to back) with its blocks an SM and
registers, with and without the next tile of X prefetched into registers
(the phases at 1e6 also time the full kernel without it). The float32 floor
of the forward and backward passes is 8.6 kFLOP a row at 67 TFLOP/s (an
H100/H200's plain float32 rate). Also checks that the kernels' float64 fit
equals the reference loop to 1e-9 after 3 epochs.

    python benchmarks/batch_kernel_time.py                 # N = 1e3 .. 1e7
    python benchmarks/batch_kernel_time.py 1e3,1e5         # chosen sizes

Without CuPy on a GPU it says so and exits 0. About a minute on an H200.
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


def _grad_task(n):
    """A batch EpochTask for the small model on CuPy, the benchmark's data of ``n`` rows."""
    import cupy

    from nnbackend.bench.synthetic import data_for
    from nnbackend.data import make_plan
    from nnbackend.engine import EpochTask
    from nnbackend.optim import get_optimizer

    backend = nb.get_backend("cupy")
    model = nb.MLP([32, 64, 1], backend=backend, dtype="float32", seed=0)
    X, y = data_for("small", n)
    X, Y = cupy.asarray(X, dtype=cupy.float32), cupy.asarray(y, dtype=cupy.float32).reshape(n, -1)
    opt = get_optimizer("sgd", 0.1)
    task = EpochTask(backend, model.spec, opt, make_plan("batch", n, None), X, Y, n,
                     layer_sizes=[32, 64, 1])
    return task, model.flat_params, opt


def _queued_seconds(run, carry, rounds):
    """Seconds per call of ``carry = run(*carry)``, ``rounds`` calls queued back to
    back after a synchronisation, timed with CUDA events (no host read between)."""
    import cupy

    cupy.cuda.get_current_stream().synchronize()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(rounds):
        carry = run(*carry)
    stop.record()
    stop.synchronize()
    return cupy.cuda.get_elapsed_time(start, stop) / 1e3 / rounds


def _kernel_seconds(n, rounds):
    """Seconds per epoch with ``rounds`` epochs queued back to back (no host read)."""
    from nnbackend.backends.cupy.batch import CupyBatch

    task, params, opt = _grad_task(n)
    epoch = CupyBatch().make_epoch(task)
    return _queued_seconds(lambda p, s: epoch(p, s)[:2], epoch(params, opt.init(params))[:2],
                           rounds)


def _tile_sweep(n, rounds=5):
    """``[(rows, prefetch, blocks, blocks an SM, registers, ms an epoch)]``: the gradient
    and update kernels back to back for each tile size the block's budget allows, with
    and without the next tile of X prefetched into registers, so that a GPU run shows
    which wins at ``n`` rows (the executor picks 128 rows, prefetched, at large N).
    The 128-row tiles go first: a run cut off still has them."""
    import cupy
    from cupy.cuda import driver

    from nnbackend.backends.cupy import batch as B

    task, params, opt = _grad_task(n)
    device = task.backend.device
    limit, n_sms = B.shared_limit(device), B._sm_count(device)
    out = []
    for rows in (128, 64, 32):
        for prefetch in (False, True):
            layout = B.BatchLayout([32, 64, 1], "float32", rows, prefetch=prefetch)
            if not layout.fits(limit):
                continue
            source = B.kernel_source(layout, task.spec, "sgd", "float32", None)
            kernel = cupy.RawKernel(source, "nnb_batch_grad", options=("--std=c++14",))
            if layout.shared_bytes() > B.SHARED_BYTES:
                kernel.max_dynamic_shared_size_bytes = layout.shared_bytes()
            per_sm = int(driver.occupancyMaxActiveBlocksPerMultiprocessor(
                kernel.kernel.ptr, layout.threads, layout.shared_bytes()))
            blocks = layout.grid(n, n_sms, max(1, per_sm))
            with device:
                epoch = B.make_epoch(cupy, task.spec, opt, task.plan, task.X, task.Y, None,
                                     layout, blocks, B.cuda_launcher, device)
            seconds = _queued_seconds(lambda p, s: epoch(p, s)[:2],
                                      epoch(params, opt.init(params))[:2], rounds)
            out.append((rows, prefetch, blocks, per_sm, kernel.num_regs, seconds * 1e3))
    return out


def _phases(n, rounds=20):
    """Microseconds of the gradient kernel with each phase left out, and of the update."""
    import cupy

    from nnbackend.backends.cupy import batch as B

    task, params, _ = _grad_task(n)
    device = task.backend.device
    layout = B.choose_layout([32, 64, 1], "float32", n, B._sm_count(device),
                             B.shared_limit(device))
    per_sm = int(device.attributes["MaxSharedMemoryPerMultiprocessor"])
    blocks = layout.grid(n, B._sm_count(device), max(1, min(8, per_sm // (layout.shared_bytes() + 1024))))
    flat = cupy.concatenate([p.reshape(-1) for p in params])
    partials = cupy.zeros((blocks, layout.n_params + 2), dtype=cupy.float32)
    out = cupy.zeros(2, dtype=cupy.float32)
    scratch = cupy.empty_like(flat)  # the update's new parameters (the kernel leaves flat as it is)
    times = {}
    # The layout the executor picks (X prefetched at this N), the full kernel
    # without the prefetch (what carrying the next tile in registers saves), and
    # the gradient in 4x4 blocks only, none in strips (what the strips save).
    plain = layout.without_prefetch()
    blocks_only = B.BatchLayout(layout.sizes, "float32", layout.rows, layout.threads,
                                layout.prefetch, strips=False)
    for name, parts, used in (("full", ("rows", "reduction"), layout),
                              ("full, X not prefetched", ("rows", "reduction"), plain),
                              ("full, 4x4 blocks only", ("rows", "reduction"), blocks_only),
                              ("rows only", ("rows",), layout),
                              ("reduction only", ("reduction",), layout),
                              ("reduction only, 4x4 blocks only", ("reduction",), blocks_only),
                              ("neither", (), layout)):
        source = B.kernel_source(used, task.spec, "sgd", "float32", None, parts)
        grad, update = B.cuda_launcher(source, used, "float32")
        grad(task.X, task.Y, n, flat, partials, blocks)
        update(partials, blocks, flat, scratch, out, out, 0, 0.0, 0.0, 0.0, 0.0, out)
        for label, run in ((name, lambda: grad(task.X, task.Y, n, flat, partials, blocks)),
                           ("update", lambda: update(partials, blocks, flat, scratch, out, out,
                                                     0, 0.0, 0.0, 0.0, 0.0, out))):
            start, stop = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            for _ in range(rounds):
                run()
            stop.record()
            stop.synchronize()
            times[label] = cupy.cuda.get_elapsed_time(start, stop) * 1e3 / rounds
    return layout, blocks, times


def _usable(name):
    try:
        backend, _, device = name.partition(":")
        nb.get_backend(backend, device or None)
    except Exception:
        return False
    return True


def _persistent_seconds(n, k=64, rounds=3):
    """Seconds per epoch of ``epoch.epochs`` over ``k`` epochs (the persistent kernel's
    one launch where the device takes it), and the path it took."""
    from nnbackend.backends.cupy.batch import CupyBatch

    task, params, opt = _grad_task(n)
    epoch = CupyBatch().make_epoch(task)

    def window(p, s):
        return epoch.epochs(p, s, [None] * k)[:2]

    return _queued_seconds(window, window(params, opt.init(params)), rounds) / k, epoch.path


def _fit_seconds(backend_name, n, short=64, long=192):
    """Seconds per epoch of a batch fit with nothing read between epochs (windows of
    64): the difference of a ``long`` and a ``short`` fit over their epochs, so the
    data's crossing to the device and the set-up cancel."""
    from nnbackend.bench.synthetic import data_for

    name, _, device = backend_name.partition(":")
    X, y = data_for("small", n)
    X, y = X.astype(np.float32), y.astype(np.float32).reshape(n, -1)

    def fit(epochs):
        model = nb.MLP([32, 64, 1], backend=name, device=device or None, dtype="float32",
                       seed=0)
        t0 = time.perf_counter()
        hist = model.fit(X, y, mode="batch", epochs=epochs, lr=0.1)
        _sync()
        return time.perf_counter() - t0, hist

    fit(short)  # warm-up: compilation
    (t_short, _), (t_long, hist) = fit(short), fit(long)
    return (t_long - t_short) / (long - short), hist.window


def _sync():
    """Wait for every GPU library's work (the epoch's loss read already waited for its own)."""
    import cupy

    cupy.cuda.runtime.deviceSynchronize()


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
    sizes = [int(float(s)) for s in (argv[0] if argv else "1e3,1e4,1e5,1e6,1e7").split(",")]
    err, loss_a, loss_b = _float64_check()
    print(f"float64 fit, 3 Adam epochs, cupy-batch vs reference: max |dW| = {err:.2e} "
          f"(losses {loss_a:.12g} / {loss_b:.12g}){'' if err <= 1e-9 else '  NOT within 1e-9'}")
    layout, blocks, phases = _phases(10**6)
    print(f"gradient kernel at N=1e6 ({blocks} blocks of {layout.threads} threads, tiles of "
          f"{layout.rows} rows{', X prefetched' if layout.prefetch else ''}, "
          f"{layout.shared_bytes()} B shared), us: "
          + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
    gpu_backends = [b for b in ("cupy", "torch:cuda", "jax:gpu") if _usable(b)]
    print(f"{'N':>9} {'floor':>8} {'kernels':>8} " + " ".join(f"{b:>10}" for b in gpu_backends)
          + f" {'reference':>9} {'torch eager':>11}  (ms per epoch, medians; ratio: / torch eager)")
    for n in sizes:
        rounds = 20 if n <= 10**6 else 5
        kernels = _kernel_seconds(n, rounds)
        if n <= 10**6:
            try:
                persistent, path = _persistent_seconds(n)
                fits = {b: _fit_seconds(b, n) for b in gpu_backends}
            except Exception as exc:  # the row below stands without it
                print(f"{n:>9.0e} unread epochs: FAILED ({type(exc).__name__}: {exc})")
                persistent = None
        # Nothing read between epochs (targets: <= 15 us at 1e3 and 1e4, 40 at 1e5).
        if n <= 10**6 and persistent is not None:
            print(f"{n:>9.0e} unread epochs: persistent {persistent * 1e6:.2f} us ({path}); fit "
                  + ", ".join(f"{b} {t * 1e6:.2f} us (window {w})" for b, (t, w) in fits.items()),
                  flush=True)
        epochs = {}
        for b in gpu_backends:
            name, _, device = b.partition(":")
            epochs[b] = _median_seconds(nnbackend_epoch(name, device or None, "batch", n)[0],
                                        rounds, _sync)
        reference = _median_seconds(nnbackend_epoch("cupy", None, "batch", n, executor="reference")[0],
                                    min(rounds, 5), _sync)
        eager = float("nan")
        try:
            import torch

            torch_step = torch_eager_epoch("batch", n, device="cuda")[0]
            eager = _median_seconds(torch_step, rounds, _sync)
        except Exception as exc:  # no torch with CUDA here
            print(f"  (no PyTorch eager on the GPU: {exc})")
        floor = n * FLOP_PER_ROW / FP32_RATE
        print(f"{n:>9.0e} {floor * 1e3:8.4f} {kernels * 1e3:8.4f} "
              + " ".join(f"{epochs[b] * 1e3:10.4f}" for b in gpu_backends)
              + f" {reference * 1e3:9.4f} {eager * 1e3:11.4f}  "
              + " ".join(f"{b} {epochs[b] / eager:.3f}" for b in gpu_backends), flush=True)
    for n in [m for m in sizes if m >= 10**6]:
        try:
            sweep = _tile_sweep(n)
        except Exception as exc:  # the figures above stand without it
            print(f"tile sweep at N={n:.0e} failed: {type(exc).__name__}: {exc}")
            continue
        for rows, prefetch, blocks, per_sm, regs, ms in sweep:
            print(f"tiles of {rows:3d} rows{', X prefetched' if prefetch else ''} at N={n:.0e}: "
                  f"{blocks} blocks ({per_sm} an SM, {regs} registers), {ms:.3f} ms an epoch "
                  "(kernels back to back)", flush=True)
    del backend
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
