"""Tests from the mutation audit of the command line's subcommand modules:
``nnbackend/cli_data.py`` (the training settings, the data files, predict),
``nnbackend/cli_evaluate.py`` (evaluate and its metrics), ``nnbackend/cli_info.py``
(info) and ``nnbackend/cli_auto.py`` (backend='auto' on the command line:
info's auto section and ``bench --calibrate``), from the 2026-12-08n mutation
audit.

Each test names in a comment the mutants it kills (ids of the audit's tables)
and what went wrong under them. Everything runs in-process (``cli.main`` or
the module's functions) on a few rows, with models built by hand where the
figures must be known; nothing is timed and no calibration fit runs. Some
ids were not run against the existing tests in the audit's time (its report
lists them under "Not run against the groups"): this file kills each of them
(verified), but whether the existing tests do too is not known.
"""

import argparse
import json
import os
import re

import numpy as np
import pytest

import nnbackend as nb
from conftest import cli_refusal
from nnbackend import cli
from nnbackend import cli_evaluate as ev


def _model(out, activation, loss, W1, b1, classes=None, target="answer", task=None,
           inputs=1, dtype="float64"):
    """x -> identity hidden unit(s) h = x -> output layer (W1, b1), in ``dtype``."""
    model = nb.MLP([inputs, inputs, out], hidden_activation="identity",
                   output_activation=activation, loss=loss, dtype=dtype,
                   params=[(np.eye(inputs), np.zeros(inputs)),
                           (np.array(W1, float).reshape(inputs, out), np.array(b1, float))])
    model.feature_names_in_ = [f"x{i}" if inputs > 1 else "x" for i in range(inputs)]
    model.classes_ = classes
    model.metadata = {"task": task, "classes": classes, "target": target}
    return model


def _binary(path, classes=("no", "yes"), **kw):
    """p(second class) = sigmoid(x): the second class exactly where x > 0."""
    _model(1, "sigmoid", "bce", [1.0], [0.0], list(classes), task="binary", **kw).save(path)
    return str(path)


def _evaluate(capsys, model, data, *args):
    """``nnbackend evaluate --json``'s report, run in-process."""
    assert cli.main(["evaluate", "--model", str(model), "--data", str(data), "--json",
                     *map(str, args)]) == 0
    return json.loads(capsys.readouterr().out)


# -- cli_evaluate.py: the metrics ---------------------------------------------------------


def test_a_negative_class_id_is_refused_not_counted_from_the_end():
    # E03 (the ``< 0`` check dropped): id -1 was counted in the last class's row
    # (numpy's negative index), a confusion matrix with a row that no label made.
    for true, predicted in (([-1, 0], [0, 0]), ([0, 1], [1, -1])):
        with pytest.raises(ValueError, match=r"range\(2\)"):
            ev.confusion_matrix(true, predicted, 2)


# -- cli_evaluate.py: which task, which labels -----------------------------------------------


def test_a_binary_task_without_class_scores_is_scored_as_ids_0_and_1(tmp_path, capsys):
    # E14 (the fallback for a head that gives no class probabilities dropped): a
    # model the checkpoint calls binary whose head is sigmoid + mse (no classes_)
    # was refused with "'NoneType' object is not iterable", where evaluate scores
    # ids 0 and 1. E17 (the checkpoint's task not read): the same model was
    # scored as a regression, by its mse head.
    model = _model(1, "sigmoid", "mse", [1.0], [0.0], None, task="binary")
    model.save(tmp_path / "m.npz")
    np.savez(tmp_path / "d.npz", X=np.array([[-1.0], [2.0], [3.0]]), y=np.array([0, 1, 0]))
    report = _evaluate(capsys, tmp_path / "m.npz", tmp_path / "d.npz")
    assert report["task"] == "binary" and report["classes"] == [0, 1]
    assert report["confusion_matrix"] == [[1, 1], [0, 1]]


def test_a_model_without_task_metadata_is_a_classifier_by_its_head(tmp_path, capsys):
    # E18 (the cross-entropy head not read as multiclass): a softmax model whose
    # checkpoint has no task was scored as a regression, its text labels refused
    # as "not a finite number". E19 (a head of several sigmoid units not
    # refused): a multi-label model was scored as binary, classes 0 and 1 (here
    # its text labels were then refused as not among them).
    model = _model(3, "softmax", "cross_entropy", [1.0, -1.0, 0.0], [0.0, 0.0, 1.0],
                   ["hi", "lo", "mid"])
    model.metadata = {}
    model.save(tmp_path / "m.npz")
    np.savez(tmp_path / "d.npz", X=np.array([[-3.0], [0.0], [2.0]]),
             y=np.array(["lo", "mid", "lo"]))
    report = _evaluate(capsys, tmp_path / "m.npz", tmp_path / "d.npz")
    assert report["task"] == "multiclass"
    assert report["confusion_matrix"] == [[0, 0, 0], [1, 1, 0], [0, 0, 1]]
    labels = _model(2, "sigmoid", "bce", [1.0, -1.0], [0.0, 0.0], None)
    labels.metadata = {}
    labels.save(tmp_path / "multi.npz")
    err = cli_refusal(["evaluate", "--model", tmp_path / "multi.npz", "--data",
                       tmp_path / "d.npz"], capsys)
    assert "a head of 2 sigmoid units" in err


def test_the_labels_of_npy_features_must_be_an_npy(tmp_path, capsys):
    # E20 (only "--target given" checked): --target naming an .npz for .npy
    # features was loaded as an archive and crashed (AttributeError, a traceback)
    # where it is refused in one line.
    _binary(tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", np.zeros((3, 1)))
    np.savez(tmp_path / "y.npz", y=np.zeros(3))
    err = cli_refusal(["evaluate", "--model", tmp_path / "m.npz", "--data", tmp_path / "x.npy",
                       "--target", tmp_path / "y.npz"], capsys)
    assert "name the labels with --target LABELS.npy" in err


def test_an_npz_is_scored_against_the_models_own_target_array(tmp_path, capsys):
    # E22 (the saved target not looked for in an .npz): an archive holding the
    # model's label array 'answer' beside another 'y' was scored against y.
    _binary(tmp_path / "m.npz")
    x = np.array([[-1.0], [1.0], [2.0]])
    np.savez(tmp_path / "d.npz", X=x, answer=np.array(["no", "yes", "yes"]),
             y=np.array(["yes", "no", "no"]))
    report = _evaluate(capsys, tmp_path / "m.npz", tmp_path / "d.npz")
    assert report["target"] == "answer" and report["accuracy"] == 1.0


def test_one_hot_labels_are_scored_and_other_wide_labels_refused(tmp_path, capsys):
    # E28 (wide labels not read as one-hot): one-hot rows were flattened, twice
    # the rows of labels, and refused as "6 true labels but 3 predictions". E29
    # (the one-hot width not checked against the classes): 3 one-hot columns for
    # 2 classes were scored as 2 classes where the third column is never hot.
    # E30 (a row's ones not counted): a row with two ones (or none) was scored as
    # its first hot (or first) class.
    model = _binary(tmp_path / "m.npz", classes=(0, 1))
    x = np.array([[-1.0], [1.0], [2.0]])
    np.savez(tmp_path / "hot.npz", X=x, y=np.array([[1, 0], [0, 1], [1, 0]]))
    report = _evaluate(capsys, model, tmp_path / "hot.npz")
    assert report["n_samples"] == 3 and report["confusion_matrix"] == [[1, 1], [0, 1]]
    for name, y in (("wide", [[1, 0, 0], [0, 1, 0], [1, 0, 0]]),
                    ("two", [[1, 1], [0, 1], [1, 0]]),
                    ("none", [[0, 0], [0, 1], [1, 0]])):
        np.savez(tmp_path / f"{name}.npz", X=x, y=np.array(y))
        err = cli_refusal(["evaluate", "--model", model, "--data", tmp_path / f"{name}.npz"],
                          capsys)
        assert "one label (or one-hot row) per row" in err, name


def test_true_and_false_classes_match_their_text_in_a_csv(tmp_path, capsys):
    # E31 (a bool class counted as a number): classes [False, True] were matched
    # as numbers, and a .csv's labels "False" and "True" (text, not numbers) were
    # refused as not among the model's classes.
    model = _binary(tmp_path / "m.npz", classes=(False, True))
    (tmp_path / "d.csv").write_text("x,answer\n-1,False\n1,True\n2,False\n")
    report = _evaluate(capsys, model, tmp_path / "d.csv")
    assert report["classes"] == [False, True]
    assert report["confusion_matrix"] == [[1, 1], [0, 1]]


def test_whole_number_text_labels_past_2_53_are_their_own_classes(tmp_path, capsys):
    # E35 (a .csv's text label not read as an int): "9007199254740993" was read
    # as a float, 2**53, and counted as the class 2**53: a row of the second
    # class scored as the first.
    big = 2 ** 53
    model = _binary(tmp_path / "m.npz", classes=(big, big + 1))
    (tmp_path / "d.csv").write_text(f"x,answer\n-1,{big}\n1,{big + 1}\n2,{big}\n")
    report = _evaluate(capsys, model, tmp_path / "d.csv")
    assert report["classes"] == [big, big + 1]
    assert report["confusion_matrix"] == [[1, 1], [0, 1]]


def test_whole_float_labels_match_text_classes(tmp_path, capsys):
    # E37 (a whole float not written as an int): an .npz's labels 1.0 and 2.0
    # were compared as "1.0" and "2.0" with the text classes "1" and "2", and refused.
    model = _binary(tmp_path / "m.npz", classes=("1", "2"))
    np.savez(tmp_path / "d.npz", X=np.array([[-1.0], [1.0]]), y=np.array([1.0, 1.0]))
    report = _evaluate(capsys, model, tmp_path / "d.npz")
    assert report["classes"] == ["1", "2"] and report["confusion_matrix"] == [[1, 1], [0, 0]]


def test_an_infinite_regression_target_is_refused(tmp_path, capsys):
    # E38 (only NaN refused): an infinite target was scored: MAE, RMSE inf and R2
    # NaN (null in --json) printed as if they were figures.
    _model(1, "identity", "mse", [2.0], [1.0], None, target="y", task="regression").save(
        tmp_path / "m.npz")
    (tmp_path / "d.csv").write_text("x,y\n0,1\n1,inf\n")
    err = cli_refusal(["evaluate", "--model", tmp_path / "m.npz", "--data",
                       tmp_path / "d.csv"], capsys)
    assert "the target 'y' holds 'inf', not a finite number" in err


# -- cli_evaluate.py: the text report ---------------------------------------------------------


def test_the_text_report_aligns_its_columns_and_explains_n_a():
    # E42 (the class column no wider than its longest name, not "class"): the
    # rows of short names were narrower than the header. E44 (a matrix cell as
    # wide as one digit), E45 (a cell not widened to its class's name): the
    # confusion matrix's columns were out of line with their header. E43 (the n/a
    # note only for a missing precision): a recall of n/a (class "b" absent from
    # the data but predicted) was shown without the note saying what it means.
    m = ev.classification_metrics([0] * 120 + [2] * 3, [0] * 119 + [1] + [2] * 3,
                                  ["a", "b", "cccc"])
    report = {"model": "m.npz", "data": "d.csv", "target": "t", "task": "multiclass",
              "n_samples": 123, **m}
    lines = ev.report_lines(report)
    assert lines[3] == "class  precision  recall  support"
    assert lines[4] == "a         1.0000  0.9917      120"
    assert lines[5] == "b         0.0000     n/a        0"
    assert lines[7] == ("n/a: precision of a class never predicted, recall of a class absent "
                        "from the data")
    assert lines[-4:] == ["         a    b  cccc",
                          "a      119    1     0",
                          "b        0    0     0",
                          "cccc     0    0     3"]


# -- cli_info.py ------------------------------------------------------------------------------


class _Executor:
    """An executor whose answer to each probe fit (by mode) is given."""

    def __init__(self, name, answers, label=None):
        self.name, self.answers = name, answers
        if label:
            self.label = label

    def supports(self, task):
        answer = self.answers[task]
        if isinstance(answer, Exception):
            raise answer
        return answer


class _Backend:
    """What ``nnbackend info`` asks of a backend, answered by hand."""

    def __init__(self, name="fake", executors=(), no_reference_loop=None, float64=True,
                 gpus=(), broken=False):
        self.name, self._executors, self.no_reference_loop = name, executors, no_reference_loop
        self._float64, self._gpus, self._broken = float64, gpus, broken
        self.executor_names = tuple(e.name for e in executors) or ("fake-kernels",)

    def executors(self):
        if self._broken:
            raise RuntimeError("no driver")
        return self._executors

    def device_spec(self):
        return "cpu"

    def float_dtypes(self):
        return ("float32", "float64") if self._float64 else ("float32",)

    def gpus(self):
        if isinstance(self._gpus, Exception):
            raise self._gpus
        return self._gpus


@pytest.fixture
def info_of(monkeypatch, capsys):
    """``info(backend, *flags)``: nnbackend info's output with ``backend`` as every
    backend asked for (the probe fits are their mode names), and the calls."""
    from nnbackend import cli_info

    calls = []
    monkeypatch.setattr(cli_info, "_probe_task", lambda backend, mode, batch: mode)
    monkeypatch.setattr(cli_info, "BACKEND_NAMES", ("fake", "other"))
    monkeypatch.setattr(cli_info, "library_version", lambda name: "1.2")

    def info(backend, *flags):
        def get(name, device=None, **kw):
            calls.append((name, device, kw))
            if isinstance(backend, Exception):
                raise backend
            return backend

        monkeypatch.setattr(cli_info, "get_backend", get)
        assert cli.main(["info", *flags]) == 0
        return capsys.readouterr().out, calls

    return info


def test_info_reports_which_probe_fits_each_executor_runs(info_of):
    # I07 (fits and refusals swapped): a refusal was listed as a fit it runs.
    # I08 (every executor usable): one that runs neither probe fit was "usable".
    # I09 (the last refusal for the first): the reason shown was the batch fit's,
    # not the first (mini-batch) one's. I06 (an executor's own error not
    # caught): one executor that cannot answer failed the whole of info.
    executors = [_Executor("half", {"minibatch": None, "batch": "no batch"}, label="half v2"),
                 _Executor("none", {"minibatch": "no minibatch", "batch": "no batch"}),
                 _Executor("odd", {"minibatch": KeyError("k"), "batch": "no batch"})]
    out, _ = info_of(_Backend(executors=executors), "--json", "--backend", "fake")
    (row,) = json.loads(out)
    half, none, odd, reference = row["executors"]
    assert half == {"name": "half", "label": "half v2", "usable": True, "fits": ["mini-batch"],
                    "reason": None}
    assert none == {"name": "none", "label": "none", "usable": False, "fits": [],
                    "reason": "no minibatch"}
    assert odd["reason"] == "could not be asked (KeyError: 'k')" and not odd["usable"]
    assert reference == {"name": "reference", "label": "reference", "usable": True,
                         "fits": ["mini-batch", "batch"], "reason": None}


def test_info_says_why_a_backend_without_a_reference_loop_cannot_be_asked(info_of):
    # I04 (a backend's own error not caught): executors() raising failed info.
    # I05 (no row per executor name then): the executors were left out, not
    # listed as "could not be asked". I10 (the reference loop always usable),
    # I11 (its fits listed where it has none): a backend without the reference
    # loop was shown running it.
    backend = _Backend(no_reference_loop="the chunks need dask-chunks", broken=True)
    out, _ = info_of(backend, "--json", "--backend", "fake")
    (row,) = json.loads(out)
    kernels, reference = row["executors"]
    assert kernels == {"name": "fake-kernels", "label": "fake-kernels", "usable": False,
                       "fits": [], "reason": "could not be asked (RuntimeError: no driver)"}
    assert reference == {"name": "reference", "label": "reference", "usable": False,
                         "fits": [], "reason": "the chunks need dask-chunks"}


def test_info_text_names_the_device_float64_and_gpu_memory(info_of):
    # I16 (float64 always yes), I20 (the text always "yes"): a backend without
    # float64 shown with it. I18 (a GPU's memory left out of the text). I19 (the
    # device flag not said): "default device" where --device named it. I01 (a
    # failing GPU query not caught): info failed instead of listing no GPU.
    gpu = _Backend(float64=False, gpus=[(0, "Fake GPU", 79.6), (1, "Tiny GPU", None)])
    out, _ = info_of(gpu, "--backend", "fake", "--device", "cuda")
    assert "fake     1.2        installed  device cpu  float64 no" in out
    assert "GPU 0: Fake GPU, 79.6 GiB\n" in out and "GPU 1: Tiny GPU\n" in out
    out, _ = info_of(_Backend(gpus=RuntimeError("driver gone")), "--backend", "fake")
    assert "installed  default device cpu  float64 yes\n" in out and "GPU" not in out


def test_info_asks_only_the_backend_named_and_passes_the_scheduler_to_dask(info_of):
    # I22 (every backend asked): --backend fake listed "other" too. I13 (the
    # scheduler not passed): dask was built on its default scheduler, not the one named.
    out, calls = info_of(_Backend(), "--json", "--backend", "fake")
    assert [r["backend"] for r in json.loads(out)] == ["fake"] and len(calls) == 1
    calls.clear()
    info_of(_Backend(name="dask"), "--json", "--backend", "dask", "--scheduler", "tcp://h:1")
    assert calls == [("dask", None, {"scheduler": "tcp://h:1"})]


def test_info_refuses_a_backend_named_that_cannot_be_built(info_of, capsys):
    # I14 (a named backend's error kept as a row): info --backend X printed
    # "not usable" and exited 0, where the one backend asked for is refused.
    with pytest.raises(SystemExit) as done:
        info_of(ValueError("no such device"), "--backend", "fake", "--device", "tpu")
    assert done.value.code == 2 and "no such device" in capsys.readouterr().err
    out, _ = info_of(nb.BackendUnavailableError("not installed"), "--json")
    assert [r["reason"] for r in json.loads(out)] == ["not installed"] * 2


# -- cli_auto.py: info's auto section -------------------------------------------------------


def _terms(launch, compile_s=0.5, compile_layer_s=0.25, rel_error=0.123):
    return {"executor": "reference", "launch_s": launch, "madd_s": 1e-9, "setup_s": 0.01,
            "compile_s": compile_s, "compile_layer_s": compile_layer_s,
            "rel_error": rel_error, "points": 3}


def _auto_report(**changes):
    """An auto report (as ``auto_report`` gives it): numpy measured in sgd (an
    earlier run's group) and batch (this run's), minibatch left at its default
    terms; jax not installed; torch installed, first fit 1.5 s."""
    report = {
        "profile": "/c/auto-profile.json", "path": "/c/auto-profile.json", "machine": "box",
        "created": "2026-02-02T00:00:00Z", "default": False, "mismatch": {},
        "measured": [["numpy:cpu", "sgd"], ["numpy:cpu", "batch"]],
        "groups": {"numpy:cpu": {"sgd": {"created": "2026-01-01T00:00:00Z"},
                                 "batch": {"created": "2026-02-02T00:00:00Z"}}},
        "blas": {"threshold_madds": 2 ** 20, "threads": 4},
        "first_use": {"numpy:cpu": 0.0, "torch:cpu": 1.5, "jax:cpu": 2.0},
        "candidates": {"numpy:cpu": {"batch": _terms(2e-5, rel_error=None),
                                     "minibatch": _terms(3e-5), "sgd": _terms(4e-5)},
                       "jax:cpu": {"sgd": _terms(1e-5)}},
        "installed": ["numpy:cpu", "torch:cpu"],
        "picks": [{"fit": "[4, 1] sgd", "chosen": "numpy:cpu", "executor": "reference",
                   "candidates": [{"candidate": "numpy:cpu", "predicted_s": 0.5},
                                  {"candidate": "torch:cpu", "predicted_s": 2.0},
                                  {"candidate": "jax:cpu", "predicted_s": None}]}]}
    return {**report, **changes}


def test_the_auto_section_lists_what_is_installed_measured_and_picked():
    # A19 (a first fit of 0 s listed): "numpy:cpu 0 ns" among the first fits.
    # A20 (first fits of libraries not installed listed): "jax:cpu 2 s". A21 (a
    # candidate not installed listed): jax's terms shown. A22 (the error to one
    # decimal): "12.3% error" for 12%. A23 (a group's date said where it is the
    # header's): "measured 2026-02-02..." for this run's group. A24 (every group
    # "measured"): numpy's minibatch default terms passed for measured ones.
    # A25 (the compile per layer left out): 500 ms, not 750 ms. A26 (the chosen
    # candidate among the others), A27 (a candidate with no prediction listed as "-").
    from nnbackend import cli_auto

    lines = cli_auto._report_text(_auto_report()).splitlines()
    assert lines[0] == ("auto     profile: /c/auto-profile.json (measured 2026-02-02T00:00:00Z "
                        "on box)")
    assert lines[2] == "           a library's first fit in a process takes more: torch:cpu 1.5 s"
    terms = [line.split() for line in lines[3:6]]
    assert [t[:3] for t in terms] == [["numpy:cpu", mode, "reference"]
                                      for mode in ("batch", "minibatch", "sgd")]
    assert lines[3].endswith("compile 750 ms+ (measured, 3 points, error unknown)")
    assert lines[4].endswith("compile 750 ms+ (default)")
    assert lines[5].endswith(
        "compile 750 ms+ (measured 2026-01-01T00:00:00Z, 3 points, 12% error)")
    assert lines[6:] == ["           auto would pick:",
                         "             [4, 1] sgd: numpy:cpu (reference, 500 ms); torch:cpu 2 s"]


def test_the_auto_sections_head_says_where_the_profile_is_and_warns():
    # A16 (the shipped default not said): a run with no profile file was shown
    # as measured on a machine of None. A18 (the mismatch warning dropped).
    from nnbackend import cli_auto

    text = cli_auto._report_text(_auto_report(profile="default", machine=None, created=None,
                                              mismatch={"cpu": "measured on another CPU"}))
    assert text.startswith("auto     profile: the shipped default (no measured profile at "
                           "/c/auto-profile.json;")
    assert ("WARNING: this profile does not describe this machine (measured on another CPU)"
            in text)


def test_seconds_and_the_blas_line_read_as_said():
    # A11 (a unit only above its scale): 1 s shown as "1e+03 ms". A12 (a BLAS
    # section without a threshold read): KeyError. A13 (no threshold: never more
    # threads): log2(None), TypeError. A15 (threads unknown): "else None".
    from nnbackend import cli_auto

    assert [cli_auto._seconds(s) for s in (1.0, 1e-3, 2.5e-7, None)] == [
        "1 s", "1 ms", "250 ns", "-"]
    assert cli_auto._blas_text({"threads": 4}) == "BLAS threads: left as they are"
    assert cli_auto._blas_text({"threshold_madds": None}) == (
        "BLAS threads: 1 for every fit (more threads never paid here)")
    assert cli_auto._blas_text({"threshold_madds": 2 ** 20}) == (
        "BLAS threads: 1 below 2^20 multiply-adds in a product, else the library's count "
        "(at most the idle cores)")


def test_info_adds_the_auto_section_to_its_text_only_for_every_backend(info_of, monkeypatch):
    # A06 (the auto section after one named backend): info --backend X printed
    # auto's picks too. A07 (after --json): the JSON was followed by the text,
    # and no JSON reader could read the output.
    from nnbackend import cli_auto

    monkeypatch.setattr(cli_auto, "auto_report", lambda: _auto_report())
    out, _ = info_of(_Backend(), "--backend", "fake")
    assert "auto would pick" not in out and out.startswith("fake ")
    out, _ = info_of(_Backend(), "--json")
    assert len(json.loads(out)) == 2
    out, _ = info_of(_Backend())
    assert "auto would pick:" in out and out.index("fake ") < out.index("auto     profile")


# -- cli_auto.py: bench --calibrate ---------------------------------------------------------


@pytest.fixture
def calibration(tmp_path, monkeypatch):
    """A cache of this test's own and a stand-in calibration: ``calls`` gets each
    call's keywords; it returns what test_auto_profile_edges' stand-in returns."""
    from nnbackend import calibrate as cal
    from nnbackend.autoselect import set_profile
    from nnbackend.backends import ENV_VAR
    from test_auto_profile_edges import _new_profile

    monkeypatch.setenv("NNBACKEND_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    calls = []
    monkeypatch.setattr(cal, "calibrate", lambda **kw: calls.append(kw) or _new_profile())
    previous = set_profile(None)
    yield calls
    set_profile(previous)


@pytest.mark.parametrize("budget", ["inf", "0", "nan", "-1", "abc"])
def test_a_time_budget_that_is_no_positive_finite_number_is_refused(calibration, capsys,
                                                                     budget):
    # A33 (infinity taken), A34 (0 and NaN taken: not "> 0" read as "< 0"), A35
    # (a word read as 1 s): the calibration ran, on no budget or the wrong one.
    err = cli_refusal(["bench", "--calibrate", "--time-budget", budget], capsys)
    assert "--time-budget: expected a number of seconds > 0" in err and calibration == []


def test_the_backends_and_modes_lists_drop_empty_entries_and_need_one_mode(calibration,
                                                                           capsys):
    # A31 (empty entries kept): "numpy, ," asked the calibration for a backend "".
    # A32 (no mode at all taken): --modes "," reached the calibration with no mode.
    from nnbackend.autoselect import profile_path

    assert cli.main(["bench", "--calibrate", "--backends", "numpy, ,", "--modes",
                     "sgd,"]) == 0
    assert calibration[0]["keys"] == ["numpy"] and calibration[0]["modes"] == ["sgd"]
    out = capsys.readouterr().out
    assert f"profile written to {profile_path()}" in out
    err = cli_refusal(["bench", "--calibrate", "--modes", ","], capsys)
    assert "--modes" in err and len(calibration) == 1


def test_a_first_calibration_and_one_over_a_corrupt_profile_write_it(calibration, capsys):
    # A28 (a missing profile not read as none): the first calibration on a
    # machine was refused as a profile that "cannot be read". A29 (said twice):
    # the corrupt profile was said to be replaced twice, once before the fits.
    from nnbackend.autoselect import load_profile, profile_path

    path = profile_path()
    assert cli.main(["bench", "--calibrate"]) == 0
    out, err = capsys.readouterr()
    assert f"profile written to {path}" in out and "measured 2026-02-02T00:00:00Z on new run" in out
    with open(path, "w") as f:
        f.write("{not json")
    with pytest.warns(Warning):
        load_profile()  # the corrupt file, loaded before the calibration
    assert cli.main(["bench", "--calibrate"]) == 0
    out, err = capsys.readouterr()
    assert err.count("is not a usable profile") == 1
    assert "auto     profile: " + path + " (measured 2026-02-02T00:00:00Z on new run)" in out
    assert os.path.exists(path)


def test_a_profile_that_cannot_be_read_is_refused_before_the_fits(calibration, capsys):
    # A36 (the early read dropped): the fits ran, and only then was the profile
    # found unreadable and the calibration thrown away.
    from nnbackend.autoselect import profile_path

    os.makedirs(profile_path())  # a directory where the profile should be
    err = cli_refusal(["bench", "--calibrate"], capsys)
    assert "cannot read the profile" in err and calibration == []


# -- cli_data.py: the training settings --------------------------------------------------------


def _train_args(**given):
    """The train flags training_settings reads, left out unless given."""
    names = ("lr", "resume", "hidden", "activation", "dtype", "optimizer", "mode", "batch_size",
             "epochs", "seed", "alpha", "lr_schedule")
    return argparse.Namespace(**{**dict.fromkeys(names), "no_standardize": False, **given})


def _resumed(standardize=False, **training):
    """What training_settings reads of a --resume model."""
    from types import SimpleNamespace

    return SimpleNamespace(layer_sizes=[2, 8, 1], hidden_activation="relu", dtype="float32",
                           train_state=SimpleNamespace(optimizer="sgd"), standardize=standardize,
                           metadata={"training": training})


def test_the_settings_of_a_dataset_and_of_sgd():
    # D01 (every dataset's defaults the general ones): xor ran 50 relu minibatch
    # epochs at 0.1 for its 1000 tanh full-batch epochs at 1.0. D07 (the
    # --no-standardize flag ignored). D10 (sgd's smaller rate for every dataset):
    # xor's rate 1.0 cut to 0.01 in sgd mode. D11 (the rate given replaced in sgd mode).
    from nnbackend.cli_data import training_settings

    xor = training_settings(_train_args(), "xor")
    assert (xor["hidden"], xor["activation"], xor["mode"], xor["epochs"], xor["lr"]) == (
        [4], "tanh", "batch", 1000, 1.0)
    assert xor["standardize"] is True
    assert training_settings(_train_args(no_standardize=True), None)["standardize"] is False
    assert training_settings(_train_args(mode="sgd"), "xor")["lr"] == 1.0
    assert training_settings(_train_args(mode="sgd"), None)["lr"] == 0.01
    assert training_settings(_train_args(mode="sgd", lr=0.5), None)["lr"] == 0.5


def test_batch_size_is_for_minibatch_steps_only():
    # D08 (only batch mode refused): --batch-size with --mode sgd was taken and ignored.
    from nnbackend.cli_data import Refusal, training_settings

    with pytest.raises(Refusal, match="--mode sgd takes one row a step"):
        training_settings(_train_args(mode="sgd", batch_size=8), None)


def test_a_resumed_run_keeps_what_the_model_fixes_and_what_it_carried(capsys):
    # D02 (a fixed setting that differs not refused): --hidden 16 on a model of
    # [8] was taken, a net the checkpoint does not hold. D03 (--no-standardize on
    # a model that standardizes not refused). D04 (the carried rate not counted
    # as given): a resumed sgd run's 0.05 was cut to sgd's default 0.01. D05 (the
    # model's own standardize not carried): a model without scaling resumed with
    # it. D06 (a flag equal to the checkpoint's said to replace it).
    from nnbackend.cli_data import Refusal, training_settings

    resumed = _resumed(mode="sgd", lr=0.05, epochs=7)
    settings = training_settings(_train_args(resume="m.npz", epochs=7), None, resumed)
    assert (settings["mode"], settings["lr"], settings["epochs"]) == ("sgd", 0.05, 7)
    assert settings["hidden"] == [8] and settings["standardize"] is False
    assert capsys.readouterr().err == ""
    training_settings(_train_args(resume="m.npz", epochs=9), None, resumed)
    assert "--epochs 9 replaces the checkpoint's 7" in capsys.readouterr().err
    with pytest.raises(Refusal, match="trained with --hidden 8; --hidden 16 cannot change it"):
        training_settings(_train_args(resume="m.npz", hidden=[16]), None, resumed)
    with pytest.raises(Refusal, match="--no-standardize cannot change it"):
        training_settings(_train_args(resume="m.npz", no_standardize=True), None,
                          _resumed(standardize=True))


# -- cli_data.py: JSON and paths ------------------------------------------------------------


def test_json_line_writes_a_non_finite_figure_as_null_in_lists_and_tuples_too():
    # D12 (no figure cleaned): NaN reached json.dumps(allow_nan=False), ValueError.
    # D13 (tuples not cleaned): a NaN in a tuple did.
    from nnbackend.cli_data import json_line

    line = json_line({"loss": float("nan"), "pair": (1.0, float("inf")), "list": [float("-inf")]})
    assert json.loads(line) == {"loss": None, "pair": [1.0, None], "list": [None]}


def test_an_output_path_is_checked_before_the_run(tmp_path, monkeypatch):
    # D16 (a missing directory not refused), D17 (an unwritable directory not
    # refused): the run went on and failed only when it came to write (root
    # writes anywhere, so os.access is made to say no here). Without the
    # directory check (D15) a directory is still refused, in replace_target's
    # words ("it exists and is not a regular file"): an equivalent mutant.
    from nnbackend.cli_data import Refusal, check_writable

    with pytest.raises(Refusal, match="is a directory"):
        check_writable(str(tmp_path), "--save")
    with pytest.raises(Refusal, match="no such directory"):
        check_writable(str(tmp_path / "gone" / "m.npz"), "--save")
    check_writable(str(tmp_path / "m.npz"), "--save")
    monkeypatch.setattr("os.access", lambda path, mode: False)
    with pytest.raises(Refusal, match="is not writable"):
        check_writable(str(tmp_path / "m.npz"), "--save")


def test_an_output_is_the_same_file_as_an_input_however_it_is_named(tmp_path, monkeypatch):
    # D21 (two existing names compared as text): a hard link
    # or "./d.csv" for "d.csv" was not the same file, and the data were replaced.
    # D22 (new paths compared as text): "sub/../p.csv" was not "p.csv". D20
    # (samefile asked where only the output exists) raised FileNotFoundError for
    # a missing input; the command line still refused it in one line, in other
    # words ("[Errno 2] ..." for "no such file"): an equivalent mutant there.
    from nnbackend.cli_data import Refusal, check_not_inputs

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("x\n1\n")
    (tmp_path / "sub").mkdir()
    os.link("d.csv", "hard.csv")
    for output, data in (("./d.csv", "d.csv"), ("hard.csv", "d.csv"),
                         ("sub/../p.csv", "p.csv")):
        with pytest.raises(Refusal, match="is also --data"):
            check_not_inputs(output, "--out", [(None, "--model"), (data, "--data")])
    check_not_inputs("new.csv", "--out", [("d.csv", "--data")])
    check_not_inputs("d.csv", "--out", [("missing.npz", "--model")])


def test_the_csv_flags_are_for_a_csv_in_any_case(tmp_path):
    # D23 (the extension's case kept): --delimiter and --no-header for "D.CSV" refused.
    from nnbackend.cli_data import check_csv_flags

    check_csv_flags(argparse.Namespace(data="D.CSV", delimiter=";", no_header=True))


# -- cli_data.py: the training data and its task ------------------------------------------------


def _data_args(**given):
    fields = dict(data=None, dataset=None, n_samples=None, target=None, no_header=False,
                  delimiter=None, val_split=None, device=None)
    return argparse.Namespace(**{**fields, **given})


@pytest.mark.parametrize("given, reason", [
    (dict(data="d.csv", target="y", dataset="moons"), "give --data or --dataset, not both"),
    (dict(data="d.csv", target="y", n_samples=10), "--n-samples sets the rows of a --dataset"),
    (dict(dataset="moons", target="y"), "--target names a column of a --data .csv file"),
    (dict(target="y"), "--target names a column of a --data .csv file"),
])
def test_training_data_flags_that_do_not_go_together_are_refused(tmp_path, monkeypatch, given,
                                                                   reason):
    # D26 (--data and --dataset both taken: the file won), D27 (--n-samples
    # ignored for a file), D32 (--target ignored for a built-in dataset).
    from nnbackend.cli_data import Refusal, load_training_data

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("x,y\n0,0\n1,1\n2,0\n")

    with pytest.raises(Refusal, match=re.escape(reason)):
        load_training_data(_data_args(**given), "numpy", 0)


@pytest.mark.parametrize("flag", [["--no-header"], ["--delimiter", ";"]])
def test_train_refuses_the_csv_flags_for_a_file_that_is_no_csv(tmp_path, capsys, flag):
    # D28 (train's check of the .csv flags dropped): train --data FILE.npz
    # --no-header (or --delimiter) trained on the file and ignored the flag,
    # where predict and evaluate refuse it.
    np.savez(tmp_path / "d.npz", X=np.zeros((4, 2)), y=np.array([0, 1, 1, 0]))
    err = cli_refusal(["train", "--data", tmp_path / "d.npz", "--epochs", "1", "--quiet",
                       *flag], capsys)
    assert f"{flag[0]} is for a --data .csv file" in err


def test_npy_training_files_are_checked_before_they_are_read(tmp_path):
    # D36 (npy_problem not asked): an .npz named .npy was loaded as an archive
    # and crashed (AttributeError, a traceback), and a text file was refused in
    # NumPy's words about pickles. D39 (the rows not compared): 3 rows of
    # features and 2 labels were taken. D40 (3-D labels taken). D34 (any
    # --target taken for .npy features): labels not named .npy (y.bin) were read,
    # and a column name ("y") was refused as "no such file", not pointed to
    # --target LABELS.npy. Without the existence check (D35) a missing file is
    # still refused, as "cannot read PATH: No such file or directory": an
    # equivalent mutant; the check's own words are kept here.
    from nnbackend.cli_data import Refusal, load_training_data

    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    np.save(tmp_path / "y2.npy", np.zeros(2))
    np.save(tmp_path / "y3d.npy", np.zeros((3, 1, 1)))
    (tmp_path / "y.csv").write_text("y\n0\n1\n0\n")
    with open(tmp_path / "y.bin", "wb") as f:
        np.save(f, np.zeros(3))
    (tmp_path / "text.npy").write_text("not an array")
    with open(tmp_path / "zip.npy", "wb") as f:
        np.savez(f, y=np.zeros(3))
    x = str(tmp_path / "x.npy")
    for target, reason in ((str(tmp_path / "y.bin"), "name the labels with --target LABELS.npy"),
                           ("y", "name the labels with --target LABELS.npy"),
                           (str(tmp_path / "y.csv"), "name the labels with --target LABELS.npy"),
                           (str(tmp_path / "no.npy"), "no such file: "),
                           (str(tmp_path / "text.npy"), "it lacks NumPy's header"),
                           (str(tmp_path / "zip.npy"), "it is an .npz archive"),
                           (str(tmp_path / "y2.npy"), "one label per row; got shapes (3, 2)"),
                           (str(tmp_path / "y3d.npy"), "one label per row; got shapes (3, 2)")):
        with pytest.raises(Refusal, match=re.escape(reason)):
            load_training_data(_data_args(data=x, target=target), "numpy", 0)


def test_dask_reads_npy_features_chunk_by_chunk_and_refuses_a_split_of_them(tmp_path):
    # D38 (the backend's lazy rows not asked): dask's features were memory-mapped
    # whole by NumPy, not read chunk by chunk. D41 (--val-split of chunked rows
    # not refused): the split gathered them into memory.
    pytest.importorskip("dask", reason="the lazy rows are dask's")
    from nnbackend.cli_data import Refusal, load_training_data

    np.save(tmp_path / "x.npy", np.zeros((6, 2)))
    np.save(tmp_path / "y.npy", np.zeros(6))
    args = dict(data=str(tmp_path / "x.npy"), target=str(tmp_path / "y.npy"))
    data = load_training_data(_data_args(**args), "dask", 0)
    assert not isinstance(data.X, np.ndarray) and type(data.X).__module__.startswith("dask")
    with pytest.raises(Refusal, match="--val-split would gather a chunked .npy into memory"):
        load_training_data(_data_args(val_split=0.2, **args), "dask", 0)


def test_whole_number_labels_note_how_they_are_read(capsys):
    # D42 (unsigned integers not whole numbers): 30 distinct uint8 values were
    # read as a quantity without the note saying so. D43 (20 distinct values
    # noted): 20 classes are read as classes without a note (only more than 20
    # are). D44 (the note for a --task given too).
    from nnbackend.cli_data import task_for

    task, _ = task_for(np.arange(30, dtype=np.uint8), None)
    assert task["kind"] == "regression"
    assert "30 distinct whole numbers in 30 rows: read as a quantity" in capsys.readouterr().err
    task, _ = task_for(np.repeat(np.arange(20), 3), None)
    assert task["kind"] == "multiclass" and capsys.readouterr().err == ""
    task, _ = task_for(np.arange(30), "multiclass")
    assert task["kind"] == "multiclass" and capsys.readouterr().err == ""


def test_a_column_of_labels_and_a_resumed_models_classes_give_the_ids():
    # D45 (a one-column 2-D label array left 2-D): its text labels were not
    # turned into class ids. D46 (a resumed model's classes not used): data with
    # classes b and c of a model of a, b, c got ids 0 and 1 (a's and b's). D47
    # (a binary task kept binary for a model of 3 classes): a head of 1 unit for 3.
    from types import SimpleNamespace

    from nnbackend.cli_data import task_for

    task, y = task_for(np.array([["a"], ["b"], ["a"]]), None)
    assert task["classes"] == ["a", "b"] and y.tolist() == [0, 1, 0]
    resumed = SimpleNamespace(classes_=np.array(["a", "b", "c"]))
    task, y = task_for(np.array(["b", "c", "b"]), None, "m.npz", resumed)
    assert y.tolist() == [1, 2, 1]
    assert (task["kind"], task["n_outputs"], task["classes"]) == ("multiclass", 3,
                                                                  ["a", "b", "c"])


def test_a_models_loss_is_checked_on_more_than_its_first_row():
    # D60 (the loss checked on the first row alone): weights whose outputs
    # overflow on the second row only passed as finite, and train would save
    # them as a fit that did not diverge.
    from nnbackend.cli_data import loss_finite

    model = _model(1, "identity", "mse", [1e200], [0.0], target=None)
    X, y = np.array([[0.0], [1.0]]), np.array([[0.0], [0.0]])
    assert loss_finite(model, X[:1], y[:1]) and not loss_finite(model, X, y)


# -- cli_data.py: predict ----------------------------------------------------------------------


def _predict(capsys, model, data, *args):
    """``nnbackend predict``'s stdout, run in-process."""
    assert cli.main(["predict", "--model", str(model), "--data", str(data),
                     *map(str, args)]) == 0
    return capsys.readouterr().out


def test_predict_writes_the_format_its_extension_names_in_any_case(tmp_path, capsys):
    # D48 (the extension's case kept): --out P.CSV refused as neither .csv nor
    # .npz. D54 (likewise for .npz): P.NPZ was written as CSV text.
    model = _binary(tmp_path / "m.npz")
    (tmp_path / "x.csv").write_text("x\n-1\n2\n")
    _predict(capsys, model, tmp_path / "x.csv", "--out", tmp_path / "P.CSV")
    assert (tmp_path / "P.CSV").read_text().splitlines()[0] == "prediction,p_no,p_yes"
    _predict(capsys, model, tmp_path / "x.csv", "--out", tmp_path / "P.NPZ")
    with np.load(tmp_path / "P.NPZ") as saved:
        assert saved["prediction"].tolist() == ["no", "yes"]
        assert saved["classes"].tolist() == ["no", "yes"]


def test_predict_writes_numbers_as_the_model_reads_them(tmp_path, capsys):
    # D67 (1e-4 itself in scientific notation): "1e-04" for 0.0001. D67b (1e16
    # positional): "10000000000000000" for 1e+16. D70 (two outputs under one
    # name): a header "prediction" over rows of two numbers. D68 (a float32
    # model's outputs in float64's digits): 0.10000000149011612 for 0.1. D69
    # (probabilities to 4 digits, not 6).
    _model(2, "identity", "mse", [1.0, 2.0], [0.0, 0.0], target=None).save(tmp_path / "two.npz")
    (tmp_path / "x.csv").write_text("x\n0.0001\n1e16\n")
    assert _predict(capsys, tmp_path / "two.npz", tmp_path / "x.csv").splitlines() == [
        "prediction_0,prediction_1", "0.0001,0.0002", "1e+16,2e+16"]
    _model(1, "identity", "mse", [1.0], [0.0], target=None, dtype="float32").save(
        tmp_path / "f32.npz")
    (tmp_path / "tenth.csv").write_text("x\n0.1\n")
    assert _predict(capsys, tmp_path / "f32.npz", tmp_path / "tenth.csv") == "prediction\n0.1\n"
    (tmp_path / "one.csv").write_text("x\n1\n")
    out = _predict(capsys, _binary(tmp_path / "m.npz"), tmp_path / "one.csv")
    assert out.splitlines()[1] == "yes,0.268941,0.731059"


def test_predict_refuses_a_row_with_any_non_finite_output(tmp_path, capsys):
    # D58 (only rows with every output non-finite refused): a row whose second
    # output overflowed to inf was written as a prediction.
    _model(2, "identity", "mse", [1.0, 1e308], [0.0, 0.0], target=None).save(tmp_path / "m.npz")
    (tmp_path / "x.csv").write_text("x\n1e-300\n10\n")
    err = cli_refusal(["predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "x.csv"],
                      capsys)
    assert "NaN or infinite for 1 of 2 rows (data rows 2)" in err


def test_predict_gives_classes_only_for_heads_that_score_classes(tmp_path, capsys):
    # D61 (every bce head read as classes): a multi-label head of 2 sigmoid units
    # (no classes_) was written as one label per row and probabilities, not its
    # two indicators. D64 (two classes for any head without classes_): a softmax
    # of 3 outputs crashed on its third class (IndexError, a traceback).
    (tmp_path / "x.csv").write_text("x\n0\n2\n")
    _model(2, "sigmoid", "bce", [1.0, -1.0], [0.0, 0.0], target=None).save(tmp_path / "ml.npz")
    assert _predict(capsys, tmp_path / "ml.npz", tmp_path / "x.csv").splitlines()[0] == (
        "prediction_0,prediction_1")
    _model(3, "softmax", "cross_entropy", [1.0, -1.0, 0.0], [0.0, 0.0, 1.0], target=None).save(
        tmp_path / "soft.npz")
    out = _predict(capsys, tmp_path / "soft.npz", tmp_path / "x.csv").splitlines()
    assert out[0] == "prediction,p_0,p_1,p_2" and [r[0] for r in out[1:]] == ["2", "0"]


def test_predict_out_through_a_link_and_a_failed_write(tmp_path, capsys, monkeypatch):
    # D74 (the link itself replaced): --out through a symbolic link replaced the
    # link with a file and left its target as it was. D73 (an OSError not made a
    # refusal) still ends in a one-line refusal, "[Errno 28] No space left on
    # device", naming no file: an equivalent mutant (only the words differ); the
    # words "cannot write PATH: ..." are pinned here.
    model = _binary(tmp_path / "m.npz")
    (tmp_path / "x.csv").write_text("x\n-1\n2\n")
    (tmp_path / "real.csv").write_text("old\n")
    os.symlink("real.csv", tmp_path / "link.csv")
    _predict(capsys, model, tmp_path / "x.csv", "--out", tmp_path / "link.csv")
    assert os.path.islink(tmp_path / "link.csv")
    assert (tmp_path / "real.csv").read_text().startswith("prediction,")

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", full)
    err = cli_refusal(["predict", "--model", model, "--data", tmp_path / "x.csv", "--out",
                       tmp_path / "p.csv"], capsys)
    assert f"cannot write {tmp_path / 'p.csv'}: No space left on device" in err
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]
