"""Edges of the estimators' hyperparameters, fit loop and learning-rate schedules,
and of ``training.schedule`` (``fit_optimizer``, ``AdaptiveRate``), that a
mutation audit of those modules found untested; against scikit-learn's MLPs
where it defines the behaviour."""

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="the estimators need scikit-learn "
                                                "(the 'sklearn' extra)")
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402

import nnbackend as nb  # noqa: E402
from nnbackend.training.options import FitOptions  # noqa: E402
from nnbackend.training.schedule import AdaptiveRate, fit_optimizer  # noqa: E402

_EXACT = dict(backend="numpy", dtype="float64")  # where the two agree to rounding


def _classification(n=60):
    return make_classification(n, 4, random_state=0)


# -- hyperparameters: what scikit-learn refuses, and what it takes ----------------------

@pytest.mark.parametrize("params", [{"hidden_layer_sizes": (0,)},
                                    {"hidden_layer_sizes": (4, 0)},
                                    {"validation_fraction": 1.0},
                                    {"validation_fraction": 1.5},
                                    {"max_iter": 0}, {"n_iter_no_change": 0},
                                    {"batch_size": 0}])
def test_values_at_the_edge_of_scikit_learns_intervals_are_refused(params):
    """A zero-width layer, a validation fraction of 1 or more, no epochs, a patience
    of 0 and an empty batch are refused by name, as scikit-learn refuses them (not
    left to fail, or to be clipped, later in the fit)."""
    X, y = _classification()
    name = next(iter(params))
    params = {"max_iter": 1, **params}
    with pytest.raises(InvalidParameterError, match=name):
        nb.MLPClassifier(**params).fit(X, y)
    with pytest.raises((InvalidParameterError, ValueError)):
        SkClassifier(**params).fit(X, y)


@pytest.mark.parametrize("params", [{"tol": 0.0}, {"power_t": 0.0, "solver": "sgd",
                                                      "learning_rate": "invscaling"}])
def test_the_closed_ends_of_scikit_learns_intervals_are_taken(params):
    """``tol=0`` and ``power_t=0`` lie in scikit-learn's intervals ([0, inf))."""
    X, y = _classification()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for make in (SkClassifier, nb.MLPClassifier):
            assert make(hidden_layer_sizes=(3,), max_iter=1, **params).fit(X, y).n_iter_ == 1


def _both_classifiers(kw, X, y):
    """nnbackend's and scikit-learn's MLPClassifier fitted with ``kw`` (no
    convergence warnings: the fits are a step or two on purpose)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return nb.MLPClassifier(**kw, **_EXACT).fit(X, y), SkClassifier(**kw).fit(X, y)


def test_an_unknown_precision_is_refused_by_name_before_the_fit():
    X, y = _classification()
    with pytest.raises(InvalidParameterError, match="'precision' parameter"):
        nb.MLPClassifier(precision="fast", max_iter=1).fit(X, y)


def test_mode_sgd_is_taken_and_steps_once_per_sample():
    """``mode='sgd'`` (one row per step) is one of the three modes the estimators offer."""
    X, y = _classification(30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = nb.MLPClassifier(hidden_layer_sizes=(4,), mode="sgd", max_iter=2,
                               random_state=0, **_EXACT).fit(X, y)
    assert clf.n_iter_ == 2 and clf.t_ == 60


def test_verbose_zero_is_taken_as_scikit_learn_takes_it():
    """scikit-learn's ``verbose`` is an int >= 0 as well as a bool: 0 is silence."""
    X, y = _classification()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = nb.MLPClassifier(hidden_layer_sizes=(4,), verbose=0, max_iter=1,
                               random_state=0).fit(X, y)
    assert clf.n_iter_ == 1


# -- training.schedule: fit_optimizer and AdaptiveRate ---------------------------------

def _regression_data(n=40):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=n)


def _net():
    return nb.MLP([3, 5, 1], hidden_activation="tanh", output_activation="identity",
                  loss="mse", dtype="float64", seed=1, backend="numpy")


def test_invscaling_counts_the_last_smaller_batch_as_a_step_of_its_epoch():
    """40 rows in batches of 16 are 3 steps an epoch (not 2): the second epoch's
    three steps all run at ``lr / 41 ** power_t``, the first epoch's at ``lr``."""
    X, y = _regression_data()
    kw = dict(mode="minibatch", batch_size=16, epochs=2, lr=0.05, shuffle=False)
    got = _net()
    got.fit(X, y, lr_schedule="invscaling", power_t=0.5, **kw)
    want = _net()
    want.fit(X, y, lr_schedule=lambda count: 1.0 if count < 3 else 41 ** -0.5, **kw)
    for a, b in zip(got.flat_params, want.flat_params):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)


def test_fit_optimizer_applies_a_reached_factor_whatever_the_schedule():
    """``lr_scale`` is the rate's factor: a caller that passes one gets a step that
    much shorter, with the constant schedule too (not the plain optimizer)."""
    plan = nb.data.make_plan("batch", 4, 4)
    params, grads = [np.ones((2, 2)), np.ones(2)], [np.ones((2, 2)), np.ones(2)]
    opt = fit_optimizer(FitOptions.check(optimizer="sgd", lr=0.5), plan, 1, "mean",
                        lr_scale=0.2)
    new, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(new[0], 1 - 0.5 * 0.2)
    np.testing.assert_allclose(new[1], 1 - 0.5 * 0.2)


def test_adaptive_counts_a_loss_exactly_tol_below_the_best_as_an_improvement():
    """As scikit-learn's ``loss > best - tol``: a fall of exactly ``tol`` is an
    improvement, so epochs that each fall by ``tol`` never divide the rate."""
    rate = AdaptiveRate(0.1, patience=1, tol=0.25)
    assert [rate.after_epoch({"loss": v}) for v in (1.0, 0.75, 0.5, 0.25, 0.0)] == [False] * 5
    assert rate.waited == 0 and rate.scale == 1.0


def test_adaptive_starts_its_count_again_after_an_improvement():
    """An improving epoch resets the count of flat ones: two flat epochs, an
    improvement, two flat again never make more than ``patience=2`` in a row."""
    rate = AdaptiveRate(0.1, patience=2)
    losses = (1.0, 1.0, 1.0, 0.5, 0.5, 0.5)
    assert [rate.after_epoch({"loss": v}) for v in losses] == [False] * 6
    assert rate.waited == 2 and rate.scale == 1.0


def test_invscaling_resumed_on_other_rows_counts_the_samples_seen_not_whole_epochs():
    """3 epochs of 40 rows are 120 samples seen; a resumed fit on 50 rows runs at
    ``lr / 121 ** power_t`` (120 is not a whole number of 50-row epochs)."""
    X, y = _regression_data(50)
    kw = dict(mode="batch", lr=0.05, lr_schedule="invscaling", power_t=0.5, shuffle=False)
    model = _net()
    model.fit(X[:40], y[:40], epochs=3, **kw)
    start = [(np.array(W), np.array(b)) for W, b in model.params]
    model.fit(X, y, epochs=1, resume=True, **kw)
    fresh = nb.MLP([3, 5, 1], hidden_activation="tanh", output_activation="identity",
                   loss="mse", dtype="float64", backend="numpy", params=start)
    fresh.fit(X, y, mode="batch", epochs=1, lr=0.05 * 121 ** -0.5, shuffle=False)
    for a, b in zip(model.flat_params, fresh.flat_params):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)


def test_adaptive_plateau_names_no_best_before_an_epoch():
    """``plateau``'s best is None until an epoch sets one (not infinity, which a
    checkpoint's header would have to carry)."""
    assert AdaptiveRate(0.1).plateau == (None, 0, None)
    rate = AdaptiveRate(0.1)
    rate.after_epoch({"loss": float("nan")})  # (no finite best yet)
    assert rate.plateau[0] is None


# -- the optimizer state between partial_fit calls -------------------------------------

def _adam_moments(est):
    return list(est._opt_state.mu) + list(est._opt_state.nu)


def test_partial_fit_after_set_params_device_moves_the_optimizer_state_there():
    """Same backend, another device (array-api-strict's simulated ones): the Adam
    moments follow the network to the new device, not left on the old one."""
    xps = pytest.importorskip("array_api_strict", reason="needs array-api-strict")
    X, y = _classification(80)
    clf = nb.MLPClassifier(hidden_layer_sizes=(5,), backend="strict", random_state=0)
    clf.partial_fit(X, y, classes=[0, 1])
    clf.set_params(device="device1")
    clf.partial_fit(X, y)
    assert clf.model_.backend.name == "strict"
    assert all(a.device == xps.Device("device1") for a in _adam_moments(clf))


def test_state_already_on_the_network_is_kept_without_a_copy():
    """``_state_on`` keeps arrays already on the network's backend, device and dtype
    as they are (a device backend's: host arrays are NumPy's own anyway), so each
    partial_fit does not copy the whole optimizer state."""
    from nnbackend.estimators._state import _state_on

    pytest.importorskip("array_api_strict", reason="needs array-api-strict")
    X, y = _classification(80)
    clf = nb.MLPClassifier(hidden_layer_sizes=(5,), backend="strict", random_state=0)
    clf.partial_fit(X, y, classes=[0, 1])
    state = clf._opt_state
    moved = _state_on(state, clf.model_)
    assert all(a is b for a, b in zip(_adam_moments(clf), list(moved.mu) + list(moved.nu)))
    assert moved.count == state.count


def test_partial_fit_after_narrowing_the_dtype_casts_the_optimizer_state_too():
    """float64 to float32 between partial_fit calls: the Adam moments are cast to
    float32 with the network (float64 moments would promote the weights back)."""
    X, y = _classification(80)
    clf = nb.MLPClassifier(hidden_layer_sizes=(5,), backend="numpy", dtype="float64",
                           random_state=0)
    clf.partial_fit(X, y, classes=[0, 1])
    clf.set_params(dtype="float32")
    clf.partial_fit(X, y)
    assert all(a.dtype == np.float32 for a in _adam_moments(clf))
    assert all(W.dtype == np.float32 for W in clf.coefs_ + clf.intercepts_)


# -- the fit loop ----------------------------------------------------------------------

def test_learning_rate_schedule_is_ignored_by_adam_as_scikit_learn_ignores_it():
    """``learning_rate`` is sgd's alone: Adam fits the same with any schedule."""
    X, y = _classification(90)
    fits = []
    for schedule in ("constant", "invscaling"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(nb.MLPClassifier(hidden_layer_sizes=(5,), solver="adam",
                                         learning_rate=schedule, power_t=0.9, max_iter=4,
                                         batch_size=30, shuffle=False, random_state=0,
                                         **_EXACT).fit(X, y))
    for a, b in zip(fits[0].coefs_ + fits[0].intercepts_, fits[1].coefs_ + fits[1].intercepts_):
        np.testing.assert_array_equal(a, b)


def test_adaptive_adam_stops_on_a_plateau_as_scikit_learns_does():
    """'adaptive' divides sgd's rate alone: Adam stops at its first plateau
    (``n_iter_no_change=1`` and a huge ``tol``: the third epoch), as scikit-learn's."""
    X, y = _classification(90)
    kw = dict(hidden_layer_sizes=(5,), solver="adam", learning_rate="adaptive",
              n_iter_no_change=1, tol=1e6, max_iter=30, random_state=0)
    ours = nb.MLPClassifier(**kw, **_EXACT).fit(X, y)
    theirs = SkClassifier(**kw).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 3
    assert ours._lr_scale == 1.0


def test_multilabel_validation_score_is_the_subset_accuracy_of_predict():
    """Early stopping scores multi-label rows as scikit-learn's ``accuracy_score``:
    a row counts when all its labels are right, each read as ``proba > 0.5``. Zero
    weights and a vanishing rate hold every output at exactly 0.5 (label 0)."""
    from sklearn.datasets import make_multilabel_classification
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    X, Y = make_multilabel_classification(200, 5, n_classes=3, random_state=0)
    clf = nb.MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", momentum=0.0,
                           learning_rate_init=1e-300, early_stopping=True, warm_start=True,
                           max_iter=1, random_state=0, **_EXACT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, Y)
        clf.coefs_ = [np.zeros_like(W) for W in clf.coefs_]
        clf.intercepts_ = [np.zeros_like(b) for b in clf.intercepts_]
        clf.fit(X, Y)  # a warm fit draws its split afresh from random_state, as scikit-learn's
    val = train_test_split(np.arange(len(X)), random_state=np.random.RandomState(0),
                           test_size=0.1)[1]
    assert np.all(clf.predict(X[val]) == 0)
    want = accuracy_score(Y[val], clf.predict(X[val]))
    assert 0 < want < 1
    assert clf.validation_scores_[-1] == pytest.approx(want)


def test_a_binary_probability_of_exactly_one_half_predicts_the_first_class():
    """scikit-learn's label binarizer reads ``proba > 0.5``: a tie (zero weights)
    is the first class, for both estimators alike."""
    X, y = _classification()
    predictions = []
    for clf in (SkClassifier(hidden_layer_sizes=(3,), max_iter=1, random_state=0),
                nb.MLPClassifier(hidden_layer_sizes=(3,), max_iter=1, random_state=0,
                                 **_EXACT)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, np.where(y == 1, "yes", "no"))
        clf.coefs_ = [np.zeros_like(W) for W in clf.coefs_]
        clf.intercepts_ = [np.zeros_like(b) for b in clf.intercepts_]
        np.testing.assert_array_equal(clf.predict_proba(X[:4]), 0.5)
        predictions.append(clf.predict(X[:4]))
    assert list(predictions[1]) == list(predictions[0]) == ["no"] * 4


def test_a_constant_validation_target_scores_zero_as_r2_score_forces_it():
    """R² of constant targets is undefined; scikit-learn's ``r2_score`` (and so its
    MLPRegressor's early stopping) calls an imperfect fit of them 0.0, not -inf."""
    from sklearn.neural_network import MLPRegressor as SkRegressor

    X, _ = make_regression(60, 3, random_state=0)
    y = np.full(60, 3.0)
    kw = dict(hidden_layer_sizes=(4,), early_stopping=True, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = nb.MLPRegressor(**kw, **_EXACT).fit(X, y)
        theirs = SkRegressor(**kw).fit(X, y)
    assert ours.validation_scores_ == theirs.validation_scores_ == [0.0, 0.0, 0.0]


def test_a_fit_keeps_no_reference_to_the_training_labels():
    """The labels the validation split stratifies by live for the fit alone: the
    fitted estimator (and so its pickle) does not carry ``y``."""
    X, y = _classification()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = nb.MLPClassifier(hidden_layer_sizes=(3,), early_stopping=True, max_iter=2,
                               random_state=0).fit(X, y)
    assert not hasattr(clf, "_train_labels")
    assert "_train_labels" not in clf.__getstate__()


def test_a_negative_r2_is_still_the_best_validation_score_of_a_fresh_fit():
    """The best validation score starts at -inf, as scikit-learn's: R² far below 0
    (targets far from the untrained outputs) is kept as the best, with its weights."""
    X, y = make_regression(80, 3, noise=1.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = nb.MLPRegressor(hidden_layer_sizes=(4,), early_stopping=True, max_iter=2,
                              random_state=0, **_EXACT).fit(X, y + 1000.0)
    assert max(reg.validation_scores_) < 0
    assert reg.best_validation_score_ == max(reg.validation_scores_)


def test_alpha_penalises_the_weights_alone_as_scikit_learns_sgd():
    """A large ``alpha`` with plain sgd over whole-data batches: the weights and the
    biases match scikit-learn's to rounding (the biases carry no penalty)."""
    X, y = _classification()
    kw = dict(hidden_layer_sizes=(5,), solver="sgd", momentum=0.0, alpha=5.0, batch_size=60,
              learning_rate_init=0.1, max_iter=2, shuffle=False, random_state=0)
    ours, theirs = _both_classifiers(kw, X, y)
    for a, b in zip(ours.intercepts_ + ours.coefs_, theirs.intercepts_ + theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_a_batch_size_larger_than_the_data_warns_that_it_is_clipped():
    """As scikit-learn: a ``batch_size`` above the rows is clipped, with a warning."""
    X, y = _classification()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(UserWarning, match="clipped"):
            nb.MLPClassifier(hidden_layer_sizes=(3,), batch_size=500, max_iter=1,
                             random_state=0).fit(X, y)
        with pytest.warns(UserWarning, match="clipped"):
            SkClassifier(hidden_layer_sizes=(3,), batch_size=500, max_iter=1,
                         random_state=0).fit(X, y)


def test_loss_adds_the_penalty_once_per_batch_as_scikit_learns():
    """scikit-learn's ``loss_`` adds ``alpha/2·‖W‖²/batch_rows`` to each batch's mean
    loss, weighted by its rows: ``n_batches·alpha/2·‖W‖²/n`` in all. A vanishing
    rate keeps the weights fixed, so three batches of 20 match it to rounding."""
    X, y = _classification()
    kw = dict(hidden_layer_sizes=(5,), solver="sgd", momentum=0.0, alpha=2.0, batch_size=20,
              learning_rate_init=1e-12, max_iter=1, shuffle=False, random_state=0)
    ours, theirs = _both_classifiers(kw, X, y)
    penalty = 0.5 * 2.0 * sum(float(np.sum(W * W)) for W in ours.coefs_) * 3 / 60
    assert penalty > 0.1 * ours.loss_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)


def test_a_pickle_carries_the_optimizer_state_as_host_arrays():
    """The pickled estimator holds NumPy arrays alone, its optimizer state too, so
    that it loads where the fitting backend's library is not installed."""
    pytest.importorskip("array_api_strict", reason="needs array-api-strict")
    X, y = _classification(80)
    clf = nb.MLPClassifier(hidden_layer_sizes=(5,), backend="strict", random_state=0)
    clf.partial_fit(X, y, classes=[0, 1])
    state = clf.__getstate__()["_opt_state"]
    assert all(isinstance(a, np.ndarray) for a in list(state.mu) + list(state.nu))


def test_partial_fit_refuses_early_stopping_as_scikit_learn():
    X, y = _classification()
    for clf in (SkClassifier(early_stopping=True), nb.MLPClassifier(early_stopping=True)):
        with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
            clf.partial_fit(X, y, classes=[0, 1])


def test_a_warm_start_on_targets_of_another_width_is_refused_by_name():
    """The fitted network has one output per target column: a warm fit on two
    columns after one is refused (not trained into a mismatched head)."""
    X, y = make_regression(60, 3, n_targets=2, random_state=0)
    reg = nb.MLPRegressor(hidden_layer_sizes=(3,), warm_start=True, max_iter=1,
                          random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y[:, 0])
        with pytest.raises(ValueError, match="2 output columns"):
            reg.fit(X, y)
    assert reg.n_outputs_ == 1


def test_logistic_hidden_units_draw_scikit_learns_narrower_initial_weights():
    """Glorot's bound for logistic units is ``sqrt(2/(fan_in+fan_out))`` (6 for the
    others): one vanishing step later the weights are still scikit-learn's."""
    X, y = _classification()
    kw = dict(hidden_layer_sizes=(5,), activation="logistic", solver="sgd", momentum=0.0,
              learning_rate_init=1e-12, max_iter=1, shuffle=False, random_state=0)
    ours, theirs = _both_classifiers(kw, X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_an_epsilon_that_is_0_in_float32_is_refused_by_its_name():
    # Adam's first step divides a constant feature's zero gradient by
    # epsilon*sqrt(1 - beta_2): 0 in float32 gave NaN weights, refused as "the
    # input data may contain large values". float64 holds it, as scikit-learn does.
    X = np.random.default_rng(0).normal(size=(40, 3))
    X[:, 2] = 0.0
    y = X[:, 0]
    kw = dict(hidden_layer_sizes=(4,), max_iter=3, alpha=0.0, epsilon=1e-50, random_state=0)
    with pytest.raises(ValueError, match=r"^epsilon=1e-50 is 0 in float32"):
        nb.MLPRegressor(**kw).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = nb.MLPRegressor(**kw, dtype="float64").fit(X, y)
    assert np.all(np.isfinite(fitted.loss_curve_))
