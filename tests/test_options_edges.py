"""A fit's options, its History record and its progress lines, each at the
edge a one-token slip would move: defaults that must agree between the
entry points, the empty record, the ETA arithmetic and the clock formats."""

import inspect
import io
import os

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.training import EpochProgress, FitOptions, History, progress
from nnbackend.training.loop import epoch_stepper

# What MLP.fit documents as its defaults, option by option.
FIT_DEFAULTS = {
    "mode": "minibatch", "batch_size": 32, "epochs": 100, "lr": 0.1, "optimizer": "sgd",
    "shuffle": True, "seed": None, "progress": False, "chunk_size": "auto",
    "optimizer_options": None, "validation_split": None, "patience": None, "min_delta": 0.0,
    "restore_best_weights": True, "callback": None, "resume": False, "executor": "auto",
    "alpha": 0.0, "lr_schedule": "constant", "power_t": 0.5, "precision": None,
}


def _defaults(function):
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_fit_documents_the_defaults_it_has():
    assert {k: v for k, v in _defaults(nb.MLP.fit).items() if k != "validation_data"} \
        == FIT_DEFAULTS


@pytest.mark.parametrize("entry", [FitOptions.check, epoch_stepper], ids=["check", "stepper"])
def test_every_entry_point_has_fits_defaults(entry):
    # fit passes every option to check() by name, so a check() default that
    # drifted would show only where check() is called without it.
    shared = {k: v for k, v in _defaults(entry).items() if k in FIT_DEFAULTS}
    if entry is epoch_stepper:
        assert shared.pop("chunk_size") is None  # None: leave it to check()
    assert shared and shared == {k: FIT_DEFAULTS[k] for k in shared}


def test_check_with_no_arguments_builds_fits_defaults():
    options = FitOptions.check()
    for name, value in FIT_DEFAULTS.items():
        if name == "optimizer":
            assert options.optimizer.name == "sgd" and options.optimizer_name == "sgd"
            assert options.optimizer.hyper == {"lr": 0.1}
        elif name != "optimizer_options":
            assert getattr(options, name) == value, name


def test_check_takes_a_validation_split_when_no_validation_data_is_given():
    assert FitOptions.check(validation_split=0.25).validation_split == 0.25
    with pytest.raises(ValueError, match="validation_split or validation_data, not both"):
        FitOptions.check(validation_split=0.25, has_validation_data=True)


def test_optimizer_options_on_an_unknown_name_report_the_unknown_name():
    with pytest.raises(ValueError, match="unknown optimizer 'nope'"):
        FitOptions.check(optimizer="nope", optimizer_options={"beta": 0.5})


def test_empty_optimizer_options_go_with_an_optimizer_object():
    opt = nb.optim.momentum(0.05, beta=0.5)
    options = FitOptions.check(optimizer=opt, optimizer_options={})
    assert options.optimizer is opt and options.optimizer_name is None
    with pytest.raises(ValueError, match="Optimizer object carries its own settings"):
        FitOptions.check(optimizer=opt, optimizer_options={"beta": 0.9})


def test_a_callback_that_cannot_be_called_is_refused_before_any_data_moves():
    assert FitOptions.check(callback=print).callback is print
    with pytest.raises(TypeError, match="callback must be a function callback"):
        FitOptions.check(callback="print")
    # fit refuses it with the other options, not after the first epoch.
    model = nb.MLP([2, 1])
    before = [np.array(p) for p in model.flat_params]
    with pytest.raises(TypeError, match="callback must be a function.*got int 3"):
        model.fit(np.zeros((4, 2)), np.zeros(4), epochs=1, callback=3)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.flat_params))


def test_a_new_history_is_an_empty_record():
    hist = History()
    assert (hist.loss, hist.accuracy, hist.val_loss, hist.val_accuracy, hist.lr_drops) \
        == ([], [], [], [], [])
    assert (hist.mode, hist.batch_size, hist.n_samples, hist.epochs) == ("minibatch", 0, 0, 0)
    assert hist.best_epoch is None and hist.stopped_early is False and hist.diverged is None
    assert (hist.executor, hist.executor_reason) == ("reference", "")
    assert hist.last() == {}
    # Each record has its own lists.
    hist.loss.append(1.0)
    assert History().loss == []


def test_a_plain_fit_records_no_stop_no_divergence_and_no_best_epoch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    hist = nb.MLP([2, 1], loss="bce", seed=0).fit(X, (X[:, 0] > 0) * 1.0, epochs=3,
                                                     batch_size=8)
    assert hist.best_epoch is None and hist.stopped_early is False and hist.diverged is None
    assert (hist.mode, hist.batch_size, hist.n_samples, hist.epochs) == ("minibatch", 8, 30, 3)
    assert hist.last() == {"loss": hist.loss[-1], "accuracy": hist.accuracy[-1]}


@pytest.mark.parametrize("seconds, text", [
    (0.04, "0.0s"), (59.94, "59.9s"), (60, "1:00"), (61.4, "1:01"), (3599.4, "59:59"),
    (3600, "1:00:00"), (3725, "1:02:05"), (36061, "10:01:01"),
])
def test_times_read_as_seconds_then_minutes_then_hours(seconds, text):
    assert progress._seconds(seconds) == text


def _clock(monkeypatch, times):
    """perf_counter() returns ``times`` in turn."""
    ticks = iter(times)
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(ticks))


def test_each_line_gives_the_elapsed_time_and_the_time_left(monkeypatch):
    # Started at 100 s; epoch 1 done at 102 s, epoch 3 at 106 s, of 5.
    _clock(monkeypatch, [100.0, 102.0, 106.0, 110.0])
    stream = io.StringIO()
    bar = EpochProgress(5, stream, max_lines=5)
    bar.update(1, {"loss": 0.5})
    bar.update(3, {"loss": 0.25})
    bar.update(5, {"loss": 0.125})
    assert stream.getvalue().splitlines() == [
        "epoch 1/5  loss 0.5  [2.0s, ETA 8.0s]",       # 2 s an epoch, 4 to go
        "epoch 3/5  loss 0.25  [6.0s, ETA 4.0s]",
        "epoch 5/5  loss 0.125  [10.0s]",
    ]


@pytest.mark.parametrize("total, max_lines, printed", [
    (5, None, [1, 2, 3, 4, 5]),      # one line per epoch
    (5, 10, [1, 2, 3, 4, 5]),        # more lines allowed than epochs
    (10, 4, [1, 3, 6, 9, 10]),       # every ceil(10 / 4) = 3 epochs, and the last
    (7, 7, [1, 2, 3, 4, 5, 6, 7]),
])
def test_plain_lines_come_every_ceil_total_over_max_lines_epochs(total, max_lines, printed):
    stream = io.StringIO()
    bar = EpochProgress(total, stream, max_lines=max_lines)
    for epoch in range(1, total + 1):
        bar.update(epoch, {"loss": 1.0})
    assert [int(l.split()[1].split("/")[0]) for l in stream.getvalue().splitlines()] == printed


def test_after_close_updates_write_nothing_and_a_second_close_is_harmless():
    stream = io.StringIO()
    bar = EpochProgress(3, stream)
    bar.update(1, {"loss": 1.0})
    bar.close()
    bar.update(2, {"loss": 0.5})
    bar.close()
    assert stream.getvalue().count("\n") == 1


def test_the_bar_is_closed_once(monkeypatch):
    pytest.importorskip("tqdm.auto", reason="tqdm is not installed (a dependency of nnbackend)")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    bar = EpochProgress(3, Terminal())
    closes = []
    monkeypatch.setattr(bar.bar, "close", lambda: closes.append(1))
    bar.close()
    bar.close()
    assert closes == [1]


def test_a_terminal_that_reports_no_size_gets_80_by_24():
    pty = pytest.importorskip("pty", reason="pseudo-terminals need a POSIX system")
    master, slave = pty.openpty()  # a new pseudo-terminal reports 0 columns
    try:
        with open(slave, "w", closefd=False) as stream:
            assert progress._fixed_size(stream) == {"ncols": 80, "nrows": 24}
    finally:
        os.close(master)
        os.close(slave)


def test_a_stream_that_is_no_terminal_follows_the_width():
    assert progress._fixed_size(io.StringIO()) == {"dynamic_ncols": True}


def test_options_once_checked_cannot_be_changed():
    import dataclasses

    options = FitOptions.check()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.epochs = 5


def test_a_stream_without_isatty_gets_plain_lines():
    class Writer:  # a file-like object with write and flush only
        def __init__(self):
            self.parts = []

        def write(self, text):
            self.parts.append(text)

        def flush(self):
            pass

    stream = Writer()
    bar = EpochProgress(2, stream)
    assert bar.bar is None
    bar.update(2, {"loss": 0.5})
    assert "".join(stream.parts).startswith("epoch 2/2  loss 0.5")


def test_the_bar_is_not_redrawn_for_every_fast_epoch():
    # The figures go in without a redraw; tqdm redraws at most every 0.1 s,
    # so 200 epochs done in a few milliseconds draw a handful of frames.
    pytest.importorskip("tqdm.auto", reason="tqdm is not installed (a dependency of nnbackend)")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = EpochProgress(200, stream)
    for epoch in range(1, 201):
        bar.update(epoch, {"loss": 1.0 / epoch})
    bar.close()
    frames = stream.getvalue().count("\r")
    assert 1 <= frames < 50, frames
    assert "200/200" in stream.getvalue()


@pytest.mark.parametrize("schedule,message", [
    (lambda t: "x", r"lr_schedule\(0\) raised ValueError"),
    (lambda: 1.0, r"lr_schedule\(0\) raised TypeError"),
    (lambda t: float("nan"), r"lr_schedule\(0\) must be a finite number >= 0 .*; got nan"),
    (lambda t: -1.0, r"lr_schedule\(0\) must be a finite number >= 0 .*; got -1.0"),
])
def test_a_schedule_function_is_checked_once_before_the_fit(schedule, message):
    X, y = np.random.default_rng(0).random((8, 2)), np.arange(8) % 2
    model = nb.MLP([2, 1])
    before = [np.array(p) for pair in model.params for p in pair]
    with pytest.raises(ValueError, match=message):
        model.fit(X, y, epochs=1, lr_schedule=schedule)
    assert all(np.array_equal(a, np.array(p))
               for a, p in zip(before, [p for pair in model.params for p in pair]))


def test_divergence_names_the_rate_of_the_optimizer_that_ran():
    X = np.random.default_rng(0).random((16, 2)) * 10
    y = (np.arange(16) % 2) * 1e4
    model = nb.MLP([2, 4, 1], output_activation="identity", loss="mse")
    with pytest.warns(nb.DivergenceWarning, match=r"\(lr=5.0 may be too large\)"):
        model.fit(X, y, mode="batch", epochs=20, optimizer=nb.optim.sgd(5.0), lr=0.001)


def test_rates_the_model_dtype_cannot_hold_are_refused():
    X, y = np.random.default_rng(0).random((8, 2)), np.arange(8) % 2
    with pytest.raises(ValueError, match=r"lr=1e-320 is 0 in float32"):
        nb.MLP([2, 1]).fit(X, y, epochs=1, lr=1e-320)
    with pytest.raises(ValueError, match=r"alpha=1e\+300 is past float32's largest number"):
        nb.MLP([2, 1]).fit(X, y, epochs=1, alpha=1e300)
    nb.MLP([2, 1], dtype="float64").fit(X, y, epochs=1, lr=1e-320)  # float64 holds it


def test_an_adam_eps_that_is_0_in_the_model_dtype_is_refused_not_turned_into_nan():
    # A constant feature's weights have a zero gradient, so Adam's first step
    # is 0 / (0 + eps*sqrt(1 - b2)): NaN where that epsilon underflows to 0.
    X = np.random.default_rng(0).normal(size=(16, 3))
    X[:, 2] = 0.0
    y = (X[:, 0] > 0) * 1.0
    fit = dict(epochs=2, lr=0.01, mode="batch")
    for optimizer, options in (("adam", {"eps": 1e-44}), (nb.optim.adam(0.01, eps=1e-44), None)):
        with pytest.raises(ValueError, match=r"Adam's eps=1e-44 is 0 in float32.*smallest value"):
            nb.MLP([3, 4, 1], seed=0).fit(X, y, optimizer=optimizer,
                                          optimizer_options=options, **fit)
    with pytest.raises(ValueError, match="eps=1e-43 is 0 in float32"):  # sqrt(1 - b2) = 1e-4
        nb.MLP([3, 4, 1], seed=0).fit(X, y, optimizer="adam",
                                      optimizer_options={"eps": 1e-43, "b2": 1 - 1e-8}, **fit)
    for dtype, eps in (("float32", 1e-43), ("float64", 1e-44)):  # held: a finite fit
        hist = nb.MLP([3, 4, 1], seed=0, dtype=dtype).fit(
            X, y, optimizer="adam", optimizer_options={"eps": eps}, **fit)
        assert np.all(np.isfinite(hist.loss)) and len(hist.loss) == 2


def test_divergence_with_a_penalty_names_alpha_too():
    X, y = np.random.default_rng(0).random((16, 2)), np.arange(16) % 2
    with pytest.warns(nb.DivergenceWarning, match=r"\(lr=0.1, or alpha=1e\+36, may be too large\)"):
        nb.MLP([2, 4, 1]).fit(X, y, mode="batch", epochs=30, alpha=1e36)


def test_flags_take_numpys_bools_and_whole_numbers_as_they_take_0_and_1():
    from nnbackend.checks import check_flag

    for value, want in ((np.False_, False), (np.True_, True), (np.int64(1), True), (0, False)):
        assert check_flag("shuffle", value) is want
    for value in (np.float64(0.0), 0.0, "no", 2, np.int64(2), None):
        with pytest.raises(TypeError, match="shuffle must be True or False"):
            check_flag("shuffle", value)
