"""Edges of the data-file loaders (``nnbackend.datafiles``) that a mutation
of them moved without another test noticing (``benchmarks/mutation_survivors.md``)."""

import numpy as np
import pytest

from nnbackend.datafiles import load_data_file, load_features_file


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


def test_rows_of_empty_cells_are_skipped(tmp_path):
    path = _csv(tmp_path, "a,b,y\n1,2,0\n,,\n3,4,1\n")
    X, y = load_data_file(path, target="y")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])


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
