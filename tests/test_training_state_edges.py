"""Training state carried across fits, checkpoints and estimator calls, at its edges.

Each test pins one behaviour that a plausible slip in that code changes
without failing the other tests (a mutation audit of the resume, schedule,
checkpoint, optimizer and estimator code found them): carried patience and
plateau counts, 'invscaling' and 'adaptive' across resumes, legacy
checkpoints, the checks on load, and the estimators against scikit-learn.
"""

import json
import warnings

import numpy as np
import pytest

import nnbackend as nb
from test_resume_stopping import _edited as edited_checkpoint, _problem, _set


def _make(**kw):
    return nb.MLP([3, 8, 1], loss="bce", dtype="float64", seed=0, **kw)


def _same_params(a, b, rtol=0.0):
    for (W, b_), (W2, b2) in zip(a.params, b.params):
        np.testing.assert_allclose(W, W2, rtol=rtol, atol=0)
        np.testing.assert_allclose(b_, b2, rtol=rtol, atol=0)


def _copy(model):
    return [(W.copy(), b.copy()) for W, b in model.params]


def _legacy(tmp_path, model, *drop):
    """``model`` saved, then its header's training state without ``drop``: a file
    written before those keys were kept."""
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as f:
        arrays = dict(f)
    header = json.loads(str(arrays["header"]))
    for key in drop:
        del header["train_state"][key]
    arrays["header"] = np.asarray(json.dumps(header))
    np.savez(tmp_path / "old.npz", **arrays)
    return nb.MLP.load(tmp_path / "old.npz")


# -- EarlyStopping's carried count (callbacks.py) ---------------------------------------

def test_a_carried_validation_count_does_not_stop_a_fit_on_the_training_loss():
    # C1: the earlier fit monitored the validation loss, whose best (here lower
    # than any training loss) says nothing of the training loss's.
    X, y, val = _problem()
    model = _make()
    kw = dict(optimizer="adam", lr=0.05, patience=3, restore_best_weights=False)
    model.fit(X, y, epochs=4, validation_data=val, **kw)
    done = model.train_state.epochs_done
    model.train_state.stopping = ("val_loss", 0.0, 2, done)
    h = model.fit(X, y, epochs=3, resume=True, **kw)
    assert not h.stopped_early and h.epochs == 3 and h.best_epoch >= 1
    assert model.train_state.stopping[0] == "loss"


def test_restoring_on_the_training_loss_starts_the_count_again():
    # C3: the training loss's best weights are those its best epoch started from,
    # which an earlier fit ending at its best did not keep: a resumed fit that
    # restores counts afresh instead of going back to the weights it started from.
    X, y, _ = _problem()
    model = _make()
    model.fit(X, y, epochs=4, optimizer="adam", lr=0.05, patience=3,
              restore_best_weights=False)
    assert model.train_state.stopping[0] == "loss" and model.train_state.stopping[3] == 4
    h = model.fit(X, y, epochs=5, optimizer="adam", lr=0.05, patience=2, min_delta=1.0,
                  restore_best_weights=True, resume=True)
    assert h.best_epoch == 1


# -- AdaptiveRate and fit_optimizer (schedule.py) -------------------------------------------

def test_adaptive_counts_a_loss_exactly_tol_below_its_best_as_an_improvement():
    # A3: scikit-learn's rule is loss > best - tol (strict) for "no improvement".
    from nnbackend.training.schedule import AdaptiveRate

    rate = AdaptiveRate(0.1, patience=10, tol=0.5)
    rate.after_epoch({"loss": 1.0})
    rate.after_epoch({"loss": 0.5})  # exactly tol below: an improvement
    assert rate.waited == 0


def test_a_resumed_adaptive_fit_stopped_at_its_first_epoch_can_be_saved_and_loaded(tmp_path):
    # A6: early stopping ended the fit before 'adaptive' saw an epoch: no best
    # yet is None in the state, not infinity (which no checkpoint takes).
    X, y, val = _problem()
    model = _make()
    kw = dict(optimizer="adam", lr=0.05, patience=3, restore_best_weights=False,
              validation_data=val)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert model.fit(X, y, epochs=60, **kw).stopped_early
        again = model.fit(X, y, epochs=10, lr_schedule="adaptive", resume=True, **kw)
    assert again.stopped_early and again.epochs == 1
    assert model.train_state.plateau[0] is None
    model.save(tmp_path / "m.npz")
    assert nb.MLP.load(tmp_path / "m.npz").train_state.plateau[0] is None


def test_invscaling_goes_on_from_samples_seen_that_are_no_whole_epochs_of_the_rows():
    # A13: 600 samples seen, then 160 rows: t = 600 and 760 (600 = 3 x 160 + 120).
    X, y, _ = _problem()
    kw = dict(lr=0.05, lr_schedule="invscaling", power_t=0.5)
    model = _make()
    model.fit(X, y, epochs=3, batch_size=8, **kw)
    start = _copy(model)
    model.fit(X[:160], y[:160], mode="batch", epochs=2, resume=True, **kw)
    fresh = nb.MLP([3, 8, 1], loss="bce", dtype="float64", params=start)
    for t in (600, 760):
        fresh.fit(X[:160], y[:160], mode="batch", epochs=1, lr=0.05 * (t + 1) ** -0.5)
    _same_params(model, fresh, rtol=1e-12)


def test_invscaling_holds_each_epochs_rate_over_an_uneven_last_batch():
    # A15: 40 rows in batches of 16 are 3 steps an epoch (16, 16, 8).
    X, y, _ = _problem()
    X, y = X[:40], y[:40]
    kw = dict(epochs=3, batch_size=16, lr=0.05, seed=1)
    model = _make()
    model.fit(X, y, lr_schedule="invscaling", power_t=0.5, **kw)
    ref = _make()
    ref.fit(X, y, lr_schedule=lambda count: (count // 3 * 40 + 1.0) ** -0.5, **kw)
    _same_params(model, ref, rtol=1e-12)


# -- legacy checkpoints (loop.py's fallbacks) ---------------------------------------------

def test_invscaling_resumes_a_checkpoint_without_samples_seen_from_its_epochs(tmp_path):
    # L3: a file from before samples_seen was kept: the epochs done of these rows.
    X, y, _ = _problem()
    kw = dict(lr=0.05, lr_schedule="invscaling", power_t=0.5)
    model = _make()
    model.fit(X, y, epochs=3, batch_size=8, **kw)
    old = _legacy(tmp_path, model, "samples_seen")
    assert old.train_state.samples_seen is None
    start = _copy(old)
    old.fit(X, y, mode="batch", epochs=1, resume=True, **kw)
    assert old.train_state.samples_seen == 800
    fresh = nb.MLP([3, 8, 1], loss="bce", dtype="float64", params=start)
    fresh.fit(X, y, mode="batch", epochs=1, lr=0.05 * 601 ** -0.5)
    _same_params(old, fresh)


def test_a_schedule_function_resumes_a_checkpoint_without_steps_done_from_its_epochs(tmp_path):
    # L5, L8: a file from before steps_done was kept: the epochs done of this fit's steps.
    X, y, _ = _problem()
    seen = []

    def factor(count):
        seen.append(int(count))
        return 1.0 / (1.0 + 0.01 * count)

    model = _make()
    model.fit(X, y, epochs=3, batch_size=8, lr=0.05, lr_schedule=factor)
    old = _legacy(tmp_path, model, "steps_done")
    assert old.train_state.steps_done is None
    seen.clear()
    old.fit(X, y, epochs=1, batch_size=8, lr=0.05, lr_schedule=factor, resume=True)
    assert min(seen[1:]) == 75 and max(seen[1:]) == 99  # 25 steps an epoch
    assert old.train_state.steps_done == 100


# -- checkpoint.py's _train_fields ---------------------------------------------------------

def _edited(tmp_path, key, value, optimizer="adam", **fit):
    """A checkpoint of a 4-epoch fit whose training state's ``key`` is ``value``."""
    return edited_checkpoint(tmp_path, _set(key, value), optimizer, **fit)


@pytest.mark.parametrize("key, value, message", [
    ("optimizer", "rmsprop", "unknown optimizer 'rmsprop'"),  # K2
    ("state_scalars", {}, "its adam state"),  # K3: Adam's count missing
    ("state_scalars", {"count": 4, "junk": 1}, "its adam state"),  # K3
    ("lr_scale", 0, r"lr_scale 0 is not a factor in \(0, 1\]"),  # K6
    ("lr_scale", "x", r"lr_scale 'x' is not a factor"),  # K8
    ("lr_scale", True, r"lr_scale True is not a factor"),  # K24: a bool is no number
])
def test_more_edited_training_states_are_refused_at_load(tmp_path, key, value, message):
    bad = _edited(tmp_path, key, value)
    with pytest.raises(ValueError, match=rf"bad\.npz is not a usable nnbackend checkpoint: .*"
                                         rf"{message}"):
        nb.MLP.load(bad)


def test_an_early_stopping_best_epoch_0_is_refused_at_load(tmp_path):
    # K17: the best epoch is counted over all fits, from 1.
    bad = _edited(tmp_path, "stopping", ["loss", 0.5, 1, 0], patience=3,
                  restore_best_weights=False)
    with pytest.raises(ValueError, match=r"bad\.npz .*best epoch 0 is not one of its 4"):
        nb.MLP.load(bad)


def test_an_optimizer_state_of_other_shapes_is_refused_at_load(tmp_path):
    # K32: refused naming the file, not later by the resumed fit.
    X, y, _ = _problem()
    model = _make()
    model.fit(X, y, epochs=2, optimizer="adam", lr=0.05)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = dict(f)
    arrays["opt_mu_0"] = np.zeros((2, 2))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"bad\.npz .*optimizer state 'mu' does not match"):
        nb.MLP.load(tmp_path / "bad.npz")


def test_a_checkpoint_without_lr_scale_loads_at_the_full_rate(tmp_path):
    # K33: a file from before 'adaptive' kept its factor: 1.
    X, y, _ = _problem()
    model = _make()
    model.fit(X, y, epochs=2, optimizer="adam", lr=0.05)
    assert _legacy(tmp_path, model, "lr_scale").train_state.lr_scale == 1.0


# -- optim.py ---------------------------------------------------------------------------

def test_inverse_scaling_refuses_negative_samples_before():
    # O1
    from nnbackend.optim import inverse_scaling

    with pytest.raises(ValueError, match="samples_before must be >= 0"):
        inverse_scaling(0.5, 10, 2, samples_before=-1)


def test_jax_compiles_invscaling_afresh_for_another_rest_of_samples_seen():
    # O6: the samples seen modulo the rows are a constant of the compiled epoch,
    # so they are in its key: a resumed fit with another rest gets its own epoch.
    pytest.importorskip("jax")
    X, y, _ = _problem()
    kw = dict(lr=0.05, lr_schedule="invscaling", power_t=0.5, batch_size=40)
    for first_epochs in (1, 3):  # 200 or 600 samples seen: rests 40 and 120 of 160 rows
        got = {}
        for executor in ("auto", "reference"):
            model = nb.MLP([3, 8, 1], loss="bce", backend="jax", device="cpu", seed=0)
            model.fit(X, y, epochs=first_epochs, executor=executor, **kw)
            h = model.fit(X[:160], y[:160], epochs=2, resume=True, executor=executor, **kw)
            got[executor] = ([np.asarray(a) for pair in model.params for a in pair], h.executor)
        assert got["auto"][1] == "jax-scan"
        for a, b in zip(got["auto"][0], got["reference"][0]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("b1, b2", [(0.9, 0.999), (0.0, 0.999), (0.9, 0.0), (0.0, 0.0)])
def test_adams_factors_from_a_device_count_are_the_host_ones(b1, b2):
    # O11, O12: b1 or b2 of 0 (allowed) on a device count (a 0-D array).
    from nnbackend.optim import _adam_scalars

    for count in (1, 2, 7, 100):
        like = np.zeros(1)  # a float64 parameter
        host = _adam_scalars(count, 0.1, b1, b2, 1e-8, like)
        device = _adam_scalars(np.asarray(count), 0.1, b1, b2, 1e-8, like)
        np.testing.assert_allclose([float(d) for d in device], host, rtol=1e-12)


def test_adams_factors_from_a_float64_device_count_are_the_host_loops():
    # A float64 count (torch-graphs', cupy-graphs') takes the host loop's
    # formula, 1 - b**count, for float64 graph fits to equal the reference
    # loop's (-expm1(count·log b), for JAX's float32 counts, differs from it
    # by up to 1.4e-14 at the first steps). torch's pow is libm's, as CUDA's
    # is to an ulp; NumPy's vectorised pow is not.
    torch = pytest.importorskip("torch", reason="torch's float64 pow stands in for CUDA's")
    from nnbackend.optim import _adam_scalars

    like = torch.zeros(1, dtype=torch.float64)
    for count in range(1, 200):
        host = _adam_scalars(count, 0.1, 0.9, 0.999, 1e-8, like)
        graphs = _adam_scalars(torch.tensor(float(count), dtype=torch.float64), 0.1, 0.9,
                               0.999, 1e-8, like)
        np.testing.assert_allclose([float(d) for d in graphs], host, rtol=3e-16)


# -- estimators (_base.py, _mlp.py) ------------------------------------------------------

sk_nn = pytest.importorskip("sklearn.neural_network")


def _classification(n=200):
    from sklearn.datasets import make_classification

    return make_classification(n, 5, random_state=0)


def test_a_warm_fit_that_raises_keeps_the_networks_activation():
    # B7: the network's own attributes (here its activation) are put back too.
    X, y = _classification(60)
    clf = nb.MLPClassifier((8,), max_iter=3, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    before = clf.predict_proba(X)
    clf.set_params(activation="tanh", early_stopping=True, validation_fraction=0.01)
    with pytest.raises(ValueError):  # its validation split is too small
        clf.fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), before)


def test_ctrl_c_inside_a_compiled_epoch_leaves_an_estimator_that_goes_on(monkeypatch):
    # B16: jax's compiled epoch consumed the state it was given.
    import pickle

    pytest.importorskip("jax")
    from nnbackend.estimators import _base

    X, y = _classification(300)
    real, calls = _base._BaseMLP._epoch_figures, []

    def interrupting(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(_base._BaseMLP, "_epoch_figures", interrupting)
    clf = nb.MLPClassifier(max_iter=10, random_state=0, backend="jax")
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        clf.fit(X, y)
    monkeypatch.setattr(_base._BaseMLP, "_epoch_figures", real)
    assert clf.fit_executor_.startswith("jax-scan")
    pickle.loads(pickle.dumps(clf))
    clf.partial_fit(X, y)


@pytest.mark.parametrize("lr", [0.1, 1e-6])
def test_adaptive_sgd_divides_its_rate_and_stops_as_scikit_learn(lr):
    # B19 (> n_iter_no_change), B20 (divided by 5), B27 (stops at <= 1e-6).
    X, y = _classification()
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate="adaptive",
              learning_rate_init=lr, momentum=0.0, tol=10.0, n_iter_no_change=2, max_iter=40,
              shuffle=False, alpha=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = sk_nn.MLPClassifier(**kw).fit(X, y)
        got = nb.MLPClassifier(**kw, backend="numpy", dtype="float64").fit(X, y)
    assert got.n_iter_ == want.n_iter_ < 40
    np.testing.assert_allclose(got.loss_curve_, want.loss_curve_, rtol=1e-10)


def test_early_stopping_counts_an_equal_score_as_scikit_learn_with_tol_0():
    # B23: a validation score equal to the best (tol=0) resets the count, as in
    # scikit-learn (score < best + tol counts): here the first epochs tie.
    X, y = _classification(300)
    kw = dict(hidden_layer_sizes=(8,), early_stopping=True, validation_fraction=0.1, tol=0.0,
              n_iter_no_change=2, max_iter=60, shuffle=False, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = sk_nn.MLPClassifier(**kw).fit(X, y)
        got = nb.MLPClassifier(**kw, backend="numpy", dtype="float64").fit(X, y)
    assert got.validation_scores_[1] == got.validation_scores_[0]
    assert got.n_iter_ == want.n_iter_
    np.testing.assert_allclose(got.validation_scores_, want.validation_scores_)


def test_partial_fit_with_max_iter_1_does_not_warn_of_the_maximum():
    # B25: partial_fit stops after its one epoch before the max_iter check, as scikit-learn.
    from sklearn.exceptions import ConvergenceWarning

    X, y = _classification(100)
    clf = nb.MLPClassifier((8,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.partial_fit(X, y, classes=[0, 1])
        clf.partial_fit(X, y)


def test_best_loss_is_the_lowest_loss_of_all_calls():
    # B28: best_loss_ is the minimum, not the last (scikit-learn's).
    X, y = _classification(200)
    clf = nb.MLPClassifier((8,), random_state=0, learning_rate_init=0.05)
    for _ in range(20):
        clf.partial_fit(X, y, classes=[0, 1])
    noisy = np.random.default_rng(0).permutation(y)  # shuffled labels: a higher loss
    clf.partial_fit(X, noisy)
    assert clf.loss_curve_[-1] > min(clf.loss_curve_)
    assert clf.best_loss_ == min(clf.loss_curve_)


def test_a_warm_fit_on_a_subset_of_the_classes_is_refused():
    # M2: as scikit-learn, a warm fit's y must hold the classes of the first.
    X, y = _classification(90)
    y = np.arange(90) % 3
    clf = nb.MLPClassifier((8,), max_iter=2, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        clf.fit(X[y < 2], y[y < 2])


def test_a_first_multilabel_partial_fit_needs_no_classes():
    # M5: the docstring's "classes ... not needed for multi-label y".
    X, _ = _classification(60)
    Y = (np.random.default_rng(0).random((60, 3)) > 0.5).astype(int)
    clf = nb.MLPClassifier((8,), random_state=0).partial_fit(X, Y)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])


def test_later_partial_fit_classes_may_come_in_any_order():
    # M8: compared as a set of labels (scikit-learn's unique_labels).
    X, y = _classification(60)
    clf = nb.MLPClassifier((8,), random_state=0)
    clf.partial_fit(X, y, classes=[0, 1])
    clf.partial_fit(X, y, classes=[1, 0])


def test_jax_runs_a_warm_invscaling_fits_first_epoch_at_the_initial_rate():
    # O7: the epoch the rate starts over at is a constant of jax's compiled epoch,
    # so it is in its key: a warm fit does not reuse the first fit's epoch.
    pytest.importorskip("jax")
    X, y = _classification(300)
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate="invscaling",
              learning_rate_init=0.5, power_t=0.5, momentum=0.0, shuffle=False, alpha=0.0,
              batch_size=50, random_state=0, warm_start=True, max_iter=3)
    curves = {}
    for backend in ("numpy", "jax"):
        clf = nb.MLPClassifier(**kw, backend=backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
            clf.fit(X, y)
        curves[backend] = clf.loss_curve_
    assert clf.fit_executor_.startswith("jax-scan")
    np.testing.assert_allclose(curves["jax"], curves["numpy"], rtol=1e-4)


def test_early_stopping_has_no_count_before_an_epoch():
    # C12 (contract only: unreachable through fit as far as the audit found).
    from nnbackend.training.callbacks import EarlyStopping

    assert EarlyStopping(3, 0.0, None).count is None
