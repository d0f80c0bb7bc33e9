"""Argument checks shared by every layer: one refusal per mistake, naming it.

Each check returns the value in the type the caller uses (``int``,
``float``, ``bool``) or raises ``TypeError``/``ValueError`` with a message
that names the argument and what it should be.
"""

from __future__ import annotations

import math
import numbers
import os

from array_api_compat import array_namespace

__all__ = ["check_int", "check_number", "check_flag", "check_positive", "check_fraction",
           "check_same_shape", "check_dense", "check_divisor", "check_path", "current_umask",
           "replace_target", "namespace_of"]


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


def _is_bool(value) -> bool:
    """Python's bool or NumPy's (``np.bool_``, which is no ``numbers.Integral``)."""
    return isinstance(value, bool) or (type(value).__module__ == "numpy"
                                       and type(value).__name__ in ("bool", "bool_"))


def check_flag(name, value) -> bool:
    """``value`` as a ``bool``: True, False, 1 or 0 only.

    A string such as ``"no"`` is truthy: taking it would do the opposite of
    what was meant.
    """
    if not (isinstance(value, numbers.Integral) or _is_bool(value)) or value not in (0, 1):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def namespace_of(kernel, names, *arrays, floating=False):
    """The array-API namespace of a kernel's operands (None and Python numbers
    passed over), refused by name when they are of several namespaces or not
    arrays, and, with ``floating``, bools (NumPy's matmul would take them as
    numbers, array-api-strict's refuses them)."""
    try:
        xp = array_namespace(*arrays)
    except TypeError:
        kinds = ", ".join(f"{n} is {type(a).__module__}.{type(a).__qualname__}"
                          for n, a in zip(names, arrays) if a is not None)
        raise TypeError(f"{kernel}: the operands must be arrays of one array-API namespace; "
                        f"{kinds or 'got ' + ', '.join(type(a).__name__ for a in arrays)}"
                        ) from None
    for n, a in zip(names, arrays) if floating else ():
        if hasattr(a, "dtype") and xp.isdtype(a.dtype, "bool"):
            raise TypeError(f"{kernel}: {n} has dtype bool: the kernels compute in floating "
                            "point; cast it first")
    return xp


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
    if not ok or _is_bool(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_fraction(name, value, one: bool = False) -> float:
    """``value`` as a Python float (see :func:`check_positive`), refusing
    anything but a number in [0, 1) (decay rates), or [0, 1] with ``one``."""
    try:
        ok = 0 <= value < 1 or (one and value == 1)
    except TypeError:
        ok = False
    if not ok or _is_bool(value):
        raise ValueError(f"{name} must be a number in [0, 1{']' if one else ')'}, got {value!r}")
    return float(value)


# -- array shapes (the kernels') ----------------------------------------------------
# Cheap checks on ``.shape`` alone, so they hold under ``jax.jit`` and ``vmap``
# and cost a few hundred nanoseconds eagerly. A size that is not a Python
# integer is unknown and agrees with anything: Dask's rows before compute
# (nan), a symbolic size under tracing with dynamic shapes. A Python scalar
# has the shape ().


def _known(size) -> bool:
    return isinstance(size, numbers.Integral)


def _shape(a) -> tuple:
    """An array's shape; a nested list's as NumPy would read it; a scalar's ()."""
    if hasattr(a, "shape"):
        return tuple(a.shape)
    if isinstance(a, (list, tuple)):
        return (len(a), *(_shape(a[0]) if a else ()))
    return ()


def _broadcast(shapes):
    """The shape ``shapes`` broadcast to, None where they do not broadcast
    (an unknown size agrees with anything and stays unknown)."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(-rank, 0):
        sizes = [s[i] for s in shapes if len(s) >= -i]
        known = {n for n in sizes if _known(n) and n != 1}
        if len(known) > 1:
            return None
        unknown = [n for n in sizes if not _known(n)]
        out.append(known.pop() if known else unknown[0] if unknown else 1)
    return tuple(out)


def _within(result, first) -> bool:
    """``result`` is ``first``'s shape: each known size of ``first`` known and equal
    in ``result`` (an unknown size against a 1 could grow it: (nan, 1) against (nan,))."""
    return len(result) == len(first) and all(
        not _known(f) or (_known(r) and r == f) for r, f in zip(result, first))


def _agree(shape, other) -> bool:
    if shape == other:  # the common case, before any per-size look
        return True
    return len(shape) == len(other) and all(
        s == t for s, t in zip(shape, other) if _known(s) and _known(t))


def check_same_shape(kernel, names, *arrays) -> None:
    """Refuse arrays that broadcast past the first one's shape, or not at all.

    ``(n, 1)`` against ``(n,)`` broadcasts to ``(n, n)``: an outer difference
    that gives a wrong loss with no error. The others may broadcast into the
    first (the network's output, an activation): a scalar target, a
    ``(1, k)`` row.

    Parameters
    ----------
    kernel : str
        The kernel's name, for the message.
    names : tuple of str
        The arrays' argument names, in order.
    *arrays : arrays or scalars
        None stands for an argument not given, and is passed over.

    Raises
    ------
    ValueError
        Naming the kernel, the arguments and their shapes.
    """
    if (len(arrays) == 2 and arrays[0] is not None and arrays[1] is not None
            and getattr(arrays[0], "shape", None) == getattr(arrays[1], "shape", False)):
        return  # the common case, before the loop
    given = [(name, _shape(a)) for name, a in zip(names, arrays) if a is not None]
    if len(given) < 2:
        return
    result = _broadcast([s for _, s in given])
    if result is not None and _within(result, given[0][1]):
        return
    listed = ", ".join(f"{name} {_shape_text(shape)}" for name, shape in given)
    why = ("do not broadcast together" if result is None else
           f"broadcast to {_shape_text(result)}, not {given[0][0]}'s {_shape_text(given[0][1])}")
    raise ValueError(f"{kernel}: the shapes {listed} {why}; give them the same shape (n, k)")


def check_dense(kernel, x, W, b=None, dz=None) -> None:
    """Refuse a dense layer's operands that do not fit together.

    Parameters
    ----------
    kernel : str
        The kernel's name, for the message.
    x : array, shape (n, fan_in), or (fan_in,) for the forward pass (one
        sample: what ``vmap`` over rows hands each call)
    W : array, shape (fan_in, fan_out)
    b : array, shape (fan_out,) or any that broadcasts into the output, optional
    dz : array, shape (n, fan_out), optional (the backward pass; ``x`` 2-D)

    Raises
    ------
    ValueError
        Naming the kernel, the argument and the shape it should have.
    """
    xs, Ws = _shape(x), _shape(W)
    if (len(xs) == 2 and len(Ws) == 2 and xs[1] == Ws[0]
            and (b is None or getattr(b, "shape", None) == (Ws[1],))
            and (dz is None or getattr(dz, "shape", None) == (xs[0], Ws[1]))):
        return  # every size known and fitting: the common case, in one expression
    if len(Ws) != 2:
        raise ValueError(f"{kernel}: W must be 2-D, shape (fan_in, fan_out), got shape "
                         f"{_shape_text(Ws)}")
    if len(xs) != 2 and (dz is not None or len(xs) != 1):
        raise ValueError(f"{kernel}: x must be 2-D, shape (n, fan_in)"
                         f"{'' if dz is not None else ' (or one sample, (fan_in,))'}, got "
                         f"shape {_shape_text(xs)}")
    if not _agree(xs[-1:], Ws[:1]):
        raise ValueError(f"{kernel}: x has shape {_shape_text(xs)} and W {_shape_text(Ws)}: "
                         f"x's columns must equal W's rows (fan_in)")
    out = (*xs[:-1], Ws[1])
    if b is not None and not _agree(_broadcast([out, _shape(b)]) or (), out):
        raise ValueError(f"{kernel}: b must have shape ({Ws[1]},) for W of shape "
                         f"{_shape_text(Ws)}, got shape {_shape_text(_shape(b))}")
    if dz is not None and not _agree(_shape(dz), out):
        raise ValueError(f"{kernel}: dz must have shape {_shape_text(out)} for x of shape "
                         f"{_shape_text(xs)} and W of shape {_shape_text(Ws)}, "
                         f"got shape {_shape_text(_shape(dz))}")


def check_divisor(kernel, n_samples, reduction="mean"):
    """Refuse a ``"mean"`` divisor below 1 (0 would give inf, -1 a negated
    loss); ``"sum"`` divides by nothing. Return the divisor, a host number as
    Python's ``int`` or ``float`` (a NumPy ``int64`` would promote float32
    results to float64 on NumPy, and array-api-strict refuses it). An array
    divisor (a traced one, say) is passed over, and returned as it is."""
    if n_samples is None or reduction != "mean" or (type(n_samples) is int and n_samples >= 1):
        return n_samples  # the common cases, before the abstract-class look
    if not isinstance(n_samples, numbers.Real) and not _is_bool(n_samples):
        return n_samples
    if _is_bool(n_samples) or not n_samples >= 1:
        raise ValueError(f"{kernel}: n_samples must be a number >= 1 (the rows the mean "
                         f"divides by), got {n_samples!r}")
    return int(n_samples) if isinstance(n_samples, numbers.Integral) else float(n_samples)


def _shape_text(shape) -> str:
    return str(tuple(shape))


def check_path(name, path) -> str:
    """``path`` (str, bytes or os.PathLike) as a ``str``, as ``open`` reads it;
    a TypeError that names the argument for anything else (``None``, a number)."""
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"{name} must be a str, bytes or os.PathLike, got "
                        f"{type(path).__name__} {path!r}") from None


def replace_target(path, what: str = "file") -> str:
    """The path a write that renames a finished temporary file over ``path``
    renames it onto, for its temporary file to sit beside.

    A symbolic link is written through: the link stays and its target gets
    the new contents, as a new file renamed over it (so the target's
    directory must be writable, and the target's own mode and owner are
    not kept). Anything there that is not a regular file (a device such as
    ``/dev/null``, a FIFO, a directory) is refused: renaming would replace it.
    """
    path = os.fspath(path)
    if not path:
        raise ValueError(f"cannot write {what}: the path is empty")
    if path.endswith(tuple(filter(None, (os.sep, os.altsep)))):
        # realpath drops the separator: "notes.txt/" would replace notes.txt,
        # where the system refuses it ("Not a directory").
        raise ValueError(f"cannot write {what} {path}: the path ends in a separator, so it "
                         "names a directory; name the file")
    real = os.path.realpath(path)
    if os.path.islink(real):  # realpath stops at a loop of links
        raise ValueError(f"cannot write {what} {path}: its symbolic links form a loop")
    if os.path.lexists(real) and not os.path.isfile(real):
        raise ValueError(f"cannot write {what} {path}: it exists and is not a regular file "
                         "(renaming the new file over it would replace it)")
    return real


def current_umask() -> int:
    """The process's umask, for a file made 0600 (``mkstemp``) to follow it.

    Read from ``/proc/self/status`` where the system has it: reading it with
    ``os.umask`` means setting it for a moment, which another thread making
    a file in that moment would get.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
