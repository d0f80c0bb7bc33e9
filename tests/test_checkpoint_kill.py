"""A process killed in the middle of ``save`` never costs the checkpoint it had.

A child process saves a model, then starts overwriting it and is killed with
SIGKILL (no cleanup handlers run) while the new file is half written. The
earlier checkpoint must still load and equal what was saved; the temporary
file the killed save leaves behind must not get in the way of loading or of
the next save. Each kill point (half the bytes written, or written and about
to rename) is checked with no big overwrite completed before it and with one,
on every run: which save completed last is fixed by the test, not by timing.
"""

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import nnbackend as nb
from conftest import child_pythonpath

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

# Real writes, no patching of the save: overwrite with a big model again and
# again. An audit hook (it sees each os.replace before it happens) holds the
# rename of the save numbered HOLD (1 is the small model's), so the parent
# knows which saves have completed when it kills: with HOLD=2 none of the big
# ones, with HOLD=3 exactly one. It prints "HELD" when it holds.
LOOPING = textwrap.dedent("""
    import sys, time
    import nnbackend as nb

    path, hold = sys.argv[1], int(sys.argv[2])
    renames = 0

    def hold_rename(event, args):
        global renames
        if event == "os.rename" and args[1] == path:
            renames += 1
            if renames == hold:
                print("HELD", flush=True)
                time.sleep(120)

    sys.addaudithook(hold_rename)
    big = nb.MLP([1000, 1000, 2], dtype="float64", seed=2)
    nb.MLP([4, 16, 2], seed=1).save(path)
    print("FIRST SAVED", flush=True)
    while True:
        big.save(path)
        print("BIG SAVED", flush=True)
""")


def _child(code, path, *args):
    env = dict(os.environ, PYTHONPATH=child_pythonpath(ROOT))
    return subprocess.Popen([sys.executable, "-c", code, str(path), *map(str, args)],
                            stdout=subprocess.PIPE, text=True, env=env)


def _lines(child):
    """The child's stdout lines as they come, readable with a timeout."""
    lines = queue.Queue()

    def pump():
        for line in child.stdout:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _expect(lines, text, timeout=60):
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"the child did not print {text!r} within {timeout} s") from None
    assert line == text, line


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


SMALL, BIG = ([4, 16, 2], "float32", 1), ([1000, 1000, 2], "float64", 2)


@pytest.mark.parametrize("when", ["mid-write", "at-rename"])
@pytest.mark.parametrize("completed, expected", [(0, SMALL), (1, BIG)],
                         ids=["no-big-save-done", "one-big-save-done"])
def test_kill_during_real_writes_leaves_the_last_whole_checkpoint(tmp_path, completed, expected,
                                                                  when):
    """Kill a real overwrite either once half its bytes are on disk or when
    it is about to rename, with no big save or one big save completed
    before it: the file is always the last completed save, whole."""
    path = tmp_path / "model.npz"
    nb.MLP(BIG[0], dtype=BIG[1], seed=BIG[2]).save(tmp_path / "size.npz")
    full_size = os.path.getsize(tmp_path / "size.npz")
    os.unlink(tmp_path / "size.npz")
    child = _child(LOOPING, path, 2 + completed)
    lines = _lines(child)
    try:
        _expect(lines, "FIRST SAVED")
        for _ in range(completed):
            _expect(lines, "BIG SAVED")
        if when == "at-rename":
            # Written and fsynced, the rename not yet done.
            _expect(lines, "HELD")
            assert os.path.getsize(tmp_path / _litter(tmp_path)[0]) == full_size
        else:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                litter = _litter(tmp_path)
                if litter and os.path.getsize(tmp_path / litter[0]) >= full_size // 2:
                    break
                time.sleep(0.0005)
            else:
                raise AssertionError("the child's overwrite never got half written beside the file")
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    loaded = nb.MLP.load(path)
    assert loaded.layer_sizes == expected[0]
    _assert_same(loaded, nb.MLP(expected[0], dtype=expected[1], seed=expected[2]))
    # The killed save's temporary file stays beside it; the next save works.
    assert len(_litter(tmp_path)) == 1
    again = nb.MLP([4, 16, 2], seed=3)
    again.save(path)
    _assert_same(nb.MLP.load(path), again)
