"""Datasets, data files, task inference and the train/validation split (host only)."""

import sys

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import datasets as ds
from nnbackend.datasets import (
    DATASETS,
    DatasetUnavailableError,
    encode_labels,
    infer_task,
    load_data_file,
    make_dataset,
    train_val_split,
)

GENERATED = ("xor", "and", "moons", "spirals", "synthetic")


# -- make_dataset -----------------------------------------------------------------


def test_names():
    assert DATASETS == ("xor", "and", "moons", "spirals", "digits", "synthetic")


@pytest.mark.parametrize(
    "name, n, d, ydtype",
    [
        ("xor", 4, 2, np.float64),
        ("and", 4, 2, np.float64),
        ("moons", 500, 2, np.float64),
        ("spirals", 600, 2, np.int64),
        ("synthetic", 1000, 32, np.float64),
    ],
)
def test_default_shapes_and_dtypes(name, n, d, ydtype):
    X, y = make_dataset(name)
    assert X.shape == (n, d) and X.dtype == np.float64
    assert y.shape == (n,) and y.dtype == ydtype
    assert np.isfinite(X).all() and np.isfinite(y).all()


def test_xor_and_corners_exact():
    X, y = make_dataset("xor")
    np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, [0, 1, 1, 0])
    X, y = make_dataset("and", seed=5)
    np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, [0, 0, 0, 1])


def test_xor_jittered_cycles_corners():
    X, y = make_dataset("xor", n_samples=400, seed=1)
    assert X.shape == (400, 2) and y.shape == (400,)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])[np.arange(400) % 4]
    np.testing.assert_array_equal(y, np.array([0, 1, 1, 0])[np.arange(400) % 4])
    jitter = X - corners
    assert 0.07 < jitter.std() < 0.13
    assert np.abs(jitter).max() < 0.6  # 0.1 std: no point strays near another corner


@pytest.mark.parametrize("name", GENERATED)
def test_deterministic_by_seed(name):
    n = 40 if name in ("xor", "and") else None
    X1, y1 = make_dataset(name, n_samples=n, seed=3)
    X2, y2 = make_dataset(name, n_samples=n, seed=3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, _ = make_dataset(name, n_samples=n, seed=4)
    assert not np.array_equal(X1, X3)


@pytest.mark.parametrize(
    "name, n", [("moons", 101), ("spirals", 100), ("synthetic", 7), ("xor", 9)]
)
def test_n_samples(name, n):
    X, y = make_dataset(name, n_samples=n)
    assert X.shape[0] == y.shape[0] == n


def test_moons_balanced_and_shaped():
    X, y = make_dataset("moons", n_samples=501, seed=0)
    assert set(np.unique(y)) == {0.0, 1.0}
    assert np.count_nonzero(y == 0) == 250 and np.count_nonzero(y == 1) == 251
    # Rows are shuffled, not one class then the other.
    assert 0 < y[:50].sum() < 50
    # The upper moon sits higher on average than the lower one.
    assert X[y == 0, 1].mean() > X[y == 1, 1].mean() + 0.5


def test_spirals_three_balanced_classes():
    X, y = make_dataset("spirals", n_samples=601)
    assert np.unique(y).tolist() == [0, 1, 2]
    assert sorted(np.bincount(y).tolist()) == [200, 200, 201]
    assert np.linalg.norm(X, axis=1).max() < 1.0 + 1e-12  # radii run 0..1


def test_synthetic_n_features_and_fixed_function():
    X, y = make_dataset("synthetic", n_samples=50, n_features=5)
    assert X.shape == (50, 5) and y.shape == (50,)
    assert infer_task(y)["kind"] == "regression"
    # Different seeds draw new samples of one fixed function, so the best
    # linear fit points the same way whichever seed drew the samples.
    Xa, ya = make_dataset("synthetic", n_samples=2000, seed=1)
    Xb, yb = make_dataset("synthetic", n_samples=2000, seed=2)
    wa = np.linalg.lstsq(Xa, ya, rcond=None)[0]
    wb = np.linalg.lstsq(Xb, yb, rcond=None)[0]
    cos = wa @ wb / np.linalg.norm(wa) / np.linalg.norm(wb)
    assert cos > 0.8
    assert ya.std() > 0.3  # signal well above the 0.1 noise


def test_moons_learnable_xor_not_linear():
    # A least-squares linear classifier: ~85% on moons, chance on xor's corners.
    X, y = make_dataset("moons", seed=0)
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    w = np.linalg.lstsq(A, y, rcond=None)[0]
    assert ((A @ w > 0.5) == (y == 1)).mean() > 0.8
    X, y = make_dataset("xor")
    A = np.hstack([X, np.ones((4, 1))])
    w = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(A @ w, 0.5, atol=1e-12)


def test_unknown_name():
    with pytest.raises(ValueError, match=r"unknown dataset 'iris'.*'xor'.*'synthetic'"):
        make_dataset("iris")


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"n_samples": 0}, ValueError, r"n_samples must be >= 1"),
        ({"n_samples": -3}, ValueError, r"n_samples must be >= 1"),
        ({"n_samples": 2.5}, TypeError, r"n_samples must be an integer"),
        ({"n_samples": "10"}, TypeError, r"n_samples must be an integer"),
        ({"n_samples": True}, TypeError, r"n_samples must be an integer"),
        ({"seed": 1.5}, TypeError, r"seed must be an integer"),
        ({"seed": -1}, ValueError, r"seed must be >= 0"),
        ({"n_features": 0}, ValueError, r"n_features must be >= 1"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make_dataset("synthetic", **kwargs)


def test_too_few_for_classes():
    with pytest.raises(ValueError, match=r"n_samples must be >= 4 for 'xor'"):
        make_dataset("xor", n_samples=3)
    with pytest.raises(ValueError, match=r"n_samples must be >= 3 for 'spirals'"):
        make_dataset("spirals", n_samples=2)


def test_n_features_only_for_synthetic():
    X, _ = make_dataset("moons", n_samples=10, n_features=2)  # matching is fine
    assert X.shape == (10, 2)
    with pytest.raises(ValueError, match=r"'moons' has 2 features.*'synthetic' only"):
        make_dataset("moons", n_features=3)


def test_numpy_integer_arguments():
    X, _ = make_dataset("moons", n_samples=np.int64(20), seed=np.int32(1))
    assert X.shape == (20, 2)


# -- digits --------------------------------------------------------------------------


def test_digits():
    pytest.importorskip("sklearn")
    X, y = make_dataset("digits")
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.unique(y).tolist() == list(range(10))
    task = infer_task(y)
    assert task["kind"] == "multiclass" and task["n_outputs"] == 10


def test_digits_subsample():
    pytest.importorskip("sklearn")
    X_all, y_all = make_dataset("digits")
    X, y = make_dataset("digits", n_samples=100, seed=7)
    assert X.shape == (100, 64) and y.shape == (100,)
    idx = np.random.default_rng(7).permutation(1797)[:100]
    np.testing.assert_array_equal(X, X_all[idx])
    np.testing.assert_array_equal(y, y_all[idx])
    X2, _ = make_dataset("digits", n_samples=100, seed=8)
    assert not np.array_equal(X, X2)
    with pytest.raises(ValueError, match=r"'digits' has 1797 samples"):
        make_dataset("digits", n_samples=1798)


def test_digits_without_sklearn(monkeypatch):
    # None in sys.modules makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DatasetUnavailableError, match=r"nnbackend\[datasets\]") as info:
        make_dataset("digits")
    assert isinstance(info.value, RuntimeError)
    assert "scikit-learn" in str(info.value)


# -- load_data_file: npz -----------------------------------------------------------


def test_npz_round_trip(tmp_path):
    X, y = make_dataset("spirals", n_samples=30)
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=y)
    X2, y2 = load_data_file(path)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    assert X2.dtype == np.float64 and y2.dtype == np.int64
    X3, y3, classes = load_data_file(str(path), return_classes=True)
    assert classes is None


def test_npz_dtypes_and_target_key(tmp_path):
    path = tmp_path / "d.npz"
    X = np.arange(6, dtype=np.int32).reshape(3, 2)
    np.savez(path, X=X, labels=np.array([0.5, 1.0, 2.0], np.float32))
    X, y = load_data_file(path, target="labels")
    assert X.dtype == np.float64 and y.dtype == np.float64
    np.testing.assert_array_equal(y, [0.5, 1.0, 2.0])


def test_npz_string_labels(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((4, 2)), y=np.array(["dog", "cat", "dog", "emu"]))
    X, y, classes = load_data_file(path, return_classes=True)
    assert classes == ["cat", "dog", "emu"]
    np.testing.assert_array_equal(y, [1, 0, 1, 2])
    assert y.dtype == np.int64


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"X": np.zeros((3, 2))}, r"lacks array\(s\) \['y'\]; it holds \['X'\]"),
        ({"features": np.zeros((3, 2)), "y": np.zeros(3)}, r"lacks array\(s\) \['X'\]"),
        ({"X": np.zeros(3), "y": np.zeros(3)}, r"X in .* must be 2-D .*got shape \(3,\)"),
        ({"X": np.zeros((3, 2)), "y": np.zeros((3, 2, 1))}, r"y in .* must be 1-D or 2-D"),
        ({"X": np.zeros((3, 2)), "y": np.zeros(4)}, r"X has 3 rows but y has 4"),
        ({"X": np.zeros((0, 2)), "y": np.zeros(0)}, r"has no samples"),
        ({"X": np.array([[1.0, np.nan]]), "y": np.zeros(1)}, r"X in .* contains NaN"),
        ({"X": np.array([["a", "b"]]), "y": np.zeros(1)}, r"X in .* must be numeric"),
    ],
)
def test_npz_errors(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match) as info:
        load_data_file(path)
    assert "bad.npz" in str(info.value)


def test_npz_object_array_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.array([[1, "a"]], dtype=object), y=np.zeros(1))
    with pytest.raises(ValueError, match=r"could not read arrays from .*obj\.npz.*allow_pickle"):
        load_data_file(path)


def test_npz_garbage_and_empty(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"could not read .*empty\.npz"):
        load_data_file(empty)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive at all")
    with pytest.raises(ValueError, match=r"could not read .*junk\.npz"):
        load_data_file(junk)
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match=r"single\.npz is not an \.npz archive"):
        load_data_file(single)


# -- load_data_file: csv -----------------------------------------------------------


def test_csv_numeric_round_trip(tmp_path):
    X, y = make_dataset("spirals", n_samples=12)
    path = tmp_path / "d.csv"
    lines = ["a,label,b"] + [f"{float(r[0])!r},{int(c)},{float(r[1])!r}" for r, c in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")
    X2, y2, classes = load_data_file(path, target="label", return_classes=True)
    np.testing.assert_array_equal(X2, X)  # repr round-trips floats exactly
    np.testing.assert_array_equal(y2, y)
    assert y2.dtype == np.int64 and classes is None


def test_csv_float_labels_and_whitespace(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("\ufeff x , y \n1, 0.5\n\n2 ,1.0\n")  # BOM, spaces, blank line
    X, y = load_data_file(path, target="y")
    np.testing.assert_array_equal(X, [[1.0], [2.0]])
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [0.5, 1.0])
    path.write_text("x,y\n1,1.0\n2,0.0\n")
    _, y = load_data_file(path, target="y")
    assert y.dtype == np.int64  # whole numbers become ints


def test_csv_string_labels(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text(
        "sepal,petal,species\n"
        "5.1,1.4,setosa\n"
        "7.0,4.7,versicolor\n"
        "6.3,6.0,virginica\n"
        "4.9,1.4,setosa\n"
    )
    X, y, classes = load_data_file(path, target="species", return_classes=True)
    assert X.shape == (4, 2)
    assert classes == ["setosa", "versicolor", "virginica"]
    np.testing.assert_array_equal(y, [0, 1, 2, 0])
    assert y.dtype == np.int64
    assert infer_task(y)["kind"] == "multiclass"


@pytest.mark.parametrize(
    "text, target, match",
    [
        ("", "y", r"e\.csv is empty"),
        ("\n\n", "y", r"e\.csv is empty"),
        ("x,y\n", "y", r"e\.csv has a header but no data rows"),
        ("x,y\n1,0\n", None, r"needs a target .* columns are \['x', 'y'\]"),
        ("x,y\n1,0\n", "label", r"no column 'label'; its columns are \['x', 'y'\]"),
        ("x,y\n1,0\nabc,1\n", "y", r"line 3, column 'x': 'abc' is not a finite number"),
        ("x,y\n1,0\n,1\n", "y", r"line 3, column 'x': '' is not a finite number"),
        ("x,y\nnan,0\n", "y", r"line 2, column 'x': 'nan' is not a finite number"),
        ("x,y\n1,0\n2,1,3\n", "y", r"line 3 has 3 cells but the header has 2"),
        ("x,y\n1,0\n2,\n", "y", r"line 3: the target column 'y' is empty"),
        ("x,y\n1,inf\n", "y", r"line 2, column 'y': 'inf' is not finite"),
        ("y\n1\n", "y", r"no feature columns besides 'y'"),
        ("x,y,y\n1,0,1\n", "y", r"more than one column named 'y'"),
    ],
)
def test_csv_errors(tmp_path, text, target, match):
    path = tmp_path / "e.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        load_data_file(path, target=target)
    assert "e.csv" in str(info.value)


def test_csv_not_utf8(tmp_path):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"x,y\n\xff\xfe,1\n")
    with pytest.raises(ValueError, match=r"could not read .*bin\.csv"):
        load_data_file(path, target="y")


def test_file_level_errors(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(ValueError, match=r"no such file: .*nope\.npz"):
        load_data_file(missing)
    other = tmp_path / "d.txt"
    other.write_text("1 2\n")
    match = r"unsupported file type '\.txt' for .*d\.txt; use \.npz or \.csv"
    with pytest.raises(ValueError, match=match):
        load_data_file(other)
    with pytest.raises(ValueError, match=r"is a directory"):
        load_data_file(tmp_path)


def test_extension_case_insensitive(tmp_path):
    path = tmp_path / "D.CSV"
    path.write_text("a,t\n1,0\n2,1\n")
    X, y = load_data_file(path, target="t")
    assert X.shape == (2, 1)


# -- infer_task / encode_labels ----------------------------------------------------


def test_infer_binary():
    task = infer_task(np.array([0.0, 1.0, 1.0]))
    assert task == {
        "kind": "binary",
        "n_outputs": 1,
        "output_activation": "sigmoid",
        "loss": "bce",
        "classes": [0, 1],
    }
    assert infer_task([True, False])["classes"] == [0, 1]


def test_infer_multiclass():
    task = infer_task(np.array([2, 0, 1, 2]))
    assert task["kind"] == "multiclass"
    assert task["n_outputs"] == 3
    assert task["output_activation"] == "softmax" and task["loss"] == "cross_entropy"
    assert task["classes"] == [0, 1, 2]


def test_infer_regression():
    task = infer_task(np.array([0.5, 1.0, 2.0]))
    assert task == {
        "kind": "regression",
        "n_outputs": 1,
        "output_activation": "identity",
        "loss": "mse",
        "classes": None,
    }
    task = infer_task(np.array([[0.5, 1.0, 3.0], [2.0, 0.0, 1.0]]))
    assert task["kind"] == "regression" and task["n_outputs"] == 3


def test_infer_one_hot():
    y = np.eye(4)[[0, 3, 1, 2, 3]]
    task = infer_task(y)
    assert task["kind"] == "multiclass" and task["n_outputs"] == 4
    assert task["classes"] == [0, 1, 2, 3]
    # 0/1 rows that are not one-hot (multi-label) are regression targets.
    assert infer_task(np.array([[1, 1], [0, 1]]))["kind"] == "regression"


def test_infer_column_vector_read_as_1d():
    assert infer_task(np.array([[0], [1], [1]]))["kind"] == "binary"
    assert infer_task(np.array([[0.5], [1.5]]))["kind"] == "regression"


def test_infer_remapped_labels():
    y = np.array([7, 3, 7, 3])
    task = infer_task(y)
    assert task["kind"] == "binary" and task["classes"] == [3, 7]
    np.testing.assert_array_equal(encode_labels(y, task["classes"]), [1, 0, 1, 0])
    y = np.array([-1.0, 5.0, 10.0, 5.0])
    task = infer_task(y)
    assert task["kind"] == "multiclass" and task["classes"] == [-1, 5, 10]
    ids = encode_labels(y, task["classes"])
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [0, 1, 2, 1])


def test_infer_strings():
    task = infer_task(np.array(["b", "a", "c"]))
    assert task["kind"] == "multiclass" and task["classes"] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "y, exc, match",
    [
        (np.array([1, 1, 1]), ValueError, r"y has a single class \(1\)"),
        (np.eye(3)[[1, 1]], ValueError, r"y has a single class"),
        (np.array([]), ValueError, r"y is empty"),
        (np.array(3.0), ValueError, r"y must be 1-D or 2-D"),
        (np.array([0.5, np.nan]), ValueError, r"NaN or infinity"),
        (np.array([{}, {}], dtype=object), TypeError, r"numbers or strings"),
    ],
)
def test_infer_errors(y, exc, match):
    with pytest.raises(exc, match=match):
        infer_task(y)


def test_infer_many_whole_numbers_are_a_quantity():
    rng = np.random.default_rng(0)
    prices = rng.integers(100, 250, size=200)  # the case: ~100 values in 200 rows
    assert len(np.unique(prices)) > 60
    assert infer_task(prices)["kind"] == "regression"
    assert infer_task(prices.astype(float))["kind"] == "regression"
    # Classes stay classes: 10 digits in 1797 rows; 100 classes in 50000 rows;
    # 21 classes at exactly the 5 % share; and any number of text classes.
    assert infer_task(np.arange(1797) % 10)["kind"] == "multiclass"
    assert infer_task(np.arange(50000) % 100)["n_outputs"] == 100
    assert infer_task(np.arange(420) % 21)["kind"] == "multiclass"
    assert infer_task(np.arange(419) % 21)["kind"] == "regression"
    assert infer_task(np.array([f"c{i}" for i in range(200)]))["kind"] == "multiclass"


def test_infer_task_override():
    prices = np.arange(200) % 102
    task = infer_task(prices, "multiclass")
    assert task["kind"] == "multiclass" and task["n_outputs"] == 102
    assert infer_task([0, 1, 2], "regression")["kind"] == "regression"
    assert infer_task(np.eye(3)[[0, 1, 2]], "regression")["n_outputs"] == 3
    binary_as_multi = infer_task([0, 1, 1], "multiclass")
    assert binary_as_multi["n_outputs"] == 2 and binary_as_multi["loss"] == "cross_entropy"
    with pytest.raises(ValueError, match=r"the labels look like a regression task, not 'binary'"):
        infer_task([0.5, 1.5], "binary")
    with pytest.raises(ValueError, match=r"the labels look like a multiclass task, not 'binary'"):
        infer_task([0, 1, 2], "binary")
    with pytest.raises(ValueError, match=r"task 'regression' needs numeric targets; these labels "
                                         r"are text \(e\.g\. \['a', 'b'\]\)"):
        infer_task(["a", "b", "a"], "regression")
    with pytest.raises(ValueError, match=r"unknown task 'ranking'"):
        infer_task([0, 1], "ranking")


def test_csv_first_row_of_numbers_is_not_taken_as_a_header(tmp_path):
    path = tmp_path / "bare.csv"
    path.write_text("1,2,0\n3,4,1\n5,6,0\n")
    for call in (lambda: load_data_file(path, target="y"),
                 lambda: ds.load_features_file(path)):
        with pytest.raises(ValueError, match=r"bare\.csv: its first row \['1', '2', '0'\] holds "
                                             r"numbers, not column names; .*header=False"):
            call()
    X, y = load_data_file(path, target=-1, header=False)
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(y, [0, 1, 0])
    X, y = load_data_file(path, target="0", header=False)
    np.testing.assert_array_equal(y, [1, 3, 5])
    assert ds.load_features_file(path, header=False).shape == (3, 3)
    for target, match in (("y", "target is a column index"), (3, "target column 3 is out of range"),
                          (None, "give the label column's index")):
        with pytest.raises(ValueError, match=match):
            load_data_file(path, target=target, header=False)
    path.write_text("1,2,0\n3,4\n")
    with pytest.raises(ValueError, match=r"line 2 has 2 cells but the first row has 3"):
        load_data_file(path, target=-1, header=False)


def test_read_data_file_names_the_features(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a, label ,b\n1,x,2\n3,y,4\n")
    X, y, classes, names = ds.read_data_file(path, target="label")
    assert names == ["a", "b"] and classes == ["x", "y"]
    np.save(tmp_path / "X.npy", X)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    assert ds.read_data_file(tmp_path / "d.npz")[3] is None


def test_load_features_file_matches_columns_by_name(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("c,label,a,b\n3,x,1,2\n6,y,4,5\n")
    X = ds.load_features_file(path, drop="label", feature_names=["a", "b", "c"])
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(ds.load_features_file(path, drop="label"), [[3, 1, 2], [6, 4, 5]])
    with pytest.raises(ValueError, match=r"p\.csv lacks the column\(s\) \['d'\] and has column\(s\) "
                                         r"\['c'\] the model was not trained on; the model's "
                                         r"features are \['a', 'b', 'd'\]"):
        ds.load_features_file(path, drop="label", feature_names=["a", "b", "d"])
    with pytest.raises(ValueError, match=r"has column\(s\) \['label'\] the model was not"):
        ds.load_features_file(path, feature_names=["c", "a", "b"])
    path.write_text("a,a,b\n1,2,3\n")
    with pytest.raises(ValueError, match=r"more than one column named 'a'"):
        ds.load_features_file(path, feature_names=["a", "b"])


def test_load_features_file_reads_npy(tmp_path):
    np.save(tmp_path / "X.npy", np.arange(6).reshape(3, 2))
    X = ds.load_features_file(tmp_path / "X.npy")
    assert X.dtype == np.float64 and X.shape == (3, 2)
    for name, array, match in (("one.npy", np.ones(3), "must hold a non-empty 2-D array"),
                               ("nan.npy", np.full((2, 2), np.nan), "contains NaN or infinity"),
                               ("s.npy", np.array([["a"]]), "must hold numbers")):
        np.save(tmp_path / name, array)
        with pytest.raises(ValueError, match=match):
            ds.load_features_file(tmp_path / name)
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"could not read .*junk\.npy as \.npy"):
        ds.load_features_file(tmp_path / "junk.npy")
    np.savez(tmp_path / "noX.npz", features=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"\(save with np\.savez\(path, X=X\)\)"):
        ds.load_features_file(tmp_path / "noX.npz")


def test_encode_labels():
    ids = encode_labels(["b", "a", "c", "a"], ["a", "b", "c"])
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [1, 0, 2, 0])
    # The order of ``classes`` defines the ids, sorted or not.
    np.testing.assert_array_equal(encode_labels([3, 7, 7], [7, 3]), [1, 0, 0])
    np.testing.assert_array_equal(encode_labels(np.array([[3], [7]]), [3, 7]), [0, 1])
    with pytest.raises(ValueError, match=r"labels \[5\] are not among the classes \[3, 7\]"):
        encode_labels([3, 5], [3, 7])
    with pytest.raises(ValueError, match=r"duplicates"):
        encode_labels([3], [3, 3])
    with pytest.raises(ValueError, match=r"must be 1-D"):
        encode_labels(np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValueError, match=r"cannot match"):
        encode_labels(["a"], [0, 1])


# -- train_val_split ---------------------------------------------------------------


def test_split_sizes_and_partition():
    X, y = make_dataset("spirals", n_samples=300, seed=0)
    Xt, yt, Xv, yv = train_val_split(X, y, 0.2, seed=0)
    assert Xt.shape == (240, 2) and Xv.shape == (60, 2)
    assert yt.shape == (240,) and yv.shape == (60,) and yv.dtype == np.int64
    # Every row lands on exactly one side.
    both = np.concatenate([Xt, Xv])
    assert np.unique(both, axis=0).shape[0] == 300
    np.testing.assert_array_equal(np.sort(both, axis=0), np.sort(X, axis=0))


def test_split_stratified():
    y = np.array([0] * 90 + [1] * 10)
    X = np.arange(100.0).reshape(-1, 1)
    _, yt, _, yv = train_val_split(X, y, 0.2, seed=3)
    assert np.bincount(yv).tolist() == [18, 2]
    assert np.bincount(yt).tolist() == [72, 8]
    # Without stratification the minority share is left to chance.
    counts = {int(train_val_split(X, y, 0.2, seed=s, stratify=False)[3].sum()) for s in range(20)}
    assert len(counts) > 1


def test_split_stratified_one_hot_and_strings():
    y = np.eye(3)[[0] * 10 + [1] * 10 + [2] * 10]
    X = np.zeros((30, 1))
    _, _, _, yv = train_val_split(X, y, 0.3, seed=0)
    assert yv.sum(axis=0).tolist() == [3, 3, 3]
    y = np.array(["a", "b"] * 10)
    _, _, _, yv = train_val_split(np.zeros((20, 1)), y, 0.5, seed=0)
    assert sorted(yv.tolist()) == ["a"] * 5 + ["b"] * 5


def test_split_keeps_small_class_in_training():
    # One row of class 1 in 5, val 40%: the leftover row should not take it.
    y = np.array([0, 0, 0, 0, 1])
    for seed in range(10):
        _, yt, _, yv = train_val_split(np.zeros((5, 1)), y, 0.4, seed=seed)
        assert yv.shape == (2,) and 1 in yt


def test_split_deterministic():
    X, y = make_dataset("moons", n_samples=100)
    a = train_val_split(X, y, 0.25, seed=11)
    b = train_val_split(X, y, 0.25, seed=11)
    c = train_val_split(X, y, 0.25, seed=12)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[2], c[2])


def test_split_regression_and_order():
    X = np.arange(20.0).reshape(10, 2)
    y = np.linspace(0.1, 0.9, 10)
    Xt, yt, Xv, yv = train_val_split(X, y, 0.3, seed=0)
    assert Xv.shape == (3, 2) and Xt.shape == (7, 2)
    # Original relative order is kept on both sides.
    assert np.all(np.diff(Xt[:, 0]) > 0) and np.all(np.diff(Xv[:, 0]) > 0)
    np.testing.assert_array_equal(yt, Xt[:, 0] / 2 * (0.8 / 9) + 0.1)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_fraction_range(fraction):
    with pytest.raises(ValueError, match=r"val_fraction must be strictly between 0 and 1"):
        train_val_split(np.zeros((10, 1)), np.zeros(10), fraction, seed=0)


def test_split_errors():
    with pytest.raises(TypeError, match=r"val_fraction must be a number"):
        train_val_split(np.zeros((10, 1)), np.zeros(10), "0.2", seed=0)
    with pytest.raises(ValueError, match=r"each side needs at least one"):
        train_val_split(np.zeros((4, 1)), np.array([0, 1, 0, 1]), 0.1, seed=0)
    with pytest.raises(ValueError, match=r"each side needs at least one"):
        train_val_split(np.zeros((4, 1)), np.array([0, 1, 0, 1]), 0.9, seed=0)
    with pytest.raises(ValueError, match=r"X has 4 rows but y has 3"):
        train_val_split(np.zeros((4, 1)), np.zeros(3), 0.5, seed=0)
    # Each refusal calls the fraction by the caller's name for it.
    with pytest.raises(ValueError, match=r"^--val-split=0.9 of 4 samples gives 4 validation"):
        train_val_split(np.zeros((4, 1)), np.array([0, 1, 0, 1]), 0.9, name="--val-split")
    with pytest.raises(ValueError, match=r"^--val-split must be strictly between 0 and 1"):
        train_val_split(np.zeros((4, 1)), np.zeros(4), 1.5, name="--val-split")
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match=r"^validation_split=0.99 of 20 samples"):
        nb.MLP([2, 3, 1], loss="bce").fit(X, X[:, 0] > 0, validation_split=0.99, epochs=1)


def test_split_single_class_falls_back_to_random():
    Xt, yt, Xv, yv = train_val_split(np.zeros((10, 1)), np.ones(10), 0.2, seed=0)
    assert yv.shape == (2,) and yt.shape == (8,)


def test_module_exports():
    assert set(ds.__all__) >= {
        "DATASETS",
        "DatasetUnavailableError",
        "make_dataset",
        "load_data_file",
        "read_data_file",
        "infer_task",
        "encode_labels",
        "train_val_split",
    }
