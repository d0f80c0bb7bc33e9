"""The edges of the input checks in ``nnbackend.data``, on NumPy alone.

Each test pins one boundary that a mutation of ``data.py`` moved without any
other test noticing (``benchmarks/mutation_survivors.md``): the first row
and the second block of the NaN and overflow scans, a value exactly at the
dtype's limit, one feature, class ids in a column, two rows of one class,
an unknown number of rows, and the wording of a refusal.
"""

import re
import warnings

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import data

NUMPY = nb.get_backend("numpy")
BLOCK = 65536  # the row block of data._host_all_finite and data._max_abs


@pytest.mark.parametrize("n, row", [(5, 0), (5, 4), (BLOCK + 3, BLOCK + 1), (BLOCK + 3, 0)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_in_any_row_is_refused(n, row, bad):
    X = np.zeros((n, 2))
    X[row, 1] = bad
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        data.as_features(NUMPY, X, np.float64)


@pytest.mark.parametrize("n, row", [(5, 0), (5, 4), (BLOCK + 3, BLOCK + 2)])
def test_a_value_beyond_float32_in_any_row_is_refused(n, row):
    # Two columns and many rows: a scan over columns instead of rows, or one
    # that starts at row 1, misses the value.
    X = np.zeros((n, 2))
    X[row, 0] = -1e39
    with pytest.raises(ValueError, match=r"X holds values up to 1e\+39 .* use dtype='float64'"):
        data.as_features(NUMPY, X, np.float32)


def test_the_largest_float32_is_accepted_from_float64_data():
    biggest = float(np.finfo(np.float32).max)
    X = np.array([[biggest, -biggest], [0.0, 1.0]])
    out = data.as_features(NUMPY, X, np.float32)
    assert out.dtype == np.float32
    assert out[0, 0] == np.finfo(np.float32).max and out[0, 1] == -np.finfo(np.float32).max


def test_one_feature_is_a_valid_input():
    X = np.linspace(-1, 1, 8).reshape(-1, 1)
    assert data.as_features(NUMPY, X, np.float64).shape == (8, 1)
    model = nb.MLP([1, 3, 1], seed=0)
    history = model.fit(X, 2 * X[:, 0], epochs=2, batch_size=4)
    assert len(history.loss) == 2


def test_the_reshape_hint_is_given_for_1d_input_only():
    with pytest.raises(ValueError, match=r"got shape \(4,\); reshape a single feature"):
        data.as_features(NUMPY, np.zeros(4), np.float64)
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 1\)$"):
        data.as_features(NUMPY, np.zeros((2, 2, 1)), np.float64)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_class_ids_in_a_column_become_one_hot_rows(n_classes):
    ids = np.arange(6) % n_classes
    Y = data.as_targets(NUMPY, ids.reshape(-1, 1), "cross_entropy", n_classes, 6, np.float64)
    np.testing.assert_array_equal(Y, np.eye(n_classes)[ids])


def test_two_one_hot_columns_are_taken_as_they_are():
    one_hot = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    Y = data.as_targets(NUMPY, one_hot, "cross_entropy", 2, 3, np.float64)
    np.testing.assert_array_equal(Y, one_hot)


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("loss", ["bce", "cross_entropy"])
def test_a_few_rows_of_one_class_are_refused(n, loss):
    Y = np.tile([[0.0, 1.0]] if loss == "cross_entropy" else [[1.0]], (n, 1))
    with pytest.raises(ValueError, match="y holds a single class"):
        data.check_classes(NUMPY, Y, loss)


def test_one_row_is_not_refused_as_one_class():
    # One row cannot show two classes; a one-row fit is allowed (sgd on one sample).
    data.check_classes(NUMPY, np.array([[1.0]]), "bce")


class _Lazy:
    def __init__(self, shape):
        self.shape = shape


@pytest.mark.parametrize("n", [None, float("nan")])
def test_an_unknown_number_of_rows_is_refused(n):
    with pytest.raises(ValueError, match="the number of rows is unknown"):
        data.n_rows(_Lazy((n, 3)))
    assert data.n_rows(_Lazy((7, 3))) == 7


def test_a_library_error_becomes_a_one_line_refusal_with_its_first_line():
    error = ValueError("sparse tensors are not supported\nsee the docs")
    message = str(data._library_refusal("X", NUMPY, error))
    assert "(ValueError: sparse tensors are not supported)" in message
    assert "see the docs" not in message
    long_line = "x" * 300
    message = str(data._library_refusal("X", NUMPY, RuntimeError(long_line)))
    assert f"(RuntimeError: {'x' * 200})" in message
    assert str(data._library_refusal("X", NUMPY, RuntimeError())).count("(RuntimeError: )") == 1


@pytest.mark.parametrize("columns, problem", [
    ([1.0, 50.0], None),
    ([1.0, 101.0], "range from 1 to 101"),
    ([0.0, 2e3, 1.5e3], "values up to 2e\\+03"),
    ([0.0, 0.0], None),
    ([-3e-3, 0.4], "range from 0.003 to 0.4"),
    ([-3e-3, 0.2], None),
])
def test_feature_scale_problems(columns, problem):
    X = np.array([columns, [c / 2 for c in columns]])
    found = data.feature_scale_problem(NUMPY, X)
    if problem is None:
        assert found is None
    else:
        assert found is not None and re.search(problem, found), found


def test_unscaled_features_of_very_different_scales_warn_at_fit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2)) * np.array([1.0, 1e3])
    y = (X[:, 0] > 0).astype(float)
    with pytest.warns(nb.FeatureScaleWarning, match="standardize=True") as caught:
        nb.MLP([2, 3, 1]).fit(X, y, epochs=1)
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", nb.FeatureScaleWarning)
        nb.MLP([2, 3, 1], standardize=True).fit(X, y, epochs=1)
        nb.MLP([2, 3, 1]).fit(X / np.array([1.0, 1e3]), y, epochs=1)
