"""``backend="auto"`` on the command line: ``nnbackend bench --calibrate`` measures
the profile, ``nnbackend info`` shows it and what auto would pick for a few
typical fits (``nnbackend info --backend auto`` shows that alone; add
``--json`` for it as data). :func:`with_auto` hooks both into the command table.
"""

from __future__ import annotations

import json
import math
import sys

from .autoselect import (
    active_profile,
    explain_backend,
    load_profile,
    profile_path,
    read_profile,
)
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
            if args.scheduler is not None:  # as train refuses it
                raise ValueError(f"--scheduler names a Dask scheduler; it needs --backend dask, "
                                 f"not {args.backend}")
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
            "default": profile.is_default, "mismatch": profile.mismatch,
            "groups": profile.groups,
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
    if threshold <= 0:  # the loader takes 0: every product is at or above it (no log2 of it)
        return f"BLAS threads: {threads} for every product (at most the idle cores)"
    return (f"BLAS threads: 1 below 2^{math.log2(threshold):.3g} multiply-adds in a product, "
            f"else {threads} (at most the idle cores)")


def _report_text(report) -> str:
    if report["profile"] == "default":
        head = (f"auto     profile: the shipped default (no measured profile at {report['path']};"
                " `nnbackend bench --calibrate` measures one)")
    elif report.get("default"):  # a file with no measured group prices as the default does
        head = (f"auto     profile: the shipped default ({report['profile']} measures no "
                "candidate; `nnbackend bench --calibrate` measures them)")
    else:
        head = (f"auto     profile: {report['profile']} (measured {report['created']} on "
                f"{report['machine']})")
    lines = [head]
    mismatch = report.get("mismatch") or {}
    if mismatch:  # still used (see load_profile): say so before its figures are read
        lines.append(f"           WARNING: this profile does not describe this machine "
                     f"({'; '.join(mismatch.values())}): re-run `nnbackend bench --calibrate`")
    lines.append(f"           {_blas_text(report['blas'])}")
    measured = {tuple(m) for m in report["measured"]}
    here = set(report["installed"])
    starts = [f"{k} {_seconds(s)}" for k, s in report["first_use"].items() if k in here and s]
    if starts:
        lines.append("           a library's first fit in a process takes more: "
                     + ", ".join(starts))
    for key, modes in report["candidates"].items():
        if key not in here:  # not installed, or no GPU: its default terms are beside the point
            continue
        for mode in MODES:
            t = modes.get(mode)
            if t is None:
                continue
            error = ("error unknown" if t.get("rel_error") is None
                     else f"{t['rel_error']:.0%} error")
            # A group from an earlier run than the header's (a merged calibration) says when.
            when = (report.get("groups") or {}).get(key, {}).get(mode, {}).get("created")
            when = f" {when}" if when and when != report["created"] else ""
            source = (f"measured{when}, {t.get('points')} points, {error}"
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


def _old_profile(path, say=True):
    """The profile file a calibration merges over: None where there is none, or
    where it is corrupt (nothing in it to keep: replaced, and ``say`` says so).
    A file that exists but cannot be read (its permissions, an I/O error, a
    path through a file) is refused, RuntimeError: replacing it would lose
    the groups it measures."""
    try:
        return read_profile(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RuntimeError(f"cannot read the profile {path} to merge the calibration over it "
                           f"({type(exc).__name__}: {exc}); it was left as it was: make it "
                           "readable, or move it away to start a new one") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt file: nothing in it to keep
        if say:
            print(f"nnbackend calibrate: {path} is not a usable profile "
                  f"({type(exc).__name__}: {exc}): replaced", file=sys.stderr)
        return None


# The bench flags --calibrate reads; every other one it would ignore, so it refuses them.
_CALIBRATE_FLAGS = ("calibrate", "backends", "modes", "quick", "time_budget")


def _ignored_bench_flags(args) -> list:
    """The bench-only flags ``args`` sets (away from their defaults), as ``--flag``."""
    import argparse

    from .bench.suite import add_bench_arguments

    # The bench parser's own defaults: a flag added there is covered here too.
    parser = argparse.ArgumentParser(add_help=False)
    add_bench_arguments(parser)
    defaults = vars(parser.parse_args([]))
    return ["--" + dest.replace("_", "-") for dest, default in defaults.items()
            if dest not in _CALIBRATE_FLAGS and getattr(args, dest, default) != default]


def calibrate_command(args) -> int:
    """``nnbackend bench --calibrate``: measure, merge over the profile, show it.

    Parameters
    ----------
    args : argparse.Namespace
        The bench command's flags; only ``--backends``, ``--modes``, ``--quick``
        and ``--time-budget`` apply (any other is refused: ValueError).

    Returns
    -------
    int
        0; a run that measured no group raises RuntimeError (nothing written).
    """
    from .calibrate import BUDGET_S, calibrate, merge_profiles

    ignored = _ignored_bench_flags(args)
    if ignored:
        raise ValueError(f"--calibrate takes only --backends, --modes, --quick and "
                         f"--time-budget; it would ignore {', '.join(ignored)}")
    keys = [k.strip() for k in args.backends.split(",") if k.strip()] if args.backends else None
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"--modes: unknown mode(s) {bad}; choose from {list(MODES)}")
    budget = BUDGET_S
    if args.time_budget is not None:  # "" too: refused below, not read as left out
        try:
            budget = float(args.time_budget)
        except ValueError:
            budget = -1.0
        if not budget > 0 or budget == float("inf"):
            raise ValueError(f"--time-budget: expected a number of seconds > 0; "
                             f"got {args.time_budget!r}")
    path = profile_path()
    _old_profile(path, say=False)  # a file that cannot be read is refused before the fits
    print(f"nnbackend: calibrating backend='auto' (at most {budget:g} s of fits)", file=sys.stderr)
    profile = calibrate(budget_s=budget, keys=keys, modes=modes, quick=args.quick)
    if not profile.measured:
        # Writing it would replace measured terms with nothing, and pass for a profile.
        raise RuntimeError(f"the calibration measured no candidate and mode (each needs two "
                           f"points: a larger --time-budget?); {path} was left as it was")
    profile, notes = merge_profiles(profile, _old_profile(path))
    for note in notes:
        print(f"nnbackend calibrate: {note}", file=sys.stderr)
    path = profile.save(path)
    print(f"profile written to {path}")
    load_profile(path)
    print(_report_text(auto_report()))
    return 0
