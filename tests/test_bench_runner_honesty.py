"""The benchmark runner does the work it says it times (review of 2026-12-07).

* ``jax-scan-hand`` trains every row, the last partial mini-batch included, as
  nnbackend and the other peers do (it left that batch out, so its epoch was
  a step shorter than the one it was compared with, and its per-step figure
  was divided by a step it never ran).
* A first epoch that is seconds of compilation on a CPU (JAX's XLA) does not
  size the timed calls: the second epoch does, as on a GPU.
* The time-to-target run is warmed up at its own N, so a per-shape compilation
  is not in its seconds.
* ``pytest benchmarks`` by hand prints the time per epoch, as ``nnbackend bench``
  does, not only pytest-benchmark's table of calls of several epochs.
* A case log that a later run names again rebuilds that run alone, not the
  earlier run's cases as if they were its own.
* A model and mode the suite never times (mnist in sgd, mid in batch) is
  refused before the run, not reported as "every case skipped or failed".
* The JAX peers' batch epoch takes the rows as they are (no order moved to
  the device and no gather of all N rows each epoch), as the other peers do.
"""

import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from conftest import child_pythonpath

from nnbackend.bench import workloads as W
from nnbackend.bench.stability import RerunBudget

ROOT = Path(__file__).resolve().parents[1]


class _Benchmark:
    """What ``_time_epochs`` and ``test_time_to_target`` use of pytest-benchmark's fixture."""

    def __init__(self):
        from pytest_benchmark.stats import Stats

        self.extra_info = {}
        self.stats = types.SimpleNamespace(stats=Stats())
        self.disabled = False

    def pedantic(self, fn, rounds, iterations):
        for _ in range(rounds):
            start = time.perf_counter()
            fn()
            self.stats.stats.update(time.perf_counter() - start)


@pytest.fixture
def epochs_module(monkeypatch):
    pytest.importorskip("pytest_benchmark")
    from nnbackend.bench.cases import test_epochs as E

    monkeypatch.setattr(E, "session_budget", lambda: RerunBudget(0, 0))  # no re-runs
    monkeypatch.setattr(E, "SECONDS_PER_BENCHMARK", 0.2)
    return E


@pytest.mark.parametrize("n", [100, 1000])
def test_jax_scan_hand_trains_the_last_partial_batch(n):
    """N not a multiple of 64: the hand-written scan's epoch covers all N rows, with
    the same loss as the seed loop (same data, start and batch order)."""
    pytest.importorskip("jax")
    seed, _ = W.make_epoch("numpy-seed", "cpu", "minibatch", n)
    scan, _ = W.make_epoch("jax-scan-hand", "cpu", "minibatch", n)
    for _ in range(2):
        assert scan() == pytest.approx(seed(), rel=1e-4)


def _compiling_step(first_seconds, epoch_seconds, calls):
    """A step whose first call takes ``first_seconds`` (a compilation), later ones
    ``epoch_seconds``; ``calls`` counts the epochs run."""
    def step():
        calls.append(1)
        time.sleep(first_seconds if len(calls) == 1 else epoch_seconds)
        return 1.0

    def window(k):
        return [step() for _ in range(k)]

    step.window = window
    return step


def _timed_on_the_cpu(E, monkeypatch, first, later):
    """``(benchmark, calls)`` of a CPU case timed with a first epoch of ``first``
    seconds and later ones of ``later``, past an ESTIMATE_BELOW of 0.05 s."""
    monkeypatch.setattr(E, "ESTIMATE_BELOW", 0.05)
    calls = []
    bench = _Benchmark()
    step = _compiling_step(first, later, calls)
    E._time_epochs(bench, step, {"gpu": False}, time.perf_counter(), "small", "batch", 100)
    return bench, calls


def test_a_compiling_first_epoch_on_the_cpu_does_not_size_the_calls(epochs_module, monkeypatch):
    """A short CPU epoch whose first call compiled for longer than ESTIMATE_BELOW
    is timed as a short epoch (several a call), not one a call as if it took
    as long as its compilation."""
    info = _timed_on_the_cpu(epochs_module, monkeypatch, 0.1, 0.0)[0].extra_info
    assert info["epochs_per_call"] > 1, info
    assert info["seconds_per_epoch"] < 0.01


def test_a_slow_cpu_epoch_is_still_timed_in_as_many_epochs(epochs_module, monkeypatch):
    """An epoch really that slow costs no epoch more: the second one counts as the
    first round (3 rounds, 4 epochs with the warm-up)."""
    bench, calls = _timed_on_the_cpu(epochs_module, monkeypatch, 0.08, 0.08)
    info = bench.extra_info
    assert info["epochs_per_call"] == 1 and info["estimate_counted"] is True
    assert len(bench.stats.stats.data) == epochs_module.MIN_ROUNDS == 3
    assert len(calls) == 4


def test_time_to_target_is_warmed_up_at_its_own_n(epochs_module, monkeypatch):
    """An executor that compiles once per N (JAX's scan) compiles in the warm-up,
    not in the timed run's first epoch."""
    E = epochs_module
    compiled = set()

    def per_n_epoch(backend, device, mode, n_samples, batch_size=None, precision=None, **kw):
        def step():
            if n_samples not in compiled:
                time.sleep(0.3)  # "compilation" for this N
                compiled.add(n_samples)
            return 1.0 * n_samples  # a mean loss of 1: never the target
        return step, {"precision": "highest"}

    monkeypatch.setattr(W, "nnbackend_epoch", per_n_epoch)
    bench = _Benchmark()
    E.test_time_to_target(bench, ("numpy", "minibatch", 500, ("epochs", 3)))
    info = bench.extra_info
    assert info["epochs"] == 3 and info["reached"] is False
    assert info["first_epoch_seconds"] < 0.15, info
    assert info["seconds"] < 0.3


def test_pytest_benchmarks_by_hand_prints_the_time_per_epoch():
    """``pytest benchmarks`` (the docs' way to run the suite by hand) prints each
    case's time per epoch after pytest-benchmark's table of calls."""
    pytest.importorskip("pytest_benchmark")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NNBACKEND_"))}
    env.update(PYTHONPATH=child_pythonpath(ROOT), NNBACKEND_BENCH_BACKENDS="numpy",
               NNBACKEND_BENCH_MODES="batch", NNBACKEND_BENCH_SIZES="100",
               NNBACKEND_BENCH_PEERS="0", NNBACKEND_BENCH_TARGET_N="0",
               NNBACKEND_BENCH_SECONDS="0.02", NNBACKEND_BENCH_RERUN_SECONDS="0")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_epochs.py"), "-q",
         "-p", "no:cacheprovider", "--benchmark-only"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "nnbackend bench summary" in done.stdout
    assert "per epoch" in done.stdout and "epochs a call" in done.stdout


def test_a_case_log_named_again_rebuilds_only_the_last_run(tmp_path):
    """A later run that names the same NNBACKEND_BENCH_CASE_LOG and is cut off after
    one case: the rebuilt results hold that run's case, the rest as not run, not
    the earlier run's cases and timings as if they were its own."""
    from nnbackend.bench.caselog import CaseLog, results_from_log

    path = tmp_path / "cases.jsonl"
    names = ["test_epoch[a]", "test_epoch[b]"]
    for run, ended in (("run 1", names), ("run 2", names[:1])):
        log = CaseLog(str(path))
        log.collected(names)
        log.write({"dropped": [{"model": "small", "mode": "sgd", "n_samples": 1,
                                "reason": run}]})
        for name in ended:
            log.add({"name": name, "outcome": "passed", "reason": None, "seconds": 1.0},
                    {"name": name, "extra_info": {"run": run}})
    data = results_from_log(str(path))
    assert [(b["name"], b["extra_info"]["run"]) for b in data["benchmarks"]] == \
        [("test_epoch[a]", "run 2")]
    assert [(c["name"], c["outcome"]) for c in data["cases"]] == \
        [("test_epoch[a]", "passed"), ("test_epoch[b]", "not run")]
    assert [d["reason"] for d in data["dropped"]] == ["run 2"]


@pytest.mark.parametrize("flags, message", [
    (["--models", "mnist", "--modes", "sgd"], "no case to time for --models mnist"),
    (["--models", "mid", "--modes", "batch"], "mid is timed in minibatch, sgd"),
    (["--mode-sizes", "mnist:sgd=1e3"], "the mnist model is not timed in sgd mode"),
])
def test_a_model_and_mode_never_timed_are_refused_before_the_run(flags, message):
    """Asked for nothing the suite times, the command says so at once (it ran the
    suite and said "every case skipped or failed")."""
    import argparse

    from nnbackend.bench.suite import add_bench_arguments, bench_environment

    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    with pytest.raises(ValueError, match=message):
        bench_environment(parser.parse_args(flags), {})
    # The interleaved pairs follow --models and --modes too: still nothing to time.
    if "--mode-sizes" not in flags:
        with pytest.raises(ValueError, match="--ratios cpu: no pair in --modes"):
            bench_environment(parser.parse_args([*flags, "--ratios", "cpu"]), {})


@pytest.mark.parametrize("implementation", ["jax-scan-hand", "jax-jit-step"])
def test_the_jax_peers_batch_epoch_takes_the_rows_as_they_are(implementation, monkeypatch):
    """Batch mode: no order moved to the device and no gather of all N rows through
    it every epoch (numpy-seed and torch-eager take the rows as they are, and so
    does nnbackend), and the same loss as the seed loop."""
    jax = pytest.importorskip("jax")
    seed, _ = W.make_epoch("numpy-seed", "cpu", "batch", 300)
    step, _ = W.make_epoch(implementation, "cpu", "batch", 300)
    assert step() == pytest.approx(seed(), rel=1e-4)  # the first epoch compiles
    moved = []
    put = jax.device_put
    monkeypatch.setattr(jax, "device_put", lambda *a, **k: moved.append(1) or put(*a, **k))
    for _ in range(2):
        assert step() == pytest.approx(seed(), rel=1e-4)
    assert moved == []


def test_a_seed_side_at_its_pairs_threads_runs_there_and_says_so():
    # The batch targets' seed peer ran only at OpenBLAS's default threads, while
    # nnbackend ran at its fit's: each batch pair now also runs the seed at A's.
    pytest.importorskip("threadpoolctl")
    from nnbackend.backends.blas import available, current_threads
    from nnbackend.bench.cases import test_ratios as ratios

    if not available():
        pytest.skip("threadpoolctl finds no BLAS library to set here")
    seen = []
    step, info = ratios._at_threads(lambda: seen.append(current_threads()) or 0.5,
                                    {"label": "numpy-seed", "backend": "numpy"}, 1)
    assert step() == 0.5 and seen == [1]
    assert info["label"] == "numpy-seed at 1 BLAS thread" and ratios._threads(info) == 1
    paired = {(c.model, c.mode) for c in ratios.CPU_CASES if c.b_at_a_threads}
    plain = {(c.model, c.mode) for c in ratios.CPU_CASES
             if c.b == ratios.SEED and c.mode == "batch" and not c.b_at_a_threads}
    assert paired == plain == {("small", "batch"), ("small16", "batch")}


@pytest.mark.parametrize("flag", ["--target-seconds", "--time-budget"])
def test_a_budget_of_no_seconds_is_refused_before_the_run(flag, capsys):
    # Before: --target-seconds 0 ran every time-to-target case for one epoch
    # ("not within 0 s"); --time-budget 0 started the suite to skip every case.
    from nnbackend.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["bench", flag, "0"])
    assert exited.value.code == 2
    assert f"{flag}: expected a number of seconds > 0; got '0'" in capsys.readouterr().err


def test_a_ratio_pair_changes_its_first_side_each_round(monkeypatch):
    # Before: A ran first in every round, so what an epoch leaves to the next
    # (a cache, a lazy free) fell on B every time.
    from nnbackend.bench.cases import test_ratios as ratios

    calls = []

    def made(implementation, where, mode, n_samples, model):
        def step():
            calls.append(implementation)
            return 1.0
        return step, {"label": implementation, "device": "CPU"}

    class Benchmark:
        disabled, extra_info = False, {}

        def pedantic(self, fn, rounds, iterations):
            for _ in range(rounds):
                fn()

    monkeypatch.setattr(ratios, "_make", made)
    monkeypatch.setenv("NNBACKEND_BENCH_RATIO_ROUNDS", "4")
    monkeypatch.delenv("NNBACKEND_BENCH_RATIO_SECONDS", raising=False)
    bench = Benchmark()
    ratios.test_ratio(bench, ratios.Case(("a", "cpu"), ("b", "cpu"), "sgd", 100))
    assert calls[2:] == ["a", "b", "b", "a", "a", "b", "b", "a"]  # after the warm-up pair
    assert bench.extra_info["first_side"] == "alternates" and bench.extra_info["rounds"] == 4


def test_a_size_or_backend_named_twice_is_timed_once():
    # Before: --sizes 1e3,1000 and --backends numpy,numpy:cpu timed each case twice.
    import argparse

    from nnbackend.bench.suite import add_bench_arguments, bench_environment

    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    env = bench_environment(parser.parse_args(
        ["--sizes", "1e3,1000,1e4", "--backends", "numpy,numpy:cpu,strict"]), {})
    assert env["NNBACKEND_BENCH_SIZES"] == "1000,10000"
    assert env["NNBACKEND_BENCH_BACKENDS"] == "numpy,strict"


def test_ratio_pairs_follow_the_modes_and_models_asked_for():
    # Before: --ratios timed every pair, whatever --modes and --models said.
    from nnbackend.bench.cases import test_ratios as ratios

    every = ratios._selected({"NNBACKEND_BENCH_RATIOS": "all"})
    assert every == ratios.CPU_CASES + ratios.GPU_CASES
    picked = ratios._selected({"NNBACKEND_BENCH_RATIOS": "cpu", "NNBACKEND_BENCH_MODES": "sgd",
                               "NNBACKEND_BENCH_RATIO_MODELS": "small"})
    assert picked == [c for c in ratios.CPU_CASES if c.mode == "sgd" and c.model == "small"]
    assert {c.a for c in picked} >= {ratios.TORCH_CPU, ratios.JAX_CPU}  # not by backend
    gpu = ratios._selected({"NNBACKEND_BENCH_RATIOS": "gpu",
                            "NNBACKEND_BENCH_MODES": "batch,minibatch",
                            "NNBACKEND_BENCH_RATIO_MODELS": "mnist"})
    assert gpu and all(c.model == "mnist" and c.mode != "sgd" for c in gpu)
    assert ratios._selected({"NNBACKEND_BENCH_RATIOS": "gpu",
                             "NNBACKEND_BENCH_RATIO_MODELS": "mid"}) == []


def test_bench_passes_the_models_to_the_ratios_only_where_named():
    # Without --models every model's pairs run (the targets are of small16 and
    # mnist too); with it, only its own.
    import argparse

    from nnbackend.bench.suite import add_bench_arguments, bench_environment

    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    plain = bench_environment(parser.parse_args(["--ratios", "cpu"]), {})
    assert plain["NNBACKEND_BENCH_MODELS"] == "small"
    assert "NNBACKEND_BENCH_RATIO_MODELS" not in plain
    named = bench_environment(parser.parse_args(["--ratios", "--models", "small16,mnist"]), {})
    assert named["NNBACKEND_BENCH_RATIO_MODELS"] == "small16,mnist"
    assert "NNBACKEND_BENCH_RATIO_MODELS" not in bench_environment(
        parser.parse_args(["--models", "mnist"]), {})
    with pytest.raises(ValueError, match=r"--ratios gpu: no pair in --modes sgd of --models "
                                         r"mnist; its pairs: mnist batch, mnist minibatch, "
                                         r"small batch, small minibatch, small sgd$"):
        bench_environment(parser.parse_args(["--ratios", "gpu", "--models", "mnist",
                                             "--modes", "sgd"]), {})
