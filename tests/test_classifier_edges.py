"""Edges of the class-label handling (``nnbackend.classifier``) that a
mutation of it moved without another test noticing
(``benchmarks/mutation_survivors.md``)."""

import numpy as np
import pytest

import nnbackend as nb


def _zeros(sizes, output="sigmoid", loss="bce"):
    params = [(np.zeros((a, b)), np.zeros(b)) for a, b in zip(sizes[:-1], sizes[1:])]
    return nb.MLP(sizes, output_activation=output, loss=loss, params=params)


def test_a_multilabel_output_of_exactly_one_half_is_not_a_label():
    # Zero weights put every sigmoid output at 0.5 exactly: "above 0.5" is false.
    model = _zeros([3, 4, 2])
    assert float(np.asarray(model.predict(np.ones((2, 3))))[0, 0]) == 0.5
    np.testing.assert_array_equal(model.predict_labels(np.ones((2, 3))), np.zeros((2, 2)))


def test_a_head_that_is_no_classifier_is_described_by_its_output_units():
    model = _zeros([3, 5, 2], output="identity", loss="mse")
    with pytest.raises(ValueError, match=r"output is 'identity' with 2 unit\(s\)"):
        model.predict_labels(np.ones((1, 3)))


def test_classes_may_be_an_object_array_of_text_and_become_str():
    model = _zeros([3, 4, 1])
    model.classes_ = np.array(["no", "yes"], dtype=object)
    assert model.classes_.dtype.kind == "U"
    model.classes_ = [b"no", b"yes"]  # bytes are decoded
    assert list(model.classes_) == ["no", "yes"]


def test_classes_must_be_one_dimensional():
    model = _zeros([3, 4, 1])
    with pytest.raises(ValueError, match="classes_ must be a 1-D list of labels"):
        model.classes_ = np.array([[0, 1]])


def test_too_many_classes_are_listed_ten_at_most():
    model = _zeros([3, 4, 3], output="softmax", loss="cross_entropy")
    labels = [f"c{i:02d}" for i in range(12)]
    with pytest.raises(ValueError, match=r"y holds 12 classes \['c00', .*'c09'\], but") as info:
        model.fit(np.zeros((12, 3)), labels, epochs=1)
    assert "c10" not in str(info.value)
