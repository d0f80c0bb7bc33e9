"""Every kind of bad input gets one clear refusal, or a documented conversion.

Each test here is a row of the table in ``docs/reliability.md``; rows already
covered elsewhere (``tests/test_fit.py``, ``tests/test_training.py``,
``tests/test_backend.py``) are referenced there, not repeated here.

A refusal must be raised by nnbackend itself, not by an array library deep
inside a computation: :func:`refused` checks the exception's type, that its
message names the argument and says what was expected, and that the
innermost frame of its traceback lies in the ``nnbackend`` package.
"""

import os
import warnings

import numpy as np
import pytest

import nnbackend as nb
from conftest import own_array, to_numpy

PACKAGE = os.path.dirname(nb.__file__)


def refused(error, match, fn, *args, **kwargs):
    """Call ``fn`` and check it refuses with ``error`` matching ``match``, from nnbackend's own code."""
    with pytest.raises(error, match=match) as info:
        fn(*args, **kwargs)
    innermost = info.traceback[-1].path
    assert str(innermost).startswith(PACKAGE), f"raised inside {innermost}, not by nnbackend"
    assert "\n" not in str(info.value), "a refusal is one line"
    return info.value


def _data(n=12, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] > 0).astype(np.float64)
    y[:2] = [0.0, 1.0]  # both classes, whatever the draw
    return X, y


def _model(**kw):
    return nb.MLP([3, 4, 1], loss=kw.pop("loss", "bce"), seed=0, **kw)


def _softmax(**kw):
    return nb.MLP([3, 4, 3], output_activation="softmax", loss="cross_entropy", seed=0, **kw)


def _fit(model, X, y, **kw):
    kw.setdefault("epochs", 1)
    kw.setdefault("batch_size", 4)
    return model.fit(X, y, **kw)


# -- X not 2-D, y the wrong shape -------------------------------------------------


@pytest.mark.parametrize("X, match", [
    (np.ones((2, 12, 3)), r"X must be 2-D \(n_samples, n_features\); got shape \(2, 12, 3\)"),
    (np.float64(1.0), r"X must be 2-D .*got shape \(\)"),
    (5.0, r"X must be 2-D .*got shape \(\)"),
])
def test_features_that_are_not_2d(X, match):
    refused(ValueError, match, _fit, _model(), X, _data()[1])


@pytest.mark.parametrize("X, error, match", [
    ([[1.0, 2.0, 3.0], [1.0, 2.0]], ValueError, "X could not be read as an array"),
    (None, TypeError, r"X: expected a NumPy array, a list, or an array of one of .*got builtins.NoneType"),
    ("abc", TypeError, r"X: expected a NumPy array.*got builtins.str"),
    ({"a": 1}, TypeError, r"X: expected a NumPy array.*got builtins.dict"),
])
def test_things_that_are_not_arrays_are_named(X, error, match):
    refused(error, match, _fit, _model(), X, [0, 1])


@pytest.mark.parametrize("y, error, match", [
    (np.ones((12, 1, 1)), ValueError, r"y must be 1-D or 2-D; got shape \(12, 1, 1\)"),
    (1.0, ValueError, "y must be 1-D or 2-D; got a scalar"),
    (None, TypeError, "y: expected a NumPy array"),
    (np.ones(11), ValueError, "y has 11 rows but X has 12"),
])
def test_targets_of_the_wrong_shape(y, error, match):
    refused(error, match, _fit, _model(), _data()[0], y)


def test_targets_of_the_wrong_shape_on_device(backend):
    X, y = _data()
    model = _model(backend=backend.name, device=backend.device)
    Xd = backend.asarray(X, dtype=backend.dtype("float32"))
    y3 = backend.asarray(y.reshape(12, 1, 1), dtype=backend.dtype("float32"))
    refused(ValueError, r"y must be 1-D or 2-D; got shape \(12, 1, 1\)", _fit, model, Xd, y3)
    refused(ValueError, r"X must be 2-D", _fit, model, Xd[:, 0], y)
    refused(ValueError, "y has 5 rows but X has 12", _fit, model, Xd, y[:5])


# -- dtypes: which are converted, which refused -----------------------------------------


def _params(model):
    return [to_numpy(model.backend, a) for pair in model.params for a in pair]


@pytest.mark.parametrize("convert", [
    lambda X: X.astype(np.int64), lambda X: X > 0, lambda X: X.astype(np.float16),
    lambda X: np.abs(X).astype(np.uint8), lambda X: X.astype(">f8"), lambda X: X.tolist(),
], ids=["int64", "bool", "float16", "uint8", "big-endian", "list"])
def test_bool_int_and_other_floats_are_converted_to_the_model_dtype(convert):
    # Converted exactly as X.astype(model dtype) would be: the same fit, bit for bit.
    X, y = _data()
    X = np.round(X * 3)  # whole numbers, which every one of these dtypes holds exactly
    given = convert(X)
    as_float = np.asarray(given, dtype=np.float64)
    a, b = _model(dtype="float64"), _model(dtype="float64")
    _fit(a, given, y, epochs=2)
    _fit(b, as_float, y, epochs=2)
    for p, q in zip(_params(a), _params(b)):
        np.testing.assert_array_equal(p, q)


def test_targets_of_bool_and_int_dtypes_are_converted():
    X, y = _data()
    runs = []
    for targets in (y, y.astype(bool), y.astype(np.int8)):
        model = _model(dtype="float64")
        _fit(model, X, targets, epochs=2)
        runs.append(_params(model))
    for other in runs[1:]:
        for p, q in zip(runs[0], other):
            np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("which", ["X", "y"])
@pytest.mark.parametrize("dtype", [np.complex128, object, "U8", "datetime64[s]"])
def test_complex_object_string_and_time_dtypes_are_refused(which, dtype):
    X, y = _data()
    args = {"X": X, "y": y}
    args[which] = args[which].astype(dtype)
    if which == "y" and dtype == "U8":
        # Text in y is class labels (tests/test_labels.py): a regression
        # head refuses them, by name.
        refused(ValueError, r"text class labels need a classifier head",
                _fit, _model(loss="mse", output_activation="identity"), X, args["y"])
        return
    refused(TypeError, rf"{which} must hold real numbers \(bool, int or float\); got dtype",
            _fit, _model(), args["X"], args["y"])


def _skip_without_complex64(backend):
    """Skip, with the reason, where the backend's device has no complex64; a
    device that has it must make complex64 arrays (no failure is excused)."""
    info = backend.xp.__array_namespace_info__()
    if "complex64" not in info.dtypes(device=backend.device, kind="complex floating"):
        pytest.skip(f"{backend} has no complex64 dtype: no complex array to refuse")


def test_refused_dtypes_on_device(backend):
    X, y = _data()
    model = _model(backend=backend.name, device=backend.device)
    _skip_without_complex64(backend)
    Xc = backend.asarray(X.astype(np.complex64))
    refused(TypeError, "X must hold real numbers .*got dtype .*complex64", _fit, model, Xc, y)
    yc = backend.asarray(y.astype(np.complex64))
    refused(TypeError, "y must hold real numbers .*got dtype .*complex64", _fit, model, X, yc)


def test_integer_arrays_of_a_backend_are_converted(backend):
    X, y = _data()
    Xi = np.round(X * 3).astype(np.int32)
    model = _model(backend=backend.name, device=backend.device, dtype="float32")
    ref = _model(backend=backend.name, device=backend.device, dtype="float32")
    _fit(model, backend.asarray(Xi), backend.asarray(y.astype(np.int32)), epochs=2)
    _fit(ref, Xi.astype(np.float32), y, epochs=2)
    for p, q in zip(_params(model), _params(ref)):
        np.testing.assert_array_equal(p, q)


def test_masked_array_with_masked_entries_is_refused():
    X, y = _data()
    masked = np.ma.masked_array(X, mask=X > 1)
    refused(ValueError, r"X is a masked array with masked entries; fill them \(X.filled",
            _fit, _model(), masked, y)
    # Nothing masked: nothing would be lost, so it is taken as its data.
    _fit(_model(), np.ma.masked_array(X), y)


def test_float64_data_beyond_float32_range_is_refused_not_turned_into_infinity():
    X, y = _data()
    huge = X * 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no "overflow encountered in cast" on the way
        refused(ValueError, r"X holds values up to .*e\+300 in magnitude, beyond the 3.4e\+38 "
                r"of the model's dtype: they would become infinity; rescale the data or use "
                r"dtype='float64'", _fit, _model(dtype="float32"), huge, y)
    reg = nb.MLP([3, 1], output_activation="identity")
    refused(ValueError, "y holds values up to", _fit, reg, X, y * 1e300)
    # In float64 the same values are representable and taken.
    refused(ValueError, "y for loss='bce' must lie in", _fit, _model(dtype="float64"), huge, y * 2)


def test_device_float64_beyond_float32_range_is_refused(backend):
    if "float64" not in backend.float_dtypes():
        pytest.skip(f"{backend} has no float64")
    X, y = _data()
    Xd = backend.asarray(X * 1e300, dtype=backend.dtype("float64"))
    model = _model(backend=backend.name, device=backend.device, dtype="float32")
    refused(ValueError, "X holds values .*beyond the .*dtype.*use dtype=.float64.",
            _fit, model, Xd, y)


# -- NaN and infinity, empty data ------------------------------------------------------------


@pytest.mark.parametrize("which", ["X", "y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_infinity_on_device_are_refused(backend, which, bad):
    X, y = _data()
    args = {"X": X.copy(), "y": y.copy()}
    args[which][3] = bad
    dtype = backend.dtype("float32")
    model = nb.MLP([3, 4, 1], output_activation="identity", backend=backend.name,
                   device=backend.device)
    refused(ValueError, f"{which} contains NaN or infinity", _fit, model,
            backend.asarray(args["X"], dtype=dtype), backend.asarray(args["y"], dtype=dtype))


@pytest.mark.parametrize("X, match", [
    (np.ones((0, 3)), "X is empty: it has 0 samples"),
    (np.ones((4, 0)), "X has 0 features"),
    ([], r"X must be 2-D .*got shape \(0,\)"),
])
def test_empty_data_is_refused(X, match):
    refused(ValueError, match, _fit, _model(), X, np.ones(len(X)))


def test_empty_data_is_refused_by_predict_and_loss(backend):
    model = _model(backend=backend.name, device=backend.device)
    empty = backend.asarray(np.ones((0, 3)), dtype=backend.dtype("float32"))
    refused(ValueError, "X is empty", model.predict, empty)
    refused(ValueError, "X is empty", model.loss_and_grads, empty, np.ones(0))


# -- batch_size, epochs, lr ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["batch", "minibatch", "sgd"])
@pytest.mark.parametrize("batch_size, error, match", [
    (0, ValueError, "batch_size must be >= 1, got 0"),
    (-3, ValueError, "batch_size must be >= 1, got -3"),
    (2.0, TypeError, "batch_size must be an integer, got float 2.0"),
    ("8", TypeError, "batch_size must be an integer, got str '8'"),
    (True, TypeError, "batch_size must be an integer, got bool True"),
])
def test_bad_batch_size_is_refused_in_every_mode(mode, batch_size, error, match):
    X, y = _data()
    refused(error, match, _fit, _model(), X, y, mode=mode, batch_size=batch_size)


def test_batch_size_none_only_where_the_mode_fixes_it():
    X, y = _data()
    assert _fit(_model(), X, y, mode="batch", batch_size=None).batch_size == 12
    assert _fit(_model(), X, y, mode="sgd", batch_size=None).batch_size == 1
    refused(TypeError, "batch_size must be an integer, got NoneType None", _fit, _model(), X, y,
            mode="minibatch", batch_size=None)
    # NumPy integers are integers.
    assert _fit(_model(), X, y, batch_size=np.int64(5)).batch_size == 5


def test_batch_size_above_n_is_clipped_to_n_in_every_backend(backend):
    X, y = _data()
    model = _model(backend=backend.name, device=backend.device)
    with pytest.warns(UserWarning, match="batch_size=50 is larger than the 12 samples; using batch_size=12"):
        hist = _fit(model, X, y, batch_size=50)
    assert hist.batch_size == 12


@pytest.mark.parametrize("epochs, error, match", [
    (-1, ValueError, "epochs must be >= 1, got -1"),
    (True, TypeError, "epochs must be an integer, got bool True"),
    (None, TypeError, "epochs must be an integer, got NoneType None"),
    ("3", TypeError, "epochs must be an integer, got str '3'"),
])
def test_bad_epochs(epochs, error, match):
    refused(error, match, _fit, _model(), *_data(), epochs=epochs)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), -float("inf"), "0.1", None, True, 1j])
def test_bad_learning_rate_for_every_optimizer(optimizer, lr):
    refused(ValueError, f"lr must be a finite number > 0, got {lr!r}".replace("(", r"\(")
            .replace(")", r"\)"), _fit, _model(), *_data(), lr=lr, optimizer=optimizer)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("scalar", [np.float32, np.float64])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_scalar_learning_rate_is_taken(optimizer, scalar, dtype):
    # Taken as the number it holds: the same fit as the Python float, bit for
    # bit, in the model's own dtype; and not the fit of some other lr.
    X, y = _data()
    runs = []
    for lr in (scalar(0.5), 0.5, 0.25):
        model = _model(dtype=dtype)
        hist = _fit(model, X, y, lr=lr, optimizer=optimizer, epochs=2)
        assert len(hist.loss) == 2
        assert all(p.dtype == np.dtype(dtype) for pair in model.params for p in pair)
        runs.append(_params(model))
    given, as_float, other = runs
    for p, q in zip(given, as_float):
        np.testing.assert_array_equal(p, q)
    assert any(not np.allclose(p, q) for p, q in zip(given, other))


# -- class labels ------------------------------------------------------------------------------


@pytest.mark.parametrize("labels, match", [
    ([0, 1, 2, 3] * 3, r"y holds class ids outside \[0, 3\) for a network with 3 outputs \(e.g. 3\)"),
    ([0, 1, 2, -1] * 3, r"class ids outside \[0, 3\) .*\(e.g. -1\)"),
    ([0, 1, 2, 1.5] * 3, "class ids for cross_entropy, so they must be whole numbers"),
    ([0, 1, 2, np.nan] * 3, r"class ids for cross_entropy and contains NaN \(a missing "
                            r"label\?\); give every row a class id"),
    ([0, 1, 2, np.inf] * 3, r"class ids for cross_entropy and contains infinity; give"),
])
def test_class_ids_out_of_range_or_not_whole(labels, match):
    refused(ValueError, match, _fit, _softmax(), _data()[0], np.array(labels))


def test_class_ids_with_nan_on_device_are_named_as_nan(backend):
    X, _ = _data()
    ids = own_array(backend, np.array([0, 1, 2, np.nan] * 3))
    model = _softmax(backend=backend.name, device=backend.device)
    refused(ValueError, r"class ids for cross_entropy and contains NaN", _fit, model,
            own_array(backend, X), ids)


def test_class_ids_out_of_range_on_device(backend):
    X, _ = _data()
    ids = backend.asarray(np.array([0, 1, 2, 5] * 3, dtype=np.int32))
    model = _softmax(backend=backend.name, device=backend.device)
    refused(ValueError, r"class ids outside \[0, 3\)", _fit, model, X, ids)


@pytest.mark.parametrize("make, y, row", [
    (_softmax, np.full(12, 2), r"\[0.0, 0.0, 1.0\]"),
    (_softmax, np.tile([0.0, 1.0, 0.0], (12, 1)), r"\[0.0, 1.0, 0.0\]"),
    (_model, np.zeros(12), r"\[0.0\]"),
    (_model, np.ones(12, dtype=bool), r"\[1.0\]"),
])
def test_a_single_class_is_refused_for_training(make, y, row):
    refused(ValueError, rf"y holds a single class \(every target row is {row}\); a classifier "
            "needs at least two classes", _fit, make(), _data()[0], y)


def test_a_single_class_is_fine_for_evaluation_and_validation():
    # Only the training targets must hold two classes: scoring one class is legitimate.
    X, y = _data()
    model = _model()
    assert "loss" in model.evaluate(X, np.ones(12))
    model.loss_and_grads(X, np.zeros(12))
    hist = _fit(model, X, y, validation_data=(X[:4], np.ones(4)))
    assert len(hist.val_loss) == 1


def test_a_single_class_on_device(backend):
    X, _ = _data()
    model = _model(backend=backend.name, device=backend.device)
    y = backend.asarray(np.ones(12), dtype=backend.dtype("float32"))
    refused(ValueError, "y holds a single class", _fit, model, X, y)


@pytest.mark.parametrize("y, match", [
    (np.array([1, 2] * 6), r"y for loss='bce' must lie in \[0, 1\] \(probabilities or 0/1 labels; "
                           r"encode two classes as 0 and 1\); got values in \[1, 2\]"),
    (np.array([-1, 1] * 6), r"got values in \[-1, 1\]"),
])
def test_bce_targets_outside_0_1_are_refused(y, match):
    refused(ValueError, match, _fit, _model(), _data()[0], y)


def _logits_by_hand(params, X):
    """The network's output-layer logits in NumPy float64: sigmoid hidden layers
    (the MLP default), ``z = a @ W + b``; ``params`` flat as :func:`_params` gives them."""
    a = np.asarray(X, dtype=np.float64)
    pairs = list(zip(params[::2], params[1::2]))
    for i, (W, b) in enumerate(pairs):
        z = a @ W + b
        a = 1.0 / (1.0 + np.exp(-z))
    return z


def _bce_by_hand(z, y):
    """Mean over rows of ``-(y log p + (1 - y) log(1 - p))``, ``p = sigmoid(z)``, from the logits."""
    y = np.asarray(y, dtype=np.float64).reshape(z.shape)
    return float(np.mean(np.sum(np.logaddexp(0.0, z) - y * z, axis=1)))


def _cross_entropy_by_hand(z, P):
    """Mean over rows of ``-Σ_k P_k log softmax(z)_k``."""
    log_q = z - np.logaddexp.reduce(z, axis=1, keepdims=True)
    return float(np.mean(-np.sum(P * log_q, axis=1)))


def test_soft_bce_targets_are_taken():
    # Taken as the probabilities they are: the first loss of a batch fit (the
    # loss of the initial parameters) is the hand-computed BCE with those very
    # targets. Rounded to 0/1 or clipped away from 0 and 1, it would not be.
    X, _ = _data()
    y = np.linspace(0, 1, 12)
    model = _model(dtype="float64")
    want = _bce_by_hand(_logits_by_hand(_params(model), X), y)
    assert abs(want - _bce_by_hand(_logits_by_hand(_params(model), X), np.round(y))) > 1e-3
    hist = _fit(model, X, y, mode="batch")
    np.testing.assert_allclose(hist.loss[0], want, rtol=1e-12)


@pytest.mark.parametrize("Y, match", [
    (np.full((12, 3), 5.0), r"y for loss='cross_entropy' must lie in \[0, 1\]"),
    (np.tile([1.0, 1.0, 0.0], (12, 1)), "rows that do not sum to 1"),
])
def test_cross_entropy_rows_that_are_not_probabilities_are_refused(Y, match):
    refused(ValueError, match, _fit, _softmax(), _data()[0], Y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_soft_rows_off_by_more_than_rounding_are_refused(dtype):
    # softmax(z) - y is the loss's gradient only for rows summing to 1: rows
    # rounded to 4 places and off by 1e-4 would put that error in every step.
    P = np.tile([0.3334, 0.3333, 0.3334], (12, 1))
    err = refused(ValueError, "do not sum to 1", _fit, _softmax(dtype=dtype), _data()[0], P)
    assert "normalise" in str(err)


def test_soft_rows_made_in_float32_are_taken_by_a_float64_model():
    # A float32 softmax's rows sum to 1 within float32 rounding only.
    z = 3 * np.random.default_rng(1).normal(size=(12, 3)).astype(np.float32)
    P = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert P.dtype == np.float32
    assert np.abs(P.astype(np.float64).sum(axis=1) - 1).max() > 1e-9
    model = _softmax(dtype="float64")
    want = _cross_entropy_by_hand(_logits_by_hand(_params(model), _data()[0]), P)
    hist = _fit(model, _data()[0], P, mode="batch")
    np.testing.assert_allclose(hist.loss[0], want, rtol=1e-12)


def test_soft_cross_entropy_rows_are_taken():
    # As for bce: the first loss is the hand-computed cross-entropy with the
    # soft rows themselves, not with their argmax one-hot rows or clipped rows.
    X, _ = _data()
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(3), size=12)
    P[:2] = [[0.0, 0.25, 0.75], [1.0, 0.0, 0.0]]  # and rows that touch 0 and 1
    model = _softmax(dtype="float64")
    z = _logits_by_hand(_params(model), X)
    want = _cross_entropy_by_hand(z, P)
    assert abs(want - _cross_entropy_by_hand(z, np.eye(3)[P.argmax(axis=1)])) > 1e-3
    hist = _fit(model, X, P, mode="batch")
    np.testing.assert_allclose(hist.loss[0], want, rtol=1e-12)


# -- two libraries, two devices -------------------------------------------------------------------


def _strict(device=None):
    try:
        return nb.get_backend("strict", device)
    except nb.BackendUnavailableError as exc:
        pytest.skip(str(exc))


def test_arrays_from_two_libraries_are_refused():
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    X, y = _data()
    # The model follows X to torch; y from jax cannot come along.
    refused(TypeError, "y is a jax array but the model's backend is 'torch'; pass NumPy data or "
            "build the model with backend='jax'", _fit, _model(), torch.asarray(X), jax.numpy.asarray(y))
    strict = _strict()
    refused(TypeError, "X is a strict array but the model's backend is 'torch'",
            _fit, _model(backend="torch"), strict.asarray(X), y)


@pytest.mark.parametrize("model_device, data_device", [("device1", None), (None, "device1")])
def test_arrays_on_another_device_are_refused(model_device, data_device):
    model_backend, data_backend = _strict(model_device), _strict(data_device)
    X, y = _data()
    model = _model(backend="strict", device=model_device)
    Xd = data_backend.asarray(X, dtype=data_backend.dtype("float32"))
    err = refused(ValueError, "X is on device .* but the model is on .*; move it there first",
                  _fit, model, Xd, y)
    assert str(data_backend.device) in str(err) and str(model_backend.device) in str(err)
    # y on the other device: also named (X moved to the model's device is fine).
    yd = data_backend.asarray(y, dtype=data_backend.dtype("float32"))
    refused(ValueError, "y is on device", _fit, model, X, yd)
    refused(ValueError, "X is on device", model.predict, Xd)


def test_a_model_that_follows_its_data_refuses_targets_on_another_device():
    X, y = _data()
    dev1, cpu = _strict("device1"), _strict()
    model = _model()  # no backend named: follows X to strict's device1
    refused(ValueError, "y is on device .*CPU_DEVICE.* but the model is on .*device1",
            _fit, model, dev1.asarray(X, dtype=dev1.dtype("float32")),
            cpu.asarray(y, dtype=cpu.dtype("float32")))


# -- names, options, flags --------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, match", [
    ({"optimizer_options": {"beta": 0.9}}, ValueError,
     r"optimizer_options \['beta'\] are not options of optimizer 'sgd'; it takes none"),
    ({"optimizer": "adam", "optimizer_options": {"beta": 0.9}}, ValueError,
     r"optimizer_options \['beta'\] are not options of optimizer 'adam'; it takes \['b1', 'b2', 'eps'\]"),
    ({"optimizer_options": [("beta", 0.9)]}, TypeError, "optimizer_options must be a dict, got list"),
    ({"optimizer": "momentum", "optimizer_options": {"beta": 1.5}}, ValueError,
     r"beta must be a number in \[0, 1\], got 1.5"),
    ({"optimizer": None}, ValueError, "unknown optimizer None; choose one of"),
    ({"mode": None}, ValueError, "unknown mode None; choose one of"),
    ({"executor": "gpu"}, ValueError, "unknown executor 'gpu'; choose one of"),
    ({"shuffle": "no"}, TypeError, "shuffle must be True or False, got 'no'"),
    ({"resume": "yes"}, TypeError, "resume must be True or False, got 'yes'"),
    ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
    ({"seed": 1.5}, TypeError, "seed must be an integer, got float 1.5"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be 'auto' or an integer >= 1, got 0"),
    ({"chunk_size": "big"}, TypeError, "chunk_size must be 'auto' or an integer >= 1, got str 'big'"),
    ({"chunk_size": 2.5}, TypeError, "chunk_size must be 'auto' or an integer >= 1, got float 2.5"),
    ({"patience": 0}, ValueError, "patience must be >= 1, got 0"),
])
def test_bad_fit_options_are_named(kwargs, error, match):
    refused(error, match, _fit, _model(), *_data(), **kwargs)


def test_options_given_to_an_optimizer_object_are_refused():
    refused(ValueError, "optimizer_options apply to a named optimizer", _fit, _model(), *_data(),
            optimizer=nb.sgd(0.1), optimizer_options={"beta": 0.9})


@pytest.mark.parametrize("kwargs, error, match", [
    ({"layer_sizes": 3}, ValueError, "layer_sizes must list at least the input and output sizes"),
    ({"layer_sizes": "32"}, ValueError, "layer_sizes must list"),
    ({"layer_sizes": [3, 0, 1]}, ValueError, "each entry of layer_sizes must be >= 1, got 0"),
    ({"hidden_activation": None}, ValueError, "unknown hidden_activation None; choose one of"),
    ({"loss": ["mse"]}, ValueError, r"unknown loss \['mse'\]; choose one of"),
    ({"backend": "tensorflow"}, ValueError, "unknown backend 'tensorflow'; choose one of"),
    ({"backend": 3}, ValueError, "unknown backend 3; choose one of"),
    ({"dtype": "float16"}, ValueError, r"dtype must be one of \['float32', 'float64'\], got 'float16'"),
    ({"dtype": np.int32}, ValueError, "dtype must be one of .*got 'int32'"),
    ({"seed": -5}, ValueError, r"seed must be >= 0 \(NumPy's generators take no negative seeds\), got -5"),
    ({"seed": "a"}, TypeError, "seed must be an integer or None, got 'a'"),
])
def test_bad_model_arguments(kwargs, error, match):
    kwargs.setdefault("layer_sizes", [3, 1])
    refused(error, match, nb.MLP, **kwargs)


def test_numpy_dtypes_name_the_float_dtype():
    assert nb.MLP([3, 1], dtype=np.float64).dtype == "float64"
    assert nb.MLP([3, 1], dtype=np.dtype("float32")).dtype == "float32"


def test_float64_on_a_device_without_it():
    _strict("no_float64")
    refused(ValueError, "dtype 'float64' is not supported by backend 'strict' on device .*no_float64.*; "
            "use dtype='float32'", nb.MLP, [3, 1], backend="strict", device="no_float64",
            dtype="float64")
    # float64 host data is converted to the float32 that device has: the same
    # fit, bit for bit, as one given that data already in float32; float32
    # parameters; and a first loss that is the float64 hand computation's to
    # float32 rounding.
    X, y = _data()
    runs = []
    for given in (X, X.astype(np.float32)):
        model = nb.MLP([3, 4, 1], loss="bce", backend="strict", device="no_float64")
        initial = _params(model)
        hist = _fit(model, given, y, mode="batch", epochs=2)
        assert all(p.dtype == model.backend.dtype("float32") for pair in model.params for p in pair)
        runs.append((hist.loss, _params(model)))
    (loss, params), (loss32, params32) = runs
    assert loss == loss32
    for p, q in zip(params, params32):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_allclose(loss[0], _bce_by_hand(_logits_by_hand(initial, X), y), rtol=1e-5)


# -- initial params, library-internal failures -------------------------------------------------------


def test_non_finite_or_complex_initial_params_of_a_backend_are_refused(backend):
    W = np.ones((3, 1))
    W[1, 0] = np.nan
    refused(ValueError, r"params\[0\] W contains NaN or infinity",
            nb.MLP, [3, 1], backend=backend.name, device=backend.device,
            params=[(backend.asarray(W), backend.asarray(np.zeros(1)))])
    _skip_without_complex64(backend)
    Wc = backend.asarray(np.ones((3, 1), dtype=np.complex64))
    refused(TypeError, r"params\[0\] W must hold real numbers; got dtype .*complex64",
            nb.MLP, [3, 1], params=[(Wc, backend.asarray(np.zeros(1, dtype=np.float32)))])


@pytest.mark.parametrize("kind", ["sparse", "meta"])
def test_torch_tensors_the_kernels_cannot_use_are_one_clear_error(kind):
    torch = pytest.importorskip("torch")
    X, y = _data()
    tensor = torch.asarray(X).to_sparse() if kind == "sparse" else torch.empty(12, 3, device="meta")
    expected = (TypeError, r"X could not be used as a dense torch array on .* \(\w+Error: "
                r".*\); pass a NumPy array or a dense array of the backend") if kind == "sparse" \
        else (ValueError, "X is on torch device meta, which holds no values")
    for model in (_model(), _model(backend="torch")):  # following its data, or named
        err = refused(*expected, _fit, model, tensor, y)
        assert len(str(err)) < 400


@pytest.mark.parametrize("hidden", [10**12, 10**23])
def test_a_network_too_large_for_memory_names_its_layer_sizes(hidden):
    # NumPy's own words ("Maximum allowed dimension exceeded", "Unable to
    # allocate 14.6 TiB") named no layer.
    with pytest.raises(MemoryError, match=rf"layer_sizes \[2, {hidden}, 1\]: [\d,]+ parameters "
                                          "do not fit in memory"):
        nb.MLP([2, hidden, 1])


def test_validation_targets_of_the_wrong_length_name_x_val():
    # The refusal named X where it meant X_val (mutation audit 2026-12-07h).
    X, y = _data()
    refused(ValueError, "^y_val has 4 rows but X_val has 5$", _fit, _model(), X, y,
            validation_data=(X[:5], y[:4]))
