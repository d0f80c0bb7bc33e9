"""The dask backend: chunked data, never gathered; local and distributed schedulers.

What differs from the other backends (and is tested here rather than in the
shared suite): the parameters are NumPy arrays on the client; mini-batch and
sgd epochs visit the rows chunk by chunk (``dask_chunks.row_order``), which
is the other backends' order only when the data are one chunk; there is no
reference loop (``executor="reference"`` is refused).
"""

import sys

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.backends import BackendUnavailableError

from conftest import max_rel_diff

dask = pytest.importorskip("dask", reason="the dask backend needs: pip install 'nnbackend[dask]'")
da = pytest.importorskip("dask.array", reason="the dask backend needs: pip install 'nnbackend[dask]'")


@pytest.fixture(scope="module")
def dask_backend():
    try:
        return nb.get_backend("dask", scheduler="threads")
    except BackendUnavailableError as exc:
        pytest.skip(f"backend dask unavailable: {exc}")


@pytest.fixture(scope="module")
def cluster():
    """A dask.distributed LocalCluster of two worker processes on loopback."""
    distributed = pytest.importorskip("distributed", reason="needs: pip install 'nnbackend[dask]'")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as lc:
        yield lc
        from nnbackend.backends import dask as dask_backend

        client = dask_backend._CLIENTS.pop(lc.scheduler_address, None)
        if client is not None:
            client.close()


def _data(n=1000, features=5, classes=None, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    if classes:
        y = rng.integers(0, classes, size=n)
    else:
        y = (X[:, 0] * X[:, 1] > 0).astype(np.float64)
    return X, y


def _chunked(X, y, rows):
    return da.from_array(X, chunks=(rows, -1)), da.from_array(y, chunks=rows)


class _TaskSizes(dask.callbacks.Callback):
    """Counts graph computations and the largest row count of any task's result."""

    def __init__(self):
        super().__init__()
        self.computes, self.max_rows = 0, 0

    def _start(self, dsk):
        self.computes += 1

    def _posttask(self, key, result, dsk, state, worker_id):
        rows = getattr(result, "shape", (0,))
        if len(rows) == 2:
            self.max_rows = max(self.max_rows, int(rows[0]))


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 2e-5)])
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_batch_mode_equals_numpy(dask_backend, dtype, tol, task):
    classes = 3 if task == "multiclass" else None
    X, y = _data(n=1100, classes=classes)
    out = {"output_activation": "softmax", "loss": "cross_entropy"} if classes else {}
    sizes = [5, 8, classes or 1]
    ref = nb.MLP(sizes, backend="numpy", dtype=dtype, seed=3, **out)
    h_ref = ref.fit(X, y, mode="batch", epochs=4, lr=0.5, optimizer="adam", shuffle=False)
    model = nb.MLP(sizes, backend=dask_backend, dtype=dtype, seed=3, **out)
    Xd, yd = _chunked(X, y, 300)  # four chunks, the last of 200 rows
    hist = model.fit(Xd, yd, mode="batch", epochs=4, lr=0.5, optimizer="adam", shuffle=False,
                     chunk_size=128)
    assert all(isinstance(p, np.ndarray) for p in model.flat_params)
    assert max_rel_diff(ref.flat_params, model.flat_params) < tol
    np.testing.assert_allclose(hist.loss, h_ref.loss, rtol=tol)
    np.testing.assert_allclose(hist.accuracy, h_ref.accuracy, rtol=tol)


def test_batch_epoch_is_one_compute_and_never_gathers(dask_backend):
    X, y = _data(n=2000)
    Xd, yd = _chunked(X, y, 250)
    counts = []
    for epochs in (1, 4):
        model = nb.MLP([5, 6, 1], backend=dask_backend, dtype="float64", seed=0)
        with _TaskSizes() as seen:
            model.fit(Xd, yd, mode="batch", epochs=epochs, lr=0.1)
        counts.append(seen.computes)
        # No task ever held more rows than a chunk: the data were never gathered.
        assert 0 < seen.max_rows <= 250
    # The README's contract is one dask.compute per batch epoch: three more
    # epochs may add at most three computes (fewer, should dask ever merge
    # them, breaks no promise). What fit computes once (the input checks)
    # is in both counts.
    assert 0 < counts[0] and counts[1] - counts[0] <= 3, counts


def test_unshuffled_minibatch_and_sgd_equal_numpy_across_chunk_boundaries(dask_backend):
    # 1000 rows in chunks of 300: batches of 64 straddle every chunk boundary,
    # and the epoch's last batch holds 1000 mod 64 = 40 rows.
    X, y = _data(n=1000)
    Xd, yd = _chunked(X, y, 300)
    for mode in ("minibatch", "sgd"):
        ref = nb.MLP([5, 6, 1], backend="numpy", dtype="float64", seed=1)
        h_ref = ref.fit(X, y, mode=mode, batch_size=64, epochs=2, lr=0.2, optimizer="momentum",
                        shuffle=False)
        model = nb.MLP([5, 6, 1], backend=dask_backend, dtype="float64", seed=1)
        with _TaskSizes() as seen:
            hist = model.fit(Xd, yd, mode=mode, batch_size=64, epochs=2, lr=0.2,
                             optimizer="momentum", shuffle=False)
        assert seen.max_rows <= 300
        assert max_rel_diff(ref.flat_params, model.flat_params) < 1e-12
        np.testing.assert_allclose(hist.loss, h_ref.loss, rtol=1e-12)


HIDDEN = ("sigmoid", "tanh", "relu", "identity")
HEADS = (
    ("sigmoid", "mse"),
    ("identity", "mse"),
    ("softmax", "mse"),
    ("sigmoid", "bce"),
    ("softmax", "cross_entropy"),
)


def _head_data(loss, n=50, sizes=(3, 5, 4, 3), seed=1234):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, sizes[0]))
    k = sizes[-1]
    if loss == "cross_entropy":
        y = rng.integers(0, k, size=n)
    elif loss == "bce":
        y = rng.uniform(0, 1, size=(n, k))
    else:
        y = rng.uniform(-2, 2, size=(n, k))
    # Non-zero biases so every parameter's gradient path is exercised.
    biases = [rng.uniform(-0.5, 0.5, size=s) for s in sizes[1:]]
    return X, y, biases


@pytest.mark.filterwarnings("error")  # a diverging fit would compare NaN with NaN
@pytest.mark.parametrize("output_activation, loss", HEADS, ids=[f"{o}-{l}" for o, l in HEADS])
def test_every_head_and_reduction_matches_numpy_on_dask_arrays(dask_backend, output_activation,
                                                               loss):
    # The shared test_backends_match_numpy is skipped on dask (conftest's
    # DASK_DIFFERS); this is its dask form: X and y are Dask arrays of four
    # row chunks (the last of 2 rows), never NumPy arrays made by asarray.
    sizes = (3, 5, 4, 3)
    X, y, biases = _head_data(loss, sizes=sizes)
    Xd, yd = _chunked(X, y, 16)
    assert len(Xd.chunks[0]) == 4
    for hidden in HIDDEN:
        for reduction in ("mean", "sum"):
            what = f"{hidden}/{output_activation}/{loss}/{reduction}"
            kwargs = dict(hidden_activation=hidden, output_activation=output_activation, loss=loss,
                          reduction=reduction, dtype="float64")
            init = nb.MLP(list(sizes), backend="numpy", seed=7, **kwargs)
            params = [(np.asarray(W), b) for (W, _), b in zip(init.params, biases)]
            ref = nb.MLP(list(sizes), backend="numpy", params=params, **kwargs)
            model = nb.MLP(list(sizes), backend=dask_backend, params=params, **kwargs)

            ref_loss, ref_grads = ref.loss_and_grads(X, y)
            # One pass per row chunk, whose sums loss_and_grads adds up.
            got_loss, grads = model.loss_and_grads(Xd, yd, chunk_size=16)
            assert got_loss == pytest.approx(ref_loss, rel=1e-10, abs=1e-13), what
            got = [g for pair in grads for g in pair]
            # Computed with the loss, in one pass: lazy, each had read the data again.
            assert all(isinstance(g, np.ndarray) for g in got), f"{what}: gradients lazy"
            want = [np.asarray(r) for pair in ref_grads for r in pair]
            scale = max(1.0, max(float(np.max(np.abs(r))) for r in want))
            for i, (g, r) in enumerate(zip(got, want)):
                np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-13 * scale,
                                           err_msg=f"{what} layer {i // 2} {('dW', 'db')[i % 2]}")

            # A few epochs of training; "sum" steps are n times larger.
            if hidden != "relu":
                continue
            lr = 0.1 if reduction == "mean" else 0.005
            for mode in ("batch", "minibatch"):
                fit = dict(mode=mode, batch_size=12, epochs=3, lr=lr, optimizer="momentum",
                           shuffle=False)
                ref = nb.MLP(list(sizes), backend="numpy", params=params, **kwargs)
                h_ref = ref.fit(X, y, **fit)
                model = nb.MLP(list(sizes), backend=dask_backend, params=params, **kwargs)
                hist = model.fit(Xd, yd, **fit)
                assert np.all(np.isfinite(h_ref.loss)), (what, mode, h_ref.loss)
                assert h_ref.loss[-1] != h_ref.loss[0], (what, mode)  # the steps moved
                np.testing.assert_allclose(hist.loss, h_ref.loss, rtol=1e-10,
                                           err_msg=f"{what} {mode}")
                assert max_rel_diff(ref.flat_params, model.flat_params) < 1e-10, (what, mode)


def _documented_order(pi, chunks):
    """The README's statement of the dask row order, written out independently."""
    bounds = np.cumsum([0, *chunks])
    k = len(chunks)
    firsts = pi[:k]
    visit = sorted(range(k), key=lambda c: firsts[c])  # chunk c goes where pi[c] ranks
    owner = np.searchsorted(bounds, pi, side="right") - 1
    return np.concatenate([pi[owner == c] for c in visit])


def test_shuffled_minibatch_follows_the_documented_order(dask_backend):
    X, y = _data(n=1000)
    chunks = (300, 300, 300, 100)
    Xd, yd = _chunked(X, y, 300)
    pi = nb.data.host_rng(7).permutation(1000)  # the permutation every backend draws
    sigma = _documented_order(pi, chunks)
    assert sorted(sigma) == list(range(1000))
    # Each chunk's rows are contiguous in the order; for this seed the chunks
    # are not visited in their own order, nor the rows within a chunk.
    positions = [np.flatnonzero(sigma // 300 == c) for c in range(4)]
    for c, where in enumerate(positions):
        assert where[-1] - where[0] + 1 == chunks[c] == len(where)
    assert [int(w[0]) for w in positions] != sorted(int(w[0]) for w in positions)
    assert not np.all(np.diff(sigma[positions[0]]) > 0)

    ref = nb.MLP([5, 6, 1], backend="numpy", dtype="float64", seed=1)
    ref.fit(X[sigma], y[sigma], mode="minibatch", batch_size=64, epochs=1, lr=0.2, shuffle=False)
    model = nb.MLP([5, 6, 1], backend=dask_backend, dtype="float64", seed=1)
    model.fit(Xd, yd, mode="minibatch", batch_size=64, epochs=1, lr=0.2, shuffle=True, seed=7)
    assert max_rel_diff(ref.flat_params, model.flat_params) < 1e-12

    from nnbackend.backends.dask.chunks import row_order

    got = np.concatenate([c * 300 + rows for c, rows in row_order(pi, chunks)])
    np.testing.assert_array_equal(got, sigma)


def test_one_chunk_shuffles_exactly_as_numpy(dask_backend):
    X, y = _data(n=500)
    ref = nb.MLP([5, 6, 1], backend="numpy", dtype="float64", seed=2)
    ref.fit(X, y, mode="sgd", epochs=2, lr=0.1, seed=11)
    model = nb.MLP([5, 6, 1], backend=dask_backend, dtype="float64", seed=2)
    model.fit(*_chunked(X, y, 500), mode="sgd", epochs=2, lr=0.1, seed=11)
    assert max_rel_diff(ref.flat_params, model.flat_params) < 1e-12


def test_predict_and_evaluate_stay_lazy_and_chunked(dask_backend):
    X, y = _data(n=900)
    Xd, yd = _chunked(X, y, 200)
    model = nb.MLP([5, 6, 1], backend=dask_backend, dtype="float64", seed=0)
    ref = nb.MLP([5, 6, 1], backend="numpy", dtype="float64", seed=0)
    out = model.predict(Xd)
    assert isinstance(out, da.Array) and out.chunks[0] == Xd.chunks[0]
    np.testing.assert_allclose(dask_backend.to_host(out), ref.predict(X), rtol=1e-12)
    with _TaskSizes() as seen:
        got = model.evaluate(Xd, yd)
    assert seen.max_rows <= 200
    want = ref.evaluate(X, y)
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-12)
    assert got["accuracy"] == want["accuracy"]


def test_out_of_core_npy_trains_in_batch_mode(dask_backend, tmp_path):
    from nnbackend.backends.dask.chunks import open_npy

    X, y = _data(n=1500)
    X = X.astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y.astype(np.float32))
    Xd = open_npy(tmp_path / "X.npy", chunk_rows=400)
    yd = open_npy(tmp_path / "y.npy", chunk_rows=400)
    assert Xd.chunks[0] == (400, 400, 400, 300) and Xd.dtype == np.float32
    ref = nb.MLP([5, 6, 1], backend="numpy", seed=0)
    ref.fit(X, y, mode="batch", epochs=3, lr=0.5)
    model = nb.MLP([5, 6, 1], backend=dask_backend, seed=0)
    with _TaskSizes() as seen:
        model.fit(Xd, yd, mode="batch", epochs=3, lr=0.5)
    assert seen.max_rows <= 400
    assert max_rel_diff(ref.flat_params, model.flat_params) < 2e-5


def test_model_follows_dask_data_and_params_stay_numpy():
    X, y = _data(n=300)
    Xd, yd = _chunked(X, y, 100)
    model = nb.MLP([5, 3, 1], dtype="float64")
    model.fit(Xd, yd, mode="minibatch", epochs=1)
    assert model.backend.name == "dask"
    assert all(isinstance(W, np.ndarray) and isinstance(b, np.ndarray) for W, b in model.params)


def test_refusals(dask_backend):
    X, y = _data(n=100)
    model = nb.MLP([5, 1], backend=dask_backend)
    with pytest.raises(ValueError, match="dask backend has no reference loop"):
        model.fit(*_chunked(X, y, 50), executor="reference")
    with pytest.raises(ValueError, match="executor 'dask-chunks' needs the dask backend"):
        nb.MLP([5, 1]).fit(X, y, executor="dask-chunks")
    with pytest.raises(ValueError, match="scheduler= applies to the dask backend only"):
        nb.get_backend("numpy", scheduler="threads")
    # 'cuda' / 'cuda:N' are devices now (CuPy chunks): see tests/test_dask_cupy.py.
    with pytest.raises(ValueError, match="has the devices 'cpu' .* and 'cuda' or 'cuda:N'"):
        nb.get_backend("dask", device="tpu")
    with pytest.raises(ValueError, match="scheduler must be an address"):
        nb.get_backend("dask", scheduler=42)


def test_missing_dask_names_the_extra(monkeypatch):
    from nnbackend.backends import dask as dask_backend

    dask_backend.dask_namespace.cache_clear()
    monkeypatch.setitem(sys.modules, "array_api_compat.dask.array", None)
    try:
        with pytest.raises(BackendUnavailableError, match=r"nnbackend\[dask\]"):
            nb.get_backend("dask")
    finally:
        monkeypatch.undo()
        dask_backend.dask_namespace.cache_clear()


def test_unreachable_scheduler_is_one_clear_error(monkeypatch):
    pytest.importorskip("distributed", reason="needs: pip install 'nnbackend[dask]'")
    address = "tcp://127.0.0.1:9"  # the discard port: nothing listens there
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(BackendUnavailableError,
                           match="cannot connect to the Dask scheduler at 'tcp://127.0.0.1:9'"):
            nb.get_backend("dask", scheduler=address)
        monkeypatch.setenv("NNBACKEND_DASK_SCHEDULER", address)
        with pytest.raises(BackendUnavailableError, match=r"from \$NNBACKEND_DASK_SCHEDULER"):
            nb.get_backend("dask")
        from nnbackend.cli import main

        monkeypatch.delenv("NNBACKEND_DASK_SCHEDULER")
        with pytest.raises(SystemExit) as exit_:
            main(["train", "--backend", "dask", "--scheduler", address, "--epochs", "1"])
        assert exit_.value.code == 2


def test_local_cluster_trains_like_numpy(cluster, monkeypatch):
    backend = nb.get_backend("dask", scheduler=cluster.scheduler_address)
    assert "2 workers" in backend.device_name()
    X, y = _data(n=1200)
    Xd, yd = _chunked(X, y, 300)
    ref = nb.MLP([5, 6, 1], backend="numpy", dtype="float64", seed=4)
    ref.fit(X, y, mode="batch", epochs=3, lr=0.5, shuffle=False)
    model = nb.MLP([5, 6, 1], backend=backend, dtype="float64", seed=4)
    model.fit(Xd, yd, mode="batch", epochs=3, lr=0.5, shuffle=False)
    assert max_rel_diff(ref.flat_params, model.flat_params) < 1e-10
    # The epoch's chunk tasks ran on the cluster's workers, not on local
    # threads; which worker took which chunk is the scheduler's choice, not
    # pinned here.
    import distributed

    from nnbackend.backends.dask.chunks import _chunk_sums

    with distributed.get_task_stream(backend.scheduler) as stream:
        model.fit(Xd, yd, mode="batch", epochs=1, lr=0.5, shuffle=False)
    workers = set(backend.scheduler.scheduler_info()["workers"])
    # A delayed call's key is its function's name, "-", a token.
    chunk_tasks = [t for t in stream.data if str(t["key"]).startswith(f"{_chunk_sums.__name__}-")]
    # One task per chunk (README); distinct keys, should a task be retried.
    assert len({t["key"] for t in chunk_tasks}) == len(Xd.chunks[0]), \
        sorted({str(t["key"])[:40] for t in stream.data})
    assert {t["worker"] for t in chunk_tasks} <= workers

    # Mini-batch on the cluster walks the same order as on local threads.
    local = nb.MLP([5, 6, 1], backend=nb.get_backend("dask", scheduler="threads"), dtype="float64", seed=4)
    local.fit(Xd, yd, mode="minibatch", batch_size=32, epochs=1, lr=0.1, seed=5)
    remote = nb.MLP([5, 6, 1], backend=backend, dtype="float64", seed=4)
    remote.fit(Xd, yd, mode="minibatch", batch_size=32, epochs=1, lr=0.1, seed=5)
    assert max_rel_diff(local.flat_params, remote.flat_params) < 1e-12

    # The environment variable reaches the same cluster (and the same client).
    monkeypatch.setenv("NNBACKEND_DASK_SCHEDULER", cluster.scheduler_address)
    assert nb.get_backend("dask").scheduler is backend.scheduler


def test_validation_split_in_batch_mode_equals_numpy(dask_backend):
    # The stratified split is drawn from the labels on the host (one value a
    # row is fetched); the held-out rows are then a lazy gather of the chunks.
    X, y = _data(n=1200)
    Xd, yd = _chunked(X, y, 300)
    hists, params = [], []
    for backend, data in ((dask_backend, (Xd, yd)), ("numpy", (X, y))):
        model = nb.MLP([5, 8, 1], loss="bce", backend=backend, dtype="float64", seed=0)
        hists.append(model.fit(*data, mode="batch", epochs=4, lr=0.5, validation_split=0.25))
        params.append([np.asarray(a) for pair in model.params for a in pair])
    (got, want) = hists
    np.testing.assert_allclose(got.val_loss, want.val_loss, rtol=1e-10)
    np.testing.assert_allclose(got.val_accuracy, want.val_accuracy, rtol=1e-12)
    assert got.n_samples == want.n_samples == 900
    assert max_rel_diff(*params) < 1e-10


class _TaskCount(dask.callbacks.Callback):
    """Counts the tasks of every graph computed."""

    def __init__(self):
        super().__init__()
        self.tasks = 0

    def _start(self, dsk):
        self.tasks += len(dsk)


def test_evaluation_passes_one_chunk_at_a_time(dask_backend):
    # Slicing a Dask array into chunk_size-row pieces builds graph per piece:
    # evaluate, loss_and_grads and the validation pass take the data's own
    # row chunks instead, so the graph grows with the chunks, not with N.
    X, y = _data(n=6000)
    Xd, yd = _chunked(X, y, 1500)
    assert dask_backend.rows_per_pass(Xd, 128) == 1500
    assert dask_backend.rows_per_pass(Xd, 4096) == 4096
    assert nb.get_backend("numpy").rows_per_pass(X, 128) == 128
    model = nb.MLP([5, 8, 1], loss="bce", backend=dask_backend, dtype="float64", seed=0)
    ref = nb.MLP([5, 8, 1], loss="bce", backend="numpy", dtype="float64", seed=0)
    # The same four chunks, eight times fewer rows: the graph must not grow
    # with N (slices of 128 rows gave 614 tasks against 163, passes of one
    # chunk 110 against 110). Only the ratio is pinned, not dask's count of
    # tasks per chunk.
    small = _chunked(*_data(n=750), 750 // 4 + 1)
    assert len(small[0].chunks[0]) == len(Xd.chunks[0]) == 4
    with _TaskCount() as seen_small:
        model.evaluate(*small, chunk_size=128)
    with _TaskCount() as seen:
        got = model.evaluate(Xd, yd, chunk_size=128)
    assert 0 < seen.tasks <= 1.5 * seen_small.tasks, (seen.tasks, seen_small.tasks)
    want = ref.evaluate(X, y, chunk_size=128)
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-12)
    assert got["accuracy"] == want["accuracy"]
    loss, grads = model.loss_and_grads(Xd, yd, chunk_size=128)
    ref_loss, ref_grads = ref.loss_and_grads(X, y)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for (dW, db), (rW, rb) in zip(grads, ref_grads):
        np.testing.assert_allclose(np.asarray(dW), rW, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(np.asarray(db), rb, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("output, loss", [("sigmoid", "mse"), ("sigmoid", "bce"),
                                          ("softmax", "cross_entropy"), ("identity", "mse")])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_dask_epochs_equal_plain_numpy_backprop(dask_backend, output, loss, reduction):
    """Against a hand-written NumPy reference that shares no code with
    nnbackend (tests/test_plumbing.py's), not against nnbackend's NumPy
    backend: a bug in a helper both backends use would cancel out there.
    One batch epoch and one unshuffled minibatch epoch across chunk edges."""
    from test_plumbing import (_host_params, _np_forward, _np_grads, _np_loss_sum,
                               _np_minibatch_epoch)

    rng = np.random.default_rng(21)
    n, k = 230, 3 if output == "softmax" else 2
    X = rng.normal(size=(n, 4))
    if output == "softmax":
        Y = np.eye(k)[rng.integers(0, k, size=n)]
    elif output == "sigmoid":
        Y = (rng.random((n, k)) < 0.5).astype(np.float64)
    else:
        Y = rng.normal(size=(n, k))
    Xd, Yd = da.from_array(X, chunks=(64, -1)), da.from_array(Y, chunks=(64, -1))
    lr = 0.4 if reduction == "mean" else 0.004
    make = lambda: nb.MLP([4, 6, k], hidden_activation="tanh", output_activation=output,  # noqa: E731
                          loss=loss, reduction=reduction, backend=dask_backend,
                          dtype="float64", seed=9)
    model = make()
    p0 = _host_params(model)
    hist = model.fit(Xd, Yd, mode="batch", epochs=1, lr=lr, optimizer="sgd", chunk_size=50)
    grads = _np_grads(p0, X, Y, "tanh", output, loss, reduction)
    want = [(W - lr * dW, b - lr * db) for (W, b), (dW, db) in zip(p0, grads)]
    total = _np_loss_sum(loss, _np_forward(p0, X, "tanh", output)[1], Y)
    assert hist.loss[0] == pytest.approx(total / n if reduction == "mean" else total, rel=1e-12)
    for (W, b), (We, be) in zip(_host_params(model), want):
        np.testing.assert_allclose(W, We, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(b, be, rtol=1e-11, atol=1e-14)

    model = make()
    hist = model.fit(Xd, Yd, mode="minibatch", batch_size=40, epochs=1, lr=lr, shuffle=False,
                     optimizer="sgd")
    want, total = _np_minibatch_epoch(p0, X, Y, 40, lr, "tanh", output, loss, reduction)
    assert hist.loss[0] == pytest.approx(total / n if reduction == "mean" else total, rel=1e-12)
    for (W, b), (We, be) in zip(_host_params(model), want):
        np.testing.assert_allclose(W, We, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(b, be, rtol=1e-11, atol=1e-14)


def test_the_namespace_is_named_for_what_it_is():
    # Its name says which eager library runs the host arrays (a loop once overwrote it).
    import nnbackend as nb

    assert nb.get_backend("dask").xp.__name__ == "nnbackend.dask"


def test_class_ids_become_one_hot_rows_chunk_by_chunk_never_gathered():
    # 1-D class ids on Dask: the one-hot rows are a lazy Dask array chunked as the
    # ids are (it was an N x C NumPy array built on the client).
    from nnbackend.data import as_targets

    backend = nb.get_backend("dask")
    ids = np.random.default_rng(0).integers(0, 5, 1_000)
    y = da.from_array(ids, chunks=250)
    Y = as_targets(backend, y, "cross_entropy", 5, 1_000, backend.dtype("float32"))
    assert isinstance(Y, da.Array) and Y.chunks[0] == (250, 250, 250, 250)
    np.testing.assert_array_equal(Y.compute(), np.eye(5, dtype=np.float32)[ids])
    for bad, message in ((da.from_array(np.r_[ids[:-1], 5], chunks=250), r"outside \[0, 5\)"),
                         (da.from_array(np.r_[ids[:-1], 0.5], chunks=250), "whole numbers"),
                         (da.from_array(np.r_[ids[:-1], np.nan], chunks=250), "contains NaN")):
        with pytest.raises(ValueError, match=message):
            as_targets(backend, bad, "cross_entropy", 5, 1_000, backend.dtype("float32"))


def test_row_chunks_of_no_rows_are_dropped_before_the_checks():
    # A boolean mask leaves 0-row chunks, which Dask's own 2-D reductions (the
    # input checks') refuse with an error about concatenation.
    rng = np.random.default_rng(0)
    X, y = rng.random((1_000, 5)), (rng.random(1_000) > 0.5).astype(float)
    keep = np.r_[np.ones(500, bool), np.zeros(200, bool), np.ones(300, bool)]
    Xm = da.from_array(X, chunks=(100, 5))[da.from_array(keep, chunks=100)].compute_chunk_sizes()
    ym = da.from_array(y, chunks=100)[da.from_array(keep, chunks=100)].compute_chunk_sizes()
    assert 0 in Xm.chunks[0]
    got = nb.MLP([5, 6, 1], backend="dask", loss="bce", seed=0).fit(Xm, ym, mode="batch",
                                                                    epochs=2)
    want = nb.MLP([5, 6, 1], loss="bce", seed=0).fit(X[keep], y[keep], mode="batch", epochs=2)
    np.testing.assert_allclose(got.loss, want.loss, rtol=1e-6)
