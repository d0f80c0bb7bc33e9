"""Tests from the mutation audit of the built-in datasets and the benchmark's
plain-Python modules (the 08o audit: ``nnbackend/datasets.py`` and
``nnbackend/bench/`` workloads, models, synthetic, caselog, stability).

Each test names in a comment the mutants it kills (ids of the audit's tables)
and what went wrong under them; "killed before" marks an id the existing tests
already killed. Everything runs in-process on a few rows;
nothing measures a machine (the benchmark's clocks and budgets are stand-ins).
"""

import json
import math
import os
import sys
import types
import warnings
from collections import OrderedDict

import numpy as np
import pytest

from nnbackend.bench import caselog as L
from nnbackend.bench import models as M
from nnbackend.bench import stability as S
from nnbackend.bench import synthetic as Y
from nnbackend.bench import workloads as W
from nnbackend.datasets import make_dataset, train_val_split
from test_bench_stability import Clock as _Clock  # the fake rounds move it forward


# -- make_dataset ---------------------------------------------------------------------


@pytest.mark.parametrize("name, n, classes", [("xor", 4, 2), ("and", 4, 2), ("moons", 2, 2),
                                              ("spirals", 3, 3)])
def test_each_set_takes_its_fewest_samples_with_every_class(name, n, classes):
    # D04 (`n_samples <= _MIN_N`): the documented minimum itself (xor 4, moons 2,
    # spirals 3) was refused as too few.
    X, y = make_dataset(name, n_samples=n, seed=0)
    assert X.shape == (n, 2) and len(np.unique(y)) == classes


def test_one_moon_sample_is_refused():
    # D06 (moons' minimum 1): one row of moons was made, holding one class only.
    with pytest.raises(ValueError, match=r"n_samples must be >= 2 for 'moons'"):
        make_dataset("moons", n_samples=1)


def test_a_set_too_large_for_an_array_is_refused_naming_n_samples():
    # D14 (`except TypeError`): NumPy's own "Maximum allowed size exceeded" came
    # through, naming no argument.
    with pytest.raises(ValueError, match=r"^n_samples=10{20}, n_features=3: more than"):
        make_dataset("synthetic", n_samples=10**20, n_features=3)


def test_the_corners_returned_are_the_callers_own():
    # D17 (the module's corner arrays returned, not copies): a caller writing to
    # its xor set changed every later xor set.
    X, y = make_dataset("xor")
    X[0, 0], y[0] = 9.0, 7.0
    X2, y2 = make_dataset("xor")
    np.testing.assert_array_equal(X2, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y2, [0, 1, 1, 0])


def test_the_spiral_arms_are_a_third_of_a_turn_apart():
    # D24 (arms pi/3 apart, not 2*pi/3): the three arms bunched on one side.
    X, y = make_dataset("spirals", n_samples=600, seed=0)
    r = np.linalg.norm(X, axis=1)
    theta = np.arctan2(X[:, 0], X[:, 1])
    for k in range(3):
        rest = theta[y == k] - 4.0 * r[y == k] - k * 2.0 * np.pi / 3
        wrapped = np.angle(np.exp(1j * rest))  # into (-pi, pi]
        assert abs(np.median(wrapped)) < 0.1 and np.abs(wrapped).max() < 1.5


def test_the_spirals_rows_are_shuffled():
    # D26 (the spirals' rows not shuffled): a prefix or an unshuffled batch was one arm.
    _, y = make_dataset("spirals", n_samples=600, seed=0)
    assert len(np.unique(y[:30])) == 3


def test_synthetic_is_its_documented_function_plus_noise_of_sd_0_1():
    # D29 (the target not divided by sqrt(8): about 2.8 times the scale the module
    # promises), D30 (no noise added: a noiseless target).
    from nnbackend import datasets as ds

    X, y = make_dataset("synthetic", n_samples=4000, seed=3, n_features=6)
    f = np.random.default_rng([ds._SYNTHETIC_FUNCTION_SEED, 6])
    W = f.normal(0.0, 1.0 / math.sqrt(6), size=(6, 8))
    a = f.normal(0.0, 1.0, size=8)
    noise = y - np.tanh(X @ W) @ a / math.sqrt(8)
    assert abs(noise.mean()) < 0.01 and 0.09 < noise.std() < 0.11


def test_digits_takes_every_row_as_a_permutation():
    # D32 (`n_samples >= 1797` refused): all 1797 digits, in a seeded order, were
    # refused as too many.
    pytest.importorskip("sklearn", reason="the digits set needs scikit-learn")
    X, y = make_dataset("digits", n_samples=1797, seed=1)
    Xa, ya = make_dataset("digits")
    assert X.shape == (1797, 64) and np.bincount(y).tolist() == np.bincount(ya).tolist()
    with pytest.raises(ValueError, match=r"'digits' has 1797 samples; n_samples=1798"):
        make_dataset("digits", n_samples=1798)


# -- train_val_split ------------------------------------------------------------------


def test_a_column_of_class_labels_is_split_per_class():
    # D36 (any 2-D y read as one-hot): a (n, 1) column of labels was argmax'ed to
    # one class, and the minority's share was left to chance.
    y = np.array([0] * 90 + [1] * 10).reshape(-1, 1)
    X = np.zeros((100, 1))
    for seed in range(8):
        _, yt, _, yv = train_val_split(X, y, 0.2, seed=seed)
        assert yv.shape == (20, 1) and int(yv.sum()) == 2 and int(yt.sum()) == 8


@pytest.mark.parametrize("fraction", [True, False])
def test_a_bool_fraction_is_a_type_error(fraction):
    # D38 (bool let through as a number): True was refused as a ValueError (out of
    # range), not the TypeError the docstring names for a fraction that is no number.
    with pytest.raises(TypeError, match=r"val_fraction must be a number, got bool"):
        train_val_split(np.zeros((10, 1)), np.zeros(10), fraction)


@pytest.mark.parametrize("seed, exc, match", [(-1, ValueError, r"^seed must be >= 0"),
                                              (1.5, TypeError, r"^seed must be an integer")])
def test_the_splits_seed_is_checked(seed, exc, match):
    # D41 (the seed not checked): NumPy's own refusal (or none) came through in place
    # of the one naming the seed.
    with pytest.raises(exc, match=match):
        train_val_split(np.zeros((10, 1)), np.zeros(10), 0.2, seed=seed)


def test_a_scalar_target_is_refused_as_having_no_sample_dimension():
    # D42 (only X's dimensions checked): a 0-d y failed with an IndexError from
    # ``y.shape[0]``, not the ValueError the function raises for it.
    with pytest.raises(ValueError, match=r"X and y must have a first \(sample\) dimension"):
        train_val_split(np.zeros((4, 1)), np.float64(3.0), 0.5)


@pytest.mark.parametrize("n, n_val", [(10, 3), (2, 1), (18, 5)])
def test_a_half_validation_row_rounds_up(n, n_val):
    # D46 (Python's round, halves to even): 10 rows at 0.25 gave 2 validation rows,
    # not the 3 the docstring's "rounding halves up" says, and 2 rows at 0.25 were
    # refused as leaving no validation row.
    _, _, Xv, _ = train_val_split(np.zeros((n, 1)), np.linspace(0.0, 1.0, n), 0.25)
    assert Xv.shape[0] == n_val


def test_the_leftover_row_goes_to_the_largest_remainder():
    # D53 (smallest remainder first): 7 rows of class 0 and 3 of class 1 at 0.4 put
    # 2 + 2 in validation, not the 3 + 1 of their shares (2.8 and 1.2).
    y = np.array([0] * 7 + [1] * 3)
    for seed in range(6):
        _, _, _, yv = train_val_split(np.zeros((10, 1)), y, 0.4, seed=seed)
        assert np.bincount(yv, minlength=2).tolist() == [3, 1]


def test_the_leftover_row_spares_a_class_its_last_training_row():
    # D54 (`base + 1 > counts`), D55 (that preference dropped): a class of one row
    # with the larger remainder gave its only row to validation and none to training.
    y = np.array([0] + [1] * 4)
    for seed in range(6):
        _, yt, _, yv = train_val_split(np.zeros((5, 1)), y, 0.6, seed=seed)
        assert yt.tolist() == [0, 1] and yv.tolist() == [1, 1, 1]


def test_a_tie_between_remainders_is_broken_by_the_seed():
    # D58 (tiebreak all zeros): of two classes with equal remainders, the first
    # always took the leftover validation row, whatever the seed.
    y = np.array([0] * 5 + [1] * 5)
    seen = set()
    for seed in range(20):
        yv = train_val_split(np.zeros((10, 1)), y, 0.5, seed=seed)[3]
        seen.add(tuple(np.bincount(yv, minlength=2).tolist()))
    assert seen == {(3, 2), (2, 3)}


# -- bench/stability.py ------------------------------------------------------------------


def test_too_wide_without_q3_is_unknown_not_an_error():
    # T08 (only q1 checked before q3 - q1): a record with q1 but no q3 raised a
    # TypeError where the spread is just unknown (None).
    assert S.too_wide({"median": 10.0, "q1": 8.0, "q3": None, "rounds": 5}) is None
    assert S.too_wide({"median": 10.0, "q1": 8.0, "rounds": 5}) is None


def test_a_negative_budget_is_none_and_what_is_left_never_goes_below_zero():
    # T09 (per_case not floored at 0: "-1 s per case" in the report's header),
    # T10 (left() negative once a re-run overran the run's budget).
    budget = S.RerunBudget(per_case=-1, total=-5)
    assert (budget.per_case, budget.total) == (0.0, 0.0)
    assert budget.describe() == "0 s per case, 0 s for the run"
    budget = S.RerunBudget(per_case=4, total=5)
    budget.spent = 7.0
    assert budget.left() == 0.0


_NOISY = [1.0, 2.0, 3.0, 1.0, 3.0]  # IQR 100 % of the median


def test_a_case_and_run_budget_left_equal_are_named_as_the_cases():
    # T12 (`case_left < run_left`): with as much left for the case as for the run,
    # the stop was put down to the run's budget, not the case's.
    clock, budget = _Clock(), S.RerunBudget(per_case=7, total=7)
    _, rec = S.rerun_until_stable(_NOISY, clock.attempt(_NOISY * 9), budget, rounds=5,
                                  clock=clock)
    assert rec["stopped"] == "the 7 s a case may spend on re-runs left too little for 3 more rounds"


def test_a_run_budget_of_zero_turns_re_runs_off():
    # T14 (only per_case checked): --rerun-total 0 was reported as a budget that
    # "left too little", not as re-runs turned off.
    clock, budget = _Clock(), S.RerunBudget(per_case=4, total=0)
    _, rec = S.rerun_until_stable(_NOISY, clock.attempt(_NOISY * 9), budget, rounds=5,
                                  clock=clock)
    assert rec["stopped"] == "re-runs were off" and rec["reruns"] == 0


def test_the_load_average_is_rounded_to_two_places(monkeypatch):
    # T20 (not rounded): the report's header got the load average to 15 digits.
    monkeypatch.setattr(os, "getloadavg", lambda: (1.23456, 2.0, 3.987), raising=False)
    assert S.load_average() == [1.23, 2.0, 3.99]


def test_the_thread_pools_name_the_library_file_and_torchs_threads(monkeypatch):
    # T21 (the file's whole path kept, and "" for none), T22 (torch's intra-op
    # threads left out where torch is loaded).
    info = [{"user_api": "blas", "internal_api": "openblas", "version": "0.3.1",
             "num_threads": 4, "filepath": "/usr/lib/x/libopenblas.so"},
            {"user_api": "openmp", "internal_api": "openmp", "version": None,
             "num_threads": 2, "filepath": ""}]
    monkeypatch.setitem(sys.modules, "threadpoolctl",
                        types.SimpleNamespace(threadpool_info=lambda: info))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(get_num_threads=lambda: 3))
    pools = S.thread_pools()
    assert [p["file"] for p in pools[:2]] == ["libopenblas.so", None]
    assert pools[0]["threads"] == 4 and pools[0]["library"] == "openblas"
    assert pools[2] == {"api": "torch", "library": "torch intra-op", "version": None,
                        "threads": 3}


# -- bench/caselog.py --------------------------------------------------------------------


def _report(when, duration, outcome="passed", longrepr=None, message=None):
    crash = types.SimpleNamespace(message=message) if message else None
    return types.SimpleNamespace(
        when=when, duration=duration, failed=outcome == "failed",
        skipped=outcome == "skipped",
        longrepr=longrepr if crash is None else types.SimpleNamespace(reprcrash=crash),
        longreprtext="")


def test_a_skip_reason_is_its_message_without_the_prefix():
    # C01 (the tuple printed whole: "('case.py', 12, 'Skipped: ...')"), C02 ("Skipped: "
    # kept in front of every skipped case's reason).
    report = _report("setup", 0.1, "skipped", ("case.py", 12, "Skipped: needs a GPU"))
    assert L.skip_reason(report) == "needs a GPU"


def test_a_long_or_blank_first_line_is_cut_to_one_line_of_300():
    # C03 (cut to 301 characters), C04 (a blank first line kept: the reason read "").
    assert L._one_line("\n  \n  first\nsecond") == "first"
    line = L._one_line("x" * 400)
    assert len(line) == 300 and line.endswith("…")
    assert L._one_line("y" * 300) == "y" * 300


def test_a_case_entry_keeps_the_first_failure_and_sums_its_phases():
    # C05 (a later failure's reason replaced the first's: the teardown's, not the
    # set-up's that caused it), C06 (a skip after a failure turned the case into
    # "skipped"), C07 (seconds: the last phase's, not the three phases' sum).
    reports = [_report("setup", 0.1, "failed", message="boom one\nmore"),
               _report("call", 0.2, "skipped", ("f.py", 1, "Skipped: later")),
               _report("teardown", 0.3, "failed", message="boom two")]
    entry = L.entry_from_reports("test_epoch[x]", reports)
    assert entry == {"name": "test_epoch[x]", "outcome": "failed", "reason": "setup: boom one",
                     "seconds": 0.6, "phases": {"setup": 0.1, "call": 0.2, "teardown": 0.3}}


def test_the_case_log_keeps_each_cases_benchmark_record_and_reads_back_the_last_run(tmp_path):
    # C09 (killed before: the benchmark record not written to the log, a run cut off
    # lost its timings), C11 (killed before: a torn last line raised), C12 (killed
    # before: a JSON line that is no object, here a number, raised), C16 (the rebuilt
    # JSON's time with no time zone), C22 (each case in the rebuilt JSON still
    # carried its benchmark record).
    path = tmp_path / "cases.jsonl"
    log = L.CaseLog(str(path))
    log.collected(["test_epoch[a]", "test_epoch[b]"])
    entry = {"name": "test_epoch[a]", "outcome": "passed", "reason": None, "seconds": 1.5}
    log.add(entry, {"name": "test_epoch[a]", "stats": {"median": 0.25}})
    assert log.entries == [entry]
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("5\n[1, 2]\n{\"name\": \"test_epoch[b]\", \"outc")
    assert json.loads(path.read_text().splitlines()[1])["benchmark"]["stats"] == {"median": 0.25}
    data = L.results_from_log(str(path))
    assert data["benchmarks"] == [{"name": "test_epoch[a]", "stats": {"median": 0.25}}]
    assert data["cases"][0] == entry
    assert [(c["name"], c["outcome"]) for c in data["cases"]] == [
        ("test_epoch[a]", "passed"), ("test_epoch[b]", "not run")]
    assert data["datetime"].endswith("+00:00")


def test_not_measured_lists_every_case_not_passed_with_a_reason_of_text():
    # C17 (killed before; only "failed" listed: the skipped and not-run cases left
    # out), C18 (a reason of None given as None, not "").
    data = {"cases": [{"name": "a", "outcome": "passed"},
                      {"name": "b", "outcome": "skipped", "reason": "no gpu"},
                      {"name": "c", "outcome": "not run", "reason": None},
                      {"name": "d", "outcome": "failed", "reason": "call: boom"}]}
    assert L.not_measured(data) == [("b", "skipped", "no gpu"), ("c", "not run", ""),
                                    ("d", "failed", "call: boom")]


def test_left_out_skips_what_is_no_record_and_reads_only_a_list_of_implementations():
    # C19 (a "dropped" item that is no dict raised), C20 (implementations given as
    # a string were split into its letters).
    data = {"dropped": ["junk", {"model": "mnist", "mode": "batch", "n_samples": 10,
                                 "implementations": "numpy", "reason": "cpu max"}]}
    assert L.left_out(data) == [("mnist", "batch", 10, [], "cpu max")]


# -- bench/workloads.py ------------------------------------------------------------------


def test_an_empty_device_type_falls_back_to_the_backends_kind():
    # W01 (an empty ``type`` taken as the kind): the label ended in "-" ("nnbackend-x-").
    backend = types.SimpleNamespace(device=types.SimpleNamespace(type=""), is_gpu=lambda: True)
    assert W.device_kind(backend) == "cuda"


def test_an_nnbackend_epoch_trains_at_the_lr_asked_and_on_fewer_rows_than_a_batch():
    # W05 (``lr`` ignored: the model's 0.1 ran whatever was asked), W04 (a batch of
    # the model's 64 rows asked of 10 rows: the fit's warning that it is too large).
    step, _ = W.nnbackend_epoch("numpy", None, "batch", 64, lr=1e-9)
    assert step() == step()  # lr 1e-9: the weights do not move in float32
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a batch larger than the rows warns
        step, info = W.nnbackend_epoch("numpy", None, "minibatch", 10)
        assert np.isfinite(step() / 10) and info["model"] == "small"


def test_an_nnbackend_epoch_refuses_an_unknown_precision():
    # W07 (``precision`` not passed to the epoch): "tf16" was taken without a word.
    with pytest.raises(ValueError, match=r"unknown precision 'tf16'"):
        W.make_epoch("nnbackend", "numpy", "batch", 32, precision="tf16")


def test_make_epoch_passes_the_device_and_executor_on(monkeypatch):
    # W09 (nnbackend-reference timed the auto executor), W10 (the device of
    # ``name:device`` dropped), W13 (torch-eager always on "cpu"), W14 (JAX's
    # "default" passed on as a platform name).
    seen = []
    monkeypatch.setattr(W, "nnbackend_epoch", lambda *a, **k: seen.append((a, k)) or (None, {}))
    W.make_epoch("nnbackend-reference", "torch:cuda:1", "batch", 32)
    assert seen[0][0][:2] == ("torch", "cuda:1") and seen[0][1]["executor"] == "reference"

    def peer(*a, **k):
        seen.append(k["device"])
        return (lambda: 0.0), {"gpu": False}

    monkeypatch.setattr(W, "torch_eager_epoch", peer)
    monkeypatch.setattr(W, "jax_scan_epoch", peer)
    monkeypatch.setattr(W, "get_backend", lambda *a: a)
    monkeypatch.setattr(W, "_at_precision", lambda step, info, backend, precision: (step, info))
    W.make_epoch("torch-eager", "cuda", "batch", 32)
    for where in ("default", "", "gpu"):
        W.make_epoch("jax-scan-hand", where, "batch", 32)
    assert seen[1:] == ["cuda", None, None, "gpu"]


def _clocked(monkeypatch, seconds, losses):
    """A step whose epochs take ``seconds`` on a fake clock and return ``losses`` (x10)."""
    now = [0.0]
    monkeypatch.setattr(W, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    epochs = iter(zip(seconds, losses))

    def make_step():
        def step():
            took, loss = next(epochs)
            now[0] += took
            return loss * 10
        return step
    return make_step


def test_time_to_target_stops_at_the_target_itself_and_times_each_epoch(monkeypatch):
    # W19 (`loss < target`: an epoch that hit the target exactly did not stop the
    # run), W21 (such a run reported as not reached), W23 (the first epoch's time
    # taken from the last epoch), W24 (killed before: epoch_q1 and epoch_q3 swapped).
    make = _clocked(monkeypatch, [3.0, 1.0, 2.0, 9.0], [0.5, 0.4, 0.25, 0.1])
    out = W.time_to_target(make, 0.25, 10, max_epochs=4)
    assert (out["reached"], out["epochs"], out["final_loss"]) == (True, 3, 0.25)
    assert out["first_epoch_seconds"] == 3.0 and out["seconds"] == 6.0
    assert out["epoch_q1"] < out["epoch_median"] == 2.0 < out["epoch_q3"]


def test_time_to_target_with_both_budgets_names_both(monkeypatch):
    # W22 (both budgets given, only the epochs named in the record).
    make = _clocked(monkeypatch, [1.0, 1.0], [0.5, 0.4])
    out = W.time_to_target(make, 0.1, 10, max_seconds=100.0, max_epochs=2)
    assert (out["budget_kind"], out["budget"], out["reached"]) == (
        "seconds or epochs", [100.0, 2], False)


# -- bench/models.py ---------------------------------------------------------------------


def test_models_sort_in_declared_order_then_unknown_names_alphabetically():
    # M03 (unknown names keyed 0: sorted among the first model, not after every known one).
    names = ["zeta", "mid", "alpha", "small", "mnist"]
    assert sorted(names, key=M.model_key) == ["small", "mnist", "mid", "alpha", "zeta"]


def test_an_unhashable_model_name_is_refused_as_unknown():
    # M04 (TypeError not caught): a list as the model's name raised "unhashable type".
    with pytest.raises(ValueError, match=r"unknown benchmark model \['small'\]"):
        M.workload(["small"])


def test_describe_spells_the_loss_and_the_default_models_are_small():
    # M05 (the loss's code name "mse" in the report, not "½·squared error"), M10
    # (the default model list grown: mnist timed when no --models is given).
    assert M.describe("small") == ("MLP 32 → 64 → 1 (sigmoid hidden, sigmoid output), "
                                   "½·squared error, sgd lr 0.1, mini-batches of 64, float32")
    assert M.DEFAULT_MODELS == ("small",)


# -- bench/synthetic.py ------------------------------------------------------------------


def test_the_small_data_is_its_fixed_teachers_output_in_float32():
    # S01 (the teacher drawn from ``seed``: each seed a different task), S02 (no
    # sigmoid: targets outside (0, 1)), S03 (float64 targets), S13 (the output
    # weights not scaled by 1.5).
    X, y = Y.synthetic(500, seed=4, n_features=8)
    teacher = np.random.default_rng(12345)
    W1 = teacher.normal(size=(8, 16)) / np.sqrt(8)
    w2 = teacher.normal(size=(16, 1)) * 1.5
    assert X.dtype == y.dtype == np.float32 and y.shape == (500, 1)
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-(np.tanh(X @ W1) @ w2))), rtol=1e-5)


def test_the_mnist_classes_are_about_equally_frequent():
    # S04 (the pixels not centred before the teacher: a few classes took most rows).
    _, labels = Y.synthetic_mnist(5000, seed=0)
    counts = np.bincount(labels, minlength=10)
    assert counts.min() > 300 and counts.max() < 700


def test_the_data_cache_keeps_the_most_recently_used_draws(monkeypatch):
    # S07 (a draw used again not moved to the end: dropped first all the same),
    # S09 (killed before: the newest draw dropped when the cache is full, KeyError).
    monkeypatch.setattr(Y, "_CACHE", OrderedDict())
    first = Y.data_for("small", 3, 0)
    for seed in range(1, 6):
        Y.data_for("small", 3, seed)
    assert Y.data_for("small", 3, 0) is first  # used again: now the newest
    newest = Y.data_for("small", 3, 6)  # a 7th draw drops the oldest, seed 1
    assert len(Y._CACHE) == 6 and Y.data_for("small", 3, 0) is first
    assert newest is Y.data_for("small", 3, 6)
    assert ("small", 3, 1) not in Y._CACHE


def test_small16_data_batches_and_starting_weights():
    # S10 (small16 trained on 32 features), S11 (a mini-batch larger than N), S12
    # (the starting weights drawn from seed 0 whatever was asked).
    assert Y.data_for("small16", 5)[0].shape == (5, 16)
    assert Y.batch_size_of("minibatch", 64, 10) == 10
    assert (Y.batch_size_of("batch", 64, 10), Y.batch_size_of("sgd", 64, 10)) == (10, 1)
    a, b = Y.initial_params("small", seed=0), Y.initial_params("small", seed=1)
    assert [x.shape for x in a] == [(32, 64), (64,), (64, 1), (1,)]
    assert not np.array_equal(a[0], b[0])
