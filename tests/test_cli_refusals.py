"""The command line's refusals an adversarial review found missing: NaN outputs
written as predictions, empty path flags read as left out, class ids past
2**53 merged by evaluate, output links into missing directories found only
after the training, a temporary file left by an interrupted write, warnings
shown as Python's file:line, info's backend flags, a float column index cut
to an int, NaN in --json, and NumPy's size errors that name no flag.
"""

import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from nnbackend.cli import main
from nnbackend.datafiles import load_data_file
from conftest import child_pythonpath, cli_refusal

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(*args, **env):
    """``nnbackend ARGS`` in a subprocess of this checkout, with ``env`` added."""
    env = {**{k: v for k, v in os.environ.items()
              if k not in ("NNBACKEND_BACKEND", "NNBACKEND_DEBUG")},
           "PYTHONPATH": child_pythonpath(ROOT), **env}
    return subprocess.run([sys.executable, "-m", "nnbackend", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def _classifier(tmp_path, header="a,b,label"):
    """A small two-class model on columns a, b (1 epoch) and its training csv."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 2))
    rows = [f"{a:.4f},{b:.4f},{'yes' if a + b > 0 else 'no'}" for a, b in X]
    data = tmp_path / "train.csv"
    data.write_text(header + "\n" + "\n".join(rows) + "\n")
    model = tmp_path / "m.npz"
    assert main(["train", "--data", str(data), "--target", "label", "--epochs", "1",
                 "--quiet", "--save", str(model)]) == 0
    return model, data


# -- NaN outputs -------------------------------------------------------------------


def test_predict_refuses_rows_whose_outputs_are_nan_instead_of_writing_them(tmp_path, capsys):
    # 3.3e38 is a float32, but not once standardized: the row's probabilities
    # were NaN, written as "no,nan,nan" (argmax of NaN: the first class), status 0.
    model, _ = _classifier(tmp_path)
    data = tmp_path / "far.csv"
    data.write_text("a,b\n3.3e38,3.3e38\n0.1,0.2\n")
    capsys.readouterr()
    err = cli_refusal(["predict", "--model", model, "--data", data,
                       "--out", tmp_path / "p.csv"], capsys)
    assert "NaN or infinite" in err and "rows 1" in err
    assert not (tmp_path / "p.csv").exists()


def test_evaluate_does_not_score_nan_outputs_as_the_first_class(tmp_path, capsys):
    model, _ = _classifier(tmp_path)
    data = tmp_path / "far.csv"
    data.write_text("a,b,label\n3.3e38,3.3e38,yes\n0.1,0.2,no\n")
    capsys.readouterr()
    err = cli_refusal(["evaluate", "--model", model, "--data", data, "--json"], capsys)
    assert "NaN or infinite" in err


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_train_json_stays_strict_json_when_a_loss_is_nan(capsys):
    # lr 3e38: the kept weights are finite, their loss overflows: the summary
    # printed "train_loss": NaN, which JSON readers (jq, JSON.parse) refuse.
    main(["train", "--epochs", "2", "--lr", "3e38", "--json", "--quiet"])
    summary = _strict_json(capsys.readouterr().out)
    assert summary["train_loss"] is None or math.isfinite(summary["train_loss"])


# -- empty paths -------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--save", "--resume", "--plot", "--data"])
def test_an_empty_train_path_is_refused_not_read_as_left_out(tmp_path, capsys, flag):
    # --save "" trained and wrote nothing (status 0); --resume "" trained afresh;
    # --data "" trained on XOR.
    err = cli_refusal(["train", "--epochs", "1", "--quiet", flag, ""], capsys)
    assert f"{flag}: the path is empty" in err


def test_an_empty_calibration_time_budget_is_refused_not_read_as_the_default(
        tmp_path, capsys, monkeypatch):
    # --time-budget "" ran the full 90 s calibration and wrote the profile.
    monkeypatch.setenv("NNBACKEND_CACHE_DIR", str(tmp_path))

    def no_calibration(*args, **kwargs):
        raise AssertionError("the calibration started")

    monkeypatch.setattr("nnbackend.calibrate.calibrate", no_calibration)
    err = cli_refusal(["bench", "--calibrate", "--backends", "numpy", "--time-budget", ""],
                      capsys)
    assert "--time-budget" in err


def test_an_empty_predict_out_is_refused_not_read_as_stdout(tmp_path, capsys):
    model, data = _classifier(tmp_path)
    capsys.readouterr()
    err = cli_refusal(["predict", "--model", model, "--data", data, "--out", ""], capsys)
    assert "--out: the path is empty" in err


# -- evaluate's class ids ----------------------------------------------------------


def test_evaluate_counts_integer_class_labels_past_2_53_exactly(tmp_path, capsys):
    # float64 made 2**53 + 1 equal 2**53: every row counted as one class.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = np.where(X[:, 0] > 0, 2**53 + 1, 2**53).astype(np.int64)
    data = tmp_path / "ids.npz"
    np.savez(data, X=X, y=y)
    model = tmp_path / "m.npz"
    assert main(["train", "--data", str(data), "--epochs", "1", "--quiet",
                 "--save", str(model)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    support = {c["class"]: c["support"] for c in report["per_class"]}
    assert support == {2**53: int((y == 2**53).sum()), 2**53 + 1: int((y == 2**53 + 1).sum())}


# -- outputs through links ---------------------------------------------------------


@pytest.mark.parametrize("flag, name", [("--save", "m.npz"), ("--plot", "loss.png")])
def test_an_output_link_into_a_missing_directory_is_refused_before_training(
        tmp_path, capsys, monkeypatch, flag, name):
    # The check looked at the link's directory; the write, through the link,
    # failed after the training (and a --plot failure lost the summary).
    if flag == "--plot":
        pytest.importorskip("matplotlib")
    link = tmp_path / name
    link.symlink_to(tmp_path / "missing" / name)

    def no_fit(*args, **kwargs):
        raise AssertionError("training started before the output path was refused")

    monkeypatch.setattr("nnbackend.model.MLP.fit", no_fit)
    err = cli_refusal(["train", "--epochs", "1", "--quiet", flag, link], capsys)
    assert "no such directory" in err and "missing" in err


# -- interrupted writes ------------------------------------------------------------


def test_an_interrupted_predict_out_leaves_no_temporary_file(tmp_path, capsys, monkeypatch):
    model, data = _classifier(tmp_path)

    def interrupted(file, **arrays):
        file.write(b"half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(SystemExit) as stopped:
        main(["predict", "--model", str(model), "--data", str(data),
              "--out", str(tmp_path / "p.npz")])
    assert stopped.value.code == 130
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "train.csv"]


# -- warnings ----------------------------------------------------------------------


def test_a_warning_is_one_nnbackend_line_not_python_s_file_and_source(tmp_path):
    # predict's documented warning for a header of numbers came out as
    # "/.../cli_data.py:261: UserWarning: ..." and the line of source below it.
    model, _ = _classifier(tmp_path, header="1,2,label")
    data = tmp_path / "numbers.csv"
    data.write_text("1,2\n0.1,0.2\n")
    proc = run("predict", "--model", model, "--data", data)
    assert proc.returncode == 0, proc.stderr
    assert "nnbackend: warning: " in proc.stderr and "is read as the header" in proc.stderr
    assert ".py:" not in proc.stderr and "Warning:" not in proc.stderr


def test_info_s_profile_warning_is_one_nnbackend_line(tmp_path):
    (tmp_path / "auto-profile.json").write_text("{not json")
    proc = run("info", "--backend", "auto", NNBACKEND_CACHE_DIR=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "nnbackend: warning: " in proc.stderr and "is not a usable profile" in proc.stderr
    assert ".py:" not in proc.stderr


# -- info's flags ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["numpy:cpu", "NUMPY"])
def test_info_names_the_version_of_a_backend_spelled_with_its_device_or_in_capitals(
        capsys, name):
    assert main(["info", "--backend", name, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["version"] == np.__version__ and row["backend"] == "numpy"


@pytest.mark.parametrize("backend", ["numpy", "auto"])
def test_info_refuses_a_scheduler_for_another_backend_as_train_does(capsys, backend):
    err = cli_refusal(["info", "--backend", backend, "--scheduler", "threads"], capsys)
    assert "--scheduler" in err and "--backend dask" in err


def test_info_refuses_an_empty_backend_name_as_train_does(capsys):
    err = cli_refusal(["info", "--backend", ""], capsys)
    assert "unknown backend ''" in err


# -- sizes -------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["xor", "moons", "synthetic"])
def test_more_rows_than_an_array_can_hold_are_refused_by_name(capsys, dataset):
    # Was NumPy's "Maximum allowed size exceeded" alone: no flag, no value.
    err = cli_refusal(["train", "--dataset", dataset, "--n-samples", str(10**23)], capsys)
    assert "n_samples=" + str(10**23) in err


# -- column indices ----------------------------------------------------------------


@pytest.mark.parametrize("target", [2.7, True])
def test_a_header_less_target_index_that_is_not_an_integer_is_refused(tmp_path, target):
    # 2.7 was cut to column 2, True read as column 1.
    path = tmp_path / "n.csv"
    path.write_text("1,2,0\n3,4,1\n5,6,0\n")
    with pytest.raises(ValueError, match="column index"):
        load_data_file(path, target=target, header=False)


# -- a last epoch that overflows ---------------------------------------------------


def test_a_fit_whose_last_weights_overflow_keeps_the_old_checkpoint_and_fails(tmp_path, capsys):
    # Each epoch's loss is measured before its steps and was finite, and so
    # were the weights (about 1e38); their logits were not: the run exited 0,
    # printed "train loss nan" and wrote those weights over the checkpoint.
    model = tmp_path / "m.npz"
    assert main(["train", "--epochs", "2", "--quiet", "--save", str(model)]) == 0
    before = model.read_bytes()
    capsys.readouterr()
    status = main(["train", "--epochs", "2", "--quiet", "--lr", "3e38", "--resume", str(model),
                   "--save", str(model), "--json"])
    out, err = capsys.readouterr()
    assert status == 1
    assert model.read_bytes() == before
    assert "weights it ended with give a NaN or infinite loss" in err
    report = json.loads(out)
    assert report["saved"] is None and report["train_loss"] is None
