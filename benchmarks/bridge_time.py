"""Where a torch:cuda or jax:gpu epoch on CuPy's kernels spends its time: the DLPack bridge.

torch:cuda and jax:gpu fits run CuPy's kernels through the DLPack bridge
(``nnbackend/backends/cupy/bridge.py``), which crosses the arrays each way
once an epoch. On the H200 (2026-12-04) a [32,64,1] SGD epoch of 1,000 rows
took 2.37 ms on cupy, 2.58 ms on torch:cuda and 3.84 ms on jax:gpu: the
crossing cost jax about 1.5 ms an epoch, as much as 1.5 us a step, where the
target of a step is 2 us. This script says where that time goes.

For each case it times epochs as the benchmark does (``nnbackend_epoch``: one
epoch a call, its loss read back), on cupy, torch:cuda and jax:gpu, and for
the two bridged backends splits each epoch's host time into:

- ``take``: the caller's arrays crossing to CuPy (JAX: after
  ``block_until_ready``); an epoch handed the last one's results skips it;
- ``kernel``: the CuPy epoch's call (the launches; the kernel itself runs on);
- ``hand_back``: the results crossing back (JAX: after the stream's sync,
  which waits for the kernel);
- ``rest``: the epoch less those three (the row order, the loss read back).

It also times, alone, one crossing of the parameters that the reuse of the
last results saves each epoch, and counts the epochs whose arrays crossed.

    python benchmarks/bridge_time.py [--rounds 7] [--json out.json]

Without CuPy on a GPU it says so and exits 0. About 15 s on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time

import nnbackend as nb
from nnbackend.backends.cupy import bridge as B
from nnbackend.bench.workloads import nnbackend_epoch

# (name, model, mode, rows): the benchmark's cases whose step targets are a few us.
CASES = [
    ("small sgd 1e3", "small", "sgd", 1_000),
    ("small mini-batch 64 1e4", "small", "minibatch", 10_000),
    ("small batch 1e3", "small", "batch", 1_000),
]
BACKENDS = (("cupy", None), ("torch", "cuda"), ("jax", "gpu"))
PIECES = ("take", "kernel", "hand_back")


class TimedOrdering:
    """An ordering that adds the host time of its ``take`` and ``hand_back`` to ``times``
    and keeps the first arrays it was given (for :func:`take_alone`)."""

    def __init__(self, ordering, times):
        self.ordering, self.times = ordering, times
        self.description = ordering.description
        # What the bridge asks of the ordering it wraps (JAX's: the state copied).
        self.state_in_place = getattr(ordering, "state_in_place", True)
        self.taken = None

    def on_stream(self):
        return self.ordering.on_stream()

    def take(self, arrays):
        if self.taken is None:
            self.taken = list(arrays)
        self.times["crossed"] += 1
        return _timed(self.times, "take", self.ordering.take, arrays)

    def hand_back(self, arrays):
        return _timed(self.times, "hand_back", self.ordering.hand_back, arrays)


def _timed(times, key, function, *args):
    start = time.perf_counter()
    try:
        return function(*args)
    finally:
        times[key] += time.perf_counter() - start


@contextlib.contextmanager
def instrumented(times, orderings):
    """Bridged epochs made inside time their pieces into ``times`` (a dict of sums)."""
    plain = B.bridged_epoch

    def bridged(inner_epoch, ordering):
        timed = TimedOrdering(ordering, times)
        orderings.append(timed)

        def kernel(params, state, order):
            return _timed(times, "kernel", inner_epoch, params, state, order)

        if getattr(inner_epoch, "epochs", None) is not None:
            kernel.epochs = lambda p, s, o: _timed(times, "kernel", inner_epoch.epochs, p, s, o)
        return plain(kernel, timed)

    B.bridged_epoch = bridged
    try:
        yield
    finally:
        B.bridged_epoch = plain


def take_alone(timed, rounds):
    """Seconds of one crossing of the arrays ``timed`` first took (the median of
    ``rounds``): what an epoch handed the last one's results no longer pays."""
    if timed.taken is None:
        return None
    seconds = []
    for _ in range(rounds):
        with timed.ordering.on_stream():
            start = time.perf_counter()
            timed.ordering.take(timed.taken)
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def epoch_pieces(name, device, model, mode, n, rounds):
    """One backend and case: ``{"executor", "epoch", pieces..., "crossed", "take_alone"}``
    in seconds (medians over ``rounds`` epochs after one untimed)."""
    times = dict.fromkeys((*PIECES, "crossed"), 0)
    orderings = []
    with instrumented(times, orderings):
        step, _ = nnbackend_epoch(name, device, mode, n, model=model)
    step()  # compiles
    rows = []
    for _ in range(rounds):
        before = dict(times)
        start = time.perf_counter()
        step()  # returns the epoch's loss: the device is done
        total = time.perf_counter() - start
        rows.append({"epoch": total, **{k: times[k] - before[k] for k in PIECES},
                     "crossed": times["crossed"] - before["crossed"]})
    out = {"executor": step.executor,
           "epoch": statistics.median(r["epoch"] for r in rows)}
    if orderings:
        for key in PIECES:
            out[key] = statistics.median(r[key] for r in rows)
        out["rest"] = statistics.median(r["epoch"] - sum(r[k] for k in PIECES) for r in rows)
        out["crossed"] = sum(r["crossed"] for r in rows)
        out["take_alone"] = take_alone(orderings[-1], rounds)
    return out


def _line(case, spec, got, rounds):
    text = f"{case:<24} {spec:<10} {got['executor']:<11} epoch {got['epoch'] * 1e3:8.3f} ms"
    if "take" in got:
        pieces = ", ".join(f"{k} {got[k] * 1e3:.3f}" for k in (*PIECES, "rest"))
        alone = got["take_alone"]
        text += f" ({pieces}); crossed in {got['crossed']} of {rounds} epochs"
        if alone is not None:
            text += f", a crossing alone {alone * 1e3:.3f} ms"
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    try:
        cupy_backend = nb.get_backend("cupy")
    except nb.BackendUnavailableError as exc:
        print(f"bridge_time: not measured, no GPU for CuPy here ({exc})")
        return 0
    rows = []
    for case, model, mode, n in CASES:
        for name, device in BACKENDS:
            spec = name if device is None else f"{name}:{device}"
            try:
                got = epoch_pieces(name, device, model, mode, n, args.rounds)
            except (nb.BackendUnavailableError, ImportError) as exc:
                print(f"{case:<24} {spec:<10} not measured ({str(exc).splitlines()[0]})")
                continue
            rows.append({"case": case, "backend": spec, **got})
            print(_line(case, spec, got, args.rounds), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": cupy_backend.accelerator_name(), "rounds": args.rounds,
                       "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
