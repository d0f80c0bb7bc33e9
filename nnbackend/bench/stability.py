"""How steady a timing is, and what the machine was doing while it ran.

* :func:`spread`: a timing's rounds as median, quartiles (pytest-benchmark's
  method, so the suite and its JSON agree), min and max.
* :func:`too_wide`: the rule that calls a timing noisy by its own rounds (its
  IQR above :data:`NOISY_IQR` times its median). The suite re-runs such a case
  and the report flags it; both use this one rule.
* :func:`rerun_until_stable` and :class:`RerunBudget`: ``nnbackend bench``
  times a fresh set of rounds while a case's spread is too wide, within an
  extra time per case and for the whole run, and records every attempt.
* :func:`machine_load`: the load average and the thread pools (BLAS, OpenMP,
  torch's), for the report's header.

Nothing here imports an array library: the suite hands in its own timings.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

__all__ = ["NOISY_IQR", "MIN_SPREAD_ROUNDS", "RERUN_SECONDS", "RERUN_TOTAL", "spread",
           "quartiles", "too_wide", "RerunBudget", "session_budget", "rerun_until_stable", "load_average",
           "thread_pools", "machine_load"]

#: A timing is noisy when its interquartile range exceeds this fraction of its
#: median: the middle half of its rounds spans more than ±25 % around it.
NOISY_IQR = 0.5
#: Fewer rounds than this give no spread worth the name (no quartiles).
MIN_SPREAD_ROUNDS = 3
#: Default extra seconds of re-runs per case and for the whole run.
RERUN_SECONDS = 4.0
RERUN_TOTAL = 60.0


def quartiles(data):
    """``(q1, q3)`` of sorted ``data`` as pytest-benchmark computes them
    (Wikipedia's methods 2 and 3), so that a re-judged attempt and the JSON agree."""
    n = len(data)
    if n == 1:
        return data[0], data[0]
    if n % 2:
        k, r = n // 4, n % 4
        if r == 1:
            return (0.25 * data[k - 1] + 0.75 * data[k],
                    0.75 * data[3 * k] + 0.25 * data[3 * k + 1])
        return (0.75 * data[k] + 0.25 * data[k + 1],
                0.25 * data[3 * k + 1] + 0.75 * data[3 * k + 2])
    return statistics.median(data[: n // 2]), statistics.median(data[n // 2:])


def spread(times):
    """``{"rounds", "median", "q1", "q3", "iqr", "min", "max"}`` of a list of seconds."""
    data = sorted(float(t) for t in times)
    if not data:
        raise ValueError("spread of no rounds")
    q1, q3 = quartiles(data)
    return {"rounds": len(data), "median": statistics.median(data), "q1": q1, "q3": q3,
            "iqr": q3 - q1, "min": data[0], "max": data[-1]}


def too_wide(stats, limit=NOISY_IQR):
    """Why a timing is noisy by its own rounds (one line), or None.

    ``stats`` holds ``median``, ``iqr`` (or ``q1`` and ``q3``) and
    ``rounds``. Under :data:`MIN_SPREAD_ROUNDS` rounds there are no quartiles
    to judge by: None (the report says the spread is unknown instead).
    """
    median, rounds = stats.get("median"), stats.get("rounds") or 0
    iqr = stats.get("iqr")
    if iqr is None and stats.get("q1") is not None and stats.get("q3") is not None:
        iqr = stats["q3"] - stats["q1"]
    if not median or median <= 0 or iqr is None or rounds < MIN_SPREAD_ROUNDS:
        return None
    if iqr > limit * median:
        return (f"IQR {iqr / median:.0%} of the median over {rounds} rounds "
                f"(above {limit:.0%})")
    return None


class RerunBudget:
    """The extra time re-runs may take: ``per_case`` seconds for one case and
    ``total`` for the whole run (0 turns re-runs off)."""

    def __init__(self, per_case=RERUN_SECONDS, total=RERUN_TOTAL):
        self.per_case = max(0.0, float(per_case))
        self.total = max(0.0, float(total))
        self.spent = 0.0

    @classmethod
    def from_env(cls, env=None):
        """From ``NNBACKEND_BENCH_RERUN_SECONDS`` and ``NNBACKEND_BENCH_RERUN_TOTAL``."""
        env = os.environ if env is None else env
        return cls(float(env.get("NNBACKEND_BENCH_RERUN_SECONDS", RERUN_SECONDS)),
                   float(env.get("NNBACKEND_BENCH_RERUN_TOTAL", RERUN_TOTAL)))

    def left(self):
        return max(0.0, self.total - self.spent)

    def describe(self):
        return f"{self.per_case:g} s per case, {self.total:g} s for the run"


_SESSION = []


def session_budget():
    """The one :class:`RerunBudget` of this process (a suite run), made from the
    environment at first use."""
    if not _SESSION:
        _SESSION.append(RerunBudget.from_env())
    return _SESSION[0]


def rerun_until_stable(first, attempt, budget, rounds, clock=time.perf_counter):
    """Re-time a case while its spread is too wide, within ``budget``.

    Each re-run is a fresh set of ``rounds`` rounds (fewer where the time
    left, at the last set's mean round, allows no more; none under
    :data:`MIN_SPREAD_ROUNDS`), timed one round at a time: a set stops once
    the time left is spent, so the budget is overrun by one round at most,
    and a set cut under :data:`MIN_SPREAD_ROUNDS` rounds is not kept.

    Parameters
    ----------
    first : list of float
        The first attempt's seconds per round.
    attempt : callable
        ``attempt(rounds) -> list of float``: that many fresh rounds (called
        with 1, round by round).
    budget : RerunBudget
        Charged with each re-run's wall time.
    rounds : int
        Rounds per re-run at most.

    Returns
    -------
    (list of float, dict)
        The rounds kept (the last complete attempt's) and the record:
        ``reruns`` (attempts kept after the first), ``rerun_seconds`` (all
        the time re-runs took), ``stable`` (the kept attempt is not too
        wide), ``stopped`` (why it stopped, one line) and ``attempts`` (each
        kept attempt's :func:`spread`, first to last).
    """
    times = list(first)
    attempts = [spread(times)]
    spent = 0.0
    stopped = "its spread was within bounds" if not too_wide(attempts[0]) else None
    while stopped is None:
        case_left, run_left = budget.per_case - spent, budget.left()
        left = min(case_left, run_left)
        which = (f"the {budget.per_case:g} s a case may spend on re-runs" if case_left <= run_left
                 else f"the run's {budget.total:g} s for re-runs")
        per_round = sum(times) / len(times)
        n = min(rounds, int(left / per_round)) if per_round > 0 else rounds
        if budget.per_case <= 0 or budget.total <= 0:
            stopped = "re-runs were off"
            break
        if n < MIN_SPREAD_ROUNDS:
            stopped = f"{which} left too little for {MIN_SPREAD_ROUNDS} more rounds"
            break
        fresh, start = [], clock()
        while len(fresh) < n and clock() - start < left:
            fresh += attempt(1)
        took = clock() - start
        spent += took
        budget.spent += took
        if len(fresh) < MIN_SPREAD_ROUNDS:
            stopped = (f"{which} ran out during a re-run ({len(fresh)} "
                       f"round{'' if len(fresh) == 1 else 's'}, not kept)")
            break
        times = fresh
        attempts.append(spread(times))
        if not too_wide(attempts[-1]):
            stopped = f"stable after {len(attempts) - 1} re-run(s)"
    return times, {"reruns": len(attempts) - 1, "rerun_seconds": spent,
                   "stable": not too_wide(attempts[-1]), "stopped": stopped,
                   "attempts": attempts}


def load_average():
    """``[1 min, 5 min, 15 min]`` load average, or None where the system has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def thread_pools():
    """The thread pools of the libraries loaded in this process, as dicts
    (``api``, ``library``, ``version``, ``threads``, ``file``): threadpoolctl's BLAS
    and OpenMP pools, and torch's intra-op threads where torch is loaded.
    None where threadpoolctl is not installed (the count is then unknown)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    try:
        pools = [{"api": d.get("user_api"), "library": d.get("internal_api"),
                  "version": d.get("version"), "threads": d.get("num_threads"),
                  "file": os.path.basename(d.get("filepath") or "") or None}
                 for d in threadpool_info()]
    except Exception:  # a library it cannot query: the header says unknown
        return None
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            pools.append({"api": "torch", "library": "torch intra-op", "version": None,
                          "threads": int(torch.get_num_threads())})
        except Exception:
            pass
    return pools


def machine_load():
    """What the report's header says about the machine's load, as a dict."""
    return {"load_average": load_average(), "cpu_count": os.cpu_count(),
            "thread_pools": thread_pools(), "time": time.time()}
