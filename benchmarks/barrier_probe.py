"""What a barrier costs on the GPU: one block, a thread-block cluster, the whole grid.

The fused epoch kernel runs a step as a chain of phases with a barrier
between each two. On one block that barrier is ``__syncthreads()``, but one
SM streams all the parameters: a [784,256,256,10] SGD step reads them twice
and writes them once, 3.2 MB through one SM, which is well above 30 µs at an
SM's share of the L2 bandwidth. Spreading a step over several SMs needs a
barrier across blocks.

- **A grid barrier.** The one of :mod:`nnbackend.backends.cupy.barrier`:
  atomics in global memory. :mod:`.grid` uses it.
- **A cluster barrier.** On sm_90, a cluster of up to 8 blocks has a
  hardware barrier, and each block reads the others' shared memory directly
  (distributed shared memory). Eight SMs hold [784,256,256,10]'s 1.1 MB of
  float32 parameters in their shared memory, so no step would move them
  through L2.

This probe times each barrier the way a step would use it. Each round, every
block writes its slot, waits at the barrier, then reads a neighbour's slot
(the next thread for ``__syncthreads()``, the next block's shared memory for
a cluster, global memory for the grid). It prints µs a round for: one block
of 1024 threads; clusters of 2, 4 and 8 blocks of 1024; the grid barrier over
8 blocks and over every SM. Those figures decide whether a cluster kernel
for the mid-sized networks is worth writing.

    python benchmarks/barrier_probe.py             # on a GPU: the table
    python benchmarks/barrier_probe.py --rounds 20000

Without CuPy on a GPU it builds the sources with NVRTC (where the test
extra's NVRTC is installed) for sm_90, says so, and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from nnbackend.backends.cupy.barrier import SYNC_MACROS, barrier_functions

THREADS = 1024
CLUSTERS = (2, 4, 8)


def block_source():
    """``probe_block(rounds, out)``: one block, ``__syncthreads()`` between rounds."""
    return r"""
extern "C" __global__ void __launch_bounds__(1024) probe_block(const int rounds, float* out)
{
    __shared__ float slot[2][1024];
    const int tid = threadIdx.x, nt = blockDim.x;
    float acc = 0.0f;
    for (int k = 0; k < rounds; ++k) {
        slot[k & 1][tid] = acc + (float)k;
        __syncthreads();
        acc += slot[k & 1][(tid + 1) % nt];
    }
    out[tid] = acc;
}
"""


def cluster_source(size):
    """``probe_cluster_SIZE(rounds, out)``: clusters of ``size`` blocks, the hardware
    cluster barrier between rounds, each block reading the next block's slot."""
    return rf"""
extern "C" __global__ void __cluster_dims__({size}, 1, 1) __launch_bounds__(1024)
probe_cluster_{size}(const int rounds, float* out)
{{
    __shared__ float slot[2][1024];
    const int tid = threadIdx.x;
    unsigned rank, ranks;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(ranks));
    const unsigned next = (rank + 1) % ranks;
    float acc = 0.0f;
    for (int k = 0; k < rounds; ++k) {{
        slot[k & 1][tid] = acc + (float)k;
        asm volatile("barrier.cluster.arrive.release.aligned;\n"
                     "barrier.cluster.wait.acquire.aligned;" ::: "memory");
        // The next block's slot, through distributed shared memory.
        const unsigned local = (unsigned)__cvta_generic_to_shared(&slot[k & 1][tid]);
        unsigned remote;
        float v;
        asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(local), "r"(next));
        asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(remote) : "memory");
        acc += v;
    }}
    // No block may exit while another can still read its shared memory.
    asm volatile("barrier.cluster.arrive.release.aligned;\n"
                 "barrier.cluster.wait.acquire.aligned;" ::: "memory");
    out[blockIdx.x * blockDim.x + tid] = acc;
}}
"""


def grid_source():
    """``probe_grid(rounds, out, slots, barrier)``: the library's grid barrier between
    rounds, each block reading the next block's slot in global memory."""
    return ("typedef float T;\n" + SYNC_MACROS + barrier_functions() + r"""
extern "C" __global__ void __launch_bounds__(1024) probe_grid(
    const int rounds, float* out, float* slots, unsigned int* barrier)
{
    unsigned int opened = nnb_barrier_base(barrier);
    const int tid = threadIdx.x, nt = blockDim.x, b = blockIdx.x, g = gridDim.x;
    float acc = 0.0f;
    for (int k = 0; k < rounds; ++k) {
        float* mine = slots + (long long)(k & 1) * g * nt;
        mine[b * nt + tid] = acc + (float)k;
        nnb_grid_sync(barrier, opened);
        acc += __ldcg(mine + ((b + 1) % g) * nt + tid);
    }
    out[b * nt + tid] = acc;
}
""")


def sources():
    """``{name: source}`` of every probe kernel."""
    out = {"block": block_source(), "grid": grid_source()}
    out.update({f"cluster {size}": cluster_source(size) for size in CLUSTERS})
    return out


def _time(cupy, launch, rounds):
    """Seconds a round: the launch with ``rounds`` rounds less the one with none."""
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()

    def run(k):
        launch(k)  # warm-up
        start.record()
        launch(k)
        stop.record()
        stop.synchronize()
        return cupy.cuda.get_elapsed_time(start, stop) * 1e-3

    return (run(rounds) - run(0)) / rounds


def measure(rounds):
    """``[(label, µs a round)]`` on the current CUDA device."""
    import cupy
    from cupy.cuda import driver

    device = cupy.cuda.Device()
    n_sms = int(device.attributes["MultiProcessorCount"])
    rows = []
    out = cupy.zeros(n_sms * THREADS, dtype=cupy.float32)
    block = cupy.RawKernel(block_source(), "probe_block", options=("--std=c++14",))
    rows.append(("__syncthreads(), 1 block of 1024",
                 _time(cupy, lambda k: block((1,), (THREADS,), (np.int32(k), out)), rounds)))
    for size in CLUSTERS:
        kernel = cupy.RawKernel(cluster_source(size), f"probe_cluster_{size}",
                                options=("--std=c++14",))
        try:
            seconds = _time(cupy, lambda k: kernel((size,), (THREADS,), (np.int32(k), out)),
                            rounds)
        except Exception as exc:  # a device or driver without clusters
            rows.append((f"cluster barrier, {size} blocks of 1024",
                         f"failed: {type(exc).__name__}: {exc}"))
            continue
        rows.append((f"cluster barrier, {size} blocks of 1024", seconds))
    grid = cupy.RawKernel(grid_source(), "probe_grid", options=("--std=c++14",))
    per_sm = int(driver.occupancyMaxActiveBlocksPerMultiprocessor(grid.kernel.ptr, THREADS, 0))
    barrier = cupy.zeros(2, dtype=cupy.uint32)
    for blocks in (8, min(n_sms, per_sm * n_sms)):
        slots = cupy.zeros(2 * blocks * THREADS, dtype=cupy.float32)

        def launch(k, blocks=blocks, slots=slots):
            grid.kernel((blocks,), (THREADS,), (np.int32(k), out, slots, barrier),
                        enable_cooperative_groups=True)

        rows.append((f"grid barrier, {blocks} blocks of 1024", _time(cupy, launch, rounds)))
    return rows


def compile_only():
    """Each source built by NVRTC for sm_90 (no GPU here): ``{name: None or error}``."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from nvrtc import MISSING, compile_for_gpu

    if MISSING is not None:
        return {name: f"not built: {MISSING}" for name in sources()}
    return {name: (None if ok else log) for name, (ok, log, _) in
            ((name, compile_for_gpu(src)) for name, src in sources().items())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10_000)
    args = parser.parse_args(argv)
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        on_gpu = True
    except Exception as exc:  # no CuPy, or no GPU
        on_gpu = False
        reason = f"{type(exc).__name__}: {exc}"
    if not on_gpu:
        built = compile_only()
        failed = {k: v for k, v in built.items() if v is not None}
        print(f"barrier_probe: not measured, no GPU for CuPy here ({reason}); "
              + ("the sources build for sm_90" if not failed else f"NOT BUILT: {failed}"))
        return 0 if not failed or all(str(v).startswith("not built") for v in failed.values()) \
            else 1
    print(f"barrier_probe: µs a round ({args.rounds} rounds less none; write a slot, "
          "barrier, read a neighbour's)")
    for label, value in measure(args.rounds):
        text = f"{value * 1e6:8.3f}" if isinstance(value, float) else value
        print(f"  {label:40s} {text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
