"""Issue 23's hand mutations: apply each to a scratch copy of the tree, run the
plumbing tests against it, and say which tests fail (each must fail at least
one). Not part of CI.

    python benchmarks/hand_mutations.py [--tests tests/test_plumbing.py] [--keep DIR]

Works on a copy (``git worktree``-free: a plain copy of the tracked files), so
the working tree is never touched.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name: (file, old, new, what)
MUTATIONS = {
    "M1": ("nnbackend/training/callbacks.py",
           "self.best_params = params if on_validation else epoch_start",
           "self.best_params = params",
           "early stopping on the training loss keeps the weights after the best epoch"),
    "M2": ("nnbackend/training/callbacks.py",
           "keep = epoch_start if keep_from == epoch else self.previous",
           "keep = epoch_start if params_finite or epoch == 1 else self.previous",
           "divergence guard keeps weights whose loss is inf (the code before issue 23)"),
    "M3": ("nnbackend/training/loop.py",
           "split_indices(labels, fraction, rng, stratify=classify)",
           "split_indices(labels, fraction, rng, stratify=False)",
           "fit's validation split not stratified"),
    "M4": ("nnbackend/engine.py",
           "block = max(size, GATHER_ROWS // size * size)",
           "block = GATHER_ROWS",
           "gather block not whole batches: extra steps beyond 16384 rows"),
    "M5": ("nnbackend/training/loop.py",
           "per_row = 1 if multiclass else net.layer_sizes[-1]",
           "per_row = 1",
           "multi-output sigmoid accuracy divided by rows"),
    "M6": ("nnbackend/data.py",
           "return BatchPlan(n_samples, batch_size, bool(shuffle))",
           "return BatchPlan(n_samples, batch_size, False)",
           "minibatch never shuffles"),
    "M7": ("nnbackend/engine.py",
           "if full < rows:  # the epoch's last, smaller batch",
           "if False:  # the epoch's last, smaller batch",
           "the last partial batch dropped"),
    "M8": ("nnbackend/kernels.py",
           "return total, _logits_grad(xp, a, y, reduction, n_samples)",
           "return total, _logits_grad(xp, a, y, reduction, None)",
           "per-chunk BCE/cross-entropy gradient divisor: chunk rows, not batch rows"),
}


def copy_tree(dest: Path):
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for f in files:
        if not f or not (ROOT / f).is_file():
            continue
        target = dest / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, target)


def failing_tests(tree: Path, tests: list[str]) -> tuple[int, list[str]]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rf", *tests], cwd=tree, env=env, capture_output=True, text=True)
    failed = sorted({m.group(1) for m in re.finditer(r"^FAILED (\S+?)(?: - |$)", proc.stdout,
                                                        re.M)})
    return proc.returncode, failed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests", nargs="+", default=["tests/test_plumbing.py"])
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        copy_tree(tree)
        rc, failed = failing_tests(tree, args.tests)
        print(f"unmutated: rc={rc}, {len(failed)} failed")
        if rc != 0:
            print("\n".join(failed))
            return 2
        for name, (path, old, new, what) in MUTATIONS.items():
            if args.only and name not in args.only:
                continue
            target = tree / path
            text = target.read_text()
            if text.count(old) != 1:
                print(f"{name}: pattern not found once in {path}; update the script")
                ok = False
                continue
            target.write_text(text.replace(old, new))
            try:
                rc, failed = failing_tests(tree, args.tests)
            finally:
                target.write_text(text)
            caught = rc != 0
            ok &= caught
            print(f"\n{name} ({what}): {'CAUGHT' if caught else 'SURVIVED'} by {len(failed)} test(s)")
            for f in failed:
                print(f"    {f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
