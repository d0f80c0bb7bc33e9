"""The matmul floor of the mnist model's batch epoch, against PyTorch eager's epoch.

Issue 26 asks for a [784,1024,1024,10] batch epoch at N = 1e6 in at most
0.8x PyTorch eager's one-shot step on the same card. On the H200
(2026-12-04) nnbackend took 1.06-1.14x of it. Nearly all of that epoch is
eight matrix products: each layer's forward product A_l W_l, its weight
gradient A_l^T dZ_l, and the input gradient dZ_l W_l^T of every layer but the
first, 9.6 TFLOP at N = 1e6. Whatever is fused around them, an epoch that
calls cuBLAS's float32 GEMMs takes at least as long as those eight calls.
This script times them alone, on the same device data, in the same process
as PyTorch eager's epoch and nnbackend's torch:cuda epoch, and says whether
0.8x of the eager epoch is above or below that floor. It also times the same
products with TF32 (``precision="tf32"``, an opt-in) for comparison.

    python benchmarks/gemm_floor.py [--rows 1e6] [--rounds 3] [--device cuda] [--json out.json]

Without a CUDA GPU for torch it says so and exits 0; ``--device cpu`` runs the
same lines on the CPU (the tests do, at a few hundred rows). About 15 s on an
H100 or H200 at 1e6 rows (the data are drawn on the device).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

MODEL = "mnist"
TARGET = 0.8  # of PyTorch eager's epoch (issue 26)


def gemm_shapes(layers, n_rows):
    """``(m, k, n)`` of each product of a batch epoch, forward then backward.

    Parameters
    ----------
    layers : list of int
        Layer sizes, inputs first: ``[n_features, hidden..., n_outputs]``.
    n_rows : int

    Returns
    -------
    list of (int, int, int)
        Forward ``A_l W_l``: (n_rows, fan_in, fan_out); backward, last layer
        first, ``A_l^T dZ_l``: (fan_in, n_rows, fan_out) and, but for the first
        layer, ``dZ_l W_l^T``: (n_rows, fan_out, fan_in).
    """
    pairs = list(zip(layers[:-1], layers[1:]))
    shapes = [(n_rows, fan_in, fan_out) for fan_in, fan_out in pairs]
    for layer in reversed(range(len(pairs))):
        fan_in, fan_out = pairs[layer]
        shapes.append((fan_in, n_rows, fan_out))
        if layer > 0:
            shapes.append((n_rows, fan_out, fan_in))
    return shapes


def flop(shapes):
    """Floating-point operations of ``shapes``' products (2 m k n each)."""
    return sum(2 * m * k * n for m, k, n in shapes)


def matmul_epoch(torch, layers, X, seed=0):
    """``run()``: the products of ``gemm_shapes(layers, len(X))`` on ``X``'s device, into
    buffers made here once (nothing allocated per call), in the epoch's order;
    ``run.buffers`` holds them (W, dW, A: each layer's input, dZ, out)."""
    gen = torch.Generator(device=X.device).manual_seed(seed)
    n_rows, dev = X.shape[0], X.device

    def randn(*shape):
        return torch.randn(*shape, device=dev, dtype=X.dtype, generator=gen) * 0.01

    pairs = list(zip(layers[:-1], layers[1:]))
    W = [randn(fan_in, fan_out) for fan_in, fan_out in pairs]
    dW = [torch.empty_like(w) for w in W]
    # Each layer's input (X, then the hidden activations) and each layer's dL/dz.
    A = [X] + [randn(n_rows, fan_out) for _, fan_out in pairs[:-1]]
    dZ = [randn(n_rows, fan_out) for _, fan_out in pairs]
    out = torch.empty(n_rows, layers[-1], device=dev, dtype=X.dtype)

    def run():
        for layer in range(len(pairs)):
            target = A[layer + 1] if layer + 1 < len(pairs) else out
            torch.matmul(A[layer], W[layer], out=target)
        for layer in reversed(range(len(pairs))):
            torch.matmul(A[layer].T, dZ[layer], out=dW[layer])
            if layer > 0:
                torch.matmul(dZ[layer], W[layer].T, out=dZ[layer - 1])

    run.buffers = {"W": W, "dW": dW, "A": A, "dZ": dZ, "out": out}
    return run


def seconds(torch, device, run, rounds):
    """The median of ``rounds`` timed calls of ``run`` after one untimed (CUDA events
    on a GPU; elsewhere the host clock)."""
    run()
    times = []
    for _ in range(rounds):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            begin = time.perf_counter()
            run()
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


def fp32_peak(torch, device):
    """The card's float32 FMA peak in FLOP/s from its SMs and clock, or None where the
    clock cannot be read (128 FP32 lanes an SM from sm_86 on, 64 before)."""
    if device.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device)
    clock_khz = getattr(props, "clock_rate", None)
    if not clock_khz:
        try:
            import cupy

            clock_khz = cupy.cuda.runtime.getDeviceProperties(device.index or 0)["clockRate"]
        except Exception:  # no CuPy, or it cannot read it: the peak goes unsaid
            return None
    lanes = 128 if (props.major, props.minor) >= (8, 6) else 64
    return 2 * lanes * props.multi_processor_count * clock_khz * 1e3


def measure(torch, device, n_rows, rounds):
    """The figures: the products' seconds in float32 and TF32, PyTorch eager's epoch
    and nnbackend's torch epoch on the same data (batch mode, the mnist model)."""
    import nnbackend as nb
    from nnbackend.bench.models import workload
    from nnbackend.bench.peers import torch_eager_epoch
    from nnbackend.model import epoch_function

    w = workload(MODEL)
    layers = list(w.layers)
    gen = torch.Generator(device=device).manual_seed(0)
    X = torch.randn(n_rows, layers[0], device=device, generator=gen)
    labels = np.random.default_rng(0).integers(0, layers[-1], n_rows)
    shapes = gemm_shapes(layers, n_rows)
    figures = {"rows": n_rows, "model": layers, "tflop": flop(shapes) / 1e12,
               "peak_tflops": None if fp32_peak(torch, device) is None
               else fp32_peak(torch, device) / 1e12}
    run = matmul_epoch(torch, layers, X)
    matmul = torch.backends.cuda.matmul
    tf32 = matmul.allow_tf32
    try:
        matmul.allow_tf32 = False
        figures["matmuls"] = seconds(torch, device, run, rounds)
        matmul.allow_tf32 = True
        figures["matmuls_tf32"] = seconds(torch, device, run, rounds)
    finally:
        matmul.allow_tf32 = tf32
    del run
    if device.type == "cuda":
        torch.cuda.empty_cache()
    y = torch.from_numpy(labels).to(device)
    step, _ = torch_eager_epoch("batch", n_rows, device=str(device), model=MODEL, data=(X, y))
    figures["torch_eager"] = seconds(torch, device, step, rounds)
    del step
    model = nb.MLP(layers, hidden_activation=w.hidden_activation,
                   output_activation=w.output_activation, loss=w.loss, backend="torch",
                   device=str(device), dtype="float32", seed=0)
    step = epoch_function(model, X, labels, mode="batch", lr=w.lr, optimizer=w.optimizer,
                          shuffle=False, seed=0)
    figures["nnbackend_torch"] = seconds(torch, device, step, rounds)
    figures["nnbackend_executor"] = step.executor
    return figures


def summary(f):
    """The figures in words: one line each, and the verdict on the target."""
    eager, floor = f["torch_eager"], f["matmuls"]
    rate = f["tflop"] / floor
    peak = "" if f["peak_tflops"] is None else (
        f", {rate / f['peak_tflops']:.0%} of the card's {f['peak_tflops']:.1f} TFLOP/s "
        "float32 peak")
    target = TARGET * eager
    verdict = ("below the matmuls alone: no float32 epoch built on these GEMMs meets it"
               if target < floor else
               f"above the matmuls alone: {(target - floor) * 1e3:.1f} ms are left for the rest")
    return [
        f"{MODEL} batch epoch, {f['rows']:,} rows: {f['tflop']:.2f} TFLOP of matmuls",
        f"  matmuls alone, float32: {floor * 1e3:.1f} ms ({rate:.1f} TFLOP/s{peak})",
        f"  matmuls alone, TF32:    {f['matmuls_tf32'] * 1e3:.1f} ms",
        f"  PyTorch eager epoch:    {eager * 1e3:.1f} ms (matmuls {floor / eager:.2f} of it)",
        f"  nnbackend torch epoch:  {f['nnbackend_torch'] * 1e3:.1f} ms "
        f"({f['nnbackend_torch'] / eager:.2f}x eager; executor {f['nnbackend_executor']})",
        f"  the target, {TARGET}x eager = {target * 1e3:.1f} ms, is {verdict}",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("gemm_floor: not measured, torch is not installed here")
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gemm_floor: not measured, no CUDA GPU for torch here")
        return 0
    figures = measure(torch, device, int(args.rows), args.rounds)
    figures["device"] = (torch.cuda.get_device_name(device) if device.type == "cuda"
                         else "cpu")
    for line in summary(figures):
        print(line, flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
