"""The bench report kept honest: results files mutated until the
report would say more than its measurements support, or crash.

Each test names what the report must do; its comment says what it did before.
"""

import json

from nnbackend.bench.report import main
from test_bench_report import needs_matplotlib
from test_bench_report_notes import epoch, report, section, table_row, target

pytestmark = needs_matplotlib  # write_report draws: skipped, with the reason, without it


def _linear(label, mode="batch", ns=(1_000, 10_000, 100_000), per_row=1e-6, **kw):
    return [epoch(label, mode, n, per_row * n, **kw) for n in ns]


def _cases(benches, **outcomes):
    """A passed entry per benchmark, but those named in ``outcomes`` (name: (outcome, reason))."""
    out = []
    for b in benches:
        outcome, reason = outcomes.get(b["name"], ("passed", None))
        out.append({"name": b["name"], "outcome": outcome, "reason": reason, "seconds": 1.0})
    return out


def test_a_case_that_failed_after_it_was_timed_is_flagged_not_called_untimed(tmp_path):
    # Before: the timing stood in every table as solid, and the report also said
    # "1 case(s) of this run have no timing above" about it.
    benches = _linear("nnbackend-numpy-cpu") + _linear("nnbackend-cupy-cuda", per_row=1e-7)
    failed = benches[4]["name"]  # nnbackend-cupy-cuda at N = 10,000
    summary, md = report(tmp_path, benches, cases=_cases(
        benches, **{failed: ("failed", "call: RuntimeError: re-run ran out of memory")}))
    assert "have no timing above" not in md and "**Not measured:**" not in md
    noisy = [x for x in summary["noisy"] if x["label"] == "nnbackend-cupy-cuda"]
    assert [x["n_samples"] for x in noisy] == [10_000]
    assert "re-run ran out of memory" in " ".join(noisy[0]["reasons"])
    assert table_row(md, "nnbackend-cupy-cuda ⚠", "10,000")


def test_a_timing_with_no_usable_time_is_named_not_silently_dropped(tmp_path):
    # Before: a zero (or NaN, negative) median made the timing vanish; its cell read
    # "— not measured at that N (see "Cases not measured")", and no such section existed.
    benches = _linear("nnbackend-numpy-cpu")
    benches[1]["stats"].update(median=0.0, q1=0.0, q3=0.0, min=0.0, max=0.0, mean=0.0)
    _, md = report(tmp_path, benches, cases=_cases(benches))
    assert "**Not measured:** 1 case(s)" in md
    missing = section(md, "## Cases not measured")
    assert "`test_epoch[nnbackend-numpy-cpu-batch-10000]`" in missing


def test_duplicated_timings_that_disagree_are_flagged_not_silently_the_fastest(tmp_path):
    # Before: the same case recorded twice (30 ms and 10 ms) showed as one solid 10 ms.
    benches = _linear("nnbackend-numpy-cpu", per_row=1e-6)
    benches.append(epoch("nnbackend-numpy-cpu", "batch", 10_000, 0.030))
    benches += _linear("numpy-seed", ns=(10_000,), per_row=1.001e-6)
    benches.append(epoch("numpy-seed", "batch", 10_000, 0.01002))
    summary, md = report(tmp_path, benches)
    noisy = {(x["label"], x["n_samples"]): x["reasons"] for x in summary["noisy"]}
    assert ("nnbackend-numpy-cpu", 10_000) in noisy
    assert "30.0" in " ".join(noisy[("nnbackend-numpy-cpu", 10_000)])
    # Two that agree within their spreads are not noisy, but the row says so.
    assert ("numpy-seed", 10_000) not in noisy
    assert "measured 2 times" in table_row(md, "numpy-seed", "10,000")


def test_time_to_target_reached_follows_the_losses_recorded(tmp_path):
    # Before: "reached: yes" beside a final loss of 0.2 against a target of 0.0075, and
    # "**no**: not within 5 s" for a run of 0.1 s whose final loss was under the target.
    benches = [target("nnbackend-numpy-cpu", "batch", True, 100, 1.0, final_loss=0.2),
               target("nnbackend-torch-cpu", "batch", False, 60, 0.1, final_loss=0.007)]
    _, md = report(tmp_path, benches)
    ttt = section(md, "## Time to target")
    assert "| **no**" in table_row(ttt, "nnbackend-numpy-cpu", "2,000")
    assert "| yes |" in table_row(ttt, "nnbackend-torch-cpu", "2,000")
    assert "the record says" in table_row(ttt, "nnbackend-numpy-cpu", "2,000")


def _pair(a, med_a, med_b, ratio, met, target_=1.5):
    return {"name": f"test_ratio[{a}]", "stats": {"median": 1.0, "rounds": 9},
            "extra_info": {"kind": "ratio", "label_a": a, "label_b": "torch-eager-cuda",
                           "mode": "batch", "n_samples": 10**6, "median_a": med_a,
                           "median_b": med_b, "ratio": ratio, "rounds": 9,
                           "target": target_, "sense": "max", "met": met}}


def test_a_ratio_that_disagrees_with_its_medians_is_recomputed_and_named(tmp_path):
    # Before: "A 30.0 ms, B 10.0 ms, A / B 0.7, ≤ 1.5: yes", in report.md and summary.json.
    summary, md = report(tmp_path, [_pair("nnbackend-cupy-cuda", 0.03, 0.01, 0.7, True)])
    row = table_row(section(md, "## Ratios"), "nnbackend-cupy-cuda", "torch-eager-cuda")
    assert "| 3 | ≤ 1.5 | **no** |" in row
    assert "0.7" in section(md, "## Ratios").split(row)[1]  # the record's ratio is named
    assert summary["ratios"][0]["ratio"] == 3.0 and summary["ratios"][0]["met"] is False


def test_summary_json_gives_the_ratio_verdict_the_report_gives(tmp_path):
    # Before: report.md said "yes" (1.34 <= 1.5) but summary.json kept the record's
    # "met": false.
    summary, md = report(tmp_path, [_pair("nnbackend-jax-gpu", 0.00134, 0.001, 1.34, False)])
    assert "| yes |" in table_row(md, "nnbackend-jax-gpu", "torch-eager-cuda")
    assert summary["ratios"][0]["met"] is True


def test_a_ratio_whose_sides_ran_on_different_cards_gets_no_verdict(tmp_path):
    # Before: an H200 side over an H100 side read "0.5, ≤ 1.5: yes", as if one card.
    other = _pair("nnbackend-cupy-cuda", 0.0005, 0.001, 0.5, True)
    other["extra_info"].update(device_a="NVIDIA H200", device_b="NVIDIA H100 80GB HBM3")
    same = _pair("nnbackend-jax-gpu", 0.0005, 0.001, 0.5, True)
    same["extra_info"].update(device_a="NVIDIA H200", device_b="NVIDIA H200")
    cpu_gpu = _pair("nnbackend-numpy-cpu", 0.0005, 0.001, 0.5, True)
    cpu_gpu["extra_info"].update(device_a="CPU AMD EPYC", device_b="NVIDIA H200")
    summary, md = report(tmp_path, [other, same, cpu_gpu])
    ratios = section(md, "## Ratios")
    assert "| 0.5 | ≤ 1.5 | — |" in table_row(ratios, "nnbackend-cupy-cuda", "torch-eager-cuda")
    assert "A on NVIDIA H200, B on NVIDIA H100 80GB HBM3" in ratios
    assert "| yes |" in table_row(ratios, "nnbackend-jax-gpu", "torch-eager-cuda")
    assert "| yes |" in table_row(ratios, "nnbackend-numpy-cpu", "torch-eager-cuda")
    verdicts = {r["label_a"]: (r["met"], r["other_cards"]) for r in summary["ratios"]}
    assert verdicts == {"nnbackend-cupy-cuda": (None, True), "nnbackend-jax-gpu": (True, False),
                        "nnbackend-numpy-cpu": (True, False)}


def test_a_case_said_to_pass_that_left_no_record_is_listed_not_measured(tmp_path):
    # Before: a case the run called passed but with no record (lost, or timing
    # disabled) vanished from the report without a word.
    benches = _linear("nnbackend-numpy-cpu")
    cases = _cases(benches) + [{"name": "test_epoch[nnbackend-cupy-cuda-batch-1000]",
                                "outcome": "passed", "reason": None, "seconds": 1.0}]
    _, md = report(tmp_path, benches, cases=cases)
    assert "**Not measured:** 1 case(s)" in md
    missing = section(md, "## Cases not measured")
    assert "`test_epoch[nnbackend-cupy-cuda-batch-1000]`" in missing
    assert "passed, no record" in missing
    _, md = report(tmp_path, benches, cases=_cases(benches))  # every case recorded: none
    assert "**Not measured:**" not in md


def test_ratios_whose_sides_ran_at_other_thread_counts_say_so(tmp_path):
    # Before: nnbackend at its fit's 1 BLAS thread over the seed at OpenBLAS's 2
    # read as the code's gain alone.
    apart = _pair("nnbackend-numpy-cpu", 0.0003, 0.001, 0.3, True)
    apart["extra_info"].update(label_b="numpy-seed", threads_a=1, threads_b=2)
    level = _pair("nnbackend-numpy-cpu", 0.0003, 0.001, 0.3, True)
    level["extra_info"].update(label_b="numpy-seed at 1 BLAS thread", threads_a=1, threads_b=1,
                               model="small16")
    summary, md = report(tmp_path, [apart, level])
    ratios = section(md, "## Ratios")
    note = ratios[ratios.index("different CPU thread counts"):]
    assert "nnbackend-numpy-cpu / numpy-seed (small, batch, N = 1,000,000): A at 1, B at 2" \
        in note
    assert "at 1 BLAS thread (small16" not in note
    assert [(r["threads_a"], r["threads_b"]) for r in summary["ratios"]] == [(1, 2), (1, 1)]


def test_speedups_from_timings_of_too_few_rounds_are_marked(tmp_path):
    # Before: a speedup from a one-round timing was printed as a solid "2.00×" (the
    # crossover from the same timing said "†").
    benches = [epoch("nnbackend-numpy-cpu", "batch", 1_000, 1e-3, rounds=1),
               epoch("numpy-seed", "batch", 1_000, 2e-3)]
    summary, md = report(tmp_path, benches)
    assert "| 2.00× † |" in table_row(section(md, "## Speedups"), "nnbackend-numpy-cpu",
                                       "1,000")
    assert [s["few_rounds"] for s in summary["speedups"]] == [True]


def test_an_exponent_fitted_on_timings_of_too_few_rounds_is_not_a_finding(tmp_path):
    # Before: three one-round timings gave "epoch cost grows linearly with N" as a key
    # finding, while a crossover from the same timings was marked "spread unknown".
    benches = _linear("nnbackend-numpy-cpu", ns=(10_000, 100_000, 1_000_000), rounds=1)
    summary, md = report(tmp_path, benches)
    assert summary["exponents"]["small"] == {} and summary["numpy_linear"]["small"] == {}
    assert "grows linearly with N (exponent" not in md
    row = table_row(md, "nnbackend-numpy-cpu", "batch")
    assert "**not a finding**" in row and "fewer than 3 rounds" in row


def test_a_crossover_from_timings_within_each_others_spread_says_it_is_unresolved(tmp_path):
    # Before: "GPU faster from N ≈ 1,010" from 1.00 ms against 1.01 ms at N = 1,000
    # with quartiles of ±10 %: which was faster there is not known.
    benches = [epoch("nnbackend-numpy-cpu", "batch", 1_000, 1.00e-3, spread=0.2),
               epoch("nnbackend-numpy-cpu", "batch", 10_000, 1.0e-2, spread=0.2),
               epoch("nnbackend-cupy-cuda", "batch", 1_000, 1.01e-3, spread=0.2),
               epoch("nnbackend-cupy-cuda", "batch", 10_000, 1.5e-3, spread=0.2)]
    summary, md = report(tmp_path, benches)
    (c,) = summary["crossovers"]
    assert c["overlap_n"] == [1_000]
    row = table_row(section(md, "## GPU/CPU crossover"), "batch", "nnbackend-cupy-cuda")
    assert "within each other's Q1–Q3 at N = 1,000" in row


def test_an_empty_results_file_is_refused_naming_the_file_and_the_problem(tmp_path, capsys):
    # Before: "error: Expecting value: line 1 column 1 (char 0)": not which file, nor
    # that it is not JSON.
    path = tmp_path / "results.json"
    path.write_text("")
    assert main([str(path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "not JSON" in err
    assert not (tmp_path / "out").exists()


def test_a_malformed_field_gives_an_error_not_a_traceback(tmp_path, capsys):
    # Before: a TypeError / AttributeError traceback from deep in the report.
    env = {"start": {"load_average": [1.0, 1.0, 1.0]},
           "end": {"load_average": [1.0, 1.0, 1.0], "thread_pools": [None]}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"benchmarks": _linear("nnbackend-numpy-cpu"),
                                "bench_environment": env,
                                "cases": [{"name": "x", "outcome": "failed", "reason": 5}]}))
    assert main([str(path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err


def test_well_formed_results_still_report_as_before(tmp_path):
    # Guard for the fixes above: a plain file gives its findings, unflagged.
    benches = (_linear("nnbackend-numpy-cpu", ns=(10_000, 100_000, 1_000_000))
               + _linear("nnbackend-cupy-cuda", ns=(10_000, 100_000, 1_000_000), per_row=1e-8))
    summary, md = report(tmp_path, benches, cases=_cases(benches))
    assert summary["noisy"] == [] and "Cases not measured" not in md
    assert summary["numpy_linear"]["small"] == {"batch": True}


def test_the_ratio_table_says_in_which_order_its_records_ran_the_sides(tmp_path):
    # A record made before the first side changed each round ran A first every round.
    old = _pair("nnbackend-numpy-cpu", 0.0003, 0.001, 0.3, True)
    new = _pair("nnbackend-jax-gpu", 0.0003, 0.001, 0.3, True)
    new["extra_info"]["first_side"] = "alternates"
    for records, order in (([old], "(A, B, A, B, ...)"), ([new], "(A, B, B, A, A, B, ...)"),
                           ([old, new], "where the record says so")):
        _, md = report(tmp_path, records)
        assert order in section(md, "## Ratios")
