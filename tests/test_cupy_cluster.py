"""The fused epoch kernel as one thread-block cluster (``grid.py``, sm_90).

A network whose parameters do not fit one block's shared memory runs, on
sm_90 and later, as one cluster of eight blocks: the global-placement kernel
with its phases split for the cluster's threads and the cluster's hardware
barrier between them. Every element is still computed by one thread in an
order the layout fixes, so the one-block kernel built from the same layout
gives the same bits. Without a GPU: the host builds (the cluster's blocks as
threads, one at a time), the executor's choice, the fallback when a cluster
does not launch, and the CUDA source through NVRTC. With CuPy on an sm_90
GPU: the CUDA builds compared the same way.
"""

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.backends.cupy import fused as F
from nnbackend.backends.cupy import grid as G
from nnbackend.data import host_rng, make_plan
from nnbackend.optim import get_optimizer

from conftest import needs_cxx
from test_cupy_batch import _cupy_gpu
from test_cupy_fused import NETWORKS, _assert_same_run, _problem, _run_both

MID = dict(hidden_sizes=(256, 256), n_in=784)


def _bits(am, model, X, Y, multiclass, opt, plan, layout, launcher, epochs=2):
    """Parameters' bytes and each epoch's (loss, hits) after shuffled epochs."""
    dtype = str(X.dtype)
    epoch = F.make_epoch(am, model.spec, opt, plan, X, Y, multiclass, model.layer_sizes, dtype,
                         launcher, layout=layout)
    params = [am.asarray(p) for p in model.flat_params]
    state, rng, figures = opt.init(params), host_rng(4), []
    for _ in range(epochs):
        params, state, loss, hits = epoch(params, state, plan.order(rng))
        figures.append((float(loss), None if hits is None else float(hits)))
    host = [np.asarray(p.get() if hasattr(p, "get") else p) for p in params]
    return [p.tobytes() for p in host], figures, epoch


@needs_cxx
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("hidden, output, loss, k", NETWORKS[:3])
def test_cluster_kernel_equals_one_block_of_its_layout(hidden, output, loss, k, optimizer):
    model, X, Y, multiclass = _problem(hidden, output, loss, k, "float64", n=37)
    opt, plan = get_optimizer(optimizer, 0.05), make_plan("minibatch", 37, 8)
    layout = F.cluster_layout(model.layer_sizes, 8, "float64", n_blocks=3)
    one = _bits(np, model, X, Y, multiclass, opt, plan, layout, F.host_launcher)
    cluster = _bits(np, model, X, Y, multiclass, opt, plan, layout, G.host_cluster_launcher(3))
    assert cluster[:2] == one[:2]


@needs_cxx
@pytest.mark.parametrize("dtype, batch_size, optimizer", [
    ("float32", 1, "sgd"), ("float64", 1, "adam"), ("float32", 4, "momentum")])
def test_784_256_256_10_cluster_kernel_bits(dtype, batch_size, optimizer):
    """The mid model as the executor lays it out on sm_90: the cluster's host build
    gives one block's bits with that layout."""
    model, X, Y, multiclass = _problem("relu", "softmax", "cross_entropy", 10, dtype, n=9, **MID)
    layout, on_cluster = F.choose_layout(model.layer_sizes, batch_size, dtype, 227 * 1024, 90)
    assert on_cluster and layout.split_for == G.CLUSTER_BLOCKS * F.GLOBAL_THREADS
    opt, plan = get_optimizer(optimizer, 0.01), make_plan("minibatch", 9, batch_size)
    one = _bits(np, model, X, Y, multiclass, opt, plan, layout, F.host_launcher)
    cluster = _bits(np, model, X, Y, multiclass, opt, plan, layout,
                    G.host_cluster_launcher(G.CLUSTER_BLOCKS))
    assert cluster[:2] == one[:2]


@needs_cxx
@pytest.mark.parametrize("dtype, optimizer, atol", [("float64", "sgd", 1e-14),
                                                    ("float32", "adam", 1e-5)])
def test_784_256_256_10_cluster_layout_equals_reference(dtype, optimizer, atol):
    """The cluster's split (32 chunks of 25 inputs in the first layer, where one block
    takes 4 of 196) sums in another order: the reference loop's results still, to
    the float64 and float32 bounds of the one-block kernel."""
    model, X, Y, multiclass = _problem("relu", "softmax", "cross_entropy", 10, dtype, n=13,
                                       **MID)
    layout = F.choose_layout(model.layer_sizes, 1, dtype, 227 * 1024, 90)[0]
    assert layout.forward_split[0] == (32, 25)
    opt, plan = get_optimizer(optimizer, 0.01), make_plan("sgd", 13, 1, shuffle=True)
    a, b, fused_out, ref_out = _run_both(model, X, Y, multiclass, opt, plan, 2, dtype, layout)
    rtol = 1e-12 if dtype == "float64" else 1e-4
    _assert_same_run((a, fused_out), (b, ref_out), rtol, atol, hits_slack=int(dtype == "float32"))


def test_the_executor_takes_a_cluster_only_for_the_global_placement_on_sm90():
    mid = [784, 256, 256, 10]
    layout, on_cluster = F.choose_layout(mid, 1, "float32", 227 * 1024, 90)
    assert on_cluster and layout.params_in == layout.acts_in == "global"
    assert layout.split_for == 8 * 1024 and layout.work_elements() > 0
    # Hopper's successors too; an older card, or an unknown one, keeps one block.
    assert F.choose_layout(mid, 1, "float32", 227 * 1024, 100)[1]
    for capability in (0, 80, 89):
        layout, on_cluster = F.choose_layout(mid, 1, "float32", 99 * 1024, capability)
        assert not on_cluster and layout.split_for == F.GLOBAL_THREADS
    # Parameters in shared memory: one block whatever the card.
    layout, on_cluster = F.choose_layout([32, 64, 1], 1, "float32", 227 * 1024, 90)
    assert not on_cluster and layout.params_in == "shared"


def test_layout_refuses_a_split_for_no_threads():
    with pytest.raises(ValueError, match="split_for"):
        F.Layout([784, 256, 10], 1, "float32", params_in="global", split_for=0)


def _recorder(name, fails=False, calls=None, message="cudaErrorClusterOutOfResources"):
    def launch(*args):
        calls.append((name, args))
        if fails:
            raise RuntimeError(message)

    launch.description = f"the {name}"
    return launch


def test_a_cluster_that_does_not_launch_hands_over_to_one_block():
    calls, made = [], []

    def then():
        made.append(1)
        return _recorder("block", calls=calls)

    launch = G.first_that_launches(_recorder("cluster", fails=True, calls=calls), then)
    assert launch.description == "the cluster"
    launch(1, 2)
    launch(3, 4)
    # The refused first launch ran again on the block, and the block runs from then on.
    assert calls == [("cluster", (1, 2)), ("block", (1, 2)), ("block", (3, 4))]
    assert made == [1]
    assert launch.description.startswith("the block (the cluster kernel did not launch: ")
    assert "RuntimeError: cudaErrorClusterOutOfResources" in launch.description


def test_a_fallbacks_reason_keeps_the_errors_first_line():
    # A compile error carries NVRTC's whole log: the fit's reason keeps its first line.
    log = "nvrtc: error: failed to compile\nkernel.cu(12): error: x\n" + "detail\n" * 50
    launch = G.first_that_launches(
        _recorder("cluster", fails=True, calls=[], message=log),
        lambda: _recorder("block", calls=[]))
    launch(1)
    assert launch.description == ("the block (the cluster kernel did not launch: "
                                  "RuntimeError: nvrtc: error: failed to compile)")


def test_a_cluster_that_launches_keeps_running_and_builds_no_fallback():
    calls = []

    def then():
        raise AssertionError("the fallback was built")

    launch = G.first_that_launches(_recorder("cluster", calls=calls), then)
    for i in range(3):
        launch(i)
    assert calls == [("cluster", (0,)), ("cluster", (1,)), ("cluster", (2,))]
    assert launch.description == "the cluster"


@needs_cxx
def test_epoch_path_names_what_the_launch_ran():
    model, X, Y, multiclass = _problem("relu", "softmax", "cross_entropy", 3, "float64", n=20)
    layout = F.cluster_layout(model.layer_sizes, 4, "float64", n_blocks=2)
    calls = []

    def launcher(source, layout_, dtype_name):
        def refuse(*args):
            calls.append("cluster")
            raise RuntimeError("no cluster here")

        refuse.description = "one cluster of 2 blocks"
        return G.first_that_launches(refuse, lambda: F.host_launcher(source, layout_, dtype_name))

    opt, plan = get_optimizer("sgd", 0.05), make_plan("minibatch", 20, 4)
    fell_back = _bits(np, model, X, Y, multiclass, opt, plan, layout, launcher)
    one = _bits(np, model, X, Y, multiclass, opt, plan, layout, F.host_launcher)
    assert fell_back[:2] == one[:2] and calls == ["cluster"]
    assert "did not launch: RuntimeError: no cluster here" in fell_back[2].path
    assert fell_back[2].path.startswith("a window's epochs launched back to back")


def test_cluster_source_sizes_the_cluster_and_keeps_the_host_barrier():
    model, _, _, multiclass = _problem("tanh", "sigmoid", "bce", 1, "float64", n=37)
    layout = F.cluster_layout(model.layer_sizes, 8, "float64")
    source = F.kernel_source(layout, model.spec, "sgd", "float64", multiclass)
    cluster = G.grid_source(source, cluster=8)
    assert "void __cluster_dims__(8, 1, 1) __launch_bounds__(1024) nnb_grid_epoch(" in cluster
    assert "barrier.cluster.arrive.release.aligned" in cluster
    assert "barrier.cluster" not in G.grid_source(source)
    # The host build defines the attribute away and keeps the counters' barrier.
    assert "#define __cluster_dims__(x, y, z)" in cluster
    assert cluster.count("NNB_ATOMIC_ADD(barrier, 1u)") == 1


def _sm90_gpu():
    missing = _cupy_gpu()
    if missing is not None:
        return missing
    import cupy

    capability = int(cupy.cuda.Device().compute_capability)
    return None if capability >= 90 else f"compute capability {capability / 10:.1f} < 9.0"


@pytest.mark.skipif(_sm90_gpu() is not None, reason=f"needs CuPy on an sm_90 GPU: {_sm90_gpu()}")
@pytest.mark.parametrize("dtype, batch_size", [("float32", 1), ("float64", 1), ("float32", 8)])
def test_cuda_cluster_kernel_equals_one_block_of_its_layout(dtype, batch_size):
    import cupy

    model, X, Y, multiclass = _problem("relu", "softmax", "cross_entropy", 10, dtype, n=300,
                                       **MID)
    layout = F.choose_layout(model.layer_sizes, batch_size, dtype, 227 * 1024, 90)[0]
    opt, plan = get_optimizer("sgd", 0.05), make_plan("minibatch", 300, batch_size)
    Xd, Yd = cupy.asarray(X), cupy.asarray(Y)
    one = _bits(cupy, model, Xd, Yd, multiclass, opt, plan, layout, F.cuda_launcher)
    cluster = _bits(cupy, model, Xd, Yd, multiclass, opt, plan, layout,
                    G.cuda_cluster_launcher())
    assert cluster[:2] == one[:2]
    # As the executor launches it (falling back to one block if refused): no fallback here.
    with_fallback = _bits(cupy, model, Xd, Yd, multiclass, opt, plan, layout,
                          G.cuda_cluster_launcher(fallback=F.cuda_launcher))
    assert with_fallback[:2] == one[:2]
    assert with_fallback[2].path.endswith("one cluster of 8 blocks (8 SMs), the cluster barrier "
                                          "between phases"), with_fallback[2].path


@pytest.mark.skipif(_sm90_gpu() is not None, reason=f"needs CuPy on an sm_90 GPU: {_sm90_gpu()}")
def test_cupy_fit_of_the_mid_model_runs_on_a_cluster():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=200)
    kwargs = dict(hidden_activation="relu", output_activation="softmax", loss="cross_entropy",
                  dtype="float32", seed=0)
    fast = nb.MLP([784, 256, 256, 10], backend="cupy", **kwargs)
    history = fast.fit(X, y, mode="sgd", epochs=2, lr=0.01)
    assert history.executor == "cupy-fused"
    assert "one cluster of 8 blocks" in history.executor_reason
    ref = nb.MLP([784, 256, 256, 10], backend="cupy", **kwargs)
    ref.fit(X, y, mode="sgd", epochs=2, lr=0.01, executor="reference")
    for a, b in zip(fast.flat_params, ref.flat_params):
        np.testing.assert_allclose(np.asarray(a.get()), np.asarray(b.get()), rtol=1e-4,
                                   atol=1e-5)


def test_a_kernel_executors_reason_reads_the_epochs_path_when_asked():
    # The reason is asked again after the fit: a launch that fell back at the first
    # epoch changed the epoch's path since make_epoch, and the reason must say so.
    from types import SimpleNamespace

    from nnbackend.backends.cupy.flat import with_window_path

    task, other = object(), object()
    epoch = SimpleNamespace(path="one cluster of 8 blocks")
    assert with_window_path("kernel", (task, epoch), task) == \
        "kernel; a window of epochs: one cluster of 8 blocks"
    epoch.path = "one block (the cluster kernel did not launch: RuntimeError: no)"
    assert with_window_path("kernel", (task, epoch), task).endswith("did not launch: "
                                                                     "RuntimeError: no)")
    assert with_window_path("kernel", (other, epoch), task) == "kernel"
    assert with_window_path("kernel", None, task) == "kernel"
