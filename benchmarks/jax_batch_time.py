"""Time a batch-mode epoch on JAX: the eager reference loop, the ``jax-batch``
executor, and hand-written jitted full-batch epochs (issue 26).

The ``small`` workload ([32,64,1] float32, sigmoid, ½·squared error, sgd
lr 0.1) on JAX's default device (a GPU where JAX has one, else the CPU),
at N in 1e3, 1e4, 1e5, 1e6 unless ``--sizes`` says otherwise. Columns, in
ms per epoch (median of the timed epochs, after two warm-up epochs, each
epoch waited for with ``block_until_ready``):

``reference``
    ``engine.run_epoch``: the chunked reference loop, every array
    operation an eager dispatch (what jax:gpu batch fits ran before).
``jax-batch``
    :class:`nnbackend.backends.jax.batch.JaxBatch`: the same chunks and
    math in one jitted dispatch.
``hand jit``
    A hand-written ``jax.jit`` of ``value_and_grad`` over all N rows at
    once (no chunks), matmuls at full float32 precision as nnbackend's.
``peer scan``
    The benchmark suite's hand-written ``lax.scan`` peer
    (``nnbackend.bench.peers.jax_scan_epoch``, "jax scan written by hand"
    in the reports): it gathers the N rows through a transferred order,
    reads the loss back to the host each epoch, and runs its matmuls at
    JAX's default precision (TF32 on a GPU).

Chunks are the fit's own (``chunk_size="auto"``: the backend's activation
budget; 2048 rows on a CPU, 2^21 on a large GPU). ``compile`` is the
executor's first epoch (tracing and XLA compilation). ``agree`` is the
relative difference of the reference's and the executor's first-epoch
losses from the same start.

    python benchmarks/jax_batch_time.py                     # 1e3 1e4 1e5 1e6
    python benchmarks/jax_batch_time.py --sizes 1e3 1e4     # a CPU run
    python benchmarks/jax_batch_time.py --budget 0.5        # seconds of timed epochs per cell

Each cell runs at least 3 and at most 50 timed epochs, stopping once
``--budget`` seconds have gone (default 0.5): under a minute in all on a
GPU, where compilation dominates.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

LAYERS = [32, 64, 1]
LR = 0.1
SIZES = (1_000, 10_000, 100_000, 1_000_000)


def _median_ms(run, budget, min_reps=3, max_reps=50):
    """Median wall time of ``run()`` (which waits for its result), in ms, after two warm-ups."""
    run()
    run()
    times, spent = [], 0.0
    while len(times) < min_reps or (spent < budget and len(times) < max_reps):
        start = time.perf_counter()
        run()
        dt = time.perf_counter() - start
        times.append(dt)
        spent += dt
    return 1e3 * statistics.median(times)


def _hand_jit(jax, jnp, X, Y, params):
    """A jitted full-batch sgd step of the small model over all rows at once."""
    highest = jax.lax.Precision.HIGHEST

    def loss(p, X, Y):
        W1, b1, W2, b2 = p
        h = jax.nn.sigmoid(jnp.matmul(X, W1, precision=highest) + b1)
        out = jax.nn.sigmoid(jnp.matmul(h, W2, precision=highest) + b2)
        return 0.5 * jnp.sum((out - Y) ** 2) / X.shape[0]

    @jax.jit
    def step(p, X, Y):
        value, grads = jax.value_and_grad(loss)(p, X, Y)
        return [a - LR * g for a, g in zip(p, grads)], value * X.shape[0]

    state = {"params": list(params)}

    def run():
        state["params"], total = step(state["params"], X, Y)
        jax.block_until_ready((state["params"], total))

    return run


def row(n, budget):
    import jax

    import nnbackend as nb
    from nnbackend.backends.jax.batch import JaxBatch
    from nnbackend.bench.peers import jax_scan_epoch
    from nnbackend.bench.synthetic import data_for
    from nnbackend.data import host_rng, make_plan
    from nnbackend.engine import EpochTask, run_epoch
    from nnbackend.network import chunk_rows, multiclass_of
    from nnbackend.optim import get_optimizer, on_namespace

    jnp = jax.numpy
    model = nb.MLP(LAYERS, hidden_activation="sigmoid", output_activation="sigmoid", loss="mse",
                   backend="jax", dtype="float32", seed=0)
    backend, spec = model.backend, model.spec
    X_host, y_host = data_for("small", n)
    X, Y = model._features(X_host), model._targets(y_host, n)
    chunk = chunk_rows("auto", backend, model.layer_sizes, X.dtype)
    opt = on_namespace(get_optimizer("sgd", LR), backend.xp)
    plan = make_plan("batch", n)
    multiclass = multiclass_of(spec)
    index_dtype = backend.index_dtype()
    params0 = model.flat_params

    ref_state = {"p": params0, "s": opt.init(params0)}

    def ref():
        p, s, loss, hits = run_epoch(ref_state["p"], ref_state["s"], opt, spec, X, Y, plan,
                                     host_rng(0), index_dtype, chunk, multiclass, backend.xp)
        ref_state["p"], ref_state["s"] = p, s
        jax.block_until_ready((p, loss, hits))
        return loss

    task = EpochTask(backend, spec, opt, plan, X, Y, chunk, multiclass, index_dtype,
                     model.layer_sizes)
    start = time.perf_counter()
    epoch = JaxBatch().make_epoch(task)
    fast_state = {"p": params0, "s": opt.init(params0)}

    def fast():
        p, s, loss, hits = epoch(fast_state["p"], fast_state["s"], None)
        fast_state["p"], fast_state["s"] = p, s
        jax.block_until_ready((p, loss, hits))
        return loss

    fast_first = float(fast())
    compile_s = time.perf_counter() - start
    ref_first = float(ref())
    agree = abs(fast_first - ref_first) / max(abs(ref_first), 1e-30)

    out = {"n": n, "chunk": chunk, "compile": compile_s, "agree": agree,
           "reference": _median_ms(ref, budget), "jax-batch": _median_ms(fast, budget),
           "hand jit": _median_ms(_hand_jit(jax, jnp, X, Y, params0), budget)}
    peer, _ = jax_scan_epoch("batch", n)
    out["peer scan"] = _median_ms(peer, budget)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=SIZES)
    parser.add_argument("--budget", type=float, default=0.5,
                        help="seconds of timed epochs per cell (at least 3 epochs each)")
    args = parser.parse_args(argv)

    import jax

    dev = jax.devices()[0]
    kind = getattr(dev, "device_kind", dev.platform)
    print(f"# JAX {jax.__version__} on {dev.platform} ({kind}); model {LAYERS} float32, "
          f"batch mode, sgd lr {LR}; ms per epoch (median)")
    cols = ["reference", "jax-batch", "hand jit", "peer scan"]
    head = f"{'N':>9} {'chunk':>8} " + " ".join(f"{c:>10}" for c in cols)
    print(head + f" {'ref/batch':>9} {'compile s':>9} {'agree':>8}")
    for n in args.sizes:
        r = row(int(n), args.budget)
        cells = " ".join(f"{r[c]:10.3f}" for c in cols)
        print(f"{r['n']:>9} {r['chunk']:>8} {cells} {r['reference'] / r['jax-batch']:9.2f} "
              f"{r['compile']:9.2f} {r['agree']:8.1e}", flush=True)


if __name__ == "__main__":
    main()
