"""The spread of a timing, the noisy rule, the bounded re-runs, the time-to-target
budget and the flags that set them (nnbackend/bench/stability.py, the suite's
environment, workloads.time_to_target); and a real `nnbackend bench` run that
re-times a case made noisy on purpose."""

import argparse
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nnbackend.bench import stability as S
from nnbackend.bench import workloads as W
from nnbackend.bench.cases import conftest as cases_conftest
from nnbackend.bench.suite import add_bench_arguments, bench_environment

ROOT = Path(__file__).resolve().parent.parent


# -- spread and the rule ------------------------------------------------------------


def test_quartiles_are_pytest_benchmarks():
    stats_mod = pytest.importorskip("pytest_benchmark.stats")
    rng = random.Random(3)
    for n in range(1, 14):
        data = [rng.uniform(1, 5) for _ in range(n)]
        theirs = stats_mod.Stats()
        for t in data:
            theirs.update(t)
        mine = S.spread(data)
        assert (mine["q1"], mine["q3"], mine["median"], mine["rounds"]) == pytest.approx(
            (theirs.q1, theirs.q3, theirs.median, theirs.rounds))
        assert (mine["min"], mine["max"]) == (theirs.min, theirs.max)


def test_too_wide_is_an_iqr_above_half_the_median_over_three_rounds_or_more():
    assert S.too_wide({"median": 10.0, "iqr": 6.0, "rounds": 5}) == \
        "IQR 60% of the median over 5 rounds (above 50%)"
    assert S.too_wide({"median": 10.0, "q1": 8.0, "q3": 14.0, "rounds": 3}) is not None
    assert S.too_wide({"median": 10.0, "iqr": 5.0, "rounds": 5}) is None  # at the bound
    assert S.too_wide({"median": 10.0, "iqr": 9.0, "rounds": 2}) is None  # no quartiles
    assert S.too_wide({"median": 0.0, "iqr": 9.0, "rounds": 9}) is None
    with pytest.raises(ValueError):
        S.spread([])


class Clock:
    """A clock that the fake rounds move forward by the seconds they report."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def attempt(self, rounds):
        """``attempt(n)`` giving the next n of ``rounds`` (an iterable of seconds)."""
        it = iter(rounds)

        def run(n):
            times = [next(it) for _ in range(n)]
            self.now += sum(times)
            return times
        return run


NOISY = [1.0, 2.0, 3.0, 1.0, 3.0]  # median 2, Q1 1, Q3 3: IQR 100 % of the median


def test_a_noisy_case_is_re_timed_until_steady_and_the_last_attempt_is_kept():
    clock, budget = Clock(), S.RerunBudget(per_case=100, total=100)
    rounds = [2.0, 2.1, 5.0, 2.0, 9.0] + [2.0, 2.05, 2.1, 2.0, 2.0]
    kept, rec = S.rerun_until_stable(NOISY, clock.attempt(rounds), budget, rounds=5,
                                     clock=clock)
    assert kept == [2.0, 2.05, 2.1, 2.0, 2.0]
    assert rec["reruns"] == 2 and rec["stable"] is True
    assert rec["stopped"] == "stable after 2 re-run(s)"
    assert [a["rounds"] for a in rec["attempts"]] == [5, 5, 5]
    assert [bool(S.too_wide(a)) for a in rec["attempts"]] == [True, True, False]
    assert rec["rerun_seconds"] == pytest.approx(20.1 + 10.15) == budget.spent


def test_a_steady_case_is_not_re_run():
    clock, budget = Clock(), S.RerunBudget()
    kept, rec = S.rerun_until_stable([2.0, 2.1, 2.0], clock.attempt([]), budget, rounds=3,
                                     clock=clock)
    assert kept == [2.0, 2.1, 2.0] and rec["reruns"] == 0 and rec["stable"] is True
    assert rec["stopped"] == "its spread was within bounds" and budget.spent == 0


@pytest.mark.parametrize("per_case, total, rounds, stopped", [
    (0, 60, [], "re-runs were off"),
    # Rounds of about 2 s: 7 s per case allows one re-run of 3 rounds (6 s), then too little.
    (7, 60, [3], "the 7 s a case may spend on re-runs left too little for 3 more rounds"),
    # 13 s for the run: one re-run of 5 rounds (10 s), then too little.
    (100, 13, [5], "the run's 13 s for re-runs left too little for 3 more rounds"),
])
def test_re_runs_stop_within_the_budget_per_case_and_per_run(per_case, total, rounds, stopped):
    clock, budget = Clock(), S.RerunBudget(per_case, total)
    kept, rec = S.rerun_until_stable(NOISY, clock.attempt(NOISY * 9), budget, rounds=5,
                                     clock=clock)
    assert rec["stable"] is False and rec["stopped"] == stopped
    assert rec["reruns"] == len(rounds)
    assert [a["rounds"] for a in rec["attempts"][1:]] == rounds
    assert budget.spent <= per_case and budget.spent <= total
    assert kept == NOISY[:rounds[-1]] if rounds else kept == NOISY


def test_a_re_run_that_overruns_its_time_stops_after_the_round_that_did():
    # Rounds of 1 s planned (5 fit in 5 s), but they take 3 s: the set stops after
    # the second (6 s, one round over), is too short to judge and is not kept.
    clock, budget = Clock(), S.RerunBudget(per_case=5, total=60)
    first = [0.5, 1.0, 1.5, 0.5, 1.5]
    kept, rec = S.rerun_until_stable(first, clock.attempt([3.0] * 9), budget, rounds=5,
                                     clock=clock)
    assert kept == first and rec["reruns"] == 0 and rec["stable"] is False
    assert rec["stopped"] == ("the 5 s a case may spend on re-runs ran out during a re-run "
                              "(2 rounds, not kept)")
    assert rec["rerun_seconds"] == budget.spent == 6.0


def test_the_run_wide_budget_is_shared_between_cases():
    clock, budget = Clock(), S.RerunBudget(per_case=100, total=12)
    records = [S.rerun_until_stable(NOISY, clock.attempt(NOISY * 9), budget, rounds=3,
                                    clock=clock)[1] for _ in range(3)]
    # The first case's two re-runs (1+2+3 s, then 1+3+1 s) take 11 s of the 12.
    assert [r["reruns"] for r in records] == [2, 0, 0]
    assert budget.spent == pytest.approx(11.0)
    assert records[1]["stopped"] == "the run's 12 s for re-runs left too little for 3 more rounds"


def test_budget_and_machine_load_from_the_environment(monkeypatch):
    b = S.RerunBudget.from_env({"NNBACKEND_BENCH_RERUN_SECONDS": "1.5",
                                "NNBACKEND_BENCH_RERUN_TOTAL": "9"})
    assert (b.per_case, b.total) == (1.5, 9.0)
    assert (S.RerunBudget.from_env({}).per_case, S.RerunBudget.from_env({}).total) == (4.0, 60.0)
    load = S.machine_load()
    assert load["cpu_count"] == os.cpu_count()
    assert load["load_average"] is None or len(load["load_average"]) == 3
    monkeypatch.delattr(os, "getloadavg", raising=False)
    assert S.load_average() is None
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # not installed
    assert S.thread_pools() is None


# -- time to target ------------------------------------------------------------------


def _falling(losses):
    def make_step():
        it = iter(losses)
        return lambda: next(it) * 10  # summed over 10 rows
    return make_step


def test_time_to_target_budget_in_epochs_or_seconds():
    out = W.time_to_target(_falling([0.5, 0.4, 0.3, 0.2, 0.1]), 0.15, 10, max_epochs=3)
    assert (out["reached"], out["epochs"], out["budget_kind"], out["budget"]) == \
        (False, 3, "epochs", 3)
    assert out["final_loss"] == pytest.approx(0.3) and out["first_epoch_seconds"] >= 0
    assert out["epoch_q1"] <= out["epoch_median"] <= out["epoch_q3"]
    out = W.time_to_target(_falling([0.5, 0.4, 0.3, 0.2, 0.1]), 0.15, 10, max_epochs=10)
    assert (out["reached"], out["epochs"]) == (True, 5)
    out = W.time_to_target(_falling([0.5, 0.4]), 0.15, 10, max_seconds=0.0)
    assert (out["reached"], out["epochs"], out["budget_kind"]) == (False, 1, "seconds")
    with pytest.raises(ValueError, match="needs a budget"):
        W.time_to_target(_falling([0.5]), 0.1, 10)


def _args(*flags):
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    return parser.parse_args(list(flags))


def test_the_bench_flags_for_budgets_and_re_runs():
    env = bench_environment(_args("--quick"), {})
    assert env["NNBACKEND_BENCH_TARGET_SECONDS"] == "5"
    assert "NNBACKEND_BENCH_TARGET_EPOCHS" not in env
    assert cases_conftest.target_budget(env) == ("seconds", 5.0)
    env = bench_environment(_args("--quick", "--target-epochs", "2e3"),
                            {"NNBACKEND_BENCH_TARGET_SECONDS": "9"})
    assert env["NNBACKEND_BENCH_TARGET_EPOCHS"] == "2000"
    assert "NNBACKEND_BENCH_TARGET_SECONDS" not in env
    assert cases_conftest.target_budget(env) == ("epochs", 2000)
    env = bench_environment(_args("--target-seconds", "2.5", "--rerun-seconds", "0",
                                  "--rerun-total", "30"), {})
    assert cases_conftest.target_budget(env) == ("seconds", 2.5)
    assert (env["NNBACKEND_BENCH_RERUN_SECONDS"], env["NNBACKEND_BENCH_RERUN_TOTAL"]) == \
        ("0", "30")
    assert cases_conftest.target_budget({}) == ("seconds", 30.0)
    assert cases_conftest.target_budget({}, smoke=True) == ("seconds", 1.0)
    with pytest.raises(ValueError, match="choose one budget"):
        bench_environment(_args("--target-seconds", "5", "--target-epochs", "100"), {})
    with pytest.raises(ValueError, match="--rerun-seconds: expected a number of seconds"):
        bench_environment(_args("--rerun-seconds", "-1"), {})
    with pytest.raises(ValueError, match="--target-epochs: expected one number"):
        bench_environment(_args("--target-epochs", "1,2"), {})


# -- the suite, for real ---------------------------------------------------------------

_SUITE_HEAD = """
    import itertools
    import time

    import pytest

    from nnbackend.bench import workloads as W
    from nnbackend.bench.cases import test_epochs as real

    _make = W.make_epoch
"""

_SUITE_TAIL = """


    @pytest.mark.benchmark(group="epoch")
    def test_epoch(benchmark, model, implementation, where, mode, n_samples):
        real.test_epoch(benchmark, model, implementation, where, mode, n_samples)
"""


def _bench_with(tmp_path, make_epoch, rerun_seconds):
    """``results.json`` of ``nnbackend bench`` on one numpy batch case (its report in
    ``tmp_path / "b"``), the suite's ``W.make_epoch`` replaced by the source
    ``make_epoch`` (indented by 4)."""
    pytest.importorskip("pytest_benchmark", reason="nnbackend bench needs pytest-benchmark")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text((ROOT / "benchmarks" / "conftest.py").read_text())
    (suite / "test_epochs.py").write_text(textwrap.dedent(_SUITE_HEAD + make_epoch
                                                          + _SUITE_TAIL))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NNBACKEND_"))}
    env.update(PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
               NNBACKEND_BENCH_SECONDS="0.01", NNBACKEND_BENCH_SUITE=str(suite))
    out = tmp_path / "b"
    done = subprocess.run(
        [sys.executable, "-m", "nnbackend.cli", "bench", "--backends", "numpy", "--modes",
         "batch", "--sizes", "64", "--models", "small", "--target-n", "0", "--no-peers",
         "--rerun-seconds", str(rerun_seconds), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def test_bench_re_times_a_noisy_case_and_the_report_says_so(tmp_path):
    """A case whose first rounds are made noisy (30 ms sleeps in alternate
    epochs) is re-timed until steady; the JSON keeps every attempt, the
    statistics are the last attempt's, and the report says how many re-runs."""
    data = _bench_with(tmp_path, """

    def noisy_make(*args, **kwargs):
        step, info = _make(*args, **kwargs)
        calls = itertools.count()

        def noisy():  # call 0 is the warm-up; calls 1, 3 and 5 sleep
            i = next(calls)
            out = step()
            if i in (1, 3, 5):
                time.sleep(0.03)
            return out
        return noisy, info


    W.make_epoch = noisy_make
""", rerun_seconds=20)
    (bench,) = data["benchmarks"]
    info, stats = bench["extra_info"], bench["stats"]
    assert info["reruns"] >= 1 and info["stable"] is True
    assert len(info["attempts"]) == info["reruns"] + 1
    first, last = info["attempts"][0], info["attempts"][-1]
    assert first["rounds"] >= 3 and S.too_wide(first) and not S.too_wide(last)
    assert first["max"] > 0.025  # a sleep
    assert stats["rounds"] == last["rounds"] == len(stats["data"])
    assert stats["median"] == pytest.approx(last["median"])
    assert max(stats["data"]) < 0.025  # the sleeps are not in what is kept
    assert info["seconds_per_epoch"] == stats["median"]
    assert len(info["load_average"] or [0, 0, 0]) == 3
    env_rec = data["bench_environment"]
    assert env_rec["reruns"]["per_case"] == 20 and env_rec["reruns"]["spent"] > 0
    assert "start" in env_rec and "end" in env_rec
    md = (tmp_path / "b" / "report.md").read_text()
    assert f"| {info['reruns']} | re-run {info['reruns']}× (" in md
    assert "- **Re-runs:** 1 case(s) re-timed because their spread was too wide" in md
    assert "- **Machine load:** " in md and "- **Threads:** " in md


def test_a_slow_cases_second_epoch_counts_as_its_first_round(tmp_path):
    """An epoch too long to window (one a call) is timed twice before its rounds:
    the warm-up, then an epoch that sizes the call. That second one is a warm
    call like the rounds, so it is the first of them: 3 rounds, 4 epochs run."""
    calls = tmp_path / "calls.txt"
    data = _bench_with(tmp_path, f"""

    def slow_make(*args, **kwargs):
        step, info = _make(*args, **kwargs)

        def slow():  # 30 ms an epoch: more than a call's 20 ms, one a call
            with open({str(calls)!r}, "a") as f:
                f.write("epoch\\n")
            time.sleep(0.03)
            return step()
        slow.window = step.window
        return slow, info


    W.make_epoch = slow_make
""", rerun_seconds=0)
    (bench,) = data["benchmarks"]
    info, stats = bench["extra_info"], bench["stats"]
    assert info["epochs_per_call"] == 1 and info["estimate_counted"] is True
    assert stats["rounds"] == len(stats["data"]) == 3 and min(stats["data"]) >= 0.03
    assert calls.read_text().count("epoch") == 4  # warm-up, the second epoch, 2 rounds
