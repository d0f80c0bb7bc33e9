"""The estimators-vs-scikit-learn benchmark runs end to end (``--quick``) and writes its report."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "estimators_vs_sklearn.py"


def test_quick_run_reports_both_datasets_and_implementations(tmp_path):
    pytest.importorskip("sklearn", reason="the benchmark compares against scikit-learn")
    out = tmp_path / "x.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    # A report, not a gate: 0 whether or not the targets hold.
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "| digits |" in done.stdout and "| diabetes |" in done.stdout
    report = json.loads(out.read_text())
    assert set(report["versions"]) == {"nnbackend", "sklearn", "numpy", "python"}
    assert report["settings"]["repeats"] == 1 and isinstance(report["targets_hold"], bool)
    assert set(report["results"]) == {"digits", "diabetes"}
    for name, res in report["results"].items():
        assert set(res["runs"]) == set(res["summary"]) == {"nnbackend", "sklearn"}, name
        for impl, runs in res["runs"].items():
            assert len(runs) == 1, (name, impl)
            for run in runs:
                assert math.isfinite(run["score"]), (name, impl)
                assert 1 <= run["n_iter"] <= 5, (name, impl)  # --quick: max_iter=5
                assert run["fit_seconds"] > 0 and run["seconds_per_epoch"] > 0, (name, impl)
        assert math.isfinite(res["time_ratio"]) and res["time_ratio"] > 0
        assert set(res["targets"]) >= {"score_ok", "time_ok"}


def test_cli_defaults_benchmark_scores_both_on_every_dataset(tmp_path):
    pytest.importorskip("sklearn", reason="the benchmark compares against scikit-learn")
    script = ROOT / "benchmarks" / "cli_defaults_vs_sklearn.py"
    out = tmp_path / "cli.json"
    done = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"wine", "diabetes"}
    wine, diabetes = report["results"]["wine"], report["results"]["diabetes"]
    assert wine["metric"] == "accuracy" and diabetes["metric"] == "r2"
    # Real predictions scored: accuracy is a fraction, and a default fit on
    # wine is far better than chance (1/3).
    assert 0.6 < wine["mean"]["nnbackend"] <= 1.0 and 0.6 < wine["mean"]["sklearn"] <= 1.0
    assert math.isfinite(diabetes["mean"]["nnbackend"]) and diabetes["mean"]["nnbackend"] > 0
    assert isinstance(report["all_at_least_as_good"], bool)
