"""The MLP class, its one-epoch stepper and its pickling, held to what a user
relies on: tests written by the hand mutation audit of 2026-12-07h, one (or a
few) per mutant of ``nnbackend/model.py``, ``model_epochs.py`` and
``model_pickle.py`` that the earlier tests let through. Each comment names the
mutants it kills and what went wrong under them."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import nnbackend as nb
from conftest import child_pythonpath
from nnbackend.model import epoch_function

ROOT = Path(__file__).parent.parent


def _data(n=40, features=3, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, features))
    return X, (X[:, 0] > 0).astype(float)


def _child(code):
    """The last line a fresh Python prints, as JSON (JAX on the CPU, x64 off)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNBACKEND")}
    env.update(PYTHONPATH=child_pythonpath(ROOT), JAX_ENABLE_X64="0", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


# -- model.py: the constructor ------------------------------------------------------------


@pytest.mark.parametrize("seed, error, match", [
    (True, TypeError, "seed must be an integer or None, got True"),
    (-1, ValueError, r"seed must be >= 0 \(NumPy's generators take no negative seeds\), got -1"),
])
def test_a_seed_numpy_would_misread_or_refuse_is_refused_by_name(seed, error, match):
    # M01 (bool let through): seed=True drew the weights of seed 1 unremarked.
    # M02 (only seeds below -1 refused): seed=-1 met NumPy's own error.
    with pytest.raises(error, match=match):
        nb.MLP([2, 1], seed=seed)


def test_the_models_seed_draws_the_fits_shuffling_where_the_fit_has_none():
    # M03 (the model's seed kept as 0): config() said seed 0, and a fit without
    # its own seed shuffled as seed 0 rather than the model's seed. M107 (the
    # network handed to the training given seed 0): the same shuffling. M109
    # (config()'s seed 0): config() said seed 0.
    X, y = _data(n=40)
    params = nb.MLP([3, 4, 1], seed=0).params
    seeded = nb.MLP([3, 4, 1], seed=7, params=params)
    assert seeded.seed == 7 and seeded.config()["seed"] == 7
    seeded.fit(X, y, batch_size=4, epochs=2)
    told = nb.MLP([3, 4, 1], seed=0, params=params)
    told.fit(X, y, batch_size=4, epochs=2, seed=7)
    other = nb.MLP([3, 4, 1], seed=0, params=params)
    other.fit(X, y, batch_size=4, epochs=2)
    for a, b, c in zip(seeded.flat_params, told.flat_params, other.flat_params):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(seeded.flat_params, other.flat_params))


def test_a_model_given_only_a_device_is_named_and_does_not_follow_its_data():
    # M06 (a device alone not naming the backend): MLP(..., device="cpu")
    # moved itself, weights and all, to the backend of the first array-API X it
    # was given, where a named model refuses that X by name.
    xp = pytest.importorskip("array_api_strict")
    model = nb.MLP([3, 1], device="cpu")
    X = xp.asarray(np.ones((4, 3)))
    with pytest.raises(TypeError, match="X is a strict array but the model's backend is 'numpy'"):
        model.predict(X)
    assert model.backend.name == "numpy"


def test_the_initial_weights_are_drawn_for_the_hidden_activation():
    # M12 (every network drawn as for sigmoid): a relu or tanh network started
    # from the sigmoid scale, not the one init_params draws for its activation.
    # M11 (the weights drawn with seed 0 whatever the seed): seed=5 drew seed 0's.
    from nnbackend.data import init_params

    for activation in ("relu", "tanh"):
        model = nb.MLP([3, 4, 1], hidden_activation=activation, seed=5, dtype="float64")
        want = init_params([3, 4, 1], activation, np.random.default_rng(5))
        for got, expected in zip(model.flat_params, want):
            np.testing.assert_array_equal(got, expected)


def test_the_repr_names_the_dtype():
    # M16: the repr left out the dtype, the one setting two models of the same
    # architecture on the same device differ by.
    assert repr(nb.MLP([3, 1], dtype="float64")).endswith("device='cpu', dtype='float64')")


# -- model.py: predict, loss_and_grads, evaluate ------------------------------------------


@pytest.mark.parametrize("method", ["predict", "loss_and_grads", "evaluate"])
@pytest.mark.parametrize("chunk_size, error", [(0, ValueError), ("all", TypeError)])
def test_a_bad_chunk_size_is_refused_by_each_method(method, chunk_size, error):
    # M43 / M47 / M50 (predict / loss_and_grads / evaluate without the check):
    # chunk_size=0 or 'all' reached the chunking unchecked.
    model = nb.MLP([3, 4, 1])
    X, y = _data(n=6)
    args = (X,) if method == "predict" else (X, y)
    with pytest.raises(error, match="chunk_size must be 'auto' or an integer >= 1, got"):
        getattr(model, method)(*args, chunk_size=chunk_size)


def test_a_standardizing_regression_predicts_in_the_targets_units_on_its_device():
    # M44 (predict without the targets' inverse scaling): a model with
    # standardize=True predicted standardized values (about 0, for targets
    # about 1000), on a device other than the default one.
    xp = pytest.importorskip("array_api_strict")
    device1 = xp.Device("device1")
    X, _ = _data()
    y = 1000 + 100 * X[:, 0]
    model = nb.MLP([3, 4, 1], output_activation="identity", dtype="float64", standardize=True,
                   backend="strict", device=device1)
    model.fit(X, y, mode="batch", epochs=50, lr=0.5)
    out = model.predict(X)
    assert type(out).__module__.startswith("array_api_strict") and out.device == device1
    got = np.asarray(out.to_device(xp.Device("CPU_DEVICE")))[:, 0]
    assert abs(got.mean() - 1000) < 20 and np.corrcoef(got, y)[0, 1] > 0.9


def test_evaluates_loss_is_loss_and_grads_to_the_last_float64_digits():
    # M55 (the summed loss read back as float32): a float64 model's evaluate
    # lost half its digits against loss_and_grads. M51 (divided by the rows
    # under reduction="sum" too): evaluate's sum was a mean.
    X, y = _data(n=50)
    for reduction in ("mean", "sum"):
        model = nb.MLP([3, 4, 1], dtype="float64", seed=2, reduction=reduction)
        got = model.evaluate(X, y)["loss"]
        assert got == pytest.approx(model.loss_and_grads(X, y)[0], rel=1e-13, abs=0)


def test_the_accuracy_of_a_softmax_is_the_share_of_rows_whose_class_is_right():
    # M54 (the softmax scored as separate outputs): a network that picks class 0
    # for every row of ids [0, 0, 1, 2] scored 8/12 (outputs right) for 2/4.
    params = [(np.zeros((2, 3)), np.array([5.0, 0.0, 0.0]))]
    model = nb.MLP([2, 3], output_activation="softmax", loss="cross_entropy", params=params,
                   dtype="float64")
    assert model.evaluate(np.ones((4, 2)), [0, 0, 1, 2])["accuracy"] == 0.5


def test_the_accuracy_of_several_sigmoid_outputs_is_over_every_output():
    # M52 (the count of outputs left out of the denominator): three
    # sigmoid outputs of 4 rows, 12 outputs in all, of which a network that
    # predicts [1, 0, 1] for every row gets 7 right (accuracy 7/4 under it).
    params = [(np.zeros((2, 3)), np.array([5.0, -5.0, 5.0]))]
    model = nb.MLP([2, 3], params=params, dtype="float64")
    y = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=float)
    assert model.evaluate(np.ones((4, 2)), y)["accuracy"] == pytest.approx(7 / 12)


def test_host_params_leave_the_backend_to_the_environment(monkeypatch):
    # M09 (host params taken as a backend's): NumPy params made the model a
    # NumPy one though $NNBACKEND_BACKEND named another backend.
    pytest.importorskip("array_api_strict")
    monkeypatch.setenv("NNBACKEND_BACKEND", "strict")
    model = nb.MLP([3, 1], params=[(np.ones((3, 1)), np.zeros(1))])
    assert model.backend.name == "strict"


def test_params_of_a_backend_decide_it_and_a_device_named_is_one_of_its_own():
    # M10 (the params' backend never taken): strict params made a NumPy model,
    # against the docstring ("the backend of the arrays in params").
    # M08 (a named device overrode the params' backend): strict params with
    # device="cpu" made a NumPy model, copying the weights off strict, and
    # with strict's "device1" the model was refused as NumPy's.
    xp = pytest.importorskip("array_api_strict", reason="needs array-api-strict")
    params = [(xp.ones((3, 1), dtype=xp.float64), xp.zeros(1, dtype=xp.float64))]
    assert nb.MLP([3, 1], params=params, dtype="float64").backend.name == "strict"
    model = nb.MLP([3, 1], params=params, device="cpu", dtype="float64")
    assert model.backend.name == "strict" and model.backend.device == xp.Device("CPU_DEVICE")
    on_device1 = nb.MLP([3, 1], params=params, device="device1", dtype="float64")
    assert on_device1.backend.name == "strict"
    assert all(p.device == xp.Device("device1") for p in on_device1.flat_params)
    np.testing.assert_array_equal(on_device1.backend.to_host(on_device1.flat_params[0]), 1.0)
    with pytest.raises(ValueError, match="backend 'strict' has no device 'device9'"):
        nb.MLP([3, 1], params=params, device="device9", dtype="float64")


def test_a_model_that_follows_its_data_follows_it_to_another_device_of_its_backend():
    # M22 (only the backend's name compared before moving): a model on strict's
    # CPU_DEVICE stayed there when given an X on strict's device1.
    xp = pytest.importorskip("array_api_strict")
    model = nb.MLP([3, 1], dtype="float64")
    model.predict(xp.asarray(np.ones((4, 3))))
    assert model.backend.name == "strict" and model.backend.device == xp.Device("CPU_DEVICE")
    device1 = xp.Device("device1")
    out = model.predict(xp.asarray(np.ones((4, 3)), device=device1))
    assert model.backend.device == device1 and out.device == device1
    assert all(p.device == device1 for p in model.flat_params)


def test_a_warm_fit_moved_to_float32_trains_and_keeps_float32_weights():
    # M25 (the weights moved without the new dtype): after set_params(dtype=
    # "float32") a warm fit kept float64 weights, so a "float32" model computed
    # in float64 (promotion) and kept float64 weights after it.
    X, y = _data(n=40)
    clf = nb.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, warm_start=True, shuffle=False,
                           random_state=0, backend="numpy", dtype="float64")
    with pytest.warns(Warning):  # ConvergenceWarning: 2 epochs
        clf.fit(X, y)
    clf.set_params(dtype="float32")
    with pytest.warns(Warning):
        clf.fit(X, y)
    assert clf.model_.dtype == "float32"
    assert {a.dtype for a in clf.model_.flat_params} == {np.dtype(np.float32)}


# -- model.py: fit ------------------------------------------------------------------------


def test_fit_hands_every_option_it_was_given_to_the_training(monkeypatch, capsys):
    # M77 (power_t replaced by its default on its way to FitOptions.check):
    # an invscaling fit ran with power_t 0.5 whatever it was given, and said
    # nothing. The other options' own tests caught theirs (M57-M76); here each
    # option is given a value other than its default and what train() receives
    # is read back, so that none can drift unseen.
    import nnbackend.model as model_module

    seen = []
    real = model_module.train

    def train(network, X, Y, options, **kwargs):
        seen.append(options)
        return real(network, X, Y, options, **kwargs)

    monkeypatch.setattr(model_module, "train", train)
    X, y = _data(n=40)
    model = nb.MLP([3, 4, 1], dtype="float64")
    model.fit(X, y, mode="sgd", epochs=1)
    assert seen[-1].mode == "sgd"
    model.fit(X, y, mode="minibatch", batch_size=7, epochs=2, lr=0.05, optimizer="momentum",
              optimizer_options={"beta": 0.8}, shuffle=False, seed=3, progress=True,
              chunk_size=5, validation_split=0.25, patience=4, min_delta=0.01,
              restore_best_weights=False, callback=lambda epoch, figures: None,
              executor="reference", alpha=1e-3, lr_schedule="invscaling", power_t=0.25,
              precision="highest")
    got = seen[-1]
    assert (got.mode, got.batch_size, got.epochs, got.lr, got.optimizer_name) == (
        "minibatch", 7, 2, 0.05, "momentum")
    assert got.optimizer.hyper["beta"] == 0.8
    assert (got.shuffle, got.seed, got.progress, got.chunk_size) == (False, 3, True, 5)
    assert (got.validation_split, got.patience, got.min_delta, got.restore_best_weights) == (
        0.25, 4, 0.01, False)
    assert got.callback is not None and (got.executor, got.alpha) == ("reference", 1e-3)
    assert (got.lr_schedule, got.power_t, got.precision) == ("invscaling", 0.25, "highest")
    model.fit(X, y, batch_size=7, epochs=1, resume=True, optimizer="momentum",
              validation_split=0.25,
              restore_best_weights=False, lr_schedule="invscaling", power_t=0.25)
    assert seen[-1].resume is True
    capsys.readouterr()


def test_validation_data_of_three_parts_is_refused_as_a_pair():
    # M95 (only TypeError taken as a bad pair): a triple met Python's own
    # "too many values to unpack".
    X, y = _data()
    with pytest.raises(ValueError, match=r"validation_data must be a pair \(X_val, y_val\)"):
        nb.MLP([3, 4, 1]).fit(X, y, epochs=1, validation_data=(X, y, y))


def test_validation_targets_of_the_wrong_length_are_named_y_val():
    # M97 (y_val checked under the name y): the refusal of validation targets
    # of the wrong length named the training targets.
    X, y = _data()
    with pytest.raises(ValueError, match="^y_val has 4 rows"):
        nb.MLP([3, 4, 1]).fit(X, y, epochs=1, validation_data=(X[:5], y[:4]))


def test_a_fit_that_raises_leaves_no_attribute_its_callback_added():
    # M104 (the model's attributes updated back, not replaced): what the fit
    # (here its callback) added to the model stayed after the fit raised,
    # though such a fit leaves the model as it was.
    X, y = _data()
    model = nb.MLP([3, 4, 1])

    def callback(epoch, figures):
        model.note = epoch
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        model.fit(X, y, epochs=2, callback=callback)
    assert not hasattr(model, "note")


def test_ctrl_c_in_a_fit_leaves_the_model_as_it_was():
    # M105 (only an Exception undone): a KeyboardInterrupt kept the scaler the
    # fit had learned from data it did not train on.
    X, y = _data()
    model = nb.MLP([3, 4, 1], standardize=True)
    before = [np.array(p) for p in model.flat_params]

    def callback(epoch, figures):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=2, batch_size=8, callback=callback)
    assert model.feature_scaler is None and model.train_state is None
    for got, want in zip(model.flat_params, before):
        np.testing.assert_array_equal(got, want)


# -- model.py: config and the module's fit ----------------------------------------------


def test_config_rebuilds_the_model_and_its_checkpoint(tmp_path):
    # M109 / M112 (config() gave the seed / the reduction as its default):
    # MLP(**config) built another model, and since config() is the
    # checkpoint's header, a reduction="sum" model loaded as "mean".
    model = nb.MLP([3, 4, 2], hidden_activation="tanh", output_activation="softmax",
                   loss="cross_entropy", reduction="sum", dtype="float64", seed=9,
                   standardize="features")
    again = nb.MLP(**model.config())
    assert again.config() == model.config() and repr(again) == repr(model)
    assert (again.reduction, again.dtype, again.seed, again.standardize) == (
        "sum", "float64", 9, "features")
    model.save(tmp_path / "m.npz")
    loaded = nb.MLP.load(tmp_path / "m.npz")
    assert (loaded.reduction, loaded.seed) == ("sum", 9)


def test_the_module_level_fit_passes_its_options_on():
    # M117 (nnbackend.model.fit dropped **options): fit(model, X, y, epochs=2)
    # trained the default 100 epochs.
    from nnbackend.model import fit

    X, y = _data()
    assert len(fit(nb.MLP([3, 4, 1]), X, y, epochs=2, batch_size=8).loss) == 2


# -- model.py: backend="auto" ------------------------------------------------------------


@pytest.fixture
def auto_numpy(tmp_path, monkeypatch):
    """A profile that picks numpy:cpu, in a cache directory of the test's own."""
    from nnbackend.autoselect import set_profile
    from test_auto import _forcing

    monkeypatch.setenv("NNBACKEND_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NNBACKEND_BACKEND", raising=False)
    previous = set_profile(_forcing("numpy:cpu"))
    yield
    set_profile(previous)


def test_auto_prices_a_fit_on_lists_and_says_how_long_choosing_took(auto_numpy):
    # M30 (the rows counted as X.shape[0] only): a list X has no shape, so auto
    # made no choice at all and the history's backend_choice was None.
    # M33 (choice_seconds 0): the time the choice took was not measured.
    X, y = _data()
    hist = nb.MLP([3, 4, 1], backend="auto").fit(X.tolist(), y.tolist(), epochs=1)
    assert hist.backend_choice["chosen"] == "numpy:cpu" and hist.backend_choice["candidates"]
    assert hist.backend_choice["choice_seconds"] > 0


def test_auto_prices_the_fit_in_the_models_dtype_and_rows(auto_numpy):
    # M35 (priced as float32): a float64 fit was priced as a float32 one (the
    # rows are held by test_auto's own tests).
    X, y = _data()
    hist = nb.MLP([3, 4, 1], backend="auto", dtype="float64").fit(X, y, epochs=1)
    work = hist.backend_choice["workload"]
    assert (work["dtype"], work["n_samples"]) == ("float64", 40)


def test_a_resumed_auto_fit_records_the_device_and_executor_it_stays_with(auto_numpy):
    # M115 / M116 (device / executor None in the resumed fit's record): the
    # record of a resumed auto fit did not say where, or how, it ran.
    X, y = _data()
    model = nb.MLP([3, 4, 1], backend="auto")
    model.fit(X, y, epochs=1, batch_size=8)
    resumed = model.fit(X, y, epochs=1, batch_size=8, resume=True)
    choice = resumed.backend_choice
    assert choice["device"] == model.backend.device_spec() == "cpu"
    assert choice["executor"] == resumed.executor == "reference"


def test_a_zero_d_x_keeps_its_own_error_under_auto(auto_numpy):
    # M31 (only AttributeError and TypeError taken as "not data"): X.shape[0] of
    # a 0-D array raised IndexError "tuple index out of range" from the backend
    # choice, where the input check names the shape.
    with pytest.raises(ValueError, match=r"X must be 2-D \(n_samples, n_features\); got shape"):
        nb.MLP([2, 1], backend="auto").fit(np.array(1.0), [0, 1])


# -- model_pickle.py ------------------------------------------------------------------


def test_a_float64_jax_model_unpickled_with_x64_off_keeps_every_digit():
    # P01 (the weights pickled as JAX arrays), P02/P03 (the optimizer state so):
    # JAX's own pickling makes a float64 array float32 where x64 is off, so the
    # model came back in float64 with weights and Adam moments rounded to float32.
    pytest.importorskip("jax", reason="needs jax (the 'jax' extra)")
    got = _child("""
        import json, pickle, jax, numpy as np, nnbackend as nb
        X = np.random.default_rng(0).normal(size=(24, 3)); y = (X[:, 0] > 0).astype(float)
        model = nb.MLP([3, 4, 1], backend="jax", dtype="float64")
        model.fit(X, y, batch_size=8, epochs=2, optimizer="adam")
        arrays = lambda m: list(m.flat_params) + list(m.train_state.state_arrays["mu"])
        before = [np.asarray(a) for a in arrays(model)]
        data = pickle.dumps(model)
        jax.config.update("jax_enable_x64", False)
        again = pickle.loads(data)
        after = [np.asarray(a) for a in arrays(again)]
        print(json.dumps([[str(a.dtype) for a in after],
                          [bool(np.array_equal(a, b)) for a, b in zip(before, after)]]))
        """)
    dtypes, equal = got
    assert set(dtypes) == {"float64"} and all(equal), got


def test_a_callback_keeps_the_weights_it_was_shown_fit_for_autograd():
    # E02 (the epoch's weights given to the callback without Backend.export): on
    # torch they were inference-mode tensors, so weights the callback kept could
    # not take part in autograd after the fit ("Inference tensors cannot be
    # saved for backward").
    torch = pytest.importorskip("torch", reason="needs torch (the 'torch' extra)")
    X, y = _data()
    model = nb.MLP([3, 4, 1], backend="torch", dtype="float64")
    kept = []
    model.fit(X, y, mode="batch", epochs=2, callback=lambda e, f: kept.append(model.params[0][0]))
    x = torch.ones_like(kept[-1], requires_grad=True)
    (x * kept[-1]).sum().backward()
    assert torch.equal(x.grad, kept[-1])


def test_a_callback_of_a_second_fit_sees_no_optimizer_state_and_the_fit_sets_it_after(
        tmp_path):
    # E01 (train_state left as the fit's start inside the callback): a save in
    # the callback of a resumable fit wrote the state of the fit's start beside
    # the epoch's weights, and a resume from that file went on from a state
    # its weights had left.
    X, y = _data()
    model = nb.MLP([3, 4, 1], dtype="float64")
    model.fit(X, y, batch_size=8, epochs=1, optimizer="adam")
    seen = []

    def callback(epoch, figures):
        seen.append(model.train_state)
        model.save(tmp_path / "m.npz")

    model.fit(X, y, batch_size=8, epochs=2, optimizer="adam", resume=True, callback=callback)
    assert seen == [None, None] and model.train_state is not None
    assert nb.MLP.load(tmp_path / "m.npz").train_state is None


# -- model_epochs.py: epoch_function ------------------------------------------------------


@pytest.mark.parametrize("settings", [
    dict(mode="minibatch", batch_size=5, lr=0.37, optimizer="adam", shuffle=True, seed=3),
    dict(mode="sgd", lr=0.2, optimizer="momentum", shuffle=False),
    dict(mode="batch", lr=0.3, chunk_size=1, executor="reference"),
], ids=["minibatch", "sgd", "batch"])
def test_a_step_of_epoch_function_is_an_epoch_of_fit_with_the_same_settings(settings):
    # E07-E11 (lr, optimizer, shuffle, seed or chunk_size not passed on to the
    # stepper): the benchmarks timed an epoch other than the one they asked for
    # (E07: lr 0.1 whatever was asked, E08: sgd in place of adam, E09/E10:
    # shuffled rows or the model's seed, E11: the default chunks), though the
    # step is documented as the fit's code.
    X, y = _data(n=64, features=3, seed=1)
    X = X.astype(np.float32)
    fitted = nb.MLP([3, 5, 1], seed=4)
    hist = fitted.fit(X, y, epochs=1, **settings)
    stepped = nb.MLP([3, 5, 1], seed=4)
    step = epoch_function(stepped, X, y, **settings)
    loss = step()
    assert step.executor == hist.executor
    assert loss == pytest.approx(hist.loss[0] * len(X), rel=1e-6)
    for a, b in zip(fitted.flat_params, stepped.flat_params):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if settings.get("chunk_size") == 1:  # the chunks change the bits: the case tells them
        whole = nb.MLP([3, 5, 1], seed=4)
        whole.fit(X, y, epochs=1, **dict(settings, chunk_size="auto"))
        assert any(not np.array_equal(a, b)
                   for a, b in zip(whole.flat_params, stepped.flat_params))


def test_epoch_function_passes_a_named_executor_on():
    # E12 (the executor not passed on): on NumPy 'auto' runs the reference loop
    # anyway; on JAX the benchmarks asked for the reference loop timed jax-scan.
    pytest.importorskip("jax", reason="needs jax (the 'jax' extra)")
    X, y = _data()
    model = nb.MLP([3, 4, 1], backend="jax")
    assert epoch_function(model, X, y, executor="auto").executor != "reference"
    step = epoch_function(model, X, y, executor="reference")
    assert step.executor == "reference"
    step()


def test_epoch_function_has_the_fits_defaults():
    # E25 / E26 / E27 / E29 (a default of epoch_function changed: mode,
    # batch_size, lr, executor): epoch_function is documented as the fit's epoch, so a
    # benchmark that left an argument out timed an epoch no default fit runs.
    # (test_options_edges holds MLP.fit, FitOptions.check and epoch_stepper to
    # the defaults, not epoch_function.)
    import inspect

    def defaults(function):
        return {name: p.default for name, p in inspect.signature(function).parameters.items()
                if p.default is not inspect.Parameter.empty}

    fit, stepper = defaults(nb.MLP.fit), defaults(epoch_function)
    assert len(stepper) == 9 and stepper == {name: fit[name] for name in stepper}


@pytest.fixture
def threads_by_size(monkeypatch):
    """A profile that gives 3 BLAS threads to products of 10,000 multiply-adds
    or more, 1 below, on a machine with 4 idle cores."""
    from nnbackend.autoselect import Profile, set_profile
    from nnbackend.backends import blas

    if not blas.available():
        pytest.skip("threadpoolctl absent: NumPy's BLAS threads are not set")
    monkeypatch.setattr(sys.modules["nnbackend.autoselect.choose"], "free_cores", lambda: 4)
    previous = set_profile(Profile({}, {"threshold_madds": 10_000, "threads": 3}, "test"))
    yield
    set_profile(previous)


@pytest.mark.parametrize("n, chunk_size, threads", [(8, "auto", 1), (512, "auto", 3),
                                                     (512, 4, 1)])
def test_the_blas_threads_are_the_profiles_for_the_fits_rows_and_chunks(
        threads_by_size, n, chunk_size, threads):
    # The largest product of a batch epoch of [8, 64, 1] is rows x 8 x 64: 4,096
    # multiply-adds for 8 rows (or chunks of 4), 262,144 for 512.
    # M39 / M98 (the threads priced for 1 row, not the fit's n): 1 thread for
    # 512 rows. M38 (the default chunks, not the fit's chunk_size): 3 threads
    # for chunks of 4 rows. E15 (epoch_function's threads priced for 1 row): the
    # benchmark's epoch ran with other threads than its fit.
    X = np.random.default_rng(0).normal(size=(n, 8))
    y = (X[:, 0] > 0).astype(float)
    model = nb.MLP([8, 64, 1], backend="numpy")
    hist = model.fit(X, y, mode="batch", epochs=1, chunk_size=chunk_size)
    assert hist.blas_threads == threads
    step = epoch_function(model, X, y, mode="batch", chunk_size=chunk_size)
    assert step.blas_threads == threads
