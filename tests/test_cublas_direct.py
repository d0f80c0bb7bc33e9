"""cuBLAS called directly (backends/cupy/cublas_direct.py), the products of the steps
CuPy's graphs capture.

On the CPU: the row-major-to-column-major plan, run through a column-major
gemm written here in NumPy over the operands' own memory, for every layout a
step's operands take (and the strided ones it may); the library found in a
process's memory map; and the dispatch (checked once against ``cupy.matmul``,
off for good after a failure, the reason given inside a capture) with NumPy
standing in for CuPy. On a GPU (tests/test_cupy_graphs.py): the products
against ``cupy.matmul``, inside a captured graph too.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import types

import numpy as np
import pytest

from nnbackend.backends.cupy import cublas_direct as D


def _memory(x, rows, cols, ld):
    """The column-major matrix (rows, cols) with leading dimension ``ld`` that
    starts at ``x``'s first element, read from ``x``'s own memory."""
    length = (cols - 1) * ld + rows if rows and cols else 0
    kind = {4: ctypes.c_float, 8: ctypes.c_double}[x.itemsize]
    flat = np.ctypeslib.as_array((kind * max(length, 1)).from_address(x.ctypes.data))
    out = np.empty((rows, cols), dtype=x.dtype)
    for j in range(cols):
        out[:, j] = flat[j * ld:j * ld + rows]
    return out


def _column_major_gemm(plan, a, b):
    """What cuBLAS's gemm computes from the plan: ``C' (n, m) = op(B') op(A')``,
    column-major; returned as the row-major ``C (m, n)`` its memory holds."""
    m, n, k = plan.m, plan.n, plan.k
    # op(X) is (rows, cols); N reads X stored (rows, cols), T reads it stored (cols, rows).
    first = (_memory(b, n, k, plan.lda) if plan.transa == 0
             else _memory(b, k, n, plan.lda).T)
    second = (_memory(a, k, m, plan.ldb) if plan.transb == 0
              else _memory(a, m, k, plan.ldb).T)
    c_col = first @ second  # (n, m), column-major: its memory is C (m, n) row-major
    return c_col.T


def _layouts(rng, rows, cols, dtype):
    """The same values laid out as a step's operands come: C-contiguous, a
    transposed C array (x.T, W.T), rows of a wider array, columns of a taller
    one, and a single row of a longer one (RowSums' ones[:, :n])."""
    values = rng.standard_normal((rows, cols)).astype(dtype)
    wide = np.zeros((rows, cols + 3), dtype=dtype)
    wide[:, :cols] = values
    tall = np.zeros((cols, rows + 5), dtype=dtype)
    tall[:, :rows] = values.T
    out = {
        "C": values.copy(),
        "transposed": np.ascontiguousarray(values.T).T,
        "rows of a wider": wide[:, :cols],
        "columns of a taller": tall[:, :rows].T,
    }
    if rows == 1:
        longer = np.zeros((1, cols + 7), dtype=dtype)
        longer[0, :cols] = values[0]
        out["front of a longer row"] = longer[:, :cols]
    for x in out.values():
        np.testing.assert_array_equal(x, values)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(5, 3, 4), (1, 6, 2), (7, 1, 3), (4, 5, 1), (1, 1, 1),
                                   (64, 33, 17)])
def test_the_plan_computes_a_at_b_from_the_operands_memory(dtype, m, k, n):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    for a_name, a in _layouts(rng, m, k, dtype).items():
        for b_name, b in _layouts(rng, k, n, dtype).items():
            plan = D.gemm_plan(a.shape, a.strides, b.shape, b.strides, a.itemsize)
            assert plan is not None, (a_name, b_name)
            assert (plan.m, plan.n, plan.k) == (m, n, k)
            # cuBLAS's rule: each leading dimension at least its stored rows.
            assert plan.lda >= max(1, n if plan.transa == 0 else k)
            assert plan.ldb >= max(1, k if plan.transb == 0 else m)
            got = _column_major_gemm(plan, a, b)
            np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5,
                                       err_msg=f"a {a_name}, b {b_name}")


def test_an_operand_neither_rows_nor_columns_contiguous_has_no_plan():
    x = np.ones((6, 8), dtype=np.float32)
    w = np.ones((4, 3), dtype=np.float32)
    assert D.gemm_plan(x[::2, ::2].shape, x[::2, ::2].strides, w.shape, w.strides, 4) is None
    assert D.gemm_plan(x[:, :4].shape, x[:, :4].strides, w.shape, w.strides, 4) is not None
    flipped = x[::-1, :4]
    assert D.gemm_plan(flipped.shape, flipped.strides, w.shape, w.strides, 4) is None
    with pytest.raises(ValueError, match=r"\(6, 8\) and \(4, 3\) do not chain"):
        D.gemm_plan(x.shape, x.strides, w.shape, w.strides, 4)


def test_the_library_is_the_cublas_the_process_loaded():
    maps = "\n".join([
        "7f00-7f10 r-xp 00000000 08:01 12 /usr/lib/libc.so.6",
        "7f20-7f30 r-xp 00000000 08:01 13 /site/nvidia/cublas/lib/libcublasLt.so.12",
        "7f40-7f50 r-xp 00000000 08:01 14 /site/nvidia/cublas/lib/libcublas.so.12",
        "7f60-7f70 rw-p 00000000 00:00 0",
    ])
    assert D.cublas_path(maps) == "/site/nvidia/cublas/lib/libcublas.so.12"
    assert D.cublas_path(maps.replace("libcublas.so", "libfoo.so")) is None


# -- the dispatch, NumPy standing in for CuPy ---------------------------------------------

class _Stream:
    ptr = 7


class _OutOfMemory(MemoryError):
    """CuPy's ``cuda.memory.OutOfMemoryError``, a MemoryError."""


def _fake_cupy(capturing):
    """The little of CuPy that ``matmul`` calls, on NumPy; ``capturing[0]`` says
    whether the current stream is capturing."""
    cuda = types.SimpleNamespace(
        get_current_stream=lambda: _Stream(),
        runtime=types.SimpleNamespace(streamIsCapturing=lambda ptr: capturing[0]),
        memory=types.SimpleNamespace(OutOfMemoryError=_OutOfMemory))
    names = ("float32", "float64", "matmul", "abs", "all", "isfinite", "finfo", "empty", "zeros",
             "ascontiguousarray")
    return types.SimpleNamespace(cuda=cuda, **{n: getattr(np, n) for n in names})


@pytest.fixture
def direct(monkeypatch):
    """``(state, gemms, capturing)``: a fresh direct path over the fake CuPy, its
    gemm the column-major one above (``gemms`` records each plan)."""
    capturing = [False]
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(capturing))
    state = D._Direct()
    monkeypatch.setattr(D, "_DIRECT", state)
    gemms = []

    def gemm(cupy, a, b, plan, out):
        gemms.append(plan.key())
        out[...] = _column_major_gemm(plan, a, b)
        return out

    monkeypatch.setattr(D, "_gemm", gemm)
    return state, gemms, capturing


def test_products_go_direct_checked_once_a_shape(direct, monkeypatch):
    state, gemms, capturing = direct
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 5)).astype(np.float32)
    W = rng.standard_normal((5, 3)).astype(np.float32)
    checks = []
    real_check = D._check
    monkeypatch.setattr(D, "_check", lambda *a: checks.append(a[-1]) or real_check(*a))
    for _ in range(2):
        np.testing.assert_allclose(D.matmul(x, W), x @ W, rtol=1e-6)
        np.testing.assert_allclose(D.matmul(x.T, x), x.T @ x, rtol=1e-5, atol=1e-6)
    assert len(gemms) == 4 and len(checks) == 2  # each shape checked at its first product
    # Inside a capture nothing is checked (a check reads the host).
    capturing[0] = True
    np.testing.assert_allclose(D.matmul(W.T, x.T), W.T @ x.T, rtol=1e-5, atol=1e-6)
    assert len(gemms) == 5 and len(checks) == 2 and state.broken is None
    # An operand of neither layout is copied first; a product with no terms is zeros.
    strided = np.asarray(rng.standard_normal((16, 5)), dtype=np.float32)[::2]
    np.testing.assert_allclose(D.matmul(strided, W), strided @ W, rtol=1e-5, atol=1e-6)
    assert np.all(D.matmul(np.ones((3, 0), np.float32), np.ones((0, 2), np.float32)) == 0)
    assert D.matmul(np.ones((0, 4), np.float32), W[:4]).shape == (0, 3)


def test_what_it_does_not_take_goes_to_cupys_matmul(direct):
    state, gemms, _ = direct
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(D.matmul(a.astype(np.int64), a.T.astype(np.int64)),
                                  (a @ a.T).astype(np.int64))
    np.testing.assert_array_equal(D.matmul(a.astype(np.float32), a.T), a @ a.T)  # mixed
    np.testing.assert_array_equal(D.matmul(np.ones((2, 2, 3)), a.T), np.ones((2, 2, 3)) @ a.T)
    assert gemms == [] and state.broken is None


def test_a_wrong_product_turns_the_direct_path_off_and_a_capture_says_why(direct, monkeypatch):
    state, gemms, capturing = direct
    a = np.arange(12.0).reshape(3, 4)
    b = np.arange(8.0).reshape(4, 2)
    monkeypatch.setattr(D, "_gemm", lambda cupy, a, b, plan, out: out.fill(1.0) or out)
    # Outside a capture: CuPy's own product, and the path off.
    np.testing.assert_array_equal(D.matmul(a, b), a @ b)
    assert state.broken.startswith("ArithmeticError: cuBLAS called directly differs")
    np.testing.assert_array_equal(D.matmul(a, b), a @ b)
    # Inside one, CuPy's product would be refused: the error says why.
    capturing[0] = True
    with pytest.raises(RuntimeError, match="cuBLAS called directly is off .ArithmeticError"):
        D.matmul(a, b)


def test_a_failure_outside_a_capture_turns_the_path_off(direct, monkeypatch):
    state, _, capturing = direct
    failures = iter([OSError("cuBLAS does not load (not found)"), MemoryError("out of memory")])

    def failing(cupy, a, b, plan, out):
        raise next(failures)

    monkeypatch.setattr(D, "_gemm", failing)
    a = np.ones((2, 3))
    np.testing.assert_array_equal(D.matmul(a, a.T), a @ a.T)  # CuPy's product instead
    assert state.broken == "OSError: cuBLAS does not load (not found)"
    state.broken = None  # any exception, not only the expected kinds
    np.testing.assert_array_equal(D.matmul(a, a.T), a @ a.T)
    assert state.broken == "MemoryError: out of memory"


def test_no_memory_for_a_workspace_gives_that_product_alone_to_cupy(direct, monkeypatch):
    # A workspace is taken for each product: a moment without 32 MiB is not
    # cuBLAS's fault, and must not turn the path off for the process.
    state, gemms, capturing = direct
    real = D._gemm

    def short(cupy, a, b, plan, out):
        raise _OutOfMemory("Out of memory allocating 33,554,432 bytes")

    monkeypatch.setattr(D, "_gemm", short)
    a = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(D.matmul(a, a.T), a @ a.T)  # CuPy's product
    assert state.broken is None
    capturing[0] = True  # inside a capture, that capture fails, saying why
    with pytest.raises(RuntimeError, match="no memory for cuBLAS's workspace inside a stream"):
        D.matmul(a, a.T)
    assert state.broken is None
    monkeypatch.setattr(D, "_gemm", real)
    np.testing.assert_array_equal(D.matmul(a, a.T), a @ a.T)
    assert gemms  # the direct path again


def test_a_failure_inside_a_capture_fails_that_capture_only(direct, monkeypatch):
    # Inside a capture the error may not be cuBLAS's (an invalidated capture):
    # the capture fails, saying why, and the path stays on for the eager step.
    state, gemms, capturing = direct
    real = D._gemm

    def refused(cupy, a, b, plan, out):
        raise RuntimeError("cublasSgemm_v2: cuBLAS status 14")

    monkeypatch.setattr(D, "_gemm", refused)
    capturing[0] = True
    a = np.ones((2, 3), np.float32)
    with pytest.raises(RuntimeError, match=r"failed inside a stream capture \(RuntimeError: "
                                           r"cublasSgemm_v2: cuBLAS status 14\)"):
        D.matmul(a, a.T)
    assert state.broken is None
    monkeypatch.setattr(D, "_gemm", real)
    capturing[0] = False
    np.testing.assert_array_equal(D.matmul(a, a.T), a @ a.T)
    assert gemms and state.broken is None


def test_a_product_that_is_not_finite_leaves_its_shape_unchecked(direct):
    state, gemms, _ = direct
    a = np.array([[np.nan, 1.0], [2.0, 3.0]])
    b = np.ones((2, 2))
    got = D.matmul(a, b)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(a @ b))
    assert state.broken is None and not state.checked  # no verdict on NaN
    np.testing.assert_array_equal(D.matmul(np.nan_to_num(a), b), np.nan_to_num(a) @ b)
    assert len(state.checked) == 1 and state.broken is None


def test_row_sums_take_the_given_product():
    from nnbackend.backends.cupy.elementwise import RowSums

    calls = []

    def product(a, b):
        calls.append((a.shape, b.shape))
        return np.matmul(a, b)

    sums = RowSums(np, matmul=product)
    a = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(sums(a), a.sum(axis=0))
    np.testing.assert_array_equal(sums(a[:2]), a[:2].sum(axis=0))  # the front of the row
    assert calls == [((1, 4), (4, 3)), ((1, 2), (2, 3))]


def test_each_product_sets_the_stream_then_the_workspace_then_calls_the_gemm(monkeypatch):
    # cublasSetStream puts the library's default workspace back: ours is set after
    # it, before every product, on the stream current then.
    calls = []

    def record(name):
        return lambda *args: calls.append((name, args)) or 0

    lib = types.SimpleNamespace(**{n: record(n) for n in (
        "cublasSetStream_v2", "cublasSetWorkspace_v2", "cublasSetMathMode", "cublasSgemm_v2",
        "cublasDgemm_v2")})
    state = D._Direct()
    state.lib = lib
    state.devices[0] = ("handle", threading.Lock())
    monkeypatch.setattr(D, "_DIRECT", state)
    cupy = _fake_cupy([False])
    # The workspace is taken for each product from CuPy's current allocator (on
    # the current stream), so two streams never share one mid-product.
    taken = []

    def empty(size, dtype):
        taken.append((size, dtype))
        return types.SimpleNamespace(data=types.SimpleNamespace(ptr=4096 * len(taken)),
                                     nbytes=size)

    cupy.empty, cupy.uint8 = empty, np.uint8

    def array(ptr, dtype):
        return types.SimpleNamespace(dtype=np.dtype(dtype), data=types.SimpleNamespace(ptr=ptr),
                                     device=types.SimpleNamespace(id=0))

    plan = D.gemm_plan((5, 3), (12, 4), (3, 4), (16, 4), 4)  # C-contiguous a (5,3), b (3,4)
    D._gemm(cupy, array(100, np.float32), array(200, np.float32), plan, array(300, np.float32))
    names = [name for name, _ in calls]
    assert names == ["cublasSetStream_v2", "cublasSetWorkspace_v2", "cublasSetMathMode",
                     "cublasSgemm_v2"]
    assert calls[0][1] == ("handle", _Stream.ptr)
    assert calls[1][1] == ("handle", 4096, D.WORKSPACE_BYTES)
    assert taken == [(D.WORKSPACE_BYTES, np.uint8)]
    assert calls[2][1] == ("handle", 0)  # float32 in full: CuPy's compute type is not TF32 here
    handle, transa, transb, m, n, k, _, B, ldb_, A, lda_, _, C, ldc = calls[3][1]
    # C' (4, 5) = B' (4, 3) A' (3, 5), column-major: b first, then a.
    assert (transa, transb, m, n, k) == (0, 0, 4, 5, 3)
    assert (B, ldb_, A, lda_, C, ldc) == (200, 4, 100, 3, 300, 4)
    calls.clear()
    plan = D.gemm_plan((5, 3), (24, 8), (3, 4), (32, 8), 8)
    D._gemm(cupy, array(100, np.float64), array(200, np.float64), plan, array(300, np.float64))
    assert [name for name, _ in calls][-1] == "cublasDgemm_v2" and calls[2][1] == ("handle", 0)
    assert len(taken) == 2 and calls[1][1] == ("handle", 8192, D.WORKSPACE_BYTES)


def test_row_sums_for_captured_steps_keep_the_rows_they_replaced():
    # A graph captured with the shorter row reads its memory at every replay.
    from nnbackend.backends.cupy.elementwise import RowSums

    sums = RowSums(np, keep=True)
    sums(np.ones((3, 2)))
    first = sums._ones[(np.dtype(np.float64), "cpu")]
    sums(np.ones((5, 2)))
    assert sums._replaced == [first] and sums._ones[(np.dtype(np.float64), "cpu")].shape == (1, 5)
    assert RowSums(np)._replaced is None


def test_the_capture_namespace_is_the_namespace_with_its_products_direct():
    from nnbackend.kernels import fused_form, matmul_form

    xp = nb_numpy_namespace()
    captured = D.capture_namespace(xp)
    assert D.capture_namespace(xp) is captured and captured is not xp
    assert captured.__name__ == f"{xp.__name__}_capture"
    assert matmul_form(captured) is D.matmul
    assert fused_form(captured, "sum_rows")._replaced == []  # keeps what it replaces
    assert captured.exp is xp.exp and captured.take is xp.take  # the rest is the namespace's
    assert matmul_form(xp) is not D.matmul  # the namespace itself is untouched


def nb_numpy_namespace():
    import nnbackend as nb

    return nb.get_backend("numpy").xp

