"""The Dask backend's forward passes, out-of-core files and refusals at their edges.

A forward pass over Dask data (predict, evaluate, the validation loss) holds
its slice's activations: the slices are a chunk, but never more than
``PASS_SCALE`` times ``chunk_size``'s rows, and host data on the dask backend
goes in ``chunk_size`` slices as on NumPy.
"""

import os

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import network

da = pytest.importorskip("dask.array", reason="the Dask backend needs dask (the 'dask' extra)")
from nnbackend.backends.dask import PASS_SCALE  # noqa: E402
from nnbackend.backends.dask.chunks import open_npy  # noqa: E402


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(np.float64)


def _rows_per_forward(monkeypatch):
    rows = []
    real = network.forward

    def counting(params, X, spec, xp=None):
        rows.append(X.shape[0])
        return real(params, X, spec, xp)

    monkeypatch.setattr(network, "forward", counting)
    return rows


def test_forward_passes_over_a_large_chunk_go_in_bounded_slices(dask_backend, monkeypatch):
    X, y = _data()
    Xd, yd = da.from_array(X, chunks=(3000, -1)), da.from_array(y, chunks=3000)
    model = nb.MLP([3, 5, 1], loss="bce", backend=dask_backend, dtype="float64", seed=0)
    ref = nb.MLP([3, 5, 1], loss="bce", dtype="float64", seed=0)
    rows = _rows_per_forward(monkeypatch)
    got = model.evaluate(Xd, yd, chunk_size=10)
    assert rows and max(rows) == PASS_SCALE * 10  # not the chunk's 3000
    want = ref.evaluate(X, y)
    assert got["accuracy"] == want["accuracy"]
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-12)
    rows.clear()
    out = model.predict(Xd, chunk_size=10)
    assert max(rows) == PASS_SCALE * 10
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref.predict(X)), rtol=1e-12)


def test_host_data_on_the_dask_backend_is_predicted_in_chunk_size_slices(dask_backend,
                                                                        monkeypatch):
    # It had gone through the network in one piece: 7.6 GB for 1e6 rows.
    X, _ = _data()
    model = nb.MLP([3, 5, 1], loss="bce", backend=dask_backend, dtype="float64", seed=0)
    rows = _rows_per_forward(monkeypatch)
    out = model.predict(X, chunk_size=100)
    assert max(rows) == 100
    want = nb.MLP([3, 5, 1], loss="bce", dtype="float64", seed=0).predict(X)
    np.testing.assert_allclose(np.asarray(out), np.asarray(want), rtol=1e-12)


def test_an_npy_file_of_no_rows_or_a_bad_chunk_size_is_refused(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match=r"empty.npy holds no rows"):
        open_npy(tmp_path / "empty.npy")
    np.save(tmp_path / "x.npy", np.zeros((5, 3), np.float32))
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match=r"chunk_rows must be an integer >= 1"):
            open_npy(tmp_path / "x.npy", chunk_rows=bad)
    assert open_npy(tmp_path / "x.npy", chunk_rows=np.int64(2)).chunks[0] == (2, 2, 1)


def test_a_file_gone_before_the_checks_read_it_is_said_as_such(dask_backend, tmp_path):
    # Not "X could not be used as a dense dask array ... pass a NumPy array".
    np.save(tmp_path / "gone.npy", np.ones((10, 2)))
    X = open_npy(tmp_path / "gone.npy")
    os.remove(tmp_path / "gone.npy")
    with pytest.raises(FileNotFoundError, match="gone.npy"):
        nb.MLP([2, 3, 1], loss="bce", backend=dask_backend).fit(X, np.arange(10) % 2,
                                                                 epochs=1)


def test_targets_of_unknown_row_count_are_refused_with_the_way_out(dask_backend):
    X, y = _data(40)
    yd = da.from_array(y, chunks=10)
    masked = yd[yd > -1]  # every row, but Dask no longer knows how many
    with pytest.raises(ValueError, match=r"y's number of rows is unknown .* "
                                         r"y = y.compute_chunk_sizes\(\)"):
        nb.MLP([3, 4, 1], loss="bce", backend=dask_backend).fit(X, masked, epochs=1)


def test_float64_data_of_unknown_rows_is_standardized_before_its_cast(dask_backend):
    # As with known rows: a feature 1e7 ± 1 cast to float32 first keeps 8 values.
    rng = np.random.default_rng(0)
    x = 1e7 + rng.normal(size=400)
    X = np.c_[x, rng.normal(size=400)]
    model = nb.MLP([2, 8, 1], loss="bce", standardize=True, backend=dask_backend, seed=0)
    model.fit(X, (x > 1e7).astype(float), epochs=20, lr=0.3)
    Xd = da.from_array(X, chunks=(100, -1))
    masked = Xd[Xd[:, 1] > -100]  # every row, of unknown count
    assert np.isnan(masked.shape[0])
    known = np.asarray(model.predict(Xd))
    np.testing.assert_array_equal(np.asarray(model.predict(masked)), known)


def test_a_standardizing_fit_on_rows_of_unknown_count_stops_after_one_read(dask_backend):
    reads = []
    X, y = _data(400)

    def counted(block):
        reads.append(block.shape[0])
        return block

    lazy = da.from_array(X, chunks=(100, -1)).map_blocks(counted, dtype=X.dtype)
    masked = lazy[lazy[:, 1] > -100]
    model = nb.MLP([3, 4, 1], loss="bce", standardize=True, backend=dask_backend)
    with pytest.raises(ValueError, match=r"number of rows is unknown"):
        model.fit(masked, y, epochs=1)
    assert sum(reads) <= 2 * 400  # the checks' read (the mask's own), not the scaler's too
