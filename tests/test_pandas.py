"""pandas DataFrames and Series as inputs: column names become
``feature_names_in_``, and other columns at predict time are refused by name."""

import numpy as np
import pytest

import nnbackend as nb

pd = pytest.importorskip("pandas", reason="pandas is not installed (pip install pandas)")


def _frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["age", "income", "score"])
    y = pd.Series((X["age"] + X["score"] > 0).astype(int), name="label")
    return X, y


def _model():
    return nb.MLP([3, 6, 1], hidden_activation="tanh", output_activation="sigmoid", loss="bce",
                  seed=0)


def test_a_frame_trains_as_its_array_does_and_names_the_features():
    X, y = _frame()
    from_frame, from_array = _model(), _model()
    h1 = from_frame.fit(X, y, epochs=3, batch_size=8)
    h2 = from_array.fit(X.to_numpy(), y.to_numpy(), epochs=3, batch_size=8)
    assert h1.loss == h2.loss
    assert from_frame.feature_names_in_ == ["age", "income", "score"]
    assert from_array.feature_names_in_ is None
    np.testing.assert_array_equal(from_frame.predict(X), from_array.predict(X.to_numpy()))
    assert from_frame.evaluate(X, y) == from_array.evaluate(X.to_numpy(), y.to_numpy())


def test_validation_data_and_text_labels_may_be_pandas():
    X, y = _frame()
    labels = pd.Series(np.where(y == 1, "yes", "no"))
    model = _model()
    history = model.fit(X[:40], labels[:40], epochs=2, validation_data=(X[40:], labels[40:]))
    assert list(model.classes_) == ["no", "yes"] and len(history.val_loss) == 2


@pytest.mark.parametrize("change, match", [
    (lambda X: X[["income", "age", "score"]], r"in another order; select them as X\[\['age'"),
    (lambda X: X.rename(columns={"score": "rank"}), r"unseen \['rank'\], missing \['score'\]"),
    (lambda X: X[["age", "income"]], r"unseen \[\], missing \['score'\]"),
])
def test_other_columns_are_refused_by_name(change, match):
    X, y = _frame()
    model = _model()
    model.fit(X, y, epochs=1)
    with pytest.raises(ValueError, match=match):
        model.predict(change(X))
    with pytest.raises(ValueError, match=match):
        model.fit(change(X), y, epochs=1)
    model.predict(X.to_numpy())  # an array carries no names: taken by position


def test_the_names_survive_a_checkpoint(tmp_path):
    X, y = _frame()
    model = _model()
    model.fit(X, y, epochs=1)
    model.save(tmp_path / "m.npz")
    loaded = nb.MLP.load(tmp_path / "m.npz")
    assert loaded.feature_names_in_ == ["age", "income", "score"]
    with pytest.raises(ValueError, match="unseen"):
        loaded.predict(X.rename(columns={"age": "AGE"}))


def test_non_numeric_columns_are_refused_by_name():
    X, y = _frame()
    X["city"] = "Paris"
    with pytest.raises(TypeError, match=r"X must hold real numbers .*the columns 'city' "
                                        r"\((object|str|string)\) do not: encode text as numbers first"):
        nb.MLP([4, 3, 1], output_activation="sigmoid", loss="bce").fit(X, y, epochs=1)
    for edit, named in ((lambda f: f.assign(age=pd.date_range("2020", periods=len(f))),
                         r"'age' \(datetime64\[\w+\]\) do not$"),
                        (lambda f: f.astype(complex), r"'age' \(complex128\), 'income'.* do not$")):
        with pytest.raises(TypeError, match=named):  # no text, no advice about text
            _model().fit(edit(_frame()[0]), y, epochs=1)
    X, y = _frame()  # numbers in object columns are numbers, as scikit-learn reads them
    models = _model(), _model()
    models[0].fit(X, y, epochs=1)
    models[1].fit(X.astype(object), y, epochs=1)
    np.testing.assert_array_equal(models[1].predict(X), models[0].predict(X))
    flags = pd.Series(y > 0, dtype="boolean").mask(np.arange(len(y)) == 3)
    with pytest.raises(ValueError, match="y contains NaN or infinity"):
        _model().fit(X, flags, epochs=1)  # a nullable bool's NA is a missing value too
    X, y = _frame()
    X["income"] = X["income"].astype("Float64")
    X.loc[3, "income"] = pd.NA
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        _model().fit(X, y, epochs=1)  # a nullable column's NA is a missing value


def test_the_estimators_learn_and_check_the_names():
    pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    X, y = _frame()
    clf = nb.MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    with pytest.warns(Warning):  # not converged in 5 epochs
        clf.fit(X, y)
    assert list(clf.feature_names_in_) == ["age", "income", "score"]
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(X.rename(columns={"age": "AGE"}))
    reg = nb.MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    with pytest.warns(Warning):
        reg.fit(X, X["age"] * 2.0)
    assert reg.predict(X).shape == (60,)
