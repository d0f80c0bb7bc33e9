"""Epochs in windows: the figures of several epochs cross to the host in one go.

Where nothing on the host reads an epoch's figures before the next epoch (no
callback, early stopping, progress bar or adaptive rate), the loop runs up to
``WINDOW_EPOCHS`` epochs before reading their figures, then judges them
epoch by epoch. That changes when the host waits for the device, never the
result: a windowed fit equals, bit for bit, the same fit read every epoch (a
callback that does nothing forces that), divergence inside a window
included. The figures are computed by one compiled function where the
backend compiles (JAX), and equal the eager ones.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.training import loop

from conftest import own_array, to_numpy


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X[:, :1] + X[:, 1:2] ** 2 > 0.5).astype(float)
    return X, y


def _fit(backend, read_every_epoch, net=None, **kw):
    X, y = _data()
    model = nb.MLP([3, 5, 1], backend=backend, dtype="float64", seed=3,
                   **(net or dict(loss="bce")))
    callback = (lambda epoch, figures: None) if read_every_epoch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DivergenceWarning where asked for
        hist = model.fit(own_array(backend, X), own_array(backend, y), callback=callback, **kw)
    return hist, [to_numpy(backend, p) for p in model.flat_params]


@pytest.mark.parametrize("kw", [
    dict(mode="minibatch", batch_size=16, epochs=19, lr=0.5),
    dict(mode="batch", epochs=11, lr=1.0, optimizer="adam"),
    dict(mode="sgd", epochs=3, lr=0.1, optimizer="momentum", validation_split=0.25),
    dict(mode="minibatch", batch_size=32, epochs=10, lr=0.3, alpha=0.01,
         lr_schedule="invscaling"),
], ids=["minibatch", "batch-adam", "sgd-validation", "l2-invscaling"])
def test_a_windowed_fit_equals_one_read_every_epoch(backend, kw):
    windowed, params = _fit(backend, False, **kw)
    each, params_each = _fit(backend, True, **kw)
    # An executor that runs several epochs in one call (the CuPy kernels, on a GPU)
    # takes a window of up to 64 where nothing needs each epoch's parameters.
    several = (windowed.executor in ("cupy-fused", "cupy-batch")
               and "validation_split" not in kw)
    cap = loop.WINDOW_EPOCHS_IN_ONE_CALL if several else loop.WINDOW_EPOCHS
    assert windowed.window == min(cap, kw["epochs"]) and each.window == 1
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert getattr(windowed, name) == getattr(each, name), name
    assert windowed.epochs == each.epochs == kw["epochs"]
    for a, b in zip(params, params_each):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode, hidden, lr", [("batch", "relu", 5.0), ("minibatch", "tanh", 2.0)])
def test_divergence_inside_a_window_keeps_what_one_read_every_epoch_keeps(mode, hidden, lr):
    net = dict(hidden_activation=hidden, output_activation="identity")
    kw = dict(mode=mode, batch_size=16, epochs=40, lr=lr, net=net)
    numpy = nb.get_backend("numpy")
    windowed, params = _fit(numpy, False, **kw)
    each, params_each = _fit(numpy, True, **kw)
    assert windowed.diverged and windowed.diverged == each.diverged
    assert windowed.epochs > 1 and (windowed.epochs + 1) % loop.WINDOW_EPOCHS != 0, (
        "the divergence should fall inside a window, with epochs after it run")
    assert windowed.loss == each.loss
    for a, b in zip(params, params_each):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(p).all() for p in params)


def test_one_transfer_per_window(monkeypatch):
    backend = nb.get_backend("numpy")
    calls = []
    real = type(backend).to_host
    monkeypatch.setattr(type(backend), "to_host", lambda self, a: calls.append(1) or real(self, a))
    X, y = _data()

    def transfers(epochs):
        calls.clear()
        hist = nb.MLP([3, 5, 1], seed=0).fit(X, y, mode="minibatch", batch_size=16, epochs=epochs)
        assert hist.window == min(epochs, loop.WINDOW_EPOCHS)
        return len(calls)

    # One epoch: one window. 20 epochs: ceil(20 / 8) windows, nothing else more.
    assert transfers(20) - transfers(1) == math.ceil(20 / loop.WINDOW_EPOCHS) - 1


@pytest.mark.parametrize("kw", [
    dict(callback=lambda epoch, figures: None),
    dict(patience=3),
    dict(progress=True),
    dict(lr_schedule="adaptive"),
], ids=["callback", "early-stopping", "progress", "adaptive"])
def test_the_figures_are_read_every_epoch_where_the_host_needs_them(kw, capsys):
    X, y = _data()
    hist = nb.MLP([3, 5, 1], seed=0).fit(X, y, epochs=4, **kw)
    assert hist.window == 1


def test_the_window_is_bounded_by_the_parameters_bytes(monkeypatch):
    X, y = _data()
    # [3, 5, 1] in float64: 26 parameters, 208 bytes.
    monkeypatch.setattr(loop, "WINDOW_BYTES", 3 * 208)
    hist = nb.MLP([3, 5, 1], dtype="float64", seed=0).fit(X, y, epochs=20)
    assert hist.window == 3
    monkeypatch.setattr(loop, "WINDOW_BYTES", 1)
    assert nb.MLP([3, 5, 1], dtype="float64", seed=0).fit(X, y, epochs=20).window == 1
    monkeypatch.undo()
    assert nb.MLP([3, 5, 1], seed=0).fit(X, y, epochs=2).window == 2  # no more than the fit's


def test_compiled_figures_equal_the_eager_ones():
    jax_backend = pytest.importorskip("jax") and nb.get_backend("jax", "cpu")
    X, y = _data()
    model = nb.MLP([3, 5, 2], backend=jax_backend, output_activation="softmax",
                   loss="cross_entropy", seed=0)
    Xd, Yd = jax_backend.asarray(X, dtype=model.backend.dtype("float32")), None
    Yd = jax_backend.asarray(np.eye(2)[(y[:, 0] > 0).astype(int)],
                             dtype=model.backend.dtype("float32"))
    params = model.flat_params
    xp = jax_backend.xp
    loss_sum, correct = xp.asarray(1.5, dtype=Xd.dtype), xp.asarray(7.0, dtype=Xd.dtype)
    compiled = loop._figures_function(jax_backend, model.spec, True, 32)
    assert compiled is loop._figures_function(jax_backend, model.spec, True, 32)  # cached
    assert hasattr(compiled, "lower"), "JAX's figures are not jit-compiled"
    eager = loop._figures_function.__wrapped__  # the factory, uncompiled below
    monkey = type("Eager", (), {"xp": xp, "compiled": staticmethod(lambda fn: fn)})()
    want = eager(monkey, model.spec, True, 32)(params, loss_sum, correct, (Xd, Yd))
    got = compiled(params, loss_sum, correct, (Xd, Yd))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)
    assert np.asarray(got).shape == (5,)  # loss, finite, correct, val loss, val correct


def test_the_default_bound_is_64_mib_of_starting_parameters():
    # [1000, 1200, 1] in float64: 1,202,401 parameters, 9,619,208 bytes; 64 MiB
    # holds 6.98 of them (65 MiB would hold 7, 128 MiB 13).
    X = np.ones((2, 1000))
    model = nb.MLP([1000, 1200, 1], dtype="float64", seed=0)
    hist = model.fit(X, [[0.0], [1.0]], mode="batch", epochs=8, lr=1e-3)
    assert hist.window == 6 and hist.epochs == 8


def _batch_kernels_on_the_host(monkeypatch, calls, persistent=None):
    """NumPy fits run by CuPy's batch kernels built for the host, whose epoch
    offers ``epochs`` (several epochs in one call: the persistent kernel's one
    launch where ``persistent`` is ``B.host_persistent``, else two launches an
    epoch); ``calls`` counts those calls."""
    import shutil

    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler (c++) here for the kernels' host build")
    from nnbackend.backends.cupy import batch as B
    from nnbackend.engine import Choice

    def choose(executor, task):
        layout = B.BatchLayout(task.layer_sizes, str(task.X.dtype), 32)
        epoch = B.make_epoch(np, task.spec, task.optimizer, task.plan, task.X, task.Y,
                             task.multiclass, layout, 3, B.host_launcher,
                             persistent=persistent and getattr(B, persistent))
        several = epoch.epochs
        epoch.epochs = lambda *a: calls.append(len(a[2])) or several(*a)
        return Choice(epoch, "cupy-batch (host build)", "cupy-batch: the test's")

    monkeypatch.setattr(loop, "choose_executor", choose)


@pytest.mark.parametrize("persistent", [None, "host_persistent"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_several_epochs_in_one_call_give_the_same_fit(monkeypatch, optimizer, persistent):
    calls = []
    _batch_kernels_on_the_host(monkeypatch, calls, persistent)
    X, y = _data()
    numpy = nb.get_backend("numpy")

    def fit(read_every_epoch, **more):
        model = nb.MLP([3, 5, 2], backend=numpy, dtype="float64", seed=3,
                       output_activation="softmax", loss="cross_entropy")
        callback = (lambda epoch, figures: None) if read_every_epoch else None
        hist = model.fit(X, (y[:, 0] > 0).astype(int), mode="batch", epochs=140, lr=0.5,
                         optimizer=optimizer, callback=callback, **more)
        return hist, model.flat_params

    windowed, params = fit(False)
    assert loop.WINDOW_EPOCHS_IN_ONE_CALL == 64 and windowed.window == 64
    assert calls == [63, 63, 11], "windows of 64, 64 and 12: all but each one's last in one call"
    calls.clear()
    each, params_each = fit(True)
    assert calls == []
    assert windowed.loss == each.loss and windowed.accuracy == each.accuracy
    for a, b in zip(params, params_each):
        np.testing.assert_array_equal(a, b)
    # Validation needs each epoch's parameters: epoch by epoch.
    fit(False, validation_split=0.25)
    assert calls == []


@pytest.mark.parametrize("persistent", [None, "host_persistent"])
@pytest.mark.parametrize("optimizer, lr", [("sgd", 5.0), ("momentum", 2.0)])
def test_a_divergence_inside_one_call_is_judged_epoch_by_epoch(monkeypatch, optimizer, lr,
                                                               persistent):
    calls = []
    _batch_kernels_on_the_host(monkeypatch, calls, persistent)
    X, y = _data()

    def fit(read_every_epoch):
        model = nb.MLP([3, 5, 1], dtype="float64", seed=3, hidden_activation="relu",
                       output_activation="identity")
        callback = (lambda epoch, figures: None) if read_every_epoch else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hist = model.fit(X, y, mode="batch", epochs=40, lr=lr, optimizer=optimizer,
                             callback=callback)
        return hist, model.flat_params

    windowed, params = fit(False)
    assert calls, "the window's first epochs did not run in one call"
    each, params_each = fit(True)
    assert windowed.diverged and windowed.diverged == each.diverged
    assert windowed.epochs % windowed.window != windowed.window - 1, (
        "the divergence should fall among the epochs of one call, not the window's last")
    assert windowed.epochs == each.epochs and windowed.loss == each.loss
    for a, b in zip(params, params_each):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shuffle, window", [(True, 5), (False, 64)])
def test_a_window_in_one_call_holds_its_row_orders_within_the_bound(monkeypatch, shuffle,
                                                                     window):
    # One call takes every epoch's row order (8 bytes a row) at once: a
    # shuffled fit's window holds no more of them than WINDOW_BYTES.
    from nnbackend.engine import Choice

    calls = []

    def epoch(params, state, order):
        return params, state, np.asarray(1.0), None

    def several(params, state, orders):
        calls.append(len(orders))
        assert all((o is None) != shuffle for o in orders)
        return params, state, np.ones(len(orders)), None

    epoch.epochs = several
    monkeypatch.setattr(loop, "choose_executor",
                        lambda executor, task: Choice(epoch, "stand-in", "the test's"))
    X, y = _data(n=96)
    monkeypatch.setattr(loop, "WINDOW_BYTES", 8 * 96 * 5 + 7)
    model = nb.MLP([3, 5, 1], dtype="float64", seed=0, output_activation="identity", loss="mse")
    hist = model.fit(X, y, mode="sgd", epochs=200, shuffle=shuffle, lr=0.1)
    assert hist.window == window and hist.epochs == 200
    assert calls[0] == window - 1 and sum(calls) + len(calls) <= 200


# -- epoch_function's window: what the benchmark times for short epochs -------------

@pytest.mark.parametrize("backend", ["numpy", "strict", "torch", "jax"])
@pytest.mark.parametrize("mode", ["batch", "minibatch"])
def test_epoch_functions_window_trains_the_epochs_one_step_at_a_time_would(backend, mode):
    pytest.importorskip({"strict": "array_api_strict"}.get(backend, backend))
    from nnbackend.model import epoch_function

    X, y = _data()
    runs = []
    for windowed in (False, True):
        # JAX on its CPU device whatever its default (a GPU's fit would take the
        # CuPy kernels' 64-epoch windows).
        model = nb.MLP([3, 5, 1], backend=backend, dtype="float64", seed=3,
                       device="cpu" if backend == "jax" else None)
        step = epoch_function(model, X, (y[:, 0] > 0).astype(float), mode=mode, batch_size=16,
                              lr=0.3, optimizer="adam", seed=5)
        losses = step.window(4) + step.window(3) if windowed else [step() for _ in range(7)]
        runs.append((losses, [np.asarray(model.backend.to_host(a)) for a in model.flat_params]))
    (each, params_each), (window, params_window) = runs
    assert len(window) == 7 and all(isinstance(v, float) for v in window)
    np.testing.assert_allclose(window, each, rtol=1e-13)
    for a, b in zip(params_window, params_each):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    assert step.fit_window == loop.WINDOW_EPOCHS  # the reference loop: 8 epochs a read


def test_epoch_functions_window_runs_an_executors_several_epochs_in_one_call(monkeypatch):
    calls = []
    _batch_kernels_on_the_host(monkeypatch, calls, "host_persistent")
    from nnbackend.model import epoch_function

    X, y = _data()
    runs = []
    for windowed in (False, True):
        model = nb.MLP([3, 5, 2], backend="numpy", dtype="float64", seed=3,
                       output_activation="softmax", loss="cross_entropy")
        step = epoch_function(model, X, (y[:, 0] > 0).astype(int), mode="batch", lr=0.5,
                              optimizer="sgd")
        runs.append(step.window(10) if windowed else [step() for _ in range(10)])
    assert calls == [9], "nine epochs in one call, the tenth alone"
    assert runs[0] == runs[1]
    assert step.fit_window == loop.WINDOW_EPOCHS_IN_ONE_CALL
