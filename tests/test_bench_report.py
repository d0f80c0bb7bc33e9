"""The bench report: numbers, words and plots from a synthetic pytest-benchmark JSON.

Reading the JSON (``load_results``, ``scaling_exponents``, the CLI's refusals)
needs nothing optional and always runs; ``write_report`` draws the plots, so
the tests that call it skip, with the reason, where matplotlib is missing.
"""

import json
import math

import pytest

from nnbackend.bench.report import (exponent_fits, load_results, main, noise_notes,
                                    scaling_exponents, write_report)
from nnbackend.bench.report.analysis import epoch_points
from nnbackend.plot import require_matplotlib


def _matplotlib_missing():
    """Why write_report cannot draw here (the package's own message), or None."""
    try:
        require_matplotlib()
    except RuntimeError as exc:
        return str(exc)
    return None


_NO_MATPLOTLIB = _matplotlib_missing()
needs_matplotlib = pytest.mark.skipif(
    _NO_MATPLOTLIB is not None, reason=f"write_report draws plots: {_NO_MATPLOTLIB}")

PNG = b"\x89PNG\r\n\x1a\n"
NS = [100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000]

LABELS = {
    # label: (implementation, backend, device, gpu, device_kind)
    "nnbackend-numpy-cpu": ("nnbackend", "numpy", "cpu", False, "cpu"),
    "nnbackend-cupy-cuda": ("nnbackend", "cupy", "NVIDIA H100 80GB HBM3", True, "cuda"),
    "nnbackend-torch-cpu": ("nnbackend", "torch", "cpu", False, "cpu"),
    "nnbackend-torch-cuda": ("nnbackend", "torch", "NVIDIA H100 80GB HBM3", True, "cuda"),
    "numpy-seed": ("numpy-seed", "numpy", "cpu", False, "cpu"),
    "torch-eager-cpu": ("torch-eager", "torch", "cpu", False, "cpu"),
    "torch-eager-cuda": ("torch-eager", "torch", "NVIDIA H100 80GB HBM3", True, "cuda"),
    "cupy-eager-cuda": ("cupy-eager", "cupy", "NVIDIA H100 80GB HBM3", True, "cuda"),
}


def _bench(label, mode, n, seconds, *, stats=True, extra=True, model="small"):
    impl, backend, device, gpu, kind = LABELS[label]
    batch = {"batch": n, "minibatch": 64 if model == "small" else 256, "sgd": 1}[mode]
    steps = math.ceil(n / batch)
    info = {
        "kind": "epoch", "implementation": impl, "label": label, "backend": backend,
        "device": device, "device_kind": kind, "gpu": gpu, "model": model, "mode": mode,
        "batch_size": batch, "n_samples": n, "steps": steps, "dtype": "float32",
    }
    if extra:
        info.update(seconds_per_epoch=seconds, samples_per_s=n / seconds,
                    seconds_per_step=seconds / steps)
    st = None
    if stats:
        st = {"min": seconds * 0.9, "max": seconds * 1.2, "mean": seconds * 1.02,
              "median": seconds, "stddev": seconds * 0.05, "rounds": 5}
    return {"name": f"test_epoch[{label}-{mode}-{n}]", "group": f"epoch-{mode}",
            "stats": st, "extra_info": info}


def _ttt(label, mode, reached, epochs, seconds):
    impl, backend, device, gpu, kind = LABELS[label]
    return {"name": f"test_ttt[{label}-{mode}]", "group": "time_to_target", "stats": None,
            "extra_info": {"kind": "time_to_target", "implementation": impl, "label": label,
                           "backend": backend, "device": device, "device_kind": kind,
                           "gpu": gpu, "model": "small", "mode": mode,
                           "batch_size": 64, "n_samples": 10_000, "steps": 157,
                           "dtype": "float32", "target_loss": 0.05, "reached": reached,
                           "epochs": epochs, "seconds": seconds,
                           "final_loss": 0.04 if reached else 0.2}}


def _write(tmp_path, numpy_time, name="results.json"):
    benches = []
    for mode in ("batch", "minibatch", "sgd"):
        for n in NS:
            benches.append(_bench("nnbackend-numpy-cpu", mode, n, numpy_time(n)))
            benches.append(_bench("numpy-seed", mode, n, 1.2e-6 * n))
            benches.append(_bench("nnbackend-cupy-cuda", mode, n, 2e-3 + 1e-8 * n))
            benches.append(_bench("torch-eager-cpu", mode, n, 1e-9 * n ** 1.5))
    # Partial data: stats missing (extra_info has the time), and neither present.
    benches.append(_bench("numpy-seed", "batch", 2_000_000, 2.4, stats=False))
    benches.append(_bench("torch-eager-cpu", "batch", 2_000_000, 1.0, stats=False, extra=False))
    benches.append({"name": "garbage", "stats": None})  # no extra_info at all
    benches += [_ttt("nnbackend-numpy-cpu", "minibatch", True, 12, 0.8),
                _ttt("numpy-seed", "minibatch", True, 12, 1.1),
                _ttt("nnbackend-cupy-cuda", "minibatch", False, 50, 3.0),
                _ttt("nnbackend-numpy-cpu", "sgd", True, 3, 2.5)]
    data = {
        "machine_info": {"cpu": {"brand_raw": "Test CPU 9000", "count": 8},
                         "python_version": "3.12.1", "system": "Linux", "release": "6.1"},
        "commit_info": {"id": "0123456789abcdef", "branch": "main", "dirty": False},
        "datetime": "2025-01-02T03:04:05.000000+00:00",
        "version": "5.1.0",
        "benchmarks": benches,
        "nnbackend": {"machine": "test box with a fake H100", "command": "nnbackend bench --quick"},
    }
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def linear_report(tmp_path_factory):
    """One report shared by the read-only tests below (plots take about a second)."""
    tmp_path = tmp_path_factory.mktemp("linear")
    path = _write(tmp_path, lambda n: 1e-6 * n)
    out = tmp_path / "out"
    return path, out, write_report(path, out)


@needs_matplotlib
def test_files_written(linear_report):
    _, out, summary = linear_report
    for name in ("epoch_time.png", "speedup.png", "time_to_target.png"):
        assert (out / name).read_bytes()[:8] == PNG
    assert (out / "report.md").is_file()
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["paths"] == summary["paths"]
    assert summary["speedup_plot"] == {"small": "gpu"}


def test_load_results_flattens_and_fills_in(tmp_path):
    rows = load_results(_write(tmp_path, lambda n: 1e-6 * n))
    epoch = [r for r in rows if r["kind"] == "epoch"]
    no_stats = [r for r in epoch if r["n_samples"] == 2_000_000]
    by_label = {r["label"]: r for r in no_stats}
    assert by_label["numpy-seed"]["seconds_per_epoch"] == 2.4  # from extra_info
    assert by_label["numpy-seed"]["median"] is None
    assert by_label["torch-eager-cpu"]["seconds_per_epoch"] is None  # nothing to go on
    r = next(r for r in epoch if r["label"] == "nnbackend-numpy-cpu" and r["n_samples"] == 1000
             and r["mode"] == "batch")
    assert r["median"] == pytest.approx(1e-3)
    assert r["device"] == "cpu" and r["gpu"] is False
    ttt = [r for r in rows if r["kind"] == "time_to_target"]
    assert len(ttt) == 4 and all(isinstance(r["reached"], bool) for r in ttt)


def test_median_fallback_when_extra_info_lacks_times(tmp_path):
    bench = _bench("nnbackend-numpy-cpu", "batch", 1000, 0.5, extra=False)
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"benchmarks": [bench]}))
    (row,) = load_results(path)
    assert row["seconds_per_epoch"] == 0.5
    assert row["samples_per_s"] == pytest.approx(2000)
    assert row["seconds_per_step"] == pytest.approx(0.5)


def test_a_case_timed_in_windows_has_its_statistics_per_epoch(tmp_path):
    """A case whose calls ran 8 epochs each: its statistics (a call's) are divided by
    8, so its spread and its fallback time are per epoch, like one timed alone."""
    bench = _bench("nnbackend-cupy-cuda", "batch", 1000, 8e-4, extra=False)
    bench["stats"].update(q1=7e-4, q3=9e-4)
    bench["extra_info"]["epochs_per_call"] = 8
    alone = _bench("numpy-seed", "batch", 1000, 1e-4, extra=False)
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"benchmarks": [bench, alone]}))
    windowed, single = load_results(path)
    assert windowed["epochs_per_call"] == 8 and single["epochs_per_call"] == 1
    assert windowed["seconds_per_epoch"] == pytest.approx(1e-4)
    assert (windowed["median"], windowed["q1"], windowed["q3"], windowed["min"]) == \
        pytest.approx((1e-4, 7e-4 / 8, 9e-4 / 8, 0.9e-4))
    assert single["median"] == pytest.approx(1e-4)
    out = tmp_path / "out"
    write_report(path, out)
    text = (out / "report.md").read_text()
    assert "short epochs timed in calls of up to 8 epochs" in text
    assert "one training epoch per timing" not in text


def test_exponents(tmp_path):
    path = _write(tmp_path, lambda n: 1e-6 * n)
    exps = scaling_exponents(load_results(path))
    for mode in ("batch", "minibatch", "sgd"):
        assert exps[("nnbackend-numpy-cpu", mode)] == pytest.approx(1.0, abs=0.01)
        assert exps[("numpy-seed", mode)] == pytest.approx(1.0, abs=0.01)
        assert exps[("torch-eager-cpu", mode)] == pytest.approx(1.5, abs=0.01)
        # 2 ms + 10 ns per row follows no single power of N over 1e4..1e6 (R² 0.89):
        # not a finding, so not among the exponents.
        assert ("nnbackend-cupy-cuda", mode) not in exps
    # Only N in [lo, hi] count where there are 3 or more; else every measured N.
    narrow = scaling_exponents(load_results(path), lo=1e5, hi=1e5)
    assert narrow[("numpy-seed", "batch")] == pytest.approx(1.0, abs=0.01)
    assert narrow[("torch-eager-cpu", "batch")] == pytest.approx(1.5, abs=0.01)
    points = epoch_points(load_results(path))
    fits = exponent_fits(points, lo=1e5, hi=1e5)
    assert fits[("numpy-seed", "batch")]["sizes"] == NS + [2_000_000]
    assert fits[("numpy-seed", "batch")]["outside_range"] is True
    fits = exponent_fits(points, lo=1e2, hi=1e3)  # launch overhead dominates: flat
    cupy = fits[("nnbackend-cupy-cuda", "batch")]
    assert cupy["sizes"] == [100, 300, 1_000] and cupy["outside_range"] is False
    assert cupy["slope"] == pytest.approx(0.0, abs=0.01)


@needs_matplotlib
def test_linear_numpy_is_not_flagged(linear_report):
    _, out, summary = linear_report
    md = (out / "report.md").read_text()
    assert "epoch cost grows linearly" in md
    assert "does not grow linearly" not in md  # torch-eager-cpu's 1.5 is not ours to flag
    assert "Warning" not in md
    assert summary["numpy_linear"]["small"] == {"batch": True, "minibatch": True, "sgd": True}
    for mode in ("batch", "minibatch", "sgd"):
        exps = summary["exponents"]["small"]
        assert exps["nnbackend-numpy-cpu"][mode] == pytest.approx(1.0, abs=0.01)
        assert exps["torch-eager-cpu"][mode] == pytest.approx(1.5, abs=0.01)


@needs_matplotlib
def test_superlinear_numpy_is_flagged(tmp_path):
    path = _write(tmp_path, lambda n: 1e-9 * n ** 1.5)
    summary = write_report(path, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "does not grow linearly" in md
    assert "**Warning:**" in md
    assert summary["numpy_linear"]["small"]["batch"] is False
    exps = summary["exponents"]["small"]
    assert exps["nnbackend-numpy-cpu"]["sgd"] == pytest.approx(1.5, abs=0.01)


@needs_matplotlib
def test_crossover(linear_report):
    _, out, summary = linear_report
    cupy = [c for c in summary["crossovers"] if c["label"] == "nnbackend-cupy-cuda"]
    assert [c["mode"] for c in cupy] == ["batch", "minibatch", "sgd"]
    for c in cupy:
        assert c["status"] == "crossover"
        assert c["n"] == pytest.approx(2000, rel=0.10)  # exact: 2e-3 / 0.99e-6 = 2020
    md = (out / "report.md").read_text()
    assert "GPU faster from N ≈" in md


def _crossover_of(tmp_path, ns, gpu_time):
    """The report's one crossover: NumPy at 1 us a row against ``gpu_time(n)``."""
    benches = []
    for n in ns:
        benches.append(_bench("nnbackend-numpy-cpu", "batch", n, 1e-6 * n))
        benches.append(_bench("nnbackend-cupy-cuda", "batch", n, gpu_time(n)))
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"benchmarks": benches}))
    (c,) = write_report(path, tmp_path / "o")["crossovers"]
    return c


@needs_matplotlib
def test_crossover_absent(tmp_path):
    # GPU always slower, then always faster.
    for gpu_time, text in ((lambda n: 1e-5 * n, "CPU faster at every measured N"),
                           (lambda n: 1e-7 * n, "GPU faster at every measured N")):
        c = _crossover_of(tmp_path, NS, gpu_time)
        assert c["n"] is None and c["text"] == text
        assert text in (tmp_path / "o" / "report.md").read_text()
        assert not (tmp_path / "o" / "time_to_target.png").exists()


@needs_matplotlib
def test_speedups(linear_report):
    _, out, summary = linear_report
    sp = {(s["label"], s["baseline"], s["mode"], s["n_samples"]): s["speedup"]
          for s in summary["speedups"]}
    # numpy-seed takes 1.2e-6 N, nnbackend-numpy 1e-6 N: nnbackend-numpy is 1.2x faster.
    assert sp[("nnbackend-numpy-cpu", "numpy-seed", "batch", 10_000)] == pytest.approx(1.2)
    # GPU at 1e6: cpu 1.0 s vs gpu 2e-3 + 1e-2 = 0.012 s.
    gpu_over_cpu = sp[("nnbackend-cupy-cuda", "nnbackend-numpy-cpu", "batch", 1_000_000)]
    assert gpu_over_cpu == pytest.approx(1 / 0.012)
    assert ("numpy-seed", "nnbackend-numpy-cpu", "batch", 10_000) not in sp  # nnbackend-* only
    md = (out / "report.md").read_text()
    assert "| nnbackend-numpy-cpu | 10,000 | — | 1.20× |" in md
    assert "| nnbackend-cupy-cuda | 1,000,000 | 83.3× |" in md


@needs_matplotlib
def test_markdown_contents(linear_report):
    _, out, _ = linear_report
    md = (out / "report.md").read_text()
    assert "test box with a fake H100" in md
    assert "`nnbackend bench --quick`" in md
    assert "2025-01-02" in md
    assert "NVIDIA H100 80GB HBM3" in md
    # Time per epoch in ms with 3 significant digits; samples/s.
    assert "| 1,000,000 | 1000 | 12.0 | 1200 | 1000 |" in md
    assert "| 1,000 | 1.00 | 2.01 | 1.20 | 0.0316 |" in md
    assert "| 1,000 | 1.00 M | 498 k | 833 k | 31.6 M |" in md
    # Modes and labels in the fixed order.
    assert md.index("## batch") < md.index("## mini-batch") < md.index("## stochastic")
    header = "| N | nnbackend-numpy-cpu | nnbackend-cupy-cuda | numpy-seed | torch-eager-cpu |"
    assert header in md
    # Time to target: these made-up runs record no budget, and the report says so.
    assert ("| nnbackend-cupy-cuda | 10,000 | 0.0500 | **no**: not within an unrecorded "
            "budget (50 epochs run) | 50 | 3.00 | — | 0.200 | the runs of this mode that "
            "reached it took 12 epochs |") in md
    assert "Budget: not recorded for these runs" in md
    # The row with no time at all is "—", the row with only extra_info is used.
    assert "| 2,000,000 | — | — | 2400 | — |" in md


@needs_matplotlib
def test_no_gpu_and_partial_data(tmp_path):
    benches = []
    for n in NS[:4]:
        benches.append(_bench("nnbackend-numpy-cpu", "sgd", n, 1e-6 * n))
        benches.append(_bench("numpy-seed", "sgd", n, 1.2e-6 * n))
    benches.append(_bench("torch-eager-cpu", "sgd", 1000, 3e-3))
    benches.append({"name": "odd", "extra_info": {"label": "x", "mode": None}, "stats": None})
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"benchmarks": benches}))
    summary = write_report(path, tmp_path / "o")
    assert summary["speedup_plot"] == {"small": "peers"}
    assert summary["crossovers"] == []
    # Measured only below the fitting range: fitted over the 4 measured N, and said so.
    assert summary["exponents"]["small"]["nnbackend-numpy-cpu"]["sgd"] == pytest.approx(1.0)
    assert summary["exponent_fits"]["small"]["nnbackend-numpy-cpu"]["sgd"]["sizes"] == NS[:4]
    # torch-eager-cpu was timed at one N: no exponent, and why.
    assert summary["exponent_fits"]["small"]["torch-eager-cpu"]["sgd"]["reason"] == \
        "1 size measured (N = 1,000); an exponent needs at least 3"
    assert "torch-eager-cpu" not in summary["exponents"]["small"]
    assert (tmp_path / "o" / "speedup.png").read_bytes()[:8] == PNG
    md = (tmp_path / "o" / "report.md").read_text()
    assert "No GPU was measured." in md
    assert ("| nnbackend-numpy-cpu | sgd | 100..3,000 (4) | 1.00 | 1.000 | finding; fitted on "
            "N outside 10,000..1,000,000, where fewer than 3 were measured") in md
    assert "one Python step per row" not in md


def test_empty_results_are_refused_and_write_nothing(tmp_path, capsys):
    # As `nnbackend bench` refuses a run that timed nothing: an empty report
    # must not replace a good one (review finding 5; tests/test_bench_edges.py).
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"benchmarks": []}))
    assert main([str(path), str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
    assert "none of its 0 benchmark(s) is an epoch timing" in capsys.readouterr().err


def test_cli_refuses_a_missing_or_unreadable_results_file(tmp_path, capsys):
    # Both are refused while reading the JSON, before any plotting: the
    # messages tell them apart from each other and from a missing matplotlib.
    missing = tmp_path / "missing.json"
    assert main([str(missing), str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"error: no such results file: {missing}\n"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main([str(bad), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Expecting property name enclosed in double quotes"), err
    assert not (tmp_path / "o").exists()


@needs_matplotlib
def test_interleaved_ratios_get_their_own_table(tmp_path):
    def ratio(a, b, mode, value, target, sense):
        met = None if target is None else (value <= target if sense == "max" else value >= target)
        return {"name": f"test_ratio[{a}-{b}]", "group": "ratio", "extra_info": {
            "kind": "ratio", "label_a": a, "label_b": b, "label": f"{a} / {b}", "mode": mode,
            "n_samples": 2000, "median_a": value * 0.01, "median_b": 0.01, "ratio": value,
            "target": target, "sense": sense, "met": met, "rounds": 9},
            "stats": {"median": 0.02, "rounds": 9}}

    data = {"benchmarks": [
        _bench("nnbackend-numpy-cpu", "sgd", 1_000, 0.05),
        ratio("nnbackend-numpy-cpu", "numpy-seed", "sgd", 1.31, 1.2, "max"),
        ratio("torch-eager-cpu", "nnbackend-torch-cpu", "sgd", 2.4, 2.0, "min"),
        ratio("nnbackend-cupy-cuda-reference", "nnbackend-cupy-cuda", "sgd", 40.0, None, None),
    ]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    summary = write_report(path, tmp_path / "out")
    # The pairs are not epochs: they add no curve and no label.
    assert summary["labels"] == ["nnbackend-numpy-cpu"]
    got = {(r["label_a"], r["label_b"]): r for r in summary["ratios"]}
    assert got["nnbackend-numpy-cpu", "numpy-seed"]["met"] is False
    assert got["torch-eager-cpu", "nnbackend-torch-cpu"]["met"] is True
    assert got["nnbackend-cupy-cuda-reference", "nnbackend-cupy-cuda"]["met"] is None
    assert {r["model"] for r in summary["ratios"]} == {"small"}  # not recorded: small
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Ratios, measured interleaved" in md
    assert "| nnbackend-numpy-cpu | numpy-seed | small | sgd |" in md
    assert "≤ 1.2 | **no** |" in md
    assert "≥ 2 | yes |" in md


def test_one_backend_on_cpu_and_cuda_gives_two_labels(tmp_path):
    benches = [_bench("nnbackend-torch-cpu", "batch", 1000, 0.01),
               _bench("nnbackend-torch-cuda", "batch", 1000, 0.002),
               _bench("torch-eager-cuda", "batch", 1000, 0.001)]
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"benchmarks": benches}))
    rows = load_results(path)
    assert [r["label"] for r in rows] == ["nnbackend-torch-cpu", "nnbackend-torch-cuda",
                                          "torch-eager-cuda"]
    assert not any("raw_label" in r for r in rows)  # nothing needed renaming
    assert {r["model"] for r in rows} == {"small"}


def test_records_from_before_labels_named_the_device_are_relabelled(tmp_path):
    # As the H200 run at 75e0aec wrote them: no device_kind, no model, and
    # "nnbackend-torch" for the torch backend on CUDA.
    def legacy(label, impl, backend, gpu):
        return {"name": label, "stats": {"median": 0.01, "rounds": 3}, "extra_info": {
            "kind": "epoch", "implementation": impl, "label": label, "backend": backend,
            "gpu": gpu, "mode": "batch", "batch_size": 1000, "n_samples": 1000, "steps": 1}}

    benches = [legacy("nnbackend-numpy", "nnbackend", "numpy", False),
               legacy("nnbackend-torch", "nnbackend", "torch", True),
               legacy("nnbackend-jax", "nnbackend", "jax", True),
               legacy("nnbackend-cupy-reference", "nnbackend", "cupy", True),
               legacy("jax-scan-hand", "jax-scan-hand", "jax", False),
               legacy("torch-eager-cuda", "torch-eager", "torch", True),
               legacy("numpy-seed", "numpy-seed", "numpy", False)]
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"benchmarks": benches}))
    rows = load_results(path)
    assert [(r.get("raw_label"), r["label"]) for r in rows] == [
        ("nnbackend-numpy", "nnbackend-numpy-cpu"),
        ("nnbackend-torch", "nnbackend-torch-cuda"),
        ("nnbackend-jax", "nnbackend-jax-gpu"),
        ("nnbackend-cupy-reference", "nnbackend-cupy-cuda-reference"),
        ("jax-scan-hand", "jax-scan-hand-cpu"),
        (None, "torch-eager-cuda"),
        (None, "numpy-seed")]
    assert {r["model"] for r in rows} == {"small"}


@needs_matplotlib
def test_the_report_groups_by_model(tmp_path):
    benches = []
    for n in NS[4:]:
        benches.append(_bench("nnbackend-numpy-cpu", "batch", n, 1e-6 * n))
        benches.append(_bench("nnbackend-cupy-cuda", "batch", n, 1e-3 + 1e-8 * n))
        # The mnist model: a hundred times the work, and a peer of its own.
        benches.append(_bench("nnbackend-numpy-cpu", "batch", n, 1e-4 * n, model="mnist"))
        benches.append(_bench("nnbackend-cupy-cuda", "batch", n, 2e-6 * n, model="mnist"))
        benches.append(_bench("cupy-eager-cuda", "batch", n, 4e-6 * n, model="mnist"))
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"benchmarks": benches}))
    out = tmp_path / "o"
    summary = write_report(path, out)
    assert summary["models"] == ["small", "mnist"]
    # Each model's plots: the first under the plain names, the other suffixed.
    for name in ("epoch_time.png", "speedup.png", "epoch_time-mnist.png", "speedup-mnist.png"):
        assert (out / name).read_bytes()[:8] == PNG
    assert summary["paths"]["models"]["mnist"]["epoch_time"] == str(out / "epoch_time-mnist.png")
    # Speedups and exponents within one model, never across.
    sp = {(s["model"], s["label"], s["baseline"], s["n_samples"]): s["speedup"]
          for s in summary["speedups"]}
    assert sp[("small", "nnbackend-cupy-cuda", "nnbackend-numpy-cpu", 1_000_000)] == \
        pytest.approx(1.0 / 0.011)
    assert sp[("mnist", "nnbackend-cupy-cuda", "nnbackend-numpy-cpu", 1_000_000)] == \
        pytest.approx(50.0)
    assert sp[("mnist", "nnbackend-cupy-cuda", "cupy-eager-cuda", 10_000)] == pytest.approx(2.0)
    assert not any(s["model"] == "small" and s["baseline"] == "cupy-eager-cuda"
                   for s in summary["speedups"])
    assert summary["exponents"]["mnist"]["nnbackend-cupy-cuda"]["batch"] == pytest.approx(1.0)
    # 1 ms + 10 ns per row over 1e4..1e6: sublinear, and a power of N fits it well enough.
    small_cupy = summary["exponent_fits"]["small"]["nnbackend-cupy-cuda"]["batch"]
    assert small_cupy["r2"] == pytest.approx(0.927, abs=0.001) and not small_cupy["flags"]
    assert summary["exponents"]["small"]["nnbackend-cupy-cuda"]["batch"] < 0.9
    assert {(c["model"], c["label"]) for c in summary["crossovers"]} == {
        ("small", "nnbackend-cupy-cuda"), ("mnist", "nnbackend-cupy-cuda"),
        ("mnist", "cupy-eager-cuda")}
    md = (out / "report.md").read_text()
    assert "- **Models:** small: MLP 32 → 64 → 1" in md
    small = md.index("# Model small:")
    mnist = md.index("# Model mnist: MLP 784 → 1024 → 1024 → 10")
    assert small < mnist < md.index("## Ratios, measured interleaved")
    assert "| N | nnbackend-numpy-cpu | nnbackend-cupy-cuda | cupy-eager-cuda |" in md[mnist:]
    assert "cupy-eager-cuda" not in md[small:mnist]
    assert "![Time per epoch](epoch_time-mnist.png)" in md[mnist:]


@needs_matplotlib
def test_per_step_times_and_the_cases_not_measured(tmp_path):
    # Mini-batch and sgd epochs get a table per step (the mid model's targets
    # are per step); the cases that ran no timing are named at the end, with why.
    benches = [_bench("nnbackend-numpy-cpu", mode, n, 1e-5 * n, model="mid")
               for mode in ("minibatch", "sgd") for n in (1_000, 10_000)]
    cases = [{"name": "test_epoch[mid-nnbackend-cupy-sgd-1000]", "outcome": "passed",
              "reason": None, "seconds": 1.5},
             {"name": "test_epoch[mid-nnbackend-jax:gpu-sgd-1000]", "outcome": "skipped",
              "reason": "the run's deadline has passed", "seconds": 0.0},
             {"name": "test_ratio[small-a-vs-b]", "outcome": "failed",
              "reason": "call: RuntimeError: CUDA error | illegal address", "seconds": 2.0}]
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"benchmarks": benches, "cases": cases}))
    write_report(path, tmp_path / "o")
    md = (tmp_path / "o" / "report.md").read_text()
    assert "# nnbackend benchmark report" in md and "MLP 784 → 256 → 256 → 10" in md
    assert "**Not measured:** 3 case(s)" in md
    per_step = md.index("Time per step (µs;")
    # 10,000 rows in mini-batches of 256 (this file's records): 40 steps of 0.1 s / 40.
    assert "| 10,000 | 2500 |" in md[per_step:]
    tail = md[md.index("## Cases not measured"):]
    assert "| `test_epoch[mid-nnbackend-jax:gpu-sgd-1000]` | skipped | the run's deadline" in tail
    assert "CUDA error \\| illegal address" in tail
    # Said to pass, but with no record in the results: named as such.
    assert "| `test_epoch[mid-nnbackend-cupy-sgd-1000]` | passed, no record |" in tail
    # A run that kept no case list says that whether any case is missing is unknown.
    path.write_text(json.dumps({"benchmarks": benches}))
    write_report(path, tmp_path / "o")
    md = (tmp_path / "o" / "report.md").read_text()
    assert "This run did not record its cases' outcomes" in md


def test_crossover_wording_for_one_n_and_for_ties(tmp_path):
    for ns, gpu_time, text in (
            ([1_000], lambda n: 1e-7 * n, "GPU faster at the one N measured (N = 1,000)"),
            ([1_000, 10_000], lambda n: 1e-6 * n, "GPU and CPU equally fast at every measured N"),
            # Equal at one N and the CPU faster at the other: not "CPU faster" at both.
            ([1_000, 10_000], lambda n: 1e-6 * n if n == 1_000 else 1e-5 * n,
             "CPU faster or as fast at every measured N (as fast at N = 1,000)")):
        assert _crossover_of(tmp_path, ns, gpu_time)["text"] == text


def test_neighbours_of_one_or_two_rounds_are_not_said_to_differ_beyond_their_spreads():
    def row(t, rounds):
        return {"seconds_per_epoch": t, "rounds": rounds, "q1": t, "q3": t, "iqr": 0.0}

    falling = {("x", "batch"): {1_000: row(1.44e-3, 1), 10_000: row(1.39e-3, 1)}}
    assert noise_notes(falling) == {}
    falling = {("x", "batch"): {1_000: row(1.44e-3, 5), 10_000: row(1.39e-3, 5)}}
    assert "beyond both spreads" in noise_notes(falling)[("x", "batch", 1_000)][0]


def test_a_crossover_from_timings_of_one_round_says_so(tmp_path):
    benches = []
    for n in (1_000, 10_000):
        benches.append(_bench("nnbackend-numpy-cpu", "batch", n, 1e-6 * n))
        gpu = _bench("nnbackend-cupy-cuda", "batch", n, 1e-7 * n)
        gpu["stats"]["rounds"] = 1
        benches.append(gpu)
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"benchmarks": benches}))
    (c,) = write_report(path, tmp_path / "o")["crossovers"]
    assert c["few_rounds_n"] == [1_000, 10_000]
    md = (tmp_path / "o" / "report.md").read_text()
    assert ("GPU faster at every measured N († from timings of fewer than 3 rounds, spread "
            "unknown, at N = 1,000, 10,000)") in md
