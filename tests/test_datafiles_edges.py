"""Edges of the data-file loaders (``nnbackend.datafiles``) that a mutation
of them moved without another test noticing (``benchmarks/mutation_survivors.md``)."""

import re

import numpy as np
import pytest

from nnbackend.cli import main
from nnbackend.datafiles import load_data_file, load_features_file, read_labelled_file
from nnbackend.tasks import infer_task
from conftest import cli_refusal


def _csv(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_an_npz_with_one_feature_loads(tmp_path):
    path = tmp_path / "one.npz"
    np.savez(path, X=np.arange(4.0).reshape(-1, 1), y=np.array([0, 1, 0, 1]))
    X, y = load_data_file(path)
    assert X.shape == (4, 1) and list(y) == [0, 1, 0, 1]


def test_a_file_without_an_extension_is_named_as_such(tmp_path):
    path = tmp_path / "data"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"unsupported file type '\(none\)'"):
        load_features_file(path)


def test_features_skip_a_label_column_even_where_it_is_empty(tmp_path):
    path = _csv(tmp_path, "a,label,b\n1,,2\n3,x,4\n")
    np.testing.assert_array_equal(load_features_file(path, drop="label"), [[1, 2], [3, 4]])


def test_a_duplicated_column_is_the_one_named(tmp_path):
    path = _csv(tmp_path, "b,a,b\n1,2,3\n")
    with pytest.raises(ValueError, match="more than one column named 'b'"):
        load_features_file(path, feature_names=["a", "b"])


def test_a_1d_npy_is_refused_with_its_shape(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(3.0))
    with pytest.raises(ValueError, match=r"got shape \(3,\)"):
        load_features_file(path)


def test_blank_lines_are_skipped_and_a_row_of_empty_cells_is_refused(tmp_path):
    # ",," is a sample with every value missing: skipped, it shifted every
    # later prediction onto the wrong row.
    path = _csv(tmp_path, "a,b,y\n1,2,0\n\n   \n3,4,1\n")
    X, _ = load_data_file(path, target="y")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    path = _csv(tmp_path, "a,b,y\n1,2,0\n,,\n3,4,1\n")
    with pytest.raises(ValueError, match=r"d\.csv line 3: every cell is empty \(missing "):
        load_data_file(path, target="y")


@pytest.mark.parametrize("width, shown", [
    (4, "['1', '2', '3', '4']"), (5, "['1', '2', '3', '4', '...']"),
    (6, "['1', '2', '3', '4', '...']")])
def test_a_numeric_first_row_is_shown_four_cells_at_most(tmp_path, width, shown):
    row = ",".join(str(i) for i in range(1, width + 1))
    path = _csv(tmp_path, f"{row}\n{row}\n")
    with pytest.raises(ValueError) as info:
        load_data_file(path, target="1")
    assert f"its first row {shown} holds numbers" in str(info.value)


def test_the_first_column_may_be_named_by_its_negative_index(tmp_path):
    path = _csv(tmp_path, "0,1,2\n1,3,4\n")
    X, y = load_data_file(path, target=-3, header=False)
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert list(y) == [0, 1]


def test_a_bad_cell_of_a_file_without_header_is_named_by_column_index(tmp_path):
    path = _csv(tmp_path, "1,2,0\n3,oops,1\n")
    with pytest.raises(ValueError, match=r"line 2, column 1: 'oops' is not a finite number"):
        load_data_file(path, target=2, header=False)


def test_features_of_a_file_without_header(tmp_path):
    path = _csv(tmp_path, "1,2\n3,4\n")
    np.testing.assert_array_equal(load_features_file(path, header=False), [[1, 2], [3, 4]])


def test_a_training_file_with_two_features_of_one_name_is_refused(tmp_path):
    # Its model could match no file's columns by name afterwards.
    path = _csv(tmp_path, "a,a,label\n1,2,x\n3,4,y\n")
    with pytest.raises(ValueError, match="more than one column named 'a'"):
        load_data_file(path, target="label")


def test_whole_number_labels_past_2_to_the_53_stay_float(tmp_path):
    # int64 would merge 1e19, 2e19 and 3e19 into one class (its overflow value).
    path = _csv(tmp_path, "a,y\n1,1e19\n2,2e19\n3,3e19\n4,5\n")
    _, y = load_data_file(path, target="y")
    assert y.dtype == np.float64 and list(y) == [1e19, 2e19, 3e19, 5.0]
    _, y = load_data_file(_csv(tmp_path, "a,y\n1,-7\n2,9007199254740991\n", "w.csv"), target="y")
    assert y.dtype == np.int64 and list(y) == [-7, 2**53 - 1]


@pytest.mark.parametrize("labels", [("nan", "yes", "no"), ("yes", "nan", "no"), ("1", "2", "NaN")])
def test_a_nan_label_is_refused_wherever_it_is(tmp_path, labels):
    text = "a,label\n" + "".join(f"{i},{v}\n" for i, v in enumerate(labels))
    line = 2 + [v.lower() for v in labels].index("nan")
    with pytest.raises(ValueError, match=f"line {line}, column 'label': .* is not finite"):
        load_data_file(_csv(tmp_path, text), target="label")


def test_a_column_of_string_labels_in_an_npz_is_taken_as_a_column_of_numbers_is(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, X=np.zeros((4, 2)), y=np.array([["b"], ["a"], ["b"], ["c"]]))
    _, y = load_data_file(path)
    assert list(y) == [1, 0, 1, 2]


# A: a missing-value spelling among numeric labels is a gap, not a class.

def _prices(tmp_path, gap="NA"):
    """200 rows of prices, one of them (line 19) ``gap``."""
    rows = [f"{i},{10 + 0.5 * i}" for i in range(200)]
    rows[17] = f"17,{gap}"
    return _csv(tmp_path, "x,price\n" + "\n".join(rows) + "\n", "price_na.csv")


def test_one_na_among_numeric_labels_is_refused_by_line(tmp_path):
    # It had made 200 prices a softmax of 195 classes.
    with pytest.raises(ValueError) as info:
        load_data_file(_prices(tmp_path), target="price")
    assert str(info.value) == (f"{tmp_path / 'price_na.csv'} line 19, column 'price': 'NA' is a "
                               f"missing label; drop or fill the row")


@pytest.mark.parametrize("gap", ["NA", "N/A", "n/a", "null", "NULL", "None", "#N/A", "#NA",
                                 "<NA>", "?", "-", "na", "1.#QNAN"])
def test_every_missing_value_spelling_is_refused(tmp_path, gap):
    with pytest.raises(ValueError, match=f"line 19, column 'price': '{re.escape(gap)}' is a "
                                         f"missing label"):
        load_data_file(_prices(tmp_path, gap), target="price")


@pytest.mark.parametrize("gap", ["NaN", "-NaN", "nan"])
def test_nan_spellings_stay_refused_as_not_finite(tmp_path, gap):
    with pytest.raises(ValueError, match=r"line 19, column 'price': .* is not finite"):
        load_data_file(_prices(tmp_path, gap), target="price")


def test_a_binary_column_with_two_gaps_names_both_lines(tmp_path):
    # It had become a 3-class model that could predict "NA".
    path = _csv(tmp_path, "x,churn\n1,0\n2,1\n3,NA\n4,1\n5,0\n6,NA\n")
    with pytest.raises(ValueError, match=r"line 4, column 'churn': 'NA' is a missing label; "
                                         r"drop or fill the 2 rows that lack one \(lines 4, 7\)$"):
        load_data_file(path, target="churn")


def test_text_labels_keep_na_as_a_class(tmp_path):
    path = _csv(tmp_path, "x,pet\n1,cat\n2,NA\n3,dog\n4,None\n5,3\n")
    _, y, classes = load_data_file(path, target="pet", return_classes=True)
    assert classes == ["3", "NA", "None", "cat", "dog"] and list(y) == [3, 1, 4, 2, 0]


def test_train_refuses_a_missing_label_on_the_command_line(tmp_path, capsys):
    err = cli_refusal(["train", "--data", _prices(tmp_path), "--target", "price"], capsys)
    assert err.strip().endswith("price_na.csv line 19, column 'price': 'NA' is a missing label; "
                                "drop or fill the row"), err


def test_task_regression_on_mixed_text_names_a_word_and_its_row(tmp_path, capsys):
    labels = np.array(["1.5", "2", "n.a.", "3", "cat", "4"])
    with pytest.raises(ValueError) as info:
        infer_task(labels, "regression")
    # The examples had been the numbers ['1.5', '2', '3'].
    assert str(info.value) == (
        "task 'regression' needs numeric targets; these labels are text (e.g. ['cat', 'n.a.']; "
        "the first that is not a number is in row 2, counting from 0): use a classification "
        "task")
    with pytest.raises(ValueError, match=r"these labels are text \(e\.g\. \['a', 'b'\]\): use"):
        infer_task(np.array(["a", "b"]), "regression")


# B: a row of empty cells is a sample with every value missing, not a blank line.

def test_predict_refuses_a_row_of_empty_cells(tmp_path, capsys):
    path = _csv(tmp_path, "a,b\n1,2\n,\n3,4\n")
    with pytest.raises(ValueError, match=r"d\.csv line 3: every cell is empty"):
        load_features_file(path)
    with pytest.raises(ValueError, match=r"h\.csv line 1: every cell is empty"):
        load_features_file(_csv(tmp_path, ",,\n1,2,3\n", "h.csv"), header=False)
    model = _model(tmp_path)
    err = cli_refusal(["predict", "--model", model, "--data", path, "--out", tmp_path / "p.csv"],
                   capsys)
    assert "d.csv line 3: every cell is empty (missing values?)" in err
    assert not (tmp_path / "p.csv").exists()


def test_a_one_column_file_skips_its_blank_lines(tmp_path):
    # An empty cell there reads as a blank line: no telling them apart.
    path = _csv(tmp_path, "a,y\n1,0\n\n2,1\n", "two.csv")
    np.testing.assert_array_equal(load_features_file(path, drop="y"), [[1], [2]])
    path = _csv(tmp_path, "a\n1\n\n  \n2\n")
    np.testing.assert_array_equal(load_features_file(path), [[1], [2]])


# C: features named by numbers: their header is a row of numbers.

def _model(tmp_path):
    """A model trained (one epoch) on features named '1', '2', '3'."""
    rows = [f"{i % 3},{i % 5},{i % 7},{'xy'[i % 2]}" for i in range(12)]
    _csv(tmp_path, "1,2,3,label\n" + "\n".join(rows) + "\n", "train.csv")
    model = tmp_path / "m.npz"
    assert main(["train", "--data", str(tmp_path / "train.csv"), "--target", "label",
                 "--epochs", "1", "--batch-size", "4", "--quiet", "--save", str(model)]) == 0
    return model


def test_a_header_of_numbers_naming_the_features_in_order_is_taken_with_a_warning(tmp_path):
    path = _csv(tmp_path, "1,2,3\n10,20,30\n11,21,31\n")
    with pytest.warns(UserWarning, match=r"first row \['1', '2', '3'\] is read as the header"):
        X = load_features_file(path, feature_names=["1", "2", "3"])
    np.testing.assert_array_equal(X, [[10, 20, 30], [11, 21, 31]])
    # With the label column (named by a number too) among them, or left out.
    path = _csv(tmp_path, "1,9,2,3\n10,0,20,30\n", "l.csv")
    with pytest.warns(UserWarning):
        np.testing.assert_array_equal(
            load_features_file(path, drop="9", feature_names=[1, 2, 3]), [[10, 20, 30]])
    with pytest.warns(UserWarning):
        X, labels = read_labelled_file(path, "9", feature_names=["1", "2", "3"])
    np.testing.assert_array_equal(X, [[10, 20, 30]])
    assert labels.tolist() == ["0"]


@pytest.mark.parametrize("first", ["1,2,4", "1,2,3,3", "1,2", "1.0,2,3", "3,1,2", "2,1,3"])
def test_a_row_of_numbers_that_is_not_the_features_in_order_stays_refused(tmp_path, first):
    # In another order the row could as well be a sample (features '0', '1'
    # and a row 1,0): taken as names, its columns would be read swapped.
    path = _csv(tmp_path, f"{first}\n5,6,7\n")
    with pytest.raises(ValueError, match=r"holds numbers, not column names \(a header of numbers "
                                         r"is taken where it names the model's features, in "
                                         r"their order\); "):
        load_features_file(path, feature_names=["1", "2", "3"])
    with pytest.raises(ValueError, match=r"holds numbers, not column names; give"):
        load_features_file(path)


def test_predict_takes_a_header_of_the_model_s_numeric_feature_names(tmp_path, capsys):
    model = _model(tmp_path)
    _csv(tmp_path, "1,2,3\n0,1,2\n1,4,6\n2,0,3\n", "in_order.csv")
    out = tmp_path / "p.csv"
    with pytest.warns(UserWarning, match="is read as the header"):
        assert main(["predict", "--model", str(model), "--data",
                     str(tmp_path / "in_order.csv"), "--out", str(out)]) == 0
    # Three rows, three predictions: the header is no sample.
    assert len(out.read_text().strip().splitlines()) == 1 + 3
    _csv(tmp_path, "0,1,2\n1,4,6\n2,0,3\n", "headerless.csv")
    assert main(["predict", "--model", str(model), "--data", str(tmp_path / "headerless.csv"),
                 "--no-header", "--out", str(out)]) == 0
    assert len(out.read_text().strip().splitlines()) == 1 + 3


def test_trailing_rows_of_empty_cells_are_no_samples(tmp_path):
    # What spreadsheets leave at a file's end; among the samples they are refused.
    path = _csv(tmp_path, "a,b,y\n1,2,0\n3,4,1\n,,\n,,\n", "trailing.csv")
    X, y = load_data_file(path, target="y")
    assert X.shape == (2, 2) and list(y) == [0, 1]
