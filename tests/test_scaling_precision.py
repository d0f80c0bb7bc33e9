"""Standardization before the cast to a float32 model's dtype.

float32's resolution at 1e7 is 1: cast first, a feature 1e7 ± 1 keeps 8
values and a target 1e7 + 3·z becomes whole numbers. Host data is therefore
standardized in float64 on the host and cast after; the input checks still
read the unscaled columns, and a model that does not standardize (or a float64
one) takes the path it always took.
"""

import json

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.cli import main
from nnbackend.scaling import StandardScaler


def _backend(name):
    try:
        return nb.get_backend(name)
    except nb.BackendUnavailableError as exc:
        pytest.skip(f"needs the {name} backend: {exc}")


def _offset_classes(n=500):
    rng = np.random.default_rng(0)
    x = 1e7 + rng.normal(size=n)
    return np.c_[x, rng.normal(size=n)], np.where(x > 1e7, "hi", "lo")


def _offset_regression(n=1000):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 2))
    return X, 1e7 + 3 * (X[:, 0] - 0.5 * X[:, 1]) + 0.1 * rng.normal(size=n)


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_a_feature_near_1e7_is_learned_by_a_float32_model(backend):
    _backend(backend)
    X, y = _offset_classes()
    model = nb.MLP([2, 16, 1], loss="bce", standardize=True, seed=0, backend=backend)
    model.fit(X, y, epochs=10, lr=0.3)
    # Cast first, column 0 held a few values and the fit stayed at chance (0.48).
    assert model.evaluate(X, y)["accuracy"] > 0.95
    np.testing.assert_allclose(model.feature_scaler.mean_, X.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(model.feature_scaler.scale_[1], X[:, 1].std(), rtol=1e-12)


def test_a_float64_device_array_is_standardized_before_its_cast():
    backend = _backend("strict")
    X, y = _offset_classes()
    Xd = backend.asarray(X, dtype=backend.dtype("float64"))
    model = nb.MLP([2, 16, 1], loss="bce", standardize=True, seed=0, backend="strict")
    model.fit(Xd, y, epochs=10, lr=0.3)
    assert model.evaluate(Xd, y)["accuracy"] > 0.95
    assert model.predict(Xd).dtype == backend.xp.float32


def test_evaluate_scores_a_float32_regression_near_1e7_as_float64_does(tmp_path, capsys):
    X, t = _offset_regression()
    np.savez(tmp_path / "d.npz", X=X, y=t)
    rmse, models = {}, {}
    for dtype in ("float32", "float64"):
        model = models[dtype] = nb.MLP([2, 16, 1], hidden_activation="tanh", standardize=True,
                                       output_activation="identity", seed=0, dtype=dtype)
        model.fit(X, t, epochs=15, lr=0.05)
        model.save(tmp_path / f"{dtype}.npz")
        assert main(["evaluate", "--model", str(tmp_path / f"{dtype}.npz"), "--data",
                     str(tmp_path / "d.npz"), "--json"]) == 0
        rmse[dtype] = json.loads(capsys.readouterr().out)["rmse"]
    # Undone in float32, the predictions were whole numbers: RMSE 0.37 against 0.22.
    assert rmse["float32"] == pytest.approx(rmse["float64"], rel=0.02)
    # The targets were standardized in float64, not first rounded to whole numbers.
    assert models["float32"].target_scaler.mean_[0] == pytest.approx(t.mean(), abs=1e-6)
    # predict keeps its contract: the model's dtype.
    assert model.predict(X[:3]).dtype == np.float64
    loaded = nb.MLP.load(tmp_path / "float32.npz")
    assert loaded.predict(X[:3]).dtype == np.float32


def test_a_model_that_does_not_standardize_fits_as_on_data_cast_by_hand():
    X, y = _offset_classes(200)
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    labels = (y == "hi").astype(np.float64)
    fits = []
    for data in (Xs, Xs.astype(np.float32)):
        model = nb.MLP([2, 4, 1], loss="bce", seed=0)
        fits.append((model.fit(data, labels, epochs=3, lr=0.3).loss, model.params))
    assert fits[0][0] == fits[1][0]
    for (W, b), (W2, b2) in zip(fits[0][1], fits[1][1]):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


def test_a_float64_model_standardizes_unit_scale_data_as_before():
    # Float64 everything: the scaler fitted on the device copy, in float64, bit for bit
    # the scaler fitted alone and a model fed its output.
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=200)
    model = nb.MLP([3, 4, 1], hidden_activation="tanh", output_activation="identity",
                   standardize=True, seed=0, dtype="float64")
    loss = model.fit(X, y, epochs=3, lr=0.05).loss
    fx, fy = StandardScaler().fit(X), StandardScaler().fit(y.reshape(-1, 1))
    plain = nb.MLP([3, 4, 1], hidden_activation="tanh", output_activation="identity",
                   seed=0, dtype="float64")
    assert plain.fit(fx.transform(X), fy.transform(y.reshape(-1, 1)), epochs=3,
                     lr=0.05).loss == loss
    np.testing.assert_array_equal(model.feature_scaler.scale_, fx.scale_)
    np.testing.assert_array_equal(model.predict(X), fy.inverse_transform(plain.predict(
        fx.transform(X))))


def test_the_checks_still_read_the_unscaled_data():
    X, y = _offset_classes(100)
    model = nb.MLP([2, 4, 1], loss="bce", standardize=True)
    bad = X.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="^X contains NaN or infinity$"):
        model.fit(bad, y, epochs=1)
    # Past float32 but standardized in float64 first: refused only where the
    # float64 statistics themselves overflow (see test_scaling's 1e39 features).
    with pytest.raises(ValueError, match=r"X: the values of column\(s\) 1 are too large to "
                                         r"standardize in float64"):
        model.fit(np.c_[X[:, :1], np.full(100, 1e300)], y, epochs=1)
    with pytest.raises(ValueError, match="X has 3 features but the network expects 2"):
        model.fit(np.c_[X, X[:, :1]], y, epochs=1)
    assert model.feature_scaler is None  # nothing kept from the refused fits
    model.fit(X, y, epochs=1)
    with pytest.raises(ValueError, match="X has 3 features but the network expects 2"):
        model.predict(np.c_[X, X[:, :1]])


def test_host_statistics_and_scaling_are_float64_in_row_blocks():
    rng = np.random.default_rng(3)
    X = (1e6 + rng.normal(size=(3000, 2))).astype(np.float32)
    scaler = StandardScaler().fit_host(X)
    exact = X.astype(np.float64)
    np.testing.assert_allclose(scaler.mean_, exact.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(scaler.scale_, exact.std(axis=0), rtol=1e-12)
    out = scaler.transform_host(X, np.float32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, ((exact - scaler.mean_) / scaler.scale_).astype(np.float32))
    wide = rng.normal(size=(5, 300000))  # a block of one row at a time
    np.testing.assert_allclose(StandardScaler().fit_host(wide).mean_, wide.mean(axis=0),
                               rtol=1e-12, atol=1e-15)


def test_values_whose_float32_spread_overflows_are_standardized_in_float64_from_the_host():
    # Squares of 1e20 overflow float32: host targets are standardized in float64 and
    # train, and so are a backend's float32 arrays, summed in float64; a device
    # without float64 sums them in float32, and refuses them.
    X = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    X[:, 2] *= np.float32(1e20)
    model = nb.MLP([1, 3, 1], output_activation="identity", loss="mse", standardize=True)
    model.fit(X[:, :1], X[:, 2], epochs=1, batch_size=30)
    assert model.target_scaler.scale_[0] > 1e19
    backend = _backend("strict")
    model = nb.MLP([1, 3, 1], output_activation="identity", loss="mse", standardize=True,
                   backend="strict")
    model.fit(backend.asarray(X[:, :1]), backend.asarray(X[:, 2]), epochs=1, batch_size=30)
    assert model.target_scaler.scale_[0] > 1e19
    backend = nb.get_backend("strict", device="no_float64")
    model = nb.MLP([1, 3, 1], output_activation="identity", loss="mse", standardize=True,
                   backend="strict", device="no_float64")
    with pytest.raises(ValueError, match=r"the targets: the values of column\(s\) 0 are too "
                                         r"large to standardize in \S*float32"):
        model.fit(backend.asarray(X[:, :1]), backend.asarray(X[:, 2]), epochs=1, batch_size=30)


def test_a_spread_small_beside_a_large_offset_still_gets_unit_scale():
    # 1e9 ± 0.01: below float32's resolution there, not float64's. The
    # float32 threshold would keep such a column at scale 1 (±0.01).
    rng = np.random.default_rng(3)
    x = 1e9 + 0.01 * rng.normal(size=400)
    scaler = StandardScaler().fit_host(np.c_[x, np.full(400, 5.0)])
    assert 0.005 < scaler.scale_[0] < 0.02
    assert scaler.scale_[1] == 1.0  # a constant column stays at scale 1
    scaled = scaler.transform_host(np.c_[x, np.full(400, 5.0)], np.dtype(np.float32))
    assert 0.9 < float(np.std(scaled[:, 0])) < 1.1 and not scaled[:, 1].any()


@pytest.mark.parametrize("library", ["numpy", "dask", "torch", "array_api_strict"])
def test_float32_statistics_are_summed_in_float64_on_every_backend(library):
    # 1e5 ± 10 over many rows in one chunk: float32 sums, row after row, had put
    # Dask's mean 1000 off and its scale 100 times too large.
    rng = np.random.default_rng(0)
    n = 200_000
    X = np.stack([rng.normal(size=n), 1e5 + 10 * rng.normal(size=n)], 1).astype(np.float32)
    want = StandardScaler().fit_host(X)
    if library == "dask":
        da = pytest.importorskip("dask.array")
        got = StandardScaler().fit(da.from_array(X, chunks=(n, -1)),
                                   backend=nb.get_backend("dask"))
    else:
        xp = pytest.importorskip(library)
        got = StandardScaler().fit(xp.asarray(X))
    np.testing.assert_allclose(got.mean_, want.mean_, rtol=1e-12, atol=1e-7)
    np.testing.assert_allclose(got.scale_, want.scale_, rtol=1e-9)


def test_a_float64_spread_below_float32s_resolution_is_no_constant_column():
    # 1e10 ± 500: float32 could not tell it from constant; float64 statistics can.
    rng = np.random.default_rng(1)
    X = np.c_[rng.normal(size=500), 1e10 + 500 * rng.normal(size=500)]
    assert 400 < StandardScaler().fit(X).scale_[1] < 600


@pytest.mark.parametrize("library", ["torch", "array_api_strict", "dask"])
def test_float32_values_get_one_scaler_on_the_host_and_on_a_backend(library):
    # 1e5 ± 0.01 stored in float32 is float32 rounding: constant on every backend.
    rng = np.random.default_rng(2)
    X = np.c_[1e5 + 0.01 * rng.normal(size=300), rng.normal(size=300)].astype(np.float32)
    host = StandardScaler().fit_host(X)
    if library == "dask":
        da = pytest.importorskip("dask.array")
        other = StandardScaler().fit(da.from_array(X, chunks=(100, -1)),
                                     backend=nb.get_backend("dask"))
    else:
        other = StandardScaler().fit(pytest.importorskip(library).asarray(X))
    assert host.scale_[0] == other.scale_[0] == 1.0
    np.testing.assert_allclose(host.scale_[1], other.scale_[1], rtol=1e-7)  # float32 squares
