"""``nnbackend evaluate`` and its metrics (issue 28, item 7), and ``predict``'s
note on a target column in its input.

The models here are built by hand (identity hidden layer, fixed weights,
float64, no scaling), so every prediction is known and every figure the
command prints is checked against a count made by hand.
"""

import json
import math
import re

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.cli import main
from nnbackend.cli_evaluate import classification_metrics, confusion_matrix, regression_metrics
from test_cli import run


# -- the metrics, against hand counts ----------------------------------------------


def test_confusion_matrix_counts_by_hand():
    true = [0, 0, 1, 1, 2, 2, 2]
    pred = [0, 1, 1, 1, 2, 0, 2]
    # row = true class, column = predicted class
    assert confusion_matrix(true, pred, 3).tolist() == [[1, 1, 0],
                                                       [0, 2, 0],
                                                       [1, 0, 2]]
    assert confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match=r"range\(3\)"):
        confusion_matrix([0, 3], [0, 0], 3)
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        confusion_matrix([0, 1], [0], 2)


def test_classification_metrics_by_hand():
    m = classification_metrics([0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 2, 0, 2], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(5 / 7) and m["correct"] == 5
    a, b, c = m["per_class"]
    # precision: hits / column sum; recall: hits / row sum
    assert (a["precision"], a["recall"], a["support"], a["predicted"]) == (1 / 2, 1 / 2, 2, 2)
    assert (b["precision"], b["recall"], b["support"], b["predicted"]) == (2 / 3, 1.0, 2, 3)
    assert (c["precision"], c["recall"], c["support"], c["predicted"]) == (1.0, 2 / 3, 3, 2)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]


def test_a_figure_that_does_not_exist_is_none_not_zero():
    # "c" is neither in the data nor predicted; "a" is never predicted.
    m = classification_metrics([0, 0, 1], [1, 1, 1], ["a", "b", "c"])
    a, b, c = m["per_class"]
    assert a["precision"] is None and a["recall"] == 0.0
    assert b["precision"] == pytest.approx(1 / 3) and b["recall"] == 1.0
    assert c["precision"] is None and c["recall"] is None and c["support"] == 0
    assert m["accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="no rows"):
        classification_metrics([], [], ["a", "b"])


def test_regression_metrics_by_hand():
    # errors 0, 1, -1, 2: MAE 4/4; MSE 6/4; target mean 2.5, spread 5; R2 = 1 - 6/5
    m = regression_metrics([1, 2, 3, 4], [1, 3, 2, 6])
    assert m["mae"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(math.sqrt(1.5))
    assert m["r2"] == pytest.approx(-0.2)
    assert "outputs" not in m
    assert regression_metrics([1, 2, 3], [1, 2, 3]) == {"r2": 1.0, "mae": 0.0, "rmse": 0.0}


def test_r2_of_a_constant_target_is_undefined():
    m = regression_metrics([3, 3, 3], [3, 4, 2])
    assert m["r2"] is None
    assert m["mae"] == pytest.approx(2 / 3) and m["rmse"] == pytest.approx(math.sqrt(2 / 3))


def test_regression_metrics_of_several_outputs():
    y = np.array([[1, 10], [2, 10], [3, 13]], dtype=float)
    p = np.array([[1, 11], [3, 10], [3, 10]], dtype=float)
    m = regression_metrics(y, p)
    # column 0: errors 0, 1, 0 -> MAE 1/3, MSE 1/3; mean 2, spread 2 -> R2 1 - 1/2
    # column 1: errors 1, 0, -3 -> MAE 4/3, MSE 10/3; mean 11, spread 6 -> R2 1 - 10/6
    o0, o1 = m["outputs"]
    assert (o0["mae"], o0["rmse"], o0["r2"]) == pytest.approx((1 / 3, math.sqrt(1 / 3), 0.5))
    assert (o1["mae"], o1["rmse"], o1["r2"]) == pytest.approx((4 / 3, math.sqrt(10 / 3),
                                                                1 - 10 / 6))
    assert m["mae"] == pytest.approx(5 / 6)                # 5 absolute errors of 5 over 6 values
    assert m["rmse"] == pytest.approx(math.sqrt(11 / 6))   # squared errors 11 over 6 values
    assert m["r2"] == pytest.approx((0.5 + 1 - 10 / 6) / 2)
    with pytest.raises(ValueError, match="cannot be scored"):
        regression_metrics(y, p[:, :1])


# -- models whose every prediction is known ---------------------------------------


def _model(out, activation, loss, W1, b1, classes=None, target="answer", task=None):
    """x -> identity hidden unit h = x -> output layer (W1, b1)."""
    model = nb.MLP([1, 1, out], hidden_activation="identity", output_activation=activation,
                   loss=loss, dtype="float64",
                   params=[(np.ones((1, 1)), np.zeros(1)),
                           (np.array([W1], float), np.array(b1, float))])
    model.feature_names_in_ = ["x"]
    model.classes_ = classes
    model.metadata = {"task": task, "classes": classes, "target": target}
    return model


def binary_model(path):
    """p(yes) = sigmoid(x): predicts 'yes' exactly where x > 0."""
    _model(1, "sigmoid", "bce", [1.0], [0.0], ["no", "yes"], task="binary").save(path)


def multiclass_model(path):
    """logits (x, -x, 1) of 'hi', 'lo', 'mid': 'lo' for x < -1, 'mid' for
    -1 < x < 1, 'hi' for x > 1."""
    _model(3, "softmax", "cross_entropy", [1.0, -1.0, 0.0], [0.0, 0.0, 1.0],
           ["hi", "lo", "mid"], task="multiclass").save(path)


def regression_model(path):
    """y = 2x + 1."""
    _model(1, "identity", "mse", [2.0], [1.0], None, target="t", task="regression").save(path)


def _csv(path, header, rows, sep=","):
    path.write_text(sep.join(header) + "\n" + "".join(sep.join(map(str, r)) + "\n" for r in rows))
    return path


# x, true label; the model says yes where x > 0
BINARY_ROWS = [(-2, "no"), (-1, "no"), (-0.5, "yes"), (0.5, "yes"), (1, "yes"), (2, "no"),
               (3, "yes")]
# by hand: true no -> predicted no 2, yes 1; true yes -> predicted no 1, yes 3


def _text_figures(text):
    return [float(v) for v in re.findall(r"\d+\.\d{4}", text)]


def test_evaluate_a_binary_model_by_hand(tmp_path):
    binary_model(tmp_path / "m.npz")
    data = _csv(tmp_path / "test.csv", ["x", "answer"], BINARY_ROWS)
    proc = run("evaluate", "--model", tmp_path / "m.npz", "--data", data)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "7 rows, binary" in out and "(target 'answer')" in out
    assert "accuracy 0.7143  (5 of 7)" in out
    # no: precision 2/3 (predicted no 3 times), recall 2/3; yes: 3/4 and 3/4
    assert re.search(r"^no\s+0\.6667\s+0\.6667\s+3$", out, re.MULTILINE), out
    assert re.search(r"^yes\s+0\.7500\s+0\.7500\s+4$", out, re.MULTILINE), out
    # the confusion matrix: rows true no, yes; columns predicted no, yes
    assert re.search(r"^no\s+2\s+1$", out, re.MULTILINE), out
    assert re.search(r"^yes\s+1\s+3$", out, re.MULTILINE), out

    report = json.loads(run("evaluate", "--model", tmp_path / "m.npz", "--data", data,
                            "--json").stdout)
    assert report["task"] == "binary" and report["n_samples"] == 7 and report["target"] == "answer"
    assert report["classes"] == ["no", "yes"]
    assert report["accuracy"] == pytest.approx(5 / 7) and report["correct"] == 5
    assert report["confusion_matrix"] == [[2, 1], [1, 3]]
    no, yes = report["per_class"]
    assert (no["class"], no["precision"], no["recall"], no["support"]) == (
        "no", pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert (yes["class"], yes["precision"], yes["recall"], yes["support"]) == (
        "yes", 0.75, 0.75, 4)
    # the text and the JSON carry the same figures
    json_figures = [report["accuracy"]] + [v for c in report["per_class"]
                                           for v in (c["precision"], c["recall"])]
    assert _text_figures(out) == [round(v, 4) for v in json_figures]


def test_evaluate_a_multiclass_model_with_a_class_never_predicted(tmp_path):
    multiclass_model(tmp_path / "m.npz")
    # predictions: -3 lo, -2 lo, 0 mid, 0.5 mid, 2 hi, 0.2 mid
    rows = [(-3, "lo"), (-2, "mid"), (0, "mid"), (0.5, "lo"), (2, "hi"), (0.2, "mid")]
    data = _csv(tmp_path / "test.csv", ["x", "answer"], rows)
    report = json.loads(run("evaluate", "--model", tmp_path / "m.npz", "--data", data,
                            "--json").stdout)
    assert report["task"] == "multiclass" and report["classes"] == ["hi", "lo", "mid"]
    # rows: true hi, lo, mid; columns: predicted hi, lo, mid
    assert report["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [0, 1, 2]]
    assert report["accuracy"] == pytest.approx(4 / 6)
    hi, lo, mid = report["per_class"]
    assert (hi["precision"], hi["recall"]) == (1.0, 1.0)
    assert (lo["precision"], lo["recall"], lo["support"]) == (0.5, 0.5, 2)
    assert mid["precision"] == pytest.approx(2 / 3) and mid["recall"] == pytest.approx(2 / 3)

    # Without 'hi' in the data and never predicted: n/a (null), never 0.
    data = _csv(tmp_path / "nohi.csv", ["x", "answer"], [(-3, "lo"), (0, "mid"), (0.1, "lo")])
    proc = run("evaluate", "--model", tmp_path / "m.npz", "--data", data)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^hi\s+n/a\s+n/a\s+0$", proc.stdout, re.MULTILINE), proc.stdout
    assert "n/a: precision of a class never predicted" in proc.stdout
    report = json.loads(run("evaluate", "--model", tmp_path / "m.npz", "--data", data,
                            "--json").stdout)
    assert report["per_class"][0] == {"class": "hi", "precision": None, "recall": None,
                                      "support": 0, "predicted": 0}


def test_evaluate_a_regression_model_by_hand(tmp_path):
    regression_model(tmp_path / "m.npz")
    # predictions 2x + 1 = 1, 3, 5, 7 against 1, 4, 4, 9: errors 0, -1, 1, -2
    data = _csv(tmp_path / "test.csv", ["t", "x"], [(1, 0), (4, 1), (4, 2), (9, 3)])
    proc = run("evaluate", "--model", tmp_path / "m.npz", "--data", data)
    assert proc.returncode == 0, proc.stderr
    # MAE 4/4; MSE 6/4; target mean 4.5, spread 12.25 + .25 + .25 + 20.25 = 33 -> R2 1 - 6/33
    r2, mae, rmse = 1 - 6 / 33, 1.0, math.sqrt(1.5)
    assert f"R2    {r2:.4f}" in proc.stdout and f"MAE   {mae:.4f}" in proc.stdout
    assert f"RMSE  {rmse:.4f}" in proc.stdout and "4 rows, regression" in proc.stdout
    report = json.loads(run("evaluate", "--model", tmp_path / "m.npz", "--data", data,
                            "--json").stdout)
    assert (report["r2"], report["mae"], report["rmse"]) == pytest.approx((r2, mae, rmse))
    assert _text_figures(proc.stdout) == [round(v, 4) for v in (r2, mae, rmse)]
    # A constant target: R2 does not exist.
    data = _csv(tmp_path / "flat.csv", ["t", "x"], [(3, 1), (3, 2)])
    proc = run("evaluate", "--model", tmp_path / "m.npz", "--data", data)
    assert "R2    n/a  (undefined: a target column is constant)" in proc.stdout
    assert json.loads(run("evaluate", "--model", tmp_path / "m.npz", "--data", data,
                          "--json").stdout)["r2"] is None


def test_evaluate_reads_npz_npy_and_header_less_csv(tmp_path):
    binary_model(tmp_path / "m.npz")
    x = np.array([[r[0]] for r in BINARY_ROWS], float)
    labels = np.array([r[1] for r in BINARY_ROWS])
    np.savez(tmp_path / "d.npz", X=x, y=labels)
    np.savez(tmp_path / "other.npz", X=x, truth=labels)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", labels)
    (tmp_path / "bare.csv").write_text("".join(f"{a},{b}\n" for a, b in BINARY_ROWS))
    for args in (["--data", tmp_path / "d.npz"],
                 ["--data", tmp_path / "other.npz", "--target", "truth"],
                 ["--data", tmp_path / "x.npy", "--target", tmp_path / "y.npy"],
                 ["--data", tmp_path / "bare.csv", "--no-header", "--target", "-1"]):
        proc = run("evaluate", "--model", tmp_path / "m.npz", *args, "--json")
        assert proc.returncode == 0, (args, proc.stderr)
        assert json.loads(proc.stdout)["confusion_matrix"] == [[2, 1], [1, 3]], args


def test_evaluate_matches_columns_by_name_and_takes_numeric_classes(tmp_path):
    model = _model(1, "sigmoid", "bce", [1.0], [0.0], [0, 1], target="y", task="binary")
    model.save(tmp_path / "m.npz")
    # columns in another order; the label 1.0 is the class 1
    data = _csv(tmp_path / "d.csv", ["y", "x"], [(0, -1), (1, 2), (1.0, -3)])
    report = json.loads(run("evaluate", "--model", tmp_path / "m.npz", "--data", data,
                            "--json").stdout)
    assert report["classes"] == [0, 1] and report["confusion_matrix"] == [[1, 0], [1, 1]]
    # an extra column is refused by name, as predict refuses it
    data = _csv(tmp_path / "z.csv", ["y", "x", "z"], [(0, -1, 5)])
    proc = run("evaluate", "--model", tmp_path / "m.npz", "--data", data)
    assert proc.returncode == 2
    assert "has column(s) ['z'] the model was not trained on" in proc.stderr


@pytest.mark.parametrize("rows, header, args, reason", [
    ([(-1, "no"), (1, "maybe"), (2, "perhaps")], ["x", "answer"], [],
     (r"the labels \['maybe', 'perhaps'\] in 'answer' are not among the model's classes "
      r"\['no', 'yes'\] \(2 of 3 rows\)")),
    ([(-1, "no")], ["x", "label"], [],
     (r"has no column 'answer'; its columns are \['x', 'label'\] .*evaluate looks for the "
      r"label column the model was trained on, 'answer': name the file's label column with "
      r"--target")),
    ([(-1, "no")], ["x", "label"], ["--target", "nope"], r".*has no column 'nope'"),
    ([(-1, "no")], ["x", "answer"], ["--delimiter", ";"],
     r".*has no column 'answer'; its columns are \['x,answer'\] \(delimiter: semicolon"),
])
def test_evaluate_refusals_name_the_problem(tmp_path, rows, header, args, reason):
    binary_model(tmp_path / "m.npz")
    data = _csv(tmp_path / "d.csv", header, rows)
    proc = run("evaluate", "--model", tmp_path / "m.npz", "--data", data, *args)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnbackend: error: "), proc.stderr
    assert re.search(reason, lines[0]), (reason, lines[0])
    assert "Traceback" not in proc.stderr


def test_evaluate_refusals_of_files_and_targets(tmp_path, capsys):
    regression_model(tmp_path / "m.npz")
    _csv(tmp_path / "text.csv", ["t", "x"], [(1, 0), ("high", 1)])
    np.save(tmp_path / "x.npy", np.zeros((3, 1)))
    np.savez(tmp_path / "d.npz", X=np.zeros((3, 1)), y=np.zeros(3))
    np.savez(tmp_path / "wide.npz", X=np.zeros((3, 2)), y=np.zeros(3))
    model = str(tmp_path / "m.npz")
    for args, message in (
        (["--data", str(tmp_path / "text.csv")],
         "the target 't' holds 'high', not a finite number"),
        (["--data", str(tmp_path / "x.npy")], "name the labels with --target LABELS.npy"),
        (["--data", str(tmp_path / "d.npz"), "--delimiter", ";"],
         "--delimiter is for a --data .csv file"),
        (["--data", str(tmp_path / "wide.npz")], "has 2 features but the model expects 1"),
        (["--data", str(tmp_path / "d.npz"), "--target", "z"], "lacks array(s) ['z']"),
    ):
        with pytest.raises(SystemExit) as info:
            main(["evaluate", "--model", model, *args])
        err = capsys.readouterr().err
        assert info.value.code == 2 and message in err, (args, err)
    # A model that does not record its label column: --target says which.
    bare = _model(1, "identity", "mse", [2.0], [1.0], None, target=None, task=None)
    bare.save(tmp_path / "bare.npz")
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", str(tmp_path / "bare.npz"), "--data",
              str(tmp_path / "text.csv")])
    err = capsys.readouterr().err
    assert ("does not record the column it was trained on: name the label column with "
            "--target") in err
    assert "its columns are ['t', 'x']" in err


def test_a_model_without_task_metadata_is_scored_by_its_head(tmp_path, capsys):
    bare = _model(1, "identity", "mse", [2.0], [1.0], None, target=None, task=None)
    bare.metadata = {}
    bare.save(tmp_path / "bare.npz")
    np.savez(tmp_path / "d.npz", X=np.array([[0.0], [1.0]]), y=np.array([1.0, 4.0]))
    assert main(["evaluate", "--model", str(tmp_path / "bare.npz"), "--data",
                 str(tmp_path / "d.npz"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # predictions 1, 3 against 1, 4: errors 0, -1; target mean 2.5, spread 2.25 + 2.25
    assert report["task"] == "regression" and report["mae"] == 0.5
    assert report["rmse"] == pytest.approx(math.sqrt(0.5))
    assert report["r2"] == pytest.approx(1 - 1 / 4.5)


# -- predict says where its input holds the target ----------------------------------


def test_predict_notes_the_target_column_and_points_to_evaluate(tmp_path):
    binary_model(tmp_path / "m.npz")
    data = _csv(tmp_path / "test.csv", ["x", "answer"], BINARY_ROWS)
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", data)
    assert proc.returncode == 0, proc.stderr
    assert "holds the target column 'answer', which predict leaves out" in proc.stderr
    assert f"nnbackend evaluate --model {tmp_path / 'm.npz'} --data {data}" in proc.stderr
    lines = proc.stdout.splitlines()   # the predictions are still written
    assert lines[0] == "prediction,p_no,p_yes" and len(lines) == 8
    assert [l.split(",")[0] for l in lines[1:]] == ["no", "no", "no", "yes", "yes", "yes", "yes"]
    # Without the column: no note.
    features = _csv(tmp_path / "x.csv", ["x"], [(r[0],) for r in BINARY_ROWS])
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", features)
    assert proc.returncode == 0 and "note" not in proc.stderr, proc.stderr
    assert proc.stdout == "\n".join(lines) + "\n"
    # An .npz with labels beside X: the same note.
    np.savez(tmp_path / "d.npz", X=np.array([[r[0]] for r in BINARY_ROWS], float),
             y=np.array([r[1] for r in BINARY_ROWS]))
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "d.npz")
    assert proc.returncode == 0 and "holds the target array 'y'" in proc.stderr, proc.stderr
    # A header-less file with one column too many: the refusal points to evaluate.
    bare = "".join(f"{a},{int(b == 'yes')}\n" for a, b in BINARY_ROWS)
    (tmp_path / "bare.csv").write_text(bare)
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "bare.csv",
               "--no-header")
    assert proc.returncode == 2 and "nnbackend evaluate --target" in proc.stderr, proc.stderr


def test_evaluate_scores_a_trained_model_as_predict_labels_it(tmp_path):
    """End to end: train on a csv, then evaluate's figures are those of
    predict's labels counted here."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    labels = np.where(X[:, 0] - X[:, 1] > 0.3, "up", "down")
    text = "u;v;dir\n" + "".join(f"{a:.6f};{b:.6f};{c}\n" for (a, b), c in zip(X, labels))
    (tmp_path / "d.csv").write_text(text)
    proc = run("train", "--data", tmp_path / "d.csv", "--target", "dir", "--epochs", "5",
               "--quiet", "--save", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "d.csv")
    predicted = np.array([line.split(",")[0] for line in proc.stdout.splitlines()[1:]])
    report = json.loads(run("evaluate", "--model", tmp_path / "m.npz", "--data",
                            tmp_path / "d.csv", "--json").stdout)
    matrix = [[int(np.sum((labels == t) & (predicted == p))) for p in ("down", "up")]
              for t in ("down", "up")]
    assert report["confusion_matrix"] == matrix
    assert report["accuracy"] == pytest.approx(np.mean(predicted == labels))


def test_evaluate_is_in_the_help():
    proc = run("--help")
    assert "evaluate" in proc.stdout
    proc = run("evaluate", "--help")
    assert proc.returncode == 0
    assert "--delimiter" in proc.stdout and "confusion matrix" in proc.stdout
