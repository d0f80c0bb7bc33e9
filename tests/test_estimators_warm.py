"""The estimators across calls (warm_start, partial_fit) and at their edges,
against scikit-learn's own MLPs where it defines the behaviour."""

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="the estimators need scikit-learn "
                                                "(the 'sklearn' extra)")
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkRegressor  # noqa: E402

import nnbackend as nb  # noqa: E402

_EXACT = dict(backend="numpy", dtype="float64")  # where the two agree to rounding


def _both(make_sk, make_nb, **kw):
    return make_sk(**kw), make_nb(**kw, **_EXACT)


def test_n_iter_counts_each_calls_epochs_and_each_warm_fit_warns():
    X, y = make_classification(200, 5, random_state=0)
    for clf in _both(SkClassifier, nb.MLPClassifier, max_iter=5, warm_start=True,
                     random_state=0):
        for _ in range(3):
            with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
                clf.fit(X, y)
            assert clf.n_iter_ == 5
        assert clf.t_ == 3000 and len(clf.loss_curve_) == 15
        clf.partial_fit(X, y)
        assert clf.n_iter_ == 1 and clf.t_ == 3200


_INVSCALING = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate="invscaling",
                   learning_rate_init=0.5, power_t=0.5, momentum=0.0, shuffle=False, alpha=0.0,
                   batch_size=50, random_state=0)


def _two_warm_fits(X, y, record, **params):
    """``record`` of scikit-learn's and nnbackend's estimators after two warm fits."""
    out = []
    for clf in _both(SkClassifier, nb.MLPClassifier, warm_start=True, **params):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
            clf.fit(X, y)
        out.append(getattr(clf, record))
    return out


def test_invscaling_goes_on_from_the_samples_seen_after_a_warm_start():
    # scikit-learn's warm fit makes a new optimizer: its first epoch runs at
    # learning_rate_init, the next ones at the rate of every sample seen (t_).
    X, y = make_classification(300, 5, random_state=0)
    want, got = _two_warm_fits(X, y, "loss_curve_", max_iter=3, **_INVSCALING)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_invscaling_in_partial_fit_counts_samples_not_this_calls_steps():
    X, y = make_classification(300, 5, random_state=0)
    curves = []
    for clf in _both(SkClassifier, nb.MLPClassifier, **_INVSCALING):
        for n in (300, 60, 300, 300):
            clf.partial_fit(X[:n], y[:n], classes=[0, 1])
        curves.append(clf.loss_curve_)
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-10)


@pytest.mark.parametrize("before, after", [
    ({"solver": "adam"}, {"solver": "sgd"}),
    ({"solver": "sgd", "momentum": 0.0}, {"momentum": 0.9}),
    ({"solver": "sgd"}, {"learning_rate": "adaptive"}),
    ({"solver": "sgd", "learning_rate": "invscaling"}, {"learning_rate": "constant"}),
])
def test_another_optimizer_between_partial_fit_calls_starts_its_own_state(before, after):
    X, y = make_classification(100, 4, random_state=0)
    clf = nb.MLPClassifier(random_state=0, **before)
    clf.partial_fit(X, y, classes=[0, 1])
    clf.set_params(**after)
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 1 and clf.t_ == 200 and np.isfinite(clf.loss_)


def test_partial_fit_of_multilabel_targets_with_classes():
    X, _ = make_classification(60, 4, random_state=0)
    Y = (np.random.default_rng(0).random((60, 3)) > 0.5).astype(int)
    got = nb.MLPClassifier(random_state=0).partial_fit(X, Y, classes=[0, 1, 2])
    want = SkClassifier(random_state=0).partial_fit(X, Y, classes=[0, 1, 2])
    np.testing.assert_array_equal(got.classes_, want.classes_)
    assert got.predict(X).shape == (60, 3)


def test_a_warm_start_trains_with_the_activation_asked_for_now():
    X, y = make_classification(100, 4, random_state=0)
    scores = []
    for clf in _both(SkClassifier, nb.MLPClassifier, max_iter=3, warm_start=True,
                     random_state=0, shuffle=False, solver="sgd"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
            clf.set_params(activation="tanh")
            clf.fit(X, y)
        scores.append(clf.predict_proba(X))
    assert scores[1].shape == scores[0].shape
    np.testing.assert_allclose(scores[1], scores[0], rtol=1e-8)


def test_a_failed_call_leaves_the_estimator_as_it_was():
    X, y = make_classification(100, 4, random_state=0)
    clf = nb.MLPClassifier(max_iter=3, random_state=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    coefs, n_iter, t = clf.coefs_, clf.n_iter_, clf.t_
    with pytest.raises(ValueError):
        clf.partial_fit(X, np.full(100, 7))  # a class it never saw
    assert (clf.n_iter_, clf.t_) == (n_iter, t)
    for a, b in zip(clf.coefs_, coefs):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_keeps_the_best_weights_of_a_run_that_diverges():
    X, y = make_regression(300, 5, noise=5, random_state=0)
    kw = dict(hidden_layer_sizes=(20,), solver="sgd", learning_rate_init=0.02, momentum=0.9,
              max_iter=30, shuffle=False, early_stopping=True, random_state=0)
    want = SkRegressor(**kw).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="non-finite parameter weights at iteration"):
        got = nb.MLPRegressor(**kw, **_EXACT).fit(X, y)
    # (The two differ by ~1e-8 here: the penalty's divisor, documented.)
    assert got.best_validation_score_ == pytest.approx(want.best_validation_score_, rel=1e-6)
    assert got.score(X, y) == pytest.approx(want.score(X, y), rel=1e-6)


def test_ctrl_c_ends_the_fit_with_the_epochs_done(monkeypatch):
    from nnbackend.estimators import _base

    X, y = make_classification(300, 5, random_state=0)
    real = _base._BaseMLP._improvement

    def interrupting(self, *args):
        if self.n_iter_ == 6:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(_base._BaseMLP, "_improvement", interrupting)
    clf = nb.MLPClassifier(max_iter=50, random_state=0, shuffle=False)
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        clf.fit(X, y)
    monkeypatch.setattr(_base._BaseMLP, "_improvement", real)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        six = nb.MLPClassifier(max_iter=6, random_state=0, shuffle=False).fit(X, y)
    assert clf.n_iter_ == 6 and len(clf.loss_curve_) == 6
    for a, b in zip(clf.coefs_, six.coefs_):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("params", [{"n_iter_no_change": np.inf}, {"momentum": 1.0},
                                    {"validation_fraction": 0.0}])
def test_values_scikit_learn_takes_are_taken(params):
    X, y = make_classification(60, 4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        nb.MLPClassifier(max_iter=2, random_state=0, solver="sgd", **params).fit(X, y)


@pytest.mark.parametrize("params", [{"shuffle": "no"}, {"early_stopping": "yes"},
                                    {"alpha": "x"}, {"momentum": 1.5}])
def test_values_scikit_learn_refuses_are_refused_as_it_refuses_them(params):
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = make_classification(60, 4, random_state=0)
    with pytest.raises(InvalidParameterError, match=f"The '{next(iter(params))}' parameter"):
        nb.MLPClassifier(**params).fit(X, y)
    with pytest.raises(InvalidParameterError):
        SkClassifier(**params).fit(X, y)


def test_a_named_backend_declares_no_array_api_support():
    # It takes its own arrays alone, so scikit-learn's array API checks must not run.
    assert nb.MLPRegressor().__sklearn_tags__().array_api_support
    assert not nb.MLPRegressor(backend="numpy").__sklearn_tags__().array_api_support


DISPATCH_SCRIPT = """
import warnings
import numpy as np, sklearn, torch, array_api_strict as xps
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
import nnbackend as nb
warnings.simplefilter("ignore", ConvergenceWarning)
X, y = make_classification(100, 4, random_state=0)
with sklearn.config_context(array_api_dispatch=True):
    # partial_fit on another namespace's data: the network and its Adam state follow it.
    clf = nb.MLPClassifier(max_iter=5, random_state=0, solver="adam").fit(X, y)
    clf.partial_fit(torch.asarray(X), torch.asarray(y))
    assert isinstance(clf.predict(torch.asarray(X[:3])), torch.Tensor)
    # classes given as an array on a device that NumPy cannot read.
    device = xps.Device("device1")
    Xs, ys = xps.asarray(X, device=device), xps.asarray(y, device=device)
    clf = nb.MLPClassifier(random_state=0).partial_fit(Xs, ys, classes=xps.unique_values(ys))
    assert list(clf.classes_) == [0, 1], clf.classes_
print("ok")
"""


def test_partial_fit_under_dispatch_follows_its_data_and_reads_device_classes():
    import os
    import subprocess
    import sys

    from conftest import child_pythonpath

    pytest.importorskip("torch", reason="needs torch (the 'torch' extra)")
    pytest.importorskip("array_api_strict", reason="needs array-api-strict")
    env = dict(os.environ, SCIPY_ARRAY_API="1", PYTHONPATH=child_pythonpath())
    out = subprocess.run([sys.executable, "-c", DISPATCH_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stdout + out.stderr


def test_coefs_and_intercepts_can_be_assigned():
    X, y = make_classification(100, 4, random_state=0)
    probas = []
    for clf in _both(SkClassifier, nb.MLPClassifier, max_iter=2, random_state=0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        clf.coefs_ = [np.full_like(W, 0.1) for W in clf.coefs_]
        clf.intercepts_ = [np.zeros_like(b) for b in clf.intercepts_]
        probas.append(clf.predict_proba(X[:5]))
    np.testing.assert_allclose(probas[1], probas[0], rtol=1e-12)
    clf = nb.MLPClassifier(backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.set_params(max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=r"coefs_ must be 2 arrays of shapes \[\(4, 100\)"):
        clf.coefs_ = [np.zeros((3, 3))]
    clf.coefs_[0][0, 0] = 5.0  # on NumPy the network's own array, as scikit-learn's
    assert clf.coefs_[0][0, 0] == 5.0
    with pytest.raises(ValueError, match=r"coefs_ holds NaN or infinity \(in the network's "
                                         r"float32\)"):
        clf.coefs_ = [np.full((4, 100), 1e300), np.zeros((100, 1))]
    mine = [np.zeros((4, 100)), np.zeros((100, 1))]
    clf.coefs_ = mine
    mine[0][0, 0] = 7.0  # the network took a copy
    assert clf.coefs_[0][0, 0] == 0.0


def test_partial_fit_with_invscaling_compiles_once_on_jax():
    # The samples seen before are the schedule's count (a value the compiled
    # epoch takes at run time), not a constant baked into a new compilation.
    pytest.importorskip("jax", reason="needs jax (the 'jax' extra)")
    from nnbackend.backends.jax import scan

    X, y = make_classification(200, 5, random_state=0)
    scan._COMPILED.clear()
    clf = nb.MLPClassifier(backend="jax", **_INVSCALING)
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1])
    assert clf.fit_executor_.startswith("jax-scan")
    (compiled,) = scan._COMPILED.values()
    assert compiled._cache_size() == 1


def test_a_warm_fit_with_early_stopping_draws_its_split_as_scikit_learn():
    X, y = make_classification(200, 5, random_state=0)
    want, got = _two_warm_fits(X, y, "validation_scores_", max_iter=4, early_stopping=True,
                               random_state=0, shuffle=False, solver="sgd", alpha=0.0)
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_a_call_that_raises_takes_back_its_epochs_records(monkeypatch):
    from nnbackend.estimators import _base

    X, y = make_classification(100, 4, random_state=0)
    clf = nb.MLPRegressor(max_iter=3, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y.astype(float))
    curve, shuffles = list(clf.loss_curve_), clf._shuffle_rng.bit_generator.state
    real = _base._BaseMLP._improvement

    def failing(self, *args):
        if self.n_iter_ == 2:
            raise RuntimeError("a failure in the third epoch's bookkeeping")
        return real(self, *args)

    monkeypatch.setattr(_base._BaseMLP, "_improvement", failing)
    with pytest.raises(RuntimeError, match="third epoch"):
        clf.fit(X, y.astype(float))
    assert clf.loss_curve_ == curve and clf._shuffle_rng.bit_generator.state == shuffles


def test_a_first_partial_fit_that_raises_leaves_no_classes():
    X, y = make_classification(60, 4, random_state=0)
    clf = nb.MLPClassifier(random_state=0)
    with pytest.raises(ValueError):
        clf.partial_fit(X[:, :2].tolist() + [[0.0]], np.append(y, 0), classes=[0, 1])
    assert not hasattr(clf, "classes_")
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[0, 1])


def test_multilabel_classes_must_be_the_labels():
    X, _ = make_classification(60, 4, random_state=0)
    Y = (np.random.default_rng(0).random((60, 3)) > 0.5).astype(int)
    with pytest.raises(ValueError, match="is not the same as"):
        nb.MLPClassifier(random_state=0).partial_fit(X, Y, classes=["a", "b", "c"])


def test_a_diverged_or_interrupted_fit_leaves_a_state_that_pickles(monkeypatch):
    # A compiled epoch (jax) consumes the state it is given: the state from
    # before the epoch that stopped the fit is gone, and must not be kept.
    import pickle

    X, y = make_regression(300, 5, noise=5, random_state=0)
    kw = dict(hidden_layer_sizes=(20,), solver="sgd", learning_rate_init=0.02, momentum=0.9,
              max_iter=30, shuffle=False, early_stopping=True, random_state=0)
    with pytest.warns(ConvergenceWarning, match="non-finite"):
        reg = nb.MLPRegressor(**kw, **_EXACT).fit(X, y)
    assert reg._opt_state is None
    pickle.loads(pickle.dumps(reg)).partial_fit  # noqa: B018 (it unpickles)


@pytest.mark.parametrize("params", [{"power_t": np.inf, "solver": "sgd"}, {"tol": np.inf},
                                    {"verbose": -1}, {"activation": ["relu"]},
                                    {"random_state": -1}, {"random_state": "x"}])
def test_more_values_scikit_learn_refuses(params):
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = make_classification(60, 4, random_state=0)
    with pytest.raises(InvalidParameterError, match=f"The '{next(iter(params))}' parameter"):
        nb.MLPClassifier(max_iter=1, **params).fit(X, y)
    with pytest.raises(InvalidParameterError):
        SkClassifier(max_iter=1, **params).fit(X, y)


def test_a_call_that_raises_keeps_the_callers_random_state_object():
    X, y = make_classification(60, 4, random_state=0)
    stream = np.random.RandomState(0)
    clf = nb.MLPClassifier(random_state=stream)
    with pytest.raises(ValueError):
        clf.fit(X, np.full(60, np.nan))
    assert clf.random_state is stream and clf.get_params()["random_state"] is stream


def test_a_rate_adaptive_divided_stays_divided_for_later_partial_fit_calls():
    X, y = make_regression(80, 3, random_state=0)
    y = y / 100
    kw = dict(hidden_layer_sizes=(4,), solver="sgd", learning_rate="adaptive",
              learning_rate_init=0.01, n_iter_no_change=1, tol=1e6, shuffle=False,
              batch_size=20, alpha=0.0, random_state=0)
    curves = []
    for reg in _both(SkRegressor, nb.MLPRegressor, **kw):
        for _ in range(5):  # never better by tol: the rate is divided on the 2nd and 4th calls
            reg.partial_fit(X, y)
        reg.set_params(learning_rate="constant")
        reg.partial_fit(X, y)  # scikit-learn's first optimizer, with its divided rate, goes on
        curves.append(reg.loss_curve_)
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-10)
    fresh = nb.MLPRegressor(**{**kw, "learning_rate": "constant"}, **_EXACT)
    for _ in range(6):
        fresh.partial_fit(X, y)
    assert not np.allclose(fresh.loss_curve_[2:], curves[1][2:], rtol=1e-6)



@pytest.mark.parametrize("incremental", [False, True])
def test_set_params_of_backend_and_dtype_moves_a_warm_fit_with_its_state(incremental):
    # A warm start or partial_fit reads backend/device/dtype as a fresh fit does:
    # the network and its Adam moments move there and training goes on from them,
    # not silently on the backend and dtype of the first fit.
    pytest.importorskip("array_api_strict", reason="needs array-api-strict")
    X, y = make_classification(120, 4, random_state=0)

    def model(**kw):
        return nb.MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, shuffle=False,
                                warm_start=not incremental, random_state=0, **kw)

    def step(clf):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return clf.partial_fit(X, y, classes=[0, 1]) if incremental else clf.fit(X, y)

    def moments(clf):
        return clf._opt_state.mu + clf._opt_state.nu

    moved, stays = model(backend="numpy", dtype="float64"), model(backend="numpy", dtype="float64")
    step(moved), step(stays)
    moved.set_params(backend="strict")
    step(moved), step(stays)
    assert moved.model_.backend.name == "strict"
    assert all(type(a).__module__.startswith("array_api_strict") for a in moments(moved))
    for got, want in zip(moved.coefs_ + moved.intercepts_, stays.coefs_ + stays.intercepts_):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)

    widened = model(backend="numpy", dtype="float32")
    step(widened)
    widened.set_params(dtype="float64")
    step(widened)
    assert widened.model_.dtype == "float64"
    assert all(W.dtype == np.float64 for W in widened.coefs_ + widened.intercepts_)
    assert all(a.dtype == np.float64 for a in moments(widened))


def test_a_bfloat16_tensor_is_read_without_dispatch():
    # scikit-learn's checks read X with np.asarray, which refuses bfloat16
    # ("Got unsupported ScalarType BFloat16"); it goes to the host through its
    # backend instead, as float32, for fit and predict alike.
    torch = pytest.importorskip("torch", reason="needs torch")
    X, y = make_classification(80, 4, random_state=0)
    Xb = torch.asarray(X, dtype=torch.bfloat16)
    as_float32 = Xb.float().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = nb.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(Xb, y)
        ref = nb.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3,
                               random_state=0).fit(as_float32, y)
    np.testing.assert_array_equal(clf.predict_proba(Xb), ref.predict_proba(as_float32))
    assert clf.loss_curve_ == ref.loss_curve_
