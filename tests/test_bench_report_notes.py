"""The report's notes, fed made-up results: each note says what the timings
show and stands on the rows it concerns, and nowhere else.

Issue 28's cases: a timing whose spread is too wide, neighbours in N that
disagree, exponents from fewer than 3 sizes, negative or poorly fitted
exponents, a note that belonged to another mode, time to target under one
budget, the header's load and threads, re-runs, and plots with one panel per
mode (and per peer) instead of many lines on one axis.
"""

import json
import re

import pytest

from nnbackend.bench.report import write_report
from nnbackend.bench.report import plots as P
from nnbackend.plot import require_matplotlib

try:
    require_matplotlib()
    _NO_MPL = None
except RuntimeError as exc:
    _NO_MPL = str(exc)
pytestmark = pytest.mark.skipif(_NO_MPL is not None, reason=f"write_report draws: {_NO_MPL}")

KINDS = {"nnbackend-numpy-cpu": ("nnbackend", "numpy", False),
         "nnbackend-torch-cpu": ("nnbackend", "torch", False),
         "nnbackend-jax-cpu": ("nnbackend", "jax", False),
         "nnbackend-cupy-cuda": ("nnbackend", "cupy", True),
         "numpy-seed": ("numpy-seed", "numpy", False),
         "torch-eager-cpu": ("torch-eager", "torch", False),
         "jax-scan-hand-cpu": ("jax-scan-hand", "jax", False),
         "jax-jit-step-cpu": ("jax-jit-step", "jax", False)}


def epoch(label, mode, n, median, spread=0.05, rounds=9, **extra):
    """A made-up epoch record: quartiles at median ± spread/2 of it, min–max ± spread."""
    impl, backend, gpu = KINDS[label]
    batch = {"batch": n, "minibatch": 64, "sgd": 1}[mode]
    info = {"kind": "epoch", "implementation": impl, "label": label, "backend": backend,
            "device": "GPU X" if gpu else "cpu", "device_kind": "cuda" if gpu else "cpu",
            "gpu": gpu, "model": "small", "mode": mode, "batch_size": batch, "n_samples": n,
            "steps": -(-n // batch), **extra}
    half = median * spread / 2
    stats = {"median": median, "q1": median - half, "q3": median + half, "iqr": 2 * half,
             "min": median - 2 * half, "max": median + 2 * half, "mean": median,
             "stddev": half, "rounds": rounds}
    return {"name": f"test_epoch[{label}-{mode}-{n}]", "stats": stats, "extra_info": info}


def target(label, mode, reached, epochs, seconds, budget_kind="seconds", budget=5.0,
           **extra):
    impl, backend, gpu = KINDS[label]
    info = {"kind": "time_to_target", "implementation": impl, "label": label,
            "backend": backend, "device_kind": "cpu", "gpu": gpu, "model": "small",
            "mode": mode, "batch_size": 64, "n_samples": 2000, "target_loss": 0.0075,
            "reached": reached, "epochs": epochs, "seconds": seconds,
            "final_loss": 0.007 if reached else 0.02, **extra}
    if budget_kind:
        info.update(budget_kind=budget_kind, budget=budget)
    return {"name": f"test_time_to_target[{label}-{mode}]", "stats": None, "extra_info": info}


def report(tmp_path, benches, **data):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"benchmarks": benches, **data}))
    summary = write_report(path, tmp_path / "out")
    return summary, (tmp_path / "out" / "report.md").read_text()


def table_row(md, *cells):
    """The one line of a Markdown table that starts with these cells."""
    start = "| " + " | ".join(cells) + " |"
    found = [line for line in md.splitlines() if line.startswith(start)]
    assert len(found) == 1, (start, found)
    return found[0]


def section(md, heading, end="\n## "):
    """From ``heading`` to the next ``end`` (a heading of the same level)."""
    start = md.index(heading)
    nxt = md.find(end, start + 1)
    return md[start:nxt if nxt >= 0 else None]


# -- spread and the noisy flag --------------------------------------------------


def test_a_timing_whose_iqr_exceeds_half_its_median_is_flagged_on_its_row_only(tmp_path):
    benches = [epoch("nnbackend-numpy-cpu", "batch", n, 1e-6 * n) for n in (1e3, 1e4, 1e5)]
    benches += [epoch("nnbackend-torch-cpu", "batch", 1_000, 2e-3, spread=0.8),  # IQR 80 %
                epoch("nnbackend-torch-cpu", "batch", 10_000, 1e-2),
                epoch("nnbackend-torch-cpu", "batch", 100_000, 1e-1)]
    for b in benches:
        b["extra_info"]["n_samples"] = int(b["extra_info"]["n_samples"])
    summary, md = report(tmp_path, benches)
    assert [(x["label"], x["n_samples"]) for x in summary["noisy"]] == [
        ("nnbackend-torch-cpu", 1_000)]
    # The time table marks the cell, and says which timings carry the mark.
    assert table_row(md, "1,000", "1.00", "2.00 ⚠")
    assert "⚠ flagged noisy: nnbackend-torch-cpu at N = 1,000 (why: the spread table below)." \
        in md
    # The spread table: median, Q1–Q3, min–max and rounds of every timing, and the reason
    # on the noisy row alone.
    batch = section(md, "## batch descent")
    row = table_row(batch, "nnbackend-torch-cpu ⚠", "1,000")
    assert "| 2.00 | 1.20–2.80 | 0.400–3.60 | 9 |" in row
    assert "noisy: IQR 80% of the median over 9 rounds (above 50%)" in row
    quiet = table_row(batch, "nnbackend-torch-cpu", "10,000")
    assert "| 10.0 | 9.75–10.2 | 9.50–10.5 | 9 | — | — |" in quiet
    assert md.count("noisy: IQR") == 1
    # The exponent fitted on it is not a finding, and says why.
    fit = summary["exponent_fits"]["small"]["nnbackend-torch-cpu"]["batch"]
    assert fit["flags"] == ["fitted on timings flagged noisy (N = 1,000)"]
    assert "nnbackend-torch-cpu" not in summary["exponents"]["small"]
    assert summary["exponents"]["small"]["nnbackend-numpy-cpu"]["batch"] == pytest.approx(1.0)
    assert "1 of 6 flagged noisy (⚠)" in md


def test_neighbours_that_disagree_beyond_their_spreads_are_both_flagged(tmp_path):
    # Issue 28's run: nnbackend-torch-cpu batch 0.38 ms at 1e3 and 242 ms at 1e4
    # (637x for 10x the rows), torch eager 56 ms at 1e3 and 10.5 ms at 1e4.
    benches = [epoch("nnbackend-numpy-cpu", "batch", 1_000, 1e-3),
               epoch("nnbackend-numpy-cpu", "batch", 10_000, 1e-2),
               epoch("nnbackend-torch-cpu", "batch", 1_000, 0.38e-3),
               epoch("nnbackend-torch-cpu", "batch", 10_000, 242e-3),
               epoch("torch-eager-cpu", "batch", 1_000, 56e-3),
               epoch("torch-eager-cpu", "batch", 10_000, 10.5e-3)]
    summary, md = report(tmp_path, benches)
    flagged = {(x["label"], x["n_samples"]): x["reasons"] for x in summary["noisy"]}
    assert set(flagged) == {("nnbackend-torch-cpu", 1_000), ("nnbackend-torch-cpu", 10_000),
                            ("torch-eager-cpu", 1_000), ("torch-eager-cpu", 10_000)}
    grows = ("the time grows 637× from N = 1,000 to N = 10,000 (10× the rows), beyond both "
             "spreads and faster than N^2")
    falls = ("the time falls from 56.0 ms at N = 1,000 to 10.5 ms at N = 10,000, beyond both "
             "spreads")
    assert flagged[("nnbackend-torch-cpu", 1_000)] == [grows]
    assert flagged[("torch-eager-cpu", 10_000)] == [falls]
    batch = section(md, "## batch descent")
    for n in ("1,000", "10,000"):
        assert grows in table_row(batch, "nnbackend-torch-cpu ⚠", n)
        assert falls in table_row(batch, "torch-eager-cpu ⚠", n)
        assert "noisy" not in table_row(batch, "nnbackend-numpy-cpu", n)
    assert table_row(md, "10,000", "10.0", "242 ⚠", "10.5 ⚠")
    # Speedups built on them are marked too; those of quiet timings are not.
    speed = section(md, "## Speedups")
    assert table_row(speed, "nnbackend-torch-cpu", "1,000") == \
        "| nnbackend-torch-cpu | 1,000 | 2.63× ⚠ | 147× ⚠ |"
    assert table_row(speed, "nnbackend-numpy-cpu", "1,000") == \
        "| nnbackend-numpy-cpu | 1,000 | — | 56.0× ⚠ |"


def test_wide_spreads_excuse_a_fall_that_they_cover(tmp_path):
    # 12 ms then 10 ms, but each with quartiles ±20 %: within noise, not a disagreement.
    benches = [epoch("nnbackend-numpy-cpu", "minibatch", 1_000, 12e-3, spread=0.4),
               epoch("nnbackend-numpy-cpu", "minibatch", 2_000, 10e-3, spread=0.4)]
    summary, _ = report(tmp_path, benches)
    assert summary["noisy"] == []


def test_one_round_has_no_spread_and_says_so(tmp_path):
    benches = [epoch("nnbackend-numpy-cpu", "batch", 1_000, 1e-3, rounds=1),
               epoch("nnbackend-numpy-cpu", "batch", 10_000, 1e-2)]
    _, md = report(tmp_path, benches)
    assert table_row(md, "1,000", "1.00 †")
    assert "† fewer than 3 rounds, spread unknown: nnbackend-numpy-cpu at N = 1,000." in md
    assert "1 round: no quartiles, so its spread is unknown" in table_row(
        section(md, "## batch descent"), "nnbackend-numpy-cpu †", "1,000")


# -- exponents -------------------------------------------------------------------


def test_fewer_than_three_sizes_give_no_exponent_and_say_why(tmp_path):
    benches = [epoch("nnbackend-numpy-cpu", mode, n, 1e-6 * n)
               for mode in ("batch", "sgd") for n in (1_000, 10_000)]
    summary, md = report(tmp_path, benches)
    assert summary["exponents"]["small"] == {}
    for mode in ("batch", "sgd"):
        fit = summary["exponent_fits"]["small"]["nnbackend-numpy-cpu"][mode]
        assert fit["slope"] is None and fit["r2"] is None
        assert fit["reason"] == "2 sizes measured (N = 1,000, 10,000); an exponent needs at least 3"
        assert table_row(md, "nnbackend-numpy-cpu", mode).endswith(
            "| — | — | no exponent: 2 sizes measured (N = 1,000, 10,000); an exponent needs "
            "at least 3 |")
    # No linearity finding in the summary from two points.
    assert "## Summary" not in md
    assert "no exponent that is a finding" in section(md, "## Scaling")


def test_a_negative_exponent_is_flagged_never_a_finding(tmp_path):
    # Falling times within wide spreads (not neighbours that disagree): the fit is
    # negative, and the report will not call it a finding.
    times = {1_000: 20e-3, 10_000: 15e-3, 100_000: 9e-3}
    benches = [epoch("nnbackend-jax-cpu", "minibatch", n, t, spread=0.9, rounds=9)
               for n, t in times.items()]
    benches += [epoch("nnbackend-numpy-cpu", "minibatch", n, 1e-6 * n) for n in times]
    summary, md = report(tmp_path, benches)
    fit = summary["exponent_fits"]["small"]["nnbackend-jax-cpu"]["minibatch"]
    assert fit["slope"] < 0
    assert fit["flags"][0].startswith("negative: the time falls as N grows")
    assert "nnbackend-jax-cpu" not in summary["exponents"]["small"]
    row = table_row(md, "nnbackend-jax-cpu", "minibatch")
    assert f"| ({fit['slope']:.2f}) |" in row and "**not a finding**: negative" in row
    summary_section = section(md, "## Summary")
    assert "nnbackend-jax-cpu" not in summary_section
    assert "nnbackend-numpy-cpu, minibatch: epoch cost grows linearly" in summary_section


def test_a_poorly_fitted_exponent_is_flagged_with_its_r2(tmp_path):
    # Flat, then a 27x jump over 10x the rows (not beyond N^2, so not a disagreement).
    times = {10_000: 1.0e-3, 100_000: 1.1e-3, 1_000_000: 30e-3}
    benches = [epoch("nnbackend-numpy-cpu", "batch", n, t) for n, t in times.items()]
    summary, md = report(tmp_path, benches)
    assert summary["noisy"] == []
    fit = summary["exponent_fits"]["small"]["nnbackend-numpy-cpu"]["batch"]
    assert fit["slope"] > 0 and fit["r2"] < 0.9
    assert fit["flags"] == [f"poor fit: R² {fit['r2']:.2f} is below 0.9, the times follow no "
                            "single power of N over these sizes"]
    assert summary["numpy_linear"]["small"] == {}  # nothing judged from a poor fit
    assert "epoch cost grows linearly with N (exponent" not in md
    assert "does not grow linearly" not in md
    row = table_row(md, "nnbackend-numpy-cpu", "batch")
    assert f"| {fit['r2']:.3f} | **not a finding**: poor fit" in row


def test_the_range_note_stands_on_the_rows_it_concerns(tmp_path):
    # Issue 28: "Batch was measured only up to N = 10,000 (one Python step per row)"
    # appeared on batch and minibatch rows. Here batch is fitted in range and sgd
    # below it: the note is on sgd's row, and says what was measured, not why.
    benches = [epoch("nnbackend-numpy-cpu", "batch", n, 1e-6 * n)
               for n in (10_000, 100_000, 1_000_000)]
    benches += [epoch("nnbackend-numpy-cpu", "sgd", n, 1e-5 * n) for n in (100, 1_000, 10_000)]
    _, md = report(tmp_path, benches)
    batch = table_row(md, "nnbackend-numpy-cpu", "batch")
    sgd = table_row(md, "nnbackend-numpy-cpu", "sgd")
    assert batch.endswith("| finding |")
    assert "fitted on N outside 10,000..1,000,000, where fewer than 3 were measured" in sgd
    assert md.count("fitted on N outside") == 1
    assert "Python step" not in md


# -- time to target ----------------------------------------------------------------


def test_time_to_target_states_the_one_budget_and_what_missed_it(tmp_path):
    # Issue 28: numpy batch "not reached" after 165 epochs in 5 s, jax reached it
    # after 1891: under one time budget, and the report says which.
    benches = [epoch("nnbackend-numpy-cpu", "batch", n, 1e-5 * n) for n in (1_000, 10_000)]
    benches += [target("nnbackend-numpy-cpu", "batch", False, 165, 5.02,
                       first_epoch_seconds=0.03, epoch_median=0.03, epoch_q1=0.029,
                       epoch_q3=0.031),
                target("nnbackend-jax-cpu", "batch", True, 1891, 4.1,
                       first_epoch_seconds=1.2, epoch_median=0.002, epoch_q1=0.0019,
                       epoch_q3=0.0021),
                target("nnbackend-numpy-cpu", "sgd", True, 3, 2.5)]
    _, md = report(tmp_path, benches)
    ttt = section(md, "## Time to target loss")
    assert ttt.count("Budget: 5 s of training per run, the same for every backend.") == 1
    batch = section(ttt, "### batch", "\n### ")
    missed = table_row(batch, "nnbackend-numpy-cpu", "2,000")
    assert "| **no**: not within 5 s (165 epochs run) | 165 | 5.02 | 30.0 ms (29.0 ms–31.0 ms)" \
        in missed
    assert missed.endswith("| the runs of this mode that reached it took 1,891 epochs |")
    reached = table_row(batch, "nnbackend-jax-cpu", "2,000")
    assert "| yes | 1891 |" in reached
    assert ("first epoch 1.20 s against a median of 2.00 ms (compilation, warm-up): counted "
            "in its seconds") in reached
    assert "took" not in reached  # the epochs note is for the runs that missed
    # sgd's run reached it: no note about batch's epochs there.
    assert table_row(section(ttt, "### sgd", "\n### "), "nnbackend-numpy-cpu",
                     "2,000").endswith("| — |")


def test_a_run_whose_epochs_disagree_with_the_epoch_timings_is_flagged(tmp_path):
    # As on this machine: torch's mini-batch epochs took 894 ms in its time-to-target
    # run, 1.96 ms and 18.0 ms in the epoch cases at N = 1e3 and 1e4.
    benches = [epoch("nnbackend-torch-cpu", "minibatch", 1_000, 1.96e-3),
               epoch("nnbackend-torch-cpu", "minibatch", 10_000, 18.0e-3),
               epoch("nnbackend-numpy-cpu", "minibatch", 1_000, 0.6e-3),
               epoch("nnbackend-numpy-cpu", "minibatch", 10_000, 6e-3),
               target("nnbackend-torch-cpu", "minibatch", False, 6, 5.17, epoch_median=0.894,
                      epoch_q1=0.80, epoch_q3=0.95),
               target("nnbackend-numpy-cpu", "minibatch", True, 60, 0.106, epoch_median=1.29e-3,
                      epoch_q1=1.25e-3, epoch_q3=1.35e-3),
               target("nnbackend-jax-cpu", "minibatch", True, 60, 0.6, epoch_median=1e-3,
                      epoch_q1=0.5e-3, epoch_q3=2e-3)]
    _, md = report(tmp_path, benches)
    ttt = section(md, "## Time to target loss")
    torch = table_row(ttt, "nnbackend-torch-cpu ⚠", "2,000")
    assert ("⚠ its epochs (median 894 ms) disagree with this label's epoch timings at N = 1,000 "
            "(1.96 ms) and 10,000 (18.0 ms): the machine was busier during this run") in torch
    assert table_row(ttt, "nnbackend-numpy-cpu", "2,000").endswith("| — |")
    jax = table_row(ttt, "nnbackend-jax-cpu ⚠", "2,000")  # no epoch timings: its own spread
    assert "⚠ its epoch times are noisy: IQR 150% of the median over 60 epochs" in jax


def test_an_epoch_budget_and_mixed_budgets_are_worded_as_such(tmp_path):
    benches = [target("nnbackend-numpy-cpu", "batch", False, 2000, 12.3, "epochs", 2000),
               target("nnbackend-jax-cpu", "batch", True, 1891, 4.1, "epochs", 2000)]
    _, md = report(tmp_path, benches)
    assert "Budget: 2,000 epochs per run, the same for every backend, with no time limit" in md
    assert "**no**: not within 2,000 epochs (12.3 s)" in md
    mixed = [target("nnbackend-numpy-cpu", "batch", False, 165, 5.0),
             target("nnbackend-jax-cpu", "batch", True, 1891, 4.1, "epochs", 2000)]
    (tmp_path / "m").mkdir()
    _, md = report(tmp_path / "m", mixed)
    assert "**The runs had different budgets** (2,000 epochs, 5 s of training)" in md
    # A record from before budgets were kept: max_seconds, and a 10,000-epoch cap.
    legacy = [target("nnbackend-numpy-cpu", "batch", False, 10_000, 3.0, budget_kind=None,
                     max_seconds=30)]
    (tmp_path / "l").mkdir()
    _, md = report(tmp_path / "l", legacy)
    assert "Budget: 30 s of training per run" in md
    assert "each also stopped at 10,000 epochs, whichever came first" in md


# -- header, re-runs ---------------------------------------------------------------


LOAD = {"start": {"load_average": [1.13, 1.07, 0.9], "cpu_count": 2, "thread_pools": [
            {"api": "blas", "library": "openblas", "version": "0.3.31", "threads": 2},
            {"api": "openmp", "library": "openmp", "version": None, "threads": 2}]},
        "end": {"load_average": [2.61, 1.5, 1.0], "cpu_count": 2, "thread_pools": [
            {"api": "blas", "library": "openblas", "version": "0.3.31", "threads": 1,
             "file": "libscipy_openblas64_.so"},
            {"api": "torch", "library": "torch intra-op", "version": None, "threads": 2}]},
        "reruns": {"per_case": 4.0, "total": 60.0, "spent": 1.5}}


def test_the_header_says_how_busy_the_machine_was_and_with_how_many_threads(tmp_path):
    benches = [epoch("nnbackend-numpy-cpu", "batch", 1_000, 1e-3, load_average=[1.5, 1, 1]),
               epoch("nnbackend-numpy-cpu", "batch", 10_000, 1e-2, load_average=[2.3, 1, 1])]
    _, md = report(tmp_path, benches, bench_environment=LOAD)
    load = next(line for line in md.splitlines() if line.startswith("- **Machine load:**"))
    assert ("load average (1, 5, 15 min) 1.13, 1.07, 0.90 at the start and 2.61, 1.50, 1.00 "
            "at the end, on 2 logical CPUs") in load
    assert "1-min load as the cases started: 1.50 to 2.30 (median 1.90)" in load
    assert "a load above 2 means more runnable work than CPUs" in load
    threads = next(line for line in md.splitlines() if line.startswith("- **Threads:**"))
    assert threads == ("- **Threads:** BLAS openblas 0.3.31 (libscipy_openblas64_.so) with 1 "
                       "thread; torch intra-op with 2 threads")
    no_ctl = dict(LOAD, end=dict(LOAD["end"], thread_pools=None),
                  start=dict(LOAD["start"], thread_pools=None))
    (tmp_path / "b").mkdir()
    _, md = report(tmp_path / "b", benches, bench_environment=no_ctl)
    assert ("- **Threads:** unknown: threadpoolctl was not installed where the suite ran "
            "(pip install threadpoolctl)") in md
    (tmp_path / "c").mkdir()
    _, md = report(tmp_path / "c", benches)
    assert "- **Machine load:** not recorded (results made before the suite recorded it)" in md


def test_re_runs_are_reported_per_case_and_in_the_header(tmp_path):
    attempts = [{"rounds": 9, "median": 2e-3, "q1": 1.2e-3, "q3": 3.2e-3, "iqr": 2e-3,
                 "min": 1e-3, "max": 9e-3},
                {"rounds": 9, "median": 1.1e-3, "q1": 1.05e-3, "q3": 1.15e-3, "iqr": 1e-4,
                 "min": 1e-3, "max": 1.3e-3}]
    benches = [epoch("nnbackend-numpy-cpu", "batch", 1_000, 1.1e-3, reruns=1,
                     rerun_seconds=0.02, stable=True, stopped="stable after 1 re-run(s)",
                     attempts=attempts),
               epoch("nnbackend-numpy-cpu", "batch", 10_000, 1e-2, spread=0.9, reruns=2,
                     rerun_seconds=3.9, stable=False, attempts=[attempts[0]] * 3,
                     stopped="the 4 s a case may spend on re-runs left too little for 3 "
                             "more rounds"),
               epoch("nnbackend-numpy-cpu", "batch", 100_000, 1e-1, reruns=0, stable=True,
                     stopped="its spread was within bounds", attempts=[attempts[1]])]
    _, md = report(tmp_path, benches, bench_environment=LOAD)
    batch = section(md, "## batch descent")
    steady = table_row(batch, "nnbackend-numpy-cpu", "1,000")
    assert "| 1 | re-run 1× (0.0200 s; earlier attempts' IQR 100% of their medians); these " \
           "figures are the last attempt's |" in steady
    noisy = table_row(batch, "nnbackend-numpy-cpu ⚠", "10,000")
    assert "re-run 2× (3.90 s; earlier attempts' IQR 100%, 100% of their medians)" in noisy
    assert "still too wide: the 4 s a case may spend on re-runs left too little" in noisy
    assert table_row(batch, "nnbackend-numpy-cpu", "100,000").endswith("| 0 | — |")
    assert ("- **Re-runs:** 2 case(s) re-timed because their spread was too wide (3 re-run(s), "
            "3.92 s extra); 1 still too wide when the budget ran out; budget 4 s per case, "
            "60 s for the run") in md


def test_ratio_pairs_show_each_sides_spread_and_flag_a_wide_one(tmp_path):
    def pair(a, b, med_a, q_a, med_b, q_b):
        return {"name": f"test_ratio[{a}-{b}]", "stats": {"median": 1.0, "rounds": 9},
                "extra_info": {"kind": "ratio", "label_a": a, "label_b": b, "mode": "sgd",
                               "n_samples": 2000, "median_a": med_a, "median_b": med_b,
                               "ratio": med_a / med_b, "q1_a": q_a[0], "q3_a": q_a[1],
                               "q1_b": q_b[0], "q3_b": q_b[1], "rounds": 9, "target": 1.2,
                               "sense": "max", "met": med_a / med_b <= 1.2}}

    benches = [pair("nnbackend-numpy-cpu", "numpy-seed", 0.010, (0.0095, 0.0105),
                    0.009, (0.0088, 0.0093)),
               pair("nnbackend-torch-cpu", "torch-eager-cpu", 0.010, (0.006, 0.02),
                    0.02, (0.019, 0.021))]
    _, md = report(tmp_path, benches)
    ratios = section(md, "## Ratios")
    assert table_row(ratios, "nnbackend-numpy-cpu", "numpy-seed") == (
        "| nnbackend-numpy-cpu | numpy-seed | small | sgd | 2,000 | 10.0 (9.50–10.5) | "
        "9.00 (8.80–9.30) | 9 | 1.11 | ≤ 1.2 | yes |")
    assert "| 10.0 (6.00–20.0) ⚠ | 20.0 (19.0–21.0) |" in table_row(
        ratios, "nnbackend-torch-cpu", "torch-eager-cpu")
    assert ("⚠ a side whose IQR is above half its median: the ratio is uncertain, whatever its "
            "target says: nnbackend-torch-cpu / torch-eager-cpu (sgd, N = 2,000).") in ratios


def test_ratio_verdicts_follow_the_ratio_with_digits_that_do_not_contradict_them(tmp_path):
    def pair(a, ratio, met, quartiles=(0.0099, 0.0101), sense="max"):
        return {"name": f"test_ratio[{a}]", "stats": {"median": 1.0, "rounds": 9},
                "extra_info": {"kind": "ratio", "label_a": a, "label_b": "numpy-seed",
                               "mode": "sgd", "n_samples": 2000, "median_a": 0.01 * ratio,
                               "median_b": 0.01, "ratio": ratio, "q1_a": 0.0099 * ratio,
                               "q3_a": 0.0101 * ratio, "q1_b": quartiles[0],
                               "q3_b": quartiles[1], "rounds": 9, "target": 1.2,
                               "sense": sense, "met": met}}

    bare = pair("no-medians", 1.1, True)
    for key in ("median_a", "median_b"):
        del bare["extra_info"][key]
    benches = [bare, pair("just-under", 1.19987, True), pair("just-over", 1.2004, False),
               pair("flag-wrong", 2.0, True), pair("wide", 1.1, True, (0.008, 0.012)),
               pair("no-sense", 1.1, True, sense=None)]
    _, md = report(tmp_path, benches)
    ratios = section(md, "## Ratios")
    # Within 1% of the target: the quartiles straddle it as well (‡).
    assert "| 1.1999 | ≤ 1.2 | yes ‡ |" in table_row(ratios, "just-under", "numpy-seed")
    assert "| 1.2004 | ≤ 1.2 | **no** ‡ |" in table_row(ratios, "just-over", "numpy-seed")
    assert "| 2 | ≤ 1.2 | **no** |" in table_row(ratios, "flag-wrong", "numpy-seed")
    assert ("The record's own verdict differs from its ratio and target for: flag-wrong / "
            "numpy-seed (sgd, N = 2,000)") in ratios
    assert "| 1.1 | ≤ 1.2 | yes ‡ |" in table_row(ratios, "wide", "numpy-seed")
    assert "‡ the sides' quartiles allow a ratio on either side of the target" in ratios
    assert "| 1.1 | ? 1.2 | — |" in table_row(ratios, "no-sense", "numpy-seed")
    assert "| — | — | 9 | 1.1 | ≤ 1.2 | yes |" in table_row(ratios, "no-medians", "numpy-seed")


def test_many_earlier_attempts_are_summed_up_not_listed():
    from nnbackend.bench.report.tables import row_notes

    attempts = [{"median": 1.0, "iqr": v} for v in (0.5, 1.5, 1.0, 0.8, 2.0)] + [
        {"median": 1.0, "iqr": 0.1}]
    row = {"rounds": 5, "q1": 0.95, "reruns": 5, "rerun_seconds": 3.0, "stable": True,
           "attempts": attempts}
    (note,) = row_notes("x", "sgd", 1_000, row, {})
    assert note == ("re-run 5× (3.00 s; earlier attempts' IQR 50% to 200% (median 100%) of "
                    "their medians); these figures are the last attempt's")


def test_attempts_whose_medians_moved_are_named_with_their_medians():
    from nnbackend.bench.report.tables import row_notes

    row = {"rounds": 5, "q1": 0.3, "reruns": 1, "rerun_seconds": 1.0, "stable": True,
           "attempts": [{"median": 0.00729, "iqr": 0.02}, {"median": 0.316, "iqr": 0.01}]}
    notes = row_notes("x", "batch", 256, row, {})
    assert notes[-1] == ("its attempts' medians differ 43.3× (0.00729, 0.316 s a call, the "
                         "last kept): its time moved while it was timed")
    row["attempts"][0]["median"] = 0.2  # within 2x: nothing more said
    assert len(row_notes("x", "batch", 256, row, {})) == 1


# -- plots ----------------------------------------------------------------------------


@pytest.fixture
def figures(monkeypatch):
    """What each figure held when it was saved: ``{file name: [axes summary]}``."""
    seen = {}
    real = P._save

    def spy(plt, fig, path):
        seen[path.rsplit("/", 1)[-1]] = [{
            "title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
            "xscale": ax.get_xscale(), "yscale": ax.get_yscale(),
            # Curves carry markers; the 1x and crossover lines none, error-bar caps "_".
            "curves": sum(1 for line in ax.get_lines()
                          if line.get_marker() not in ("None", "", "_", "|")),
            "texts": [t.get_text() for t in ax.texts],
            "rings": sum(1 for c in ax.collections
                         if c.get_edgecolor().size and tuple(c.get_edgecolor()[0][:3])
                         == (1.0, 0.0, 0.0)),
        } for ax in fig.axes]
        real(plt, fig, path)

    monkeypatch.setattr(P, "_save", spy)
    return seen


def test_the_peer_speedup_plot_has_a_panel_per_peer_and_mode(tmp_path, figures):
    # The quick run: 3 nnbackend backends and 4 peers on a CPU: 12 lines on
    # each mode's axis before; now one panel per (peer, mode), 3 lines in each.
    ours = ("nnbackend-numpy-cpu", "nnbackend-torch-cpu", "nnbackend-jax-cpu")
    peers = ("numpy-seed", "torch-eager-cpu", "jax-scan-hand-cpu", "jax-jit-step-cpu")
    benches = [epoch(lab, mode, n, 1e-6 * n * (i + 1))
               for i, lab in enumerate(ours + peers) for mode in ("batch", "minibatch", "sgd")
               for n in (1_000, 10_000)]
    benches.append(epoch("numpy-seed", "batch", 100_000, 1.0, spread=0.9))  # noisy
    summary, _ = report(tmp_path, benches)
    assert summary["speedup_plot"] == {"small": "peers"}
    panels = figures["speedup.png"]
    assert len(panels) == 12
    assert [p["title"] for p in panels[:4]] == ["batch: over numpy-seed",
                                               "minibatch: over numpy-seed",
                                               "sgd: over numpy-seed",
                                               "batch: over torch-eager-cpu"]
    assert [p["curves"] for p in panels] == [3] * 12, panels
    assert all(p["xscale"] == p["yscale"] == "log" and p["xlabel"] == "N, samples (log scale)"
               for p in panels)
    epoch_panels = figures["epoch_time.png"]
    assert [p["title"] for p in epoch_panels] == ["batch", "minibatch", "sgd"]
    assert epoch_panels[0]["ylabel"] == "time per epoch, s (log scale)"
    assert epoch_panels[0]["curves"] == 7
    assert [p["rings"] for p in epoch_panels] == [1, 0, 0]


def test_the_epoch_plot_marks_the_gpu_crossover(tmp_path, figures):
    benches = []
    for n in (1_000, 10_000, 100_000):
        benches.append(epoch("nnbackend-numpy-cpu", "batch", n, 1e-6 * n))
        benches.append(epoch("nnbackend-cupy-cuda", "batch", n, 5e-3 + 1e-8 * n))
    summary, md = report(tmp_path, benches)
    (c,) = summary["crossovers"]
    panel = figures["epoch_time.png"][0]
    assert any(re.fullmatch(r"GPU faster from\nN ≈ [\d,]+", t) for t in panel["texts"])
    assert any(t.startswith("crossover\nN ≈") for t in figures["speedup.png"][0]["texts"])
    assert c["status"] == "crossover"
    n = c["text"].partition("≈ ")[2].partition(" ")[0]
    assert (f"| batch | nnbackend-cupy-cuda | {n} | GPU faster from N ≈ {n} (between the "
            "measured 1,000 and 10,000) |") in md
