"""The GPU check's parts, on the CPU: the fused kernel's profile (its variants
built and run on the host), the cases the check times, its summary, and a
benchmark that keeps going past a failed case and survives being cut off.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script, needs_cxx
from nnbackend.bench.caselog import not_measured, results_from_log
from nnbackend.bench.cases import conftest as cases_conftest
from nnbackend.bench.suite import mode_sizes

ROOT = Path(__file__).resolve().parent.parent
# A GPU machine's backends, as the check asks for them.
GPU = {"numpy": False, "cupy": True, "torch:cuda": True, "jax:gpu": True}
USABLE = ["numpy", "strict", "torch", "jax", "cupy"]
GPU_CHECK_ENV = {
    "NNBACKEND_BENCH_BACKENDS": "numpy,cupy,torch:cuda,jax:gpu",
    "NNBACKEND_BENCH_MODELS": "small,mid,mnist", "NNBACKEND_BENCH_SIZES": "1000,10000,100000",
    "NNBACKEND_BENCH_SGD_MAX": "1000", "NNBACKEND_BENCH_MID_SIZES": "1000,10000",
    "NNBACKEND_BENCH_MNIST_SIZES": "10000", "NNBACKEND_BENCH_MNIST_CPU_MAX": "10000",
    # The script's own: the batch epochs from 1e2 rows, for issue 26's crossover.
    "NNBACKEND_BENCH_MODE_SIZES": re.search(
        r"--mode-sizes (\S+)", (ROOT / "benchmarks" / "gpu_check.sh").read_text()).group(1),
}


@pytest.fixture(scope="module")
def profile():
    return load_script("fused_profile")


# -- the fused kernel's profile ------------------------------------------------------


def _source(profile, config, batch=None):
    from nnbackend.backends.cupy import fused as F

    name, model, X, Y, multiclass, opt, plan = profile.problem(config)
    layout = F.Layout(model.layer_sizes, batch or plan.batch_size, "float32",
                      profile.HOPPER_SHARED)
    return F.kernel_source(layout, model.spec, "sgd", "float32", multiclass), layout


def test_the_profile_reads_each_kernels_step_phase_by_phase(profile):
    for config in profile.CONFIGS:
        source, layout = _source(profile, config)
        head, body, tail = profile.batch_loop(source)
        stmts = profile.statements(body)
        kinds = profile.classify(stmts)
        # The step in its order: set-up, gather, forward, the output row, then
        # per layer (last first) the input gradient and the update.
        order = [k for k in kinds if k != "sync"]
        firsts = [order.index(k) for k in ("setup", "gather", "forward", "loss", "update")]
        assert firsts == sorted(firsts)
        assert order.count("update") == len(config[1]) - 1  # one per layer
        assert order.count("input grad") >= len(config[1]) - 2  # all but the first layer
        syncs = profile.sync_count(source)
        assert syncs == kinds.count("sync") and syncs >= 2 * (len(config[1]) - 1)
        # Each variant leaves its phases out, with their barriers.
        counts = {v: profile.variant_source(source, drop)[1]
                  for v, drop in profile.VARIANTS.items()}
        assert counts["full"] == syncs and counts["no sync"] == counts["empty"] == 0
        assert syncs > counts["no update"] > counts["no backward"] > counts["forward only"] \
            > counts["gather only"] == 1
        assert "lr_t" not in profile.variant_source(source, ("update",))[0].split("start")[-1]


def test_attribution_is_the_differences_per_step(profile):
    times = {"full": 10.0, "no sync": 7.0, "no update": 6.0, "no backward": 4.0,
             "forward only": 3.0, "gather only": 2.0, "empty": 1.5, "launch": 0.5}
    per_step = profile.attribute(times, steps=10)
    assert per_step == pytest.approx({"full": 1.0, "loop": 0.1, "gather": 0.05, "forward": 0.1,
                                      "loss": 0.1, "input grad": 0.2, "update": 0.4,
                                      "barriers": 0.3})
    lines = profile.table([{"config": "c", "params_in": "shared", "acts_in": "shared",
                            "threads": 64, "shared_bytes": 1024, "syncs": {"full": 7},
                            "registers": 40, "local_bytes": 0, "times": times,
                            "per_step": per_step}], "Test GPU")
    assert "Test GPU" in lines[0] and lines[-1].split()[1:3] == ["1000000.000", "100000.000"]


@needs_cxx
def test_every_variant_builds_and_runs_on_the_host_and_full_is_the_kernel(profile, capsys):
    from nnbackend.backends.cupy import fused as F
    from nnbackend.data import host_rng, make_plan

    counts = profile.host_check(n_rows=4)
    assert set(counts) == {c[0] for c in profile.CONFIGS}
    assert all(v["no sync"] == 0 and v["full"] >= 7 for v in counts.values())
    assert "7 variants built and run on the host" in capsys.readouterr().out
    # The "full" variant computes what the kernel computes; "no update" learns nothing.
    name, model, X, Y, multiclass, opt, _ = profile.problem(profile.CONFIGS[1])
    plan = make_plan("minibatch", 40, 8, shuffle=True)
    layout = F.Layout(model.layer_sizes, 8, "float32")
    results = {}
    for variant in ("original", "full", "no update"):
        launcher = F.host_launcher if variant == "original" else \
            profile.capture_launcher(F.host_launcher, profile.VARIANTS[variant], {})
        epoch = F.make_epoch(np, model.spec, opt, plan, X[:40], Y[:40], multiclass,
                             model.layer_sizes, "float32", launcher, layout=layout)
        params = model.flat_params
        results[variant] = epoch(params, opt.init(params), plan.order(host_rng(1)))[0]
    for a, b, p in zip(results["original"], results["full"], model.flat_params):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, p)
    for a, p in zip(results["no update"], model.flat_params):
        np.testing.assert_array_equal(a, p)


def _fake_cupy():
    """NumPy dressed as CuPy for the profile's GPU path: arrays, events, devices, kernels."""
    import time
    import types

    fake = types.ModuleType("cupy")
    fake.__dict__.update({k: getattr(np, k) for k in dir(np) if not k.startswith("__")})

    class Event:
        def record(self):
            self.at = time.perf_counter()

        def synchronize(self):
            pass

    class Kernel:
        def __init__(self, source, name, options=()):
            self.attributes = {"num_regs": 32, "local_size_bytes": 0}

    fake.cuda = types.SimpleNamespace(
        Event=Event, get_elapsed_time=lambda a, b: (b.at - a.at) * 1e3,
        Device=lambda *a: types.SimpleNamespace(synchronize=lambda: None))
    fake.RawKernel = Kernel
    return fake


@needs_cxx
def test_the_profiles_gpu_path_runs_with_the_host_build_standing_in(profile, monkeypatch):
    """gpu_profile and its table, every line of them, with NumPy as CuPy and the
    host build as the CUDA launcher: what the GPU run does but the timing."""
    import contextlib
    import types

    from nnbackend.backends.cupy import fused as F
    from nnbackend.backends.cupy import grid as G

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    monkeypatch.setattr(F, "cuda_launcher", F.host_launcher)
    monkeypatch.setattr(G, "cuda_cluster_launcher", lambda: G.host_cluster_launcher(3))
    backend = types.SimpleNamespace(device=contextlib.nullcontext())
    monkeypatch.setattr(F, "shared_limit", lambda dev: 232448)
    # A few steps each (the host build is one thread): sgd over 3 rows, mini-batches over 130.
    configs = [c[:7] + ((3 if c[6] == 1 else 130),) + c[8:] for c in profile.CONFIGS]
    rows = profile.gpu_profile(backend, configs=configs, rounds=1)
    assert [r["config"] for r in rows] == [c[0] for c in profile.CONFIGS]
    for r in rows:
        # Each config's gather runs a step ahead, and the mini-batch's update in blocks:
        # the full kernel is timed without them too.
        blocked = r["config"] != "[32,64,1] sgd"  # 4x4 blocks, or the mid model's 16-byte update
        assert r["gather_slots"] >= 1
        assert set(r["times"]) == set(profile.VARIANTS) | {"launch", "full, gather at each step"} \
            | ({"full, one output or parameter an iteration"} if blocked else set())
        assert r["registers"] == 32 and r["syncs"]["full"] >= 7 and r["syncs"]["no sync"] == 0
        assert set(r["per_step"]) == ({"full", "unprefetched"} | {p for p, _, _ in profile.PHASES}
                                      | ({"unblocked"} if blocked else set()))
    assert rows[2]["params_in"] == "global" and rows[2]["threads"] == 1024
    # The mid model again as cupy-fused runs it on sm_90: a cluster, its work in global memory.
    assert rows[3]["config"] in profile.CLUSTERED and rows[3]["acts_in"] == "global"
    assert rows[3]["syncs"]["full"] == rows[2]["syncs"]["full"]
    lines = profile.table(rows, "NumPy standing in")
    assert len(lines) == 2 + 2 * len(rows) + 1
    json.dumps(rows, default=float)  # what --json writes


@needs_cxx
def test_without_a_gpu_the_profile_says_so_and_exits_0(profile, capsys, tmp_path):
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here: the script would time the GPU")
    except ImportError:
        pass
    assert profile.main(["--json", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "not measured, no GPU for CuPy here" in out and "the host check passed" in out
    assert json.loads((tmp_path / "p.json").read_text())["host_check"]


# -- the cases the GPU check times ---------------------------------------------------


def test_the_gpu_checks_cases_cover_every_model_and_pytorch_eager_on_the_gpu():
    cases = cases_conftest.epoch_cases(GPU_CHECK_ENV, usable=USABLE, on_gpu=GPU.get,
                                       cuda_torch=lambda: True)
    by_model = {m: [c for c in cases if c[0] == m] for m in ("small", "mid", "mnist")}
    assert [len(v) for v in by_model.values()] == [66, 14, 14]  # the header's arithmetic
    for model, mine in by_model.items():
        assert ("torch-eager", "cuda") in {(c[1], c[2]) for c in mine}, model
        assert {c[2] for c in mine if c[1] == "nnbackend"} == set(GPU)
    # small: batch at four N; mini-batch at 1e5 only; sgd at 1e3 (per --mode-sizes).
    assert {(c[3], c[4]) for c in by_model["small"]} == {
        ("batch", 100), ("batch", 1000), ("batch", 10000), ("batch", 100000),
        ("minibatch", 100000), ("sgd", 1000)}
    # mid: per step only; the fused kernel beside its eager loop; no plain-CuPy peer.
    assert {(c[3], c[4]) for c in by_model["mid"]} == {("minibatch", 10000), ("sgd", 1000)}
    impls = {c[1] for c in by_model["mid"]}
    assert "nnbackend-reference" in impls and "cupy-eager" not in impls
    assert {(c[3], c[4]) for c in by_model["mnist"]} == {("batch", 10000), ("minibatch", 10000)}
    # nnbackend's cases first, then PyTorch eager on the GPU, ..., the peers on the
    # CPU alone last (a cut-off costs the GPU figures least); --gpu-peers leaves
    # those out.
    kinds = [("nnbackend" if c[1].startswith("nnbackend") else f"{c[1]}-{c[2]}") for c in cases]
    assert kinds.index("torch-eager-cuda") == kinds.count("nnbackend") == 48
    assert kinds.index("jax-jit-step-gpu") > kinds.index("cupy-eager-cuda")
    cpu_peers = [c for c in cases if c[1] in ("numpy-seed", "torch-eager") and c[2] == "cpu"]
    assert len(cpu_peers) == 16 and cases[-16:] == cpu_peers
    gpu_only = cases_conftest.epoch_cases(dict(GPU_CHECK_ENV, NNBACKEND_BENCH_PEERS="gpu"),
                                          usable=USABLE, on_gpu=GPU.get, cuda_torch=lambda: True)
    assert gpu_only == cases[:-16]


def test_mode_sizes_replace_a_models_sizes_and_the_sgd_maximum():
    env = {"NNBACKEND_BENCH_BACKENDS": "numpy", "NNBACKEND_BENCH_MODELS": "small,mid",
           "NNBACKEND_BENCH_SIZES": "100,200", "NNBACKEND_BENCH_MID_SIZES": "300",
           "NNBACKEND_BENCH_SGD_MAX": "100", "NNBACKEND_BENCH_PEERS": "0",
           "NNBACKEND_BENCH_MODE_SIZES": "sgd=400;small:batch=500"}
    got = {(c[0], c[3], c[4]) for c in cases_conftest.epoch_cases(env, usable=["numpy"])}
    assert got == {("small", "batch", 500), ("small", "minibatch", 100),
                   ("small", "minibatch", 200), ("small", "sgd", 400),
                   ("mid", "minibatch", 300), ("mid", "sgd", 400)}
    assert mode_sizes(" mid:sgd=1e3 ; minibatch=2e3,4e3 ") == {
        ("mid", "sgd"): [1000], (None, "minibatch"): [2000, 4000]}
    for bad in ("mid:batches=1", "cifar:sgd=1", "sgd", "sgd=lots", "sgd=0"):
        with pytest.raises(ValueError, match="--mode-sizes: expected"):
            mode_sizes(bad)


def test_the_bench_flags_for_mid_mode_sizes_and_gpu_peers():
    import argparse

    from nnbackend.bench.suite import add_bench_arguments, bench_environment

    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    args = parser.parse_args(["--backends", "numpy", "--models", "small,mid", "--mid-sizes",
                              "1e3,1e4", "--mode-sizes", "mid:sgd=1e3", "--gpu-peers"])
    env = bench_environment(args, {})
    assert env["NNBACKEND_BENCH_MODELS"] == "small,mid"
    assert env["NNBACKEND_BENCH_MID_SIZES"] == "1000,10000"
    assert env["NNBACKEND_BENCH_MODE_SIZES"] == "mid:sgd=1e3"
    assert env["NNBACKEND_BENCH_PEERS"] == "gpu"
    with pytest.raises(ValueError, match="--mode-sizes: expected"):
        bench_environment(parser.parse_args(["--mode-sizes", "mid:sgd"]), {})
    with pytest.raises(ValueError, match="--mid-sizes: expected"):
        bench_environment(parser.parse_args(["--mid-sizes", "lots"]), {})


# -- the summary and a run cut off ---------------------------------------------------


def test_the_summary_names_every_test_skipped_or_failed(tmp_path, capsys):
    summary = load_script("gpu_check_summary")
    junit = tmp_path / "t.xml"
    junit.write_text(textwrap.dedent("""\
        <testsuites><testsuite>
        <testcase classname="tests.test_fit" name="test_fit[cupy-sgd]"/>
        <testcase classname="tests.test_fit" name="test_fit[numpy-sgd]">
          <skipped message="this machine has a GPU for CuPy"/></testcase>
        <testcase classname="tests.test_fit" name="test_fit[torch-cuda-adam]">
          <failure message="RuntimeError: capture&#10;more">trace</failure></testcase>
        </testsuite></testsuites>"""))
    summary.tests(str(junit))
    out = capsys.readouterr().out
    assert "tests: 1 passed, 1 failed, 1 skipped" in out
    assert "tests.test_fit::test_fit[numpy-sgd]: this machine has a GPU for CuPy" in out
    assert "tests.test_fit::test_fit[torch-cuda-adam]: RuntimeError: capture" in out
    summary.tests(str(tmp_path / "none.xml"))
    assert "no test report" in capsys.readouterr().out


def test_the_summary_says_why_a_test_file_was_skipped_whole(tmp_path, capsys):
    # tests/test_estimators_devices.py skips at collection where scikit-learn is
    # missing (the GPU machine): JUnit's message is "collection skipped", the
    # reason is in the element's text, which the summary had left out.
    summary = load_script("gpu_check_summary")
    junit = tmp_path / "t.xml"
    junit.write_text(textwrap.dedent("""\
        <testsuites><testsuite>
        <testcase classname="" name="tests.test_estimators_devices">
          <skipped message="collection skipped">('tests/test_estimators_devices.py', 31, \
        "Skipped: could not import 'sklearn': No module named 'sklearn'")</skipped></testcase>
        <testcase classname="" name="tests.test_other">
          <skipped message="collection skipped">not a tuple</skipped></testcase>
        <testcase classname="" name="tests.test_third">
          <skipped message="collection skipped">'a string'</skipped></testcase>
        </testsuite></testsuites>"""))
    summary.tests(str(junit))
    out = capsys.readouterr().out
    assert ("tests.test_estimators_devices: collection skipped: Skipped: could not import "
            "'sklearn': No module named 'sklearn'") in out
    assert "tests.test_other: collection skipped: not a tuple" in out
    assert "tests.test_third: collection skipped: 'a string'" in out


def test_the_summary_names_the_sizes_the_settings_left_out(capsys):
    # Before: report.md listed them, the summary's "not measured" did not.
    summary = load_script("gpu_check_summary")
    data = {"cases": [{"name": "test_epoch[small-nnbackend-cupy-sgd-1000]", "outcome": "passed",
                       "seconds": 0.5}],
            "dropped": [{"model": "small", "mode": "sgd", "n_samples": 100000,
                         "implementations": ["nnbackend-cupy"], "reason": "above --sgd-max"},
                        {"model": "mnist", "mode": "batch", "n_samples": 1000000,
                         "implementations": [], "reason": "above --mnist-cpu-max"}]}
    summary._cases(data)
    out = capsys.readouterr().out
    assert "benchmark cases not measured: none" in out
    assert "sizes left out by the run's settings (2), never run:" in out
    assert "  small sgd N = 100,000 (nnbackend-cupy): above --sgd-max" in out
    assert "  mnist batch N = 1,000,000 (—): above --mnist-cpu-max" in out
    summary._cases({"cases": data["cases"]})
    assert "left out" not in capsys.readouterr().out


def test_the_summarys_targets_say_how_many_epochs_a_timed_call_ran(capsys):
    summary = load_script("gpu_check_summary")
    data = {"benchmarks": [
        {"extra_info": {"kind": "epoch", "model": "small", "mode": "batch", "n_samples": 1000,
                        "label": "nnbackend-cupy-cuda", "seconds_per_step": 12e-6,
                        "seconds_per_epoch": 12e-6, "epochs_per_call": 64}},
        {"extra_info": {"kind": "epoch", "model": "small", "mode": "batch", "n_samples": 1000,
                        "label": "nnbackend-jax-gpu", "seconds_per_step": 30e-6,
                        "seconds_per_epoch": 30e-6}}]}
    summary._targets(summary._points(data))
    out = capsys.readouterr().out
    assert "cupy           12.00 µs per epoch (target 15, 64 epochs a timed call): met" in out
    assert "jax:gpu        30.00 µs per epoch (target 15): NOT met" in out


def test_the_summarys_targets_are_unsure_where_the_report_flags_the_timing(capsys):
    # Before: "met" from a timing whose case failed after it, or the last of two
    # disagreeing copies; a ratio with no verdict read "NOT met".
    summary = load_script("gpu_check_summary")

    def timing(label, seconds):
        return {"extra_info": {"kind": "epoch", "model": "small", "mode": "batch",
                               "n_samples": 1000, "label": label, "seconds_per_step": seconds,
                               "seconds_per_epoch": seconds}}

    data = {"benchmarks": [timing("nnbackend-cupy-cuda", 12e-6),
                           timing("nnbackend-torch-cuda", 9e-6),
                           timing("nnbackend-torch-cuda", 30e-6)]}
    flags = summary._flags({"noisy": [{"model": "small", "label": "nnbackend-cupy-cuda",
                                       "mode": "batch", "n_samples": 1000,
                                       "reasons": ["its case failed after the timing"]}]})
    summary._targets(summary._points(data), flags)
    out = capsys.readouterr().out
    assert ("cupy           12.00 µs per epoch (target 15): unsure, met by its median but "
            "flagged: its case failed after the timing") in out
    assert "torch:cuda      9.00 µs per epoch (target 15): met" in out  # the faster copy
    summary._ratios([{"model": "small", "mode": "batch", "n_samples": 10**6, "ratio": 0.5,
                      "label_a": "nnbackend-cupy-cuda", "label_b": "torch-eager-cuda",
                      "target": 1.5, "sense": "max", "met": None, "other_cards": True}])
    assert "target <= 1.5: no verdict (the sides ran on different devices)" in \
        capsys.readouterr().out


@pytest.mark.parametrize("crossover, verdict", [
    ({"status": "crossover", "n": 310.0, "n_measured": [100, 1000]}, "met"),
    ({"status": "crossover", "n": 1500.0, "n_measured": [100, 1000, 10000]}, "NOT met"),
    ({"status": "gpu_faster_everywhere", "n": None, "n_measured": [100, 1000]}, "met"),
    ({"status": "gpu_faster_everywhere", "n": None, "n_measured": [1000, 10000]},
     "not measured (smallest N 1000: GPU faster there)"),
    ({"status": "cpu_faster_everywhere", "n": None, "n_measured": [100, 1000]}, "NOT met"),
    ({"status": "mixed", "n": 200.0, "n_measured": [100, 1000, 10000]}, "NOT met"),
])
def test_the_summary_says_whether_the_batch_crossover_is_a_few_hundred_rows(crossover, verdict,
                                                                              capsys):
    summary = load_script("gpu_check_summary")
    rows = [dict(crossover, model="small", mode="batch", label="nnbackend-cupy-cuda",
                 text="GPU faster from N ≈ ..."),
            dict(crossover, model="small", mode="sgd", label="nnbackend-cupy-cuda"),
            dict(crossover, model="small", mode="batch", label="nnbackend-cupy-cuda-reference")]
    summary._crossover_targets(rows)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("issue 26 crossover target") and len(lines) == 2
    assert lines[1].endswith(f"(target: GPU faster from N <= 500): {verdict}")
    assert " cupy " in lines[1]


def _bench_env(tmp_path, **extra):

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NNBACKEND_"))}
    env.update(PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
               NNBACKEND_BENCH_SECONDS="0.01", **extra)
    return env


def _suite(tmp_path, body):
    """A suite of the package's cases with ``body`` put before its epoch test."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text((ROOT / "benchmarks" / "conftest.py").read_text())
    (suite / "test_epochs.py").write_text(textwrap.dedent(body) + textwrap.dedent("""
        from nnbackend.bench.cases import test_epochs as real


        @pytest.mark.benchmark(group="epoch")
        def test_epoch(benchmark, model, implementation, where, mode, n_samples):
            fault(model, mode, n_samples)
            real.test_epoch(benchmark, model, implementation, where, mode, n_samples)
        """))
    return suite


BENCH = [sys.executable, "-m", "nnbackend.cli", "bench", "--backends", "numpy", "--modes",
         "batch,sgd", "--sizes", "64,128", "--sgd-max", "64", "--models", "small,mid",
         "--mid-sizes", "64", "--target-n", "0", "--no-peers"]


def test_a_failed_case_costs_only_itself(tmp_path):
    """A case that fails the way a GPU case does (a CUDA error in the middle of
    the run) is reported by name; every other case still runs and is reported."""
    pytest.importorskip("pytest_benchmark", reason="nnbackend bench needs pytest-benchmark")
    suite = _suite(tmp_path, """
        import pytest


        def fault(model, mode, n):
            if (model, mode, n) == ("small", "batch", 128):
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
        """)
    out = tmp_path / "b"
    done = subprocess.run(BENCH + ["--out", str(out)], capture_output=True, text=True,
                          env=_bench_env(tmp_path, NNBACKEND_BENCH_SUITE=str(suite)),
                          timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]
    data = json.loads((out / "results.json").read_text())
    measured = {(b["extra_info"]["model"], b["extra_info"]["mode"], b["extra_info"]["n_samples"])
                for b in data["benchmarks"]}
    assert measured == {("small", "batch", 64), ("small", "sgd", 64), ("mid", "sgd", 64)}
    assert not_measured(data) == [("test_epoch[small-nnbackend-numpy-batch-128]", "failed",
                                   "call: RuntimeError: CUDA error: an illegal memory access "
                                   "was encountered")]
    assert all(c["seconds"] >= 0 and set(c["phases"]) == {"setup", "call", "teardown"}
               for c in data["cases"])
    report = (out / "report.md").read_text()
    assert "**Incomplete:**" in report and "## Cases not measured" in report


def test_a_run_cut_off_is_rebuilt_from_its_case_log(tmp_path, capsys):
    """Killed before pytest writes its JSON (here: the process dies in a case),
    the run leaves its case log; the GPU check's summary rebuilds the results
    and the report from it, naming the cases that never ended."""
    pytest.importorskip("pytest_benchmark", reason="nnbackend bench needs pytest-benchmark")
    suite = _suite(tmp_path, """
        import os

        import pytest


        def fault(model, mode, n):
            if model == "mid":
                os._exit(9)  # as a kill or a crash: no teardown, no JSON
        """)
    log, out = tmp_path / "cases.jsonl", tmp_path / "b"
    done = subprocess.run(BENCH + ["--out", str(out)], capture_output=True, text=True,
                          env=_bench_env(tmp_path, NNBACKEND_BENCH_SUITE=str(suite),
                                         NNBACKEND_BENCH_CASE_LOG=str(log)), timeout=600)
    assert done.returncode != 0  # and results.json is empty: pytest-benchmark never wrote it
    assert not (out / "results.json").exists() or not (out / "results.json").read_text()
    data = results_from_log(log)
    assert len(data["benchmarks"]) == 3 and data["nnbackend"]["failed"]
    assert not_measured(data) == [
        ("test_epoch[mid-nnbackend-numpy-sgd-64]", "not run",
         "the run ended (cut off or crashed) before this case ended")]
    summary = load_script("gpu_check_summary")
    summary.rebuild(str(log), str(out))
    summary.bench(str(out))
    printed = capsys.readouterr().out
    assert "rebuilt from its case log" in printed and "benchmark INCOMPLETE" in printed
    assert "test_epoch[mid-nnbackend-numpy-sgd-64]: not run" in printed
    assert "small: per step" in printed
    assert "Cases not measured" in (out / "report.md").read_text()


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                    reason="the GPU check is a bash script that needs timeout (coreutils)")
def test_the_gpu_check_runs_end_to_end_without_a_gpu(tmp_path):
    """The dry run (GPU_CHECK_REQUIRE_GPU=0): every part runs, what comes back
    stays within the device tool's 8 files, 2 folders deep, and the summary
    names what was not measured."""
    pytest.importorskip("pytest_benchmark", reason="nnbackend bench needs pytest-benchmark")
    out = tmp_path / "out"
    env = _bench_env(tmp_path, OUT=str(out), GPU_CHECK_REQUIRE_GPU="0", GPU_CHECK_TESTS="none",
                     GPU_CHECK_BENCH_ARGS="--models small,mid --modes sgd --sizes 64 "
                                          "--sgd-max 64 --mid-sizes 64 --no-peers")
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env,
                          capture_output=True, text=True, timeout=900)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert len(files) <= 8 and all(f.count("/") <= 1 for f in files), files
    assert {"summary.txt", "bench/results.json", "bench/report.md"} <= set(files)
    text = (out / "summary.txt").read_text()
    assert "benchmark backends: numpy" in text and "host check passed" in text
    assert "mid: per step" in text and "benchmark cases NOT measured" in text
    assert "gpu_check: done in" in text
    # Every case in full float32, the peers' too: what the targets are against.
    assert "- **Float32 matmuls:** full float32 in every case" in \
        (out / "bench" / "report.md").read_text()
    # No GPU here: the GPU ratios skip, so the check reports failure-free but incomplete.
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_the_gpu_check_leaves_the_host_builds_to_ci(tmp_path):
    # Its machine is for the GPU: the kernels' C++ host builds are deselected there.
    out = tmp_path / "out"
    env = _bench_env(tmp_path, OUT=str(out), GPU_CHECK_REQUIRE_GPU="0", GPU_CHECK_WORKERS="0",
                     GPU_CHECK_TESTS="tests/test_cupy_grid.py", GPU_CHECK_BENCH="0",
                     GPU_CHECK_PROFILE="0", GPU_CHECK_GRID="0", GPU_CHECK_BATCH="0",
                     GPU_CHECK_TF32="0", GPU_CHECK_BARRIERS="0")
    subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env,
                   capture_output=True, text=True, timeout=600)
    ran = re.findall(r'testcase classname="[^"]*" name="([^"]+)"', (out / "tests.xml").read_text())
    host = [item.name for item in _collected("tests/test_cupy_grid.py", "-m", "host_build")]
    assert ran and host and not set(ran) & set(host), (ran, host)


def _collected(*args):
    """The tests pytest collects for ``args``, as ``(nodeid, name)`` pairs."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    return [types.SimpleNamespace(nodeid=i, name=i.split("::")[-1]) for i in ids]


# -- the grid-wide fused kernel's timing script ------------------------------------


@needs_cxx
def test_the_grid_timing_says_no_gpu_and_checks_the_host_builds(capsys, tmp_path):
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here: the script would time the GPU")
    except ImportError:
        pass
    script = load_script("grid_fused_time")
    assert script.main(["--json", str(tmp_path / "g.json")]) == 0
    assert "not measured, no GPU for CuPy here" in capsys.readouterr().out
    assert json.loads((tmp_path / "g.json").read_text()) == {"rows": [], "host_check": True}


@needs_cxx
def test_the_grid_timing_catches_a_grid_kernel_that_differs():
    from nnbackend.backends.cupy import fused as F
    from nnbackend.backends.cupy import grid as G

    script = load_script("grid_fused_time")
    broken = G.host_grid_launcher(3, transform=lambda s: G.grid_source(s, grid_barrier=False))
    times, same = script.run_config(np, script.CONFIGS[0], {"one block, global": F.host_launcher,
                                                            "grid": broken}, rounds=1, n=9)
    assert not same and set(times) == {"one block, global", "grid"}


@needs_cxx
def test_the_grid_timing_checks_the_cluster_against_its_own_layout():
    from nnbackend.backends.cupy import fused as F
    from nnbackend.backends.cupy import grid as G

    script = load_script("grid_fused_time")
    config = script.CONFIGS[1]  # [784,256,256,10] sgd
    good = {"one block, cluster layout": F.host_launcher, "cluster": G.host_cluster_launcher(2)}
    times, same = script.run_config(np, config, good, rounds=1, n=3)
    assert same and all(isinstance(t, float) for t in times.values())
    # Against the one-block global layout (split for one block) it would differ:
    # the comparison is with the kernel of the cluster's own layout.
    broken = G.host_grid_launcher(2, transform=lambda s: G.grid_source(s, grid_barrier=False,
                                                                        cluster=2))
    times, same = script.run_config(np, config, {"one block, cluster layout": F.host_launcher,
                                                 "cluster": broken}, rounds=1, n=3)
    assert not same


def test_the_grid_timing_reports_a_variant_that_cannot_launch():
    script = load_script("grid_fused_time")

    def refusing(source, layout, dtype_name):
        def launch(*args):
            raise RuntimeError("cluster launch refused")
        return launch

    times, same = script.run_config(np, script.CONFIGS[0], {"cluster": refusing}, rounds=1, n=9)
    assert times == {"cluster": "RuntimeError: cluster launch refused"} and same
    assert script._shown(times["cluster"]) == "failed (RuntimeError: cluster launch refused)"


def test_tf32_emulation_keeps_ten_mantissa_bits():
    script = load_script("tf32_error")
    one_ulp = np.float32(2.0 ** -10)  # TF32's step at 1
    x = np.array([1 + 2.0 ** -11, 1 + 2.0 ** -11 - 2.0 ** -23, 1 + one_ulp, -(1 + 2.0 ** -11),
                  np.inf, np.nan, 0.0], np.float32)
    nearest, truncated = script.tf32(x, "nearest"), script.tf32(x, "truncate")
    np.testing.assert_array_equal(nearest[:5], np.float32([1 + one_ulp, 1, 1 + one_ulp,
                                                           -(1 + one_ulp), np.inf]))
    np.testing.assert_array_equal(truncated[:5], np.float32([1, 1, 1 + one_ulp, -1, np.inf]))
    assert np.isnan(nearest[5]) and np.isnan(truncated[5]) and nearest[6] == 0
    # Every result is a TF32 number: its 13 low mantissa bits are zero.
    values = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    for rounding in ("nearest", "truncate"):
        assert not (script.tf32(values, rounding).view(np.uint32) & 0x1FFF).any()
        # within half a step (nearest) or a step (truncate) of the value, relatively
        error = np.abs(script.tf32(values, rounding) / values - 1)
        assert error.max() <= 2.0 ** (-11 if rounding == "nearest" else -10)
    with pytest.raises(ValueError, match="unknown rounding 'up'"):
        script.tf32(x, "up")


def test_the_tf32_figures_sit_between_float32_and_a_rough_bound(capsys):
    """The emulated namespace reaches the kernels' matmuls: TF32's gradient error is
    far above float32's, and within a few TF32 steps."""
    script = load_script("tf32_error")
    found = script.gradient_errors("small")
    _, float32 = found["float32"]
    for rounding in ("nearest", "truncate"):
        _, tf32 = found[f"tf32 ({rounding})"]
        assert 20 * float32 < tf32 < 2.0 ** -6, found
    assert script.main(["--models", "small", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert set(rows["small"]["training_gap"]) == {"nearest", "truncate"}


def test_the_tf32_timing_runs_on_the_cpu_and_names_what_it_could_not_measure(capsys):
    script = load_script("tf32_time")
    assert script.main(["64", "--backends", "numpy,cupy:7", "--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    numpy_lines = [line for line in lines if line.startswith("tf32 numpy mnist ")]
    assert [line.split(" N=")[0] for line in numpy_lines] == [
        "tf32 numpy mnist batch", "tf32 numpy mnist mini-batch 256"]
    # A CPU has no TF32: both runs full float32, the same losses.
    for line in numpy_lines:
        assert "reference, its matmuls at highest); loss gap 0.0e+00" in line, line
    assert any(line.startswith("tf32 cupy:7: not here (") for line in lines), lines
    assert script.main(["64", "--backends", "cupy:7"]) == 0
    assert "every TF32 figure awaits a GPU run" in capsys.readouterr().out


# ncu --page raw --csv: a header, a row of units, one row per kernel launch.
NCU_RAW = '''"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","gpu__time_duration.sum","sm__throughput.avg.pct_of_peak_sustained_elapsed","launch__grid_size","launch__block_size","launch__registers_per_thread","smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio","smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio","smsp__average_warps_issue_stalled_short_scoreboard_per_issue_active.ratio","l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum"
"","","","","","","","nsecond","%","","","register/thread","inst","inst","inst",""
"0","4242","python3","gpu","nnb_batch_grad","1","7","1,012,345","41.5","264","128","237","0.8","12.25","3.5","1,024"
"1","4242","python3","gpu","nnb_batch_update","1","7","30,100","5.2","9","256","29","0","0.4","0.1","0"
'''


def test_kernel_ncu_reads_ncus_raw_page_and_names_each_launchs_stalls(tmp_path):
    ncu = load_script("kernel_ncu")
    (tmp_path / "batch-small-1e6.csv").write_text(NCU_RAW)
    launches = ncu.read_raw(tmp_path / "batch-small-1e6.csv")
    assert [launch["Kernel Name"] for launch in launches] == ["nnb_batch_grad", "nnb_batch_update"]
    text = ncu.report(str(tmp_path))
    grad = text.split("kernel nnb_batch_update")[0]
    assert "batch-small-1e6: the full-batch kernels" in text and "2 kernel launch(es)" in text
    assert "duration us                  1012" in grad  # ns to us, thousands grouped
    assert "blocks, threads              264, 128" in grad
    assert "registers a thread           237" in grad
    assert "shared bank conflicts        1024" in grad
    assert "memory throughput %          n/a" in grad  # not in this report
    # Stall reasons by cycles, largest first.
    assert "long_scoreboard 12.2, short_scoreboard 3.5, barrier 0.8" in grad
    # Every other configuration is named as not profiled.
    for name in ncu.CONFIGS:
        if name != "batch-small-1e6":
            assert f"{name}: not profiled" in text


def test_kernel_ncu_without_ncu_says_so_and_exits_0(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "NCU": "no-such-ncu"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "kernel_ncu.sh")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "is not installed here; nothing profiled" in (tmp_path / "summary.txt").read_text()


def test_kernel_static_builds_the_kernels_the_benchmarks_time():
    static = load_script("kernel_static")
    found = static.kernels()
    assert [name for name, _, _ in found] == [
        "fused [32,64,1] sgd", "fused [32,64,1] mini-batch 64", "fused [784,256,256,10] sgd",
        "fused [784,256,256,10] sgd, cluster of 8",
        "batch [32,64,1] 1e6 rows", "batch [32,64,1] 1e6 rows, X not prefetched",
        "batch [32,64,1] 1e6 rows, 4x4 blocks only"]
    sources = {name: (entry, source) for name, entry, source in found}
    assert all(f" {entry}(" in source for entry, source in sources.values())
    # The fused kernels gather a step ahead; the batch kernels differ by the prefetch of X
    # and by the gradient's edges in strips or in 4x4 blocks.
    assert all("gx[k] = X[gi[k]" in sources[name][1] for name in sources if name.startswith("fused"))
    assert "__cluster_dims__(8, 1, 1)" in sources["fused [784,256,256,10] sgd, cluster of 8"][1]
    assert "NNB_STORE4" in sources["batch [32,64,1] 1e6 rows"][1].split("nnb_grad_phase")[1]
    assert "NNB_STORE4" not in \
        sources["batch [32,64,1] 1e6 rows, X not prefetched"][1].split("nnb_grad_phase")[1]
    assert "{1, " in sources["batch [32,64,1] 1e6 rows"][1].split("nnb_strips")[1]
    assert "{1, " not in \
        sources["batch [32,64,1] 1e6 rows, 4x4 blocks only"][1].split("nnb_strips")[1]


@needs_cxx
def test_the_barrier_probe_says_no_gpu_and_builds_its_kernels(capsys):
    # NVRTC on the CPU: the cluster barrier and distributed shared memory PTX too.
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here: the probe would time the GPU")
    except ImportError:
        pass
    probe = load_script("barrier_probe")
    assert set(probe.sources()) == {"block", "grid", "cluster 2", "cluster 4", "cluster 8"}
    assert "__cluster_dims__(8, 1, 1)" in probe.sources()["cluster 8"]
    assert probe.main(["--rounds", "10"]) == 0
    out = capsys.readouterr().out
    assert "not measured, no GPU for CuPy here" in out
    from nvrtc import MISSING

    if MISSING is None:
        assert "the sources build for sm_90" in out


# -- CuPy's captured steps against the eager loop ---------------------------------------


def test_the_graph_timing_says_no_gpu_and_exits_0(capsys):
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here: the script would time the GPU")
    except ImportError:
        pass
    script = load_script("graph_step_time")
    assert script.main([]) == 0
    assert "not measured, no GPU for CuPy here" in capsys.readouterr().out


def test_the_graph_timing_times_both_executors_and_reads_the_path(monkeypatch):
    """step_times with NumPy standing in for CuPy and the captured steps run eagerly."""
    import nnbackend as nb
    from nnbackend.backends import graph_epoch
    from nnbackend.backends.cupy.graphs import CupyGraphs
    from nnbackend.backends.numpy import NumpyBackend

    made = []

    def executors(self):
        made.append(CupyGraphs(graph_epoch.eager_capture))
        return (made[-1],)

    monkeypatch.setattr(NumpyBackend, "executors", executors)
    monkeypatch.setattr(NumpyBackend, "executor_names", ("cupy-graphs",))
    script = load_script("graph_step_time")
    config = script.CONFIGS[2][:-1] + (1_000,)  # the small model, 1,000 rows
    times, path = script.step_times(nb.get_backend("numpy"), config, rounds=1, recorded=made)
    assert set(times) == set(script.EXECUTORS) and all(t > 0 for t in times.values())
    assert path == "each step one replay of its captured CUDA graph"


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                    reason="the diagnostics are a bash script that needs timeout (coreutils)")
def test_the_diagnostics_name_each_step_their_budget_leaves_out(tmp_path):
    # A budget below every cutoff: nothing starts, each step is named with how to run it.
    env = {**os.environ, "OUT": str(tmp_path), "GPU_DIAG_SECONDS": "15", "GPU_CHECK_TF32": "0"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_diagnostics.sh")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "summary.txt").read_text()
    names = ["bridge", "cluster and grid fused kernels", "cupy graphs", "gemm floor", "profile",
             "barrier probe", "batch kernels"]
    lines = [line for line in text.splitlines() if "not run" in line]
    assert [line.split(":")[0] for line in lines] == names  # in priority order
    assert all("bash benchmarks/gpu_diagnostics.sh runs it in a call of its own" in line
               for line in lines)
    assert "tf32" not in text and "started" not in text  # left out, and nothing started
    assert "gpu_diagnostics: done in" in text


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                    reason="the diagnostics are a bash script that needs timeout (coreutils)")
def test_the_diagnostics_run_a_step_that_fits(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "GPU_DIAG_SECONDS": "100"}
    for step in ("BRIDGE", "GRID", "GEMM", "PROFILE", "BARRIERS", "BATCH", "TF32"):
        env[f"GPU_CHECK_{step}"] = "0"
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_diagnostics.sh")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "summary.txt").read_text()
    assert "cupy graphs: started at" in text and "not run" not in text
    try:
        import cupy  # noqa: F401
    except ImportError:
        assert "graph_step_time: not measured, no GPU for CuPy here" in text


# -- the mnist batch epoch's matmul floor --------------------------------------------


def test_the_gemm_floor_counts_the_epochs_eight_products():
    script = load_script("gemm_floor")
    shapes = script.gemm_shapes([784, 1024, 1024, 10], 10**6)
    assert len(shapes) == 8  # 3 forward, 3 weight gradients, 2 input gradients
    forward = 784 * 1024 + 1024 * 1024 + 1024 * 10
    # Forward and weight gradients: every weight once each a row; input
    # gradients: every weight but the first layer's.
    assert script.flop(shapes) == 2 * 10**6 * (2 * forward + forward - 784 * 1024)
    assert script.flop(shapes) / 1e12 == pytest.approx(9.57, abs=0.01)


def test_the_gemm_floors_products_are_the_epochs():
    torch = pytest.importorskip("torch")
    script = load_script("gemm_floor")
    X = torch.randn(37, 5, dtype=torch.float64)
    run = script.matmul_epoch(torch, [5, 7, 6, 3], X)
    b = {k: [a.clone() for a in v] if isinstance(v, list) else v.clone()
         for k, v in run.buffers.items()}
    run()
    got = run.buffers
    torch.testing.assert_close(got["A"][1], X @ b["W"][0])
    torch.testing.assert_close(got["A"][2], got["A"][1] @ b["W"][1])
    torch.testing.assert_close(got["out"], got["A"][2] @ b["W"][2])
    torch.testing.assert_close(got["dW"][2], got["A"][2].T @ b["dZ"][2])
    torch.testing.assert_close(got["dZ"][1], b["dZ"][2] @ b["W"][2].T)
    torch.testing.assert_close(got["dW"][1], got["A"][1].T @ got["dZ"][1])
    torch.testing.assert_close(got["dZ"][0], got["dZ"][1] @ b["W"][1].T)
    torch.testing.assert_close(got["dW"][0], X.T @ got["dZ"][0])


def test_the_gemm_floor_runs_on_the_cpu_and_gives_a_verdict(capsys, tmp_path):
    pytest.importorskip("torch")
    script = load_script("gemm_floor")
    out = tmp_path / "floor.json"
    assert script.main(["--device", "cpu", "--rows", "300", "--rounds", "1",
                        "--json", str(out)]) == 0
    text = capsys.readouterr().out
    figures = json.loads(out.read_text())
    assert all(figures[k] > 0 for k in ("matmuls", "matmuls_tf32", "torch_eager",
                                        "nnbackend_torch"))
    assert figures["peak_tflops"] is None and figures["device"] == "cpu"
    below = 0.8 * figures["torch_eager"] < figures["matmuls"]
    assert ("is below the matmuls alone" in text) == below
    assert ("is above the matmuls alone" in text) == (not below)


def test_the_gemm_floor_says_no_gpu_and_exits_0(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: the script would time it")
    assert load_script("gemm_floor").main([]) == 0
    assert "gemm_floor: not measured, no CUDA GPU for torch here" in capsys.readouterr().out


def test_the_auto_grid_warms_the_gpu_kernels_up_and_keeps_the_cells_a_failure_spares(
        monkeypatch):
    # benchmarks/auto_choice.py --size gpu: a kernel compiled per layout must not
    # land in one contender's timed fit, and one failing cell must not lose the rest.
    grid = load_script("auto_choice")
    calls = []

    def time_fit(contender, net, mode, X, y, epochs):
        calls.append((contender, X.shape[0]))
        if mode == "sgd":
            raise RuntimeError("a GPU path that never ran")
        return 0.01, "numpy:cpu"

    monkeypatch.setattr(grid, "time_fit", time_fit)
    monkeypatch.setitem(grid.SIZES, "tiny", ({"sgd": [100], "batch": [200]}, 1, 1, ["small"]))
    seen = []
    result = grid.run_grid("tiny", contenders=["numpy:cpu", "cupy:gpu"], log=lambda s: None,
                           on_cell=lambda so_far: seen.append(len(so_far["cells"])))
    (cell,) = result["cells"]
    assert cell["mode"] == "batch" and seen == [0, 1]
    assert result["summary"]["failed"] == [
        "small sgd N=100: RuntimeError: a GPU path that never ran"]
    assert result["summary"]["target_met"] is False
    # Before the batch cell's timed fits: one untimed fit for the GPU and for auto,
    # on fewer rows than any timed fit.
    batch = calls[calls.index(("cupy:gpu", 199)):]
    assert batch[:2] == [("cupy:gpu", 199), ("auto", 198)]
    assert all(rows >= 200 for _, rows in batch[2:])
    assert "- **cell FAILED**: small sgd N=100" in grid._markdown(
        {**result, "machine": "m", "date": "d", "load_before": "", "load_after": "",
         "profile": "p"})
