"""``backend="auto"`` on the command line: ``nnbackend bench --calibrate`` measures
the profile, ``nnbackend info`` shows it and what auto would pick for a few
typical fits (``nnbackend info --backend auto`` shows that alone; add
``--json`` for it as data). :func:`with_auto` hooks both into the command table.
"""

from __future__ import annotations

import json
import math
import sys

from .autoselect import active_profile, explain_backend, load_profile, profile_path
from .backends import auto_candidates, is_auto
from .data import MODES

__all__ = ["TYPICAL_FITS", "auto_report", "calibrate_command", "with_auto"]

# What `nnbackend info` asks auto about: (layer sizes, activations and loss, N,
# mode, batch size, epochs).
_BINARY = ("sigmoid", "sigmoid", "mse")
_SOFTMAX = ("relu", "softmax", "cross_entropy")
TYPICAL_FITS = (
    ([16, 32, 1], _BINARY, 2_000, "sgd", 1, 20),
    ([32, 64, 1], _BINARY, 100_000, "minibatch", 64, 10),
    ([32, 64, 1], _BINARY, 200_000, "batch", None, 100),
    ([64, 256, 256, 10], _SOFTMAX, 20_000, "minibatch", 128, 10),
    ([784, 256, 256, 10], _SOFTMAX, 60_000, "minibatch", 64, 5),
)


def with_auto(commands: dict) -> dict:
    """``commands`` (the CLI's name -> function table) with ``bench --calibrate``
    and ``info``'s auto section hooked in (in place; returned too)."""
    bench, info = commands["bench"], commands["info"]

    def bench_or_calibrate(args):
        return calibrate_command(args) if getattr(args, "calibrate", False) else bench(args)

    def info_and_auto(args):
        if args.backend is not None and is_auto(args.backend):
            if args.device is not None:
                raise ValueError(f"--device {args.device} is a device of a named backend; "
                                 "--backend auto picks the backend and device itself")
            report = auto_report()
            print(json.dumps(report) if args.json else _report_text(report))
            return 0
        status = info(args)
        if status == 0 and not args.json and args.backend is None:
            print(_report_text(auto_report()))
        return status

    commands["bench"], commands["info"] = bench_or_calibrate, info_and_auto
    return commands


def _typical(sizes, kinds, n, mode, batch, epochs, profile):
    hidden, output, loss = kinds
    choice = explain_backend(sizes, n_samples=n, mode=mode, batch_size=batch or 32,
                             epochs=epochs, hidden_activation=hidden, output_activation=output,
                             loss=loss, profile=profile)
    label = (f"{sizes} {mode}{f' {batch}' if mode == 'minibatch' else ''}, {n:,} rows, "
             f"{epochs} epochs")
    return {"fit": label, **choice}


def auto_report() -> dict:
    """The profile in use and auto's pick for each of :data:`TYPICAL_FITS`, as data."""
    profile = active_profile()
    candidates = {key: {mode: terms.to_dict() for mode, terms in modes.items()}
                  for key, modes in profile.candidates.items()}
    return {"profile": profile.source, "path": profile_path(), "machine": profile.machine,
            "created": profile.created, "measured": [list(m) for m in profile.measured],
            "blas": profile.blas, "first_use": profile.first_use, "candidates": candidates,
            "installed": [key for key, _ in auto_candidates()],
            "picks": [_typical(*fit, profile) for fit in TYPICAL_FITS]}


def _seconds(s):
    if s is None:
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if s >= scale or unit == "ns":
            return f"{s / scale:.3g} {unit}"
    return f"{s:g} s"  # pragma: no cover


def _blas_text(blas):
    if not blas or "threshold_madds" not in blas:
        return "BLAS threads: left as they are"
    threshold, threads = blas["threshold_madds"], blas.get("threads") or "the library's count"
    if threshold is None:
        return "BLAS threads: 1 for every fit (more threads never paid here)"
    return (f"BLAS threads: 1 below 2^{math.log2(threshold):.3g} multiply-adds in a product, "
            f"else {threads} (at most the idle cores)")


def _report_text(report) -> str:
    if report["profile"] == "default":
        head = (f"auto     profile: the shipped default (no measured profile at {report['path']};"
                " `nnbackend bench --calibrate` measures one)")
    else:
        head = (f"auto     profile: {report['profile']} (measured {report['created']} on "
                f"{report['machine']})")
    lines = [head, f"           {_blas_text(report['blas'])}"]
    measured = {tuple(m) for m in report["measured"]}
    here = set(report["installed"])
    starts = [f"{k} {_seconds(s)}" for k, s in report["first_use"].items() if k in here and s]
    if starts:
        lines.append("           a library's first fit in a process takes more: " + ", ".join(starts))
    for key, modes in report["candidates"].items():
        if key not in here:  # not installed, or no GPU: its default terms are beside the point
            continue
        for mode in MODES:
            t = modes.get(mode)
            if t is None:
                continue
            error = ("error unknown" if t.get("rel_error") is None
                     else f"{t['rel_error']:.0%} error")
            source = (f"measured, {t.get('points')} points, {error}"
                      if (key, mode) in measured else "default")
            lines.append(f"           {key:10s} {mode:9s} {t['executor']:11s} "
                         f"{_seconds(t['launch_s'])}/step, {_seconds(t['madd_s'])}/multiply-add, "
                         f"setup {_seconds(t['setup_s'])}, compile "
                         f"{_seconds(t['compile_s'] + t['compile_layer_s'])}+ ({source})")
    lines.append("           auto would pick:")
    for pick in report["picks"]:
        others = [c for c in pick["candidates"] if c["predicted_s"] is not None
                  and c["candidate"] != pick["chosen"]]
        rest = ", ".join(f"{c['candidate']} {_seconds(c['predicted_s'])}" for c in others)
        chosen = next(c for c in pick["candidates"] if c["candidate"] == pick["chosen"])
        lines.append(f"             {pick['fit']}: {pick['chosen']} ({pick['executor']}, "
                     f"{_seconds(chosen['predicted_s'])})" + (f"; {rest}" if rest else ""))
    return "\n".join(lines)


def calibrate_command(args) -> int:
    """``nnbackend bench --calibrate``: measure, write the profile, show it."""
    from .calibrate import BUDGET_S, calibrate

    keys = [k.strip() for k in args.backends.split(",") if k.strip()] if args.backends else None
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"--modes: unknown mode(s) {bad}; choose from {list(MODES)}")
    budget = BUDGET_S
    if args.time_budget:
        try:
            budget = float(args.time_budget)
        except ValueError:
            budget = -1.0
        if not budget > 0 or budget == float("inf"):
            raise ValueError(f"--time-budget: expected a number of seconds > 0; "
                             f"got {args.time_budget!r}")
    print(f"nnbackend: calibrating backend='auto' (at most {budget:g} s of fits)", file=sys.stderr)
    profile = calibrate(budget_s=budget, keys=keys, modes=modes, quick=args.quick)
    path = profile.save()
    print(f"profile written to {path}")
    load_profile(path)
    print(_report_text(auto_report()))
    return 0
