"""What a resumed fit goes on counting: early stopping's epochs (a + b resumed
epochs stop where one fit does) and a schedule's steps."""

import json
import warnings
import zipfile

import numpy as np
import pytest

import nnbackend as nb


def _problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X.sum(axis=1) > 0).astype(float)
    X_val = rng.normal(size=(60, 3))
    # Noisy validation labels: the validation loss turns up after a few epochs.
    y_val = (X_val.sum(axis=1) + rng.normal(size=60) > 0).astype(float)
    return X, y, (X_val, y_val)


def _fit(model, epochs, restore, validation=True, **kw):
    X, y, val = _problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # batch_size past a small split
        return model.fit(X, y, epochs=epochs, optimizer="adam", lr=0.05, patience=3,
                         restore_best_weights=restore,
                         validation_data=val if validation else None, **kw)


def _make():
    return nb.MLP([3, 8, 1], loss="bce", dtype="float64", seed=0)


def _same_params(a, b):
    for (W, b_), (W2, b2) in zip(a.params, b.params):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b_, b2)


@pytest.mark.parametrize("validation", [True, False])
def test_patience_goes_on_across_a_resume_and_a_checkpoint(tmp_path, validation):
    whole = _make()
    h_whole = _fit(whole, 60, restore=False, validation=validation)
    assert h_whole.stopped_early and 3 < h_whole.epochs < 60
    for cut in (h_whole.best_epoch - 1, h_whole.best_epoch + 1):
        parts = _make()
        first = _fit(parts, cut, restore=False, validation=validation)
        assert not first.stopped_early
        parts.save(tmp_path / "m.npz")
        resumed = nb.MLP.load(tmp_path / "m.npz")
        h = _fit(resumed, 60 - cut, restore=False, validation=validation, resume=True)
        assert h.stopped_early and cut + h.epochs == h_whole.epochs
        # Numbered from the resumed fit's first epoch: 0 or less is an earlier fit's.
        assert h.best_epoch == h_whole.best_epoch - cut
        _same_params(whole, resumed)
        assert resumed.train_state.stopping[2:] == (3, h_whole.best_epoch)


def test_best_weights_the_resumed_fit_started_from_are_restored():
    # The first fit ends at its best validation loss (so it can be resumed);
    # the resumed fit never beats it and goes back to the weights it started from.
    whole = _make()
    h_whole = _fit(whole, 60, restore=True)
    best = h_whole.best_epoch
    parts = _make()
    assert _fit(parts, best, restore=True).best_epoch == best and parts.train_state
    start = [(W.copy(), b.copy()) for W, b in parts.params]
    h = _fit(parts, 60 - best, restore=True, resume=True)
    assert h.stopped_early and best + h.epochs == h_whole.epochs and h.best_epoch == 0
    _same_params(whole, parts)
    for (W, b), (W0, b0) in zip(parts.params, start):
        np.testing.assert_array_equal(W, W0)
    assert "those the resumed fit started from" in h.not_resumable


def test_a_fit_that_stopped_early_stops_again_at_its_first_epoch_without_improvement():
    model = _make()
    h = _fit(model, 60, restore=False)
    assert h.stopped_early and model.train_state.stopping[2] == 3
    again = _fit(model, 10, restore=False, resume=True)
    assert again.stopped_early and again.epochs == 1


def test_another_monitored_loss_starts_the_count_again():
    model = _make()
    _fit(model, 5, restore=False)  # the validation loss
    assert model.train_state.stopping[0] == "val_loss"
    h = _fit(model, 2, restore=False, validation=False, resume=True)
    assert h.best_epoch in (1, 2) and model.train_state.stopping[0] == "loss"


def test_best_weights_an_earlier_fit_did_not_keep_start_the_count_again():
    # Without restore_best_weights the first fit kept its last weights, not its
    # best: a resumed fit that restores has only its own epochs to go back to.
    whole = _make()
    best = _fit(whole, 60, restore=False).best_epoch
    model = _make()
    _fit(model, best + 2, restore=False)
    assert model.train_state.stopping[2] == 2
    h = _fit(model, 30, restore=True, resume=True)
    assert h.best_epoch >= 1


def test_a_fit_without_patience_leaves_no_count():
    model = _make()
    _fit(model, 3, restore=False)
    X, y, _ = _problem()
    model.fit(X, y, epochs=1, optimizer="adam", lr=0.05, resume=True)
    assert model.train_state.stopping is None


@pytest.mark.parametrize("count", [[1, 2], ["accuracy", 0.5, 1, 2], ["loss", "x", 1, 2],
                                   ["loss", 0.5, True, 2]])
def test_a_malformed_count_in_a_checkpoint_is_refused(tmp_path, count):
    model = _make()
    _fit(model, 2, restore=False)
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as f:
        arrays = dict(f)
    header = json.loads(str(arrays["header"]))
    header["train_state"]["stopping"] = count
    arrays["header"] = np.asarray(json.dumps(header))
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    assert zipfile.is_zipfile(bad)
    with pytest.raises(ValueError, match=r"bad\.npz.*early stopping's count"):
        nb.MLP.load(bad)


@pytest.mark.parametrize("best_epoch,marked", [(2, [2]), (0, []), (-3, [])])
def test_the_plot_marks_only_a_best_epoch_of_this_fit(tmp_path, monkeypatch, best_epoch, marked):
    # A resumed fit's best at 0 or before lies outside its curves (epochs 1..n).
    pytest.importorskip("matplotlib", reason="plots need matplotlib (the 'plot' extra)")
    from matplotlib.axes import Axes

    from nnbackend.plot import plot_history

    lines = []
    monkeypatch.setattr(Axes, "axvline", lambda ax, x, **kw: lines.append(x))
    model = _make()
    h = _fit(model, 4, restore=False)
    h.stopped_early, h.best_epoch = True, best_epoch
    plot_history(h, tmp_path / "h.png")
    assert sorted(set(lines)) == marked and (tmp_path / "h.png").exists()


def test_a_schedule_function_counts_the_steps_taken_across_a_resume_with_another_batch_size(
        tmp_path):
    X, y, _ = _problem()
    seen = []

    def factor(count):
        seen.append(int(count))
        return 1.0 / (1.0 + 0.01 * count)

    model = _make()
    model.fit(X, y, epochs=3, batch_size=8, lr=0.05, lr_schedule=factor)
    assert model.train_state.steps_done == 3 * 25
    model.save(tmp_path / "m.npz")
    resumed = nb.MLP.load(tmp_path / "m.npz")
    seen.clear()
    resumed.fit(X, y, epochs=2, batch_size=16, lr=0.05, lr_schedule=factor, resume=True)
    steps = 2 * 13  # ceil(200 / 16) a epoch
    counts = seen[1:]  # (the first call, with 0, checks the function before the fit)
    assert seen[0] == 0 and min(counts) == 75 and max(counts) == 75 + steps - 1
    assert resumed.train_state.steps_done == 75 + steps


def test_invscaling_reads_the_epochs_done_whatever_the_batch_size():
    # 'invscaling' counts samples seen: after 3 epochs, 600 of them, at any batch size.
    X, y, _ = _problem()
    kw = dict(lr=0.05, lr_schedule="invscaling", power_t=0.5)
    model = _make()
    model.fit(X, y, epochs=3, batch_size=8, **kw)
    start = [(W.copy(), b.copy()) for W, b in model.params]
    model.fit(X, y, mode="batch", epochs=1, resume=True, **kw)
    fresh = nb.MLP([3, 8, 1], loss="bce", dtype="float64", params=start)
    fresh.fit(X, y, mode="batch", epochs=1, lr=0.05 * 601 ** -0.5)
    _same_params(model, fresh)
