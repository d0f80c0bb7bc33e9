"""Where a step of the fused CuPy epoch kernel goes: its phases timed by leaving them out.

Issue 25 asks, before the fused kernel changes, where its 2.4 µs per SGD step
(on [32,64,1], an H200) goes. A profiler sees one launch that runs the whole
epoch, so this script times variants of the kernel instead: the source that
``nnbackend/backends/cupy/fused.py`` generates (``source.py``, ``tiled.py``),
with one stage of the step left out at a time, each timed with CUDA events
over the same epoch after a warm-up. The differences attribute the step:

====================  =====================================================
``launch``            the launch with N = 0 (set-up and the parameters in/out), per epoch
``loop``              the loop over batches alone (its Adam constants) [``empty``]
``gather``            the batch's rows through the epoch's order [``gather only`` - ``empty``]
``forward``           the hidden and output products [``forward only`` - ``gather only``]
``loss``              the output row: activation, loss, dL/dz, hits, the batch's sums
                      [``no backward`` - ``forward only``]
``input grad``        the input gradient of each layer but the first
                      [``no update`` - ``no backward``]
``update``            the parameter gradients and the optimizer's update [``full`` - ``no update``]
``barriers``          what the step's ``__syncthreads()`` cost [``full`` - ``no sync``]
====================  =====================================================

A phase left out takes the ``__syncthreads()`` after it along. The variants
compute wrong numbers (``no sync`` races, ``no update`` never learns); only
their times mean something. The table also gives what shapes the step: its
``__syncthreads()`` count, threads per block, dynamic shared memory, where
the parameters and the work region live, and the registers and local
(spilled) bytes per thread NVRTC gave the kernel.

The variants are made from the generated source text here (the batch loop's
top-level statements, classified by what they read and write); the kernel
generator is left as it is. Without CuPy on a GPU the script says so,
compiles and runs every variant on the host instead (``fused.host_launcher``,
one thread: the phases' arithmetic, without timing) and exits 0.

    python benchmarks/fused_profile.py                  # the table (< 60 s on an H200)
    python benchmarks/fused_profile.py --json out.json  # and the numbers
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time

import numpy as np

import nnbackend as nb
from nnbackend.backends.cupy import fused as F
from nnbackend.backends.cupy import grid as G
from nnbackend.bench.synthetic import data_for
from nnbackend.data import host_rng, make_plan
from nnbackend.network import multiclass_of
from nnbackend.optim import get_optimizer

# (name, layers, hidden, output, loss, lr, batch, N, bench model whose data it trains on)
CONFIGS = [
    ("[32,64,1] sgd", (32, 64, 1), "sigmoid", "sigmoid", "mse", 0.1, 1, 10_000, "small"),
    ("[32,64,1] mini-batch 64", (32, 64, 1), "sigmoid", "sigmoid", "mse", 0.1, 64, 100_000,
     "small"),
    ("[784,256,256,10] sgd", (784, 256, 256, 10), "relu", "softmax", "cross_entropy", 0.01, 1,
     2_000, "mid"),
    ("[784,256,256,10] sgd, cluster", (784, 256, 256, 10), "relu", "softmax", "cross_entropy",
     0.01, 1, 2_000, "mid"),
]
# Configs run as cupy-fused runs them on sm_90: one cluster of CLUSTER_BLOCKS blocks
# (nnbackend.backends.cupy.grid); the others on one block.
CLUSTERED = {"[784,256,256,10] sgd, cluster"}
# The shared memory a block may opt in to on an H100/H200: the host check
# builds the layouts the GPU gets there.
HOPPER_SHARED = 227 * 1024
SYNC = "__syncthreads();"
# Variant: the statement kinds of the batch loop it leaves out.
VARIANTS = {
    "full": (),
    "no sync": ("sync",),
    "no update": ("update",),
    "no backward": ("update", "input grad"),
    "forward only": ("update", "input grad", "loss"),
    "gather only": ("update", "input grad", "loss", "forward"),
    "empty": ("update", "input grad", "loss", "forward", "gather"),
}
# The full kernel again without one of its ways of saving time: (label, whether
# the layout uses it, the Layout option that turns it off).
COMPARED = [
    ("full, gather at each step", lambda layout: layout.gather_slots() > 0, {"prefetch": False}),
    ("full, one output or parameter an iteration",
     lambda layout: layout.update_blocks() or any(layout.update_vectors(l)
                                                  for l in range(layout.n_layers)),
     {"blocks": False}),
]
# Phase: (variant with it, variant without it).
PHASES = [("loop", "empty", None), ("gather", "gather only", "empty"),
          ("forward", "forward only", "gather only"), ("loss", "no backward", "forward only"),
          ("input grad", "no update", "no backward"), ("update", "full", "no update"),
          ("barriers", "full", "no sync")]


# -- the source's batch loop, statement by statement --------------------------------


def _strip_comments(text):
    return re.sub(r"//[^\n]*", "", text)


def _matching_brace(text, open_at):
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced braces in the kernel source")


def batch_loop(source):
    """``(head, body, tail)``: the source around the loop over the epoch's batches
    and the loop's body (comments removed from all three)."""
    text = _strip_comments(source)
    found = re.search(r"for\s*\(\s*long long start\s*=\s*0\s*;[^)]*\)\s*\{", text)
    if found is None:
        raise ValueError("no loop over the epoch's batches (for (long long start = 0; ...)) "
                         "in the kernel source")
    close = _matching_brace(text, found.end() - 1)
    return text[:found.end()], text[found.end():close], text[close:]


def statements(body):
    """The top-level statements of a block's ``body``, in order, as source text."""
    out, start, parens, braces, i = [], 0, 0, 0, 0
    while i < len(body):
        c = body[i]
        if c == "(":
            parens += 1
        elif c == ")":
            parens -= 1
        elif c == "{":
            braces += 1
        elif c == "}":
            braces -= 1
        end = (c == ";" and parens == 0 and braces == 0) or (c == "}" and braces == 0)
        if end:
            rest = body[i + 1:].lstrip()
            if c == "}" and rest.startswith("else"):
                i += 1
                continue
            if body[start:i + 1].strip():
                out.append(body[start:i + 1].strip())
            start = i + 1
        i += 1
    if body[start:].strip():
        raise ValueError(f"unterminated statement in the batch loop: {body[start:][:80]!r}")
    return out


def classify(stmts):
    """Each statement's kind: ``setup``, ``sync``, ``gather``, ``forward``, ``loss``,
    ``input grad`` or ``update``.

    The gather reads ``X`` (or, prefetched, stores the rows a step brought in
    registers, ``gx``, and then reads the next step's ``X``); the output phase
    reads ``Y`` or adds to ``loss_sum``; an update writes parameters with the
    learning rate (``lr_t``, ``adam_step``); what lies between the gather and
    the output phase is the forward pass, what follows it and updates nothing
    the input gradient. Statements before the gather are the step's set-up
    (its size and Adam constants).
    """
    kinds = []
    gathers = [i for i, s in enumerate(stmts) if re.search(r"\b(X|gx)\s*\[", s)]
    output = [i for i, s in enumerate(stmts) if re.search(r"\bY\s*[\[+]|loss_sum", s)]
    if not gathers or not output:
        raise ValueError("the batch loop has no gather (reads X) or no output phase "
                         "(reads Y): the source is not laid out as this script expects")
    for i, s in enumerate(stmts):
        if s == SYNC:
            kinds.append("sync")
        elif i < gathers[0]:
            kinds.append("setup")
        elif i in gathers:
            kinds.append("gather")
        elif i < output[0]:
            kinds.append("forward")
        elif i <= output[-1]:
            kinds.append("loss")
        elif re.search(r"\b(lr_t|adam_step)\b", s):
            kinds.append("update")
        else:
            kinds.append("input grad")
    return kinds


def variant_source(source, drop):
    """``source`` with the batch loop's statements of the kinds in ``drop`` left out
    (each with the ``__syncthreads()`` right after it), and the loop's count of
    ``__syncthreads()`` left: ``(source, syncs per step)``."""
    head, body, tail = batch_loop(source)
    stmts = statements(body)
    kinds = classify(stmts)
    kept, dropped_last = [], False
    for s, kind in zip(stmts, kinds):
        if kind == "sync" and ("sync" in drop or dropped_last):
            dropped_last = False
            continue
        dropped_last = kind in drop
        if not dropped_last:
            kept.append(s)
    syncs = sum(s == SYNC for s in kept)
    return head + "\n        " + "\n        ".join(kept) + "\n    " + tail, syncs


def sync_count(source):
    """``__syncthreads()`` per step of the epoch kernel ``source`` (its batch loop's)."""
    return sum(s == SYNC for s in statements(batch_loop(source)[1]))


# -- the kernels ------------------------------------------------------------------


def problem(config):
    """``(name, model, X, Y, multiclass, opt, plan)`` of a config, on the host (NumPy)."""
    name, layers, hidden, output, loss, lr, batch, n, data = config
    model = nb.MLP(list(layers), hidden_activation=hidden, output_activation=output, loss=loss,
                   backend="numpy", dtype="float32", seed=0)
    X, y = data_for(data, n)
    X = model._features(X)
    Y = model._targets(y, n)
    opt = get_optimizer("sgd", lr)
    plan = make_plan("sgd" if batch == 1 else "minibatch", n, batch, shuffle=True)
    return name, model, X, Y, multiclass_of(model.spec), opt, plan


def setup(name, sizes, batch_size, limit, on_gpu, **options):
    """``(layout, base launcher, kernel name, source transform)`` of a config: one
    block, or for :data:`CLUSTERED` one cluster (its host build on the host).
    ``options``: :class:`~nnbackend.backends.cupy.fused.Layout` options."""
    if name in CLUSTERED:
        layout = F.cluster_layout(sizes, batch_size, "float32", **options)
        base = G.cuda_cluster_launcher() if on_gpu else G.host_cluster_launcher()
        return layout, base, "nnb_grid_epoch", \
            (lambda text: G.grid_source(text, cluster=G.CLUSTER_BLOCKS))
    return (F.Layout(sizes, batch_size, "float32", limit, **options),
            F.cuda_launcher if on_gpu else F.host_launcher, "nnb_fused_epoch", lambda text: text)


def capture_launcher(base, drop, seen):
    """A ``launcher`` for ``fused.make_epoch``: ``base``'s (cuda_launcher or
    host_launcher) on the variant's source; ``seen`` gets the source, the raw
    launch and its last arguments."""

    def launcher(source, layout, dtype_name):
        text, syncs = variant_source(source, drop)
        launch = base(text, layout, dtype_name)
        seen.update(source=text, syncs=syncs, launch=launch, layout=layout)

        def recorded(*args):
            seen["args"] = args
            return launch(*args)

        return recorded

    return launcher


def host_check(configs=CONFIGS, variants=VARIANTS, n_rows=4, out=print):
    """Every variant of every config compiled for the host (one thread) and run
    on ``n_rows`` rows: ``{config: {variant: syncs per step}}``."""
    result = {}
    for config in configs:
        name, model, X, Y, multiclass, opt, plan = problem(config)
        sizes = model.layer_sizes
        small = make_plan("sgd" if plan.batch_size == 1 else "minibatch", n_rows,
                          min(plan.batch_size, n_rows - 1), shuffle=True)
        layout, base, _, _ = setup(name, sizes, small.batch_size, HOPPER_SHARED, False)
        result[name] = {}
        for variant, drop in variants.items():
            seen = {}
            epoch = F.make_epoch(np, model.spec, opt, small, X[:n_rows], Y[:n_rows], multiclass,
                                 sizes, "float32", capture_launcher(base, drop, seen),
                                 layout=layout)
            params = model.flat_params
            epoch(params, opt.init(params), small.order(host_rng(0)))
            result[name][variant] = seen["syncs"]
        out(f"  {name}: {len(variants)} variants built and run on the host "
            f"({layout.params_in} parameters, {layout.threads()} threads, "
            f"{result[name]['full']} __syncthreads() a step)")
    return result


def _time_launch(cupy, launch, args, rounds):
    """Median seconds of ``rounds`` launches, timed with CUDA events."""
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(rounds):
        start.record()
        launch(*args)
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end) * 1e-3)
    return statistics.median(times)


def _kernel_attributes(cupy, source, kernel="nnb_fused_epoch"):
    """Registers and local (spilled) bytes per thread of the compiled kernel, where CuPy says."""
    try:
        attrs = cupy.RawKernel(source, kernel, options=("--std=c++14",)).attributes
        return {"registers": attrs.get("num_regs"), "local_bytes": attrs.get("local_size_bytes")}
    except Exception as exc:  # informative only
        return {"error": f"{type(exc).__name__}: {exc}"}


def gpu_profile(backend, configs=CONFIGS, variants=VARIANTS, rounds=5):
    """``[{config, layout..., times: {variant: s per launch}, per_step: {...}}]`` on the GPU."""
    import cupy

    device = backend.device
    rows = []
    for config in configs:
        name, model, X, Y, multiclass, opt, plan = problem(config)
        sizes = model.layer_sizes
        with device:
            Xd, Yd = cupy.asarray(X), cupy.asarray(Y)
            limit = F.shared_limit(device)
            layout, base, kernel, transform = setup(name, sizes, plan.batch_size, limit, True)
            order = plan.order(host_rng(0))
            steps = -(-plan.n_samples // plan.batch_size)
            row = {"config": name, "steps": steps, "batch": plan.batch_size,
                   "params_in": layout.params_in, "acts_in": layout.acts_in,
                   "threads": layout.threads(), "shared_bytes": layout.shared_bytes(),
                   "times": {}, "syncs": {}}
            for variant, drop in variants.items():
                seen = {}
                epoch = F.make_epoch(cupy, model.spec, opt, plan, Xd, Yd, multiclass, sizes,
                                     "float32", capture_launcher(base, drop, seen),
                                     device, layout)
                params = [cupy.asarray(p) for p in model.flat_params]
                epoch(params, opt.init(params), order)  # compiles; records the arguments
                cupy.cuda.Device().synchronize()
                args = seen["args"]
                row["times"][variant] = _time_launch(cupy, seen["launch"], args, rounds)
                row["syncs"][variant] = seen["syncs"]
                if variant == "full":
                    row.update(_kernel_attributes(cupy, transform(seen["source"]), kernel))
                    # n = 0: the launch, the set-up and the parameters in and out.
                    empty_args = args[:3] + (np.int64(0),) + args[4:]
                    row["times"]["launch"] = _time_launch(cupy, seen["launch"], empty_args,
                                                          rounds)
            row["gather_slots"] = layout.gather_slots()
            row["update_blocks"] = layout.update_blocks()
            # The same kernel without one of its ways of saving time: what each saves.
            for label, applies, option in COMPARED:
                if not applies(layout):
                    continue
                seen = {}
                plain = setup(name, sizes, plan.batch_size, limit, True, **option)[0]
                epoch = F.make_epoch(cupy, model.spec, opt, plan, Xd, Yd, multiclass, sizes,
                                     "float32", capture_launcher(base, (), seen),
                                     device, plain)
                params = [cupy.asarray(p) for p in model.flat_params]
                epoch(params, opt.init(params), order)
                cupy.cuda.Device().synchronize()
                row["times"][label] = _time_launch(cupy, seen["launch"], seen["args"], rounds)
        row["per_step"] = attribute(row["times"], steps)
        rows.append(row)
    return rows


def attribute(times, steps):
    """Seconds per step of each phase (:data:`PHASES`) from the variants' launch times."""
    out = {"full": times["full"] / steps}
    for label, column in (("full, gather at each step", "unprefetched"),
                          ("full, one output or parameter an iteration", "unblocked")):
        if label in times:
            out[column] = times[label] / steps
    base = times.get("launch", 0.0)
    for phase, with_it, without in PHASES:
        if with_it in times and (without is None or without in times):
            out[phase] = (times[with_it] - (base if without is None else times[without])) / steps
    return out


def table(rows, device_name):
    """The profile as text lines (µs per step)."""
    cols = ["full"] + [p for p, _, _ in PHASES] + ["unprefetched", "unblocked"]
    lines = [f"fused CuPy epoch kernel, where a step goes ({device_name}, float32, CUDA events, "
             f"median of the launches after a warm-up; µs per step; a phase = the "
             f"kernel with it - the kernel without it; unprefetched = the full kernel with "
             f"each step's gather at its start; unblocked = with one output or parameter "
             f"an iteration)"]
    lines.append(f"  {'config':30s} {'layout':27s} {'thr':>5s} {'shmem B':>8s} "
                 f"{'sync':>4s} {'regs':>4s} {'spill':>5s} {'launch us':>9s}")
    for r in rows:
        place = f"params {r['params_in']}, work {r['acts_in']}"
        lines.append(f"  {r['config']:30s} {place:27s} {r['threads']:5d} {r['shared_bytes']:8d} "
                     f"{r['syncs']['full']:4d} {str(r.get('registers', '?')):>4s} "
                     f"{str(r.get('local_bytes', '?')):>5s} "
                     f"{r['times'].get('launch', float('nan')) * 1e6:9.1f}")
    lines.append("  " + f"{'config':30s}" + "".join(f"{c:>11s}" for c in cols))
    for r in rows:
        cells = "".join(f"{r['per_step'].get(c, float('nan')) * 1e6:11.3f}" for c in cols)
        lines.append(f"  {r['config']:30s}{cells}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    parser.add_argument("--rounds", type=int, default=5, help="timed launches per variant")
    parser.add_argument("--host", action="store_true",
                        help="only build and run the variants on the host (no timing)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        backend = None if args.host else nb.get_backend("cupy")
    except nb.BackendUnavailableError as exc:
        print(f"fused kernel profile: not measured, no GPU for CuPy here ({exc}); "
              "checking that every variant builds and runs on the host instead")
        backend = None
    if backend is None:
        result = host_check()
        seconds = time.perf_counter() - started
        print(f"fused kernel profile: the host check passed ({seconds:.1f} s)")
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"host_check": result}, fh, indent=1)
        return 0
    rows = gpu_profile(backend, rounds=args.rounds)
    device_name = backend.accelerator_name() or "GPU"
    print("\n".join(table(rows, device_name)))
    print(f"  ({time.perf_counter() - started:.1f} s, compilation included)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": device_name, "rows": rows}, fh, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
