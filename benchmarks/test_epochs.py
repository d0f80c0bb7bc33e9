"""One training epoch per case, and time to a target loss: the cases live in
``nnbackend/bench/cases/test_epochs.py`` (shipped with the package, which
``nnbackend bench`` runs); collected here for ``pytest benchmarks``."""

from nnbackend.bench.cases.test_epochs import test_epoch, test_time_to_target  # noqa: F401
