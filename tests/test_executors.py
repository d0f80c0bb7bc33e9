"""Fast paths against the reference loop: same batches, same math, same params."""

import numpy as np
import pytest

import nnbackend as nb


def _data(n=203, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.float64)


def _fit(executor, dtype, epochs=3, **kwargs):
    X, y = _data()
    model = nb.MLP([5, 7, 1], hidden_activation="tanh", loss="bce", backend="jax",
                   dtype=dtype, seed=1)
    hist = model.fit(X, y, epochs=epochs, lr=0.05, seed=4, executor=executor, **kwargs)
    return [np.asarray(a, dtype=np.float64) for pair in model.params for a in pair], hist


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("mode, batch_size", [("minibatch", 16), ("sgd", 1), ("minibatch", 203 // 2)])
def test_jax_scan_equals_reference(optimizer, mode, batch_size):
    pytest.importorskip("jax")
    # XLA fuses the step's operations (and may contract them into FMAs), so
    # rounding differs from the eager loop: equal to 1e-9 in float64 (the
    # cross-backend criterion) over three epochs, and to float32 rounding in
    # float32 over one (hundreds of steps amplify float32 rounding further).
    for dtype, rtol, epochs in (("float64", 1e-9, 3), ("float32", 1e-4, 1)):
        ref, ref_hist = _fit("reference", dtype, epochs, mode=mode, batch_size=batch_size,
                             optimizer=optimizer)
        got, hist = _fit("jax-scan", dtype, epochs, mode=mode, batch_size=batch_size,
                         optimizer=optimizer)
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3)
        np.testing.assert_allclose(hist.loss, ref_hist.loss, rtol=rtol)
        assert hist.accuracy == pytest.approx(ref_hist.accuracy, abs=1 / 203 + 1e-12)


def test_auto_picks_the_scan_on_jax_and_the_compiled_batch_in_batch_mode():
    pytest.importorskip("jax")
    from nnbackend.data import make_plan
    from nnbackend.engine import EpochTask, epoch_runner
    from nnbackend.optim import sgd

    X, y = _data()
    model = nb.MLP([5, 1], backend="jax")
    Xd, Yd = model._features(X), model._targets(y, 203)

    def task(plan):
        return EpochTask(model.backend, model.spec, sgd(0.1), plan, Xd, Yd, 2048,
                         index_dtype=model.backend.index_dtype())

    assert epoch_runner("auto", task(make_plan("minibatch", 203, 16))) is not None
    from nnbackend.engine import choose_executor

    assert choose_executor("auto", task(make_plan("batch", 203))).name == "jax-batch"
    assert epoch_runner("reference", task(make_plan("sgd", 203))) is None
    with pytest.raises(ValueError, match="executor 'jax-scan' does not apply here: batch mode"):
        model.fit(X, y, mode="batch", executor="jax-scan")


def test_executor_names_are_checked():
    X, y = _data()
    with pytest.raises(ValueError, match="unknown executor 'fast'"):
        nb.MLP([5, 1]).fit(X, y, executor="fast")
    with pytest.raises(ValueError, match="executor 'jax-scan' needs the jax backend"):
        nb.MLP([5, 1]).fit(X, y, executor="jax-scan")


def test_scan_fit_resumes_from_a_checkpoint(tmp_path):
    pytest.importorskip("jax")
    X, y = _data()
    kwargs = dict(optimizer="adam", lr=0.01, batch_size=16, executor="jax-scan")
    whole = nb.MLP([5, 4, 1], loss="bce", backend="jax", dtype="float64", seed=2)
    whole_hist = whole.fit(X, y, epochs=4, **kwargs)
    half = nb.MLP([5, 4, 1], loss="bce", backend="jax", dtype="float64", seed=2)
    half.fit(X, y, epochs=2, **kwargs)
    assert half.train_state.state_scalars["count"] == 2 * 13
    half.save(tmp_path / "m.npz")
    again = nb.MLP.load(tmp_path / "m.npz", backend="jax")
    hist = again.fit(X, y, epochs=2, resume=True, **kwargs)
    # Every parameter (weights and biases of both layers), the losses of the
    # resumed epochs, and the state a further resume would start from.
    np.testing.assert_allclose(hist.loss, whole_hist.loss[2:], rtol=1e-12)
    assert len(again.params) == len(whole.params) == 2
    for got, want in zip(again.params, whole.params):
        for a, b in zip(got, want):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-15)
    state, whole_state = again.train_state, whole.train_state
    assert state.epochs_done == whole_state.epochs_done == 4
    assert state.state_scalars == whole_state.state_scalars == {"count": 4 * 13}
    assert state.rng == whole_state.rng
    assert state.state_arrays.keys() == whole_state.state_arrays.keys()
    for name, arrays in whole_state.state_arrays.items():
        assert len(state.state_arrays[name]) == len(arrays) == 4
        for a, b in zip(state.state_arrays[name], arrays):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-15)


def test_jax_scan_reuses_its_compilation_across_fits():
    pytest.importorskip("jax")
    from nnbackend.backends.jax import scan as jax_scan

    X, y = _data()
    jax_scan._COMPILED.clear()
    results = []
    for _ in range(2):
        model = nb.MLP([5, 7, 1], hidden_activation="tanh", loss="bce", backend="jax", device="cpu",
                       seed=1)
        model.fit(X, y, epochs=2, lr=0.05, seed=4, batch_size=16)
        results.append([np.asarray(a) for pair in model.params for a in pair])
    # One compiled epoch served both fits, with the same result.
    assert len(jax_scan._COMPILED) == 1
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    # Another learning rate is another compiled update; a custom optimizer is never cached.
    model.fit(X, y, epochs=1, lr=0.01, seed=4, batch_size=16)
    assert len(jax_scan._COMPILED) == 2
    base = nb.sgd(0.05)
    model.fit(X, y, epochs=1, optimizer=nb.Optimizer(base.init, base.update), batch_size=16)
    assert len(jax_scan._COMPILED) == 2
