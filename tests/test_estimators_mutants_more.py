"""More edges of the estimators that a second pass of the mutation audit
(benchmarks/results/mutation-2026-12-07f) found untested: the early-stopping
split and score of a multiclass fit, a warm fit after
``set_params(device=...)`` with no backend named, and (pinned before by a
torch-only test alone) the refusal of a fit that diverges at once."""

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="the estimators need scikit-learn "
                                                "(the 'sklearn' extra)")
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import nnbackend as nb  # noqa: E402

_EXACT = dict(backend="numpy", dtype="float64")  # where the two agree to rounding


def _three_classes(n=120):
    return make_classification(n, 4, n_informative=3, n_redundant=0, n_classes=3,
                               random_state=0)


def _held_out_rows(monkeypatch, fit):
    """The rows ``fit()`` holds out for validation: ours are row numbers, and
    scikit-learn's MLPs split X itself (its rows are found again in X)."""
    import sklearn.neural_network._multilayer_perceptron as sk_mlp
    from nnbackend.estimators import _base

    rows = {}
    for name, module in (("ours", _base), ("theirs", sk_mlp)):
        def split(*arrays, _real=module.train_test_split, _name=name, **kwargs):
            out = _real(*arrays, **kwargs)
            rows[_name] = out[1]
            return out
        monkeypatch.setattr(module, "train_test_split", split)
    fit()
    return rows


def test_a_multiclass_early_stopping_split_is_scikit_learns_unstratified_one(monkeypatch):
    """scikit-learn stratifies the validation split of one label column alone (a
    binary problem's): a multiclass fit, one-hot over 3 outputs, holds out the
    plain random rows, and so does ours (not a stratified draw)."""
    from sklearn.neural_network import MLPClassifier as SkClassifier

    X, y = _three_classes()
    kw = dict(hidden_layer_sizes=(5,), early_stopping=True, max_iter=2, random_state=1)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            SkClassifier(**kw).fit(X, y)
            nb.MLPClassifier(**kw, **_EXACT).fit(X, y)

    rows = _held_out_rows(monkeypatch, fit)
    theirs = [int(np.flatnonzero((X == row).all(axis=1))[0]) for row in rows["theirs"]]
    assert len(rows["ours"]) == 12
    assert sorted(rows["ours"]) == sorted(theirs)


def test_a_multiclass_validation_score_is_the_accuracy_of_the_most_probable_class():
    """Each validation score of a softmax head is the accuracy of ``argmax``, as
    scikit-learn's (its ``score``): a row counts as right where its most probable
    class is its label, even where that class's probability is under 0.5."""
    from sklearn.neural_network import MLPClassifier as SkClassifier

    X, y = _three_classes()
    kw = dict(hidden_layer_sizes=(5,), early_stopping=True, max_iter=3, random_state=1,
              learning_rate_init=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = nb.MLPClassifier(**kw, **_EXACT).fit(X, y)
        theirs = SkClassifier(**kw).fit(X, y)
    assert len(ours.validation_scores_) == 3 and max(ours.validation_scores_) > 0.8
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-12)


def test_a_warm_fit_after_naming_a_device_alone_moves_where_a_fresh_fit_builds(monkeypatch):
    """``set_params(backend=None, device=...)`` before a warm fit: the network
    moves to the backend a fresh fit with those parameters builds it on (the
    default backend on that device), not kept on the backend of the last fit."""
    pytest.importorskip("array_api_strict", reason="needs array-api-strict")
    monkeypatch.delenv("NNBACKEND_BACKEND", raising=False)
    X, y = make_classification(60, 4, random_state=0)
    kw = dict(hidden_layer_sizes=(3,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = nb.MLPClassifier(**kw, warm_start=True, backend="strict").fit(X, y)
        clf.set_params(backend=None, device="cpu").fit(X, y)
        fresh = nb.MLPClassifier(**kw, device="cpu").fit(X, y)
    assert clf.model_.backend.name == fresh.model_.backend.name == "numpy"
    assert all(isinstance(a, np.ndarray) for a in clf._opt_state.mu + clf._opt_state.nu)



def test_a_fit_whose_first_epoch_diverges_raises_as_scikit_learns():
    """With no validated weights to fall back on (no early stopping), weights that
    turn non-finite are refused with scikit-learn's ValueError, not kept quietly."""
    from sklearn.datasets import make_regression
    from sklearn.neural_network import MLPRegressor as SkRegressor

    X, y = make_regression(40, 3, random_state=0)
    kw = dict(hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=10.0, max_iter=5,
              random_state=0)
    for reg in (SkRegressor(**kw), nb.MLPRegressor(**kw, **_EXACT)):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
                reg.fit(X, y * 1e6)
    assert not hasattr(reg, "model_")  # a call that raises leaves the estimator as it was
