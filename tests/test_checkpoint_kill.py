"""A process killed in the middle of ``save`` never costs the checkpoint it had.

A child process saves a model, then starts overwriting it and is killed with
SIGKILL (no cleanup handlers run) while the new file is half written. The
earlier checkpoint must still load and equal what was saved; the temporary
file the killed save leaves behind must not get in the way of loading or of
the next save.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import nnbackend as nb

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The child saves the first model, then a second one whose write stops
# halfway: the real archive's first half reaches the disk, then it sleeps
# until killed. "MID-WRITE" tells the parent when to kill.
STALLED = textwrap.dedent("""
    import sys, time, io
    import numpy as np
    import nnbackend as nb
    from nnbackend import checkpoint

    path = sys.argv[1]
    nb.MLP([4, 16, 2], seed=1).save(path)
    real_savez = np.savez

    def half_then_stall(f, **arrays):
        buffer = io.BytesIO()
        real_savez(buffer, **arrays)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        print("MID-WRITE", flush=True)
        time.sleep(120)

    checkpoint.np.savez = half_then_stall
    nb.MLP([4, 16, 2], seed=2).save(path)
    print("NOT KILLED", flush=True)
""")

# Real writes, no patching: keep overwriting with big models and get killed
# at whatever point the write has reached.
LOOPING = textwrap.dedent("""
    import sys
    import nnbackend as nb

    path = sys.argv[1]
    nb.MLP([4, 16, 2], seed=1).save(path)
    print("FIRST SAVED", flush=True)
    big = nb.MLP([1000, 1000, 2], dtype="float64", seed=2)
    while True:
        big.save(path)
""")


def _child(code, path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                            text=True, env=env)


def _params(model):
    return [np.asarray(model.backend.to_host(a)) for pair in model.params for a in pair]


def _assert_same(model, expected):
    for got, want in zip(_params(model), _params(expected)):
        np.testing.assert_array_equal(got, want)


def _litter(directory):
    return [p for p in os.listdir(directory) if p.startswith(".nnbackend-")]


def test_kill_in_the_middle_of_save_keeps_the_earlier_checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    child = _child(STALLED, path)
    try:
        line = child.stdout.readline().strip()
        assert line == "MID-WRITE", line
        # The half-written archive exists beside the target, not in its place.
        partial = _litter(tmp_path)
        assert len(partial) == 1 and os.path.getsize(tmp_path / partial[0]) > 0
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    first = nb.MLP([4, 16, 2], seed=1)
    _assert_same(nb.MLP.load(path), first)
    # The killed save's temporary file stays (SIGKILL runs no cleanup); it is
    # hidden, never read as the checkpoint, and the next save works beside it.
    assert len(_litter(tmp_path)) == 1
    second = nb.MLP([4, 16, 2], seed=3)
    second.save(path)
    _assert_same(nb.MLP.load(path), second)


def test_kill_at_a_random_point_of_real_writes_leaves_a_whole_checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    child = _child(LOOPING, path)
    try:
        assert child.stdout.readline().strip() == "FIRST SAVED"
        # Wait until a big write is under way, then a little more: the kill
        # lands somewhere inside writing, fsync or rename.
        deadline = time.monotonic() + 60
        while not _litter(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert _litter(tmp_path), "the child never started writing"
        time.sleep(np.random.default_rng().uniform(0, 0.05))
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)

    loaded = nb.MLP.load(path)
    # Whichever save finished last, the file is that whole model.
    if loaded.layer_sizes == [4, 16, 2]:
        _assert_same(loaded, nb.MLP([4, 16, 2], seed=1))
    else:
        _assert_same(loaded, nb.MLP([1000, 1000, 2], dtype="float64", seed=2))
