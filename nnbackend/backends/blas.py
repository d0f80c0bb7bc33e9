"""NumPy's BLAS thread count, set per fit through threadpoolctl where it is installed.

A small matrix product gains nothing from a second BLAS thread, and on a
busy machine OpenBLAS's threads spin against other processes: a
128x256x256 float32 product took 4.8 ms with two threads and 0.26 ms with
one on a shared 2-core VM. :func:`limit` holds the count for the length of
a fit; the count itself comes from the profile (see
``nnbackend.autoselect.blas_threads_for``). Without threadpoolctl (it comes
with scikit-learn) nothing is changed, and :func:`available` says so.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time

__all__ = ["available", "current_threads", "free_cores", "limit"]


@functools.lru_cache(maxsize=1)
def _controller():
    """threadpoolctl's controller (its scan of the loaded libraries, made once), or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    try:
        return ThreadpoolController()
    except Exception:  # a library it cannot inspect: leave the threads alone
        return None


def available() -> bool:
    """Whether the BLAS thread count can be set here (threadpoolctl is installed)."""
    return _controller() is not None


def current_threads() -> int | None:
    """The thread count of NumPy's BLAS now (the largest, if several), or None if unknown."""
    controller = _controller()
    if controller is None:
        return None
    try:
        counts = [lib.num_threads for lib in controller.select(user_api="blas").lib_controllers]
    except Exception:
        return None
    return max(counts) if counts else None


def free_cores(load=None, cores=None, running=None) -> int:
    """Cores not busy with other work, at least 1: the cores less the one-minute
    load average, plus the one this process runs on (``os.getloadavg``), and
    no more than the cores less the other tasks runnable right now (Linux's
    ``/proc/loadavg``: the average lags a load that has just started). All
    cores where neither can be read."""
    if load is None and cores is None and running is None:
        # Asked at every fit: what the machine said less than half a second
        # ago still holds (the reads cost 70 us, a small fit's whole step).
        now = time.monotonic()
        if now - _LAST[0] > 0.5:
            _LAST[:] = [now, _free_cores(None, None, None)]
        return _LAST[1]
    return _free_cores(load, cores, running)


_LAST = [float("-inf"), 1]  # free_cores' last answer: (time.monotonic(), cores)


def _free_cores(load, cores, running) -> int:
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):
            load = 0.0
    if running is None:
        running = _running_now()
    free = min(cores - load + 1, cores - max(0, running - 1))
    return max(1, min(cores, int(free)))


def _running_now() -> int:
    """Tasks runnable this instant, this one included (1 where it cannot be read)."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 1


def limit(threads: int | None):
    """A context that runs NumPy's BLAS with ``threads`` threads (None: unchanged)."""
    controller = _controller()
    if threads is None or controller is None:
        return contextlib.nullcontext()
    try:
        return controller.limit(limits=int(threads), user_api="blas")
    except Exception:
        return contextlib.nullcontext()
