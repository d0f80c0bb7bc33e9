"""Where a NumPy step's microseconds go: each piece of one bound step timed alone.

    OPENBLAS_NUM_THREADS=1 python benchmarks/numpy_step_pieces.py [--batch]

The network is issue 15's [16, 32, 1] (sigmoid, ½·squared error, float32),
for a single-row (sgd) and a 64-row (mini-batch) step. Each piece is the
bound function that the epoch loop calls (``nnbackend.bound``), timed with
``timeit`` (best of 7); the last line is the whole bound step with its
update. The pieces' sum falls short of the whole by the Python glue between
them. With ``--batch``: a batch epoch at N = 10^6 in 4096-row chunks
instead, each piece of a chunk summed over the epoch (the fastest of 7
epochs). Prints a Markdown table; timings on a shared machine move by 10%
or more, so compare versions in one sitting, alternating.
"""

from __future__ import annotations

import sys
import time
import timeit

import numpy as np

from nnbackend import bound as B
from nnbackend import kernels as K
from nnbackend import network
from nnbackend.backends.numpy import numpy_namespace
from nnbackend.data import init_params
from nnbackend.optim import get_optimizer, on_namespace


def _best(f, number=20_000):
    return min(timeit.repeat(f, number=number, repeat=7)) / number * 1e6


def pieces(rows, seed=0, number=20_000):
    """``[(piece, microseconds)]`` for one step of ``rows`` rows, each the best of 7
    timings of ``number`` calls; the pieces' sum, then the whole step, last."""
    xp, dtype = numpy_namespace(), np.float32
    rng = np.random.default_rng(seed)
    spec = network.NetSpec("sigmoid", "sigmoid", "mse", "mean")
    params = [p.astype(dtype) for p in init_params([16, 32, 1], "sigmoid", rng)]
    W1, b1, W2, b2 = params
    hidden, sigmoid_backward = B.bind_hidden_layer("sigmoid", xp, dtype)
    dense = B.bind_dense_activation("sigmoid", xp, dtype)
    loss_and_backward = B.bind_loss_and_backward("mse", "sigmoid", "mean", xp, dtype)
    matmul, sum_rows = B.bind_matmul(xp), B.bind_sum_rows(xp)
    step = network.bind_loss_and_grads(spec, xp, dtype, False)
    opt = on_namespace(get_optimizer("sgd", 0.1), xp)
    state = opt.init(params)
    X = rng.normal(size=(4096, 16)).astype(dtype)
    Y = rng.uniform(size=(4096, 1)).astype(dtype)
    Xb, Yb = X[:rows], Y[:rows]
    z1, a1 = hidden(Xb, W1, b1)
    z2, a2 = dense(a1, W2, b2)
    loss, dz2 = loss_and_backward(z2, a2, Yb, rows)
    dz1 = sigmoid_backward(z1, a1, matmul(dz2, W2.T))
    grads = step(params, Xb, Yb, rows)[1]
    timed = [
        ("slice the batch (X, Y)", lambda: (X[0:rows, :], Y[0:rows, :])),
        ("hidden: x @ W1, + b1, sigmoid", lambda: hidden(Xb, W1, b1)),
        ("output: a1 @ W2, + b2, sigmoid", lambda: dense(a1, W2, b2)),
        ("loss and its gradient (mse + sigmoid, ½·Σd²)",
         lambda: loss_and_backward(z2, a2, Yb, rows)),
        ("dW2, db2", lambda: (matmul(a1.T, dz2), sum_rows(dz2))),
        ("dx = dz2 @ W2.T, sigmoid backward",
         lambda: sigmoid_backward(z1, a1, matmul(dz2, W2.T))),
        ("dW1, db1", lambda: (matmul(Xb.T, dz1), sum_rows(dz1))),
        ("correct predictions (sigmoid output)", lambda: K.n_correct(a2, Yb, False, xp=xp)),
        ("sgd update (4 arrays)", lambda: opt.update(grads, state, params)),
        ("epoch loss += step loss (0-D)", lambda: loss + loss),
    ]
    result = [(name, _best(f, number)) for name, f in timed]
    result.append(("sum of the pieces", sum(t for _, t in result)))
    result.append(("whole bound step (loss, grads, hits) and its update",
                   _best(lambda: opt.update(step(params, Xb, Yb, rows)[1], state, params), number)))
    return result


def chunk_pieces(n_samples=1_000_000, chunk_rows=4096, seed=0, epochs=7):
    """``[(piece, milliseconds per epoch)]`` for a batch epoch of ``n_samples`` rows in
    chunks of ``chunk_rows``: each piece of the bound chunk function summed over the
    epoch's chunks, from the fastest of ``epochs`` epochs; the epoch itself last."""
    xp, dtype = numpy_namespace(), np.float32
    rng = np.random.default_rng(seed)
    W1, b1, W2, b2 = [p.astype(dtype) for p in init_params([16, 32, 1], "sigmoid", rng)]
    X = rng.normal(size=(n_samples, 16)).astype(dtype)
    Y = (rng.uniform(size=(n_samples, 1)) > 0.5).astype(dtype)
    matmul, sum_rows = B.bind_matmul(xp), B.bind_sum_rows(xp)
    hidden_sigmoid = K.fused_form(xp, "bias_sigmoid_no_z")
    if hidden_sigmoid is None:
        raise RuntimeError("the batch pieces are NumPy's own forms, which need NumPy >= 2.1 "
                           f"(this is {np.__version__}, through array-api-compat)")
    floor = K.exp_floor(xp, dtype)
    output = B.bind_dense_activation("sigmoid", xp, dtype)
    loss_and_backward = B.bind_loss_and_backward("mse", "sigmoid", "mean", xp, dtype)
    sigmoid_backward = B.bind_activation_backward("sigmoid", xp, dtype)
    count = B.bind_n_correct(False, xp)
    clock = time.perf_counter

    def epoch(spent):
        sums = None
        for start in range(0, n_samples, chunk_rows):
            x, y = X[start:start + chunk_rows], Y[start:start + chunk_rows]
            marks = [clock()]
            xw = matmul(x, W1)
            marks.append(clock())
            a1 = hidden_sigmoid(xw, b1, floor)
            marks.append(clock())
            z2, a2 = output(a1, W2, b2)
            marks.append(clock())
            loss, dz2 = loss_and_backward(z2, a2, y, n_samples)
            marks.append(clock())
            dW2, db2 = matmul(a1.T, dz2), sum_rows(dz2)
            marks.append(clock())
            dx = matmul(dz2, W2.T)
            marks.append(clock())
            dz1 = sigmoid_backward(None, a1, dx)
            marks.append(clock())
            dW1 = matmul(x.T, dz1)
            marks.append(clock())
            db1 = sum_rows(dz1)
            marks.append(clock())
            hits = count(a2, y)
            marks.append(clock())
            chunk = [loss, dW1, db1, dW2, db2, hits]
            sums = chunk if sums is None else [s + c for s, c in zip(sums, chunk)]
            marks.append(clock())
            for i in range(len(CHUNK_PIECES)):
                spent[i] += marks[i + 1] - marks[i]

    best = None
    for _ in range(epochs):
        spent = [0.0] * len(CHUNK_PIECES)
        start = clock()
        epoch(spent)
        total = clock() - start
        if best is None or total < best[0]:
            best = (total, spent)
    return [(name, t * 1e3) for name, t in zip(CHUNK_PIECES, best[1])] + [("epoch", best[0] * 1e3)]


CHUNK_PIECES = ["X @ W1", "-(xw + b1) and the sigmoid (bias_sigmoid_no_z)",
                "output: a1 @ W2, + b2, sigmoid", "loss and its gradient", "dW2, db2",
                "dx = dz2 @ W2.T", "sigmoid backward", "dW1 = X.T @ dz1", "db1 (row sum)",
                "correct predictions", "the chunks' sums"]


def main(argv=None):
    if "--batch" in (sys.argv[1:] if argv is None else argv):
        print("\n| batch epoch, N = 10^6, 4096-row chunks | ms |\n|---|---:|")
        for name, ms in chunk_pieces():
            print(f"| {name} | {ms:.1f} |")
        return
    for rows in (1, 64):
        print(f"\n| {rows}-row step | us |\n|---|---:|")
        for name, us in pieces(rows):
            print(f"| {name} | {us:.2f} |")


if __name__ == "__main__":
    main()
