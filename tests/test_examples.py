"""The runnable examples run, say what they promise, and exit 0."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_example(name, *args, timeout=120):
    env = dict(os.environ)
    # The example's default backend follows $NNBACKEND_BACKEND; pin it so a
    # developer's setting (e.g. cupy on a GPU-less box) can't change the test.
    env.pop("NNBACKEND_BACKEND", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_seed_xor_example():
    proc = run_example("seed_xor.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Weights after training" in out and "Bias after training" in out
    assert "ONE SIGMOID UNIT CANNOT LEARN XOR" in out
    assert "logical AND" in out
    # The hidden-layer network's line, not just any 100%.
    assert "OK: the hidden-layer network learned XOR (100% accuracy)." in out


def test_seed_xor_example_rejects_unknown_backend():
    proc = run_example("seed_xor.py", "--backend", "no-such-backend")
    assert proc.returncode == 2
    assert "unknown backend" in proc.stderr
