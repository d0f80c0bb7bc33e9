"""Each benchmark case's outcome and wall time, kept as the run goes.

pytest-benchmark writes its JSON once, when the session ends, and only for
the cases that passed. The suite's ``conftest.py`` keeps one entry per case
besides (:func:`entry_from_reports`):

``name``      the case's test name, ``test_epoch[small-nnbackend-cupy-sgd-1000]``
``outcome``   ``passed``, ``skipped`` or ``failed`` (``not run``: see below)
``reason``    why it skipped or failed (one line), else None
``seconds``   its wall time: set-up (data, model, compilation), warm-up, the
              timed rounds and the clean-up, as pytest measured them
``phases``    the same split as ``{"setup": s, "call": s, "teardown": s}``

They go into the results JSON as ``cases`` (the report lists the cases not
measured, a GPU check's summary names them), and, where
``NNBACKEND_BENCH_CASE_LOG`` names a file, each is appended to it as one
JSON line as soon as the case ends, with the case's benchmark record: a
run killed before pytest writes its JSON (a time limit, a crash) leaves
that file, and :func:`results_from_log` makes a results JSON of it, in
which the cases collected but never ended are ``not run``. The sizes the
run's settings leave out, which never become cases, are one more line at
collection, ``{"dropped": [...]}``, and the results JSON's ``dropped``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os

__all__ = ["CaseLog", "entry_from_reports", "read_log", "results_from_log", "not_measured",
           "left_out", "skip_reason"]


def skip_reason(report):
    """The reason of a skipped pytest ``report``, one line."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])
    else:
        text = str(longrepr)
    return _one_line(text.removeprefix("Skipped: "))


def failure_reason(report):
    """What failed in a pytest ``report``, one line (the exception's message)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or getattr(report, "longreprtext", "") or "failed"
    return f"{report.when}: {_one_line(text)}"


def _one_line(text, limit=300):
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[:limit - 1] + "…"


def entry_from_reports(name, reports):
    """The case entry of one test from its pytest reports (set-up, call, clean-up)."""
    entry = {"name": name, "outcome": "passed", "reason": None, "seconds": 0.0, "phases": {}}
    for report in reports:
        entry["phases"][report.when] = round(report.duration, 4)
        entry["seconds"] += report.duration
        if report.failed and entry["outcome"] != "failed":
            entry["outcome"], entry["reason"] = "failed", failure_reason(report)
        elif report.skipped and entry["outcome"] == "passed":
            entry["outcome"], entry["reason"] = "skipped", skip_reason(report)
    entry["seconds"] = round(entry["seconds"], 4)
    return entry


class CaseLog:
    """The entries of a run, appended to ``path`` (when given) one JSON line each."""

    def __init__(self, path=None):
        self.path = path or None
        self.entries = []

    def write(self, record):
        if not self.path:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()

    def collected(self, names):
        """Record the names of the cases the run will try, in order."""
        self.write({"collected": list(names)})

    def add(self, entry, benchmark=None):
        """Record one case's ``entry`` (and its benchmark record, for the log file)."""
        self.entries.append(entry)
        self.write(dict(entry, benchmark=benchmark) if benchmark else entry)


def read_log(path):
    """``(collected, entries)`` of the last run in a case log; a torn last line is ignored."""
    collected, entries = [], []
    for record in _last_run(path):
        if "collected" in record:
            collected = record["collected"]
        elif "name" in record:
            entries.append(record)
    return collected, entries


def _records(path):
    """The JSON objects of a case log, one a line; a torn or foreign line is skipped."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def _last_run(path):
    """The records of the last run in a case log, from its last ``collected`` line on:
    a log named again by a later run (the variable left set) holds both runs, and
    an earlier run's cases must not pass for the later one's."""
    records = list(_records(path))
    starts = [i for i, record in enumerate(records) if "collected" in record]
    return records[starts[-1]:] if starts else records


def results_from_log(path, note="the run was cut off before it wrote its results"):
    """A results JSON (as ``nnbackend bench`` writes it, marked incomplete with
    ``note``) from a case log: the benchmarks that ended, every case's entry,
    the cases collected but never ended as ``not run``, and the sizes the
    settings left out (``dropped``)."""
    collected, entries = read_log(path)
    done = {e["name"] for e in entries}
    cases = [{k: v for k, v in e.items() if k != "benchmark"} for e in entries]
    cases += [{"name": name, "outcome": "not run", "seconds": None,
               "reason": "the run ended (cut off or crashed) before this case ended"}
              for name in collected if name not in done]
    # The sizes the settings left out (the suite's conftest writes them at collection).
    dropped = [d for r in _last_run(path) if isinstance(r.get("dropped"), list)
               for d in r["dropped"]]
    return {
        "benchmarks": [e["benchmark"] for e in entries if e.get("benchmark")],
        "cases": cases,
        "dropped": dropped,
        "datetime": _dt.datetime.fromtimestamp(os.path.getmtime(path),
                                               _dt.timezone.utc).isoformat(),
        "nnbackend": {"failed": note, "command": "nnbackend bench (rebuilt from its case log)"},
    }


def not_measured(data):
    """The cases of a results JSON that were not measured: ``(name, outcome, reason)``."""
    cases = data.get("cases") if isinstance(data, dict) else None
    return [(c.get("name", "?"), c.get("outcome", "?"), c.get("reason") or "")
            for c in cases or [] if isinstance(c, dict) and c.get("outcome") != "passed"]


def left_out(data):
    """The sizes a results JSON's settings left out (its ``dropped``), as
    ``(model, mode, n_samples, implementations, reason)``; ``[]`` in a
    record made before they were kept, or with none."""
    dropped = data.get("dropped") if isinstance(data, dict) else None
    out = []
    for d in dropped if isinstance(dropped, list) else []:
        if not isinstance(d, dict):
            continue
        impls = d.get("implementations")
        out.append((str(d.get("model") or "?"), str(d.get("mode") or "?"), d.get("n_samples"),
                    [str(i) for i in impls] if isinstance(impls, list) else [],
                    str(d.get("reason") or "")))
    return out
