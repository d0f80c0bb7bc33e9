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


def _edited(tmp_path, edit, optimizer="adam", **fit):
    model = _make()
    X, y, val = _problem()
    model.fit(X, y, epochs=4, optimizer=optimizer, lr=0.05, validation_data=val, **fit)
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as f:
        arrays = dict(f)
    header = json.loads(str(arrays["header"]))
    edit(header)
    arrays["header"] = np.asarray(json.dumps(header))
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    assert zipfile.is_zipfile(bad)
    return bad


def _set(key, value):
    def edit(header):
        header["train_state"][key] = value
    return edit


_PATIENCE = dict(patience=3, restore_best_weights=False)


@pytest.mark.parametrize("edit, fit, message", [
    (_set("stopping", [1, 2]), _PATIENCE, "early stopping count"),
    (_set("stopping", ["accuracy", 0.5, 1, 2]), _PATIENCE, "early stopping count"),
    (_set("stopping", ["loss", "x", 1, 2]), _PATIENCE, "early stopping count"),
    (_set("stopping", ["loss", float("nan"), 1, 2]), _PATIENCE, "early stopping count"),
    (_set("stopping", ["loss", float("-inf"), 1, 2]), _PATIENCE, "early stopping count"),
    (_set("stopping", ["loss", 0.5, -7, 2]), _PATIENCE, "epochs waited -7 is not a whole"),
    (_set("stopping", ["loss", 0.5, 2.9, 2]), _PATIENCE, "epochs waited 2.9 is not a whole"),
    (_set("stopping", ["loss", 0.5, True, 2]), _PATIENCE, "epochs waited True is not a whole"),
    (_set("stopping", ["loss", 0.5, 1, 1000]), _PATIENCE, "best epoch 1000 is not one of its 4"),
    (_set("steps_done", -5), {}, "steps_done -5 is not a whole"),
    (_set("steps_done", 2), {}, "steps_done 2 is fewer than its 4 epochs"),
    (_set("samples_seen", -1), {}, "samples_seen -1 is not a whole"),
    (_set("epochs_done", -5), {}, "epochs_done -5 is not a whole"),
    (_set("epochs_done", 2.5), {}, "epochs_done 2.5 is not a whole"),
    (_set("lr_scale", -5), {}, r"lr_scale -5 is not a factor in \(0, 1\]"),
    (_set("lr_scale", 1e30), {}, r"lr_scale 1e\+30 is not a factor"),
    (_set("lr_scale", float("nan")), {}, "lr_scale nan is not a factor"),
    (_set("split_seed", -5), {}, "split_seed -5 is not a whole"),
    (_set("split_seed", 2.5), {}, "split_seed 2.5 is not a whole"),
    (_set("plateau", [float("nan"), 1]), {}, "'adaptive' plateau"),
    (_set("plateau", [0.5, -3]), {}, "plateau's epochs waited -3"),
    (_set("plateau", [0.5, 1, 2]), {}, "'adaptive' plateau"),
    (_set("optimizer", ["adam"]), {}, r"unknown optimizer \['adam'\]"),
    (_set("state_scalars", 5), {}, "its adam state"),
    (_set("state_scalars", {"count": -3}), {}, "its optimizer count -3 is not a whole"),
    (_set("state_scalars", {"count": float("nan")}), {}, "optimizer count nan"),
    (_set("state_scalars", {"count": "x"}), {}, "optimizer count 'x'"),
    (_set("state_fields", {"mu": 4}), {}, "its adam state"),
    (_set("train_state_junk", 1), {}, None),  # an unknown key is a later writer's: ignored
    (lambda h: h.__setitem__("train_state", [1]), {}, "training state is not a JSON object"),
    (lambda h: h.__setitem__("metadata", [1]), {}, "its metadata is not a JSON object"),
    (lambda h: h.__setitem__("scaling", "x"), {}, "its scaling is not a JSON object"),
])
def test_an_edited_header_is_refused_naming_the_file(tmp_path, edit, fit, message):
    bad = _edited(tmp_path, edit, **fit)
    if message is None:
        nb.MLP.load(bad)
        return
    with pytest.raises(ValueError, match=rf"bad\.npz is not a usable nnbackend checkpoint: .*"
                                         rf"{message}"):
        nb.MLP.load(bad)


def test_a_non_finite_optimizer_state_is_refused(tmp_path):
    model = _make()
    X, y, _ = _problem()
    model.fit(X, y, epochs=2, optimizer="adam", lr=0.05)
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as f:
        arrays = dict(f)
    arrays["opt_mu_0"] = np.full_like(arrays["opt_mu_0"], np.nan)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"bad\.npz .*optimizer state holds NaN or infinity"):
        nb.MLP.load(tmp_path / "bad.npz")


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


def _counting_schedule():
    """A schedule function that lists the counts it is called with."""
    seen = []

    def factor(count):
        seen.append(int(count))
        return 1.0 / (1.0 + 0.01 * count)

    return factor, seen


def test_a_schedule_function_counts_the_steps_taken_across_a_resume_with_another_batch_size(
        tmp_path):
    X, y, _ = _problem()
    factor, seen = _counting_schedule()
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


def test_the_steps_taken_survive_a_fit_of_another_schedule_between():
    X, y, _ = _problem()
    factor, seen = _counting_schedule()
    model = _make()
    model.fit(X, y, epochs=3, batch_size=8, lr=0.05, lr_schedule=factor)  # 75 steps
    model.fit(X, y, epochs=1, batch_size=100, lr=0.05, resume=True)  # 2 more, constant
    assert model.train_state.steps_done == 77
    seen.clear()
    model.fit(X, y, epochs=1, batch_size=8, lr=0.05, lr_schedule=factor, resume=True)
    assert min(seen[1:]) == 77 and max(seen[1:]) == 77 + 24
    assert model.train_state.steps_done == 77 + 25


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


def test_invscaling_goes_on_from_the_samples_seen_whatever_the_rows(tmp_path):
    # 3 epochs of 200 rows, then a resumed fit on 100 of them: t = 600 samples seen.
    X, y, _ = _problem()
    kw = dict(lr=0.05, lr_schedule="invscaling", power_t=0.5)
    model = _make()
    model.fit(X, y, epochs=3, batch_size=8, **kw)
    assert model.train_state.samples_seen == 600
    model.save(tmp_path / "m.npz")
    model = nb.MLP.load(tmp_path / "m.npz")
    start = [(W.copy(), b.copy()) for W, b in model.params]
    model.fit(X[:100], y[:100], mode="batch", epochs=1, resume=True, **kw)
    assert model.train_state.samples_seen == 700
    fresh = nb.MLP([3, 8, 1], loss="bce", dtype="float64", params=start)
    fresh.fit(X[:100], y[:100], mode="batch", epochs=1, lr=0.05 * 601 ** -0.5)
    _same_params(model, fresh)


def test_saving_through_a_symlink_keeps_the_link(tmp_path):
    model = _make()
    (tmp_path / "run1.npz").write_bytes(b"old")
    (tmp_path / "latest.npz").symlink_to("run1.npz")
    model.save(tmp_path / "latest.npz")
    assert (tmp_path / "latest.npz").is_symlink()
    assert nb.MLP.load(tmp_path / "run1.npz").layer_sizes == [3, 8, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.npz", "run1.npz"]


def test_saving_over_what_is_not_a_regular_file_is_refused(tmp_path):
    # Renaming over a device (/dev/null, as root), a FIFO or a directory would replace it.
    import os

    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    (tmp_path / "dir.npz").mkdir()
    for target in (fifo, tmp_path / "dir.npz"):
        with pytest.raises(ValueError, match=r"cannot write checkpoint .*: it exists and is not "
                                             "a regular file"):
            _make().save(target)
    assert fifo.is_fifo() and (tmp_path / "dir.npz").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.npz", "pipe.npz"]



def test_why_a_fit_cannot_be_resumed_survives_a_checkpoint(tmp_path):
    X, y, _ = _problem()
    model = _make()
    model.fit(X, y, epochs=2, optimizer=nb.adam(0.01))  # an Optimizer object: no state kept
    model.save(tmp_path / "m.npz")
    loaded = nb.MLP.load(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="no earlier fit to resume: an Optimizer object's state"):
        loaded.fit(X, y, epochs=1, resume=True)


def test_resuming_a_named_optimizer_with_an_optimizer_object_says_so():
    X, y, _ = _problem()
    model = _make()
    model.fit(X, y, epochs=1, optimizer="adam", lr=0.01)
    with pytest.raises(ValueError, match="used optimizer 'adam', this one asks for an Optimizer "
                                         "object"):
        model.fit(X, y, epochs=1, optimizer=nb.adam(0.01), resume=True)


def test_adaptives_plateau_keeps_its_monitored_loss_across_a_checkpoint(tmp_path):
    X, y, _ = _problem()
    kw = dict(mode="batch", lr=1e-5, lr_schedule="adaptive")
    model = _make()
    model.fit(X, y, epochs=8, **kw)  # the training loss's plateau
    assert model.train_state.plateau[1:] == (7, "loss")  # (the first epoch sets the best)
    model.save(tmp_path / "m.npz")
    carried = nb.MLP.load(tmp_path / "m.npz")
    fresh = nb.MLP.load(tmp_path / "m.npz")
    fresh.train_state.plateau = None
    hists = [m.fit(X, y, epochs=12, validation_split=0.3, resume=True, **kw)
             for m in (carried, fresh)]
    assert hists[0].lr_drops == hists[1].lr_drops
    _same_params(carried, fresh)
    assert carried.train_state.plateau[2] == "val_loss"


def test_a_carried_plateau_counts_on_for_its_own_loss_alone():
    from nnbackend.training.schedule import AdaptiveRate

    same = AdaptiveRate(0.1, plateau=(0.1, 7, "loss"))
    same.after_epoch({"loss": 0.5})
    assert (same.best, same.waited) == (0.1, 8)
    other = AdaptiveRate(0.1, plateau=(0.1, 7, "val_loss"))
    other.after_epoch({"loss": 0.5})  # a training loss against a validation loss's best
    assert (other.best, other.waited, other.plateau[2]) == (0.5, 0, "loss")
    legacy = AdaptiveRate(0.1, plateau=(0.1, 7))  # a checkpoint of before the monitor was kept
    legacy.after_epoch({"loss": 0.5})
    assert legacy.waited == 8


def test_a_bytes_path_saves_and_loads(tmp_path):
    path = bytes(tmp_path / "m.npz")
    _make().save(path)
    assert nb.MLP.load(path).layer_sizes == [3, 8, 1]


def test_paths_no_file_can_be_written_at_are_named(tmp_path):
    from nnbackend.checks import replace_target

    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(ValueError, match="its symbolic links form a loop"):
        replace_target(tmp_path / "a", "checkpoint")
    with pytest.raises(ValueError, match="the path is empty"):
        replace_target("", "checkpoint")
    (tmp_path / "dangling").symlink_to(tmp_path / "new.npz")
    assert replace_target(tmp_path / "dangling") == str(tmp_path / "new.npz")


def test_the_umask_is_read_without_being_set(monkeypatch):
    # Setting it, even for a moment, would give another thread's new file that mask.
    import os
    import sys

    from nnbackend.checks import current_umask

    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/status, which Linux has")
    old = os.umask(0o027)
    try:
        def refuse(mask):
            raise AssertionError("os.umask was called")

        monkeypatch.setattr(os, "umask", refuse)
        assert current_umask() == 0o027
    finally:
        monkeypatch.undo()
        os.umask(old)
