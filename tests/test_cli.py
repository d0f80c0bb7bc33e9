"""The command line, run as a user runs it: in a subprocess."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.cli import main
from nnbackend.plot import require_matplotlib
from conftest import child_pythonpath, cli_refusal


# The CLI runs in a subprocess of this interpreter with this environment, so
# what imports here imports there: a test that needs an optional package
# checks here and skips with the reason instead of failing (or, for a
# refusal, exiting 2 for another reason).
def needs_backend(name, device=None):
    """Skip, with nnbackend's message, where the backend (on ``device``) is not usable."""
    try:
        nb.get_backend(name, device)
    except nb.BackendUnavailableError as exc:
        pytest.skip(f"backend {name}{':' + device if device else ''} unavailable: {exc}")


def needs_matplotlib():
    """Skip, with the message --plot would give, where matplotlib is missing."""
    try:
        require_matplotlib()
    except RuntimeError as exc:
        pytest.skip(str(exc))


def run(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k not in ("NNBACKEND_BACKEND", "NNBACKEND_DEBUG")}
    return subprocess.run([sys.executable, "-m", "nnbackend.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def run_json(*args):
    proc = run(*args, "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_train_with_no_arguments_learns_xor_on_numpy():
    proc = run("train")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "on xor" in out and "accuracy 100.00%" in out
    assert "backend numpy on cpu" in out and "samples/s" in out and "ms/epoch" in out
    # Not a terminal: one line per epoch or fewer (about 20 for 1000 epochs).
    progress = [l for l in proc.stderr.splitlines() if l.startswith("epoch ")]
    assert 2 <= len(progress) <= 22
    assert "Traceback" not in proc.stderr


def test_json_summary_and_determinism():
    a = run_json("train", "--dataset", "moons", "--n-samples", "200", "--epochs", "5",
                 "--val-split", "0.25", "--seed", "3")
    b = run_json("train", "--dataset", "moons", "--n-samples", "200", "--epochs", "5",
                 "--val-split", "0.25", "--seed", "3")
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds",
                "samples_per_second", "backend", "device"):
        assert key in a
    assert a["n_train"] == 150 and a["n_val"] == 50 and a["task"] == "binary"
    assert a["train_loss"] == b["train_loss"] and a["val_accuracy"] == b["val_accuracy"]
    c = run_json("train", "--dataset", "moons", "--n-samples", "200", "--epochs", "5",
                 "--val-split", "0.25", "--seed", "4")
    assert c["train_loss"] != a["train_loss"]


@pytest.mark.parametrize("dataset, task, outputs", [
    ("spirals", "multiclass", 3), ("synthetic", "regression", 1), ("and", "binary", 1),
])
def test_task_decides_the_head(dataset, task, outputs):
    s = run_json("train", "--dataset", dataset, "--epochs", "3", "--n-samples", "60")
    assert s["task"] == task and s["layer_sizes"][-1] == outputs
    assert ("train_accuracy" in s) == (task != "regression")


def test_flags_reach_the_training(tmp_path):
    needs_backend("strict", "device1")
    s = run_json("train", "--dataset", "moons", "--n-samples", "100", "--hidden", "8,6",
                 "--activation", "tanh", "--mode", "sgd", "--epochs", "2", "--lr", "0.05",
                 "--optimizer", "momentum", "--dtype", "float64", "--backend", "strict",
                 "--device", "device1")
    assert s["layer_sizes"] == [2, 8, 6, 1] and s["mode"] == "sgd" and s["batch_size"] == 1
    assert s["optimizer"] == "momentum" and s["dtype"] == "float64"
    assert s["backend"] == "strict" and "device1" in s["device"]


def test_patience_stops_early():
    # Unstandardized: on standardized moons this run keeps improving for 400 epochs.
    s = run_json("train", "--dataset", "moons", "--n-samples", "200", "--epochs", "400",
                 "--val-split", "0.3", "--patience", "3", "--lr", "0.5", "--optimizer", "adam",
                 "--no-standardize")
    assert s["stopped_early"] and s["epochs_run"] < 400 and s["best_epoch"] == s["epochs_run"] - 3
    assert s["epochs"] == 400  # as asked: with epochs_run, enough to repeat the run


def test_a_resumed_run_that_kept_its_starting_weights_says_so(capsys):
    from nnbackend.cli import _print_summary

    s = run_json("train", "--dataset", "moons", "--n-samples", "200", "--epochs", "400",
                 "--val-split", "0.3", "--patience", "3", "--lr", "0.5", "--optimizer", "adam",
                 "--no-standardize")
    _print_summary(s)
    assert f"(stopped early; kept epoch {s['best_epoch']})" in capsys.readouterr().out
    _print_summary({**s, "best_epoch": 0})  # a resumed fit that never beat its start
    assert "(stopped early; kept the weights it resumed from)" in capsys.readouterr().out


def _labelled_csv(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    labels = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    with open(tmp_path / "train.csv", "w") as f:
        f.write("a,b,c,answer\n")
        for row, label in zip(X, labels):
            f.write(",".join(f"{v:.6f}" for v in row) + f",{label}\n")
    return X, labels


def test_csv_file_trains_saves_and_predicts_class_names(tmp_path):
    _, labels = _labelled_csv(tmp_path)
    proc = run("train", "--data", tmp_path / "train.csv", "--target", "answer", "--epochs", "40",
               "--lr", "0.5", "--save", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    # The label column is dropped when present; predictions use the class names.
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "train.csv",
               "--out", tmp_path / "preds.csv")
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "preds.csv").read_text().splitlines()
    assert lines[0] == "prediction,p_no,p_yes" and len(lines) == 81
    predicted = np.array([l.split(",")[0] for l in lines[1:]])
    assert np.mean(predicted == labels) > 0.9


def test_plot_writes_a_png_of_the_training(tmp_path):
    needs_matplotlib()
    _labelled_csv(tmp_path)
    proc = run("train", "--data", tmp_path / "train.csv", "--target", "answer", "--epochs", "5",
               "--plot", tmp_path / "loss.png", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_npz_regression_model_predicts_the_same_on_another_backend(tmp_path):
    needs_backend("torch")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3))
    np.savez(tmp_path / "reg.npz", X=X, y=X @ np.array([1.0, -2.0, 0.5]))
    proc = run("train", "--data", tmp_path / "reg.npz", "--epochs", "5", "--save", tmp_path / "r.npz",
               "--quiet")
    assert proc.returncode == 0 and "regression" in proc.stdout, proc.stderr
    np.savez(tmp_path / "X_only.npz", X=X[:5])
    out = {}
    for backend in ("numpy", "torch"):
        proc = run("predict", "--model", tmp_path / "r.npz", "--data", tmp_path / "X_only.npz",
                   "--backend", backend)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0] == "prediction" and len(lines) == 6
        out[backend] = np.array([float(v) for v in lines[1:]])
    np.testing.assert_allclose(out["torch"], out["numpy"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predicted_numbers_read_back_as_the_models_own(tmp_path, dtype):
    # A target near 1e7: eight significant digits had written 10000003.54 as 10000004.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))
    np.savez(tmp_path / "reg.npz", X=X, y=1e7 + 3 * X[:, 0])
    assert main(["train", "--data", str(tmp_path / "reg.npz"), "--epochs", "3", "--quiet",
                 "--dtype", dtype, "--save", str(tmp_path / "r.npz")]) in (0, None)
    np.savez(tmp_path / "X_only.npz", X=X)
    assert main(["predict", "--model", str(tmp_path / "r.npz"), "--data",
                 str(tmp_path / "X_only.npz"), "--out", str(tmp_path / "p.csv")]) == 0
    written = np.loadtxt(tmp_path / "p.csv", skiprows=1, dtype=np.float64)
    model = nb.MLP.load(tmp_path / "r.npz")
    # The standardized target undone in float64, as evaluate scores it.
    from nnbackend.cli_data import model_outputs

    np.testing.assert_array_equal(written, model_outputs(model, X).reshape(-1))
    close = np.asarray(model.predict(X), dtype=np.float64).reshape(-1)
    np.testing.assert_allclose(written, close, rtol=1e-6)


def test_info_lists_every_backend():
    proc = run("info", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["backend"]: r for r in json.loads(proc.stdout)}
    from nnbackend.backends import BACKEND_NAMES

    assert set(rows) == set(BACKEND_NAMES)
    assert rows["numpy"]["available"] and rows["numpy"]["float64"]
    if not rows["cupy"]["available"]:
        assert "nnbackend[cuda12]" in rows["cupy"]["reason"]
    assert run("info").returncode == 0
    # A device some backends lack: each row says why, and the command goes on.
    proc = run("info", "--json", "--device", "cuda")
    assert proc.returncode == 0, proc.stderr
    rows = {r["backend"]: r for r in json.loads(proc.stdout)}
    assert not rows["numpy"]["available"]
    assert "only the device 'cpu', got 'cuda'" in rows["numpy"]["reason"]
    # ...but one backend asked for refuses it.
    proc = run("info", "--backend", "numpy", "--device", "cuda")
    assert proc.returncode == 2 and "got 'cuda'" in proc.stderr


# Each refusal with (a regular expression for) the reason it must give: exit
# status 2 alone would also come from another refusal, e.g. a missing backend.
BAD = [
    (("train", "--epochs", "0"), r"argument --epochs: expected an integer >= 1, got 0"),
    (("train", "--epochs", "ten"), r"argument --epochs: expected an integer, got 'ten'"),
    (("train", "--lr", "-1"), r"argument --lr: expected a finite number > 0, got '-1'"),
    (("train", "--lr", "nan"), r"argument --lr: expected a finite number > 0, got 'nan'"),
    (("train", "--batch-size", "0"),
     r"argument --batch-size: expected an integer >= 1, got 0"),
    (("train", "--hidden", "4,x"),
     r"argument --hidden: expected comma-separated integers like 64,32; got '4,x'"),
    (("train", "--hidden", "4,,3"),
     r"argument --hidden: a hidden layer size is empty in '4,,3'"),
    (("train", "--mode", "full"), r"argument --mode: invalid choice: 'full'"),
    (("train", "--optimizer", "rmsprop"),
     r"argument --optimizer: invalid choice: 'rmsprop'"),
    (("train", "--activation", "gelu"), r"argument --activation: invalid choice: 'gelu'"),
    (("train", "--dataset", "mnist"), r"argument --dataset: invalid choice: 'mnist'"),
    (("train", "--backend", "tensorflow"), r"unknown backend 'tensorflow'; choose one of"),
    (("train", "--backend", "cupy"),
     r"backend 'cupy' (is not available|needs an NVIDIA GPU).*nnbackend\[cuda12\]"),
    (("train", "--backend", "strict", "--device", "device9"),
     r"backend 'strict' has no device 'device9'; its devices are"),
    (("train", "--backend", "strict", "--device", "no_float64", "--dtype", "float64"),
     r"dtype 'float64' is not supported by backend 'strict' on device .*no_float64.*; "
     r"use dtype='float32'"),
    (("train", "--val-split", "1.5"),
     r"argument --val-split: expected a fraction in \(0, 1\), got '1.5'"),
    (("train", "--seed", "-1"), r"argument --seed: expected an integer >= 0, got -1"),
    (("train", "--data", "missing.csv"), r"no such file: missing.csv"),
    (("train", "--data", "bad.csv", "--target", "label"),
     r"bad.csv line 3, column 'b': 'oops' is not a finite number"),
    (("train", "--data", "bad.csv"), r"reading bad.csv needs a target \(label\) column"),
    (("train", "--data", "bad.csv", "--target", "nope"), r"bad.csv has no column 'nope'"),
    (("train", "--data", "junk.npz"), r"could not read junk.npz as .npz"),
    (("train", "--data", "notes.txt"), r"unsupported file type '.txt' for notes.txt"),
    (("train", "--dataset", "xor", "--n-samples", "2"),
     r"n_samples must be >= 4 for 'xor'"),
    (("train", "--dataset", "synthetic", "--task", "binary"),
     r"--task binary: the labels look like a regression task"),
    (("train", "--save", "no_dir/m.npz"),
     r"--save no_dir/m.npz: no such directory .*no_dir"),
    (("predict", "--model", "junk.npz", "--data", "bad.csv"),
     r"junk.npz is not a usable nnbackend checkpoint"),
    (("predict", "--model", "missing.npz", "--data", "bad.csv"),
     r"no such checkpoint file: missing.npz"),
    (("bench", "--modes", "full"), r"--modes: unknown mode\(s\) \['full'\]"),
    (("bench", "--sizes", "1e3,big"),
     r"--sizes: expected comma-separated finite numbers like 1e3,1e4; got '1e3,big'"),
    (("bench", "--backends", "tensorflow"), r"unknown backend 'tensorflow'; choose one of"),
    (("bench", "--models", "small,cifar"),
     r"--models: unknown model\(s\) \['cifar'\]; choose from "
     r"\['small', 'small16', 'mnist', 'mid'\]"),
    (("bench", "--mnist-sizes", "6e4,lots"),
     r"--mnist-sizes: expected comma-separated finite numbers like 1e3,1e4; got '6e4,lots'"),
    (("bench", "--mnist-cpu-max", "1e4,2e4"), r"--mnist-cpu-max: expected one number; got"),
    (("bench", "--ratios", "tpu"), r"argument --ratios: invalid choice: 'tpu'"),
    (("bench-nothing",), r"argument COMMAND: invalid choice: 'bench-nothing'"),
    ((), r"choose a command: train, predict, evaluate, info, bench \(nnbackend COMMAND --help"),
]


@pytest.mark.parametrize("args, reason", BAD, ids=[" ".join(a) or "no-command" for a, _ in BAD])
def test_every_refusal_is_one_line_and_status_2(tmp_path, args, reason):
    if "--backend" in args and "cupy" in args:
        if "cupy" in nb.available_backends():
            pytest.skip("this machine has a GPU for CuPy")
    if "--backend" in args and "strict" in args:
        needs_backend("strict")  # the row is about strict's devices, not a missing strict
    (tmp_path / "bad.csv").write_text("a,b,label\n1,2,0\n3,oops,1\n")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    (tmp_path / "notes.txt").write_text("hello")
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnbackend: error: "), proc.stderr
    assert re.match(reason, lines[0][len("nnbackend: error: "):]), (reason, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_divergence_is_reported_and_exit_status_1():
    proc = run("train", "--dataset", "synthetic", "--epochs", "20", "--lr", "1e6", "--quiet")
    assert proc.returncode == 1
    assert "diverged" in proc.stderr and "Traceback" not in proc.stderr


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path):
    # A None entry in sys.modules makes `import matplotlib` fail, as on a
    # machine without it; the check happens before any training.
    code = ("import sys; sys.modules['matplotlib'] = None; from nnbackend.cli import main; "
            f"sys.exit(main(['train', '--plot', {str(tmp_path / 'p.png')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("nnbackend: error: plotting needs matplotlib: pip install "
                                   "'nnbackend[plot]' (or: pip install matplotlib)")


def test_resume_continues_a_saved_run(tmp_path):
    common = ["--dataset", "moons", "--n-samples", "120", "--lr", "0.05", "--optimizer", "adam",
              "--dtype", "float64"]
    whole = run_json("train", *common, "--epochs", "6")
    first = run_json("train", *common, "--epochs", "3", "--save", tmp_path / "m.npz")
    assert first["epochs_done"] == 3
    second = run_json("train", *common, "--epochs", "3", "--resume", tmp_path / "m.npz")
    assert second["epochs_done"] == 6
    assert second["train_loss"] == whole["train_loss"]
    # spirals has a third class the binary model never saw.
    proc = run("train", "--dataset", "spirals", "--resume", tmp_path / "m.npz")
    assert proc.returncode == 2 and "labels [2] are not among the classes [0, 1]" in proc.stderr
    proc = run("train", "--dataset", "moons", "--task", "multiclass", "--resume", tmp_path / "m.npz")
    assert proc.returncode == 2 and "maps 2 features to 1 outputs" in proc.stderr


def test_bench_writes_a_report(tmp_path):
    # nnbackend bench times the suite under pytest-benchmark, then plots.
    pytest.importorskip("pytest_benchmark", reason="nnbackend bench runs the suite with "
                        "pytest-benchmark (the 'test' extra), which is not installed")
    needs_matplotlib()
    proc = run("bench", "--backends", "numpy", "--modes", "batch,minibatch,sgd", "--sizes",
               "256,512", "--sgd-max", "256", "--models", "small,mnist", "--mnist-sizes", "64,128",
               "--target-n", "0", "--no-peers", "--precision", "tf32", "--out", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = (tmp_path / "b" / "report.md").read_text()
    assert "nnbackend-numpy-cpu" in report and "| 512 |" in report
    # TF32 asked for; a CPU has none, and the report says what ran.
    assert "- **Float32 matmuls:** full float32 in every case" in report
    assert "# Model mnist: MLP 784 → 1024 → 1024 → 10" in report
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    infos = [b["extra_info"] for b in results["benchmarks"]]
    # The mnist model is timed in batch and minibatch mode only.
    assert {(i["model"], i["mode"], i["n_samples"]) for i in infos} == {
        ("small", "batch", 256), ("small", "batch", 512), ("small", "minibatch", 256),
        ("small", "minibatch", 512), ("small", "sgd", 256), ("mnist", "batch", 64),
        ("mnist", "batch", 128), ("mnist", "minibatch", 64), ("mnist", "minibatch", 128)}
    for i in infos:
        assert i["seconds_per_epoch"] > 0 and i["samples_per_s"] > 0 and i["dtype"] == "float32"
        assert i["device"].startswith("CPU") and i["backend"] == "numpy"
        assert i["label"] == "nnbackend-numpy-cpu" and i["device_kind"] == "cpu"
        assert i["precision"] == "highest"
    for png in ("epoch_time.png", "speedup.png", "epoch_time-mnist.png", "speedup-mnist.png"):
        assert (tmp_path / "b" / png).read_bytes()[:4] == b"\x89PNG"


def test_the_reports_machine_line_names_the_blas_threads(monkeypatch):
    """The CPU ratios move with NumPy's BLAS threads (issue 15), so the
    report's machine line says how many: threadpoolctl's count where it is
    installed, else the variables that set it, else that none did."""
    from nnbackend import cli

    for name in cli._THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # not installed
    assert cli._blas_text() == "BLAS threads: the library's default"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert cli._blas_text() == "BLAS threads: OPENBLAS_NUM_THREADS=1"
    assert cli._blas_text() in cli._machine_line()
    assert cli._one_blas({"internal_api": "openblas", "version": "0.3.31",
                          "num_threads": 1}) == "openblas 0.3.31 with 1 thread"
    assert cli._one_blas({"num_threads": 4}) == "BLAS with 4 threads"
    broken = type(sys)("threadpoolctl")
    broken.threadpool_info = lambda: 1 / 0  # a library it cannot query
    monkeypatch.setitem(sys.modules, "threadpoolctl", broken)
    assert cli._blas_text() == "BLAS threads: OPENBLAS_NUM_THREADS=1"
    monkeypatch.delitem(sys.modules, "threadpoolctl")
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="the count itself needs "
                                        "threadpoolctl (scikit-learn's), not installed")
    counts = [d["num_threads"] for d in threadpoolctl.threadpool_info()
              if d.get("user_api") == "blas"]
    if counts:  # NumPy's BLAS loaded and seen
        assert f"with {counts[0]} thread" in cli._blas_text()


def test_bench_with_a_failed_case_reports_the_others_and_fails(tmp_path, monkeypatch, capsys):
    # One broken case (the GPU check of 2026-11-27: a CUDA-graph capture)
    # must not cost the timings of the rest: the report is written, marked
    # incomplete, and the command exits 1.
    pytest.importorskip("pytest_benchmark", reason="nnbackend bench runs the suite with "
                        "pytest-benchmark (the 'test' extra), which is not installed")
    needs_matplotlib()
    real_run = subprocess.run

    def one_case_failed(*args, **kwargs):
        done = real_run(*args, **kwargs)
        assert done.returncode == 0
        return subprocess.CompletedProcess(done.args, 1)

    monkeypatch.setattr(subprocess, "run", one_case_failed)
    monkeypatch.setenv("NNBACKEND_BENCH_SECONDS", "0.01")
    status = main(["bench", "--backends", "numpy", "--modes", "batch", "--sizes", "128",
                   "--target-n", "0", "--no-peers", "--out", str(tmp_path / "b")])
    assert status == 1
    assert "some benchmark cases failed (pytest exit status 1)" in capsys.readouterr().err
    report = (tmp_path / "b" / "report.md").read_text()
    assert report.splitlines()[2].startswith("**Incomplete:** some benchmark cases failed")
    assert "nnbackend-numpy-cpu" in report


def test_a_bench_run_that_times_nothing_leaves_the_last_results(tmp_path, capsys):
    # Every case skipped (sgd past --sgd-max at every size): pytest-benchmark
    # writes an empty JSON, which once replaced the last run's results.json.
    pytest.importorskip("pytest_benchmark", reason="nnbackend bench runs the suite with "
                        "pytest-benchmark (the 'test' extra), which is not installed")
    out = tmp_path / "b"
    out.mkdir()
    (out / "results.json").write_text('{"benchmarks": [1]}')
    with pytest.raises(SystemExit) as refused:
        main(["bench", "--backends", "numpy", "--modes", "sgd", "--sizes", "1e4",
              "--sgd-max", "1e3", "--target-n", "0", "--no-peers", "--out", str(out)])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "no benchmark case was timed" in err and f"nothing in {out} was changed" in err
    assert (out / "results.json").read_text() == '{"benchmarks": [1]}'
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


@pytest.mark.parametrize("written", [None, "", '{"benchmarks": []}'])
@pytest.mark.parametrize("returncode", [0, 1, 5])
def test_a_suite_that_wrote_no_timing_is_refused_as_timing_nothing(tmp_path, written, returncode):
    # pytest-benchmark leaves no file, an empty one or an empty list, by
    # version, when no case ran; each must read as "nothing timed".
    from nnbackend.cli import _bench_results, _Refusal

    path = tmp_path / "results.json"
    if written is not None:
        path.write_text(written)
    with pytest.raises(_Refusal, match="no benchmark case was timed"):
        _bench_results(str(path), returncode, "b")


def test_a_suite_that_was_interrupted_is_refused_with_its_status(tmp_path):
    from nnbackend.cli import _bench_results, _Refusal

    path = tmp_path / "results.json"
    path.write_text('{"benchmarks": [1]}')
    with pytest.raises(_Refusal, match="pytest exit status 2.*nothing in b was changed"):
        _bench_results(str(path), 2, "b")


@pytest.mark.parametrize("flags,message", [
    (["--sizes", "inf"], "--sizes: expected comma-separated finite numbers"),
    (["--sizes", "0"], "--sizes: expected numbers >= 1"),
    (["--sgd-max", "1e400"], "--sgd-max: expected comma-separated finite numbers"),
    (["--mode-sizes", "small:batch=inf"], "--mode-sizes: expected"),
    (["--time-budget", "inf"], "--time-budget: expected a number of seconds"),
])
def test_bench_numbers_out_of_range_are_refused_by_flag(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as refused:
        main(["bench", "--backends", "numpy", *flags, "--out", str(tmp_path / "b")])
    assert refused.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_bench_out_that_cannot_be_made_is_refused_before_the_run(tmp_path, capsys):
    (tmp_path / "f").write_text("a file, not a folder")
    with pytest.raises(SystemExit) as refused:
        main(["bench", "--backends", "numpy", "--out", str(tmp_path / "f" / "b")])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and f"--out {tmp_path / 'f' / 'b'}" in err
    assert "running the benchmark suite" not in err


def test_bench_out_naming_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "f").write_text("kept")
    with pytest.raises(SystemExit) as refused:
        main(["bench", "--backends", "numpy", "--out", str(tmp_path / "f")])
    assert refused.value.code == 2 and "is a file, not a directory" in capsys.readouterr().err
    assert (tmp_path / "f").read_text() == "kept"


def test_bench_runs_from_an_installed_package_without_a_source_checkout(tmp_path):
    # The package alone, as pip installs it (no benchmarks/ beside it), run
    # from a folder that has no benchmarks/ either and without
    # NNBACKEND_BENCH_SUITE: the suite is the one shipped in the package.
    from nnbackend.bench.suite import missing_requirements

    if missing_requirements():
        pytest.skip(missing_requirements())
    site = tmp_path / "site"
    shutil.copytree(pathlib.Path(nb.__file__).parent, site / "nnbackend",
                    ignore=shutil.ignore_patterns("__pycache__"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNBACKEND_")}
    env.update(PYTHONPATH=child_pythonpath(site), NNBACKEND_BENCH_SECONDS="0.01")
    proc = subprocess.run(
        [sys.executable, "-m", "nnbackend.cli", "bench", "--backends", "numpy", "--modes", "batch",
         "--sizes", "128", "--target-n", "0", "--no-peers", "--out", "b"],
        capture_output=True, text=True, cwd=elsewhere, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert str(site / "nnbackend" / "bench" / "cases" / "test_epochs.py") in proc.stderr
    assert "| 128 |" in (elsewhere / "b" / "report.md").read_text()


def test_bench_without_pytest_names_the_pip_install(tmp_path):
    # pytest hidden from the CLI's process: one line naming the extra.
    code = ("import sys; sys.modules['pytest'] = None; from nnbackend.cli import main; "
            f"sys.exit(main(['bench', '--out', {str(tmp_path / 'b')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == ("nnbackend: error: nnbackend bench needs pytest, not installed here: "
                           "pip install 'nnbackend[bench]' (or: pip install pytest)\n")
    assert not (tmp_path / "b").exists()


def test_bench_requirements_name_every_missing_package():
    from nnbackend.bench.suite import missing_requirements

    message = missing_requirements(lambda name: None if name != "pytest" else object())
    assert message == ("nnbackend bench needs pytest-benchmark, matplotlib, not installed here: "
                       "pip install 'nnbackend[bench]' (or: pip install pytest-benchmark "
                       "matplotlib)")
    assert missing_requirements(lambda name: object()) is None


def test_bench_extra_holds_what_the_suite_needs():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in Python 3.11+")
    from nnbackend.bench.suite import BENCH_REQUIREMENTS

    pyproject = pathlib.Path(nb.__file__).parent.parent / "pyproject.toml"
    extra = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["bench"]
    names = {re.split(r"[<>=\[]", r)[0] for r in extra}
    assert names == {dist for _, dist in BENCH_REQUIREMENTS}


def test_bench_suite_override_without_the_cases_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNBACKEND_")}
    env["NNBACKEND_BENCH_SUITE"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "nnbackend.cli", "bench", "--out", tmp_path / "b"],
                          capture_output=True, text=True, env=env, timeout=120)
    if "nnbackend bench needs" in proc.stderr:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 2
    assert f"NNBACKEND_BENCH_SUITE={tmp_path}: no test_epochs.py there" in proc.stderr


# -- issue 14: users' data is never silently wrong or lost ------------------------------


def _write_csv(path, header, rows, fmt="{:.6f}"):
    with open(path, "w") as f:
        if header is not None:
            f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join(v if isinstance(v, str) else fmt.format(v) for v in row) + "\n")


def _predictions(text):
    lines = text.splitlines()
    return lines[0], np.array([float(l.split(",")[0]) for l in lines[1:]])


def test_a_failed_run_leaves_an_existing_checkpoint_as_it_was(tmp_path):
    good = tmp_path / "good.npz"
    proc = run("train", "--dataset", "synthetic", "--save", good, "--quiet")
    assert proc.returncode == 0, proc.stderr
    before = good.read_bytes()
    # The run: sgd at lr 0.1 diverges in its first epoch.
    proc = run("train", "--dataset", "synthetic", "--mode", "sgd", "--lr", "0.1", "--save", good,
               "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert "model saved" not in proc.stdout and "diverged" in proc.stdout
    assert "was not saved" in proc.stdout and f"{good} was not written" in proc.stderr
    assert good.read_bytes() == before
    proc = run("train", "--dataset", "synthetic", "--mode", "sgd", "--lr", "0.1", "--save", good,
               "--quiet", "--json")
    summary = json.loads(proc.stdout)
    assert proc.returncode == 1 and summary["saved"] is None and "diverged" in summary["diverged"]
    assert good.read_bytes() == before
    proc = run("train", "--dataset", "synthetic", "--resume", good, "--epochs", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr


def test_builtin_synthetic_learns_in_sgd_mode_with_the_defaults():
    s = run_json("train", "--dataset", "synthetic", "--mode", "sgd", "--epochs", "2")
    assert s["diverged"] is None and s["lr"] == 0.01 and s["epochs_run"] == 2
    assert s["train_rmse"] < 0.5


def test_csv_without_header_is_refused_unless_said_so(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    _write_csv(tmp_path / "train.csv", ["a", "b", "c", "y"], [[*r, str(v)] for r, v in zip(X, y)])
    _write_csv(tmp_path / "new.csv", None, X[:10])
    proc = run("train", "--data", tmp_path / "train.csv", "--target", "y", "--epochs", "3",
               "--quiet", "--save", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "new.csv")
    assert proc.returncode == 2 and "--no-header" in proc.stderr, proc.stderr
    assert "holds numbers, not column names" in proc.stderr and proc.stdout == ""
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "new.csv",
               "--no-header", "--out", tmp_path / "p.csv")
    assert proc.returncode == 0, proc.stderr
    assert "10 predictions written" in proc.stderr
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 11
    # train follows the same rule; --no-header takes the target by index.
    _write_csv(tmp_path / "bare.csv", None, [[*r, str(v)] for r, v in zip(X, y)])
    proc = run("train", "--data", tmp_path / "bare.csv", "--target", "y", "--quiet")
    assert proc.returncode == 2 and "--no-header" in proc.stderr
    s = run_json("train", "--data", tmp_path / "bare.csv", "--target", "-1", "--no-header",
                 "--epochs", "2")
    assert s["n_train"] == 40 and s["layer_sizes"][0] == 3 and s["task"] == "binary"


def test_predict_matches_columns_by_name(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3)) * [1.0, 10.0, 100.0]
    y = X @ [1.0, -0.2, 0.03]
    _write_csv(tmp_path / "train.csv", ["a", "b", "c", "t"], np.column_stack([X, y]))
    proc = run("train", "--data", tmp_path / "train.csv", "--target", "t", "--epochs", "5",
               "--quiet", "--save", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    assert nb.MLP.load(tmp_path / "m.npz").feature_names_in_ == ["a", "b", "c"]
    _write_csv(tmp_path / "abc.csv", ["a", "b", "c"], X[:8])
    _write_csv(tmp_path / "cba.csv", ["c", "b", "a"], X[:8, ::-1])
    outs = {}
    for name in ("abc", "cba", "train"):
        proc = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / f"{name}.csv")
        assert proc.returncode == 0, proc.stderr
        outs[name] = _predictions(proc.stdout)[1]
    np.testing.assert_array_equal(outs["cba"], outs["abc"])
    np.testing.assert_array_equal(outs["train"][:8], outs["abc"])  # label column skipped
    _write_csv(tmp_path / "xyz.csv", ["x", "y", "z"], X[:8])
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "xyz.csv")
    assert proc.returncode == 2
    assert ("lacks the column(s) ['a', 'b', 'c'] and has column(s) ['x', 'y', 'z'] the model "
            "was not trained on; the model's features are ['a', 'b', 'c']") in proc.stderr
    _write_csv(tmp_path / "ab.csv", ["a", "b"], X[:8, :2])
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "ab.csv")
    assert proc.returncode == 2 and "lacks the column(s) ['c']" in proc.stderr
    # --resume on a file whose columns differ is refused too.
    _write_csv(tmp_path / "other.csv", ["a", "b", "d", "t"], np.column_stack([X, y]))
    proc = run("train", "--data", tmp_path / "other.csv", "--target", "t", "--resume",
               tmp_path / "m.npz")
    assert proc.returncode == 2 and "trained on the columns ['a', 'b', 'c']" in proc.stderr


def test_raw_scale_regression_learns_and_predicts_in_target_units(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(5000, 500, size=200)
    y = 50 + 0.01 * (x - 5000) + rng.normal(0, 0.5, size=200)
    _write_csv(tmp_path / "raw.csv", ["size", "price"], np.column_stack([x, y]))
    s = run_json("train", "--data", tmp_path / "raw.csv", "--target", "price",
                 "--save", tmp_path / "m.npz")
    assert s["task"] == "regression" and s["standardize"] and s["diverged"] is None
    # Noise alone is 0.5; the mean predictor's error would be std(y), about 5.1.
    assert s["train_rmse"] < 1.0, s
    _write_csv(tmp_path / "new.csv", ["size"], x[:20, None])
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "new.csv")
    assert proc.returncode == 0, proc.stderr
    header, pred = _predictions(proc.stdout)
    assert header == "prediction" and np.sqrt(np.mean((pred - y[:20]) ** 2)) < 1.0
    model = nb.MLP.load(tmp_path / "m.npz")
    assert abs(model.feature_scaler.mean_[0] - x.mean()) < 1e-3 * x.mean()
    assert abs(model.target_scaler.mean_[0] - y.mean()) < 1e-3 * y.mean()
    # Without scaling the run reaches nowhere near that (the 5.8e+26 first loss).
    raw = run_json("train", "--data", tmp_path / "raw.csv", "--target", "price",
                   "--no-standardize")
    assert not raw["standardize"]
    assert raw["diverged"] is not None or raw["train_rmse"] > 3 * s["train_rmse"]


def test_many_whole_number_targets_are_a_quantity_with_a_note(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2))
    price = np.round(100 + 20 * x[:, 0] + 5 * x[:, 1]).astype(int)
    assert len(np.unique(price)) > 50
    _write_csv(tmp_path / "p.csv", ["a", "b", "price"], [[*r, str(p)] for r, p in zip(x, price)])
    proc = run("train", "--data", tmp_path / "p.csv", "--target", "price", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["task"] == "regression"
    assert "read as a quantity (regression)" in proc.stderr and "--task multiclass" in proc.stderr
    s = run_json("train", "--data", tmp_path / "p.csv", "--target", "price", "--task",
                 "multiclass", "--epochs", "1")
    assert s["task"] == "multiclass" and s["layer_sizes"][-1] == len(np.unique(price))


def test_resume_carries_the_checkpoint_settings_and_refuses_conflicts(tmp_path):
    m = tmp_path / "m.npz"
    first = run_json("train", "--dataset", "moons", "--n-samples", "100", "--hidden", "8",
                     "--activation", "tanh", "--lr", "0.01", "--optimizer", "adam",
                     "--batch-size", "16", "--epochs", "2", "--seed", "5", "--save", m)
    second = run_json("train", "--dataset", "moons", "--n-samples", "100", "--resume", m)
    for key in ("layer_sizes", "activation", "lr", "optimizer", "batch_size", "mode", "seed",
                "epochs", "standardize"):
        assert second[key] == first[key], key
    assert second["epochs_done"] == 4
    for flags, message in [
        (("--hidden", "16"), "trained with --hidden 8; --hidden 16 cannot change it"),
        (("--activation", "relu"), "trained with --activation tanh"),
        (("--optimizer", "sgd"), "trained with --optimizer adam"),
        (("--dtype", "float64"), "trained with --dtype float32"),
        (("--no-standardize",), "--no-standardize cannot change it"),
        (("--dataset", "synthetic"), "maps 2 features to 1 outputs"),
    ]:
        args = ["train", "--resume", m, *flags]
        if "--dataset" not in flags:
            args += ["--dataset", "moons", "--n-samples", "100"]
        proc = run(*args)
        assert proc.returncode == 2 and message in proc.stderr, (flags, proc.stderr)
    # A schedule flag replaces the checkpoint's, with a note.
    proc = run("train", "--dataset", "moons", "--n-samples", "100", "--resume", m, "--lr", "0.02",
               "--quiet")
    assert proc.returncode == 0 and "--lr 0.02 replaces the checkpoint's 0.01" in proc.stderr


def test_task_regression_on_text_labels_is_a_clear_refusal(tmp_path):
    _labelled_csv(tmp_path)
    proc = run("train", "--data", tmp_path / "train.csv", "--target", "answer", "--task",
               "regression")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "nnbackend: error: --task regression: task 'regression' needs numeric targets; these "
        "labels are text (e.g. ['no', 'yes']): use a classification task")


def test_predict_data_files_and_model_files(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 2))
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(int))
    proc = run("train", "--data", tmp_path / "d.npz", "--epochs", "2", "--quiet",
               "--save", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    np.savez(tmp_path / "noX.npz", features=X)
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "noX.npz")
    assert proc.returncode == 2 and "(save with np.savez(path, X=X))" in proc.stderr
    assert "None" not in proc.stderr
    np.save(tmp_path / "X.npy", X)
    a = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "X.npy")
    b = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "d.npz")
    assert a.returncode == 0 and a.stdout == b.stdout and len(a.stdout.splitlines()) == 31
    (tmp_path / "model.txt").write_text("hello")
    np.save(tmp_path / "model.npy", np.array([object()], dtype=object), allow_pickle=True)
    for name in ("model.txt", "model.npy"):
        proc = run("predict", "--model", tmp_path / name, "--data", tmp_path / "d.npz")
        assert proc.returncode == 2 and "not an nnbackend checkpoint" in proc.stderr, proc.stderr
        assert "pickle" not in proc.stderr.lower()


def test_output_format_follows_the_extension(tmp_path):
    _labelled_csv(tmp_path)
    proc = run("train", "--data", tmp_path / "train.csv", "--target", "answer", "--epochs", "3",
               "--quiet", "--save", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "train.csv",
               "--out", tmp_path / "p.npz")
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "p.npz", allow_pickle=False) as f:
        assert f["prediction"].shape == (80,) and set(f["prediction"]) <= {"no", "yes"}
        assert f["probabilities"].shape == (80, 2) and list(f["classes"]) == ["no", "yes"]
    proc = run("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "train.csv",
               "--out", tmp_path / "p.json")
    assert proc.returncode == 2 and "written as .csv or .npz" in proc.stderr
    assert not (tmp_path / "p.json").exists()


def test_plot_format_follows_the_extension(tmp_path):
    needs_matplotlib()
    for name, magic in (("loss.pdf", b"%PDF"), ("loss.svg", b"<?xml")):
        proc = run("train", "--epochs", "3", "--quiet", "--plot", tmp_path / name)
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / name).read_bytes()[:len(magic)] == magic
    proc = run("train", "--epochs", "3", "--plot", tmp_path / "loss.xyz")
    assert proc.returncode == 2 and "the format follows the extension" in proc.stderr
    assert "epoch" not in proc.stderr.split("error:")[0]  # refused before training


def test_checkpoints_follow_the_umask(tmp_path):
    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        path = tmp_path / f"m{umask:o}.npz"
        proc = subprocess.run([sys.executable, "-m", "nnbackend.cli", "train", "--epochs", "2",
                               "--quiet", "--save", str(path)], capture_output=True, text=True,
                              preexec_fn=lambda u=umask: os.umask(u), timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert path.stat().st_mode & 0o777 == mode, (oct(umask), oct(path.stat().st_mode))


def test_help_shows_the_defaults_and_json_repeats_the_run():
    proc = run("train", "--help")
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 0
    for default in ("--epochs 1000 --lr 1.0", "--epochs 50 --lr 0.1", "(default: 32)",
                    "default: sgd", "default: float32", "(default: 0)"):
        assert default in text, default
    assert "passes over the training rows" in text
    s = run_json("train", "--epochs", "7", "--seed", "2")
    assert (s["activation"], s["seed"], s["epochs"], s["epochs_run"]) == ("tanh", 2, 7, 7)
    assert run("train", "--help").stdout == proc.stdout


def test_a_closed_pipe_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "nnbackend.cli", "info"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader (head -1) has gone before anything is written
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Broken pipe" not in err and "Traceback" not in err and err == "", err
    assert proc.returncode == 141


def test_npy_rows_are_read_for_the_device_asked_for(tmp_path):
    # dask's rows from a .npy go to the chunks' library on --device: CuPy's on
    # "cuda" (here: refused by name, no GPU), NumPy's on the CPU.
    pytest.importorskip("dask")
    import argparse

    from nnbackend.cli_data import load_training_data

    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.normal(size=(50, 3)))
    np.save(tmp_path / "y.npy", (rng.normal(size=50) > 0).astype(float))

    def args(device):
        return argparse.Namespace(data=str(tmp_path / "X.npy"), target=str(tmp_path / "y.npy"),
                                  dataset=None, no_header=False, delimiter=None, device=device,
                                  val_split=None)

    data = load_training_data(args(None), "dask", 0)
    assert type(data.X).__module__.startswith("dask") and data.X.shape == (50, 3)
    try:
        nb.get_backend("dask", "cuda")
    except nb.BackendUnavailableError as exc:
        with pytest.raises(nb.BackendUnavailableError, match=re.escape(str(exc)[:40])):
            load_training_data(args("cuda"), "dask", 0)
    else:
        pytest.skip("a GPU is here: dask on cuda reads CuPy chunks (tests/test_dask_cupy.py)")


def test_an_output_aimed_at_an_input_is_refused_and_the_input_kept(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("a,b,label\n1,2,x\n3,4,y\n5,6,x\n")
    err = cli_refusal(["train", "--data", data, "--target", "label", "--save", data], capsys)
    assert "--save" in err and "is also --data" in err
    assert data.read_text().startswith("a,b,label")
    model = tmp_path / "m.npz"
    assert main(["train", "--epochs", "1", "--quiet", "--save", str(model)]) == 0
    kept = model.read_bytes()
    err = cli_refusal(["train", "--save", model, "--plot", tmp_path / "." / "m.npz"], capsys)
    assert "--plot" in err and "is also --save" in err
    err = cli_refusal(["predict", "--model", model, "--data", data, "--out", model], capsys)
    assert "--out" in err and "is also --model" in err
    assert model.read_bytes() == kept
    # Going on in one file stays allowed: --resume and --save the same path.
    assert main(["train", "--epochs", "1", "--quiet", "--resume", str(model),
                 "--save", str(model)]) == 0


def test_npy_files_empty_or_in_upper_case(tmp_path, capsys):
    X, y = tmp_path / "X.NPY", tmp_path / "y.npy"
    np.save(tmp_path / "X.npy", np.random.default_rng(0).random((8, 2)))
    (tmp_path / "X.npy").rename(X)
    np.save(y, np.arange(8) % 2)
    assert main(["train", "--data", str(X), "--target", str(y), "--epochs", "1", "--quiet"]) == 0
    capsys.readouterr()
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    err = cli_refusal(["train", "--data", empty, "--target", y], capsys)
    assert f"cannot read {empty}" in err
    err = cli_refusal(["train", "--data", X, "--target", empty], capsys)
    assert f"cannot read {empty}" in err


def test_running_out_of_memory_is_one_line(monkeypatch, capsys):
    from nnbackend import cli

    def too_big(args):
        raise MemoryError("Unable to allocate 14.6 TiB for an array")

    monkeypatch.setitem(cli._COMMANDS, "train", too_big)
    err = cli_refusal(["train"], capsys)
    assert "out of memory: Unable to allocate 14.6 TiB" in err


def test_a_pgf_plot_without_tex_is_refused_before_training(tmp_path, monkeypatch, capsys):
    needs_matplotlib()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    err = cli_refusal(["train", "--plot", tmp_path / "x.pgf", "--save", tmp_path / "m.npz"], capsys)
    assert "a .pgf plot needs" in err and "TeX" in err
    assert not (tmp_path / "m.npz").exists()


def test_python_dash_m_nnbackend_is_the_command_line():
    env = {k: v for k, v in os.environ.items() if k not in ("NNBACKEND_BACKEND", "NNBACKEND_DEBUG")}
    proc = subprocess.run([sys.executable, "-m", "nnbackend", "train", "--epochs", "1"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and "on xor" in proc.stdout, proc.stderr


def test_a_device_this_machine_lacks_is_not_blamed_on_the_checkpoint(tmp_path, capsys):
    model = tmp_path / "m.npz"
    assert main(["train", "--epochs", "1", "--quiet", "--save", str(model)]) == 0
    for command in (["predict", "--model", model, "--data", model],
                    ["train", "--resume", model]):
        err = cli_refusal([*command, "--device", "gpu7"], capsys)
        assert "has only the device 'cpu', got 'gpu7'" in err
        assert "not a usable nnbackend checkpoint" not in err


@pytest.mark.parametrize("flags,message", [
    (["--dataset", "moons", "--mode", "batch", "--batch-size", "64"],
     "--batch-size is the rows of a --mode minibatch step; --mode batch takes every row"),
    (["--dataset", "moons", "--mode", "sgd", "--batch-size", "64"], "--mode sgd takes one row"),
    (["--data", "DATA", "--target", "label", "--n-samples", "10"],
     "--n-samples sets the rows of a --dataset"),
])
def test_train_flags_that_would_be_ignored_are_refused(tmp_path, capsys, flags, message):
    data = tmp_path / "d.csv"
    data.write_text("a,b,label\n1,2,x\n3,4,y\n5,6,x\n")
    err = cli_refusal(["train", *[str(data) if f == "DATA" else f for f in flags]], capsys)
    assert message in err


def test_no_header_on_a_file_that_is_not_csv_is_refused_by_every_reader(tmp_path, capsys):
    model, data = tmp_path / "m.npz", tmp_path / "d.npz"
    assert main(["train", "--epochs", "1", "--quiet", "--save", str(model)]) == 0
    np.savez(data, X=np.zeros((4, 2)), y=np.array([0, 1, 1, 0]))
    for command in ("predict", "evaluate"):
        err = cli_refusal([command, "--model", model, "--data", data, "--no-header"], capsys)
        assert "--no-header is for a --data .csv file" in err


def test_a_trained_model_is_saved_before_the_summary_reads_the_data(tmp_path, monkeypatch):
    # The summary's passes over a large file can run out of memory: the
    # trained model must be on disk by then.
    import nnbackend.cli as cli

    def out_of_memory(*args, **kwargs):
        raise MemoryError("the summary's pass")

    monkeypatch.setattr(cli, "_summary", out_of_memory)
    monkeypatch.delenv("NNBACKEND_BACKEND", raising=False)
    with pytest.raises((MemoryError, SystemExit)):
        main(["train", "--epochs", "2", "--quiet", "--save", str(tmp_path / "m.npz")])
    assert nb.MLP.load(tmp_path / "m.npz").layer_sizes == [2, 4, 1]
