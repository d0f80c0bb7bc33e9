"""backend="auto" against every installed backend on a grid (``auto_choice.py``).

Under ``--benchmark-disable`` (CI) the grid is the small one: one network,
one N per mode, one epoch, one fit each; it checks that the grid runs and
reports, not the speed targets. ``NNBACKEND_AUTO_GRID=full`` runs the full
grid (about half an hour on a busy 2-core CPU), and
``NNBACKEND_AUTO_OUT=DIR`` writes its ``grid.json``; the speed targets
(auto within 1.2x of the fastest in 90 % of the cells, never beyond 2x) are
then recorded in the benchmark's ``extra_info`` and in the report, and
asserted only with ``NNBACKEND_AUTO_ASSERT=1``.
"""

import json
import os
from pathlib import Path

import auto_choice


def _size():
    return os.environ.get("NNBACKEND_AUTO_GRID", "small")


def test_auto_grid(benchmark):
    size = _size()
    result = benchmark.pedantic(auto_choice.run_grid, args=(size,), rounds=1, iterations=1)
    summary = result["summary"]
    benchmark.extra_info.update(summary)
    modes, _, _, nets = auto_choice.SIZES[size]
    assert summary["cells"] == len(nets) * sum(len(ns) for ns in modes.values())
    for cell in result["cells"]:
        assert set(cell["medians"]) == set(summary["contenders"])
        # auto ran on one of the contenders, and its ratio is its time over the fastest's
        assert set(cell["auto_picked"]) <= set(summary["contenders"]) - {"auto"}
        fastest = cell["medians"][cell["fastest"]]
        assert cell["auto_ratio"] == cell["medians"]["auto"] / fastest
    out = os.environ.get("NNBACKEND_AUTO_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "grid-pytest.json").write_text(json.dumps(result, indent=1))
    if os.environ.get("NNBACKEND_AUTO_ASSERT") == "1":
        assert summary["target_met"], summary


def test_blas_threads_beside_a_competing_load(benchmark):
    small = _size() == "small"
    result = benchmark.pedantic(
        auto_choice.contention, kwargs={"n": 512, "epochs": 1, "repeats": 1} if small else {},
        rounds=1, iterations=1)
    if "skipped" in result:
        return
    benchmark.extra_info.update({load: result[load]["library_over_nnbackend"]
                                 for load in ("quiet", "loaded")})
    for load in ("quiet", "loaded"):
        assert result[load]["medians"]["library"] > 0 and result[load]["medians"]["nnbackend"] > 0
