"""Validation, early stopping, divergence, accuracy history, resuming."""

import json
import warnings
import zipfile

import array_api_compat
import numpy as np
import pytest

import nnbackend as nb
from nnbackend.training import DivergenceWarning
from conftest import to_numpy


def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    X = rng.normal(size=(n, 2)) + 2.5 * y[:, None]
    return X, y.astype(np.float64)


def _flat(model):
    return [to_numpy(model.backend, a) for pair in model.params for a in pair]


def test_history_has_accuracy_for_classification():
    X, y = _blobs()
    hist = nb.MLP([2, 4, 1], loss="bce", seed=0).fit(X, y, epochs=30, lr=0.5)
    assert len(hist.accuracy) == 30 and hist.val_loss == [] and hist.val_accuracy == []
    assert 0 <= min(hist.accuracy) and max(hist.accuracy) <= 1
    assert hist.accuracy[-1] > 0.9
    regression = nb.MLP([2, 1], output_activation="identity").fit(X, y, epochs=2)
    assert regression.accuracy == []


def test_batch_mode_accuracy_is_that_of_the_epoch_start_weights():
    X, y = _blobs()
    model = nb.MLP([2, 3, 1], loss="bce", dtype="float64", seed=0)
    expected = np.mean((np.asarray(model.predict(X))[:, 0] > 0.5) == (y > 0.5))
    hist = model.fit(X, y, mode="batch", epochs=1)
    assert hist.accuracy[0] == expected


def test_validation_split_is_stratified_and_reported():
    X, y = _blobs(n=100)
    y[:10] = 1  # 1s are now a larger class
    hist = nb.MLP([2, 4, 1], loss="bce", seed=0).fit(X, y, epochs=5, validation_split=0.2)
    assert hist.n_samples == 80 and len(hist.val_loss) == 5 and len(hist.val_accuracy) == 5
    from nnbackend.datasets import split_indices
    train, val = split_indices(y, 0.2, np.random.default_rng(0))
    assert len(val) == 20 and len(np.intersect1d(train, val)) == 0
    assert abs(y[val].mean() - y.mean()) <= 0.05


def test_validation_data_matches_evaluating_by_hand():
    X, y = _blobs()
    Xv, yv = _blobs(n=30, seed=1)
    model = nb.MLP([2, 4, 1], loss="bce", dtype="float64", seed=0)
    hist = model.fit(X, y, epochs=3, validation_data=(Xv, yv))
    loss, _ = model.loss_and_grads(Xv, yv)
    assert hist.val_loss[-1] == pytest.approx(loss, rel=1e-12)
    acc = np.mean((np.asarray(model.predict(Xv))[:, 0] > 0.5) == (yv > 0.5))
    assert hist.val_accuracy[-1] == acc


def test_early_stopping_restores_best_weights():
    X, y = _blobs(n=60)
    Xv, yv = _blobs(n=60, seed=5)
    model = nb.MLP([2, 32, 1], loss="bce", dtype="float64", seed=0)
    hist = model.fit(X, y, epochs=500, lr=1.0, optimizer="adam", batch_size=8,
                     validation_data=(Xv, yv), patience=5)
    assert hist.stopped_early and hist.epochs < 500
    assert hist.best_epoch == int(np.argmin(hist.val_loss)) + 1
    assert hist.epochs == hist.best_epoch + 5
    loss, _ = model.loss_and_grads(Xv, yv)
    assert loss == pytest.approx(min(hist.val_loss), rel=1e-12)


def test_min_delta_and_bad_values():
    X, y = _blobs()
    hist = nb.MLP([2, 1], loss="bce").fit(X, y, epochs=100, patience=2, min_delta=10.0)
    assert hist.stopped_early and hist.epochs == 3
    with pytest.raises(ValueError, match="min_delta must be a finite number >= 0"):
        nb.MLP([2, 1]).fit(X, y, patience=2, min_delta=-1)
    with pytest.raises(ValueError, match="validation_split must be a finite number > 0 and < 1"):
        nb.MLP([2, 1]).fit(X, y, validation_split=1.0)
    with pytest.raises(ValueError, match="not both"):
        nb.MLP([2, 1]).fit(X, y, validation_split=0.1, validation_data=(X, y))


@pytest.mark.parametrize("mode", ["batch", "minibatch", "sgd"])
def test_divergence_stops_and_keeps_finite_params(backend, mode):
    X, y = _blobs(n=40)
    model = nb.MLP([2, 8, 1], output_activation="identity", backend=backend.name,
                   device=backend.device, seed=0)
    with pytest.warns(DivergenceWarning, match="diverged at epoch .*lr=1e\\+30"):
        hist = model.fit(X * 100, y * 1e4, mode=mode, batch_size=4, epochs=50, lr=1e30)
    assert hist.diverged and hist.epochs < 50
    assert all(np.isfinite(h) for h in hist.loss)
    assert all(np.all(np.isfinite(p)) for p in _flat(model))
    assert model.train_state is None


def test_divergence_warns_once_and_nothing_else():
    X, y = _blobs(n=40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nb.MLP([2, 8, 1], output_activation="identity").fit(X * 100, y * 1e4, epochs=50, lr=1e30)
    assert [w.category for w in caught] == [DivergenceWarning]


def test_callback_sees_each_epoch():
    X, y = _blobs()
    seen = []
    nb.MLP([2, 1], loss="bce").fit(X, y, epochs=4, validation_split=0.25,
                                   callback=lambda e, figures: seen.append((e, sorted(figures))))
    assert [e for e, _ in seen] == [1, 2, 3, 4]
    assert seen[0][1] == ["accuracy", "loss", "val_accuracy", "val_loss"]


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_resume_from_checkpoint_equals_one_run(tmp_path, optimizer):
    X, y = _blobs()
    kwargs = dict(mode="minibatch", batch_size=16, lr=0.05, optimizer=optimizer)
    whole = nb.MLP([2, 5, 1], loss="bce", dtype="float64", seed=3)
    whole_hist = whole.fit(X, y, epochs=6, **kwargs)
    first = nb.MLP([2, 5, 1], loss="bce", dtype="float64", seed=3)
    first.fit(X, y, epochs=3, **kwargs)
    first.save(tmp_path / "ckpt.npz")
    second = nb.MLP.load(tmp_path / "ckpt.npz")
    assert second.train_state.epochs_done == 3
    hist = second.fit(X, y, epochs=3, resume=True, **kwargs)
    assert hist.loss == whole_hist.loss[3:]
    for a, b in zip(_flat(second), _flat(whole)):
        np.testing.assert_array_equal(a, b)


def test_resume_refuses_without_state_or_with_other_optimizer():
    X, y = _blobs()
    model = nb.MLP([2, 1], loss="bce")
    with pytest.raises(ValueError, match="no earlier fit to resume"):
        model.fit(X, y, resume=True)
    model.fit(X, y, epochs=1, optimizer="adam")
    with pytest.raises(ValueError,
                       match="used optimizer 'adam', this one asks for optimizer 'sgd'"):
        model.fit(X, y, resume=True, optimizer="sgd")


def _state_host(model):
    """The training state with its arrays on the host, for exact comparison."""
    state = dict(vars(model.train_state))
    state["state_arrays"] = {k: [to_numpy(model.backend, a) for a in v]
                             for k, v in state["state_arrays"].items()}
    return state


def _assert_same_state(got, want):
    assert (got.train_state is None) == (want.train_state is None)
    if want.train_state is None:
        return
    g, w = _state_host(got), _state_host(want)
    assert {k: v for k, v in g.items() if k != "state_arrays"} == \
        {k: v for k, v in w.items() if k != "state_arrays"}
    assert g["state_arrays"].keys() == w["state_arrays"].keys()
    for name, arrays in w["state_arrays"].items():
        assert len(g["state_arrays"][name]) == len(arrays)
        for x, y in zip(g["state_arrays"][name], arrays):
            np.testing.assert_array_equal(x, y)


def _assert_same_checkpoint(got, want):
    """Same config (dtype included), metadata, parameters and training state."""
    assert got.config() == want.config() and got.metadata == want.metadata
    assert len(got.params) == len(want.params)
    for x, y in zip(_flat(got), _flat(want)):
        np.testing.assert_array_equal(x, y)
    _assert_same_state(got, want)


def test_checkpoint_moves_between_backends(tmp_path, backend):
    X, y = _blobs()
    model = nb.MLP([2, 4, 1], loss="bce", seed=0)
    model.fit(X, y, epochs=3, optimizer="adam", lr=0.01)
    model.metadata = {"classes": [0, 1]}
    model.save(tmp_path / "m.npz")
    loaded = nb.MLP.load(tmp_path / "m.npz", backend=backend.name, device=backend.device)
    assert loaded.backend.name == backend.name and loaded.metadata == {"classes": [0, 1]}
    np.testing.assert_allclose(to_numpy(backend, loaded.predict(X)), np.asarray(model.predict(X)),
                               rtol=1e-5, atol=1e-6)
    # The optimizer state came along, onto the backend's device, unchanged.
    _assert_same_state(loaded, model)
    W0 = loaded.params[0][0]
    for arrays in loaded.train_state.state_arrays.values():
        for a in arrays:
            assert type(a) is type(W0)
            assert array_api_compat.device(a) == array_api_compat.device(W0)
    # Resuming there continues the run exactly as resuming at home does: the
    # same Adam moments and step count, the same shuffle stream. A fresh
    # optimizer state or shuffle stream would move the weights by ~lr.
    hist = loaded.fit(X, y, epochs=1, optimizer="adam", lr=0.01, resume=True)
    home_hist = model.fit(X, y, epochs=1, optimizer="adam", lr=0.01, resume=True)
    np.testing.assert_allclose(hist.loss, home_hist.loss, rtol=1e-5)
    for got, want in zip(_flat(loaded), _flat(model)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert loaded.train_state.epochs_done == model.train_state.epochs_done == 4
    assert loaded.train_state.state_scalars == model.train_state.state_scalars
    assert loaded.train_state.rng == model.train_state.rng


def _saved_model(tmp_path):
    path = tmp_path / "good.npz"
    model = nb.MLP([2, 3, 1], seed=0)
    model.fit(*_blobs(), epochs=1, optimizer="momentum")
    model.save(path)
    return path, model


def _saved(tmp_path):
    return _saved_model(tmp_path)[0]


def test_truncated_and_flipped_files_are_refused(tmp_path):
    path, model = _saved_model(tmp_path)
    data = path.read_bytes()
    original = nb.MLP.load(path)
    _assert_same_checkpoint(original, model)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz is not a usable nnbackend checkpoint"):
        nb.MLP.load(cut)
    # Flip one bit at 400 seeded places (headers, arrays, the zip directory):
    # each damaged file is either refused, naming the file, or (a flip in a zip
    # field nothing reads) loads to exactly the original model and state.
    rng = np.random.default_rng(16)
    offsets = rng.integers(0, len(data), size=400)
    bits = rng.integers(0, 8, size=400)
    refused, unchanged = 0, 0
    flip = tmp_path / "flip.npz"
    for offset, bit in zip(offsets.tolist(), bits.tolist()):
        flipped = bytearray(data)
        flipped[offset] ^= 1 << bit
        flip.write_bytes(bytes(flipped))
        try:
            loaded = nb.MLP.load(flip)
        except ValueError as exc:
            assert str(exc).startswith(f"{flip} is not a usable nnbackend checkpoint: "), exc
            refused += 1
            continue
        try:
            _assert_same_checkpoint(loaded, original)
        except AssertionError as exc:
            raise AssertionError(f"bit {bit} of byte {offset}: loaded, but changed: {exc}") from None
        unchanged += 1
    assert refused + unchanged == 400
    # The zip's CRCs cover every array: most single-bit damage is caught (about
    # 85% of all bytes of this file are data or checked headers).
    assert refused >= 0.7 * 400, refused


def test_foreign_version_and_pickled_files_are_refused(tmp_path):
    np.savez(tmp_path / "foreign.npz", X=np.ones(3))
    with pytest.raises(ValueError, match="not written by nnbackend"):
        nb.MLP.load(tmp_path / "foreign.npz")
    with np.load(_saved(tmp_path)) as f:
        arrays = dict(f)
    good = dict(arrays)
    arrays["format_version"] = np.asarray(99)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(ValueError, match="format version 99; this nnbackend reads versions 1, 2"):
        nb.MLP.load(tmp_path / "future.npz")
    arrays["format_version"] = np.asarray(1)
    arrays["param_0"] = np.array([object()], dtype=object)
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(ValueError, match="pickled.npz is not a usable nnbackend checkpoint"):
        nb.MLP.load(tmp_path / "pickled.npz")
    # A header whose training state lacks a field.
    header = json.loads(str(good["header"]))
    del header["train_state"]["epochs_done"]
    np.savez(tmp_path / "nofield.npz", **(good | {"header": np.asarray(json.dumps(header))}))
    with pytest.raises(ValueError, match="nofield.npz is not a usable nnbackend checkpoint: "
                                         "its training state lacks 'epochs_done'"):
        nb.MLP.load(tmp_path / "nofield.npz")
    # A member that is not a .npy array at all (np.load returns its raw bytes).
    with zipfile.ZipFile(_saved(tmp_path)) as zin, \
            zipfile.ZipFile(tmp_path / "raw.npz", "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, b"not an array" if name == "param_0.npy" else zin.read(name))
    with pytest.raises(ValueError, match="raw.npz is not a usable nnbackend checkpoint: "
                                         "a member that should be an array is not a .npy array"):
        nb.MLP.load(tmp_path / "raw.npz")
    with pytest.raises(ValueError, match="no such checkpoint file"):
        nb.MLP.load(tmp_path / "missing.npz")


def test_unwritable_path_is_a_clear_error_and_keeps_old_file(tmp_path):
    model = nb.MLP([2, 1])
    with pytest.raises(ValueError, match="cannot write checkpoint .*no_such_dir"):
        model.save(tmp_path / "no_such_dir" / "m.npz")
    path = _saved(tmp_path)
    before = path.read_bytes()
    # A directory where the file should go makes the final rename fail.
    with pytest.raises(ValueError, match="cannot write checkpoint"):
        model.save(tmp_path)
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".nnbackend-")]


def _resume_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] * X[:, 1] + 0.3 * X[:, 2] > 0).astype(float)
    return X, y, lambda: nb.MLP([3, 6, 1], loss="bce", dtype="float64", seed=3)


def test_a_resumed_fit_holds_out_the_first_fits_validation_rows(tmp_path):
    X, y, make = _resume_problem()
    kw = dict(batch_size=16, lr=0.05, validation_split=0.25)
    whole = make()
    h_whole = whole.fit(X, y, epochs=6, **kw)
    parts = make()
    parts.fit(X, y, epochs=3, **kw)
    parts.save(tmp_path / "m.npz")  # the split's seed goes through the checkpoint too
    resumed = nb.MLP.load(tmp_path / "m.npz")
    h = resumed.fit(X, y, epochs=3, resume=True, **kw)
    assert h.val_loss == h_whole.val_loss[3:]
    for (W, b), (W2, b2) in zip(whole.params, resumed.params):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


def test_an_adaptive_factor_goes_on_with_adaptive_alone():
    X, y, make = _resume_problem()
    m = make()
    h = m.fit(X, y, mode="batch", epochs=15, lr=1e-5, lr_schedule="adaptive")
    assert h.lr_drops and m.train_state.lr_scale < 1
    start = [(np.array(W), np.array(b)) for W, b in m.params]
    m.fit(X, y, mode="batch", epochs=1, lr=1e-3, resume=True)  # constant: lr as asked
    fresh = nb.MLP([3, 6, 1], loss="bce", dtype="float64", seed=3, params=start)
    fresh.fit(X, y, mode="batch", epochs=1, lr=1e-3)
    for a, b in zip(m.params, fresh.params):
        np.testing.assert_array_equal(a[0], b[0])


def test_restored_best_weights_leave_nothing_to_resume_and_say_why():
    X, y, make = _resume_problem()
    m = make()
    h = m.fit(X, y, batch_size=8, epochs=200, lr=2.0, optimizer="momentum", patience=4,
              validation_split=0.3)
    assert h.best_epoch < h.epochs and m.train_state is None
    assert h.not_resumable.startswith(f"the weights kept (restore_best_weights, epoch "
                                      f"{h.best_epoch}) are not the last epoch's")
    with pytest.raises(ValueError, match=r"no earlier fit to resume: the weights kept \("):
        m.fit(X, y, batch_size=8, epochs=1, optimizer="momentum", resume=True)
    kept = make()
    kept.fit(X, y, batch_size=8, epochs=3, lr=0.05, optimizer="momentum")
    assert kept.fit(X, y, batch_size=8, epochs=1, lr=0.05, optimizer="momentum",
                    resume=True).not_resumable is None


def test_adaptive_with_an_optimizer_object_floors_its_own_rate():
    X, y, make = _resume_problem()
    h = make().fit(X, y, mode="batch", epochs=40, optimizer=nb.adam(1e-7),
                   lr_schedule="adaptive")
    assert h.lr_drops == []  # 1e-7 is below the 1e-6 floor from the start


def test_a_fit_that_raises_leaves_the_model_as_it_was():
    X, y, _ = _resume_problem()
    model = nb.MLP([3, 6, 1], loss="bce", dtype="float64", seed=3, standardize=True)
    model.fit(X, y, epochs=2)
    before = [(np.array(W), np.array(b)) for W, b in model.params]
    scaler, state = model.feature_scaler, model.train_state

    def interrupt(epoch, figures):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(X * 10 + 5, y, epochs=5, callback=interrupt)
    assert model.feature_scaler is scaler and model.train_state is state
    for (W, b), (W0, b0) in zip(model.params, before):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)


def test_best_weights_of_the_training_loss_are_an_epochs_start_and_leave_nothing_to_resume():
    # Without validation data the best weights are the best epoch's start, so
    # even a best last epoch restores weights the optimizer state is not theirs.
    X, y, make = _resume_problem()
    m = make()
    h = m.fit(X, y, mode="batch", epochs=3, lr=0.5, patience=10, restore_best_weights=True)
    assert h.best_epoch == h.epochs == 3
    assert m.train_state is None and "not the last epoch's" in h.not_resumable


def test_a_resumed_split_is_the_same_rows_whatever_the_seed_was(monkeypatch, tmp_path):
    from nnbackend.training import loop

    held_out, real = [], loop.split_indices

    def recording(*args, **kwargs):
        train_idx, val_idx = real(*args, **kwargs)
        held_out.append(val_idx.tolist())
        return train_idx, val_idx

    monkeypatch.setattr(loop, "split_indices", recording)
    X, y, _ = _resume_problem()
    kw = dict(batch_size=16, lr=0.05, validation_split=0.25)
    for seed, fit_seed in ((None, None), (3, np.int64(5))):
        held_out.clear()
        model = nb.MLP([3, 6, 1], loss="bce", dtype="float64", seed=seed)
        model.fit(X, y, epochs=2, seed=fit_seed, **kw)
        model.fit(X, y, epochs=2, resume=True, **kw)
        assert len(held_out) == 2 and held_out[0] == held_out[1]
        assert isinstance(model.train_state.split_seed, int)  # a NumPy seed saves as JSON
        model.save(tmp_path / f"m{seed}.npz")


def test_an_adaptive_plateau_goes_on_across_a_resume_and_a_checkpoint(tmp_path):
    # The plateau falls across the join: 8 + 12 resumed epochs drop the rate
    # where one 20-epoch fit does, and end with its weights.
    X, y, make = _resume_problem()
    kw = dict(mode="batch", lr=1e-5, lr_schedule="adaptive")
    whole = make()
    h_whole = whole.fit(X, y, epochs=20, **kw)
    assert h_whole.lr_drops and h_whole.lr_drops[0] > 8
    parts = make()
    parts.fit(X, y, epochs=8, **kw)
    parts.save(tmp_path / "m.npz")
    resumed = nb.MLP.load(tmp_path / "m.npz")
    h = resumed.fit(X, y, epochs=12, resume=True, **kw)
    assert [8 + e for e in h.lr_drops] == h_whole.lr_drops
    for (W, b), (W2, b2) in zip(whole.params, resumed.params):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
