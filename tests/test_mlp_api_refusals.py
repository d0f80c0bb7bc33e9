"""The `nb.MLP` API: inputs, callbacks and figures an adversarial review found mishandled."""

import numpy as np
import pytest

import nnbackend as nb

RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 3))
Y3 = np.arange(12) % 3
NAMES = np.array(["cat", "dog", "emu"])


def _softmax_model(**kwargs):
    return nb.MLP([3, 4, 3], hidden_activation="tanh", output_activation="softmax",
                  loss="cross_entropy", backend="numpy", seed=0, **kwargs)


def _object_array(values):
    a = np.empty(len(values), dtype=object)
    a[:] = list(values)  # keeps NumPy's str_ / bytes_ scalars as they are
    return a


@pytest.mark.parametrize("kind", ["str_", "bytes_"])
def test_object_arrays_of_numpy_text_scalars_are_text_labels(kind):
    # Before: an object array of np.str_ (or np.bytes_) labels, e.g. built from
    # list(np_array_of_str), was refused with "y must hold real numbers (bool, int
    # or float); got dtype object", though text labels are taken (np.str_ is a str).
    labels = NAMES[Y3] if kind == "str_" else NAMES[Y3].astype("S")
    y = _object_array(labels)
    assert type(y[0]).__name__ == kind
    model = _softmax_model()
    hist = model.fit(X, y, mode="batch", epochs=2, lr=0.1)
    reference = _softmax_model()
    expected = reference.fit(X, Y3, mode="batch", epochs=2, lr=0.1)
    assert hist.loss == expected.loss
    assert model.classes_.tolist() == NAMES.tolist()
    assert model.evaluate(X, y) == reference.evaluate(X, Y3)


def test_pandas_object_series_of_numpy_text_scalars_are_text_labels():
    # Before: "y must hold real numbers ...; the columns 'None' (object) do not:
    # encode text as numbers first" for a Series of text labels.
    pd = pytest.importorskip("pandas")
    y = pd.Series(_object_array(NAMES[Y3]), dtype=object)
    model = _softmax_model()
    model.fit(X, y, mode="batch", epochs=1)
    assert model.classes_.tolist() == NAMES.tolist()


def test_classes_can_be_set_from_an_object_array_of_numpy_text_scalars():
    # Before: ValueError "classes_ must be a 1-D list of labels (text or numbers)".
    model = _softmax_model()
    model.classes_ = _object_array(NAMES)
    assert model.classes_.tolist() == NAMES.tolist()


def test_validation_data_of_another_library_is_refused_by_name_not_followed():
    # Before: a model that follows its data (no backend named), fit on NumPy X
    # with torch validation data, moved to torch mid-fit and failed deep inside
    # array_api_compat: AttributeError: 'numpy.dtypes.Float32DType' object has no
    # attribute 'dtype'.
    torch = pytest.importorskip("torch")
    y = (X[:, 0] > 0).astype(float)
    model = nb.MLP([3, 4, 1], loss="bce", seed=0)
    before = [np.array(p) for p in model.flat_params]
    val = (torch.tensor(X[:4]), torch.tensor(y[:4]))
    with pytest.raises(TypeError, match=r"X_val is a torch array but the model's backend is "
                                         r"'numpy'") as info:
        model.fit(X, y, epochs=1, validation_data=val)
    assert info.traceback[-1].path.parts[-2] == "nnbackend"
    assert model.backend.name == "numpy"
    assert all(np.array_equal(a, b) for a, b in zip(before, model.flat_params))


def test_validation_data_of_a_third_library_is_refused_by_name():
    # Before: torch X with jax validation data: TypeError "Cannot interpret
    # 'torch.float32' as a data type" from inside JAX.
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    y = (X[:, 0] > 0).astype(np.float32)
    model = nb.MLP([3, 4, 1], loss="bce", seed=0)
    val = (jnp.asarray(X[:4]), jnp.asarray(y[:4]))
    with pytest.raises(TypeError, match=r"X_val is a jax array but the model's backend is "
                                         r"'torch'"):
        model.fit(torch.tensor(X), torch.tensor(y), epochs=1, validation_data=val)


def test_the_callback_sees_the_weights_of_the_epoch_it_follows(tmp_path):
    # Before: inside callback(epoch, figures) the model still held the weights
    # the fit started from: model.predict gave the same outputs every epoch and
    # model.save in the callback wrote the untrained weights.
    y = (X[:, 0] > 0).astype(float)
    model = nb.MLP([3, 4, 1], hidden_activation="tanh", loss="bce", backend="numpy", seed=0)
    start = model.predict(X).copy()
    seen = []

    def callback(epoch, figures):
        seen.append(model.predict(X).copy())
        model.save(tmp_path / f"epoch{epoch}.npz")

    model.fit(X, y, mode="batch", epochs=3, lr=0.5, callback=callback)
    assert not np.array_equal(seen[0], start)
    assert not np.array_equal(seen[1], seen[0])
    np.testing.assert_array_equal(seen[-1], model.predict(X))
    saved = nb.MLP.load(tmp_path / "epoch3.npz", backend="numpy")
    np.testing.assert_array_equal(saved.predict(X), model.predict(X))
    # Its state is not the last epoch's: no resume from a mid-fit save.
    assert saved.train_state is None


def test_a_fit_whose_callback_raises_still_leaves_the_model_as_it_was():
    # Guards the callback fix: the weights shown to the callback are not kept.
    y = (X[:, 0] > 0).astype(float)
    model = nb.MLP([3, 4, 1], hidden_activation="tanh", loss="bce", backend="numpy", seed=0)
    before = [p.copy() for p in model.flat_params]

    def callback(epoch, figures):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, mode="batch", epochs=3, lr=0.5, callback=callback)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.flat_params))
    assert model.train_state is None


def test_config_returns_a_copy_of_the_layer_sizes():
    # Before: config()["layer_sizes"] was the model's own list: changing the
    # returned dict rebuilt nothing but broke the model ("X has 3 features but
    # the network expects 5").
    model = nb.MLP([3, 4, 1], backend="numpy")
    config = model.config()
    config["layer_sizes"][0] = 5
    assert model.layer_sizes == [3, 4, 1]
    assert model.predict(X).shape == (12, 1)


def test_a_single_sample_given_1d_is_told_to_reshape_as_one_row():
    # Before: predict(X[0]) on a 3-feature network advised only
    # X.reshape(-1, 1), which gives 3 rows of 1 feature and a second refusal.
    model = nb.MLP([3, 4, 1], backend="numpy")
    with pytest.raises(ValueError, match=r"got shape \(3,\).*X\.reshape\(1, -1\)"):
        model.predict(X[0])


def test_a_callback_that_changes_its_figures_does_not_steer_early_stopping():
    # Before: the callback got the very dict early stopping and the 'adaptive'
    # schedule read after it: popping a key raised KeyError: 'loss' inside
    # nnbackend.training, and rewriting the loss stopped the fit early.
    y = (X[:, 0] > 0).astype(float)

    def fit(callback, **kwargs):
        model = nb.MLP([3, 4, 1], hidden_activation="tanh", loss="bce", backend="numpy", seed=0)
        return model.fit(X, y, mode="batch", epochs=4, lr=0.5, callback=callback, **kwargs)

    def pops(epoch, figures):
        figures.clear()

    def rewrites(epoch, figures):
        figures["loss"] = 1e9 if epoch > 1 else 0.0

    plain = fit(None, patience=1)
    assert fit(pops, patience=1).loss == plain.loss
    assert fit(pops, lr_schedule="adaptive").loss == fit(None, lr_schedule="adaptive").loss
    steered = fit(rewrites, patience=1)
    assert (steered.epochs, steered.best_epoch, steered.loss) == (
        plain.epochs, plain.best_epoch, plain.loss)


@pytest.mark.parametrize("layout", ["big-endian", "reversed rows", "longdouble"])
def test_torch_takes_host_arrays_of_every_numpy_layout(layout):
    # Before: on backend='torch', host NumPy data that was big-endian ('>f8'),
    # had negative strides (X[::-1]) or was np.longdouble failed inside torch:
    # ValueError "given numpy array has byte order different from the native
    # byte order" / "At least one stride in the given numpy array is negative"
    # / TypeError "can't convert np.ndarray of type numpy.longdouble", though
    # the docs say these dtypes are converted on every backend.
    pytest.importorskip("torch")
    rows = X[::-1].copy()
    y = (rows[:, 0] > 0).astype(float)
    given = {"big-endian": (rows.astype(">f8"), y.astype(">f8")),
             "reversed rows": (X[::-1], (X[:, 0] > 0).astype(float)[::-1]),
             "longdouble": (rows.astype(np.longdouble), y.astype(np.longdouble))}[layout]

    def fitted(backend, Xg, yg):
        model = nb.MLP([3, 4, 1], hidden_activation="tanh", loss="bce", backend=backend,
                       dtype="float64", seed=0)
        hist = model.fit(Xg, yg, mode="batch", epochs=2, lr=0.5)
        out = model.backend.to_host(model.predict(Xg))
        return hist.loss, np.asarray(out), model.evaluate(Xg, yg), model.loss_and_grads(Xg, yg)[0]

    got, want = fitted("torch", *given), fitted("numpy", rows, y)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    assert got[2]["accuracy"] == want[2]["accuracy"]
    np.testing.assert_allclose(got[3], want[3], rtol=1e-12)


def test_torch_takes_initial_params_of_every_numpy_layout():
    # Before: big-endian or reversed initial params failed inside torch.
    pytest.importorskip("torch")
    host = nb.MLP([3, 4, 1], backend="numpy", dtype="float64").params
    odd = [(W.astype(">f8"), b[::-1].copy()[::-1]) for W, b in host]
    model = nb.MLP([3, 4, 1], backend="torch", dtype="float64", params=odd)
    for (W, b), (W2, b2) in zip(host, model.params):
        np.testing.assert_array_equal(W, W2.numpy())
        np.testing.assert_array_equal(b, b2.numpy())


def test_load_on_a_device_without_the_files_dtype_blames_the_device(tmp_path, monkeypatch):
    # Before: a float64 checkpoint loaded on MPS (float32 only) was called "not
    # a usable checkpoint". The CPU stands in for MPS here.
    pytest.importorskip("torch")
    from nnbackend.backends.torch import TorchBackend

    path = tmp_path / "m.npz"
    nb.MLP([3, 4, 1], dtype="float64").save(path)
    monkeypatch.setattr(TorchBackend, "float_dtypes", lambda self: ("float32",))
    with pytest.raises(ValueError, match=r"holds a float64 model, and backend 'torch' on device "
                                         r"'cpu' has no float64") as caught:
        nb.MLP.load(path, backend="torch", device="cpu")
    assert "not a usable" not in str(caught.value)
    nb.MLP.load(path, backend="numpy")  # the file itself is fine
