"""Argument checks shared by every layer: one refusal per mistake, naming it.

Each check returns the value in the type the caller uses (``int``,
``float``, ``bool``) or raises ``TypeError``/``ValueError`` with a message
that names the argument and what it should be.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_int", "check_number", "check_flag", "check_positive", "check_fraction"]


def check_int(name, value, minimum=1) -> int:
    """``value`` as an ``int`` >= ``minimum``; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_number(name, value, low, high=math.inf, low_open=False) -> float:
    """``value`` as a finite ``float`` in ``[low, high)`` (``(low, high)`` if ``low_open``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value < high
    if not ok:
        bound = f"> {low}" if low_open else f">= {low}"
        upper = f" and < {high}" if high != math.inf else ""
        raise ValueError(f"{name} must be a finite number {bound}{upper}, got {value!r}")
    return float(value)


def check_flag(name, value) -> bool:
    """``value`` as a ``bool``: True, False, 1 or 0 only.

    A string such as ``"no"`` is truthy: taking it would do the opposite of
    what was meant.
    """
    if not isinstance(value, (bool, int)) or isinstance(value, float) or value not in (0, 1):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_positive(name, value) -> float:
    """``value`` as a Python float, refusing anything but a finite number > 0
    (optimizer hyperparameters).

    A Python float: a NumPy scalar (np.float32(0.1), np.float64(0.1)) would
    otherwise carry its own precision into every step, casting float32
    parameters up to float64 or computing Adam's step size in float32.
    """
    try:
        ok = math.isfinite(value) and value > 0
    except TypeError:
        ok = False
    if not ok or isinstance(value, bool):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_fraction(name, value) -> float:
    """``value`` as a Python float (see :func:`check_positive`), refusing
    anything but a number in [0, 1) (decay rates)."""
    try:
        ok = 0 <= value < 1
    except TypeError:
        ok = False
    if not ok or isinstance(value, bool):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)
