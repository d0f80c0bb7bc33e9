"""Float32 matmul precision: each GPU library's TF32 switch, set for one fit.

A fit's ``precision`` (see :meth:`nnbackend.MLP.fit`):

``None``
    Leave the library as it is: full float32 (nnbackend never turns TF32
    on by itself; on ``jax.numpy`` the kernels ask for ``HIGHEST``) unless
    the user turned TF32 on in the library.
``"highest"``
    Full float32 matmuls for the fit, whatever the library is set to.
``"tf32"``
    Float32 matmuls on tensor cores with TF32 operands (10 mantissa bits;
    products summed in float32), where the device has them.

Each library keeps the switch process-wide, so every context here sets it
on entry and puts back what it found on exit. It yields the precision the
library's matmuls then run at, by nnbackend's names: ``"highest"``,
``"tf32"``, or the library's own name for anything else (``"bfloat16"``).
The library is passed in (the module, or CuPy's linear-algebra module), so
that these import nothing and the tests can hand in a stand-in.
"""

from __future__ import annotations

import contextlib

__all__ = ["PRECISIONS", "check_precision", "cupy_precision", "jax_precision", "torch_precision"]

#: The values a fit's ``precision`` takes besides None (the library's own setting).
PRECISIONS = ("highest", "tf32")


def check_precision(precision):
    """``precision`` if it is one of None and :data:`PRECISIONS`, else ``ValueError``."""
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose None (the array library's "
                         f"own setting, full float32 unless changed) or one of {list(PRECISIONS)}")
    return precision


# torch.get_float32_matmul_precision()'s values on CUDA, by nnbackend's names.
_TORCH_NAMES = {"highest": "highest", "high": "tf32", "medium": "bfloat16"}
_TORCH_SETTING = {"highest": "highest", "tf32": "high"}
# The values of torch's newer switches (fp32_precision, torch >= 2.9), by nnbackend's names.
_TORCH_FP32_NAMES = {"ieee": "highest", "none": "highest", "tf32": "tf32", "bf16": "bfloat16"}


def _torch_fp32_switches(torch):
    """torch's newer per-backend float32 switches that its legacy setter also
    sets (cuBLAS's and oneDNN's matmuls), and the global one they inherit
    from; ``([], None)`` on a torch without them."""
    backends = getattr(torch, "backends", None)
    switches = [getattr(getattr(backends, name, None), "matmul", None) for name in ("cuda",
                                                                                   "mkldnn")]
    switches = [s for s in switches if s is not None and _fp32(s) is not None]
    return switches, (_fp32(backends) if switches else None)


def _fp32(holder):
    try:
        return holder.fp32_precision
    except (AttributeError, RuntimeError):
        return None


@contextlib.contextmanager
def torch_precision(torch, precision):
    """Set torch's float32 matmul precision for the block (CUDA devices).

    Through ``torch.set_float32_matmul_precision``, which sets cuBLAS's TF32
    switch in torch's legacy API and in its newer one (``fp32_precision``,
    torch >= 2.9) alike, so that the two agree (torch refuses a matmul where
    they do not). On exit both are put back as they were: a newer switch
    that inherited the global ``torch.backends.fp32_precision`` inherits it
    again. A user who set only the newer switches left the legacy one at its
    default, ``"highest"``, which is where it goes back to.
    """
    switches, generic = _torch_fp32_switches(torch)
    try:
        before = torch.get_float32_matmul_precision()
        legacy_readable = True
    except RuntimeError:
        # The newer switches were set and the legacy one was not (or both, to
        # values that disagree): torch then refuses to read the legacy one.
        if not switches:
            if precision is not None:
                raise ValueError(f"precision={precision!r}: torch's TF32 switches were set "
                                 "through both its legacy and new APIs, so they cannot be set "
                                 "back after the fit; use one of them, or leave "
                                 "precision=None") from None
            yield "torch's own setting"
            return
        before, legacy_readable = "highest", False
    if precision is None:
        now = _fp32(switches[0]) if not legacy_readable else None
        yield _TORCH_FP32_NAMES.get(now, now) if now is not None else _TORCH_NAMES.get(before,
                                                                                       before)
        return
    wanted = _TORCH_SETTING[precision]
    if legacy_readable and wanted == before:
        yield _TORCH_NAMES[wanted]
        return
    saved = [(s, _fp32(s)) for s in switches]
    torch.set_float32_matmul_precision(wanted)
    try:
        yield _TORCH_NAMES[wanted]
    finally:
        torch.set_float32_matmul_precision(before)
        for switch, value in saved:
            # Read back, a switch that inherits shows the global value: it
            # inherits again ("none"), not pinned to what the global was.
            switch.fp32_precision = "none" if value == generic else value


# CuPy's compute types (cupy/_core/_routines_linalg.pxd), where the module
# does not name them.
_CUPY_TYPES = {"COMPUTE_TYPE_DEFAULT": 1, "COMPUTE_TYPE_FP16": 3, "COMPUTE_TYPE_BF16": 6,
               "COMPUTE_TYPE_TF32": 7}


@contextlib.contextmanager
def cupy_precision(linalg, float32, precision):
    """Set CuPy's compute type for float32 matmuls for the block.

    ``linalg`` is ``cupy._core._routines_linalg``: its ``get_compute_type``
    (which reads ``CUPY_TF32`` the first time) and ``set_compute_type`` are
    what ``CUPY_TF32=1`` sets, for one dtype, at any time. None where this
    CuPy has no such module (it is not public API): then nothing can be set
    or read.
    """
    if linalg is None or not all(hasattr(linalg, f) for f in ("get_compute_type",
                                                               "set_compute_type")):
        if precision is not None:
            raise ValueError(f"precision={precision!r}: this CuPy has no compute-type switch "
                             "(cupy._core._routines_linalg.set_compute_type) to set it with; "
                             "leave precision=None, and set CUPY_TF32=1 before importing CuPy "
                             "for TF32")
        yield "CuPy's own setting"
        return
    types = {name: getattr(linalg, name, value) for name, value in _CUPY_TYPES.items()}
    before = linalg.get_compute_type(float32)
    wanted = {None: before, "highest": types["COMPUTE_TYPE_DEFAULT"],
              "tf32": types["COMPUTE_TYPE_TF32"]}[precision]
    if wanted != before:
        linalg.set_compute_type(float32, wanted)
    try:
        # set_compute_type falls back to the default below compute capability 8.0.
        now = linalg.get_compute_type(float32)
        yield {types["COMPUTE_TYPE_TF32"]: "tf32", types["COMPUTE_TYPE_BF16"]: "bfloat16",
               types["COMPUTE_TYPE_FP16"]: "float16"}.get(now, "highest")
    finally:
        if wanted != before:
            linalg.set_compute_type(float32, before)


# jax_default_matmul_precision's values, by nnbackend's names. None is the
# kernels' HIGHEST (see nnbackend.backends.jax.jax_numpy_fixes).
_JAX_NAMES = {None: "highest", "highest": "highest", "float32": "highest",
              "tensorfloat32": "tf32", "bfloat16": "bfloat16"}
_JAX_SETTING = {"highest": "highest", "tf32": "tensorfloat32"}


@contextlib.contextmanager
def jax_precision(jax, precision):
    """Set ``jax_default_matmul_precision`` for the block (JAX keys its compile
    cache on it, so a jitted epoch compiles once per precision)."""
    before = getattr(jax.config, "jax_default_matmul_precision", None)
    wanted = before if precision is None else _JAX_SETTING[precision]
    if _JAX_NAMES.get(wanted, wanted) == _JAX_NAMES.get(before, before):
        yield _JAX_NAMES.get(before, before)
        return
    with jax.default_matmul_precision(wanted):
        yield _JAX_NAMES[wanted]
