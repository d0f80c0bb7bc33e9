"""Edges of ``nnbackend bench`` and its report (the review of the bench, findings 5-11).

One tiny real run (``_run``: numpy, sgd, N = 64 timed and N = 128 left out by
``--sgd-max``) serves the console, storage and left-out-size checks; the rest
needs no run.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import child_pythonpath, cli_refusal
from nnbackend.bench import caselog
from nnbackend.bench.cases import conftest as cases_conftest
from nnbackend.bench.report import main as report_main
from nnbackend.bench.report import write_report
from nnbackend.bench.suite import add_bench_arguments, bench_environment, pytest_command
from test_bench_report import _NO_MATPLOTLIB, needs_matplotlib

ROOT = Path(__file__).resolve().parents[1]


def _epoch(model, mode, n, seconds):
    """One epoch benchmark record as the suite writes it (nnbackend on NumPy)."""
    info = {"kind": "epoch", "implementation": "nnbackend", "label": "nnbackend-numpy-cpu",
            "backend": "numpy", "device": "cpu", "device_kind": "cpu", "gpu": False,
            "model": model, "mode": mode, "batch_size": n, "n_samples": n, "steps": 1,
            "dtype": "float32", "seconds_per_epoch": seconds, "epochs_per_call": 1}
    stats = {"min": seconds, "max": seconds * 1.1, "mean": seconds, "median": seconds,
             "stddev": 0.0, "q1": seconds, "q3": seconds * 1.05, "rounds": 5}
    return {"name": f"test_epoch[{model}-nnbackend-numpy-{mode}-{n}]", "group": "epoch",
            "stats": stats, "extra_info": info}


def _results(path, models, **extra):
    data = {"benchmarks": [_epoch(m, "batch", n, n * 1e-6) for m in models
                           for n in (1000, 10_000)], "cases": [], **extra}
    path.write_text(json.dumps(data))
    return path


# -- 5: the report command refuses what is not a results file ----------------------


@pytest.mark.parametrize("text,why", [
    ('{"models": ["small"], "paths": {}}', 'no "benchmarks" list'),  # a summary.json
    ("[1, 2]", 'no "benchmarks" list'),
    ('{"benchmarks": [1, {"extra_info": {"kind": "epoch"}}]}',
     "none of its 2 benchmark(s) is an epoch timing"),
])
def test_the_report_refuses_a_file_that_is_not_results_and_writes_nothing(tmp_path, capsys,
                                                                          text, why):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.md").write_text("the good report")
    bad = tmp_path / "summary.json"
    bad.write_text(text)
    assert report_main([str(bad), str(out)]) == 2
    err = capsys.readouterr().err
    assert why in err and "nothing was written" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in out.iterdir()) == ["report.md"]
    assert (out / "report.md").read_text() == "the good report"
    assert report_main([str(bad), str(tmp_path / "new")]) == 2
    assert not (tmp_path / "new").exists()


@needs_matplotlib
def test_a_run_cut_off_before_any_case_ended_still_gets_its_report(tmp_path):
    # What a GPU check rebuilds from its case log: no timing, but the cases it
    # names as not run are worth a report (gpu_check_summary.rebuild writes one).
    log = tmp_path / "cases.jsonl"
    log.write_text(json.dumps({"collected": ["test_epoch[small-nnbackend-numpy-sgd-64]"]}))
    results = tmp_path / "results.json"
    results.write_text(json.dumps(caselog.results_from_log(log)))
    write_report(results, tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "**Incomplete:**" in report and "`test_epoch[small-nnbackend-numpy-sgd-64]`" in report


# -- 6 and 9: the console gives per-epoch times; no .benchmarks in the working folder -


@pytest.fixture(scope="module")
def _run(tmp_path_factory):
    """A tiny ``nnbackend bench`` from a clean working folder: (process, cwd, out)."""
    pytest.importorskip("pytest_benchmark", reason="nnbackend bench needs pytest-benchmark")
    if _NO_MATPLOTLIB:
        pytest.skip(_NO_MATPLOTLIB)
    base = tmp_path_factory.mktemp("bench_edges")
    cwd, out = base / "cwd", base / "out"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NNBACKEND_"))}
    env.update(PYTHONPATH=child_pythonpath(ROOT), NNBACKEND_BENCH_SECONDS="0.01",
               NNBACKEND_CACHE_DIR=str(base / "cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "nnbackend.cli", "bench", "--backends", "numpy", "--modes",
         "sgd", "--sizes", "64,128", "--sgd-max", "64", "--target-n", "0", "--no-peers",
         "--out", str(out)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc, cwd, out


def test_the_console_shows_time_per_epoch_not_per_call(_run):
    proc, _, out = _run
    assert "Name (time in" not in proc.stdout  # pytest-benchmark's per-call table
    info = json.loads((out / "results.json").read_text())["benchmarks"][0]["extra_info"]
    k = info["epochs_per_call"]
    line = next(s for s in proc.stdout.splitlines() if "test_epoch[small-nnbackend-numpy-sgd-64]"
                in s)
    assert "per epoch" in line and f"({k} epoch{'' if k == 1 else 's'} a call)" in line


def test_the_console_lines_per_epoch_kind_by_kind():
    records = [("test_epoch[a]", {"kind": "epoch", "seconds_per_epoch": 0.0025,
                                  "epochs_per_call": 3}),
               ("test_time_to_target[b]", {"kind": "time_to_target", "reached": True,
                                           "seconds": 1.5, "epochs": 40}),
               ("test_ratio[c]", {"kind": "ratio", "label": "x / y", "ratio": 1.234,
                                  "target": 1.5, "sense": "max", "met": True})]
    lines = cases_conftest.summary_lines(records)
    assert "test_epoch[a]" in lines[1] and "2.50 ms per epoch  (3 epochs a call)" in lines[1]
    assert lines[2:] == ["Time to the target loss:",
                         "  test_time_to_target[b]: reached in 1.50 s (40 epochs)",
                         "Interleaved pairs (ratio of the two sides' median epoch times):",
                         "  test_ratio[c]: x / y = 1.23; target <= 1.5: met"]
    assert cases_conftest.summary_lines([]) == []


def test_the_run_leaves_no_benchmarks_folder_in_the_working_folder(_run):
    _, cwd, _ = _run
    assert list(cwd.iterdir()) == []


def test_pytest_benchmark_stores_beside_the_ini_file(tmp_path):
    command = pytest_command(tmp_path / "suite", tmp_path / "r.json", None, tmp_path / "p.ini")
    storage = [c for c in command if c.startswith("--benchmark-storage=")]
    assert storage == [f"--benchmark-storage=file://{tmp_path.resolve() / 'benchmark-storage'}"]
    assert "--benchmark-quiet" in command


# -- 8: --target-epochs is a whole number >= 1 ---------------------------------------


def _args(*flags):
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    return parser.parse_args(list(flags))


@pytest.mark.parametrize("epochs", ["0", "2.5", "-3", "inf", "many"])
def test_target_epochs_must_be_a_whole_number_of_at_least_one(tmp_path, capsys, epochs):
    # Settings that leave nothing to time: where the flag passed (as it once
    # did), the run still ends at once, refused for timing nothing.
    err = cli_refusal(["bench", "--backends", "numpy", "--modes", "sgd", "--sizes", "64",
                       "--sgd-max", "1", "--no-peers", "--target-epochs", epochs,
                       "--out", tmp_path / "b"], capsys)
    assert "--target-epochs: expected one number, a whole number >= 1" in err
    assert "--target-n 0" in err
    assert not (tmp_path / "b").exists()


def test_target_epochs_accepts_whole_numbers():
    env = bench_environment(_args("--target-epochs", "1e3"), {})
    assert env["NNBACKEND_BENCH_TARGET_EPOCHS"] == "1000"
    assert cases_conftest.target_budget(env) == ("epochs", 1000)
    assert bench_environment(_args("--target-epochs", "1"), {})[
        "NNBACKEND_BENCH_TARGET_EPOCHS"] == "1"


# -- 10: no stale plot beside a new report -------------------------------------------


@needs_matplotlib
def test_a_rebuilt_report_removes_the_plots_of_models_no_longer_there(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    both = _results(tmp_path / "both.json", ["small", "mnist"])
    write_report(both, out)
    assert {"epoch_time-mnist.png", "speedup-mnist.png"} <= {p.name for p in out.iterdir()}
    # Plots an older report drew (another model; a time-to-target run), and a file of the user's.
    for name in ("time_to_target.png", "epoch_time-mid.png", "notes.png"):
        (out / name).write_bytes(b"old")
    summary = write_report(_results(tmp_path / "small.json", ["small"]), out)
    assert sorted(p.name for p in out.iterdir()) == [
        "epoch_time.png", "notes.png", "report.md", "speedup.png", "summary.json"]
    assert summary["paths"]["models"] == {"small": {
        "epoch_time": str(out / "epoch_time.png"), "speedup": str(out / "speedup.png"),
        "time_to_target": None}}
    # mnist alone: it is the first model now, drawn without a suffix.
    write_report(_results(tmp_path / "mnist.json", ["mnist"]), out)
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == [
        "epoch_time.png", "notes.png", "speedup.png"]


# -- 11: the sizes the settings leave out are reported with why ----------------------


def test_the_sizes_left_out_are_collected_with_the_flag_that_dropped_them():
    env = {"NNBACKEND_BENCH_MODELS": "small,mnist", "NNBACKEND_BENCH_MODES": "batch,sgd",
           "NNBACKEND_BENCH_BACKENDS": "numpy", "NNBACKEND_BENCH_PEERS": "0",
           "NNBACKEND_BENCH_SIZES": "1000,100000", "NNBACKEND_BENCH_MNIST_SIZES": "1000,100000"}
    dropped = []
    cases = cases_conftest.epoch_cases(env, usable=["numpy"], on_gpu=lambda w: False,
                                       dropped=dropped)
    # What runs is as before; the rest is named, not lost.
    assert cases == [("small", "nnbackend", "numpy", "batch", 1000),
                     ("small", "nnbackend", "numpy", "batch", 100000),
                     ("small", "nnbackend", "numpy", "sgd", 1000),
                     ("mnist", "nnbackend", "numpy", "batch", 1000)]
    entries = cases_conftest.dropped_entries(dropped)
    assert [(d["model"], d["mode"], d["n_samples"], d["implementations"]) for d in entries] == [
        ("small", "sgd", 100000, ["nnbackend-numpy"]),
        ("mnist", "batch", 100000, ["nnbackend-numpy"])]
    assert entries[0]["reason"].startswith("above --sgd-max (10,000; NNBACKEND_BENCH_SGD_MAX)")
    assert entries[1]["reason"].startswith(
        "above --mnist-cpu-max (60,000; NNBACKEND_BENCH_MNIST_CPU_MAX)")
    # Each flag names itself in the console where nothing at all is left to run.
    lines = cases_conftest.summary_lines([], entries)
    assert len(lines) == 3 and "small sgd N = 100,000 (nnbackend-numpy): above --sgd-max" \
        in lines[1]


def test_the_run_records_and_reports_the_sizes_left_out(_run):
    proc, _, out = _run
    data = json.loads((out / "results.json").read_text())
    assert [d[:4] for d in caselog.left_out(data)] == [("small", "sgd", 128, ["nnbackend-numpy"])]
    assert "small sgd N = 128 (nnbackend-numpy): above --sgd-max (64;" in proc.stdout
    report = (out / "report.md").read_text()
    assert "**Left out by the run's settings:** 1 size(s)" in report
    tail = report[report.index("## Cases not measured"):]
    assert "| small | sgd | 128 | nnbackend-numpy | above --sgd-max (64; " in tail


def test_a_run_rebuilt_from_its_case_log_keeps_the_sizes_left_out(tmp_path):
    log = tmp_path / "cases.jsonl"
    dropped = [{"model": "small", "mode": "sgd", "n_samples": 10**5,
                "implementations": ["nnbackend-numpy"], "reason": "above --sgd-max"}]
    log.write_text("\n".join(json.dumps(r) for r in (
        {"collected": ["test_epoch[x]"]}, {"dropped": dropped}, [1])) + '\n{"name": ')
    data = caselog.results_from_log(log)
    assert data["dropped"] == dropped
    assert [c["name"] for c in data["cases"]] == ["test_epoch[x]"]
