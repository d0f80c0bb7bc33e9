"""Tests from the mutation audit of the benchmark suite's conftest (the 08s audit).

``nnbackend/bench/cases/conftest.py`` reads the NNBACKEND_BENCH_* environment that
``nnbackend bench`` writes and decides the case list: which model, implementation,
device, mode and N is timed (``epoch_cases``), which sizes are left out and why
(``dropped_entries``), the time-to-target parametrisation (``pytest_generate_tests``),
the run's time budget and the case log. Everything here runs in-process on stand-ins
(an environment dict, a fake ``metafunc``, fake reports and pools): nothing is timed.

Each test names in a comment the mutants it kills (ids of the audit's table,
/tmp/review_m29s.md) and what went wrong under them.
"""

import os
import sys
import time
import types

import pytest

from nnbackend.bench.caselog import CaseLog
from nnbackend.bench.cases import conftest as cases_conftest


def _cases(env, usable=("numpy",), gpu=(), cuda=False, smoke=False, dropped=None):
    """epoch_cases on a stand-in machine: ``gpu`` the backends that run on a GPU."""
    return cases_conftest.epoch_cases(env, smoke=smoke, usable=list(usable),
                                      on_gpu=lambda where: where in gpu,
                                      cuda_torch=lambda: cuda, dropped=dropped)


def _impls(cases):
    """The distinct ``implementation-where`` of ``cases``, in the order first met."""
    return list(dict.fromkeys(f"{c[1]}-{c[2]}" for c in cases))


def _clean_env(monkeypatch, env):
    for name in list(os.environ):
        if name.startswith("NNBACKEND_BENCH_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def _generated(monkeypatch, env, fixture, smoke=False, usable=("numpy",)):
    """What pytest_generate_tests parametrises ``fixture`` with, under ``env``."""
    _clean_env(monkeypatch, env)
    monkeypatch.setattr(cases_conftest.nb, "available_backends", lambda: list(usable))
    monkeypatch.setattr(cases_conftest, "_DROPPED", [])
    got = {}
    metafunc = types.SimpleNamespace(
        config=types.SimpleNamespace(getoption=lambda name, default=False: smoke),
        fixturenames=[fixture],
        parametrize=lambda names, params, ids: got.update(names=names, params=params, ids=ids))
    cases_conftest.pytest_generate_tests(metafunc)
    return got


# -- the run's time budget and deadline ------------------------------------------------


def test_the_time_budget_skips_a_case_only_once_it_is_spent(monkeypatch):
    # M01 (budget `>` flipped to `<`): every case of a run with a budget still left
    # skipped as "time budget spent", and cases after it ran. M02 (deadline flipped):
    # the same for NNBACKEND_BENCH_DEADLINE.
    skip_check = cases_conftest._time_budget.__wrapped__

    def check():
        try:
            skip_check()
        except pytest.skip.Exception as exc:  # a skip here would read as a skipped test
            pytest.fail(f"the case skipped: {exc}")

    _clean_env(monkeypatch, {"NNBACKEND_BENCH_BUDGET_SECONDS": "1e6"})
    check()  # a budget not spent: the case runs
    monkeypatch.setenv("NNBACKEND_BENCH_BUDGET_SECONDS", "0")
    monkeypatch.setattr(cases_conftest, "_STARTED", time.monotonic() - 5)
    with pytest.raises(pytest.skip.Exception, match="time budget of 0 s is spent"):
        skip_check()
    _clean_env(monkeypatch, {"NNBACKEND_BENCH_DEADLINE": str(time.time() + 1e6)})
    check()  # a deadline still ahead
    monkeypatch.setenv("NNBACKEND_BENCH_DEADLINE", str(time.time() - 5))
    with pytest.raises(pytest.skip.Exception, match="deadline has passed"):
        skip_check()


# -- the case log ------------------------------------------------------------------------


def _report(nodeid, when, outcome="passed", longrepr=None):
    return types.SimpleNamespace(nodeid=nodeid, when=when, duration=0.01,
                                 failed=outcome == "failed", skipped=outcome == "skipped",
                                 longrepr=longrepr)


def test_the_case_log_keeps_passed_cases_and_drops_empty_parametrisations(monkeypatch,
                                                                         tmp_path):
    # M03 (`and` -> `or` in the "got empty parameter set" check): a passed case's reason
    # is None, so `.startswith` raised inside _never_fail and no passed case was logged.
    # M83 (`!= "teardown"` -> `== "setup"`): every case logged twice (call, teardown).
    # M111 (the early return dropped): a test with no case at all (no time-to-target
    # runs asked for) logged as a skipped case. M117 (the benchmark record kept for
    # failed cases, not passed ones): the log file lost the passed case's timings.
    import json

    path = tmp_path / "cases.jsonl"
    log = CaseLog(str(path))
    node = "test_epochs.py::test_epoch[small-nnbackend-numpy-batch-100]"
    record = types.SimpleNamespace(fullname=node, as_dict=lambda include_data: {"r": 1})
    config = types.SimpleNamespace(_benchmarksession=types.SimpleNamespace(benchmarks=[record]))
    monkeypatch.setattr(cases_conftest, "_CASE_LOG", log)
    monkeypatch.setattr(cases_conftest, "_REPORTS", {})
    monkeypatch.setattr(cases_conftest, "_CONFIG", [config])
    for when in ("setup", "call", "teardown"):
        cases_conftest._log_report(_report(node, when))
    empty = "test_target.py::test_time_to_target[NOTSET]"
    cases_conftest._log_report(_report(empty, "setup", "skipped",
                                       ("f", 1, "Skipped: got empty parameter set ['x']")))
    cases_conftest._log_report(_report(empty, "teardown"))
    assert [(e["name"], e["outcome"]) for e in log.entries] == [
        ("test_epoch[small-nnbackend-numpy-batch-100]", "passed")]
    lines = [json.loads(s) for s in path.read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["benchmark"] == {"r": 1}


# -- the environment's lists and sizes ---------------------------------------------------


def test_a_list_drops_empty_items_and_sizes_read_as_floats():
    # M04 (empty items kept): "numpy," named a backend "" and "100," a size "" that
    # int(float("")) refused at collection. M54 (int(s)): "1e3" refused at collection.
    assert cases_conftest._env_list("X", ["d"], {"X": " a, ,b,"}) == ["a", "b"]
    env = {"NNBACKEND_BENCH_BACKENDS": "numpy,", "NNBACKEND_BENCH_SIZES": "1e3,",
           "NNBACKEND_BENCH_MODES": "batch", "NNBACKEND_BENCH_PEERS": "0"}
    assert _cases(env) == [("small", "nnbackend", "numpy", "batch", 1000)]


# -- the smoke run (--benchmark-disable) -------------------------------------------------


def test_the_smoke_run_covers_every_model_at_its_smoke_size(monkeypatch):
    # M05 (smoke's default models = the full run's): the smoke run covered only the
    # small model, so the others could rot unseen. M07 (`not` dropped in the smoke
    # sizes): the sizes set in the environment were replaced by the smoke N and the
    # others ran at their full default sizes. M15 (the first-backend-only rule for
    # the other models dropped): every backend on every model. M112 (the last backend,
    # not the first). M110 (the smoke sizes not applied): every model at its full
    # default sizes in CI's smoke run. (M14: killed before.)
    env = {"NNBACKEND_BENCH_BACKENDS": "numpy,strict", "NNBACKEND_BENCH_PEERS": "0",
           "NNBACKEND_BENCH_MODES": "batch,sgd", "NNBACKEND_BENCH_MID_SIZES": "200"}
    got = {(c[0], c[2], c[3], c[4]) for c in _cases(env, usable=["numpy", "strict"],
                                                    smoke=True)}
    assert got == {("small", "numpy", "batch", 300), ("small", "numpy", "sgd", 300),
                   ("small", "strict", "batch", 300), ("small", "strict", "sgd", 300),
                   ("small16", "numpy", "batch", 300), ("small16", "numpy", "sgd", 300),
                   ("mnist", "numpy", "batch", 128), ("mid", "numpy", "sgd", 200)}


# -- the defaults: sgd maximum, mnist CPU maximum, modes, backends, peers ----------------


def test_the_defaults_time_every_mode_on_the_usable_backends_with_the_peers():
    # M11 (default backends not filtered by what is usable: torch, jax and cupy timed
    # on a machine without them). M43 (PyTorch eager on CUDA without any GPU backend
    # timed). Killed before, pinned here too: M10 (sgd not among the default modes),
    # M12 (peers off by default), M46 (PyTorch eager only where torch is timed).
    env = {"NNBACKEND_BENCH_SIZES": "100"}
    assert {c[3] for c in _cases(env)} == {"batch", "minibatch", "sgd"}
    assert _impls(_cases(env, usable=["numpy"])) == ["nnbackend-numpy", "numpy-seed-cpu"]
    impls = _impls(_cases(dict(env, NNBACKEND_BENCH_BACKENDS="numpy"),
                          usable=["numpy", "torch"], cuda=True))
    assert impls == ["nnbackend-numpy", "torch-eager-cpu", "numpy-seed-cpu"]


def test_the_sgd_maximum_keeps_its_own_size_and_applies_to_sgd_only():
    # Killed before, pinned here in-process: M25 (`n >= sgd_max`): N = --sgd-max itself
    # dropped. M27 (the mode check dropped): batch and mini-batch cut there too.
    env = {"NNBACKEND_BENCH_BACKENDS": "numpy", "NNBACKEND_BENCH_PEERS": "0",
           "NNBACKEND_BENCH_SIZES": "100,200", "NNBACKEND_BENCH_SGD_MAX": "100"}
    dropped = []
    got = {(c[3], c[4]) for c in _cases(env, dropped=dropped)}
    assert got == {("batch", 100), ("batch", 200), ("minibatch", 100), ("minibatch", 200),
                   ("sgd", 100)}
    assert [(d[0][3], d[0][4]) for d in dropped] == [("sgd", 200)]


def test_the_mnist_cpu_maximum_is_for_the_mnist_model_on_a_cpu_only():
    # M28 (`not gpu` dropped): mnist cut at the CPU maximum on a GPU too; M122 (nnbackend's
    # cases all marked as not on a GPU) the same way. M29
    # (`n >= cpu_max`): N = --mnist-cpu-max itself dropped. M30 (the model check
    # dropped): the small model cut at the mnist model's CPU maximum. (M29, M30: killed
    # before.)
    env = {"NNBACKEND_BENCH_BACKENDS": "numpy,cupy", "NNBACKEND_BENCH_PEERS": "0",
           "NNBACKEND_BENCH_MODELS": "small,mnist", "NNBACKEND_BENCH_MODES": "batch",
           "NNBACKEND_BENCH_SIZES": "100,200", "NNBACKEND_BENCH_MNIST_SIZES": "100,200",
           "NNBACKEND_BENCH_MNIST_CPU_MAX": "100"}
    got = {(c[0], c[1], c[2], c[4]) for c in _cases(env, usable=["numpy", "cupy"],
                                                     gpu={"cupy"})}
    small = {("small", impl, where, n) for impl, where in
             [("nnbackend", "numpy"), ("nnbackend", "cupy"), ("nnbackend-reference", "cupy")]
             for n in (100, 200)}
    assert got == small | {("mnist", "nnbackend", "numpy", 100),
                           ("mnist", "nnbackend", "cupy", 100),
                           ("mnist", "nnbackend", "cupy", 200)}


def test_a_models_mini_batch_cap_drops_its_sizes_with_why():
    # M19 (the workload's cap ignored): mnist mini-batch epochs timed at N = 1e5, past
    # the one-MNIST-epoch cap of 60,000, and nothing said why its table stopped short.
    # M20 (killed before): the left-out sizes never reached the JSON.
    env = {"NNBACKEND_BENCH_BACKENDS": "cupy", "NNBACKEND_BENCH_PEERS": "0",
           "NNBACKEND_BENCH_MODELS": "mnist", "NNBACKEND_BENCH_MODES": "minibatch",
           "NNBACKEND_BENCH_MNIST_SIZES": "1000,100000"}
    dropped = []
    cases = _cases(env, usable=["cupy"], gpu={"cupy"}, dropped=dropped)
    assert cases == [("mnist", "nnbackend", "cupy", "minibatch", 1000)]
    assert dropped == [(("mnist", "nnbackend", "cupy", "minibatch", 100000),
                        "the mnist model's minibatch runs stop at N = 60,000")]


def test_a_mode_a_model_is_not_timed_in_is_left_out_quietly():
    # M18 (killed before; the model's modes ignored): the mid model asked for batch
    # runs, which it has no cap for: formatting `None:,` raised TypeError and the suite
    # failed to collect.
    env = {"NNBACKEND_BENCH_BACKENDS": "numpy", "NNBACKEND_BENCH_PEERS": "0",
           "NNBACKEND_BENCH_MODELS": "mid", "NNBACKEND_BENCH_MODES": "batch,sgd",
           "NNBACKEND_BENCH_MID_SIZES": "100"}
    dropped = []
    assert _cases(env, dropped=dropped) == [("mid", "nnbackend", "numpy", "sgd", 100)]
    assert dropped == []


def test_a_models_own_mode_sizes_win_over_the_general_ones():
    # M16 (the lookup order swapped): `sgd=400;small:sgd=500` timed small sgd at 400,
    # the general list, not the small model's own. M17 (killed before): no general fallback.
    env = {"NNBACKEND_BENCH_BACKENDS": "numpy", "NNBACKEND_BENCH_PEERS": "0",
           "NNBACKEND_BENCH_MODELS": "small,small16", "NNBACKEND_BENCH_MODES": "sgd",
           "NNBACKEND_BENCH_MODE_SIZES": "sgd=400;small:sgd=500"}
    assert [(c[0], c[4]) for c in _cases(env)] == [("small", 500), ("small16", 400)]


# -- which implementations, in which order -----------------------------------------------


def test_nnbackends_cases_come_first_then_gpu_peers_in_priority_then_cpu_peers():
    # Killed before by the GPU check's test, pinned here on a smaller set: M21 (nnbackend's
    # cases not first): a time budget cut nnbackend's own figures
    # before the peers'. M22 (CPU peers before GPU ones). M23 (case order before the
    # peer priority).
    env = {"NNBACKEND_BENCH_BACKENDS": "numpy,cupy,jax:gpu", "NNBACKEND_BENCH_SIZES": "100",
           "NNBACKEND_BENCH_MODES": "batch,sgd"}
    cases = _cases(env, usable=["numpy", "cupy", "jax", "torch"], gpu={"cupy", "jax:gpu"},
                   cuda=True)
    assert _impls(cases) == [
        "nnbackend-numpy", "nnbackend-cupy", "nnbackend-jax:gpu", "nnbackend-reference-cupy",
        "torch-eager-cuda", "jax-scan-hand-gpu", "cupy-eager-cuda", "jax-jit-step-gpu",
        "torch-eager-cpu", "numpy-seed-cpu"]


def test_a_cupy_device_gets_the_reference_loop_and_small16_its_numpy_peer():
    # M40 (`b == "cupy"`): `cupy:1` timed without its eager reference loop beside it.
    # M41 (numpy-seed for small only): small16 lost its NumPy peer. M105 (`b == "cupy"`
    # for the plain-CuPy peer): `cupy:1` timed without cupy-eager beside it.
    env = {"NNBACKEND_BENCH_BACKENDS": "cupy:1", "NNBACKEND_BENCH_SIZES": "100",
           "NNBACKEND_BENCH_MID_SIZES": "100", "NNBACKEND_BENCH_MODES": "batch,sgd",
           "NNBACKEND_BENCH_MODELS": "small16"}
    assert _impls(_cases(env, usable=["cupy"], gpu={"cupy:1"})) == [
        "nnbackend-cupy:1", "cupy-eager-cuda", "numpy-seed-cpu"]
    env["NNBACKEND_BENCH_MODELS"] = "mid"
    assert _impls(_cases(env, usable=["cupy"], gpu={"cupy:1"})) == [
        "nnbackend-cupy:1", "nnbackend-reference-cupy:1"]


# -- the sizes left out, as the JSON lists them ------------------------------------------


def test_dropped_entries_name_each_implementation_once():
    # M31 (the duplicate check dropped): a size asked for twice (1e5,100000) listed
    # its implementations twice in the report's "Cases not measured".
    case = ("small", "nnbackend", "numpy", "sgd", 100000)
    entries = cases_conftest.dropped_entries([(case, "why"), (case, "why")])
    assert entries == [{"model": "small", "mode": "sgd", "n_samples": 100000,
                        "implementations": ["nnbackend-numpy"], "reason": "why"}]


def test_the_collection_records_the_sizes_left_out(monkeypatch):
    # M53 (killed before; _DROPPED not set at collection): the results JSON and the console summary
    # lost the sizes the settings left out.
    env = {"NNBACKEND_BENCH_BACKENDS": "numpy", "NNBACKEND_BENCH_PEERS": "0",
           "NNBACKEND_BENCH_MODES": "sgd", "NNBACKEND_BENCH_SIZES": "100,200",
           "NNBACKEND_BENCH_SGD_MAX": "100"}
    got = _generated(monkeypatch, env, "implementation")
    assert got["params"] == [("small", "nnbackend", "numpy", "sgd", 100)]
    assert got["ids"] == ["small-nnbackend-numpy-sgd-100"]
    assert [(d["n_samples"], d["implementations"]) for d in cases_conftest._DROPPED] == [
        (200, ["nnbackend-numpy"])]


# -- the time-to-target parametrisation --------------------------------------------------


def test_the_time_to_target_cases(monkeypatch):
    # M34 (smoke's N cap `min` -> `max`): the smoke run's time-to-target runs at
    # N = 10,000, not 300. M63 (the cap applied to the full run, not the smoke run).
    # M64 (the smoke flag not passed to target_budget): the smoke run's targets got
    # 30 s each, not 1. M62 (the default backends not filtered by what is usable:
    # torch, jax and cupy targets on a machine without them). M97 (N left out of the
    # case ids). M37 (the small-model check dropped): a run of the mid model alone ran
    # the small model's time-to-target cases. M36 (killed before): `--target-n 0`.
    got = _generated(monkeypatch, {"NNBACKEND_BENCH_MODES": "batch,sgd"}, "target_case",
                     smoke=True)
    assert got["params"] == [("numpy", "batch", 300, ("seconds", 1.0)),
                             ("numpy", "sgd", 300, ("seconds", 1.0))]
    assert got["ids"] == ["numpy-batch-300", "numpy-sgd-300"]
    # M100 (TARGET_EPOCHS read by int(), not int(float())): a hand-set "2e3" failed the
    # collection with "invalid literal for int()" (the other N settings take 1e3).
    assert cases_conftest.target_budget({"NNBACKEND_BENCH_TARGET_EPOCHS": "2e3"}) == (
        "epochs", 2000)
    got = _generated(monkeypatch, {"NNBACKEND_BENCH_TARGET_N": "0"}, "target_case")
    assert got["params"] == []
    got = _generated(monkeypatch, {"NNBACKEND_BENCH_MODELS": "mid"}, "target_case")
    assert got["params"] == []
    got = _generated(monkeypatch, {"NNBACKEND_BENCH_MODES": "sgd",
                                   "NNBACKEND_BENCH_TARGET_N": "2e3"}, "target_case")
    assert got["params"] == [("numpy", "sgd", 2000, ("seconds", 30.0))]


# -- the GPU pools' release ----------------------------------------------------------------


def test_the_pools_are_released_only_when_they_hold_much(monkeypatch):
    # M51 (`<` -> `>`): a nearly empty pool collected after every case (tenths of a
    # second each) and a full one kept, gigabytes cached into the next case. M86
    # (`and` -> `or`): CuPy's pool never released unless torch had CUDA running too.
    # M87 (a pool that cannot say its size taken as empty): never released.
    freed, held = [], [0]
    pool = types.SimpleNamespace(total_bytes=lambda: held[0],
                                 free_all_blocks=lambda: freed.append(held[0]))
    fake = types.SimpleNamespace(get_default_memory_pool=lambda: pool)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr(cases_conftest, "RELEASE_BYTES", 1000)

    def after_a_case():
        fixture = cases_conftest._release_gpu_pools.__wrapped__()
        next(fixture)
        with pytest.raises(StopIteration):
            next(fixture)

    for held[0] in (10, 5000):
        after_a_case()
    assert freed == [5000]

    def unknown():
        raise RuntimeError("no device")

    pool.total_bytes = unknown
    after_a_case()
    assert freed == [5000, 5000]


# -- what the case log, the results JSON and the console get -----------------------------


def test_the_case_logs_record_is_the_last_benchmark_of_the_case_with_its_data(monkeypatch):
    # M55 (include_data=False): the case log's record lost the rounds' times, so a run
    # rebuilt from the log had no spread. M56 (the first record, not the last): a case
    # timed again (a re-run of a noisy case) logged its superseded record.
    node = "test_epochs.py::test_epoch[x]"
    records = [types.SimpleNamespace(fullname=node, as_dict=lambda include_data, k=k:
                                     {"k": k, "data": include_data}) for k in (1, 2)]
    other = types.SimpleNamespace(fullname="other", as_dict=lambda include_data: {})
    config = types.SimpleNamespace(_benchmarksession=types.SimpleNamespace(
        benchmarks=records + [other]))
    monkeypatch.setattr(cases_conftest, "_CONFIG", [config])
    assert cases_conftest._benchmark_record(node) == {"k": 2, "data": True}
    assert cases_conftest._benchmark_record("missing") is None


def test_the_sizes_left_out_reach_the_case_log_and_the_json(monkeypatch, tmp_path):
    # M57 (no "dropped" line at collection): a run rebuilt from its case log lost
    # the sizes left out. M58 (no "dropped" in the results JSON).
    import json

    dropped = [{"model": "small", "mode": "sgd", "n_samples": 200,
                "implementations": ["nnbackend-numpy"], "reason": "why"}]
    monkeypatch.setattr(cases_conftest, "_DROPPED", dropped)
    log = CaseLog(str(tmp_path / "cases.jsonl"))
    monkeypatch.setattr(cases_conftest, "_CASE_LOG", log)
    session = types.SimpleNamespace(items=[types.SimpleNamespace(name="test_epoch[a]")])
    cases_conftest.pytest_collection_finish(session)
    lines = [json.loads(s) for s in (tmp_path / "cases.jsonl").read_text().splitlines()]
    assert lines == [{"collected": ["test_epoch[a]"]}, {"dropped": dropped}]
    output = {}
    cases_conftest.pytest_benchmark_update_json(None, [], output)
    assert output["dropped"] == dropped and output["cases"] == []


def test_the_summary_reads_ratios_without_a_number_or_a_target():
    # M78 (the number check dropped): a ratio not measured (None) raised in the format,
    # and the whole console summary was replaced by "not available". M79 (a pair with
    # no target): `None:g` raised the same way. M80 (met / NOT met swapped).
    records = [("test_ratio[a]", {"kind": "ratio", "label": "x / y", "ratio": None}),
               ("test_ratio[b]", {"kind": "ratio", "label": "x / y", "ratio": 2.0}),
               ("test_ratio[c]", {"kind": "ratio", "label": "x / y", "ratio": 2.0,
                                  "target": 1.5, "sense": "min", "met": True}),
               ("test_ratio[d]", {"kind": "ratio", "label": "x / y", "ratio": 1.0,
                                  "target": 1.5, "sense": "min", "met": False})]
    assert cases_conftest.summary_lines(records) == [
        "Interleaved pairs (ratio of the two sides' median epoch times):",
        "  test_ratio[b]: x / y = 2", "  test_ratio[c]: x / y = 2; target >= 1.5: met",
        "  test_ratio[d]: x / y = 1; target >= 1.5: NOT met"]


def test_the_summary_is_ascii_only():
    # M107 (the "µ" -> "u" replacement dropped): a microsecond epoch printed "µs", which
    # a terminal without that character cannot print (the code's own comment).
    records = [("test_epoch[a]", {"kind": "epoch", "seconds_per_epoch": 2e-6}),
               ("test_epoch[b]", {"kind": "epoch", "seconds_per_epoch": None})]
    lines = cases_conftest.summary_lines(records)
    assert lines[1] == "  test_epoch[a]     2.00 us per epoch  (1 epoch a call)"
    assert lines[2] == "  test_epoch[b]           - per epoch  (1 epoch a call)"
    assert all(line.isascii() for line in lines)


def test_a_target_not_reached_is_said_so_though_it_trained_for_seconds():
    # M49 (`reached` -> `seconds`): a run that spent its budget without reaching the
    # target loss printed "reached in 30.0 s".
    records = [("test_time_to_target[a]", {"kind": "time_to_target", "reached": False,
                                            "seconds": 30.0, "epochs": 12})]
    assert cases_conftest.summary_lines(records) == [
        "Time to the target loss:",
        "  test_time_to_target[a]: not reached within its budget (12 epochs)"]


def test_the_console_summary_is_left_out_of_the_smoke_run(monkeypatch):
    # M81 (the --benchmark-disable check dropped): CI's smoke run, which times nothing,
    # printed a summary section anyway.
    monkeypatch.setattr(cases_conftest, "_DROPPED", [
        {"model": "small", "mode": "sgd", "n_samples": 200,
         "implementations": ["nnbackend-numpy"], "reason": "why"}])
    for disabled in (True, False):
        written = []
        reporter = types.SimpleNamespace(
            config=types.SimpleNamespace(getoption=lambda name, default=False: disabled),
            write_sep=lambda sep, title: written.append(title), write_line=written.append)
        cases_conftest.pytest_terminal_summary(reporter)
        assert bool(written) is not disabled
    assert written[0] == "nnbackend bench summary" and "small sgd N = 200" in written[-1]


def test_an_unusable_backend_is_not_on_a_gpu_and_jax_without_a_device_is_default():
    # M66 (an error counted as a GPU): a backend that fails to start was taken for a
    # GPU one, so its peers were ordered and filtered (--gpu-peers) as GPU cases.
    # M73 (`device or "default"` dropped): plain `jax` named its hand-written peers'
    # device "" (case ids "jax-scan-hand--...").
    assert cases_conftest._on_gpu("no-such-backend") is False
    env = {"NNBACKEND_BENCH_BACKENDS": "jax", "NNBACKEND_BENCH_SIZES": "100",
           "NNBACKEND_BENCH_MODES": "batch"}
    assert _impls(_cases(env, usable=["jax"])) == [
        "nnbackend-jax", "jax-scan-hand-default", "jax-jit-step-default", "numpy-seed-cpu"]
    # M93 (the hand-written JAX peers for small16 too): they train the small model
    # only (peers._small_only), so each of small16's JAX peer cases failed.
    env["NNBACKEND_BENCH_MODELS"] = "small16"
    assert _impls(_cases(env, usable=["jax"])) == ["nnbackend-jax", "numpy-seed-cpu"]


def test_a_size_set_twice_by_hand_is_timed_once():
    # The audit's note: NNBACKEND_BENCH_SIZES=1e3,1000, set by hand rather than
    # through `nnbackend bench --sizes` (which drops repeats), listed each
    # small-model case twice, so the suite timed it twice.
    env = {"NNBACKEND_BENCH_SIZES": "1e3,1000", "NNBACKEND_BENCH_MODES": "batch",
           "NNBACKEND_BENCH_BACKENDS": "numpy", "NNBACKEND_BENCH_PEERS": "0"}
    assert [c for c in _cases(env) if c[0] == "small"] == [
        ("small", "nnbackend", "numpy", "batch", 1000)]
