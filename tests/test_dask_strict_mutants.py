"""The dask and strict backends at the edges a mutation audit found untested.

Each test names the mutants of ``nnbackend/backends/strict.py`` (S..),
``nnbackend/backends/dask/__init__.py`` (D..) and
``nnbackend/backends/dask/chunks.py`` (C..) that it kills, and what went wrong
under them (the audit: ``benchmarks/results/mutation-2026-12-07i``).
"""

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.backends import BackendUnavailableError, backend_of


def _xor(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.float64)


# -- strict ------------------------------------------------------------------------------

@pytest.fixture
def strict_xp():
    xp = pytest.importorskip("array_api_strict", reason="needs array-api-strict")
    if not hasattr(xp, "set_array_api_strict_flags"):
        pytest.skip("this array-api-strict has no flags")
    yield xp
    xp.reset_array_api_strict_flags()


def test_strict_set_to_the_standard_the_kernels_need_trains(strict_xp):
    # S01 (`version < API_VERSION` -> `<=`): array-api-strict set to exactly
    # 2024.12, the standard the kernels are written against, was refused.
    X, y = _xor()
    strict_xp.set_array_api_strict_flags(api_version="2024.12")
    model = nb.MLP([3, 4, 1], loss="bce", backend="strict", seed=0)
    assert model.fit(X, y, epochs=2).epochs == 2
    assert backend_of(strict_xp.asarray([1.0])).name == "strict"


def test_a_strict_array_under_an_earlier_standard_is_refused_where_its_backend_is_found(
        strict_xp):
    # S11 (of_array without _checked_version): the backend of a strict array
    # was made under the 2023.12 flag, to fail later or deep in a step.
    a = strict_xp.asarray([1.0, 2.0])
    strict_xp.set_array_api_strict_flags(api_version="2023.12")
    with pytest.raises(ValueError, match=r"set to the 2023.12 standard .*api_version"):
        backend_of(a)


def test_the_strict_cpu_device_is_named_as_get_backend_takes_it(strict_xp):
    # S09 (device_spec returns array-api-strict's own name): the CPU device was
    # "CPU_DEVICE" in checkpoints, the CLI's info and the bench's names.
    assert nb.get_backend("strict").device_spec() == "cpu"
    assert nb.get_backend("strict", "cpu").device_spec() == "cpu"
    assert nb.get_backend("strict", "device1").device_spec() == "device1"


def _diverging_fit_warnings(backend, mode="batch", **data):
    import warnings

    X = np.array([[1.0, 2.0], [3.0, -1.0]] * 4)
    y = np.array([1e30, -1e30] * 4)
    X, y = data.get("X", X), data.get("y", y)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model = nb.MLP([2, 3, 1], output_activation="identity", backend=backend, seed=0)
        model.fit(X, y, mode=mode, batch_size=3, epochs=3, lr=1e3)
    return [f"{type(w.message).__name__}: {w.message}" for w in seen]


def test_a_diverging_strict_fit_says_so_once_without_numpys_overflow_warnings(strict_xp):
    # S16 (strict's loop_context a null context): NumPy, under array-api-strict,
    # warned "overflow encountered in multiply/matmul" at every operation of
    # the diverging epoch beside fit's one DivergenceWarning.
    seen = _diverging_fit_warnings("strict")
    assert len(seen) == 1 and seen[0].startswith("DivergenceWarning"), seen


# -- dask: the scheduler and device named --------------------------------------------------

da = pytest.importorskip("dask.array", reason="the dask backend needs dask (the 'dask' extra)")
from nnbackend.backends import dask as dask_mod  # noqa: E402
from nnbackend.backends.dask import chunks as dask_chunks  # noqa: E402


def test_the_scheduler_named_by_argument_or_environment_is_dasks_local_one(monkeypatch):
    # D03b ("sync" dropped from the local schedulers): scheduler="sync" was
    # taken for a cluster's address. D08 (the variable not stripped): " sync "
    # from $NNBACKEND_DASK_SCHEDULER was an address. D07 (the variable read even
    # where scheduler= is given): the variable overrode the argument.
    monkeypatch.delenv(dask_mod.DASK_SCHEDULER_ENV_VAR, raising=False)
    assert nb.get_backend("dask", scheduler="sync").scheduler == "sync"
    monkeypatch.setenv(dask_mod.DASK_SCHEDULER_ENV_VAR, " sync ")
    assert nb.get_backend("dask").scheduler == "sync"
    assert nb.get_backend("dask", scheduler="threads").scheduler == "threads"


def test_an_empty_scheduler_address_is_refused_by_name(monkeypatch):
    # D05 (the empty-address check dropped): "" went to distributed.Client("")
    # as an address to connect to.
    monkeypatch.delenv(dask_mod.DASK_SCHEDULER_ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="scheduler address is empty"):
        nb.get_backend("dask", scheduler="")
    monkeypatch.setenv(dask_mod.DASK_SCHEDULER_ENV_VAR, "   ")
    with pytest.raises(ValueError, match="scheduler address is empty"):
        nb.get_backend("dask")


class _FakeClient:
    made = []

    def __init__(self, address):
        self.address, self.status = address, "running"
        _FakeClient.made.append(self)


def test_a_connected_client_is_reused_and_a_closed_one_replaced(monkeypatch):
    # D09 (a kept client reused whatever its status): a closed client was
    # handed back, and every compute on it failed. It also pins D10 (the client
    # not kept: a new connection per backend), which test_dask.py kills.
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(distributed, "Client", _FakeClient)
    monkeypatch.setattr(dask_mod, "_CLIENTS", {})
    _FakeClient.made = []
    address = "tcp://10.0.0.5:8786"
    first = dask_mod._scheduler(address)
    assert dask_mod._scheduler(address) is first and len(_FakeClient.made) == 1
    first.status = "closed"
    second = dask_mod._scheduler(address)
    assert second is not first and second.status == "running"
    assert len(_FakeClient.made) == 2


@pytest.mark.parametrize("device, gpu", [(None, False), ("cpu", False), ("cuda", True),
                                         ("CUDA:1", True), (" gpu ", True), ("gpu:0", True),
                                         (0, True), ("3", True)])
def test_the_devices_that_put_the_parameters_on_a_gpu(device, gpu):
    # D11 ("cpu" no longer a CPU device: refused), D14 (not lowered: "CUDA:1"
    # refused), D15 (no bare GPU number: device=0 refused).
    assert dask_mod._gpu_device(device) is gpu


@pytest.mark.parametrize("device", ["cudax", "cuda:", "gpu:1x", "tpu", "cpu:0"])
def test_a_device_that_only_begins_as_a_gpu_is_refused(device):
    # D13 (match for fullmatch): "cudax" and "gpu:1x" were taken as GPUs.
    with pytest.raises(ValueError, match="has the devices 'cpu'"):
        dask_mod._gpu_device(device)


def _no_usable_gpu():
    try:
        nb.get_backend("cupy")
    except Exception:
        return True
    return False


@pytest.mark.skipif(not _no_usable_gpu(), reason="CuPy has a GPU here: the test is of its absence")
def test_a_gpu_device_or_the_cuda_scheduler_without_a_gpu_is_refused_not_put_on_the_cpu(
        monkeypatch):
    # D17 (every device loaded as "cpu"): device="cuda" gave NumPy parameters
    # on the CPU without a word. D16 (scheduler="cuda" no longer implies
    # device="cuda"): the parameters stayed on the CPU, the chunks on the
    # workers' GPUs. D04 (scheduler="cuda" not recognised): it was taken for
    # a cluster's address ("cannot connect to the Dask scheduler at 'cuda'").
    monkeypatch.delenv(dask_mod.DASK_SCHEDULER_ENV_VAR, raising=False)
    with pytest.raises(BackendUnavailableError, match="on device 'cuda' keeps the parameters"):
        nb.get_backend("dask", "cuda")
    monkeypatch.setattr(dask_mod, "_cuda_client", lambda source: "sync")
    with pytest.raises(BackendUnavailableError, match="on device 'cuda' keeps the parameters"):
        nb.get_backend("dask", scheduler="cuda")


# -- dask: files, row chunks and the chunks' namespace ------------------------------------

def test_open_npy_takes_about_64_mib_of_rows_per_chunk_and_at_least_one(tmp_path, monkeypatch):
    # C06 (32 MiB for 64): the default chunks halved. C05 (no floor of one
    # row): rows wider than the budget made chunks of 0 rows ("range() arg 3
    # must not be zero"). The file is made sparse: only its header is read.
    path = tmp_path / "wide.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(40, 2**20)).flush()
    assert dask_chunks.open_npy(path).chunks[0] == (8,) * 5  # 8 MiB rows
    monkeypatch.setattr(dask_chunks, "NPY_CHUNK_BYTES", 2**20)
    assert dask_chunks.open_npy(path).chunks[0] == (1,) * 40


def test_open_npy_of_two_chunks_or_of_rows_of_no_columns(tmp_path):
    # C08 (concatenated only from three blocks): a file of two chunks came back
    # as its first chunk alone. C04 (no floor on a row's bytes): rows of no
    # columns divided by zero.
    np.save(tmp_path / "a.npy", np.arange(10.0))
    got = dask_chunks.open_npy(tmp_path / "a.npy", chunk_rows=5)
    assert got.chunks[0] == (5, 5)
    np.testing.assert_array_equal(got.compute(), np.arange(10.0))
    np.save(tmp_path / "empty_rows.npy", np.zeros((6, 0)))
    assert dask_chunks.open_npy(tmp_path / "empty_rows.npy").shape == (6, 0)


def test_row_chunks_puts_every_column_in_one_chunk_and_y_on_xs_rows():
    # C11 (X's column chunks kept): X split by columns (chunks (50, 2) of 5
    # columns) gave three delayed blocks per row chunk, misaligned with Y's.
    # C12 / C13 (Y rechunked only for one of its two faults): Y's column
    # chunks, or its row chunks unlike X's, were kept. C10 (a NumPy X in
    # Dask's automatic chunks whatever Y's): a Dask Y was rechunked to them.
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(100, 5)), rng.normal(size=(100, 4))
    Xc, Yc = dask_chunks.row_chunks(da.from_array(X, chunks=(50, 2)),
                                    da.from_array(Y, chunks=(50, 2)))
    assert Xc.chunks == ((50, 50), (5,)) and Yc.chunks == ((50, 50), (4,))
    Xc, Yc = dask_chunks.row_chunks(da.from_array(X, chunks=(50, -1)),
                                    da.from_array(Y, chunks=(25, -1)))
    assert Yc.chunks == ((50, 50), (4,))
    Xc, Yc = dask_chunks.row_chunks(X, da.from_array(Y, chunks=(30, -1)))
    assert Xc.chunks == ((30, 30, 30, 10), (5,)) and Yc.chunks[0] == (30, 30, 30, 10)
    np.testing.assert_array_equal(Xc.compute(), X)
    np.testing.assert_array_equal(Yc.compute(), Y)


def test_a_fit_on_data_split_by_columns_equals_numpy():
    # C11 again, through fit: the batch epoch took X's blocks (three per row
    # chunk) for row chunks, and the fit failed with a shape error.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 5))
    y = (X[:, 0] > 0).astype(np.float64)
    want = nb.MLP([5, 3, 1], loss="bce", dtype="float64", seed=0).fit(
        X, y, mode="batch", epochs=3, lr=0.5)
    got = nb.MLP([5, 3, 1], loss="bce", dtype="float64", backend="dask", seed=0).fit(
        da.from_array(X, chunks=(40, 2)), da.from_array(y, chunks=40), mode="batch", epochs=3,
        lr=0.5)
    np.testing.assert_allclose(got.loss, want.loss, rtol=1e-10)


def test_row_order_skips_chunks_of_no_rows():
    # C16 / C15 (chunks of no rows visited): an unshuffled epoch visited chunk 1
    # of (3, 0, 2); shuffled (C15), it was visited with no rows. C17 (the visit
    # order drawn from as many entries as chunks, empty ones included): an
    # index past the non-empty chunks (IndexError).
    assert [(c, rows) for c, rows in dask_chunks.row_order(None, (3, 0, 2))] == [(0, None),
                                                                                (2, None)]
    for seed in range(6):
        pi = np.random.default_rng(seed).permutation(5)
        visits = dask_chunks.row_order(pi, (3, 0, 2))
        assert sorted(c for c, _ in visits) == [0, 2]
        got = np.concatenate([{0: 0, 2: 3}[c] + rows for c, rows in visits])
        assert sorted(got) == list(range(5))


def test_chunk_namespace_of_a_numpy_chunk_is_nnbackends_own():
    # C22 (NumPy chunks given array-api-compat's namespace): the chunks' tasks
    # lost nnbackend's NumPy fast paths.
    from nnbackend.backends.numpy import numpy_namespace

    assert dask_chunks.chunk_namespace(np.ones((2, 2))) is numpy_namespace()


# -- dask: the backend's methods ------------------------------------------------------------

class _CountingScheduler:
    """A Dask scheduler (a ``get`` function): Dask's synchronous one, counted."""

    def __init__(self):
        self.calls = 0

    def __call__(self, dsk, keys, **kwargs):
        import dask

        self.calls += 1
        return dask.get(dsk, keys, **kwargs)


def _on(scheduler):
    return dask_mod.DaskBackend("dask", dask_mod.dask_namespace(), "cpu", scheduler)


def test_lazy_arrays_compute_on_the_backends_scheduler():
    # D25 (to_host computes on Dask's default) and D34 (computed() likewise):
    # a backend named for a cluster or for "sync" computed on local threads.
    # D28 (loop_context without the scheduler): the training loop's computes
    # went to Dask's default.
    counted = _CountingScheduler()
    backend = _on(counted)
    lazy = da.arange(6.0, chunks=3)
    np.testing.assert_array_equal(backend.to_host(lazy), np.arange(6.0))
    assert counted.calls == 1
    total, = backend.computed([lazy.sum()])
    assert counted.calls == 2 and float(total) == 15.0
    with backend.loop_context():
        assert float(lazy.sum().compute()) == 15.0
    assert counted.calls == 3


def test_no_scheduler_named_leaves_the_users_dask_default_alone():
    # D29 (compute_context sets scheduler=None where none was named): the
    # scheduler the user had configured with dask.config.set was replaced by
    # Dask's built-in default inside the loop.
    import dask

    counted = _CountingScheduler()
    backend = _on(None)
    with dask.config.set(scheduler=counted):
        with backend.compute_context():
            da.arange(4.0, chunks=2).sum().compute()
    assert counted.calls == 1


def test_rows_per_pass_is_the_largest_chunk_within_its_bounds():
    # D32 (the smallest chunk for the largest): a pass over chunks (1000, 500)
    # went in 500-row slices. It also pins what existing tests kill: D30 (no
    # floor of chunk_size), D31 / D01 (no cap of PASS_SCALE * chunk_size, or a
    # scale of 1) and D33 (the chunks ignored).
    backend = nb.get_backend("dask")
    assert dask_mod.PASS_SCALE == 64
    assert backend.rows_per_pass(da.zeros((20, 2), chunks=(10, 2)), 100) == 100
    assert backend.rows_per_pass(da.zeros((10_000, 2), chunks=(10_000, 2)), 100) == 6_400
    assert backend.rows_per_pass(da.zeros((1_500, 2), chunks=(1_000, 2)), 100) == 1_000
    assert backend.rows_per_pass(np.zeros((1_500, 2)), 100) == 100


def test_an_array_of_no_rows_at_all_keeps_its_chunks():
    # D36 (no check that some rows remain): an array of only empty chunks was
    # rechunked to no chunks at all.
    backend = nb.get_backend("dask")
    empty = da.zeros((0, 3), chunks=(0, 3))
    assert backend.without_empty_chunks(empty) is empty
    masked = da.from_array(np.ones((6, 2)), chunks=(3, 2))[da.from_array(
        np.array([True] * 3 + [False] * 3), chunks=3)].compute_chunk_sizes()
    assert backend.without_empty_chunks(masked).chunks[0] == (3,)


def test_only_dask_arrays_have_the_dask_backend():
    # D18 (no is-dask check): a NumPy array was said to be a dask array.
    assert dask_mod.DaskBackend.of_array(np.ones(3)) is None
    assert dask_mod.DaskBackend.of_array([1.0]) is None


def test_a_local_schedulers_backend_is_named_with_it():
    # D42 (a local scheduler's name taken for a Client): device_name fell back
    # to the bare CPU name, without "(dask sync scheduler)".
    assert nb.get_backend("dask", scheduler="sync").device_name().endswith(
        "(dask sync scheduler)")


def test_the_dask_namespace_is_made_once_and_dispatches_keyword_arrays():
    # D46 (keyword
    # arguments not looked at): clip(x, min=<dask>) went to NumPy, which
    # recursed without end. D48 (Dask's __array_namespace_info__): the
    # namespace listed Dask's pseudo-device beside the parameters' "cpu". It
    # also pins D52 (no cache: a new module per call), which test_dask.py kills.
    from nnbackend.backends.numpy import numpy_namespace

    xp = dask_mod.dask_namespace()
    assert dask_mod.dask_namespace() is xp
    assert isinstance(xp.clip(np.ones(3), min=da.zeros(3)), da.Array)
    assert list(xp.__array_namespace_info__().devices()) == list(
        numpy_namespace().__array_namespace_info__().devices())


def test_jax_parameters_keep_dask_arrays_lazy_and_are_not_a_gpu():
    # D45 (Dask arrays inside a list argument not looked at): concat of Dask
    # arrays went to the parameters' library (JAX), which computed them.
    # D40 (a parameters' backend taken for a GPU): DaskBackend.on(jax on its
    # CPU).is_gpu() was True. D22 (asarray of a Dask array by the base class):
    # it went to Dask's asarray with device=JAX's device, not kept as it was.
    # D23 (from_chunks returns any array as it is): for NumPy parameters, a
    # task's JAX result stayed JAX.
    try:
        jax_backend = nb.get_backend("jax", "cpu")
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    backend = dask_mod.DaskBackend.on(jax_backend, "sync")
    assert backend.is_gpu() is False
    got = backend.xp.concat([da.ones(3), da.zeros(2)])
    assert isinstance(got, da.Array)
    np.testing.assert_array_equal(backend.to_host(got), [1, 1, 1, 0, 0])
    assert isinstance(backend.asarray(da.ones(3)), da.Array)
    host = nb.get_backend("dask").from_chunks(jax_backend.asarray(np.ones(2)))
    assert isinstance(host, np.ndarray)


def test_a_diverging_dask_fit_on_a_cluster_says_so_once_without_numpys_warnings():
    # C27 (_quiet a null context): the chunk tasks, on a dask.distributed
    # worker's threads (which, unlike Dask's local threads, do not carry the
    # client's np.errstate), warned "overflow encountered in multiply/dot"
    # beside fit's one DivergenceWarning. D06 (a distributed.Client passed as
    # scheduler= not taken): get_backend refused the Client.
    distributed = pytest.importorskip("distributed")
    X = np.array([[1.0, 2.0], [3.0, -1.0]] * 4)
    y = np.array([1e30, -1e30] * 4)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=None) as client:
        seen = _diverging_fit_warnings(
            nb.get_backend("dask", scheduler=client),
            X=da.from_array(X, chunks=(2, 2)), y=da.from_array(y, chunks=2))
    assert len(seen) == 1 and seen[0].startswith("DivergenceWarning"), seen


def test_a_minibatch_epochs_accuracy_counts_every_batch_of_every_chunk():
    # C52 (the correct count kept from the last batch only): a dask epoch's
    # accuracy was that of its last batch's rows over all rows.
    X, y = _xor(n=300, seed=3)
    want = nb.MLP([3, 4, 1], loss="bce", dtype="float64", seed=0).fit(
        X, y, mode="minibatch", batch_size=32, epochs=2, lr=0.5, shuffle=False)
    got = nb.MLP([3, 4, 1], loss="bce", dtype="float64", backend="dask", seed=0).fit(
        da.from_array(X, chunks=(100, -1)), da.from_array(y, chunks=100), mode="minibatch",
        batch_size=32, epochs=2, lr=0.5, shuffle=False)
    assert min(want.accuracy) > 0.2
    np.testing.assert_allclose(got.accuracy, want.accuracy, rtol=1e-12)
    np.testing.assert_allclose(got.loss, want.loss, rtol=1e-10)
