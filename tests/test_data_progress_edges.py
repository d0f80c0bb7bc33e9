"""Edges of data loading, the progress display and the train summary found
by the data files and progress review of 2026-12-07: each test failed
before its fix."""

import io
import json
import sys

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.cli import main
from nnbackend.cli_evaluate import _number
from nnbackend.datafiles import load_data_file, load_features_file, read_labelled_file
from nnbackend.tasks import is_number
from nnbackend.training import EpochProgress
from conftest import cli_refusal


class _HungUp(io.StringIO):
    """A stream whose writes fail as a hung-up terminal's or a full disk's do."""

    def write(self, text):
        raise OSError(5, "Input/output error")


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    return X, (X[:, 0] > 0).astype(np.float64)


# -- progress: a failed write ends the display, not the training ------------------


@pytest.mark.parametrize("stream", ["hung-up", "closed", "none"])
def test_a_progress_stream_that_fails_ends_the_display_not_the_fit(monkeypatch, stream):
    # Before: the write's OSError (or ValueError on a closed file, or
    # AttributeError where sys.stderr is None) left fit, and the fit was lost.
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", {"hung-up": _HungUp(), "closed": closed,
                                        "none": None}[stream])
    X, y = _data()
    model = nb.MLP([3, 1], loss="bce")
    hist = model.fit(X, y, epochs=3, progress=True)
    assert hist.epochs == 3 and model.train_state.epochs_done == 3


def test_train_saves_its_model_when_stderr_fails(tmp_path, monkeypatch, capsys):
    # Before: `nnbackend train --save m.npz` in a terminal that hung up (EIO)
    # exited 2 at its first progress line and wrote no model.
    monkeypatch.setattr(sys, "stderr", _HungUp())
    path = tmp_path / "m.npz"
    assert main(["train", "--dataset", "moons", "--n-samples", "40", "--epochs", "3",
                 "--save", str(path)]) == 0
    assert path.exists()
    assert "3 of 3 epochs" in capsys.readouterr().out


# -- progress: the last epoch run is shown -----------------------------------------


def test_plain_lines_end_with_the_last_epoch_a_stopped_run_ran():
    # Before: thinned to every 50th epoch, a run stopped at 537 of 1000 ended
    # its log at "epoch 500/1000 ... ETA", its last figures never shown.
    stream = io.StringIO()
    progress = EpochProgress(1000, stream, max_lines=20)
    for epoch in range(1, 538):
        progress.update(epoch, {"loss": 1.0 / epoch})
    progress.close()
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[-2].startswith("epoch 500/1000") and "ETA" in lines[-2]
    assert lines[-1].startswith("epoch 537/1000  loss 0.001862  [") and "ETA" not in lines[-1]
    assert len(lines) == 12


def test_train_stopped_early_logs_its_last_epoch(capsys):
    # The command line thins 400 epochs to every 20th: this run stops at 8.
    assert main(["train", "--dataset", "moons", "--n-samples", "60", "--epochs", "400",
                 "--val-split", "0.3", "--patience", "5", "--lr", "1.0"]) == 0
    captured = capsys.readouterr()
    assert "8 of 400 epochs" in captured.out and "stopped early" in captured.out
    lines = [line for line in captured.err.splitlines() if line.startswith("epoch ")]
    assert lines[0].startswith("epoch 1/400") and lines[-1].startswith("epoch 8/400  loss ")
    assert "ETA" not in lines[-1]


# -- the summary of a run that ran no epoch -----------------------------------------


def test_no_time_per_epoch_is_reported_for_a_run_of_no_epoch(capsys):
    # Before: 0 epochs gave "0 of 3 epochs in 0.30 s: 300.00 ms/epoch, 0
    # samples/s", the whole run's time as one epoch's.
    argv = ["train", "--dataset", "synthetic", "--lr", "1e6",
            "--epochs", "3", "--quiet"]
    assert main([*argv, "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs_run"] == 0 and summary["diverged"]
    assert summary["seconds_per_epoch"] is None and summary["samples_per_second"] is None
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "0 of 3 epochs in " in out and "ms/epoch" not in out and "samples/s" not in out


# -- numbers as data files write them -----------------------------------------------


@pytest.mark.parametrize("cell", ["1_5", "1_000", "\uff11"])
def test_digit_groups_and_non_ascii_digits_are_no_numbers(tmp_path, cell):
    # Before: Python's float() read "1_5" as 15 and a full-width "１" as 1;
    # NumPy's loadtxt and pandas refuse both.
    path = tmp_path / "d.csv"
    path.write_text(f"x,y\n{cell},0\n2,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"line 2, column 'x': '{cell}' is not a finite number"):
        load_data_file(path, "y")
    assert not is_number(cell) and is_number("15") and is_number(" 1e3 ")


def test_a_label_with_a_digit_group_is_a_class_not_a_number(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,code\n1,3_4\n2,34\n3,3_4\n")
    X, y, classes = load_data_file(path, "code", return_classes=True)
    assert classes == ["34", "3_4"] and y.tolist() == [1, 0, 1]
    assert np.isnan(_number("3_4")) and _number("34") == 34.0 and _number(2.5) == 2.5


# -- npz labels past int64 -----------------------------------------------------------


def test_uint64_labels_past_int64_are_not_wrapped_to_negative(tmp_path):
    # Before: astype(int64) wrapped 2**63 to -2**63.
    path = tmp_path / "d.npz"
    y = np.array([2 ** 63, 1, 2 ** 64 - 1], dtype=np.uint64)
    np.savez(path, X=np.ones((3, 2)), y=y)
    _, labels = load_data_file(path)
    assert labels.dtype == np.float64 and labels.tolist() == [2.0 ** 63, 1.0, 2.0 ** 64]
    np.savez(path, X=np.ones((3, 2)), y=np.array([1, 2, 3], dtype=np.uint64))
    assert load_data_file(path)[1].dtype == np.int64
    assert read_labelled_file(path, None)[1].dtype == np.int64


# -- a .npy that is not one ----------------------------------------------------------


def _not_npy(tmp_path, kind):
    path = tmp_path / "X.npy"
    if kind == "npz":
        np.savez(path.with_suffix(".npz"), X=np.ones((4, 2)), y=np.zeros(4))
        path.with_suffix(".npz").rename(path)
    elif kind == "text":
        path.write_text("1,2\n3,4\n")
    else:
        path.mkdir()
    return path


@pytest.mark.parametrize("kind, message", [
    ("npz", "it is an .npz archive (named arrays in a zip), not a .npy file: name it .npz"),
    ("text", "it is not a .npy file (it lacks NumPy's header"),
    ("dir", "Is a directory")])
def test_train_names_a_npy_that_is_not_one(tmp_path, capsys, kind, message):
    # Before: an .npz so named left the command line by an AttributeError
    # traceback; a text file was "pickled (object) data"; a directory, "no
    # such file".
    path = _not_npy(tmp_path, kind)
    labels = tmp_path / "y.npy"
    np.save(labels, np.zeros(4))
    err = cli_refusal(["train", "--data", path, "--target", labels, "--epochs", "1"], capsys)
    assert message in err, err
    if kind != "dir":
        err = cli_refusal(["train", "--data", labels, "--target", path, "--epochs", "1"],
                          capsys)
        assert message in err, err


@pytest.mark.parametrize("kind", ["npz", "text"])
def test_predict_names_a_npy_that_is_not_one(tmp_path, kind):
    path = _not_npy(tmp_path, kind)
    with pytest.raises(ValueError, match="not a .npy file") as refused:
        load_features_file(path)
    assert "pickle" not in str(refused.value) and "shape None" not in str(refused.value)
