"""The dask backend on chunks of other libraries: CuPy chunks on GPUs (issue 26 item 6).

On the CPU (here): which namespace a chunk's task computes in
(``chunk_namespace``), that the per-chunk partial sums are namespace-generic
(``_chunk_sums`` called on array-api-strict, torch and NumPy chunks, with
parameters of the chunk's library or of another one), that a model whose
parameters live off NumPy (JAX arrays stand in for CuPy arrays on the
client's GPU: both take NumPy's dtypes) trains on NumPy chunks with Dask
adding the partials and equals the NumPy-parameter epochs to 1e-12, and the
clear errors (a device Dask cannot mean, CuPy or dask-cuda missing).

On a GPU with CuPy (the GPU check, ``benchmarks/gpu_check.sh``): a fit on
CuPy-chunked Dask arrays equals the NumPy-chunked fit (float64 to 1e-9),
its parameters are CuPy on the GPU, every chunk task saw CuPy chunks (X
never went to the host), and dask-cuda's LocalCUDACluster
(``scheduler="cuda"``) gives the same parameters where dask-cuda is
installed. They skip, with the reason, where CuPy or a GPU is missing.
"""

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.backends import BackendUnavailableError

from conftest import max_rel_diff

dask = pytest.importorskip("dask", reason="the dask backend needs: pip install 'nnbackend[dask]'")
da = pytest.importorskip("dask.array", reason="the dask backend needs: pip install 'nnbackend[dask]'")

from nnbackend.backends.dask import DaskBackend
from nnbackend.backends.dask import chunks as C
from nnbackend.backends.numpy import numpy_namespace
from nnbackend.data import make_plan
from nnbackend.engine import EpochTask
from nnbackend.optim import adam, momentum


def _cupy_gpu():
    """None where CuPy has a GPU here, else why not."""
    try:
        nb.get_backend("cupy")
    except Exception as exc:  # no CuPy, or no GPU
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


needs_gpu = pytest.mark.skipif(_cupy_gpu() is not None,
                               reason=f"needs CuPy on a GPU: {_cupy_gpu()}")


def _data(n=1100, features=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.float64)
    return X, y


# -- on the CPU: the chunk namespace and the per-chunk sums ----------------------------

def _strict(device=None):
    try:
        return nb.get_backend("strict", device)
    except BackendUnavailableError as exc:
        pytest.skip(f"backend strict unavailable: {exc}")


def _torch():
    try:
        return nb.get_backend("torch")
    except BackendUnavailableError as exc:
        pytest.skip(f"backend torch unavailable: {exc}")


def _jax64():
    try:
        backend = nb.get_backend("jax")
    except BackendUnavailableError as exc:
        pytest.skip(f"backend jax unavailable: {exc}")
    backend.dtype("float64")  # turns on JAX's float64
    return backend


def test_chunk_namespace_is_the_chunks_backends():
    assert C.chunk_namespace(np.zeros((2, 2))) is numpy_namespace()
    for backend in (_strict(), _torch()):
        a = backend.asarray(np.zeros((2, 2)))
        assert C.chunk_namespace(a) is backend.xp, backend.name
        assert C.known_backend(a).name == backend.name
    assert C.known_backend(np.zeros(2)) is None  # NumPy chunks: the NumPy path, as before
    # A Dask array of NumPy chunks has NumPy's meta: the model's parameters stay NumPy.
    Xd = da.from_array(np.zeros((6, 2)), chunks=(3, -1))
    model_backend = DaskBackend.of_array(Xd)
    assert model_backend.params_backend is None and model_backend.device == "cpu"
    assert not model_backend.is_gpu()


def _reference_sums(model, X, Y, n_total):
    """NumPy's summed loss and gradients of rows ``X``, ``Y`` (mean over ``n_total``)."""
    from nnbackend.network import loss_and_grads_rows, slice_rows

    xp = numpy_namespace()
    params = [np.asarray(p) for p in model.flat_params]
    return loss_and_grads_rows(params, model.spec, slice_rows(X, Y), X.shape[0], 16, None, xp,
                               n_samples=n_total)


@pytest.mark.parametrize("chunks", ["numpy", "strict", "strict:device1", "torch"])
@pytest.mark.parametrize("params_of", ["numpy", "chunk"])
def test_partial_sums_are_namespace_generic(chunks, params_of):
    """_chunk_sums (one task) on chunks of other libraries: its results are of
    the chunk's library and device and equal NumPy's; parameters of another
    library are taken to the chunk's (the task's move of CuPy parameters to
    a worker's GPU is this move)."""
    from nnbackend.network import loss_and_grads_rows, slice_rows

    name, _, device = chunks.partition(":")
    backend = {"numpy": lambda: nb.get_backend("numpy"), "torch": _torch,
               "strict": lambda: _strict(device or None)}[name]()
    X, y = _data(n=40)
    Y = y.reshape(-1, 1)
    model = nb.MLP([5, 6, 1], backend="numpy", dtype="float64", seed=3, loss="bce")
    want_loss, want_grads, _ = _reference_sums(model, X, Y, n_total=100)

    Xc, Yc = backend.asarray(X), backend.asarray(Y)
    params = [np.asarray(p) for p in model.flat_params]
    if params_of == "chunk":
        params = [backend.asarray(p) for p in params]
    loss, grads, correct = C._chunk_sums(params, Xc, Yc, model.spec, 100, 16, None,
                                         loss_and_grads_rows, slice_rows)
    assert correct is None
    for g in grads:
        assert C.chunk_namespace(g) is C.chunk_namespace(Xc), (chunks, type(g))
        if name != "numpy":
            assert str(backend.of_array(g).device) == str(backend.device)
    assert float(backend.to_host(loss)) == pytest.approx(float(want_loss), rel=1e-12)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(backend.to_host(g), w, rtol=1e-12, atol=1e-15)


def test_params_for_chunk_copies_only_what_is_elsewhere():
    xs = _strict("device1")
    Xc = xs.asarray(np.zeros((3, 2)))
    here = xs.asarray(np.ones(2))
    elsewhere = _strict().asarray(np.ones(2))  # the CPU device: not the chunk's
    host = np.ones(2)
    moved = C.params_for_chunk([here, elsewhere, host], Xc, xs.xp)
    assert moved[0] is here  # already the chunk's library and device: no copy
    assert all(str(xs.of_array(m).device) == str(xs.device) for m in moved)
    # NumPy chunks take NumPy parameters with asarray, as before (no copy).
    Xn = np.zeros((3, 2))
    assert np.shares_memory(C.params_for_chunk([host], Xn, numpy_namespace())[0], host)


# -- on the CPU: parameters off NumPy, Dask adding the partials -------------------------

def _epochs(backend, params, X, Y, mode, opt, epochs=3, batch_size=64):
    """``epochs`` epochs of the dask-chunks executor, unshuffled."""
    model = nb.MLP([5, 6, 1], backend="numpy", dtype="float64", loss="bce")
    n = X.shape[0]
    plan = make_plan(mode, n, batch_size, shuffle=False)
    task = EpochTask(backend, model.spec, opt, plan, X, Y, 64, None)
    epoch = C.make_epoch(task)
    state, losses = opt.init(params), []
    with backend.loop_context():
        for _ in range(epochs):
            params, state, loss_sum, _ = epoch(params, state, None)
            # The epoch's figures are in the parameters' namespace (the
            # training loop stacks them there for its one transfer).
            assert type(loss_sum).__module__.split(".")[0] == \
                type(params[0]).__module__.split(".")[0], (type(loss_sum), type(params[0]))
            losses.append(float(backend.to_host(loss_sum)))
    return params, losses


@pytest.mark.parametrize("mode", ["batch", "minibatch"])
def test_parameters_off_numpy_train_like_numpy_parameters(mode):
    """A dask backend whose parameters are JAX arrays (standing in for CuPy
    arrays on the client's GPU) over NumPy chunks: each task takes the
    parameters to its chunk, Dask adds the partial sums, the client takes the
    total into JAX and steps there (batch); mini-batch takes each chunk to the
    parameters. Equal to the NumPy-parameter epochs (today's path) to 1e-12."""
    jb = _jax64()
    X, y = _data(n=1000)
    Xd, Yd = da.from_array(X, chunks=(300, -1)), da.from_array(y.reshape(-1, 1), chunks=(300, -1))
    init = nb.MLP([5, 6, 1], backend="numpy", dtype="float64", seed=2, loss="bce").flat_params
    opt = adam(0.05) if mode == "batch" else momentum(0.1)

    ref_backend = nb.get_backend("dask", scheduler="threads")
    ref, ref_losses = _epochs(ref_backend, [np.asarray(p) for p in init], Xd, Yd, mode, opt)

    backend = DaskBackend.on(jb, "threads")
    assert backend.params_backend is jb and backend.device == jb.device and backend.name == "dask"
    params = [backend.asarray(p) for p in init]
    assert all(jb.of_array(p) is not None for p in params)
    got, losses = _epochs(backend, params, Xd, Yd, mode, opt)
    assert all(jb.of_array(p) is not None for p in got), [type(p) for p in got]
    assert max_rel_diff(ref, [backend.to_host(p) for p in got]) < 1e-12
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)


def test_from_chunks_leaves_what_is_in_place():
    jb = _jax64()
    backend = DaskBackend.on(jb)
    a = jb.asarray(np.arange(3.0))
    assert backend.from_chunks(a) is a
    b = backend.from_chunks(np.arange(3.0))
    assert jb.of_array(b) is not None
    np.testing.assert_array_equal(backend.to_host(b), np.arange(3.0))
    numpy_params = nb.get_backend("dask")
    c = np.arange(3.0)
    assert numpy_params.from_chunks(c) is c


# -- on the CPU: the clear errors ------------------------------------------------------

def test_devices_and_schedulers_refused_clearly(monkeypatch):
    with pytest.raises(ValueError, match="has the devices 'cpu' .* 'cuda' or 'cuda:N'"):
        nb.get_backend("dask", device="tpu")
    if _cupy_gpu() is not None:
        # device cuda keeps the parameters on a GPU with CuPy: missing here.
        with pytest.raises(BackendUnavailableError,
                           match=r"backend 'dask' on device 'cuda:0' .*nnbackend\[cuda1"):
            nb.get_backend("dask", device="cuda:0")
    import importlib.util

    if importlib.util.find_spec("dask_cuda") is None:
        for how in ("argument", "environment"):
            with pytest.raises(BackendUnavailableError,
                               match=r"LocalCUDACluster.*pip install dask-cuda") as err:
                if how == "argument":
                    nb.get_backend("dask", scheduler="cuda")
                else:
                    monkeypatch.setenv("NNBACKEND_DASK_SCHEDULER", "cuda")
                    nb.get_backend("dask")
            assert ("$NNBACKEND_DASK_SCHEDULER" in str(err.value)) == (how == "environment")


def test_lazy_rows_of_numpy_parameters_stay_numpy(tmp_path):
    np.save(tmp_path / "X.npy", np.ones((10, 3)))
    rows = nb.get_backend("dask").lazy_rows(tmp_path / "X.npy")
    assert isinstance(rows._meta, np.ndarray)
    assert C.on_library(rows, numpy_namespace()) is rows  # already NumPy: nothing added


class _CupyDevice:
    """A stand-in for ``cupy.cuda.Device``: a context that makes its GPU current
    (``current[0]``) for the thread, as CuPy's does."""

    __module__ = "cupy.cuda.device"

    def __init__(self, id, current):
        self.id, self.current = id, current

    def __enter__(self):
        self.saved, self.current[0] = self.current[0], self.id
        return self

    def __exit__(self, *exc):
        self.current[0] = self.saved


class _OnDevice:
    """A stand-in chunk or parameter: NumPy values on a stand-in GPU."""

    def __init__(self, values, device):
        self.values, self.device = np.asarray(values), device
        self.shape = self.values.shape

    def __add__(self, other):
        assert self.device.current[0] == self.device.id, "added off its GPU"
        return _OnDevice(self.values + other.values, self.device)


def test_chunk_tasks_run_with_their_chunks_gpu_current(monkeypatch):
    # Dask's local schedulers run tasks in threads whose current GPU is 0,
    # whatever the client's: a task on chunks of GPU 1 makes GPU 1 current.
    current = [0]
    gpu1 = _CupyDevice(1, current)
    X = _OnDevice(np.ones((4, 3)), gpu1)
    Y = _OnDevice(np.ones((4, 1)), gpu1)
    seen = []
    fake_xp = type("xp", (), {"asarray": staticmethod(lambda a: seen.append(
        ("asarray", current[0])) or _OnDevice(a, gpu1))})
    monkeypatch.setattr(C, "chunk_namespace", lambda a: fake_xp)
    monkeypatch.setattr(C, "params_for_chunk", lambda params, X, xp: seen.append(
        ("params", current[0])) or params)

    def loss_and_grads(params, spec, rows, m, chunk_size, multiclass, xp, n_samples):
        seen.append(("sums", current[0]))
        return (X, [X], None)

    C._chunk_sums([X], X, Y, None, 4, 2, None, loss_and_grads, lambda X, Y: (X, Y))
    C._to_library_of(np.ones((2, 3)), _OnDevice(np.ones((0, 3)), gpu1))
    total = C._add((X, [X], X), (X, [X], X))
    assert seen == [("params", 1), ("sums", 1), ("asarray", 1)]
    assert np.all(total[0].values == 2) and current == [0]  # the thread's GPU restored
    # No such context for arrays whose library keeps no current device.
    assert isinstance(C.on_device_of(np.ones(2)), type(C.contextlib.nullcontext()))
    torch = pytest.importorskip("torch", reason="torch's devices: pip install 'nnbackend[torch]'")
    assert isinstance(C.on_device_of(torch.ones(2)), type(C.contextlib.nullcontext()))


def test_npy_rows_are_made_on_the_parameters_gpu_whatever_gpu_is_current():
    # array-api-compat's CuPy `empty` drops `device` (CuPy makes arrays on the
    # current GPU); the chunks follow `like`'s GPU, so `like` must be made on it.
    current = [0]
    made = []

    def empty(shape, dtype=None, device=None):  # as array-api-compat's CuPy `empty`
        made.append(_OnDevice(np.empty(shape, dtype), _CupyDevice(current[0], current)))
        return made[-1]

    xp = type("xp", (), {"empty": staticmethod(empty)})
    mapped = {}
    rows = type("rows", (), {"ndim": 2, "dtype": np.float32, "_meta": np.empty((0, 0)),
                             "map_blocks": lambda self, f, **kw: mapped.update(kw)})()
    C.on_library(rows, xp, _CupyDevice(1, current))
    assert mapped["like"].device.id == 1 and current == [0]


# -- on a GPU: CuPy chunks ---------------------------------------------------------------

def _cupy_chunked(X, y, rows):
    import cupy

    Xd = da.from_array(X, chunks=(rows, -1)).map_blocks(cupy.asarray)
    yd = da.from_array(y, chunks=rows).map_blocks(cupy.asarray)
    return Xd, yd


class _ChunkTypes(dask.callbacks.Callback):
    """The types of every task result with as many rows as a chunk."""

    def __init__(self, rows):
        super().__init__()
        self.rows, self.types = rows, set()

    def _posttask(self, key, result, dsk, state, worker_id):
        shape = getattr(result, "shape", ())
        if len(shape) == 2 and shape[0] > 1 and shape[0] <= self.rows:
            self.types.add(type(result).__module__.split(".")[0])


@needs_gpu
@pytest.mark.parametrize("mode", ["batch", "minibatch"])
def test_cupy_chunks_fit_equals_numpy_chunks(mode, monkeypatch):
    import cupy

    X, y = _data(n=1100)
    fit = dict(mode=mode, batch_size=64, epochs=4, lr=0.2, optimizer="adam", shuffle=False)
    ref = nb.MLP([5, 8, 1], loss="bce", backend=nb.get_backend("dask", scheduler="threads"),
                 dtype="float64", seed=3)
    h_ref = ref.fit(da.from_array(X, chunks=(300, -1)), da.from_array(y, chunks=300), **fit)

    Xd, yd = _cupy_chunked(X, y, 300)
    seen = []
    chunk_sums = C._chunk_sums

    def recording(params, X, *args):
        seen.append((type(X).__module__, type(params[0]).__module__))
        return chunk_sums(params, X, *args)

    monkeypatch.setattr(C, "_chunk_sums", recording)
    model = nb.MLP([5, 8, 1], loss="bce", dtype="float64", seed=3)  # the backend follows X
    with dask.config.set(scheduler="threads"), _ChunkTypes(300) as types:
        hist = model.fit(Xd, yd, **fit)
    assert model.backend.name == "dask" and model.backend.is_gpu()
    assert all(isinstance(p, cupy.ndarray) for p in model.flat_params)
    if mode == "batch":  # every chunk task computed on CuPy chunks with CuPy parameters
        assert seen and all(x.startswith("cupy") and p.startswith("cupy") for x, p in seen), seen
    assert types.types == {"cupy"}, types.types  # X's chunks never became NumPy
    got = [cupy.asnumpy(p) for p in model.flat_params]
    assert max_rel_diff(ref.flat_params, got) < 1e-9
    np.testing.assert_allclose(hist.loss, h_ref.loss, rtol=1e-9)
    # predict stays lazy, in CuPy chunks; its values are the NumPy model's.
    out = model.predict(Xd)
    assert isinstance(out, da.Array) and isinstance(out._meta, cupy.ndarray)
    np.testing.assert_allclose(model.backend.to_host(out), ref.predict(X), rtol=1e-9)


@needs_gpu
def test_cupy_chunk_sums_run_on_the_gpu():
    """The per-chunk function on a CuPy chunk: CuPy in, CuPy out, equal to NumPy's."""
    import cupy

    from nnbackend.network import loss_and_grads_rows, slice_rows

    X, y = _data(n=40)
    Y = y.reshape(-1, 1)
    model = nb.MLP([5, 6, 1], backend="numpy", dtype="float64", seed=3, loss="bce")
    want_loss, want_grads, _ = _reference_sums(model, X, Y, n_total=100)
    params = [np.asarray(p) for p in model.flat_params]  # moved to the GPU in the task
    loss, grads, _ = C._chunk_sums(params, cupy.asarray(X), cupy.asarray(Y), model.spec, 100,
                                   16, None, loss_and_grads_rows, slice_rows)
    assert all(isinstance(g, cupy.ndarray) for g in grads)
    assert float(loss) == pytest.approx(float(want_loss), rel=1e-9)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(cupy.asnumpy(g), w, rtol=1e-9, atol=1e-14)


@needs_gpu
def test_local_cuda_cluster_trains_like_numpy_chunks():
    pytest.importorskip("dask_cuda", reason="needs dask-cuda: pip install dask-cuda")
    pytest.importorskip("distributed", reason="needs: pip install 'nnbackend[dask]'")
    import cupy

    X, y = _data(n=1200)
    fit = dict(mode="batch", epochs=3, lr=0.5, shuffle=False)
    ref = nb.MLP([5, 6, 1], backend=nb.get_backend("dask", scheduler="threads"),
                 dtype="float64", seed=4)
    ref.fit(da.from_array(X, chunks=(300, -1)), da.from_array(y, chunks=300), **fit)
    backend = nb.get_backend("dask", scheduler="cuda")
    assert backend.is_gpu() and "LocalCUDACluster" in backend.device_name()
    model = nb.MLP([5, 6, 1], backend=backend, dtype="float64", seed=4)
    model.fit(*_cupy_chunked(X, y, 300), **fit)
    assert all(isinstance(p, cupy.ndarray) for p in model.flat_params)
    assert max_rel_diff(ref.flat_params, [cupy.asnumpy(p) for p in model.flat_params]) < 1e-9


@needs_gpu
def test_npy_rows_are_read_onto_the_gpu_and_train_like_numpy_chunks(tmp_path, monkeypatch):
    # `train --backend dask --device cuda --data X.npy`: each chunk of the file is
    # read in its task and made a CuPy array on the parameters' GPU.
    import argparse

    import cupy

    from nnbackend.cli_data import load_training_data

    X, y = _data(n=900)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    monkeypatch.setattr(C, "NPY_CHUNK_BYTES", 300 * 5 * 8)  # 3 chunks of 300 rows
    args = argparse.Namespace(data=str(tmp_path / "X.npy"), target=str(tmp_path / "y.npy"),
                              dataset=None, no_header=False, delimiter=None, device="cuda",
                              val_split=None)
    data = load_training_data(args, "dask", 0)
    assert isinstance(data.X._meta, cupy.ndarray) and data.X.chunks[0] == (300, 300, 300)
    fit = dict(mode="batch", epochs=3, lr=0.5)
    ref = nb.MLP([5, 6, 1], backend=nb.get_backend("dask", scheduler="threads"),
                 dtype="float64", seed=4)
    ref.fit(da.from_array(X, chunks=(300, -1)), da.from_array(y, chunks=300), **fit)
    seen = []
    chunk_sums = C._chunk_sums

    def recording(params, X, *args):
        seen.append(type(X).__module__)
        return chunk_sums(params, X, *args)

    monkeypatch.setattr(C, "_chunk_sums", recording)
    model = nb.MLP([5, 6, 1], backend=nb.get_backend("dask", "cuda", scheduler="threads"),
                   dtype="float64", seed=4)
    model.fit(data.X, data.y, **fit)
    assert len(seen) >= 9 and all(m.startswith("cupy") for m in seen), seen  # 3 an epoch
    assert all(isinstance(p, cupy.ndarray) for p in model.flat_params)
    assert max_rel_diff(ref.flat_params, [cupy.asnumpy(p) for p in model.flat_params]) < 1e-9
