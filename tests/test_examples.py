"""The runnable examples run, say what they promise, and exit 0."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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


ROW = re.compile(r"^  \[(\d), (\d)\]\s+-> ([0-9.]+)   \(target (\d)(, WRONG)?\)$", re.M)


def _number_after(label, text):
    match = re.search(re.escape(label) + r"\s*(-?[0-9.]+)", text)
    assert match, f"no {label!r} line in:\n{text}"
    return float(match.group(1))


def _rows(text):
    """The printed (x1, x2, output, target, marked WRONG) rows, checked for consistency."""
    rows = [(int(a), int(b), float(out), int(t), bool(wrong))
            for a, b, out, t, wrong in ROW.findall(text)]
    assert [(x1, x2, t) for x1, x2, _, t, _ in rows] == \
        [(0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)], text  # XOR, all four rows
    for *_, out, t, wrong in rows:
        assert wrong == ((out > 0.5) != (t == 1)), text
    return rows


def test_seed_xor_example():
    proc = run_example("seed_xor.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    single, hidden = out.split("== 2. One hidden layer", 1)

    # Part 1, the seed's single sigmoid unit, shuffle on: it hedges. Every
    # output is within 0.01 of 0.5, and the printed weights and bias are the
    # ones that give those outputs (they are small: the unit learned nothing).
    rows = _rows(single)
    outputs = np.array([o for *_, o, _, _ in rows])
    assert np.all(np.abs(outputs - 0.5) < 0.01), single
    W = np.array(re.search(r"Weights after training: \[([^\]]*)\]", single).group(1).split(), float)
    b = np.array(re.search(r"Bias after training:\s+\[([^\]]*)\]", single).group(1).split(), float)
    assert W.shape == (2,) and b.shape == (1,)
    X = np.array([[x1, x2] for x1, x2, *_ in rows], float)
    np.testing.assert_allclose(1 / (1 + np.exp(-(X @ W + b))), outputs, atol=2e-6)
    # Its loss sits at 0.5, what answering 0.5 everywhere costs.
    assert abs(_number_after("Final epoch loss:", single) - 0.5) < 0.02, single
    spread = float(re.search(r"every output is within ([0-9.]+) of 0.5", single).group(1))
    assert spread == pytest.approx(np.max(np.abs(outputs - 0.5)), abs=1e-4)
    correct = sum(not wrong for *_, wrong in rows)
    assert f"Accuracy: {correct / 4:.0%} at the 0.5 threshold" in single
    assert correct < 4
    assert "ONE SIGMOID UNIT CANNOT LEARN XOR" in single

    # Part 2, one hidden layer: every row right by a clear margin.
    rows = _rows(hidden)
    assert not any(wrong for *_, wrong in rows), hidden
    assert all(abs(o - 0.5) > 0.4 for *_, o, _, _ in rows), hidden
    assert _number_after("Final loss:", hidden) < 0.01
    assert "Accuracy: 100%" in hidden
    assert "OK: the hidden-layer network learned XOR (100% accuracy)." in hidden


def test_seed_xor_example_rejects_unknown_backend():
    proc = run_example("seed_xor.py", "--backend", "no-such-backend")
    assert proc.returncode == 2
    assert "unknown backend" in proc.stderr
