"""Every generated CUDA kernel compiled for a GPU by NVRTC, on a machine without one.

CuPy compiles these sources with NVRTC at a fit's first epoch; a source
that NVRTC rejects would fail only there, on a GPU. Here NVRTC (the
``nvidia-cuda-nvrtc-cu12`` wheel of the test extra) compiles each for an
H100 (sm_90, ptxas included) and the PTX is checked for what the kernels'
correctness rests on: the barriers, the persistent kernel's grid barrier
atomics, and its reads through L2 of what other blocks wrote.
"""

import re

import pytest

from nnbackend.backends.cupy import batch as B
from nnbackend.backends.cupy import fused as F
from nnbackend.backends.cupy.batch_source import kernel_source as batch_source
from nnbackend.network import NetSpec, multiclass_of

from nvrtc import MISSING, compile_for_gpu

# NVRTC on a machine without a GPU: the GPU check's machine compiles them for real.
pytestmark = [pytest.mark.host_build, pytest.mark.skipif(MISSING is not None, reason=str(MISSING))]

NETWORKS = [("tanh", "sigmoid", "bce", 1), ("relu", "softmax", "cross_entropy", 3),
            ("sigmoid", "identity", "mse", 2)]


def _entry(ptx, name):
    """The PTX body of kernel ``name``."""
    start = ptx.index(f".entry {name}(")
    following = ptx.find(".entry ", start + 1)
    return ptx[start:following if following != -1 else len(ptx)]


def _assert_barriers(kernel, sites):
    """Each of a kernel's ``sites`` grid barriers, whole in its PTX: one atomic
    arrival, the count's reset and the opening (two exchanges), and three fences
    (before the arrival, between the reset and the opening, after the wait)."""
    arrivals = kernel.count("atom.global.add.u32")
    assert arrivals == sites > 0
    assert kernel.count("atom.global.exch.b32") == 2 * arrivals
    assert kernel.count("membar.gl") == 3 * arrivals


def _compiled(source):
    ok, log, ptx = compile_for_gpu(source)
    assert ok, log
    return ptx


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("hidden, output, loss, k", NETWORKS)
def test_batch_kernels_compile(hidden, output, loss, k, optimizer, dtype):
    spec = NetSpec(hidden, output, loss, "mean")
    sizes = [32, 64, k] if k > 1 else [13, 6, 5, k]  # one odd-width network
    layout = B.choose_layout(sizes, dtype, 10**6, limit=227 * 1024)
    ptx = _compiled(batch_source(layout, spec, optimizer, dtype, multiclass_of(spec)))
    grad, update = _entry(ptx, "nnb_batch_grad"), _entry(ptx, "nnb_batch_update")
    epochs = _entry(ptx, "nnb_batch_epochs")
    assert "bar.sync" in grad and "bar.sync" in epochs
    _assert_barriers(epochs, 2)
    # Parameters and partials other blocks wrote during the launch: through L2,
    # never the read-only cache (not coherent within a launch).
    assert len(re.findall(r"ld\.global\.cg", epochs)) >= 2
    assert "ld.global.cg" in update and "atom" not in grad


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_prefetched_tiles_load_16_bytes_spill_nothing_and_keep_the_blocks(optimizer):
    # The large-N layout carries the next tile of X in registers: 16-byte
    # global loads, no spills to local memory, and as many resident blocks
    # as the layout without it (both are bound by shared memory to 2 an SM).
    from nvrtc import registers, spilled_bytes

    spec = NetSpec("sigmoid", "sigmoid", "mse", "mean")
    layout = B.choose_layout([32, 64, 1], "float32", 10**7, limit=227 * 1024)
    assert layout.prefetch and layout.prefetch_per_thread == 8
    source = batch_source(layout, spec, optimizer, "float32", None)
    plain = batch_source(layout.without_prefetch(), spec, optimizer, "float32", None)
    grad = _entry(_compiled(source), "nnb_batch_grad")
    assert len(re.findall(r"ld\.global(\.nc)?\.v4\.f32", grad)) >= 1
    assert not re.search(r"ld\.global(\.nc)?\.v4\.f32", _entry(_compiled(plain), "nnb_batch_grad"))
    assert set(spilled_bytes(source).values()) == {0}
    shared = layout.shared_bytes()
    with_regs, without_regs = registers(source), registers(plain)
    for kernel in ("nnb_batch_grad", "nnb_batch_epochs"):
        assert (_blocks_per_sm(with_regs[kernel], layout.threads, shared)
                == _blocks_per_sm(without_regs[kernel], layout.threads, shared) == 2), \
            (with_regs, without_regs)


def test_persistent_kernel_without_the_barrier_has_no_atomics():
    # What the test above checks is there because of the barrier.
    spec = NetSpec("tanh", "sigmoid", "mse", "mean")
    layout = B.choose_layout([32, 64, 1], "float32", 10**6, limit=227 * 1024)
    ptx = _compiled(batch_source(layout, spec, "sgd", "float32", False, grid_barrier=False))
    assert "atom.global" not in _entry(ptx, "nnb_batch_epochs")


@pytest.mark.parametrize("sizes, batch_size", [([32, 24, 16, 3], 16), ([32, 64, 1], 1),
                                               ([784, 256, 256, 10], 1),
                                               ([784, 256, 256, 10], 64)])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fused_epoch_kernel_compiles(sizes, batch_size, optimizer):
    spec = NetSpec("relu", "softmax", "cross_entropy", "mean") if sizes[-1] > 1 else \
        NetSpec("sigmoid", "sigmoid", "mse", "sum")
    layout = F.Layout(sizes, batch_size)
    ptx = _compiled(F.kernel_source(layout, spec, optimizer, "float32", multiclass_of(spec)))
    assert "bar.sync" in _entry(ptx, "nnb_fused_epoch")


@pytest.mark.parametrize("sizes, batch_size, slots", [([32, 64, 1], 1, 1), ([32, 64, 1], 64, 8),
                                                      ([784, 256, 256, 10], 1, 1)])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_prefetched_gather_spills_nothing(sizes, batch_size, slots, optimizer):
    # The benchmark's fused steps carry the next step's rows in registers: the
    # 1024-thread global kernel has 64 a thread, which one slot more would spill.
    from nvrtc import spilled_bytes

    spec = NetSpec("relu", "softmax", "cross_entropy", "mean") if sizes[-1] > 1 else \
        NetSpec("sigmoid", "sigmoid", "mse", "sum")
    layout = F.Layout(sizes, batch_size, "float32", 227 * 1024)
    assert layout.gather_slots() == slots
    source = F.kernel_source(layout, spec, optimizer, "float32", multiclass_of(spec))
    assert "gx[k] = X[gi[k]" in source
    # The targets a step ahead too, where the parameters are in shared memory.
    assert ("gy[q][j] = Y[yi[q]" in source) == (layout.params_in == "shared")
    assert set(spilled_bytes(source).values()) == {0}


@pytest.mark.parametrize("optimizer, arrays", [("sgd", 1), ("momentum", 2), ("adam", 3)])
def test_the_global_update_loads_16_bytes_and_asks_l1_ahead(optimizer, arrays):
    # [784,256,256,10]'s update streams its parameters (and state) through the
    # block's SM: 16-byte loads and stores, and an L1 prefetch of a later
    # iteration's (a load cannot pass the store before it), within 64 registers.
    from nvrtc import spilled_bytes

    spec = NetSpec("relu", "softmax", "cross_entropy", "mean")
    layout = F.Layout([784, 256, 256, 10], 1, "float32", 227 * 1024)
    assert [layout.update_vectors(l) for l in range(3)] == [True, True, False]
    source = F.kernel_source(layout, spec, optimizer, "float32", True)
    kernel = _entry(_compiled(source), "nnb_fused_epoch")
    # Two layers (unrolled: a prefetch of each array for each copy of the body).
    prefetches = kernel.count("prefetch.global.L1")
    assert prefetches >= 2 * arrays and prefetches % arrays == 0
    assert len(re.findall(r"ld\.global(\.nc)?\.v4\.f32", kernel)) >= 2
    assert len(re.findall(r"st\.global\.v4\.f32", kernel)) >= 2
    assert set(spilled_bytes(source).values()) == {0}


@pytest.mark.parametrize("n_samples", [1000, 10**7])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_benchmarks_batch_kernels_spill_nothing(n_samples, optimizer):
    # The small model's full-batch kernels, as the executor lays them out at
    # small and large N: a change that tips ptxas into spilling shows here
    # (loading the partials in predicated groups of 8 or 16 did: 64 bytes).
    from nvrtc import spilled_bytes

    spec = NetSpec("sigmoid", "sigmoid", "mse", "mean")
    layout = B.choose_layout([32, 64, 1], "float32", n_samples, limit=227 * 1024)
    source = batch_source(layout, spec, optimizer, "float32", None)
    assert set(spilled_bytes(source).values()) == {0}


def test_a_source_nvrtc_rejects_says_why():
    ok, log, _ = compile_for_gpu('extern "C" __global__ void k() { undeclared(); }')
    assert not ok and "undeclared" in log


@pytest.mark.parametrize("sizes, batch_size", [([784, 256, 256, 10], 1), ([32, 64, 1], 64)])
@pytest.mark.parametrize("dtype, optimizer", [("float32", "sgd"), ("float64", "adam")])
def test_grid_fused_kernel_compiles(sizes, batch_size, dtype, optimizer):
    from nnbackend.backends.cupy.grid import grid_source

    spec = NetSpec("relu", "softmax", "cross_entropy", "mean") if sizes[-1] > 1 else \
        NetSpec("sigmoid", "sigmoid", "mse", "sum")
    layout = F.Layout(sizes, batch_size, dtype, params_in="global", acts_in="global")
    source = grid_source(F.kernel_source(layout, spec, optimizer, dtype, multiclass_of(spec)))
    kernel = _entry(_compiled(source), "nnb_grid_epoch")
    assert "bar.sync" in kernel
    _assert_barriers(kernel, source.count("nnb_grid_sync(barrier, nnb_opened);"))


@pytest.mark.parametrize("dtype, optimizer, batch_size", [("float32", "sgd", 1),
                                                        ("float32", "adam", 1),
                                                        ("float32", "momentum", 8),
                                                        ("float64", "sgd", 1)])
def test_the_cluster_kernel_is_one_cluster_of_8_with_its_hardware_barrier(dtype, optimizer,
                                                                           batch_size):
    # The executor's kernel for [784,256,256,10] on sm_90: the cluster's size
    # in the PTX (a launch of any other grid fails), each grid barrier the
    # cluster's arrive (release) and wait (acquire), no atomics, and the float32
    # kernels within 64 registers with nothing spilled.
    from nnbackend.backends.cupy.grid import CLUSTER_BLOCKS, grid_source
    from nvrtc import spilled_bytes

    spec = NetSpec("relu", "softmax", "cross_entropy", "mean")
    layout, on_cluster = F.choose_layout([784, 256, 256, 10], batch_size, dtype, 227 * 1024, 90)
    assert on_cluster
    source = grid_source(F.kernel_source(layout, spec, optimizer, dtype, True),
                         cluster=CLUSTER_BLOCKS)
    kernel = _entry(_compiled(source), "nnb_grid_epoch")
    sites = source.count("nnb_grid_sync(barrier, nnb_opened);")
    assert sites > 0
    assert ".explicitcluster" in kernel and ".reqnctapercluster 8, 1, 1" in kernel
    assert kernel.count("barrier.cluster.arrive.release.aligned") == sites
    assert kernel.count("barrier.cluster.wait.acquire.aligned") == sites
    assert "atom." not in kernel and "membar.gl" not in kernel
    if dtype == "float32":
        assert set(spilled_bytes(source).values()) == {0}


def _blocks_per_sm(regs, threads, shared, sm_regs=65536, sm_shared=233472):
    """Blocks an H100 SM holds: registers (a warp's rounded up to 8 a thread) and
    shared memory (1 KiB reserved a block) each bound it."""
    by_regs = sm_regs // (-(-threads // 32) * (-(-regs // 8) * 8) * 32)
    return min(by_regs, sm_shared // (shared + 1024))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_persistent_kernel_holds_as_many_blocks_as_the_gradient_kernel(dtype, optimizer):
    # CupyBatch caps the grid at the persistent kernel's resident blocks (so both
    # paths add the same partials): that cap must not cost the gradient kernel
    # blocks at large N, where it is what runs an epoch read on its own.
    from nvrtc import registers

    spec = NetSpec("sigmoid", "sigmoid", "mse", "mean")
    layout = B.choose_layout([32, 64, 1], dtype, 10**7, limit=227 * 1024)
    regs = registers(batch_source(layout, spec, optimizer, dtype, None))
    shared = layout.shared_bytes()
    persistent = _blocks_per_sm(regs["nnb_batch_epochs"], layout.threads, shared)
    assert persistent >= 1
    assert persistent == _blocks_per_sm(regs["nnb_batch_grad"], layout.threads, shared), regs


@pytest.mark.parametrize("n_samples", [1000, 10**4])
def test_the_benchmarks_small_n_persistent_kernel_holds_three_blocks_an_sm(n_samples):
    # Below ~3e4 rows the tiles are 32 rows (32 KB of shared memory: 7 blocks an
    # SM) and the grid is what the persistent kernel holds. With the gradient's
    # edges in strips its SGD build takes 165 registers a thread, the gradient
    # kernel 168 (3 blocks an SM; NVRTC 12.9 with CuPy's -ftz=true); in 4x4
    # blocks throughout it took 213 (2).
    from nvrtc import registers

    spec = NetSpec("sigmoid", "sigmoid", "mse", "mean")
    layout = B.choose_layout([32, 64, 1], "float32", n_samples, limit=227 * 1024)
    assert layout.rows == 32 and not layout.prefetch
    regs = registers(batch_source(layout, spec, "sgd", "float32", None))
    shared = layout.shared_bytes()
    for kernel in ("nnb_batch_grad", "nnb_batch_epochs"):
        assert _blocks_per_sm(regs[kernel], layout.threads, shared) == 3, regs
