"""The benchmark cases ``nnbackend bench`` runs under pytest-benchmark.

They ship inside the package, so that ``nnbackend bench`` works from an
installed copy (``pip install 'nnbackend[bench]'``), not only from a source
checkout: ``conftest.py`` (the configuration, read from the environment
that :func:`nnbackend.bench.suite.bench_environment` writes),
``test_epochs.py`` (one epoch per case, and time to a target loss) and
``test_ratios.py`` (the speed targets as interleaved pairs).

A source checkout's ``benchmarks/`` folder imports these same cases (its
``conftest.py``, ``test_epochs.py`` and ``test_ratios.py`` are one import
each), beside the memory and dask benchmarks that live only there: CI runs
``python -m pytest benchmarks --benchmark-disable -q``.

Nothing here is imported by the library itself: pytest collects the files.
"""
