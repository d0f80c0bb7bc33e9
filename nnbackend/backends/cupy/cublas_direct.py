"""CuPy: matrix products through cuBLAS called directly, which a CUDA graph can capture.

CuPy refuses every cuBLAS call on a stream that is capturing
(``NotImplementedError: calling cuBLAS API during stream capture is
currently unsupported``, in ``cupy_backends/cuda/libs/cublas.pyx`` since
CuPy 11), so a training step captured by :mod:`.graphs` cannot run
``cupy.matmul``. cuBLAS itself can be captured; PyTorch's graphs do it.
Here the library CuPy loaded is called through ctypes on a handle of our
own, the way PyTorch prepares its handles for a capture:

- the handle's stream is set before each call to CuPy's current stream (the
  capturing stream inside a capture), and its workspace after that
  (``cublasSetStream`` puts the library's default workspace back): a buffer
  taken for that call from CuPy's current allocator, on that stream. CuPy's
  pool hands a freed buffer only to later work of the same stream, so two
  fits on two streams never share one mid-product; inside a capture the
  buffer comes from the graph's own pool (:mod:`.graphs`), which lives as
  long as the graph, where its replays find it;
- float32 products run at the precision CuPy runs them at
  (``CUBLAS_TF32_TENSOR_OP_MATH`` only where CuPy's compute type for
  float32 is TF32: a fit with ``precision="tf32"``), float64 ones in full;
- a row-major ``C = A @ B`` is the column-major ``C^T = B^T A^T``: each
  operand is passed as it is laid out (rows or columns contiguous, any
  leading dimension), and copied only where neither is (:func:`gemm_plan`).

Each new product shape is checked once against ``cupy.matmul`` outside a
capture (a host read, at the warm-up steps). A product that differs by more
than rounding, or any other failure outside a capture (a library that does
not load), turns the direct path off for the process, and :func:`matmul` is
``cupy.matmul`` again, whose refusal inside a capture then says why; no
memory for a product's workspace gives that product alone to
``cupy.matmul``. A failure inside a capture fails that capture only:
it may not be cuBLAS's (an earlier operation invalidated the capture). What
a replayed step costs awaits a GPU run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

from ..base import make_namespace
from .elementwise import RowSums

__all__ = ["WORKSPACE_BYTES", "GemmPlan", "capture_namespace", "gemm_plan", "cublas_path",
           "matmul"]

#: The workspace a product gets: cuBLAS's guide recommends 32 MiB on Hopper
#: (sm_90) and 4 MiB before it; one size for all keeps this simple.
WORKSPACE_BYTES = 32 * 2**20

_OP_N, _OP_T = 0, 1
_DEFAULT_MATH, _TF32_MATH = 0, 3  # cublasMath_t
_TF32_COMPUTE_TYPE = 7  # CuPy's COMPUTE_TYPE_TF32 (cupy/_core/_routines_linalg.pxd)


class GemmPlan:
    """How a row-major ``a (m, k) @ b (k, n)`` goes to a column-major gemm.

    cuBLAS computes ``C' (n, m) = op(B') op(A')``, column-major, whose
    memory is the row-major ``C (m, n)``. ``transa``/``lda`` describe ``b``
    (cuBLAS's first operand), ``transb``/``ldb`` describe ``a``.
    """

    __slots__ = ("m", "n", "k", "transa", "lda", "transb", "ldb")

    def __init__(self, m, n, k, transa, lda, transb, ldb):
        self.m, self.n, self.k = m, n, k
        self.transa, self.lda, self.transb, self.ldb = transa, lda, transb, ldb

    def key(self):
        return (self.m, self.n, self.k, self.transa, self.lda, self.transb, self.ldb)


def _layout(shape, strides, itemsize):
    """``("rows", ld)`` where the array's rows are contiguous (row ``i`` at ``i·ld``),
    ``("cols", ld)`` where its columns are, else None; ``ld`` in elements."""
    rows, cols = shape
    if any(s % itemsize or s < 0 for s in strides):
        return None
    s0, s1 = (s // itemsize for s in strides)
    if cols == 1 or s1 == 1:
        ld = s0 if rows > 1 else cols
        if ld >= max(1, cols):
            return "rows", ld
    if rows == 1 or s0 == 1:
        ld = s1 if cols > 1 else rows
        if ld >= max(1, rows):
            return "cols", ld
    return None


def gemm_plan(a_shape, a_strides, b_shape, b_strides, itemsize):
    """The :class:`GemmPlan` of ``a @ b`` for 2-D operands of these shapes and
    strides (bytes), or None where an operand's layout is neither rows- nor
    columns-contiguous (the caller copies it first).

    A row-major ``b (k, n)`` is a column-major ``(n, k)`` with leading
    dimension its row stride: passed as it is (``N``). A ``b`` whose columns
    are contiguous is a column-major ``(k, n)``: passed transposed (``T``).
    The same for ``a``, cuBLAS's second operand.
    """
    (m, k), (k2, n) = a_shape, b_shape
    if k != k2:
        raise ValueError(f"matmul: shapes {tuple(a_shape)} and {tuple(b_shape)} do not chain")
    a, b = _layout(a_shape, a_strides, itemsize), _layout(b_shape, b_strides, itemsize)
    if a is None or b is None:
        return None
    transa, lda = (_OP_N, b[1]) if b[0] == "rows" else (_OP_T, b[1])
    transb, ldb = (_OP_N, a[1]) if a[0] == "rows" else (_OP_T, a[1])
    return GemmPlan(m, n, k, transa, lda, transb, ldb)


def cublas_path(maps_text):
    """The path of the cuBLAS library in a process's memory map (``/proc/self/maps``'s
    text), or None: the one CuPy loaded, not cuBLASLt."""
    for line in maps_text.splitlines():
        path = line.split()[-1] if line.split() else ""
        name = path.rsplit("/", 1)[-1]
        if name.startswith("libcublas.so"):
            return path
    return None


def _load_cublas(cupy):
    cupy.cuda.device.get_cublas_handle()  # CuPy loads its cuBLAS
    try:
        with open("/proc/self/maps") as f:
            path = cublas_path(f.read())
    except OSError:
        path = None
    names = [path] if path else []
    major = int(cupy.cuda.runtime.runtimeGetVersion()) // 1000  # CuPy's CUDA: 12, 13
    names += [f"libcublas.so.{major}", ctypes.util.find_library("cublas")]
    errors = []
    for name in filter(None, names):
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
            continue
        _declare(lib)
        return lib
    raise OSError("cuBLAS does not load (" + "; ".join(errors or ["not found"]) + ")")


def _declare(lib):
    """The C signatures of the functions called (cublas_api.h), so that ctypes
    converts each argument to its C type or refuses it."""
    handle, pointer, i32 = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int
    gemm = [handle, i32, i32, i32, i32, i32, pointer, pointer, i32, pointer, i32, pointer,
            pointer, i32]
    for name, args in (("cublasCreate_v2", [ctypes.POINTER(ctypes.c_void_p)]),
                       ("cublasSetStream_v2", [handle, pointer]),
                       ("cublasSetWorkspace_v2", [handle, pointer, ctypes.c_size_t]),
                       ("cublasSetMathMode", [handle, i32]),
                       ("cublasSgemm_v2", gemm), ("cublasDgemm_v2", gemm)):
        function = getattr(lib, name)
        function.argtypes, function.restype = args, ctypes.c_int


class _Direct:
    """The process's direct path: the library, and a handle a device."""

    def __init__(self):
        self.lock = threading.Lock()
        self.lib = None
        self.broken = None  # why the direct path is off, once it is
        self.devices = {}  # device id -> (handle, lock)
        self.checked = set()

    def handle(self, cupy, device_id):
        entry = self.devices.get(device_id)
        if entry is None:
            with self.lock:
                entry = self.devices.get(device_id)
                if entry is None:
                    if self.lib is None:
                        self.lib = _load_cublas(cupy)
                    handle = ctypes.c_void_p()
                    with cupy.cuda.Device(device_id):
                        _ok(self.lib.cublasCreate_v2(ctypes.byref(handle)), "cublasCreate_v2")
                    # One call at a time on a handle: its stream and workspace
                    # are set for the product that follows.
                    entry = self.devices[device_id] = (handle, threading.Lock())
        return entry


_DIRECT = _Direct()


def _ok(status, name):
    if status:
        raise RuntimeError(f"{name}: cuBLAS status {status}")


def _tf32(cupy):
    try:
        from cupy._core import _routines_linalg as linalg

        return int(linalg.get_compute_type(cupy.float32)) == _TF32_COMPUTE_TYPE
    except Exception:  # noqa: BLE001 - a CuPy without the switch computes in float32
        return False


def _gemm(cupy, a, b, plan, out):
    """``out = a @ b`` by cuBLAS on CuPy's current stream (``out``'s device current)."""
    handle, lock = _DIRECT.handle(cupy, out.device.id)  # loads the library once
    lib = _DIRECT.lib
    if a.dtype == cupy.float32:
        mode = _TF32_MATH if _tf32(cupy) else _DEFAULT_MATH
        gemm, scalar, name = lib.cublasSgemm_v2, ctypes.c_float, "cublasSgemm_v2"
    else:
        mode = _DEFAULT_MATH
        gemm, scalar, name = lib.cublasDgemm_v2, ctypes.c_double, "cublasDgemm_v2"
    one, zero = scalar(1.0), scalar(0.0)
    p = plan
    # Freed when this returns, the buffer goes back to the pool for this
    # stream's later work only, which runs after this product.
    workspace = cupy.empty(WORKSPACE_BYTES, dtype=cupy.uint8)
    with lock:
        stream = cupy.cuda.get_current_stream()
        _ok(lib.cublasSetStream_v2(handle, stream.ptr), "cublasSetStream_v2")
        # After the stream: setting a stream puts the default workspace back.
        _ok(lib.cublasSetWorkspace_v2(handle, workspace.data.ptr, workspace.nbytes),
            "cublasSetWorkspace_v2")
        _ok(lib.cublasSetMathMode(handle, mode), "cublasSetMathMode")
        _ok(gemm(handle, p.transa, p.transb, p.n, p.m, p.k, ctypes.byref(one), b.data.ptr, p.lda,
                 a.data.ptr, p.ldb, ctypes.byref(zero), out.data.ptr, p.n), name)
    return out


def _capturing(cupy):
    return bool(cupy.cuda.runtime.streamIsCapturing(cupy.cuda.get_current_stream().ptr))


def _check(cupy, a, b, out, key):
    """Whether ``out`` is ``cupy.matmul(a, b)`` to rounding (a host read): True,
    or None where the product is not finite (no verdict: the next one decides);
    raises ArithmeticError where it is not."""
    ref = cupy.matmul(a, b)
    finite = cupy.isfinite(ref)
    if not bool(cupy.all(finite)):
        return None
    dtype = a.dtype
    eps = 2.0**-10 if dtype == cupy.float32 and _tf32(cupy) else float(cupy.finfo(dtype).eps)
    k = max(a.shape[1], 1)
    # Two sums of k products each, in any order: within 2·k·eps of |a| @ |b|, and
    # k·tiny where the terms are subnormal (flushed to zero by one side only).
    bound = (2 * k * eps) * cupy.matmul(cupy.abs(a), cupy.abs(b)) + k * float(
        cupy.finfo(dtype).tiny)
    if not bool(cupy.all(cupy.abs(out - ref) <= bound)):
        raise ArithmeticError(f"cuBLAS called directly differs from cupy.matmul for {key}")
    return True


def _off(cupy, a, b, exc):
    """The direct path off for the process (why kept), and CuPy's own product."""
    _DIRECT.broken = f"{type(exc).__name__}: {exc}"
    return cupy.matmul(a, b)


def matmul(a, b):
    """``a @ b`` for 2-D CuPy arrays of one float dtype, through cuBLAS called directly
    (see the module's docstring); ``cupy.matmul`` for anything else, or once the
    direct path is off.

    A failure outside a capture turns the direct path off (CuPy's product is
    returned instead); one inside a capture fails that capture only (an
    invalidated capture is not cuBLAS's fault), and the eager step that
    replaces it runs the direct path again.
    """
    import cupy

    usable = (_DIRECT.broken is None and a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype
              and a.dtype in (cupy.float32, cupy.float64))
    if not usable:
        if _DIRECT.broken is not None and _capturing(cupy):
            raise RuntimeError("CuPy refuses cuBLAS inside a stream capture, and cuBLAS called "
                               f"directly is off ({_DIRECT.broken})")
        return cupy.matmul(a, b)
    if a.shape[1] != b.shape[0]:
        return cupy.matmul(a, b)  # its error names the shapes
    if 0 in a.shape or 0 in b.shape:
        return cupy.zeros((a.shape[0], b.shape[1]), dtype=a.dtype)  # a memset, no cuBLAS
    item = a.dtype.itemsize
    plan = gemm_plan(a.shape, a.strides, b.shape, b.strides, item)
    if plan is None:
        a, b = cupy.ascontiguousarray(a), cupy.ascontiguousarray(b)
        plan = gemm_plan(a.shape, a.strides, b.shape, b.strides, item)
    key = (str(a.dtype), *plan.key())
    capturing = _capturing(cupy)
    try:
        out = _gemm(cupy, a, b, plan, cupy.empty((plan.m, plan.n), dtype=a.dtype))
    except cupy.cuda.memory.OutOfMemoryError as exc:
        # No room for this product's workspace: not cuBLAS's fault, so the path
        # stays on for the products that follow.
        if capturing:
            raise RuntimeError(f"no memory for cuBLAS's workspace inside a stream capture "
                               f"({exc})") from exc
        return cupy.matmul(a, b)
    except Exception as exc:  # noqa: BLE001 - any failure: CuPy's product, or a failed capture
        if capturing:
            raise RuntimeError(f"cuBLAS called directly failed inside a stream capture "
                               f"({type(exc).__name__}: {exc})") from exc
        return _off(cupy, a, b, exc)
    if not capturing and key not in _DIRECT.checked:
        try:
            verdict = _check(cupy, a, b, out, key)
        except Exception as exc:  # noqa: BLE001 - a product off by more than rounding
            return _off(cupy, a, b, exc)
        if verdict:
            _DIRECT.checked.add(key)
    return out


_CAPTURE_NAMESPACES = {}


def capture_namespace(xp):
    """``xp`` (nnbackend's CuPy namespace) with its products (``matmul``, and
    ``sum_rows``'s) through :func:`matmul`: the namespace of the steps
    :mod:`.graphs` captures. Everything else is the same functions and
    kernels. One per namespace, made at its first use."""
    entry = _CAPTURE_NAMESPACES.get(id(xp))
    if entry is None or entry[0] is not xp:
        captured = make_namespace(f"{xp.__name__}_capture", xp,
                                  "nnbackend's CuPy namespace, its products capturable.")
        captured.nnbackend_fused = {**getattr(xp, "nnbackend_fused", {}), "matmul": matmul,
                                    "sum_rows": RowSums(captured, matmul=matmul, keep=True)}
        entry = _CAPTURE_NAMESPACES[id(xp)] = (xp, captured)
    return entry[1]

