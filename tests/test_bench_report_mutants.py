"""The bench report and the GPU check's summary, held to what a reader relies on:
tests written by the hand mutation audit of 2026-12-07g, one (or a few) per
mutant that the earlier tests let through. Each comment names the mutant and
what the report or summary said under it."""

import pytest

from conftest import load_script
from test_bench_report import needs_matplotlib
from test_bench_report_notes import epoch, report, section, table_row, target


def _timing(label, mode, n, seconds, model="small"):
    return {"extra_info": {"kind": "epoch", "model": model, "mode": mode, "n_samples": n,
                           "label": label, "seconds_per_step": seconds,
                           "seconds_per_epoch": seconds}}


# -- gpu_check_summary: the issue 25/26 verdicts ------------------------------------


@pytest.mark.parametrize("crossover", [
    {"status": "crossover", "n": 500.0, "n_measured": [100, 1000]},
    {"status": "gpu_faster_everywhere", "n": None, "n_measured": [500, 1000]}])
def test_a_crossover_at_exactly_the_target_n_meets_it(crossover, capsys):
    # G01/G02 ("< largest"): the GPU ahead from N = 500 read "NOT met" / "not measured"
    # against a target of "faster from N <= 500".
    summary = load_script("gpu_check_summary")
    assert summary.crossover_met(crossover, 500) is True
    summary._crossover_targets([dict(crossover, model="small", mode="batch",
                                     label="nnbackend-torch-cuda", text="...")])
    assert capsys.readouterr().out.splitlines()[1].endswith(
        "(target: GPU faster from N <= 500): met")


def test_a_timing_exactly_at_its_target_meets_it(capsys):
    # G05 ("value < limit"): 15.00 µs against a target of 15 read "NOT met".
    summary = load_script("gpu_check_summary")
    data = {"benchmarks": [_timing("nnbackend-cupy-cuda", "batch", 1000, 15e-6)]}
    summary._targets(summary._points(data))
    assert "15.00 µs per epoch (target 15): met" in capsys.readouterr().out


def test_a_target_without_an_n_is_read_at_the_largest_n_measured(capsys):
    # G06 (ns[0]): the sgd target was judged at the smallest N, where it was met.
    summary = load_script("gpu_check_summary")
    data = {"benchmarks": [_timing("nnbackend-cupy-cuda", "sgd", 1000, 1e-6),
                           _timing("nnbackend-cupy-cuda", "sgd", 100_000, 5e-6)]}
    summary._targets(summary._points(data))
    out = capsys.readouterr().out
    assert "N=100000  cupy" in out and "5.00 µs per step (target 2): NOT met" in out
    assert "N=1000 " not in out


def test_the_summary_lists_every_case_that_did_not_pass_not_only_failures(capsys):
    # G13 (== "failed"): skipped cases and cases the run never ended read as measured.
    summary = load_script("gpu_check_summary")
    cases = [{"name": "a", "outcome": "passed", "seconds": 1.0},
             {"name": "b", "outcome": "skipped", "reason": "deadline", "seconds": 0.0},
             {"name": "c", "outcome": "not run", "reason": "cut off"}]
    summary._cases({"cases": cases})
    out = capsys.readouterr().out
    assert "benchmark cases: 3, 1 measured" in out
    assert "benchmark cases NOT measured (2):" in out
    assert "  b: skipped: deadline" in out and "  c: not run: cut off" in out


def test_a_test_that_errored_is_counted_failed_not_skipped(tmp_path, capsys):
    # G14 (only <failure> is a failure): an <error> in setup was counted as skipped.
    summary = load_script("gpu_check_summary")
    junit = tmp_path / "t.xml"
    junit.write_text('<testsuites><testsuite><testcase classname="t" name="test_x[cupy]">'
                     '<error message="fixture broke"/></testcase></testsuite></testsuites>')
    summary.tests(str(junit))
    out = capsys.readouterr().out
    assert "tests: 0 passed, 1 failed, 0 skipped" in out
    assert "tests failed (1):\n  t::test_x[cupy]: fixture broke" in out


# -- exponents and the NumPy linearity check ---------------------------------------


def _numpy(ns, per_row=1e-6, power=1.0, mode="batch", **kw):
    return [epoch("nnbackend-numpy-cpu", mode, n, per_row * n ** power, **kw) for n in ns]


@needs_matplotlib
def test_a_numpy_exponent_below_the_linear_range_is_a_warning_that_says_slower(tmp_path):
    # W01 (only the upper end checked): an exponent of 0.7 was "grows linearly with N".
    # TB24 (faster/slower swapped): 1.3 read "slower than linear".
    benches = _numpy((10_000, 100_000, 1_000_000), power=0.7)
    benches += _numpy((10_000, 100_000, 1_000_000), per_row=1e-8, power=1.3, mode="sgd")
    summary, md = report(tmp_path, benches)
    assert summary["numpy_linear"]["small"] == {"batch": False, "sgd": False}
    found = section(md, "## Summary")
    assert ("**Warning:** nnbackend-numpy-cpu, batch: epoch cost does not grow linearly "
            "with N (exponent 0.70, slower than linear)") in found
    assert "sgd: epoch cost does not grow linearly with N (exponent 1.30, faster than " \
        "linear)" in found


@needs_matplotlib
def test_an_exponent_just_outside_the_linear_range_is_not_called_linear(tmp_path):
    # A56 (LINEAR_RANGE widened to 0.8..1.2): 1.15 was "grows linearly".
    summary, md = report(tmp_path, _numpy((10_000, 100_000, 1_000_000), 1e-7, power=1.15))
    assert summary["numpy_linear"]["small"] == {"batch": False}
    assert "(exponent 1.15, faster than linear) (expected 0.9..1.1)" in section(md, "## Scaling")


@needs_matplotlib
def test_flat_times_give_an_exponent_of_zero_that_is_a_perfect_fit(tmp_path):
    # A25 (R² 0 where the times do not vary): flat times were a "poor fit";
    # A28 (slope <= 0 negative): they were said to fall as N grows.
    # (1 s, whose log is 0: times whose logs' mean is rounded give R² of noise.)
    benches = [epoch("nnbackend-cupy-cuda", "batch", n, 1.0) for n in (100, 1_000, 10_000)]
    summary, md = report(tmp_path, benches)
    fit = summary["exponent_fits"]["small"]["nnbackend-cupy-cuda"]["batch"]
    assert fit["slope"] == 0.0 and fit["r2"] == 1.0
    assert fit["flags"] == []
    assert table_row(md, "nnbackend-cupy-cuda", "batch").split(" | ")[3:5] == ["0.00", "1.000"]


# -- duplicates and the noise rules -------------------------------------------------


@needs_matplotlib
def test_of_a_timing_recorded_twice_the_fastest_is_the_one_shown(tmp_path):
    # A01 (max): the slower copy (30 ms) stood in the tables, said to be the fastest.
    benches = _numpy((1_000, 10_000, 100_000)) + [epoch("nnbackend-numpy-cpu", "batch",
                                                        10_000, 0.030)]
    summary, md = report(tmp_path, benches)
    assert table_row(md, "10,000", "10.0 ⚠")
    assert "| nnbackend-numpy-cpu ⚠ | 10,000 | 10.0 |" in section(md, "## batch descent")


@needs_matplotlib
def test_one_duplicate_beyond_the_spreads_flags_a_timing_whatever_the_others(tmp_path):
    # A14b (only the first duplicate compared): 10.0 and 10.02 ms agreed, 30 ms did not,
    # and the timing stood unflagged as "within each other's spreads". TB05: a row
    # flagged for its duplicates said "within each other's spreads" as well.
    benches = _numpy((1_000, 10_000, 100_000))
    benches += [epoch("nnbackend-numpy-cpu", "batch", 10_000, 0.01002),
                epoch("nnbackend-numpy-cpu", "batch", 10_000, 0.030)]
    summary, md = report(tmp_path, benches)
    (noisy,) = summary["noisy"]
    assert noisy["n_samples"] == 10_000
    assert noisy["reasons"][0].startswith("recorded 3 times in these results (10.0, 10.0, "
                                          "30.0 ms), beyond each other's spreads")
    assert "within each other's spreads" not in md


def _exact(label, mode, n, median, q1, q3, rounds=9):
    """A record whose quartiles (and min–max) are given exactly."""
    rec = epoch(label, mode, n, median, rounds=rounds)
    rec["stats"].update(q1=q1, q3=q3, iqr=q3 - q1, min=q1, max=q3)
    return rec


@needs_matplotlib
def test_neighbours_within_or_touching_each_others_spreads_are_not_flagged(tmp_path):
    # A18 (hi_b <= lo_a): a fall whose spreads meet at one point; A20 (lo_b >= hi_a *
    # (b/a)²): a growth of exactly N² at the spreads' edges. Both were flagged.
    falls = [_exact("nnbackend-numpy-cpu", "batch", 1_000, 0.5, 0.375, 0.625),
             _exact("nnbackend-numpy-cpu", "batch", 2_000, 0.3125, 0.25, 0.375)]
    grows = [_exact("nnbackend-torch-cpu", "batch", 1_000, 0.21875, 0.1875, 0.25),
             _exact("nnbackend-torch-cpu", "batch", 2_000, 1.25, 1.0, 1.5)]
    # A21 (medians alone): 4.5x for twice the rows, beyond N² by the medians alone.
    within = [_exact("nnbackend-jax-cpu", "batch", 1_000, 0.25, 0.1875, 0.3125),
              _exact("nnbackend-jax-cpu", "batch", 2_000, 1.125, 1.0, 1.5)]
    summary, _ = report(tmp_path, falls + grows + within)
    assert summary["noisy"] == []


@needs_matplotlib
def test_neighbours_of_exactly_three_rounds_are_judged_by_their_spreads(tmp_path):
    # A17 (<= 3 rounds skipped): three rounds are enough for a spread, yet a fall far
    # beyond it went unflagged.
    benches = [epoch("nnbackend-numpy-cpu", "batch", 1_000, 50e-3, rounds=3),
               epoch("nnbackend-numpy-cpu", "batch", 10_000, 10e-3, rounds=3)]
    summary, md = report(tmp_path, benches)
    assert [x["n_samples"] for x in summary["noisy"]] == [1_000, 10_000]
    assert "the time falls from 50.0 ms at N = 1,000" in summary["noisy"][0]["reasons"][0]


# -- GPU/CPU crossovers --------------------------------------------------------------


def _gpu_vs_cpu(cpu, gpu, cpu_spread=None):
    """NumPy and CuPy batch timings, ``{N: seconds}`` each (CPU spreads by N)."""
    cpu_spread = cpu_spread or {}
    return ([epoch("nnbackend-numpy-cpu", "batch", n, t, spread=cpu_spread.get(n, 0.05))
             for n, t in cpu.items()]
            + [epoch("nnbackend-cupy-cuda", "batch", n, t) for n, t in gpu.items()])


@needs_matplotlib
def test_a_gpu_ahead_only_between_two_sizes_is_mixed_with_no_one_crossover(tmp_path):
    # A40 (one status): "GPU faster from N ≈ 3,160" though the CPU is ahead again
    # from 31,600; TB18: that N stood in the crossover column. A41 (the last crossing
    # taken): summary.json's n was where the CPU gets ahead again. A48/TB15: a noisy
    # CPU timing the crossover rests on went unnamed.
    benches = _gpu_vs_cpu({1_000: 1e-3, 10_000: 1e-2, 100_000: 0.1},
                          {1_000: 2e-3, 10_000: 5e-3, 100_000: 0.2}, {100_000: 0.8})
    summary, md = report(tmp_path, benches)
    (c,) = summary["crossovers"]
    assert c["status"] == "mixed" and c["n"] == pytest.approx(1_000 * 10 ** 0.5)
    assert c["noisy_n"] == [100_000]
    assert table_row(section(md, "## GPU/CPU crossover"), "batch", "nnbackend-cupy-cuda") == (
        "| batch | nnbackend-cupy-cuda | — | GPU faster above N ≈ 3,160 (between the measured "
        "1,000 and 10,000); CPU faster above N ≈ 31,600 (between the measured 10,000 and "
        "100,000) (⚠ from timings flagged noisy at N = 100,000) |")


@needs_matplotlib
def test_a_gpu_ahead_at_the_smallest_n_then_behind_says_so(tmp_path):
    # A42 (an n for it), A44 (every crossing "GPU"), A45 (no opening words): the
    # report said the GPU got ahead where the CPU did.
    summary, md = report(tmp_path, _gpu_vs_cpu({1_000: 1e-3, 10_000: 1e-2},
                                               {1_000: 0.5e-3, 10_000: 2e-2}))
    (c,) = summary["crossovers"]
    assert c["status"] == "mixed" and c["n"] is None
    assert c["text"] == ("GPU faster at the smallest measured N; CPU faster above N ≈ 3,160 "
                         "(between the measured 1,000 and 10,000)")


@needs_matplotlib
def test_a_tie_then_a_faster_gpu_is_not_the_gpu_faster_everywhere(tmp_path):
    # A36 (a tie counted as the GPU ahead): "GPU faster at every measured N" from
    # equal times at N = 1,000.
    summary, _ = report(tmp_path, _gpu_vs_cpu({1_000: 1e-3, 10_000: 1e-2},
                                              {1_000: 1e-3, 10_000: 5e-3}))
    (c,) = summary["crossovers"]
    assert c["status"] == "crossover" and c["n"] == pytest.approx(1_000)
    assert c["text"] == "GPU faster from N ≈ 1,000 (between the measured 1,000 and 10,000)"
    assert c["overlap_n"] == [1_000]


# -- cases with no figure -------------------------------------------------------------


@needs_matplotlib
def test_a_case_with_one_usable_copy_is_not_listed_as_untimed(tmp_path):
    # A04: a zero-time copy of a case that also has a good copy was listed under "Cases
    # not measured" ("no usable time"), though its timing stands in the tables.
    benches = _numpy((1_000, 10_000, 100_000))
    zero = epoch("nnbackend-numpy-cpu", "batch", 10_000, 1e-2)
    zero["stats"].update(median=0.0, q1=0.0, q3=0.0, min=0.0, max=0.0, mean=0.0)
    _, md = report(tmp_path, benches + [zero], cases=[
        {"name": b["name"], "outcome": "passed", "seconds": 1.0} for b in benches])
    assert "Not measured" not in md and "## Cases not measured" not in md
    assert table_row(md, "10,000", "10.0")


# -- speedups --------------------------------------------------------------------------


@needs_matplotlib
def test_a_speedup_over_a_baseline_of_too_few_rounds_is_marked(tmp_path):
    # A53 (only the label's rounds looked at): a peer's one-round timing gave a solid
    # "2.00×".
    benches = [epoch("nnbackend-numpy-cpu", "batch", 1_000, 1e-3),
               epoch("numpy-seed", "batch", 1_000, 2e-3, rounds=1)]
    summary, md = report(tmp_path, benches)
    assert "| 2.00× † |" in table_row(section(md, "## Speedups"), "nnbackend-numpy-cpu",
                                       "1,000")
    assert [s["few_rounds"] for s in summary["speedups"]] == [True]


# -- interleaved ratios -----------------------------------------------------------------


def _ratio(a, med_a, med_b, target=1.2, sense="max", rounds=9, quartiles=None, **extra):
    info = {"kind": "ratio", "label_a": a, "label_b": "numpy-seed", "mode": "sgd",
            "n_samples": 2000, "median_a": med_a, "median_b": med_b, "ratio": med_a / med_b,
            "rounds": rounds, "target": target, "sense": sense, **extra}
    if quartiles:
        info.update(zip(("q1_a", "q3_a", "q1_b", "q3_b"), quartiles))
    return {"name": f"test_ratio[{a}]", "stats": {"median": 1.0, "rounds": rounds},
            "extra_info": info}


@needs_matplotlib
def test_a_ratio_exactly_at_its_target_meets_it_either_way(tmp_path):
    # T17/L12 (ratio < target for "max"), T18 (ratio > target for "min"): a ratio of
    # exactly 1.2 against "≤ 1.2" or "≥ 1.2" read "**no**".
    summary, md = report(tmp_path, [_ratio("at-most", 0.012, 0.01),
                                    _ratio("at-least", 0.012, 0.01, sense="min")])
    ratios = section(md, "## Ratios")
    assert "| 1.2 | ≤ 1.2 | yes |" in table_row(ratios, "at-most", "numpy-seed")
    assert "| 1.2 | ≥ 1.2 | yes |" in table_row(ratios, "at-least", "numpy-seed")
    assert [r["met"] for r in summary["ratios"]] == [True, True]


@needs_matplotlib
def test_a_ratio_of_too_few_rounds_shows_no_quartiles_and_no_straddle(tmp_path):
    # T15 (quartiles shown from 2 rounds), T21 (‡ from them), T29 (the intro promised
    # quartiles), T28 (3 rounds listed as fewer than 3).
    two = _ratio("two-rounds", 0.011, 0.01, rounds=2, quartiles=(0.009, 0.013, 0.009, 0.011))
    three = _ratio("three-rounds", 0.011, 0.01, rounds=3)
    _, md = report(tmp_path, [two, three])
    ratios = section(md, "## Ratios")
    assert table_row(ratios, "two-rounds", "numpy-seed").endswith(
        "| 11.0 | 10.0 | 2 | 1.1 | ≤ 1.2 | yes |")
    assert "‡" not in ratios
    assert "this record kept no quartiles" in ratios
    assert "Fewer than 3 rounds, no spread: two-rounds / numpy-seed (sgd)." in ratios


@needs_matplotlib
def test_a_ratio_with_no_verdict_gets_no_straddle_mark(tmp_path):
    # T22: "— ‡" on a ratio whose target has no direction: a verdict that could go
    # the other way, where there is none. T27: the "?" went unexplained.
    pair = _ratio("no-sense", 0.0119, 0.01, sense=None,
                  quartiles=(0.011, 0.013, 0.0095, 0.0105))
    _, md = report(tmp_path, [pair])
    ratios = section(md, "## Ratios")
    assert table_row(ratios, "no-sense", "numpy-seed").endswith("| 1.19 | ? 1.2 | — |")
    assert "‡" not in ratios
    assert "? a target recorded without its direction (at most or at least): no verdict." \
        in ratios


@needs_matplotlib
def test_a_thread_count_recorded_for_one_side_only_is_not_called_different(tmp_path):
    # T26: "A at 1, B at None" as if the sides ran at different thread counts.
    _, md = report(tmp_path, [_ratio("one-side", 0.011, 0.01, threads_a=1)])
    assert "different CPU thread counts" not in md


# -- time to target ---------------------------------------------------------------------


def _torch_epochs():
    return [epoch("nnbackend-torch-cpu", "minibatch", 1_000, 2e-3),
            epoch("nnbackend-torch-cpu", "minibatch", 10_000, 18e-3)]


@pytest.mark.parametrize("median, flagged", [(60e-3, True), (0.5e-3, True), (30e-3, False)])
@needs_matplotlib
def test_a_runs_epochs_are_checked_against_the_epoch_timings_both_ways(tmp_path, median,
                                                                       flagged):
    # T02 (a factor of 20, not 2): 60 ms against 2 and 18 ms went unflagged. T03 (only
    # the upper side): epochs 4x faster than the epoch timings went unflagged.
    run = target("nnbackend-torch-cpu", "minibatch", True, 60, 1.0, epoch_median=median)
    _, md = report(tmp_path, _torch_epochs() + [run])
    ttt = section(md, "## Time to target loss")
    assert ("disagree with this label's epoch timings at N = 1,000 (2.00 ms) and 10,000 "
            "(18.0 ms)" in ttt) is flagged
    assert ("| nnbackend-torch-cpu ⚠ | 2,000 |" in ttt) is flagged


@needs_matplotlib
def test_a_run_at_a_measured_n_is_checked_against_that_timing(tmp_path):
    # T04 (m < n): with an epoch timing at the run's own N alone, nothing was checked.
    benches = [epoch("nnbackend-torch-cpu", "minibatch", 2_000, 4e-3),
               target("nnbackend-torch-cpu", "minibatch", True, 60, 1.0, epoch_median=0.1)]
    _, md = report(tmp_path, benches)
    assert ("its epochs (median 100 ms) disagree with this label's epoch timings at "
            "N = 2,000 (4.00 ms)") in section(md, "## Time to target loss")


@needs_matplotlib
def test_a_first_epoch_six_times_the_median_is_noted(tmp_path):
    # T01 (a factor of 50, not 5): a 12 ms first epoch against 2 ms went unnoted.
    run = target("nnbackend-jax-cpu", "batch", True, 100, 1.0, first_epoch_seconds=12e-3,
                 epoch_median=2e-3)
    _, md = report(tmp_path, [run])
    assert "first epoch 12.0 ms against a median of 2.00 ms (compilation, warm-up)" in md


@needs_matplotlib
def test_a_missed_run_names_the_range_of_epochs_the_others_took(tmp_path):
    # T10 (the fewest only): "took 12 epochs" where the runs that reached it took 12 and 60.
    benches = [target("nnbackend-numpy-cpu", "sgd", True, 12, 1.0),
               target("nnbackend-jax-cpu", "sgd", True, 60, 1.0),
               target("nnbackend-torch-cpu", "sgd", False, 300, 5.0)]
    _, md = report(tmp_path, benches)
    assert table_row(md, "nnbackend-torch-cpu", "2,000").endswith(
        "| the runs of this mode that reached it took 12–60 epochs |")


@needs_matplotlib
def test_a_final_loss_equal_to_the_target_reached_it(tmp_path):
    # L05 (final < target): a run that ended exactly at the target read "**no**".
    run = target("nnbackend-numpy-cpu", "batch", False, 100, 1.0, final_loss=0.0075)
    _, md = report(tmp_path, [run])
    assert "| 0.00750 | yes | 100 |" in table_row(md, "nnbackend-numpy-cpu", "2,000")


@needs_matplotlib
def test_a_budget_kind_without_its_budget_is_an_unrecorded_budget(tmp_path):
    # L18 (the kind kept without a budget): "Budget: an unrecorded budget per run, the
    # same for every backend" and a crash on the row that missed it.
    run = target("nnbackend-numpy-cpu", "batch", False, 100, 1.0, budget=None)
    _, md = report(tmp_path, [run])
    assert "Budget: not recorded for these runs" in md
    assert "**no**: not within an unrecorded budget (100 epochs run)" in md


# -- reading the records ----------------------------------------------------------------


@needs_matplotlib
def test_quartiles_without_an_iqr_still_judge_the_spread(tmp_path):
    # L02 (no IQR from q1 and q3): a record of quartiles but no "iqr" was never noisy.
    wide = epoch("nnbackend-numpy-cpu", "batch", 1_000, 1e-3, spread=0.8)
    for key in ("iqr", "min", "max"):
        del wide["stats"][key]
    summary, _ = report(tmp_path, [wide, epoch("nnbackend-numpy-cpu", "batch", 10_000, 1e-2)])
    assert [x["reasons"] for x in summary["noisy"]] == [
        ["IQR 80% of the median over 9 rounds (above 50%)"]]


@needs_matplotlib
def test_a_case_timed_two_epochs_a_call_is_shown_per_epoch(tmp_path):
    # L03 (> 2): a call of two epochs was shown as one epoch's time.
    rec = epoch("nnbackend-numpy-cpu", "batch", 1_000, 2e-3, epochs_per_call=2)
    _, md = report(tmp_path, [rec])
    assert table_row(md, "1,000", "1.00")
    assert "| 1.00 | 0.975–1.03 | 0.950–1.05 | 9 |" in section(md, "## batch descent")


@needs_matplotlib
def test_a_case_that_errored_after_its_timing_is_flagged(tmp_path):
    # L04 (only "failed"): an error after the timing (in teardown, say) left it solid.
    benches = _numpy((1_000, 10_000))
    cases = [{"name": benches[0]["name"], "outcome": "passed", "seconds": 1.0},
             {"name": benches[1]["name"], "outcome": "error", "reason": "teardown: OOM",
              "seconds": 1.0}]
    summary, md = report(tmp_path, benches, cases=cases)
    assert [(x["n_samples"], x["reasons"]) for x in summary["noisy"]] == [
        (10_000, ["its case did not pass after this timing was taken (error: teardown: OOM)"])]


# -- the tables' marks and notes ----------------------------------------------------------


@needs_matplotlib
def test_three_rounds_are_enough_for_a_spread_and_get_no_dagger(tmp_path):
    # TB01, TB02, TB04 (<= 3): a timing of 3 rounds was marked †, listed as "fewer than
    # 3 rounds" and said to have "no quartiles"; A07 (few_rounds <= 3): its speedups
    # were marked † and its exponent was not a finding.
    ns = (1_000, 10_000, 100_000)
    benches = _numpy(ns, rounds=3) + [epoch("numpy-seed", "batch", n, 2e-6 * n, rounds=3)
                                      for n in ns]
    summary, md = report(tmp_path, benches)
    assert "spread unknown:" not in md and " † |" not in md
    assert summary["exponents"]["small"]["nnbackend-numpy-cpu"]["batch"] == pytest.approx(1)
    assert not any(s["few_rounds"] for s in summary["speedups"])
    assert "no quartiles, so its spread is unknown" not in md
    assert table_row(section(md, "## batch descent"), "nnbackend-numpy-cpu", "1,000")


@needs_matplotlib
def test_a_noisy_timing_of_too_few_rounds_is_listed_under_its_flag_alone(tmp_path):
    # TB28: a timing flagged ⚠ (its case failed) was also listed under †.
    benches = _numpy((1_000, 10_000), rounds=2)
    cases = [{"name": benches[0]["name"], "outcome": "failed", "reason": "boom"}]
    _, md = report(tmp_path, benches, cases=cases)
    legend = next(line for line in md.splitlines() if line.startswith("⚠ flagged noisy"))
    assert legend == ("⚠ flagged noisy: nnbackend-numpy-cpu at N = 1,000 (why: the spread "
                      "table below). † fewer than 3 rounds, spread unknown: "
                      "nnbackend-numpy-cpu at N = 10,000.")


@needs_matplotlib
def test_where_quartiles_are_missing_the_tables_say_min_max_stands_in(tmp_path):
    # TB29 (as if some had quartiles): records with none got the note on every row and
    # not the one line above the table; TB07: a row without them among rows with them
    # got no note.
    old = _numpy((1_000, 10_000))
    for rec in old:
        for key in ("q1", "q3", "iqr"):
            del rec["stats"][key]
    _, md = report(tmp_path, old)
    assert "These results record no quartiles (made before they were kept)" in md
    assert "no quartiles recorded: min–max stands in" not in md
    (tmp_path / "mixed").mkdir()
    _, md = report(tmp_path / "mixed", old[:1] + _numpy((10_000,)))
    row = table_row(section(md, "## batch descent"), "nnbackend-numpy-cpu", "1,000")
    assert "no quartiles recorded: min–max stands in for the spread" in row
    assert "These results record no quartiles" not in md


@needs_matplotlib
def test_the_load_at_a_cases_start_is_named_on_noisy_rows_only(tmp_path):
    # TB27: every row carried its "1-min load", as if each needed explaining.
    benches = _numpy((1_000, 10_000), load_average=[1.5, 1.0, 1.0])
    benches[0]["stats"].update(q1=0.6e-3, q3=1.4e-3, iqr=0.8e-3)  # IQR 80 %
    _, md = report(tmp_path, benches)
    batch = section(md, "## batch descent")
    assert "1-min load 1.50 as it started" in table_row(batch, "nnbackend-numpy-cpu ⚠", "1,000")
    assert "1-min load" not in table_row(batch, "nnbackend-numpy-cpu", "10,000")


@needs_matplotlib
def test_a_size_measured_for_one_label_only_is_explained_under_the_table(tmp_path):
    # TB26: the "—" cells went unexplained.
    benches = _numpy((1_000, 10_000)) + [epoch("numpy-seed", "batch", 1_000, 2e-3)]
    _, md = report(tmp_path, benches)
    assert table_row(md, "10,000", "10.0", "—")
    assert "— not measured at that N (see \"Cases not measured\"" in md


@needs_matplotlib
def test_a_gpu_timed_at_no_n_of_numpys_says_so_not_that_no_gpu_ran(tmp_path):
    # TB19: "No GPU was measured." beside a GPU's timings. H04: the header said so too
    # where the GPU's device name was not recorded.
    gpu = [epoch("nnbackend-cupy-cuda", "batch", 2_000, 1e-3)]
    del gpu[0]["extra_info"]["device"]
    _, md = report(tmp_path, _numpy((1_000,)) + gpu)
    assert "No GPU label was measured at the same N as nnbackend-numpy-cpu." in md
    assert "No GPU was measured." not in md
    assert "- **GPU:** measured (device name not recorded)" in md


@needs_matplotlib
def test_the_header_names_the_float32_matmul_precision_of_each_label(tmp_path):
    # H05 ("full float32, except" dropped), H06 (any "highest" taken for all).
    benches = [epoch("nnbackend-numpy-cpu", "batch", 1_000, 1e-3, precision="highest"),
               epoch("nnbackend-torch-cpu", "batch", 1_000, 1e-3, precision="tf32")]
    _, md = report(tmp_path, benches)
    assert "- **Float32 matmuls:** full float32, except tf32 in nnbackend-torch-cpu" in md


def _env(start, end, cpus=2):
    return {"start": {"load_average": start, "cpu_count": cpus},
            "end": {"load_average": end, "cpu_count": cpus}}


@needs_matplotlib
def test_the_busy_machine_note_needs_a_load_above_the_cpus(tmp_path):
    # H07 (>=): a load of exactly 2.00 on 2 CPUs was "more runnable work than CPUs";
    # H08 (the cases' loads alone): a load of 3.5 at the run's end went unremarked.
    _, md = report(tmp_path, _numpy((1_000,)), bench_environment=_env([2, 1, 1], [1, 1, 1]))
    assert "more runnable work than CPUs" not in md
    (tmp_path / "b").mkdir()
    _, md = report(tmp_path / "b", _numpy((1_000,), load_average=[1.0, 1, 1]),
                   bench_environment=_env([1, 1, 1], [3.5, 1, 1]))
    assert "a load above 2 means more runnable work than CPUs" in md


@needs_matplotlib
def test_sizes_left_out_by_the_settings_are_listed_though_every_case_ran(tmp_path):
    # TB13: with no case missing, the sizes left out vanished from the report's end.
    # H03: the header did not announce them.
    benches = _numpy((1_000,))
    dropped = [{"model": "small", "mode": "sgd", "n_samples": 100_000,
                "implementations": ["nnbackend-numpy"], "reason": "above --sgd-max"}]
    _, md = report(tmp_path, benches, dropped=dropped, cases=[
        {"name": benches[0]["name"], "outcome": "passed", "seconds": 1.0}])
    assert "**Left out by the run's settings:** 1 size(s)" in md
    tail = section(md, "## Cases not measured")
    assert "| small | sgd | 100,000 | nnbackend-numpy | above --sgd-max |" in tail


@needs_matplotlib
def test_a_median_on_its_own_quartile_keeps_the_quartiles_as_its_spread(tmp_path):
    # A08 (lo < t < hi): a median equal to its Q1 (or Q3) fell back to min–max, and a
    # fall beyond the quartiles went unflagged; A09 (min–max first) the same.
    benches = [epoch("nnbackend-numpy-cpu", "batch", 1_000, 10e-3),
               epoch("nnbackend-numpy-cpu", "batch", 2_000, 8e-3)]
    benches[0]["stats"].update(q1=10e-3, q3=11e-3, iqr=1e-3, min=5e-3, max=20e-3)
    benches[1]["stats"].update(q1=7e-3, q3=8e-3, iqr=1e-3, min=4e-3, max=20e-3)
    summary, _ = report(tmp_path, benches)
    assert [x["n_samples"] for x in summary["noisy"]] == [1_000, 2_000]
    assert summary["noisy"][0]["reasons"] == [
        "the time falls from 10.0 ms at N = 1,000 to 8.00 ms at N = 2,000, beyond both spreads"]


@needs_matplotlib
def test_without_quartiles_a_min_max_wider_than_the_median_is_noisy(tmp_path):
    # A10 (> 3 rounds): three rounds were too few for the min–max rule; A11 (twice the
    # median): a range of 1.5 medians passed. A12 (the rule dropped) the same.
    benches = _numpy((1_000, 10_000), rounds=3)
    for rec in benches:
        for key in ("q1", "q3", "iqr"):
            del rec["stats"][key]
    benches[0]["stats"].update(min=0.5e-3, max=2e-3)
    summary, md = report(tmp_path, benches)
    assert [(x["n_samples"], x["reasons"]) for x in summary["noisy"]] == [
        (1_000, ["min–max 0.500–2.00 ms wider than the median over 3 rounds"])]


@needs_matplotlib
def test_duplicates_whose_spreads_touch_agree(tmp_path):
    # A13 (strict overlap): two copies whose quartiles meet at one point were said to
    # disagree "beyond each other's spreads".
    benches = [_exact("nnbackend-numpy-cpu", "batch", 1_000, 0.5, 0.375, 0.625),
               _exact("nnbackend-numpy-cpu", "batch", 1_000, 0.75, 0.625, 0.875)]
    summary, md = report(tmp_path, benches)
    assert summary["noisy"] == []
    assert "measured 2 times in these results (500, 750 ms, within each other's spreads)" \
        in md


@needs_matplotlib
def test_a_neighbour_of_one_round_is_not_said_to_differ_beyond_its_spread(tmp_path):
    # A16 (max of the two rounds): a one-round timing beside a nine-round one was
    # judged as if its spread were known, and both were flagged.
    benches = [epoch("nnbackend-numpy-cpu", "batch", 1_000, 1.44e-3, rounds=1),
               epoch("nnbackend-numpy-cpu", "batch", 10_000, 1.0e-3)]
    summary, _ = report(tmp_path, benches)
    assert summary["noisy"] == []


@needs_matplotlib
def test_a_crossover_from_two_round_timings_claims_no_overlap_of_their_quartiles(tmp_path):
    # A49: timings of two rounds (spread unknown, †) were also said to "lie within each
    # other's Q1–Q3", a spread the report says they do not have.
    summary, md = report(tmp_path, [epoch("nnbackend-numpy-cpu", "batch", 1_000, 1e-3),
                                    epoch("nnbackend-cupy-cuda", "batch", 1_000, 1.01e-3,
                                          spread=0.2, rounds=2)])
    (c,) = summary["crossovers"]
    assert c["few_rounds_n"] == [1_000] and c["overlap_n"] == []
    assert "within each other's Q1–Q3" not in md


@needs_matplotlib
def test_a_recorded_ratio_ten_percent_off_its_medians_is_named(tmp_path):
    # L10 (rel_tol 0.5): a record's ratio of 1.1 beside medians giving 1.0 was taken
    # silently as the ratio of its medians.
    pair = _ratio("off", 0.01, 0.01)
    pair["extra_info"]["ratio"] = 1.1
    summary, md = report(tmp_path, [pair])
    assert summary["ratios"][0]["recorded_ratio"] == 1.1
    assert "The record's ratio is not the ratio of its medians for: off / numpy-seed (sgd, " \
        "N = 2,000): recorded 1.10" in md


def test_one_label_timed_on_a_gpu_and_a_cpu_is_split_in_two():
    # L16: the two devices' timings were one curve under one label.
    from nnbackend.bench.report.load import rows_from_data

    def rec(gpu):
        return {"name": f"t[{gpu}]", "stats": {"median": 1e-3, "rounds": 5},
                "extra_info": {"kind": "epoch", "label": "mylib", "gpu": gpu,
                               "device_kind": "cuda" if gpu else "cpu", "mode": "batch",
                               "n_samples": 1000}}

    rows = rows_from_data({"benchmarks": [rec(True), rec(False)]})
    assert [(r["label"], r["raw_label"]) for r in rows] == [("mylib-gpu", "mylib"),
                                                              ("mylib-cpu", "mylib")]


def test_attempts_whose_medians_differ_two_and_a_half_times_are_named():
    # TB10 (3x, not 2x): attempts of 1.00 and 2.50 s a call went unremarked.
    from nnbackend.bench.report.tables import row_notes

    attempts = [{"median": 1.0, "iqr": 0.1}, {"median": 2.5, "iqr": 0.1}]
    row = {"rounds": 9, "q1": 0.9, "reruns": 1, "rerun_seconds": 1.0, "stable": True,
           "attempts": attempts}
    assert row_notes("x", "sgd", 1_000, row, {})[1] == (
        "its attempts' medians differ 2.5× (1.00, 2.50 s a call, the last kept): its time "
        "moved while it was timed")
