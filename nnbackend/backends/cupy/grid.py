"""The fused epoch kernel over several SMs: the whole grid, or one thread-block cluster.

The fused epoch kernel (:mod:`.fused`, :mod:`.tiled`) is one block: a step
is a chain of dependent phases and ``__syncthreads()`` is its only barrier.
For [784,256,256,10] that block streams 269,322 parameters through one SM
each SGD step (91-97 µs a step on an H200, 72-79 of them the update). This
is the same kernel spread over several blocks (:func:`grid_source`): each
phase's thread-strided loop strides over every thread of the grid instead
of the block's, and each ``__syncthreads()`` becomes a barrier across the
blocks. Every element is still computed by one thread in the order the
layout fixes, so the results are those of the one-block kernel of the same
layout, bit for bit (the tests compare the host builds). It takes the global
placement with the work region in global memory (``Layout(...,
params_in="global", acts_in="global")``), where no phase keeps anything in
a block's shared memory.

Two ways to run it:

- **The whole grid** (:func:`cuda_grid_launcher`): every SM, the grid
  barrier of :mod:`.barrier` (atomics in global memory), launched
  cooperatively. A [784,256,256,10] step then costs about 14 grid barriers.
  No executor uses it.
- **One cluster** (:func:`cuda_cluster_launcher`, sm_90 and later):
  :data:`CLUSTER_BLOCKS` blocks on as many SMs of one GPC, the cluster's
  hardware barrier between phases (``barrier.cluster`` with release and
  acquire semantics, no atomics), and the phases split for the cluster's
  threads (:func:`.fused.cluster_layout`). ``cupy-fused`` runs networks beyond one
  block's shared memory this way on sm_90 (:func:`.fused.choose_layout`),
  and one block of the same layout where the cluster does not launch.

What each saves over one block awaits a GPU run
(``benchmarks/grid_fused_time.py``; ``benchmarks/barrier_probe.py`` times
the barriers alone).
"""

from __future__ import annotations

import ctypes

import numpy as np

from .barrier import SYNC_MACROS, barrier_functions, host_runner
from .flat import build_host_library

__all__ = ["CLUSTER_BLOCKS", "cuda_cluster_launcher", "cuda_grid_launcher",
           "first_that_launches", "grid_source", "host_cluster_launcher", "host_grid_launcher"]

#: Blocks of the cluster kernel: the largest cluster every sm_90 GPU runs
#: (16 needs a non-portable opt-in), 8 SMs of 1024 threads.
CLUSTER_BLOCKS = 8

_HOST_SHIM_END = "static const nnb_dim threadIdx = {0}, blockDim = {1};\n#endif\n"
_SIGNATURE_END = "T* __restrict__ out, T* __restrict__ work)\n{\n"
_BLOCK_IDS = "const int tid = threadIdx.x, nt = blockDim.x;"
_PARAMS = ("const T* X, const T* Y, const long long* order, long long n, T* params, T* s1, T* s2, "
           "long long count0, double lr, double h1, double h2, double h3, T* out, T* work, "
           "unsigned int* barrier")
_ARGS = "X, Y, order, n, params, s1, s2, count0, lr, h1, h2, h3, out, work, barrier"


def grid_source(source, grid_barrier=True, cluster=0):
    """``nnb_grid_epoch``: the global-placement fused kernel ``source`` (its work
    region in global memory) spread over the grid, with one more argument,
    ``barrier`` (two uint32 counters kept from launch to launch, zeros at first);
    the host build adds ``nnb_host_grid_epoch(G, ...)``. ``grid_barrier=False``
    leaves the barrier out (for the test that it matters). ``cluster=C``: the
    grid is one cluster of C blocks (``__cluster_dims__``, sm_90), whose CUDA
    build waits at the cluster's hardware barrier (see :func:`cuda_cluster_launcher`)."""
    for marker in (_HOST_SHIM_END, _SIGNATURE_END, _BLOCK_IDS, "T* wk = work;",
                   "nnb_fused_epoch("):
        if marker not in source:
            raise ValueError(f"grid_source: not a global-placement fused kernel with its work "
                             f"in global memory (no {marker.splitlines()[0]!r})")
    head, body = source.split(_HOST_SHIM_END, 1)
    shim = (_HOST_SHIM_END.replace("#endif\n", "")
            + "static thread_local nnb_dim blockIdx = {0};\nstatic nnb_dim gridDim = {1};\n"
            "#define __device__\n#define __forceinline__ inline\n"
            "#define __cluster_dims__(x, y, z)\n#endif\n")
    body = body.replace("__syncthreads();", "nnb_grid_sync(barrier, nnb_opened);")
    body = body.replace("nnb_fused_epoch(", "nnb_grid_epoch(", 1)
    if cluster:
        if "void __launch_bounds__(" not in body:
            raise ValueError("grid_source: no __launch_bounds__ to put the cluster's size beside")
        body = body.replace("void __launch_bounds__(",
                            f"void __cluster_dims__({int(cluster)}, 1, 1) __launch_bounds__(", 1)
    body = body.replace(_SIGNATURE_END, "T* __restrict__ out, T* __restrict__ work, "
                        "unsigned int* barrier)\n{\n"
                        "    unsigned int nnb_opened = nnb_barrier_base(barrier);\n", 1)
    body = body.replace(_BLOCK_IDS, "const int tid = blockIdx.x * blockDim.x + threadIdx.x, "
                        "nt = gridDim.x * blockDim.x;", 1)
    typedef_end = body.index("\n", body.index("typedef ")) + 1
    return (head + shim + body[:typedef_end] + SYNC_MACROS
            + barrier_functions(grid_barrier, cluster=bool(cluster))
            + body[typedef_end:] + host_runner("nnb_host_grid_epoch", "nnb_grid_epoch", _PARAMS,
                                               _ARGS))


def host_grid_launcher(n_blocks, compiler="c++", transform=grid_source):
    """A :func:`.fused.make_epoch` launcher running ``nnb_grid_epoch``'s host build on
    ``n_blocks`` blocks (a thread each, one at a time: see :mod:`.barrier`). For
    the tests; ``transform`` makes the source (a test may break it)."""

    def launcher(source, layout, dtype_name):
        lib = ctypes.CDLL(build_host_library(transform(source), "grid", compiler))
        fn = lib.nnb_host_grid_epoch
        pointer, i64, f64 = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_double
        fn.argtypes = [ctypes.c_uint, pointer, pointer, pointer, i64, pointer, pointer, pointer,
                       i64, f64, f64, f64, f64, pointer, pointer, pointer]
        fn.restype = ctypes.c_int
        barrier = np.zeros(2, dtype=np.uint32)

        def launch(X, Y, order, n, params, s1, s2, count0, lr, h1, h2, h3, out, work):
            arrays = (X, Y, order, params, s1, s2, out, work)
            assert all(a.flags.c_contiguous for a in arrays)
            failed = fn(n_blocks, X.ctypes.data, Y.ctypes.data, order.ctypes.data, n,
                        params.ctypes.data, s1.ctypes.data, s2.ctypes.data, count0, lr, h1, h2,
                        h3, out.ctypes.data, work.ctypes.data, barrier.ctypes.data)
            if failed:
                barrier[:] = 0
                raise RuntimeError("nnb_grid_epoch: a grid barrier never opened")

        return launch

    return launcher


def cuda_grid_launcher(n_blocks=None):
    """A :func:`.fused.make_epoch` launcher running ``nnb_grid_epoch`` on the current
    CUDA device: as many blocks of ``layout.threads()`` as the device holds at once
    (at most ``n_blocks``), launched cooperatively so that all are resident."""

    def launcher(source, layout, dtype_name):
        import cupy
        from cupy.cuda import driver

        kernel = cupy.RawKernel(grid_source(source), "nnb_grid_epoch",
                                options=("--std=c++14",))
        threads = layout.threads()
        device = cupy.cuda.Device()
        per_sm = driver.occupancyMaxActiveBlocksPerMultiprocessor(kernel.kernel.ptr, threads, 0)
        blocks = int(per_sm) * int(device.attributes["MultiProcessorCount"])
        if n_blocks is not None:
            blocks = min(blocks, int(n_blocks))
        if blocks < 1:
            raise RuntimeError(f"nnb_grid_epoch: no block of {threads} threads fits an SM")
        barrier = cupy.zeros(2, dtype=cupy.uint32)

        def launch(X, Y, order, n, params, s1, s2, count0, lr, h1, h2, h3, out, work):
            args = (X, Y, order, np.int64(n), params, s1, s2, np.int64(count0), np.float64(lr),
                    np.float64(h1), np.float64(h2), np.float64(h3), out, work, barrier)
            kernel.kernel((blocks,), (threads,), args, enable_cooperative_groups=True)

        launch.blocks = blocks
        return launch

    return launcher


def host_cluster_launcher(blocks=CLUSTER_BLOCKS, compiler="c++"):
    """:func:`host_grid_launcher` for the cluster kernel's source (on the host its
    barrier is the counters' one: the host has no cluster to wait on)."""
    return host_grid_launcher(blocks, compiler,
                              transform=lambda source: grid_source(source, cluster=blocks))


def first_that_launches(first, then, name="the cluster kernel"):
    """``launch`` running ``first`` and, if its first launch raises (a compile
    error, a device that cannot place the cluster), ``then`` from there on.

    A refused launch runs nothing, so the parameters are untouched when
    ``then`` takes over. ``launch.description`` says which runs; it is
    ``first.description`` until a launch fails. ``then`` is a callable that
    makes the fallback's launch (nothing is compiled for it unless needed).
    """
    chosen = {"run": None}

    def launch(*args):
        if chosen["run"] is None:
            try:
                first(*args)
            except Exception as exc:  # noqa: BLE001 - any refusal: the fallback runs instead
                chosen["run"] = then()
                # The first line: a compile error's whole log would swamp the fit's reason.
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                launch.description = (f"{getattr(chosen['run'], 'description', 'the fallback')} "
                                      f"({name} did not launch: {type(exc).__name__}: "
                                      f"{first_line})")
            else:
                chosen["run"] = first
                return
        chosen["run"](*args)

    launch.description = getattr(first, "description", name)
    return launch


def cuda_cluster_launcher(blocks=CLUSTER_BLOCKS, fallback=None):
    """A :func:`.fused.make_epoch` launcher running ``nnb_grid_epoch`` as one cluster of
    ``blocks`` blocks (sm_90 and later): ``blocks`` SMs, the cluster's hardware
    barrier between phases. ``fallback``: a launcher whose kernel runs instead if
    the cluster's first launch fails (:func:`first_that_launches`)."""

    def launcher(source, layout, dtype_name):
        import cupy

        threads = layout.threads()
        barrier = cupy.zeros(2, dtype=cupy.uint32)
        made = {}

        def cluster(X, Y, order, n, params, s1, s2, count0, lr, h1, h2, h3, out, work):
            if "kernel" not in made:
                capability = int(cupy.cuda.Device().compute_capability)
                if capability < 90:
                    raise RuntimeError(f"thread-block clusters need compute capability 9.0, "
                                       f"this device has {capability / 10:.1f}")
                made["kernel"] = cupy.RawKernel(grid_source(source, cluster=blocks),
                                                "nnb_grid_epoch", options=("--std=c++14",))
            args = (X, Y, order, np.int64(n), params, s1, s2, np.int64(count0), np.float64(lr),
                    np.float64(h1), np.float64(h2), np.float64(h3), out, work, barrier)
            made["kernel"]((blocks,), (threads,), args)

        cluster.description = (f"one cluster of {blocks} blocks ({blocks} SMs), the cluster "
                               "barrier between phases")
        cluster.blocks = blocks
        if fallback is None:
            return cluster
        return first_that_launches(cluster, lambda: fallback(source, layout, dtype_name))

    return launcher
