"""The CuPy fused-epoch kernel against the reference loop.

Without a GPU the kernel's source is compiled for the host (one thread runs
every phase in turn; see ``nnbackend.backends.cupy.fused``) and checked
against ``run_epoch`` on NumPy, and compiled for the GPU with nvcc where it
is installed; with a GPU, fit runs it through CuPy against the reference
loop on the same device.
"""

import shutil
import subprocess

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.data import host_rng, make_plan
from nnbackend.backends.cupy import fused as F
from nnbackend.engine import EpochTask
from nnbackend.network import NetSpec, multiclass_of
from nnbackend.optim import get_optimizer
from nnbackend.engine import run_epoch
from conftest import needs_cxx

N = 101  # not a multiple of any batch size below: every epoch ends on a short batch

# (hidden activation, output activation, loss, outputs): every loss, every
# output and every hidden activation at least once.
NETWORKS = [
    ("tanh", "sigmoid", "bce", 1),
    ("relu", "softmax", "cross_entropy", 3),
    ("sigmoid", "identity", "mse", 2),
    ("identity", "softmax", "mse", 3),
    ("sigmoid", "sigmoid", "mse", 1),
]
OPTIMIZERS = [("sgd", {}), ("momentum", {"beta": 0.8}), ("momentum", {"nesterov": True}),
              ("adam", {})]



def _host_data(output, loss, k, seed=0, n_in=5, n=N):
    """``X`` (n, n_in) and targets ``y`` suited to the output and loss, NumPy float64."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    if loss == "cross_entropy":
        y = rng.integers(0, k, n)
    elif output == "softmax":
        y = np.eye(k)[rng.integers(0, k, n)]
    elif output == "sigmoid":
        y = (X[:, :k] > 0).astype(np.float64)
    else:
        y = rng.normal(size=(n, k))
    return X, y


def _problem(hidden, output, loss, k, dtype, reduction="mean", hidden_sizes=(7, 6), n_in=5, n=N):
    X, y = _host_data(output, loss, k, n_in=n_in, n=n)
    model = nb.MLP([n_in, *hidden_sizes, k], hidden_activation=hidden, output_activation=output,
                   loss=loss, reduction=reduction, backend="numpy", dtype=dtype, seed=1)
    multiclass = {"softmax": True, "sigmoid": False}.get(output)
    return model, model._features(X), model._targets(y, n), multiclass


def _run_both(model, X, Y, multiclass, opt, plan, epochs, dtype, layout=None):
    fused = F.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, model.layer_sizes, dtype,
                         F.host_launcher, layout=layout)
    rng_fused, rng_ref = host_rng(3), host_rng(3)
    params = model.flat_params
    a = (params, opt.init(params))
    b = (params, opt.init(params))
    for _ in range(epochs):
        *a, loss_a, hits_a = fused(*a, plan.order(rng_fused))
        *b, loss_b, hits_b = run_epoch(*b, opt, model.spec, X, Y, plan, rng_ref, np.int64, 2048,
                                       multiclass, xp=model.backend.xp)
    return a, b, (loss_a, hits_a), (loss_b, hits_b)


@needs_cxx
@pytest.mark.parametrize("optimizer, options", OPTIMIZERS)
@pytest.mark.parametrize("hidden, output, loss, k", NETWORKS)
def test_host_build_equals_reference_float64(hidden, output, loss, k, optimizer, options):
    model, X, Y, multiclass = _problem(hidden, output, loss, k, "float64")
    opt = get_optimizer(optimizer, 0.05, **options)
    plan = make_plan("minibatch", N, 8, shuffle=True)
    (params, state), (ref_params, ref_state), (loss_sum, hits), (ref_loss, ref_hits) = _run_both(
        model, X, Y, multiclass, opt, plan, 3, "float64")
    for got, want in zip(params, ref_params):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # The optimizer state carries on as the reference's does (resuming needs it).
    for got, want in zip(state, ref_state):
        if isinstance(want, list):
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-14)
        else:
            assert got == want
    np.testing.assert_allclose(float(loss_sum), float(ref_loss), rtol=1e-12)
    assert (hits is None) == (ref_hits is None)
    if hits is not None:
        assert float(hits) == float(ref_hits)


@needs_cxx
@pytest.mark.parametrize("mode, batch_size", [("sgd", 1), ("minibatch", 64)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_host_build_equals_reference_float32(mode, batch_size, reduction):
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "bce", 1, "float32", reduction)
    opt = get_optimizer("adam", 0.01)
    plan = make_plan(mode, N, batch_size, shuffle=True)
    (params, _), (ref_params, _), (loss_sum, hits), (ref_loss, ref_hits) = _run_both(
        model, X, Y, multiclass, opt, plan, 1, "float32")
    for got, want in zip(params, ref_params):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(loss_sum), float(ref_loss), rtol=1e-5)
    assert abs(float(hits) - float(ref_hits)) <= 1


@needs_cxx
def test_host_build_without_shuffle_and_leaves_inputs_alone():
    model, X, Y, multiclass = _problem("sigmoid", "sigmoid", "mse", 1, "float64")
    opt = get_optimizer("momentum", 0.1)
    plan = make_plan("sgd", N, 1, shuffle=False)
    params = [p.copy() for p in model.flat_params]
    state = opt.init(params)
    fused = F.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, model.layer_sizes,
                         "float64", F.host_launcher)
    new_params, new_state, _, _ = fused(params, state, plan.order(host_rng(0)))
    ref_params, _, _, _ = run_epoch(params, state, opt, model.spec, X, Y, plan, host_rng(0),
                                    np.int64, 2048, multiclass, xp=model.backend.xp)
    for got, want, before, original in zip(new_params, ref_params, params, model.flat_params):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(before, original)  # the caller's arrays are untouched
    assert all(np.all(v == 0) for v in state.velocity)
    assert not all(np.all(v == 0) for v in new_state.velocity)


def _assert_same_run(got, want, rtol, atol, hits_slack=0):
    """The fused run ``got`` equals the reference ``want``: parameters, optimizer state, loss, hits."""
    (params, state), (loss_sum, hits) = got
    (ref_params, ref_state), (ref_loss, ref_hits) = want
    for p, w in zip(params, ref_params):
        assert p.shape == w.shape and p.dtype == w.dtype
        np.testing.assert_allclose(p, w, rtol=rtol, atol=atol)
    for g, w in zip(state, ref_state):
        if isinstance(w, list):
            for a, b in zip(g, w):
                np.testing.assert_allclose(a, b, rtol=10 * rtol, atol=atol)
        else:
            assert g == w
    np.testing.assert_allclose(float(loss_sum), float(ref_loss), rtol=rtol)
    assert (hits is None) == (ref_hits is None)
    if hits is not None:
        assert abs(float(hits) - float(ref_hits)) <= hits_slack


# A network the global-memory kernel tiles in every way: forward chunks (40
# and 48 inputs), rows per thread (batches of 8), input-gradient lanes (48
# inputs, 24 units); small enough that the host build runs in milliseconds.
TILED_IN, TILED_HIDDEN = 40, (48, 24)


def _tiled_layout(model, batch_size, dtype, acts_in):
    layout = F.Layout(model.layer_sizes, batch_size, dtype, params_in="global", acts_in=acts_in)
    assert layout.forward_split[0][0] > 1 and max(layout.dx_lanes) > 1
    return layout


@needs_cxx
@pytest.mark.parametrize("optimizer, options", OPTIMIZERS)
@pytest.mark.parametrize("hidden, output, loss, k", NETWORKS)
def test_host_build_global_memory_equals_reference_float64(hidden, output, loss, k, optimizer,
                                                           options):
    model, X, Y, multiclass = _problem(hidden, output, loss, k, "float64",
                                       hidden_sizes=TILED_HIDDEN, n_in=TILED_IN)
    # The work region in shared memory for half the grid, in the global buffer for the rest.
    acts_in = "global" if optimizer == "adam" or options.get("nesterov") else "shared"
    layout = _tiled_layout(model, 8, "float64", acts_in)
    assert layout.rows_per_thread == 4
    # lr 0.01, two epochs: at 0.05 Adam on the 40-input linear (identity) network
    # grows any change of rounding 1e4-fold an epoch, the shared-memory kernel's too.
    opt = get_optimizer(optimizer, 0.01, **options)
    plan = make_plan("minibatch", N, 8, shuffle=True)
    a, b, fused_out, ref_out = _run_both(model, X, Y, multiclass, opt, plan, 2, "float64", layout)
    _assert_same_run((a, fused_out), (b, ref_out), rtol=1e-12, atol=1e-14)


@needs_cxx
@pytest.mark.parametrize("dtype, mode, batch_size, acts_in",
                         [("float64", "sgd", 1, "shared"), ("float32", "sgd", 1, "global"),
                          ("float32", "minibatch", 64, "shared")])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_host_build_global_memory_sgd_and_large_batches(dtype, mode, batch_size, acts_in,
                                                        reduction):
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "bce", 1, dtype, reduction,
                                       hidden_sizes=TILED_HIDDEN, n_in=TILED_IN)
    layout = F.Layout(model.layer_sizes, batch_size, dtype, params_in="global", acts_in=acts_in)
    opt = get_optimizer("adam" if mode == "sgd" else "momentum", 0.01)
    plan = make_plan(mode, N, batch_size, shuffle=True)
    a, b, fused_out, ref_out = _run_both(model, X, Y, multiclass, opt, plan, 2, dtype, layout)
    tol = (1e-12, 1e-14) if dtype == "float64" else (1e-4, 1e-5)
    _assert_same_run((a, fused_out), (b, ref_out), *tol, hits_slack=int(dtype == "float32"))


# float64 to 1e-12; Adam's to 1e-11 absolute: it divides a nearly dead relu
# unit's tiny gradient by its own size, so the last bits of a different
# summation order show (the shared-memory kernel, forced, differs from the
# reference by the same 7.8e-13 here); float32 to 1e-4.
@needs_cxx
@pytest.mark.parametrize("dtype, mode, batch_size, optimizer, atol", [
    ("float64", "minibatch", 8, "momentum", 1e-14), ("float64", "sgd", 1, "sgd", 1e-14),
    ("float64", "minibatch", 8, "adam", 1e-11),
    ("float32", "minibatch", 64, "sgd", 1e-5), ("float32", "sgd", 1, "adam", 1e-5)])
def test_host_build_784_256_256_10_equals_reference(dtype, mode, batch_size, optimizer, atol):
    n = 70 if batch_size == 64 else 19  # a short last batch either way
    model, X, Y, multiclass = _problem("relu", "softmax", "cross_entropy", 10, dtype,
                                       hidden_sizes=(256, 256), n_in=784, n=n)
    layout = F.Layout(model.layer_sizes, batch_size, dtype)  # as the executor places it
    assert layout.params_in == "global"
    opt = get_optimizer(optimizer, 0.01)
    plan = make_plan(mode, n, batch_size, shuffle=True)
    a, b, fused_out, ref_out = _run_both(model, X, Y, multiclass, opt, plan, 2, dtype, layout)
    rtol = 1e-12 if dtype == "float64" else 1e-4
    _assert_same_run((a, fused_out), (b, ref_out), rtol, atol, hits_slack=int(dtype == "float32"))


def _epoch_bits(model, X, Y, multiclass, opt, plan, layout, epochs=2):
    """Parameters' and losses' bytes after ``epochs`` shuffled host-build epochs."""
    epoch = F.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, model.layer_sizes,
                         str(X.dtype), F.host_launcher, layout=layout)
    rng = host_rng(5)
    carry, losses = (model.flat_params, opt.init(model.flat_params)), []
    for _ in range(epochs):
        *carry, loss, _ = epoch(*carry, plan.order(rng))
        losses.append(float(loss))
    return [np.asarray(p).tobytes() for p in carry[0]], losses


@needs_cxx
@pytest.mark.parametrize("n, batch_size", [(101, 8), (8, 8), (9, 8), (5, 8), (17, 8), (37, 1)])
@pytest.mark.parametrize("params_in", ["shared", "global"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_prefetched_gather_gives_the_same_bits(n, batch_size, params_in, dtype):
    # Each step's rows gathered during the step before, their indices a step
    # earlier still: every epoch length against the batch (one step, a short
    # last step, two steps, fewer rows than a batch), shuffled.
    model, X, Y, multiclass = _problem("tanh", "softmax", "cross_entropy", 3, dtype, n=n)
    opt = get_optimizer("adam", 0.05)
    plan = make_plan("minibatch", n, batch_size, shuffle=True)
    layouts = [F.Layout(model.layer_sizes, batch_size, dtype, params_in=params_in,
                        prefetch=prefetch) for prefetch in (False, None)]
    assert layouts[0].gather_slots() == 0 and layouts[1].gather_slots() >= 1
    assert not layouts[0].prefetches_targets()
    assert layouts[1].prefetches_targets() == (params_in == "shared")
    assert (_epoch_bits(model, X, Y, multiclass, opt, plan, layouts[1])
            == _epoch_bits(model, X, Y, multiclass, opt, plan, layouts[0]))


@needs_cxx
@pytest.mark.parametrize("batch_size", [4, 8, 12, 6])
@pytest.mark.parametrize("optimizer, options", [("sgd", {}), ("adam", {})])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_blocks_of_outputs_and_parameters_give_the_same_bits(batch_size, optimizer, options,
                                                             dtype):
    # Layers of 20 and 17 units (blocks of 4 with empty columns), inputs of 9 (a
    # row block past the bias row), an epoch ending on a short batch.
    model, X, Y, multiclass = _problem("tanh", "softmax", "cross_entropy", 3, dtype,
                                       hidden_sizes=(20, 17), n_in=9, n=N)
    opt = get_optimizer(optimizer, 0.05, **options)
    plan = make_plan("minibatch", N, batch_size, shuffle=True)
    blocked, plain = (F.Layout(model.layer_sizes, batch_size, dtype, blocks=b) for b in (None, False))
    assert blocked.update_blocks() and not plain.update_blocks()
    assert [blocked.forward_blocks(l) for l in range(3)] == [batch_size % 4 == 0] * 2 + [False]
    assert (_epoch_bits(model, X, Y, multiclass, opt, plan, blocked, epochs=3)
            == _epoch_bits(model, X, Y, multiclass, opt, plan, plain, epochs=3))
    if dtype == "float64":  # and the reference loop's numbers
        a, b, outs, ref_outs = _run_both(model, X, Y, multiclass, opt, plan, 2, dtype,
                                         layout=blocked)
        for got, want in zip(a[0], b[0]):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@needs_cxx
@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("optimizer, options", [("sgd", {}), ("momentum", {"nesterov": True}),
                                                ("adam", {})])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_global_update_by_16_bytes_gives_the_same_bits(batch_size, optimizer, options, dtype):
    # Layers of 20 and 8 units (16-byte rows) and 3 outputs (a row of 3: one at a time).
    model, X, Y, multiclass = _problem("relu", "softmax", "cross_entropy", 3, dtype,
                                       hidden_sizes=(20, 8), n_in=9, n=N)
    opt = get_optimizer(optimizer, 0.05, **options)
    plan = make_plan("minibatch", N, batch_size, shuffle=True)
    vectors, plain = (F.Layout(model.layer_sizes, batch_size, dtype, params_in="global", blocks=b)
                      for b in (None, False))
    assert [vectors.update_vectors(l) for l in range(3)] == [True, True, False]
    assert not any(plain.update_vectors(l) for l in range(3))
    assert (_epoch_bits(model, X, Y, multiclass, opt, plan, vectors, epochs=2)
            == _epoch_bits(model, X, Y, multiclass, opt, plan, plain, epochs=2))


def test_the_gather_is_prefetched_where_a_threads_share_fits_its_registers():
    small = F.Layout([32, 64, 1], 64, "float32", 227 * 1024)
    assert small.params_in == "shared" and small.gather_slots() == 8  # 2048 values, 256 threads
    assert F.Layout([32, 64, 1], 1, "float32").gather_slots() == 1
    mid = F.Layout([784, 256, 256, 10], 1, "float32", 227 * 1024)
    assert mid.params_in == "global" and mid.gather_slots() == 1
    assert F.Layout([784, 256, 256, 10], 4, "float32", 227 * 1024).gather_slots() == 0
    with pytest.raises(ValueError, match="more than the 1 a prefetched gather keeps"):
        F.Layout([784, 256, 256, 10], 4, "float32", 227 * 1024, prefetch=True).gather_slots()


def test_a_one_row_step_has_a_constant_row_count():
    # SGD's nb is always 1 (a step starts at a row the epoch has): a constant,
    # so every row loop folds (sm_90: half the kernel's instructions).
    spec = NetSpec("sigmoid", "sigmoid", "mse", "sum")
    for sizes, batch, params_in in (([32, 64, 1], 1, "shared"), ([784, 256, 256, 10], 1, "global"),
                                    ([32, 64, 1], 8, "shared")):
        layout = F.Layout(sizes, batch, "float32", 227 * 1024)
        assert layout.params_in == params_in
        source = F.kernel_source(layout, spec, "sgd", "float32", False)
        assert ("const int nb = 1;" in source) == (batch == 1)


def test_layout_places_parameters_by_what_fits():
    # One row of [32,64,1]: all of it in the 48 KiB every GPU gives a block.
    small = F.Layout([32, 64, 1], 1, "float32")
    assert (small.params_in, small.acts_in) == ("shared", "shared")
    assert small.threads() <= 256 and small.work_elements() == 0
    assert small.shared_bytes() == small.n_shared * 4 <= F.SHARED_BYTES
    # 64 rows need 67 KB: past 48 KiB the parameters go to global memory, and
    # the work region (58 KB) too; within Hopper's 227 KiB opt-in all stays shared.
    rows64 = F.Layout([32, 64, 1], 64, "float32")
    assert (rows64.params_in, rows64.acts_in) == ("global", "global")
    assert rows64.shared_bytes() == 0 and rows64.work_elements() == rows64.n_work > 0
    assert F.Layout([32, 64, 1], 64, "float32", 227 * 1024).params_in == "shared"
    # [784,256,256,10]: 269,322 parameters in global memory; one row's work in shared.
    big = F.Layout([784, 256, 256, 10], 1, "float64")
    assert big.n_params == 269322 and (big.params_in, big.acts_in) == ("global", "shared")
    assert big.threads() == F.GLOBAL_THREADS and 0 < big.shared_bytes() <= F.SHARED_BYTES
    assert big.forward_split[0] == (4, 196)  # 4 chunks x 256 units: the block's 1024 threads
    assert F.Layout([784, 256, 256, 10], 64, "float32", 227 * 1024).acts_in == "global"
    with pytest.raises(ValueError, match="activations there too"):
        F.Layout([4, 1], 1, params_in="shared", acts_in="global")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [1, 7, 8, 64])
@pytest.mark.parametrize("sizes", [[784, 256, 256, 10], [40, 48, 24, 3], [5, 7, 6, 1], [3, 1000, 2]])
def test_layout_splits_cover_every_input_once(sizes, batch_size, dtype):
    layout = F.Layout(sizes, batch_size, dtype, params_in="global")
    assert batch_size % layout.rows_per_thread == 0  # row tiles never pass the buffers' rows
    assert layout.dx_lanes[0] == 1
    for (fan_in, fan_out), (split, chunk), lanes in zip(zip(sizes, sizes[1:]),
                                                        layout.forward_split, layout.dx_lanes):
        assert (split - 1) * chunk < fan_in <= split * chunk  # no empty chunk, no input left out
        assert split == 1 or chunk >= F.MIN_CHUNK
        if split > 1:
            assert layout.n_scratch >= split * batch_size * fan_out
        if lanes > 1:
            assert layout.n_scratch >= lanes * batch_size * fan_in
    assert layout.scratch + layout.n_scratch == layout.n_work


def _nvcc_ptx(tmp_path, layout, spec, optimizer, dtype):
    """The kernel's source compiled by nvcc (warnings as errors) to PTX, as text."""
    source = tmp_path / "fused.cu"
    source.write_text(F.kernel_source(layout, spec, optimizer, dtype, multiclass_of(spec)))
    done = subprocess.run(["nvcc", "-arch=sm_80", "--std=c++14", "-ptx", "-Werror",
                           "all-warnings", "-o", str(tmp_path / "fused.ptx"), str(source)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return (tmp_path / "fused.ptx").read_text()


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (the CUDA compiler) is not installed")
@pytest.mark.parametrize("dtype, optimizer", [("float32", "adam"), ("float64", "momentum"),
                                              ("float32", "sgd")])
@pytest.mark.parametrize("hidden, output, loss, k", NETWORKS)
def test_cuda_source_compiles(tmp_path, hidden, output, loss, k, dtype, optimizer):
    spec = NetSpec(hidden, output, loss, "mean")
    layout = F.Layout([32, 24, 16, k], 16)
    assert "bar.sync" in _nvcc_ptx(tmp_path, layout, spec, optimizer, dtype)  # the phases' barriers


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (the CUDA compiler) is not installed")
@pytest.mark.parametrize(
    "hidden, output, loss, k, dtype, optimizer, batch_size, acts_in",
    [net + config for net, config in zip(NETWORKS, [("float32", "sgd", 1, "shared"),
                                                    ("float64", "adam", 64, "global")] * 3)])
def test_cuda_source_compiles_with_global_parameters(tmp_path, hidden, output, loss, k, dtype,
                                                     optimizer, batch_size, acts_in):
    spec = NetSpec(hidden, output, loss, "mean")
    layout = F.Layout([784, 256, 256, k], batch_size, dtype, params_in="global", acts_in=acts_in)
    ptx = _nvcc_ptx(tmp_path, layout, spec, optimizer, dtype)
    assert "bar.sync" in ptx
    assert ".maxntid 1024" in ptx  # registers held to what 1024 threads may have


def test_unsupported_says_why():
    spec = NetSpec("tanh", "sigmoid", "bce", "mean")
    sgd = get_optimizer("sgd", 0.1)
    assert F.unsupported(spec, make_plan("sgd", 100, 1), sgd, [32, 64, 1], "float32") is None
    assert "batch mode" in F.unsupported(spec, make_plan("batch", 100), sgd, [32, 64, 1], "float32")
    assert "exceed" in F.unsupported(spec, make_plan("minibatch", 1000, 128), sgd, [4, 1], "float32")
    custom = nb.Optimizer(sgd.init, sgd.update)
    assert "custom optimizer" in F.unsupported(spec, make_plan("sgd", 100, 1), custom, [4, 1],
                                               "float32")
    assert "dtype" in F.unsupported(spec, make_plan("sgd", 100, 1), sgd, [4, 1], "float16")
    assert "sizes are unknown" in F.unsupported(spec, make_plan("sgd", 100, 1), sgd, None, "float32")
    # Past the reach of one block: too many parameters, or too much work a step.
    why = F.unsupported(spec, make_plan("sgd", 100, 1), sgd, [4096, 1024, 1024, 10], "float32")
    assert "5255178 parameters" in why
    why = F.unsupported(spec, make_plan("minibatch", 1000, 64), sgd, [784, 1024, 1024, 10],
                        "float32")
    assert "multiply-adds" in why
    assert F.unsupported(spec, make_plan("sgd", 1000, 1), sgd, [784, 1024, 1024, 10],
                         "float32") is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode, batch_size", [("sgd", 1), ("minibatch", 16), ("minibatch", 64)])
@pytest.mark.parametrize("sizes", [[32, 64, 1], [784, 64, 10], [784, 128, 10], [784, 256, 256, 10]])
def test_the_fused_kernel_takes_every_network_up_to_784_256_256_10(sizes, mode, batch_size,
                                                                    dtype):
    # Every placement and optimizer, up to the step work where the eager loop wins
    # (measured on an H200: [784,256,256,10] in mini-batches of 64 is 3.6x slower fused).
    spec = NetSpec("relu", "softmax", "cross_entropy", "mean")
    n_params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    fits = batch_size * n_params <= F.MAX_STEP_WORK
    assert fits or batch_size > 1  # sgd takes them all
    for optimizer in ("sgd", "momentum", "adam"):
        opt = get_optimizer(optimizer, 0.1)
        for limit in (F.SHARED_BYTES, 227 * 1024):
            why = F.unsupported(spec, make_plan(mode, 1000, batch_size), opt, sizes, dtype,
                                shared_limit=limit)
            assert why is None if fits else "multiply-adds" in why


def test_the_fused_executor_is_refused_off_cupy():
    model = nb.MLP([2, 3, 1], backend="numpy")
    X, y = np.zeros((4, 2)), np.zeros(4)
    with pytest.raises(ValueError, match="executor 'cupy-fused' needs the cupy backend"):
        model.fit(X, y, executor="cupy-fused", epochs=1)
    with pytest.raises(ValueError, match="unknown executor"):
        model.fit(X, y, executor="fused", epochs=1)


def _cupy():
    try:
        return nb.get_backend("cupy")
    except nb.BackendUnavailableError as exc:
        pytest.skip(f"backend cupy unavailable: {exc}")


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("mode, batch_size", [("sgd", 1), ("minibatch", 16)])
@pytest.mark.parametrize("hidden, output, loss, k", NETWORKS)
def test_cupy_fused_fit_equals_reference(hidden, output, loss, k, mode, batch_size, optimizer):
    backend = _cupy()
    results = {}
    for dtype, epochs in (("float64", 3), ("float32", 1)):
        for executor in ("reference", "cupy-fused"):
            X, y = _host_data(output, loss, k)
            model = nb.MLP([5, 7, 6, k], hidden_activation=hidden, output_activation=output,
                           loss=loss, backend=backend, dtype=dtype, seed=1)
            hist = model.fit(X, y, mode=mode, batch_size=batch_size,
                             epochs=epochs, lr=0.05, optimizer=optimizer, seed=4,
                             executor=executor)
            results[dtype, executor] = ([backend.to_host(a) for pair in model.params for a in pair],
                                        hist)
    for dtype, rtol in (("float64", 1e-9), ("float32", 1e-4)):
        (ref, ref_hist), (got, hist) = results[dtype, "reference"], results[dtype, "cupy-fused"]
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2)
        np.testing.assert_allclose(hist.loss, ref_hist.loss, rtol=rtol)


def test_cupy_auto_picks_the_fused_kernel_for_small_batches_and_the_batch_kernels_for_batch():
    backend = _cupy()
    model = nb.MLP([5, 7, 1], backend=backend, dtype="float32")
    X, Y = model._features(np.zeros((100, 5))), model._targets(np.zeros(100), 100)

    def task(plan):
        return EpochTask(backend, model.spec, get_optimizer("sgd", 0.1), plan, X, Y, 2048,
                         index_dtype=backend.index_dtype(), layer_sizes=model.layer_sizes)

    from nnbackend.engine import choose_executor

    assert choose_executor("auto", task(make_plan("sgd", 100, 1))).name == "cupy-fused"
    assert choose_executor("auto", task(make_plan("batch", 100))).name == "cupy-batch"
    with pytest.raises(ValueError, match="does not apply here: batch mode"):
        model.fit(np.zeros((100, 5)), np.zeros(100), mode="batch", executor="cupy-fused")


@pytest.mark.parametrize("acts_in", ["shared", "global"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_cupy_global_memory_kernel_equals_reference(acts_in, optimizer):
    _cupy()
    import cupy

    model, X, Y, multiclass = _problem("tanh", "softmax", "cross_entropy", 3, "float64",
                                       hidden_sizes=TILED_HIDDEN, n_in=TILED_IN)
    layout = _tiled_layout(model, 8, "float64", acts_in)
    opt = get_optimizer(optimizer, 0.01)
    plan = make_plan("minibatch", N, 8, shuffle=True)
    fused = F.make_epoch(cupy, model.spec, opt, plan, cupy.asarray(X), cupy.asarray(Y),
                         multiclass, model.layer_sizes, "float64", F.cuda_launcher, layout=layout)
    params = [cupy.asarray(p) for p in model.flat_params]
    params, state, loss_sum, hits = fused(params, opt.init(params), plan.order(host_rng(3)))
    ref_params, _, ref_loss, ref_hits = run_epoch(
        model.flat_params, opt.init(model.flat_params), opt, model.spec, X, Y, plan, host_rng(3),
        np.int64, 2048, multiclass, xp=model.backend.xp)
    for got, want in zip(params, ref_params):
        np.testing.assert_allclose(got.get(), want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(float(loss_sum), float(ref_loss), rtol=1e-9)
    assert float(hits) == float(ref_hits)


def _float32_agree(got, want, optimizer, lr, steps):
    """Two float32 fits of the same steps agree to float32 rounding.

    Adam divides each moment by its root: an element whose gradient is
    rounding noise (|g| near eps) moves by up to ``lr`` a step in a direction
    that rounding picks. Measured on the CPU (torch against NumPy, float32,
    this problem): at most 4 elements of 200,704 off, by at most 3e-4. So for
    Adam a few elements in 10^4 may differ, each by no more than ``lr`` per step.
    """
    for a, b in zip(got, want):
        off = np.abs(a - b) > 1e-5 + 1e-4 * np.abs(b)
        if optimizer != "adam":
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
            continue
        assert off.sum() <= max(1, off.size // 10_000), (off.sum(), off.size)
        assert np.abs(a - b).max() <= lr * steps


@pytest.mark.parametrize("mode, batch_size, optimizer, rows32",
                         # Mini-batches of 8: the kernel declines this network's
                         # batches past 15 rows (MAX_STEP_WORK).
                         [("sgd", 1, "sgd", 64), ("minibatch", 8, "adam", 128)])
def test_cupy_fit_784_256_256_10_takes_the_fused_kernel(mode, batch_size, optimizer, rows32):
    backend = _cupy()
    X, y = _host_data("softmax", "cross_entropy", 10, n_in=784, n=150)
    # float64 over 150 rows and two epochs; float32 over the first ``rows32``
    # (two steps at least: one batch of all rows is batch mode, which the
    # kernel leaves to the reference). In float32 two summation orders part
    # ways further on: one relu unit whose input rounds to the other side of 0
    # changes a whole step (the first GPU run, 2026-11-27, 8e-3 apart after
    # 150 sgd steps; on the CPU NumPy's and torch's float32 fits stand 8e-3
    # from the float64 fit after 150 steps, 5e-8 after 64).
    runs = (("float64", 2, 150), ("float32", 1, rows32))
    lr = 0.01
    results = {}
    for dtype, epochs, n in runs:
        for executor in ("reference", "cupy-fused"):
            model = nb.MLP([784, 256, 256, 10], hidden_activation="relu",
                           output_activation="softmax", loss="cross_entropy", backend=backend,
                           dtype=dtype, seed=1)
            hist = model.fit(X[:n], y[:n], mode=mode, batch_size=batch_size, epochs=epochs, lr=lr,
                             optimizer=optimizer, seed=4, executor=executor)
            results[dtype, executor] = ([backend.to_host(a) for pair in model.params for a in pair],
                                        hist)
    (ref, ref_hist), (got, hist) = results["float64", "reference"], results["float64", "cupy-fused"]
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(hist.loss, ref_hist.loss, rtol=1e-9)
    (ref, ref_hist), (got, hist) = results["float32", "reference"], results["float32", "cupy-fused"]
    _float32_agree(got, ref, optimizer, lr, steps=-(-rows32 // batch_size))
    np.testing.assert_allclose(hist.loss, ref_hist.loss, rtol=1e-4)


@needs_cxx
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_several_epochs_in_one_call_are_the_same_bits(optimizer, shuffle):
    """``epoch.epochs``: k epochs launched back to back (the orders crossing in
    one copy) equal k epochs called one by one, bit for bit, Adam's count
    included; the caller's arrays are left as they were."""
    model, X, Y, multiclass = _problem("tanh", "softmax", "cross_entropy", 3, "float64")
    opt = get_optimizer(optimizer, 0.05)
    plan = make_plan("minibatch", N, 8, shuffle=shuffle)

    def fresh():
        return F.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, model.layer_sizes,
                            "float64", F.host_launcher)

    rng = host_rng(3)
    orders = [plan.order(rng) for _ in range(3)]
    one = fresh()
    params, state = model.flat_params, opt.init(model.flat_params)
    losses, hits = [], []
    for order in orders:
        params, state, loss, hit = one(params, state, order)
        losses.append(float(loss))
        hits.append(float(hit))
    start = [p.copy() for p in model.flat_params]
    many = fresh()
    got, got_state, got_losses, got_hits = many.epochs(model.flat_params,
                                                      opt.init(model.flat_params), orders)
    assert got_losses.tolist() == losses and got_hits.tolist() == hits
    for a, b in zip(got, params):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.flat_params, start):
        np.testing.assert_array_equal(a, b)
    if optimizer == "adam":
        assert got_state.count == state.count == 3 * -(-N // 8)
    order = plan.order(rng)
    after_one, after_many = one(params, state, order), many(got, got_state, order)
    for a, b in zip(after_one[0], after_many[0]):
        np.testing.assert_array_equal(a, b)
