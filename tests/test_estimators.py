"""nnbackend.MLPClassifier / MLPRegressor: scikit-learn's own checks, composition
(pipelines, grid search, clone, pickle), the L2 penalty and the learning-rate
schedules, and arrays of other namespaces in and out.

Small data and few epochs throughout: CI has two cores.
"""

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed (the sklearn extra)")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_iris, make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import nnbackend as nb  # noqa: E402
from nnbackend import optim  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Hyperparameters for scikit-learn's checks: small and quick, and enough to
# pass their accuracy (> 0.83) and R² (> 0.5) floors.
CHECKED = dict(hidden_layer_sizes=(32,), max_iter=100, learning_rate_init=0.01, random_state=0)


# No expected failures: every check that runs here passes. Those skipped say
# why (pandas or CuPy not installed; the array-API checks need
# SCIPY_ARRAY_API=1 before SciPy is imported, see test_array_api_checks).
@parametrize_with_checks([nb.MLPClassifier(**CHECKED), nb.MLPRegressor(**CHECKED)])
def test_sklearn_checks(estimator, check):
    check(estimator)


ARRAY_API_SCRIPT = """
import warnings
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import check_estimator
import nnbackend as nb
warnings.simplefilter("ignore", ConvergenceWarning)
kw = dict(hidden_layer_sizes=(32,), max_iter=100, learning_rate_init=0.01, random_state=0)
bad = []
ran = 0
for est in (nb.MLPClassifier(**kw), nb.MLPRegressor(**kw)):
    for r in check_estimator(est, on_fail=None):
        if "array_api" not in r["check_name"]:
            continue
        ran += r["status"] == "passed"
        if r["status"] == "failed":
            bad.append((type(est).__name__, r["check_name"], repr(r["exception"])))
print("passed", ran)
assert not bad, bad
"""


@pytest.mark.slow
def test_array_api_checks():
    """scikit-learn's array-API checks (array-api-strict on two devices, torch on
    the CPU) run in a fresh interpreter with SCIPY_ARRAY_API=1, which SciPy reads
    when first imported."""
    pytest.importorskip("array_api_strict")
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    out = subprocess.run([sys.executable, "-c", ARRAY_API_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert int(out.stdout.split("passed")[-1]) > 0


# -- hyperparameters and fitted attributes -----------------------------------------

def test_defaults_are_scikit_learns():
    from sklearn.neural_network import MLPClassifier as SkClassifier

    ours, theirs = nb.MLPClassifier().get_params(), SkClassifier().get_params()
    shared = set(theirs) - {"max_fun"}  # lbfgs's, which nnbackend does not offer
    assert {k: ours[k] for k in shared} == {k: theirs[k] for k in shared}
    assert {k: ours[k] for k in ("backend", "device", "dtype", "mode", "precision")} == {
        "backend": None, "device": None, "dtype": "float32", "mode": "minibatch",
        "precision": None}
    from sklearn.neural_network import MLPRegressor as SkRegressor

    ours, theirs = nb.MLPRegressor().get_params(), SkRegressor().get_params()
    shared = set(theirs) - {"max_fun"}
    assert {k: ours[k] for k in shared} == {k: theirs[k] for k in shared}
    assert ours["loss"] == "squared_error"
    with pytest.raises(ValueError, match="The 'loss' parameter must be 'squared_error'"):
        nb.MLPRegressor(loss="poisson").fit([[0.0], [1.0]], [0.0, 1.0])


def test_fitted_attributes_and_heads():
    X, y = load_iris(return_X_y=True)
    clf = nb.MLPClassifier(hidden_layer_sizes=(10, 5), max_iter=15, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(4, 10), (10, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(10,), (5,), (3,)]
    assert all(isinstance(c, np.ndarray) for c in clf.coefs_ + clf.intercepts_)
    assert clf.out_activation_ == "softmax" and clf.model_.loss == "cross_entropy"
    assert clf.n_iter_ == 15 == len(clf.loss_curve_) and clf.t_ == 15 * 150
    assert clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert clf.n_features_in_ == 4
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba), rtol=1e-6)
    assert set(clf.predict(X)) <= set(clf.classes_)

    binary = nb.MLPClassifier(max_iter=5, random_state=0).fit(X, np.where(y == 0, "a", "b"))
    assert binary.out_activation_ == "logistic" and binary.model_.layer_sizes[-1] == 1
    assert binary.predict_proba(X).shape == (150, 2) and set(binary.predict(X)) <= {"a", "b"}

    multilabel = np.stack([y == 0, y == 1], axis=1).astype(int)
    ml = nb.MLPClassifier(max_iter=5, random_state=0).fit(X, multilabel)
    assert ml.out_activation_ == "logistic" and ml.predict(X).shape == (150, 2)

    reg = nb.MLPRegressor(max_iter=5, random_state=0).fit(X, np.stack([y, 2 * y], axis=1))
    assert reg.out_activation_ == "identity" and reg.model_.loss == "mse"
    assert reg.predict(X).shape == (150, 2)


def test_loss_matches_scikit_learn_at_the_start():
    """The same initial weights (drawn as scikit-learn draws them) and one full
    batch: the first epoch's loss_, data loss plus alpha/2·‖W‖²/n, is scikit-learn's."""
    from sklearn.neural_network import MLPRegressor as SkRegressor

    X, y = make_regression(60, 4, n_targets=2, random_state=0)
    y = y / 100
    kw = dict(hidden_layer_sizes=(7,), alpha=0.5, batch_size=60, max_iter=1, random_state=3,
              solver="sgd", momentum=0.0, shuffle=False)
    ours = nb.MLPRegressor(**kw, dtype="float64").fit(X, y)
    theirs = SkRegressor(**kw).fit(X, y)
    # scikit-learn's loss_ uses the weights before the step and ours those
    # after it; one small step apart.
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=0.05)
    # Same weights after one step of the same gradient (penalty included).
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_early_stopping_and_validation_scores():
    X, y = make_classification(200, 6, random_state=0)
    clf = nb.MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, n_iter_no_change=3,
                           max_iter=60, random_state=0, learning_rate_init=0.05).fit(X, y)
    assert clf.best_loss_ is None and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.n_iter_ < 60  # stopped early
    reg = nb.MLPRegressor(hidden_layer_sizes=(8,), early_stopping=True, max_iter=20,
                          random_state=0).fit(X, y.astype(float))
    assert all(s <= 1 for s in reg.validation_scores_)


def test_partial_fit_and_warm_start():
    X, y = load_iris(return_X_y=True)
    clf = nb.MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:50], y[:50], classes=[0, 1, 2])
    clf.partial_fit(X[50:], y[50:])
    # n_iter_ counts this call's epochs, t_ every call's samples (scikit-learn >= 1.3).
    assert clf.n_iter_ == 1 and clf.t_ == 150 and list(clf.classes_) == [0, 1, 2]
    warm = nb.MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, warm_start=True, random_state=0)
    first = warm.fit(X, y).coefs_[0].copy()
    warm.fit(X, y)
    assert warm.n_iter_ == 3 and warm.t_ == 900 and len(warm.loss_curve_) == 6
    assert not np.array_equal(first, warm.coefs_[0])


def test_lbfgs_and_bad_values_refused_by_name():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="solver"):
        nb.MLPClassifier(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="learning_rate"):
        nb.MLPClassifier(learning_rate="cosine").fit(X, y)


# -- L2 penalty and schedules in the library -----------------------------------------

def test_l2_penalty_adds_coef_times_weights():
    params = [np.ones((2, 2)), np.ones(2)]
    grads = [np.zeros((2, 2)), np.zeros(2)]
    opt = optim.l2_penalty(optim.sgd(0.5), 0.1, [True, False])
    new, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(new[0], 1 - 0.5 * 0.1)
    np.testing.assert_allclose(new[1], 1)  # biases not penalised
    assert opt.name is None  # the fused executors decline it
    assert optim.l2_penalty(optim.sgd(0.5), 0.0) .name == "sgd"  # nothing to add


def test_invscaling_is_scikit_learns():
    """lr_t = lr / (t + 1) ** power_t, t the samples seen before the epoch."""
    factor = optim.inverse_scaling(0.5, n_samples=10, steps_per_epoch=2)
    assert [factor(c) for c in (0, 1, 2, 3, 4)] == pytest.approx(
        [1, 1, 11 ** -0.5, 11 ** -0.5, 21 ** -0.5])


def test_scheduled_momentum_keeps_lr_inside_the_velocity():
    """Scaling the gradients gives scikit-learn's v ← μv − lr_t·g."""
    g = [np.ones(1)]
    opt = optim.scheduled(optim.momentum(1.0, 0.9), lambda c: [1.0, 0.1][c])
    p, s = opt.update(g, opt.init([np.zeros(1)]), [np.zeros(1)])
    p, s = opt.update(g, s, p)
    v_sk = -1.0
    v_sk = 0.9 * v_sk - 0.1
    np.testing.assert_allclose(p, -1.0 + v_sk)


def test_adaptive_divides_the_learning_rate_by_five():
    X, y = make_regression(80, 3, random_state=0)
    reg = nb.MLPRegressor(hidden_layer_sizes=(4,), solver="sgd", learning_rate="adaptive",
                          learning_rate_init=1e-3, n_iter_no_change=1, tol=1e6, max_iter=30,
                          random_state=0).fit(X, y / 100)
    # Never improving by tol: every second epoch divides by 5 until lr <= 1e-6.
    assert reg._lr_scale < 1e-3 and reg.n_iter_ < 30


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
def test_schedules_train(schedule):
    X, y = load_iris(return_X_y=True)
    clf = nb.MLPClassifier(hidden_layer_sizes=(16,), solver="sgd", learning_rate=schedule,
                           learning_rate_init=0.1, max_iter=30, random_state=0)
    clf.fit(StandardScaler().fit_transform(X), y)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


# -- composition --------------------------------------------------------------------

def test_pipeline_grid_search_cross_val_and_clone():
    X, y = make_classification(150, 5, random_state=1)
    pipe = make_pipeline(StandardScaler(), nb.MLPClassifier(max_iter=30, random_state=0))
    assert pipe.fit(X, y).score(X, y) > 0.8
    grid = GridSearchCV(nb.MLPClassifier(max_iter=10, random_state=0),
                        {"alpha": [1e-4, 1e-1], "hidden_layer_sizes": [(4,), (8,)]}, cv=2)
    grid.fit(X, y)
    assert set(grid.best_params_) == {"alpha", "hidden_layer_sizes"}
    scores = cross_val_score(nb.MLPRegressor(max_iter=10, random_state=0), X, y.astype(float), cv=2)
    assert scores.shape == (2,)
    est = nb.MLPClassifier(alpha=0.3, backend="numpy")
    twin = clone(est)
    assert twin.get_params() == est.get_params() and twin is not est


def test_pickle_joblib_and_checkpoint_round_trips(tmp_path):
    import joblib

    X, y = load_iris(return_X_y=True)
    clf = nb.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    expected = clf.predict_proba(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), expected)
    joblib.dump(clf, tmp_path / "clf.joblib")
    again = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_array_equal(again.predict_proba(X), expected)
    again.partial_fit(X, y)  # the optimizer state came along
    clf.save(tmp_path / "clf.npz")
    model = nb.MLP.load(tmp_path / "clf.npz")
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-6)


@pytest.mark.parametrize("labels", [np.array(["no", "yes"]), np.array([3, 5, 7])])
def test_a_saved_estimator_keeps_its_labels_and_columns(tmp_path, labels):
    pd = pytest.importorskip("pandas")
    X, y = make_classification(n_samples=60, n_features=3, n_informative=3, n_redundant=0,
                               n_classes=labels.shape[0], n_clusters_per_class=1,
                               random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    clf = nb.MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
    clf.fit(frame, labels[y])
    clf.save(tmp_path / "clf.npz")
    model = nb.MLP.load(tmp_path / "clf.npz")
    assert model.classes_.tolist() == labels.tolist()
    assert model.feature_names_in_ == ["a", "b", "c"]
    np.testing.assert_array_equal(model.predict_labels(frame), clf.predict(frame))
    # The estimator's own network still takes the ids it hands it.
    assert clf.model_.classes_ is None and clf.model_.feature_names_in_ is None
    clf.partial_fit(frame, labels[y])


def test_a_pickle_from_a_device_this_machine_lacks_loads_on_the_default_one():
    X, y = load_iris(return_X_y=True)
    clf = nb.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    state = clf.__getstate__()
    assert state["_pickled_model"]["device"] == "cpu"
    state["_pickled_model"]["device"] = "cuda:7"  # fitted on a GPU elsewhere, say
    again = nb.MLPClassifier.__new__(nb.MLPClassifier)
    with pytest.warns(RuntimeWarning, match=r"fitted on numpy device 'cuda:7', which is not "
                                            r"here .*; it is loaded on cpu"):
        again.__setstate__(state)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    # A backend this machine lacks altogether: its own error, no word of devices.
    state["_pickled_model"] = {**state["_pickled_model"], "backend": "cupy", "device": "cuda:0"}
    try:
        nb.get_backend("cupy")
    except nb.BackendUnavailableError:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(nb.BackendUnavailableError, match="cupy"):
                nb.MLPClassifier.__new__(nb.MLPClassifier).__setstate__(dict(state))
    state["_pickled_model"] = {**state["_pickled_model"], "backend": "numpy"}
    # Asked for a device (the estimator's own parameter), it is that or an error.
    state["_pickled_model"]["device"] = "cpu"
    state["device"] = "cuda:7"
    with pytest.raises(ValueError, match="cuda:7"):
        nb.MLPClassifier.__new__(nb.MLPClassifier).__setstate__(state)


# -- other namespaces ----------------------------------------------------------------

DISPATCH_SCRIPT = """
import numpy as np, sklearn, torch, array_api_strict as xps
from sklearn.datasets import load_iris
import nnbackend as nb
X, y = load_iris(return_X_y=True)
Xt, yt = torch.asarray(X), torch.asarray(y.astype(float))
kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
with sklearn.config_context(array_api_dispatch=True):
    reg = nb.MLPRegressor(**kw).fit(Xt, yt)
    assert reg.model_.backend.name == "torch"
    assert isinstance(reg.predict(Xt), torch.Tensor)
    clf = nb.MLPClassifier(**kw).fit(Xt, y)
    assert isinstance(clf.predict_proba(Xt), torch.Tensor)
    assert isinstance(clf.predict_log_proba(Xt), torch.Tensor)
    assert isinstance(clf.predict(Xt), torch.Tensor)
    assert 0 <= clf.score(Xt, yt) <= 1
    dev = xps.Device("device1")
    Xs = xps.asarray(X, device=dev)
    clf = nb.MLPClassifier(**kw).fit(Xs, y)
    out = clf.predict_proba(Xs)
    assert clf.model_.backend.name == "strict" and out.device == dev, out.device
    try:
        clf.predict(Xt)
    except ValueError as e:
        assert "same namespace" in str(e)
    else:
        raise SystemExit("torch X for a strict fit not refused")
print("ok")
"""


@pytest.mark.slow
def test_arrays_stay_in_their_namespace_under_dispatch():
    """Under array_api_dispatch, torch (CPU) and array-api-strict (on its simulated
    device1) arrays in give the same kind out, and the network ran on that backend.
    A fresh interpreter: scikit-learn needs SCIPY_ARRAY_API=1 before SciPy loads."""
    pytest.importorskip("torch")
    pytest.importorskip("array_api_strict")
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    out = subprocess.run([sys.executable, "-c", DISPATCH_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stdout + out.stderr


def test_without_dispatch_numpy_in_numpy_out():
    """As scikit-learn's own MLP: a torch CPU tensor is converted to NumPy by
    validate_data, and NumPy comes back (the network runs on ``backend``)."""
    torch = pytest.importorskip("torch")
    X, y = load_iris(return_X_y=True)
    clf = nb.MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    clf.fit(torch.asarray(X), y)
    assert isinstance(clf.predict_proba(torch.asarray(X)), np.ndarray)
    on_torch = nb.MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0,
                                backend="torch").fit(X, y)
    assert on_torch.model_.backend.name == "torch"
    assert isinstance(on_torch.predict_proba(X), np.ndarray)
    np.testing.assert_allclose(on_torch.predict_proba(X), clf.predict_proba(X), atol=1e-5)


def test_import_nnbackend_does_not_import_sklearn():
    code = ("import sys, nnbackend; assert 'sklearn' not in sys.modules, 'imported'; "
            "nnbackend.MLPClassifier; assert 'sklearn' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_missing_sklearn_says_how_to_install():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import nnbackend\n"
            "try:\n    nnbackend.MLPRegressor\nexcept ImportError as e:\n"
            "    assert \"pip install 'nnbackend[sklearn]'\" in str(e), e\nelse:\n"
            "    raise SystemExit('no ImportError')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_wrapped_optimizers_on_other_backends():
    """The L2 penalty and a schedule on each installed backend's default executor."""
    X, y = load_iris(return_X_y=True)
    ref = None
    for name in nb.available_backends():
        if name in ("cupy",):
            continue
        clf = nb.MLPClassifier(hidden_layer_sizes=(6,), solver="sgd", learning_rate="invscaling",
                               learning_rate_init=0.1, alpha=0.01, max_iter=3, random_state=0,
                               backend=name, shuffle=False, dtype="float32")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
        if ref is None:
            ref = clf.loss_curve_
        np.testing.assert_allclose(clf.loss_curve_, ref, rtol=1e-4, err_msg=name)


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_early_stopping_holds_out_scikit_learns_rows(monkeypatch, kind):
    # The split draws from random_state where scikit-learn's does: right after
    # the initial weights (the network's own seed comes from a copy).
    import sklearn.neural_network._multilayer_perceptron as sk_mlp
    from nnbackend.estimators import _base

    make = make_regression if kind == "regressor" else make_classification
    X, y = make(n_samples=120, n_features=4, random_state=0)
    ours, theirs = {"regressor": (nb.MLPRegressor, sk_mlp.MLPRegressor),
                    "classifier": (nb.MLPClassifier, sk_mlp.MLPClassifier)}[kind]
    held_out = {}

    def recording(module, name):
        real = module.train_test_split

        def split(*arrays, **kwargs):
            out = real(*arrays, **kwargs)
            # Ours splits row numbers; scikit-learn splits X (its held-out rows: out[1]).
            rows = out[1] if name == "ours" else [
                int(np.flatnonzero((X == row).all(axis=1))[0]) for row in out[1]]
            held_out[name] = np.sort(np.asarray(rows))
            return out
        monkeypatch.setattr(module, "train_test_split", split)

    recording(_base, "ours")
    recording(sk_mlp, "theirs")
    settings = dict(hidden_layer_sizes=(5,), early_stopping=True, random_state=1, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs(**settings).fit(X, y)
        ours(**settings, dtype="float64").fit(X, y)
    assert held_out["ours"].shape == (12,)
    np.testing.assert_array_equal(held_out["ours"], held_out["theirs"])


def test_a_regressor_pickled_before_loss_was_a_parameter_loads_with_its_default():
    reg = nb.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
    state = reg.__getstate__()
    del state["loss"]
    old = nb.MLPRegressor.__new__(nb.MLPRegressor)
    old.__setstate__(state)
    assert old.get_params()["loss"] == "squared_error"
    np.testing.assert_array_equal(old.predict([[1.5]]), reg.predict([[1.5]]))


def test_a_dask_x_computed_into_memory_by_scikit_learns_checks_is_said():
    da = pytest.importorskip("dask.array", reason="the dask backend needs dask")
    X, y = make_classification(n_samples=40, n_features=3, n_informative=2, n_redundant=0,
                               random_state=0)
    clf = nb.MLPClassifier(hidden_layer_sizes=(3,), max_iter=1, backend="dask")
    with pytest.warns(UserWarning, match="compute this Dask X into memory, whole"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(da.from_array(X, chunks=10), da.from_array(y, chunks=10))
