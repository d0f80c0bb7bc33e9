"""The digits benchmark's command reaches 96 % test accuracy (see
benchmarks/digits_vs_sklearn.py): the full command, about 2 s on a CPU."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")

COMMAND = [
    "train", "--dataset", "digits", "--val-split", "0.25", "--hidden", "64",
    "--activation", "relu", "--mode", "minibatch", "--batch-size", "32", "--optimizer", "sgd",
    "--epochs", "50", "--lr", "0.1", "--seed", "0", "--json", "--quiet", "--no-standardize",
]


def test_digits_command_reaches_96_percent_test_accuracy():
    env = {k: v for k, v in os.environ.items() if k not in ("NNBACKEND_BACKEND", "NNBACKEND_DEBUG")}
    proc = subprocess.run([sys.executable, "-m", "nnbackend.cli", *COMMAND],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    # The 25 % stratified hold-out is the test set: 1797 images -> 1348 / 449.
    assert (s["n_train"], s["n_val"], s["epochs_run"]) == (1348, 449, 50)
    assert s["layer_sizes"] == [64, 64, 10] and s["backend"] == "numpy"
    assert not s["diverged"]
    assert s["val_accuracy"] >= 0.96, s
