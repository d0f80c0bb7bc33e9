"""The full-batch gradient kernels (``cupy-batch``) against the reference loop.

Without a GPU the kernels' source is compiled for the host (one thread; the
grid's blocks run one after another, so the partials and their reduction
are exercised with several blocks) and checked against ``run_epoch`` on
NumPy; nvcc, where installed, compiles it for the GPU. With a GPU, a batch
fit runs it through CuPy against the reference loop on the same device.
"""

import shutil
import subprocess

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.backends.cupy import batch as B
from nnbackend.backends.cupy.batch_source import kernel_source
from nnbackend.data import host_rng, make_plan
from nnbackend.engine import run_epoch
from nnbackend.optim import get_optimizer

from test_cupy_fused import NETWORKS, OPTIMIZERS, _problem
from conftest import needs_cxx

N = 301  # several tiles of 32, 64 and 128 rows, the last one short


def _run_both(model, X, Y, multiclass, opt, epochs, rows=32, n_blocks=3):
    n = X.shape[0]
    plan = make_plan("batch", n, None)
    layout = B.BatchLayout(model.layer_sizes, str(X.dtype), rows)
    epoch = B.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, layout, n_blocks,
                         B.host_launcher)
    params = model.flat_params
    a = (params, opt.init(params))
    b = (params, opt.init(params))
    rng = host_rng(0)
    for _ in range(epochs):
        *a, loss_a, hits_a = epoch(*a, plan.order(rng))
        *b, loss_b, hits_b = run_epoch(*b, opt, model.spec, X, Y, plan, rng, np.int64, 64,
                                       multiclass, xp=model.backend.xp)
    return a, b, (loss_a, hits_a), (loss_b, hits_b)


def _assert_close(a, b, outs, rtol, atol):
    (params, state), (ref_params, ref_state) = a, b
    for got, want in zip(params, ref_params):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    for got, want in zip(state, ref_state):
        if isinstance(want, list):
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=10 * rtol, atol=atol)
        else:
            assert got == want
    (loss_sum, hits), (ref_loss, ref_hits) = outs
    np.testing.assert_allclose(float(loss_sum), float(ref_loss), rtol=rtol)
    assert (hits is None) == (ref_hits is None)
    if hits is not None:
        assert float(hits) == float(ref_hits)


@needs_cxx
@pytest.mark.parametrize("optimizer, options", OPTIMIZERS)
@pytest.mark.parametrize("hidden, output, loss, k", NETWORKS)
def test_host_build_equals_reference_float64(hidden, output, loss, k, optimizer, options):
    model, X, Y, multiclass = _problem(hidden, output, loss, k, "float64", n=N)
    opt = get_optimizer(optimizer, 0.05, **options)
    a, b, outs, ref_outs = _run_both(model, X, Y, multiclass, opt, 3)
    _assert_close(a, b, (outs, ref_outs), rtol=1e-9, atol=1e-12)


@needs_cxx
@pytest.mark.parametrize("rows, n_blocks", [(32, 1), (32, 10), (64, 4), (128, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_host_build_tiles_and_blocks(rows, n_blocks, reduction):
    # Layers wider than a 4x4 block and not multiples of 4: every edge of the blocks.
    model, X, Y, multiclass = _problem("tanh", "softmax", "cross_entropy", 3, "float64",
                                       reduction, hidden_sizes=(13, 6), n_in=9, n=N)
    opt = get_optimizer("adam", 0.01)
    a, b, outs, ref_outs = _run_both(model, X, Y, multiclass, opt, 2, rows, n_blocks)
    _assert_close(a, b, (outs, ref_outs), rtol=1e-9, atol=1e-12)


@needs_cxx
@pytest.mark.parametrize("n_blocks", [16, 17, 35])
def test_more_than_16_blocks_add_every_partial(n_blocks):
    # The update loads its partials 16 blocks at a time: a group and a part of
    # one, every block with rows of its own.
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "bce", 1, "float64",
                                       hidden_sizes=(6,), n_in=4, n=32 * n_blocks + 5)
    opt = get_optimizer("momentum", 0.05)
    a, b, outs, ref_outs = _run_both(model, X, Y, multiclass, opt, 2, 32, n_blocks)
    _assert_close(a, b, (outs, ref_outs), rtol=1e-9, atol=1e-12)


@needs_cxx
def test_host_build_float32_and_one_layer():
    # The seed's network: one sigmoid unit, no hidden layer.
    model, X, Y, multiclass = _problem("sigmoid", "sigmoid", "mse", 1, "float32", "sum",
                                       hidden_sizes=(), n_in=2, n=N)
    opt = get_optimizer("sgd", 0.1)
    a, b, outs, ref_outs = _run_both(model, X, Y, multiclass, opt, 4)
    _assert_close(a, b, (outs, ref_outs), rtol=2e-5, atol=1e-6)


@needs_cxx
def test_same_bits_every_run_and_inputs_untouched():
    model, X, Y, multiclass = _problem("relu", "identity", "mse", 2, "float32", n=N)
    opt = get_optimizer("momentum", 0.05)
    plan = make_plan("batch", N, None)
    layout = B.BatchLayout(model.layer_sizes, "float32", 32)
    params = [p.copy() for p in model.flat_params]
    runs = []
    for _ in range(2):
        epoch = B.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, layout, 4,
                             B.host_launcher)
        out = epoch(params, opt.init(params))
        runs.append([np.asarray(p).tobytes() for p in out[0]] + [np.asarray(out[2]).tobytes()])
    assert runs[0] == runs[1]
    for before, original in zip(params, model.flat_params):
        np.testing.assert_array_equal(before, original)


def _epochs_bits(model, X, Y, multiclass, opt, layout, n_blocks, epochs, persistent=None):
    """The parameters' and losses' bytes after ``epochs`` host-build epochs (through
    ``epoch.epochs`` where ``persistent`` is given), and the layout the epoch ran."""
    plan = make_plan("batch", X.shape[0], None)
    epoch = B.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, layout, n_blocks,
                         B.host_launcher, persistent=persistent)
    params = model.flat_params
    if persistent is not None:
        params, _, losses, _ = epoch.epochs(params, opt.init(params), [None] * epochs)
    else:
        carry, losses = (params, opt.init(params)), []
        for _ in range(epochs):
            *carry, loss, _ = epoch(*carry)
            losses.append(loss)
        params = carry[0]
    return [np.asarray(p).tobytes() for p in params] + [np.asarray(losses).tobytes()]


@needs_cxx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows, n_blocks", [(32, 3), (64, 2), (128, 1)])
@pytest.mark.parametrize("persistent", [None, B.host_persistent])
def test_prefetched_tiles_give_the_same_bits(dtype, rows, n_blocks, persistent):
    # Rows of 8 values: whole 16-byte vectors. Several tiles a block, the last one
    # short: each tile's X arrives from the registers loaded during the tile before.
    model, X, Y, multiclass = _problem("tanh", "softmax", "cross_entropy", 3, dtype,
                                       hidden_sizes=(13,), n_in=8, n=N)
    # NaN after the last row: a read past N would reach the gradient (NaN times a zero dz).
    padded = np.full(X.size + 128 * 8, np.nan, X.dtype)
    padded[:X.size] = X.ravel()
    X = padded[:X.size].reshape(X.shape)
    opt = get_optimizer("adam", 0.01)
    plain = B.BatchLayout(model.layer_sizes, dtype, rows, prefetch=False)
    prefetched = B.BatchLayout(model.layer_sizes, dtype, rows)
    assert prefetched.prefetch and not plain.prefetch
    assert prefetched.prefetch_vectors == rows * 8 // 4
    want = _epochs_bits(model, X, Y, multiclass, opt, plain, n_blocks, 3, persistent)
    assert _epochs_bits(model, X, Y, multiclass, opt, prefetched, n_blocks, 3, persistent) == want
    # And the reference loop's numbers.
    a, b, outs, ref_outs = _run_both(model, X, Y, multiclass, opt, 3, rows, n_blocks)
    if dtype == "float64":
        _assert_close(a, b, (outs, ref_outs), rtol=1e-9, atol=1e-12)


@needs_cxx
def test_an_x_off_a_16_byte_boundary_is_staged_element_by_element():
    model, X, Y, multiclass = _problem("relu", "identity", "mse", 2, "float32", n_in=8, n=N)
    shifted = np.empty(X.size + 1, X.dtype)[1:].reshape(X.shape)  # 4 bytes past the buffer's start
    shifted[...] = X
    layout = B.BatchLayout(model.layer_sizes, "float32", 32)
    assert layout.prefetch
    assert B.staging_for(layout, shifted).prefetch is False
    assert B.staging_for(layout, X) is layout
    opt = get_optimizer("sgd", 0.05)
    assert (_epochs_bits(model, shifted, Y, multiclass, opt, layout, 3, 2)
            == _epochs_bits(model, X, Y, multiclass, opt, layout, 3, 2))


def test_prefetch_only_where_the_rows_are_whole_vectors_and_blocks_take_many_tiles():
    assert not B.BatchLayout([9, 4, 1], "float32", 32).prefetch  # 9 values: no 16-byte rows
    assert B.BatchLayout([8, 4, 1], "float64", 32).prefetch
    with pytest.raises(ValueError, match="no prefetch for rows of 9 float32"):
        B.BatchLayout([9, 4, 1], "float32", 32, prefetch=True)
    # A thread carries at most 128 bytes of the next tile.
    assert not B.BatchLayout([128, 8, 1], "float32", 128).prefetch
    assert B.choose_layout([32, 64, 1], "float32", 10**7, limit=227 * 1024).prefetch
    assert not B.choose_layout([32, 64, 1], "float32", 10**4, limit=227 * 1024).prefetch
    assert not B.choose_layout([32, 64, 1], "float32", 30_000, limit=227 * 1024).prefetch


def _persistent_against_epochs(model, X, Y, multiclass, opt, n_blocks, k, persistent):
    """``k`` epochs through ``epoch.epochs`` (the persistent kernel's host build,
    or what ``persistent`` makes) and one by one: both results."""
    plan = make_plan("batch", X.shape[0], None)
    layout = B.BatchLayout(model.layer_sizes, str(X.dtype), 32)
    one = B.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, layout, n_blocks,
                       B.host_launcher)
    many = B.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, layout, n_blocks,
                        B.host_launcher, persistent=persistent)
    params = model.flat_params
    got = many.epochs(params, opt.init(params), [None] * k)
    carry, losses, hits = (params, opt.init(params)), [], []
    for _ in range(k):
        *carry, loss, hit = one(*carry)
        losses.append(float(loss))
        hits.append(None if hit is None else float(hit))
    return many, got, (*carry, losses, hits)


def _same_bits(got, want):
    params, state, losses, hits = got
    ref_params, ref_state, ref_losses, ref_hits = want
    for a, b in zip(params, ref_params):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(state, ref_state):
        if isinstance(b, list):
            assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b))
        else:
            assert a == b
    assert [float(v) for v in losses] == ref_losses
    assert (hits is None) == (ref_hits[0] is None)
    if hits is not None:
        assert [float(v) for v in hits] == ref_hits


@needs_cxx
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("n_blocks", [1, 3, 10])
def test_persistent_kernel_equals_epoch_by_epoch(optimizer, n_blocks):
    # k epochs in one launch, the grid's blocks (host threads) meeting at the
    # grid barrier: the same bits as k epochs of the two kernels.
    model, X, Y, multiclass = _problem("tanh", "softmax", "cross_entropy", 3, "float64",
                                       hidden_sizes=(13, 6), n_in=9, n=N)
    opt = get_optimizer(optimizer, 0.05)
    many, got, want = _persistent_against_epochs(model, X, Y, multiclass, opt, n_blocks, 5,
                                                 B.host_persistent)
    assert "one launch of the persistent kernel" in many.path and f"{n_blocks} blocks" in many.path
    _same_bits(got, want)


@needs_cxx
def test_persistent_kernel_float32_and_its_barrier_across_launches():
    model, X, Y, multiclass = _problem("relu", "identity", "mse", 2, "float32", n=N)
    opt = get_optimizer("adam", 0.01)
    many, got, want = _persistent_against_epochs(model, X, Y, multiclass, opt, 4, 3,
                                                 B.host_persistent)
    _same_bits(got, want)
    # A second launch goes on from the counters the first left (nothing reset
    # between launches), and from the state the first returned.
    params, state, *_ = got
    again = many.epochs(params, state, [None] * 2)
    one = B.make_epoch(np, model.spec, opt, make_plan("batch", N, None), X, Y, multiclass,
                       B.BatchLayout(model.layer_sizes, "float32", 32), 4, B.host_launcher)
    carry = (want[0], want[1])
    for _ in range(2):
        *carry, _, _ = one(*carry)
    for a, b in zip(again[0], carry[0]):
        assert a.tobytes() == b.tobytes()


@needs_cxx
def test_persistent_kernel_needs_its_grid_barrier():
    # Without the barrier, block 0 (first on the host's fixed schedule) adds the
    # partials before the other blocks have written theirs: wrong numbers.
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "mse", 1, "float64", n=N)
    opt = get_optimizer("sgd", 0.1)

    def without_barrier(source, layout, dtype_name, n_blocks):
        source = kernel_source(layout, model.spec, "sgd", dtype_name, multiclass,
                               grid_barrier=False)
        return B.host_persistent(source, layout, dtype_name, n_blocks)

    _, got, want = _persistent_against_epochs(model, X, Y, multiclass, opt, 3, 3,
                                              without_barrier)
    assert [float(v) for v in got[2]] != want[2]
    _, got, want = _persistent_against_epochs(model, X, Y, multiclass, opt, 1, 3,
                                              without_barrier)
    _same_bits(got, want)  # one block needs no grid barrier


@needs_cxx
def test_persistent_kernel_whose_barrier_never_opens_raises():
    # Block 0 skipping the barriers leaves the others waiting: the host build
    # says so instead of hanging.
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "mse", 1, "float64", n=N)
    opt = get_optimizer("sgd", 0.1)

    def block0_skips(source, layout, dtype_name, n_blocks):
        source = source.replace("nnb_grid_sync(barrier, opened);",
                                "if (blockIdx.x != 0) nnb_grid_sync(barrier, opened);")
        return B.host_persistent(source, layout, dtype_name, n_blocks)

    with pytest.raises(RuntimeError, match="grid barrier never opened"):
        _persistent_against_epochs(model, X, Y, multiclass, opt, 3, 2, block0_skips)


@needs_cxx
def test_a_refused_persistent_launch_falls_back_to_two_launches_an_epoch():
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "mse", 1, "float64", n=N)
    opt = get_optimizer("momentum", 0.1)
    tries = []

    def refused(source, layout, dtype_name, n_blocks):
        def run(*args):
            tries.append(1)
            raise RuntimeError("cudaErrorCooperativeLaunchTooLarge (the test's)")
        return run, None

    many, got, want = _persistent_against_epochs(model, X, Y, multiclass, opt, 3, 4, refused)
    _same_bits(got, want)
    assert "launch failed" in many.path and "CooperativeLaunchTooLarge" in many.path
    many.epochs(got[0], got[1], [None] * 2)
    assert tries == [1]  # not tried again


def test_persistent_path_says_why_not():
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "mse", 1, "float64", n=40)
    opt = get_optimizer("sgd", 0.1)
    layout = B.BatchLayout(model.layer_sizes, "float64", 32)
    epoch = B.make_epoch(np, model.spec, opt, make_plan("batch", 40, None), X, Y, multiclass,
                         layout, 2, lambda *a: (None, None),
                         persistent=lambda *a: (None, "a reason of the test's"))
    assert epoch.path == "two launches an epoch (a reason of the test's)"


def test_unsupported_says_why():
    spec = nb.MLP([4, 3, 1], backend="numpy").spec
    sgd = get_optimizer("sgd", 0.1)
    assert "not batch mode" in B.unsupported(spec, make_plan("minibatch", 100, 10), sgd, [4, 3, 1],
                                             "float32")
    assert B.unsupported(spec, make_plan("batch", 100, None), sgd, [4, 3, 1], "float32") is None
    assert "fan_in + fan_out" in B.unsupported(spec, make_plan("batch", 100, None), sgd,
                                               [784, 256, 10], "float32")
    assert "dtype" in B.unsupported(spec, make_plan("batch", 100, None), sgd, [4, 3, 1], "float16")
    custom = sgd._replace(name="mine")
    assert "custom optimizer" in B.unsupported(spec, make_plan("batch", 100, None), custom,
                                               [4, 3, 1], "float32")
    assert "shared memory" in B.unsupported(spec, make_plan("batch", 100, None), sgd,
                                            [96, 96, 96, 1], "float64", limit=48 * 1024)


def test_layout_allocates_nothing_n_sized_and_picks_tiles():
    small = B.choose_layout([32, 64, 1], "float32", 1000)
    large = B.choose_layout([32, 64, 1], "float32", 10**7, limit=227 * 1024)
    assert small.rows == 32 and large.rows == 128
    # The grid and its partials depend on the GPU, not on N.
    assert large.grid(10**7, 132, 2) == large.grid(10**8, 132, 2) == 264
    assert small.grid(1000, 132, 4) == -(-1000 // 32)
    # Row strides are 4 mod 8 elements (16-byte accesses of a quarter-warp's rows on distinct banks).
    assert all(s % 8 == 4 for s in large.act_strides + large.dz_strides)
    assert _coverage(large).tolist() == [1] * large.n_params


def _coverage(layout):
    """How many of the layout's gradient items hold each parameter."""
    covered = np.zeros(layout.n_params, int)
    for *_, p0, fan_out, i_used, j_used in layout.blocks:
        for qi in range(i_used):
            covered[p0 + qi * fan_out: p0 + qi * fan_out + j_used] += 1
    for kind, *_, p0, step in layout.strip_table:
        for q in range({0: 0, 1: 4, 2: 4, 3: 1}[kind]):
            covered[p0 + q * step] += 1
    return covered


@pytest.mark.parametrize("sizes", [[32, 64, 1], [9, 13, 6, 3], [2, 1], [3, 5], [64, 32, 10],
                                   [31, 7, 7, 2], [16, 128, 4]])
@pytest.mark.parametrize("rows", [32, 128])
@pytest.mark.parametrize("strips", [True, False])
def test_every_parameter_in_one_gradient_item_and_a_warp_takes_one_kind(sizes, rows, strips):
    layout = B.BatchLayout(sizes, "float32", rows, strips=strips)
    assert _coverage(layout).tolist() == [1] * layout.n_params
    assert len(layout.strip_table) == layout.strip_slots * layout.threads
    # Strips read 4 values at once from 16-byte aligned offsets (a row's start and stride
    # are multiples of 4), and a warp's 32 entries of a slot are all of one kind.
    for kind, a_off, a_st, d_off, d_st, *_ in layout.strip_table:
        vector = {1: d_off, 2: a_off}.get(kind)
        assert vector is None or (vector % 4 == 0 and a_st % 4 == 0 and d_st % 4 == 0)
    for start in range(0, len(layout.strip_table), 32):
        assert len({entry[0] for entry in layout.strip_table[start:start + 32]} - {0}) <= 1
    if strips:
        assert all(i_used == j_used == 4 for *_, i_used, j_used in layout.blocks)


def test_strips_spread_the_edges_over_the_warps():
    # [32,64,1] on 128 threads: 128 whole blocks of layer 0 (its 32 inputs), then the
    # bias row (16 strips of 4) and layer 1's one column (16 strips of 4 rows and
    # the bias). As 4x4 blocks throughout, 33 threads took two blocks, 17 of them
    # three-quarters empty: warps 0 and 1 did twice the others' work per row.
    with_strips = B.BatchLayout([32, 64, 1], "float32", 128)
    blocks_only = B.BatchLayout([32, 64, 1], "float32", 128, strips=False)
    assert (len(with_strips.blocks), with_strips.strip_slots) == (128, 1)
    assert with_strips.fma_per_row() == [20, 20, 17, 16]
    assert blocks_only.fma_per_row() == [32, 32, 16, 16]
    assert (with_strips.accumulators, blocks_only.accumulators) == (20, 36)
    # 136 blocks leave warp 0 a block more: the strips (34 + 68 + 2) go to the others.
    wide = B.BatchLayout([16, 136, 2], "float32", 128)
    assert wide.fma_per_row() == [32, 24, 24, 21]


@needs_cxx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes, k", [([32, 64, 1], 1), ([9, 13, 6, 3], 3), ([2, 1], 1)])
def test_strips_add_the_same_bits_as_blocks(dtype, sizes, k):
    # Each parameter sums its rows in the same order in a strip or a block.
    output, loss = ("softmax", "cross_entropy") if k > 1 else ("sigmoid", "mse")
    model, X, Y, multiclass = _problem("tanh", output, loss, k, dtype, hidden_sizes=sizes[1:-1],
                                       n_in=sizes[0], n=N)
    opt = get_optimizer("adam", 0.01)
    runs = [_epochs_bits(model, X, Y, multiclass, opt,
                         B.BatchLayout(sizes, dtype, 32, strips=strips), 3, 2)
            for strips in (True, False)]
    assert runs[0] == runs[1]


# nvcc's check of what tests/test_cuda_sources.py compiles with NVRTC for sm_90:
# CI's business, not a lent GPU's (7 to 25 s a case there).
@pytest.mark.host_build
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed here")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_source_compiles_for_the_gpu(tmp_path, dtype):
    model = nb.MLP([32, 64, 1], backend="numpy")
    layout = B.choose_layout([32, 64, 1], dtype, 10**6, limit=227 * 1024)
    for opt in ("sgd", "momentum", "adam"):
        src = tmp_path / f"batch_{opt}.cu"
        src.write_text(kernel_source(layout, model.spec, opt, dtype, False))
        subprocess.run(["nvcc", "-arch=sm_90", "-std=c++14", "-c", "-o", str(tmp_path / "k.o"),
                        str(src)], check=True, capture_output=True, text=True)


def _cupy_gpu():
    try:
        nb.get_backend("cupy")
    except Exception as exc:  # no CuPy, or no GPU
        return str(exc)
    return None


@pytest.mark.skipif(_cupy_gpu() is not None, reason=f"needs CuPy on a GPU: {_cupy_gpu()}")
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-9), ("float32", 2e-4)])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cupy_batch_fit_equals_reference(dtype, rtol, optimizer):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 32))
    y = (X[:, :1] + X[:, 1:2] > 0).astype(np.float64)
    runs = {}
    for executor in ("cupy-batch", "reference"):
        model = nb.MLP([32, 64, 1], backend="cupy", dtype=dtype, seed=0, loss="bce")
        hist = model.fit(X, y, mode="batch", epochs=5, lr=0.05, optimizer=optimizer,
                         executor=executor)
        runs[executor] = ([nb.get_backend("cupy").to_host(p) for p in model.flat_params], hist)
    for got, want in zip(runs["cupy-batch"][0], runs["reference"][0]):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_allclose(runs["cupy-batch"][1].loss, runs["reference"][1].loss, rtol=rtol)
    # The same bits run to run.
    model = nb.MLP([32, 64, 1], backend="cupy", dtype=dtype, seed=0, loss="bce")
    model.fit(X, y, mode="batch", epochs=5, lr=0.05, optimizer=optimizer, executor="cupy-batch")
    for got, want in zip(model.flat_params, runs["cupy-batch"][0]):
        assert nb.get_backend("cupy").to_host(got).tobytes() == want.tobytes()


@pytest.mark.skipif(_cupy_gpu() is not None, reason=f"needs CuPy on a GPU: {_cupy_gpu()}")
def test_cupy_prefetched_tiles_and_strips_equal_the_plain_ones_bit_for_bit():
    # 200,000 rows: enough tiles of 128 a block for the executor's layout to
    # prefetch, the GPU's threads each carrying their share of the next tile;
    # and the gradient in 4x4 blocks only, the edges' parameters in blocks, not strips.
    import cupy

    n, dtype = 200_000, "float32"
    rng = np.random.default_rng(2)
    X = cupy.asarray(rng.normal(size=(n + 1, 32)).astype(dtype))
    X[n] = cupy.nan  # past the last row: a read there would reach the gradient
    X = X[:n]
    y = (X[:, :1] + X[:, 1:2] > 0).astype(dtype)
    model = nb.MLP([32, 64, 1], backend="cupy", dtype=dtype, seed=0, loss="bce")
    plan = make_plan("batch", n, None)
    opt = get_optimizer("adam", 0.01)
    limit = B.shared_limit(cupy.cuda.Device())
    layout = B.choose_layout([32, 64, 1], dtype, n, B._sm_count(cupy.cuda.Device()), limit)
    assert layout.prefetch
    blocks_only = B.BatchLayout(layout.sizes, dtype, layout.rows, layout.threads, True,
                                strips=False)
    runs = []
    for used in (layout, layout.without_prefetch(), blocks_only):
        epoch = B.make_epoch(cupy, model.spec, opt, plan, X, y, False, used, 100, B.cuda_launcher)
        carry = (model.flat_params, opt.init(model.flat_params))
        for _ in range(3):
            *carry, loss, _ = epoch(*carry)
        runs.append([cupy.asnumpy(p).tobytes() for p in carry[0]] + [float(loss)])
    assert runs[0] == runs[1] == runs[2]
    assert np.isfinite(runs[0][-1])


@pytest.mark.skipif(_cupy_gpu() is not None, reason=f"needs CuPy on a GPU: {_cupy_gpu()}")
@pytest.mark.parametrize("n_samples", [1000, 200_000])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cupy_persistent_window_equals_epoch_by_epoch(n_samples, optimizer):
    # A window's epochs in one cooperative launch, its blocks meeting at the
    # kernel's grid barrier: the same bits as the same fit read every epoch.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n_samples, 32)).astype(np.float32)
    y = (X[:, :1] + X[:, 1:2] > 0).astype(np.float32)
    runs = []
    for callback in (None, lambda epoch, figures: None):
        model = nb.MLP([32, 64, 1], backend="cupy", dtype="float32", seed=0, loss="bce")
        hist = model.fit(X, y, mode="batch", epochs=70, lr=0.05, optimizer=optimizer,
                         callback=callback)
        runs.append((hist, [nb.get_backend("cupy").to_host(p) for p in model.flat_params]))
    (windowed, params), (each, params_each) = runs
    assert windowed.window == 64 and each.window == 1
    assert "one launch of the persistent kernel" in windowed.executor_reason, \
        windowed.executor_reason
    assert windowed.loss == each.loss
    for a, b in zip(params, params_each):
        assert a.tobytes() == b.tobytes()


@needs_cxx
def test_an_epoch_reads_its_own_last_buffer_and_never_writes_a_returned_one(monkeypatch):
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "bce", 1, "float64", n=N)
    opt = get_optimizer("adam", 0.05)
    plan = make_plan("batch", N, None)
    layout = B.BatchLayout(model.layer_sizes, "float64", 32)
    epoch = B.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, layout, 3, B.host_launcher)
    params, state, _, _ = epoch(model.flat_params, opt.init(model.flat_params))
    kept = [p.copy() for p in params]
    # Handed back the parameters and the state it returned, the epoch flattens
    # nothing (a counted concatenate): Adam's moments are updated in place.
    calls = []
    real = np.concatenate
    monkeypatch.setattr(np, "concatenate", lambda *a, **k: calls.append(1) or real(*a, **k))
    moments = state.mu[0]
    second, state, _, _ = epoch(params, state)
    assert len(calls) == 0
    assert np.shares_memory(state.mu[0], moments)
    # The first epoch's parameters are as they were, and the second's are new.
    for a, b, c in zip(params, kept, second):
        np.testing.assert_array_equal(a, b)
        assert not np.shares_memory(a, c)
    # Other arrays than its own are flattened into new buffers: parameters...
    calls.clear()
    epoch([p.copy() for p in second], state)
    assert len(calls) == 1
    # ...and a state it did not return (init's, a checkpoint's), never written.
    calls.clear()
    fresh = opt.init(model.flat_params)
    before = [m.copy() for m in fresh.mu]
    epoch(second, fresh)
    assert len(calls) == 3
    for a, b in zip(fresh.mu, before):
        np.testing.assert_array_equal(a, b)


@needs_cxx
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_several_epochs_in_one_call_are_the_same_bits(optimizer):
    """``epoch.epochs``: k epochs back to back (two launches each, nothing else)
    equal k epochs called one by one, bit for bit; the epoch after them goes on
    from its parameters and state as from any epoch's."""
    model, X, Y, multiclass = _problem("tanh", "softmax", "cross_entropy", 3, "float64", n=N)
    opt = get_optimizer(optimizer, 0.05)
    plan = make_plan("batch", N, None)
    layout = B.BatchLayout(model.layer_sizes, "float64", 32)

    def fresh():
        return B.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, layout, 3,
                            B.host_launcher)

    one = fresh()
    params, state = model.flat_params, opt.init(model.flat_params)
    losses, hits = [], []
    for _ in range(4):
        params, state, loss, hit = one(params, state)
        losses.append(float(loss))
        hits.append(float(hit))
    many = fresh()
    start = [p.copy() for p in model.flat_params]
    got, got_state, got_losses, got_hits = many.epochs(model.flat_params,
                                                      opt.init(model.flat_params), [None] * 4)
    assert got_losses.shape == (4,) and got_hits.shape == (4,)
    assert got_losses.tolist() == losses and got_hits.tolist() == hits
    for a, b in zip(got, params):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.flat_params, start):  # the caller's arrays untouched
        np.testing.assert_array_equal(a, b)
    # One more epoch each: the same again.
    after_one = one(params, state)
    after_many = many(got, got_state)
    for a, b in zip(after_one[0], after_many[0]):
        np.testing.assert_array_equal(a, b)
    assert float(after_one[2]) == float(after_many[2])
