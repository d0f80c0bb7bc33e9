"""The training loop: modes, cross-backend agreement, optimizers, inputs."""

import warnings

import numpy as np
import pytest

import nnbackend as nb
from conftest import own_array, to_numpy

MODES = ["batch", "minibatch", "sgd"]


def _data(n=37, n_features=3, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    y = (X[:, :1] * X[:, 1:2] > 0).astype(np.float64)
    return X, y


def _host_params(model):
    return [to_numpy(model.backend, a) for pair in model.params for a in pair]


def _fit(backend, mode, optimizer="sgd", dtype="float64", **kw):
    X, y = _data()
    model = nb.MLP([3, 5, 1], hidden_activation="tanh", loss="bce",
                   backend=backend.name, device=backend.device, dtype=dtype, seed=3)
    hist = model.fit(X, y, mode=mode, batch_size=8, epochs=6, lr=0.3,
                     optimizer=optimizer, shuffle=True, seed=11, **kw)
    return model, hist


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("mode", MODES)
def test_backends_agree_with_numpy_float64(backend, mode, optimizer):
    if "float64" not in backend.float_dtypes():
        pytest.skip(f"{backend} has no float64")
    ref, ref_hist = _fit(nb.get_backend("numpy"), mode, optimizer)
    model, hist = _fit(backend, mode, optimizer)
    assert model.backend.name == backend.name
    for got, want in zip(_host_params(model), _host_params(ref)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hist.loss, ref_hist.loss, rtol=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_backends_agree_with_numpy_float32(backend, mode):
    # float32 runs follow the same steps but round differently per library
    # (summation order in matmul): they agree to float32 rounding, not bits.
    ref, _ = _fit(nb.get_backend("numpy"), mode, dtype="float32")
    model, _ = _fit(backend, mode, dtype="float32")
    for got, want in zip(_host_params(model), _host_params(ref)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_params_live_on_the_backend_device(backend):
    model, _ = _fit(backend, "minibatch", dtype="float32")
    for W, b in model.params:
        assert nb.backend_of(W).name == backend.name
        assert str(nb.backend_of(W).device) == str(backend.device)
    out = model.predict(_data()[0])
    assert nb.backend_of(out).name == backend.name and tuple(out.shape) == (37, 1)


def test_fit_accepts_arrays_of_its_own_namespace(backend):
    X, y = _data()
    dtype = backend.dtype("float32")
    # On dask, a Dask array (Backend.asarray would make NumPy arrays there).
    Xd, yd = own_array(backend, X, dtype=dtype), own_array(backend, y, dtype=dtype)
    assert nb.backend_of(Xd).name == backend.name
    model = nb.MLP([3, 5, 1], backend=backend.name, device=backend.device, seed=3)
    hist = model.fit(Xd, yd, mode="minibatch", batch_size=8, epochs=3, seed=0)
    ref = nb.MLP([3, 5, 1], backend=backend.name, device=backend.device, seed=3)
    ref_hist = ref.fit(X, y, mode="minibatch", batch_size=8, epochs=3, seed=0)
    assert hist.loss == ref_hist.loss


def test_model_follows_the_backend_of_its_data():
    torch = pytest.importorskip("torch")
    X, y = _data()
    model = nb.MLP([3, 5, 1], seed=0)
    assert model.backend.name == "numpy"
    model.fit(torch.asarray(X, dtype=torch.float32), torch.asarray(y, dtype=torch.float32),
              epochs=2)
    assert model.backend.name == "torch"
    assert isinstance(model.params[0][0], torch.Tensor)
    # A backend named by the user is never changed behind its back.
    pinned = nb.MLP([3, 5, 1], backend="numpy")
    with pytest.raises(TypeError, match="X is a torch array but the model's backend is 'numpy'"):
        pinned.fit(torch.asarray(X), y)


@pytest.mark.parametrize("library", ["array_api_strict", "torch"])
def test_a_resumed_fit_that_follows_its_data_takes_the_optimizer_state_along(library):
    xp = pytest.importorskip(library)
    X, y = _data()
    whole = nb.MLP([3, 5, 1], dtype="float64", seed=0)
    whole.fit(X, y, epochs=4, optimizer="adam", lr=0.01, seed=2)
    model = nb.MLP([3, 5, 1], dtype="float64", seed=0)
    model.fit(X, y, epochs=2, optimizer="adam", lr=0.01, seed=2)
    # Adam's moments were NumPy's: they move with the parameters.
    model.fit(xp.asarray(X), xp.asarray(y), epochs=2, optimizer="adam", lr=0.01, resume=True)
    assert model.backend.name == ("strict" if library == "array_api_strict" else library)
    for got, want in zip(_host_params(model), _host_params(whole)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


def test_lists_and_1d_targets():
    X, y = _data()
    model = nb.MLP([3, 4, 1], seed=0)
    hist = model.fit(X.tolist(), y.ravel().tolist(), epochs=2)
    assert len(hist.loss) == 2 and all(np.isfinite(hist.loss))


def test_same_seed_gives_identical_params():
    a, _ = _fit(nb.get_backend("numpy"), "minibatch")
    b, _ = _fit(nb.get_backend("numpy"), "minibatch")
    for p, q in zip(_host_params(a), _host_params(b)):
        np.testing.assert_array_equal(p, q)


def test_shuffle_seed_changes_order_but_not_initial_weights():
    X, y = _data()
    runs = []
    for seed in (1, 2):
        m = nb.MLP([3, 5, 1], dtype="float64", seed=0)
        m.fit(X, y, mode="sgd", epochs=1, seed=seed)
        runs.append(_host_params(m))
    assert not np.array_equal(runs[0][0], runs[1][0])
    assert np.array_equal(nb.MLP([3, 5, 1], seed=0).params[0][0], nb.MLP([3, 5, 1], seed=0).params[0][0])


def test_first_epoch_loss_of_batch_mode_is_the_initial_loss():
    X, y = _data()
    model = nb.MLP([3, 5, 1], dtype="float64", seed=0)
    loss0, _ = model.loss_and_grads(X, y)
    hist = model.fit(X, y, mode="batch", epochs=3, lr=0.5)
    assert hist.loss[0] == pytest.approx(loss0, rel=1e-12)
    assert hist.loss[2] < hist.loss[0]
    loss3, _ = model.loss_and_grads(X, y)
    assert loss3 < hist.loss[2]


def test_batch_mode_step_is_one_gradient_step():
    X, y = _data()
    model = nb.MLP([3, 5, 1], dtype="float64", seed=0)
    before = _host_params(model)
    _, grads = model.loss_and_grads(X, y)
    model.fit(X, y, mode="batch", epochs=1, lr=0.25)
    flat_grads = [np.asarray(g) for pair in grads for g in pair]
    for p0, g, p1 in zip(before, flat_grads, _host_params(model)):
        np.testing.assert_allclose(p1, p0 - 0.25 * g, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("mode, batch_size, steps", [("batch", 5, 1), ("minibatch", 8, 5), ("sgd", 8, 37)])
def test_history_records_plan(mode, batch_size, steps):
    X, y = _data()
    hist = nb.MLP([3, 1]).fit(X, y, mode=mode, batch_size=batch_size, epochs=4)
    assert hist.mode == mode and hist.epochs == 4 and len(hist.loss) == 4
    assert hist.batch_size == {"batch": 37, "minibatch": 8, "sgd": 1}[mode]
    assert -(-37 // hist.batch_size) == steps


def test_batch_size_above_n_is_clipped_with_warning():
    X, y = _data()
    with pytest.warns(UserWarning, match="batch_size=100 is larger than the 37 samples"):
        hist = nb.MLP([3, 1]).fit(X, y, mode="minibatch", batch_size=100, epochs=1)
    assert hist.batch_size == 37


def test_fit_leaves_callers_arrays_alone():
    X, y = _data()
    W0, b0 = np.ones((3, 1)), np.zeros(1)
    copies = [a.copy() for a in (X, y, W0, b0)]
    model = nb.MLP([3, 1], dtype="float64", params=[(W0, b0)])
    model.fit(X, y, epochs=3, lr=0.5)
    for a, c in zip((X, y, W0, b0), copies):
        np.testing.assert_array_equal(a, c)
    assert not np.array_equal(np.asarray(model.params[0][0]), W0)


def test_multiclass_with_integer_labels_learns():
    rng = np.random.default_rng(0)
    centers = np.array([[0, 3], [3, 0], [-3, -3]])
    labels = rng.integers(0, 3, size=300)
    X = centers[labels] + rng.normal(size=(300, 2))
    model = nb.MLP([2, 8, 3], hidden_activation="relu", output_activation="softmax",
                   loss="cross_entropy", seed=0)
    hist = model.fit(X, labels, mode="minibatch", batch_size=16, epochs=20, lr=0.1)
    assert hist.loss[-1] < hist.loss[0]
    accuracy = np.mean(np.argmax(np.asarray(model.predict(X)), axis=1) == labels)
    assert accuracy > 0.95
    one_hot = np.eye(3)[labels]
    l1, _ = model.loss_and_grads(X, labels)
    l2, _ = model.loss_and_grads(X, one_hot)
    assert l1 == l2


@pytest.mark.parametrize("kwargs, error, match", [
    ({"mode": "full"}, ValueError, "unknown mode 'full'"),
    ({"optimizer": "rmsprop"}, ValueError, "unknown optimizer 'rmsprop'"),
    ({"lr": 0}, ValueError, "lr must be a finite number > 0"),
    ({"lr": float("nan")}, ValueError, "lr must be"),
    ({"epochs": 0}, ValueError, "epochs must be >= 1"),
    ({"epochs": 2.5}, TypeError, "epochs must be an integer"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"batch_size": 3.0}, TypeError, "batch_size must be an integer"),
])
def test_bad_fit_arguments_are_named(kwargs, error, match):
    X, y = _data()
    with pytest.raises(error, match=match):
        nb.MLP([3, 1]).fit(X, y, **kwargs)


@pytest.mark.parametrize("X, y, match", [
    (np.ones(4), np.ones(4), "X must be 2-D"),
    (np.ones((4, 2)), np.ones(4), "X has 2 features but the network expects 3"),
    (np.ones((4, 3)), np.ones(5), "y has 5 rows but X has 4"),
    (np.ones((4, 3)), np.ones((4, 2)), "y has 2 columns but the network has 1 outputs"),
    (np.full((4, 3), np.nan), np.ones(4), "X contains NaN or infinity"),
    (np.ones((4, 3)), np.array([1, np.inf, 0, 0]), "y contains NaN or infinity"),
    (np.ones((0, 3)), np.ones(0), "X is empty"),
    (np.ones((4, 3), dtype=complex), np.ones(4), "X must hold real numbers"),
])
def test_bad_data_is_named(X, y, match):
    with pytest.raises((ValueError, TypeError), match=match):
        nb.MLP([3, 1]).fit(X, y)


def test_class_ids_out_of_range_are_named():
    model = nb.MLP([2, 3], output_activation="softmax", loss="cross_entropy")
    with pytest.raises(ValueError, match=r"class ids outside \[0, 3\)"):
        model.fit(np.ones((3, 2)), np.array([0, 1, 3]))


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "bce", "output_activation": "identity"}, "needs output_activation='sigmoid'"),
    ({"loss": "cross_entropy"}, "needs output_activation='softmax'"),
    ({"loss": "hinge"}, "unknown loss 'hinge'"),
    ({"hidden_activation": "gelu"}, "unknown hidden_activation 'gelu'"),
    ({"output_activation": "relu"}, "unknown output_activation 'relu'"),
    ({"reduction": "avg"}, "reduction must be one of"),
])
def test_bad_model_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nb.MLP([3, 2], **kwargs)


def test_bad_initial_params_are_named():
    with pytest.raises(ValueError, match=r"params\[0\] W must have shape \(3, 1\); got \(1, 3\)"):
        nb.MLP([3, 1], params=[(np.ones((1, 3)), np.zeros(1))])
    with pytest.raises(ValueError, match="params must hold 2"):
        nb.MLP([3, 2, 1], params=[(np.ones((3, 2)), np.zeros(2))])


def test_progress_prints_one_line_per_epoch(capsys):
    X, y = _data()
    nb.MLP([3, 1]).fit(X, y, epochs=3, progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("epoch 3/3")


def test_save_and_load_round_trip(tmp_path, backend):
    X, _ = _data()
    model = nb.MLP([3, 4, 1], hidden_activation="relu", seed=5)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = nb.MLP.load(path, backend=backend.name, device=backend.device)
    assert loaded.config() == model.config()
    Xd = own_array(backend, X, dtype=backend.dtype("float32"))
    out = loaded.predict(Xd)
    assert nb.backend_of(out).name == backend.name
    np.testing.assert_allclose(to_numpy(backend, out), np.asarray(model.predict(X)),
                               rtol=1e-5, atol=1e-6)


def test_load_refuses_foreign_file(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.ones(3))
    with pytest.raises(ValueError, match="is not a usable nnbackend checkpoint"):
        nb.MLP.load(path)


def test_torch_params_work_with_autograd_after_fit():
    # The loop runs under torch.inference_mode; what it hands back must still
    # be usable in a user's autograd graph.
    torch = pytest.importorskip("torch")
    X, y = _data()
    model = nb.MLP([3, 5, 1], backend="torch", seed=0)
    model.fit(X, y, epochs=2)
    W, b = model.params[0]
    x = torch.ones(2, 3, requires_grad=True)
    (x @ W + b).sum().backward()
    assert x.grad is not None and not W.is_inference()


def test_tensors_that_require_gradients_enter_the_model_detached():
    # The model computes its own gradients: a caller's parameters or data that
    # autograd follows come in detached, so predictions are plain tensors
    # (.numpy() works, as on every other backend) and no torch warning leaks.
    torch = pytest.importorskip("torch")
    X = torch.asarray(_data()[0], dtype=torch.float32).requires_grad_(True)
    W0, b0 = torch.ones(3, 1, requires_grad=True), torch.zeros(1, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = nb.MLP([3, 1], loss="bce", backend="torch", params=[(W0, b0)])
        assert not any(a.requires_grad for pair in model.params for a in pair)
        out = model.predict(X)
        assert not out.requires_grad and out.numpy().shape == (X.shape[0], 1)
        y = torch.asarray(_data()[1], dtype=torch.float32).requires_grad_(True)
        model.fit(X, y, epochs=1)
        assert model.predict(X).grad_fn is None and model.evaluate(X, y)
    assert W0.grad is None and X.grad is None and y.grad is None
    assert bool(torch.all(W0 == 1))


def test_conftest_skip_tables_name_existing_tests():
    # A misspelt or renamed entry would skip nothing and go unnoticed.
    import pathlib
    import re

    import conftest

    here = pathlib.Path(__file__).parent
    defined = set()
    for path in here.glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)\(", path.read_text(), flags=re.M))
    names = set(conftest.DASK_DIFFERS) | {name for _, name in conftest.RERUNS_NUMPY}
    assert names - defined == set()
    assert {backend for backend, _ in conftest.RERUNS_NUMPY} <= {"numpy", "dask"}
