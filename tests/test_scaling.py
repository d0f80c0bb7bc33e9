"""Standardization (StandardScaler, MLP(standardize=...)) and the checkpoint
fields that keep it and the feature names (format version 2; version 1 read)."""

import json
import os
import warnings

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import checkpoint
from nnbackend.scaling import StandardScaler

DATA = os.path.join(os.path.dirname(__file__), "data")


def _raw_regression(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(5000, 300, n), rng.normal(-2, 0.01, n)])
    y = 50 + 0.01 * (X[:, 0] - 5000) + 100 * (X[:, 1] + 2) + rng.normal(0, 0.2, n)
    return X, y


def _backends():
    return [b for b in ("numpy", "strict", "torch", "jax", "dask") if b in nb.available_backends()]


def test_standard_scaler_matches_numpy_and_round_trips():
    X, _ = _raw_regression()
    X = np.column_stack([X, np.full(len(X), 7.0)])  # a constant column: scale 1, maps to 0
    s = StandardScaler().fit(X)
    np.testing.assert_allclose(s.mean_, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.scale_[:2], X.std(axis=0)[:2], rtol=1e-10)
    assert s.scale_[2] == 1.0 and s.n_features_in_ == 3
    Z = s.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(Z[:, :2].std(axis=0), 1, rtol=1e-9)
    np.testing.assert_allclose(s.inverse_transform(Z), X, rtol=1e-12)
    again = StandardScaler.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(again.transform(X), Z)


@pytest.mark.parametrize("args, match", [
    ((), "not fitted yet"),
    (([0.0], [1.0, 2.0]), "two non-empty 1-D arrays of one length"),
    (([0.0], [0.0]), "scale finite and > 0"),
    (([np.nan], [1.0]), "mean must be finite"),
])
def test_standard_scaler_refusals(args, match):
    with pytest.raises(ValueError, match=match):
        StandardScaler(*args).transform(np.ones((2, 1)))
    with pytest.raises(ValueError, match="takes mean and scale together"):
        StandardScaler(mean=[0.0])
    with pytest.raises(ValueError, match="fitted on 1 columns; got 2"):
        StandardScaler([0.0], [1.0]).transform(np.ones((2, 2)))


@pytest.mark.parametrize("backend", _backends())
def test_the_scaler_refuses_data_it_cannot_standardize_by_name(backend):
    # On every backend alike: no shape or dtype error from inside the library,
    # no mean of 0 rows, no complex data with its imaginary part dropped.
    put = nb.get_backend(backend).asarray
    cases = [(np.zeros((0, 3)), ValueError, "X is empty: it has 0 samples"),
             (np.zeros(3), ValueError, r"X must be 2-D \(n_samples, n_columns\); got shape \(3,\)"),
             (np.zeros((2, 2, 2)), ValueError, "must be 2-D"),
             (np.array([[1 + 2j, 3], [2, 1j]]), TypeError, "complex.*takes real numbers")]
    for X, error, match in cases:
        with pytest.raises(error, match=match):
            StandardScaler().fit(put(X))
    fitted = StandardScaler().fit(put(np.array([[1.0, 2.0], [3.0, 5.0]])))
    for method in (fitted.transform, fitted.inverse_transform):
        with pytest.raises(ValueError, match="must be 2-D"):
            method(put(np.zeros(2)))
        with pytest.raises(TypeError, match="takes real numbers"):
            method(put(np.array([[1j, 2]])))


def test_the_scaler_takes_host_data_as_numpy_reads_it():
    s = StandardScaler().fit([[1, 2], [3, 5]])
    np.testing.assert_array_equal(s.transform([[1, 2]]), [[-1.0, -1.0]])
    np.testing.assert_array_equal(s.inverse_transform([[0.0, 0.0]]), [[2.0, 3.5]])
    np.testing.assert_array_equal(s.transform_host([[1, 2]]), [[-1.0, -1.0]])
    with pytest.raises(ValueError, match="X is empty"):
        StandardScaler().fit_host(np.zeros((0, 2)))
    with pytest.raises(TypeError, match="takes real numbers"):
        StandardScaler().fit_host(np.array([["a", "b"]]))


@pytest.mark.parametrize("backend", _backends())
def test_standardize_learns_raw_scale_regression_and_predicts_in_target_units(backend):
    X, y = _raw_regression()
    results = {}
    for standardize in (False, True):
        model = nb.MLP([2, 16, 1], hidden_activation="relu", output_activation="identity",
                       backend=backend, standardize=standardize, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the unscaled run may diverge
            model.fit(X, y, epochs=40, lr=0.05, seed=0)
        pred = model.backend.to_host(model.predict(X)).reshape(-1)
        results[standardize] = float(np.sqrt(np.mean((pred - y) ** 2)))
    # y's spread is about 3.2 and its noise 0.2: scaled, the fit gets close.
    assert results[True] < 0.5, results
    assert not results[False] < 0.5, results  # unscaled: far off, or NaN after divergence
    assert model.feature_scaler is not None and model.target_scaler is not None


def test_standardize_default_off_leaves_fit_unchanged():
    X, y = _raw_regression()
    X = (X - X.mean(0)) / X.std(0)
    a = nb.MLP([2, 4, 1], output_activation="identity", seed=1)
    b = nb.MLP([2, 4, 1], output_activation="identity", seed=1, standardize=False)
    ha, hb = a.fit(X, y, epochs=3, seed=0), b.fit(X, y, epochs=3, seed=0)
    assert ha.loss == hb.loss and a.feature_scaler is None and a.target_scaler is None
    for p, q in zip(a.flat_params, b.flat_params):
        np.testing.assert_array_equal(p, q)


def test_standardize_features_only_and_classifier_targets_untouched():
    X, y = _raw_regression()
    labels = (y > np.median(y)).astype(float)
    clf = nb.MLP([2, 8, 1], hidden_activation="tanh", loss="bce", standardize=True)
    clf.fit(X, labels, epochs=20, lr=0.5)
    assert clf.feature_scaler is not None and clf.target_scaler is None  # probabilities stay
    assert clf.evaluate(X, labels)["accuracy"] > 0.9
    reg = nb.MLP([2, 8, 1], output_activation="identity", standardize="features")
    reg.fit(X, y, epochs=2)
    assert reg.feature_scaler is not None and reg.target_scaler is None
    with pytest.raises(ValueError, match="standardize must be False, True or 'features'"):
        nb.MLP([2, 1], standardize="yes")


def test_scalers_are_fitted_once_and_kept_by_later_fits():
    X, y = _raw_regression()
    model = nb.MLP([2, 8, 1], output_activation="identity", standardize=True)
    model.fit(X, y, epochs=2)
    mean = model.feature_scaler.mean_.copy()
    model.fit(X[:50] + 1000, y[:50], epochs=1)
    np.testing.assert_array_equal(model.feature_scaler.mean_, mean)


def test_checkpoint_v2_keeps_names_and_scaling_on_every_backend(tmp_path):
    X, y = _raw_regression()
    model = nb.MLP([2, 8, 1], output_activation="identity", standardize=True, seed=0)
    model.fit(X, y, epochs=5, optimizer="adam", lr=0.01)
    model.feature_names_in_ = ["size", "depth"]
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        assert int(f["format_version"]) == 2
    expected = model.backend.to_host(model.predict(X))
    for backend in _backends():
        loaded = nb.MLP.load(tmp_path / "m.npz", backend=backend)
        assert loaded.feature_names_in_ == ["size", "depth"] and loaded.standardize is True
        np.testing.assert_allclose(loaded.backend.to_host(loaded.predict(X)), expected,
                                   rtol=1e-5, atol=1e-4)
    # A resumed fit continues with the saved scaling.
    loaded = nb.MLP.load(tmp_path / "m.npz")
    loaded.fit(X, y, epochs=1, optimizer="adam", lr=0.01, resume=True)
    np.testing.assert_array_equal(loaded.feature_scaler.mean_, model.feature_scaler.mean_)


def test_model_without_names_or_scaling_is_still_written_as_version_1(tmp_path):
    model = nb.MLP([2, 3, 1])
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        assert int(f["format_version"]) == 1
        assert "standardize" not in json.loads(str(f["header"]))["config"]


def test_a_version_1_checkpoint_of_the_previous_release_loads_and_resumes():
    # Written by commit 11e9d06 (before format version 2): a [2, 5, 1] tanh/bce
    # model after 3 adam epochs on moons, with its predictions for 5 rows.
    path = os.path.join(DATA, "checkpoint_v1.npz")
    with np.load(path) as f:
        assert int(f["format_version"]) == 1
    model = nb.MLP.load(path)
    assert model.feature_names_in_ is None and model.feature_scaler is None
    assert model.standardize is False and model.train_state.epochs_done == 3
    X, y = nb.datasets.make_dataset("moons", n_samples=40, seed=0)
    expected = np.loadtxt(os.path.join(DATA, "checkpoint_v1_predict.txt"))
    np.testing.assert_array_equal(model.predict(X[:5]).reshape(-1), expected)
    model.fit(X, y, epochs=1, optimizer="adam", lr=0.05, seed=1, resume=True)
    assert model.train_state.epochs_done == 4


@pytest.mark.parametrize("edit, match", [
    (lambda h: h.update(feature_names=["a"]), "feature_names must list 2 names"),
    (lambda h: h.update(feature_names=[1, 2]), "feature_names must list 2 names"),
    (lambda h: h["scaling"].update(features={"mean": [0.0], "scale": [1.0]}),
     "scaling of the features has 1 columns, the network 2"),
    (lambda h: h["scaling"].update(targets={"mean": [0.0], "scale": [-1.0]}),
     "scaling of the targets: mean must be finite and scale finite and > 0"),
    (lambda h: h["scaling"].update(features="junk"), "scaling of the features: a scaler is"),
])
def test_damaged_v2_fields_are_refused(tmp_path, edit, match):
    X, y = _raw_regression()
    model = nb.MLP([2, 3, 1], output_activation="identity", standardize=True)
    model.fit(X, y, epochs=1)
    model.feature_names_in_ = ["a", "b"]
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = dict(f)
    header = json.loads(str(arrays["header"]))
    edit(header)
    arrays["header"] = np.asarray(json.dumps(header))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="bad.npz is not a usable nnbackend checkpoint: " + match):
        nb.MLP.load(tmp_path / "bad.npz")


def test_non_zip_files_are_not_checkpoints_and_no_pickle_advice(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([object()], dtype=object), allow_pickle=True)
    np.save(tmp_path / "arr.npy", np.ones(3))
    (tmp_path / "text.npz").write_text("hello")
    for name in ("obj.npy", "arr.npy", "text.npz"):
        with pytest.raises(ValueError) as info:
            nb.MLP.load(tmp_path / name)
        assert "not an nnbackend checkpoint" in str(info.value)
        assert "pickle" not in str(info.value).lower()
    assert checkpoint.READS == (1, 2)


def test_checkpoint_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        nb.MLP([2, 1]).save(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o640


def test_values_too_large_to_standardize_are_named_by_column():
    # Within float32's range, but their squares overflow it: the spread is inf.
    X = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    X[:, 2] *= np.float32(1e20)
    assert StandardScaler().fit(X).scale_[2] > 1e19  # summed in float64, which holds it
    wide = X.astype(np.float64)
    wide[:, 1] *= 1e200  # squares past float64's range
    with pytest.raises(ValueError, match=r"X: the values of column\(s\) 1 are too large to "
                                         r"standardize in float64"):
        StandardScaler().fit(wide)
    # A float32 model standardizes host targets in float64, before their cast.
    model = nb.MLP([1, 3, 1], output_activation="identity", loss="mse", standardize=True)
    model.fit(X[:, :1], X[:, 2], epochs=1, batch_size=30)
    assert model.target_scaler.scale_[0] > 1e19


def test_nan_is_named_as_nan_and_float64_is_not_offered_to_float64():
    X = np.random.default_rng(0).normal(size=(10, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(column\(s\) 1\)"):
        StandardScaler().fit(X)
    X[3, 1] = 0.0
    X[:, 0] *= 1e200
    with pytest.raises(ValueError, match="too large to standardize in float64") as refused:
        StandardScaler().fit(X)
    assert "dtype='float64'" not in str(refused.value)


def test_whole_numbers_are_standardized_about_their_true_mean():
    # The mean of [1, 2] is 1.5: it must not go back to the data as an int.
    from nnbackend.scaling import StandardScaler

    for dtype in (np.int64, np.int32, np.bool_):
        X = np.array([[1, 0], [0, 1], [1, 1]] if dtype is np.bool_ else [[1, 0], [2, 1], [4, 1]],
                     dtype=dtype)
        scaler = StandardScaler().fit(X)
        expected = X.astype(np.float64)
        np.testing.assert_allclose(scaler.scale_, expected.std(axis=0), rtol=1e-12)
        out = scaler.transform(X)
        assert out.dtype == np.float64
        np.testing.assert_allclose(out, (expected - expected.mean(0)) / expected.std(0),
                                   rtol=1e-12)
        np.testing.assert_allclose(scaler.inverse_transform(out), expected, rtol=1e-12)


def test_whole_numbers_of_other_namespaces_are_standardized_in_float64():
    from nnbackend.scaling import StandardScaler

    strict = pytest.importorskip("array_api_strict", reason="needs array-api-strict")
    for X in (strict.asarray([[1], [2], [4]]), strict.asarray([[True], [False], [True]])):
        scaler = StandardScaler().fit(X)
        host = np.asarray([[1], [2], [4]] if X.dtype == strict.int64 else [[1], [0], [1]],
                          dtype=np.float64)
        np.testing.assert_allclose(scaler.scale_, host.std(axis=0), rtol=1e-12)
        assert scaler.transform(X).dtype == strict.float64


def test_whole_numbers_on_jax_without_x64_are_standardized_in_float32_without_a_warning():
    jax = pytest.importorskip("jax", reason="JAX's x64 switch")
    if jax.config.jax_enable_x64:
        pytest.skip("another test turned JAX's x64 on in this process")
    X = jax.numpy.asarray(np.arange(12).reshape(6, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # JAX's "float64 ... truncated to float32"
        scaler = StandardScaler().fit(X)
        out = scaler.transform(X)
        back = scaler.inverse_transform(X)
    assert out.dtype == back.dtype == jax.numpy.float32
    np.testing.assert_allclose(scaler.mean_, [5.0, 6.0])
    np.testing.assert_allclose(np.asarray(out), (np.arange(12).reshape(6, 2) - [5, 6])
                               / np.sqrt(35 / 3), rtol=1e-6)


@pytest.mark.parametrize("backend", _backends())
def test_a_column_of_small_values_is_standardized_not_taken_for_constant(backend):
    # The "constant" test had an absolute floor (float32's resolution times 1):
    # a feature of 1e-8 ± 1e-9 (metres, say) kept scale 1 and stayed ~1e-8 for
    # the network. Relative to its mean it varies, as scikit-learn's test says.
    rng = np.random.default_rng(0)
    X = np.c_[1e-8 + 1e-9 * rng.normal(size=200), np.full(200, 3.0), np.zeros(200)]
    for data in (X, X.astype(np.float32)):
        scaler = StandardScaler().fit(nb.get_backend(backend).asarray(data))
        np.testing.assert_allclose(scaler.scale_[0], data[:, 0].std(dtype=np.float64),
                                   rtol=1e-5)
        assert list(scaler.scale_[1:]) == [1.0, 1.0]  # the constant columns stay at scale 1
        host = StandardScaler().fit_host(data)
        np.testing.assert_allclose(host.scale_, scaler.scale_, rtol=1e-6)
        z = host.transform_host(data)
        np.testing.assert_allclose([z[:, 0].mean(), z[:, 0].std()], [0, 1], atol=1e-6)


def test_standardize_takes_features_past_float32s_range(backend):
    # Standardized in float64 before the cast to a float32 model, features of
    # order 1e39 are numbers like any others; they were refused first as
    # overflowing float32. Without standardize they still are.
    from conftest import own_array

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2)) * 1e39 + [0.0, 3e39]
    y = (X[:, 0] > 0) * 1.0
    try:
        wide = own_array(backend, X, backend.dtype("float64"))
    except Exception as exc:
        pytest.skip(f"no float64 arrays on {backend.name}: {exc}")
    if "64" not in str(wide.dtype):  # JAX without x64 makes float32
        pytest.skip(f"no float64 arrays on {backend.name} (it made {wide.dtype})")
    small = nb.MLP([2, 3, 1], standardize=True, seed=0).fit(X / 1e39, y, epochs=2, mode="batch")
    for data in (X, wide):
        model = nb.MLP([2, 3, 1], backend=backend.name, device=backend.device, standardize=True,
                       seed=0)
        hist = model.fit(data, y, epochs=2, mode="batch")
        np.testing.assert_allclose(hist.loss, small.loss, rtol=1e-5)  # standardizing ignores scale
    with pytest.raises(ValueError, match="beyond the"):
        nb.MLP([2, 3, 1], backend=backend.name, device=backend.device).fit(wide, y, epochs=1)
