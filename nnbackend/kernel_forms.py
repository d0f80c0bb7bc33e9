"""The namespaces' own forms of the kernels' operations and chains.

A backend can give faster versions of the hot chains of
:mod:`nnbackend.kernels` as ``xp.nnbackend_fused`` (CuPy: one kernel launch
each instead of several; NumPy: constants as 0-D arrays of the data's
dtype), and fixes for a namespace it does not build itself through
:func:`register_namespace_fixes` (JAX: matmuls at full float32 precision).
The kernels look each up here, once per namespace. No array library is
imported here.
"""

from __future__ import annotations

__all__ = ["fused_form", "matmul_form", "register_namespace_fixes"]


def fused_form(xp, name):
    """The namespace's own form of the operation or chain ``name``, or None.

    A backend can give faster versions of the hot chains as
    ``xp.nnbackend_fused`` (CuPy: one kernel launch each instead of several;
    NumPy: constants as 0-D arrays of the data's dtype), and fixes for a
    namespace it does not build itself through :func:`register_namespace_fixes`
    (JAX: matmuls at full float32 precision). Each computes the formula of
    the code that follows its look-up, in the same order (CuPy's ``sum_rows``
    aside: a sum in another order, equal to rounding).
    """
    table = _FUSED_TABLES.get(xp, _UNSEEN)
    if table is _UNSEEN:
        # Once per namespace: a missed attribute can cost microseconds (NumPy's
        # module __getattr__), more than the arithmetic of a small step.
        table = dict(getattr(xp, "nnbackend_fused", None) or {})
        make_fixes = _NAMESPACE_FIXES.get(getattr(xp, "__name__", None))
        if make_fixes is not None:
            table.update(make_fixes(xp))
        _FUSED_TABLES[xp] = table
    return table.get(name)


_FUSED_TABLES = {}
_UNSEEN = object()
# Fix makers by namespace module name (see register_namespace_fixes).
_NAMESPACE_FIXES = {}


def register_namespace_fixes(module_name, make_fixes):
    """Have the kernels use ``make_fixes(xp)`` on the namespace module called ``module_name``.

    For namespaces nnbackend does not build itself and that reach the kernels
    from users' code too (``jax.numpy``, found by ``array_namespace``). The
    backend that knows the library registers at import, without importing
    it: ``make_fixes`` runs at the namespace's first use and returns
    ``{name: function}``, entries of the same table as ``xp.nnbackend_fused``
    (e.g. ``"matmul"``). Registering again replaces the maker.
    """
    _NAMESPACE_FIXES[module_name] = make_fixes
    _FUSED_TABLES.clear()  # tables built before now lack the fixes


def matmul_form(xp):
    """The namespace's matmul, or its fix (JAX: at full float32 precision)."""
    return fused_form(xp, "matmul") or xp.matmul
