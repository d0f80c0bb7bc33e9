"""CuPy: a whole epoch of small-batch descent in one kernel launch.

Eager GPU descent on a small network is all launch overhead: a step is
about twenty kernels (matmuls, activations, loss, optimizer) of 5-10 µs of
launch each around a few thousand flops, so an eager GPU loses to the CPU.
This executor writes the reference step (forward, loss, backward, optimizer
update) as one CUDA kernel that a single thread block runs for every step
of the epoch: each batch is gathered from the device arrays through the
epoch's permutation, and nothing returns to the host until the epoch's
loss and hit count.

Where a step waits, and what the kernel does about it (the waits as the
H200 profile of 2026-12-04 measured them, ``benchmarks/results/
h200-2026-12-04-gpu-check``; what each answer saves awaits a GPU run):

- **The gather** (0.29 µs of a 2.35 µs [32,64,1] sgd step, 2.5 of 17 at
  mini-batch 64): an order index, then the row it points to. Each thread
  loads its share of the next step's rows into registers while a step
  computes, and the indices of the step after that
  (:meth:`Layout.gather_slots`); with the parameters in shared memory, the
  targets' rows too (:meth:`Layout.prefetches_targets`).
- **Shared-memory reads** (the forward pass and update of a [32,64,1]
  mini-batch-64 step, about 5 and 7-8 of its 17 µs, each about 270,000 reads a
  step): mini-batches compute 4x4 blocks of outputs or parameters an
  iteration, 8 reads for 16 multiply-adds (:meth:`Layout.forward_blocks`,
  :meth:`Layout.update_blocks`), about 70,000 reads a step. The sums keep
  their order, so the numbers are the same.
- **The L2's latency** (the update, 72-79 µs of a [784,256,256,10] sgd step's
  91-97): with the parameters in global memory, a load cannot pass the store
  before it, so one 4-byte load a thread was in flight. The update reads and
  writes 4 parameters of a row at a time, 16 bytes a load
  (:meth:`Layout.update_vectors`), and asks L1 for those of the iteration 4
  ahead (``prefetch.global.L1``, which takes no register: the kernel's 1024
  threads have 64 each, and two groups loaded before either is stored spill).

Launches: one kernel per epoch, whatever the number of steps (and for a
window of epochs that nothing reads between, ``epoch.epochs`` launches
them back to back with nothing else between); around it,
once per epoch, a few CuPy copies that flatten the parameters (and the
optimizer state, unless it is the one the last epoch returned:
:class:`.flat.OwnState`) into the kernel's buffers (views split them back).

Two placements (:class:`Layout`), chosen per network, batch size, dtype
and device:

- **shared** (:mod:`.source`): the parameters and one batch's work region
  fit the block's shared memory (48 KiB anywhere, up to 227 KiB where the
  GPU lets a kernel opt in). They are copied in once per epoch and out at
  its end; at most 256 threads, each (row, unit) dot product serial (for
  mini-batches, a thread's 4x4 block of them, each still serial).
- **global** (:mod:`.tiled`): anything larger. The parameters stay in
  global memory, read and updated in place (the GPU's L2, 50-60 MB on an
  H100/H200, holds them); the work region (activations, gradients, partial
  sums) is in shared memory where it fits, else a global buffer. One block
  of 1024 threads; the products are tiled across its warps: forward sums
  split over input chunks with W loads coalesced across units and reused
  over up to 4 rows, input gradients split over lanes of one W row.

Per step (P parameters, batch b, layer sizes s): forward b*P multiply-adds
reading W once per row group, then the output layer's activation, loss and
dL/dz one row per thread, then per layer (last first) the input gradient
(b*fan_in*fan_out multiply-adds) and the update of each parameter from its
b-row gradient (read W, write W, and momentum's or Adam's state): about
3*b*P multiply-adds and three passes over the parameters, with 2 to 4
``__syncthreads()`` per layer. For sgd on [784,256,256,10] (P = 269,322)
that is about 0.8 M multiply-adds and 3.2 MB of float32 parameter traffic
through one SM a step: 91-97 µs a step on an H200 (2026-12-04), of which
the update is 72-79 µs (``benchmarks/fused_profile.py``). [32,64,1] takes
2.4 µs an sgd step there, 1.1 µs of it the update.

Why one block and not the whole GPU: a step is a chain of dependent
phases, so several blocks need a grid-wide barrier between phases. One
block keeps ``__syncthreads()`` as the only barrier; :data:`MAX_PARAMS` and
:data:`MAX_STEP_WORK` bound what it takes. :mod:`.grid` spreads the
global-placement kernel over several blocks: on sm_90 the executor runs it
as one cluster of eight blocks with the cluster's hardware barrier
(:func:`choose_layout`); over the whole GPU, with the grid barrier of
:mod:`.barrier`, no executor uses it. What each saves awaits a GPU run
(``benchmarks/grid_fused_time.py``).

The source is generated for one network shape, dtype, loss and optimizer,
and compiled once by NVRTC (``cupy.RawModule``). It is written in phases
separated by ``__syncthreads()``, each phase a loop ``for (t = threadIdx.x;
t < work; t += blockDim.x)`` whose iterations write disjoint elements, so the
same source compiled as C++ for the host, with one "thread", runs the same
arithmetic serially. The tests run that host build against the reference
loop on the CPU; the GPU check runs the CUDA build against it on a GPU.

It takes the built-in optimizers (sgd, momentum, adam), with a fit's L2
penalty and its 'invscaling' and 'adaptive' factors (:mod:`.kernel_update`),
batches of at most
:data:`MAX_BATCH` rows, float32 and float64, and networks of at most
:data:`MAX_PARAMS` parameters with at most :data:`MAX_STEP_WORK`
batch-rows times parameters; :func:`unsupported` says why anything else
runs through the reference loop.
"""

from __future__ import annotations

import contextlib
import ctypes

import numpy as np

from . import source, tiled
from .flat import OwnState, build_host_library, flat_views, with_window_path
from .grid import CLUSTER_BLOCKS, cuda_cluster_launcher
from .kernel_update import kernel_update

__all__ = ["CupyFused", "MAX_BATCH", "MAX_PARAMS", "MAX_STEP_WORK", "SHARED_BYTES",
           "GLOBAL_THREADS", "shared_limit", "unsupported", "Layout", "choose_layout",
           "cluster_layout", "kernel_source", "make_epoch", "cuda_launcher", "host_launcher"]

# Beyond a few dozen rows a step has enough parallel work for cuBLAS and the
# eager loop, and one thread block would idle most of the GPU.
MAX_BATCH = 64
# The shared memory every CUDA GPU since Kepler gives a block; more (up to
# 227 KiB on Hopper) needs the kernel to opt in, which the launcher does
# where the device allows it.
SHARED_BYTES = 48 * 1024
# The global-memory kernel's block: all of one SM's warps, to keep enough
# loads from L2 in flight (__launch_bounds__ holds the registers to 64 a thread).
GLOBAL_THREADS = 1024
# The shortest run of inputs one forward iteration sums before a split pays.
MIN_CHUNK = 8
# One block reads each parameter about three times a step (forward, input
# gradient or update read, update write): beyond 4 Mi parameters (16 MiB in
# float32) a step takes hundreds of µs on one SM and the eager loop's cuBLAS
# calls, spread over the whole GPU, win.
MAX_PARAMS = 1 << 22
# And it does about 3 * batch * parameters multiply-adds a step on one SM.
# Measured on an H200 (2026-12-04, [784,256,256,10] float32): 96 µs a step
# at batch 1 (269,322 batch-parameters) against ~650 µs eager, and 3.27 ms
# at batch 64 (17.2 M) against 0.91 ms eager: about 0.19 ns a
# batch-parameter, so past 2**22 (~0.8 ms) the eager loop's launches of
# whole-GPU work cost less.
MAX_STEP_WORK = 1 << 22
# X values (and as many row indices) a thread carries from one step to the next.
MAX_GATHER_SLOTS = 8
# Outputs of a row whose targets a thread carries from one step to the next.
MAX_PREFETCHED_OUTPUTS = 16
_ITEM = {"float32": 4, "float64": 8}


class Layout:
    """Where everything lives, and how the global-memory kernel splits its work.

    Two placements. ``params_in == "shared"``: the parameters (flat, from
    element 0) and then the batch's work region share the block's shared
    memory, all offsets into it. ``params_in == "global"``: the parameters
    stay in the caller's global ``params`` buffer (offsets into it) and the
    work region (offsets from 0) is in shared memory (``acts_in ==
    "shared"``) or a global ``work`` buffer (``acts_in == "global"``).

    Parameters
    ----------
    sizes : sequence of int
        Layer sizes, inputs first: ``[n_features, hidden..., n_outputs]``.
    batch_size : int
        The largest batch the kernel steps on.
    dtype_name : {"float32", "float64"}
    shared_limit : int
        The shared memory one block may use, in bytes.
    params_in, acts_in : {"shared", "global"}, optional
        Force a placement (the tests use it); by default the parameters go
        to shared memory where they fit with the work region, and the work
        region goes to shared memory where it fits.
    prefetch : bool, optional
        Gather each step's X rows into registers during the step before
        (their order indices a step earlier still), so that no step waits on
        the gather's dependent loads. Default: where a thread's share of a
        batch's X is at most :data:`MAX_GATHER_SLOTS` values (1 for the global
        placement, whose 1024 threads have 64 registers each).
    blocks : bool, optional
        ``False``: every forward and update iteration computes one output or
        one parameter, as before :meth:`forward_blocks`,
        :meth:`update_blocks` and :meth:`update_vectors` (for the tests and
        timings that compare them).
    split_for : int, optional
        The global placement's threads that share a phase's iterations, which
        :meth:`_split` cuts the phases for: :data:`GLOBAL_THREADS` (one block,
        the default), or all the threads of a cluster or grid that runs the
        same source (:mod:`.grid`). It decides the order of the split sums,
        so kernels built from one layout give the same bits whatever runs them.
    """

    def __init__(self, sizes, batch_size, dtype_name="float32", shared_limit=SHARED_BYTES,
                 params_in=None, acts_in=None, prefetch=None, blocks=None,
                 split_for=GLOBAL_THREADS):
        self.sizes = [int(s) for s in sizes]
        self.batch_size = int(batch_size)
        self.dtype_name = dtype_name
        self.n_layers = len(self.sizes) - 1
        self._prefetch = prefetch
        self._blocks = blocks
        if int(split_for) < 1:
            raise ValueError(f"Layout: split_for={split_for!r}, expected a positive thread count")
        self.split_for = int(split_for)
        # Parameters flat as [W0, b0, W1, b1, ...], W row-major (fan_in, fan_out).
        self.w_offsets, self.shapes = [], []
        offset = 0
        for fan_in, fan_out in zip(self.sizes, self.sizes[1:]):
            self.w_offsets.append(offset)
            self.shapes += [(fan_in, fan_out), (fan_out,)]
            offset += fan_in * fan_out + fan_out
        self.n_params = offset
        item = _ITEM[dtype_name]
        self.params_in = params_in or ("shared" if self._place_work(offset, 0) * item <= shared_limit
                                       else "global")
        if self.params_in == "shared":
            if acts_in == "global":
                raise ValueError("Layout: parameters in shared memory need the activations there too")
            self.acts_in = "shared"
            self.n_shared = self._place_work(offset, 0)
            return
        self._split()
        self.n_work = self._place_work(0, self.n_scratch)
        self.acts_in = acts_in or ("shared" if self.n_work * item <= shared_limit else "global")
        self.n_shared = self.n_work if self.acts_in == "shared" else 0

    def _place_work(self, start, n_scratch):
        """Lay the work region out from ``start``; returns where it ends (elements)."""
        B, offset = self.batch_size, start
        # acts[l]: layer l's input for the batch, (B, sizes[l]); acts[0] is the
        # gathered X rows.
        self.acts = []
        for width in self.sizes[:-1]:
            self.acts.append(offset)
            offset += B * width
        k = self.sizes[-1]
        self.out_a, self.out_z = offset, offset + B * k
        offset += 2 * B * k
        # Two (B, width) gradient buffers: dL/dz of a layer's outputs and of
        # the hidden layer below it, so never the input width.
        widest = max(self.sizes[1:])
        self.grads = (offset, offset + B * widest)
        offset += 2 * B * widest
        self.row_loss, self.row_hits = offset, offset + B
        offset += 2 * B
        self.scratch = offset  # partial sums of the split products (global placement)
        return offset + n_scratch

    def _split(self):
        """The global kernel's tiling: enough iterations per phase for
        ``split_for`` threads without chunks shorter than :data:`MIN_CHUNK` inputs.

        ``rows_per_thread`` (R, dividing the batch): rows one forward
        iteration sums, reusing each W load R times. ``forward_split[l]``:
        (number of input chunks, chunk length) of layer l. ``dx_lanes[l]``:
        iterations sharing one row of layer l's input gradient, reading
        consecutive W entries (one 32-byte sector), or 1.
        """
        B, nt = self.batch_size, self.split_for
        self.rows_per_thread = R = next(r for r in (4, 2, 1) if B % r == 0)
        lanes = 32 // _ITEM[self.dtype_name]
        self.forward_split, self.dx_lanes, scratch = [], [], 0
        for fan_in, fan_out in zip(self.sizes, self.sizes[1:]):
            split = max(1, min(fan_in // MIN_CHUNK, -(-nt // (B // R * fan_out))))
            chunk = -(-fan_in // split)
            split = -(-fan_in // chunk)
            self.forward_split.append((split, chunk))
            if split > 1:
                scratch = max(scratch, split * B * fan_out)
            wide = fan_out >= 2 * lanes and B * fan_in < nt
            self.dx_lanes.append(lanes if wide else 1)
            if wide:
                scratch = max(scratch, lanes * B * fan_in)
        self.dx_lanes[0] = 1  # no input gradient for the inputs
        self.n_scratch = scratch

    def shared_bytes(self, dtype_name=None):
        """Dynamic shared memory the kernel takes, in bytes."""
        return self.n_shared * _ITEM[dtype_name or self.dtype_name]

    def update_blocks(self):
        """Whether the update sums the gradients of 4x4 blocks of parameters, eight
        shared-memory reads a row for sixteen sums (mini-batches with the parameters
        in shared memory), instead of one parameter's two reads a row."""
        return self._blocks is not False and self.params_in == "shared" and self.batch_size > 1

    def update_vectors(self, l):
        """Whether layer ``l``'s update reads and writes its parameters in global memory
        16 bytes at a time (the global placement, where ``fan_out`` and W's offset are
        multiples of 4: every 4 consecutive parameters share a row and an aligned
        address)."""
        return (self._blocks is not False and self.params_in == "global"
                and self.sizes[l + 1] % 4 == 0 and self.w_offsets[l] % 4 == 0)

    def forward_blocks(self, l):
        """Whether layer ``l``'s forward pass computes 4 rows x 4 units an iteration
        (mini-batches of a multiple of 4 rows with the parameters in shared memory,
        and at least 16 units: a narrower layer would leave most of a block empty)."""
        return (self._blocks is not False and self.params_in == "shared"
                and self.batch_size % 4 == 0 and self.sizes[l + 1] >= 16)

    def prefetches_targets(self):
        """Whether each step's target rows also reach registers during the step before
        (the shared placement, where the gather does, for up to
        :data:`MAX_PREFETCHED_OUTPUTS` outputs: a thread holds a row's targets)."""
        # One row a thread: the GPU build keeps one row of targets in registers.
        return (self.params_in == "shared" and self.gather_slots() > 0
                and self.sizes[-1] <= MAX_PREFETCHED_OUTPUTS
                and self.batch_size <= self.threads())

    def gather_slots(self):
        """X values of a batch each GPU thread gathers a step ahead, in registers (0:
        the gather is done at each step's start, as without ``prefetch``)."""
        slots = -(-self.batch_size * self.sizes[0] // self.threads())
        # 1024 threads have 64 registers each: one slot more spills (NVRTC, sm_90).
        most = 1 if self.params_in == "global" else MAX_GATHER_SLOTS
        if self._prefetch is None:
            return slots if slots <= most else 0
        if self._prefetch and slots > most:
            raise ValueError(f"Layout: {slots} X values a thread, more than the {most} a "
                             "prefetched gather keeps in registers here")
        return slots if self._prefetch else 0

    def work_elements(self):
        """Elements of the global ``work`` buffer the kernel takes (0: none)."""
        return self.n_work if self.acts_in == "global" else 0

    def threads(self):
        """Threads per block: :data:`GLOBAL_THREADS` for the global placement; else enough
        for the widest phase, in whole warps, at most 256."""
        if self.params_in == "global":
            return GLOBAL_THREADS
        B, s = self.batch_size, self.sizes
        work = max([B * w for w in s] + [a * b + b for a, b in zip(s, s[1:])])
        return int(min(256, max(32, -(-work // 32) * 32)))


def unsupported(spec, plan, opt, sizes, dtype_name, shared_limit=SHARED_BYTES):
    """Why the fused kernel cannot run this fit (a string), or None if it can.

    ``shared_limit`` is the shared memory one block may use on the device
    (bytes; the opt-in maximum where the device has one). It decides where
    the parameters live (see :class:`Layout`), not whether the kernel runs.
    """
    if plan.batch_size >= plan.n_samples:
        return "batch mode is one step per epoch; there are no launches to save"
    if plan.batch_size > MAX_BATCH:
        return f"batches of {plan.batch_size} rows exceed the fused kernel's {MAX_BATCH}"
    if dtype_name not in _ITEM:
        return f"dtype {dtype_name!r}"
    if sizes is None:
        return "the layer sizes are unknown"
    why = kernel_update(opt, plan, sizes)[1]
    if why is not None:
        return why
    n_params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    if n_params > MAX_PARAMS:
        return (f"the network has {n_params} parameters, more than the {MAX_PARAMS} the fused "
                "kernel's one thread block streams through per step")
    if n_params * plan.batch_size > MAX_STEP_WORK:
        return (f"batches of {plan.batch_size} rows through {n_params} parameters are "
                f"{n_params * plan.batch_size} multiply-adds a pass, more than the "
                f"{MAX_STEP_WORK} one thread block does faster than the eager loop")
    return None


def kernel_source(layout, spec, opt_name, dtype_name, multiclass):
    """CUDA C++ source of ``nnb_fused_epoch`` for ``layout``'s placement (also valid host C++).

    The kernel's arguments are those of :func:`.source.kernel_source`, and
    for the global placement a last one, ``work``.
    """
    if layout.params_in == "global":
        return tiled.global_kernel_source(layout, spec, opt_name, dtype_name, multiclass)
    return source.kernel_source(layout, spec, opt_name, dtype_name, multiclass)


def shared_limit(device):
    """The most shared memory a block may opt in to on a CuPy ``device``, in bytes."""
    try:
        return int(device.attributes["MaxSharedMemoryPerBlockOptin"])
    except (KeyError, AttributeError, TypeError):
        return SHARED_BYTES


def cuda_launcher(source, layout, dtype_name):
    """``launch(*args)`` running the kernel on the current CUDA device (compiled once)."""
    import cupy

    kernel = cupy.RawKernel(source, "nnb_fused_epoch", options=("--std=c++14",))
    threads, shared = layout.threads(), layout.shared_bytes(dtype_name)
    if shared > SHARED_BYTES:
        kernel.max_dynamic_shared_size_bytes = shared

    extra = layout.params_in == "global"

    def launch(X, Y, order, n, params, s1, s2, count0, lr, h1, h2, h3, out, work):
        args = (X, Y, order, np.int64(n), params, s1, s2, np.int64(count0),
                np.float64(lr), np.float64(h1), np.float64(h2), np.float64(h3), out)
        kernel((1,), (threads,), args + (work,) if extra else args, shared_mem=shared)

    launch.description = f"one block of {threads} threads"
    return launch


def host_launcher(source, layout, dtype_name, compiler="c++"):
    """``launch(*args)`` running the same source compiled for the host, one thread.

    For the tests: it checks the kernel's arithmetic against the reference
    loop on a machine without a GPU. The arrays are NumPy arrays.
    """
    library = build_host_library(source, "fused", compiler)
    fn = ctypes.CDLL(library).nnb_fused_epoch
    pointer, i64, f64 = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_double
    extra = layout.params_in == "global"
    fn.argtypes = [pointer, pointer, pointer, i64, pointer, pointer, pointer, i64,
                   f64, f64, f64, f64, pointer] + [pointer] * extra
    fn.restype = None

    def launch(X, Y, order, n, params, s1, s2, count0, lr, h1, h2, h3, out, work):
        for a in (X, Y, order, params, s1, s2, out, work):
            assert a.flags.c_contiguous
        args = [X.ctypes.data, Y.ctypes.data, order.ctypes.data, n, params.ctypes.data,
                s1.ctypes.data, s2.ctypes.data, count0, lr, h1, h2, h3, out.ctypes.data]
        fn(*args, *[work.ctypes.data] * extra)

    return launch


def make_epoch(am, spec, opt, plan, X, Y, multiclass, sizes, dtype_name, launcher, device=None,
               layout=None):
    """``epoch(params, state, order) -> (params, state, loss_sum, correct)`` for ``plan``.

    Parameters
    ----------
    am : module
        The array module the arrays belong to: ``cupy`` (with
        :func:`cuda_launcher`) or ``numpy`` (with :func:`host_launcher`).
    X : array, shape (n_samples, sizes[0]); Y : array, shape (n_samples, sizes[-1])
    sizes : list of int
        The network's layer sizes.
    launcher : callable
        ``launcher(source, layout, dtype_name) -> launch``.
    device : context manager, optional
        Entered around each epoch (the CuPy device the arrays live on).
    layout : Layout, optional
        Where the kernel keeps what; by default :class:`Layout` decides
        for a block of :data:`SHARED_BYTES`.
    """
    layout = layout or Layout(sizes, plan.batch_size, dtype_name)
    update, why = kernel_update(opt, plan, sizes)
    if update is None:
        raise ValueError(f"the fused kernel cannot run this optimizer: {why}")
    source = kernel_source(layout, spec, update, dtype_name, multiclass)
    launch = launcher(source, layout, dtype_name)
    X, Y = am.ascontiguousarray(X), am.ascontiguousarray(Y)
    n = plan.n_samples
    dtype = X.dtype
    in_order = am.arange(n, dtype=am.int64)
    n_steps = -(-n // plan.batch_size)
    # Once per fit: the kernel zeroes it at the start of each epoch.
    work = am.zeros(max(1, layout.work_elements()), dtype=dtype)
    flat, unflat = flat_views(am, layout.shapes, dtype)
    own_state = OwnState(update.name, flat, unflat, am.zeros(1, dtype=dtype))

    def epoch(params, state, order):
        with device if device is not None else contextlib.nullcontext():
            return run(params, state, order)

    def run(params, state, order):
        order = in_order if order is None else am.asarray(order, dtype=am.int64)
        p = flat(params)
        s1, s2, count0 = own_state.buffers(update.inner(state))
        out = am.zeros(2, dtype=dtype)
        lr, h1, h2, h3 = update.hyper(update.count(state), n_steps)
        launch(X, Y, order, n, p, s1, s2, count0, lr, h1, h2, h3, out, work)
        note_path()
        inner = own_state.state(update.inner(state), s1, s2, count0 + n_steps)
        state = update.outer(state, inner, n_steps)
        return unflat(p), state, out[0], (None if multiclass is None else out[1])

    def epochs(params, state, orders):
        """``len(orders)`` epochs back to back, one launch each and no other host
        work between them (the orders cross in one copy; the parameters are
        flattened once and updated in place): ``(params, state, loss_sums,
        corrects)``, the last two of shape (len(orders),). The same bits as
        that many epochs."""
        k = len(orders)
        with device if device is not None else contextlib.nullcontext():
            if any(o is None for o in orders):
                rows = [in_order if o is None else am.asarray(o, dtype=am.int64) for o in orders]
            else:
                stacked = am.asarray(np.stack([np.asarray(o) for o in orders]), dtype=am.int64)
                rows = [stacked[i] for i in range(k)]
            p = flat(params)
            s1, s2, count0 = own_state.buffers(update.inner(state))
            out = am.zeros((k, 2), dtype=dtype)
            for i in range(k):
                lr, h1, h2, h3 = update.hyper(update.count(state) + i * n_steps, n_steps)
                launch(X, Y, rows[i], n, p, s1, s2, count0 + i * n_steps, lr, h1, h2, h3, out[i],
                       work)
            note_path()
            inner = own_state.state(update.inner(state), s1, s2, count0 + k * n_steps)
            state = update.outer(state, inner, k * n_steps)
            return unflat(p), state, out[:, 0], (None if multiclass is None else out[:, 1])

    def note_path():
        # A launcher that falls back says so at its first launch.
        epoch.path = ("a window's epochs launched back to back, one launch an epoch"
                      + (f": {launch.description}" if getattr(launch, "description", "") else ""))

    epoch.epochs = epochs
    note_path()
    return epoch


class CupyFused:
    """The ``"cupy-fused"`` executor (see :mod:`nnbackend.engine` for the contract)."""

    name = "cupy-fused"
    own_matmuls = True  # float32 FMAs in the kernel: a fit's precision does not reach them

    def supports(self, task):
        """Why the fused kernel cannot run ``task`` (a string), or None if it can."""
        return unsupported(task.spec, task.plan, task.optimizer, task.layer_sizes,
                           str(task.X.dtype), shared_limit(task.backend.device))

    def make_epoch(self, task):
        import cupy

        device = task.backend.device
        dtype_name = str(task.X.dtype)
        layout, on_cluster = choose_layout(task.layer_sizes, task.plan.batch_size, dtype_name,
                                           shared_limit(device), _capability(device))
        launcher = cuda_cluster_launcher(fallback=cuda_launcher) if on_cluster else cuda_launcher
        with device:
            epoch = make_epoch(cupy, task.spec, task.optimizer, task.plan, task.X, task.Y,
                               task.multiclass, task.layer_sizes, dtype_name, launcher, device,
                               layout)
        self._last = (task, epoch)
        return epoch

    def describe(self, task):
        """How the epochs run, in words (for ``History.executor_reason``)."""
        return with_window_path("the fused epoch kernel, one launch an epoch",
                                getattr(self, "_last", None), task)


def _capability(device):
    """A CuPy device's compute capability as an int (90 for 9.0), 0 if unknown."""
    try:
        return int(device.compute_capability)
    except (AttributeError, TypeError, ValueError):
        return 0


def choose_layout(sizes, batch_size, dtype_name, limit=SHARED_BYTES, capability=0):
    """``(layout, on_cluster)``: where the executor's kernel keeps what, and whether it
    runs as one cluster of :data:`.grid.CLUSTER_BLOCKS` blocks (:func:`cluster_layout`).

    A network whose parameters fit the block's shared memory (``limit``
    bytes) runs on one block. One that does not streams them through global
    memory each step; on one SM that took 91-97 µs a [784,256,256,10] SGD
    step on an H200 (2026-12-04), 72-79 of them the update. On sm_90 and later
    (``capability`` >= 90) it runs as one cluster instead: eight SMs share each
    phase, the cluster's hardware barrier between phases; where the cluster
    does not launch, one block runs the same layout (the same bits). What the
    cluster saves awaits a GPU run (``benchmarks/grid_fused_time.py``).
    """
    layout = Layout(sizes, batch_size, dtype_name, limit)
    if layout.params_in == "global" and capability >= 90:
        return cluster_layout(sizes, batch_size, dtype_name), True
    return layout, False


def cluster_layout(sizes, batch_size, dtype_name, n_blocks=CLUSTER_BLOCKS, **options):
    """The global placement with its work region in global memory, its phases split
    for ``n_blocks`` blocks of :data:`GLOBAL_THREADS` (a :class:`Layout`; ``options``:
    its ``prefetch`` and ``blocks``): the layout of the cluster kernel
    (:mod:`.grid`), whose bits the one-block kernel built from it gives."""
    return Layout(sizes, batch_size, dtype_name, params_in="global", acts_in="global",
                  split_for=n_blocks * GLOBAL_THREADS, **options)
