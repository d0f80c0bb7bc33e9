"""The fused epoch kernel on one block against the same kernel over a cluster and the grid.

For each configuration: time per step of the ``cupy-fused`` kernel on one
block with the parameters where they fit ("one block"), of the same kernel
with its parameters and work region in global memory (one block), of that
kernel over the grid (``nnbackend.backends.cupy.grid``: every SM, the grid
barrier between phases), and of the cluster kernel that the executor runs on
sm_90 for networks beyond shared memory (one cluster of 8 blocks, the
cluster's hardware barrier) beside one block of its layout. Epochs timed
with CUDA events. The grid's parameters must equal the one-block global
kernel's bit for bit, and the cluster's the one block of its layout's; the
script says if not. A variant that cannot launch (a cluster before sm_90)
is reported with its error.

    python benchmarks/grid_fused_time.py [--json out.json]

Without CuPy on a GPU it runs the check on the host builds (tiny sizes),
says that nothing was timed, and exits 0. About 20 s on a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import nnbackend as nb
from nnbackend.backends.cupy import fused as F
from nnbackend.backends.cupy import grid as G
from nnbackend.data import make_plan
from nnbackend.optim import get_optimizer

# name, sizes, hidden, output, loss, reduction, batch size, rows
CONFIGS = [
    ("[32,64,1] sgd", [32, 64, 1], "sigmoid", "sigmoid", "mse", "sum", 1, 1000),
    ("[784,256,256,10] sgd", [784, 256, 256, 10], "relu", "softmax", "cross_entropy", "mean", 1,
     1000),
    ("[784,256,256,10] mini-batch 64", [784, 256, 256, 10], "relu", "softmax", "cross_entropy",
     "mean", 64, 8192),
]


def _problem(config, n=None):
    _, sizes, hidden, output, loss, reduction, batch_size, rows = config
    n = n or rows
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, sizes[0])).astype(np.float32)
    Y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], size=n)] \
        if sizes[-1] > 1 else (X[:, :1] > 0).astype(np.float32)
    model = nb.MLP(sizes, backend="numpy", hidden_activation=hidden, output_activation=output,
                   loss=loss, reduction=reduction, dtype="float32", seed=0)
    return model, X, Y, make_plan("minibatch" if batch_size > 1 else "sgd", n, batch_size)


#: Variant -> the layout it runs (None: as make_epoch places it), and the variant
#: whose bits it must give.
LAYOUTS = {"one block": None, "one block, global": "global", "grid": "global",
           "one block, cluster layout": "cluster", "cluster": "cluster"}
SAME_AS = {"grid": "one block, global", "cluster": "one block, cluster layout"}


def _layout(kind, sizes, batch_size):
    if kind == "global":
        return F.Layout(sizes, batch_size, "float32", params_in="global", acts_in="global")
    if kind == "cluster":
        return F.cluster_layout(sizes, batch_size, "float32")
    return None


def run_config(am, config, launchers, rounds=3, n=None, sync=lambda: None):
    """``({variant: seconds per step, or the error that stopped it}, same)``: ``same``
    is whether the grid and the cluster each give their one-block kernel's bits
    (the variants ``launchers`` has). ``launchers``: ``{variant: launcher}``,
    variants from :data:`LAYOUTS` (``fused.make_epoch`` launchers)."""
    model, X, Y, plan = _problem(config, n)
    multiclass = True if model.layer_sizes[-1] > 1 else False
    opt = get_optimizer("sgd", 0.01)
    Xd, Yd = am.asarray(X), am.asarray(Y)
    steps = -(-plan.n_samples // plan.batch_size)
    times, finals = {}, {}
    for variant, launcher in launchers.items():
        layout = _layout(LAYOUTS[variant], model.layer_sizes, plan.batch_size)
        try:
            epoch = F.make_epoch(am, model.spec, opt, plan, Xd, Yd, multiclass,
                                 model.layer_sizes, "float32", launcher, layout=layout)
            params = [am.asarray(p) for p in model.flat_params]
            state = opt.init(params)
            params, state, _, _ = epoch(params, state, None)  # warm-up: compilation
            sync()
        except Exception as exc:  # noqa: BLE001 - reported, and the other variants go on
            times[variant] = f"{type(exc).__name__}: {exc}"
            continue
        start = time.perf_counter()
        for _ in range(rounds):
            params, state, _, _ = epoch(params, state, None)
        sync()
        times[variant] = (time.perf_counter() - start) / (rounds * steps)
        finals[variant] = [np.asarray(p.get() if hasattr(p, "get") else p).tobytes()
                           for p in params]
    same = all(finals.get(v) == finals.get(ref) for v, ref in SAME_AS.items()
               if v in finals and ref in finals)
    return times, same


def _shown(value):
    return f"{value * 1e6:8.2f} us" if isinstance(value, float) else f"failed ({value})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    rows = []
    try:
        nb.get_backend("cupy")
        import cupy

        def sync():
            cupy.cuda.runtime.deviceSynchronize()

        launchers = {"one block": F.cuda_launcher, "one block, global": F.cuda_launcher,
                     "grid": G.cuda_grid_launcher(),
                     "one block, cluster layout": F.cuda_launcher,
                     "cluster": G.cuda_cluster_launcher()}
        for config in CONFIGS:
            times, same = run_config(cupy, config, launchers, sync=sync)
            rows.append({"config": config[0],
                         "us_per_step": {k: v * 1e6 for k, v in times.items()
                                         if isinstance(v, float)},
                         "failed": {k: v for k, v in times.items() if not isinstance(v, float)},
                         "grid_equals_one_block": same})
            print(f"{config[0]:<32} " + "  ".join(f"{k} {_shown(v)}" for k, v in times.items())
                  + ("" if same else "  GRID OR CLUSTER DIFFERS FROM ONE BLOCK"), flush=True)
        host_check = None
    except nb.BackendUnavailableError as exc:
        launchers = {"one block, global": F.host_launcher, "grid": G.host_grid_launcher(4),
                     "one block, cluster layout": F.host_launcher,
                     "cluster": G.host_cluster_launcher(3)}
        host_check = all(run_config(np, c, launchers, rounds=1, n=9 if c[6] == 1 else 70)[1]
                         for c in CONFIGS)
        print(f"grid_fused_time: not measured, no GPU for CuPy here ({exc}); the host check "
              f"{'passed' if host_check else 'FAILED'} (the grid's and the cluster's bits "
              "equal one block's)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "host_check": host_check}, fh, indent=1)
    return 0 if host_check is not False and all(r["grid_equals_one_block"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
