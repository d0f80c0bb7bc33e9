"""Progress: a tqdm bar (rate, time left, the epoch's figures) where someone
watches, plain lines in a log or without tqdm; in fit(progress=True) and in
``nnbackend train`` (issue 14)."""

import io
import os
import re
import struct
import subprocess
import sys
import types

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.training import EpochProgress


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def _needs_tqdm():
    pytest.importorskip("tqdm.auto", reason="tqdm is not installed (a dependency of nnbackend)")


def _hide_tqdm(monkeypatch):
    for name in ("tqdm", "tqdm.auto", "tqdm.autonotebook", "tqdm.std", "tqdm.asyncio"):
        monkeypatch.setitem(sys.modules, name, None)


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    return X, (X[:, 0] > 0).astype(np.float64)


def test_a_terminal_gets_a_tqdm_bar_with_rate_eta_and_figures():
    _needs_tqdm()
    stream = _Terminal()
    progress = EpochProgress(4, stream)
    assert progress.bar is not None
    for epoch in range(1, 5):
        progress.update(epoch, {"loss": 1.0 / epoch, "accuracy": 0.75})
    progress.close()
    text = stream.getvalue()
    assert "4/4" in text and "100%" in text
    assert "loss=0.25" in text and "accuracy=0.75" in text
    # [elapsed<time left, rate
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d, *[\d.]+(epoch/s|s/epoch)", text), text


def test_a_log_gets_plain_lines_with_elapsed_and_eta():
    stream = io.StringIO()  # not a terminal
    progress = EpochProgress(3, stream)
    assert progress.bar is None
    for epoch in range(1, 4):
        progress.update(epoch, {"loss": 0.5 / epoch})
    progress.close()
    lines = stream.getvalue().splitlines()
    assert [l.split("  ")[0] for l in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "loss 0.5" in lines[0] and "ETA" in lines[0]
    assert "loss 0.1667" in lines[2] and "ETA" not in lines[2]


def test_plain_lines_are_thinned_to_max_lines_keeping_first_and_last():
    stream = io.StringIO()
    progress = EpochProgress(1000, stream, max_lines=20)
    for epoch in range(1, 1001):
        progress.update(epoch, {"loss": 1.0})
    epochs = [int(l.split()[1].split("/")[0]) for l in stream.getvalue().splitlines()]
    assert epochs[0] == 1 and epochs[-1] == 1000 and len(epochs) == 21


def test_a_jupyter_kernel_gets_the_bar_though_its_stream_is_no_terminal(monkeypatch):
    # As Keras decides: a kernel's output is watched live (tqdm.auto makes it
    # a widget there where ipywidgets is installed).
    _needs_tqdm()
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    stream = io.StringIO()
    progress = EpochProgress(2, stream)
    assert progress.bar is not None
    progress.update(2, {"loss": 0.5})
    progress.close()
    assert "2/2" in stream.getvalue() and "loss=0.5" in stream.getvalue()


def test_without_tqdm_a_terminal_gets_plain_lines(monkeypatch):
    _hide_tqdm(monkeypatch)
    stream = _Terminal()
    progress = EpochProgress(2, stream)
    assert progress.bar is None
    progress.update(1, {"loss": 0.5})
    progress.update(2, {"loss": 0.25})
    progress.close()
    assert stream.getvalue().splitlines()[-1].startswith("epoch 2/2  loss 0.25")


def test_fit_progress_on_a_terminal_is_a_tqdm_bar(monkeypatch):
    _needs_tqdm()
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    hist = nb.MLP([3, 1], loss="bce").fit(*_data(), epochs=3, progress=True)
    text = stream.getvalue()
    assert "3/3" in text and f"loss={hist.loss[-1]:.4g}" in text
    assert f"accuracy={hist.accuracy[-1]:.4g}" in text


def test_fit_progress_works_with_tqdm_hidden(monkeypatch):
    _hide_tqdm(monkeypatch)
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    hist = nb.MLP([3, 1], loss="bce").fit(*_data(), epochs=3, progress=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1].startswith(f"epoch 3/3  loss {hist.loss[-1]:.4g}")


def test_fit_progress_bar_is_closed_when_training_stops_early():
    _needs_tqdm()
    stream = _Terminal()
    X, y = _data()
    original = sys.stderr
    try:
        sys.stderr = stream
        hist = nb.MLP([3, 1], loss="bce").fit(X, y, epochs=50, progress=True, patience=1,
                                                 min_delta=10.0)
    finally:
        sys.stderr = original
    assert hist.stopped_early and hist.epochs == 2
    text = stream.getvalue()
    assert "2/50" in text and text.endswith("\n")  # closed: the bar's line is ended


def _run_on_a_terminal(args, columns=100):
    """``nnbackend ARGS`` with stderr on a pseudo-terminal ``columns`` wide;
    returns (stderr as the terminal got it, stdout)."""
    fcntl = pytest.importorskip("fcntl", reason="pseudo-terminals need a POSIX system")
    pty = pytest.importorskip("pty", reason="pseudo-terminals need a POSIX system")
    termios = pytest.importorskip("termios", reason="pseudo-terminals need a POSIX system")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNBACKEND_")}
    proc = subprocess.Popen([sys.executable, "-m", "nnbackend.cli", *args], stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # Linux: EIO once the child has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read()
    proc.wait(timeout=120)
    os.close(master)
    return b"".join(chunks).decode(), out.decode(), proc.returncode


@pytest.mark.parametrize("columns", [100, 0])  # 0: a terminal that reports no size
def test_cli_draws_a_tqdm_bar_on_a_terminal(columns):
    _needs_tqdm()
    err, out, status = _run_on_a_terminal(["train", "--dataset", "spirals", "--epochs", "20"],
                                          columns)
    assert status == 0, err
    assert "20/20" in err and "100%" in err
    assert re.search(r"[\d.]+(epoch/s|s/epoch), loss=[\d.e+-]+, accuracy=[\d.]+\]", err), err
    assert "trained [2, 64, 3]" in out


def test_cli_progress_in_a_log_is_plain_lines_with_the_figures():
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNBACKEND_")}
    proc = subprocess.run([sys.executable, "-m", "nnbackend.cli", "train", "--dataset", "spirals",
                           "--epochs", "40"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("epoch ")]
    assert lines[0].startswith("epoch 1/40  loss ") and "accuracy" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("epoch 40/40  loss ") and len(lines) == 21
    assert "\r" not in proc.stderr
