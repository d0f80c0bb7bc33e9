"""Tests from the mutation audit of ``nnbackend/bench/suite.py`` (the 08p audit):
the ``nnbackend bench`` flags, the suite environment they make
(``bench_environment``), the number and ``--mode-sizes`` readers, the suite's
folder and the pytest command that runs it.

Each test names in a comment the mutants it kills (ids of the audit's tables)
and what went wrong under them; "(killed before)" marks an id the existing
tests already killed. Everything runs in-process on the flags' parser: no
benchmark suite is started and nothing is timed. The two tests at the end
are of library bugs the audit found (fixed in ``nnbackend/bench/suite.py``).
"""

import argparse
import sys
from pathlib import Path

import pytest

from nnbackend.bench import suite
from nnbackend.bench.cases import conftest as cases_conftest


def _env(*flags, base=None):
    """``bench_environment`` of ``nnbackend bench FLAGS`` over the environment ``base``."""
    parser = argparse.ArgumentParser()
    suite.add_bench_arguments(parser)
    return suite.bench_environment(parser.parse_args(list(flags)), {} if base is None else base)


# -- the number lists --------------------------------------------------------------------


def test_a_number_list_drops_empty_entries_and_keeps_its_bounds():
    # N01 (empty entries not dropped: "1e3," and "1e3, ,1e4" refused as not numbers),
    # N04 (the minimum itself refused: --sizes 1 and --target-n 0 rejected).
    assert suite.number_list("1e3,", "--sizes") == "1000"
    assert suite.number_list(" 1e3, ,1e4 ", "--sizes", minimum=1) == "1000,10000"
    assert suite.number_list("1", "--sizes", minimum=1) == "1"
    assert suite.number_list("0", "--target-n") == "0"
    with pytest.raises(ValueError, match="--sizes: expected numbers >= 1; got '0,1'"):
        suite.number_list("0,1", "--sizes", minimum=1)


@pytest.mark.parametrize("text", [",", " , ", ""])
def test_a_number_list_of_no_number_is_refused(text):
    # N03 (an empty list passed as ""): the suite reads an empty
    # NNBACKEND_BENCH_SIZES as unset, so `--sizes ,` would time every default
    # size (1e3 to 1e6) in place of a refusal.
    with pytest.raises(ValueError, match="--sizes: expected numbers >= 1"):
        suite.number_list(text, "--sizes", minimum=1)


def test_the_size_flags_need_sizes_of_at_least_one():
    # E10, E13 (--mnist-sizes 0 and --mid-sizes 0 passed: cases of no rows).
    for flag in ("--mnist-sizes", "--mid-sizes"):
        with pytest.raises(ValueError, match=f"{flag}: expected numbers >= 1"):
            _env("--models", "small,mnist,mid", flag, "0,1e3")


# -- --mode-sizes --------------------------------------------------------------------------


def test_mode_sizes_skip_empty_parts_and_entries():
    # M02 (an empty part, a trailing ";", refused), M04 (a trailing "," in a
    # list refused as not a number).
    assert suite.mode_sizes("sgd=1e3;") == {(None, "sgd"): [1000]}
    assert suite.mode_sizes(" ; small:batch=1e3,2e3, ;") == {("small", "batch"): [1000, 2000]}
    assert suite.mode_sizes(None) == suite.mode_sizes("") == {}


@pytest.mark.parametrize("bad", ["batches=1e3", "small:full=1", "sgd=1e3,-5", "mid:sgd=2e3,0"])
def test_mode_sizes_refuse_unknown_modes_and_sizes_below_one(bad):
    # M06, M08 (killed before; a mode unknown to every model taken without a
    # model, "batches=1e3", and 0 taken as a size): the refusals kept here
    # beside M02/M04's cases of what is not refused.
    with pytest.raises(ValueError, match="--mode-sizes: expected"):
        suite.mode_sizes(bad)


# -- the budgets and re-runs ---------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--rerun-seconds", "--rerun-total", "--time-budget",
                                  "--target-seconds"])
def test_seconds_that_are_not_a_number_are_refused(flag):
    # S01 (a value float() cannot read taken as 0: `--rerun-seconds soon` meant
    # no re-runs at all, `--rerun-total soon` no re-run time, without a word).
    with pytest.raises(ValueError, match=f"{flag}: expected a number of seconds"):
        _env(flag, "soon")


def test_target_seconds_replace_a_target_epochs_of_the_environment():
    # E28 (NNBACKEND_BENCH_TARGET_EPOCHS of the caller's environment kept
    # beside --target-seconds: the suite, which prefers epochs, ran the epoch
    # budget and ignored the flag).
    env = _env("--target-seconds", "3", base={"NNBACKEND_BENCH_TARGET_EPOCHS": "100"})
    assert "NNBACKEND_BENCH_TARGET_EPOCHS" not in env
    assert cases_conftest.target_budget(env) == ("seconds", 3.0)


def test_quick_leaves_a_target_seconds_of_the_environment_as_it_is():
    # E30 (--quick overwrote NNBACKEND_BENCH_TARGET_SECONDS set by the caller
    # with its 5 s).
    env = _env("--quick", base={"NNBACKEND_BENCH_TARGET_SECONDS": "9"})
    assert cases_conftest.target_budget(env) == ("seconds", 9.0)


def test_target_n_reaches_the_suite():
    # E25 (--target-n dropped: `--target-n 0`, "0 skips them", left the
    # time-to-target runs at the suite's default N of 1e4).
    assert _env("--target-n", "0")["NNBACKEND_BENCH_TARGET_N"] == "0"
    assert _env("--target-n", "5e3")["NNBACKEND_BENCH_TARGET_N"] == "5000"
    assert "NNBACKEND_BENCH_TARGET_N" not in _env()


# -- --quick ---------------------------------------------------------------------------------


def test_quick_sets_small_sizes_for_every_model_unless_a_flag_gives_them():
    # E09, E12, E21, E23, E24 (--quick left the mnist sizes, the mid sizes, the
    # small sizes, the sgd maximum or the time-to-target N at the suite's
    # defaults: the "first look in about a minute" ran the full sizes).
    env = _env("--quick")
    assert env["NNBACKEND_BENCH_MNIST_SIZES"] == "1000,10000"
    assert env["NNBACKEND_BENCH_MID_SIZES"] == "1000"
    assert env["NNBACKEND_BENCH_SIZES"] == "1000,10000"
    assert env["NNBACKEND_BENCH_SGD_MAX"] == "1000"
    assert env["NNBACKEND_BENCH_TARGET_N"] == "2000"
    env = _env("--quick", "--sizes", "64", "--mnist-sizes", "32", "--mid-sizes", "16",
               "--sgd-max", "8", "--target-n", "0")
    assert (env["NNBACKEND_BENCH_SIZES"], env["NNBACKEND_BENCH_MNIST_SIZES"],
            env["NNBACKEND_BENCH_MID_SIZES"], env["NNBACKEND_BENCH_SGD_MAX"],
            env["NNBACKEND_BENCH_TARGET_N"]) == ("64", "32", "16", "8", "0")
    plain = _env()
    for name in ("MNIST_SIZES", "MID_SIZES", "SIZES", "SGD_MAX", "TARGET_N", "TARGET_SECONDS"):
        assert f"NNBACKEND_BENCH_{name}" not in plain


# -- the environment, the modes, the models, the backends ---------------------------------


def test_the_callers_environment_is_passed_on_but_a_pytest_xdist_workers():
    # E01 (PYTEST_XDIST_* passed on: run from an xdist worker, pytest-benchmark
    # in the suite believes it is a worker and refuses --benchmark-only),
    # E02 (the caller's environment dropped: no PATH, no PYTHONPATH, none of
    # the NNBACKEND_* settings the suite reads), E45 (every PYTEST_* variable
    # dropped: the caller's PYTEST_ADDOPTS or PYTEST_DISABLE_PLUGIN_AUTOLOAD
    # no longer reached the suite's pytest).
    base = {"PATH": "/bin", "PYTHONPATH": "/src", "NNBACKEND_BENCH_SECONDS": "0.01",
            "PYTEST_XDIST_WORKER": "gw1", "PYTEST_XDIST_TESTRUNUID": "abc",
            "PYTEST_ADDOPTS": "-p no:randomly", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env = _env(base=base)
    assert {k: env[k] for k in base if k in env} == {
        "PATH": "/bin", "PYTHONPATH": "/src", "NNBACKEND_BENCH_SECONDS": "0.01",
        "PYTEST_ADDOPTS": "-p no:randomly", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    assert base["PYTEST_XDIST_WORKER"] == "gw1"  # the caller's mapping is left as it was


def test_modes_and_models_drop_empty_entries():
    # E03 (an empty entry of --modes kept: "batch," refused as an unknown mode '').
    env = _env("--modes", "batch, ,sgd,", "--models", "small,")
    assert env["NNBACKEND_BENCH_MODES"] == "batch,sgd"
    assert env["NNBACKEND_BENCH_MODELS"] == "small"


@pytest.mark.parametrize("flags, message", [
    (["--modes", ","], r"--modes: unknown mode\(s\) \[\]"),
    (["--modes", ",", "--ratios", "cpu"], r"--modes: unknown mode\(s\) \[\]"),
    (["--models", " , ", "--ratios"], r"--models: unknown model\(s\) \[\]"),
])
def test_modes_or_models_of_no_name_are_refused_as_such(flags, message):
    # E04, E07 (no mode or no model at all let through: with --ratios the empty
    # NNBACKEND_BENCH_MODES / _MODELS read as unset: every mode or model timed).
    with pytest.raises(ValueError, match=message):
        _env(*flags)


def test_backends_drop_empty_entries_and_keep_the_device_asked_for():
    # E16 ("numpy," refused as a backend named ''), E17 (the device after ':'
    # dropped: numpy:cuda not refused before the run).
    assert _env("--backends", "numpy,")["NNBACKEND_BENCH_BACKENDS"] == "numpy"
    with pytest.raises(ValueError, match="has only the device 'cpu', got 'cuda'"):
        _env("--backends", "numpy:cuda")


def test_one_backend_on_two_devices_is_timed_on_both():
    # E19 (backends told apart by name alone: strict on its second device
    # dropped as a repeat of strict on the CPU).
    pytest.importorskip("array_api_strict", reason="the strict backend needs array-api-strict")
    env = _env("--backends", "strict,strict:device1,strict:cpu")
    assert env["NNBACKEND_BENCH_BACKENDS"] == "strict,strict:device1"


# -- the peers and the pairs ------------------------------------------------------------------


@pytest.mark.parametrize("flags, peers", [
    ([], "1"), (["--no-peers"], "0"), (["--gpu-peers"], "gpu"),
    (["--no-peers", "--gpu-peers"], "0")])
def test_the_peer_flags_reach_the_suite(flags, peers):
    # E34 (--gpu-peers won over --no-peers: peers timed that were asked away),
    # E35 (killed before: --no-peers ignored), E46 (the default "1" turned "0":
    # the hand-written peers never timed unless --gpu-peers asked for some).
    assert _env(*flags)["NNBACKEND_BENCH_PEERS"] == peers


@pytest.mark.parametrize("which", ["cpu", "gpu", "all"])
def test_the_ratio_pairs_asked_for_reach_the_suite(which):
    # E36 (every pair timed whatever --ratios asked: 'cpu' ran the GPU pairs too).
    assert _env("--ratios", which)["NNBACKEND_BENCH_RATIOS"] == which
    assert "NNBACKEND_BENCH_RATIOS" not in _env()


# -- the suite's folder and the pytest command --------------------------------------------


def test_the_suite_folder_is_the_packages_cases_or_one_with_test_epochs(tmp_path, monkeypatch):
    # D04 (a folder named test_epochs.py taken for the suite's file).
    monkeypatch.delenv("NNBACKEND_BENCH_SUITE", raising=False)
    shipped = suite.suite_dir()
    assert shipped == Path(suite.__file__).resolve().parent / "cases"
    assert (shipped / "test_epochs.py").is_file()
    (tmp_path / "test_epochs.py").mkdir()
    monkeypatch.setenv("NNBACKEND_BENCH_SUITE", str(tmp_path))
    with pytest.raises(ValueError, match="no test_epochs.py there"):
        suite.suite_dir()
    own = tmp_path / "own"
    own.mkdir()
    (own / "test_epochs.py").write_text("")
    monkeypatch.setenv("NNBACKEND_BENCH_SUITE", str(own))
    assert suite.suite_dir() == own


def _pairs(command):
    return list(zip(command, command[1:]))


def test_the_pytest_command_runs_the_suite_alone_and_quietly(tmp_path):
    # P01, P12 (killed before: --ratios ignored; no JSON written), P02 (the
    # pairs run after the epochs, where a time budget skips them, though they
    # hold the targets), P03 (--rootdir dropped: node ids relative to the
    # temporary ini's folder), P04/P10 (--confcutdir or -c dropped: the
    # conftest.py files and pytest settings of a project around the package
    # read), P05 (-rs dropped: the cases a budget skipped not listed), P06
    # (pytest's cache written into the suite's folder), P07 (--benchmark-only
    # dropped), P11 (-q dropped), P13 (a `python` from PATH in place of this
    # interpreter).
    cases, ini, raw = tmp_path / "cases", tmp_path / "tmp" / "pytest.ini", tmp_path / "r.json"
    plain = suite.pytest_command(cases, raw, None, ini)
    assert plain[:3] == [sys.executable, "-m", "pytest"]
    assert plain[3] == str(cases / "test_epochs.py") and str(cases / "test_ratios.py") not in plain
    pairs = _pairs(plain)
    for pair in (("-c", str(ini)), ("--rootdir", str(cases)), ("--confcutdir", str(cases)),
                 ("-p", "no:cacheprovider")):
        assert pair in pairs
    for option in ("-q", "-rs", "--benchmark-only", f"--benchmark-json={raw}"):
        assert option in plain
    with_pairs = suite.pytest_command(cases, raw, "cpu", ini)
    assert with_pairs[3:5] == [str(cases / "test_ratios.py"), str(cases / "test_epochs.py")]
    assert with_pairs[5:] == plain[4:]


# -- library bugs found by the audit, fixed in suite.py -----------------------------------


@pytest.mark.parametrize("flag", ["--sgd-max", "--target-n"])
def test_a_one_number_flag_refuses_a_list_before_the_run(flag):
    # Found while writing the S/E tests: `nnbackend bench --sgd-max 1e3,1e4` and
    # `--target-n 1e3,2e3` passed bench_environment; conftest.epoch_cases and
    # pytest_generate_tests then raised "could not convert string to float".
    with pytest.raises(ValueError, match=f"{flag}: expected one number"):
        _env(flag, "1e3,1e4")


def test_a_mode_size_named_twice_is_timed_once():
    env = _env("--backends", "numpy", "--no-peers", "--mode-sizes", "sgd=1e3,1000")
    cases = [c for c in cases_conftest.epoch_cases(env, usable=["numpy"]) if c[3] == "sgd"]
    assert cases == [("small", "nnbackend", "numpy", "sgd", 1000)]
