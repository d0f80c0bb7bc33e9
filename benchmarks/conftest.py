"""The suite's configuration, shared with ``nnbackend bench``: it lives in
the package (``nnbackend/bench/cases/conftest.py``, which documents the
environment variables) so that an installed copy can run the benchmark too.
"""

from nnbackend.bench.cases.conftest import (  # noqa: F401  (pytest finds them here)
    _release_gpu_pools,
    _time_budget,
    pytest_benchmark_update_json,
    pytest_collection_finish,
    pytest_configure,
    pytest_generate_tests,
    pytest_runtest_logreport,
    pytest_terminal_summary,
)
