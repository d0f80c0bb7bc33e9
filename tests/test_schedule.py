"""``MLP.fit``'s L2 penalty (``alpha``), learning-rate schedules and the
warning for a loss that grows while it stays finite.

Batch-mode plain SGD takes one step per epoch and keeps no state, so a fit
with a penalty or a schedule can be checked against fits without one: the
penalty adds ``lr·alpha/n·W`` to a step, a schedule changes the rate of the
epoch it applies to.
"""

import json
import warnings

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import cli
from conftest import to_numpy
from nnbackend.training import DivergenceWarning
from nnbackend.training.options import FitOptions
from nnbackend.training.schedule import AdaptiveRate, fit_optimizer

N = 40


def _data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=n)


def _model(backend=None, reduction="mean", params=None):
    return nb.MLP([3, 5, 1], hidden_activation="tanh", output_activation="identity", loss="mse",
                  reduction=reduction, dtype="float64", seed=1,
                  backend=backend.name if backend else "numpy",
                  device=backend.device if backend else None, params=params)


def _host(model, backend=None):
    return [to_numpy(backend, p) if backend else np.asarray(p) for p in model.flat_params]


def _pairs(flat):
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def _batch_epochs(lrs, X, y, start=None, reduction="mean"):
    """Host parameters after one batch-sgd epoch per rate in ``lrs``, each a fit of its own."""
    model = _model(reduction=reduction, params=start)
    for lr in lrs:
        model.fit(X, y, mode="batch", epochs=1, lr=lr, shuffle=False)
    return _host(model)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_alpha_adds_its_gradient_to_the_weights_alone(backend, reduction):
    X, y = _data()
    lr, alpha = 0.05 if reduction == "mean" else 0.002, 0.3
    start = _host(_model(reduction=reduction))
    plain = _batch_epochs([lr], X, y, reduction=reduction)
    model = _model(backend, reduction)
    model.fit(X, y, mode="batch", epochs=1, lr=lr, alpha=alpha, shuffle=False)
    coef = alpha / N if reduction == "mean" else alpha
    for i, (got, p, p0) in enumerate(zip(_host(model, backend), plain, start)):
        weight = i % 2 == 0
        np.testing.assert_allclose(got, p - lr * coef * p0 if weight else p, rtol=1e-10,
                                   atol=1e-12, err_msg=f"parameter {i}")


def test_alpha_scales_with_each_batch_in_minibatch_mode():
    # Two minibatches of 20 rows: each step's penalty gradient is alpha/20·W.
    X, y = _data()
    lr, alpha = 0.05, 0.5
    penalised, plain = _model(), _model()
    penalised.fit(X, y, mode="minibatch", batch_size=20, epochs=1, lr=lr, alpha=alpha,
                  shuffle=False)
    # The same two steps by hand: the plain gradient of each half at the current
    # weights (a batch-mode epoch on that half with alpha=0 gives it) plus the penalty.
    params = _host(plain)
    for rows in (slice(0, 20), slice(20, 40)):
        step = _model(params=_pairs(params))
        step.fit(X[rows], y[rows], mode="batch", epochs=1, lr=lr, shuffle=False)
        params = [q - lr * alpha / 20 * p if i % 2 == 0 else q
                  for i, (p, q) in enumerate(zip(params, _host(step)))]
    for got, want in zip(_host(penalised), params):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_invscaling_divides_each_epoch_by_the_samples_seen(backend):
    X, y = _data()
    lr, power_t = 0.05, 0.3
    want = _batch_epochs([lr * (t * N + 1) ** -power_t for t in range(3)], X, y)
    model = _model(backend)
    model.fit(X, y, mode="batch", epochs=3, lr=lr, lr_schedule="invscaling", power_t=power_t,
              shuffle=False)
    for got, w in zip(_host(model, backend), want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)


def test_a_schedule_function_gets_the_step_count():
    X, y = _data()
    counts = []

    def halving(count):
        counts.append(count)
        return 0.5 ** count

    model = _model()
    model.fit(X, y, mode="batch", epochs=3, lr=0.05, lr_schedule=halving, shuffle=False)
    assert counts == [0, 0, 1, 2]  # the first call checks its factor, before the fit
    for got, w in zip(_host(model), _batch_epochs([0.05, 0.025, 0.0125], X, y)):
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf")])
@pytest.mark.parametrize("backend", ["numpy", "strict", "torch"])
def test_a_schedule_factor_gone_bad_after_the_first_step_is_refused_by_its_step(backend, bad):
    if backend == "torch":
        pytest.importorskip("torch")
    X, y = _data()
    model = nb.MLP([3, 5, 1], output_activation="identity", backend=backend, seed=1)
    with pytest.raises(ValueError, match=r"lr_schedule\(6\) returned .*finite number >= 0"):
        model.fit(X, y, epochs=3, batch_size=8, lr=0.05,
                  lr_schedule=lambda count: 1.0 if count < 6 else bad)


def test_adaptive_divides_by_five_after_more_than_ten_flat_epochs():
    X, y = _data()
    lr = 1e-5  # so small that no epoch improves the loss by 1e-4
    model = _model()
    history = model.fit(X, y, mode="batch", epochs=40, lr=lr, lr_schedule="adaptive",
                        shuffle=False)
    # Epoch 1 sets the best; epochs 2-12 are 11 without improvement (> 10).
    # After two drops the rate is 4e-7, at most 1e-6: no third.
    assert history.lr_drops == [12, 23]
    assert model.train_state.lr_scale == pytest.approx(1 / 25)
    short = _model()
    short.fit(X, y, mode="batch", epochs=13, lr=lr, lr_schedule="adaptive", shuffle=False)
    for got, w in zip(_host(short), _batch_epochs([lr] * 12 + [lr / 5], X, y)):
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-15)


def test_adaptive_keeps_an_improving_rate_and_stops_dividing_at_1e_6():
    X, y = _data()
    history = _model().fit(X, y, mode="batch", epochs=30, lr=0.05, lr_schedule="adaptive")
    assert history.lr_drops == []
    history = _model().fit(X, y, mode="batch", epochs=30, lr=1e-6, lr_schedule="adaptive")
    assert history.lr_drops == []
    rate = AdaptiveRate(4e-6)
    drops = [e for e in range(1, 80) if rate.after_epoch({"loss": 1.0})]
    assert drops == [12] and rate.scale == pytest.approx(0.2)  # 4e-6 / 5 < 1e-6: no more


def test_adaptive_watches_the_validation_loss_when_there_is_one():
    rate = AdaptiveRate(0.1, patience=2)
    figures = [{"loss": 1.0 / e, "val_loss": 1.0} for e in range(1, 6)]
    assert [rate.after_epoch(f) for f in figures] == [False, False, False, True, False]


def test_resumed_schedules_go_on_where_they_were():
    X, y = _data()
    kw = dict(mode="minibatch", batch_size=16, lr=0.05, lr_schedule="invscaling", alpha=0.01)
    whole = _model()
    whole.fit(X, y, epochs=6, **kw)
    parts = _model()
    parts.fit(X, y, epochs=3, **kw)
    parts.fit(X, y, epochs=3, resume=True, **kw)
    for a, b in zip(_host(whole), _host(parts)):
        np.testing.assert_array_equal(a, b)


def test_the_adaptive_factor_survives_a_checkpoint(tmp_path):
    X, y = _data()
    model = _model()
    model.fit(X, y, mode="batch", epochs=15, lr=1e-5, lr_schedule="adaptive")
    model.save(tmp_path / "m.npz")
    loaded = nb.MLP.load(tmp_path / "m.npz")
    assert loaded.train_state.lr_scale == pytest.approx(0.2)
    whole = _model()
    whole.fit(X, y, mode="batch", epochs=20, lr=1e-5, lr_schedule="adaptive")
    loaded.fit(X, y, mode="batch", epochs=5, lr=1e-5, lr_schedule="adaptive", resume=True)
    for a, b in zip(_host(whole), _host(loaded)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_no_penalty_and_no_schedule_leave_the_named_optimizer():
    options = FitOptions.check(optimizer="adam", lr=0.01)
    plan = nb.data.make_plan("minibatch", 100, 10)
    assert fit_optimizer(options, plan, 2, "mean") is options.optimizer
    wrapped = fit_optimizer(FitOptions.check(alpha=0.1), plan, 2, "mean")
    assert wrapped.name is None  # so executors that know only the named updates decline it


@pytest.mark.parametrize("option, value, error, match", [
    ("alpha", -0.1, ValueError, "alpha must be a finite number >= 0"),
    ("alpha", float("nan"), ValueError, "alpha must be"),
    ("power_t", -1, ValueError, "power_t must be"),
    ("lr_schedule", "cosine", ValueError, r"unknown lr_schedule 'cosine'.*invscaling"),
])
def test_bad_penalty_or_schedule_is_refused_by_name(option, value, error, match):
    X, y = _data()
    with pytest.raises(error, match=match):
        _model().fit(X, y, epochs=1, **{option: value})


def _softmax_blowup():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    model = nb.MLP([4, 8, 3], output_activation="softmax", loss="cross_entropy", seed=0)
    return model, X, y


def test_a_loss_that_grows_orders_of_magnitude_warns_though_finite():
    model, X, y = _softmax_blowup()
    with pytest.warns(DivergenceWarning, match=r"times the .* it started from") as caught:
        history = model.fit(X, y, lr=1e5, epochs=5)
    assert history.diverged is None and np.isfinite(history.loss[-1])
    assert caught[0].filename == __file__  # the caller's line


def test_a_loss_that_falls_does_not_warn():
    model, X, y = _softmax_blowup()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        for mode in ("batch", "minibatch", "sgd"):
            model.fit(X, y, mode=mode, lr=0.05, epochs=3)


def test_the_growth_is_measured_from_the_untrained_loss_in_batch_mode_too():
    # Batch mode's first epoch loss is the starting loss itself.
    X, y = _data()
    with pytest.warns(DivergenceWarning, match="times the"):
        history = _model().fit(X, y, mode="batch", lr=3.0, epochs=6)
    assert history.loss[-1] > 100 * history.loss[0] and history.diverged is None


def test_cli_takes_alpha_and_the_schedule_and_a_resume_carries_them(tmp_path, capsys):
    path = tmp_path / "m.npz"
    cli.main(["train", "--dataset", "moons", "--epochs", "3", "--alpha", "0.01",
                 "--lr-schedule", "invscaling", "--quiet", "--json", "--save", str(path)])
    summary = json.loads(capsys.readouterr().out)
    assert (summary["alpha"], summary["lr_schedule"]) == (0.01, "invscaling")
    cli.main(["train", "--dataset", "moons", "--epochs", "2", "--resume", str(path),
                 "--quiet", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert (summary["alpha"], summary["lr_schedule"], summary["epochs_done"]) == (
        0.01, "invscaling", 5)


# -- the optimizer wrappers themselves (nnbackend.optim), on NumPy arrays -------------


def test_l2_penalty_without_a_mask_penalises_every_parameter():
    from nnbackend.optim import l2_penalty, sgd

    params, grads = [np.array([2.0, -4.0]), np.array([1.0])], [np.zeros(2), np.zeros(1)]
    opt = l2_penalty(sgd(0.5), 0.1)
    new, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(new[0], params[0] * (1 - 0.5 * 0.1))
    np.testing.assert_allclose(new[1], params[1] * (1 - 0.5 * 0.1))
    new, _ = l2_penalty(sgd(0.5), 0.1, [True, False]).update(grads, (), params)
    np.testing.assert_array_equal(new[1], params[1])


def test_scheduled_momentum_puts_the_factor_inside_the_velocity():
    # scikit-learn's SGD: v <- beta·v - lr_t·g, so a changing rate stays in v.
    from nnbackend.optim import momentum, scheduled

    lr, beta, g = 0.1, 0.9, np.array([1.0, -2.0])
    opt = scheduled(momentum(lr, beta), lambda count: 0.5 ** count)
    params = [np.array([0.0, 0.0])]
    state = opt.init(params)
    for _ in range(3):
        params, state = opt.update([g], state, params)
    v1 = 1.0 * g
    v2 = beta * v1 + 0.5 * g
    v3 = beta * v2 + 0.25 * g
    np.testing.assert_allclose(params[0], -lr * (v1 + v2 + v3), rtol=1e-14)
    assert state.count == 3


def test_a_scheduled_adam_scales_its_steps():
    from nnbackend.optim import adam, scheduled

    # Adam's step at half the rate is half its step (scaling its gradients
    # instead would change nothing: Adam is invariant to their scale).
    g = [np.array([0.3, -1.0])]
    halved = scheduled(adam(0.01), lambda count: 0.5)
    q = [np.array([1.0, 2.0])]
    t = halved.init(q)
    want = [np.array([1.0, 2.0])]
    state = adam(0.005).init(want)
    for _ in range(3):
        q, t = halved.update(g, t, q)
        want, state = adam(0.005).update(g, state, want)
    np.testing.assert_allclose(q[0], want[0], rtol=1e-13)
    assert not np.allclose(q[0], [1.0, 2.0])


def test_scheduled_defaults_to_the_plain_rate():
    from nnbackend.optim import scheduled, sgd

    params, g = [np.array([1.0])], [np.array([2.0])]
    opt = scheduled(sgd(0.1))
    new, state = opt.update(g, opt.init(params), params)
    np.testing.assert_allclose(new[0], [0.8], rtol=1e-15)
    assert state.count == 1


def test_invscaling_holds_the_rate_within_an_epoch():
    from nnbackend.optim import inverse_scaling

    factor = inverse_scaling(0.5, n_samples=10, steps_per_epoch=4)
    assert [factor(c) for c in range(5)] == [1.0] * 4 + [11 ** -0.5]


def test_invscaling_of_a_warm_fit_takes_a_count_of_any_kind():
    # A CUDA graph's count is a float64 0-D array (a bool array times a float
    # is outside the standard), a host loop's an int.
    xp = pytest.importorskip("array_api_strict")
    from nnbackend.optim import inverse_scaling

    factor = inverse_scaling(0.5, n_samples=120, steps_per_epoch=8, samples_before=240,
                             first_epoch_initial=True)
    for count, want in [(factor.start, 1.0), (factor.start + 8, 361 ** -0.5)]:
        assert factor(count) == want
        assert float(factor(np.float64(count))) == want
        assert float(factor(xp.asarray(float(count), dtype=xp.float64))) == want


@pytest.mark.parametrize("backend", ["numpy", "strict", "torch"])
def test_a_schedule_returning_numpy_scalars_keeps_the_fit_in_its_dtype(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    X, y = _data()
    fits = []
    for schedule in (lambda t: np.exp(-t / 100), lambda t: float(np.exp(-t / 100))):
        model = nb.MLP([3, 5, 1], output_activation="identity", backend=backend,
                       dtype="float32", seed=1)
        model.fit(X, y, epochs=2, batch_size=8, optimizer="adam", lr=0.05,
                  lr_schedule=schedule)
        assert all(str(p.dtype).endswith("float32") for p in model.flat_params)
        fits.append([to_numpy(model.backend, p) for p in model.flat_params])
    for got, want in zip(*fits):
        np.testing.assert_array_equal(got, want)


def test_an_optimizer_state_that_does_not_fit_is_refused_by_field():
    from nnbackend.optim import momentum, state_from_fields

    template = momentum(0.1).init([np.zeros(2)])
    with pytest.raises(ValueError, match=r"optimizer state has fields \['mu', 'velocity'\], "
                                         r"expected \['velocity'\]"):
        state_from_fields(template, {"mu": 0}, {"velocity": [np.zeros(2)]})
    with pytest.raises(ValueError, match="field 'velocity' does not match the parameters"):
        state_from_fields(template, {"velocity": 0}, {})


@pytest.mark.parametrize("bad", [-0.5, float("inf"), float("nan")])
def test_the_wrappers_refuse_a_bad_coefficient(bad):
    from nnbackend.optim import inverse_scaling, l2_penalty, sgd

    with pytest.raises(ValueError, match="coef must be a finite number >= 0"):
        l2_penalty(sgd(0.1), bad)
    with pytest.raises(ValueError, match="power_t must be a finite number >= 0"):
        inverse_scaling(bad, 10, 2)


def test_state_fields_refuses_a_wrapper_state_and_takes_the_wrapped_one():
    params = [np.ones((2, 3)), np.zeros(3)]
    state = nb.optim.scheduled(nb.optim.adam(0.01)).init(params)
    with pytest.raises(TypeError, match=r"'inner' of ScheduledState.*state\.inner\[0\]"):
        nb.optim.state_fields(state)
    scalars, arrays = nb.optim.state_fields(state.inner[0])
    assert scalars == {"count": 0} and [a.shape for a in arrays["mu"]] == [(2, 3), (3,)]
    rebuilt = nb.optim.state_from_fields(state.inner[0], scalars, arrays)
    assert rebuilt.count == 0 and rebuilt.nu[0].shape == (2, 3)


@pytest.mark.parametrize("mode", ["minibatch", "batch"])
def test_jax_declines_a_schedule_it_cannot_trace_and_the_reference_loop_runs_it(mode):
    import math

    try:
        nb.get_backend("jax")
    except nb.BackendUnavailableError as exc:
        pytest.skip(f"needs jax: {exc}")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X.sum(axis=1) > 0).astype(float)
    fits = {}
    for name, factor in (("step", lambda t: 1.0 if t < 10 else 0.1),
                         ("math", lambda t: math.exp(-0.01 * t)),
                         ("arithmetic", lambda t: 1.0 / (1.0 + 0.01 * t))):
        model = nb.MLP([3, 8, 1], loss="bce", backend="jax", dtype="float32", seed=0)
        hist = model.fit(X, y, mode=mode, epochs=2, lr=0.1, lr_schedule=factor)
        fits[name] = hist
    for name in ("step", "math"):
        assert fits[name].executor == "reference"
        assert "a learning-rate schedule of the caller's that jax cannot trace" \
            in fits[name].executor_reason
    assert fits["arithmetic"].executor.startswith("jax-")


def test_invscaling_traced_past_two_to_the_31_samples():
    # A traced count is int32 without x64: 2,200 epochs of a million rows
    # wrapped to a negative count of samples and a NaN rate.
    jax = pytest.importorskip("jax", reason="needs jax")
    from nnbackend.optim import inverse_scaling

    factor = inverse_scaling(0.5, 1_000_000, 31_250, samples_before=3_000_000_000)
    assert factor.start == 3_000 * 31_250  # the samples before, in this fit's steps
    count = factor.start + 2_200 * 31_250
    host = factor(count)
    traced = float(jax.jit(factor)(jax.numpy.int32(count)))
    assert host == (2_200 * 1_000_000 + 3_000_000_000 + 1) ** -0.5
    assert traced == pytest.approx(host, rel=1e-6)
