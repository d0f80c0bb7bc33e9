"""CuPy: a full-batch epoch in two kernel launches, activations kept on chip.

Batch mode is one optimizer step over all N rows. Eagerly it is some twenty
launches of whole-array work whose activations go out to global memory and
come back (about 0.5 ms an epoch at any small N on an H200, and 15 ms at
N = 1e7 for [32,64,1], whose float32 compute floor is about 1.3 ms). This
executor computes the exact full-batch gradient with one grid-wide kernel
(:func:`.batch_source.kernel_source`: each block runs forward, loss and
backward over tiles of rows, activations in registers and shared memory,
and keeps its partial gradient in registers), then adds the blocks'
partials in a fixed order and applies the optimizer in a second kernel.

Launches per epoch: 2, whatever N; around them a flattening copy of the
parameters and of the optimizer state, each unless it is what the last
epoch returned (:class:`.flat.OwnState`). Where the training loop runs a
window of epochs with nothing to read between them, ``epoch.epochs`` runs
them in **one launch** of ``nnb_batch_epochs``: the same two phases per
epoch with a grid barrier of the kernel's own between them, so that a
small-N epoch costs its GPU work, not two launches and their Python. The
barrier needs every block resident at once, which a cooperative launch
guarantees (or refuses); the grid is capped at what the device holds
(:func:`resident_blocks`), so both paths add the same partials: the same
bits. Where the device refuses, the window's epochs are two launches each,
back to back. ``epoch.path`` says which.

Measured on an H200 (2026-12-04, [32,64,1] float32,
``benchmarks/batch_kernel_time.py``): 10.0 ms an epoch at N = 1e7 (0.89x
PyTorch eager's one-shot step, 8x the float32 floor) and 1.1 ms at 1e6. That
1e6-row gradient kernel spent 323 µs staging tiles with no compute, and its
two phases, 37 and 278 µs alone, cost 661 together: too few warps (2 blocks
of 4 an SM, ~200 registers a thread) to hide the loads. So at large N each
block loads its next tile of X into registers (16-byte reads) while it
computes the current one (:class:`BatchLayout`'s ``prefetch``; about 210
registers a thread instead of 167 on sm_90, still 2 blocks an SM, no
spills); what that saves awaits a GPU run. In the reduction each thread adds
whole 4x4 blocks of the gradient, and the parameters at a layer's edges (the
bias row, a one-unit output layer) go in 1x4, 4x1 and 1x1 strips spread
over the warps (``strips``): for [32,64,1] the busiest warp issues 20
multiply-adds a row where 4x4 blocks throughout give it 32; what that
saves also awaits a GPU run. Below 1e5 rows an
epoch is ~150-250 µs of host work (the Python and CuPy calls around the two
launches), not GPU time. The persistent kernel and the 64-epoch windows
that remove that work await a GPU run.
Memory: ``partials`` is (G, P + 2) for G blocks, nothing N-sized.
Determinism: block b always takes tiles b, b + G, ...; its sums run in that
order, and the blocks' partials are added in block order, so a fit gives
the same bits run to run on one device.

It takes networks whose every layer's fan_in + fan_out is at most
:data:`MAX_ROW_WIDTH` (a row's layer lives in one thread's registers) and
whose parameters and a tile's activations fit a block's shared memory;
:func:`unsupported` says why anything else takes the chunked reference
loop (which, on CuPy, is cuBLAS over chunks of rows).

The row order of a shuffled batch epoch does not change its gradient but
for rounding; the kernel reads the rows in storage order.
"""

from __future__ import annotations

import contextlib
import ctypes

import numpy as np

from .batch_source import kernel_source
from .flat import OwnState, build_host_library, flat_views, with_window_path
from .fused import SHARED_BYTES, shared_limit
from .kernel_update import kernel_update

__all__ = ["BatchLayout", "CupyBatch", "MAX_ROW_WIDTH", "cuda_launcher", "cuda_persistent",
           "host_launcher", "host_persistent", "make_epoch", "resident_blocks", "staging_for",
           "unsupported"]

# A thread holds one row's layer input and output in registers (fully
# unrolled loops); past this many values they spill to local memory.
MAX_ROW_WIDTH = 192
# Gradient accumulators per thread, kept in registers (16 a 4x4 block, 4 a strip).
MAX_ACCUMULATORS = 128
# Threads per block at least: a warp or two alone waits on every global load.
MIN_THREADS = 128
# A thread's share of the next tile of X, carried in registers (32 of them).
MAX_PREFETCH_BYTES = 128
UPDATE_THREADS = 256
_ITEM = {"float32": 4, "float64": 8}


def _stride(width):
    """A row stride of at least ``width`` elements, a multiple of 4 and 4 mod 8: the
    16-byte accesses of 8 consecutive rows (a quarter-warp) then hit distinct banks."""
    s = -(-width // 4) * 4
    return s if s % 8 == 4 else s + 4


class BatchLayout:
    """Where the gradient kernel keeps what, for tiles of ``rows`` rows.

    Parameters
    ----------
    sizes : sequence of int
        Layer sizes, inputs first.
    dtype_name : {"float32", "float64"}
    rows : int
        Rows per tile: one thread each runs a row's forward and backward passes.
    threads : int, optional
        Threads per block, at least ``rows`` (default: ``max(rows, 128)``): the
        others help stage the tile and add its gradient, which on a small tile
        keep a lone warp waiting on memory.
    prefetch : bool, optional
        Carry the block's next tile of X in registers while it computes the
        current one (16-byte loads, issued before the tile's compute and
        stored to shared memory after it), instead of loading each tile at
        its start with nothing else to do. Default: where the rows are
        whole 4-element vectors (``sizes[0]`` a multiple of 4: 16 bytes in
        float32, 32 in float64) and a thread's share is at most
        :data:`MAX_PREFETCH_BYTES`.
        X must then be 16-byte aligned (:func:`staging_for`). The same
        values reach shared memory either way: the same bits.
    strips : bool, optional
        Split the gradient into whole 4x4 blocks and, for what is left at a
        layer's edges (its last rows, the ones row among them, and its last
        columns), 1x4, 4x1 and 1x1 strips (default). False: 4x4 blocks
        throughout, partly empty at the edges, which leaves threads that
        take two blocks where a strip would do (kept for timing against).
        Each parameter sums its rows in the same order either way: the same
        bits.

    Attributes
    ----------
    w_offsets : list of int
        Where each layer's W starts in the flat parameters (b follows W).
    act_offsets, act_strides : list of int
        Layer l's input (rows, fan_in + 1: the last column is ones) in shared memory.
    dz_offsets, dz_strides : list of int
        dL/dz of layer l's outputs (rows, fan_out) in shared memory.
    blocks : list of tuple
        The gradient's 4x4 blocks, in the order threads take them (thread
        ``t`` takes ``t``, ``t + threads``, ...): input offset and stride,
        dz offset and stride, parameter offset, fan_out, rows and columns
        used (4 and 4 but with ``strips=False``).
    strip_table : list of tuple
        Thread ``t``'s strips are entries ``t``, ``t + threads``, ...: kind
        (0 none, 1 one input unit by 4 outputs, 2 four input units by one
        output, 3 one parameter), input offset and stride, dz offset and
        stride, first parameter and the step to the next. A warp's
        entries are all of one kind (its loop takes one branch), and the
        strips go first to the warps that take fewer blocks.
    accumulators : int
        Gradient sums a thread keeps in registers (at most :data:`MAX_ACCUMULATORS`).
    prefetch_vectors : int
        4-element vectors of X in a tile (0 without ``prefetch``).
    """

    def __init__(self, sizes, dtype_name="float32", rows=128, threads=None, prefetch=None,
                 strips=True):
        self.sizes = [int(s) for s in sizes]
        self.dtype_name = dtype_name
        self.rows = R = int(rows)
        self.threads = max(R, MIN_THREADS) if threads is None else int(threads)
        if self.threads < R:
            raise ValueError(f"BatchLayout: {self.threads} threads for tiles of {R} rows")
        self.n_layers = len(self.sizes) - 1
        self.w_offsets, self.shapes = [], []
        offset = 0
        for fan_in, fan_out in zip(self.sizes, self.sizes[1:]):
            self.w_offsets.append(offset)
            self.shapes += [(fan_in, fan_out), (fan_out,)]
            offset += fan_in * fan_out + fan_out
        self.n_params = offset
        offset = -(-offset // 4) * 4  # 16-byte aligned buffers after the parameters
        self.act_offsets, self.act_strides, self.dz_offsets, self.dz_strides = [], [], [], []
        for fan_in, fan_out in zip(self.sizes, self.sizes[1:]):
            self.act_offsets.append(offset)
            self.act_strides.append(_stride(fan_in + 1))
            offset += R * self.act_strides[-1]
            self.dz_offsets.append(offset)
            self.dz_strides.append(_stride(fan_out))
            offset += R * self.dz_strides[-1]
        self.loss_offset = offset
        self.n_shared = offset + 2 * self.threads
        self.strips = bool(strips)
        # Warps of 32 threads (the whole block where it is not a multiple of 32).
        self.lanes = 32 if self.threads % 32 == 0 else self.threads
        self.blocks, self.strip_table = self._gradient_items()
        self.block_slots = -(-len(self.blocks) // self.threads)
        self.strip_slots = len(self.strip_table) // self.threads
        self.accumulators = 16 * self.block_slots + 4 * self.strip_slots
        n_in = self.sizes[0]
        vectors = R * n_in // 4
        fits = (n_in % 4 == 0
                and -(-vectors // self.threads) * 4 * _ITEM[dtype_name] <= MAX_PREFETCH_BYTES)
        if prefetch is None:
            prefetch = fits
        elif prefetch and not fits:
            raise ValueError(f"BatchLayout: no prefetch for rows of {n_in} {dtype_name} values "
                             f"in tiles of {R} on {self.threads} threads")
        self.prefetch = bool(prefetch)
        self.prefetch_vectors = vectors if self.prefetch else 0
        self.prefetch_per_thread = -(-vectors // self.threads) if self.prefetch else 0

    def _gradient_items(self):
        """``(blocks, strip_table)``: who adds which parameters' gradient (see the class)."""
        blocks, strips = [], {1: [], 2: [], 3: []}
        for l, (fan_in, fan_out) in enumerate(zip(self.sizes, self.sizes[1:])):
            a, a_st = self.act_offsets[l], self.act_strides[l]
            d, d_st, w = self.dz_offsets[l], self.dz_strides[l], self.w_offsets[l]
            n_rows = fan_in + 1  # the ones row: the bias
            if self.strips:
                rows_b, cols_b = n_rows // 4 * 4, fan_out // 4 * 4
            else:
                rows_b, cols_b = -(-n_rows // 4) * 4, -(-fan_out // 4) * 4
            # Consecutive threads take consecutive column blocks of one row block, so
            # a warp's input loads are one broadcast and its dz loads contiguous.
            for i0 in range(0, rows_b, 4):
                for j0 in range(0, cols_b, 4):
                    blocks.append((a + i0, a_st, d + j0, d_st, w + i0 * fan_out + j0, fan_out,
                                   min(4, n_rows - i0), min(4, fan_out - j0)))
            for i in range(rows_b, n_rows):
                for j0 in range(0, cols_b, 4):
                    strips[1].append((1, a + i, a_st, d + j0, d_st, w + i * fan_out + j0, 1))
            for j in range(cols_b, fan_out):
                for i0 in range(0, rows_b, 4):
                    strips[2].append((2, a + i0, a_st, d + j, d_st, w + i0 * fan_out + j,
                                      fan_out))
            for i in range(rows_b, n_rows):
                for j in range(cols_b, fan_out):
                    strips[3].append((3, a + i, a_st, d + j, d_st, w + i * fan_out + j, 0))
        # Each warp takes a chunk of one kind per strip slot, so that its loop never
        # runs two kinds' code one after the other. The 4-wide chunks first, each
        # to the warp with the least work so far (per tile row: 16 multiply-adds
        # a block, 4 a strip, 1 a single parameter).
        lanes = self.lanes
        n_warps = self.threads // lanes
        chunks = [items[i:i + lanes] for kind in (1, 2, 3)
                  for items in [strips[kind]] for i in range(0, len(items), lanes)]
        work = [16 * sum(1 for k in range(-(-len(blocks) // self.threads))
                         if k * self.threads + w * lanes < len(blocks)) for w in range(n_warps)]
        placed = [[] for _ in range(n_warps)]
        for chunk in chunks:
            w = min(range(n_warps), key=lambda v: (work[v], v))
            placed[w].append(chunk)
            work[w] += 4 if chunk[0][0] < 3 else 1
        slots = max(1, max(len(p) for p in placed))
        table = [(0, 0, 0, 0, 0, 0, 0)] * (slots * self.threads)
        for w, mine in enumerate(placed):
            for k, chunk in enumerate(mine):
                start = k * self.threads + w * lanes
                table[start:start + len(chunk)] = chunk
        return blocks, table

    def fma_per_row(self):
        """Multiply-adds each warp issues per tile row to add the tile's gradient:
        the most over its threads, slot by slot (a warp runs a slot if any thread has it)."""
        lanes = self.lanes
        cost = {0: 0, 1: 4, 2: 4, 3: 1}
        out = []
        for w in range(self.threads // lanes):
            threads = range(w * lanes, (w + 1) * lanes)
            total = 0
            for k in range(self.block_slots):
                total += 16 if any(t + k * self.threads < len(self.blocks) for t in threads) else 0
            for k in range(self.strip_slots):
                total += max(cost[self.strip_table[t + k * self.threads][0]] for t in threads)
            out.append(total)
        return out

    def fits(self, limit=SHARED_BYTES):
        """Whether a block's shared memory (at most ``limit`` bytes) and a thread's
        registers hold this layout."""
        return self.shared_bytes() <= limit and self.accumulators <= MAX_ACCUMULATORS

    def without_prefetch(self):
        """This layout, its tiles of X loaded at each tile's start (any alignment)."""
        return BatchLayout(self.sizes, self.dtype_name, self.rows, self.threads, prefetch=False,
                           strips=self.strips)

    def shared_bytes(self, dtype_name=None):
        """Dynamic shared memory one block takes, in bytes."""
        return self.n_shared * _ITEM[dtype_name or self.dtype_name]

    def grid(self, n_samples, n_sms=132, blocks_per_sm=1):
        """Blocks to launch for ``n_samples`` rows: one per tile, at most what the GPU
        holds at once (``n_sms * blocks_per_sm``)."""
        tiles = -(-int(n_samples) // self.rows)
        return max(1, min(tiles, n_sms * blocks_per_sm))


def _address(a):
    """The device (CuPy) or host (NumPy) address of ``a``'s first element."""
    pointer = getattr(a.data, "ptr", None)
    return int(pointer) if pointer is not None else int(a.ctypes.data)


def staging_for(layout, X):
    """``layout``, or its form without ``prefetch`` where ``X`` (C-contiguous) does not
    start on a 16-byte boundary (a view that begins inside another array)."""
    if layout.prefetch and _address(X) % 16:
        return layout.without_prefetch()
    return layout


def choose_layout(sizes, dtype_name, n_samples, n_sms=132, limit=SHARED_BYTES):
    """The layout for ``n_samples`` rows: tiles of 128 rows where the data fills
    the GPU with them, smaller tiles (more blocks) for small N; None if no tile
    size fits ``limit`` bytes of shared memory and the register budget.

    X is prefetched (:class:`BatchLayout`'s ``prefetch``) where the blocks take
    several tiles each, which is where a tile's loads can wait behind the
    previous tile's compute; with a tile or two a block, the registers it
    takes (about 45 a thread for [32,64,1] in float32) could cost resident blocks
    for nothing.
    """
    for rows in (128, 64, 32):
        layout = BatchLayout(sizes, dtype_name, rows, prefetch=False)
        if not layout.fits(limit):
            continue
        tiles = -(-n_samples // rows)
        if not (rows == 32 or tiles >= 2 * n_sms):
            if BatchLayout(sizes, dtype_name, rows // 2).fits(limit):
                continue
        if tiles > 4 * n_sms:
            layout = BatchLayout(sizes, dtype_name, rows)
        return layout
    return None


def unsupported(spec, plan, opt, sizes, dtype_name, limit=SHARED_BYTES):
    """Why the batch kernels cannot run this fit (a string), or None if they can."""
    if plan.batch_size < plan.n_samples:
        return "not batch mode (the fused epoch kernel takes mini-batches)"
    if dtype_name not in _ITEM:
        return f"dtype {dtype_name!r}"
    if sizes is None:
        return "the layer sizes are unknown"
    why = kernel_update(opt, plan, sizes)[1]
    if why is not None:
        return why
    widest = max(a + b for a, b in zip(sizes, sizes[1:]))
    if widest > MAX_ROW_WIDTH:
        return (f"a layer's fan_in + fan_out is {widest}, more than the {MAX_ROW_WIDTH} values "
                "one thread keeps of a row (the chunked path runs it through cuBLAS)")
    if choose_layout(sizes, dtype_name, plan.n_samples, limit=limit) is None:
        return (f"the parameters and a tile of 32 rows' activations need more than the "
                f"{limit} bytes of shared memory a block may use")
    return None


def _sm_count(device):
    try:
        return int(device.attributes["MultiProcessorCount"])
    except (KeyError, AttributeError, TypeError):
        return 1


def cuda_launcher(source, layout, dtype_name, device=None):
    """``(grad, update)`` launching the two kernels on the current CUDA device."""
    import cupy

    # One NVRTC compilation: CuPy caches the module by its source and options.
    grad_kernel = cupy.RawKernel(source, "nnb_batch_grad", options=("--std=c++14",))
    update_kernel = cupy.RawKernel(source, "nnb_batch_update", options=("--std=c++14",))
    shared = layout.shared_bytes(dtype_name)
    if shared > SHARED_BYTES:
        grad_kernel.max_dynamic_shared_size_bytes = shared

    def grad(X, Y, n, params, partials, n_blocks):
        grad_kernel((n_blocks,), (layout.threads,), (X, Y, np.int64(n), params, partials),
                    shared_mem=shared)

    def update(partials, n_blocks, params_in, params, s1, s2, count0, lr, h1, h2, h3, out):
        blocks = min(1024, -(-(layout.n_params + 2) // UPDATE_THREADS))
        update_kernel((blocks,), (UPDATE_THREADS,),
                      (partials, np.int64(n_blocks), params_in, params, s1, s2, np.int64(count0),
                       np.float64(lr), np.float64(h1), np.float64(h2), np.float64(h3), out))

    return grad, update


def host_launcher(source, layout, dtype_name, device=None, compiler="c++"):
    """``(grad, update)`` running the same source compiled for the host: one
    thread, the grid's blocks one after another. For the tests (NumPy arrays)."""
    library = build_host_library(source, "batch", compiler)
    lib = ctypes.CDLL(library)
    pointer, i64, f64 = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_double
    lib.nnb_batch_grad.argtypes = [pointer, pointer, i64, pointer, pointer]
    lib.nnb_batch_update.argtypes = [pointer, i64, pointer, pointer, pointer, pointer, i64, f64, f64,
                                     f64, f64, pointer]
    lib.nnb_set_grid.argtypes = [ctypes.c_uint, ctypes.c_uint]
    for fn in (lib.nnb_batch_grad, lib.nnb_batch_update, lib.nnb_set_grid):
        fn.restype = None

    def grad(X, Y, n, params, partials, n_blocks):
        for a in (X, Y, params, partials):
            assert a.flags.c_contiguous
        for block in range(n_blocks):
            lib.nnb_set_grid(block, n_blocks)
            lib.nnb_batch_grad(X.ctypes.data, Y.ctypes.data, n, params.ctypes.data,
                               partials.ctypes.data)

    def update(partials, n_blocks, params_in, params, s1, s2, count0, lr, h1, h2, h3, out):
        lib.nnb_set_grid(0, 1)
        lib.nnb_batch_update(partials.ctypes.data, n_blocks, params_in.ctypes.data,
                             params.ctypes.data, s1.ctypes.data, s2.ctypes.data, count0, lr, h1, h2,
                             h3, out.ctypes.data)

    return grad, update


def _epochs_args(X, Y, n, params0, buf_a, buf_b, params_last, partials, s1, s2, count0, k, lr,
                 h1, h2, h3, out, barrier):
    """``nnb_batch_epochs``'s arguments in order, the integers and floats typed."""
    return (X, Y, np.int64(n), params0, buf_a, buf_b, params_last, partials, s1, s2,
            np.int64(count0), np.int64(k), np.float64(lr), np.float64(h1), np.float64(h2),
            np.float64(h3), out, barrier)


def _persistent_kernel(source, layout, dtype_name):
    """``(kernel, shared bytes, blocks an SM holds)`` for ``nnb_batch_epochs`` on the
    current device; raises where it does not compile or the driver cannot say."""
    import cupy
    from cupy.cuda import driver

    kernel = cupy.RawKernel(source, "nnb_batch_epochs", options=("--std=c++14",))
    shared = layout.shared_bytes(dtype_name)
    if shared > SHARED_BYTES:
        kernel.max_dynamic_shared_size_bytes = shared
    per_sm = driver.occupancyMaxActiveBlocksPerMultiprocessor(kernel.kernel.ptr, layout.threads,
                                                              shared)
    return kernel, shared, int(per_sm)


def resident_blocks(source, layout, dtype_name, device):
    """Blocks of the persistent kernel that ``device`` holds at once (0: none, or it
    cannot say)."""
    try:
        with device:
            if not int(device.attributes.get("CooperativeLaunch", 1)):
                return 0
            return _persistent_kernel(source, layout, dtype_name)[2] * _sm_count(device)
    except Exception:  # compilation, or a driver that refuses the query
        return 0


def cuda_persistent(source, layout, dtype_name, n_blocks, device=None):
    """``(run, None)``: ``run(X, Y, n, params0, buf_a, buf_b, params_last, partials,
    s1, s2, count0, k, lr, h1, h2, h3, out, barrier)`` launches ``nnb_batch_epochs``
    (k epochs, one launch) on ``n_blocks`` blocks, cooperatively; or ``(None, why)``
    where this device cannot hold them all at once.

    A cooperative launch is what guarantees that every block of the grid is
    resident (the kernel's own barrier would wait forever on one that is
    not); the kernel does not use CUDA's cooperative groups, so it compiles
    without ``-rdc`` or the device runtime library.
    """
    import cupy

    dev = cupy.cuda.Device()
    try:
        if not int(dev.attributes.get("CooperativeLaunch", 1)):
            return None, "this device has no cooperative launch"
        kernel, shared, per_sm = _persistent_kernel(source, layout, dtype_name)
    except Exception as exc:  # compilation, or a driver that refuses the query
        return None, f"the persistent kernel is not available ({type(exc).__name__}: {exc})"
    resident = per_sm * _sm_count(dev)
    if n_blocks > resident:
        return None, (f"{n_blocks} blocks, more than the {resident} this device holds at once "
                      f"({per_sm} an SM)")

    def run(*args):
        kernel.kernel((n_blocks,), (layout.threads,), _epochs_args(*args), shared_mem=shared,
                      enable_cooperative_groups=True)

    return run, None


def host_persistent(source, layout, dtype_name, n_blocks, device=None, compiler="c++"):
    """``(run, None)``: :func:`cuda_persistent`'s ``run`` on the host build, a thread a
    block, one running at a time (the kernel's barrier hands over). For the tests."""
    library = build_host_library(source, "batch", compiler)
    lib = ctypes.CDLL(library)
    pointer, i64, f64 = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_double
    lib.nnb_host_batch_epochs.argtypes = [ctypes.c_uint, pointer, pointer, i64] + [pointer] * 7 + \
        [i64, i64, f64, f64, f64, f64, pointer, pointer]
    lib.nnb_host_batch_epochs.restype = ctypes.c_int

    def run(X, Y, n, params0, buf_a, buf_b, params_last, partials, s1, s2, count0, k, lr, h1,
            h2, h3, out, barrier):
        arrays = (X, Y, params0, buf_a, buf_b, params_last, partials, s1, s2, out, barrier)
        assert all(a.flags.c_contiguous for a in arrays)
        failed = lib.nnb_host_batch_epochs(
            n_blocks, X.ctypes.data, Y.ctypes.data, n, *(a.ctypes.data for a in arrays[2:9]),
            count0, k, lr, h1, h2, h3, out.ctypes.data, barrier.ctypes.data)
        if failed:
            barrier[:] = 0
            raise RuntimeError("nnb_batch_epochs: a grid barrier never opened")

    return run, None


def make_epoch(am, spec, opt, plan, X, Y, multiclass, layout, n_blocks, launcher, device=None,
               persistent=None):
    """``epoch(params, state, order) -> (params, state, loss_sum, correct)``: one
    full-batch step over ``X``, ``Y`` (the ``order`` is not needed: see above).

    Parameters
    ----------
    am : module
        ``cupy`` (with :func:`cuda_launcher`) or ``numpy`` (with :func:`host_launcher`).
    X : array, shape (n_samples, sizes[0]); Y : array, shape (n_samples, sizes[-1])
    layout : BatchLayout
    n_blocks : int
        Blocks of the gradient kernel (G).
    launcher : callable
        ``launcher(source, layout, dtype_name) -> (grad, update)``.
    device : context manager, optional
        Entered around each epoch (the CuPy device the arrays live on).
    persistent : callable, optional
        ``persistent(source, layout, dtype_name, n_blocks) -> (run, why)``
        (:func:`cuda_persistent`, :func:`host_persistent`): ``epoch.epochs``
        then runs its epochs in one launch; where ``run`` is None (``why``
        says why), or without it, two launches an epoch.

    The returned ``epoch`` has ``epoch.epochs`` (see below) and
    ``epoch.path``, which says how ``epoch.epochs`` runs, in words.
    """
    dtype_name = str(X.dtype)
    form, why = kernel_update(opt, plan, layout.sizes)
    if form is None:
        raise ValueError(f"the batch kernels cannot run this optimizer: {why}")
    X, Y = am.ascontiguousarray(X), am.ascontiguousarray(Y)
    source = kernel_source(layout := staging_for(layout, X), spec, form, dtype_name, multiclass)
    grad, update = launcher(source, layout, dtype_name)
    if persistent is None:
        run_many, why = None, "no persistent kernel asked for"
    elif not form.constant:
        # One launch takes one learning-rate factor; 'invscaling' has one an epoch.
        run_many, why = None, "an 'invscaling' schedule changes the rate every epoch"
    else:
        run_many, why = persistent(source, layout, dtype_name, n_blocks)
    persistent_run = {"run": run_many}
    n, dtype = plan.n_samples, X.dtype
    # Once per fit: every block writes its whole row each epoch.
    partials = am.zeros((n_blocks, layout.n_params + 2), dtype=dtype)
    # The persistent kernel's barrier counters: zeros once, consistent after every launch.
    barrier = am.zeros(2, dtype=am.uint32)
    dummy = am.zeros(1, dtype=dtype)
    flat, unflat = flat_views(am, layout.shapes, dtype)
    own_state = OwnState(form.name, flat, unflat, dummy)

    # The flat buffer behind the parameters the last epoch returned: handed them
    # back (the training loop does), the next epoch reads it as it is instead of
    # flattening them again. Never written after it is returned: each epoch's
    # parameters go to a new buffer, so parameters a caller keeps (early
    # stopping's best, the divergence guard's last good) stay as they were.
    last = {"views": (), "buffer": None}

    def params_in(params):
        views = last["views"]
        if len(views) == len(params) and all(a is b for a, b in zip(params, views)):
            return last["buffer"]
        return flat(params)

    def epoch(params, state, order=None):
        with device if device is not None else contextlib.nullcontext():
            p_in = params_in(params)
            p = am.empty(layout.n_params, dtype=dtype)
            s1, s2, count0 = own_state.buffers(form.inner(state))
            out = am.empty(2, dtype=dtype)
            lr, h1, h2, h3 = form.hyper(form.count(state), 1)
            grad(X, Y, n, p_in, partials, n_blocks)
            update(partials, n_blocks, p_in, p, s1, s2, count0, lr, h1, h2, h3, out)
            state = form.outer(state, own_state.state(form.inner(state), s1, s2, count0 + 1), 1)
            views = unflat(p)
            last["views"], last["buffer"] = tuple(views), p
            return views, state, out[0], (None if multiclass is None else out[1])

    def epochs(params, state, orders):
        """``len(orders)`` epochs with no host work between them: one launch of
        the persistent kernel, else two launches an epoch back to back.
        ``(params, state, loss_sums, corrects)``, the last two of shape
        (len(orders),). The parameters between epochs alternate between two
        buffers of this call; the last epoch's go to a new one, as
        :func:`epoch`'s do. The same bits as that many epochs."""
        k = len(orders)
        with device if device is not None else contextlib.nullcontext():
            p_in = params_in(params)
            between = [am.empty(layout.n_params, dtype=dtype) for _ in range(min(2, k - 1))]
            s1, s2, count0 = own_state.buffers(form.inner(state))
            out = am.empty((k, 2), dtype=dtype)
            p = am.empty(layout.n_params, dtype=dtype)
            launched = False
            step0 = form.count(state)
            if persistent_run["run"] is not None and k > 1:
                lr, h1, h2, h3 = form.hyper(step0, k)  # one factor for all k (form.constant)
                buf_b = between[1] if k > 2 else between[0]
                try:
                    persistent_run["run"](X, Y, n, p_in, between[0], buf_b, p, partials, s1, s2,
                                          count0, k, lr, h1, h2, h3, out, barrier)
                    launched = True
                except (RuntimeError, ValueError) as exc:
                    # A refused launch ran nothing (it fails before the kernel
                    # starts): two launches an epoch from here on.
                    if "barrier never opened" in str(exc):
                        raise
                    persistent_run["run"] = None
                    epoch.path = (f"two launches an epoch (the persistent kernel's launch "
                                  f"failed: {type(exc).__name__}: {exc})")
            if not launched:
                for i in range(k):
                    p_out = p if i == k - 1 else between[i % 2]
                    lr, h1, h2, h3 = form.hyper(step0 + i, 1)
                    grad(X, Y, n, p_in, partials, n_blocks)
                    update(partials, n_blocks, p_in, p_out, s1, s2, count0 + i, lr, h1, h2, h3,
                           out[i])
                    p_in = p_out
            state = form.outer(state, own_state.state(form.inner(state), s1, s2, count0 + k), k)
            views = unflat(p)
            last["views"], last["buffer"] = tuple(views), p
            return views, state, out[:, 0], (None if multiclass is None else out[:, 1])

    epoch.epochs = epochs
    epoch.path = (f"a window's epochs in one launch of the persistent kernel ({n_blocks} blocks, "
                  "a grid barrier between phases)" if run_many is not None else
                  f"two launches an epoch ({why})")
    return epoch


class CupyBatch:
    """The ``"cupy-batch"`` executor (see :mod:`nnbackend.engine` for the contract)."""

    name = "cupy-batch"
    own_matmuls = True  # float32 FMAs in the kernel: a fit's precision does not reach them

    def supports(self, task):
        """Why the batch kernels cannot run ``task`` (a string), or None if they can."""
        return unsupported(task.spec, task.plan, task.optimizer, task.layer_sizes,
                           str(task.X.dtype), shared_limit(task.backend.device))

    def make_epoch(self, task):
        import cupy

        device = task.backend.device
        dtype_name = str(task.X.dtype)
        limit = shared_limit(device)
        n_sms = _sm_count(device)
        layout = choose_layout(task.layer_sizes, dtype_name, task.plan.n_samples, n_sms, limit)
        # As many blocks as the GPU holds at once (shared memory decides), so that
        # each block's partial covers many tiles and the partials stay few.
        try:
            per_sm = int(device.attributes["MaxSharedMemoryPerMultiprocessor"])
        except (KeyError, AttributeError, TypeError):
            per_sm = limit
        blocks_per_sm = max(1, min(8, per_sm // (layout.shared_bytes() + 1024)))
        n_blocks = layout.grid(task.plan.n_samples, n_sms, blocks_per_sm)
        # No more than the persistent kernel's blocks resident at once (registers
        # may hold fewer than shared memory allows), so that a window's epochs in
        # one launch and an epoch alone add the same partials: the same bits.
        form = kernel_update(task.optimizer, task.plan, task.layer_sizes)[0]
        # The source make_epoch compiles: the same staging for X as it will choose
        # (a non-contiguous X becomes a new array there, which is aligned).
        if task.X.flags.c_contiguous:
            layout = staging_for(layout, task.X)
        source = kernel_source(layout, task.spec, form, dtype_name, task.multiclass)
        resident = resident_blocks(source, layout, dtype_name, device)
        if resident:
            n_blocks = min(n_blocks, resident)
        with device:
            epoch = make_epoch(cupy, task.spec, task.optimizer, task.plan, task.X, task.Y,
                               task.multiclass, layout, n_blocks, cuda_launcher, device,
                               persistent=cuda_persistent)
        self._last = (task, epoch)
        return epoch

    def describe(self, task):
        """How the epochs run, in words (for ``History.executor_reason``)."""
        return with_window_path("the full-batch gradient kernel, then the update kernel",
                                getattr(self, "_last", None), task)

    def launches(self, task):
        """Kernel launches: two per epoch (gradient, update), plus the flattening copies."""
        return {"per_step": 2, "per_epoch": 2}
