"""The error TF32 matmuls add to a fit, emulated on the CPU.

``fit(precision="tf32")`` lets cuBLAS (through CuPy, torch or XLA) compute
float32 matmuls on tensor cores: each operand keeps 10 of float32's 23
mantissa bits, and the products are summed in float32. This script runs
the library's own loss and gradient code with a NumPy namespace whose
``matmul`` cuts its operands to TF32 the same way, so the error TF32 adds
can be read on any machine:

* one full-batch gradient of each benchmark model (``small``, ``mid``,
  ``mnist``: see ``nnbackend.bench.models``) on 2048 rows of its synthetic
  data, against float64: the relative error of the loss and of the whole
  gradient (its 2-norm), in float32 and in emulated TF32;
* a short training run (the model's own optimizer, mini-batches, 3 epochs
  on 2048 rows): the relative gap between the final losses of float32 and
  emulated TF32.

Two roundings are emulated: to nearest (``cvt.rna.tf32.f32``, what CUTLASS
does) and truncation (the tensor core reading the top 19 bits of a float32
register, its cheapest form); which one a cuBLAS kernel uses is not
documented, so both are given, and a GPU run (``fit(precision="tf32")``
against ``"highest"``, tests/test_fit_precision.py) measures the real one.

    python benchmarks/tf32_error.py            # about a minute on 2 cores
    python benchmarks/tf32_error.py --json     # the figures as data
"""

from __future__ import annotations

import argparse
import json
import sys

import array_api_compat.numpy as anp
import numpy as np

from nnbackend.backends.base import make_namespace
from nnbackend.bench.models import workload
from nnbackend.bench.synthetic import data_for, initial_params, one_hot
from nnbackend.data import host_rng, make_plan
from nnbackend.engine import run_epoch
from nnbackend.network import NetSpec, loss_and_grads_chunk
from nnbackend.optim import get_optimizer

MODELS = ("small", "mid", "mnist")
ROUNDINGS = ("nearest", "truncate")
N_ROWS, EPOCHS = 2048, 3
# TF32 keeps the top 10 of float32's 23 mantissa bits: 13 go.
_DROPPED_BITS = 13


def tf32(a, rounding="nearest"):
    """Float32 ``a`` cut to TF32 (10 mantissa bits), still stored as float32.

    ``"nearest"`` rounds half away from zero (``cvt.rna``), ``"truncate"``
    drops the bits. Infinities and NaNs are left as they are (values within
    half a TF32 step of float32's largest round to infinity, as on the GPU).
    """
    a = np.asarray(a, dtype=np.float32)
    bits = a.view(np.uint32)
    keep = np.uint32((0xFFFFFFFF << _DROPPED_BITS) & 0xFFFFFFFF)
    if rounding == "nearest":
        cut = (bits + np.uint32(1 << (_DROPPED_BITS - 1))) & keep
    elif rounding == "truncate":
        cut = bits & keep
    else:
        raise ValueError(f"unknown rounding {rounding!r}; choose one of {list(ROUNDINGS)}")
    # A NaN whose payload sits in the dropped bits would become an infinity.
    return np.where(np.isfinite(a), cut, bits).view(np.float32)


def tf32_namespace(rounding):
    """array-api-compat's NumPy whose ``matmul`` takes TF32 operands (float32 sums)."""
    def matmul(x1, x2, /):
        if x1.dtype == np.float32 and x2.dtype == np.float32:
            return np.matmul(tf32(x1, rounding), tf32(x2, rounding))
        return anp.matmul(x1, x2)

    return make_namespace(f"tf32-{rounding}", anp, tf32_namespace.__doc__, matmul=matmul)


def _problem(model):
    w = workload(model)
    X, y = data_for(model, N_ROWS)
    Y = one_hot(y, w.layers[-1]) if y.ndim == 1 else y
    spec = NetSpec(w.hidden_activation, w.output_activation, w.loss, "mean")
    return w, spec, np.asarray(X, np.float32), np.asarray(Y, np.float32)


def _relative(a, b):
    a, b = np.concatenate([np.ravel(x) for x in a]), np.concatenate([np.ravel(x) for x in b])
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def gradient_errors(model):
    """``{precision: (loss error, gradient error)}`` against float64, one full batch."""
    w, spec, X, Y = _problem(model)
    params = initial_params(model)

    def run(xp, dtype):
        loss, grads, _ = loss_and_grads_chunk([p.astype(dtype) for p in params], spec,
                                              X.astype(dtype), Y.astype(dtype), N_ROWS, xp=xp)
        return float(loss), [np.asarray(g, np.float64) for g in grads]

    loss64, grads64 = run(anp, np.float64)
    found = {}
    for name, xp in (("float32", anp), *((f"tf32 ({r})", tf32_namespace(r)) for r in ROUNDINGS)):
        loss, grads = run(xp, np.float32)
        found[name] = (abs(loss - loss64) / abs(loss64), _relative(grads, grads64))
    return found


def training_gaps(model):
    """``{rounding: relative gap}`` between the final training losses of float32
    and emulated TF32 after :data:`EPOCHS` mini-batch epochs."""
    w, spec, X, Y = _problem(model)
    plan = make_plan("minibatch", N_ROWS, w.batch_size, True)

    def final_loss(xp):
        params = [np.asarray(p) for p in initial_params(model)]
        opt = get_optimizer(w.optimizer, w.lr)
        state, rng, loss = opt.init(params), host_rng(0), None
        for _ in range(EPOCHS):
            params, state, loss, _ = run_epoch(params, state, opt, spec, X, Y, plan, rng,
                                               np.int64, N_ROWS, None, xp)
        return float(loss) / N_ROWS

    base = final_loss(anp)
    return base, {r: abs(final_loss(tf32_namespace(r)) - base) / abs(base) for r in ROUNDINGS}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma list of {', '.join(MODELS)}")
    args = parser.parse_args(argv)
    rows = {}
    for model in args.models.split(","):
        base, gaps = training_gaps(model)
        rows[model] = {"gradient": gradient_errors(model), "last_epoch_loss": base,
                       "training_gap": gaps}
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    print(f"one full-batch gradient on {N_ROWS} rows, relative error against float64 "
          "(loss; gradient 2-norm):")
    for model, row in rows.items():
        cells = "   ".join(f"{name}: {loss:.1e}; {grad:.1e}"
                           for name, (loss, grad) in row["gradient"].items())
        print(f"  {model:6s} {cells}")
    print(f"{EPOCHS} mini-batch epochs on {N_ROWS} rows, final loss: relative gap of TF32 "
          "to float32:")
    for model, row in rows.items():
        gaps = "   ".join(f"{r}: {g:.1e}" for r, g in row["training_gap"].items())
        print(f"  {model:6s} loss {row['last_epoch_loss']:.4g}   {gaps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
