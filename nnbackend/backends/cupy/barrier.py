"""A grid-wide barrier for the generated CUDA kernels, and its host build.

A kernel that runs several dependent phases over the whole GPU in one
launch (the persistent batch kernel, the grid-wide fused epoch) needs every
block to finish a phase before any starts the next. CUDA's
``cooperative_groups`` grid sync would need ``-rdc`` and the device runtime
library, which not every CuPy install can link; this barrier is the
kernel's own: two ``uint32`` counters in global memory and an ``atomicAdd``
per block (:func:`barrier_functions`). Like any grid barrier it needs every
block resident at once, which a cooperative launch guarantees (or refuses).

The host build runs each block as a thread, one at a time in block order
(:func:`host_runner`): a block waiting at the barrier hands over to the
next. The schedule is fixed, so a kernel whose barrier is missing gives the
same wrong numbers every time, and one whose barrier never opens raises
instead of hanging.
"""

from __future__ import annotations

__all__ = ["SYNC_MACROS", "barrier_functions", "host_runner"]

#: The atomics, fences and the spin the barrier is written with, for the GPU
#: and for the host build (GCC's atomics; a waiting block hands over).
SYNC_MACROS = """
#ifndef __CUDACC__
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>
#define NNB_FENCE() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define NNB_ATOMIC_ADD(p, v) __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST)
#define NNB_STORE(p, v) __atomic_store_n(p, v, __ATOMIC_SEQ_CST)
#define NNB_LOAD(p) __atomic_load_n(p, __ATOMIC_SEQ_CST)
static void nnb_host_wait(long long spins);
#define NNB_SPIN(spins) nnb_host_wait(spins)
#else
#define NNB_FENCE() __threadfence()
#define NNB_ATOMIC_ADD(p, v) atomicAdd(p, v)
#define NNB_STORE(p, v) atomicExch(p, v)
#define NNB_LOAD(p) (*(volatile const unsigned int*)(p))
#define NNB_SPIN(spins) ((void)(spins))
#endif
"""


def barrier_functions(enabled=True, cluster=False):
    """``nnb_grid_sync``: every block of the grid waits there until all have arrived.

    ``barrier`` is two counters that outlive the launch (zeros when first
    allocated): [0] the blocks arrived at the current barrier (back to 0
    when it opens), [1] the barriers opened so far, ever. A block reads [1]
    when it starts, before its first arrival, and the count cannot move
    until every block has arrived, so each block knows which value opens
    its next barrier without resetting anything between launches. The
    grid's blocks must all be resident at once, or the first ones to arrive
    wait forever: the CUDA build is launched cooperatively (the launch fails
    instead of hanging where the grid does not fit). On the host each block
    is a thread, and a block that waits lets the next one run.

    ``enabled=False`` leaves the barrier out, for the tests that show a
    kernel's results depend on it. ``cluster=True``: the grid is one
    thread-block cluster (sm_90), and the CUDA build waits at the cluster's
    hardware barrier instead (the counters go unused); the host build keeps
    the counters, the same schedule. Needs :data:`SYNC_MACROS` before it.
    """
    if not enabled:
        return """
static __device__ __forceinline__ unsigned int nnb_barrier_base(unsigned int* barrier) {
    (void)barrier; return 0u;
}
static __device__ __forceinline__ void nnb_grid_sync(unsigned int* barrier, unsigned int& opened) {
    (void)barrier; (void)opened;  // left out: the blocks run on unordered
    __syncthreads();
}
"""
    counters = """    __syncthreads();
    opened += 1u;  // the value of barrier[1] once this barrier opens
    if (threadIdx.x == 0) {
        NNB_FENCE();  // the block's writes before its arrival, for every other block
        const unsigned int arrived = NNB_ATOMIC_ADD(barrier, 1u) + 1u;
        if (arrived == gridDim.x) {
            NNB_STORE(barrier, 0u);
            NNB_FENCE();
            NNB_STORE(barrier + 1, opened);
        } else {
            long long spins = 0;
            // Wrapping compare: [1] only ever counts up.
            while ((int)(NNB_LOAD(barrier + 1) - opened) < 0) NNB_SPIN(++spins);
        }
        NNB_FENCE();
    }
    __syncthreads();
"""
    if cluster:
        counters = """#ifdef __CUDACC__
    (void)barrier; (void)opened;
    // Release before, acquire after, at cluster scope: every block's writes
    // before the barrier (global memory included) are seen by every block
    // of the cluster after it. No fence or atomic: the SMs' barrier unit.
    asm volatile("barrier.cluster.arrive.release.aligned;\\n\\t"
                 "barrier.cluster.wait.acquire.aligned;" ::: "memory");
#else
""" + counters + "#endif\n"
    return """
static __device__ __forceinline__ unsigned int nnb_barrier_base(unsigned int* barrier) {
    return NNB_LOAD(barrier + 1);
}
static __device__ __forceinline__ void nnb_grid_sync(unsigned int* barrier, unsigned int& opened) {
""" + counters + "}\n"


def host_runner(runner_name, kernel_name, params, args):
    """The host build's ``extern "C" int runner_name(unsigned grid, params)``: runs
    ``kernel_name(args)`` on ``grid`` blocks, a thread each, one at a time in block
    order; 0, or 1 if a barrier never opened (a block stopped early)."""
    return """
#ifndef __CUDACC__
static std::mutex nnb_mu;
static std::condition_variable nnb_cv;
static unsigned nnb_turn = 0;
static std::vector<char> nnb_done;
// A barrier that has not opened after this many hand-overs never will.
static const long long NNB_MAX_SPINS = 10000;

static void nnb_hand_over() {{  // with nnb_mu held: the next block still running
    for (unsigned i = 0; i < gridDim.x; ++i) {{
        nnb_turn = (nnb_turn + 1) % gridDim.x;
        if (!nnb_done[nnb_turn]) break;
    }}
    nnb_cv.notify_all();
}}

static void nnb_host_wait(long long spins) {{
    std::unique_lock<std::mutex> lock(nnb_mu);
    if (spins > NNB_MAX_SPINS) throw std::runtime_error("a grid barrier never opened");
    nnb_hand_over();
    const unsigned me = blockIdx.x;
    nnb_cv.wait(lock, [me] {{ return nnb_turn == me; }});
}}

// 0, or 1 if a barrier never opened (a block stopped early).
extern "C" int {runner_name}(unsigned grid, {params})
{{
    gridDim.x = grid;
    nnb_turn = 0;
    nnb_done.assign(grid, 0);
    int failed = 0;
    std::vector<std::thread> blocks;
    for (unsigned b = 0; b < grid; ++b) {{
        blocks.emplace_back([&, b] {{
            blockIdx.x = b;
            {{
                std::unique_lock<std::mutex> lock(nnb_mu);
                nnb_cv.wait(lock, [b] {{ return nnb_turn == b; }});
            }}
            try {{
                {kernel_name}({args});
            }} catch (const std::runtime_error&) {{
                std::lock_guard<std::mutex> lock(nnb_mu);
                failed = 1;
            }}
            std::lock_guard<std::mutex> lock(nnb_mu);
            nnb_done[b] = 1;
            nnb_hand_over();
        }});
    }}
    for (auto& t : blocks) t.join();
    return failed;
}}
#endif
""".format(runner_name=runner_name, kernel_name=kernel_name, params=params, args=args)
