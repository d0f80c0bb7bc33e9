"""Numbers as the report writes them: three significant digits, rates, sample counts,
speedups, durations; and its Markdown tables."""

from __future__ import annotations

import math

__all__ = ["sig3", "fmt_rate", "fmt_n", "fmt_speedup", "fmt_ms", "fmt_seconds", "md_table"]


def sig3(value):
    """``value`` to three significant digits, without an exponent for ordinary sizes."""
    if value is None or not math.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    value = float(f"{value:.3g}")
    mag = math.floor(math.log10(abs(value)))
    if mag >= 7 or mag < -4:
        return f"{value:.3g}"
    decimals = max(0, 2 - mag)
    return f"{value:.{decimals}f}"


def fmt_rate(value):
    """Samples per second with a k/M/G suffix, three significant digits."""
    if value is None or not math.isfinite(value):
        return "—"
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= scale:
            return sig3(value / scale) + suffix
    return sig3(value)


def fmt_n(n):
    """A sample count: exact when measured (an int), rounded to 3 digits when interpolated."""
    if n is None:
        return "—"
    if isinstance(n, int):
        return f"{n:,}"
    return f"{int(float(f'{n:.3g}')):,}"


def fmt_speedup(value):
    return "—" if value is None else f"{sig3(value)}×"


def fmt_ms(seconds):
    """Seconds as milliseconds, three significant digits (no unit)."""
    return "—" if seconds is None else sig3(seconds * 1e3)


def fmt_seconds(seconds):
    """A duration with its unit: ``12.3 ms``, ``4.50 s``, ``85.0 µs``."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds >= 1:
        return f"{sig3(seconds)} s"
    if seconds >= 1e-3:
        return f"{sig3(seconds * 1e3)} ms"
    return f"{sig3(seconds * 1e6)} µs"


def md_table(header_cells, body, text_columns=1, text_last=False):
    """A Markdown table; the first text_columns columns (and the last, where
    ``text_last``: a notes column) are left-aligned, the rest right."""
    last = len(header_cells) - 1
    lines = ["| " + " | ".join(header_cells) + " |",
             "|" + "|".join("---" if i < text_columns or (text_last and i == last) else "---:"
                            for i in range(len(header_cells))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)
