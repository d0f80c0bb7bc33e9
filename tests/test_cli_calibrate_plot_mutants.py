"""Tests from the mutation audit of the command line, the calibration and the
loss plots (benchmarks/results/mutation-2026-12-07l/, the 07l audit).

Each test names in a comment the mutants it kills (ids of the audit's tables)
and what went wrong under them. Nothing here measures a machine: the
calibration's fits and BLAS timings are stand-ins, and the CLI runs
in-process (``cli.main``) on a few rows. An id marked * was written but not
run against the existing tests in the audit's time: this file kills it
(verified), but whether the existing tests did too is not known. "(killed
before)" marks an id the existing tests already killed.
"""

import os
import struct

import numpy as np
import pytest

import nnbackend as nb
from conftest import cli_refusal
from nnbackend import calibrate as cal
from nnbackend import cli
from nnbackend.training.history import History


# -- the loss plots -----------------------------------------------------------------------


def _plot():
    """nnbackend.plot, or a skip where matplotlib (the 'plot' extra) is missing."""
    from nnbackend import plot

    try:
        plot.require_matplotlib()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    return plot


def _drawn(monkeypatch, hist, title=None):
    """The figure plot_history draws for ``hist`` (kept, not written)."""
    plot = _plot()
    figures = []
    monkeypatch.setattr(plot, "save_figure", lambda plt, fig, path, fmt: figures.append(fig))
    plot.plot_history(hist, "curves.png", title=title)
    assert len(figures) == 1
    return figures[0]


def _classifier_history(**changes):
    fields = dict(loss=[0.9, 0.5, 0.3], accuracy=[0.5, 0.7, 0.8], val_loss=[1.0, 0.6, 0.4],
                  val_accuracy=[0.4, 0.6, 0.7], mode="minibatch", batch_size=16, epochs=3)
    return History(**{**fields, **changes})


def test_an_upper_case_extension_names_the_plots_format():
    # P01 (the extension not lowered): "LOSS.PNG" was refused as no format matplotlib writes.
    plot = _plot()
    assert plot.plot_format("LOSS.PNG") == "png" and plot.plot_format("a.Svg") == "svg"


def test_a_classifiers_curves_start_at_epoch_1_in_two_panels(monkeypatch):
    # P05 (epochs from 0: every curve one epoch early), P07 (two panels in one
    # panel's width), P12 (the accuracy axis not fixed to 0..1.02), P15 (the
    # title asked for ignored), P19 (the validation curve left out), P22 (no
    # legend on the panels).
    fig = _drawn(monkeypatch, _classifier_history(), title="moons: [2, 8, 1], minibatch")
    loss, accuracy = fig.axes
    assert tuple(fig.get_size_inches()) == pytest.approx((11.0, 4.0))
    assert fig._suptitle.get_text() == "moons: [2, 8, 1], minibatch"
    for ax, train, val in ((loss, [0.9, 0.5, 0.3], [1.0, 0.6, 0.4]),
                           (accuracy, [0.5, 0.7, 0.8], [0.4, 0.6, 0.7])):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {"train", "validation"}
        assert list(lines["train"].get_xdata()) == [1, 2, 3]
        assert list(lines["train"].get_ydata()) == train
        assert list(lines["validation"].get_ydata()) == val
        assert ax.get_legend() is not None
    assert accuracy.get_ylim() == pytest.approx((0, 1.02))
    assert loss.get_yscale() == "log"  # every loss > 0


def test_a_regressions_curves_are_one_panel_with_the_default_title(monkeypatch):
    # P06 (always two panels: an empty accuracy panel beside a regression's loss).
    fig = _drawn(monkeypatch, History(loss=[2.0, 1.0], mode="batch", batch_size=40, epochs=2))
    assert len(fig.axes) == 1
    assert tuple(fig.get_size_inches()) == pytest.approx((5.5, 4.0))
    assert fig._suptitle.get_text() == "batch descent, batch size 40"


def test_the_loss_axis_is_logarithmic_only_over_positive_finite_losses(monkeypatch):
    # P09 (a loss of 0 taken for positive: a log axis that cannot show it),
    # P10 (a NaN epoch counted: min() of [nan, ...] is nan, and the positive
    # losses after it were drawn on a linear axis).
    zero = _drawn(monkeypatch, History(loss=[1.0, 0.0], epochs=2))
    assert zero.axes[0].get_yscale() == "linear"
    nan_first = _drawn(monkeypatch, History(loss=[float("nan"), 1.0, 0.5], epochs=3))
    assert nan_first.axes[0].get_yscale() == "log"


def test_a_plot_of_no_epoch_says_so(monkeypatch):
    # P11 (the "no epoch completed" note dropped: an empty axis and no word why).
    fig = _drawn(monkeypatch, History(diverged="diverged in epoch 1"))
    assert [t.get_text() for t in fig.axes[0].texts] == ["no epoch completed"]


def test_only_a_fit_that_stopped_early_marks_its_best_epoch(monkeypatch):
    # P14 (stopped_early not asked: a best epoch recorded by a fit that ran
    # all its epochs was drawn as "kept").
    ran_out = _drawn(monkeypatch, _classifier_history(best_epoch=2, stopped_early=False))
    assert all(line.get_label() in ("train", "validation") for ax in ran_out.axes
               for line in ax.get_lines())
    stopped = _drawn(monkeypatch, _classifier_history(best_epoch=2, stopped_early=True))
    assert {line.get_label() for line in stopped.axes[0].get_lines()} == {
        "train", "validation", "kept: epoch 2"}


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_a_png_plot_is_written_at_100_dpi_in_the_named_format(tmp_path):
    # P16 (killed before: savefig without format= reads the format off the
    # temporary name, "loss.png.tmp-PID", and refuses it), P21 (50 dpi: half the pixels).
    plot = _plot()
    plot.plot_history(_classifier_history(), tmp_path / "loss.png")
    assert _png_size(tmp_path / "loss.png") == (1100, 400)
    plot.plot_history(_classifier_history(), tmp_path / "loss.pdf")
    assert (tmp_path / "loss.pdf").read_bytes()[:4] == b"%PDF"


def test_a_plot_that_cannot_be_written_is_a_valueerror_and_leaves_no_file(tmp_path,
                                                                          monkeypatch):
    # P17 (the temporary file kept after a failed write), P23 (the OSError not
    # turned into the ValueError the CLI and the docstring promise).
    plot = _plot()
    from matplotlib.figure import Figure

    def half_written(fig, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(ValueError, match="cannot write plot .*No space left on device"):
        plot.plot_history(_classifier_history(), tmp_path / "loss.png")
    assert os.listdir(tmp_path) == []


def test_a_plot_through_a_symbolic_link_replaces_its_target_and_keeps_the_link(tmp_path):
    # P18 (the link itself renamed over: the link was replaced by a plain file
    # and its target kept its old contents).
    plot = _plot()
    target = tmp_path / "real.png"
    target.write_bytes(b"old")
    link = tmp_path / "loss.png"
    link.symlink_to(target)
    plot.plot_history(_classifier_history(), link)
    assert link.is_symlink() and target.read_bytes()[:4] == b"\x89PNG"


# -- the calibration ----------------------------------------------------------------------


def test_the_data_of_a_cross_entropy_net_are_class_labels():
    # C01 (killed before: every net given 0/1 targets: the softmax "deep" net was timed on
    # multi-label rows of ten 0/1 columns, not on the class labels its fits take).
    sizes, _, _, loss = cal._NETS["deep"]
    X, y = cal._data(sizes, loss, 50, 0)
    assert X.shape == (50, 64) and X.dtype == np.float32
    assert y.shape == (50,) and set(np.unique(y)) <= set(range(10))
    X, y = cal._data(*cal._NETS["small"][::3], 20, 0)
    assert y.shape == (20, 1) and set(np.unique(y)) <= {0.0, 1.0}


def test_the_quicker_of_two_fits_is_kept(monkeypatch):
    # C03 (the slower of the two kept), C04 (one fit, not two; killed before).
    times = iter([0.3, 0.1, 0.2])
    monkeypatch.setattr(cal, "_timed_fit", lambda *args: (next(times), "reference"))
    assert cal._quicker_fit(None, None, None, "sgd", 1, 1) == 0.1
    assert next(times) == 0.2  # two fits timed, not more


@pytest.mark.parametrize("seconds, k", [(1.0, 2), (0.05, 3), (1e-3, 128), (0.0, 128),
                                        (-1e-3, 128)])
def test_a_warm_fit_runs_2_to_128_later_epochs(seconds, k):
    # C05 (at least 1, not 2: an epoch of a second gave k = 1), C06 (max for
    # min: always at least 128), C07 (no floor under the epoch's time: a rough
    # epoch of 0 s divided by zero, and a negative one, where the longer warm fit
    # timed no slower than the one-epoch fit, gave k = 2, not 128).
    assert cal._epochs_for(seconds) == k


@pytest.mark.parametrize("mode, batch, rows", [("sgd", 16, 1), ("batch", 0, 256),
                                                ("minibatch", 16, 16)])
def test_a_points_workload_has_the_rows_per_step_the_mode_runs(monkeypatch, mode, batch, rows):
    # C12 (an sgd point's workload priced at the batch size passed, 16, where sgd
    # steps one row at a time; only a direct call passes one: POINTS' sgd rows say 1).
    monkeypatch.setattr(cal, "_timed_fit",
                        lambda model, X, y, mode, batch, epochs: (0.01 + 1e-3 * epochs, "ref"))
    point = cal.measure_point(nb.get_backend("numpy"), mode, "small", 256, batch)
    assert point["workload"].batch_size == rows and point["workload"].n_samples == 256


def _point(compile_s, n=1000, executor="reference", layers=(16, 32, 1), epoch=None):
    work = cal.Workload(tuple(layers), n, "minibatch", 16, 1)
    return {"epoch": 1e-6 * n if epoch is None else epoch, "setup": 1e-3,
            "compile": compile_s, "executor": executor, "workload": work, "rows": 4096}


def test_compile_times_below_5_ms_are_noise_and_the_fit_covers_every_compile():
    # C15 (the noise floor at 0.5 ms: 1 to 3 ms of noise became compile terms),
    # C16 (the compile fit not scaled up to cover the slowest point: auto counted
    # on the quick compiles), C17 (a point that compiled nothing, 0 s, passed to
    # the non-negative fit, which refuses a time of 0).
    noise = cal.fit_terms([_point(c, n) for c, n in ((1e-3, 500), (3e-3, 1000), (2e-3, 2000))])
    assert noise.compile_s == 0.0 and noise.compile_layer_s == 0.0
    points = [_point(c, n, layers=layers) for c, n, layers in (
        (0.4, 500, (16, 32, 1)), (1.2, 1000, (16, 32, 1)), (0.0, 2000, (16, 32, 32, 1)),
        (0.9, 4000, (16, 32, 32, 1)))]
    terms = cal.fit_terms(points)
    for p in points:
        features = cal.compile_features(p["workload"])
        priced = terms.compile_s * features[0] + terms.compile_layer_s * features[1]
        assert priced >= p["compile"] * 0.999


def test_a_groups_relative_error_is_kept_to_4_decimals():
    # C19 (the fit's relative error kept to every digit in the profile).
    points = [_point(0.0, n, epoch=1e-6 * n * (1 + 0.0123457 * (-1) ** n))
              for n in (500, 1001, 2000, 4001)]
    err = cal.fit_terms(points).rel_error
    assert err > 0 and err == round(err, 4)


def _blas_stub(monkeypatch, threads, speedups=None):
    """measure_blas on ``threads`` BLAS threads whose products (one a size) are
    ``speedups`` times quicker on them; the thread counts set, in order."""
    import contextlib

    limits = []
    monkeypatch.setattr(cal.blas, "available", lambda: True)
    monkeypatch.setattr(cal.blas, "current_threads", lambda: threads)
    monkeypatch.setattr(cal.blas, "limit",
                        lambda n: limits.append(n) or contextlib.nullcontext())
    times = iter(t for s in speedups or () for t in (1.0, 1.0 / s))
    monkeypatch.setattr(cal, "_best_seconds", lambda f: next(times))
    return limits


def test_the_blas_threshold_is_the_first_size_from_which_every_larger_gains(monkeypatch):
    # C26 (both timings on the library's count: no one-thread baseline), C27*
    # (any for all: the first size whose any later product gains), C28* (every
    # product for the ones from this size on: a small size that gains nothing
    # left no threshold), C29* (gain 1.0 for 1.15: threads that gain 0 counted).
    limits = _blas_stub(monkeypatch, 4, [1.0, 1.2, 1.1, 1.3, 1.3, 1.3, 1.3])
    section = cal.measure_blas()
    assert limits == [1, 4] * 7
    assert section["threads"] == 4 and len(section["measured"]) == 7
    assert section["threshold_madds"] == 256 * 256 * 256


def test_one_blas_thread_or_an_unknown_count_is_not_timed(monkeypatch):
    # C23 (an unknown thread count, None, compared with 1: TypeError), C24 (one
    # thread timed against itself, a threshold measured from noise).
    limits = _blas_stub(monkeypatch, 1)
    assert cal.measure_blas() == {"threshold_madds": None, "threads": 1, "measured": [],
                                  "note": "the BLAS runs one thread here"}
    _blas_stub(monkeypatch, None)
    assert cal.measure_blas()["threshold_madds"] == 2 ** 25
    assert limits == []


def test_a_quick_run_plans_3_points_a_group_round_robin_and_a_whole_run_6():
    # C30* (three points a group whatever quick said).
    candidates = [("a:cpu", "A"), ("b:cpu", "B")]
    whole = cal._plan(candidates, ("sgd", "batch"), quick=False)
    assert len(whole) == 24 and [item[:2] for item in whole[:4]] == [
        ("a:cpu", "A"), ("a:cpu", "A"), ("b:cpu", "B"), ("b:cpu", "B")]
    assert [item[2] for item in whole[:4]] == ["sgd", "batch", "sgd", "batch"]
    assert len(cal._plan(candidates, ("sgd", "batch"), quick=True)) == 12


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _stub_calibration(monkeypatch, executor_of=lambda seed: "reference", step=0.0):
    """calibrate() without measuring: each planned point (seed > 0) takes ``step``
    seconds of a fake clock; the points measured, as (mode, n, seed)."""
    clock, seen = _Clock(), []
    monkeypatch.setattr(cal.time, "perf_counter", clock)
    monkeypatch.setattr(cal, "measure_blas",
                        lambda say, **kw: {"threshold_madds": None, "threads": 1})
    monkeypatch.setattr(cal, "_tiny_fit_seconds", lambda backend, n: 0.0)

    def measure(backend, mode, net, n, batch, seed=0):
        from nnbackend.autoselect import active_profile

        seen.append((mode, n, seed, dict(active_profile().blas)))
        clock.now += step if seed else 0.0
        sizes = cal._NETS[net][0]
        work = cal.Workload(tuple(sizes), n, mode, {"batch": n, "sgd": 1}.get(mode, batch), 1)
        return {"epoch": 1e-3 * n / 100, "setup": 1e-3, "compile": 0.0,
                "executor": executor_of(seed), "rows": 64, "workload": work}

    monkeypatch.setattr(cal, "measure_point", measure)
    return seen


def test_the_fits_run_under_one_blas_thread_and_the_profile_is_restored(monkeypatch):
    # C34* (the fits priced under the default's BLAS section, not one thread),
    # C39* (the calibration's own profile left set after it: every later auto
    # choice in the process used it).
    from nnbackend.autoselect import Profile, set_profile

    seen = _stub_calibration(monkeypatch)
    mine = Profile({}, {"threshold_madds": 7, "threads": 3}, "mine")
    set_profile(mine)
    try:
        cal.calibrate(keys=["numpy"], modes=("sgd",), quick=True, progress=None)
    finally:
        assert set_profile(None) is mine
    assert seen and all(blas == {"threshold_madds": None, "threads": 1}
                        for *_, blas in seen)


def test_the_time_budget_stops_the_points_and_a_group_of_one_point_is_not_measured(
        monkeypatch):
    # C40* (the budget not checked between points: every point measured),
    # C50* (a group of too few points, no terms, still entered with none).
    _stub_calibration(monkeypatch, step=10.0)
    said = []
    profile = cal.calibrate(budget_s=25, keys=["numpy"], modes=("sgd",), progress=said.append)
    assert profile.candidates["numpy:cpu"]["sgd"].points == 3
    assert "time budget of 25 s spent: 3 points left out" in said
    profile = cal.calibrate(budget_s=5, keys=["numpy"], modes=("sgd",), progress=None)
    assert profile.candidates == {} and profile.measured == () and profile.groups == {}


def test_a_group_is_its_mode_and_each_run_offsets_its_rows(monkeypatch):
    # C41* (an executor's own entry, "sgd/x", listed as a group of its own in
    # groups), C49* (every run on the same N: compiled epochs cached by the last
    # run, keyed by N, reused and the compile time lost).
    seen = _stub_calibration(monkeypatch, executor_of=lambda seed: "x" if seed in (1, 2)
                             else "reference")
    profile = cal.calibrate(keys=["numpy"], modes=("sgd",), progress=None)
    assert set(profile.candidates["numpy:cpu"]) == {"sgd", "sgd/x"}
    assert set(profile.groups["numpy:cpu"]) == {"sgd"}
    first = [n for _, n, seed, _ in seen if seed]
    seen.clear()
    cal.calibrate(keys=["numpy"], modes=("sgd",), progress=None)
    assert [n for _, n, seed, _ in seen if seed] == [n + 1 for n in first]


def test_a_library_already_started_is_not_timed_for_its_first_use(monkeypatch):
    # C36* (the first-use cost measured though this process had started the
    # library: two warm fits' noise recorded as its start-up), C37* (a second fit
    # slower than the first gave a negative first-use cost).
    _stub_calibration(monkeypatch)
    monkeypatch.setattr(cal, "used_candidates", lambda: {"numpy:cpu"})
    profile = cal.calibrate(keys=["numpy"], modes=("sgd",), quick=True, progress=None)
    assert profile.first_use == {}
    monkeypatch.setattr(cal, "used_candidates", lambda: set())
    fits = iter([0.1, 0.3])
    monkeypatch.setattr(cal, "_tiny_fit_seconds", lambda backend, n: next(fits))
    profile = cal.calibrate(keys=["numpy"], modes=("sgd",), quick=True, progress=None)
    assert profile.first_use == {"numpy:cpu": 0.0}


def test_a_candidate_whose_warm_up_fails_has_no_point_measured(monkeypatch):
    # C38* (its points measured anyway, after the warm-up said it failed).
    seen = _stub_calibration(monkeypatch)

    def broken(backend, n):
        raise RuntimeError("no device")

    monkeypatch.setattr(cal, "_tiny_fit_seconds", broken)
    said = []
    profile = cal.calibrate(keys=["numpy"], modes=("sgd",), quick=True, progress=said.append)
    assert seen == [] and profile.candidates == {}
    assert "numpy:cpu: FAILED, not measured (RuntimeError: no device)" in said


def _merge_inputs(old_changes=None, **new_changes):
    import dataclasses

    from nnbackend.autoselect import Profile
    from test_auto_profile_edges import _new_profile, _old_file

    old = Profile.from_dict(_old_file(**(old_changes or {})), "old.json")
    return dataclasses.replace(_new_profile(), **new_changes), old


def test_an_old_profile_that_measured_nothing_is_not_merged():
    # C42* (an old file of no measured group merged all the same: its BLAS
    # section, libraries and first-use figures mixed into the new run's).
    new, old = _merge_inputs({"candidates": {}, "first_use": {"jax:cpu": 2.0}})
    merged, notes = cal.merge_profiles(new, old)
    assert merged is new and notes == []


def test_a_merge_keeps_old_library_versions_and_first_uses_beside_the_new():
    # C45* (a library the new run did not load, version None, overwrote the
    # version its kept groups ran), C48* (the old first-use figures dropped).
    new, old = _merge_inputs({"libraries": {"numpy": "1.0-old", "jax": "0.1"},
                              "first_use": {"jax:cpu": 2.0}},
                             libraries={"numpy": "2.0-new", "jax": None},
                             first_use={"numpy:cpu": 0.5})
    merged, _ = cal.merge_profiles(new, old)
    assert merged.libraries == {"numpy": "2.0-new", "jax": "0.1"}
    assert merged.first_use == {"jax:cpu": 2.0, "numpy:cpu": 0.5}


def test_a_blas_section_cut_short_twice_keeps_the_new_one():
    # C47* (the old section kept though it was cut short too: it has no
    # threshold either, and it said an older run's note).
    cut = {"threads": 2, "measured": [], "note": "time budget spent after 1 of 7 products"}
    new, old = _merge_inputs({"blas": {"threads": 2, "measured": [], "note": "older"}},
                             blas=cut)
    merged, notes = cal.merge_profiles(new, old)
    assert merged.blas == cut and not any("BLAS" in note for note in notes)


# -- the command line ---------------------------------------------------------------------


def _train(capsys, *argv):
    """``nnbackend train ARGV --json --quiet`` in-process: (status, summary, stderr)."""
    import json

    status = cli.main(["train", *map(str, argv), "--json", "--quiet"])
    out, err = capsys.readouterr()
    return status, json.loads(out), err


def _csv(tmp_path, header="a,b,label", n=40, labels=("no", "yes")):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 2))
    path = tmp_path / "train.csv"
    path.write_text(header + "\n" + "".join(
        f"{a:.4f},{b:.4f},{labels[int(a + b > 0)]}\n" for a, b in X))
    return path


@pytest.mark.parametrize("text, sizes", [("64,", [64]), (" 8 , 4 ", [8, 4]), ("1", [1])])
def test_hidden_sizes_read(text, sizes):
    # K03 (a trailing comma not dropped: "64," refused as a size left out).
    assert cli._sizes(text) == sizes


@pytest.mark.parametrize("text, match", [("64,,32", "a hidden layer size is empty"),
                                         ("0", "must be integers >= 1"),
                                         ("", "must be integers >= 1"),
                                         (",", "a hidden layer size is empty")])
def test_hidden_sizes_refused(text, match):
    # K04 ("64,,32" refused as not integers, not as a size left out; killed before), K05 (a
    # layer of 0 units taken), K06 (no size at all, "", taken: a net of no
    # hidden layer where one was asked for).
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match=match):
        cli._sizes(text)


def test_the_number_flags_take_their_bounds_and_refuse_past_them():
    # K07 (--epochs, --batch-size, --patience, --n-samples of 0 taken; killed before),
    # K09 (killed before: the
    # bound itself refused: --seed 0, --epochs 1), K10 (--lr inf taken), K11*
    # (--alpha inf taken).
    import argparse

    assert cli._positive_int("1") == 1 and cli._seed("0") == 0
    assert cli._positive_float("1e-9") == 1e-9 and cli._nonnegative_float("0") == 0.0
    assert cli._fraction("0.999") == 0.999
    for parse, text in ((cli._positive_int, "0"), (cli._seed, "-1"),
                        (cli._positive_float, "inf"), (cli._positive_float, "0"),
                        (cli._nonnegative_float, "inf"), (cli._nonnegative_float, "-1e-9")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_the_scheduler_reaches_the_dask_backend_and_needs_it(monkeypatch, capsys):
    # K14 (--scheduler with --backend torch not refused: a dask backend built
    # instead of the torch one asked for), K15 (the scheduler not passed on:
    # the fit ran on Dask's local threads, not on the cluster named).
    asked = []

    def get_backend(name, device=None, **kwargs):
        asked.append((name, device, kwargs))
        raise cli._Refusal("stand-in: no cluster here")

    monkeypatch.setattr(cli, "get_backend", get_backend)
    err = cli_refusal(["train", "--scheduler", "tcp://10.0.0.5:8786", "--epochs", "1"], capsys)
    assert asked == [("dask", None, {"scheduler": "tcp://10.0.0.5:8786"})]
    assert "stand-in" in err
    err = cli_refusal(["train", "--scheduler", "threads", "--backend", "torch"], capsys)
    assert "--scheduler names a Dask scheduler; it needs --backend dask, not torch" in err
    assert len(asked) == 1


def test_a_data_file_gets_the_data_files_defaults_not_xors(tmp_path, capsys):
    # K26 (killed before: a --data run took xor's defaults: hidden 4, tanh, batch descent,
    # 1000 epochs at lr 1.0).
    status, s, _ = _train(capsys, "--data", _csv(tmp_path), "--target", "label",
                          "--epochs", "1")
    assert status == 0 and s["source"].endswith("train.csv")
    assert (s["layer_sizes"], s["activation"], s["mode"], s["lr"]) == (
        [2, 64, 1], "relu", "minibatch", 0.1)


def test_class_labels_with_a_validation_split_are_scored_as_labels(tmp_path, capsys):
    # K27 (the validation rows' class ids not turned back into labels: with
    # classes 3 and 7 the model refused the ids 0 and 1 as labels it never saw;
    # "no"/"yes" labels hide it, since ids 0 and 1 read as those classes' ids).
    status, s, _ = _train(capsys, "--data", _csv(tmp_path, labels=(3, 7)), "--target", "label",
                          "--epochs", "2", "--val-split", "0.25")
    assert status == 0 and s["n_val"] == 10 and s["n_train"] == 30
    assert 0 <= s["val_accuracy"] <= 1


def test_the_patience_note_is_for_a_run_without_validation_only(capsys):
    # K28 (the note "--patience without --val-split watches the training loss"
    # printed though --val-split was given).
    common = ["--dataset", "moons", "--n-samples", "40", "--epochs", "2", "--patience", "5"]
    status, _, err = _train(capsys, *common, "--val-split", "0.25")
    assert status == 0 and "--patience without --val-split" not in err
    status, _, err = _train(capsys, *common)
    assert status == 0 and "--patience without --val-split watches the training loss" in err


def test_a_growing_loss_is_warned_once_and_a_divergence_said_once(capsys):
    # K34 (every DivergenceWarning dropped from stderr, not only a stopped
    # run's, which the summary reports): a loss that grows while staying
    # finite went unsaid. Found after the audit.
    common = ["--dataset", "synthetic", "--epochs", "5", "--mode", "batch"]
    status, s, err = _train(capsys, *common, "--lr", "1")
    assert status == 0 and s["diverged"] is None
    assert err.count("it is diverging while staying finite") == 1, err
    status, s, err = _train(capsys, *common, "--lr", "2")
    assert status == 1 and s["diverged"].startswith("training diverged at epoch")
    assert err.count("training diverged at epoch") == 1, err


def test_the_plot_is_named_in_the_summary(tmp_path, capsys):
    # K41 (the plot written but left out of the summary: no "plot" in --json,
    # no "plot written to" line).
    _plot()
    path = tmp_path / "loss.png"
    status, s, _ = _train(capsys, "--epochs", "2", "--plot", path)
    assert status == 0 and s["plot"] == str(path) and path.stat().st_size > 0
    assert cli.main(["train", "--epochs", "2", "--quiet", "--plot", str(path)]) == 0
    assert f"plot written to {path}" in capsys.readouterr().out


def test_predict_refuses_to_write_over_its_data(tmp_path, capsys):
    # K44 (--out naming the --data file not refused: the predictions replaced
    # the rows they were made from).
    data = _csv(tmp_path)
    model = tmp_path / "m.npz"
    assert cli.main(["train", "--data", str(data), "--target", "label", "--epochs", "1",
                     "--quiet", "--save", str(model)]) == 0
    capsys.readouterr()
    before = data.read_bytes()
    err = cli_refusal(["predict", "--model", model, "--data", data, "--out", data], capsys)
    assert "--out" in err and data.read_bytes() == before


def test_nnbackend_debug_shows_the_traceback(tmp_path, monkeypatch):
    # K47 (NNBACKEND_DEBUG ignored: the one-line refusal, no traceback to debug).
    monkeypatch.setenv("NNBACKEND_DEBUG", "1")
    missing = tmp_path / "missing.csv"
    with pytest.raises(Exception, match="missing.csv"):  # not SystemExit: a BaseException
        cli.main(["train", "--data", str(missing), "--target", "y", "--epochs", "1"])


def test_the_machine_line_names_only_what_is_set_and_installed(monkeypatch):
    # B05 (a thread variable set to "" named as if it set the count:
    # "OPENBLAS_NUM_THREADS="), B06 (an entry of no thread count, None, compared
    # with <= 1: TypeError, and the bench report lost), B07 (a library not
    # installed named with version None: "cupy None").
    import sys

    for name in cli._THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # not installed
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    monkeypatch.setenv("MKL_NUM_THREADS", "2")
    assert cli._blas_text() == "BLAS threads: MKL_NUM_THREADS=2"
    assert cli._one_blas({"internal_api": "openblas"}) == "openblas with None threads"
    monkeypatch.setattr(cli, "library_version", lambda name: "9.9" if name == "jax" else None)
    line = cli._machine_line()
    assert line.endswith(", jax 9.9") and "None" not in line
