"""How often a fit's input checks read lazy data: once for X and once for y.

Out-of-core Dask data is read from its file at each pass; the checks (NaN,
the cast's range, the features' scales, the targets' range and classes) all
come from one read of each column's extremes.
"""

import warnings

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import data

da = pytest.importorskip("dask.array", reason="the Dask backend needs dask (the 'dask' extra)")


class _Counted:
    """An array-like that counts the chunks Dask reads from it."""

    def __init__(self, values):
        self.values, self.reads = values, 0
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim

    def __getitem__(self, index):
        out = self.values[index]
        self.reads += out.size > 0  # (Dask's empty slices, for its metadata, read nothing)
        return out


def _lazy(values, rows_per_chunk=250):
    source = _Counted(values)
    chunks = (rows_per_chunk,) + values.shape[1:]
    lazy = da.from_array(source, chunks=chunks, asarray=True, inline_array=False)
    return lazy, source, len(lazy.chunks[0])


def _passes(source, n_chunks):
    assert source.reads % n_chunks == 0, (source.reads, n_chunks)
    return source.reads // n_chunks


def _problem(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * np.array([1.0, 2.0, 5.0, 0.5])
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.float64)


def test_the_feature_checks_read_x_once_and_find_its_extremes(dask_backend):
    X, _ = _problem()
    lazy, source, n_chunks = _lazy(X)
    checked, extremes = data.checked_features(dask_backend, lazy, np.float32)
    assert _passes(source, n_chunks) == 1
    expected = np.stack([X.max(axis=0), X.min(axis=0)]).astype(np.float32)
    np.testing.assert_array_equal(extremes, expected)
    assert data.feature_scale_problem(dask_backend, checked, extremes) is None
    assert _passes(source, n_chunks) == 1  # the scales come from the same read
    assert checked.dtype == np.float32 and source.reads == n_chunks


@pytest.mark.parametrize("bad, message", [(np.nan, "contains NaN or infinity"),
                                          (np.inf, "contains NaN or infinity"),
                                          (1e300, "beyond the range of the model's dtype")])
def test_one_read_refuses_what_the_checks_refuse(dask_backend, bad, message):
    X, _ = _problem()
    X[700, 2] = bad
    lazy, source, n_chunks = _lazy(X)
    with pytest.raises(ValueError, match=message):
        data.checked_features(dask_backend, lazy, np.float32)
    assert _passes(source, n_chunks) == 1


@pytest.mark.parametrize("loss, y, outputs", [
    ("bce", (np.arange(1000) % 2).astype(np.float64), 1),
    ("cross_entropy", np.arange(1000) % 3, 3),
    ("mse", np.linspace(-1, 1, 1000), 1),
])
def test_the_target_checks_read_y_once(dask_backend, loss, y, outputs):
    lazy, source, n_chunks = _lazy(y)
    data.as_targets(dask_backend, lazy, loss, outputs, 1000, np.float32, training=True)
    assert _passes(source, n_chunks) == 1


@pytest.mark.parametrize("loss, y, outputs, row, passes", [
    ("bce", np.ones(1000), 1, r"\[1.0\]", 1),
    ("cross_entropy", np.full(1000, 2), 3, r"\[0.0, 0.0, 1.0\]", 1),
    # Rows of probabilities: their sums are one more read.
    ("cross_entropy", np.tile([0.0, 1.0, 0.0], (1000, 1)), 3, r"\[0.0, 1.0, 0.0\]", 2),
])
def test_a_single_class_is_found_in_the_same_read(dask_backend, loss, y, outputs, row, passes):
    lazy, source, n_chunks = _lazy(y)
    with pytest.raises(ValueError, match=rf"y holds a single class \(every target row is {row}\)"):
        data.as_targets(dask_backend, lazy, loss, outputs, 1000, np.float32, training=True)
    assert _passes(source, n_chunks) == passes
    data.as_targets(dask_backend, lazy, loss, outputs, 1000, np.float32)  # not for scoring


def test_standardizing_reads_x_twice(dask_backend):
    # The mean, then the spread about it: two passes, no cancellation, and
    # the mean is not read again for the spread.
    from nnbackend.scaling import StandardScaler

    X, _ = _problem()
    lazy, source, n_chunks = _lazy(X)
    scaler = StandardScaler().fit(lazy, backend=dask_backend)
    assert _passes(source, n_chunks) == 2
    reference = StandardScaler().fit(X)
    # (Summed chunk by chunk: NumPy's rounding, not its bits.)
    np.testing.assert_allclose(scaler.mean_, reference.mean_, rtol=1e-12)
    np.testing.assert_allclose(scaler.scale_, reference.scale_, rtol=1e-12)


@pytest.mark.parametrize("standardize, reads", [(False, 1), (True, 3)])
def test_a_fit_reads_x_once_for_its_checks(dask_backend, standardize, reads):
    X, y = _problem()
    lazy, source, n_chunks = _lazy(X)
    model = nb.MLP([4, 6, 1], loss="bce", backend="dask", standardize=standardize, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.FeatureScaleWarning)
        model.fit(lazy, da.from_array(y, chunks=250), mode="batch", epochs=1)
    assert _passes(source, n_chunks) == reads + 1  # and the epoch's own read


def test_a_bfloat16_torch_x_is_read_and_cast():
    # Its extremes cannot go to the host as bfloat16 (NumPy has no such type).
    torch = pytest.importorskip("torch", reason="needs torch (the 'torch' extra)")
    X, y = _problem(n=64)
    model = nb.MLP([4, 6, 1], loss="bce", backend="torch", device="cpu", seed=0)
    Xb = torch.asarray(X, dtype=torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.FeatureScaleWarning)
        model.fit(Xb, torch.asarray(y, dtype=torch.bfloat16), epochs=1)
    assert tuple(model.predict(Xb).shape) == (64, 1)
    Xb[3, 1] = float("nan")
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        model.predict(Xb)


def test_unknown_row_counts_still_predict_and_a_fit_says_how_to_know_them():
    X, y = _problem(n=40)
    X[:10, 0] = -np.abs(X[:10, 0]) - 0.1  # the first chunk's rows all fail the mask below
    model = nb.MLP([4, 6, 1], loss="bce", backend="dask", seed=0)
    lazy = da.from_array(X, chunks=10)
    some = lazy[lazy[:, 0] > 0]  # an empty chunk, and every chunk's size unknown
    np.testing.assert_allclose(np.asarray(model.predict(some)),
                               model.predict(X[X[:, 0] > 0]), rtol=1e-6)
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        model.fit(some, da.from_array(y, chunks=10)[lazy[:, 0] > 0], epochs=1)


def test_loss_and_grads_reads_x_once_after_its_checks(dask_backend):
    # Its gradients had come back lazy: each then read the data again.
    X, y = _problem()
    lazy, source, n_chunks = _lazy(X)
    model = nb.MLP([4, 6, 1], loss="bce", backend=dask_backend, dtype="float64", seed=0)
    loss, grads = model.loss_and_grads(lazy, y)
    assert _passes(source, n_chunks) == 2  # the checks, then loss and gradients together
    assert all(isinstance(g, np.ndarray) for pair in grads for g in pair)
    ref_loss, ref_grads = nb.MLP([4, 6, 1], loss="bce", dtype="float64",
                                 seed=0).loss_and_grads(X, y)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10, atol=1e-14)
