"""One epoch before and after a change, interleaved in one process, with the seed loop.

    OPENBLAS_NUM_THREADS=1 python benchmarks/before_after.py REV [--model small16]
        [--mode batch] [--n 1000000] [--rounds 9]

On a shared machine two runs of the same code differ by 10-40%, so a
before/after table from separate runs says little. Here the package as it
was at git revision REV is extracted (``git archive``) into a temporary
folder under another name, ``nnbackend_before``, and imported beside the
working tree's ``nnbackend`` (the package imports itself relatively, so
the two do not mix). Their epochs and the seed-style loop's (the
``--ratios`` pairs' reference: one-shot in batch mode) alternate round by
round. Both trees must give the same loss every epoch: a change meant to
keep the bits that does not is reported, and the script exits 1.

Prints each side's median and minimum epoch, both ratios to the seed loop
and after/before.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "nnbackend_before"


def import_before(rev, folder):
    """The ``nnbackend`` package at git revision ``rev``, imported as ``nnbackend_before``."""
    archive = Path(folder) / "before.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev, "nnbackend"],
                   check=True)
    with tarfile.open(archive) as tar:
        try:
            tar.extractall(folder, filter="data")
        except TypeError:  # Python before 3.11.4 has no filters (the archive is our own)
            tar.extractall(folder)
    (Path(folder) / "nnbackend").rename(Path(folder) / BEFORE)
    sys.path.insert(0, str(folder))
    return importlib.import_module(f"{BEFORE}.bench.workloads")


def compare(rev, model="small16", mode="batch", n_samples=1_000_000, rounds=9):
    """``{side: [epoch seconds]}`` for ``before``, ``after`` and ``seed``, and whether
    every epoch's loss agreed between before and after."""
    sys.path.insert(0, str(ROOT))
    from nnbackend.bench import workloads as after_workloads

    # The folder stays while the epochs run: the old package may import lazily.
    with tempfile.TemporaryDirectory() as folder:
        before_workloads = import_before(rev, folder)
        before, _ = before_workloads.make_epoch("nnbackend", "numpy", mode, n_samples, model=model)
        after, _ = after_workloads.make_epoch("nnbackend", "numpy", mode, n_samples, model=model)
        seed, _ = after_workloads.make_epoch("numpy-seed", "cpu", mode, n_samples, model=model)
        same = before() == after()  # the warm-up epochs
        seed()
        times = {"before": [], "after": [], "seed": []}
        for _ in range(rounds):
            losses = []
            for side, epoch in (("before", before), ("after", after), ("seed", seed)):
                start = time.perf_counter()
                loss = epoch()
                times[side].append(time.perf_counter() - start)
                losses.append(loss)
            same = same and losses[0] == losses[1]
    return times, same


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the git revision to compare the working tree with")
    parser.add_argument("--model", default="small16")
    parser.add_argument("--mode", default="batch", choices=["batch", "minibatch", "sgd"])
    parser.add_argument("--n", type=int, default=1_000_000, help="rows (default 10^6)")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    times, same = compare(args.rev, args.model, args.mode, args.n, args.rounds)
    median = {side: statistics.median(t) for side, t in times.items()}
    for side, t in times.items():
        print(f"{side:6} median {median[side] * 1e3:8.1f} ms   min {min(t) * 1e3:8.1f} ms")
    print(f"{args.model} {args.mode} N={args.n}, {args.rounds} rounds: "
          f"before/seed {median['before'] / median['seed']:.3f}, "
          f"after/seed {median['after'] / median['seed']:.3f}, "
          f"after/before {median['after'] / median['before']:.3f} (medians), "
          f"{min(times['after']) / min(times['before']):.3f} (minima)")
    if not same:
        print("the two trees' losses differ: the change does not keep the bits")
        return 1
    print("every epoch's loss is the same before and after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
