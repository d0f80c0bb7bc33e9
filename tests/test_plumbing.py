"""Direct tests of the training plumbing (issue 23), on the NumPy backend alone.

Each test asserts the value that matters, measured independently of the code
under test: losses, gradients and accuracies are recomputed here in plain
NumPy (``_np_*`` below), never through nnbackend's kernels or network
functions, and what ``fit`` does inside an epoch (its steps, their rows, the
split it trains on) is observed through an :class:`nnbackend.optim.Optimizer`
written here, which sees every step's gradients and parameters.

Each test names the single-line bug (mutation) it was shown to catch
(``python benchmarks/hand_mutations.py`` applies each to a copy of the tree
and lists the tests that fail); the issue's list, M1-M5 from the audit that the whole suite missed and M6-M8
caught only by tests built for something else:

M1  EarlyStopping keeps the weights after the best epoch, not those the best
    training loss was measured on (``callbacks.py``: ``best_params = params``).
M2  the divergence guard keeps weights whose loss is infinite (batch mode):
    the guard's code before issue 23, ``keep = epoch_start if params_finite
    or epoch == 1 else previous``, fixed with these tests.
M3  ``fit(validation_split=...)`` splits at random, unstratified
    (``loop._split``: ``stratify=False``).
M4  the gather block is not a whole number of batches, so an epoch over more
    than ``GATHER_ROWS`` rows takes an extra step (``engine.py``:
    ``block = GATHER_ROWS``).
M5  multi-output sigmoid accuracy divided by rows, not elements
    (``loop._record``: ``per_row = 1``).
M6  minibatch never shuffles (``data.make_plan``: ``BatchPlan(n, size, False)``).
M7  the epoch's last, smaller batch is dropped (``engine._one_chunk_steps``:
    ``if False and full < rows``).
M8  a chunk's BCE / cross-entropy gradient divided by the chunk's rows, not
    the batch's (``kernels.loss_and_backward``: ``_logits_grad(..., None)``).
"""

import math
import warnings

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.engine import GATHER_ROWS
from nnbackend.optim import Optimizer
from nnbackend.training import DivergenceWarning


# -- plain NumPy references (share no code with nnbackend) ----------------------------------


def _np_act(name, z):
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "identity":
        return z
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise AssertionError(name)


def _np_forward(params, X, hidden, output):
    """Each layer's input and the output, for ``params`` = [(W, b), ...] (float64)."""
    inputs, a = [], np.asarray(X, dtype=np.float64)
    for i, (W, b) in enumerate(params):
        inputs.append(a)
        z = a @ np.asarray(W, np.float64) + np.asarray(b, np.float64)
        a = _np_act(output if i == len(params) - 1 else hidden, z)
    return inputs, a


def _np_loss_sum(loss, a, Y):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if loss == "mse":
            return float(0.5 * np.sum((a - Y) ** 2))
        if loss == "bce":
            return float(-np.sum(Y * np.log(a) + (1 - Y) * np.log(1 - a)))
        return float(-np.sum(Y * np.log(a)))


def _np_loss(params, X, Y, hidden="sigmoid", output="sigmoid", loss="mse", reduction="mean"):
    """The model's loss (with its reduction) at ``params``, in plain NumPy."""
    Y = np.asarray(Y, np.float64).reshape(len(X), -1)
    with np.errstate(over="ignore", invalid="ignore"):
        total = _np_loss_sum(loss, _np_forward(params, X, hidden, output)[1], Y)
    return total / len(X) if reduction == "mean" else total


def _np_grads(params, X, Y, hidden, output, loss, reduction):
    """Plain backpropagation, one shot over all rows: [(dW, db), ...]."""
    inputs, a = _np_forward(params, X, hidden, output)
    if loss == "mse":
        dz = a - Y
        if output == "sigmoid":
            dz = dz * a * (1 - a)
    else:  # bce with sigmoid, cross_entropy with softmax
        dz = a - Y
    if reduction == "mean":
        dz = dz / len(X)
    grads = [None] * len(params)
    for i in reversed(range(len(params))):
        W = np.asarray(params[i][0], np.float64)
        grads[i] = (inputs[i].T @ dz, dz.sum(axis=0))
        if i:
            dx = dz @ W.T
            h = inputs[i]
            dz = {"tanh": dx * (1 - h * h), "sigmoid": dx * h * (1 - h),
                  "relu": dx * (h > 0), "identity": dx}[hidden]
    return grads


def _host_params(model):
    return [(np.array(W, dtype=np.float64), np.array(b, dtype=np.float64))
            for W, b in model.params]


def _pairs(flat):
    return [(np.array(flat[i], np.float64), np.array(flat[i + 1], np.float64))
            for i in range(0, len(flat), 2)]


class Recorder:
    """An Optimizer that records each step's parameters (before it) and
    gradients, then takes a plain SGD step (or none, ``lr=0``)."""

    def __init__(self, lr=0.0):
        self.lr, self.before, self.grads = lr, [], []

    @property
    def optimizer(self):
        def init(params):
            return ()

        def update(grads, state, params):
            self.before.append([np.array(p, dtype=np.float64) for p in params])
            self.grads.append([np.array(g, dtype=np.float64) for g in grads])
            if self.lr == 0:
                return list(params), state
            return [p - self.lr * g for p, g in zip(params, grads)], state

        return Optimizer(init, update)

    @property
    def steps(self):
        return len(self.grads)


def _blobs(n, seed=0, p_one=0.5):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < p_one).astype(np.float64)
    X = rng.normal(size=(n, 2)) + 2.0 * y[:, None]
    return X, y


# -- early stopping on the training loss -------------------------------------------------


def test_early_stopping_on_training_loss_keeps_the_weights_of_the_best_loss():
    """Catches M1. Batch mode: an epoch's training loss is exactly that of its
    start weights, so the weights kept must give the history's best loss.
    (With M1 the kept weights give the next epoch's loss, 0.61 against 0.47.)"""
    X, y = _blobs(200, seed=1)
    model = nb.MLP([2, 16, 1], loss="bce", dtype="float64", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        hist = model.fit(X, y, mode="batch", epochs=300, lr=3.0, optimizer="sgd", patience=3)
    assert hist.stopped_early and hist.epochs < 300
    best = min(hist.loss)
    assert hist.best_epoch == hist.loss.index(best) + 1 < hist.epochs
    kept = _np_loss(_host_params(model), X, y, loss="bce")
    assert kept == pytest.approx(best, rel=1e-9, abs=1e-12)
    # and the weights after the best epoch are measurably worse (the test has teeth)
    assert hist.loss[hist.best_epoch] > best * (1 + 1e-6)


def test_early_stopping_without_restoring_keeps_the_last_weights():
    """The other side of M1's rule: restore_best_weights=False keeps the
    weights after the last epoch, whose loss is not the best."""
    X, y = _blobs(200, seed=1)
    model = nb.MLP([2, 16, 1], loss="bce", dtype="float64", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        hist = model.fit(X, y, mode="batch", epochs=300, lr=3.0, patience=3,
                         restore_best_weights=False)
    assert hist.stopped_early
    kept = _np_loss(_host_params(model), X, y, loss="bce")
    assert kept != pytest.approx(min(hist.loss), rel=1e-6)


# -- divergence --------------------------------------------------------------------------


def _diverge(mode, lr, batch_size=4, dtype="float64"):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=40).astype(np.float64) * 1e4
    X = rng.normal(size=(40, 2)) * 100
    model = nb.MLP([2, 8, 1], output_activation="identity", dtype=dtype, seed=0)
    rec = Recorder(lr)
    with pytest.warns(DivergenceWarning, match="diverged at epoch"):
        hist = model.fit(X, y, mode=mode, batch_size=batch_size, epochs=200,
                         optimizer=rec.optimizer)
    return model, hist, rec, X, y


@pytest.mark.parametrize("lr", [1e30, 1e3, 1e6])
def test_batch_divergence_keeps_the_start_of_the_last_good_epoch(lr):
    """Catches M2 (lr=1e6: the loss overflows while the weights are still
    finite; the guard kept those weights, whose loss is infinite; lr=1e30
    and 1e3 overflow the weights too, a case M2 handles right).

    Batch mode: one step per epoch, so the recorder's step ``e`` saw epoch
    ``e``'s start weights. The kept weights must be those of the last
    recorded epoch's start, and their loss (plain NumPy) that epoch's loss."""
    model, hist, rec, X, y = _diverge("batch", lr)
    assert hist.diverged and 1 <= hist.epochs < 200
    assert "the loss became NaN or infinite" in hist.diverged
    kept = [p for pair in _host_params(model) for p in pair]
    start = rec.before[hist.epochs - 1]  # the start of the last epoch in the history
    for a, b in zip(kept, start):
        np.testing.assert_array_equal(a, b)
    loss = _np_loss(_host_params(model), X, y, output="identity")
    assert math.isfinite(loss)
    assert loss == pytest.approx(hist.loss[-1], rel=1e-9)
    assert hist.diverged.endswith(f"kept the parameters from before epoch {hist.epochs}")


def test_batch_divergence_of_the_weights_alone_keeps_the_epoch_start():
    """The guard's other case: the loss is finite but the step overflows the
    weights (float32, a huge step from modest weights). The epoch's start
    earned that finite loss, so those weights are kept."""
    X = np.array([[1.0, 2.0], [3.0, -1.0]])
    y = np.array([100.0, -100.0])
    rec = Recorder(1e38)
    model = nb.MLP([2, 1], output_activation="identity", seed=0)
    with pytest.warns(DivergenceWarning, match="the parameters overflowed"):
        hist = model.fit(X, y, mode="batch", epochs=5, optimizer=rec.optimizer)
    assert hist.epochs == 0 and hist.loss == []
    for a, b in zip([p for pair in _host_params(model) for p in pair], rec.before[0]):
        np.testing.assert_array_equal(a, b)
    assert hist.diverged.endswith("kept the parameters from before epoch 1")


@pytest.mark.parametrize("mode", ["minibatch", "sgd"])
@pytest.mark.parametrize("lr", [1e30, 1e3])
def test_stepwise_divergence_keeps_an_epoch_start_with_a_finite_loss(mode, lr):
    """Catches M2 in minibatch/sgd mode where the overflow shows first in the loss:
    the kept weights are one of the epochs' start weights and give a finite
    loss (plain NumPy)."""
    model, hist, rec, X, y = _diverge(mode, lr)
    steps = math.ceil(40 / (4 if mode == "minibatch" else 1))
    starts = rec.before[::steps]
    kept = [p for pair in _host_params(model) for p in pair]
    assert any(all(np.array_equal(a, b) for a, b in zip(kept, s)) for s in starts)
    assert math.isfinite(_np_loss(_host_params(model), X, y, output="identity"))


# -- the split fit makes -----------------------------------------------------------------


def _class_counts_seen_by_fit(y_labels, n_classes, fraction, seed):
    """Class counts of the rows ``fit(validation_split=fraction)`` trained on,
    read from its first step's gradients: with zero weights and biases
    ``b0`` the output is the same row ``p`` for every input, and the mean
    gradient of the output bias is ``p - (class fractions)``."""
    n = len(y_labels)
    X = np.random.default_rng(seed).normal(size=(n, 3))
    if n_classes == 2:
        b0 = np.array([0.3])
        model = nb.MLP([3, 1], loss="bce", dtype="float64",
                       params=[(np.zeros((3, 1)), b0)])
        p = 1 / (1 + np.exp(-b0))
        targets = y_labels.astype(np.float64)
    else:
        b0 = np.linspace(-0.5, 0.5, n_classes)
        model = nb.MLP([3, n_classes], output_activation="softmax", loss="cross_entropy",
                       dtype="float64", params=[(np.zeros((3, n_classes)), b0)])
        p = np.exp(b0) / np.exp(b0).sum()
        targets = y_labels
    rec = Recorder(0.0)
    hist = model.fit(X, targets, mode="batch", epochs=1, optimizer=rec.optimizer,
                     validation_split=fraction, seed=seed)
    n_train = hist.n_samples
    fractions = p - rec.grads[0][1]
    if n_classes == 2:
        train = np.array([1 - fractions[0], fractions[0]]) * n_train
    else:
        train = fractions * n_train
    train = np.round(train).astype(int)
    total = np.bincount(y_labels, minlength=n_classes)
    return train, total - train, n_train, hist


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_validation_split_is_stratified(n_classes, seed):
    """Catches M3: the split that fit itself makes holds each class out in
    proportion (its quota floor(n_c * n_val / n) or one more), observed through
    what fit trained on, not by calling the split helper."""
    rng = np.random.default_rng(100 + seed)
    weights = [0.75, 0.25] if n_classes == 2 else [0.6, 0.3, 0.1]
    y = rng.choice(n_classes, size=203, p=weights)
    train, val, n_train, hist = _class_counts_seen_by_fit(y, n_classes, 0.3, seed)
    n_val = 203 - n_train
    assert n_val == round(203 * 0.3) and train.sum() == n_train and (train >= 0).all()
    total = np.bincount(y, minlength=n_classes)
    quota = total * n_val / 203
    assert np.all(val >= np.floor(quota)) and np.all(val <= np.ceil(quota)), (val, quota)
    assert len(hist.val_loss) == 1


# -- steps per epoch across the gather block ---------------------------------------------


def _counted_steps(n, mode, batch_size, shuffle, chunk_size="auto"):
    X = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)
    y = X[:, :1] - X[:, 1:]
    rec_steps = []

    def update(grads, state, params):
        rec_steps.append(1)
        return list(params), state

    model = nb.MLP([2, 1], output_activation="identity", seed=0)
    hist = model.fit(X, y, mode=mode, batch_size=batch_size, epochs=2, shuffle=shuffle,
                     optimizer=Optimizer(lambda p: (), update), chunk_size=chunk_size)
    # The epoch's loss with fixed weights is the full-data loss: every row once.
    loss = _np_loss(_host_params(model), X, y, output="identity")
    assert hist.loss[0] == pytest.approx(loss, rel=1e-4)
    return len(rec_steps) // 2


@pytest.mark.parametrize("n", [GATHER_ROWS - 37, GATHER_ROWS, GATHER_ROWS + 1,
                               GATHER_ROWS + 3663, 2 * GATHER_ROWS + 99])
@pytest.mark.parametrize("batch_size", [100, 1000, 64])
@pytest.mark.parametrize("shuffle", [True, False])
def test_minibatch_epoch_takes_ceil_n_over_batch_steps(n, batch_size, shuffle):
    """Catches M4 (20047 rows of 100: 201 steps) and M7 (the last partial batch
    dropped: one step short where batch_size does not divide N)."""
    assert _counted_steps(n, "minibatch", batch_size, shuffle) == math.ceil(n / batch_size)


@pytest.mark.parametrize("n", [GATHER_ROWS - 37, GATHER_ROWS + 3663])
def test_chunked_minibatch_epoch_takes_ceil_n_over_batch_steps(n):
    """M4 and M7 where each batch is pushed through in chunks (batch > chunk)."""
    assert _counted_steps(n, "minibatch", 300, True, chunk_size=64) == math.ceil(n / 300)


@pytest.mark.parametrize("n", [GATHER_ROWS - 1, GATHER_ROWS + 5])
def test_sgd_and_batch_epochs_take_n_and_one_steps(n):
    assert _counted_steps(n, "sgd", None, True) == n
    assert _counted_steps(n, "batch", None, False) == 1


# -- accuracy --------------------------------------------------------------------------


def _np_hits(a, Y, multiclass):
    if multiclass:
        return int(np.sum(np.argmax(a, axis=1) == np.argmax(Y, axis=1)))
    return int(np.sum((a > 0.5) == (Y > 0.5)))


@pytest.mark.parametrize("head", ["binary", "multi-sigmoid", "softmax"])
def test_accuracy_matches_a_hand_count(head):
    """Catches M5 (multi-output sigmoid: 1.5-3.0 against a hand count of
    about 0.6). Batch mode: an epoch's accuracy is that of its start weights;
    validation accuracy is that of the weights after the epoch."""
    rng = np.random.default_rng(3)
    X, Xv = rng.normal(size=(90, 4)), rng.normal(size=(40, 4))
    k = {"binary": 1, "multi-sigmoid": 3, "softmax": 4}[head]
    if head == "softmax":
        Y = np.eye(k)[rng.integers(0, k, size=90)]
        Yv = np.eye(k)[rng.integers(0, k, size=40)]
        kwargs = dict(output_activation="softmax", loss="cross_entropy")
    else:
        Y = (rng.random((90, k)) < 0.5).astype(np.float64)
        Yv = (rng.random((40, k)) < 0.5).astype(np.float64)
        kwargs = dict(output_activation="sigmoid", loss="bce")
    model = nb.MLP([4, 5, k], hidden_activation="tanh", dtype="float64", seed=1, **kwargs)
    multiclass = head == "softmax"
    per_row = 1 if multiclass else k
    for epoch in range(3):
        before = _np_forward(_host_params(model), X, "tanh", kwargs["output_activation"])[1]
        hist = model.fit(X, Y, mode="batch", epochs=1, lr=0.5, validation_data=(Xv, Yv))
        after = _np_forward(_host_params(model), Xv, "tanh", kwargs["output_activation"])[1]
        assert 0.0 <= hist.accuracy[0] <= 1.0 and 0.0 <= hist.val_accuracy[0] <= 1.0
        assert hist.accuracy[0] == pytest.approx(_np_hits(before, Y, multiclass) / (90 * per_row),
                                                 abs=1e-12)
        assert hist.val_accuracy[0] == pytest.approx(
            _np_hits(after, Yv, multiclass) / (40 * per_row), abs=1e-12)


def test_minibatch_multi_output_accuracy_is_a_fraction_of_elements():
    """M5 in minibatch mode: with weights held fixed every step sees the same
    weights, so the epoch's accuracy is the hand count at those weights."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(70, 3))
    Y = (rng.random((70, 2)) < 0.5).astype(np.float64)
    model = nb.MLP([3, 2], loss="bce", dtype="float64", seed=2)
    a = _np_forward(_host_params(model), X, "sigmoid", "sigmoid")[1]
    hist = model.fit(X, Y, batch_size=16, epochs=2, optimizer=Recorder(0.0).optimizer)
    assert hist.accuracy == [pytest.approx(_np_hits(a, Y, False) / 140, abs=1e-12)] * 2


# -- batch orders ----------------------------------------------------------------------


def _orders(mode, seed, n=40, batch_size=6, epochs=3, shuffle=True):
    """Each step's rows, per epoch, as fit visits them. X is the identity, the
    weights zero and held fixed, y = 1: the mean gradient of W is -1/rows at
    exactly the batch's rows."""
    X = np.eye(n)
    model = nb.MLP([n, 1], output_activation="identity", dtype="float64",
                   params=[(np.zeros((n, 1)), np.zeros(1))])
    rec = Recorder(0.0)
    model.fit(X, np.ones(n), mode=mode, batch_size=batch_size, epochs=epochs, seed=seed,
              shuffle=shuffle, optimizer=rec.optimizer)
    batches = [tuple(np.flatnonzero(g[0][:, 0])) for g in rec.grads]
    for g, rows in zip(rec.grads, batches):
        np.testing.assert_allclose(g[0][list(rows), 0], -1.0 / len(rows), rtol=1e-12)
    per_epoch = len(batches) // epochs
    return [batches[e * per_epoch:(e + 1) * per_epoch] for e in range(epochs)]


@pytest.mark.parametrize("mode", ["minibatch", "sgd"])
def test_orders_change_each_epoch_and_repeat_with_the_seed(mode):
    """Catches M6 (minibatch in row order every epoch) and M7 (the last partial
    batch of 40 mod 6 = 4 rows dropped: rows never visited)."""
    size = 6 if mode == "minibatch" else 1
    epochs = _orders(mode, seed=7)
    for batches in epochs:
        assert [len(b) for b in batches] == [size] * (40 // size) + ([40 % size] if 40 % size else [])
        assert sorted(r for b in batches for r in b) == list(range(40))  # each row once
    flat = [[r for b in batches for r in b] for batches in epochs]
    assert flat[0] != list(range(40))
    assert flat[0] != flat[1] and flat[1] != flat[2] and flat[0] != flat[2]
    assert _orders(mode, seed=7) == epochs
    assert _orders(mode, seed=8) != epochs


def test_unshuffled_minibatch_visits_rows_in_order():
    epochs = _orders("minibatch", seed=7, shuffle=False)
    assert epochs[0] == epochs[1] and [r for b in epochs[0] for r in b] == list(range(40))


# -- chunked exact batch ---------------------------------------------------------------


HEADS = {"mse": ["identity", "sigmoid"], "bce": ["sigmoid"], "cross_entropy": ["softmax"]}


@pytest.mark.parametrize("loss,output", [(l, o) for l, outs in HEADS.items() for o in outs])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("chunk_size", [7, 16, 50])
def test_chunked_batch_step_equals_a_one_shot_numpy_step(loss, output, reduction, chunk_size):
    """Catches M8 (bce and cross_entropy, mean, chunks of 7 and 16: the step
    is several times too large). Batch mode, one epoch: the loss is the
    one-shot loss of the start weights and the weights after it are one SGD
    step on the one-shot gradient, both from plain NumPy."""
    rng = np.random.default_rng(5)
    n, k = 50, (3 if output == "softmax" else 2)
    X = rng.normal(size=(n, 4))
    if loss == "cross_entropy":
        Y = np.eye(k)[rng.integers(0, k, size=n)]
    elif loss == "bce":
        Y = (rng.random((n, k)) < 0.5).astype(np.float64)
    else:
        Y = rng.normal(size=(n, k)) if output == "identity" else rng.random((n, k))
    model = nb.MLP([4, 6, 5, k], hidden_activation="tanh", output_activation=output,
                   loss=loss, reduction=reduction, dtype="float64", seed=3)
    p0 = _host_params(model)
    lr = 0.05 if reduction == "mean" else 0.002
    hist = model.fit(X, Y, mode="batch", epochs=1, lr=lr, chunk_size=chunk_size)
    assert hist.loss[0] == pytest.approx(_np_loss(p0, X, Y, "tanh", output, loss, reduction),
                                         rel=1e-12)
    grads = _np_grads(p0, X, Y, "tanh", output, loss, reduction)
    for (W0, b0), (dW, db), (W1, b1) in zip(p0, grads, _host_params(model)):
        np.testing.assert_allclose(W1, W0 - lr * dW, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(b1, b0 - lr * db, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("loss,output", [(l, o) for l, outs in HEADS.items() for o in outs])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_chunked_loss_and_grads_equal_one_shot(loss, output, reduction):
    """The same through MLP.loss_and_grads, chunked (chunk_size=7 fit) against
    one chunk, and both against the NumPy reference."""
    rng = np.random.default_rng(6)
    n, k = 45, (3 if output == "softmax" else 1)
    X = rng.normal(size=(n, 3))
    if loss == "cross_entropy":
        Y = np.eye(k)[rng.integers(0, k, size=n)]
    else:
        Y = (rng.random((n, k)) < 0.5).astype(np.float64)
    p0 = None
    steps = {}
    for chunk_size in (7, 45):
        rec = Recorder(0.0)
        model = nb.MLP([3, 4, k], hidden_activation="relu", output_activation=output,
                       loss=loss, reduction=reduction, dtype="float64", seed=4)
        p0 = _host_params(model)
        model.fit(X, Y, mode="batch", epochs=1, chunk_size=chunk_size, optimizer=rec.optimizer)
        steps[chunk_size] = rec.grads[0]
    reference = [g for pair in _np_grads(p0, X, Y, "relu", output, loss, reduction) for g in pair]
    for chunked, whole, ref in zip(steps[7], steps[45], reference):
        np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(whole, ref, rtol=1e-12, atol=1e-14)


# -- survivors of the mutation run (benchmarks/mutation_survivors.md) --------------------


@pytest.mark.parametrize("which", range(6))
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_divergence_guard_checks_every_parameter(which, bad):
    """The guard's finite flag covers every parameter array, each alone
    (mutants of ``loop._finite_flag`` that skip one array survived before)."""
    X, y = _blobs(30)

    def update(grads, state, params):
        out = [p - 0.01 * g for p, g in zip(params, grads)]
        if state == 2:  # the third step breaks one parameter array
            out[which] = out[which] + bad
        return out, state + 1

    model = nb.MLP([2, 3, 2, 1], loss="bce", dtype="float64", seed=0)
    with pytest.warns(DivergenceWarning, match="the parameters overflowed"):
        hist = model.fit(X, y, mode="batch", epochs=6, optimizer=Optimizer(lambda p: 0, update))
    assert hist.epochs == 2 and len(hist.loss) == 2
    assert all(np.isfinite(p).all() for pair in _host_params(model) for p in pair)


def _np_minibatch_epoch(params, X, Y, batch_size, lr, hidden, output, loss, reduction):
    """One unshuffled minibatch SGD epoch in plain NumPy: (params, loss sum)."""
    total = 0.0
    for start in range(0, len(X), batch_size):
        Xb, Yb = X[start:start + batch_size], Y[start:start + batch_size]
        total += _np_loss_sum(loss, _np_forward(params, Xb, hidden, output)[1], Yb)
        grads = _np_grads(params, Xb, Yb, hidden, output, loss, reduction)
        params = [(W - lr * dW, b - lr * db) for (W, b), (dW, db) in zip(params, grads)]
    return params, total


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("chunk_size", [7, 20, 64])
def test_chunked_minibatch_epoch_equals_a_numpy_epoch(reduction, chunk_size):
    """Batches larger than a chunk (20 rows in chunks of 7) go through
    ``run_epoch``'s chunked path; its last batch (10 rows) divides a mean by
    its own rows, and its correct counts add up. Mutants of that path
    (``n_batch = min(size, rows - start)``, the correct-count sum) survived
    before."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(50, 3))
    Y = (rng.random((50, 2)) < 0.5).astype(np.float64)
    model = nb.MLP([3, 4, 2], hidden_activation="tanh", loss="bce", reduction=reduction,
                   dtype="float64", seed=6)
    p0 = _host_params(model)
    lr = 0.3 if reduction == "mean" else 0.02
    hist = model.fit(X, Y, batch_size=20, epochs=1, lr=lr, shuffle=False, chunk_size=chunk_size)
    expected, total = _np_minibatch_epoch(p0, X, Y, 20, lr, "tanh", "sigmoid", "bce", reduction)
    assert hist.loss[0] == pytest.approx(total / 50 if reduction == "mean" else total, rel=1e-12)
    for (W, b), (We, be) in zip(_host_params(model), expected):
        np.testing.assert_allclose(W, We, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(b, be, rtol=1e-11, atol=1e-14)
    # accuracy over the chunked batches, weights held fixed: the hand count
    frozen = nb.MLP([3, 4, 2], hidden_activation="tanh", loss="bce", reduction=reduction,
                    dtype="float64", seed=6)
    hist = frozen.fit(X, Y, batch_size=20, epochs=1, chunk_size=chunk_size,
                      optimizer=Recorder(0.0).optimizer)
    a = _np_forward(p0, X, "tanh", "sigmoid")[1]
    assert hist.accuracy == [pytest.approx(_np_hits(a, Y, False) / 100, abs=1e-12)]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("head", ["binary", "softmax"])
def test_validation_figures_match_numpy(reduction, head):
    """val_loss (with the model's reduction) and val_accuracy are those of the
    weights after each epoch, by plain NumPy; the sum reduction's val_loss
    was untested before (a mutant scaling it survived)."""
    rng = np.random.default_rng(9)
    X, Xv = rng.normal(size=(60, 3)), rng.normal(size=(25, 3))
    if head == "softmax":
        Y, Yv = np.eye(3)[rng.integers(0, 3, 60)], np.eye(3)[rng.integers(0, 3, 25)]
        kw = dict(output_activation="softmax", loss="cross_entropy")
        sizes = [3, 5, 3]
    else:
        Y, Yv = (rng.random((60, 1)) < .5) * 1.0, (rng.random((25, 1)) < .5) * 1.0
        kw = dict(output_activation="sigmoid", loss="bce")
        sizes = [3, 5, 1]
    model = nb.MLP(sizes, reduction=reduction, dtype="float64", seed=2, **kw)
    for _ in range(2):
        hist = model.fit(X, Y, batch_size=16, epochs=1, lr=0.05, validation_data=(Xv, Yv))
        p = _host_params(model)
        expected = _np_loss(p, Xv, Yv, "sigmoid", kw["output_activation"], kw["loss"], reduction)
        assert hist.val_loss[0] == pytest.approx(expected, rel=1e-12)
        a = _np_forward(p, Xv, "sigmoid", kw["output_activation"])[1]
        per_row = 1 if head == "softmax" else Yv.shape[1]
        assert hist.val_accuracy[0] == _np_hits(a, Yv, head == "softmax") / (25 * per_row)


def test_run_epoch_finds_the_namespace_itself():
    """``engine.run_epoch`` without ``xp``: the namespace comes from X."""
    from nnbackend.data import make_plan
    from nnbackend.engine import run_epoch
    from nnbackend.network import NetSpec
    from nnbackend.optim import sgd

    rng = np.random.default_rng(10)
    X, Y = rng.normal(size=(30, 2)), rng.normal(size=(30, 1))
    p0 = [(rng.normal(size=(2, 1)), np.zeros(1))]
    spec = NetSpec("sigmoid", "identity", "mse", "mean")
    for chunk_size in (4, 8):  # the chunked path and the one-chunk path
        params, _, loss, correct = run_epoch(
            [p0[0][0], p0[0][1]], (), sgd(0.1), spec, X, Y, make_plan("minibatch", 30, 8, True),
            np.random.default_rng(11), np.int64, chunk_size)
        order = np.random.default_rng(11).permutation(30)
        expected, total = _np_minibatch_epoch(p0, X[order], Y[order], 8, 0.1, "sigmoid",
                                              "identity", "mse", "mean")
        assert float(loss) == pytest.approx(total, rel=1e-12) and correct is None
        np.testing.assert_allclose(params[0], expected[0][0], rtol=1e-12)
        np.testing.assert_allclose(params[1], expected[0][1], rtol=1e-12)


def test_early_stopping_needs_a_strict_improvement():
    """A loss that stays exactly equal is no improvement (min_delta=0): with
    the weights held fixed the run stops after ``patience`` more epochs and
    the best epoch is the first (a ``<=`` mutant never stopped)."""
    X, y = _blobs(40)
    model = nb.MLP([2, 3, 1], loss="bce", dtype="float64", seed=0)
    hist = model.fit(X, y, mode="batch", epochs=20, patience=2, optimizer=Recorder(0.0).optimizer)
    assert len(set(hist.loss)) == 1
    assert hist.stopped_early and hist.epochs == 3 and hist.best_epoch == 1


def test_divergence_warning_points_at_the_callers_line():
    """The DivergenceWarning is attributed to the line that called fit."""
    X, y = _blobs(40)
    model = nb.MLP([2, 8, 1], output_activation="identity", seed=0)
    with pytest.warns(DivergenceWarning) as caught:
        model.fit(X * 100, y * 1e4, epochs=50, lr=1e30)
    assert [w.filename for w in caught] == [__file__]


def test_epoch_stepper_defaults_are_fits():
    """``training.epoch_stepper``'s defaults (the benchmarks' epoch) are
    fit's: minibatch of 32, lr 0.1, sgd, shuffled, seeded by the model."""
    from nnbackend.training import epoch_stepper

    rng = np.random.default_rng(12)
    X, y = rng.normal(size=(100, 3)), rng.normal(size=(100, 1))
    a = nb.MLP([3, 4, 1], output_activation="identity", dtype="float64", seed=5)
    b = nb.MLP([3, 4, 1], output_activation="identity", dtype="float64", seed=5)
    hist = a.fit(X, y, epochs=2)
    step = epoch_stepper(b._network(), b._features(X), b._targets(y, 100))
    assert step.plan.batch_size == 32 and step.plan.shuffle and step.executor == "reference"
    outs = [step() for _ in range(2)]
    assert [loss / 100 for _, loss in outs] == pytest.approx(hist.loss, rel=1e-12)
    for p, q in zip(outs[-1][0], [p for pair in _host_params(a) for p in pair]):
        np.testing.assert_allclose(p, q, rtol=1e-12)


class _FakeExecutor:
    def __init__(self, name, why_not, description=None):
        self.name, self.why_not = name, why_not
        if description is not None:
            self.describe = lambda task: description

    def supports(self, task):
        return self.why_not

    def make_epoch(self, task):
        return f"epoch of {self.name}"


class _FakeBackend:
    name = "fake"

    def __init__(self, executors, no_reference_loop=None):
        self._executors, self.no_reference_loop = executors, no_reference_loop
        self.executor_names = tuple(e.name for e in executors)

    def executors(self):
        return tuple(self._executors)


def test_choose_executor_picks_and_explains():
    """``engine.choose_executor``'s choice and its reason, with executors made
    here (NumPy has none, so its mutants survived the NumPy-only run)."""
    from types import SimpleNamespace

    from nnbackend.engine import choose_executor

    def task(*executors, no_reference_loop=None):
        return SimpleNamespace(backend=_FakeBackend(executors, no_reference_loop))

    a, b = _FakeExecutor("jax-scan", "too big"), _FakeExecutor("jax-batch", None, "one kernel")
    choice = choose_executor("auto", task(a, b))
    assert (choice.epoch, choice.name) == ("epoch of jax-batch", "jax-batch")
    assert choice.reason == ("jax-batch: one kernel; the first of the fake backend's executors "
                             "that supports this fit; jax-scan declined: too big")
    choice = choose_executor("jax-batch", task(a, _FakeExecutor("jax-batch", None)))
    assert choice.reason == "jax-batch: asked for (executor='jax-batch')"
    with pytest.raises(ValueError, match="executor 'jax-scan' does not apply here: too big"):
        choose_executor("jax-scan", task(a, b))
    # the reference loop: no executors, or none that supports the fit
    assert choose_executor("auto", task()).reason == \
        "reference: the fake backend has no fast executor"
    choice = choose_executor("auto", task(a, _FakeExecutor("jax-batch", "no")))
    assert (choice.epoch, choice.name) == (None, "reference")
    assert choice.reason == ("reference: no executor supports this fit: jax-scan: too big; "
                             "jax-batch: no")
    # a backend without a reference loop refuses it by name, and only it
    with pytest.raises(ValueError, match="^no loop here$"):
        choose_executor("reference", task(b, no_reference_loop="no loop here"))
    assert choose_executor("auto", task(b, no_reference_loop="no loop here")).name == "jax-batch"
    # another backend's executor, named with where else it runs
    with pytest.raises(ValueError, match=r"^executor 'jax-scan' needs the jax backend, not 'fake'$"):
        choose_executor("jax-scan", task(b))
    with pytest.raises(ValueError, match=r"needs the cupy backend \(or torch or jax, where its "
                                         r"arrays are on a CUDA GPU\), not 'fake'$"):
        choose_executor("cupy-fused", task(b))


@pytest.mark.parametrize("hidden,factor", [("sigmoid", 2.0), ("tanh", 6.0), ("relu", 6.0)])
def test_initial_weights_are_glorot_uniform_draws_of_the_seed(hidden, factor):
    """The initial weights, drawn in plain NumPy from the seed: uniform in
    ±sqrt(factor / (fan_in + fan_out)), factor 2 for sigmoid networks and 6
    otherwise, biases 0 (mutants of the factor survived the data.py run)."""
    rng = np.random.default_rng(7)
    model = nb.MLP([3, 5, 2], hidden_activation=hidden, dtype="float64", seed=7)
    for (W, b), (fan_in, fan_out) in zip(_host_params(model), [(3, 5), (5, 2)]):
        bound = math.sqrt(factor / (fan_in + fan_out))
        np.testing.assert_array_equal(W, rng.uniform(-bound, bound, size=(fan_in, fan_out)))
        np.testing.assert_array_equal(b, np.zeros(fan_out))


def test_make_plan_modes_and_defaults():
    """``data.make_plan``: batch takes all rows unshuffled, sgd one row,
    minibatch 32 shuffled by default; a batch_size of exactly N is no clip."""
    from nnbackend.data import BatchPlan, make_plan

    assert make_plan("batch", 10, 3, True) == BatchPlan(10, 10, False)
    assert make_plan("sgd", 10, 3, True) == BatchPlan(10, 1, True)
    assert make_plan("minibatch", 100) == BatchPlan(100, 32, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make_plan("minibatch", 10, 10) == BatchPlan(10, 10, True)


def test_batch_size_clip_warning_points_at_the_callers_line():
    X, y = _blobs(10)
    with pytest.warns(UserWarning, match="batch_size=32 is larger than the 10 samples") as caught:
        nb.MLP([2, 1], loss="bce").fit(X, y, epochs=1)
    assert [w.filename for w in caught] == [__file__]
