"""The speed targets as ratios, each pair timed interleaved: the cases live in
``nnbackend/bench/cases/test_ratios.py`` (shipped with the package, which
``nnbackend bench --ratios`` runs); collected here for ``pytest benchmarks``."""

from nnbackend.bench.cases.test_ratios import test_ratio  # noqa: F401
